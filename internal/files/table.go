// Package files is Apron's version of Mesos's files process: the table of
// directories and files a master or an agent lets clients read over HTTP
// (/files/browse, /files/read, /files/download, /files/debug) and through
// the operator calls LIST_FILES and READ_FILE, and the reads themselves.
//
// A Table maps virtual paths to real ones ("attaching", as Mesos says).
// The agent attaches each executor run's sandbox under its real path and
// under Mesos's virtual paths (/frameworks/<fw>/executors/<ex>/runs/latest
// and <work_dir>/agents/<agent>/frameworks/.../runs/latest); an embedder
// may attach a log file (Mesos: /master/log, /slave/log). A requested path
// resolves to the longest attached prefix, and what follows it is looked
// up inside that directory only:
//
//   - ".." anywhere in a requested path is refused (400), as is a NUL;
//     empty and "." components are ignored;
//   - what follows the attached prefix is opened through an os.Root on the
//     attached directory, so a symbolic link may lead anywhere inside it
//     but not out (400), whether it was there before or replaced a file
//     since: the check and the open are one operation;
//   - a path that names nothing attached, or nothing inside, is 404.
//
// Reads answer as Mesos's do: an offset of -1 (or none, over HTTP) asks
// for the file's size, an offset at or past the end reads nothing, and a
// read returns at most MaxReadLength bytes (16 pages, Mesos's cap). See
// Table.Read.
//
// Differences from Mesos, on purpose:
//
//   - Mesos resolves an attached path's symbolic links once, when it is
//     attached, and refuses to attach a path that does not exist yet; a
//     Table keeps the path and resolves it at each request, so a sandbox
//     can be attached before its executor has made it.
//   - Inside an attached directory, symbolic links must be relative (an
//     os.Root refuses absolute ones, even to a place inside the root).
//   - Browsing lists a symbolic link that leads out of its directory (or
//     nowhere) as the link itself (mode "l..."), where Mesos follows it
//     and so would show a file outside the sandbox, or skip the entry.
//   - A jsonp callback must be a JavaScript identifier (letters, digits,
//     '_', '$', '.'); Mesos echoes any string into its answer.
//   - There is no authorization: whoever reaches the endpoint may read
//     what is attached.
package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Errors of path resolution and reads, which the HTTP handlers answer with
// Mesos's codes (see Status).
var (
	// ErrNotFound: nothing attached or inside an attached directory has
	// the path (404).
	ErrNotFound = errors.New("files: no such file or directory")
	// ErrInvalid: the path or a parameter is malformed, leads out of its
	// attached directory, or names a directory where a file is needed
	// (400).
	ErrInvalid = errors.New("files: invalid request")
)

// Table is the set of attached paths. The zero Table is empty and ready to
// use; a Table is safe for concurrent use. It holds names only: files are
// opened at each request.
type Table struct {
	mu     sync.RWMutex
	paths  map[string]string              // virtual path -> real path
	byReal map[string]map[string]struct{} // real path -> the virtual paths attached to it
}

// Attach makes the real path (a directory or a file, which need not exist
// yet) readable as virtual, replacing what virtual named before, as
// Mesos's attach does. real must be absolute; virtual is taken as an
// absolute path ("a/b" is "/a/b") and must not hold "..".
func (t *Table) Attach(real, virtual string) error {
	if !filepath.IsAbs(real) || strings.IndexByte(real, 0) >= 0 {
		return fmt.Errorf("%w: attaching %q: the real path must be absolute", ErrInvalid, real)
	}
	real = filepath.Clean(real)
	parts, err := split(virtual)
	if err != nil {
		return err
	}
	v := join(parts)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.paths == nil {
		t.paths = map[string]string{}
		t.byReal = map[string]map[string]struct{}{}
	}
	if old, ok := t.paths[v]; ok {
		t.unindex(old, v)
	}
	t.paths[v] = real
	set := t.byReal[real]
	if set == nil {
		set = map[string]struct{}{}
		t.byReal[real] = set
	}
	set[v] = struct{}{}
	return nil
}

// Detach forgets virtual.
func (t *Table) Detach(virtual string) {
	parts, err := split(virtual)
	if err != nil {
		return
	}
	v := join(parts)
	t.mu.Lock()
	defer t.mu.Unlock()
	if real, ok := t.paths[v]; ok {
		delete(t.paths, v)
		t.unindex(real, v)
	}
}

// DetachReal forgets every virtual path attached to real, as when the
// directory is removed.
func (t *Table) DetachReal(real string) {
	real = filepath.Clean(real)
	t.mu.Lock()
	defer t.mu.Unlock()
	for v := range t.byReal[real] {
		delete(t.paths, v)
	}
	delete(t.byReal, real)
}

func (t *Table) unindex(real, virtual string) {
	set := t.byReal[real]
	delete(set, virtual)
	if len(set) == 0 {
		delete(t.byReal, real)
	}
}

// Debug is the table as /files/debug shows it: virtual path -> real path.
func (t *Table) Debug() map[string]string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[string]string, len(t.paths))
	for v, r := range t.paths {
		out[v] = r
	}
	return out
}

// Len is the number of attached virtual paths.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.paths)
}

// Covers reports whether path falls under an attached virtual path (which
// does not say that it exists). A malformed path is covered by nothing.
func (t *Table) Covers(path string) bool {
	parts, err := split(path)
	if err != nil {
		return false
	}
	_, _, ok := t.lookup(parts)
	return ok
}

// lookup finds the longest attached prefix of parts: its real path and
// the rest of parts, relative.
func (t *Table) lookup(parts []string) (real, rest string, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := len(parts); i >= 0; i-- {
		if r, found := t.paths[join(parts[:i])]; found {
			return r, strings.Join(parts[i:], "/"), true
		}
	}
	return "", "", false
}

// split checks a requested path and returns its components, without empty
// and "." ones. ".." is refused outright rather than resolved: Mesos
// refuses a path that climbs out of its attached directory, and one that
// climbs and comes back down is no path a client needs.
func split(p string) ([]string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return nil, fmt.Errorf("%w: the path holds a NUL byte", ErrInvalid)
	}
	var out []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("%w: '%s' is inaccessible: it holds '..'", ErrInvalid, p)
		}
		out = append(out, c)
	}
	return out, nil
}

func join(parts []string) string { return "/" + strings.Join(parts, "/") }

// target is a resolved path: a name inside an attached directory (root
// set) or an attached file.
type target struct {
	root *os.Root
	name string // in root: "." for the directory itself
	file string // the attached file, when root is nil
}

// resolve finds what path names. The caller closes the target.
func (t *Table) resolve(path string) (*target, error) {
	parts, err := split(path)
	if err != nil {
		return nil, err
	}
	real, rest, ok := t.lookup(parts)
	if !ok {
		return nil, fmt.Errorf("%w: '%s' is not attached", ErrNotFound, path)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("%w: '%s'", ErrNotFound, path)
	}
	if !fi.IsDir() {
		if rest != "" {
			// Mesos: a path below an attached file is not found.
			return nil, fmt.Errorf("%w: '%s'", ErrNotFound, path)
		}
		return &target{file: real}, nil
	}
	root, err := os.OpenRoot(real)
	if err != nil {
		return nil, fmt.Errorf("%w: '%s'", ErrNotFound, path)
	}
	if rest == "" {
		rest = "."
	}
	return &target{root: root, name: rest}, nil
}

func (tg *target) close() {
	if tg.root != nil {
		_ = tg.root.Close()
	}
}

// open opens the target, never leaving its root.
func (tg *target) open(path string) (*os.File, error) {
	var f *os.File
	var err error
	if tg.root != nil {
		f, err = tg.root.Open(tg.name)
	} else {
		f, err = os.Open(tg.file)
	}
	if err != nil {
		return nil, openError(path, err)
	}
	return f, nil
}

// openError classes an open's failure: missing is 404, anything else
// (a link out of the root, a file where a directory is expected, no
// permission) is 400, as Mesos answers a path it cannot canonicalize or
// that leaves its directory.
func openError(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: '%s'", ErrNotFound, path)
	}
	return fmt.Errorf("%w: '%s' is inaccessible: %v", ErrInvalid, path, stripPath(err))
}

// stripPath drops the real path from an *os.PathError, which a client
// must not learn.
func stripPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Package fetch is the fetcher of Apron's agent and built-in default
// executor: it downloads a CommandInfo's uris into a sandbox before what
// the CommandInfo runs starts, as Mesos's fetcher does. The agent fetches
// an executor's (or a command task's) URIs into the executor's sandbox;
// the default executor fetches each task of a group's URIs into that
// task's own sandbox (<executor sandbox>/tasks/<task>). Both use a
// [Fetcher], so both fetch alike:
//
//   - http:// and https:// URIs are downloaded with Fetcher.Client (by
//     default a client whose transport gives up on a server that answers
//     no headers within Fetcher.StallTimeout); anything but 200 OK fails
//     the fetch. file:// URIs and absolute paths are copied (never
//     linked), keeping the source's permission bits. Any other scheme
//     (hdfs, s3, ftp, ...) fails: Mesos hands those to a Hadoop client,
//     which Apron does not have.
//   - The file is saved in the sandbox under output_file (relative, no
//     ".."; its directories are created) or else the base name of the
//     URI's path. executable makes it mode 0755 and is never extracted.
//     Otherwise, when extract is set (the default), archives are unpacked
//     into the sandbox and kept: .tar, .tar.gz, .tgz, .tar.bz2, .tbz2 and
//     .zip, and a lone .gz is gunzipped to its name without .gz. .tar.xz and
//     .txz are left as they are with a warning: Go's standard library has no
//     xz decoder. Other files stay as fetched, with Mesos's warning.
//   - cache is accepted and ignored: there is no fetcher cache, every URI
//     is fetched again for every run.
//   - Nothing is ever written outside the sandbox: files are written
//     through an os.Root on it, and archives whose entries have absolute
//     names, "..", or links that point outside the sandbox are refused.
//     Each fetched file, and each archive's content, is bounded by
//     Fetcher.MaxSize (no bound by default, as Mesos), and a download that
//     receives no data for Fetcher.StallTimeout (Mesos's
//     --fetcher_stall_timeout: 1 min) fails.
//   - When the process runs as root, everything fetched is given to the
//     user the sandbox belongs to, and a local file is copied only if that
//     user could read it.
//   - Each URI's progress is written to the sandbox's stderr file, where
//     the task's own stderr follows.
//
// A fetch stops at the first URI that fails; its error wraps one of the
// sentinel errors below (or the error of the file system or the network),
// and callers fail the task with REASON_CONTAINER_LAUNCH_FAILED and
// Mesos's message ("Failed to fetch all URIs for container '<id>': ...").
package fetch

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Fetch errors, wrapped in the messages tasks get.
var (
	ErrUnsupported = errors.New("unsupported URI")
	ErrHTTP        = errors.New("HTTP error")
	ErrTooLarge    = errors.New("larger than the fetcher's size limit")
	ErrStalled     = errors.New("download stalled")
	ErrUnsafe      = errors.New("unsafe archive")
	ErrBadOutput   = errors.New("invalid output_file")
)

// DefaultStallTimeout is Mesos's --fetcher_stall_timeout.
const DefaultStallTimeout = time.Minute

// Fetcher holds what every fetch shares. Its zero value fetches with
// DefaultClient(0) and no limits. It is safe for concurrent use.
type Fetcher struct {
	// Client downloads http and https URIs; nil is a new
	// DefaultClient(StallTimeout) for each Fetch, whose connections are
	// not reused: long-lived users set one.
	Client *http.Client
	// MaxSize bounds, in bytes, each fetched file and each archive's
	// content; 0 is no bound.
	MaxSize int64
	// StallTimeout fails a download that brings no data for that long; 0
	// is no limit.
	StallTimeout time.Duration
}

// DefaultClient is the HTTP client for fetching when the embedder gives
// none: no bound on the whole download (it may be large), but on
// connecting and on waiting for the server's answer (stall, when > 0).
func DefaultClient(stall time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = stall
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t}
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return DefaultClient(f.StallTimeout)
}

// Fetch makes the sandbox (see MakeSandbox) and fetches uris into it, in
// order, stopping at the first failure; then gives the sandbox's content
// to user (when running as root and user is not ""). Cancelling ctx stops
// it. It runs on the caller's goroutine and may take long: callers run it
// off their event loops.
func (f *Fetcher) Fetch(ctx context.Context, sandbox, user string, uris []mesospb.CommandInfo_URI) error {
	if err := MakeSandbox(sandbox, user); err != nil {
		return err
	}
	owner, err := lookupOwner(user)
	if err != nil {
		return err
	}
	return f.fetchAll(ctx, sandbox, uris, owner)
}

// MakeSandbox creates a sandbox directory, owned by the user its tasks
// run as (name) when the process runs as root, as Mesos does.
func MakeSandbox(sandbox, name string) error {
	if err := mkdirAll(sandbox, 0o755); err != nil {
		return fmt.Errorf("creating the sandbox: %w", err)
	}
	uid, gid, err := SandboxOwner(name)
	if err != nil || uid < 0 {
		return err
	}
	if err := os.Chown(sandbox, uid, gid); err != nil {
		return fmt.Errorf("giving the sandbox to user %q: %w", name, err)
	}
	return nil
}

// mkdirAll is os.MkdirAll for a path that is usually new under a parent
// that mostly exists, as a sandbox is: it makes each directory first and
// looks only when that fails, where os.MkdirAll stats every level it then
// makes, about twice the system calls per sandbox.
func mkdirAll(path string, perm os.FileMode) error {
	err := os.Mkdir(path, perm)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(path)
		if parent == path {
			return err
		}
		if err := mkdirAll(parent, perm); err != nil {
			return err
		}
		if err = os.Mkdir(path, perm); err == nil {
			return nil
		}
	}
	if errors.Is(err, fs.ErrExist) {
		fi, serr := os.Stat(path)
		if serr == nil && fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: path, Err: syscall.ENOTDIR}
	}
	return err
}

// SandboxOwner is the uid and gid of user name, who owns the sandboxes of
// its tasks; -1, -1 when the process does not run as root or name is ""
// (the process's own user keeps them).
func SandboxOwner(name string) (uid, gid int, err error) {
	if name == "" || os.Geteuid() != 0 {
		return -1, -1, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return -1, -1, fmt.Errorf("user %q of the sandbox: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return -1, -1, fmt.Errorf("user %q has a non-numeric uid or gid", name)
	}
	return uid, gid, nil
}

// fileOwner is the user the sandbox belongs to; uid is -1 when the
// fetching process keeps what it fetches (it does not run as root, or the
// task runs as its user).
type fileOwner struct {
	uid, gid int
	groups   []int
}

func lookupOwner(name string) (fileOwner, error) {
	uid, gid, err := SandboxOwner(name)
	if err != nil || uid < 0 {
		return fileOwner{uid: -1, gid: -1}, err
	}
	o := fileOwner{uid: uid, gid: gid, groups: []int{gid}}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if n, err := strconv.Atoi(id); err == nil {
					o.groups = append(o.groups, n)
				}
			}
		}
	}
	return o, nil
}

func (o fileOwner) inGroup(gid int) bool { return slices.Contains(o.groups, gid) }

// fetchAll fetches uris into sandbox, in order, stopping at the first
// failure, and gives the sandbox's content to its owner.
func (f *Fetcher) fetchAll(ctx context.Context, sandbox string, uris []mesospb.CommandInfo_URI, owner fileOwner) (err error) {
	root, err := os.OpenRoot(sandbox)
	if err != nil {
		return fmt.Errorf("opening the sandbox: %w", err)
	}
	defer root.Close()
	logf := func(string, ...any) {}
	if w, err := root.OpenFile("stderr", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
		defer w.Close()
		logf = func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	}
	defer func() {
		if owner.uid >= 0 {
			if cerr := chownTree(sandbox, owner.uid, owner.gid); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	for i := range uris {
		u := &uris[i]
		shown := redactURI(strings.TrimSpace(u.Value))
		logf("Fetching URI '%s'", shown)
		dest, err := f.fetchOne(ctx, root, u, owner, logf)
		if err != nil {
			logf("Failed to fetch '%s': %v", shown, err)
			return fmt.Errorf("fetching '%s': %w", shown, err)
		}
		logf("Fetched '%s' to '%s'", shown, filepath.Join(sandbox, dest))
	}
	return nil
}

// fetchOne fetches one URI into the sandbox and returns the path, in the
// sandbox, of what it saved.
func (f *Fetcher) fetchOne(ctx context.Context, root *os.Root, u *mesospb.CommandInfo_URI, owner fileOwner, logf func(string, ...any)) (string, error) {
	value := strings.TrimSpace(u.Value)
	src, err := parseFetchURI(value)
	if err != nil {
		return "", err
	}
	name := src.base
	if u.OutputFile != nil {
		name = u.GetOutputFile()
	}
	name, err = sandboxName(name)
	if err != nil {
		return "", err
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("creating the directory of %q: %w", name, err)
		}
	}
	if src.local != "" {
		err = f.copyLocal(ctx, root, src.local, name, owner)
	} else {
		err = f.download(ctx, root, src.url, name)
	}
	if err != nil {
		return "", err
	}
	switch {
	case u.GetExecutable():
		if err := root.Chmod(name, 0o755); err != nil {
			return "", fmt.Errorf("making %q executable: %w", name, err)
		}
	case u.GetExtract():
		if err := f.extract(ctx, root, name, logf); err != nil {
			return "", err
		}
	}
	return name, nil
}

// fetchSource is a parsed URI: a local path to copy or a URL to download.
type fetchSource struct {
	local string
	url   *url.URL
	base  string // the default output file name
}

func parseFetchURI(value string) (fetchSource, error) {
	if value == "" {
		return fetchSource{}, fmt.Errorf("%w: empty URI", ErrUnsupported)
	}
	if strings.ContainsRune(value, 0) {
		return fetchSource{}, fmt.Errorf("%w: NUL in URI", ErrUnsupported)
	}
	if strings.HasPrefix(value, "/") {
		return fetchSource{local: filepath.Clean(value), base: filepath.Base(value)}, nil
	}
	pu, err := url.Parse(value)
	if err != nil {
		return fetchSource{}, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	switch strings.ToLower(pu.Scheme) {
	case "file":
		if pu.Host != "" && pu.Host != "localhost" {
			return fetchSource{}, fmt.Errorf("%w: file URI %q names host %q; only local files are fetched", ErrUnsupported, value, pu.Host)
		}
		if !strings.HasPrefix(pu.Path, "/") {
			return fetchSource{}, fmt.Errorf("%w: file URI %q needs an absolute path", ErrUnsupported, value)
		}
		return fetchSource{local: filepath.Clean(pu.Path), base: path.Base(pu.Path)}, nil
	case "http", "https":
		if pu.Host == "" {
			return fetchSource{}, fmt.Errorf("%w: URI %q has no host", ErrUnsupported, pu.Redacted())
		}
		return fetchSource{url: pu, base: path.Base(pu.Path)}, nil
	case "":
		return fetchSource{}, fmt.Errorf("%w: %q is a relative path; give an absolute path or a URI", ErrUnsupported, value)
	default:
		return fetchSource{}, fmt.Errorf("%w: scheme %q is not supported: Apron fetches http, https, file and absolute paths, "+
			"and has no Hadoop client (Mesos's way to other schemes)", ErrUnsupported, pu.Scheme)
	}
}

// sandboxName checks a name in the sandbox: relative and staying in it.
func sandboxName(name string) (string, error) {
	clean := filepath.Clean(name)
	switch {
	case name == "" || clean == "." || clean == "/" || strings.HasSuffix(name, "/"):
		return "", fmt.Errorf("%w: cannot name a file after %q; set output_file", ErrBadOutput, name)
	case filepath.IsAbs(name):
		return "", fmt.Errorf("%w: %q must be relative to the sandbox", ErrBadOutput, name)
	case !filepath.IsLocal(clean) || strings.ContainsRune(name, 0):
		return "", fmt.Errorf("%w: %q leaves the sandbox", ErrBadOutput, name)
	}
	return clean, nil
}

// redactURI hides a URI's password in logs and messages.
func redactURI(value string) string {
	if u, err := url.Parse(value); err == nil && u.User != nil {
		return u.Redacted()
	}
	return value
}

// create makes name anew in the sandbox: an existing file (or a link an
// archive left) is removed first, so nothing is written through it.
func create(root *os.Root, name string, perm fs.FileMode) (*os.File, error) {
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

// copyLocal copies a local file: a copy, not a link, so the task may
// change it and the source may go. The sandbox's owner must be able to
// read it.
func (f *Fetcher) copyLocal(ctx context.Context, root *os.Root, src, name string, owner fileOwner) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	if err := checkReadable(in, src, owner); err != nil {
		return err
	}
	if f.MaxSize > 0 && st.Size() > f.MaxSize {
		return fmt.Errorf("%s: %d bytes: %w (%d bytes)", src, st.Size(), ErrTooLarge, f.MaxSize)
	}
	return f.save(ctx, root, name, st.Mode().Perm(), in)
}

// download GETs a URL into the sandbox.
func (f *Fetcher) download(ctx context.Context, root *os.Root, u *url.URL, name string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return fmt.Errorf("downloading: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s", ErrHTTP, resp.Status)
	}
	if f.MaxSize > 0 && resp.ContentLength > f.MaxSize {
		return fmt.Errorf("%d bytes: %w (%d bytes)", resp.ContentLength, ErrTooLarge, f.MaxSize)
	}
	// The stall timer is reset by every read that brings data; when it
	// fires the request's context ends, which ends the read.
	var body io.Reader = resp.Body
	if f.StallTimeout > 0 {
		t := time.AfterFunc(f.StallTimeout, func() { cancel(ErrStalled) })
		defer t.Stop()
		body = readerFunc(func(p []byte) (int, error) {
			n, err := resp.Body.Read(p)
			if n > 0 {
				t.Reset(f.StallTimeout)
			}
			return n, err
		})
	}
	err = f.save(ctx, root, name, 0o644, body)
	if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) {
		return fmt.Errorf("%w: no data for %v", ErrStalled, f.StallTimeout)
	}
	return err
}

type readerFunc func([]byte) (int, error)

func (r readerFunc) Read(p []byte) (int, error) { return r(p) }

// save writes r to name in the sandbox, within the size limit.
func (f *Fetcher) save(ctx context.Context, root *os.Root, name string, perm fs.FileMode, r io.Reader) error {
	out, err := create(root, name, perm)
	if err != nil {
		return err
	}
	budget := f.budget()
	_, err = io.Copy(out, budget.reader(ctx, r))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// sizeBudget counts bytes against the size limit (none when max is 0).
type sizeBudget struct {
	max, used int64
}

func (f *Fetcher) budget() *sizeBudget { return &sizeBudget{max: f.MaxSize} }

// reader reads r within the budget, ending with ctx.
func (b *sizeBudget) reader(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if b.max > 0 && int64(len(p)) > b.max-b.used+1 {
			p = p[:b.max-b.used+1]
		}
		n, err := r.Read(p)
		b.used += int64(n)
		if b.max > 0 && b.used > b.max {
			return n, fmt.Errorf("%w (%d bytes)", ErrTooLarge, b.max)
		}
		return n, err
	})
}

// extract unpacks the archive name into the sandbox, keeping the archive,
// as Mesos does; a file that is no archive stays as it is.
func (f *Fetcher) extract(ctx context.Context, root *os.Root, name string, logf func(string, ...any)) error {
	var err error
	switch {
	case hasSuffix(name, ".tar"):
		err = f.untar(ctx, root, name, nil)
	case hasSuffix(name, ".tar.gz", ".tgz"):
		err = f.untar(ctx, root, name, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) })
	case hasSuffix(name, ".tar.bz2", ".tbz2"):
		err = f.untar(ctx, root, name, func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil })
	case hasSuffix(name, ".tar.xz", ".txz"):
		logf("WARNING: not extracting '%s': xz archives are not supported (Go's standard library has no xz decoder); it is left as fetched", name)
		return nil
	case hasSuffix(name, ".zip"):
		err = f.unzip(ctx, root, name)
	case hasSuffix(name, ".gz"):
		err = f.gunzip(ctx, root, name)
	default:
		logf("WARNING: copying instead of extracting '%s' with the 'extract' flag: it does not seem to be an archive", name)
		return nil
	}
	if err == nil {
		err = checkLinks(root)
	}
	if err != nil {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	logf("Extracted '%s' into the sandbox", name)
	return nil
}

// checkLinks checks, once an archive is unpacked, that no link in the
// sandbox leads out of it. Each link's target was checked as the link was
// made, but a later entry can change where an earlier link leads: a link
// put where its target's path had a directory still to come ("out" to
// "d/../x", then "d" to ".") climbs out. The os.Root resolves each link
// as the kernel would and refuses a way out; a link to what does not
// exist (yet) is the task's business.
func checkLinks(root *os.Root) error {
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		if _, err := root.Stat(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: link %q leads out of the sandbox: %v", ErrUnsafe, p, err)
		}
		return nil
	})
}

func hasSuffix(name string, suffixes ...string) bool {
	for _, s := range suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// gunzip decompresses a lone .gz file into the sandbox's top directory,
// under its base name without .gz, as Mesos's fetcher does.
func (f *Fetcher) gunzip(ctx context.Context, root *os.Root, name string) error {
	in, err := root.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return err
	}
	out := strings.TrimSuffix(filepath.Base(name), ".gz")
	if out == "" || out == "." || out == ".." {
		return fmt.Errorf("%w: no name for the content of %q", ErrUnsafe, name)
	}
	return f.save(ctx, root, out, 0o644, zr)
}

// entryName checks an archive entry's name: relative, no "..". It returns
// "" for the archive's root directory itself.
func entryName(name string) (string, error) {
	clean := filepath.Clean(strings.TrimPrefix(name, "./"))
	switch {
	case clean == ".":
		return "", nil
	case filepath.IsAbs(name) || strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: entry %q has an absolute path", ErrUnsafe, name)
	case !filepath.IsLocal(clean) || strings.ContainsRune(name, 0):
		return "", fmt.Errorf("%w: entry %q leaves the sandbox", ErrUnsafe, name)
	}
	for _, part := range strings.Split(filepath.ToSlash(name), "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %q contains \"..\"", ErrUnsafe, name)
		}
	}
	return clean, nil
}

// linkTarget checks the target of a link entry: relative and, taken from
// the link's directory, inside the sandbox. A ".." after a link already in
// the sandbox is refused too: where it leads depends on that link, not on
// the names.
func linkTarget(root *os.Root, name, target string) error {
	switch {
	case target == "" || strings.ContainsRune(target, 0):
		return fmt.Errorf("%w: link %q has an empty target", ErrUnsafe, name)
	case filepath.IsAbs(target):
		return fmt.Errorf("%w: link %q points to absolute path %q", ErrUnsafe, name, target)
	}
	var stack []string
	for _, part := range strings.Split(filepath.ToSlash(filepath.Dir(name))+"/"+filepath.ToSlash(target), "/") {
		switch part {
		case "", ".":
		case "..":
			if len(stack) == 0 {
				return fmt.Errorf("%w: link %q points to %q, outside the sandbox", ErrUnsafe, name, target)
			}
			if st, err := root.Lstat(filepath.Join(stack...)); err == nil && st.Mode()&fs.ModeSymlink != 0 {
				return fmt.Errorf("%w: link %q points to %q, through link %q", ErrUnsafe, name, target, filepath.Join(stack...))
			}
			stack = stack[:len(stack)-1]
		default:
			stack = append(stack, part)
		}
	}
	return nil
}

// untar unpacks a tar archive, decompressed by decomp when not nil.
func (f *Fetcher) untar(ctx context.Context, root *os.Root, name string, decomp func(io.Reader) (io.Reader, error)) error {
	in, err := root.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	var r io.Reader = in
	if decomp != nil {
		if r, err = decomp(in); err != nil {
			return err
		}
	}
	budget := f.budget()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		entry, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if entry == "" {
			continue
		}
		mode := hdr.FileInfo().Mode().Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = mkdirEntry(root, entry, mode)
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
			err = writeEntry(ctx, root, entry, mode, budget, tr)
		case tar.TypeSymlink:
			if err = linkTarget(root, entry, hdr.Linkname); err == nil {
				err = symlinkEntry(root, entry, hdr.Linkname)
			}
		case tar.TypeLink:
			var target string
			if target, err = entryName(hdr.Linkname); err == nil {
				if target == "" {
					err = fmt.Errorf("%w: hard link %q to the sandbox itself", ErrUnsafe, hdr.Name)
				} else if err = parentDir(root, entry); err == nil {
					_ = root.Remove(entry)
					err = root.Link(target, entry)
				}
			}
		default:
			// Devices, FIFOs and the like have no place in a sandbox.
			continue
		}
		if err != nil {
			return err
		}
	}
}

// unzip unpacks a zip archive.
func (f *Fetcher) unzip(ctx context.Context, root *os.Root, name string) error {
	in, err := root.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(in, st.Size())
	if err != nil {
		return err
	}
	budget := f.budget()
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		entry, err := entryName(zf.Name)
		if err != nil {
			return err
		}
		if entry == "" {
			continue
		}
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			err = mkdirEntry(root, entry, mode.Perm())
		case mode&fs.ModeSymlink != 0:
			err = zipSymlink(root, zf, entry)
		case mode.IsRegular():
			err = func() error {
				rc, err := zf.Open()
				if err != nil {
					return err
				}
				defer rc.Close()
				return writeEntry(ctx, root, entry, mode.Perm(), budget, rc)
			}()
		default:
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func zipSymlink(root *os.Root, zf *zip.File, entry string) error {
	rc, err := zf.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return err
	}
	target := string(b)
	if err := linkTarget(root, entry, target); err != nil {
		return err
	}
	return symlinkEntry(root, entry, target)
}

// parentDir makes the directories above an entry.
func parentDir(root *os.Root, entry string) error {
	if dir := filepath.Dir(entry); dir != "." {
		return root.MkdirAll(dir, 0o755)
	}
	return nil
}

func mkdirEntry(root *os.Root, entry string, mode fs.FileMode) error {
	// The owner keeps rwx, or the rest of the archive could not go in.
	if err := root.MkdirAll(entry, mode|0o700); err != nil {
		return err
	}
	return root.Chmod(entry, mode|0o700)
}

func writeEntry(ctx context.Context, root *os.Root, entry string, mode fs.FileMode, budget *sizeBudget, r io.Reader) error {
	if err := parentDir(root, entry); err != nil {
		return err
	}
	out, err := create(root, entry, mode|0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, budget.reader(ctx, r))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func symlinkEntry(root *os.Root, entry, target string) error {
	if err := parentDir(root, entry); err != nil {
		return err
	}
	if err := root.Remove(entry); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return root.Symlink(target, entry)
}

// chownTree gives the sandbox and everything in it to uid:gid, links
// themselves rather than what they point to. It runs before the task does,
// so nothing in the sandbox is the task's doing yet.
func chownTree(sandbox string, uid, gid int) error {
	return filepath.WalkDir(sandbox, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("giving %s to uid %d: %w", p, uid, err)
		}
		return nil
	})
}

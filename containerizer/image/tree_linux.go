package image

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tree writes below one directory and never outside it, whatever the
// names it is given and whatever is already in it.
//
// What it relies on: every path is resolved one component at a time from
// the root's file descriptor with openat(O_NOFOLLOW|O_DIRECTORY), after
// cleanName has refused absolute paths' ".." and kept only plain
// components. A component that is a symbolic link (or anything but a
// directory) fails to open, so nothing is ever created or written through
// a link, wherever it points; the last component is then created with an
// *at call relative to its parent's descriptor (O_EXCL|O_NOFOLLOW for
// files, after removing what was there: never writing into an existing
// file, which may be a hard link to something else). This is the
// guarantee of openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) without its
// kernel requirement (5.6), plus the creation of missing parents. The
// directories are the store's own staging and rootfs directories, which
// no other process writes, so nothing changes between the checks.
type tree struct {
	fd int // the root directory
}

func openTree(dir string) (*tree, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &tree{fd: fd}, nil
}

func (t *tree) Close() error { return unix.Close(t.fd) }

// cleanName turns a tar entry name into a relative path of plain
// components ("." for the root). A leading "/" is dropped (tools write
// such names; they mean the layer's root, as for docker); a ".."
// component is refused rather than resolved.
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: unsafe entry name %q", ErrCorrupt, name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: unsafe entry %q: \"..\" component", ErrCorrupt, name)
		}
	}
	clean := path.Clean("/" + name)
	if clean == "/" {
		return ".", nil
	}
	return clean[1:], nil
}

// openDir opens the directory rel, creating the missing ones (0755) when
// create is set. It fails when a component is not a directory.
func (t *tree) openDir(rel string, create bool) (int, error) {
	fd, err := unix.Dup(t.fd)
	if err != nil {
		return -1, err
	}
	if rel == "." {
		return fd, nil
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return -1, fmt.Errorf("%w: %q: a component of the path is a link or not a directory", ErrCorrupt, rel)
			}
			return -1, &os.PathError{Op: "openat", Path: rel, Err: err}
		}
		fd = next
	}
	return fd, nil
}

// parent opens the parent directory of rel and returns it with rel's last
// component.
func (t *tree) parent(rel string, create bool) (int, string, error) {
	fd, err := t.openDir(path.Dir(rel), create)
	return fd, path.Base(rel), err
}

// lstatAt stats name in dir without following a link; ok is false when
// nothing is there.
func lstatAt(dir int, name string) (st unix.Stat_t, ok bool, err error) {
	err = unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	return st, err == nil, err
}

// removeAt removes name in dir, a directory with all it holds, never
// following a link.
func removeAt(dir int, name string) error {
	st, ok, err := lstatAt(dir, name)
	if err != nil || !ok {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dir, name, 0)
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_ = unix.Fchmod(fd, 0o700) // a non-root store may have unpacked it read-only
	if err := clearDir(fd); err != nil {
		unix.Close(fd)
		return err
	}
	unix.Close(fd)
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// clearDir removes everything in the directory fd (which stays open).
func clearDir(fd int) error {
	dup, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// replace makes room for a new entry name in dir: whatever is there goes,
// except a directory when keepDir is set. It reports whether a directory
// was kept.
func replace(dir int, name string, keepDir bool) (bool, error) {
	st, ok, err := lstatAt(dir, name)
	if err != nil || !ok {
		return false, err
	}
	if keepDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return true, nil
	}
	return false, removeAt(dir, name)
}

// futimens sets the times of the file fd refers to (utimensat with a NULL
// path, which x/sys does not offer).
func futimens(fd int, ts []unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

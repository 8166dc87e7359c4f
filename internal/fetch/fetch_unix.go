//go:build unix

package fetch

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkReadable refuses a local file the sandbox's owner could not read
// itself: Mesos runs its fetcher as the task's user, while Apron's runs in
// the agent (or the default executor, in the agent's process), as root,
// and must not hand a task a file (say /etc/shadow) through a file:// URI
// that the task's user cannot open. The check is by mode bits (ACLs and
// capabilities aside, so it errs on the side of refusing): search on
// every directory of the path, read on the file.
// in is the file already open; it must be the file the path leads to
// now, so that a link swapped in meanwhile is caught.
func checkReadable(in *os.File, src string, o fileOwner) error {
	if o.uid <= 0 {
		return nil
	}
	resolved, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	st, err := in.Stat()
	if err != nil {
		return err
	}
	again, err := os.Stat(resolved)
	if err != nil {
		return err
	}
	if !os.SameFile(st, again) {
		return fmt.Errorf("%s changed while it was fetched", src)
	}
	if !o.may(st, 4) {
		return fmt.Errorf("%s: %w: user %d may not read it", src, fs.ErrPermission, o.uid)
	}
	for dir := filepath.Dir(resolved); ; dir = filepath.Dir(dir) {
		dst, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if !o.may(dst, 1) {
			return fmt.Errorf("%s: %w: user %d may not enter %s", src, fs.ErrPermission, o.uid, dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// may reports whether the owner has the permission bits want (4 read,
// 1 search) on a file.
func (o fileOwner) may(st fs.FileInfo, want fs.FileMode) bool {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	mode := st.Mode().Perm()
	switch {
	case int(s.Uid) == o.uid:
		return (mode>>6)&want == want
	case o.inGroup(int(s.Gid)):
		return (mode>>3)&want == want
	default:
		return mode&want == want
	}
}

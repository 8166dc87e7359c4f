package containerizer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// duMaxDepth bounds how deep a measure descends: each level holds one
// open directory, and a sandbox nested deeper is unusual enough that
// what lies below is left out (the measure is then incomplete).
const duMaxDepth = 256

// errDuIncomplete: the measure stopped at its entry or depth bound; the
// bytes counted so far are a lower bound.
var errDuIncomplete = errors.New("disk usage measure incomplete")

// du measures the disk a directory tree uses as `du -s` does: the blocks
// allocated to every file, directory and link (st_blocks × 512), each
// inode once however many hard links name it, symbolic links not
// followed, and the relative paths in excludes (persistent volumes)
// left out. It opens every directory relative to its parent with
// O_NOFOLLOW, so a task swapping a directory for a link while it runs
// cannot send the walk elsewhere. It stops after maxEntries entries or
// duMaxDepth levels with errDuIncomplete and what it counted so far.
func du(root string, excludes map[string]bool, maxEntries int) (uint64, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: root, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return 0, &os.PathError{Op: "stat", Path: root, Err: err}
	}
	w := &duWalk{excludes: excludes, max: maxEntries, seen: make(map[[2]uint64]bool)}
	w.add(&st)
	err = w.dir(fd, ".", 1)
	return w.total, err
}

type duWalk struct {
	excludes map[string]bool
	max      int
	entries  int
	total    uint64
	seen     map[[2]uint64]bool // (dev, ino) of inodes with several links
}

func (w *duWalk) add(st *unix.Stat_t) {
	if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		k := [2]uint64{uint64(st.Dev), st.Ino}
		if w.seen[k] {
			return
		}
		w.seen[k] = true
	}
	w.total += uint64(st.Blocks) * 512
}

// dir counts what the directory open as fd (which it closes) holds.
func (w *duWalk) dir(fd int, rel string, depth int) error {
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	for {
		names, err := f.Readdirnames(256)
		for _, name := range names {
			r := path.Join(rel, name)
			if w.excludes[r] {
				continue
			}
			if w.entries++; w.entries > w.max {
				return fmt.Errorf("more than %d entries: %w", w.max, errDuIncomplete)
			}
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				continue // removed meanwhile, or unreadable: as du, count the rest
			}
			w.add(&st)
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
			if depth >= duMaxDepth {
				return fmt.Errorf("deeper than %d directories at %q: %w", duMaxDepth, r, errDuIncomplete)
			}
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // replaced by a link or removed meanwhile, or unreadable
			}
			if err := w.dir(cfd, r, depth+1); err != nil {
				return err
			}
		}
		if err == io.EOF || (err == nil && len(names) == 0) {
			return nil
		}
		if err != nil {
			return nil // a directory removed while read: count the rest
		}
	}
}

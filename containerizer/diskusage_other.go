//go:build !linux

package containerizer

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
)

var errDuIncomplete = errors.New("disk usage measure incomplete")

// du sums the apparent sizes of the files under root (without Linux's
// block counts and inode numbers), links not followed, excludes left out.
func du(root string, excludes map[string]bool, maxEntries int) (uint64, error) {
	var total uint64
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if rel, _ := filepath.Rel(root, p); excludes[filepath.ToSlash(rel)] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if n++; n > maxEntries {
			return fmt.Errorf("more than %d entries: %w", maxEntries, errDuIncomplete)
		}
		if fi, err := d.Info(); err == nil {
			total += uint64(max(fi.Size(), 0))
		}
		return nil
	})
	return total, err
}

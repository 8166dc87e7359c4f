package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSymlinks bounds the symbolic links one resolution follows (Linux's
// own limit is 40 per lookup; images do not nest deeper).
const maxSymlinks = 255

// secureJoin returns the host path of the in-container path unsafe under
// root, following symbolic links as the container would see them: an
// absolute link target starts again at root, and ".." never climbs above
// it. Components that do not exist are joined as they are. This is the
// logic of github.com/cyphar/filepath-securejoin, which runc uses; the
// result is only as good as the tree staying unchanged until it is used,
// which is why the init rechecks the opened mount point.
func secureJoin(root, unsafe string) (string, error) {
	root = filepath.Clean(root)
	current := "/"
	links := 0
	for unsafe != "" {
		var part string
		if i := strings.IndexByte(unsafe, '/'); i >= 0 {
			part, unsafe = unsafe[:i], unsafe[i+1:]
		} else {
			part, unsafe = unsafe, ""
		}
		switch part {
		case "", ".":
			continue
		case "..":
			current = path.Dir(current)
			continue
		}
		next := path.Join(current, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
				current = next
				continue
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			current = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("resolving %q beneath %s: too many levels of symbolic links", next, root)
		}
		dest, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(dest) {
			current = "/"
		}
		unsafe = dest + "/" + unsafe
	}
	return filepath.Join(root, current), nil
}

// within reports whether the clean absolute path p is root or beneath it.
func within(root, p string) bool {
	root = filepath.Clean(root)
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

//go:build !unix

package files

import (
	"io/fs"
	"time"
)

// infoOf describes fi under the name p; without stat data there is no
// owner, and one link.
func infoOf(p string, fi fs.FileInfo, _ *ownerNames) Info {
	return Info{Path: p, Size: fi.Size(), Mtime: fi.ModTime().Truncate(time.Second), Mode: portableMode(fi.Mode()), Nlink: 1}
}

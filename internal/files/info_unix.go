//go:build unix

package files

import (
	"io/fs"
	"syscall"
	"time"
)

// infoOf describes fi under the name p, from its stat data.
func infoOf(p string, fi fs.FileInfo, names *ownerNames) Info {
	i := Info{Path: p, Size: fi.Size(), Mtime: fi.ModTime().Truncate(time.Second), Mode: portableMode(fi.Mode()), Nlink: 1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		i.Mode = uint32(st.Mode)
		i.Nlink = int64(st.Nlink)
		i.UID = names.user(st.Uid)
		i.GID = names.group(st.Gid)
	}
	return i
}

package containerizer

import (
	"fmt"
	"os"
	"path/filepath"
)

// LinkVolumes makes each volume's container path in the sandbox a symbolic
// link to its host path, as Mesos's posix filesystem isolator does for
// containers without a mount namespace. A link already there to the same
// host path (the container of an earlier task of the same executor) is
// kept; anything else there is an error. uid and gid, when not -1, get the
// volume's root directory, so that a task running as that user can write
// in it.
//
// The sandbox belongs to the task's user, who may have put links in it,
// and the caller may be root: the container path is resolved inside the
// sandbox only (an os.Root), so no link on the way, and no ".." or
// absolute container path, makes the link land outside it.
//
// The process containerizer calls it as it launches a container; an agent
// calls it for the volumes of a task it hands to an executor already
// running, whose container was launched without them.
func LinkVolumes(sandbox string, volumes []Volume, uid, gid int) error {
	if len(volumes) == 0 {
		return nil
	}
	root, err := os.OpenRoot(sandbox)
	if err != nil {
		return fmt.Errorf("opening the sandbox: %w", err)
	}
	defer root.Close()
	for _, v := range volumes {
		link := filepath.Clean(v.ContainerPath)
		if dir := filepath.Dir(link); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("volume at %q: %w", v.ContainerPath, err)
			}
		}
		if uid >= 0 {
			if err := os.Chown(v.HostPath, uid, gid); err != nil {
				return fmt.Errorf("volume at %q: giving %s to the container's user: %w", v.ContainerPath, v.HostPath, err)
			}
		}
		if target, err := root.Readlink(link); err == nil && target == v.HostPath {
			continue
		}
		if err := root.Symlink(v.HostPath, link); err != nil {
			return fmt.Errorf("volume at %q: %w", v.ContainerPath, err)
		}
	}
	return nil
}

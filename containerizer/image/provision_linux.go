package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// overlaySupported reports whether the kernel has overlayfs.
func overlaySupported() bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "overlay" {
			return true
		}
	}
	return false
}

// mountOverlay mounts dir/rootfs as an overlay of layers (lowest first)
// with dir/upper and dir/work. When the lower directories do not fit in
// the mount data (a page) or have characters overlayfs's option syntax
// uses, it names them by short symbolic links in dir/lower, as Mesos's
// overlay backend does.
func mountOverlay(dir string, layers []string) error {
	for _, d := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	lower := make([]string, len(layers))
	for i, l := range layers {
		lower[len(layers)-1-i] = l // overlayfs lists the top first
	}
	data := func() string {
		return "lowerdir=" + strings.Join(lower, ":") +
			",upperdir=" + filepath.Join(dir, "upper") +
			",workdir=" + filepath.Join(dir, "work")
	}
	if len(data()) >= os.Getpagesize()-1 || strings.ContainsAny(strings.Join(layers, ""), ":,\\") {
		ldir := filepath.Join(dir, "lower")
		if err := os.MkdirAll(ldir, 0o755); err != nil {
			return err
		}
		for i := range lower {
			link := filepath.Join(ldir, strconv.Itoa(i))
			if err := os.Symlink(lower[i], link); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			lower[i] = link
		}
	}
	if len(data()) >= os.Getpagesize()-1 {
		return fmt.Errorf("%w: %d layers are too many for an overlay mount", ErrUnsupported, len(layers))
	}
	if err := unix.Mount("overlay", filepath.Join(dir, "rootfs"), "overlay", 0, data()); err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	return nil
}

// unmount detaches the mount at dir; not being mounted is not an error.
func unmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// copyLayers copies the layers, lowest first, into rootfs (as Mesos's copy
// backend), applying each layer's whiteouts and opaque directories to what
// the layers below put there. Writes go through a tree, so a link a lower
// layer left cannot lead a higher layer's files elsewhere.
func copyLayers(ctx context.Context, rootfs string, layers []string, root bool) error {
	t, err := openTree(rootfs)
	if err != nil {
		return err
	}
	defer t.Close()
	c := &copier{t: t, root: root, buf: make([]byte, 128<<10)}
	for _, l := range layers {
		c.links = map[[2]uint64]string{}
		if err := c.dir(ctx, l, "."); err != nil {
			return fmt.Errorf("layer %s: %w", l, err)
		}
	}
	return nil
}

type copier struct {
	t     *tree
	root  bool
	buf   []byte
	links map[[2]uint64]string // (dev, inode) → path copied, for hard links
}

func isOverlayWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(dir string) bool {
	var v [1]byte
	n, err := unix.Lgetxattr(dir, opaqueXattr, v[:])
	return err == nil && n == 1 && v[0] == 'y'
}

// dir copies the directory src of a layer onto rel in the rootfs.
func (c *copier) dir(ctx context.Context, src, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	dfd, err := c.t.openDir(rel, true)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	// Deletions first: they are about the layers below, not this one.
	opaque := rel != "." && isOpaque(src)
	for _, e := range ents {
		if e.Name() == whiteoutOpaque {
			opaque = true
		}
	}
	if opaque {
		if err := clearDir(dfd); err != nil {
			return err
		}
	}
	var keep []os.DirEntry
	for _, e := range ents {
		n := e.Name()
		if n == whiteoutOpaque {
			continue
		}
		if victim, ok := strings.CutPrefix(n, whiteoutPrefix); ok {
			if err := removeAt(dfd, victim); err != nil {
				return err
			}
			continue
		}
		if e.Type()&os.ModeCharDevice != 0 {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(src, n), &st); err != nil {
				return err
			}
			if isOverlayWhiteout(&st) {
				if err := removeAt(dfd, n); err != nil {
					return err
				}
				continue
			}
		}
		keep = append(keep, e)
	}
	for _, e := range keep {
		if err := c.entry(ctx, dfd, filepath.Join(src, e.Name()), rel, e.Name()); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) entry(ctx context.Context, dfd int, src, rel, name string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	crel := filepath.Join(rel, name)
	mode := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		kept, err := replace(dfd, name, true)
		if err != nil {
			return err
		}
		if !kept {
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
				return err
			}
		}
		if err := c.dir(ctx, src, crel); err != nil {
			return err
		}
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if !c.root {
			// Later layers must still be able to write in it.
			mode |= 0o700
		}
		return c.attrs(fd, &st, mode)

	case unix.S_IFREG:
		if _, err := replace(dfd, name, false); err != nil {
			return err
		}
		key := [2]uint64{st.Dev, st.Ino}
		if prev, ok := c.links[key]; ok && st.Nlink > 1 {
			pfd, pbase, err := c.t.parent(prev, false)
			if err != nil {
				return err
			}
			defer unix.Close(pfd)
			return unix.Linkat(pfd, pbase, dfd, name, 0)
		}
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		out := os.NewFile(uintptr(fd), crel)
		defer out.Close()
		if _, err := out.ReadFrom(in); err != nil {
			return err
		}
		if capab, err := getxattr(src, "security.capability"); err == nil && len(capab) > 0 && c.root {
			if err := unix.Fsetxattr(fd, "security.capability", capab, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
				return err
			}
		}
		if st.Nlink > 1 {
			c.links[key] = crel
		}
		return c.attrs(fd, &st, mode)

	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if _, err := replace(dfd, name, false); err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return err
		}
		return c.linkAttrs(dfd, name, &st)

	default: // fifos and (allowed at unpack) devices
		if _, err := replace(dfd, name, false); err != nil {
			return err
		}
		if err := unix.Mknodat(dfd, name, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
		return c.linkAttrs(dfd, name, &st)
	}
}

func getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(buf[:n]), nil
}

func (c *copier) attrs(fd int, st *unix.Stat_t, mode uint32) error {
	if c.root {
		if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	return futimens(fd, []unix.Timespec{st.Atim, st.Mtim})
}

func (c *copier) linkAttrs(dfd int, name string, st *unix.Stat_t) error {
	if c.root {
		if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(dfd, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}

package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Whiteout formats of unpacked layers.
const (
	// whiteoutsOverlay is overlayfs's format: a deleted path is a character
	// device 0/0, an opaque directory has the xattr trusted.overlay.opaque
	// "y". Needs root; the layer can be an overlay lower directory as is.
	whiteoutsOverlay = "overlay"
	// whiteoutsAUFS keeps the OCI (AUFS) format: empty files ".wh.NAME" and
	// ".wh..wh..opq". Only the copy backend understands it.
	whiteoutsAUFS = "aufs"

	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// unpacker applies one layer tar to an empty directory.
type unpacker struct {
	whiteouts    string
	root         bool // chown entries to their owners
	allowDevices bool
	log          *slog.Logger
}

// dirAttrs are applied to directories once all entries are in, so that a
// read-only directory can still be filled, and its time is not changed by
// what is put in it.
type dirAttrs struct {
	name     string
	mode     uint32
	uid, gid int
	mtime    time.Time
}

// unpack extracts the tar from r into dir. Errors about the content wrap
// ErrCorrupt (or ErrTooLarge from r).
func (u *unpacker) unpack(ctx context.Context, dir string, r io.Reader) error {
	t, err := openTree(dir)
	if err != nil {
		return err
	}
	defer t.Close()
	tr := tar.NewReader(r)
	buf := make([]byte, 128<<10)
	var dirs []dirAttrs
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
				return err
			}
			return fmt.Errorf("%w: reading tar: %w", ErrCorrupt, err)
		}
		d, err := u.entry(t, tr, hdr, buf)
		if err != nil {
			if errors.Is(err, ErrTooLarge) || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
				return err
			}
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if d != nil {
			dirs = append(dirs, *d)
		}
	}
	// Deepest last in tar order usually; apply in reverse so a parent's
	// mode is set after its children are done.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := u.dirAttrs(t, dirs[i]); err != nil {
			return fmt.Errorf("directory %q: %w", dirs[i].name, err)
		}
	}
	return nil
}

func (u *unpacker) entry(t *tree, tr *tar.Reader, hdr *tar.Header, buf []byte) (*dirAttrs, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return nil, err
	}
	if name == "." {
		return nil, nil // the layer's root is the directory we were given
	}
	base := path.Base(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return nil, u.whiteout(t, name)
	}
	pfd, base, err := t.parent(name, true)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		kept, err := replace(pfd, base, true)
		if err != nil {
			return nil, err
		}
		if !kept {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return nil, err
			}
		}
		return &dirAttrs{name: name, mode: mode, uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime}, nil

	case tar.TypeReg:
		if _, err := replace(pfd, base, false); err != nil {
			return nil, err
		}
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), name)
		_, err = io.CopyBuffer(f, tr, buf)
		if err == nil {
			err = u.fileAttrs(fd, hdr, mode)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return nil, err

	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return nil, fmt.Errorf("%w: symbolic link %q has no target", ErrCorrupt, name)
		}
		if _, err := replace(pfd, base, false); err != nil {
			return nil, err
		}
		// The target is data: it is never followed here, and resolved
		// in the container's root when the container uses it.
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return nil, err
		}
		return nil, u.linkAttrs(pfd, base, hdr)

	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return nil, err
		}
		if target == name {
			return nil, nil
		}
		tfd, tbase, err := t.parent(target, false)
		if err != nil {
			return nil, fmt.Errorf("%w: hard link %q to %q: %w", ErrCorrupt, name, hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		st, ok, err := lstatAt(tfd, tbase)
		if err != nil {
			return nil, err
		}
		if !ok || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil, fmt.Errorf("%w: hard link %q to %q: no such file in the layer", ErrCorrupt, name, hdr.Linkname)
		}
		if _, err := replace(pfd, base, false); err != nil {
			return nil, err
		}
		// Flags 0: a link to a symbolic link is to the link itself.
		return nil, unix.Linkat(tfd, tbase, pfd, base, 0)

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			kind = unix.S_IFCHR
		case tar.TypeBlock:
			kind = unix.S_IFBLK
		}
		if kind != unix.S_IFIFO && !u.allowDevices {
			return nil, fmt.Errorf("%w: device node %q refused (the store does not allow devices)", ErrCorrupt, name)
		}
		if _, err := replace(pfd, base, false); err != nil {
			return nil, err
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, kind|mode, dev); err != nil {
			return nil, err
		}
		return nil, u.linkAttrs(pfd, base, hdr)

	case tar.TypeXGlobalHeader:
		return nil, nil

	default:
		return nil, fmt.Errorf("%w: entry %q has unsupported type %q", ErrCorrupt, name, hdr.Typeflag)
	}
}

// whiteout records the deletion of a path of the lower layers (".wh.NAME")
// or the opacity of a directory (".wh..wh..opq"), as the OCI image spec
// says, in the store's format.
func (u *unpacker) whiteout(t *tree, name string) error {
	pfd, base, err := t.parent(name, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if u.whiteouts == whiteoutsAUFS {
		if _, err := replace(pfd, base, false); err != nil {
			return err
		}
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	}
	if base == whiteoutOpaque {
		return unix.Fsetxattr(pfd, opaqueXattr, []byte("y"), 0)
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." || strings.HasPrefix(victim, whiteoutPrefix) {
		return fmt.Errorf("%w: bad whiteout %q", ErrCorrupt, name)
	}
	if _, err := replace(pfd, victim, false); err != nil {
		return err
	}
	return unix.Mknodat(pfd, victim, unix.S_IFCHR, 0)
}

// xattrAllowed: extended attributes from a layer that are kept. trusted.*
// would let a layer forge overlayfs's own (an opaque directory, a
// redirect), so they are dropped.
func xattrAllowed(name string) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability"
}

func (u *unpacker) fileAttrs(fd int, hdr *tar.Header, mode uint32) error {
	if u.root {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	for k, v := range hdr.PAXRecords {
		x, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !xattrAllowed(x) || (!u.root && !strings.HasPrefix(x, "user.")) {
			continue
		}
		if err := unix.Fsetxattr(fd, x, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("xattr %s: %w", x, err)
		}
	}
	// After chown, which clears set-user-ID bits.
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.AccessTime.IsZero() {
		ts[0] = ts[1]
	}
	return futimens(fd, ts)
}

func (u *unpacker) linkAttrs(pfd int, base string, hdr *tar.Header) error {
	if u.root {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	ts := unix.NsecToTimespec(hdr.ModTime.UnixNano())
	return unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

func (u *unpacker) dirAttrs(t *tree, d dirAttrs) error {
	fd, err := t.openDir(d.name, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if u.root {
		if err := unix.Fchown(fd, d.uid, d.gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, d.mode); err != nil {
		return err
	}
	ts := unix.NsecToTimespec(d.mtime.UnixNano())
	return futimens(fd, []unix.Timespec{ts, ts})
}

package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Rootfs backends.
const (
	// BackendOverlay mounts an overlayfs: the image's layers as lower
	// directories, the container's writes in an upper directory of its
	// own. Nothing is copied; needs root and the overlay filesystem.
	BackendOverlay = "overlay"
	// BackendCopy copies the layers, lowest first, into the container's
	// rootfs and applies their whiteouts: slower and bigger, but works
	// anywhere (as Mesos's copy backend).
	BackendCopy = "copy"
)

// rootfsRecord is a provisioned rootfs's file under rootfses/: with the
// image records, what the layers' reference counts are rebuilt from.
type rootfsRecord struct {
	ContainerDir string   `json:"containerDir"`
	Image        string   `json:"image"`
	Layers       []string `json:"layers"`
	Backend      string   `json:"backend"`
}

// Provision builds the root filesystem of a container from img in
// containerDir (created if missing): containerDir/rootfs is the rootfs;
// the overlay backend also uses containerDir/upper (the container's
// writes), containerDir/work and containerDir/lower. The layers are
// referenced until release (or [Store.Release] with the same directory,
// after an agent restart) unmounts and removes all that. A containerDir
// has at most one rootfs at a time.
func (s *Store) Provision(ctx context.Context, img *Image, containerDir string) (rootfs string, release func() error, err error) {
	dir, err := filepath.Abs(containerDir)
	if err != nil {
		return "", nil, err
	}
	rec := &rootfsRecord{ContainerDir: dir, Image: img.Name, Layers: append([]string(nil), img.LayerIDs...)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", nil, ErrClosed
	}
	if s.rootfses[dir] != nil {
		s.mu.Unlock()
		return "", nil, fmt.Errorf("image %s: provision %s: the directory has a rootfs already", img.Name, dir)
	}
	overlayOK := true
	for _, l := range img.LayerIDs {
		lr := s.layers[l]
		if lr == nil {
			s.mu.Unlock()
			return "", nil, fmt.Errorf("image %s: provision: %w: layer %s is not in the store", img.Name, ErrNotFound, l)
		}
		if lr.Whiteouts != whiteoutsOverlay {
			overlayOK = false
		}
	}
	rec.Backend = s.opts.Backend
	if rec.Backend == "" {
		rec.Backend = BackendCopy
		if overlayOK && s.root && overlaySupported() {
			rec.Backend = BackendOverlay
		}
	}
	if rec.Backend == BackendOverlay && !overlayOK {
		s.mu.Unlock()
		return "", nil, fmt.Errorf("image %s: provision: %w: layers were not unpacked for overlayfs (store not run as root)", img.Name, ErrUnsupported)
	}
	// The record goes first, so that a crash in the middle leaves
	// something for Release to clean.
	if err := s.writeJSON(filepath.Join(s.rootfsesDir(), recordName(dir)), rec); err != nil {
		s.mu.Unlock()
		return "", nil, fmt.Errorf("image %s: provision: %w", img.Name, err)
	}
	s.rootfses[dir] = rec
	s.mu.Unlock()

	release = func() error { return s.Release(dir) }
	rootfs = filepath.Join(dir, "rootfs")
	if err := s.build(ctx, rec, s.layerDirs(rec.Layers)); err != nil {
		if rerr := release(); rerr != nil {
			s.log.Warn("releasing failed rootfs", "dir", dir, "err", rerr)
		}
		return "", nil, fmt.Errorf("image %s: provision %s rootfs: %w", img.Name, rec.Backend, err)
	}
	s.log.Info("provisioned rootfs", "image", img.Name, "rootfs", rootfs, "backend", rec.Backend)
	return rootfs, release, nil
}

func (s *Store) layerDirs(ids []string) []string {
	var out []string
	for _, l := range ids {
		out = append(out, filepath.Join(s.layerDir(l), "rootfs"))
	}
	return out
}

// build makes the rootfs of rec.
func (s *Store) build(ctx context.Context, rec *rootfsRecord, layers []string) error {
	rootfs := filepath.Join(rec.ContainerDir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	if rec.Backend == BackendOverlay {
		return mountOverlay(rec.ContainerDir, layers)
	}
	return copyLayers(ctx, rootfs, layers, s.root)
}

// Release unmounts and removes the rootfs provisioned in containerDir and
// drops its references to the layers. Releasing a directory without a
// rootfs returns ErrNotFound.
func (s *Store) Release(containerDir string) error {
	dir, err := filepath.Abs(containerDir)
	if err != nil {
		return err
	}
	s.mu.Lock()
	rec := s.rootfses[dir]
	s.mu.Unlock()
	if rec == nil {
		return fmt.Errorf("rootfs %s: %w", dir, ErrNotFound)
	}
	if rec.Backend == BackendOverlay {
		if err := unmount(filepath.Join(dir, "rootfs")); err != nil {
			return fmt.Errorf("rootfs %s: unmount: %w", dir, err)
		}
	}
	for _, d := range []string{"rootfs", "upper", "work", "lower"} {
		if err := removeTree(filepath.Join(dir, d)); err != nil {
			return fmt.Errorf("rootfs %s: %w", dir, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.rootfsesDir(), recordName(dir))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rootfs %s: %w", dir, err)
	}
	delete(s.rootfses, dir)
	return nil
}

// Provisioned lists, sorted, the container directories that have a
// rootfs. After a restart the agent releases those of containers it no
// longer has.
func (s *Store) Provisioned() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for d := range s.rootfses {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

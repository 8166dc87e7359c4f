package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	imagespec "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// annotationRefName is the annotation naming an image in an OCI layout's
// index.
const annotationRefName = ocispec.AnnotationRefName

// Load stores the image at path, an OCI image layout (a directory, or a
// tar of one) or a `docker save` archive, under the name ref, and returns
// it. In an OCI layout with several images, the one annotated with ref's
// tag (org.opencontainers.image.ref.name) is taken, else the one for
// Options.Platform; in a docker archive, the one tagged ref, else the only
// one. As for Pull, the config and the layers are checked against their
// digests, and a stored name is returned without reading path again unless
// Force is given. LoadURI takes the archive from a URI.
func (s *Store) Load(ctx context.Context, path, ref string, opts ...PullOption) (*Image, error) {
	return s.get(ctx, ref, "load "+path, opts, func(ctx context.Context, r name.Reference) (v1.Image, func(), error) {
		return s.openLocal(ctx, path, r.Identifier())
	})
}

// openLocal opens the image in an OCI layout directory, an OCI layout tar
// or a docker archive.
func (s *Store) openLocal(ctx context.Context, path, tag string) (v1.Image, func(), error) {
	nothing := func() {}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nothing, err
	}
	if fi.IsDir() {
		img, err := s.openLayout(path, tag)
		return img, nothing, err
	}
	// A tar: docker save writes manifest.json (recent versions an OCI
	// layout as well); an OCI archive has only the layout.
	names, err := tarNames(path)
	if err != nil {
		return nil, nothing, err
	}
	if names["manifest.json"] {
		img, err := openDockerArchive(path, tag)
		return img, nothing, err
	}
	if !names[ocispec.ImageLayoutFile] {
		return nil, nothing, fmt.Errorf("%w: %s is neither an OCI layout nor a docker archive", ErrUnsupported, path)
	}
	tmp, err := os.MkdirTemp(s.tmpDir(), "layout-")
	if err != nil {
		return nil, nothing, err
	}
	cleanup := func() { _ = removeTree(tmp) }
	f, err := os.Open(path)
	if err != nil {
		cleanup()
		return nil, nothing, err
	}
	defer f.Close()
	u := &unpacker{whiteouts: whiteoutsAUFS, log: s.log}
	if err := u.unpack(ctx, tmp, f); err != nil {
		cleanup()
		return nil, nothing, err
	}
	img, err := s.openLayout(tmp, tag)
	if err != nil {
		cleanup()
		return nil, nothing, err
	}
	return img, cleanup, nil
}

func tarNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
		}
		if n, err := cleanName(hdr.Name); err == nil {
			names[n] = true
		}
	}
}

func (s *Store) openLayout(dir, tag string) (v1.Image, error) {
	var lay ocispec.ImageLayout
	if err := readJSON(filepath.Join(dir, ocispec.ImageLayoutFile), &lay); err != nil {
		return nil, fmt.Errorf("%w: OCI layout: %w", ErrCorrupt, err)
	}
	if lay.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("%w: OCI layout version %q", ErrUnsupported, lay.Version)
	}
	var idx ocispec.Index
	if err := readJSON(filepath.Join(dir, "index.json"), &idx); err != nil {
		return nil, fmt.Errorf("%w: OCI layout: %w", ErrCorrupt, err)
	}
	if idx.SchemaVersion != (imagespec.Versioned{SchemaVersion: 2}).SchemaVersion {
		return nil, fmt.Errorf("%w: OCI index schema version %d", ErrUnsupported, idx.SchemaVersion)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	// A named image when the index names them; otherwise by platform.
	named := false
	for _, d := range idx.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] == tag {
			named = true
		}
	}
	if named {
		return selectImage(ii, s.opts.Platform, tag)
	}
	return selectImage(ii, s.opts.Platform, "")
}

// dockerManifest is an entry of a docker archive's manifest.json.
type dockerManifest struct {
	RepoTags []string
}

func openDockerArchive(path, tag string) (v1.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var ms []dockerManifest
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: manifest.json: %v", ErrCorrupt, path, err)
		}
		if n, _ := cleanName(hdr.Name); n == "manifest.json" {
			if err := json.NewDecoder(tr).Decode(&ms); err != nil {
				return nil, fmt.Errorf("%w: %s: manifest.json: %w", ErrCorrupt, path, err)
			}
			break
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: %s has no image", ErrNotFound, path)
	}
	for _, m := range ms {
		for _, t := range m.RepoTags {
			tg, err := name.NewTag(t)
			if err != nil || (t != tag && tg.TagStr() != tag) {
				continue
			}
			return tarball.ImageFromPath(path, &tg)
		}
	}
	if len(ms) == 1 {
		return tarball.ImageFromPath(path, nil)
	}
	return nil, fmt.Errorf("%w: %s has %d images, none tagged %q", ErrNotFound, path, len(ms), tag)
}

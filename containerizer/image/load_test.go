package image

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readMarker(t *testing.T, img *Image) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(img.Layers[len(img.Layers)-1], "marker"))
	require.NoError(t, err)
	return string(b)
}

// tarDir writes the files under dir as a tar at path.
func tarDir(t *testing.T, dir, path string) {
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	require.NoError(t, tw.AddFS(os.DirFS(dir)))
	require.NoError(t, tw.Close())
}

func TestLoadOCILayout(t *testing.T) {
	one := imageOf(t, v1.Config{Cmd: []string{"/marker"}}, layerOf(t, reg("marker", "one")))
	two := imageOf(t, v1.Config{Cmd: []string{"/marker"}}, layerOf(t, reg("marker", "two")))
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	require.NoError(t, err)
	require.NoError(t, p.AppendImage(one, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "one"})))
	require.NoError(t, p.AppendImage(two, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "two"})))

	s := openStore(t, t.TempDir(), nil)
	img, err := s.Load(ctxT(t), dir, "local/app:two")
	require.NoError(t, err)
	assert.Equal(t, "two", readMarker(t, img))
	assert.Equal(t, "index.docker.io/local/app:two", img.Name)
	got, err := s.Get("local/app:two")
	require.NoError(t, err)
	assert.Equal(t, img, got)

	// The same layout as a tar.
	archive := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, dir, archive)
	img, err = s.Load(ctxT(t), archive, "local/app:one")
	require.NoError(t, err)
	assert.Equal(t, "one", readMarker(t, img))
	assert.Empty(t, listDir(t, s.tmpDir()))

	_, err = s.Load(ctxT(t), dir, "local/app:three")
	require.ErrorIs(t, err, ErrNotFound, "several images, none named three, none for the platform")

	// A layout whose blob was changed on disk.
	layers, err := one.Layers()
	require.NoError(t, err)
	d, err := layers[0].Digest()
	require.NoError(t, err)
	blob := filepath.Join(dir, "blobs", "sha256", d.Hex)
	require.NoError(t, os.Chmod(blob, 0o644))
	evil := layerOf(t, reg("marker", "evil"))
	rc, err := evil.Compressed()
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(blob, b, 0o644))
	s = openStore(t, t.TempDir(), nil)
	_, err = s.Load(ctxT(t), dir, "local/app:one")
	require.ErrorIs(t, err, ErrCorrupt)
	assertNothingLeft(t, s)
}

func TestLoadDockerArchive(t *testing.T) {
	img := imageOf(t, v1.Config{Cmd: []string{"/marker"}}, layerOf(t, dir("etc/")), layerOf(t, reg("marker", "saved")))
	tag, err := name.NewTag("example.com/saved:1")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "saved.tar")
	require.NoError(t, tarball.WriteToFile(path, tag, img))

	s := openStore(t, t.TempDir(), nil)
	got, err := s.Load(ctxT(t), path, "example.com/saved:1")
	require.NoError(t, err)
	assert.Equal(t, "saved", readMarker(t, got))
	assert.Equal(t, diffIDs(t, img), got.LayerIDs)

	_, err = s.Load(ctxT(t), filepath.Join(t.TempDir(), "missing.tar"), "x:1")
	require.ErrorIs(t, err, ErrNotFound)
	notTar := filepath.Join(t.TempDir(), "junk")
	require.NoError(t, os.WriteFile(notTar, []byte("junk"), 0o644))
	_, err = s.Load(ctxT(t), notTar, "x:1")
	require.Error(t, err)
}

package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// whiteoutImage has a lower layer with files and an upper layer deleting
// some of them and making a directory opaque.
func whiteoutImage(t testing.TB) v1.Image {
	lower := layerOf(t,
		dir("a/"), reg("a/keep", "keep"), reg("a/gone", "gone"),
		dir("d/"), reg("d/x", "x"), dir("d/sub/"), reg("d/sub/y", "y"),
		reg("top", "top"), dir("gonedir/"), reg("gonedir/f", "f"),
		symlink("link", "/a"))
	upper := layerOf(t,
		whiteout("a", "gone"), opaqueMarker("d"), reg("d/new", "new"),
		whiteout(".", "top"), whiteout(".", "gonedir"), reg("a/added", "added"),
		dir("link/"), reg("link/real", "real"))
	return imageOf(t, v1.Config{Cmd: []string{"/bin/sh"}}, busyboxLayer(t), lower, upper)
}

func assertWhiteoutsApplied(t *testing.T, rootfs string) {
	t.Helper()
	assert.Equal(t, []string{"added", "keep"}, listDir(t, filepath.Join(rootfs, "a")))
	assert.Equal(t, []string{"new"}, listDir(t, filepath.Join(rootfs, "d")))
	assert.NoFileExists(t, filepath.Join(rootfs, "top"))
	assert.NoDirExists(t, filepath.Join(rootfs, "gonedir"))
	fi, err := os.Lstat(filepath.Join(rootfs, "link"))
	require.NoError(t, err)
	assert.True(t, fi.IsDir(), "a directory of an upper layer replaces a link of a lower one")
	assert.Equal(t, []string{"real"}, listDir(t, filepath.Join(rootfs, "link")))
	assert.FileExists(t, filepath.Join(rootfs, "bin", "busybox"))
}

// runIn runs argv chrooted in rootfs and returns its output.
func runIn(t *testing.T, rootfs string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Path = argv[0]
	cmd.Env = []string{"PATH=/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func TestProvision(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlayfs, and chown of the layers' files")
	}
	for _, backend := range []string{BackendOverlay, BackendCopy} {
		t.Run(backend, func(t *testing.T) {
			if backend == BackendOverlay && !overlaySupported() {
				t.Skip("the kernel has no overlayfs (/proc/filesystems)")
			}
			r := newRegistry(t)
			r.push(t, "w:1", whiteoutImage(t))
			s := openStore(t, t.TempDir(), r, func(o *Options) { o.Backend = backend })
			img, err := s.Pull(ctxT(t), "w:1")
			require.NoError(t, err)

			c1, c2 := filepath.Join(t.TempDir(), "c1"), filepath.Join(t.TempDir(), "c2")
			root1, release1, err := s.Provision(ctxT(t), img, c1)
			require.NoError(t, err)
			root2, release2, err := s.Provision(ctxT(t), img, c2)
			require.NoError(t, err)
			assertWhiteoutsApplied(t, root1)
			assert.Equal(t, "keep", runIn(t, root1, "/bin/cat", "/a/keep"))

			// Containers write in their own rootfs, not in the layers.
			runIn(t, root1, "/bin/sh", "-c", "echo mine > /a/keep; rm /d/new")
			assert.Equal(t, "mine\n", runIn(t, root1, "/bin/cat", "/a/keep"))
			assert.Equal(t, "keep", runIn(t, root2, "/bin/cat", "/a/keep"))
			assert.FileExists(t, filepath.Join(root2, "d", "new"))
			if backend == BackendOverlay {
				assert.FileExists(t, filepath.Join(c1, "upper", "a", "keep"))
			}

			_, _, err = s.Provision(ctxT(t), img, c1)
			require.Error(t, err, "one rootfs per directory")
			assert.ElementsMatch(t, []string{c1, c2}, s.Provisioned())

			require.NoError(t, release1())
			assert.NoDirExists(t, root1)
			require.NoError(t, release2())
			require.ErrorIs(t, s.Release(c2), ErrNotFound)
			assert.Empty(t, s.Provisioned())
		})
	}
}

// TestCopyBackendReadsAUFSWhiteouts: layers unpacked by a store that is
// not root keep the OCI whiteout files; the copy backend applies them.
func TestCopyBackendReadsAUFSWhiteouts(t *testing.T) {
	img := whiteoutImage(t)
	layers, err := img.Layers()
	require.NoError(t, err)
	base := t.TempDir()
	var dirs []string
	u := &unpacker{whiteouts: whiteoutsAUFS, root: os.Geteuid() == 0}
	for i, l := range layers {
		d := filepath.Join(base, "layer", string(rune('0'+i)))
		require.NoError(t, os.MkdirAll(d, 0o755))
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		require.NoError(t, u.unpack(ctxT(t), d, rc))
		rc.Close()
		dirs = append(dirs, d)
	}
	assert.FileExists(t, filepath.Join(dirs[2], "a", ".wh.gone"))
	rootfs := filepath.Join(base, "rootfs")
	require.NoError(t, os.Mkdir(rootfs, 0o755))
	require.NoError(t, copyLayers(ctxT(t), rootfs, dirs, os.Geteuid() == 0))
	assertWhiteoutsApplied(t, rootfs)
	assert.NoFileExists(t, filepath.Join(rootfs, "a", ".wh.gone"))
}

func TestSharedLayersAndGC(t *testing.T) {
	r := newRegistry(t)
	a, b := markerImage(t, "a"), markerImage(t, "b")
	r.push(t, "a:1", a)
	r.push(t, "b:1", b)
	dir := t.TempDir()
	s := openStore(t, dir, r, func(o *Options) { o.Backend = BackendCopy })
	imgA, err := s.Pull(ctxT(t), "a:1")
	require.NoError(t, err)
	_, err = s.Pull(ctxT(t), "b:1")
	require.NoError(t, err)
	base, markA, markB := imgA.LayerIDs[0], imgA.LayerIDs[1], diffIDs(t, b)[1]
	assert.Equal(t, map[string]int{base: 2, markA: 1, markB: 1}, s.LayerRefs())

	// Two tasks on image a share its layers.
	root1, _, err := s.Provision(ctxT(t), imgA, filepath.Join(t.TempDir(), "t1"))
	require.NoError(t, err)
	_, _, err = s.Provision(ctxT(t), imgA, filepath.Join(t.TempDir(), "t2"))
	require.NoError(t, err)
	m, err := os.ReadFile(filepath.Join(root1, "marker"))
	require.NoError(t, err)
	assert.Equal(t, "a", string(m))
	assert.Equal(t, map[string]int{base: 4, markA: 3, markB: 1}, s.LayerRefs())

	removed, err := s.GC(ctxT(t))
	require.NoError(t, err)
	assert.Empty(t, removed, "every layer is used")

	require.NoError(t, s.Remove("a:1"))
	require.NoError(t, s.Remove("b:1"))
	require.ErrorIs(t, s.Remove("b:1"), ErrNotFound)
	removed, err = s.GC(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, []string{markB}, removed, "only b's own layer is unused")
	assert.ElementsMatch(t, []string{base, markA}, storedLayers(t, s))

	// An agent restart: the counts are rebuilt from the records on disk.
	s.Close()
	s = openStore(t, dir, r, func(o *Options) { o.Backend = BackendCopy })
	assert.Equal(t, map[string]int{base: 2, markA: 2}, s.LayerRefs())
	require.Len(t, s.Provisioned(), 2)

	for _, d := range s.Provisioned() {
		require.NoError(t, s.Release(d))
	}
	removed, err = s.GC(ctxT(t))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{base, markA}, removed)
	assert.Empty(t, storedLayers(t, s))
	assert.Empty(t, listDir(t, s.tmpDir()))

	// A pulled-again image gets its layers back.
	img, err := s.Pull(ctxT(t), "a:1")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(img.Layers[1], "marker"))
	require.NoError(t, err)
}

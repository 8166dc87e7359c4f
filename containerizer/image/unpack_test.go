package image

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// unpackCase unpacks the entries into base/layer with an "outside"
// directory next to it holding a victim file, and reports the error.
func unpackCase(t *testing.T, u *unpacker, entries ...entry) (layer, outside string, err error) {
	t.Helper()
	base := t.TempDir()
	layer, outside = filepath.Join(base, "layer"), filepath.Join(base, "outside")
	require.NoError(t, os.Mkdir(layer, 0o755))
	require.NoError(t, os.Mkdir(outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("original"), 0o644))
	err = u.unpack(ctxT(t), layer, bytes.NewReader(tarOf(t, entries...)))
	return layer, outside, err
}

// assertOutsideUntouched: the outside directory has only its victim, with
// its content.
func assertOutsideUntouched(t *testing.T, outside string) {
	t.Helper()
	assert.Equal(t, []string{"victim"}, listDir(t, outside))
	b, err := os.ReadFile(filepath.Join(outside, "victim"))
	require.NoError(t, err)
	assert.Equal(t, "original", string(b))
	assert.Equal(t, []string{"layer", "outside"}, listDir(t, filepath.Dir(outside)))
}

func TestUnpackMaliciousLayersWriteNothingOutside(t *testing.T) {
	u := &unpacker{whiteouts: whiteoutsAUFS, root: os.Geteuid() == 0}
	for _, c := range []struct {
		name    string
		entries []entry
		refused bool
	}{
		{"dot-dot file", []entry{reg("../outside/victim", "pwned")}, true},
		{"dot-dot inside a path", []entry{dir("a/"), reg("a/../../outside/new", "pwned")}, true},
		{"dot-dot directory", []entry{dir("../outside/d/")}, true},
		{"dot-dot whiteout", []entry{reg("../outside/.wh.victim", "")}, true},
		{"absolute file stays in the layer", []entry{reg("/outside/victim", "inside")}, false},
		{"absolute symlink then file through it", []entry{symlink("evil", "/"), reg("evil/outside/victim", "pwned")}, true},
		{"relative symlink escaping then file through it", []entry{symlink("evil", "../outside"), reg("evil/victim", "pwned")}, true},
		{"symlink escaping then directory through it", []entry{symlink("evil", "../outside"), dir("evil/sub/")}, true},
		{"symlink escaping then hard link through it", []entry{reg("f", "x"), symlink("evil", "../outside"), hardlink("evil/new", "f")}, true},
		{"hard link to a path outside", []entry{hardlink("h", "../outside/victim")}, true},
		{"hard link through a symlink", []entry{symlink("evil", "../outside"), hardlink("h", "evil/victim")}, true},
		{"absolute hard link target stays in the layer", []entry{hardlink("h", "/etc/passwd")}, true},
		{"symlink then a file of the same name", []entry{symlink("f", "../outside/victim"), reg("f", "replaced")}, false},
		{"hard link then a file of the same name", []entry{reg("mine", "mine"), hardlink("f", "mine"), reg("f", "replaced")}, false},
		{"symlink then a directory of the same name", []entry{symlink("d", "../outside"), dir("d/"), reg("d/victim", "inside")}, false},
		{"whiteout of a symlinked parent", []entry{symlink("evil", "../outside"), reg("evil/.wh.victim", "")}, true},
		{"device node", []entry{{name: "dev/sda", typ: tar.TypeBlock, major: 8}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			layer, outside, err := unpackCase(t, u, c.entries...)
			if c.refused {
				require.ErrorIs(t, err, ErrCorrupt)
			} else {
				require.NoError(t, err)
			}
			assertOutsideUntouched(t, outside)
			_ = layer
		})
	}

	// What the accepted cases made, inside the layer.
	layer, _, err := unpackCase(t, u, reg("mine", "mine"), hardlink("f", "mine"), reg("f", "replaced"))
	require.NoError(t, err)
	b, _ := os.ReadFile(filepath.Join(layer, "mine"))
	assert.Equal(t, "mine", string(b), "a file is not written through a hard link")
	layer, _, err = unpackCase(t, u, reg("/outside/victim", "inside"))
	require.NoError(t, err)
	b, _ = os.ReadFile(filepath.Join(layer, "outside", "victim"))
	assert.Equal(t, "inside", string(b))
	layer, _, err = unpackCase(t, u, symlink("d", "../outside"), dir("d/"), reg("d/victim", "inside"))
	require.NoError(t, err)
	fi, err := os.Lstat(filepath.Join(layer, "d"))
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
}

func TestUnpackKeepsLinksAndModes(t *testing.T) {
	u := &unpacker{whiteouts: whiteoutsAUFS, root: os.Geteuid() == 0}
	layer, outside, err := unpackCase(t, u,
		entry{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		reg("ro/file", "in a read-only directory"),
		entry{name: "bin/tool", body: "#!", mode: 0o4755},
		symlink("abs", "/outside/victim"),
		hardlink("bin/tool2", "bin/tool"),
		entry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
	)
	require.NoError(t, err)
	t.Cleanup(func() { _ = removeTree(layer) }) // ro/ is read-only
	assertOutsideUntouched(t, outside)
	fi, err := os.Stat(filepath.Join(layer, "ro"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o555), fi.Mode().Perm())
	fi, err = os.Stat(filepath.Join(layer, "bin", "tool"))
	require.NoError(t, err)
	assert.Equal(t, os.ModeSetuid|0o755, fi.Mode()&(os.ModeSetuid|os.ModePerm))
	target, err := os.Readlink(filepath.Join(layer, "abs"))
	require.NoError(t, err)
	assert.Equal(t, "/outside/victim", target, "a link's target is kept as data")
	var a, b unix.Stat_t
	require.NoError(t, unix.Stat(filepath.Join(layer, "bin", "tool"), &a))
	require.NoError(t, unix.Stat(filepath.Join(layer, "bin", "tool2"), &b))
	assert.Equal(t, a.Ino, b.Ino)
	fi, err = os.Lstat(filepath.Join(layer, "fifo"))
	require.NoError(t, err)
	assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type())
}

func TestUnpackDevicesWhenAllowed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("device nodes need root")
	}
	u := &unpacker{whiteouts: whiteoutsOverlay, root: true, allowDevices: true}
	layer, _, err := unpackCase(t, u, entry{name: "dev/null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666})
	require.NoError(t, err)
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(filepath.Join(layer, "dev", "null"), &st))
	assert.Equal(t, unix.Mkdev(1, 3), st.Rdev)
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a":       "a",
		"./a/b/":  "a/b",
		"/a//b":   "a/b",
		".":       ".",
		"/":       ".",
		"a/./b/.": "a/b",
	} {
		got, err := cleanName(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "..", "../a", "a/../b", "a/..", "/../a", "a\x00b"} {
		_, err := cleanName(in)
		require.ErrorIs(t, err, ErrCorrupt, in)
	}
}

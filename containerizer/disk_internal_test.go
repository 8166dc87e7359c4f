//go:build linux

package containerizer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMesosBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0B", 1: "1B", 1023: "1023B", 1024: "1KB", 1536: "1536B", 3 << 10: "3KB",
		1 << 20: "1MB", 10 << 20: "10MB", 1<<30 + 1<<20: "1025MB", 1 << 30: "1GB", 1 << 40: "1TB",
	} {
		assert.Equal(t, want, mesosBytes(n), "%d", n)
	}
}

func writeBlocks(t *testing.T, p string, n int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	b := make([]byte, n)
	for i := range b {
		b[i] = 1
	}
	require.NoError(t, os.WriteFile(p, b, 0o644))
}

func TestDu(t *testing.T) {
	root := t.TempDir()
	base, err := du(root, nil, 100)
	require.NoError(t, err)

	writeBlocks(t, filepath.Join(root, "a"), 1<<20)
	one, err := du(root, nil, 100)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, one-base, uint64(1<<20), "a 1 MiB file")
	assert.Less(t, one-base, uint64(1<<20+64<<10))

	// A hard link counts once; a symbolic link to a big tree is not
	// followed; an excluded volume is not counted.
	require.NoError(t, os.Link(filepath.Join(root, "a"), filepath.Join(root, "a2")))
	outside := t.TempDir()
	writeBlocks(t, filepath.Join(outside, "big"), 4<<20)
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "link")))
	writeBlocks(t, filepath.Join(root, "vol", "data"), 4<<20)
	got, err := du(root, map[string]bool{"vol": true}, 100)
	require.NoError(t, err)
	assert.Less(t, got-one, uint64(64<<10), "links and excluded volume add (almost) nothing: %d", got-one)

	all, err := du(root, nil, 100)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, all-got, uint64(4<<20), "without the exclusion the volume counts")

	// Bounded: past maxEntries the walk stops, with what it counted.
	for i := range 20 {
		writeBlocks(t, filepath.Join(root, "many", string(rune('a'+i))), 10)
	}
	part, err := du(root, nil, 5)
	require.ErrorIs(t, err, errDuIncomplete)
	assert.LessOrEqual(t, part, all+1<<20)
}

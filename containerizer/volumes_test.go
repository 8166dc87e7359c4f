package containerizer_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
)

// A sandbox's links, which its task may have made, never lead LinkVolumes
// out of it, nor does a container path with "..".
func TestLinkVolumesStaysInSandbox(t *testing.T) {
	sandbox, outside, host := t.TempDir(), t.TempDir(), t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(sandbox, "escape")))

	for _, cp := range []string{"escape/vol", "escape/deeper/vol", "../vol", "a/../../vol"} {
		err := containerizer.LinkVolumes(sandbox, []containerizer.Volume{{HostPath: host, ContainerPath: cp}}, -1, -1)
		assert.Error(t, err, cp)
	}
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing made outside the sandbox")
	_, err = os.Lstat(filepath.Join(filepath.Dir(sandbox), "vol"))
	assert.True(t, os.IsNotExist(err), "nothing made beside the sandbox")

	// Inside, a link is made, and kept when asked again.
	vols := []containerizer.Volume{{HostPath: host, ContainerPath: "a/b/vol"}}
	require.NoError(t, containerizer.LinkVolumes(sandbox, vols, -1, -1))
	require.NoError(t, containerizer.LinkVolumes(sandbox, vols, -1, -1))
	target, err := os.Readlink(filepath.Join(sandbox, "a", "b", "vol"))
	require.NoError(t, err)
	assert.Equal(t, host, target)
	other := []containerizer.Volume{{HostPath: t.TempDir(), ContainerPath: "a/b/vol"}}
	assert.Error(t, containerizer.LinkVolumes(sandbox, other, -1, -1), "the path is taken")
}

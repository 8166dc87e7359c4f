package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// A volume bind-mounted into a sandbox (as a containerizer with mount
// namespaces exposes one) is unmounted before the sandbox is removed, so
// the removal cannot reach the volume's data.
func TestGCUnmountsBindMountedVolume(t *testing.T) {
	h, disk := gcHarness(t)
	h.waitRegistered()
	vol := filepath.Join(h.dir, "volumes", "roles", "db", "v1")
	require.NoError(t, os.MkdirAll(filepath.Join(vol, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(vol, "sub", "file"), []byte("kept"), 0o644))

	h.fm.push(runTask(commandTask("m", "mkdir -p deep/mnt")))
	h.fm.waitUpdate(t, "m", mesospb.TASK_FINISHED)
	h.gcWaitForgotten("m")
	sandbox := h.gcRunDir("m")
	target := filepath.Join(sandbox, "deep", "mnt")
	if err := unix.Mount(vol, target, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here (needs root): %v", err)
	}
	t.Cleanup(func() {
		// Wherever a failed removal left the mount.
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], h.dir+"/") {
				_ = unix.Unmount(f[4], unix.MNT_DETACH)
			}
		}
	})

	disk.set(1)
	h.gcAdvance(time.Minute)
	gcWaitGone(t, sandbox)
	gcWaitGone(t, h.gcFwDir())
	gcNoTrash(t, filepath.Dir(h.gcFwDir())) // all removed, not only moved aside
	b, err := os.ReadFile(filepath.Join(vol, "sub", "file"))
	require.NoError(t, err, "the volume's data survives its sandbox")
	assert.Equal(t, "kept", string(b))
	mi, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(mi), filepath.Dir(sandbox)+"/", "no mount left under the removed sandbox")
	assert.False(t, strings.Contains(string(mi), " "+target+" "))
}

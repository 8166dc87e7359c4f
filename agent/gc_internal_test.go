package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGCQueue(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	q := newGCQueue(time.Hour, 0.1)
	q.schedule("/a", t0.Add(3*time.Hour))
	q.schedule("/b", t0.Add(time.Hour))
	q.schedule("/c", t0.Add(2*time.Hour))
	q.schedule("/a", t0.Add(90*time.Minute)) // rescheduled
	next, ok := q.next()
	require.True(t, ok)
	assert.Equal(t, t0.Add(time.Hour), next)
	assert.Equal(t, 3, q.len())

	assert.Empty(t, q.popDue(t0.Add(59*time.Minute)))
	assert.Equal(t, []string{"/b"}, q.popDue(t0.Add(time.Hour)))
	assert.True(t, q.unschedule("/c"))
	assert.False(t, q.unschedule("/c"))
	assert.False(t, q.scheduled("/c"))
	assert.Equal(t, []string{"/a"}, q.popDue(t0.Add(100*time.Hour)))
	_, ok = q.next()
	assert.False(t, ok)

	// Disk usage shortens what is kept: GCDelay × max(0, 1 − 0.1 − usage).
	assert.InDelta(t, float64(54*time.Minute), float64(q.maxAge(0)), float64(time.Millisecond))
	assert.InDelta(t, float64(24*time.Minute), float64(q.maxAge(0.5)), float64(time.Millisecond))
	assert.Equal(t, time.Duration(0), q.maxAge(0.9))
	assert.Equal(t, time.Duration(0), q.maxAge(1))

	// Scheduled at t0 (due t0+1h) and at t0+30m.
	q.schedule("/old", t0.Add(time.Hour))
	q.schedule("/new", t0.Add(90*time.Minute))
	now := t0.Add(40 * time.Minute)
	assert.Empty(t, q.prune(now, 0.2), "max age 42m: both younger")
	assert.Equal(t, []string{"/old"}, q.prune(now, 0.5), "max age 24m: /old is 40m old")
	assert.Equal(t, []string{"/new"}, q.prune(now, 0.95), "a full disk keeps nothing")

	// A run before its executor's directory when both are due together.
	q.schedule("/x", t0)
	q.schedule("/x/runs/r", t0)
	assert.Equal(t, []string{"/x/runs/r", "/x"}, q.popDue(t0))
}

// The collector refuses what is not a sandbox directory: outside
// <work_dir>/agents, through a symbolic link, or holding a known run.
func TestGCMoveAsideSafety(t *testing.T) {
	a := loopAgent(t)
	root := a.sandboxRoot()
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "precious"), []byte("x"), 0o644))

	_, err := a.moveAside(outside, nil)
	assert.ErrorIs(t, err, errGCUnsafe)
	_, err = a.moveAside(root, nil)
	assert.ErrorIs(t, err, errGCUnsafe)
	_, err = a.moveAside(filepath.Join(root, "..", "meta"), nil)
	assert.ErrorIs(t, err, errGCUnsafe)

	// A framework directory that is a link to elsewhere: the path through
	// it is refused, the link itself only unlinked.
	fwDir := filepath.Join(root, "agent-1", "frameworks", "fw")
	require.NoError(t, os.MkdirAll(filepath.Dir(fwDir), 0o755))
	require.NoError(t, os.Symlink(outside, fwDir))
	_, err = a.moveAside(filepath.Join(fwDir, "precious"), nil)
	assert.ErrorIs(t, err, errGCUnsafe)
	trash, err := a.moveAside(fwDir, nil)
	require.NoError(t, err)
	assert.Empty(t, trash)
	_, err = os.Lstat(fwDir)
	assert.True(t, os.IsNotExist(err))
	assert.FileExists(t, filepath.Join(outside, "precious"))

	// A directory holding a known run's sandbox.
	run := filepath.Join(root, "agent-1", "frameworks", "fw2", "executors", "e", "runs", "r")
	require.NoError(t, os.MkdirAll(run, 0o755))
	live := map[string]bool{run: true, filepath.Dir(filepath.Dir(run)): true}
	_, err = a.moveAside(filepath.Dir(filepath.Dir(run)), live)
	assert.ErrorIs(t, err, errGCUnsafe)
	assert.DirExists(t, run)

	// Gone already: nothing to do.
	trash, err = a.moveAside(filepath.Join(root, "agent-1", "frameworks", "none"), nil)
	require.NoError(t, err)
	assert.Empty(t, trash)

	// Else it is moved aside in its parent.
	trash, err = a.moveAside(run, nil)
	require.NoError(t, err)
	assert.Equal(t, filepath.Dir(run), filepath.Dir(trash))
	assert.DirExists(t, trash)
	require.NoError(t, removeTrees(t.Context(), []string{trash})[0])
	assert.NoDirExists(t, trash)
}

func TestUnescapeMount(t *testing.T) {
	assert.Equal(t, "/a b/c", unescapeMount(`/a\040b/c`))
	assert.Equal(t, "/plain", unescapeMount("/plain"))
	assert.Equal(t, `/odd\x`, unescapeMount(`/odd\x`))
	assert.Equal(t, `/end\04`, unescapeMount(`/end\04`))
}

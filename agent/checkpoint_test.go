package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/recordio"
)

// readLog returns the records of a task log.
func readLog(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r := recordio.NewReader(f, 0)
	var recs []string
	for {
		rec, err := r.ReadRecord()
		if err != nil {
			return recs
		}
		recs = append(recs, string(rec))
	}
}

func TestStoreKeepsTaskLogsOpenWithinABound(t *testing.T) {
	s := &store{dir: t.TempDir(), maxOpen: 3}
	for i := range 5 {
		require.NoError(t, s.appendAck("fw", fmt.Sprintf("t%d", i), []byte("1")))
	}
	assert.Equal(t, 3, s.openLogs(), "the least recently written logs are closed")
	// A log closed for the bound is opened again, and appended to.
	for i := range 5 {
		require.NoError(t, s.appendAck("fw", fmt.Sprintf("t%d", i), []byte("2")))
	}
	assert.Equal(t, 3, s.openLogs())
	for i := range 5 {
		assert.Equal(t, []string{"A1", "A2"}, readLog(t, s.taskLogPath("fw", fmt.Sprintf("t%d", i))))
	}

	require.NoError(t, s.removeTask("fw", "t4"))
	assert.Equal(t, 2, s.openLogs())
	_, err := os.Stat(s.taskLogPath("fw", "t4"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, s.removeTask("fw", "t0"), "removing a task whose log is closed")

	s.close()
	assert.Equal(t, 0, s.openLogs())
	require.NoError(t, s.appendAck("fw", "t1", []byte("3")))
	assert.Equal(t, []string{"A1", "A2", "A3"}, readLog(t, s.taskLogPath("fw", "t1")))

	require.NoError(t, s.wipe())
	assert.Equal(t, 0, s.openLogs())
	_, err = os.Stat(s.dir)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestStoreRecyclesRemovedTaskLogs(t *testing.T) {
	if !recycleLogs {
		t.Skip("task logs are recycled on Linux only")
	}
	dir := t.TempDir()
	// A spare left by an earlier agent is thrown away, not reused.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "spare"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "spare", "1"), []byte("stale"), 0o600))
	s := &store{dir: dir}
	defer s.close()

	require.NoError(t, s.appendAck("fw", "t1", []byte("old")))
	require.NoError(t, s.removeTask("fw", "t1"))
	assert.NoFileExists(t, s.taskLogPath("fw", "t1"), "a removed log leaves tasks/")
	require.Len(t, s.spares, 1)
	entries, err := os.ReadDir(filepath.Join(dir, "spare"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	fi, err := entries[0].Info()
	require.NoError(t, err)
	assert.Zero(t, fi.Size(), "a spare is truncated")

	// The next new log is the spare, empty of the old task's records.
	require.NoError(t, s.appendAck("fw", "t2", []byte("new")))
	assert.Empty(t, s.spares)
	assert.Equal(t, []string{"Anew"}, readLog(t, s.taskLogPath("fw", "t2")))

	// A spare never replaces a log that exists: it is appended to.
	require.NoError(t, s.appendAck("fw", "t3", []byte("x")))
	require.NoError(t, s.removeTask("fw", "t3"))
	s.mu.Lock()
	s.closeLog(s.taskLogPath("fw", "t2"))
	s.mu.Unlock()
	require.NoError(t, s.appendAck("fw", "t2", []byte("more")))
	assert.Equal(t, []string{"Anew", "Amore"}, readLog(t, s.taskLogPath("fw", "t2")))
	assert.Len(t, s.spares, 1, "the spare is kept for a new log")

	// A new framework's directory is made for a spare as for a new file.
	require.NoError(t, s.appendAck("fw2", "t1", []byte("y")))
	assert.Equal(t, []string{"Ay"}, readLog(t, s.taskLogPath("fw2", "t1")))
	assert.Empty(t, s.spares)
}

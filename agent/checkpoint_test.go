package agent

import (
	"fmt"
	"os"
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

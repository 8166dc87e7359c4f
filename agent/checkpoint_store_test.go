package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/agent/checkpoint/checkpointtest"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The agent's files pass the suite every checkpoint store passes.
func TestFileStoreConformance(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) func() checkpoint.Store {
		dir := filepath.Join(t.TempDir(), "meta")
		return func() checkpoint.Store { return newFileStore(dir) }
	})
}

// warnings collects what Load warns about.
type warnings []string

func (w *warnings) warn(msg string, args ...any) { *w = append(*w, msg) }

// A crash in the middle of an append leaves a torn last record: it is
// ignored, and cut off, so that what the restarted agent appends next is
// read back after the next restart, as Mesos truncates a status update
// file to its valid records (StatusUpdateStream::replay).
func TestFileStoreTornLastRecord(t *testing.T) {
	dir := t.TempDir()
	s := newFileStore(dir)
	require.NoError(t, s.PutTask(checkpointtest.Task("fw", "t1")))
	require.NoError(t, s.AppendUpdate("fw", "t1", checkpointtest.Update("fw", "t1", mesospb.TASK_RUNNING, "u1")))
	require.NoError(t, s.AppendUpdate("fw", "t1", checkpointtest.Update("fw", "t1", mesospb.TASK_FINISHED, "u2")))
	require.NoError(t, s.Close())
	path := s.taskLogPath("fw", "t1")
	fi, err := os.Stat(path)
	require.NoError(t, err)

	for _, cut := range []int64{1, 5, 20} { // inside the record, its header left whole or not
		t.Run("", func(t *testing.T) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			torn := filepath.Join(t.TempDir(), "meta")
			tornLog := (&store{dir: torn}).taskLogPath("fw", "t1")
			require.NoError(t, os.MkdirAll(filepath.Dir(tornLog), 0o755))
			require.NoError(t, os.WriteFile(tornLog, b[:fi.Size()-cut], 0o600))

			s := newFileStore(torn)
			var w warnings
			st, err := s.Load(w.warn)
			require.NoError(t, err)
			assert.Empty(t, w)
			require.Len(t, st.Tasks, 1)
			require.Len(t, st.Streams, 1)
			require.Len(t, st.Streams[0].Updates, 1, "the torn update is left out")
			assert.Equal(t, "u1", string(st.Streams[0].Updates[0].Status.UUID))

			// The restarted agent goes on appending.
			require.NoError(t, s.AppendAck("fw", "t1", []byte("u1")))
			require.NoError(t, s.AppendUpdate("fw", "t1", checkpointtest.Update("fw", "t1", mesospb.TASK_FAILED, "u3")))
			require.NoError(t, s.Close())
			st, err = newFileStore(torn).Load(w.warn)
			require.NoError(t, err)
			assert.Empty(t, w, "the log is readable after the restart")
			require.Len(t, st.Tasks, 1)
			require.Len(t, st.Streams, 1)
			require.Len(t, st.Streams[0].Updates, 2)
			assert.Equal(t, "u3", string(st.Streams[0].Updates[1].Status.UUID))
			require.Len(t, st.Streams[0].Acked, 1)
			assert.Equal(t, "u1", string(st.Streams[0].Acked[0]))
		})
	}
}

// A damaged file is skipped with a warning; the rest is recovered.
func TestFileStoreSkipsDamagedEntries(t *testing.T) {
	dir := t.TempDir()
	s := newFileStore(dir)
	for _, id := range []string{"fw-a", "fw-b"} {
		require.NoError(t, s.PutFramework(&mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: id}, Name: id}))
	}
	require.NoError(t, s.PutTask(checkpointtest.Task("fw-a", "good")))
	require.NoError(t, s.AppendUpdate("fw-a", "good", checkpointtest.Update("fw-a", "good", mesospb.TASK_RUNNING, "u1")))
	require.NoError(t, s.Close())

	// A framework file that is not a FrameworkInfo, one without an ID, a
	// task log whose header is garbage, a task record that is not JSON,
	// and a file left aside by a crash in writeFileAtomic.
	require.NoError(t, os.WriteFile(s.frameworkPath("fw-b"), []byte("\xff\xff\xff"), 0o600))
	require.NoError(t, os.WriteFile(s.frameworkPath("fw-c"), []byte{}, 0o600))
	require.NoError(t, os.WriteFile(s.taskLogPath("fw-a", "garbage"), []byte("xx\nyy"), 0o600))
	require.NoError(t, os.WriteFile(s.taskLogPath("fw-a", "badjson"), []byte("3\nT{x"), 0o600))
	require.NoError(t, os.WriteFile(s.frameworkPath("fw-d")+".tmp", []byte("\xff"), 0o600))

	var w warnings
	st, err := newFileStore(dir).Load(w.warn)
	require.NoError(t, err)
	assert.Len(t, w, 4)
	require.Len(t, st.Frameworks, 1)
	assert.Equal(t, "fw-a", st.Frameworks[0].ID.Value)
	require.Len(t, st.Tasks, 1)
	assert.Equal(t, "good", st.Tasks[0].Info.TaskID.Value)
	require.Len(t, st.Streams, 1)
	assert.Equal(t, "good", st.Streams[0].TaskID)
}

// The agent recovers frameworks with their executor runs from what the
// store loads, and skips the tasks it cannot take back.
func TestReadAllGroupsTasksByExecutorRun(t *testing.T) {
	mem := checkpoint.NewMemory()
	m := metaStore{mem}
	require.NoError(t, m.PutFramework(&mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: "fw"}}))
	a := checkpointtest.Task("fw", "a")
	b := checkpointtest.Task("fw", "b")
	b.ContainerID = a.ContainerID
	c := checkpointtest.Task("fw", "c")
	odd := checkpointtest.Task("fw", "odd")
	odd.Kind = "no such kind"
	orphan := checkpointtest.Task("gone", "x")
	for _, task := range []*checkpoint.Task{a, b, c, odd, orphan} {
		require.NoError(t, m.PutTask(task))
	}
	var w warnings
	fws, streams, err := m.readAll(w.warn)
	require.NoError(t, err)
	assert.Len(t, w, 2)
	assert.Empty(t, streams)
	require.Len(t, fws, 1)
	require.Len(t, fws[0].executors, 2)
	assert.Equal(t, kindCommand, fws[0].executors[0].kind)
	assert.Equal(t, a.ContainerID, fws[0].executors[0].containerID)
	assert.Len(t, fws[0].executors[0].tasks, 2)
	assert.Len(t, fws[0].executors[1].tasks, 1)
}

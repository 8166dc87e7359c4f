package batch

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/zktest"
)

func TestValidatePayload(t *testing.T) {
	require.NoError(t, ValidatePayload(InstancePayload("job", time.Unix(0, 0))))
	// A master's MasterInfo, as Mesos writes it: not one of ours.
	assert.Error(t, ValidatePayload([]byte(`{"id":"m1","ip":16777343,"port":5050,"hostname":"m1"}`)))
	assert.Error(t, ValidatePayload([]byte("10.0.0.1:5050")))
}

func TestJobFingerprint(t *testing.T) {
	a := job(3)
	b := job(3)
	assert.Equal(t, JobFingerprint(a), JobFingerprint(b))
	b[1].Command = "false"
	assert.NotEqual(t, JobFingerprint(a), JobFingerprint(b))
	assert.NotEqual(t, JobFingerprint(a), JobFingerprint(job(4)))
}

// The journal in ZooKeeper reads back as written, in order, and replays;
// the job's state is replaced only at the version read.
func TestZKStore(t *testing.T) {
	srv := zktest.Start(t)
	u, err := zookeeper.ParseURL("zk://" + srv.Addr + "/apron/store-test")
	require.NoError(t, err)
	var out bytes.Buffer
	s, err := dialStore(u, 2*time.Second, clock.Real(), &out)
	require.NoError(t, err)
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, s.waitConnected(ctx))
	require.NoError(t, s.ensure(ctx, s.child(JournalZnode)))

	st, version, err := s.load(ctx)
	require.NoError(t, err)
	assert.Equal(t, JobState{}, st)
	assert.Equal(t, int32(-1), version)
	v, err := s.save(ctx, JobState{FrameworkID: "fw-1", Job: "j", Tasks: 5}, -1)
	require.NoError(t, err)
	_, err = s.save(ctx, JobState{FrameworkID: "fw-2"}, -1)
	assert.ErrorIs(t, err, zk.ErrNodeExists, "a second first save fails")
	_, err = s.save(ctx, JobState{FrameworkID: "fw-1", Done: true}, v+1)
	assert.ErrorIs(t, err, zk.ErrBadVersion)
	st, _, err = s.load(ctx)
	require.NoError(t, err)
	assert.Equal(t, "fw-1", st.FrameworkID)
	assert.False(t, st.Done)

	j := zkJournal{s: s, ctx: ctx}
	lines := []string{
		"launch t1-1 agent-a host-a 1\n",
		"end t1-1 TASK_FINISHED 2\n",
		"launch t2-1 agent-a host-a 3\n",
	}
	for _, l := range lines {
		_, err := fmt.Fprint(j, l)
		require.NoError(t, err)
	}
	data, n, err := s.readJournal(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, lines[0]+lines[1]+lines[2], string(data))
	f := New(job(3), &out)
	require.NoError(t, f.Restore(bytes.NewReader(data)))
	assert.Equal(t, []string{"t3"}, pendingNames(f))

	require.NoError(t, s.clearJournal(ctx))
	data, n, err = s.readJournal(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Empty(t, data)

	// A term that is over writes nothing and does not wait.
	done, stop := context.WithCancel(ctx)
	stop()
	_, err = zkJournal{s: s, ctx: done}.Write([]byte("launch t3-1 a h 4\n"))
	assert.Error(t, err)
}

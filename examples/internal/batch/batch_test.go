package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

func job(n int) []Task {
	var tasks []Task
	for i := 1; i <= n; i++ {
		tasks = append(tasks, Task{Name: "t" + string(rune('0'+i)), Command: "true", CPUs: 0.1, Mem: 32, MaxAttempts: 2})
	}
	return tasks
}

func pendingNames(f *Framework) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, t := range f.pending {
		out = append(out, t.Name)
	}
	return out
}

func TestRestore(t *testing.T) {
	var out bytes.Buffer
	f := New(job(5), &out)
	journal := strings.Join([]string{
		"launch t1-1 agent-a host-a 1",
		"end t1-1 TASK_FINISHED 2",
		"launch t2-1 agent-a host-a 1",
		"end t2-1 TASK_FAILED 2",
		"launch t2-2 agent-b - 3",
		"end t2-2 TASK_FAILED 4", // no attempt left: failed for good
		"launch t3-1 agent-b host-b 5",
		"end t3-1 TASK_LOST 6",            // one attempt left: pending again
		"launch t4-1 agent-b host-b 7",    // outstanding
		"launch other-1 agent-b host-b 7", // not of this job
		"end t4-1 TASK_FINI",              // torn last line
	}, "\n")
	require.NoError(t, f.Restore(strings.NewReader(journal)))
	assert.Equal(t, []string{"t3", "t5"}, pendingNames(f))
	f.mu.Lock()
	assert.Equal(t, 1, f.finished)
	assert.Equal(t, 1, f.failed)
	t4 := f.byID["t4-1"]
	f.mu.Unlock()
	require.NotNil(t, t4, "the outstanding task is known by its ID")
	assert.Equal(t, mesospb.TASK_STAGING, t4.state)

	// Its end arrives: written to the new journal, counted once.
	var j bytes.Buffer
	f.SetJournal(&j)
	ctx := context.Background()
	finished := mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t4-1"}, State: mesospb.TASK_FINISHED.Enum(), AgentID: &mesospb.AgentID{Value: "agent-b"}}
	f.StatusUpdate(ctx, nil, finished)
	f.StatusUpdate(ctx, nil, finished) // a resent update
	f.mu.Lock()
	assert.Equal(t, 2, f.finished)
	f.mu.Unlock()
	assert.Regexp(t, `^end t4-1 TASK_FINISHED \d+\n$`, j.String())

	// A bad line in the middle is an error.
	err := New(job(1), &out).Restore(strings.NewReader("launch t1-1\nend t1-1 TASK_FINISHED 2\n"))
	require.ErrorIs(t, err, ErrBadJournal)
}

func TestRestoreAllDone(t *testing.T) {
	f := New(job(2), &bytes.Buffer{})
	require.NoError(t, f.Restore(strings.NewReader("launch t1-1 a h 1\nend t1-1 TASK_FINISHED 2\nlaunch t2-1 a h 1\nend t2-1 TASK_FINISHED 2\n")))
	select {
	case <-f.Done():
	default:
		t.Fatal("a job whose journal says it is done is done")
	}
	assert.True(t, f.Succeeded())
}

func TestAdoptReportedTask(t *testing.T) {
	// A task the master reports that the journal does not know (the
	// journal was lost) is adopted, not launched again.
	var j bytes.Buffer
	f := New(job(3), &bytes.Buffer{})
	f.SetJournal(&j)
	ctx := context.Background()
	f.StatusUpdate(ctx, nil, mesospb.TaskStatus{
		TaskID: mesospb.TaskID{Value: "t2-1"}, State: mesospb.TASK_RUNNING.Enum(),
		AgentID: &mesospb.AgentID{Value: "agent-a"}, Reason: mesospb.TaskStatus_REASON_RECONCILIATION.Enum(),
	})
	assert.Equal(t, []string{"t1", "t3"}, pendingNames(f))
	assert.Contains(t, j.String(), "launch t2-1 agent-a")
	// Updates of tasks not of this job, or of no known attempt, are ignored.
	f.StatusUpdate(ctx, nil, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "zz-1"}, State: mesospb.TASK_RUNNING.Enum()})
	f.StatusUpdate(ctx, nil, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t2"}, State: mesospb.TASK_RUNNING.Enum()})
	assert.Equal(t, []string{"t1", "t3"}, pendingNames(f))
}

func TestEvents(t *testing.T) {
	// Every update received is logged, also those the framework ignores,
	// and so is the adoption of a task the master reported.
	var events bytes.Buffer
	f := New(job(2), &bytes.Buffer{})
	f.SetEvents(&events)
	ctx := context.Background()
	f.StatusUpdate(ctx, nil, mesospb.TaskStatus{
		TaskID: mesospb.TaskID{Value: "t1-1"}, State: mesospb.TASK_RUNNING.Enum(), AgentID: &mesospb.AgentID{Value: "agent-a"},
		Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: []byte{0xab, 0x01},
	})
	f.StatusUpdate(ctx, nil, mesospb.TaskStatus{
		TaskID: mesospb.TaskID{Value: "zz-1"}, State: mesospb.TASK_LOST.Enum(),
		Source: mesospb.TaskStatus_SOURCE_MASTER.Enum(), Reason: mesospb.TaskStatus_REASON_RECONCILIATION.Enum(), Message: ptr("unknown"),
	})
	var got []Event
	for _, line := range strings.Split(strings.TrimSuffix(events.String(), "\n"), "\n") {
		var e Event
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		assert.NotZero(t, e.Time)
		e.Time = 0
		got = append(got, e)
	}
	assert.Equal(t, []Event{
		{Type: "UPDATE", TaskID: "t1-1", State: "TASK_RUNNING", Source: "SOURCE_EXECUTOR", AgentID: "agent-a", UUID: "ab01"},
		{Type: "LAUNCH", TaskID: "t1-1", AgentID: "agent-a"},
		{Type: "UPDATE", TaskID: "zz-1", State: "TASK_LOST", Reason: "REASON_RECONCILIATION", Source: "SOURCE_MASTER", Message: "unknown"},
	}, got)
}

// A task never launched is not running, although TaskState's zero value
// is TASK_STARTING.
func TestRunningCountsLaunchedTasksOnly(t *testing.T) {
	f := New(job(3), &bytes.Buffer{})
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 0, f.runningLocked())
	f.tasks[0].id, f.tasks[0].state = "t1-1", mesospb.TASK_RUNNING
	assert.Equal(t, 1, f.runningLocked())
}

package agentcore

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

func TestCompletedTasksTrimmedInBatches(t *testing.T) {
	const limit = 3
	tb, name := NewTables(), namer()
	tb.SetHistoryLimits(HistoryLimits{Tasks: limit})
	for i := range 4 * limit {
		id := fmt.Sprintf("t%02d", i)
		res := runOne(tb, name, executorTask(id, "e", "/bin/e"))
		require.NotNil(t, res.Run)
		tb.ForgetTask(res.Run.Task(id))
		assert.LessOrEqual(t, len(tb.history.tasks), 2*limit)
		var got, want []string
		for _, ct := range tb.CompletedTasks() {
			got = append(got, ct.TaskID.Value)
		}
		for j := max(0, i+1-limit); j <= i; j++ {
			want = append(want, fmt.Sprintf("t%02d", j))
		}
		require.Equal(t, want, got, "after task %d", i)
	}
}

func TestHistoryOfRunsAndFrameworks(t *testing.T) {
	tb, name := NewTables(), namer()
	tb.SetHistoryLimits(HistoryLimits{Tasks: 10, RunsPerFramework: 2, Frameworks: 1})
	finish := func(id string) {
		r := runOne(tb, name, commandTask(id)).Run
		r.Task(id).Apply(mesospb.TaskStatus{TaskID: *idOf(id), State: mesospb.TASK_FINISHED.Enum()})
		_, ok := r.Terminate()
		require.True(t, ok)
		tb.Terminated(r)
		tb.ForgetTask(r.Task(id))
	}
	finish("a")
	assert.Zero(t, tb.Len(), "forgotten")
	require.Len(t, tb.CompletedFrameworks(), 1)
	assert.Equal(t, []string{"run-1"}, runIDs(tb.CompletedFrameworks()[0].Runs))
	assert.True(t, tb.CompletedFrameworks()[0].Runs[0].Command)

	// The framework comes back with its history, which grows, bounded.
	for _, id := range []string{"b", "c"} {
		r := runOne(tb, name, commandTask(id)).Run
		if id == "b" {
			assert.Empty(t, tb.CompletedFrameworks(), "back")
			assert.Equal(t, []string{"run-1"}, runIDs(tb.CompletedRuns("fw")))
		}
		r.Task(id).Apply(mesospb.TaskStatus{TaskID: *idOf(id), State: mesospb.TASK_FINISHED.Enum()})
		r.Terminate()
		tb.Terminated(r)
		if id == "b" {
			tb.ForgetTask(r.Task(id))
		}
	}
	assert.Equal(t, []string{"run-1", "run-2"}, runIDs(tb.CompletedRuns("fw")), "c's run waits for its task's acknowledgement")
	tb.ForgetTask(tb.Task("fw", "c"))
	require.Len(t, tb.CompletedFrameworks(), 1)
	assert.Equal(t, []string{"run-2", "run-3"}, runIDs(tb.CompletedFrameworks()[0].Runs), "the newest two")
	var tasks []string
	for _, ct := range tb.CompletedTasks() {
		tasks = append(tasks, ct.TaskID.Value)
	}
	assert.Equal(t, []string{"a", "b", "c"}, tasks)

	// No limits, no history.
	none := NewTables()
	r := runOne(none, namer(), commandTask("a")).Run
	r.Terminate()
	none.ForgetTask(r.Task("a"))
	assert.Empty(t, none.CompletedTasks())
	assert.Empty(t, none.CompletedFrameworks())
}

func runIDs(runs []CompletedRun) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.ContainerID)
	}
	return out
}

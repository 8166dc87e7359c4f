package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
)

// benchAgent is loopAgent for benchmarks: the benchmark is the loop, and
// nothing posted is run.
func benchAgent(tb testing.TB) *Agent {
	tb.Helper()
	a, err := New(Config{
		Master: nopMaster{}, WorkDir: tb.TempDir(), Resources: "cpus:1;mem:100;disk:100;ports:[1-2]",
		Endpoint: "http://127.0.0.1:1/", // executor processes never get to subscribe
		Clock:    clock.NewFake(time.Unix(1e9, 0)),
	})
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	a.started.Store(true)
	a.initLoop(ctx, ctx)
	require.NoError(tb, a.openContainerizer())
	a.setID("agent-1")
	linkUp(a)
	tb.Cleanup(func() {
		close(a.stopped)
		cancel()
		a.wg.Wait()
		a.closeContainerizer()
	})
	return a
}

// benchTasks queues n tasks of one framework on one custom executor
// process that never starts (its launch is never run: the benchmark does
// not run what the agent posts).
func benchTasks(a *Agent, fw mesospb.FrameworkInfo, from, n int) {
	for i := from; i < from+n; i++ {
		task := mesospb.TaskInfo{
			Name: "t", TaskID: mesospb.TaskID{Value: fmt.Sprintf("t-%d", i)},
			Executor: &mesospb.ExecutorInfo{
				ExecutorID: mesospb.ExecutorID{Value: fmt.Sprintf("ex-%d", i%100)},
				Command:    &mesospb.CommandInfo{Value: ptr("/nonexistent/executor")},
			},
		}
		a.runTasks(fw, nil, nil, []mesospb.TaskInfo{task})
	}
}

// BenchmarkRunAndKillQueued is the agent's cost of a RUN_TASK and of the
// KILL_TASK of the queued task (its admission, tables, update and
// forwarding), with 10,000 other tasks on the agent.
func BenchmarkRunAndKillQueued(b *testing.B) {
	a := benchAgent(b)
	fw := mesospb.FrameworkInfo{Name: "fw", ID: &mesospb.FrameworkID{Value: "fw-1"}}
	benchTasks(a, fw, 0, 10000)
	a.outbox = nil
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchTasks(a, fw, 10000+i, 1)
		a.killTask("fw-1", fmt.Sprintf("t-%d", 10000+i), nil)
		if len(a.outbox) > 1024 {
			a.outbox = a.outbox[:0]
		}
	}
}

// BenchmarkReconcile10000 answers a reconciliation of all of a framework's
// 10,000 tasks.
func BenchmarkReconcile10000(b *testing.B) {
	a := benchAgent(b)
	fw := mesospb.FrameworkInfo{Name: "fw", ID: &mesospb.FrameworkID{Value: "fw-1"}}
	benchTasks(a, fw, 0, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.outbox = a.outbox[:0]
		a.reconcileTasks("fw-1", nil)
	}
}

func TestBenchTasksQueue(t *testing.T) {
	a := benchAgent(t)
	fw := mesospb.FrameworkInfo{Name: "fw", ID: &mesospb.FrameworkID{Value: "fw-1"}}
	benchTasks(a, fw, 0, 1000)
	require.Equal(t, 1000, a.tables.Framework("fw-1").TaskCount())
	n := 0
	for _, e := range a.tables.Framework("fw-1").Runs() {
		require.Equal(t, execRegistering, e.State())
		n += len(e.Queue())
	}
	require.Equal(t, 1000, n, "the tasks wait for their executors")
}

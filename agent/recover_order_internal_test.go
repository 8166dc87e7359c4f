package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/agent/checkpoint/checkpointtest"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/clock"
)

// A framework whose first recovered run ends at once (its one task's end
// was acknowledged before the restart) keeps its other runs: recovery
// puts every run back before it decides on any, so the ended run does
// not take the framework, its checkpoints and its update streams with
// it. The memory store lists tasks in a random order, so the runs come
// back in both orders over the rounds.
func TestRecoverKeepsAFrameworkWhoseFirstRunEnded(t *testing.T) {
	for round := range 12 {
		mem := checkpoint.NewMemory()
		require.NoError(t, mem.SetAgentID("agent-1"))
		fw := mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: "fw"}, Name: "fw", Checkpoint: ptr(true)}
		require.NoError(t, mem.PutFramework(&fw))
		for _, id := range []string{"a", "b"} {
			task := checkpointtest.Task("fw", id)
			task.Kind = "go" // gone with the old agent: no container to find
			require.NoError(t, mem.PutTask(task))
		}
		// a's end was acknowledged; b still runs, its update unacknowledged.
		require.NoError(t, mem.AppendUpdate("fw", "a", checkpointtest.Update("fw", "a", mesospb.TASK_FINISHED, "0123456789abcdef")))
		require.NoError(t, mem.AppendAck("fw", "a", []byte("0123456789abcdef")))
		require.NoError(t, mem.AppendUpdate("fw", "b", checkpointtest.Update("fw", "b", mesospb.TASK_RUNNING, "fedcba9876543210")))

		a, err := New(Config{Master: nopMaster{}, WorkDir: t.TempDir(), CheckpointStore: mem,
			Resources: "cpus:1;mem:100;disk:100;ports:[1-2]", Clock: clock.NewFake(time.Unix(1e9, 0))})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		a.started.Store(true)
		a.initLoop(ctx, ctx)
		require.NoError(t, a.openContainerizer())
		require.NoError(t, a.recover(ctx))

		rec := a.tables.Framework("fw")
		require.NotNil(t, rec, "round %d: the framework is recovered", round)
		require.NotNil(t, rec.Task("b"), "round %d: with its live task", round)
		require.Equal(t, mesospb.TASK_FAILED, rec.Task("b").State(), "round %d: which did not survive", round)
		st, err := mem.Load(nil)
		require.NoError(t, err)
		require.Len(t, st.Frameworks, 1, "round %d: its checkpoint stays", round)
		require.True(t, a.updates.Has(agentcore.StreamKey{Framework: "fw", Task: "b"}), "round %d: b's updates wait for the master", round)

		close(a.stopped)
		cancel()
		a.wg.Wait()
		a.closeContainerizer()
	}
}

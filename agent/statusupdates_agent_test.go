package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
)

// useStore makes a checkpoint the agent's store, as New does with its
// files: the ID and resources come from it.
func useStore(t *testing.T, a *Agent, s checkpoint.Store) {
	t.Helper()
	a.meta = metaStore{s}
	id, err := s.AgentID()
	require.NoError(t, err)
	a.setID(id)
}

// The agent's status update manager through its shell, on the in-memory
// store: an update is checkpointed before it goes to the master, waits
// while the agent has no master, survives a restart in the store, is
// resent after the restart, and its acknowledgement ends the stream and
// its checkpoint.
func TestAgentUpdatesThroughTheMemoryStore(t *testing.T) {
	mem := checkpoint.NewMemory()
	require.NoError(t, mem.SetAgentID("agent-1"))

	a := loopAgent(t)
	useStore(t, a, mem)
	a.statusUpdate("fw-1", "", a.agentStatus("fw-1", "ghost", mesospb.TASK_LOST, mesospb.TaskStatus_REASON_RECONCILIATION, "unknown"))
	sent := sentUpdates(a, "ghost")
	require.Len(t, sent, 1)
	st, err := mem.Load(nil)
	require.NoError(t, err)
	require.Len(t, st.Streams, 1, "checkpointed when it went out")
	assert.Equal(t, sent[0].Status.UUID, st.Streams[0].Updates[0].Status.UUID)
	assert.Equal(t, mesospb.TASK_LOST, sent[0].GetLatestState())

	// Without a master, nothing is resent.
	a.outbox = nil
	a.pauseUpdates()
	a.clk.(*clock.Fake).Advance(time.Hour)
	a.tm.runDue()
	assert.Empty(t, sentUpdates(a, "ghost"))

	// A new agent on the same store: recovered, and resent once it has a
	// master.
	b := loopAgent(t)
	useStore(t, b, mem)
	require.NoError(t, b.recover(context.Background()))
	assert.Empty(t, sentUpdates(b, "ghost"), "not before registration")
	b.resumeUpdates()
	again := sentUpdates(b, "ghost")
	require.Len(t, again, 1)
	assert.Equal(t, sent[0].Status.UUID, again[0].Status.UUID)

	// Retried on the agent's clock until acknowledged.
	b.clk.(*clock.Fake).Advance(b.cfg.StatusUpdateRetry)
	b.tm.runDue()
	assert.Len(t, sentUpdates(b, "ghost"), 2)

	b.acknowledge("fw-1", "ghost", again[0].Status.UUID)
	assert.Zero(t, b.updates.Len())
	st, err = mem.Load(nil)
	require.NoError(t, err)
	assert.Empty(t, st.Streams, "the ended stream's checkpoint is gone")
	b.clk.(*clock.Fake).Advance(time.Hour)
	b.tm.runDue()
	assert.Len(t, sentUpdates(b, "ghost"), 2, "no retry after the acknowledgement")
	_, pending := b.tm.byID[b.updateTimer]
	assert.False(t, pending)
}

package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/agentcore"
)

// linkUp registers a loopAgent's link with no master behind it: the core
// is driven through a dial, a stream and a registration as the agent's ID,
// and what it decided is dropped, so no timer is set and no goroutine
// dials.
func linkUp(a *Agent) {
	now := a.clk.Now()
	a.link.Start(now)
	d := a.link.Drain().Dial
	a.link.Connected(d.Gen, true, now)
	a.conn = &masterConn{gen: d.Gen, cancel: func() {}}
	a.link.Registered(a.id, 0, 0, now)
	a.link.Drain()
}

// idWatchStore calls onSetID before it writes an agent ID.
type idWatchStore struct {
	checkpoint.Store
	onSetID func(id string)
}

func (s idWatchStore) SetAgentID(id string) error {
	s.onSetID(id)
	return s.Store.SetAgentID(id)
}

func callTypes(calls []*internalpb.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.GetType().String())
	}
	return out
}

// An EXECUTOR_EXITED queued in the turn in which the link drops is held
// for the next registration, not lost with the turn's other calls.
func TestExecutorExitedQueuedAsTheLinkDropsIsHeld(t *testing.T) {
	a := loopAgent(t)
	a.send(exitedCall("ex1"))
	a.send(&internalpb.Call{Type: internalpb.Call_PONG.Enum()})
	require.Len(t, a.outbox, 2)
	require.True(t, a.link.Disconnected(a.conn.gen, "the test ended it", a.clk.Now()))
	a.applyLink()
	a.flush()
	assert.Empty(t, a.outbox)

	at, ok := a.link.NextDeadline()
	require.True(t, ok)
	a.link.Tick(at)
	d := a.link.Drain().Dial
	require.NotNil(t, d)
	require.Equal(t, agentcore.ConnAccepted, a.link.Connected(d.Gen, true, at))
	a.conn = &masterConn{gen: d.Gen, cancel: func() {}}
	a.handleEvent(&internalpb.Event{
		Type:       internalpb.Event_REREGISTERED.Enum(),
		Registered: &internalpb.Event_Registered{AgentID: mesospb.AgentID{Value: a.id}},
	})
	assert.Equal(t, []string{"EXECUTOR_EXITED"}, callTypes(a.outbox), "held, and sent once registered; the PONG is dropped")
}

// Through the shell: the ID a (failed-over) master gives is on disk before
// anything of the registration is acted on (the held EXECUTOR_EXITED and
// the pending status updates go out only after), and the agent uses it
// from then on.
func TestAgentIDCheckpointedBeforeRegistrationIsActedOn(t *testing.T) {
	a := loopAgent(t)
	mem := checkpoint.NewMemory()
	require.NoError(t, mem.SetAgentID("agent-1"))
	var atWrite []string
	wrote := false
	useStore(t, a, idWatchStore{Store: mem, onSetID: func(string) {
		wrote = true
		atWrite = callTypes(a.outbox)
	}})

	// A pending update; then the master goes away and an executor exits.
	a.statusUpdate("fw-1", "", a.agentStatus("fw-1", "ghost", mesospb.TASK_LOST, mesospb.TaskStatus_REASON_RECONCILIATION, "unknown"))
	a.outbox = nil
	now := a.clk.Now()
	require.True(t, a.link.Disconnected(a.conn.gen, "the test ended it", now))
	a.applyLink()
	require.Nil(t, a.conn)
	assert.False(t, a.isRegistered())
	a.send(exitedCall("ex1"))
	assert.Empty(t, a.outbox, "held")

	// The next attempt reaches a master that does not know the agent.
	at, ok := a.link.NextDeadline()
	require.True(t, ok)
	a.link.Tick(at)
	d := a.link.Drain().Dial
	require.NotNil(t, d)
	rr := a.registrationCallFor(*d)
	require.Equal(t, internalpb.Call_REREGISTER, rr.GetType())
	assert.Equal(t, "agent-1", rr.AgentID.Value)
	require.Equal(t, agentcore.ConnAccepted, a.link.Connected(d.Gen, true, at))
	a.conn = &masterConn{gen: d.Gen, cancel: func() {}}
	a.handleEvent(&internalpb.Event{
		Type:       internalpb.Event_REREGISTERED.Enum(),
		Registered: &internalpb.Event_Registered{AgentID: mesospb.AgentID{Value: "agent-2"}},
	})

	require.True(t, wrote)
	assert.Empty(t, atWrite, "nothing went out before the ID was checkpointed")
	assert.Equal(t, []string{"EXECUTOR_EXITED", "STATUS_UPDATE"}, callTypes(a.outbox))
	id, err := mem.AgentID()
	require.NoError(t, err)
	assert.Equal(t, "agent-2", id)
	assert.Equal(t, "agent-2", a.ID())
	assert.True(t, a.isRegistered())
	assert.Equal(t, internalpb.Call_REREGISTER, a.registrationCall().GetType())
	assert.Equal(t, "agent-2", a.registrationCall().AgentID.Value)
}

// exitedCall is an EXECUTOR_EXITED call of executor.
func exitedCall(executor string) *internalpb.Call {
	return &internalpb.Call{Type: internalpb.Call_EXECUTOR_EXITED.Enum(), ExecutorExited: &internalpb.Call_ExecutorExited{
		FrameworkID: mesospb.FrameworkID{Value: "fw"}, ExecutorID: mesospb.ExecutorID{Value: executor}}}
}

package agent_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

func updateFramework(info mesospb.FrameworkInfo) *internalpb.Event {
	return &internalpb.Event{
		Type:            internalpb.Event_UPDATE_FRAMEWORK.Enum(),
		UpdateFramework: &internalpb.Event_UpdateFramework{FrameworkInfo: info},
	}
}

// sendsOf counts the times the update with uuid went to the master.
func (m *fakeMaster) sendsOf(taskID string, uuid []byte) int {
	n := 0
	for _, u := range m.updates(taskID) {
		if string(u.Status.UUID) == string(uuid) {
			n++
		}
	}
	return n
}

// A framework that fails over gets its pending updates as soon as it is
// back: the master's UPDATE_FRAMEWORK (sent on the framework's SUBSCRIBE)
// makes the agent resend the head of each of the framework's streams at
// once, with a fresh backoff, as Mesos's Slave::updateFramework resumes
// its status update manager. Before, the update waited for the retry
// timer, whose backoff doubles up to 10 minutes.
func TestUpdateFrameworkResendsPendingUpdatesAtOnce(t *testing.T) {
	h := newHarness(t)
	h.fm.setAutoAck(false) // the framework is away: nothing acknowledges
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo hi")))
	head := h.fm.waitUpdate(t, "t1", mesospb.TASK_STARTING)
	uuid := head.Status.UUID

	// One retry: the backoff doubles to twice StatusUpdateRetry.
	h.clk.Advance(agent.DefaultStatusUpdateRetry)
	require.Eventually(t, func() bool { return h.fm.sendsOf("t1", uuid) == 2 }, waitFor, tick)

	// The framework is back: resent now, with no time passing.
	h.fm.push(updateFramework(framework))
	require.Eventually(t, func() bool { return h.fm.sendsOf("t1", uuid) == 3 }, 5*time.Second, tick,
		"the pending update is resent when the framework is back, not after the backoff")
	// ...with a fresh backoff: the next retry comes after StatusUpdateRetry.
	h.clk.Advance(agent.DefaultStatusUpdateRetry)
	require.Eventually(t, func() bool { return h.fm.sendsOf("t1", uuid) == 4 }, waitFor, tick)

	// Another framework's return resends nothing of this one's.
	other := mesospb.FrameworkInfo{Name: "other", ID: &mesospb.FrameworkID{Value: "fw-2"}}
	h.fm.push(updateFramework(other))
	h.fm.push(&internalpb.Event{Type: internalpb.Event_PING.Enum()})
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_PONG)) == 1 }, waitFor, tick)
	assert.Equal(t, 4, h.fm.sendsOf("t1", uuid))

	// Acknowledged, the stream goes on in order.
	h.fm.setAutoAck(true)
	h.fm.push(ackEvent(head))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_FINISHED}, h.fm.states("t1"))
}

package master_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
)

// A framework that fails over while its command task's terminal update is
// unacknowledged: its new SUBSCRIBE sends UPDATE_FRAMEWORK to the agent
// that holds the task (a command task has no executor in the master), so
// the agent resends the pending update at once (Master::sendFrameworkUpdates,
// Slave::updateFramework), not at the end of its retry backoff. An agent
// with nothing of the framework hears nothing.
func TestResubscribeTellsAgentsWithItsTasks(t *testing.T) {
	h := newHarness(t, master.Config{AgentPingTimeout: time.Hour})
	info := frameworkInfo("fw")
	info.FailoverTimeout = ptr(60.0)
	fs, fid := h.subscribe(info)
	as, aid := h.registerAgent("cpus:2;mem:512")
	h.launch(fs, fid, commandTask("t", mesospb.Offer{}, "cpus:1"))
	other, _ := h.registerAgent("cpus:1;mem:128")
	h.sendStatus(as, aid, fid, "t", mesospb.TASK_FINISHED)

	h.sm.StreamEnded(fs)
	h.advance(time.Second)
	h.takeAgent(as)
	h.takeAgent(other)

	info.ID = &mesospb.FrameworkID{Value: fid}
	h.subscribe(info)
	ups := h.agentEventsOf(as, internalpb.Event_UPDATE_FRAMEWORK)
	require.Len(t, ups, 1, "the agent holding the framework's task hears of its return")
	assert.Equal(t, fid, ups[0].UpdateFramework.FrameworkInfo.ID.GetValue())
	assert.Empty(t, h.agentEventsOf(other, internalpb.Event_UPDATE_FRAMEWORK))
}

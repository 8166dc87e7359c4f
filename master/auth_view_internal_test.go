package master

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
)

// An AGENT_ADDED event reaches an operator subscriber without the
// resources reserved to roles it may not view, as GET_AGENTS shows the
// agent; the event the other subscribers share is left whole.
func TestAgentAddedIsFilteredPerSubscriber(t *testing.T) {
	web := "web"
	reserved := mesospb.Resource{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
		Reservations: []mesospb.Resource_ReservationInfo{{Type: mesospb.Resource_ReservationInfo_STATIC.Enum(), Role: &web}}}
	free := mesospb.Resource{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 3}}
	ev := &masterpb.Event{Type: masterpb.Event_AGENT_ADDED.Enum(), AgentAdded: &masterpb.Event_AgentAdded{
		Agent: masterpb.Response_GetAgents_Agent{
			AgentInfo:      mesospb.AgentInfo{Hostname: "a1", Resources: []mesospb.Resource{free, reserved}},
			TotalResources: []mesospb.Resource{free, reserved},
		},
	}}
	viewWebOnly := func(allowed bool) approvers {
		return approvers{auth.ViewRole: auth.ApproverFunc(func(o *auth.Object) (bool, error) { return allowed, nil })}
	}

	got := agentAddedFor(ev, viewWebOnly(false))
	require.NotSame(t, ev, got)
	assert.Equal(t, []mesospb.Resource{free}, got.AgentAdded.Agent.TotalResources)
	assert.Equal(t, []mesospb.Resource{free}, got.AgentAdded.Agent.AgentInfo.Resources)
	assert.Len(t, ev.AgentAdded.Agent.TotalResources, 2, "the shared event is not changed")
	assert.Len(t, ev.AgentAdded.Agent.AgentInfo.Resources, 2)

	assert.Same(t, ev, agentAddedFor(ev, viewWebOnly(true)), "nothing hidden: the shared event")
	other := &masterpb.Event{Type: masterpb.Event_HEARTBEAT.Enum()}
	assert.Same(t, other, agentAddedFor(other, viewWebOnly(false)))
}

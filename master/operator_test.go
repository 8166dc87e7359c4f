package master_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// The state machine's operator events on a fake timeline: what an operator
// sees of an agent that stops answering pings while running a task.
func TestStateMachineOperatorEvents(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sm, err := master.NewStateMachine(master.Config{
		Rand:              rand.New(rand.NewPCG(1, 2)),
		HeartbeatInterval: time.Second,
		AgentPingTimeout:  time.Second,
	}, now)
	require.NoError(t, err)
	var ops []*masterpb.Event
	sched := map[string][]*schedulerpb.Event{}
	collect := func() {
		for _, o := range sm.Ready().Outputs {
			if o.Operator != nil {
				ops = append(ops, o.Operator)
			}
			if o.Scheduler != nil {
				sched[o.Stream] = append(sched[o.Stream], o.Scheduler)
			}
		}
	}
	types := func() []masterpb.Event_Type {
		var out []masterpb.Event_Type
		for _, ev := range ops {
			out = append(out, ev.GetType())
		}
		ops = nil
		return out
	}
	advance := func(d time.Duration) {
		for end := now.Add(d); now.Before(end); {
			now = now.Add(20 * time.Millisecond)
			sm.Tick(now)
			collect()
		}
	}

	opStream := sm.SubscribeOperator()
	require.NotEmpty(t, opStream)
	collect()
	require.Len(t, ops, 1)
	assert.Equal(t, masterpb.Event_SUBSCRIBED, ops[0].GetType())
	assert.Equal(t, 1.0, ops[0].Subscribed.GetHeartbeatIntervalSeconds())
	ops = nil

	_, err = sm.ConnectAgent(&internalpb.Call{
		Type: internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
			Hostname: "a1", Resources: resources.MustParse("cpus:2;mem:256").ToProto(),
		}},
	})
	require.NoError(t, err)
	stream, err := sm.SubscribeScheduler(subscribeCall(frameworkInfo("f")))
	require.NoError(t, err)
	collect()
	assert.Equal(t, []masterpb.Event_Type{masterpb.Event_AGENT_ADDED, masterpb.Event_FRAMEWORK_ADDED}, types())

	advance(100 * time.Millisecond)
	var offers []mesospb.Offer
	for _, ev := range sched[stream] {
		if ev.GetType() == schedulerpb.Event_OFFERS {
			offers = append(offers, ev.Offers.Offers...)
		}
	}
	require.NotEmpty(t, offers)
	fw := offers[0].FrameworkID
	call := launchCall(offerIDs(offers[0]), commandTask("t1", offers[0], "cpus:1;mem:64"))
	call.FrameworkID = &fw
	require.NoError(t, sm.SchedulerCall(stream, call))
	collect()
	assert.Equal(t, []masterpb.Event_Type{masterpb.Event_TASK_ADDED}, types())

	// The agent never answers a ping: after five it is removed, and its
	// task lost. Heartbeats come every second meanwhile.
	advance(7 * time.Second)
	got := types()
	assert.Contains(t, got, masterpb.Event_HEARTBEAT)
	var rest []masterpb.Event_Type
	for _, typ := range got {
		if typ != masterpb.Event_HEARTBEAT {
			rest = append(rest, typ)
		}
	}
	assert.Equal(t, []masterpb.Event_Type{masterpb.Event_TASK_UPDATED, masterpb.Event_AGENT_REMOVED}, rest)

	// The operator leaves: nothing more is built for it.
	sm.StreamEnded(opStream)
	advance(2 * time.Second)
	assert.Empty(t, types())
}

// Mesos's operator API has no event for a change of a known agent's total
// (its master.proto Event stops at HEARTBEAT), so a reservation made or
// undone sends subscribers nothing, GET_AGENTS shows it, and an agent that
// re-registers with other resources is announced again with AGENT_ADDED
// and its new total.
func TestStateMachineOperatorEventsOnAgentTotals(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sm, err := master.NewStateMachine(master.Config{Rand: rand.New(rand.NewPCG(1, 2))}, now)
	require.NoError(t, err)
	var ops []*masterpb.Event
	collect := func() {
		for _, o := range sm.Ready().Outputs {
			if o.Operator != nil {
				ops = append(ops, o.Operator)
			}
		}
	}
	take := func() []*masterpb.Event {
		collect()
		out := ops
		ops = nil
		return out
	}
	sm.SubscribeOperator()
	_, err = sm.ConnectAgent(&internalpb.Call{
		Type: internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
			Hostname: "a1", Resources: resources.MustParse("cpus:4;mem:1024").ToProto(),
		}},
	})
	require.NoError(t, err)
	evs := take()
	require.Len(t, evs, 2)
	require.Equal(t, masterpb.Event_AGENT_ADDED, evs[1].GetType())
	aid := evs[1].AgentAdded.Agent.AgentInfo.ID.Value
	total := func() resources.Resources {
		resp, err := sm.OperatorCall(&masterpb.Call{Type: masterpb.Call_GET_AGENTS.Enum()})
		require.NoError(t, err)
		require.Len(t, resp.GetAgents.Agents, 1)
		rs, err := resources.FromProto(resp.GetAgents.Agents[0].TotalResources)
		require.NoError(t, err)
		return rs
	}

	reserved := opReserved("cpus:1", "db")
	resp, err := sm.OperatorCall(reserveCall(aid, reserved))
	require.NoError(t, err)
	require.Nil(t, resp)
	assert.Empty(t, take(), "no event for a reservation")
	assert.True(t, total().Contains(reserved))
	resp, err = sm.OperatorCall(unreserveCall(aid, reserved))
	require.NoError(t, err)
	require.Nil(t, resp)
	assert.Empty(t, take(), "no event for an unreservation")
	assert.False(t, total().Contains(reserved))

	_, err = sm.ConnectAgent(&internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
		AgentInfo: mesospb.AgentInfo{Hostname: "a1", ID: &mesospb.AgentID{Value: aid},
			Resources: resources.MustParse("cpus:8;mem:1024").ToProto()},
	}})
	require.NoError(t, err)
	evs = take()
	require.Len(t, evs, 1)
	require.Equal(t, masterpb.Event_AGENT_ADDED, evs[0].GetType())
	rs, err := resources.FromProto(evs[0].AgentAdded.Agent.TotalResources)
	require.NoError(t, err)
	assert.Equal(t, 8.0, rs.CPUs())
}

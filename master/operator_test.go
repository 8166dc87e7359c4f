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

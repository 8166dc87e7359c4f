package master_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

func TestLaunchRunFinish(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	as, aid := h.registerAgent("cpus:4;mem:1024")
	h.advance(40 * time.Millisecond)

	offers := h.offers(fs)
	require.Len(t, offers, 1)
	assert.Equal(t, aid, offers[0].AgentID.Value)
	assert.Equal(t, 4.0, sumOffers(offers).CPUs())

	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("t1", offers[0], "cpus:1;mem:128"))))
	runs := h.agentEventsOf(as, internalpb.Event_RUN_TASK)
	require.Len(t, runs, 1)
	assert.Equal(t, "t1", runs[0].RunTask.Task.TaskID.Value)
	assert.Equal(t, fid, runs[0].RunTask.Framework.ID.Value)

	// The rest of the offer comes back at once (refuse_seconds 0).
	h.advance(40 * time.Millisecond)
	again := h.offers(fs)
	require.Len(t, again, 1)
	assert.Equal(t, 3.0, sumOffers(again).CPUs())

	uuid := h.sendStatus(as, aid, fid, "t1", mesospb.TASK_RUNNING)
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_RUNNING, ups[0].GetState())
	assert.Equal(t, aid, ups[0].AgentID.Value)

	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_ACKNOWLEDGE.Enum(),
		Acknowledge: &schedulerpb.Call_Acknowledge{AgentID: mesospb.AgentID{Value: aid}, TaskID: mesospb.TaskID{Value: "t1"}, UUID: uuid}}))
	acks := h.agentEventsOf(as, internalpb.Event_ACKNOWLEDGE)
	require.Len(t, acks, 1)
	assert.Equal(t, uuid, acks[0].Acknowledge.UUID)

	h.sendStatus(as, aid, fid, "t1", mesospb.TASK_FINISHED)
	require.Len(t, h.updates(fs), 1)
	// The task's resources are free again: declining the outstanding offer
	// shows all 4 cpus offered.
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(),
		Decline: &schedulerpb.Call_Decline{OfferIDs: offerIDs(again...), Filters: &mesospb.Filters{RefuseSeconds: ptr(0.0)}}}))
	h.advance(40 * time.Millisecond)
	assert.Equal(t, 4.0, sumOffers(h.offers(fs)).CPUs())
}

func TestInvalidAcceptsLoseNothing(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	h.registerAgent("cpus:2;mem:512")
	h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 2)

	// Offers from two agents: every task is refused, the offers return.
	err := h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("a", offers[0], "cpus:1")))
	require.NoError(t, err)
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_LOST, ups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_INVALID_OFFERS, ups[0].GetReason())
	assert.Contains(t, ups[0].GetMessage(), "different agents")

	h.advance(40 * time.Millisecond)
	offers = h.offers(fs)
	require.Len(t, offers, 2, "both offers' resources came back")
	first := offers[0]

	for _, tc := range []struct {
		name   string
		offers func() []mesospb.OfferID
		tasks  func() []mesospb.TaskInfo
		state  mesospb.TaskState
		reason mesospb.TaskStatus_Reason
		msg    string
	}{
		{"unknown offer", func() []mesospb.OfferID { return []mesospb.OfferID{{Value: "nope"}} },
			func() []mesospb.TaskInfo { return []mesospb.TaskInfo{commandTask("b", first, "cpus:1")} },
			mesospb.TASK_LOST, mesospb.TaskStatus_REASON_INVALID_OFFERS, "no longer valid"},
		{"too many resources", func() []mesospb.OfferID { return offerIDs(first) },
			func() []mesospb.TaskInfo { return []mesospb.TaskInfo{commandTask("c", first, "cpus:3")} },
			mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "needs"},
		{"no resources", func() []mesospb.OfferID { return offerIDs(first) },
			func() []mesospb.TaskInfo { return []mesospb.TaskInfo{commandTask("d", first, "")} },
			mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "uses no resources"},
		{"bad task ID", func() []mesospb.OfferID { return offerIDs(first) },
			func() []mesospb.TaskInfo { return []mesospb.TaskInfo{commandTask("a/b", first, "cpus:1")} },
			mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "task ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offers := tc.offers()
			require.NoError(t, h.call(fs, fid, launchCall(offers, tc.tasks()...)))
			ups := h.updates(fs)
			require.Len(t, ups, 1)
			assert.Equal(t, tc.state, ups[0].GetState())
			assert.Equal(t, tc.reason, ups[0].GetReason())
			assert.Contains(t, ups[0].GetMessage(), tc.msg)
			assert.Equal(t, mesospb.TaskStatus_SOURCE_MASTER, ups[0].GetSource())
			assert.Nil(t, ups[0].UUID, "master-made updates are not acknowledged")
			h.advance(40 * time.Millisecond)
			if offers[0].Value != "nope" {
				again := h.offers(fs)
				require.Len(t, again, 1, "the offer's resources came back")
				assert.Equal(t, 2.0, sumOffers(again).CPUs())
				first = again[0]
			}
		})
	}

	// A duplicate task ID within one ACCEPT: the first launches, the
	// second is refused, and the second's resources are not used.
	t1, t2 := commandTask("dup", first, "cpus:1"), commandTask("dup", first, "cpus:1")
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(first), t1, t2)))
	ups = h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_ERROR, ups[0].GetState())
	assert.Contains(t, ups[0].GetMessage(), "already in use")
	h.advance(40 * time.Millisecond)
	assert.Equal(t, 1.0, sumOffers(h.offers(fs)).CPUs())
}

func TestDeclineFilterExpires(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(),
		Decline: &schedulerpb.Call_Decline{OfferIDs: offerIDs(offers...), Filters: &mesospb.Filters{RefuseSeconds: ptr(10.0)}}}))
	h.advance(9 * time.Second)
	assert.Empty(t, h.offers(fs), "filtered for refuse_seconds")
	h.advance(2 * time.Second)
	assert.Len(t, h.offers(fs), 1, "offered again once the filter expired")
}

func TestDisconnectWithoutFailoverKillsTasks(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	as, _ := h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("t", offers[0], "cpus:1"))))
	h.agentEventsOf(as, internalpb.Event_RUN_TASK)

	h.sm.StreamEnded(fs)
	h.collect()
	shut := h.agentEventsOf(as, internalpb.Event_SHUTDOWN_FRAMEWORK)
	require.Len(t, shut, 1)
	assert.Equal(t, fid, shut[0].ShutdownFramework.FrameworkID.Value)
	assert.Empty(t, h.sm.State().GetFrameworks.Frameworks)
}

func TestResubscribeWithinFailoverKeepsTasks(t *testing.T) {
	h := newHarness(t, master.Config{AgentPingTimeout: time.Hour}) // the agent stays, silent
	info := frameworkInfo("fw")
	info.FailoverTimeout = ptr(60.0)
	fs, fid := h.subscribe(info)
	as, aid := h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("t", offers[0], "cpus:1"))))
	h.sendStatus(as, aid, fid, "t", mesospb.TASK_RUNNING)

	h.sm.StreamEnded(fs)
	h.advance(30 * time.Second)
	assert.Empty(t, h.agentEventsOf(as, internalpb.Event_SHUTDOWN_FRAMEWORK))

	info.ID = &mesospb.FrameworkID{Value: fid}
	fs2, fid2 := h.subscribe(info)
	assert.Equal(t, fid, fid2)
	// Implicit reconciliation reports the running task.
	require.NoError(t, h.call(fs2, fid, &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{}}))
	ups := h.updates(fs2)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_RUNNING, ups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, ups[0].GetReason())

	// Past the timeout after a second disconnect, the tasks are killed.
	h.sm.StreamEnded(fs2)
	h.advance(61 * time.Second)
	assert.Len(t, h.agentEventsOf(as, internalpb.Event_SHUTDOWN_FRAMEWORK), 1)
}

func TestSecondSubscribeClosesFirst(t *testing.T) {
	h := newHarness(t, master.Config{})
	info := frameworkInfo("fw")
	info.FailoverTimeout = ptr(60.0)
	fs, fid := h.subscribe(info)
	info.ID = &mesospb.FrameworkID{Value: fid}
	fs2, _ := h.subscribe(info)
	assert.True(t, h.closed[fs])
	assert.False(t, h.closed[fs2])
	err := h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()})
	assert.ErrorIs(t, err, master.ErrInvalidCall, "the old stream's ID no longer matches, a 400 as in Mesos")
}

func TestReconcileExplicitAndKillUnknown(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(),
		Reconcile: &schedulerpb.Call_Reconcile{Tasks: []schedulerpb.Call_Reconcile_Task{{TaskID: mesospb.TaskID{Value: "ghost"}}}}}))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, "ghost", ups[0].TaskID.Value)
	assert.Equal(t, mesospb.TASK_LOST, ups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, ups[0].GetReason())

	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_KILL.Enum(),
		Kill: &schedulerpb.Call_Kill{TaskID: mesospb.TaskID{Value: "ghost"}}}))
	ups = h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_LOST, ups[0].GetState())
}

func TestKillGoesToAgent(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	as, _ := h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("t", offers[0], "cpus:1"))))
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_KILL.Enum(),
		Kill: &schedulerpb.Call_Kill{TaskID: mesospb.TaskID{Value: "t"}}}))
	kills := h.agentEventsOf(as, internalpb.Event_KILL_TASK)
	require.Len(t, kills, 1)
	assert.Equal(t, "t", kills[0].KillTask.TaskID.Value)
}

func TestUnreachableAgentLosesTasks(t *testing.T) {
	h := newHarness(t, master.Config{AgentPingTimeout: time.Second, MaxAgentPingTimeouts: 3})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	as, aid := h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("t", offers[0], "cpus:1"))))

	// The agent answers pings for a while...
	for i := 0; i < 5; i++ {
		h.advance(time.Second)
		if len(h.agentEventsOf(as, internalpb.Event_PING)) > 0 {
			require.NoError(t, h.agentCall(as, aid, &internalpb.Call{Type: internalpb.Call_PONG.Enum()}))
		}
	}
	assert.Empty(t, h.updates(fs))
	// ...then goes silent.
	h.advance(4 * time.Second)
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_LOST, ups[0].GetState())
	assert.Empty(t, h.sm.State().GetAgents.Agents)
	assert.True(t, h.closed[as])
}

// An agent whose PONGs are late but whose other calls keep coming is alive:
// a busy agent is not removed with its tasks.
func TestBusyAgentIsNotRemoved(t *testing.T) {
	h := newHarness(t, master.Config{AgentPingTimeout: time.Second, MaxAgentPingTimeouts: 2})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	as, aid := h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("t", offers[0], "cpus:1"))))
	for i := range 6 {
		h.advance(time.Second)
		// A status update each interval, never a PONG.
		require.NoError(t, h.agentCall(as, aid, &internalpb.Call{Type: internalpb.Call_STATUS_UPDATE.Enum(),
			StatusUpdate: &internalpb.Call_StatusUpdate{FrameworkID: mesospb.FrameworkID{Value: fid},
				Status: mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t"}, State: mesospb.TASK_RUNNING.Enum(), Message: ptr(strconv.Itoa(i))}}}))
	}
	assert.Len(t, h.sm.State().GetAgents.Agents, 1)
	assert.False(t, h.closed[as])
	h.advance(3 * time.Second)
	assert.Empty(t, h.sm.State().GetAgents.Agents, "silent: removed")
}

func TestCallsNeedTheirStream(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	_, other := h.subscribe(frameworkInfo("other"))
	// Mesos's answers: 400 for a stream that is not the framework's (or
	// none), 400 for a framework it does not know, 403 for a framework
	// that is not subscribed now.
	assert.ErrorIs(t, h.call("no-such-stream", fid, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}), master.ErrInvalidCall)
	assert.ErrorIs(t, h.call("", fid, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}), master.ErrInvalidCall)
	assert.ErrorIs(t, h.call(fs, other, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}), master.ErrInvalidCall)
	assert.ErrorIs(t, h.call(fs, "no-such-framework", &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}), master.ErrInvalidCall)
	assert.ErrorIs(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum()}), master.ErrInvalidCall)
	_, err := h.sm.SubscribeScheduler(&schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()})
	assert.ErrorIs(t, err, master.ErrInvalidCall)
	bad := frameworkInfo("bad")
	bad.Roles = []string{"a"}
	_, err = h.sm.SubscribeScheduler(&schedulerpb.Call{Type: schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: bad}})
	assert.ErrorIs(t, err, master.ErrInvalidCall, "roles without MULTI_ROLE")
}

func TestReregisterWithEndedTaskFreesIt(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	as, aid := h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	task := commandTask("t", offers[0], "cpus:1")
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), task)))
	runs := h.agentEventsOf(as, internalpb.Event_RUN_TASK)
	require.Len(t, runs, 1)

	// The agent reconnects reporting the task finished while it was away.
	h.sm.StreamEnded(as)
	h.collect()
	total := resources.MustParse("cpus:2;mem:512")
	info := mesospb.AgentInfo{Hostname: "host", ID: &mesospb.AgentID{Value: aid}, Resources: total.ToProto()}
	as2, err := h.sm.ConnectAgent(&internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
		AgentInfo: info,
		Tasks: []mesospb.Task{{Name: "t", TaskID: task.TaskID, FrameworkID: mesospb.FrameworkID{Value: fid},
			AgentID: mesospb.AgentID{Value: aid}, State: mesospb.TASK_FINISHED.Enum(), Resources: runs[0].RunTask.Task.Resources}},
	}})
	require.NoError(t, err)
	h.collect()
	require.Len(t, h.agentEventsOf(as2, internalpb.Event_REREGISTERED), 1)
	h.advance(2 * time.Second)
	var cpus float64
	for _, o := range h.offers(fs) {
		cpus += sumOffers([]mesospb.Offer{o}).CPUs()
	}
	assert.Equal(t, 2.0, cpus, "the ended task's cpu is offered again")
}

func TestDisconnectedAgentIsNotOffered(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, _ := h.subscribe(frameworkInfo("fw"))
	as, aid := h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	require.Len(t, h.offers(fs), 1)

	h.sm.StreamEnded(as)
	h.collect()
	rescinds := 0
	for _, ev := range h.take(fs) {
		if ev.GetType() == schedulerpb.Event_RESCIND {
			rescinds++
		}
	}
	assert.Equal(t, 1, rescinds, "the agent's offer is rescinded")
	h.advance(3 * time.Second)
	assert.Empty(t, h.offers(fs), "no offers from a disconnected agent")

	total := resources.MustParse("cpus:2;mem:512")
	_, err := h.sm.ConnectAgent(&internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
		AgentInfo: mesospb.AgentInfo{Hostname: "host", ID: &mesospb.AgentID{Value: aid}, Resources: total.ToProto()},
	}})
	require.NoError(t, err)
	h.advance(40 * time.Millisecond)
	assert.Len(t, h.offers(fs), 1, "offered again once it is back")
}

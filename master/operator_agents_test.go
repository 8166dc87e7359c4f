package master_test

import (
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

func mustProto(res string) []mesospb.Resource { return resources.MustParse(res).ToProto() }

func agentCall(typ masterpb.Call_Type, agentID string) *masterpb.Call {
	id := mesospb.AgentID{Value: agentID}
	c := &masterpb.Call{Type: typ.Enum()}
	switch typ {
	case masterpb.Call_DEACTIVATE_AGENT:
		c.DeactivateAgent = &masterpb.Call_DeactivateAgent{AgentID: id}
	case masterpb.Call_REACTIVATE_AGENT:
		c.ReactivateAgent = &masterpb.Call_ReactivateAgent{AgentID: id}
	case masterpb.Call_MARK_AGENT_GONE:
		c.MarkAgentGone = &masterpb.Call_MarkAgentGone{AgentID: id}
	case masterpb.Call_DRAIN_AGENT:
		c.DrainAgent = &masterpb.Call_DrainAgent{AgentID: id}
	}
	return c
}

func reconcileCall(taskID, agentID string) *schedulerpb.Call {
	return &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{
		Tasks: []schedulerpb.Call_Reconcile_Task{{TaskID: mesospb.TaskID{Value: taskID}, AgentID: &mesospb.AgentID{Value: agentID}}},
	}}
}

func drainCall(agentID string, maxGrace time.Duration, markGone bool) *masterpb.Call {
	c := agentCall(masterpb.Call_DRAIN_AGENT, agentID)
	if maxGrace >= 0 {
		c.DrainAgent.MaxGracePeriod = &masterpb.Duration{Seconds: ptr(int64(maxGrace / time.Second))}
	}
	c.DrainAgent.MarkGone = ptr(markGone)
	return c
}

func grace(d time.Duration) *mesospb.KillPolicy {
	return &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: int64(d)}}
}

// getAgent returns the agent's GET_AGENTS entry, or nil.
func (h *harness) getAgent(agentID string) *masterpb.Response_GetAgents_Agent {
	for _, a := range h.sm.State().GetAgents.Agents {
		if a.AgentInfo.ID.Value == agentID {
			return &a
		}
	}
	return nil
}

// launch has the framework launch tasks on its first offer.
func (h *harness) launch(stream, frameworkID string, tasks ...mesospb.TaskInfo) {
	h.t.Helper()
	h.advance(40 * time.Millisecond)
	offers := h.offers(stream)
	require.NotEmpty(h.t, offers)
	for i := range tasks {
		tasks[i].AgentID = offers[0].AgentID
	}
	require.NoError(h.t, h.call(stream, frameworkID, launchCall(offerIDs(offers[0]), tasks...)))
	require.Empty(h.t, h.updates(stream), "tasks accepted")
}

func (h *harness) ack(stream, frameworkID, agentID, taskID string, uuid []byte) {
	h.t.Helper()
	require.NoError(h.t, h.call(stream, frameworkID, &schedulerpb.Call{
		Type: schedulerpb.Call_ACKNOWLEDGE.Enum(),
		Acknowledge: &schedulerpb.Call_Acknowledge{
			AgentID: mesospb.AgentID{Value: agentID}, TaskID: mesospb.TaskID{Value: taskID}, UUID: uuid,
		},
	}))
}

func (h *harness) reregister(agentID, res string) string {
	h.t.Helper()
	return h.reregisterWith(agentID, res, nil)
}

func (h *harness) reregisterWith(agentID, res string, tasks []mesospb.Task) string {
	h.t.Helper()
	info := mesospb.AgentInfo{Hostname: "host-" + res, ID: &mesospb.AgentID{Value: agentID}, Resources: mustProto(res)}
	stream, err := h.sm.ConnectAgent(&internalpb.Call{
		Type:       internalpb.Call_REREGISTER.Enum(),
		Reregister: &internalpb.Call_Reregister{AgentInfo: info, Tasks: tasks},
	})
	require.NoError(h.t, err)
	h.collect()
	return stream
}

func TestOperatorTeardown(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("doomed"))
	h.launch(fs, fid, commandTask("t1", mesospb.Offer{}, "cpus:1;mem:64"))
	h.takeAgent(as)

	_, err := h.operator(&masterpb.Call{Type: masterpb.Call_TEARDOWN.Enum()})
	require.ErrorIs(t, err, master.ErrInvalidCall, "teardown missing")
	_, err = h.operator(&masterpb.Call{Type: masterpb.Call_TEARDOWN.Enum(),
		Teardown: &masterpb.Call_Teardown{FrameworkID: mesospb.FrameworkID{Value: "nope"}}})
	require.ErrorIs(t, err, master.ErrInvalidCall, "unknown framework: 400, as Mesos")

	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_TEARDOWN.Enum(),
		Teardown: &masterpb.Call_Teardown{FrameworkID: mesospb.FrameworkID{Value: fid}}})
	require.NoError(t, err)
	require.Nil(t, resp)
	assert.True(t, h.closed[fs], "the scheduler's stream ends")
	shut := h.agentEventsOf(as, internalpb.Event_SHUTDOWN_FRAMEWORK)
	require.Len(t, shut, 1)
	assert.Equal(t, fid, shut[0].ShutdownFramework.FrameworkID.Value)
	for _, f := range h.sm.State().GetFrameworks.Frameworks {
		assert.NotEqual(t, fid, f.FrameworkInfo.ID.Value)
	}
	require.Empty(t, h.sm.State().GetTasks.Tasks)
	_ = aid
}

func TestDeactivateReactivateAgent(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, _ := h.subscribe(frameworkInfo("f"))
	_, aid := h.registerAgent("cpus:4;mem:1024")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)

	_, err := h.operator(agentCall(masterpb.Call_DEACTIVATE_AGENT, "nope"))
	require.ErrorIs(t, err, master.ErrInvalidCall, "unknown agent")
	_, err = h.operator(agentCall(masterpb.Call_REACTIVATE_AGENT, aid))
	require.ErrorIs(t, err, master.ErrInvalidCall, "not deactivated")

	resp, err := h.operator(agentCall(masterpb.Call_DEACTIVATE_AGENT, aid))
	require.NoError(t, err)
	require.Nil(t, resp)
	assert.Equal(t, []string{offers[0].ID.Value}, h.rescinded(fs), "its offers are rescinded")
	a := h.getAgent(aid)
	require.NotNil(t, a)
	assert.True(t, a.GetDeactivated())
	assert.False(t, a.Active, "Mesos reports a deactivated agent inactive")
	assert.Nil(t, a.DrainInfo)
	h.advance(2 * time.Second)
	assert.Empty(t, h.offers(fs), "no offers while deactivated")

	// It stays deactivated across a reconnection.
	h.reregister(aid, "cpus:4;mem:1024")
	h.advance(2 * time.Second)
	assert.Empty(t, h.offers(fs), "no offers after it re-registered")
	assert.True(t, h.getAgent(aid).GetDeactivated())

	resp, err = h.operator(agentCall(masterpb.Call_REACTIVATE_AGENT, aid))
	require.NoError(t, err)
	require.Nil(t, resp)
	h.advance(40 * time.Millisecond)
	assert.Len(t, h.offers(fs), 1, "offered again")
	a = h.getAgent(aid)
	assert.False(t, a.GetDeactivated())
	assert.True(t, a.Active)
}

func TestDrainAgent(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	long := commandTask("long", mesospb.Offer{}, "cpus:1;mem:64")
	long.KillPolicy = grace(time.Minute)
	short := commandTask("short", mesospb.Offer{}, "cpus:1;mem:64")
	short.KillPolicy = grace(5 * time.Second)
	none := commandTask("none", mesospb.Offer{}, "cpus:1;mem:64")
	h.launch(fs, fid, long, short, none)
	h.takeAgent(as)

	_, err := h.operator(drainCall("nope", -1, false))
	require.ErrorIs(t, err, master.ErrInvalidCall, "unknown agent")

	resp, err := h.operator(drainCall(aid, 10*time.Second, false))
	require.NoError(t, err)
	require.Nil(t, resp)
	kills := map[string]*mesospb.KillPolicy{}
	for _, ev := range h.agentEventsOf(as, internalpb.Event_KILL_TASK) {
		kills[ev.KillTask.TaskID.Value] = ev.KillTask.KillPolicy
	}
	assert.Equal(t, map[string]*mesospb.KillPolicy{
		"long":  grace(10 * time.Second), // capped
		"short": nil,                     // its own is shorter
		"none":  grace(10 * time.Second), // the cap, for a task without one
	}, kills)
	a := h.getAgent(aid)
	require.NotNil(t, a.DrainInfo)
	assert.Equal(t, mesospb.DRAINING, a.DrainInfo.State)
	assert.Equal(t, int64(10*time.Second), a.DrainInfo.Config.MaxGracePeriod.Nanoseconds)
	assert.False(t, a.DrainInfo.Config.GetMarkGone())
	assert.NotNil(t, a.EstimatedDrainStartTime)
	assert.True(t, a.GetDeactivated())

	_, err = h.operator(agentCall(masterpb.Call_REACTIVATE_AGENT, aid))
	require.ErrorIs(t, err, master.ErrInvalidCall, "still DRAINING")

	// Terminal updates count until acknowledged, as in Mesos.
	var uuids [][]byte
	for _, id := range []string{"long", "short", "none"} {
		uuids = append(uuids, h.sendStatus(as, aid, fid, id, mesospb.TASK_KILLED))
	}
	h.advance(40 * time.Millisecond)
	assert.Equal(t, mesospb.DRAINING, h.getAgent(aid).DrainInfo.State)
	for i, id := range []string{"long", "short", "none"} {
		h.ack(fs, fid, aid, id, uuids[i])
	}
	h.advance(40 * time.Millisecond)
	a = h.getAgent(aid)
	require.NotNil(t, a, "drained, not removed")
	assert.Equal(t, mesospb.DRAINED, a.DrainInfo.State)
	h.offers(fs)
	h.advance(2 * time.Second)
	assert.Empty(t, h.offers(fs), "a drained agent stays deactivated")

	resp, err = h.operator(agentCall(masterpb.Call_REACTIVATE_AGENT, aid))
	require.NoError(t, err)
	require.Nil(t, resp)
	a = h.getAgent(aid)
	assert.Nil(t, a.DrainInfo)
	assert.False(t, a.GetDeactivated())
	h.advance(40 * time.Millisecond)
	assert.NotEmpty(t, h.offers(fs), "offered again")
}

// An agent with nothing on it is DRAINED at once; without
// max_grace_period the tasks' own kill policies apply.
func TestDrainAgentWithoutGracePeriod(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	long := commandTask("long", mesospb.Offer{}, "cpus:2;mem:64")
	long.KillPolicy = grace(time.Minute)
	h.launch(fs, fid, long)
	h.takeAgent(as)
	_, idle := h.registerAgent("cpus:1;mem:128")

	h.apply(drainCall(idle, -1, false))
	assert.Equal(t, mesospb.DRAINED, h.getAgent(idle).DrainInfo.State)

	h.apply(drainCall(aid, -1, false))
	kills := h.agentEventsOf(as, internalpb.Event_KILL_TASK)
	require.Len(t, kills, 1)
	assert.Nil(t, kills[0].KillTask.KillPolicy)
	assert.Nil(t, h.getAgent(aid).DrainInfo.Config.MaxGracePeriod)

	// A draining agent that reconnects is told again.
	h.reregisterWith(aid, "cpus:4;mem:1024", []mesospb.Task{{
		Name: "long", TaskID: mesospb.TaskID{Value: "long"}, FrameworkID: mesospb.FrameworkID{Value: fid},
		AgentID: mesospb.AgentID{Value: aid}, State: mesospb.TASK_RUNNING.Enum(), Resources: mustProto("cpus:2;mem:64"),
	}})
	var again int
	for stream := range h.agent {
		again += len(h.agentEventsOf(stream, internalpb.Event_KILL_TASK))
	}
	assert.Equal(t, 1, again)
}

// DRAIN_AGENT with mark_gone marks the agent gone once drained.
func TestDrainAgentMarkGone(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	h.launch(fs, fid, commandTask("t1", mesospb.Offer{}, "cpus:1;mem:64"))
	h.takeAgent(as)

	h.apply(drainCall(aid, 0, true))
	kills := h.agentEventsOf(as, internalpb.Event_KILL_TASK)
	require.Len(t, kills, 1)
	assert.Equal(t, grace(0), kills[0].KillTask.KillPolicy)
	h.ack(fs, fid, aid, "t1", h.sendStatus(as, aid, fid, "t1", mesospb.TASK_KILLED))
	h.advance(40 * time.Millisecond)
	assert.Nil(t, h.getAgent(aid), "gone")
	shut := h.agentEventsOf(as, internalpb.Event_SHUTDOWN)
	require.Len(t, shut, 1)
	assert.True(t, h.closed[as])

	again := h.reregister(aid, "cpus:4;mem:1024")
	evs := h.takeAgent(again)
	require.Len(t, evs, 1)
	assert.Equal(t, internalpb.Event_SHUTDOWN, evs[0].GetType(), "a gone agent is refused")
	assert.True(t, h.closed[again])
}

func TestMarkAgentGone(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	pa := frameworkInfo("pa")
	pa.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()}}
	ps, pid := h.subscribe(pa)
	h.launch(ps, pid, commandTask("p1", mesospb.Offer{}, "cpus:1;mem:64"))
	ls, lid := h.subscribe(frameworkInfo("legacy"))
	h.launch(ls, lid, commandTask("l1", mesospb.Offer{}, "cpus:1;mem:64"))
	h.takeAgent(as)

	_, err := h.operator(agentCall(masterpb.Call_MARK_AGENT_GONE, "nope"))
	require.ErrorIs(t, err, master.ErrNotFound, "404, as Mesos")
	_, err = h.operator(&masterpb.Call{Type: masterpb.Call_MARK_AGENT_GONE.Enum()})
	require.ErrorIs(t, err, master.ErrInvalidCall)

	resp, err := h.operator(agentCall(masterpb.Call_MARK_AGENT_GONE, aid))
	require.NoError(t, err)
	require.Nil(t, resp)
	up := h.updates(ps)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_GONE_BY_OPERATOR, up[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_AGENT_REMOVED_BY_OPERATOR, up[0].GetReason())
	up = h.updates(ls)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_LOST, up[0].GetState(), "not PARTITION_AWARE")
	assert.Equal(t, mesospb.TaskStatus_REASON_AGENT_REMOVED, up[0].GetReason())
	shut := h.agentEventsOf(as, internalpb.Event_SHUTDOWN)
	require.Len(t, shut, 1)
	assert.Equal(t, "Agent has been marked gone", shut[0].Shutdown.GetMessage())
	assert.Nil(t, h.getAgent(aid))

	_, err = h.operator(agentCall(masterpb.Call_MARK_AGENT_GONE, aid))
	require.NoError(t, err, "idempotent")

	// Explicit reconciliation of a task on it: Mesos's case (5).
	require.NoError(t, h.call(ps, pid, reconcileCall("p1", aid)))
	up = h.updates(ps)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_GONE_BY_OPERATOR, up[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, up[0].GetReason())
	require.NoError(t, h.call(ls, lid, reconcileCall("l1", aid)))
	up = h.updates(ls)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_LOST, up[0].GetState())
	_, err = h.operator(agentCall(masterpb.Call_DEACTIVATE_AGENT, aid))
	require.ErrorIs(t, err, master.ErrInvalidCall, "a gone agent is unknown")

	again := h.reregister(aid, "cpus:4;mem:1024")
	evs := h.takeAgent(again)
	require.Len(t, evs, 1)
	assert.Equal(t, internalpb.Event_SHUTDOWN, evs[0].GetType())
	assert.True(t, h.closed[again])
	assert.Nil(t, h.getAgent(aid))
}

// An agent removed for missed pings is unreachable: it can still be
// marked gone, and is then refused when it comes back; one deactivated
// while unreachable comes back deactivated.
func TestUnreachableAgentGoneOrDeactivated(t *testing.T) {
	h := newHarness(t, master.Config{AgentPingTimeout: time.Second, MaxAgentPingTimeouts: 2})
	fs, _ := h.subscribe(frameworkInfo("f"))
	_, gone := h.registerAgent("cpus:1;mem:128")
	_, away := h.registerAgent("cpus:2;mem:128")
	h.advance(4 * time.Second)
	require.Nil(t, h.getAgent(gone), "removed as unreachable")
	h.offers(fs)

	// Mesos's reconciliation case (4): the agent is unreachable.
	pa := frameworkInfo("pa")
	pa.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()}}
	ps, pid := h.subscribe(pa)
	require.NoError(t, h.call(ps, pid, reconcileCall("t1", gone)))
	up := h.updates(ps)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_UNREACHABLE, up[0].GetState())
	assert.NotNil(t, up[0].UnreachableTime)

	h.apply(agentCall(masterpb.Call_MARK_AGENT_GONE, gone))
	h.apply(agentCall(masterpb.Call_DEACTIVATE_AGENT, away))
	_, err := h.operator(agentCall(masterpb.Call_MARK_AGENT_GONE, "nope"))
	require.ErrorIs(t, err, master.ErrNotFound)

	s := h.reregister(gone, "cpus:1;mem:128")
	assert.True(t, h.closed[s], "gone")
	h.reregister(away, "cpus:2;mem:128")
	h.advance(40 * time.Millisecond)
	assert.True(t, h.getAgent(away).GetDeactivated())
	assert.Empty(t, h.offers(fs))
}

// As Mesos, an agent on a machine in the maintenance schedule is not
// drained.
func TestDrainAgentInMaintenanceSchedule(t *testing.T) {
	h := newHarness(t, master.Config{})
	_, aid := h.registerAgent("cpus:1;mem:128")
	h.apply200(&masterpb.Call{
		Type: masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE.Enum(),
		UpdateMaintenanceSchedule: &masterpb.Call_UpdateMaintenanceSchedule{Schedule: masterpb.Schedule{Windows: []masterpb.Window{{
			MachineIDs:     []mesospb.MachineID{{Hostname: ptr("host-cpus:1;mem:128")}},
			Unavailability: mesospb.Unavailability{Start: mesospb.TimeInfo{Nanoseconds: h.now.Add(time.Hour).UnixNano()}},
		}}}},
	})
	_, err := h.operator(drainCall(aid, -1, false))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	assert.Contains(t, err.Error(), "maintenance schedule")
	assert.Nil(t, h.getAgent(aid).DrainInfo)
}

// apply200 makes an operator call that must succeed.
func (h *harness) apply200(call *masterpb.Call) {
	h.t.Helper()
	_, err := h.operator(call)
	require.NoError(h.t, err)
}

package master_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
)

// reregisterWithTask has an agent this master has never seen (it just
// failed over) re-register with one running task of framework fi.
func (h *harness) reregisterWithTask(agentID string, fi mesospb.FrameworkInfo, taskID string) string {
	h.t.Helper()
	res := mustProto("cpus:1;mem:64")
	stream, err := h.sm.ConnectAgent(&internalpb.Call{
		Type: internalpb.Call_REREGISTER.Enum(),
		Reregister: &internalpb.Call_Reregister{
			AgentInfo: mesospb.AgentInfo{Hostname: "host", ID: &mesospb.AgentID{Value: agentID}, Resources: mustProto("cpus:4;mem:1024")},
			Tasks: []mesospb.Task{{
				Name: taskID, TaskID: mesospb.TaskID{Value: taskID}, FrameworkID: *fi.ID,
				AgentID: mesospb.AgentID{Value: agentID}, State: mesospb.TASK_RUNNING.Enum(), Resources: res,
			}},
			Frameworks: []mesospb.FrameworkInfo{fi},
		},
	})
	require.NoError(h.t, err)
	h.collect()
	require.Len(h.t, h.agentEventsOf(stream, internalpb.Event_REREGISTERED), 1)
	return stream
}

// resubscribe sends a SUBSCRIBE with info (which carries an ID) and returns
// the new stream and what it received.
func (h *harness) resubscribe(info mesospb.FrameworkInfo) (string, []*schedulerpb.Event) {
	h.t.Helper()
	stream, err := h.sm.SubscribeScheduler(&schedulerpb.Call{
		Type:        schedulerpb.Call_SUBSCRIBE.Enum(),
		FrameworkID: info.ID,
		Subscribe:   &schedulerpb.Call_Subscribe{FrameworkInfo: info},
	})
	require.NoError(h.t, err)
	h.collect()
	return stream, h.take(stream)
}

// Item 6 of issue 9. A framework the master knows only from an agent's
// re-registration (after a master failover) is in Mesos's RECOVERED
// state: no failover timer runs for it, whatever its failover_timeout,
// and its tasks keep running until it subscribes again. Only once it has
// subscribed and disconnected does its failover timeout count.
func TestFrameworkRecoveredFromAgentHasNoFailoverTimer(t *testing.T) {
	h := newHarness(t, master.Config{})
	fi := frameworkInfo("f") // failover_timeout 0
	fi.ID = &mesospb.FrameworkID{Value: "fw-recovered"}
	fi.Principal = ptr("p")
	as := h.reregisterWithTask("agent-1", fi, "t1")

	h.advance(10 * time.Second)
	h.collect()
	assert.Empty(t, h.agentEventsOf(as, internalpb.Event_SHUTDOWN_FRAMEWORK), "the recovered framework's tasks are not killed")
	st := h.sm.State()
	require.Len(t, st.GetFrameworks.Frameworks, 1, "the recovered framework is kept")
	assert.Empty(t, st.GetFrameworks.CompletedFrameworks)
	require.Len(t, st.GetTasks.Tasks, 1)
	assert.Equal(t, mesospb.TASK_RUNNING, st.GetTasks.Tasks[0].GetState())

	// Someone with its ID but another principal cannot take it over.
	other := fi
	other.Principal = ptr("intruder")
	other.User = "root"
	s, evs := h.resubscribe(other)
	require.Len(t, evs, 1)
	assert.Equal(t, schedulerpb.Event_ERROR, evs[0].GetType())
	assert.True(t, h.closed[s])
	require.Len(t, h.sm.State().GetFrameworks.Frameworks, 1)

	// The framework comes back and finds its task.
	fs, fid := h.subscribe(fi)
	assert.Equal(t, "fw-recovered", fid)
	st = h.sm.State()
	require.Len(t, st.GetFrameworks.Frameworks, 1)
	assert.True(t, st.GetFrameworks.Frameworks[0].Connected)
	require.Len(t, st.GetTasks.Tasks, 1)

	// Once subscribed, a disconnect starts its failover timeout (0 here).
	h.sm.StreamEnded(fs)
	h.collect()
	assert.Len(t, h.agentEventsOf(as, internalpb.Event_SHUTDOWN_FRAMEWORK), 1)
	assert.Len(t, h.sm.State().GetFrameworks.CompletedFrameworks, 1)
}

// Item 8 of issue 9. A SUBSCRIBE with the framework's ID while its old
// connection is still open fails the old instance over; as Mesos's
// Master::_failoverFramework, the old instance's offers are discarded
// (their resources go back to the allocator, no RESCIND: the old stream
// is told "Framework failed over" and closed) and offered again to the new
// instance.
func TestFailoverWithOpenConnectionDiscardsOffers(t *testing.T) {
	h := newHarness(t, master.Config{})
	info := frameworkInfo("f")
	info.FailoverTimeout = ptr(60.0)
	fs, fid := h.subscribe(info)
	h.registerAgent("cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	require.Len(t, h.offers(fs), 1)

	info.ID = &mesospb.FrameworkID{Value: fid}
	fs2, _ := h.subscribe(info) // the old stream is still open
	old := h.take(fs)
	require.Len(t, old, 1)
	assert.Equal(t, schedulerpb.Event_ERROR, old[0].GetType())
	assert.Equal(t, "Framework failed over", old[0].Error.GetMessage())
	assert.True(t, h.closed[fs])
	assert.Empty(t, h.sm.State().GetFrameworks.Frameworks[0].Offers, "the old instance's offers are gone")

	h.advance(40 * time.Millisecond)
	assert.Empty(t, h.schedEventsOf(fs2, schedulerpb.Event_RESCIND), "the new instance never saw the old offers")
	assert.Equal(t, 2.0, sumOffers(h.offers(fs2)).CPUs(), "the whole agent is offered to the new instance")
}

// Item 8 of issue 9, inverse offers: as Mesos's _failoverFramework, the
// old instance's inverse offers are removed on failover, silently (the new
// instance never saw them, so it is sent no RESCIND_INVERSE_OFFER), and
// the new instance gets new ones.
func TestFailoverWithOpenConnectionDropsInverseOffers(t *testing.T) {
	info := frameworkInfo("fw")
	info.FailoverTimeout = ptr(60.0)
	c := newMaintCluster(t, master.Config{}, info, wholeAgent)
	c.apply(maintSchedule(maintWindow(c.now, time.Hour, maintHost("draining-1"))))
	c.advance(40 * time.Millisecond)
	inv := c.inverseOffers(c.fs)
	require.Len(t, inv, 1)

	info.ID = &mesospb.FrameworkID{Value: c.fid}
	fs2, _ := c.subscribe(info) // the old stream is still open
	fws := c.sm.State().GetFrameworks.Frameworks
	require.Len(t, fws, 1)
	assert.Empty(t, fws[0].InverseOffers, "the old instance's inverse offers are gone at once")

	c.advance(40 * time.Millisecond)
	assert.Empty(t, c.inverseRescinds(fs2), "no rescind of an inverse offer the new instance never saw")
	again := c.inverseOffers(fs2)
	require.Len(t, again, 1)
	assert.NotEqual(t, inv[0].ID, again[0].ID)
}

// Item 9 of issue 9. A SUBSCRIBE with a framework's ID cannot change what
// Mesos does not let change: as Mesos's Master::_subscribe, user and
// checkpoint keep their values (validation::framework::
// preserveImmutableFields) and another principal is refused
// (validateUpdate) with an ERROR event on a stream that then ends, before
// the framework's current connection is touched. UPDATE_FRAMEWORK refuses
// all three with 400, as Master::updateFramework.
func TestResubscribeCannotChangeUserPrincipalOrCheckpoint(t *testing.T) {
	h := newHarness(t, master.Config{})
	info := frameworkInfo("f")
	info.User = "alice"
	info.Principal = ptr("p")
	info.Checkpoint = ptr(true)
	info.FailoverTimeout = ptr(60.0)
	fs, fid := h.subscribe(info)
	info.ID = &mesospb.FrameworkID{Value: fid}

	for name, principal := range map[string]*string{"another principal": ptr("q"), "no principal": nil} {
		t.Run(name, func(t *testing.T) {
			other := info
			other.Principal = principal
			other.User = "root"
			s, evs := h.resubscribe(other)
			require.Len(t, evs, 1)
			assert.Equal(t, schedulerpb.Event_ERROR, evs[0].GetType())
			assert.Equal(t, "Changing framework's principal is not allowed.", evs[0].Error.GetMessage())
			assert.True(t, h.closed[s])
			assert.False(t, h.closed[fs], "the framework's connection is untouched")
			require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}))
			fi := h.sm.State().GetFrameworks.Frameworks[0].FrameworkInfo
			assert.Equal(t, "alice", fi.User)
			assert.Equal(t, "p", fi.GetPrincipal())
		})
	}

	// Same principal, another user and checkpoint: subscribed, with the
	// old user and checkpoint kept.
	other := info
	other.User = "root"
	other.Checkpoint = ptr(false)
	other.Name = "renamed"
	fs2, evs := h.resubscribe(other)
	require.NotEmpty(t, evs)
	require.Equal(t, schedulerpb.Event_SUBSCRIBED, evs[0].GetType())
	fi := h.sm.State().GetFrameworks.Frameworks[0].FrameworkInfo
	assert.Equal(t, "alice", fi.User)
	assert.True(t, fi.GetCheckpoint())
	assert.Equal(t, "renamed", fi.Name, "what may change does")

	for name, mutate := range map[string]func(*mesospb.FrameworkInfo){
		"user":       func(fi *mesospb.FrameworkInfo) { fi.User = "root" },
		"principal":  func(fi *mesospb.FrameworkInfo) { fi.Principal = ptr("q") },
		"checkpoint": func(fi *mesospb.FrameworkInfo) { fi.Checkpoint = ptr(false) },
	} {
		upd := fi
		mutate(&upd)
		err := h.call(fs2, fid, &schedulerpb.Call{
			Type:            schedulerpb.Call_UPDATE_FRAMEWORK.Enum(),
			UpdateFramework: &schedulerpb.Call_UpdateFramework{FrameworkInfo: upd},
		})
		require.ErrorIs(t, err, master.ErrInvalidCall, name)
		assert.Contains(t, err.Error(), "FrameworkInfo update is not valid", name)
	}
	got := h.sm.State().GetFrameworks.Frameworks[0].FrameworkInfo
	assert.Equal(t, "alice", got.User)
	assert.Equal(t, "p", got.GetPrincipal())
	assert.True(t, got.GetCheckpoint())
}

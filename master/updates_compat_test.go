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

// Status updates the master makes itself, checked against Mesos's
// (Master::reconcile, Master::kill, Master::accept and
// protobuf::createStatusUpdate): SOURCE_MASTER, a timestamp, the agent ID
// when known, no uuid, and Mesos's states, reasons and messages.

func reconcileTasksCall(tasks ...schedulerpb.Call_Reconcile_Task) *schedulerpb.Call {
	return &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{Tasks: tasks}}
}

func requireMasterStatus(t *testing.T, st mesospb.TaskStatus, state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string) {
	t.Helper()
	assert.Equal(t, state, st.GetState())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_MASTER, st.GetSource())
	assert.Equal(t, reason, st.GetReason())
	assert.Equal(t, msg, st.GetMessage())
	assert.Nil(t, st.UUID, "nothing to acknowledge")
	assert.NotNil(t, st.Timestamp)
}

func TestReconciliationAnswersAsMesos(t *testing.T) {
	for _, partitionAware := range []bool{false, true} {
		h := newHarness(t, master.Config{})
		as, aid := h.registerAgent("cpus:4;mem:1024")
		info := frameworkInfo("f")
		if partitionAware {
			info = capabilities(info, mesospb.FrameworkInfo_Capability_PARTITION_AWARE)
		}
		fs, fid := h.subscribe(info)
		h.launch(fs, fid, commandTask("t1", mesospb.Offer{}, "cpus:1;mem:64"))
		h.sendStatus(as, aid, fid, "t1", mesospb.TASK_RUNNING)
		h.updates(fs)

		// Implicit: the latest state, that of the update not yet
		// acknowledged.
		require.NoError(t, h.call(fs, fid, reconcileTasksCall()))
		ups := h.updates(fs)
		require.Len(t, ups, 1)
		requireMasterStatus(t, ups[0], mesospb.TASK_RUNNING, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: Latest task state")
		assert.Equal(t, aid, ups[0].AgentID.GetValue())

		// Explicit, unknown task on a known agent: TASK_GONE (TASK_LOST for
		// a framework that is not partition-aware).
		require.NoError(t, h.call(fs, fid, reconcileTasksCall(schedulerpb.Call_Reconcile_Task{
			TaskID: mesospb.TaskID{Value: "nope"}, AgentID: &mesospb.AgentID{Value: aid}})))
		ups = h.updates(fs)
		require.Len(t, ups, 1)
		want := mesospb.TASK_LOST
		if partitionAware {
			want = mesospb.TASK_GONE
		}
		requireMasterStatus(t, ups[0], want, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: Task is unknown to the agent")

		// Explicit, unknown task, no agent: TASK_UNKNOWN (or TASK_LOST).
		require.NoError(t, h.call(fs, fid, reconcileTasksCall(schedulerpb.Call_Reconcile_Task{TaskID: mesospb.TaskID{Value: "nope"}})))
		ups = h.updates(fs)
		require.Len(t, ups, 1)
		want = mesospb.TASK_LOST
		if partitionAware {
			want = mesospb.TASK_UNKNOWN
		}
		requireMasterStatus(t, ups[0], want, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: Task is unknown")
		assert.Nil(t, ups[0].AgentID)

		// Killing an unknown task reconciles it.
		require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_KILL.Enum(),
			Kill: &schedulerpb.Call_Kill{TaskID: mesospb.TaskID{Value: "nope"}, AgentID: &mesospb.AgentID{Value: aid}}}))
		ups = h.updates(fs)
		require.Len(t, ups, 1)
		want = mesospb.TASK_LOST
		if partitionAware {
			want = mesospb.TASK_GONE
		}
		requireMasterStatus(t, ups[0], want, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: Task is unknown to the agent")
	}
}

// Reconciliation reports the state of the update the framework has not
// acknowledged yet: the state it will see next, as Mesos's
// status_update_state.
func TestReconciliationReportsTheUnacknowledgedState(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	h.launch(fs, fid, commandTask("t1", mesospb.Offer{}, "cpus:1;mem:64"))
	// The agent knows the task finished but sends the RUNNING update
	// first (its stream holds both).
	require.NoError(t, h.agentCall(as, aid, statusUpdateCall(fid, "t1", mesospb.TASK_RUNNING, mesospb.TASK_FINISHED)))
	h.updates(fs)
	require.NoError(t, h.call(fs, fid, reconcileTasksCall()))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_RUNNING, ups[0].GetState())
}

// A kill naming another agent than the task's is ignored, as Mesos does.
func TestKillNamingAnotherAgentIsIgnored(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, _ := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	h.launch(fs, fid, commandTask("t1", mesospb.Offer{}, "cpus:1;mem:64"))
	h.takeAgent(as)
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_KILL.Enum(),
		Kill: &schedulerpb.Call_Kill{TaskID: mesospb.TaskID{Value: "t1"}, AgentID: &mesospb.AgentID{Value: "other"}}}))
	assert.Empty(t, h.takeAgent(as), "no KILL_TASK")
	assert.Empty(t, h.updates(fs))
}

// A launch on offers that are no longer valid is answered as Mesos does:
// TASK_LOST (TASK_DROPPED when partition-aware), REASON_INVALID_OFFERS,
// "Task launched with invalid offers: ...".
func TestLaunchOnInvalidOffers(t *testing.T) {
	h := newHarness(t, master.Config{})
	_, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	task := commandTask("t1", mesospb.Offer{AgentID: mesospb.AgentID{Value: aid}}, "cpus:1;mem:64")
	require.NoError(t, h.call(fs, fid, launchCall([]mesospb.OfferID{{Value: "gone"}}, task)))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	requireMasterStatus(t, ups[0], mesospb.TASK_LOST, mesospb.TaskStatus_REASON_INVALID_OFFERS,
		"Task launched with invalid offers: offer gone is no longer valid")
	assert.Equal(t, aid, ups[0].AgentID.GetValue())
}

// An invalid task group is refused with REASON_TASK_GROUP_INVALID.
func TestInvalidTaskGroupReason(t *testing.T) {
	h := newHarness(t, master.Config{})
	h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	task := commandTask("g1", offers[0], "cpus:100")
	require.NoError(t, h.call(fs, fid, acceptOps(offers, 0, mesospb.Offer_Operation{
		Type: mesospb.Offer_Operation_LAUNCH_GROUP.Enum(),
		LaunchGroup: &mesospb.Offer_Operation_LaunchGroup{
			Executor:  mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "e"}, Type: mesospb.ExecutorInfo_DEFAULT.Enum()},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{task}},
		},
	})))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_ERROR, ups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_GROUP_INVALID, ups[0].GetReason())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_MASTER, ups[0].GetSource())
}

// statusUpdateCall is an agent's update of a task to state, the agent
// knowing it is in latest, with a uuid to acknowledge.
func statusUpdateCall(frameworkID, taskID string, state, latest mesospb.TaskState) *internalpb.Call {
	return &internalpb.Call{
		Type: internalpb.Call_STATUS_UPDATE.Enum(),
		StatusUpdate: &internalpb.Call_StatusUpdate{
			FrameworkID: mesospb.FrameworkID{Value: frameworkID},
			Status: mesospb.TaskStatus{
				TaskID: mesospb.TaskID{Value: taskID}, State: state.Enum(),
				Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: []byte(taskID + state.String()),
			},
			LatestState: latest.Enum(),
		},
	}
}

// An update from the agent reaches the scheduler with the agent's ID, the
// executor's ID and a timestamp, even when the status itself has none, as
// Mesos's master adds them from the update around the status; its uuid
// stays, to be acknowledged.
func TestAgentUpdateIsCompletedByTheMaster(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	h.launch(fs, fid, commandTask("t1", mesospb.Offer{}, "cpus:1;mem:64"))
	require.NoError(t, h.agentCall(as, aid, &internalpb.Call{
		Type: internalpb.Call_STATUS_UPDATE.Enum(),
		StatusUpdate: &internalpb.Call_StatusUpdate{
			FrameworkID: mesospb.FrameworkID{Value: fid},
			ExecutorID:  &mesospb.ExecutorID{Value: "t1"},
			Status: mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t1"}, State: mesospb.TASK_RUNNING.Enum(),
				Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: []byte("u1")},
		},
	}))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, aid, ups[0].AgentID.GetValue())
	assert.Equal(t, "t1", ups[0].ExecutorID.GetValue())
	assert.Equal(t, float64(h.now.UnixNano())/1e9, ups[0].GetTimestamp())
	assert.Equal(t, []byte("u1"), ups[0].UUID)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, ups[0].GetSource())
}

// A task whose check or health check is invalid is refused by the master
// with Mesos's message; in a group, every task gets "Task '<id>' is
// invalid: ..." with REASON_TASK_GROUP_INVALID.
func TestInvalidChecksAreRefused(t *testing.T) {
	negative := -1.0
	badHealth := &mesospb.HealthCheck{Type: mesospb.HealthCheck_TCP.Enum(), TCP: &mesospb.HealthCheck_TCPCheckInfo{Port: 80}, IntervalSeconds: &negative}

	h := newHarness(t, master.Config{})
	h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	task := commandTask("t1", offers[0], "cpus:1;mem:64")
	task.HealthCheck = badHealth
	require.NoError(t, h.call(fs, fid, launchCall([]mesospb.OfferID{offers[0].ID}, task)))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	requireMasterStatus(t, ups[0], mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID,
		"Task uses invalid health check: Expecting 'interval_seconds' to be non-negative")

	h.advance(6 * time.Second)
	offers = h.offers(fs)
	require.Len(t, offers, 1)
	good, bad := commandTask("g1", offers[0], "cpus:1;mem:64"), commandTask("g2", offers[0], "cpus:1;mem:64")
	bad.Check = &mesospb.CheckInfo{Type: mesospb.CheckInfo_HTTP.Enum()}
	require.NoError(t, h.call(fs, fid, acceptOps(offers, 0, mesospb.Offer_Operation{
		Type: mesospb.Offer_Operation_LAUNCH_GROUP.Enum(),
		LaunchGroup: &mesospb.Offer_Operation_LaunchGroup{
			Executor:  mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "e"}, Type: mesospb.ExecutorInfo_DEFAULT.Enum()},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{good, bad}},
		},
	})))
	ups = h.updates(fs)
	require.Len(t, ups, 2)
	for _, u := range ups {
		requireMasterStatus(t, u, mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_GROUP_INVALID,
			"Task 'g2' is invalid: Task uses invalid check: Expecting 'http' to be set for HTTP check")
	}
}

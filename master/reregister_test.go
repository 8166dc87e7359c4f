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

// removedAgentCluster is an agent running one task for a PARTITION_AWARE
// framework ("pa") and one for a framework that is not ("old"), both
// RUNNING and acknowledged, then silent until the master removes it for
// missed pings.
type removedAgentCluster struct {
	h                *harness
	agentStream      string
	agentID          string
	removedAt        time.Time
	paStream, paID   string
	oldStream, oldID string
	paTask, oldTask  mesospb.Task // as the agent reports them when it is back
}

func partitionAware(name string) mesospb.FrameworkInfo {
	info := frameworkInfo(name)
	info.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()}}
	return info
}

func newRemovedAgentCluster(t *testing.T) *removedAgentCluster {
	h := newHarness(t, master.Config{AgentPingTimeout: time.Second, MaxAgentPingTimeouts: 2})
	k := &removedAgentCluster{h: h}
	as, aid := h.registerAgent("cpus:4;mem:1024")
	k.agentStream, k.agentID = as, aid
	k.paStream, k.paID = h.subscribe(partitionAware("pa"))
	k.oldStream, k.oldID = h.subscribe(frameworkInfo("old"))
	h.launch(k.paStream, k.paID, commandTask("pa-task", mesospb.Offer{}, "cpus:1;mem:64"))
	h.launch(k.oldStream, k.oldID, commandTask("old-task", mesospb.Offer{}, "cpus:1;mem:64"))
	for _, ft := range [][3]string{{k.paStream, k.paID, "pa-task"}, {k.oldStream, k.oldID, "old-task"}} {
		uuid := h.sendStatus(as, aid, ft[1], ft[2], mesospb.TASK_RUNNING)
		up := h.updates(ft[0])
		require.Len(t, up, 1)
		require.Equal(t, mesospb.TASK_RUNNING, up[0].GetState())
		h.ack(ft[0], ft[1], aid, ft[2], uuid)
	}
	running := func(fid, tid string) mesospb.Task {
		return mesospb.Task{
			Name: tid, TaskID: mesospb.TaskID{Value: tid}, FrameworkID: mesospb.FrameworkID{Value: fid},
			AgentID: mesospb.AgentID{Value: aid}, State: mesospb.TASK_RUNNING.Enum(),
			Resources: mustProto("cpus:1;mem:64"),
			Statuses: []mesospb.TaskStatus{{
				TaskID: mesospb.TaskID{Value: tid}, State: mesospb.TASK_RUNNING.Enum(), Healthy: ptr(true),
				ContainerStatus: &mesospb.ContainerStatus{ExecutorPid: ptr(uint32(42))},
			}},
		}
	}
	k.paTask, k.oldTask = running(k.paID, "pa-task"), running(k.oldID, "old-task")

	// The agent goes silent: no PONG.
	for i := 0; i < 200 && h.getAgent(aid) != nil; i++ {
		h.advance(20 * time.Millisecond)
	}
	require.Nil(t, h.getAgent(aid), "removed for missed pings")
	k.removedAt = h.now
	return k
}

// After an agent is removed for missed pings (its tasks reported
// TASK_UNREACHABLE, or TASK_LOST), and it re-registers with them still
// running, each framework is told the task's current state with
// REASON_AGENT_REREGISTERED, as Mesos's Master::__reregisterSlave does.
func TestRemovedAgentReregistersWithRunningTasks(t *testing.T) {
	k := newRemovedAgentCluster(t)
	h := k.h
	up := h.updates(k.paStream)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_UNREACHABLE, up[0].GetState())
	up = h.updates(k.oldStream)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_LOST, up[0].GetState())
	// Its stream ends, but it is not told to shut down (which would kill
	// its tasks): Mesos's __removeSlave sends an agent it marks
	// unreachable nothing, so that it may come back.
	assert.True(t, h.closed[k.agentStream])
	assert.Empty(t, h.agentEventsOf(k.agentStream, internalpb.Event_SHUTDOWN))

	h.advance(5 * time.Second)
	s := h.reregisterWith(k.agentID, "cpus:4;mem:1024", []mesospb.Task{k.paTask, k.oldTask})
	assert.False(t, h.closed[s], "readmitted")

	for _, fs := range []struct{ stream, task string }{{k.paStream, "pa-task"}, {k.oldStream, "old-task"}} {
		up := h.updates(fs.stream)
		require.Len(t, up, 1, fs.task)
		st := up[0]
		assert.Equal(t, fs.task, st.TaskID.Value)
		assert.Equal(t, mesospb.TASK_RUNNING, st.GetState())
		assert.Equal(t, mesospb.TaskStatus_REASON_AGENT_REREGISTERED, st.GetReason())
		assert.Equal(t, mesospb.TaskStatus_SOURCE_MASTER, st.GetSource())
		assert.Equal(t, "Unreachable agent re-reregistered", st.GetMessage())
		assert.Equal(t, k.agentID, st.GetAgentID().GetValue())
		assert.Nil(t, st.UUID, "nothing to acknowledge")
		assert.True(t, st.GetHealthy(), "the health of its latest status")
		assert.Equal(t, uint32(42), st.GetContainerStatus().GetExecutorPid())
	}

	// The task is live again, and no longer among the completed ones
	// (MESOS-9940): GET_TASKS lists it once, RUNNING.
	tasks := h.sm.State().GetTasks
	require.Len(t, tasks.Tasks, 2)
	assert.Empty(t, tasks.CompletedTasks, "old-task was completed as TASK_LOST")
	for _, tk := range tasks.Tasks {
		assert.Equal(t, mesospb.TASK_RUNNING, tk.GetState())
	}
	require.NoError(t, h.call(k.oldStream, k.oldID, &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{}}))
	up = h.updates(k.oldStream)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_RUNNING, up[0].GetState())
}

// A re-registering agent the master does not know at all (it failed
// over; Apron keeps no registry) has its tasks announced too, as Mesos
// does for an agent it does not know ("Unknown agent reregistered"); a
// framework that is not connected is not sent anything.
func TestUnknownAgentReregistersWithRunningTasks(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(partitionAware("pa"))
	away := frameworkInfo("away")
	away.FailoverTimeout = ptr(3600.0)
	gone, goneID := h.subscribe(away)
	h.sm.StreamEnded(gone)
	h.collect()
	task := func(fid, tid string) mesospb.Task {
		return mesospb.Task{
			Name: tid, TaskID: mesospb.TaskID{Value: tid}, FrameworkID: mesospb.FrameworkID{Value: fid},
			AgentID: mesospb.AgentID{Value: "agent-x"}, State: mesospb.TASK_RUNNING.Enum(),
			ExecutorID: &mesospb.ExecutorID{Value: "ex"}, Resources: mustProto("cpus:1;mem:64"),
		}
	}
	h.reregisterWith("agent-x", "cpus:4;mem:1024", []mesospb.Task{task(fid, "t"), task(goneID, "u")})
	up := h.updates(fs)
	require.Len(t, up, 1)
	assert.Equal(t, "t", up[0].TaskID.Value)
	assert.Equal(t, mesospb.TASK_RUNNING, up[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_AGENT_REREGISTERED, up[0].GetReason())
	assert.Equal(t, "Unknown agent reregistered", up[0].GetMessage())
	assert.Equal(t, "ex", up[0].GetExecutorID().GetValue())
	assert.Empty(t, h.sched[gone])
}

// An agent that only lost its connection (not removed) re-registers
// without any update, as in Mesos (___reregisterSlave).
func TestDisconnectedAgentReregistersQuietly(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(partitionAware("pa"))
	h.launch(fs, fid, commandTask("t", mesospb.Offer{}, "cpus:1;mem:64"))
	h.sm.StreamEnded(as)
	h.collect()
	h.reregisterWith(aid, "cpus:4;mem:1024", []mesospb.Task{{
		Name: "t", TaskID: mesospb.TaskID{Value: "t"}, FrameworkID: mesospb.FrameworkID{Value: fid},
		AgentID: mesospb.AgentID{Value: aid}, State: mesospb.TASK_RUNNING.Enum(), Resources: mustProto("cpus:1;mem:64"),
	}})
	assert.Empty(t, h.updates(fs))
}

// Reconciling a task on an agent removed for missed pings answers
// TASK_UNREACHABLE with the time it became unreachable (TASK_LOST for a
// framework that is not PARTITION_AWARE) while the agent is on the
// unreachable list: Mesos's Master::reconcile, case (4). Without the
// agent's ID it is case (6), TASK_UNKNOWN. Once the agent is back the
// task's own state is the answer.
func TestReconcileTaskOnUnreachableAgent(t *testing.T) {
	k := newRemovedAgentCluster(t)
	h := k.h
	h.updates(k.paStream)
	h.updates(k.oldStream)
	h.advance(3 * time.Second)

	require.NoError(t, h.call(k.paStream, k.paID, reconcileCall("pa-task", k.agentID)))
	up := h.updates(k.paStream)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_UNREACHABLE, up[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, up[0].GetReason())
	assert.Equal(t, "Reconciliation: Task is unreachable", up[0].GetMessage())
	require.NotNil(t, up[0].UnreachableTime)
	assert.Equal(t, k.removedAt.UnixNano(), up[0].UnreachableTime.Nanoseconds)

	require.NoError(t, h.call(k.oldStream, k.oldID, reconcileCall("old-task", k.agentID)))
	up = h.updates(k.oldStream)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_LOST, up[0].GetState())

	require.NoError(t, h.call(k.paStream, k.paID, &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{
		Tasks: []schedulerpb.Call_Reconcile_Task{{TaskID: mesospb.TaskID{Value: "pa-task"}}},
	}}))
	up = h.updates(k.paStream)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_UNKNOWN, up[0].GetState(), "no agent named: case (6)")

	h.reregisterWith(k.agentID, "cpus:4;mem:1024", []mesospb.Task{k.paTask})
	h.updates(k.paStream)
	require.NoError(t, h.call(k.paStream, k.paID, reconcileCall("pa-task", k.agentID)))
	up = h.updates(k.paStream)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_RUNNING, up[0].GetState())
}

// A task the master knows on an agent that re-registers without it (the
// agent restarted and did not recover it: its framework does not
// checkpoint) is reported to its framework as Mesos's agent answers the
// master's reconciliation of it (Master::reconcileKnownSlave,
// Slave::reregistered): TASK_LOST, TASK_DROPPED to a PARTITION_AWARE
// framework, REASON_RECONCILIATION, "Reconciliation: task unknown to the
// agent". Its resources are free again.
func TestAgentReregistersWithoutATask(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	paStream, paID := h.subscribe(partitionAware("pa"))
	oldStream, oldID := h.subscribe(frameworkInfo("old"))
	h.launch(paStream, paID, commandTask("pa-task", mesospb.Offer{}, "cpus:1;mem:64"))
	h.launch(oldStream, oldID, commandTask("old-task", mesospb.Offer{}, "cpus:1;mem:64"))
	h.sm.StreamEnded(as)
	h.collect()
	h.updates(paStream)
	h.updates(oldStream)

	h.reregisterWith(aid, "cpus:4;mem:1024", nil)
	for _, c := range []struct {
		stream, task string
		state        mesospb.TaskState
	}{{paStream, "pa-task", mesospb.TASK_DROPPED}, {oldStream, "old-task", mesospb.TASK_LOST}} {
		up := h.updates(c.stream)
		require.Len(t, up, 1, c.task)
		assert.Equal(t, c.task, up[0].TaskID.Value)
		assert.Equal(t, c.state, up[0].GetState(), c.task)
		assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, up[0].GetReason(), c.task)
		assert.Equal(t, "Reconciliation: task unknown to the agent", up[0].GetMessage(), c.task)
	}
	tasks := h.sm.State().GetTasks
	assert.Empty(t, tasks.Tasks, "no task runs")
	assert.Len(t, tasks.CompletedTasks, 2)
}

// An executor the master knows on an agent that re-registers without it
// (the agent restarted and did not recover it) is removed and its
// resources offered again, as Mesos's Master::reconcileKnownSlave removes
// the executors the agent does not report.
func TestAgentReregistersWithoutAnExecutor(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("fw"))
	task := commandTask("t", mesospb.Offer{}, "cpus:1;mem:64")
	task.Command = nil
	task.Executor = &mesospb.ExecutorInfo{
		ExecutorID: mesospb.ExecutorID{Value: "ex"},
		Command:    &mesospb.CommandInfo{Value: ptr("my-executor")},
		Resources:  mustProto("cpus:1;mem:32"),
	}
	h.launch(fs, fid, task)
	h.sm.StreamEnded(as)
	h.collect()
	h.take(fs)

	h.reregisterWith(aid, "cpus:4;mem:1024", nil)
	up := h.updates(fs)
	require.Len(t, up, 1)
	assert.Equal(t, mesospb.TASK_LOST, up[0].GetState())
	h.advance(time.Second)
	assert.Equal(t, 4.0, sumOffers(h.offers(fs)).CPUs(), "the task's and the executor's cpus are offered again")
}

package master_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
)

func teardownCall() *schedulerpb.Call {
	return &schedulerpb.Call{Type: schedulerpb.Call_TEARDOWN.Enum()}
}

// A torn-down framework is listed under completed_frameworks, neither
// active nor connected, with its unregistered time; its running task is
// marked TASK_KILLED by the master (REASON_FRAMEWORK_REMOVED) and listed
// with its finished ones under completed_tasks, as Mesos's
// Master::removeFramework does.
func TestTornDownFrameworkIsCompleted(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("done"))
	h.launch(fs, fid, commandTask("running", mesospb.Offer{}, "cpus:1;mem:64"), commandTask("finished", mesospb.Offer{}, "cpus:1;mem:64"))
	uuid := h.sendStatus(as, aid, fid, "finished", mesospb.TASK_FINISHED)
	h.ack(fs, fid, aid, "finished", uuid)
	h.sendStatus(as, aid, fid, "running", mesospb.TASK_RUNNING)
	h.updates(fs)

	require.NoError(t, h.call(fs, fid, teardownCall()))
	assert.True(t, h.closed[fs])
	assert.Empty(t, h.updates(fs), "no update for the killed task: nobody is there to take it")

	st := h.sm.State()
	assert.Empty(t, st.GetFrameworks.Frameworks)
	require.Len(t, st.GetFrameworks.CompletedFrameworks, 1)
	f := st.GetFrameworks.CompletedFrameworks[0]
	assert.Equal(t, fid, f.FrameworkInfo.ID.Value)
	assert.False(t, f.Active)
	assert.False(t, f.Connected)
	require.NotNil(t, f.UnregisteredTime)
	assert.Equal(t, h.now.UnixNano(), f.UnregisteredTime.Nanoseconds)
	assert.Empty(t, f.Offers)
	assert.Empty(t, f.AllocatedResources)

	assert.Empty(t, st.GetTasks.Tasks)
	require.Len(t, st.GetTasks.CompletedTasks, 2)
	byID := map[string]*mesospb.Task{}
	for i, task := range st.GetTasks.CompletedTasks {
		byID[task.TaskID.Value] = &st.GetTasks.CompletedTasks[i]
	}
	assert.Equal(t, mesospb.TASK_FINISHED, byID["finished"].GetState())
	killed := byID["running"]
	assert.Equal(t, mesospb.TASK_KILLED, killed.GetState())
	require.NotEmpty(t, killed.Statuses)
	last := killed.Statuses[len(killed.Statuses)-1]
	assert.Equal(t, mesospb.TASK_KILLED, last.GetState())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_MASTER, last.GetSource())
	assert.Equal(t, mesospb.TaskStatus_REASON_FRAMEWORK_REMOVED, last.GetReason())
	assert.Equal(t, "Framework "+fid+" removed", last.GetMessage())

	// GET_FRAMEWORKS and GET_TASKS say the same.
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_FRAMEWORKS.Enum()})
	require.NoError(t, err)
	require.Len(t, resp.GetFrameworks.CompletedFrameworks, 1)
	resp, err = h.operator(&masterpb.Call{Type: masterpb.Call_GET_TASKS.Enum()})
	require.NoError(t, err)
	assert.Len(t, resp.GetTasks.CompletedTasks, 2)
}

// A framework whose failover timeout ran out is completed too.
func TestFailedOverFrameworkIsCompleted(t *testing.T) {
	h := newHarness(t, master.Config{})
	info := frameworkInfo("gone")
	info.FailoverTimeout = ptr(1.0)
	fs, fid := h.subscribe(info)
	h.sm.StreamEnded(fs)
	h.advance(500 * time.Millisecond)
	require.Len(t, h.sm.State().GetFrameworks.Frameworks, 1, "within its failover timeout")
	h.advance(time.Second)
	st := h.sm.State()
	assert.Empty(t, st.GetFrameworks.Frameworks)
	require.Len(t, st.GetFrameworks.CompletedFrameworks, 1)
	assert.Equal(t, fid, st.GetFrameworks.CompletedFrameworks[0].FrameworkInfo.ID.Value)
}

// At most MaxCompletedFrameworks are kept, the oldest dropped first; the
// default is Mesos's 50.
func TestCompletedFrameworksAreBounded(t *testing.T) {
	h := newHarness(t, master.Config{MaxCompletedFrameworks: 3})
	var ids []string
	for i := range 5 {
		fs, fid := h.subscribe(frameworkInfo(fmt.Sprint("f", i)))
		require.NoError(t, h.call(fs, fid, teardownCall()))
		ids = append(ids, fid)
	}
	completed := h.sm.State().GetFrameworks.CompletedFrameworks
	require.Len(t, completed, 3)
	for i, f := range completed {
		assert.Equal(t, ids[2+i], f.FrameworkInfo.ID.Value, "oldest first, the two oldest dropped")
	}

	h = newHarness(t, master.Config{})
	for i := range 52 {
		fs, fid := h.subscribe(frameworkInfo(fmt.Sprint("f", i)))
		require.NoError(t, h.call(fs, fid, teardownCall()))
	}
	assert.Len(t, h.sm.State().GetFrameworks.CompletedFrameworks, 50)
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_FLAGS.Enum()})
	require.NoError(t, err)
	flags := map[string]string{}
	for _, f := range resp.GetFlags.Flags {
		flags[f.Name] = f.GetValue()
	}
	assert.Equal(t, "50", flags["max_completed_frameworks"])
	assert.Equal(t, "1000", flags["max_completed_tasks_per_framework"])
}

// The completed tasks of a completed framework are bounded by
// MaxCompletedTasksPerFramework.
func TestCompletedTasksOfACompletedFrameworkAreBounded(t *testing.T) {
	h := newHarness(t, master.Config{MaxCompletedTasksPerFramework: 2})
	_, _ = h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	var tasks []mesospb.TaskInfo
	for i := range 4 {
		tasks = append(tasks, commandTask(fmt.Sprint("t", i), mesospb.Offer{}, "cpus:0.5;mem:32"))
	}
	h.launch(fs, fid, tasks...)
	require.NoError(t, h.call(fs, fid, teardownCall()))
	assert.Len(t, h.sm.State().GetTasks.CompletedTasks, 2)
}

// A framework that was removed cannot subscribe again with its ID: as
// Mesos, the subscription answers one ERROR event, "Framework has been
// removed", and ends.
func TestRemovedFrameworkCannotResubscribe(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("f"))
	require.NoError(t, h.call(fs, fid, teardownCall()))

	info := frameworkInfo("f")
	info.ID = &mesospb.FrameworkID{Value: fid}
	stream, err := h.sm.SubscribeScheduler(&schedulerpb.Call{
		Type:        schedulerpb.Call_SUBSCRIBE.Enum(),
		FrameworkID: info.ID,
		Subscribe:   &schedulerpb.Call_Subscribe{FrameworkInfo: info},
	})
	require.NoError(t, err)
	h.collect()
	evs := h.take(stream)
	require.Len(t, evs, 1)
	assert.Equal(t, schedulerpb.Event_ERROR, evs[0].GetType())
	assert.Equal(t, "Framework has been removed", evs[0].Error.Message)
	assert.True(t, h.closed[stream])
	assert.Empty(t, h.sm.State().GetFrameworks.Frameworks)
	require.Error(t, h.call(stream, fid, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}), "the stream is no subscription")
}

// An agent that re-registers with a completed framework's executors is
// told to shut the framework down; the framework stays completed.
func TestReregisteringAgentShutsDownACompletedFramework(t *testing.T) {
	h := newHarness(t, master.Config{})
	_, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	require.NoError(t, h.call(fs, fid, teardownCall()))

	info := mesospb.AgentInfo{Hostname: "host-cpus:4;mem:1024", ID: &mesospb.AgentID{Value: aid}, Resources: mustProto("cpus:4;mem:1024")}
	fi := frameworkInfo("f")
	fi.ID = &mesospb.FrameworkID{Value: fid}
	stream, err := h.sm.ConnectAgent(&internalpb.Call{
		Type:       internalpb.Call_REREGISTER.Enum(),
		Reregister: &internalpb.Call_Reregister{AgentInfo: info, Frameworks: []mesospb.FrameworkInfo{fi}},
	})
	require.NoError(t, err)
	h.collect()
	shut := h.agentEventsOf(stream, internalpb.Event_SHUTDOWN_FRAMEWORK)
	require.Len(t, shut, 1)
	assert.Equal(t, fid, shut[0].ShutdownFramework.FrameworkID.Value)
	st := h.sm.State()
	assert.Empty(t, st.GetFrameworks.Frameworks)
	assert.Len(t, st.GetFrameworks.CompletedFrameworks, 1)
}

// The tasks of an agent that left are lost: TASK_LOST from the master,
// naming the agent, and then listed among the completed tasks, as Mesos's
// removeTask does.
func TestTasksOfARemovedAgentAreCompleted(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	fs, fid := h.subscribe(frameworkInfo("f"))
	h.launch(fs, fid, commandTask("t1", mesospb.Offer{}, "cpus:1;mem:64"))
	require.NoError(t, h.agentCall(as, aid, &internalpb.Call{Type: internalpb.Call_UNREGISTER.Enum()}))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_LOST, ups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_MASTER, ups[0].GetSource())
	assert.Equal(t, aid, ups[0].AgentID.GetValue())
	st := h.sm.State()
	assert.Empty(t, st.GetTasks.Tasks)
	require.Len(t, st.GetTasks.CompletedTasks, 1)
	assert.Equal(t, mesospb.TASK_LOST, st.GetTasks.CompletedTasks[0].GetState())
}

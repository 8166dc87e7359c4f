package agentcore

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

func taskInfo(id string) *mesospb.TaskInfo {
	return &mesospb.TaskInfo{TaskID: mesospb.TaskID{Value: id}}
}

func groupOf(ids ...string) *mesospb.TaskGroupInfo {
	g := &mesospb.TaskGroupInfo{}
	for _, id := range ids {
		g.Tasks = append(g.Tasks, *taskInfo(id))
	}
	return g
}

func TestLaunchItem(t *testing.T) {
	single := LaunchItem{Task: taskInfo("a")}
	group := LaunchItem{Group: groupOf("b", "c")}
	assert.Equal(t, []string{"a"}, single.IDs())
	assert.Equal(t, []string{"b", "c"}, group.IDs())
	assert.True(t, single.Holds("a"))
	assert.False(t, single.Holds("b"))
	assert.True(t, group.Holds("c"))
	ids, isGroup := group.TaskIDs()
	assert.Equal(t, []string{"b", "c"}, ids)
	assert.True(t, isGroup)
	assert.Equal(t, executorpb.Event_LAUNCH, single.Event().GetType())
	assert.Equal(t, "a", single.Event().Launch.Task.TaskID.Value)
	assert.Equal(t, executorpb.Event_LAUNCH_GROUP, group.Event().GetType())
	assert.Len(t, group.Event().LaunchGroup.TaskGroup.Tasks, 2)
}

func TestRelaunchLost(t *testing.T) {
	g := groupOf("g1", "g2", "g3")
	tasks := []SentTask{
		{Info: taskInfo("a"), State: mesospb.TASK_STAGING},                      // lost
		{Info: taskInfo("b"), State: mesospb.TASK_STAGING, Queued: true},        // still queued: goes with the queue
		{Info: taskInfo("c"), State: mesospb.TASK_RUNNING, Statuses: 1},         // it got it
		{Info: taskInfo("d"), State: mesospb.TASK_STAGING, Statuses: 1},         // it said something
		{Info: taskInfo("e"), State: mesospb.TASK_STAGING},                      // listed as unacknowledged
		{Info: &g.Tasks[0], Group: g, State: mesospb.TASK_STAGING},              // lost, with g3
		{Info: &g.Tasks[1], Group: g, State: mesospb.TASK_RUNNING, Statuses: 1}, // not lost
		{Info: &g.Tasks[2], Group: g, State: mesospb.TASK_STAGING},              // lost
		{Info: taskInfo("f"), State: mesospb.TASK_KILLED, Statuses: 1},          // ended
	}
	items := RelaunchLost(tasks, []mesospb.TaskInfo{*taskInfo("e")})
	require.Len(t, items, 2)
	assert.Equal(t, []string{"a"}, items[0].IDs())
	assert.Nil(t, items[0].Group)
	assert.Equal(t, []string{"g1", "g3"}, items[1].IDs(), "the group's lost tasks go again as one group, after the single tasks")
	assert.Empty(t, RelaunchLost(nil, nil))
}

func TestCheckExecutorCall(t *testing.T) {
	cases := []struct {
		name              string
		streamID, current string
		state             ExecutorState
		cleaning          bool
		want              CallRefusal
	}{
		{"on its stream", "s1", "s1", ExecutorRunning, false, CallTaken},
		{"on an old stream", "s0", "s1", ExecutorRunning, false, CallNoStream},
		{"on a stream while it has none", "s1", "", ExecutorRunning, false, CallNoStream},
		{"without a stream, subscribed", "", "", ExecutorRunning, false, CallTaken},
		{"without a stream, terminating", "", "", ExecutorTerminating, false, CallTaken},
		{"without a stream, never subscribed", "", "", ExecutorRegistering, false, CallNotSubbed},
		{"without a stream, terminated", "", "", ExecutorTerminated, false, CallNotSubbed},
		{"without a stream, being destroyed", "", "s1", ExecutorTerminating, true, CallNotSubbed},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, CheckExecutorCall(c.streamID, c.current, c.state, c.cleaning), c.name)
	}
}

func TestValidateExecutorUpdate(t *testing.T) {
	uuid := make([]byte, 16)
	valid := func() mesospb.TaskStatus {
		return mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t"}, State: mesospb.TASK_RUNNING.Enum(), UUID: uuid}
	}
	st := valid()
	require.Empty(t, ValidateExecutorUpdate("ex", "", &st))
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, st.GetSource(), "the source is the executor's")

	cases := []struct {
		name   string
		change func(*mesospb.TaskStatus)
		owner  string
		want   string
	}{
		{"no state", func(s *mesospb.TaskStatus) { s.State = nil }, "", "without a state"},
		{"no task", func(s *mesospb.TaskStatus) { s.TaskID.Value = "" }, "", "without a task ID"},
		{"short uuid", func(s *mesospb.TaskStatus) { s.UUID = uuid[:4] }, "", "16-byte uuid"},
		{"staging", func(s *mesospb.TaskStatus) { s.State = mesospb.TASK_STAGING.Enum() }, "", "TASK_STAGING"},
		{"agent's source", func(s *mesospb.TaskStatus) { s.Source = mesospb.TaskStatus_SOURCE_AGENT.Enum() }, "", "source SOURCE_AGENT"},
		{"other executor", func(s *mesospb.TaskStatus) { s.ExecutorID = &mesospb.ExecutorID{Value: "other"} }, "", `names executor "other"`},
		{"other's task", func(*mesospb.TaskStatus) {}, "other", `task "t" belongs to executor "other"`},
	}
	for _, c := range cases {
		st := valid()
		c.change(&st)
		assert.Contains(t, ValidateExecutorUpdate("ex", c.owner, &st), c.want, c.name)
	}
}

func TestPlanReattach(t *testing.T) {
	g := groupOf("g1", "g2", "g3")
	h := groupOf("h1", "h2")
	tasks := []ReattachTask{
		{Info: taskInfo("a"), State: mesospb.TASK_RUNNING, Alive: true},
		{Info: taskInfo("b"), State: mesospb.TASK_RUNNING},
		{Info: taskInfo("c"), State: mesospb.TASK_FINISHED},
		{Info: &g.Tasks[0], Group: g, State: mesospb.TASK_RUNNING, Alive: true},
		{Info: &g.Tasks[1], Group: g, State: mesospb.TASK_FAILED}, // ended: not reattached, and its container does not count
		{Info: &g.Tasks[2], Group: g, State: mesospb.TASK_RUNNING, Alive: true},
		{Info: &h.Tasks[0], Group: h, State: mesospb.TASK_RUNNING, Alive: true},
		{Info: &h.Tasks[1], Group: h, State: mesospb.TASK_STARTING}, // gone: the group is lost whole
	}
	plan := PlanReattach(tasks)
	require.Len(t, plan, 4)
	ids := func(g ReattachGroup) []string { return LaunchItem{Group: &mesospb.TaskGroupInfo{Tasks: g.Tasks}}.IDs() }
	assert.Equal(t, []string{"a"}, ids(plan[0]))
	assert.True(t, plan[0].Alive)
	assert.Equal(t, []string{"b"}, ids(plan[1]))
	assert.False(t, plan[1].Alive)
	assert.Equal(t, []string{"g1", "g3"}, ids(plan[2]))
	assert.True(t, plan[2].Alive)
	assert.Equal(t, []string{"h1", "h2"}, ids(plan[3]))
	assert.False(t, plan[3].Alive)
}

// Package checkpointtest is the conformance suite every checkpoint.Store
// passes, as containerd's snapshotter implementations share one test
// suite: what an agent writes is what a restarted agent loads.
package checkpointtest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Factory makes a fresh, empty backing for one test and returns how to
// open a store over it. Each call of open stands for an agent (re)started
// on that backing: the stores it returns share what they store. The
// factory cleans up with t.Cleanup.
type Factory func(t *testing.T) (open func() checkpoint.Store)

// Run runs the suite against the stores factory makes.
func Run(t *testing.T, factory Factory) {
	cases := []struct {
		name string
		fn   func(*testing.T, func() checkpoint.Store)
	}{
		{"Empty", testEmpty},
		{"AgentID", testAgentID},
		{"Resources", testResources},
		{"Frameworks", testFrameworks},
		{"TaskAndStream", testTaskAndStream},
		{"StreamWithoutTask", testStreamWithoutTask},
		{"PutTaskReplaces", testPutTaskReplaces},
		{"RemoveTask", testRemoveTask},
		{"OddIDs", testOddIDs},
		{"Order", testOrder},
		{"Copies", testCopies},
		{"CloseKeepsUsable", testCloseKeepsUsable},
		{"Wipe", testWipe},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			open := factory(t)
			c.fn(t, open)
		})
	}
}

// reopen closes s and opens the backing again, as an agent restart does.
func reopen(t *testing.T, s checkpoint.Store, open func() checkpoint.Store) checkpoint.Store {
	t.Helper()
	require.NoError(t, s.Close())
	s2 := open()
	t.Cleanup(func() { _ = s2.Close() })
	return s2
}

func openStore(t *testing.T, open func() checkpoint.Store) checkpoint.Store {
	s := open()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func load(t *testing.T, s checkpoint.Store) *checkpoint.State {
	t.Helper()
	st, err := s.Load(func(msg string, args ...any) { t.Errorf("unexpected warning: %s %v", msg, args) })
	require.NoError(t, err)
	require.NotNil(t, st)
	return st
}

func framework(id, name string) *mesospb.FrameworkInfo {
	return &mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: id}, Name: name, User: "nobody"}
}

// Task returns a task of framework fw under a command executor run, as an
// agent checkpoints one.
func Task(fw, id string) *checkpoint.Task {
	return &checkpoint.Task{
		FrameworkID: fw,
		Info: mesospb.TaskInfo{
			Name:    "task " + id,
			TaskID:  mesospb.TaskID{Value: id},
			AgentID: mesospb.AgentID{Value: "agent-1"},
			Command: &mesospb.CommandInfo{Value: ptr("sleep 1")},
		},
		Executor: mesospb.ExecutorInfo{
			ExecutorID:  mesospb.ExecutorID{Value: id},
			FrameworkID: &mesospb.FrameworkID{Value: fw},
		},
		Kind:        "command",
		ContainerID: "run-" + id,
		Sandbox:     "/sandbox/" + id,
	}
}

// Update returns a status update of a task with the given state and uuid.
func Update(fw, task string, state mesospb.TaskState, uuid string) *internalpb.Call_StatusUpdate {
	return &internalpb.Call_StatusUpdate{
		FrameworkID: mesospb.FrameworkID{Value: fw},
		Status: mesospb.TaskStatus{
			TaskID: mesospb.TaskID{Value: task},
			State:  state.Enum(),
			UUID:   []byte(uuid),
			Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(),
		},
	}
}

func ptr[T any](v T) *T { return &v }

func states(s checkpoint.Stream) []string {
	var out []string
	for _, u := range s.Updates {
		out = append(out, u.Status.GetState().String()+"/"+string(u.Status.UUID))
	}
	return out
}

func acks(s checkpoint.Stream) []string {
	var out []string
	for _, a := range s.Acked {
		out = append(out, string(a))
	}
	return out
}

func testEmpty(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	id, err := s.AgentID()
	require.NoError(t, err)
	assert.Empty(t, id)
	rs, err := s.Resources()
	require.NoError(t, err)
	assert.Empty(t, rs)
	st := load(t, s)
	assert.Empty(t, st.Frameworks)
	assert.Empty(t, st.Tasks)
	assert.Empty(t, st.Streams)
	// Removing what is not there is not an error.
	assert.NoError(t, s.RemoveTask("fw", "t"))
	assert.NoError(t, s.RemoveFramework("fw"))
}

func testAgentID(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	require.NoError(t, s.SetAgentID("agent-1"))
	id, err := s.AgentID()
	require.NoError(t, err)
	assert.Equal(t, "agent-1", id)
	require.NoError(t, s.SetAgentID("agent-2"))
	s = reopen(t, s, open)
	id, err = s.AgentID()
	require.NoError(t, err)
	assert.Equal(t, "agent-2", id, "the last ID set, after a restart")
}

func testResources(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	vol := mesospb.Resource{
		Name:   "disk",
		Type:   mesospb.Value_SCALAR,
		Scalar: &mesospb.Value_Scalar{Value: 64},
		Disk:   &mesospb.Resource_DiskInfo{Persistence: &mesospb.Resource_DiskInfo_Persistence{ID: "v1"}},
	}
	cpus := mesospb.Resource{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1}}
	require.NoError(t, s.SetResources([]mesospb.Resource{cpus}))
	require.NoError(t, s.SetResources([]mesospb.Resource{cpus, vol}))
	s = reopen(t, s, open)
	rs, err := s.Resources()
	require.NoError(t, err)
	require.Len(t, rs, 2)
	assert.Equal(t, []mesospb.Resource{cpus, vol}, rs)
}

func testFrameworks(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	require.NoError(t, s.PutFramework(framework("fw-b", "b")))
	require.NoError(t, s.PutFramework(framework("fw-a", "a")))
	require.NoError(t, s.PutFramework(framework("fw-c", "c")))
	require.NoError(t, s.PutFramework(framework("fw-b", "b2")), "a put replaces")
	require.NoError(t, s.RemoveFramework("fw-c"))
	s = reopen(t, s, open)
	st := load(t, s)
	require.Len(t, st.Frameworks, 2)
	assert.Equal(t, "fw-a", st.Frameworks[0].ID.Value)
	assert.Equal(t, "fw-b", st.Frameworks[1].ID.Value)
	assert.Equal(t, "b2", st.Frameworks[1].Name)
	assert.Equal(t, "nobody", st.Frameworks[1].User)
}

func testTaskAndStream(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	require.NoError(t, s.PutFramework(framework("fw", "f")))
	task := Task("fw", "t1")
	task.Group = []string{"t1", "t2"}
	require.NoError(t, s.PutTask(task))
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_STARTING, "u1")))
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_RUNNING, "u2")))
	require.NoError(t, s.AppendAck("fw", "t1", []byte("u1")))
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_FINISHED, "u3")))
	// A task without updates has no stream.
	require.NoError(t, s.PutTask(Task("fw", "t0")))

	s = reopen(t, s, open)
	st := load(t, s)
	require.Len(t, st.Tasks, 2)
	got := st.Tasks[1]
	assert.Equal(t, "t0", st.Tasks[0].Info.TaskID.Value)
	assert.Equal(t, "fw", got.FrameworkID)
	assert.Equal(t, "t1", got.Info.TaskID.Value)
	assert.Equal(t, "task t1", got.Info.Name)
	assert.Equal(t, "sleep 1", got.Info.Command.GetValue())
	assert.Equal(t, []string{"t1", "t2"}, got.Group)
	assert.Equal(t, "t1", got.Executor.ExecutorID.Value)
	assert.Equal(t, "fw", got.Executor.FrameworkID.Value)
	assert.Equal(t, "command", got.Kind)
	assert.Equal(t, "run-t1", got.ContainerID)
	assert.Equal(t, "/sandbox/t1", got.Sandbox)

	require.Len(t, st.Streams, 1)
	str := st.Streams[0]
	assert.Equal(t, "fw", str.FrameworkID)
	assert.Equal(t, "t1", str.TaskID)
	assert.Equal(t, []string{"TASK_STARTING/u1", "TASK_RUNNING/u2", "TASK_FINISHED/u3"}, states(str), "updates in the order appended")
	assert.Equal(t, []string{"u1"}, acks(str))
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, str.Updates[0].Status.GetSource())
	assert.Equal(t, "fw", str.Updates[0].FrameworkID.Value)

	// Writes go on after a restart, at the end of the stream.
	require.NoError(t, s.AppendAck("fw", "t1", []byte("u2")))
	s = reopen(t, s, open)
	st = load(t, s)
	require.Len(t, st.Streams, 1)
	assert.Equal(t, []string{"u1", "u2"}, acks(st.Streams[0]))
	assert.Len(t, st.Streams[0].Updates, 3)
}

func testStreamWithoutTask(t *testing.T, open func() checkpoint.Store) {
	// The agent answers updates for tasks it does not know (TASK_LOST,
	// TASK_DROPPED): their streams have no task.
	s := openStore(t, open)
	require.NoError(t, s.AppendUpdate("fw", "ghost", Update("fw", "ghost", mesospb.TASK_LOST, "u1")))
	// Acknowledgements alone are not a stream.
	require.NoError(t, s.AppendAck("fw", "acks-only", []byte("u9")))
	s = reopen(t, s, open)
	st := load(t, s)
	assert.Empty(t, st.Tasks)
	require.Len(t, st.Streams, 1)
	assert.Equal(t, "ghost", st.Streams[0].TaskID)
	assert.Equal(t, []string{"TASK_LOST/u1"}, states(st.Streams[0]))
	assert.Empty(t, st.Streams[0].Acked)
}

func testPutTaskReplaces(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	require.NoError(t, s.PutTask(Task("fw", "t1")))
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_RUNNING, "u1")))
	again := Task("fw", "t1")
	again.ContainerID = "run-2"
	require.NoError(t, s.PutTask(again))
	s = reopen(t, s, open)
	st := load(t, s)
	require.Len(t, st.Tasks, 1)
	assert.Equal(t, "run-2", st.Tasks[0].ContainerID, "the last put wins")
	require.Len(t, st.Streams, 1, "the stream is kept")
	assert.Len(t, st.Streams[0].Updates, 1)
}

func testRemoveTask(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	for _, id := range []string{"t1", "t2"} {
		require.NoError(t, s.PutTask(Task("fw", id)))
		require.NoError(t, s.AppendUpdate("fw", id, Update("fw", id, mesospb.TASK_FINISHED, "u-"+id)))
	}
	require.NoError(t, s.RemoveTask("fw", "t1"))
	require.NoError(t, s.RemoveTask("fw", "t1"), "twice")
	st := load(t, s)
	require.Len(t, st.Tasks, 1)
	assert.Equal(t, "t2", st.Tasks[0].Info.TaskID.Value)
	require.Len(t, st.Streams, 1)
	assert.Equal(t, "t2", st.Streams[0].TaskID)

	// A task of the same ID starts afresh, with none of the old records.
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_LOST, "new")))
	s = reopen(t, s, open)
	st = load(t, s)
	require.Len(t, st.Streams, 2)
	assert.Equal(t, []string{"TASK_LOST/new"}, states(st.Streams[0]))
	assert.Len(t, st.Tasks, 1)
}

func testOddIDs(t *testing.T, open func() checkpoint.Store) {
	// IDs are the frameworks' to choose: none may escape the store or
	// collide with another.
	ids := []string{"a/b", "a%2Fb", "..", ".", "%", "x y", "ünï"}
	s := openStore(t, open)
	for i, id := range ids {
		require.NoError(t, s.PutFramework(framework(id, fmt.Sprint(i))))
		require.NoError(t, s.PutTask(Task(id, id)))
		require.NoError(t, s.AppendUpdate(id, id, Update(id, id, mesospb.TASK_RUNNING, id)))
	}
	s = reopen(t, s, open)
	st := load(t, s)
	require.Len(t, st.Frameworks, len(ids))
	require.Len(t, st.Tasks, len(ids))
	require.Len(t, st.Streams, len(ids))
	seen := map[string]bool{}
	for _, str := range st.Streams {
		assert.Equal(t, str.FrameworkID, str.TaskID)
		assert.Equal(t, []string{"TASK_RUNNING/" + str.TaskID}, states(str))
		seen[str.TaskID] = true
	}
	for _, id := range ids {
		assert.True(t, seen[id], id)
	}
	for _, task := range st.Tasks {
		assert.Equal(t, task.FrameworkID, task.Info.TaskID.Value)
	}
}

func testOrder(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	var want []string
	for _, fw := range []string{"fw-2", "fw-1"} {
		for i := 20; i > 0; i-- {
			id := fmt.Sprintf("t%02d", i)
			require.NoError(t, s.PutTask(Task(fw, id)))
			require.NoError(t, s.AppendUpdate(fw, id, Update(fw, id, mesospb.TASK_RUNNING, id)))
		}
	}
	for _, fw := range []string{"fw-1", "fw-2"} {
		for i := 1; i <= 20; i++ {
			want = append(want, fw+"/"+fmt.Sprintf("t%02d", i))
		}
	}
	st := load(t, s)
	var tasks, streams []string
	for _, task := range st.Tasks {
		tasks = append(tasks, task.FrameworkID+"/"+task.Info.TaskID.Value)
	}
	for _, str := range st.Streams {
		streams = append(streams, str.FrameworkID+"/"+str.TaskID)
	}
	assert.Equal(t, want, tasks)
	assert.Equal(t, want, streams)
}

func testCopies(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	task := Task("fw", "t1")
	u := Update("fw", "t1", mesospb.TASK_RUNNING, "u1")
	require.NoError(t, s.PutTask(task))
	require.NoError(t, s.AppendUpdate("fw", "t1", u))
	uuid := []byte("u1")
	require.NoError(t, s.AppendAck("fw", "t1", uuid))
	// What was passed in is the caller's again.
	task.Info.Name = "changed"
	u.Status.State = mesospb.TASK_FAILED.Enum()
	uuid[0] = 'X'
	st := load(t, s)
	assert.Equal(t, "task t1", st.Tasks[0].Info.Name)
	assert.Equal(t, mesospb.TASK_RUNNING, st.Streams[0].Updates[0].Status.GetState())
	assert.Equal(t, []string{"u1"}, acks(st.Streams[0]))
	// So is what came out.
	st.Streams[0].Updates[0].Status.State = mesospb.TASK_KILLED.Enum()
	st.Tasks[0].Info.Name = "changed too"
	st = load(t, s)
	assert.Equal(t, "task t1", st.Tasks[0].Info.Name)
	assert.Equal(t, mesospb.TASK_RUNNING, st.Streams[0].Updates[0].Status.GetState())
}

func testCloseKeepsUsable(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_RUNNING, "u1")))
	require.NoError(t, s.Close())
	require.NoError(t, s.AppendAck("fw", "t1", []byte("u1")))
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_FINISHED, "u2")))
	st := load(t, s)
	require.Len(t, st.Streams, 1)
	assert.Equal(t, []string{"TASK_RUNNING/u1", "TASK_FINISHED/u2"}, states(st.Streams[0]))
	assert.Equal(t, []string{"u1"}, acks(st.Streams[0]))
}

func testWipe(t *testing.T, open func() checkpoint.Store) {
	s := openStore(t, open)
	require.NoError(t, s.SetAgentID("agent-1"))
	require.NoError(t, s.SetResources([]mesospb.Resource{{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1}}}))
	require.NoError(t, s.PutFramework(framework("fw", "f")))
	require.NoError(t, s.PutTask(Task("fw", "t1")))
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_RUNNING, "u1")))
	require.NoError(t, s.Wipe())

	check := func(s checkpoint.Store) {
		t.Helper()
		id, err := s.AgentID()
		require.NoError(t, err)
		assert.Empty(t, id)
		rs, err := s.Resources()
		require.NoError(t, err)
		assert.Empty(t, rs)
		st := load(t, s)
		assert.Empty(t, st.Frameworks)
		assert.Empty(t, st.Tasks)
		assert.Empty(t, st.Streams)
	}
	check(s)
	s = reopen(t, s, open)
	check(s)

	// Usable after a wipe: the next agent on the backing writes afresh.
	require.NoError(t, s.SetAgentID("agent-2"))
	require.NoError(t, s.AppendUpdate("fw", "t1", Update("fw", "t1", mesospb.TASK_STAGING, "u9")))
	s = reopen(t, s, open)
	id, err := s.AgentID()
	require.NoError(t, err)
	assert.Equal(t, "agent-2", id)
	st := load(t, s)
	require.Len(t, st.Streams, 1)
	assert.Equal(t, []string{"TASK_STAGING/u9"}, states(st.Streams[0]))
}

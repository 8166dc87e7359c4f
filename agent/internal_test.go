package agent

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/clock"
)

type nopMaster struct{}

func (nopMaster) ConnectAgent(ctx context.Context, call *internalpb.Call) (string, <-chan *internalpb.Event, error) {
	return "", nil, context.Canceled
}
func (nopMaster) AgentCall(ctx context.Context, streamID string, call *internalpb.Call) error {
	return nil
}

// loopAgent is an agent whose loop is the test: the test calls the
// handlers directly and runs what other goroutines post only when it wants
// to, so it can see the agent between steps a running loop would take at
// once (tasks queued for an executor that has not subscribed yet).
func loopAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(Config{Master: nopMaster{}, WorkDir: t.TempDir(), Resources: "cpus:1;mem:100;disk:100;ports:[1-2]", Clock: clock.NewFake(time.Unix(1e9, 0))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	a.started.Store(true)
	a.initLoop(ctx, ctx)
	require.NoError(t, a.openContainerizer())
	a.setID("agent-1")
	linkUp(a)
	t.Cleanup(func() {
		close(a.stopped)
		cancel()
		a.wg.Wait()
		a.closeContainerizer()
	})
	return a
}

// runPosted runs what other goroutines posted until cond holds.
func runPosted(t *testing.T, a *Agent, cond func() bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case f := <-a.inbox:
			f()
		default:
		}
		return cond()
	}, 10*time.Second, time.Millisecond)
}

func sentUpdates(a *Agent, taskID string) []*internalpb.Call_StatusUpdate {
	var out []*internalpb.Call_StatusUpdate
	for _, c := range a.outbox {
		if u := c.StatusUpdate; u != nil && u.Status.TaskID.Value == taskID {
			out = append(out, u)
		}
	}
	return out
}

// A kill of a task still queued for its executor is answered by the agent;
// the rest of its group goes with it, and an executor left with nothing to
// run is destroyed.
func TestKillQueuedTaskGroup(t *testing.T) {
	a := loopAgent(t)
	fw := mesospb.FrameworkInfo{Name: "fw", ID: &mesospb.FrameworkID{Value: "fw-1"}}
	group := mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{
		{Name: "a", TaskID: mesospb.TaskID{Value: "a"}, Command: &mesospb.CommandInfo{Value: ptr("sleep 1000")}},
		{Name: "b", TaskID: mesospb.TaskID{Value: "b"}, Command: &mesospb.CommandInfo{Value: ptr("sleep 1000")}},
	}}
	a.handleEvent(&internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: fw,
			Executor:  mesospb.ExecutorInfo{Type: mesospb.ExecutorInfo_DEFAULT.Enum(), ExecutorID: mesospb.ExecutorID{Value: "ex"}},
			TaskGroup: group,
		},
	})
	e := a.executor("fw-1", "ex")
	require.NotNil(t, e)
	assert.Equal(t, execRegistering, e.State())
	require.Len(t, e.Queue(), 1)
	require.Eventually(t, func() bool { fi, err := os.Stat(e.Sandbox()); return err == nil && fi.IsDir() }, 10*time.Second, time.Millisecond,
		"the sandbox is made on the executor's goroutine, before it starts")

	// The registration call carries queued tasks as TASK_STAGING.
	rr := a.registrationCall()
	require.Len(t, rr.Reregister.Tasks, 2)
	assert.Equal(t, mesospb.TASK_STAGING, rr.Reregister.Tasks[0].GetState())
	require.Len(t, rr.Reregister.Executors, 1)

	a.handleEvent(&internalpb.Event{
		Type:     internalpb.Event_KILL_TASK.Enum(),
		KillTask: &internalpb.Event_KillTask{FrameworkID: *fw.ID, TaskID: mesospb.TaskID{Value: "a"}},
	})
	for _, id := range []string{"a", "b"} {
		us := sentUpdates(a, id)
		require.Len(t, us, 1, id)
		st := us[0].Status
		assert.Equal(t, mesospb.TASK_KILLED, st.GetState())
		assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, st.GetSource())
		assert.Equal(t, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, st.GetReason())
		// Mesos's Slave::killPendingTask names the group.
		assert.Equal(t, "A task within the task group was killed before delivery to the executor", st.GetMessage())
		assert.Equal(t, "agent-1", st.AgentID.Value)
	}
	assert.Empty(t, e.Queue())
	assert.Equal(t, execTerminating, e.State())
	runPosted(t, a, func() bool { return e.State() == execTerminated })
	var exited int
	for _, c := range a.outbox {
		if c.GetType() == internalpb.Call_EXECUTOR_EXITED {
			exited++
		}
	}
	assert.Equal(t, 1, exited)

	// The acknowledgements forget the tasks, then the executor and the
	// framework.
	for _, id := range []string{"a", "b"} {
		a.acknowledge("fw-1", id, sentUpdates(a, id)[0].Status.UUID)
	}
	assert.Zero(t, a.tables.Len())
	assert.Len(t, a.tables.CompletedTasks(), 2)
	assert.Zero(t, a.updates.Len())
}

func TestMesosDuration(t *testing.T) {
	assert.Equal(t, "15mins", mesosDuration(15*time.Minute))
	assert.Equal(t, "2secs", mesosDuration(2*time.Second))
	assert.Equal(t, "90secs", mesosDuration(90*time.Second))
	assert.Equal(t, "1500ms", mesosDuration(1500*time.Millisecond))
	assert.Equal(t, "1days", mesosDuration(24*time.Hour))
	assert.Equal(t, "0ns", mesosDuration(0))
}

func TestPathSafe(t *testing.T) {
	assert.Equal(t, "task-1.x_y", pathSafe("task-1.x_y"))
	assert.Equal(t, "a%2Fb", pathSafe("a/b"))
	assert.Equal(t, "%2E%2E", pathSafe(".."))
	assert.Equal(t, "%2E", pathSafe("."))
	assert.NotEqual(t, pathSafe("a%2Fb"), pathSafe("a/b"))
}

func TestAvailableMemoryAndDisk(t *testing.T) {
	assert.Equal(t, uint64(3*gib), memAvailable(4*gib))
	assert.Equal(t, uint64(gib), memAvailable(2*gib))
	assert.Equal(t, uint64(gib/2), memAvailable(gib))
	assert.Equal(t, uint64(15*gib), diskAvailable(20*gib))
	assert.Equal(t, uint64(5*gib), diskAvailable(10*gib))
	assert.Equal(t, uint64(4*gib), diskAvailable(8*gib))
}

func TestTimers(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	tm := newTimers(clk)
	var fired []int
	tm.after(2*time.Second, func() { fired = append(fired, 2) })
	id := tm.after(time.Second, func() { fired = append(fired, 1) })
	tm.after(3*time.Second, func() {
		fired = append(fired, 3)
		tm.after(0, func() { fired = append(fired, 4) })
	})
	tm.arm()
	require.NotNil(t, tm.C())
	tm.cancel(id)
	tm.arm() // re-armed for 2 s
	clk.Advance(time.Second)
	tm.runDue()
	assert.Empty(t, fired)
	clk.Advance(2 * time.Second)
	<-tm.C()
	tm.fired()
	tm.runDue()
	assert.Equal(t, []int{2, 3, 4}, fired)
	tm.arm()
	assert.Nil(t, tm.C())
}

// batchRecorder is a BatchMaster that refuses the call at failAt of its
// first batch and records every batch it is given.
type batchRecorder struct {
	nopMaster
	failAt  int
	batches [][]string
}

func (b *batchRecorder) AgentCalls(ctx context.Context, streamID string, calls []*internalpb.Call) error {
	var ids []string
	for _, c := range calls {
		ids = append(ids, c.AgentID.GetValue())
	}
	b.batches = append(b.batches, ids)
	if len(b.batches) == 1 {
		return &internalpb.CallError{Index: b.failAt, Err: ErrInvalidConfig}
	}
	return nil
}

func TestSenderBatchGoesOnAfterAFailedCall(t *testing.T) {
	bm := &batchRecorder{failAt: 1}
	s := &sender{master: bm, log: discardWarn{}}
	var calls []*internalpb.Call
	for _, id := range []string{"a", "b", "c", "d"} {
		calls = append(calls, &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: id}})
	}
	require.True(t, s.send(context.Background(), calls))
	assert.Equal(t, [][]string{{"a", "b", "c", "d"}, {"c", "d"}}, bm.batches)
}

type discardWarn struct{}

func (discardWarn) Warn(string, ...any) {}

// countingContainerizer counts the listings of its containers and records
// the destroyed IDs.
type countingContainerizer struct {
	*containerizer.Noop
	mu        sync.Mutex
	listings  int
	destroyed []string
}

func (c *countingContainerizer) Containers(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	c.listings++
	c.mu.Unlock()
	return c.Noop.Containers(ctx)
}

func (c *countingContainerizer) Destroy(ctx context.Context, id string) error {
	c.mu.Lock()
	c.destroyed = append(c.destroyed, id)
	c.mu.Unlock()
	return c.Noop.Destroy(ctx, id)
}

// A built-in executor's clean-up destroys its tasks' containers by name,
// those forgotten already too, without listing every container.
func TestCleanupDestroysTaskContainersByName(t *testing.T) {
	a := loopAgent(t)
	cc := &countingContainerizer{Noop: containerizer.NewNoop(containerizer.NoopOptions{})}
	a.cont = cc
	res := a.tables.RunTasks(agentcore.RunTasks{
		Framework: mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: "fw"}},
		Executor:  &mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "e"}, Type: mesospb.ExecutorInfo_DEFAULT.Enum()},
		Group:     &mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{{TaskID: mesospb.TaskID{Value: "t1"}}, {TaskID: mesospb.TaskID{Value: "t2"}}}},
		Tasks:     []mesospb.TaskInfo{{TaskID: mesospb.TaskID{Value: "t1"}}, {TaskID: mesospb.TaskID{Value: "t2"}}},
		NewRun:    func(string, string) (string, string) { return "run", "" },
	})
	require.Equal(t, agentcore.AdmitStart, res.Verdict)
	require.Equal(t, kindDefault, res.Kind)
	e := a.addExec(res.Run)
	for _, id := range []string{"t1", "t2"} {
		a.tables.ForgetTask(res.Run.Task(id)) // forgotten already, and still destroyed
	}
	a.cleanupExecutor(e)
	runPosted(t, a, func() bool { return e.State() == execTerminated })
	cc.mu.Lock()
	defer cc.mu.Unlock()
	assert.Equal(t, 0, cc.listings)
	assert.Equal(t, []string{"run.t1", "run.t2"}, cc.destroyed)
}

// A framework the master shut down is forgotten once its executors are
// gone, with its status update streams: the master removed the framework
// and nobody will acknowledge its updates, so they are not retried
// forever (Mesos's Slave::removeFramework cleans the framework's streams
// up; executorTerminated sends no update for a terminating framework).
func TestShutdownFrameworkForgetsItsUpdates(t *testing.T) {
	a := loopAgent(t)
	fw := mesospb.FrameworkInfo{Name: "fw", ID: &mesospb.FrameworkID{Value: "fw-1"}}
	a.handleEvent(&internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: fw,
			Executor:  mesospb.ExecutorInfo{Type: mesospb.ExecutorInfo_DEFAULT.Enum(), ExecutorID: mesospb.ExecutorID{Value: "ex"}},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{
				{Name: "a", TaskID: mesospb.TaskID{Value: "a"}, Command: &mesospb.CommandInfo{Value: ptr("sleep 1000")}},
			}},
		},
	})
	e := a.executor("fw-1", "ex")
	require.NotNil(t, e)
	a.handleEvent(&internalpb.Event{
		Type:              internalpb.Event_SHUTDOWN_FRAMEWORK.Enum(),
		ShutdownFramework: &internalpb.Event_ShutdownFramework{FrameworkID: *fw.ID},
	})
	runPosted(t, a, func() bool { return e.State() == execTerminated && a.tables.Len() == 0 })
	assert.Zero(t, a.updates.Len(), "no stream left to retry")
	assert.Zero(t, a.updates.Pending())
}

package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
)

// fakeExecutor plays an executor process over the agent's in-process
// executor API, so that the test decides when it subscribes.
type fakeExecutor struct {
	t      *testing.T
	execID string
	stream string
	events <-chan *executorpb.Event
}

func (x *fakeExecutor) subscribe(a *agent.Agent, unacked ...mesospb.TaskStatus) *executorpb.Event {
	x.t.Helper()
	call := &executorpb.Call{
		Type:        executorpb.Call_SUBSCRIBE.Enum(),
		FrameworkID: *framework.ID,
		ExecutorID:  mesospb.ExecutorID{Value: x.execID},
		Subscribe:   &executorpb.Call_Subscribe{},
	}
	for _, st := range unacked {
		call.Subscribe.UnacknowledgedUpdates = append(call.Subscribe.UnacknowledgedUpdates, executorpb.Call_Update{Status: st})
	}
	id, events, err := a.SubscribeExecutor(context.Background(), call)
	require.NoError(x.t, err)
	x.stream, x.events = id, events
	return x.next()
}

func (x *fakeExecutor) next() *executorpb.Event {
	x.t.Helper()
	select {
	case ev, ok := <-x.events:
		require.True(x.t, ok, "the stream ended")
		return ev
	case <-time.After(waitFor):
		x.t.Fatal("no event from the agent")
		return nil
	}
}

func (x *fakeExecutor) status(taskID string, state mesospb.TaskState) mesospb.TaskStatus {
	return mesospb.TaskStatus{
		TaskID: mesospb.TaskID{Value: taskID}, State: state.Enum(), UUID: executor.NewUUID(),
		Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), ExecutorID: &mesospb.ExecutorID{Value: x.execID},
	}
}

func (x *fakeExecutor) update(a *agent.Agent, st mesospb.TaskStatus) {
	x.t.Helper()
	require.NoError(x.t, a.ExecutorCall(context.Background(), x.stream, &executorpb.Call{
		Type:        executorpb.Call_UPDATE.Enum(),
		FrameworkID: *framework.ID,
		ExecutorID:  mesospb.ExecutorID{Value: x.execID},
		Update:      &executorpb.Call_Update{Status: st},
	}))
}

// An executor process retries its subscription every
// ExecutorSubscriptionBackoffMax (2 s) while the agent is away. When its
// last try fell just before the restarted agent could take it, the next
// comes one interval later plus the try's latency: with a re-registration
// window of one interval (ExecutorReregistrationTimeout, 2 s) it came
// 65 ms after the window had closed, the executor was destroyed and its
// task, which had finished meanwhile, was reported TASK_FAILED. The window
// now spans two retry intervals, counted from the end of recovery (as
// Mesos's Slave::_recover starts reregisterExecutorTimeout): the try gets
// in and the task's own TASK_FINISHED reaches the master. An executor that
// never comes back is still destroyed when the window closes.
func TestExecutorResubscribingJustAfterOneRetryIntervalIsKept(t *testing.T) {
	h := &harness{t: t, fm: &fakeMaster{autoAck: true}, clk: h0clock(), dir: t.TempDir()}
	// No-op containers "run" until destroyed, and outlive the agent: the
	// same containerizer serves both agents.
	cont := containerizer.NewNoop(containerizer.NoopOptions{RunTime: 1000 * time.Hour, Clock: h.clk})
	t.Cleanup(func() { _ = cont.Close() })
	configure := func(c *agent.Config) {
		c.Containerizer = cont
		c.Endpoint = "127.0.0.1:1" // executor processes are "launched"; the test plays them
	}
	h.start(configure)
	h.waitRegistered()
	h.fm.push(runTask(processTask("p1", "ex1", "/bin/executor", "")))
	h.fm.push(runTask(processTask("p2", "ex2", "/bin/executor", "")))
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && len(s.Frameworks[0].Executors) == 2
	}, waitFor, tick)
	require.Eventually(t, func() bool {
		ids, err := cont.Containers(context.Background())
		return err == nil && len(ids) == 2
	}, waitFor, tick, "both executors' containers are launched")
	x1 := &fakeExecutor{t: t, execID: "ex1"}
	x2 := &fakeExecutor{t: t, execID: "ex2"}
	for _, x := range []*fakeExecutor{x1, x2} {
		require.Equal(t, executorpb.Event_SUBSCRIBED, x.subscribe(h.a).GetType())
		require.Equal(t, executorpb.Event_LAUNCH, x.next().GetType())
	}
	x1.update(h.a, x1.status("p1", mesospb.TASK_RUNNING))
	x2.update(h.a, x2.status("p2", mesospb.TASK_RUNNING))
	h.fm.waitUpdate(t, "p1", mesospb.TASK_RUNNING)
	h.fm.waitUpdate(t, "p2", mesospb.TASK_RUNNING)

	// The agent restarts; p1 finishes while it is away.
	h.stop()
	finished := x1.status("p1", mesospb.TASK_FINISHED)
	h.start(configure)
	h.waitRegistered()
	_ = h.state() // the loop runs: the re-registration clock has started

	// ex1's next try: one retry interval and 65 ms after the agent could
	// take it.
	h.clk.Advance(agent.DefaultExecutorSubscriptionBackoffMax + 65*time.Millisecond)
	ev := x1.subscribe(h.a, finished)
	require.Equal(t, executorpb.Event_SUBSCRIBED, ev.GetType(), "the executor is taken back, not shut down")
	ack := x1.next()
	require.Equal(t, executorpb.Event_ACKNOWLEDGED, ack.GetType())
	assert.Equal(t, finished.UUID, ack.Acknowledged.UUID)
	u := h.fm.waitUpdate(t, "p1", mesospb.TASK_FINISHED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_RUNNING, mesospb.TASK_FINISHED}, h.fm.states("p1"))
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_RUNNING}, h.fm.states("p2"), "ex2 is still within its window")

	// ex2 never comes back: destroyed when the window closes.
	h.clk.Advance(2*agent.DefaultExecutorSubscriptionBackoffMax - agent.DefaultExecutorSubscriptionBackoffMax - 65*time.Millisecond)
	u = h.fm.waitUpdate(t, "p2", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_REREGISTRATION_TIMEOUT, u.Status.GetReason())
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_RUNNING, mesospb.TASK_FINISHED}, h.fm.states("p1"))

	// ex1's process ends, so that the agent's clean-up need not wait for
	// it.
	ids, err := cont.Containers(context.Background())
	require.NoError(t, err)
	for _, id := range ids {
		require.NoError(t, cont.Destroy(context.Background(), id))
	}
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
}

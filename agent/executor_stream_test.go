package agent_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/executor"
)

// slowExecutor stops reading its events while it handles its first
// framework message, until released.
type slowExecutor struct {
	release chan struct{}

	mu   sync.Mutex
	got  []string
	subs int
}

func (e *slowExecutor) Registered(context.Context, *executor.Driver, executor.Info) {
	e.mu.Lock()
	e.subs++
	e.mu.Unlock()
}
func (e *slowExecutor) Reregistered(ctx context.Context, d *executor.Driver, info executor.Info) {
	e.Registered(ctx, d, info)
}
func (e *slowExecutor) Disconnected(context.Context, *executor.Driver) {}
func (e *slowExecutor) LaunchTask(ctx context.Context, d *executor.Driver, task *mesospb.TaskInfo) {
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: task.TaskID, State: mesospb.TASK_RUNNING.Enum()})
}
func (e *slowExecutor) LaunchTaskGroup(context.Context, *executor.Driver, *mesospb.TaskGroupInfo) {}
func (e *slowExecutor) KillTask(ctx context.Context, d *executor.Driver, id mesospb.TaskID, _ *mesospb.KillPolicy) {
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: id, State: mesospb.TASK_KILLED.Enum()})
}
func (e *slowExecutor) Acknowledged(context.Context, *executor.Driver, mesospb.TaskID, []byte) {}
func (e *slowExecutor) FrameworkMessage(ctx context.Context, d *executor.Driver, data []byte) {
	e.mu.Lock()
	first := len(e.got) == 0
	e.got = append(e.got, string(data))
	e.mu.Unlock()
	if first {
		<-e.release
	}
}
func (e *slowExecutor) Shutdown(ctx context.Context, d *executor.Driver) { d.Stop() }
func (e *slowExecutor) Error(context.Context, *executor.Driver, string)  {}

func (e *slowExecutor) messages() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

// An executor that falls far behind its stream's buffer gets every event
// late and in order, on the same subscription: nothing is dropped, as
// Mesos's agent writes to an executor's unbounded pipe.
func TestSlowExecutorLosesNoEvent(t *testing.T) {
	ex := &slowExecutor{release: make(chan struct{})}
	h := newHarness(t, func(c *agent.Config) {
		c.Executors = map[string]executor.Executor{"slow": ex}
		c.ExecutorStreamBuffer = 4
	})
	h.waitRegistered()
	h.fm.push(runTask(goTask("s1", "ex1", "slow")))
	h.fm.waitUpdate(t, "s1", mesospb.TASK_RUNNING)

	const n = 200
	var want []string
	for i := range n {
		data := fmt.Sprintf("m%03d", i)
		want = append(want, data)
		h.fm.push(&internalpb.Event{
			Type: internalpb.Event_FRAMEWORK_MESSAGE.Enum(),
			FrameworkMessage: &internalpb.Event_FrameworkMessage{
				FrameworkID: *framework.ID, ExecutorID: mesospb.ExecutorID{Value: "ex1"}, Data: []byte(data),
			},
		})
	}
	// The agent has handled them all (the state call queues behind them)
	// before the executor reads on.
	h.state()
	close(ex.release)
	require.Eventually(t, func() bool { return len(ex.messages()) >= n }, waitFor, tick)
	assert.Equal(t, want, ex.messages())
	ex.mu.Lock()
	assert.Equal(t, 1, ex.subs, "one subscription, never closed for falling behind")
	ex.mu.Unlock()
}

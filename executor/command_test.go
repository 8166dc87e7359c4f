package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/clock"
)

// cmdHarness runs a built-in executor with a driver, the fake agent
// (acknowledging every update) and a real process containerizer.
type cmdHarness struct {
	t        *testing.T
	agent    *fakeAgent
	clk      *clock.Fake
	c        containerizer.Containerizer
	stateDir string
	cfg      CommandConfig
	done     <-chan error
	syncs    int
	stop     context.CancelFunc // ends a driver of startStoppable
}

func newProcess(t *testing.T, stateDir string) containerizer.Containerizer {
	t.Helper()
	c, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: stateDir})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no process containerizer here: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if ids, err := c.Containers(ctx); err == nil {
			for _, id := range ids {
				_ = c.Destroy(ctx, id)
			}
		}
		_ = c.Close()
	})
	return c
}

func newCmdHarness(t *testing.T) *cmdHarness {
	t.Helper()
	h := &cmdHarness{t: t, agent: newFakeAgent(), clk: clock.NewFake(epoch), stateDir: t.TempDir()}
	h.agent.autoAck = true
	h.c = newProcess(t, h.stateDir)
	h.cfg = CommandConfig{
		Containerizer:     h.c,
		Sandbox:           t.TempDir(),
		Env:               []string{"PATH=/usr/local/bin:/usr/bin:/bin", "BASE=base", "KEEP=kept"},
		ContainerIDPrefix: "run1",
		Clock:             h.clk,
	}
	return h
}

// start runs e with a new driver and waits for it to subscribe.
func (h *cmdHarness) start(e Executor) {
	h.t.Helper()
	before := h.agent.numSubscribes()
	d := newTestDriver(h.t, e, h.agent, h.clk)
	h.done = runDriver(h.t, d)
	require.Eventually(h.t, func() bool { return h.agent.numSubscribes() > before && h.agent.connected() }, waitFor, tick)
}

// startStoppable runs e with a driver that agentRestarts ends.
func (h *cmdHarness) startStoppable(e Executor) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := newTestDriver(h.t, e, h.agent, h.clk)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h.done, h.stop = done, cancel
	require.Eventually(h.t, h.agent.connected, waitFor, tick)
}

// agentRestarts ends the driver as an agent going away does, which leaves
// the task containers as they are, and gives the harness a containerizer
// that recovered them, as the restarted agent's; it returns their IDs.
func (h *cmdHarness) agentRestarts() []string {
	h.t.Helper()
	h.stop()
	require.ErrorIs(h.t, runResult(h.t, h.done), context.Canceled)
	require.NoError(h.t, h.c.Close())
	h.c = newProcess(h.t, h.stateDir)
	h.cfg.Containerizer = h.c
	ids, err := h.c.Recover(context.Background())
	require.NoError(h.t, err)
	return ids
}

func (h *cmdHarness) waitStates(taskID string, want ...mesospb.TaskState) []mesospb.TaskStatus {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return len(h.agent.taskStates(taskID)) >= len(want) }, waitFor, tick,
		"task %s: want %v", taskID, want)
	require.Equal(h.t, want, h.agent.taskStates(taskID))
	return h.agent.taskUpdates(taskID)
}

// requireStopped checks that the executor stopped its driver by itself and
// left no container behind.
func (h *cmdHarness) requireStopped() {
	h.t.Helper()
	require.NoError(h.t, runResult(h.t, h.done), "the executor stopped the driver")
	ids, err := h.c.Containers(context.Background())
	require.NoError(h.t, err)
	assert.Empty(h.t, ids, "every container was released")
}

// syncEvents returns once the executor has handled the events pushed
// before: it pushes a LAUNCH the command executor, already running a task,
// answers with TASK_ERROR.
func (h *cmdHarness) syncEvents() {
	h.t.Helper()
	h.syncs++
	id := fmt.Sprintf("sync-%d", h.syncs)
	h.agent.push(h.t, launchEvent(shellTask(id, "true")))
	h.waitStates(id, mesospb.TASK_ERROR)
}

func (h *cmdHarness) readFile(path string) string {
	h.t.Helper()
	var b []byte
	require.Eventually(h.t, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0
	}, waitFor, tick, "file %s", path)
	return string(b)
}

func shellTask(id, script string) mesospb.TaskInfo {
	ti := taskInfo(id)
	ti.Command = &mesospb.CommandInfo{Value: &script}
	return ti
}

func withGrace(ti mesospb.TaskInfo, grace time.Duration) mesospb.TaskInfo {
	ti.KillPolicy = &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: int64(grace)}}
	return ti
}

var (
	started  = []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_RUNNING}
	finished = append(started[:2:2], mesospb.TASK_FINISHED)
	failed   = append(started[:2:2], mesospb.TASK_FAILED)
	killed   = append(started[:2:2], mesospb.TASK_KILLED)
)

func TestCommandExecutorTrue(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	h.agent.push(t, launchEvent(shellTask("t1", "true")))
	ups := h.waitStates("t1", finished...)
	assert.Equal(t, "Command exited with status 0", ups[2].GetMessage())
	for _, u := range ups {
		assert.Len(t, u.UUID, 16)
		assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.GetSource())
	}
	h.requireStopped()
}

func TestCommandExecutorExitStatus(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	h.agent.push(t, launchEvent(shellTask("t1", "exit 3")))
	ups := h.waitStates("t1", failed...)
	assert.Equal(t, "Command exited with status 3", ups[2].GetMessage())
	h.requireStopped()
}

func TestCommandExecutorKill(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	h.agent.push(t, launchEvent(shellTask("t1", "sleep 100")))
	h.waitStates("t1", started...)
	h.agent.push(t, killEvent("t1", -1))
	ups := h.waitStates("t1", killed...)
	assert.Equal(t, "Command terminated with signal SIGTERM", ups[2].GetMessage())
	h.requireStopped()
}

// TestCommandExecutorKillGracePeriod: a task that ignores SIGTERM is
// destroyed when its grace period, on the fake clock, is over; a second
// kill does not restart the grace period.
func TestCommandExecutorKillGracePeriod(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	// SIG_IGN survives exec, so sleep ignores SIGTERM too.
	h.agent.push(t, launchEvent(withGrace(shellTask("t1", "trap '' TERM; echo ready > ready; sleep 100"), 10*time.Second)))
	h.waitStates("t1", started...)
	h.readFile(filepath.Join(h.cfg.Sandbox, "ready"))

	h.agent.push(t, killEvent("t1", -1))
	require.Eventually(t, func() bool { return h.clk.Waiters() == 1 }, waitFor, tick, "grace period timer")
	h.clk.Advance(6 * time.Second)
	// The same policy again: its deadline is later, so nothing changes.
	h.agent.push(t, killEvent("t1", 10*time.Second))
	h.syncEvents()
	u, err := h.c.Usage(context.Background(), TaskContainerID("run1", mesospb.TaskID{Value: "t1"}))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, u.Processes, 1, "the task survived SIGTERM")
	assert.Equal(t, started, h.agent.taskStates("t1"), "no terminal update within the grace period")

	h.clk.Advance(4 * time.Second)
	ups := h.waitStates("t1", killed...)
	assert.Equal(t, "Command terminated with signal SIGKILL", ups[2].GetMessage())
	h.requireStopped()
}

// TestCommandExecutorKillShortensGracePeriod: a kill whose policy ends
// sooner than the current grace period cuts it.
func TestCommandExecutorKillShortensGracePeriod(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	h.agent.push(t, launchEvent(shellTask("t1", "trap '' TERM; echo ready > ready; sleep 100")))
	h.waitStates("t1", started...)
	h.readFile(filepath.Join(h.cfg.Sandbox, "ready"))
	h.agent.push(t, killEvent("t1", time.Hour)) // the KILL's policy overrides the default
	require.Eventually(t, func() bool { return h.clk.Waiters() == 1 }, waitFor, tick)
	h.clk.Advance(DefaultGracePeriod)
	h.agent.push(t, killEvent("t1", time.Second))
	h.syncEvents()
	// The killer re-arms its timer for the new deadline, or finds it past.
	h.clk.Advance(time.Second)
	ups := h.waitStates("t1", killed...)
	assert.Equal(t, "Command terminated with signal SIGKILL", ups[2].GetMessage())
	h.requireStopped()
}

func TestCommandExecutorEnvironment(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	ti := shellTask("t1", `printf '%s|%s|%s|%s' "$BASE" "$KEEP" "$FOO" "$EMPTY" > env.txt`)
	ti.Command.Environment = &mesospb.Environment{Variables: []mesospb.Environment_Variable{
		{Name: "FOO", Value: ptr("bar baz")},
		{Name: "BASE", Value: ptr("task"), Type: mesospb.Environment_Variable_VALUE.Enum()},
		{Name: "EMPTY"},
	}}
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", finished...)
	assert.Equal(t, "task|kept|bar baz|", h.readFile(filepath.Join(h.cfg.Sandbox, "env.txt")))
	h.requireStopped()
}

func TestCommandExecutorNoShell(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	ti := taskInfo("t1")
	ti.Command = &mesospb.CommandInfo{
		Shell:     ptr(false),
		Value:     ptr("/bin/sh"),
		Arguments: []string{"sh", "-c", `printf '%s' "$0 $1" > argv.txt`, "zero", "one"},
	}
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", finished...)
	assert.Equal(t, "zero one", h.readFile(filepath.Join(h.cfg.Sandbox, "argv.txt")))
	h.requireStopped()
}

func TestCommandExecutorSecretFails(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	ti := shellTask("t1", "true")
	ti.Command.Environment = &mesospb.Environment{Variables: []mesospb.Environment_Variable{
		{Name: "TOKEN", Type: mesospb.Environment_Variable_SECRET.Enum(), Secret: &mesospb.Secret{}},
	}}
	h.agent.push(t, launchEvent(ti))
	ups := h.waitStates("t1", mesospb.TASK_FAILED)
	assert.Contains(t, ups[0].GetMessage(), `"TOKEN" is a secret`)
	h.requireStopped()
}

func TestCommandExecutorLaunchError(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	ti := taskInfo("t1")
	ti.Command = &mesospb.CommandInfo{Shell: ptr(false), Value: ptr("/no/such/program")}
	h.agent.push(t, launchEvent(ti))
	ups := h.waitStates("t1", mesospb.TASK_STARTING, mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, ups[1].GetReason())
	assert.Contains(t, ups[1].GetMessage(), "Failed to launch the command")
	h.requireStopped()
}

func TestCommandExecutorRunsOneTask(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	h.agent.push(t, launchEvent(shellTask("t1", "sleep 100")))
	h.waitStates("t1", started...)
	h.agent.push(t, launchEvent(shellTask("t2", "true")))
	ups := h.waitStates("t2", mesospb.TASK_ERROR)
	assert.Contains(t, ups[0].GetMessage(), "one task")
	h.agent.push(t, event(executorpb.Event_SHUTDOWN))
	h.waitStates("t1", killed...)
	h.requireStopped()
}

// TestDefaultExecutorGroupFailureKillsOthers: when one task of a group
// fails, the default executor kills the others.
func TestDefaultExecutorGroupFailureKillsOthers(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewDefaultExecutor(h.cfg))
	h.agent.push(t, launchGroupEvent(
		shellTask("long", "sleep 100"),
		shellTask("bad", "exit 1"),
	))
	ups := h.waitStates("bad", failed...)
	assert.Equal(t, "Command exited with status 1", ups[2].GetMessage())
	ups = h.waitStates("long", killed...)
	assert.Equal(t, "Command terminated with signal SIGTERM", ups[2].GetMessage())
	h.requireStopped()
}

func TestDefaultExecutorGroupSucceeds(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewDefaultExecutor(h.cfg))
	h.agent.push(t, launchGroupEvent(shellTask("a", `echo "$MESOS_SANDBOX" > sandbox.txt`), shellTask("b", "true")))
	h.waitStates("a", finished...)
	h.waitStates("b", finished...)
	// Each task of a group has its own sandbox.
	taskSandbox := filepath.Join(h.cfg.Sandbox, "tasks", "a")
	assert.Equal(t, taskSandbox, strings.TrimSpace(h.readFile(filepath.Join(taskSandbox, "sandbox.txt"))))
	h.requireStopped()
}

// TestCommandExecutorReattach: the agent goes away (the driver's context
// ends) and leaves the task's container running; a containerizer on the
// same state recovers it, and a new command executor reattached to it
// reports its end.
func TestCommandExecutorReattach(t *testing.T) {
	h := newCmdHarness(t)
	h.startStoppable(NewCommandExecutor(h.cfg))
	ti := shellTask("t1", "echo ready > ready; sleep 100")
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", started...)
	h.readFile(filepath.Join(h.cfg.Sandbox, "ready"))
	require.Equal(t, []string{TaskContainerID("run1", ti.TaskID)}, h.agentRestarts())

	e := NewCommandExecutor(h.cfg)
	err := e.Reattach(context.Background(), shellTask("other", "true"))
	require.ErrorIs(t, err, ErrReattach)
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
	require.NoError(t, e.Reattach(context.Background(), ti))
	require.ErrorIs(t, e.Reattach(context.Background(), ti), ErrReattach, "one task")

	before := len(h.agent.updates())
	h.start(e)
	h.agent.push(t, killEvent("t1", -1))
	require.Eventually(t, func() bool { return len(h.agent.updates()) > before }, waitFor, tick)
	last := h.agent.updates()[before:]
	require.Len(t, last, 1, "no STARTING or RUNNING again")
	assert.Equal(t, mesospb.TASK_KILLED, last[0].GetState())
	assert.Equal(t, "Command terminated with signal SIGTERM", last[0].GetMessage())
	h.requireStopped()
}

// TestCommandExecutorKeepsUnacknowledgedEnd: a task's container that
// ended is kept, with its recorded end, until the agent acknowledges the
// terminal update; when the agent goes away first, the executor that a
// restarted agent reattaches reports the task finished, not lost.
func TestCommandExecutorKeepsUnacknowledgedEnd(t *testing.T) {
	h := newCmdHarness(t)
	h.startStoppable(NewCommandExecutor(h.cfg))
	h.agent.mu.Lock()
	h.agent.autoAck = false // the agent stops before it acknowledges
	h.agent.mu.Unlock()
	ti := shellTask("t1", "true")
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", finished...)
	require.Equal(t, []string{TaskContainerID("run1", ti.TaskID)}, h.agentRestarts(), "the ended container is kept")

	e := NewCommandExecutor(h.cfg)
	require.NoError(t, e.Reattach(context.Background(), ti))
	h.agent.mu.Lock()
	h.agent.autoAck = true
	h.agent.mu.Unlock()
	before := len(h.agent.updates())
	h.done = runDriver(t, newTestDriver(t, e, h.agent, h.clk)) // it may end before h.start would see it connected
	require.Eventually(t, func() bool { return len(h.agent.updates()) > before }, waitFor, tick)
	last := h.agent.updates()[before:]
	assert.Equal(t, mesospb.TASK_FINISHED, last[len(last)-1].GetState())
	h.requireStopped()
}

func TestTaskContainerID(t *testing.T) {
	id := func(s string) mesospb.TaskID { return mesospb.TaskID{Value: s} }
	assert.Equal(t, "p.task-1", TaskContainerID("p", id("task-1")))
	assert.Equal(t, "task-1", TaskContainerID("", id("task-1")))
	a := TaskContainerID("p", id("a/b"))
	b := TaskContainerID("p", id("a_b"))
	assert.True(t, strings.HasPrefix(a, "p.a_b-"), a)
	assert.NotEqual(t, a, b, "sanitized IDs stay distinct")
	assert.NotEqual(t, TaskContainerID("", id("..")), "..")
	long := TaskContainerID("p", id(strings.Repeat("x", 500)))
	assert.LessOrEqual(t, len(long), containerizer.MaxIDLength)
	assert.NotEqual(t, long, TaskContainerID("p", id(strings.Repeat("x", 501))))
	for _, s := range []string{a, b, long, TaskContainerID("", id("..")), TaskContainerID("", id(""))} {
		require.NoError(t, containerizer.ValidateID(s), s)
	}
}

func TestTaskLimits(t *testing.T) {
	ti := taskInfo("t")
	ti.Resources = []mesospb.Resource{
		{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
		{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 64}},
	}
	assert.Equal(t, containerizer.Limits{CPUs: 0.5, MemoryBytes: 64 << 20}, taskLimits(&ti))
	ti.Limits = map[string]mesospb.Value_Scalar{"mem": {Value: 128}}
	assert.Equal(t, containerizer.Limits{CPUs: 0.5, MemoryBytes: 128 << 20}, taskLimits(&ti))
}

package agent_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
)

// A command task's container outlives the agent; a new agent on the same
// work directory re-registers with the task, watches it again, and can
// kill it.
func TestRecoverRunningCommandTask(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo started; sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	require.Eventually(t, func() bool { return h.sandboxFile("t1", "stdout") == "started\n" }, waitFor, tick)
	before := h.state().Frameworks[0].Executors[0]
	h.stop()

	h.start()
	conns := h.waitConnects(2)
	rr := conns[1]
	require.Equal(t, internalpb.Call_REREGISTER, rr.GetType())
	require.Len(t, rr.Reregister.Tasks, 1)
	assert.Equal(t, "t1", rr.Reregister.Tasks[0].TaskID.Value)
	assert.Equal(t, mesospb.TASK_RUNNING, rr.Reregister.Tasks[0].GetState())
	h.waitRegistered()
	after := h.state().Frameworks[0].Executors[0]
	assert.Equal(t, before.ContainerID, after.ContainerID, "the same executor run")
	assert.Equal(t, before.Directory, after.Directory)

	h.fm.push(killTask("t1"))
	u := h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
	assertNoContainers(t, h.dir)
}

// Updates the master had not acknowledged when the agent stopped are
// resent, in order, by the next agent.
func TestRecoverResendsUnacknowledgedUpdates(t *testing.T) {
	h := newHarness(t)
	h.fm.setAutoAck(false)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo hi")))
	starting := h.fm.waitUpdate(t, "t1", mesospb.TASK_STARTING)
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].Tasks[0].GetState() == mesospb.TASK_FINISHED
	}, waitFor, tick)
	h.stop()

	h.start()
	rr := h.waitConnects(2)[1]
	require.Len(t, rr.Reregister.Tasks, 1)
	assert.Equal(t, mesospb.TASK_FINISHED, rr.Reregister.Tasks[0].GetState())
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) == 2 }, waitFor, tick)
	resent := h.fm.updates("t1")[1]
	assert.Equal(t, starting.Status.UUID, resent.Status.UUID)
	assert.Equal(t, mesospb.TASK_FINISHED, resent.GetLatestState())

	h.fm.setAutoAck(true)
	h.fm.push(ackEvent(resent))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_FINISHED}, h.fm.states("t1"))
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 0 && len(s.CompletedTasks) == 1
	}, waitFor, tick)
}

// A task whose container ended or vanished while no agent ran gets
// TASK_FAILED from the next agent.
func TestRecoverGoneContainer(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	cid := h.state().Frameworks[0].Executors[0].ContainerID
	h.stop()

	c, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: filepath.Join(h.dir, "containers")})
	require.NoError(t, err)
	_, err = c.Recover(context.Background())
	require.NoError(t, err)
	require.NoError(t, c.Destroy(context.Background(), executor.TaskContainerID(cid, mesospb.TaskID{Value: "t1"})))
	require.NoError(t, c.Close())

	h.start()
	u := h.fm.waitUpdate(t, "t1", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, u.Status.GetReason())
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
}

// In-process Go executors die with the agent: their tasks fail.
func TestRecoverGoExecutorTasksFail(t *testing.T) {
	ex := &testExecutor{finishUUID: make(chan []byte, 1)}
	withGo := func(c *agent.Config) { c.Executors = map[string]executor.Executor{"go-exec": ex} }
	h := newHarness(t, withGo)
	h.waitRegistered()
	h.fm.push(runTask(goTask("g1", "ex1", "go-exec")))
	h.fm.waitUpdate(t, "g1", mesospb.TASK_RUNNING)
	h.stop()

	h.start(withGo)
	rr := h.waitConnects(2)[1]
	require.Len(t, rr.Reregister.Tasks, 1)
	assert.Equal(t, mesospb.TASK_FAILED, rr.Reregister.Tasks[0].GetState(), "the master learns at once")
	u := h.fm.waitUpdate(t, "g1", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, u.Status.GetReason())
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) == 1 }, waitFor, tick)
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
}

// Shutdown of an agent that is not running destroys the containers its
// checkpoints name.
func TestShutdownAfterStop(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	h.stop()
	require.NoError(t, h.a.Shutdown(context.Background()))
	assertNoContainers(t, h.dir)
	assert.NoDirExists(t, filepath.Join(h.dir, "meta"))
}

// Config.CheckpointStore replaces the files under <work_dir>/meta: an agent
// restarted on the same in-memory store recovers its running task from it,
// and writes nothing under meta.
func TestRecoverFromMemoryCheckpointStore(t *testing.T) {
	mem := checkpoint.NewMemory()
	withMem := func(c *agent.Config) { c.CheckpointStore = mem }
	h := newHarness(t, withMem)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	h.stop()

	h.start(withMem)
	conns := h.waitConnects(2)
	require.Equal(t, internalpb.Call_REREGISTER, conns[1].GetType())
	require.Len(t, conns[1].Reregister.Tasks, 1)
	assert.Equal(t, "t1", conns[1].Reregister.Tasks[0].TaskID.Value)
	id, err := mem.AgentID()
	require.NoError(t, err)
	assert.NotEmpty(t, id)
	assert.Equal(t, id, conns[1].Reregister.AgentInfo.GetID().GetValue())
	assert.NoDirExists(t, filepath.Join(h.dir, "meta"))

	h.waitRegistered()
	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
}

package agent_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// uncheckpointed is a framework without FrameworkInfo.checkpoint: Mesos's
// agent neither checkpoints nor recovers its executors.
var uncheckpointed = mesospb.FrameworkInfo{Name: "nocp", ID: &mesospb.FrameworkID{Value: "fw-2"}}

func runTaskOf(fw mesospb.FrameworkInfo, task mesospb.TaskInfo) *internalpb.Event {
	return &internalpb.Event{
		Type:    internalpb.Event_RUN_TASK.Enum(),
		RunTask: &internalpb.Event_RunTask{Framework: fw, Task: task},
	}
}

// pidTask is a command task that writes its shell's PID to "pid" in its
// sandbox, then sleeps as that process.
func pidTask(id string) mesospb.TaskInfo {
	return commandTask(id, "echo $$ > pid.tmp && mv pid.tmp pid && exec sleep 1000")
}

// taskPID waits for the PID pidTask wrote, in the sandbox of the
// framework's executor execID.
func (h *harness) taskPID(fwID, execID string) int {
	h.t.Helper()
	var pid int
	require.Eventually(h.t, func() bool {
		matches, _ := filepath.Glob(filepath.Join(h.dir, "agents", "*", "frameworks", fwID, "executors", execID, "runs", "*", "pid"))
		if len(matches) != 1 {
			return false
		}
		b, err := os.ReadFile(matches[0])
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, waitFor, tick)
	return pid
}

func reregisteredTasks(rr *internalpb.Call) []string {
	var ids []string
	for _, t := range rr.Reregister.Tasks {
		ids = append(ids, t.TaskID.Value)
	}
	return ids
}

func alive(pid int) bool {
	// A zombie is gone too: /proc says so where there is one.
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	return syscall.Kill(pid, 0) == nil
}

// A graceful stop of the agent (Run's context ends) shuts down the
// executors of a framework that does not checkpoint, killing its tasks,
// before Run returns, as Mesos's Slave::finalize does; a checkpointing
// framework's task runs on, and is the only one the next agent
// re-registers with.
func TestStopKillsTasksOfFrameworksThatDoNotCheckpoint(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(pidTask("keep")))
	h.fm.push(runTaskOf(uncheckpointed, pidTask("gone")))
	h.fm.waitUpdate(t, "keep", mesospb.TASK_RUNNING)
	h.fm.waitUpdate(t, "gone", mesospb.TASK_RUNNING)
	keep, gone := h.taskPID("fw-1", "keep"), h.taskPID("fw-2", "gone")
	h.stop()

	assert.False(t, alive(gone), "the task of the framework that does not checkpoint was killed before Run returned")
	assert.True(t, alive(keep), "the checkpointing framework's task runs on")

	h.start()
	rr := h.waitConnects(2)[1]
	require.Equal(t, internalpb.Call_REREGISTER, rr.GetType())
	assert.Equal(t, []string{"keep"}, reregisteredTasks(rr))
	for _, fw := range rr.Reregister.Frameworks {
		assert.NotEqual(t, "fw-2", fw.ID.GetValue())
	}
	h.waitRegistered()
	h.fm.push(killTask("keep"))
	h.fm.waitUpdate(t, "keep", mesospb.TASK_KILLED)
}

// After a crash (the agent did not stop gracefully), the next agent does
// not recover a framework that does not checkpoint: its task is not in
// REREGISTER, its container is destroyed, no update is made for it, and
// its checkpoints are removed, as Mesos's agent recovers only
// checkpointing frameworks (Slave::recover) and destroys the containers
// it does not recover.
func TestRestartDoesNotRecoverFrameworksThatDoNotCheckpoint(t *testing.T) {
	mem := checkpoint.NewMemory()
	withMem := func(c *agent.Config) { c.CheckpointStore = mem }
	h := newHarness(t, withMem)
	h.waitRegistered()
	// Checkpointing at first, so that the graceful stop leaves its task
	// running, as a crash would; then its checkpoint says it does not.
	cp := uncheckpointed
	cp.Checkpoint = ptr(true)
	h.fm.push(runTask(pidTask("keep")))
	h.fm.push(runTaskOf(cp, pidTask("gone")))
	h.fm.waitUpdate(t, "keep", mesospb.TASK_RUNNING)
	h.fm.waitUpdate(t, "gone", mesospb.TASK_RUNNING)
	keep, gone := h.taskPID("fw-1", "keep"), h.taskPID("fw-2", "gone")
	h.stop()
	require.True(t, alive(gone))
	require.NoError(t, mem.PutFramework(&uncheckpointed))
	updatesBefore := len(h.fm.updates("gone"))

	h.start(withMem)
	rr := h.waitConnects(2)[1]
	require.Equal(t, internalpb.Call_REREGISTER, rr.GetType())
	assert.Equal(t, []string{"keep"}, reregisteredTasks(rr))
	for _, fw := range rr.Reregister.Frameworks {
		assert.NotEqual(t, "fw-2", fw.ID.GetValue())
	}
	require.Eventually(t, func() bool { return !alive(gone) }, waitFor, tick, "the orphan container is destroyed")
	assert.True(t, alive(keep))
	st, err := mem.Load(nil)
	require.NoError(t, err)
	for _, fw := range st.Frameworks {
		assert.NotEqual(t, "fw-2", fw.ID.GetValue(), "its checkpoint is removed")
	}
	for _, task := range st.Tasks {
		assert.NotEqual(t, "fw-2", task.FrameworkID, "its tasks' checkpoints are removed")
	}
	for _, s := range st.Streams {
		assert.NotEqual(t, "fw-2", s.FrameworkID, "its update streams are removed")
	}
	h.waitRegistered()
	assert.Len(t, h.fm.updates("gone"), updatesBefore, "the agent says nothing of a task it does not recover")
	assert.Empty(t, h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED))
	s := h.state()
	require.Len(t, s.Frameworks, 1)
	assert.Equal(t, "fw-1", s.Frameworks[0].Info.ID.GetValue())
}

// Executors and tasks of a framework that does not checkpoint see
// MESOS_CHECKPOINT=0, which makes Mesos's executor library (and Apron's,
// executor.ConfigFromEnv) exit when its agent goes away; a checkpointing
// framework's see 1.
func TestCheckpointEnvironment(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTaskOf(uncheckpointed, commandTask("nocp", "echo $MESOS_CHECKPOINT > cp")))
	h.fm.push(runTask(commandTask("cp", "echo $MESOS_CHECKPOINT > cp")))
	h.fm.waitUpdate(t, "nocp", mesospb.TASK_FINISHED)
	h.fm.waitUpdate(t, "cp", mesospb.TASK_FINISHED)
	read := func(fwID, execID string) string {
		matches, err := filepath.Glob(filepath.Join(h.dir, "agents", "*", "frameworks", fwID, "executors", execID, "runs", "*", "cp"))
		require.NoError(t, err)
		require.Len(t, matches, 1)
		b, err := os.ReadFile(matches[0])
		require.NoError(t, err)
		return strings.TrimSpace(string(b))
	}
	assert.Equal(t, "0", read("fw-2", "nocp"))
	assert.Equal(t, "1", read("fw-1", "cp"))
}

// A recovered task whose last update is not TASK_RUNNING (the old agent
// stopped between its container's start and its executor's update) gets
// no update made up by the agent: Mesos's agent sends none for the tasks
// it recovers (Slave::recover, Slave::_recover).
func TestRecoverMakesNoUpdateForALiveTask(t *testing.T) {
	mem := checkpoint.NewMemory()
	h := newHarness(t, func(c *agent.Config) { c.CheckpointStore = mem })
	h.waitRegistered()
	h.fm.push(runTask(pidTask("t1")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	pid := h.taskPID("fw-1", "t1")
	h.stop()
	require.True(t, alive(pid))

	// The same checkpoints, but for the task's TASK_RUNNING.
	st, err := mem.Load(nil)
	require.NoError(t, err)
	old := checkpoint.NewMemory()
	id, err := mem.AgentID()
	require.NoError(t, err)
	require.NoError(t, old.SetAgentID(id))
	for i := range st.Frameworks {
		require.NoError(t, old.PutFramework(&st.Frameworks[i]))
	}
	for i := range st.Tasks {
		require.NoError(t, old.PutTask(&st.Tasks[i]))
	}
	require.Len(t, st.Streams, 1)
	for _, u := range st.Streams[0].Updates {
		if u.Status.GetState() == mesospb.TASK_RUNNING {
			continue
		}
		require.NoError(t, old.AppendUpdate("fw-1", "t1", u))
		require.NoError(t, old.AppendAck("fw-1", "t1", u.Status.UUID))
	}
	before := len(h.fm.updates("t1"))

	h.start(func(c *agent.Config) { c.CheckpointStore = old })
	rr := h.waitConnects(2)[1]
	require.Equal(t, []string{"t1"}, reregisteredTasks(rr))
	assert.Equal(t, mesospb.TASK_STARTING, rr.Reregister.Tasks[0].GetState())
	h.waitRegistered()
	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	for _, u := range h.fm.updates("t1")[before:] {
		assert.Equal(t, mesospb.TASK_KILLED, u.Status.GetState(), "%s %s %q", u.Status.GetState(), u.Status.GetReason(), u.Status.GetMessage())
	}
}

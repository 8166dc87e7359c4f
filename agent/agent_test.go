package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/resources"
)

func TestRegisterCheckpointsID(t *testing.T) {
	h := newHarness(t, func(c *agent.Config) { c.Attributes = "rack:r1;level:3" })
	conns := h.waitConnects(1)
	reg := conns[0]
	require.Equal(t, internalpb.Call_REGISTER, reg.GetType())
	info := reg.Register.AgentInfo
	assert.Equal(t, "host-1", info.Hostname)
	assert.Nil(t, info.ID)
	rs, err := resources.FromProto(info.Resources)
	require.NoError(t, err)
	assert.Equal(t, resources.MustParse("cpus:2;mem:1024;disk:1024;ports:[31000-31009]").String(), rs.String())
	require.Len(t, info.Attributes, 2)
	assert.Equal(t, "rack", info.Attributes[0].Name)
	assert.Equal(t, "r1", info.Attributes[0].Text.Value)
	assert.Equal(t, mesospb.Value_SCALAR, info.Attributes[1].Type)

	h.waitRegistered()
	assert.Equal(t, "agent-1", h.a.ID())
	require.NotNil(t, h.a.Info().ID)
	b, err := os.ReadFile(filepath.Join(h.dir, "meta", "agent_id"))
	require.NoError(t, err)
	assert.Equal(t, "agent-1", strings.TrimSpace(string(b)))

	// PING is answered with PONG.
	h.fm.push(&internalpb.Event{Type: internalpb.Event_PING.Enum(), Ping: &internalpb.Event_Ping{Connected: ptr(true)}})
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_PONG)) == 1 }, waitFor, tick)
	assert.Equal(t, "agent-1", h.fm.callsOf(internalpb.Call_PONG)[0].AgentID.Value)

	// Checkpointed resources survive a restart.
	h.fm.push(&internalpb.Event{
		Type:                internalpb.Event_CHECKPOINT_RESOURCES.Enum(),
		CheckpointResources: &internalpb.Event_CheckpointResources{Resources: resources.MustParse("cpus(eng):1").ToProto()},
	})
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(h.dir, "meta", "resources.pb"))
		return err == nil
	}, waitFor, tick)

	// A new agent on the same work directory re-registers with the ID.
	h.stop()
	h.start()
	conns = h.waitConnects(2)
	require.Equal(t, internalpb.Call_REREGISTER, conns[1].GetType())
	assert.Equal(t, "agent-1", conns[1].AgentID.Value)
	assert.Equal(t, "agent-1", h.a.ID(), "known before registering")
	rs, err = resources.FromProto(conns[1].Reregister.CheckpointedResources)
	require.NoError(t, err)
	assert.Equal(t, "cpus(eng):1", rs.String())
}

func TestCommandTaskFinishes(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo hi")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_FINISHED}, h.fm.states("t1"))
	for _, u := range h.fm.updates("t1") {
		assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
		assert.Equal(t, "t1", u.ExecutorID.Value, "the command executor's ID is the task's")
		assert.Equal(t, "agent-1", u.Status.AgentID.Value)
		assert.Len(t, u.Status.UUID, 16)
	}
	assert.Equal(t, "hi\n", h.sandboxFile("t1", "stdout"))

	// The executor exits once its task's end is acknowledged, and the task
	// is forgotten into the completed list. The master hears nothing of
	// the command executor, as in Mesos.
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 0 && len(s.CompletedTasks) == 1
	}, waitFor, tick)
	assert.Empty(t, h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED))
	done := h.state().CompletedTasks[0]
	assert.Equal(t, "t1", done.TaskID.Value)
	assert.Equal(t, mesospb.TASK_FINISHED, done.GetState())
	assert.Nil(t, done.ExecutorID, "command tasks have no executor ID, as in Mesos")
}

func TestCommandTaskEnvironment(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	task := commandTask("env", "echo $MESOS_FRAMEWORK_ID $MESOS_EXECUTOR_ID $MESOS_CHECKPOINT $MESOS_RECOVERY_TIMEOUT $FOO; pwd; echo $MESOS_SANDBOX")
	task.Command.Environment = &mesospb.Environment{Variables: []mesospb.Environment_Variable{{Name: "FOO", Value: ptr("bar")}}}
	h.fm.push(runTask(task))
	h.fm.waitUpdate(t, "env", mesospb.TASK_FINISHED)
	lines := strings.Split(strings.TrimSpace(h.sandboxFile("env", "stdout")), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, "fw-1 env 1 15mins bar", lines[0])
	assert.Equal(t, lines[1], lines[2], "the task runs in its sandbox")
	assert.Contains(t, lines[1], filepath.Join("agents", "agent-1", "frameworks", "fw-1", "executors", "env", "runs"))
}

func TestCommandTaskFails(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "exit 3")))
	u := h.fm.waitUpdate(t, "t1", mesospb.TASK_FAILED)
	assert.Equal(t, "Command exited with status 3", u.Status.GetMessage())
}

func TestKillRunningTask(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	h.fm.push(killTask("t1"))
	u := h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
	assert.Equal(t, mesospb.TASK_KILLED, u.GetLatestState())
}

func TestKillUnknownTask(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(killTask("nope"))
	u := h.fm.waitUpdate(t, "nope", mesospb.TASK_LOST)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, u.Status.GetReason())
	assert.Len(t, u.Status.UUID, 16)

	// A partition-aware framework gets TASK_DROPPED. The framework becomes
	// known with a task of its own.
	fw := framework
	fw.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()}}
	h.fm.push(&internalpb.Event{Type: internalpb.Event_RUN_TASK.Enum(), RunTask: &internalpb.Event_RunTask{Framework: fw, Task: commandTask("long", "sleep 1000")}})
	h.fm.waitUpdate(t, "long", mesospb.TASK_RUNNING)
	h.fm.push(killTask("nope2"))
	h.fm.waitUpdate(t, "nope2", mesospb.TASK_DROPPED)
}

func TestReconcileTasks(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	h.fm.push(&internalpb.Event{
		Type: internalpb.Event_RECONCILE_TASKS.Enum(),
		ReconcileTasks: &internalpb.Event_ReconcileTasks{
			FrameworkID: *framework.ID,
			TaskIDs:     []mesospb.TaskID{{Value: "t1"}, {Value: "ghost"}},
		},
	})
	ghost := h.fm.waitUpdate(t, "ghost", mesospb.TASK_DROPPED)
	assert.Nil(t, ghost.Status.UUID, "reconciliation answers need no acknowledgement")
	assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, ghost.Status.GetReason())
	require.Eventually(t, func() bool {
		for _, u := range h.fm.updates("t1") {
			if u.Status.GetReason() == mesospb.TaskStatus_REASON_RECONCILIATION {
				return u.Status.GetState() == mesospb.TASK_RUNNING && u.Status.UUID == nil
			}
		}
		return false
	}, waitFor, tick)
}

// TestStatusUpdateRetries checks the status update manager: the head of a
// task's stream is resent at 10 s, then 20 s later, until acknowledged;
// only then is the next update sent.
func TestStatusUpdateRetries(t *testing.T) {
	h := newHarness(t)
	h.fm.setAutoAck(false)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo hi")))
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) == 1 }, waitFor, tick)
	first := h.fm.updates("t1")[0]
	require.Equal(t, mesospb.TASK_STARTING, first.Status.GetState())

	h.clk.Advance(9 * time.Second)
	h.clk.Advance(time.Second)
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) == 2 }, waitFor, tick)
	h.clk.Advance(19 * time.Second)
	h.clk.Advance(time.Second)
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) == 3 }, waitFor, tick)
	for _, u := range h.fm.updates("t1") {
		assert.Equal(t, first.Status.UUID, u.Status.UUID, "the same update is resent")
	}
	// The task has finished meanwhile: latest_state says so.
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].Tasks[0].GetState() == mesospb.TASK_FINISHED
	}, waitFor, tick)
	h.clk.Advance(40 * time.Second)
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) == 4 }, waitFor, tick)
	assert.Equal(t, mesospb.TASK_FINISHED, h.fm.updates("t1")[3].GetLatestState())

	// The acknowledgement releases the next update, RUNNING, at once.
	h.fm.push(ackEvent(first))
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) == 5 }, waitFor, tick)
	assert.Equal(t, mesospb.TASK_RUNNING, h.fm.updates("t1")[4].Status.GetState())
	assert.Len(t, h.fm.updates("t1"), 5, "nothing else is sent")

	h.fm.setAutoAck(true)
	h.fm.push(ackEvent(h.fm.updates("t1")[4]))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
}

// testExecutor is an in-process Go executor: it runs a task by reporting
// it RUNNING; a framework message "finish" makes it answer "bye" and
// finish the task; it stops once the FINISHED update is acknowledged.
type testExecutor struct {
	finishUUID chan []byte

	mu      sync.Mutex
	drivers map[*executor.Driver]bool
}

func (e *testExecutor) driverCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.drivers)
}

func (e *testExecutor) Registered(ctx context.Context, d *executor.Driver, info executor.Info)   {}
func (e *testExecutor) Reregistered(ctx context.Context, d *executor.Driver, info executor.Info) {}
func (e *testExecutor) Disconnected(ctx context.Context, d *executor.Driver)                     {}
func (e *testExecutor) LaunchTask(ctx context.Context, d *executor.Driver, task *mesospb.TaskInfo) {
	e.mu.Lock()
	if e.drivers == nil {
		e.drivers = map[*executor.Driver]bool{}
	}
	e.drivers[d] = true
	e.mu.Unlock()
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: task.TaskID, State: mesospb.TASK_RUNNING.Enum(), Message: ptr("go")})
}
func (e *testExecutor) LaunchTaskGroup(ctx context.Context, d *executor.Driver, g *mesospb.TaskGroupInfo) {
}
func (e *testExecutor) KillTask(ctx context.Context, d *executor.Driver, id mesospb.TaskID, p *mesospb.KillPolicy) {
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: id, State: mesospb.TASK_KILLED.Enum()})
}
func (e *testExecutor) Acknowledged(ctx context.Context, d *executor.Driver, id mesospb.TaskID, uuid []byte) {
	select {
	case u := <-e.finishUUID:
		if string(u) == string(uuid) {
			d.Stop()
		} else {
			e.finishUUID <- u
		}
	default:
	}
}
func (e *testExecutor) FrameworkMessage(ctx context.Context, d *executor.Driver, data []byte) {
	if string(data) != "finish" {
		return
	}
	_ = d.SendFrameworkMessage(ctx, []byte("bye"))
	uuid := executor.NewUUID()
	e.finishUUID <- uuid
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "g1"}, State: mesospb.TASK_FINISHED.Enum(), UUID: uuid})
}
func (e *testExecutor) Shutdown(ctx context.Context, d *executor.Driver) { d.Stop() }
func (e *testExecutor) Error(ctx context.Context, d *executor.Driver, message string) {
}

func goTask(id, execID, name string) mesospb.TaskInfo {
	return mesospb.TaskInfo{
		Name:    "go task",
		TaskID:  mesospb.TaskID{Value: id},
		AgentID: mesospb.AgentID{Value: "agent-1"},
		Executor: &mesospb.ExecutorInfo{
			ExecutorID: mesospb.ExecutorID{Value: execID},
			Command:    &mesospb.CommandInfo{Value: ptr(name)},
		},
	}
}

func TestGoExecutorInProcess(t *testing.T) {
	ex := &testExecutor{finishUUID: make(chan []byte, 1)}
	h := newHarness(t, func(c *agent.Config) { c.Executors = map[string]executor.Executor{"go-exec": ex} })
	h.waitRegistered()
	h.fm.push(runTask(goTask("g1", "ex1", "go-exec")))
	u := h.fm.waitUpdate(t, "g1", mesospb.TASK_RUNNING)
	assert.Equal(t, "go", u.Status.GetMessage())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
	assert.Equal(t, "ex1", u.ExecutorID.Value)

	s := h.state()
	require.Len(t, s.Frameworks, 1)
	require.Len(t, s.Frameworks[0].Executors, 1)
	es := s.Frameworks[0].Executors[0]
	assert.Equal(t, "RUNNING", es.State)
	assert.DirExists(t, es.Directory)
	assert.Equal(t, "ex1", es.Tasks[0].ExecutorID.Value)

	// A second task for the same executor ID goes to the same executor.
	h.fm.push(runTask(goTask("g2", "ex1", "go-exec")))
	h.fm.waitUpdate(t, "g2", mesospb.TASK_RUNNING)
	s = h.state()
	require.Len(t, s.Frameworks[0].Executors, 1)
	assert.Len(t, s.Frameworks[0].Executors[0].Tasks, 2)
	assert.Equal(t, es.ContainerID, s.Frameworks[0].Executors[0].ContainerID)
	assert.Equal(t, 1, ex.driverCount())

	h.fm.push(&internalpb.Event{
		Type: internalpb.Event_FRAMEWORK_MESSAGE.Enum(),
		FrameworkMessage: &internalpb.Event_FrameworkMessage{
			FrameworkID: *framework.ID, ExecutorID: mesospb.ExecutorID{Value: "ex1"}, Data: []byte("finish"),
		},
	})
	h.fm.waitUpdate(t, "g1", mesospb.TASK_FINISHED)
	msgs := h.fm.callsOf(internalpb.Call_EXECUTOR_MESSAGE)
	require.Len(t, msgs, 1)
	assert.Equal(t, "bye", string(msgs[0].ExecutorMessage.Data))
	assert.Equal(t, "ex1", msgs[0].ExecutorMessage.ExecutorID.Value)

	// It stops after g1's end; g2, left running, is failed by the agent.
	u = h.fm.waitUpdate(t, "g2", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, u.Status.GetReason())
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) == 1 }, waitFor, tick)
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
}

// A Go executor that ends with a task still running leaves it to the
// agent: TASK_FAILED, REASON_EXECUTOR_TERMINATED, then EXECUTOR_EXITED.
func TestExecutorEndsWithLiveTask(t *testing.T) {
	ex := &stoppingExecutor{}
	h := newHarness(t, func(c *agent.Config) { c.Executors = map[string]executor.Executor{"quitter": ex} })
	h.waitRegistered()
	h.fm.push(runTask(goTask("q1", "ex1", "quitter")))
	u := h.fm.waitUpdate(t, "q1", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, u.Status.GetReason())
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) == 1 }, waitFor, tick)
}

type stoppingExecutor struct{ testExecutor }

func (e *stoppingExecutor) LaunchTask(ctx context.Context, d *executor.Driver, task *mesospb.TaskInfo) {
	d.Stop()
}

// An executor that ignores SHUTDOWN is destroyed after its grace period,
// on the agent's clock; its task gets TASK_KILLED from the agent.
func TestShutdownExecutorGracePeriod(t *testing.T) {
	ex := &stubbornExecutor{}
	h := newHarness(t, func(c *agent.Config) { c.Executors = map[string]executor.Executor{"stubborn": ex} })
	h.waitRegistered()
	h.fm.push(runTask(goTask("s1", "ex1", "stubborn")))
	h.fm.waitUpdate(t, "s1", mesospb.TASK_RUNNING)
	h.fm.push(&internalpb.Event{
		Type:             internalpb.Event_SHUTDOWN_EXECUTOR.Enum(),
		ShutdownExecutor: &internalpb.Event_ShutdownExecutor{FrameworkID: *framework.ID, ExecutorID: mesospb.ExecutorID{Value: "ex1"}},
	})
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].State == "TERMINATING"
	}, waitFor, tick)
	assert.Empty(t, h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED))
	h.clk.Advance(agent.DefaultExecutorShutdownGracePeriod)
	u := h.fm.waitUpdate(t, "s1", mesospb.TASK_KILLED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) == 1 }, waitFor, tick)
}

type stubbornExecutor struct{ testExecutor }

func (e *stubbornExecutor) Shutdown(ctx context.Context, d *executor.Driver) {}

// An executor process needs the agent's HTTP endpoint to subscribe to.
func TestCustomExecutorNeedsEndpoint(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(goTask("c1", "custom", "/usr/bin/my-executor")))
	u := h.fm.waitUpdate(t, "c1", mesospb.TASK_FAILED)
	assert.Contains(t, u.Status.GetMessage(), "Config.Endpoint")
	assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, u.Status.GetReason())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) == 1 }, waitFor, tick)
}

func TestTaskGroupRunsUnderDefaultExecutor(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	group := mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{commandTask("a", "echo a"), commandTask("b", "echo b")}}
	h.fm.push(&internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: framework,
			Executor: mesospb.ExecutorInfo{
				Type:       mesospb.ExecutorInfo_DEFAULT.Enum(),
				ExecutorID: mesospb.ExecutorID{Value: "default-1"},
			},
			TaskGroup: group,
		},
	})
	ua := h.fm.waitUpdate(t, "a", mesospb.TASK_FINISHED)
	h.fm.waitUpdate(t, "b", mesospb.TASK_FINISHED)
	assert.Equal(t, "default-1", ua.ExecutorID.Value)
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) == 1 }, waitFor, tick)
}

// When the master's stream ends the agent reconnects with REREGISTER,
// carrying its framework and tasks, and resends the updates that were not
// acknowledged.
func TestReregisterAfterStreamEnds(t *testing.T) {
	h := newHarness(t)
	h.fm.setAutoAck(false)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	starting := h.fm.waitUpdate(t, "t1", mesospb.TASK_STARTING)
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].Tasks[0].GetState() == mesospb.TASK_RUNNING
	}, waitFor, tick)

	renamed := framework
	renamed.Name = "renamed"
	h.fm.push(&internalpb.Event{Type: internalpb.Event_UPDATE_FRAMEWORK.Enum(), UpdateFramework: &internalpb.Event_UpdateFramework{FrameworkInfo: renamed}})
	require.Eventually(t, func() bool { return h.state().Frameworks[0].Info.Name == "renamed" }, waitFor, tick)

	h.fm.endStream()
	require.Eventually(t, func() bool {
		h.clk.Advance(agent.DefaultRegistrationBackoff)
		return len(h.fm.connections()) == 2
	}, waitFor, 20*time.Millisecond)
	rr := h.fm.connections()[1]
	require.Equal(t, internalpb.Call_REREGISTER, rr.GetType())
	assert.Equal(t, "agent-1", rr.AgentID.Value)
	require.Len(t, rr.Reregister.Frameworks, 1)
	assert.Equal(t, "fw-1", rr.Reregister.Frameworks[0].ID.Value)
	assert.Equal(t, "renamed", rr.Reregister.Frameworks[0].Name)
	assert.Empty(t, rr.Reregister.Executors, "command executors are not reported, as in Mesos")
	require.Len(t, rr.Reregister.Tasks, 1)
	task := rr.Reregister.Tasks[0]
	assert.Equal(t, "t1", task.TaskID.Value)
	assert.Equal(t, mesospb.TASK_RUNNING, task.GetState())
	assert.Equal(t, mesospb.TASK_STARTING, task.GetStatusUpdateState(), "the update in flight")
	assert.Equal(t, starting.Status.UUID, task.StatusUpdateUUID)

	// The unacknowledged update is resent on the new stream.
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) >= 2 }, waitFor, tick)
	resent := h.fm.updates("t1")[1]
	assert.Equal(t, starting.Status.UUID, resent.Status.UUID)
	assert.Equal(t, mesospb.TASK_RUNNING, resent.GetLatestState())

	h.fm.setAutoAck(true)
	h.fm.push(ackEvent(resent))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
}

// An agent the master has not pinged for max_missed_pings intervals
// considers the master gone and registers again.
func TestPingTimeout(t *testing.T) {
	h := &harness{t: t, fm: &fakeMaster{autoAck: true}, clk: h0clock(), dir: t.TempDir()}
	h.fm.setPingInterval(1)
	h.start()
	h.waitRegistered()
	// Pings keep the link.
	for range 10 {
		h.clk.Advance(time.Second)
		n := len(h.fm.callsOf(internalpb.Call_PONG))
		h.fm.push(&internalpb.Event{Type: internalpb.Event_PING.Enum(), Ping: &internalpb.Event_Ping{Connected: ptr(true)}})
		require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_PONG)) == n+1 }, waitFor, tick)
	}
	assert.Len(t, h.fm.connections(), 1)
	// Silence for 5 intervals does not.
	h.clk.Advance(5 * time.Second)
	require.Eventually(t, func() bool {
		h.clk.Advance(agent.DefaultRegistrationBackoff)
		return len(h.fm.connections()) == 2
	}, waitFor, 20*time.Millisecond)
	assert.Equal(t, internalpb.Call_REREGISTER, h.fm.connections()[1].GetType())
}

func TestShutdownKillsEverything(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, h.a.Shutdown(ctx))
	require.NoError(t, <-h.done)
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	require.Len(t, h.fm.callsOf(internalpb.Call_UNREGISTER), 1)
	assert.NoDirExists(t, filepath.Join(h.dir, "meta"), "a later agent here is a new agent")
	assertNoContainers(t, h.dir)
}

func TestMasterShutdownEvent(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	h.fm.push(&internalpb.Event{Type: internalpb.Event_SHUTDOWN.Enum(), Shutdown: &internalpb.Event_Shutdown{Message: ptr("bye")}})
	select {
	case err := <-h.done:
		require.ErrorIs(t, err, agent.ErrRemoved)
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
	}
	assert.Empty(t, h.fm.callsOf(internalpb.Call_UNREGISTER))
	assertNoContainers(t, h.dir)
}

// assertNoContainers checks that the agent's process containerizer has no
// container left.
func assertNoContainers(t *testing.T, dir string) {
	t.Helper()
	c, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: filepath.Join(dir, "containers")})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Recover(context.Background())
	require.NoError(t, err)
	ids, err := c.Containers(context.Background())
	require.NoError(t, err)
	assert.Empty(t, ids)
}

package agentcore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

func str(s string) *string { return &s }

func commandTask(id string) mesospb.TaskInfo {
	return mesospb.TaskInfo{TaskID: mesospb.TaskID{Value: id}, Command: &mesospb.CommandInfo{Value: str("true")}}
}

func executorTask(id, execID, command string) mesospb.TaskInfo {
	t := mesospb.TaskInfo{TaskID: mesospb.TaskID{Value: id}, Executor: &mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: execID}}}
	if command != "" {
		t.Executor.Command = &mesospb.CommandInfo{Value: str(command)}
	}
	return t
}

var partitionAware = mesospb.FrameworkInfo{
	ID:           &mesospb.FrameworkID{Value: "fw"},
	Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()}},
}

func TestDecideAdmit(t *testing.T) {
	fw := mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: "fw"}}
	defaultExec := &mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "ex"}, Type: mesospb.ExecutorInfo_DEFAULT.Enum()}
	customExec := &mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "ex"}, Type: mesospb.ExecutorInfo_CUSTOM.Enum(), Command: &mesospb.CommandInfo{Value: str("/bin/exec")}}
	goExec := &mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "ex"}, Type: mesospb.ExecutorInfo_CUSTOM.Enum(), Command: &mesospb.CommandInfo{Value: str("my-go")}}
	group := func(ids ...string) *mesospb.TaskGroupInfo {
		g := &mesospb.TaskGroupInfo{}
		for _, id := range ids {
			g.Tasks = append(g.Tasks, mesospb.TaskInfo{TaskID: mesospb.TaskID{Value: id}})
		}
		return g
	}
	execIn := func(s ExecutorState) func(string) (ExecutorState, bool) {
		return func(string) (ExecutorState, bool) { return s, true }
	}
	known := func(ids ...string) func(string) bool {
		return func(id string) bool {
			for _, k := range ids {
				if k == id {
					return true
				}
			}
			return false
		}
	}
	registry := func(name string) bool { return name == "my-go" }

	tests := []struct {
		name    string
		in      Admit
		verdict AdmitVerdict
		kind    ExecutorKind
		refusal Ending
		refused []string
	}{
		{name: "command task starts a command executor", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{commandTask("t")}},
			verdict: AdmitStart, kind: KindCommand},
		{name: "command task as a process", in: Admit{Framework: fw, CommandAsProcess: true, Tasks: []mesospb.TaskInfo{commandTask("t")}},
			verdict: AdmitStart, kind: KindCommandProcess},
		{name: "custom executor", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{executorTask("t", "ex", "/bin/exec")}, GoExecutor: registry},
			verdict: AdmitStart, kind: KindProcess},
		{name: "registered Go executor", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{executorTask("t", "ex", "my-go")}, GoExecutor: registry},
			verdict: AdmitStart, kind: KindGo},
		{name: "unregistered name is a process", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{executorTask("t", "ex", "my-go")}},
			verdict: AdmitStart, kind: KindProcess},
		{name: "group on the default executor", in: Admit{Framework: fw, Executor: defaultExec, Group: group("a", "b"), Tasks: group("a", "b").Tasks},
			verdict: AdmitStart, kind: KindDefault},
		{name: "group on a custom executor", in: Admit{Framework: fw, Executor: customExec, Group: group("a"), Tasks: group("a").Tasks},
			verdict: AdmitStart, kind: KindProcess},
		{name: "group on a Go executor", in: Admit{Framework: fw, Executor: goExec, Group: group("a"), Tasks: group("a").Tasks, GoExecutor: registry},
			verdict: AdmitStart, kind: KindGo},
		{name: "running executor launches at once", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{executorTask("t", "ex", "/bin/exec")}, ExecutorState: execIn(ExecutorRunning)},
			verdict: AdmitLaunch, kind: KindProcess},
		{name: "registering executor queues", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{executorTask("t", "ex", "/bin/exec")}, ExecutorState: execIn(ExecutorRegistering)},
			verdict: AdmitQueue, kind: KindProcess},
		{name: "terminating executor refuses", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{executorTask("t", "ex", "/bin/exec")}, ExecutorState: execIn(ExecutorTerminating)},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_LOST, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminating"}, refused: []string{"t"}},
		{name: "terminated executor refuses, dropped for partition-aware", in: Admit{Framework: partitionAware, Tasks: []mesospb.TaskInfo{executorTask("t", "ex", "/bin/exec")}, ExecutorState: execIn(ExecutorTerminated)},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_DROPPED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminated"}, refused: []string{"t"}},
		{name: "agent shutting down", in: Admit{Phase: AgentShuttingDown, Framework: fw, Tasks: []mesospb.TaskInfo{commandTask("t")}},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_LOST, mesospb.TaskStatus_REASON_AGENT_REMOVED, "The agent is shutting down"}, refused: []string{"t"}},
		{name: "agent stopping", in: Admit{Phase: AgentStopping, Framework: partitionAware, Tasks: []mesospb.TaskInfo{commandTask("t")}},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_DROPPED, mesospb.TaskStatus_REASON_AGENT_RESTARTED, "The agent is stopping"}, refused: []string{"t"}},
		{name: "framework terminating; a known ID gets no update", in: Admit{Framework: fw, FrameworkTerminating: true, Executor: defaultExec, Group: group("a", "b"), Tasks: group("a", "b").Tasks, TaskKnown: known("a")},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_LOST, mesospb.TaskStatus_REASON_FRAMEWORK_REMOVED, "The framework is shutting down on this agent"}, refused: []string{"b"}},
		{name: "ID in use is ignored", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{commandTask("t")}, TaskKnown: known("t")},
			verdict: AdmitIgnore},
		{name: "neither command nor executor", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{{TaskID: mesospb.TaskID{Value: "t"}}}},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "A task needs exactly one of command and executor"}, refused: []string{"t"}},
		{name: "both command and executor", in: Admit{Framework: fw, Tasks: []mesospb.TaskInfo{func() mesospb.TaskInfo {
			t := executorTask("t", "ex", "/bin/exec")
			t.Command = &mesospb.CommandInfo{Value: str("true")}
			return t
		}()}},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "A task needs exactly one of command and executor"}, refused: []string{"t"}},
		{name: "group without an executor", in: Admit{Framework: fw, Group: group("a"), Tasks: group("a").Tasks},
			verdict: AdmitRefuse, refusal: Ending{mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "A task needs exactly one of command and executor"}, refused: []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideAdmit(tc.in)
			require.Equal(t, tc.verdict, d.Verdict)
			if tc.verdict == AdmitRefuse {
				assert.Equal(t, tc.refusal, d.Refusal)
				var ids []string
				for _, id := range d.Refused {
					ids = append(ids, id.Value)
				}
				assert.Equal(t, tc.refused, ids)
				return
			}
			if tc.verdict == AdmitIgnore {
				return
			}
			assert.Equal(t, tc.kind, d.Kind)
			assert.Equal(t, "fw", d.Info.FrameworkID.GetValue(), "the run's ExecutorInfo names its framework")
		})
	}
}

func TestCommandExecutorInfo(t *testing.T) {
	task := commandTask("t1")
	task.Command.User = str("nobody")
	info := CommandExecutorInfo("fw", &task)
	assert.Equal(t, "t1", info.ExecutorID.Value, "a command executor takes its task's ID")
	assert.Equal(t, "Command Executor (Task: t1) (Command: sh -c 'true')", info.GetName())
	assert.Equal(t, CommandExecutorName, info.Command.GetValue())
	assert.Equal(t, "nobody", info.Command.GetUser())

	task.Command.Shell = ptrTo(false)
	task.Command.Arguments = []string{"echo", "hi"}
	info = CommandExecutorInfo("fw", &task)
	assert.Equal(t, "Command Executor (Task: t1) (Command: [echo, hi])", info.GetName())
}

func TestDecideKill(t *testing.T) {
	tests := []struct {
		name    string
		in      Kill
		verdict KillVerdict
		refusal Ending
	}{
		{"unknown task", Kill{}, KillUnknown, Ending{mesospb.TASK_LOST, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Cannot find executor"}},
		{"unknown task, partition-aware", Kill{PartitionAware: true}, KillUnknown, Ending{mesospb.TASK_DROPPED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Cannot find executor"}},
		{"terminal task", Kill{Known: true, State: mesospb.TASK_FINISHED, Executor: ExecutorRunning}, KillTerminal, Ending{}},
		{"queued task", Kill{Known: true, State: mesospb.TASK_STAGING, Queued: true, Executor: ExecutorRegistering}, KillQueued, Ending{}},
		{"queued on a running executor", Kill{Known: true, State: mesospb.TASK_STAGING, Queued: true, Executor: ExecutorRunning}, KillQueued, Ending{}},
		{"launched task", Kill{Known: true, State: mesospb.TASK_RUNNING, Executor: ExecutorRunning}, KillForward, Ending{}},
		{"launched, executor terminating", Kill{Known: true, State: mesospb.TASK_RUNNING, Executor: ExecutorTerminating}, KillIgnored, Ending{}},
		{"launched, executor terminated", Kill{Known: true, State: mesospb.TASK_RUNNING, Executor: ExecutorTerminated}, KillIgnored, Ending{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideKill(tc.in)
			assert.Equal(t, tc.verdict, d.Verdict)
			assert.Equal(t, tc.refusal, d.Refusal)
		})
	}
}

type item struct {
	ids   []string
	group bool
}

func (i item) Holds(id string) bool {
	for _, x := range i.ids {
		if x == id {
			return true
		}
	}
	return false
}

func (i item) TaskIDs() ([]string, bool) { return i.ids, i.group }

func TestDequeueKilled(t *testing.T) {
	queue := []item{{ids: []string{"a"}}, {ids: []string{"b", "c"}, group: true}, {ids: []string{"d"}, group: true}}

	keep, victims, inGroup := DequeueKilled(append([]item(nil), queue...), "c")
	assert.Equal(t, []item{queue[0], queue[2]}, keep)
	assert.Equal(t, []string{"b", "c"}, victims, "a group dies whole")
	assert.True(t, inGroup)

	keep, victims, inGroup = DequeueKilled(append([]item(nil), queue...), "a")
	assert.Equal(t, queue[1:], keep)
	assert.Equal(t, []string{"a"}, victims)
	assert.False(t, inGroup)

	keep, victims, inGroup = DequeueKilled(append([]item(nil), queue...), "d")
	assert.Len(t, keep, 2)
	assert.Equal(t, []string{"d"}, victims)
	assert.True(t, inGroup, "a group of one is a group")

	keep, victims, _ = DequeueKilled(append([]item(nil), queue...), "x")
	assert.Equal(t, queue, keep)
	assert.Equal(t, []string{"x"}, victims, "a queued task out of the queue (being relaunched) is killed alone")
}

func TestKilledDuringLaunch(t *testing.T) {
	// Mesos's Slave::killPendingTask words the two differently.
	assert.Equal(t, Ending{mesospb.TASK_KILLED, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, "Killed before delivery to the executor"}, KilledDuringLaunch(false))
	assert.Equal(t, Ending{mesospb.TASK_KILLED, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH,
		"A task within the task group was killed before delivery to the executor"}, KilledDuringLaunch(true))
	assert.True(t, ShutdownAfterQueuedKill(ExecutorRegistering, false))
	assert.False(t, ShutdownAfterQueuedKill(ExecutorRegistering, true), "other tasks still wait for it")
	assert.False(t, ShutdownAfterQueuedKill(ExecutorRunning, false), "a subscribed executor stays")
}

func TestEndings(t *testing.T) {
	tests := []struct {
		name string
		got  Ending
		want Ending
	}{
		{"terminated", EndingTerminated(), Ending{mesospb.TASK_FAILED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminated"}},
		{"exited cleanly", EndingExited(nil), Ending{mesospb.TASK_FAILED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminated"}},
		{"exited cancelled", EndingExited(context.Canceled), Ending{mesospb.TASK_FAILED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminated"}},
		{"exited with an error", EndingExited(errors.New("boom")), Ending{mesospb.TASK_FAILED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminated: boom"}},
		{"shut down", EndingShutdown("why"), Ending{mesospb.TASK_KILLED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor shut down: why"}},
		{"destroyed", EndingDestroyed(), Ending{mesospb.TASK_KILLED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor destroyed"}},
		{"launch failed", EndingLaunchFailed(errors.New("no")), Ending{mesospb.TASK_FAILED, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, "Failed to launch container: no"}},
		{"killed during launch", EndingKilledDuringLaunch(), Ending{mesospb.TASK_KILLED, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, "Killed before delivery to the executor"}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tc.got, tc.name)
	}
}

func TestEndTask(t *testing.T) {
	tests := []struct {
		state       mesospb.TaskState
		terminating bool
		want        TaskEnd
	}{
		{mesospb.TASK_RUNNING, false, TaskEndUpdate},
		{mesospb.TASK_STAGING, false, TaskEndUpdate},
		{mesospb.TASK_FINISHED, false, TaskEndNone},
		{mesospb.TASK_RUNNING, true, TaskEndSilent},
		{mesospb.TASK_KILLED, true, TaskEndNone},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, EndTask(tc.state, tc.terminating), "%s terminating=%v", tc.state, tc.terminating)
	}
	assert.False(t, ReportExit(KindCommand))
	assert.False(t, ReportExit(KindCommandProcess))
	assert.True(t, ReportExit(KindDefault))
	assert.True(t, ReportExit(KindProcess))
	assert.True(t, ReportExit(KindGo))
}

func TestApplyStatus(t *testing.T) {
	st := func(s mesospb.TaskState, data string) mesospb.TaskStatus {
		return mesospb.TaskStatus{State: s.Enum(), Data: []byte(data)}
	}
	state, statuses, ok := ApplyStatus(mesospb.TASK_STAGING, nil, st(mesospb.TASK_RUNNING, "x"))
	require.True(t, ok)
	assert.Equal(t, mesospb.TASK_RUNNING, state)
	require.Len(t, statuses, 1)
	assert.Nil(t, statuses[0].Data, "statuses are kept without data")

	state, statuses, ok = ApplyStatus(state, statuses, st(mesospb.TASK_RUNNING, ""))
	require.True(t, ok)
	assert.Len(t, statuses, 1, "the latest of each state")

	state, statuses, ok = ApplyStatus(state, statuses, st(mesospb.TASK_KILLED, ""))
	require.True(t, ok)
	assert.Equal(t, mesospb.TASK_KILLED, state)
	assert.Len(t, statuses, 2)

	state2, statuses2, ok := ApplyStatus(state, statuses, st(mesospb.TASK_RUNNING, ""))
	assert.False(t, ok, "a late update leaves an ended task ended")
	assert.Equal(t, mesospb.TASK_KILLED, state2)
	assert.Len(t, statuses2, 2)
}

func TestReconcileAnswer(t *testing.T) {
	now := time.Unix(100, 0)
	u := ReconcileAnswer("fw", "ag", mesospb.TaskID{Value: "x"}, nil, now)
	assert.Equal(t, mesospb.TASK_DROPPED, u.Status.GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, u.Status.GetReason())
	assert.Equal(t, mesospb.TASK_DROPPED, u.GetLatestState())
	assert.Nil(t, u.Status.UUID, "not retried, not acknowledged")
	assert.Nil(t, u.ExecutorID)
	assert.Equal(t, "ag", u.Status.AgentID.GetValue())
	assert.Equal(t, 100.0, u.Status.GetTimestamp())

	last := mesospb.TaskStatus{State: mesospb.TASK_RUNNING.Enum(), Message: str("up"), Healthy: ptrTo(true)}
	u = ReconcileAnswer("fw", "", mesospb.TaskID{Value: "t"}, &ReconcileTask{State: mesospb.TASK_RUNNING, ExecutorID: "ex", Last: &last}, now)
	assert.Equal(t, mesospb.TASK_RUNNING, u.Status.GetState())
	assert.Equal(t, "up", u.Status.GetMessage())
	assert.True(t, u.Status.GetHealthy())
	assert.Equal(t, "ex", u.ExecutorID.GetValue())
	assert.Equal(t, "ex", u.Status.ExecutorID.GetValue())
	assert.Nil(t, u.Status.AgentID, "an agent without an ID names none")
}

func TestForgetRules(t *testing.T) {
	assert.True(t, ForgetExecutor(ExecutorTerminated, 0))
	assert.False(t, ForgetExecutor(ExecutorTerminated, 1), "its tasks wait for acknowledgements")
	assert.False(t, ForgetExecutor(ExecutorTerminating, 0))
	assert.True(t, ForgetFramework(0, 0))
	assert.False(t, ForgetFramework(1, 0))
	assert.False(t, ForgetFramework(0, 1))
	assert.True(t, ForgetTask(mesospb.TASK_FINISHED, true))
	assert.False(t, ForgetTask(mesospb.TASK_FINISHED, false), "its terminal update is not acknowledged")
	assert.False(t, ForgetTask(mesospb.TASK_RUNNING, true))
	assert.True(t, ReregisterExecutor(KindProcess, ExecutorRunning))
	assert.False(t, ReregisterExecutor(KindCommand, ExecutorRunning), "the master does not know command executors")
	assert.False(t, ReregisterExecutor(KindDefault, ExecutorTerminated))
}

func TestExecutorKinds(t *testing.T) {
	for k := KindCommand; k <= KindCommandProcess; k++ {
		got, ok := ParseExecutorKind(k.String())
		require.True(t, ok)
		assert.Equal(t, k, got)
	}
	got, ok := ParseExecutorKind("unsupported")
	assert.True(t, ok)
	assert.Equal(t, KindProcess, got)
	_, ok = ParseExecutorKind("nope")
	assert.False(t, ok)
}

func TestDecideRecovery(t *testing.T) {
	failed := func(msg string) Ending {
		return Ending{mesospb.TASK_FAILED, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, msg}
	}
	tests := []struct {
		name        string
		kind        ExecutorKind
		live, alive bool
		want        RecoveryDecision
	}{
		{"nothing live", KindProcess, false, true, RecoveryDecision{Verdict: RecoverEnded, Ending: failed("The executor did not survive the agent's restart")}},
		{"command executor reattaches", KindCommand, true, false, RecoveryDecision{Verdict: RecoverReattach, Ending: failed("The task's container did not survive the agent's restart")}},
		{"default executor reattaches", KindDefault, true, false, RecoveryDecision{Verdict: RecoverReattach, Ending: failed("The task's container did not survive the agent's restart")}},
		{"process lives on", KindProcess, true, true, RecoveryDecision{Verdict: RecoverAwait}},
		{"command process lives on", KindCommandProcess, true, true, RecoveryDecision{Verdict: RecoverAwait}},
		{"process gone", KindCommandProcess, true, false, RecoveryDecision{Verdict: RecoverGone, Cleanup: true, Ending: failed("The executor's process did not survive the agent's restart")}},
		{"Go executor died with the agent", KindGo, true, false, RecoveryDecision{Verdict: RecoverGone, Ending: failed("The in-process executor did not survive the agent's restart")}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, DecideRecovery(tc.kind, tc.live, tc.alive), tc.name)
	}
	assert.True(t, ForgetRecovered(mesospb.TASK_FINISHED, false, false))
	assert.False(t, ForgetRecovered(mesospb.TASK_FINISHED, true, false), "its terminal update waits for an acknowledgement")
	assert.False(t, ForgetRecovered(mesospb.TASK_FINISHED, false, true), "another run holds its ID")
	assert.False(t, ForgetRecovered(mesospb.TASK_RUNNING, false, false))

	// Issue 9, item 11: the window is at least two subscription retries.
	assert.Equal(t, 4*time.Second, ReregistrationWindow(2*time.Second, 2*time.Second))
	assert.Equal(t, 10*time.Second, ReregistrationWindow(10*time.Second, 2*time.Second))
}

func TestDecideShutdown(t *testing.T) {
	assert.Equal(t, ShutdownDestroy, DecideShutdown(ExecutorRegistering))
	assert.Equal(t, ShutdownGraceful, DecideShutdown(ExecutorRunning))
	assert.Equal(t, ShutdownNone, DecideShutdown(ExecutorTerminating))
	assert.Equal(t, ShutdownNone, DecideShutdown(ExecutorTerminated))

	assert.Equal(t, 5*time.Second, GracePeriod(&mesospb.ExecutorInfo{}, 5*time.Second))
	info := &mesospb.ExecutorInfo{ShutdownGracePeriod: &mesospb.DurationInfo{Nanoseconds: int64(time.Second)}}
	assert.Equal(t, time.Second, GracePeriod(info, 5*time.Second))
}

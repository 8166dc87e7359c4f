package agentcore

import (
	"context"
	"errors"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The agent's decisions about frameworks, executors and tasks, as Mesos's
// agent makes them (src/slave/slave.cpp: Slave::run, Slave::killTask,
// Slave::executorTerminated, Slave::sendExecutorTerminatedStatusUpdate):
// which executor runs a task and when the agent refuses it, what a
// KILL_TASK does in each state, how the tasks an executor leaves behind
// end, what a reconciliation answers and when a record may be forgotten.
// Each decision is a pure function of what it is shown: the agent (its
// tables, its loop, its I/O) and the simulation's agents (internal/sim)
// ask the same questions of the same code.

// ExecutorKind says what runs an executor.
type ExecutorKind int

const (
	KindCommand        ExecutorKind = iota // the built-in command executor in process, one command task
	KindDefault                            // the built-in default executor, task groups
	KindGo                                 // an in-process Go executor the embedder registered
	KindProcess                            // a custom executor: a process that subscribes over HTTP
	KindCommandProcess                     // the built-in command executor as a process of its own
)

func (k ExecutorKind) String() string {
	switch k {
	case KindCommand:
		return "command"
	case KindDefault:
		return "default"
	case KindGo:
		return "go"
	case KindProcess:
		return "process"
	default:
		return "command-process"
	}
}

// ParseExecutorKind reads a kind back from a checkpoint.
func ParseExecutorKind(s string) (ExecutorKind, bool) {
	if s == "unsupported" {
		// Checkpoints of agents that did not run executor processes yet.
		return KindProcess, true
	}
	for k := KindCommand; k <= KindCommandProcess; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// Command reports whether the executor is the command executor, which
// Mesos makes up for a command task and does not show as the task's, nor
// tell the master about.
func (k ExecutorKind) Command() bool { return k == KindCommand || k == KindCommandProcess }

// Process reports whether the executor is a process of its own, one
// container of the agent's containerizer named by its run's ID.
func (k ExecutorKind) Process() bool { return k == KindProcess || k == KindCommandProcess }

// ExecutorState is an executor run's lifecycle, as Mesos's.
type ExecutorState int

const (
	ExecutorRegistering ExecutorState = iota // started, has not subscribed yet: its tasks are queued
	ExecutorRunning                          // subscribed at least once
	ExecutorTerminating                      // told to shut down, or being cleaned up
	ExecutorTerminated                       // gone; kept until its tasks' last updates are acknowledged
)

func (s ExecutorState) String() string {
	return [...]string{"REGISTERING", "RUNNING", "TERMINATING", "TERMINATED"}[s]
}

// Ended reports whether the run is terminating or terminated: it takes no
// new tasks and its kills go nowhere.
func (s ExecutorState) Ended() bool { return s == ExecutorTerminating || s == ExecutorTerminated }

// Ending is how the tasks an executor leaves behind end: the state,
// reason and message of the update the agent makes for each (Mesos's
// Executor::pendingTermination, then sendExecutorTerminatedStatusUpdate).
type Ending struct {
	State   mesospb.TaskState
	Reason  mesospb.TaskStatus_Reason
	Message string
}

// The endings of an executor by what ended it. The first one decided
// stands: a shutdown's tasks end KILLED even if the executor then fails.

// EndingTerminated is the ending when nothing decided one: the executor
// went away by itself (Mesos's default, TASK_FAILED).
func EndingTerminated() Ending {
	return Ending{State: mesospb.TASK_FAILED, Reason: mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, Message: "Executor terminated"}
}

// EndingExited is the ending of an executor whose driver or process
// returned err.
func EndingExited(err error) Ending {
	e := EndingTerminated()
	if err != nil && !errors.Is(err, context.Canceled) {
		e.Message += ": " + err.Error()
	}
	return e
}

// EndingShutdown is the ending of an executor the agent shut down
// (SHUTDOWN_FRAMEWORK, SHUTDOWN_EXECUTOR, the agent's own shutdown).
func EndingShutdown(why string) Ending {
	return Ending{State: mesospb.TASK_KILLED, Reason: mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, Message: "Executor shut down: " + why}
}

// EndingDestroyed is the ending of an executor the agent destroyed
// without asking it to shut down first.
func EndingDestroyed() Ending {
	return Ending{State: mesospb.TASK_KILLED, Reason: mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, Message: "Executor destroyed"}
}

// EndingLaunchFailed is the ending of an executor that could not start,
// in Mesos's words (slave.cpp, Slave::executorLaunched).
func EndingLaunchFailed(err error) Ending {
	return Ending{State: mesospb.TASK_FAILED, Reason: mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, Message: "Failed to launch container: " + err.Error()}
}

// EndingKilledDuringLaunch is the ending of an executor that never
// subscribed and whose every task was killed before delivery.
func EndingKilledDuringLaunch() Ending {
	return Ending{State: mesospb.TASK_KILLED, Reason: mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, Message: msgKilledDuringLaunch}
}

const (
	msgKilledDuringLaunch      = "Killed before delivery to the executor"
	msgGroupKilledDuringLaunch = "A task within the task group was killed before delivery to the executor"
)

// PartitionAware reports whether a framework has the PARTITION_AWARE
// capability.
func PartitionAware(info *mesospb.FrameworkInfo) bool {
	for _, c := range info.Capabilities {
		if c.GetType() == mesospb.FrameworkInfo_Capability_PARTITION_AWARE {
			return true
		}
	}
	return false
}

// LostState is the state of a task the agent never launched: TASK_DROPPED,
// or TASK_LOST for a framework that is not partition-aware (for backward
// compatibility, as Mesos).
func LostState(partitionAware bool) mesospb.TaskState {
	if partitionAware {
		return mesospb.TASK_DROPPED
	}
	return mesospb.TASK_LOST
}

// AgentPhase is where the agent is in its life, for admission.
type AgentPhase int

const (
	AgentRunning      AgentPhase = iota
	AgentShuttingDown            // the master removed it, or its operator shuts it down
	AgentStopping                // its Run is ending: nothing new starts
)

// Admit is a RUN_TASK or RUN_TASK_GROUP as the agent sees it.
type Admit struct {
	Phase                AgentPhase
	Framework            mesospb.FrameworkInfo
	FrameworkTerminating bool                  // SHUTDOWN_FRAMEWORK came: no new tasks
	Executor             *mesospb.ExecutorInfo // the group's executor; nil for a single task
	Group                *mesospb.TaskGroupInfo
	Tasks                []mesospb.TaskInfo
	// GoExecutor reports whether an in-process Go executor is registered
	// under a command value: the kind registry. Nil: none is.
	GoExecutor func(name string) bool
	// CommandAsProcess runs command tasks' executors as processes.
	CommandAsProcess bool
	// TaskKnown reports whether the framework has a task with the ID on
	// the agent (queued, launched, or ended and unacknowledged).
	TaskKnown func(id string) bool
	// ExecutorState is the state of the framework's current run of an
	// executor ID, false when it has none.
	ExecutorState func(id string) (ExecutorState, bool)
}

// AdmitVerdict is what the agent does with a RUN_TASK.
type AdmitVerdict int

const (
	// AdmitRefuse: each refused task gets an update from the agent with
	// the Refusal's state, reason and message.
	AdmitRefuse AdmitVerdict = iota + 1
	// AdmitIgnore: the message is dropped with no update, because an
	// update would land in the stream of the live task whose ID it reuses.
	AdmitIgnore
	// AdmitStart: a new executor run of Kind with Info is started, the
	// tasks queued until it subscribes.
	AdmitStart
	// AdmitQueue: the run exists and has not subscribed: the tasks wait.
	AdmitQueue
	// AdmitLaunch: the run is subscribed: the tasks go to it now.
	AdmitLaunch
)

// Admission is the decision on a RUN_TASK.
type Admission struct {
	Verdict AdmitVerdict
	Refusal Ending           // AdmitRefuse
	Refused []mesospb.TaskID // AdmitRefuse: the tasks to answer, those whose IDs are free
	Info    mesospb.ExecutorInfo
	Kind    ExecutorKind
}

// Admit decides who runs the tasks of a RUN_TASK (one task) or
// RUN_TASK_GROUP, or why they are refused, as Mesos's Slave::run and
// Slave::__run: TASK_LOST (TASK_DROPPED) with REASON_AGENT_REMOVED,
// REASON_AGENT_RESTARTED, REASON_FRAMEWORK_REMOVED or
// REASON_EXECUTOR_TERMINATED for an agent shutting down or stopping, a
// framework shutting down, an executor terminating; TASK_ERROR with
// REASON_TASK_INVALID for a task with neither or both of command and
// executor. The kind of a new run is the built-in command executor for a
// command task, the registered Go executor when the ExecutorInfo's command
// names one, the built-in default executor for a group whose executor is
// DEFAULT or has no command, and a custom executor process otherwise.
func DecideAdmit(in Admit) Admission {
	refuse := func(state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string) Admission {
		a := Admission{Verdict: AdmitRefuse, Refusal: Ending{State: state, Reason: reason, Message: msg}}
		for _, t := range in.Tasks {
			if in.TaskKnown == nil || !in.TaskKnown(t.TaskID.Value) {
				a.Refused = append(a.Refused, t.TaskID)
			}
		}
		return a
	}
	lost := LostState(PartitionAware(&in.Framework))
	switch {
	case in.Phase == AgentShuttingDown:
		return refuse(lost, mesospb.TaskStatus_REASON_AGENT_REMOVED, "The agent is shutting down")
	case in.Phase == AgentStopping:
		return refuse(lost, mesospb.TaskStatus_REASON_AGENT_RESTARTED, "The agent is stopping")
	case in.FrameworkTerminating:
		return refuse(lost, mesospb.TaskStatus_REASON_FRAMEWORK_REMOVED, "The framework is shutting down on this agent")
	}
	if in.TaskKnown != nil {
		for _, t := range in.Tasks {
			if in.TaskKnown(t.TaskID.Value) {
				return Admission{Verdict: AdmitIgnore}
			}
		}
	}
	goExec := func(info *mesospb.ExecutorInfo) bool {
		name := info.GetCommand().GetValue()
		return name != "" && in.GoExecutor != nil && in.GoExecutor(name)
	}
	var a Admission
	switch {
	case in.Group != nil && in.Executor != nil:
		a.Info = *in.Executor
		switch {
		case goExec(&a.Info):
			a.Kind = KindGo
		case a.Info.Command == nil || a.Info.GetType() == mesospb.ExecutorInfo_DEFAULT:
			a.Kind = KindDefault
		default:
			a.Kind = KindProcess
		}
	case in.Group == nil && len(in.Tasks) == 1 && in.Tasks[0].Command != nil && in.Tasks[0].Executor == nil:
		a.Info, a.Kind = CommandExecutorInfo(in.Framework.ID.GetValue(), &in.Tasks[0]), KindCommand
		if in.CommandAsProcess {
			a.Kind = KindCommandProcess
		}
	case in.Group == nil && len(in.Tasks) == 1 && in.Tasks[0].Executor != nil && in.Tasks[0].Command == nil:
		a.Info = *in.Tasks[0].Executor
		if goExec(&a.Info) {
			a.Kind = KindGo
		} else {
			a.Kind = KindProcess
		}
	default:
		return refuse(mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "A task needs exactly one of command and executor")
	}
	if a.Info.FrameworkID == nil {
		a.Info.FrameworkID = &mesospb.FrameworkID{Value: in.Framework.ID.GetValue()}
	}
	state, ok := ExecutorState(0), false
	if in.ExecutorState != nil {
		state, ok = in.ExecutorState(a.Info.ExecutorID.Value)
	}
	switch {
	case !ok:
		a.Verdict = AdmitStart
	case state == ExecutorTerminating:
		return refuse(lost, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminating")
	case state == ExecutorTerminated:
		return refuse(lost, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminated")
	case state == ExecutorRunning:
		a.Verdict = AdmitLaunch
	default:
		a.Verdict = AdmitQueue
	}
	return a
}

// CommandExecutorName is the command of the ExecutorInfo of command tasks;
// what runs is the built-in command executor, whatever it says.
const CommandExecutorName = "apron-command-executor"

// CommandExecutorInfo is the ExecutorInfo the agent makes up for a
// command task: its ID is the task's, and it runs as the task's user, as
// Mesos's. It has no resources of its own: in process it is a goroutine,
// and as a process it is small next to its task.
func CommandExecutorInfo(fwID string, task *mesospb.TaskInfo) mesospb.ExecutorInfo {
	cmd := task.Command.GetValue()
	if task.Command.Shell == nil || task.Command.GetShell() {
		cmd = "sh -c '" + cmd + "'"
	} else if len(task.Command.Arguments) > 0 {
		cmd = "[" + joinComma(task.Command.Arguments) + "]"
	}
	name := "Command Executor (Task: " + task.TaskID.Value + ") (Command: " + cmd + ")"
	return mesospb.ExecutorInfo{
		ExecutorID:  mesospb.ExecutorID{Value: task.TaskID.Value},
		FrameworkID: &mesospb.FrameworkID{Value: fwID},
		Name:        &name,
		Command:     &mesospb.CommandInfo{Value: ptrTo(CommandExecutorName), Shell: ptrTo(false), User: task.Command.User},
		Container:   task.Container,
		Labels:      task.Labels,
	}
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

// Kill is a KILL_TASK as the agent sees the task it names.
type Kill struct {
	Known          bool // the framework has the task on the agent
	PartitionAware bool
	State          mesospb.TaskState // the task's latest state
	Queued         bool              // waiting for its executor to subscribe
	Executor       ExecutorState
}

// KillVerdict is what the agent does with a KILL_TASK.
type KillVerdict int

const (
	// KillUnknown: the agent answers with an update of its own (Refusal).
	KillUnknown KillVerdict = iota + 1
	// KillTerminal: the task has ended; nothing to do.
	KillTerminal
	// KillQueued: the agent kills the task itself, with the rest of its
	// group, before delivery (TASK_KILLED, REASON_TASK_KILLED_DURING_LAUNCH).
	KillQueued
	// KillIgnored: the executor is terminating; its end ends the task.
	KillIgnored
	// KillForward: the executor gets KILL (kept for its next subscription
	// when it has no stream).
	KillForward
)

// KillDecision is the decision on a KILL_TASK.
type KillDecision struct {
	Verdict KillVerdict
	Refusal Ending // KillUnknown
}

// DecideKill decides a KILL_TASK as Mesos's Slave::killTask and
// Slave::kill: an unknown task is answered TASK_LOST (TASK_DROPPED for a
// partition-aware framework) with REASON_EXECUTOR_TERMINATED, "Cannot find
// executor"; a queued one is killed by the agent; a launched one by its
// executor.
func DecideKill(k Kill) KillDecision {
	switch {
	case !k.Known:
		return KillDecision{Verdict: KillUnknown, Refusal: Ending{
			State: LostState(k.PartitionAware), Reason: mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, Message: "Cannot find executor"}}
	case Terminal(k.State):
		return KillDecision{Verdict: KillTerminal}
	case k.Queued:
		return KillDecision{Verdict: KillQueued}
	case k.Executor.Ended():
		return KillDecision{Verdict: KillIgnored}
	default:
		return KillDecision{Verdict: KillForward}
	}
}

// KilledDuringLaunch is the update ending a queued task killed before
// delivery: Mesos's Slave::killPendingTask, whose message names the group.
func KilledDuringLaunch(inGroup bool) Ending {
	e := EndingKilledDuringLaunch()
	if inGroup {
		e.Message = msgGroupKilledDuringLaunch
	}
	return e
}

// QueueItem is what DequeueKilled needs of a queued launch (a task or a
// task group).
type QueueItem interface {
	// Holds reports whether the item launches the task.
	Holds(taskID string) bool
	// TaskIDs lists the item's tasks; group says it is a task group.
	TaskIDs() (ids []string, group bool)
}

// DequeueKilled removes from an executor's queue the item (a task or a
// task group) holding taskID, and returns the queue left and the IDs of
// the item's tasks, which all die with it (a task group is launched
// whole or not at all); inGroup says the item was a group. When no item
// holds the task, victims is just taskID.
func DequeueKilled[T QueueItem](queue []T, taskID string) (keep []T, victims []string, inGroup bool) {
	keep = queue[:0]
	for _, item := range queue {
		if !item.Holds(taskID) {
			keep = append(keep, item)
			continue
		}
		ids, group := item.TaskIDs()
		victims = append(victims, ids...)
		inGroup = inGroup || group
	}
	if len(victims) == 0 {
		victims = []string{taskID}
	}
	return keep, victims, inGroup
}

// ShutdownAfterQueuedKill reports whether an executor is to be destroyed
// once a queued kill left it nothing to do: it never subscribed and has
// no queued or live task, so nothing would ever reach it.
func ShutdownAfterQueuedKill(state ExecutorState, live bool) bool {
	return state == ExecutorRegistering && !live
}

// TaskEnd is what becomes of a task its executor left behind.
type TaskEnd int

const (
	TaskEndNone   TaskEnd = iota // already terminal: it stays as it is
	TaskEndUpdate                // the agent sends the Ending as an update
	// TaskEndSilent: the task takes the Ending's state with no update,
	// and is forgotten: its framework was shut down by the master, which
	// would acknowledge nothing (Mesos's Slave::executorTerminated).
	TaskEndSilent
)

// EndTask decides how a task of a terminated executor ends.
func EndTask(state mesospb.TaskState, frameworkTerminating bool) TaskEnd {
	switch {
	case frameworkTerminating:
		if Terminal(state) {
			return TaskEndNone
		}
		return TaskEndSilent
	case Terminal(state):
		return TaskEndNone
	default:
		return TaskEndUpdate
	}
}

// ReportExit reports whether the master hears of an executor's end
// (EXECUTOR_EXITED): not for a command executor, which the master does not
// know; the task's own update says it all (Slave::executorTerminated).
func ReportExit(kind ExecutorKind) bool { return !kind.Command() }

// ApplyStatus records a status in a task's state and its list of
// statuses (the latest of each state, without data, as Mesos keeps
// them). A late non-terminal status of a task the agent already ended is
// still forwarded, as Mesos does, but leaves the task as it is: applied
// is false then.
func ApplyStatus(state mesospb.TaskState, statuses []mesospb.TaskStatus, st mesospb.TaskStatus) (mesospb.TaskState, []mesospb.TaskStatus, bool) {
	if Terminal(state) && !Terminal(st.GetState()) {
		return state, statuses, false
	}
	st.Data = nil
	if n := len(statuses); n > 0 && statuses[n-1].GetState() == st.GetState() {
		statuses = statuses[:n-1]
	}
	return st.GetState(), append(statuses, st), true
}

// ReconcileTask is what the agent knows of a task a reconciliation names.
type ReconcileTask struct {
	State      mesospb.TaskState
	ExecutorID string
	Last       *mesospb.TaskStatus // its latest status, nil when none
}

// ReconcileAnswer is the agent's answer to a RECONCILE_TASKS for one task:
// its latest state, or TASK_DROPPED when the agent does not know it
// (task nil), with REASON_RECONCILIATION. It carries no uuid: it is not
// retried and needs no acknowledgement, as the master's own answers.
func ReconcileAnswer(fwID, agentID string, id mesospb.TaskID, task *ReconcileTask, now time.Time) *internalpb.Call_StatusUpdate {
	st := mesospb.TaskStatus{
		TaskID:    id,
		Source:    mesospb.TaskStatus_SOURCE_AGENT.Enum(),
		Reason:    mesospb.TaskStatus_REASON_RECONCILIATION.Enum(),
		Timestamp: ptrTo(float64(now.UnixNano()) / 1e9),
	}
	if agentID != "" {
		st.AgentID = &mesospb.AgentID{Value: agentID}
	}
	u := &internalpb.Call_StatusUpdate{FrameworkID: mesospb.FrameworkID{Value: fwID}}
	if task == nil {
		st.State = mesospb.TASK_DROPPED.Enum()
		st.Message = ptrTo("Reconciliation: task unknown to the agent")
	} else {
		if last := task.Last; last != nil {
			st.Message, st.Healthy, st.Labels, st.ContainerStatus = last.Message, last.Healthy, last.Labels, last.ContainerStatus
		}
		st.State = task.State.Enum()
		st.ExecutorID = &mesospb.ExecutorID{Value: task.ExecutorID}
		u.ExecutorID = st.ExecutorID
	}
	u.Status = st
	u.LatestState = st.State
	return u
}

// AgentStatus is a status update the agent makes itself for a task.
func AgentStatus(taskID string, e Ending, uuid []byte, now time.Time) mesospb.TaskStatus {
	st := mesospb.TaskStatus{
		TaskID:    mesospb.TaskID{Value: taskID},
		State:     e.State.Enum(),
		Source:    mesospb.TaskStatus_SOURCE_AGENT.Enum(),
		Reason:    e.Reason.Enum(),
		UUID:      uuid,
		Timestamp: ptrTo(float64(now.UnixNano()) / 1e9),
	}
	if e.Message != "" {
		st.Message = ptrTo(e.Message)
	}
	return st
}

// ForgetExecutor reports whether an executor run may be forgotten (moved
// to the framework's completed executors): terminated, with every task
// forgotten.
func ForgetExecutor(state ExecutorState, tasks int) bool {
	return state == ExecutorTerminated && tasks == 0
}

// ForgetFramework reports whether a framework may be forgotten with its
// update streams: no executor run and no task left.
func ForgetFramework(executors, tasks int) bool { return executors == 0 && tasks == 0 }

// ForgetTask reports whether a task may be forgotten (moved to the
// completed tasks): terminal, and its stream ended with the
// acknowledgement of its terminal update.
func ForgetTask(state mesospb.TaskState, streamEnded bool) bool {
	return Terminal(state) && streamEnded
}

// ReregisterExecutor reports whether a REREGISTER lists an executor run:
// one the master knows (not a command executor) that has not terminated.
func ReregisterExecutor(kind ExecutorKind, state ExecutorState) bool {
	return !kind.Command() && state != ExecutorTerminated
}

// ShutdownVerdict is how the agent shuts an executor down.
type ShutdownVerdict int

const (
	// ShutdownNone: it is terminating or terminated already.
	ShutdownNone ShutdownVerdict = iota + 1
	// ShutdownDestroy: it never subscribed, so it has nothing to shut
	// down gracefully: its containers are destroyed at once.
	ShutdownDestroy
	// ShutdownGraceful: it gets SHUTDOWN and is destroyed once its grace
	// period (GracePeriod) has passed, if it has not gone by then.
	ShutdownGraceful
)

// DecideShutdown decides how an executor in state is shut down (Mesos's
// Slave::_shutdownExecutor).
func DecideShutdown(state ExecutorState) ShutdownVerdict {
	switch {
	case state.Ended():
		return ShutdownNone
	case state == ExecutorRegistering:
		return ShutdownDestroy
	default:
		return ShutdownGraceful
	}
}

// GracePeriod is the time an executor has to shut down: its own
// ExecutorInfo.shutdown_grace_period, or the agent's default.
func GracePeriod(info *mesospb.ExecutorInfo, def time.Duration) time.Duration {
	if g := info.ShutdownGracePeriod; g != nil && g.Nanoseconds > 0 {
		return time.Duration(g.Nanoseconds)
	}
	return def
}

package agent

import (
	"fmt"
	"strings"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// taskRec is a task the agent knows: queued for its executor, launched, or
// terminal with an update not yet acknowledged.
type taskRec struct {
	exec  *executorRec
	info  mesospb.TaskInfo
	group *mesospb.TaskGroupInfo // the group it came in, nil for a single task
	state mesospb.TaskState
	// statuses keeps the latest status of each state the task went through,
	// without data, as Mesos keeps them.
	statuses []mesospb.TaskStatus
	// The state and uuid of the update at the head of the task's status
	// update stream (sent to the master, not yet acknowledged).
	updateState *mesospb.TaskState
	updateUUID  []byte
	queued      bool // waiting for the executor to subscribe
}

func terminal(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_ERROR,
		mesospb.TASK_LOST, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// proto is the task as the master and the operator API see it.
func (t *taskRec) proto() mesospb.Task {
	p := mesospb.Task{
		Name:              t.info.Name,
		TaskID:            t.info.TaskID,
		FrameworkID:       mesospb.FrameworkID{Value: t.exec.fw.id},
		AgentID:           t.info.AgentID,
		State:             t.state.Enum(),
		Resources:         t.info.Resources,
		Statuses:          append([]mesospb.TaskStatus(nil), t.statuses...),
		StatusUpdateState: t.updateState,
		StatusUpdateUUID:  t.updateUUID,
		Labels:            t.info.Labels,
		Discovery:         t.info.Discovery,
		Container:         t.info.Container,
		HealthCheck:       t.info.HealthCheck,
		KillPolicy:        t.info.KillPolicy,
		Limits:            t.info.Limits,
	}
	if !t.exec.kind.command() {
		p.ExecutorID = &mesospb.ExecutorID{Value: t.exec.id}
	}
	if u := t.exec.taskUser(); u != "" {
		p.User = ptr(u)
	}
	return p
}

// commandExecutorInfo is the ExecutorInfo the agent makes up for a command
// task: its ID is the task's, and it runs as the task's user, as Mesos's.
// It has no resources of its own: in process it is a goroutine, and as a
// process it is small next to its task.
func commandExecutorInfo(fwID string, task *mesospb.TaskInfo) mesospb.ExecutorInfo {
	cmd := task.Command.GetValue()
	if task.Command.Shell == nil || task.Command.GetShell() {
		cmd = "sh -c '" + cmd + "'"
	} else if len(task.Command.Arguments) > 0 {
		cmd = "[" + strings.Join(task.Command.Arguments, ", ") + "]"
	}
	return mesospb.ExecutorInfo{
		ExecutorID:  mesospb.ExecutorID{Value: task.TaskID.Value},
		FrameworkID: &mesospb.FrameworkID{Value: fwID},
		Name:        ptr(fmt.Sprintf("Command Executor (Task: %s) (Command: %s)", task.TaskID.Value, cmd)),
		Command:     &mesospb.CommandInfo{Value: ptr(commandExecutorName), Shell: ptr(false), User: task.Command.User},
		Container:   task.Container,
		Labels:      task.Labels,
	}
}

// commandExecutorName is the command of the ExecutorInfo of command tasks;
// what runs is the built-in command executor, in process or
// Config.CommandExecutorPath, whatever it says.
const commandExecutorName = "apron-command-executor"

// runTasks handles RUN_TASK (one task; execInfo and group nil) and
// RUN_TASK_GROUP.
func (a *Agent) runTasks(fwInfo mesospb.FrameworkInfo, execInfo *mesospb.ExecutorInfo, group *mesospb.TaskGroupInfo, tasks []mesospb.TaskInfo) {
	if fwInfo.ID == nil || fwInfo.ID.Value == "" || len(tasks) == 0 {
		a.log.Warn("agent: RUN_TASK without a framework ID or tasks")
		return
	}
	fwID := fwInfo.ID.Value
	fw := a.ensureFramework(fwInfo)
	lost := mesospb.TASK_LOST
	if fw.partitionAware() {
		lost = mesospb.TASK_DROPPED
	}
	refuse := func(state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string) {
		for _, t := range tasks {
			if fw.tasks[t.TaskID.Value] == nil {
				a.statusUpdate(fwID, "", a.agentStatus(fwID, t.TaskID.Value, state, reason, msg))
			}
		}
		a.maybeForgetFramework(fw)
	}
	switch {
	case a.shutdown != nil:
		refuse(lost, mesospb.TaskStatus_REASON_AGENT_REMOVED, "The agent is shutting down")
		return
	case a.stopping:
		// Run's context has ended (stopUncheckpointed): nothing starts.
		refuse(lost, mesospb.TaskStatus_REASON_AGENT_RESTARTED, "The agent is stopping")
		return
	case fw.terminating:
		refuse(lost, mesospb.TaskStatus_REASON_FRAMEWORK_REMOVED, "The framework is shutting down on this agent")
		return
	}
	for _, t := range tasks {
		if fw.tasks[t.TaskID.Value] != nil {
			a.log.Warn("agent: ignoring a task whose ID is in use", "framework", fwID, "task", t.TaskID.Value)
			return
		}
	}

	// Which executor runs the task(s)?
	var info mesospb.ExecutorInfo
	var kind executorKind
	switch {
	case group != nil:
		info = *execInfo
		switch name := info.GetCommand().GetValue(); {
		case a.cfg.Executors[name] != nil && name != "":
			kind = kindGo
		case info.Command == nil || info.GetType() == mesospb.ExecutorInfo_DEFAULT:
			kind = kindDefault
		default:
			kind = kindProcess
		}
	case tasks[0].Command != nil && tasks[0].Executor == nil:
		info, kind = commandExecutorInfo(fwID, &tasks[0]), kindCommand
		if a.cfg.CommandExecutorMode == CommandExecutorProcess {
			kind = kindCommandProcess
		}
	case tasks[0].Executor != nil && tasks[0].Command == nil:
		info = *tasks[0].Executor
		if name := info.GetCommand().GetValue(); name != "" && a.cfg.Executors[name] != nil {
			kind = kindGo
		} else {
			kind = kindProcess
		}
	default:
		refuse(mesospb.TASK_ERROR, mesospb.TaskStatus_REASON_TASK_INVALID, "A task needs exactly one of command and executor")
		return
	}
	if info.FrameworkID == nil {
		info.FrameworkID = &mesospb.FrameworkID{Value: fwID}
	}

	e := fw.executors[info.ExecutorID.Value]
	if e != nil && (e.state == execTerminating || e.state == execTerminated) {
		refuse(lost, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Executor terminating")
		return
	}
	fresh := e == nil
	if fresh {
		e = a.newExecutor(fw, info, kind)
	}

	for i := range tasks {
		t := &taskRec{exec: e, info: tasks[i], group: group, state: mesospb.TASK_STAGING, queued: true}
		if t.info.AgentID.Value == "" {
			t.info.AgentID = mesospb.AgentID{Value: a.id}
		}
		e.tasks[t.info.TaskID.Value] = t
		e.taskIDs = append(e.taskIDs, t.info.TaskID)
		a.noteTaskVolumes(e, &t.info)
		fw.tasks[t.info.TaskID.Value] = t
		if err := a.meta.appendTask(e, &t.info, group); err != nil {
			a.log.Error("agent: checkpointing a task", "task", t.info.TaskID.Value, "err", err)
		}
	}
	item := launchItem{group: group}
	if group == nil {
		item.task = &e.tasks[tasks[0].TaskID.Value].info
	}
	if fresh {
		e.queue = append(e.queue, item)
		a.startExecutor(e)
		return
	}
	if e.state == execRunning {
		a.launch(e, item)
	} else {
		e.queue = append(e.queue, item)
	}
}

// detachExecutor moves a terminated executor's remaining tasks out of the
// executor table's way when a new run of the same executor ID starts.
func (a *Agent) detachExecutor(old *executorRec) {
	delete(old.fw.executors, old.key)
	if len(old.tasks) == 0 {
		return
	}
	// Keep it reachable for its tasks' acknowledgements under a key no
	// executor ID can take.
	old.key = "\x00" + old.containerID
	old.fw.executors[old.key] = old
	old.fw.detached++
}

// killTask handles KILL_TASK as Mesos: a queued task (and the rest of its
// group) is killed by the agent; a launched one is killed by its
// executor; an unknown one is answered with TASK_LOST (TASK_DROPPED for a
// partition-aware framework).
func (a *Agent) killTask(fwID, taskID string, policy *mesospb.KillPolicy) {
	fw := a.frameworks[fwID]
	var t *taskRec
	if fw != nil {
		t = fw.tasks[taskID]
	}
	if t == nil {
		lost := mesospb.TASK_LOST
		if fw != nil && fw.partitionAware() {
			lost = mesospb.TASK_DROPPED
		}
		a.statusUpdate(fwID, "", a.agentStatus(fwID, taskID, lost, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, "Cannot find executor"))
		return
	}
	e := t.exec
	switch {
	case terminal(t.state):
		a.log.Info("agent: ignoring the kill of a terminal task", "framework", fwID, "task", taskID)
	case t.queued:
		a.killQueued(e, t)
		if e.state == execRegistering && !e.live() {
			e.ending = &ending{state: mesospb.TASK_KILLED, reason: mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, message: "Killed before delivery to the executor"}
			a.killExecutor(e)
		}
	case e.state == execTerminating || e.state == execTerminated:
		a.log.Info("agent: ignoring a kill: the executor is terminating", "framework", fwID, "task", taskID)
	default:
		a.sendExecutor(e, &executorpb.Event{
			Type: executorpb.Event_KILL.Enum(),
			Kill: &executorpb.Event_Kill{TaskID: t.info.TaskID, KillPolicy: policy},
		})
	}
}

// killQueued removes a queued task, with its whole group, from its
// executor's queue and kills it.
func (a *Agent) killQueued(e *executorRec, t *taskRec) {
	var victims []string
	keep := e.queue[:0]
	for _, item := range e.queue {
		hit := false
		if item.group != nil {
			for _, gt := range item.group.Tasks {
				hit = hit || gt.TaskID.Value == t.info.TaskID.Value
			}
		} else {
			hit = item.task.TaskID.Value == t.info.TaskID.Value
		}
		if !hit {
			keep = append(keep, item)
			continue
		}
		victims = append(victims, item.taskIDs()...)
	}
	e.queue = keep
	if len(victims) == 0 {
		victims = []string{t.info.TaskID.Value}
	}
	for _, id := range victims {
		if vt := e.tasks[id]; vt != nil && !terminal(vt.state) {
			// Still queued while its update is made: it never reached
			// its executor (see addContainerStatus); the terminal
			// update dequeues it.
			a.statusUpdate(e.fw.id, e.id, a.agentStatus(e.fw.id, id, mesospb.TASK_KILLED,
				mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, "Killed before delivery to the executor"))
		}
	}
}

// agentStatus is a status update the agent makes itself.
func (a *Agent) agentStatus(fwID, taskID string, state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string) mesospb.TaskStatus {
	st := mesospb.TaskStatus{
		TaskID:    mesospb.TaskID{Value: taskID},
		State:     state.Enum(),
		Source:    mesospb.TaskStatus_SOURCE_AGENT.Enum(),
		Reason:    reason.Enum(),
		UUID:      a.newUUID(),
		Timestamp: ptr(float64(a.clk.Now().UnixNano()) / 1e9),
	}
	if msg != "" {
		st.Message = ptr(msg)
	}
	return st
}

// updateTaskState records a status in the task, as Mesos's executor
// bookkeeping does.
func (a *Agent) updateTaskState(t *taskRec, st mesospb.TaskStatus) {
	if terminal(t.state) && !terminal(st.GetState()) {
		// A late update (the agent ended the task first): it is still
		// forwarded, as Mesos does, but the task stays ended.
		return
	}
	t.state = st.GetState()
	st.Data = nil
	if n := len(t.statuses); n > 0 && t.statuses[n-1].GetState() == st.GetState() {
		t.statuses = t.statuses[:n-1]
	}
	t.statuses = append(t.statuses, st)
	if terminal(t.state) && t.queued {
		t.queued = false
	}
}

// forgetTask drops a terminal task whose last update was acknowledged,
// keeping it in the bounded completed list.
func (a *Agent) forgetTask(t *taskRec) {
	e := t.exec
	if e.tasks[t.info.TaskID.Value] != t {
		return
	}
	delete(e.tasks, t.info.TaskID.Value)
	if e.fw.tasks[t.info.TaskID.Value] == t {
		delete(e.fw.tasks, t.info.TaskID.Value)
	}
	a.completed = appendBounded(a.completed, t.proto(), a.cfg.MaxCompletedTasks)
	a.maybeForgetExecutor(e)
	a.maybeForgetFramework(e.fw)
}

// completedTasks is the newest MaxCompletedTasks of the completed list,
// oldest first (the list itself may hold up to twice as many).
func (a *Agent) completedTasks() []mesospb.Task {
	return newestCompleted(a.completed, a.cfg.MaxCompletedTasks)
}

// reconcileTasks answers RECONCILE_TASKS: the latest state of each task
// (all the framework's tasks when none are named), TASK_DROPPED for tasks
// the agent does not know. The answers carry no uuid: they are not
// retried and need no acknowledgement, as the master's own reconciliation
// answers.
func (a *Agent) reconcileTasks(fwID string, ids []mesospb.TaskID) {
	fw := a.frameworks[fwID]
	if len(ids) == 0 && fw != nil {
		for _, e := range fw.sortedExecutors() {
			for _, t := range e.sortedTasks() {
				ids = append(ids, t.info.TaskID)
			}
		}
	}
	for _, id := range ids {
		var t *taskRec
		if fw != nil {
			t = fw.tasks[id.Value]
		}
		st := mesospb.TaskStatus{
			TaskID:    id,
			Source:    mesospb.TaskStatus_SOURCE_AGENT.Enum(),
			Reason:    mesospb.TaskStatus_REASON_RECONCILIATION.Enum(),
			Timestamp: ptr(float64(a.clk.Now().UnixNano()) / 1e9),
		}
		if a.id != "" {
			st.AgentID = &mesospb.AgentID{Value: a.id}
		}
		var execID *mesospb.ExecutorID
		if t == nil {
			st.State = mesospb.TASK_DROPPED.Enum()
			st.Message = ptr("Reconciliation: task unknown to the agent")
		} else {
			if n := len(t.statuses); n > 0 {
				last := t.statuses[n-1]
				st.Message, st.Healthy, st.Labels, st.ContainerStatus = last.Message, last.Healthy, last.Labels, last.ContainerStatus
			}
			st.State = t.state.Enum()
			execID = &mesospb.ExecutorID{Value: t.exec.id}
			st.ExecutorID = execID
		}
		a.send(&internalpb.Call{
			Type: internalpb.Call_STATUS_UPDATE.Enum(),
			StatusUpdate: &internalpb.Call_StatusUpdate{
				FrameworkID: mesospb.FrameworkID{Value: fwID},
				ExecutorID:  execID,
				Status:      st,
				LatestState: st.State,
			},
		})
	}
}

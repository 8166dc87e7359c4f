package agent

import (
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/agentcore"
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

func terminal(s mesospb.TaskState) bool { return agentcore.Terminal(s) }

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

// commandExecutorName is the command of the ExecutorInfo of command tasks;
// what runs is the built-in command executor, in process or
// Config.CommandExecutorPath, whatever it says.
const commandExecutorName = agentcore.CommandExecutorName

// runTasks handles RUN_TASK (one task; execInfo and group nil) and
// RUN_TASK_GROUP: agentcore.DecideAdmit decides, this does what it says.
func (a *Agent) runTasks(fwInfo mesospb.FrameworkInfo, execInfo *mesospb.ExecutorInfo, group *mesospb.TaskGroupInfo, tasks []mesospb.TaskInfo) {
	if fwInfo.ID == nil || fwInfo.ID.Value == "" || len(tasks) == 0 {
		a.log.Warn("agent: RUN_TASK without a framework ID or tasks")
		return
	}
	fwID := fwInfo.ID.Value
	fw := a.ensureFramework(fwInfo)
	phase := agentcore.AgentRunning
	switch {
	case a.shutdown != nil:
		phase = agentcore.AgentShuttingDown
	case a.stopping:
		// Run's context has ended (stopUncheckpointed): nothing starts.
		phase = agentcore.AgentStopping
	}
	d := agentcore.DecideAdmit(agentcore.Admit{
		Phase:                phase,
		Framework:            fw.info,
		FrameworkTerminating: fw.terminating,
		Executor:             execInfo,
		Group:                group,
		Tasks:                tasks,
		GoExecutor:           func(name string) bool { return a.cfg.Executors[name] != nil },
		CommandAsProcess:     a.cfg.CommandExecutorMode == CommandExecutorProcess,
		TaskKnown:            func(id string) bool { return fw.tasks[id] != nil },
		ExecutorState: func(id string) (execState, bool) {
			if e := fw.executors[id]; e != nil {
				return e.state, true
			}
			return 0, false
		},
	})
	switch d.Verdict {
	case agentcore.AdmitRefuse:
		for _, id := range d.Refused {
			a.statusUpdate(fwID, "", a.agentEnd(id.Value, d.Refusal))
		}
		a.maybeForgetFramework(fw)
		return
	case agentcore.AdmitIgnore:
		a.log.Warn("agent: ignoring a task whose ID is in use", "framework", fwID, "task", tasks[0].TaskID.Value)
		return
	}

	e := fw.executors[d.Info.ExecutorID.Value]
	if d.Verdict == agentcore.AdmitStart {
		e = a.newExecutor(fw, d.Info, executorKind(d.Kind))
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
	switch d.Verdict {
	case agentcore.AdmitStart:
		e.queue = append(e.queue, item)
		a.startExecutor(e)
	case agentcore.AdmitLaunch:
		a.launch(e, item)
	default:
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

// killTask handles KILL_TASK as agentcore.DecideKill decides (Mesos's
// Slave::killTask): a queued task (and the rest of its group) is killed by
// the agent; a launched one is killed by its executor; an unknown one is
// answered with TASK_LOST (TASK_DROPPED for a partition-aware framework).
func (a *Agent) killTask(fwID, taskID string, policy *mesospb.KillPolicy) {
	fw := a.frameworks[fwID]
	var t *taskRec
	if fw != nil {
		t = fw.tasks[taskID]
	}
	k := agentcore.Kill{Known: t != nil, PartitionAware: fw != nil && fw.partitionAware()}
	if t != nil {
		k.State, k.Queued, k.Executor = t.state, t.queued, t.exec.state
	}
	d := agentcore.DecideKill(k)
	switch d.Verdict {
	case agentcore.KillUnknown:
		a.statusUpdate(fwID, "", a.agentEnd(taskID, d.Refusal))
	case agentcore.KillTerminal:
		a.log.Info("agent: ignoring the kill of a terminal task", "framework", fwID, "task", taskID)
	case agentcore.KillQueued:
		e := t.exec
		a.killQueued(e, t)
		if agentcore.ShutdownAfterQueuedKill(e.state, e.live()) {
			e.ending = endingOf(agentcore.EndingKilledDuringLaunch())
			a.killExecutor(e)
		}
	case agentcore.KillIgnored:
		a.log.Info("agent: ignoring a kill: the executor is terminating", "framework", fwID, "task", taskID)
	case agentcore.KillForward:
		a.sendExecutor(t.exec, &executorpb.Event{
			Type: executorpb.Event_KILL.Enum(),
			Kill: &executorpb.Event_Kill{TaskID: t.info.TaskID, KillPolicy: policy},
		})
	}
}

// killQueued removes a queued task, with its whole group, from its
// executor's queue and kills it.
func (a *Agent) killQueued(e *executorRec, t *taskRec) {
	keep, victims, inGroup := agentcore.DequeueKilled(e.queue, t.info.TaskID.Value)
	e.queue = keep
	end := agentcore.KilledDuringLaunch(inGroup || t.group != nil)
	for _, id := range victims {
		if vt := e.tasks[id]; vt != nil && !terminal(vt.state) {
			// Still queued while its update is made: it never reached
			// its executor (see addContainerStatus); the terminal
			// update dequeues it.
			a.statusUpdate(e.fw.id, e.id, a.agentEnd(id, end))
		}
	}
}

// agentStatus is a status update the agent makes itself.
func (a *Agent) agentStatus(fwID, taskID string, state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string) mesospb.TaskStatus {
	return a.agentEnd(taskID, agentcore.Ending{State: state, Reason: reason, Message: msg})
}

// agentEnd is a status update the agent makes itself, as end says.
func (a *Agent) agentEnd(taskID string, end agentcore.Ending) mesospb.TaskStatus {
	return agentcore.AgentStatus(taskID, end, a.newUUID(), a.clk.Now())
}

// updateTaskState records a status in the task, as Mesos's executor
// bookkeeping does (agentcore.ApplyStatus).
func (a *Agent) updateTaskState(t *taskRec, st mesospb.TaskStatus) {
	state, statuses, applied := agentcore.ApplyStatus(t.state, t.statuses, st)
	if !applied {
		return
	}
	t.state, t.statuses = state, statuses
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
// the agent does not know (agentcore.ReconcileAnswer).
func (a *Agent) reconcileTasks(fwID string, ids []mesospb.TaskID) {
	fw := a.frameworks[fwID]
	if len(ids) == 0 && fw != nil {
		for _, e := range fw.sortedExecutors() {
			for _, t := range e.sortedTasks() {
				ids = append(ids, t.info.TaskID)
			}
		}
	}
	now := a.clk.Now()
	for _, id := range ids {
		var known *agentcore.ReconcileTask
		if fw != nil {
			if t := fw.tasks[id.Value]; t != nil {
				known = &agentcore.ReconcileTask{State: t.state, ExecutorID: t.exec.id}
				if n := len(t.statuses); n > 0 {
					known.Last = &t.statuses[n-1]
				}
			}
		}
		a.send(&internalpb.Call{
			Type:         internalpb.Call_STATUS_UPDATE.Enum(),
			StatusUpdate: agentcore.ReconcileAnswer(fwID, a.id, id, known, now),
		})
	}
}

package agent

import (
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/agentcore"
)

func terminal(s mesospb.TaskState) bool { return agentcore.Terminal(s) }

// commandExecutorName is the command of the ExecutorInfo of command tasks;
// what runs is the built-in command executor, in process or
// Config.CommandExecutorPath, whatever it says.
const commandExecutorName = agentcore.CommandExecutorName

// runTasks handles RUN_TASK (one task; execInfo and group nil) and
// RUN_TASK_GROUP: the core's tables admit them (agentcore.DecideAdmit
// decides), and this does what they say.
func (a *Agent) runTasks(fwInfo mesospb.FrameworkInfo, execInfo *mesospb.ExecutorInfo, group *mesospb.TaskGroupInfo, tasks []mesospb.TaskInfo) {
	if fwInfo.ID == nil || fwInfo.ID.Value == "" || len(tasks) == 0 {
		a.log.Warn("agent: RUN_TASK without a framework ID or tasks")
		return
	}
	fwID := fwInfo.ID.Value
	phase := agentcore.AgentRunning
	switch {
	case a.shutdown != nil:
		phase = agentcore.AgentShuttingDown
	case a.stopping:
		// Run's context has ended (stopUncheckpointed): nothing starts.
		phase = agentcore.AgentStopping
	}
	d := a.tables.RunTasks(agentcore.RunTasks{
		Phase:            phase,
		Framework:        fwInfo,
		Executor:         execInfo,
		Group:            group,
		Tasks:            tasks,
		AgentID:          a.id,
		GoExecutor:       a.goExecutorFn,
		CommandAsProcess: a.cfg.CommandExecutorMode == CommandExecutorProcess,
		NewRun:           a.newRunFn,
	})
	a.frameworkTaken(d.Framework, d.FrameworkChanged)
	switch d.Verdict {
	case agentcore.AdmitRefuse:
		for _, id := range d.Refused {
			a.statusUpdate(fwID, "", a.agentEnd(id.Value, d.Refusal))
		}
		a.forgotten(a.tables.ForgetFramework(d.Framework))
		return
	case agentcore.AdmitIgnore:
		a.log.Warn("agent: ignoring a task whose ID is in use", "framework", fwID, "task", tasks[0].TaskID.Value)
		return
	}

	e := a.execOf(d.Run)
	if d.Verdict == agentcore.AdmitStart {
		e = a.newExecutor(d.Run)
	}
	for i := range tasks {
		t := e.Task(tasks[i].TaskID.Value)
		a.noteTaskVolumes(e, t.Info())
		if err := a.meta.appendTask(e, t.Info(), group); err != nil {
			a.log.Error("agent: checkpointing a task", "task", t.ID(), "err", err)
		}
	}
	switch d.Verdict {
	case agentcore.AdmitStart:
		a.startExecutor(e)
	case agentcore.AdmitLaunch:
		a.launch(e, d.Item)
	}
}

// goExecutor reports whether an in-process Go executor is registered
// under the name.
func (a *Agent) goExecutor(name string) bool { return a.cfg.Executors[name] != nil }

// killTask handles KILL_TASK as the core's tables decide
// (agentcore.DecideKill, Mesos's Slave::killTask): a queued task (and the
// rest of its group) is killed by the agent; a launched one is killed by
// its executor; an unknown one is answered with TASK_LOST (TASK_DROPPED
// for a partition-aware framework).
func (a *Agent) killTask(fwID, taskID string, policy *mesospb.KillPolicy) {
	d := a.tables.Kill(fwID, taskID)
	switch d.Verdict {
	case agentcore.KillUnknown:
		a.statusUpdate(fwID, "", a.agentEnd(taskID, d.Refusal))
	case agentcore.KillTerminal:
		a.log.Info("agent: ignoring the kill of a terminal task", "framework", fwID, "task", taskID)
	case agentcore.KillQueued:
		e := a.execOf(d.Task.Run())
		for _, id := range d.Victims {
			// Still queued while its update is made: it never reached
			// its executor (see addContainerStatus); the terminal
			// update dequeues it.
			a.statusUpdate(e.FrameworkID(), e.ID(), a.agentEnd(id, d.Ending))
		}
		if e.AfterQueuedKill() {
			a.killExecutor(e)
		}
	case agentcore.KillIgnored:
		a.log.Info("agent: ignoring a kill: the executor is terminating", "framework", fwID, "task", taskID)
	case agentcore.KillForward:
		a.sendExecutor(a.execOf(d.Task.Run()), &executorpb.Event{
			Type: executorpb.Event_KILL.Enum(),
			Kill: &executorpb.Event_Kill{TaskID: d.Task.Info().TaskID, KillPolicy: policy},
		})
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

// forgetTask drops a terminal task whose last update was acknowledged,
// keeping it in the bounded completed list.
func (a *Agent) forgetTask(t *taskRec) { a.forgotten(a.tables.ForgetTask(t)) }

// forgotten cleans up after what the core's tables forgot (their history
// has it): the runs' sandboxes go to the garbage collector; the
// frameworks' update streams and checkpoints are removed.
func (a *Agent) forgotten(f agentcore.Forgotten) {
	for _, r := range f.Runs {
		delete(a.execs, r.ContainerID())
		// Its sandbox goes after Config.GCDelay; see gc.go.
		a.gcExecutorForgotten(r)
	}
	for _, fw := range f.Frameworks {
		// Updates of a framework the master removed, never to be
		// acknowledged, go with it (Mesos's removeFramework).
		if n := a.updates.Cleanup(fw.ID()); n > 0 {
			a.log.Info("agent: dropping the updates of a removed framework", "framework", fw.ID(), "updates", n)
		}
		a.applyUpdates()
		if err := a.meta.removeFramework(fw.ID()); err != nil {
			a.log.Warn("agent: removing a framework's checkpoint", "framework", fw.ID(), "err", err)
		}
		a.gcFrameworkForgotten(fw)
	}
}

// reconcileTasks answers RECONCILE_TASKS: the latest state of each task
// (all the framework's tasks when none are named), TASK_DROPPED for tasks
// the agent does not know (agentcore.ReconcileAnswer).
func (a *Agent) reconcileTasks(fwID string, ids []mesospb.TaskID) {
	ids, known := a.tables.Reconcile(fwID, ids)
	now := a.clk.Now()
	for i, id := range ids {
		a.send(&internalpb.Call{
			Type:         internalpb.Call_STATUS_UPDATE.Enum(),
			StatusUpdate: agentcore.ReconcileAnswer(fwID, a.id, id, known[i], now),
		})
	}
}

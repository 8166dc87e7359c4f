package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/agentcore"
)

// recover rebuilds the agent's state from the checkpoints of an earlier
// run on the same WorkDir, before the loop starts (it runs on the loop's
// goroutine). Containers of command and default executors that survived
// are handed to new built-in executors (Reattach), which report the tasks'
// ends; executor processes that survived are watched again and must
// subscribe again within the re-registration window (reregistrationWindow),
// counted from the end of recovery; tasks whose
// containers are gone, and tasks of in-process Go executors (which died
// with the old agent), get TASK_FAILED with REASON_EXECUTOR_TERMINATED;
// containers nobody claims are destroyed. The
// updates of the status update manager not yet acknowledged are resent
// after re-registration.
func (a *Agent) recover(ctx context.Context) error {
	// No update goes out before the agent has registered (resumeUpdates).
	a.pauseUpdates()
	recovered, err := a.cont.Recover(ctx)
	if err != nil {
		return fmt.Errorf("agent: recovering containers: %w", err)
	}
	// What recovery forgets is scheduled for garbage collection by its
	// mtime, and so is every sandbox no recovered run holds (gc.go).
	a.gc.recovering = true
	defer func() { a.gc.recovering = false }()
	a.collectVolumeTrash()
	if a.id == "" {
		// Without an ID nothing checkpointed can be re-registered: start
		// afresh, and destroy whatever an earlier run left.
		if err := a.meta.wipe(); err != nil {
			return fmt.Errorf("agent: clearing stale checkpoints: %w", err)
		}
		a.destroyUnclaimed(ctx, nil)
		a.gcRecover()
		return nil
	}
	if a.checkpointed, err = a.meta.readResources(); err != nil {
		a.log.Warn("agent: unreadable checkpointed resources", "err", err)
	}
	a.makeVolumeDirs(a.checkpointedResources().PersistentVolumes())
	fws, logs, err := a.meta.readAll(a.log.Warn)
	if err != nil {
		return fmt.Errorf("agent: reading checkpoints: %w", err)
	}
	a.log.Info("agent: recovering", "id", a.id, "frameworks", len(fws), "update_streams", len(logs), "containers", len(recovered))

	// As Mesos's agent, only frameworks with FrameworkInfo.checkpoint are
	// recovered; the others' checkpoints are removed, and their
	// containers destroyed below (forgetUncheckpointed).
	claimed := map[string]bool{}
	fws, logs = a.forgetUncheckpointed(ctx, fws, logs, claimed)

	// The status update manager: replay each task's log.
	history := map[agentcore.StreamKey][]*mesospb.TaskStatus{}
	for _, l := range logs {
		key := agentcore.StreamKey{Framework: l.FrameworkID, Task: l.TaskID}
		for _, u := range l.Updates {
			history[key] = append(history[key], &u.Status)
		}
	}
	a.updates.Recover(logs)
	a.applyUpdates()

	containers, err := a.cont.Containers(ctx)
	if err != nil {
		return fmt.Errorf("agent: listing containers: %w", err)
	}
	// Every run is back in the tables before any is decided on: a run
	// that ends at once must not take its framework (its checkpoints and
	// update streams) with it while the framework's other runs are still
	// to come.
	var runs []*executorRec
	fwRecs := make([]*frameworkRec, 0, len(fws))
	for _, rf := range fws {
		fw, _, _ := a.tables.EnsureFramework(rf.info)
		fwRecs = append(fwRecs, fw)
		for _, re := range rf.executors {
			runs = append(runs, a.recoverRun(fw, re, history))
		}
	}
	var resubscribing []*executorRec
	for _, e := range runs {
		if a.recoverExecutor(ctx, e, containers, claimed) {
			resubscribing = append(resubscribing, e)
		}
	}
	for _, fw := range fwRecs {
		a.forgotten(a.tables.ForgetFramework(fw))
	}
	a.destroyUnclaimed(ctx, claimed)
	a.gcRecover()
	// As Mesos's agent (Slave::_recover), the clock of the executors'
	// re-registration starts once recovery is done and the loop, which
	// runs next, takes their subscriptions: time spent recovering other
	// executors does not shorten it (reregisterExecutorTimeout).
	window := a.reregistrationWindow()
	for _, e := range resubscribing {
		a.awaitSubscription(e, window, mesospb.TaskStatus_REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
			"Executor did not subscribe again within "+window.String()+" of the agent's restart")
	}
	return nil
}

// forgetUncheckpointed takes the frameworks without
// FrameworkInfo.checkpoint out of what recovery brings back, as Mesos's
// agent, which checkpoints and recovers only the frameworks that ask for
// it (Slave::recover): their tasks are not re-registered, their
// unacknowledged updates not resent (Mesos never wrote them down), and
// their checkpoints are removed. Their containers are left unclaimed, so
// destroyUnclaimed destroys them with the other orphans, except an
// executor process's, which is claimed here and destroyed on another
// goroutine before the containers a command executor process left in its
// state directory. It returns the frameworks and update logs to recover.
//
// Apron writes the checkpoints of every framework while it runs (a
// framework's checkpoint flag only decides whether a later run takes them
// back); Mesos writes none for these frameworks.
func (a *Agent) forgetUncheckpointed(ctx context.Context, fws []*recoveredFramework, logs []checkpoint.Stream, claimed map[string]bool) ([]*recoveredFramework, []checkpoint.Stream) {
	forgotten := map[string]bool{}
	keep := fws[:0]
	type execRun struct{ containerID, stateDir string }
	var runs []execRun
	for _, rf := range fws {
		if rf.info.GetCheckpoint() {
			keep = append(keep, rf)
			continue
		}
		fwID := rf.info.ID.Value
		forgotten[fwID] = true
		tasks := 0
		for _, re := range rf.executors {
			for _, rt := range re.tasks {
				tasks++
				if err := a.meta.removeTask(fwID, rt.info.TaskID.Value); err != nil {
					a.log.Warn("agent: removing a task's checkpoint", "framework", fwID, "task", rt.info.TaskID.Value, "err", err)
				}
			}
			if !re.kind.Process() {
				continue
			}
			claimed[re.containerID] = true
			r := execRun{containerID: re.containerID}
			if re.kind == kindCommandProcess {
				sandbox := re.sandbox
				if sandbox == "" {
					sandbox = a.sandboxDir(fwID, re.info.ExecutorID.Value, re.containerID)
				}
				r.stateDir = executorStateDir(sandbox)
			}
			runs = append(runs, r)
		}
		a.log.Info("agent: not recovering a framework that does not checkpoint; destroying its executors and tasks",
			"framework", fwID, "executors", len(rf.executors), "tasks", tasks)
	}
	if len(forgotten) == 0 {
		return fws, logs
	}
	keepLogs := logs[:0]
	for _, l := range logs {
		if !forgotten[l.FrameworkID] {
			keepLogs = append(keepLogs, l)
			continue
		}
		if err := a.meta.removeTask(l.FrameworkID, l.TaskID); err != nil {
			a.log.Warn("agent: removing a task's checkpoint", "framework", l.FrameworkID, "task", l.TaskID, "err", err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(forgotten)) {
		if err := a.meta.removeFramework(id); err != nil {
			a.log.Warn("agent: removing a framework's checkpoint", "framework", id, "err", err)
		}
	}
	if len(runs) > 0 {
		cont := a.cont
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for _, r := range runs {
				a.log.Info("agent: destroying the executor of a framework that does not checkpoint", "container", r.containerID)
				destroyContainer(ctx, cont, r.containerID, a.log)
				if r.stateDir != "" {
					a.destroyExecutorContainers(ctx, r.stateDir)
				}
			}
		}()
	}
	return keep, keepLogs
}

// reregistrationWindow is how long the executor processes that survived a
// restart have to subscribe again: ExecutorReregistrationTimeout, but at
// least two of their retry intervals (ExecutorSubscriptionBackoffMax,
// which the agent gives them as MESOS_SUBSCRIPTION_BACKOFF_MAX); see
// agentcore.ReregistrationWindow.
func (a *Agent) reregistrationWindow() time.Duration {
	return agentcore.ReregistrationWindow(a.cfg.ExecutorReregistrationTimeout, a.cfg.ExecutorSubscriptionBackoffMax)
}

// recoverRun puts one executor run recovered from the checkpoints back
// in the tables (agentcore.Tables.Recover).
func (a *Agent) recoverRun(fw *frameworkRec, re *recoveredExecutor, history map[agentcore.StreamKey][]*mesospb.TaskStatus) *executorRec {
	sandbox := re.sandbox
	if sandbox == "" {
		sandbox = a.sandboxDir(fw.ID(), re.info.ExecutorID.Value, re.containerID)
	}
	tasks := make([]agentcore.RecoveredTask, len(re.tasks))
	for i, rt := range re.tasks {
		key := agentcore.StreamKey{Framework: fw.ID(), Task: rt.info.TaskID.Value}
		tasks[i] = agentcore.RecoveredTask{Info: rt.info, Statuses: history[key], Stream: a.updates.Has(key)}
		if len(rt.group) > 0 {
			tasks[i].GroupKey = rt.group[0]
		}
		if h := a.updates.Head(key); h != nil {
			tasks[i].Head = &h.Status
		}
	}
	// A task whose end was acknowledged before the restart (its log was
	// left by a stop between the two) is forgotten at once, or its run
	// would never be, nor its sandbox collected.
	r, _, dups := a.tables.Recover(fw, re.info, re.kind, re.containerID, sandbox, tasks)
	for _, id := range dups {
		a.log.Warn("agent: a recovered task ID is in two executor runs; keeping the first", "task", id)
	}
	e := a.addExec(r)
	a.attachSandbox(e) // files.go
	return e
}

// recoverExecutor decides a recovered run's fate. It reports whether the
// run is an executor process that lives on and is to subscribe again:
// recover starts its clock once recovery is done.
func (a *Agent) recoverExecutor(ctx context.Context, e *executorRec, containers []string, claimed map[string]bool) bool {
	processAlive := e.Kind().Process() && slices.Contains(containers, e.ContainerID())
	d := agentcore.DecideRecovery(e.Kind(), e.Live(), processAlive)
	gone := endingOf(d.Ending)
	switch {
	case d.Verdict == agentcore.RecoverEnded:
		// Its end may not have reached the master: say it (again).
		a.terminateExecutor(e, gone)
		return false
	case d.Verdict == agentcore.RecoverGone:
		e.Exited(*gone)
		if d.Cleanup {
			// Its state directory may hold containers it left running.
			a.cleanupExecutor(e)
			return false
		}
		a.terminateExecutor(e, nil)
		return false
	case d.Verdict == agentcore.RecoverAwait:
		// The process lives on and reconnects to this agent, carrying the
		// tasks and updates it has not seen acknowledged.
		claimed[e.ContainerID()] = true
		e.Resubscribing()
		a.watchProcess(e)
		return true
	}
	// RecoverReattach: a new built-in executor takes over what survived.
	switch e.Kind() {
	case kindCommand:
		var t *taskRec
		for _, x := range e.Tasks() {
			if !terminal(x.State()) {
				t = x
			}
		}
		ex := executor.NewCommandExecutor(a.commandConfig(e))
		cid := executor.TaskContainerID(e.ContainerID(), t.Info().TaskID)
		if !slices.Contains(containers, cid) {
			a.terminateExecutor(e, gone)
			return false
		}
		if err := ex.Reattach(ctx, *t.Info()); err != nil {
			a.log.Warn("agent: cannot reattach a command task", "task", t.Info().TaskID.Value, "err", err)
			a.terminateExecutor(e, gone)
			return false
		}
		claimed[cid] = true
		t.Reattached()
		a.runDriver(e, ex, func(err error) { a.terminateExecutor(e, gone) }, nil)
	case kindDefault:
		ex := executor.NewDefaultExecutor(a.commandConfig(e))
		tasks := e.Tasks()
		plan := make([]agentcore.ReattachTask, len(tasks))
		for i, t := range tasks {
			alive := slices.Contains(containers, executor.TaskContainerID(e.ContainerID(), t.Info().TaskID))
			plan[i] = agentcore.ReattachTask{Info: t.Info(), Group: t.Group(), State: t.State(), Alive: alive}
		}
		var lost []*taskRec
		reattached := 0
		for _, g := range agentcore.PlanReattach(plan) {
			ok := g.Alive
			if ok {
				if err := ex.Reattach(ctx, mesospb.TaskGroupInfo{Tasks: g.Tasks}); err != nil {
					a.log.Warn("agent: cannot reattach a task group", "executor", e.ID(), "err", err)
					ok = false
				}
			}
			for i := range g.Tasks {
				r := e.Task(g.Tasks[i].TaskID.Value)
				if !ok {
					lost = append(lost, r)
					continue
				}
				claimed[executor.TaskContainerID(e.ContainerID(), r.Info().TaskID)] = true
				r.Reattached()
			}
			if ok {
				reattached++
			}
		}
		for _, t := range lost {
			a.statusUpdate(e.FrameworkID(), e.ID(), a.agentEnd(t.ID(), *gone))
		}
		if reattached == 0 {
			a.terminateExecutor(e, gone)
			return false
		}
		a.runDriver(e, ex, func(err error) { a.terminateExecutor(e, gone) }, nil)
	}
	return false
}

// destroyUnclaimed destroys, on another goroutine, the containers no
// recovered executor took.
func (a *Agent) destroyUnclaimed(ctx context.Context, claimed map[string]bool) {
	cont := a.cont
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		destroyContainers(ctx, cont, func(id string) bool {
			if claimed[id] {
				return false
			}
			a.log.Info("agent: destroying an orphan container", "container", id)
			return true
		}, a.log)
	}()
}

// offlineShutdown is Shutdown without Run: it destroys the containers of
// the executor runs the checkpoints name and removes the checkpoints.
func (a *Agent) offlineShutdown(ctx context.Context) error {
	fws, _, err := a.meta.readAll(a.log.Warn)
	if err != nil {
		return fmt.Errorf("agent: reading checkpoints: %w", err)
	}
	var prefixes []string
	for _, fw := range fws {
		for _, e := range fw.executors {
			prefixes = append(prefixes, e.containerID+".")
		}
	}
	if len(prefixes) > 0 {
		cont := a.cfg.Containerizer
		if cont == nil {
			p, err := containerizer.NewProcess(containerizer.ProcessOptions{
				StateDir: filepath.Join(a.cfg.WorkDir, "containers"),
				Reaper:   a.cfg.Reaper,
				Logger:   a.log,
				Clock:    a.clk,
			})
			if err != nil {
				return fmt.Errorf("agent: starting the process containerizer: %w", err)
			}
			defer p.Close()
			cont = p
		}
		if _, err := cont.Recover(ctx); err != nil && !errors.Is(err, containerizer.ErrClosed) {
			return fmt.Errorf("agent: recovering containers: %w", err)
		}
		destroyContainers(ctx, cont, func(id string) bool {
			for _, p := range prefixes {
				if len(id) > len(p) && id[:len(p)] == p {
					return true
				}
			}
			return false
		}, a.log)
	}
	return a.meta.wipe()
}

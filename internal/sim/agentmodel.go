package sim

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/resources"
)

// AgentCore is the decision logic of one simulated agent, what the fault
// simulation needs of it: the agent's answers to the master's events, and
// its own timers (tasks ending, status updates retried). Connection
// management (when to connect, which stream is current, ping timeouts)
// is the simulation's, as it is the agent shell's in Apron. The simulation
// uses modelAgent, whose decisions about frameworks, executors and tasks
// and whose status updates are the agent's own (internal/agentcore); its
// executors and containers are models.
type AgentCore interface {
	// ID is the agent's ID, "" until it first registered.
	ID() string
	// ConnectCall is REGISTER for an agent without an ID, else
	// REREGISTER with everything it runs.
	ConnectCall() *internalpb.Call
	// Handle takes an event of the master, on the agent's current stream,
	// and returns the calls to send on it.
	Handle(now time.Time, ev *internalpb.Event) []*internalpb.Call
	// Tick advances the agent's time; registered says whether it may
	// send (it holds a registered stream). It returns the calls to send.
	Tick(now time.Time, registered bool) []*internalpb.Call
	// Restart is the agent process's crash and restart: what it had not
	// checkpointed is lost, its tasks go on (their executors survive).
	Restart(now time.Time)
	// Tasks lists every task the agent knows: live, or ended with its
	// terminal state (also after acknowledgement), for the invariants.
	Tasks() []AgentTask
	// Pending is how many status updates wait for acknowledgement.
	Pending() int
	// Shutdown kills everything: the master told the agent to stop.
	Shutdown(now time.Time)
}

// AgentTask is what an agent knows of a task.
type AgentTask struct {
	FrameworkID, TaskID string
	State               mesospb.TaskState
	Resources           resources.Resources
	// Forgotten: terminal, its last update acknowledged, the agent
	// keeps no more of it.
	Forgotten bool
	// UUIDs are those of every status update the agent made for the
	// task, in order: what its framework must receive, each at least
	// once, in this order.
	UUIDs [][]byte
}

// agentTask is what the simulation keeps of a task of the model agent,
// beside the agent's own record of it (agentcore.Tables): its running
// time, the updates made for it, for the invariants.
type agentTask struct {
	framework, id string
	resources     resources.Resources
	// rec is the agent's record, nil for a task the agent never ran (its
	// updates are the agent's answers) and once the agent is shut down.
	rec *agentcore.Task
	// state is the task's state when it has no record.
	state  mesospb.TaskState
	endsAt time.Time // zero: runs until killed
	// crashes: at endsAt its executor dies instead of reporting the end;
	// the agent ends the task (agentcore.Run.Terminate).
	crashes   bool
	uuids     [][]byte // of every update made, in order
	forgotten bool
}

// State is the task's latest state: its record's while it has one.
func (t *agentTask) State() mesospb.TaskState {
	if t.rec != nil {
		return t.rec.State()
	}
	return t.state
}

// modelAgent is a Mesos agent with checkpointing on (what a restart keeps:
// its ID, its frameworks, its tasks and their unacknowledged updates)
// whose decisions and tables are the agent's own: its frameworks,
// executor runs and tasks are the agent's tables (agentcore.Tables),
// changed only through their methods, which decide with the agent's
// decisions: which executor runs a task and when a task is refused
// (RunTasks: agentcore.DecideAdmit), what a KILL_TASK does (Kill:
// DecideKill, DequeueKilled), how an executor is shut down (Shutdown),
// how the tasks of an executor that ends end (Terminate: EndTask), what a
// reconciliation answers (Reconcile), when tasks, executors and
// frameworks are forgotten (ForgetTask, Terminated) and what a
// re-registration lists (Reregistration). Its status updates go through
// the agent's own status update manager (agentcore.UpdateManager: per
// task, in order, retried 10 s doubling to 10 min, resent at once after a
// (re)registration and when the framework re-subscribes), whose
// checkpoint writes it keeps in memory; with what it checkpoints of its
// frameworks and tasks (modelCheckpoint), they are all it recovers from
// after a restart, as the agent recovers from its disk (Restart). The
// executors and the containerizer are models: a command executor per
// task that subscribes at once, reports TASK_STARTING, TASK_RUNNING and
// the task's end (or its kill), and exits when its task has ended; or,
// for a share of the tasks (Faults.ExecutorCrash), dies instead of
// reporting the end, and the agent fails the task.
type modelAgent struct {
	rng      *rand.Rand
	hostname string
	total    resources.Resources
	id       string
	tables   *agentcore.Tables
	runs     int                   // executor runs started, to name them
	tasks    map[string]*agentTask // framework/task: every task the agent ever had, for the invariants
	// duration picks a new task's running time (0: until killed).
	duration func() time.Duration
	// crash is the share of tasks whose executor dies (Faults.ExecutorCrash).
	crash float64

	updates *agentcore.UpdateManager
	paused  bool                                       // no master: the manager forwards nothing
	streams map[agentcore.StreamKey]*checkpoint.Stream // the manager's checkpoint
	// ckpt is the rest of what the agent checkpoints, what Restart
	// rebuilds its tables from.
	ckpt modelCheckpoint
	// calls are what the agent sends outside the manager's forwards
	// (reconciliation answers), in order, until the next drain.
	calls []*internalpb.Call
}

// modelCheckpoint is what the agent checkpoints of its frameworks and
// tasks (agent/checkpoint.go), beside the update streams: each
// framework's info, written when the agent takes it and when it changes,
// removed when the agent forgets the framework; and each task's info with
// its executor run's, written before the task is launched, removed with
// its update stream (its end acknowledged) or its framework.
type modelCheckpoint struct {
	frameworks map[string]mesospb.FrameworkInfo
	tasks      map[agentcore.StreamKey]checkpointedTask
}

// checkpointedTask is a task's checkpoint: its info and its run's.
type checkpointedTask struct {
	executor    mesospb.ExecutorInfo
	kind        agentcore.ExecutorKind
	containerID string
	sandbox     string
	info        mesospb.TaskInfo
	groupKey    string // the ID of its group's first task, "" for a single task
}

func newModelCheckpoint() modelCheckpoint {
	return modelCheckpoint{frameworks: map[string]mesospb.FrameworkInfo{}, tasks: map[agentcore.StreamKey]checkpointedTask{}}
}

// writeTask checkpoints a task the tables admitted, with its run.
func (c modelCheckpoint) writeTask(t *agentcore.Task) {
	r := t.Run()
	ct := checkpointedTask{executor: *r.Info(), kind: r.Kind(), containerID: r.ContainerID(), sandbox: r.Sandbox(), info: *t.Info()}
	if g := t.Group(); g != nil && len(g.Tasks) > 0 {
		ct.groupKey = g.Tasks[0].TaskID.Value
	}
	c.tasks[agentcore.StreamKey{Framework: r.FrameworkID(), Task: t.ID()}] = ct
}

// removeFramework removes a forgotten framework's checkpoints.
func (c modelCheckpoint) removeFramework(id string) {
	delete(c.frameworks, id)
	for k := range c.tasks {
		if k.Framework == id {
			delete(c.tasks, k)
		}
	}
}

const (
	updateRetryMin = 10 * time.Second
	updateRetryMax = 10 * time.Minute
)

func newModelAgent(rng *rand.Rand, hostname string, total resources.Resources, duration func() time.Duration, crash float64) *modelAgent {
	a := &modelAgent{rng: rng, hostname: hostname, total: total, tables: agentcore.NewTables(), crash: crash,
		tasks: map[string]*agentTask{}, duration: duration, streams: map[agentcore.StreamKey]*checkpoint.Stream{},
		ckpt: newModelCheckpoint()}
	a.newUpdateManager()
	return a
}

// newUpdateManager starts a status update manager, paused until the agent
// registers, as the agent's is after a start.
func (a *modelAgent) newUpdateManager() {
	a.updates = agentcore.NewUpdateManager(updateRetryMin, updateRetryMax)
	a.updates.Pause()
	a.paused = true
}

func (a *modelAgent) ID() string { return a.id }

// ConnectCall lists what the agent's tables list
// (agentcore.Tables.Reregistration), with each task's stream head as the
// agent's status update manager shows it.
func (a *modelAgent) ConnectCall() *internalpb.Call {
	info := mesospb.AgentInfo{Hostname: a.hostname, Resources: a.total.ToProto()}
	if a.id == "" {
		return &internalpb.Call{Type: internalpb.Call_REGISTER.Enum(), Register: &internalpb.Call_Register{AgentInfo: info}}
	}
	info.ID = &mesospb.AgentID{Value: a.id}
	a.tables.EachRun(func(r *agentcore.Run) {
		r.EachTask(func(t *agentcore.Task) {
			if h := a.updates.Head(agentcore.StreamKey{Framework: r.FrameworkID(), Task: t.ID()}); h != nil {
				t.SetHead(h.Status.State, h.Status.UUID)
			} else {
				t.SetHead(nil, nil)
			}
		})
	})
	listed := a.tables.Reregistration()
	r := &internalpb.Call_Reregister{AgentInfo: info, Frameworks: listed.Frameworks, Executors: listed.Executors, Tasks: listed.Tasks}
	return &internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), AgentID: &mesospb.AgentID{Value: a.id}, Reregister: r}
}

func (a *modelAgent) Handle(now time.Time, ev *internalpb.Event) []*internalpb.Call {
	switch ev.GetType() {
	case internalpb.Event_REGISTERED, internalpb.Event_REREGISTERED:
		a.id = ev.Registered.AgentID.Value
		a.paused = false
		a.updates.Resume(now)
	case internalpb.Event_RUN_TASK:
		a.runTask(now, ev.RunTask.Framework, ev.RunTask.Task)
	case internalpb.Event_KILL_TASK:
		a.killTask(now, ev.KillTask.FrameworkID.Value, ev.KillTask.TaskID.Value)
	case internalpb.Event_SHUTDOWN_FRAMEWORK:
		a.shutdownFramework(now, ev.ShutdownFramework.FrameworkID.Value)
	case internalpb.Event_ACKNOWLEDGE:
		ack := ev.Acknowledge
		key := agentcore.StreamKey{Framework: ack.FrameworkID.Value, Task: ack.TaskID.Value}
		res := a.updates.Ack(key, ack.UUID, now)
		if t := a.tables.Task(key.Framework, key.Task); t != nil && agentcore.ForgetTask(t.State(), res.Outcome == agentcore.AckClosed) {
			a.forgotten(a.tables.ForgetTask(t))
		}
	case internalpb.Event_PING:
		return append(a.drain(), &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: a.id}})
	case internalpb.Event_UPDATE_FRAMEWORK:
		fi := ev.UpdateFramework.FrameworkInfo
		if fi.ID != nil {
			if a.tables.UpdateFramework(fi) {
				a.ckpt.frameworks[fi.ID.Value] = *a.tables.Framework(fi.ID.Value).Info()
			}
			a.updates.ResumeFramework(fi.ID.Value, now)
		}
	case internalpb.Event_RECONCILE_TASKS:
		a.reconcile(now, ev.ReconcileTasks.FrameworkID.Value, ev.ReconcileTasks.TaskIDs)
	}
	return a.drain()
}

// runTask is RUN_TASK as the agent's runTasks takes it: the tables admit
// it (or refuse it); the model executor subscribes at once and takes it.
func (a *modelAgent) runTask(now time.Time, fwInfo mesospb.FrameworkInfo, ti mesospb.TaskInfo) {
	fid := fwInfo.ID.GetValue()
	d := a.tables.RunTasks(agentcore.RunTasks{
		Framework: fwInfo,
		Tasks:     []mesospb.TaskInfo{ti},
		AgentID:   a.id,
		NewRun: func(string, string) (string, string) {
			a.runs++
			return fmt.Sprintf("run-%d", a.runs), ""
		},
	})
	switch d.Verdict {
	case agentcore.AdmitRefuse:
		for _, id := range d.Refused {
			a.agentUpdate(now, fid, id.Value, d.Refusal)
		}
		a.forgotten(a.tables.ForgetFramework(d.Framework))
		return
	case agentcore.AdmitIgnore:
		return
	}
	rec := d.Run.Task(ti.TaskID.Value)
	// The agent checkpoints the framework and the task before launching.
	if d.FrameworkAdded || d.FrameworkChanged {
		a.ckpt.frameworks[fid] = *d.Framework.Info()
	}
	a.ckpt.writeTask(rec)
	rs, _ := resources.FromProto(ti.Resources)
	t := &agentTask{framework: fid, id: ti.TaskID.Value, resources: rs, rec: rec}
	if d := a.duration(); d > 0 {
		t.endsAt = now.Add(d)
		t.crashes = a.crash > 0 && a.rng.Float64() < a.crash
	}
	a.tasks[fid+"/"+t.id] = t
	// The model executor subscribes at once and takes its tasks.
	first := d.Run.Subscribed()
	if d.Verdict == agentcore.AdmitLaunch {
		d.Run.Launched(d.Item)
	}
	for _, item := range d.Run.Launches(!first, nil) {
		d.Run.Launched(item)
	}
	a.executorUpdate(now, t, mesospb.TASK_STARTING)
	a.executorUpdate(now, t, mesospb.TASK_RUNNING)
}

// killTask is KILL_TASK as the agent's killTask takes it.
func (a *modelAgent) killTask(now time.Time, fid, tid string) {
	d := a.tables.Kill(fid, tid)
	switch d.Verdict {
	case agentcore.KillUnknown:
		a.agentUpdate(now, fid, tid, d.Refusal)
	case agentcore.KillQueued:
		r := d.Task.Run()
		for _, id := range d.Victims {
			a.agentUpdate(now, fid, id, d.Ending)
		}
		if r.AfterQueuedKill() && r.Destroy() {
			a.terminate(now, r)
		}
	case agentcore.KillForward:
		// The model executor kills its task, reports it and exits.
		a.executorUpdate(now, a.tasks[fid+"/"+tid], mesospb.TASK_KILLED)
		a.executorExited(now, d.Task.Run())
	}
}

// shutdownFramework is SHUTDOWN_FRAMEWORK: its executors are shut down
// (the model's exit at once), their tasks end silently and are forgotten
// with the framework's update streams: the master removed it and will
// acknowledge nothing.
func (a *modelAgent) shutdownFramework(now time.Time, fid string) {
	fw := a.tables.Framework(fid)
	if fw == nil {
		return
	}
	for _, r := range a.tables.ShutdownFramework(fid) {
		switch r.Shutdown("the framework is shutting down") {
		case agentcore.ShutdownDestroy:
			r.Destroy()
			a.terminate(now, r)
		case agentcore.ShutdownGraceful:
			a.executorExited(now, r)
		}
	}
	a.forgotten(a.tables.ForgetFramework(fw))
}

// executorExited is the end of a model executor (its task ended, it was
// told to shut down): the agent terminates it.
func (a *modelAgent) executorExited(now time.Time, r *agentcore.Run) {
	if r.State() == agentcore.ExecutorTerminated {
		return
	}
	r.Exited(agentcore.EndingExited(nil))
	a.terminate(now, r)
}

// terminate is the agent's terminateExecutor: the tables end the run's
// tasks (Terminate), the agent makes their updates, and what can be
// forgotten is (Terminated). A command executor's end is not reported to
// the master (agentcore.ReportExit); the model runs no other kind.
func (a *modelAgent) terminate(now time.Time, r *agentcore.Run) {
	term, ok := r.Terminate()
	if !ok {
		return
	}
	for _, u := range term.Updates {
		a.agentUpdate(now, r.FrameworkID(), u.TaskID, u.Ending)
	}
	a.forgotten(a.tables.Terminated(r))
}

// forgotten notes what the tables forgot: the tasks, for the invariants;
// the frameworks' update streams go with them (Mesos's removeFramework).
func (a *modelAgent) forgotten(f agentcore.Forgotten) {
	for _, t := range f.Tasks {
		if st := a.tasks[t.Run().FrameworkID()+"/"+t.ID()]; st != nil {
			st.forgotten = true
		}
	}
	for _, fw := range f.Frameworks {
		a.updates.Cleanup(fw.ID())
		a.ckpt.removeFramework(fw.ID())
	}
}

// reconcile answers RECONCILE_TASKS as the agent's reconcileTasks does.
func (a *modelAgent) reconcile(now time.Time, fid string, ids []mesospb.TaskID) {
	ids, known := a.tables.Reconcile(fid, ids)
	for i, id := range ids {
		u := agentcore.ReconcileAnswer(fid, a.id, id, known[i], now)
		a.calls = append(a.calls, &internalpb.Call{Type: internalpb.Call_STATUS_UPDATE.Enum(), AgentID: &mesospb.AgentID{Value: a.id}, StatusUpdate: u})
	}
}

// executorUpdate is an update the model executor sends for its task.
func (a *modelAgent) executorUpdate(now time.Time, t *agentTask, state mesospb.TaskState) {
	st := mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: t.id}, State: state.Enum(), Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: a.uuid()}
	if t.rec != nil {
		st.ExecutorID = &mesospb.ExecutorID{Value: t.rec.Run().ID()}
	}
	a.statusUpdate(now, t.framework, st)
}

// agentUpdate is an update the agent makes itself (agentcore.AgentStatus).
func (a *modelAgent) agentUpdate(now time.Time, fid, tid string, end agentcore.Ending) {
	a.statusUpdate(now, fid, agentcore.AgentStatus(tid, end, a.uuid(), now))
}

func (a *modelAgent) uuid() []byte {
	uuid := make([]byte, 16)
	for i := range uuid {
		uuid[i] = byte(a.rng.Uint32())
	}
	return uuid
}

// statusUpdate is the agent's statusUpdate: the update goes to the status
// update manager, and, when it takes it, into the task's record
// (agentcore.Task.Apply). A task the agent does not run (an answer to a
// kill of a task it does not know) gets a record of the simulation's
// own, for the invariants: its framework must get the update.
func (a *modelAgent) statusUpdate(now time.Time, fid string, st mesospb.TaskStatus) {
	key := fid + "/" + st.TaskID.Value
	t := a.tasks[key]
	rec := a.tables.Task(fid, st.TaskID.Value)
	u := &internalpb.Call_StatusUpdate{FrameworkID: mesospb.FrameworkID{Value: fid}, Status: st, ExecutorID: st.ExecutorID}
	if a.updates.Update(u, now) != agentcore.UpdateTaken {
		return
	}
	if rec == nil || t == nil || t.rec != rec {
		// Not the agent's task: nothing of it is kept but its updates.
		if t == nil {
			t = &agentTask{framework: fid, id: st.TaskID.Value, state: mesospb.TASK_STAGING, forgotten: true}
			a.tasks[key] = t
		}
		t.uuids = append(t.uuids, st.UUID)
		t.rec, t.state = nil, st.GetState()
		return
	}
	t.uuids = append(t.uuids, st.UUID)
	rec.Apply(st)
}

// drain does what the manager decided: its checkpoint writes on the
// model's checkpoint, then the forwards, as calls stamped with the task's
// latest state (the agent's Slave::forward); then the agent's other calls.
func (a *modelAgent) drain() []*internalpb.Call {
	r := a.updates.Drain()
	for _, w := range r.Writes {
		s := a.streams[w.Key]
		switch w.Op {
		case agentcore.WriteUpdate:
			if s == nil {
				s = &checkpoint.Stream{FrameworkID: w.Key.Framework, TaskID: w.Key.Task}
				a.streams[w.Key] = s
			}
			s.Updates = append(s.Updates, w.Update)
		case agentcore.WriteAck:
			if s != nil {
				s.Acked = append(s.Acked, w.UUID)
			}
		case agentcore.WriteRemove:
			// The task's checkpoint goes with its log (agent/updates.go).
			delete(a.streams, w.Key)
			delete(a.ckpt.tasks, w.Key)
		}
	}
	var calls []*internalpb.Call
	for _, f := range r.Forwards {
		u := *f.Update
		if t := a.tasks[u.FrameworkID.Value+"/"+u.Status.TaskID.Value]; t != nil {
			u.LatestState = t.State().Enum()
		}
		calls = append(calls, &internalpb.Call{Type: internalpb.Call_STATUS_UPDATE.Enum(), AgentID: &mesospb.AgentID{Value: a.id}, StatusUpdate: &u})
	}
	calls = append(calls, a.calls...)
	a.calls = nil
	return calls
}

func (a *modelAgent) Tick(now time.Time, registered bool) []*internalpb.Call {
	if !registered && !a.paused {
		// The link hung up: the manager waits for the next registration.
		a.updates.Pause()
		a.paused = true
	}
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		if !t.forgotten && t.rec != nil && !t.endsAt.IsZero() && !now.Before(t.endsAt) && !isTerminalState(t.State()) {
			// The executor reports the end, and exits; or it dies first.
			if !t.crashes {
				a.executorUpdate(now, t, mesospb.TASK_FINISHED)
			}
			a.executorExited(now, t.rec.Run())
		}
	}
	a.updates.Tick(now)
	return a.drain()
}

// Restart: the agent process's crash. What the model keeps is what the
// agent checkpoints (its frameworks, and its tasks with their executor
// runs before launching them, every update before forwarding it, every
// acknowledgement); from that it recovers as the agent does
// (agent/recover.go): its status update manager replays the update
// streams, paused until the agent registers; fresh tables take every
// recovered run back (agentcore.Tables.Recover, which forgets at once the
// tasks whose end was acknowledged), and only then is each run's fate
// decided (agentcore.DecideRecovery); the frameworks left with nothing
// are forgotten. The model's executors and task containers survive the
// crash: an executor process lives on and subscribes again, a built-in
// executor (command, default) starts anew and takes over the task
// containers, all at once.
func (a *modelAgent) Restart(now time.Time) {
	a.newUpdateManager()
	a.calls = nil
	var streams []checkpoint.Stream
	for _, k := range slices.SortedFunc(maps.Keys(a.streams), compareKeys) {
		streams = append(streams, *a.streams[k])
	}
	a.updates.Recover(streams)
	a.drain()

	a.tables = agentcore.NewTables()
	// The runs, as the agent's checkpoint store reads them back: a
	// framework's runs in the order of their first task's ID.
	type recoveredRun struct {
		ct    checkpointedTask
		tasks []agentcore.RecoveredTask
	}
	var fws []*agentcore.Framework
	var runs []*agentcore.Run
	for _, fid := range slices.Sorted(maps.Keys(a.ckpt.frameworks)) {
		fw, _, _ := a.tables.EnsureFramework(a.ckpt.frameworks[fid])
		fws = append(fws, fw)
		var order []*recoveredRun
		byRun := map[string]*recoveredRun{}
		for _, key := range slices.SortedFunc(maps.Keys(a.ckpt.tasks), compareKeys) {
			if key.Framework != fid {
				continue
			}
			ct := a.ckpt.tasks[key]
			rr := byRun[ct.containerID]
			if rr == nil {
				rr = &recoveredRun{ct: ct}
				byRun[ct.containerID] = rr
				order = append(order, rr)
			}
			rt := agentcore.RecoveredTask{Info: ct.info, GroupKey: ct.groupKey, Stream: a.updates.Has(key)}
			if s := a.streams[key]; s != nil {
				for i := range s.Updates {
					rt.Statuses = append(rt.Statuses, &s.Updates[i].Status)
				}
			}
			if h := a.updates.Head(key); h != nil {
				rt.Head = &h.Status
			}
			rr.tasks = append(rr.tasks, rt)
		}
		for _, rr := range order {
			r, _, _ := a.tables.Recover(fw, rr.ct.executor, rr.ct.kind, rr.ct.containerID, rr.ct.sandbox, rr.tasks)
			runs = append(runs, r)
		}
	}
	// The simulation's tasks follow the agent's records: a task the
	// recovery forgot (or never found) is the agent's no more.
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		if rec := a.tables.Task(t.framework, t.id); rec != nil {
			t.rec, t.forgotten = rec, false
		} else if t.rec != nil {
			t.rec, t.state, t.forgotten = nil, t.rec.State(), true
		}
	}
	for _, r := range runs {
		a.recoverRun(now, r)
	}
	for _, fw := range fws {
		a.forgotten(a.tables.ForgetFramework(fw))
	}
	a.drain()
}

// recoverRun decides a recovered run's fate as the agent's
// recoverExecutor does, with the model's executors, which all survive.
func (a *modelAgent) recoverRun(now time.Time, r *agentcore.Run) {
	d := agentcore.DecideRecovery(r.Kind(), r.Live(), r.Kind().Process())
	switch d.Verdict {
	case agentcore.RecoverEnded:
		// Its end may not have reached the master: say it (again).
		r.Overrule(d.Ending)
		a.terminate(now, r)
	case agentcore.RecoverGone:
		r.Exited(d.Ending)
		a.terminate(now, r)
	case agentcore.RecoverAwait:
		// The executor process subscribes again at once, with nothing
		// unacknowledged it did not take.
		r.Resubscribing()
		a.subscribe(r)
	case agentcore.RecoverReattach:
		// A new built-in executor takes over the live tasks' containers
		// and subscribes.
		for _, t := range r.Tasks() {
			if !isTerminalState(t.State()) {
				t.Reattached()
			}
		}
		a.subscribe(r)
	}
}

// subscribe is a model executor's SUBSCRIBE: it takes whatever the agent
// launches at once.
func (a *modelAgent) subscribe(r *agentcore.Run) {
	first := r.Subscribed()
	for _, item := range r.Launches(!first, nil) {
		r.Launched(item)
	}
}

func compareKeys(x, y agentcore.StreamKey) int {
	return cmp.Or(cmp.Compare(x.Framework, y.Framework), cmp.Compare(x.Task, y.Task))
}

func (a *modelAgent) Shutdown(now time.Time) {
	for _, t := range a.tasks {
		state := t.State()
		if !t.forgotten && !isTerminalState(state) {
			state = mesospb.TASK_KILLED
		}
		t.rec, t.state, t.forgotten = nil, state, true
	}
	a.tables = agentcore.NewTables()
	a.newUpdateManager()
	clear(a.streams)
	a.ckpt = newModelCheckpoint()
	a.calls = nil
}

func (a *modelAgent) Tasks() []AgentTask {
	out := make([]AgentTask, 0, len(a.tasks))
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		out = append(out, AgentTask{FrameworkID: t.framework, TaskID: t.id, State: t.State(), Resources: t.resources, Forgotten: t.forgotten, UUIDs: t.uuids})
	}
	return out
}

func (a *modelAgent) Pending() int { return a.updates.Pending() }

func (a *modelAgent) String() string { return fmt.Sprintf("agent %s (%s)", a.id, a.hostname) }

// isTerminalState is Mesos's protobuf::isTerminalState.
func isTerminalState(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST,
		mesospb.TASK_ERROR, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

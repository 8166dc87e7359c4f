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

// agentTask is a task on the model agent.
type agentTask struct {
	framework, id string
	info          mesospb.TaskInfo
	resources     resources.Resources
	exec          *modelExecutor // nil for a task the agent never ran (its updates are the agent's answers)
	state         mesospb.TaskState
	statuses      []mesospb.TaskStatus // the latest of each state (agentcore.ApplyStatus)
	queued        bool                 // waiting for its executor to subscribe
	endsAt        time.Time            // zero: runs until killed
	uuids         [][]byte             // of every update made, in order
	forgotten     bool
}

// agentFramework is a framework with executors or tasks on the agent.
type agentFramework struct {
	info        mesospb.FrameworkInfo
	terminating bool                      // SHUTDOWN_FRAMEWORK: no new tasks
	executors   map[string]*modelExecutor // by executor ID
	tasks       map[string]*agentTask     // every task not yet forgotten, by ID
}

// modelExecutor is a command executor run. The executor itself is a model
// (it subscribes at once, reports TASK_STARTING and TASK_RUNNING, its
// task's end or its kill, and exits when its task has ended); what the
// agent decides about it is the agent's own code (agentcore).
type modelExecutor struct {
	fw     *agentFramework
	id     string
	kind   agentcore.ExecutorKind
	state  agentcore.ExecutorState
	tasks  map[string]*agentTask // not yet forgotten
	ending *agentcore.Ending
}

// modelAgent is a Mesos agent with checkpointing on (what a restart keeps:
// its ID, its frameworks, its tasks and their unacknowledged updates)
// whose decisions are the agent's own: which executor runs a task and
// when a task is refused (agentcore.DecideAdmit), what a KILL_TASK does
// (agentcore.DecideKill), how the tasks of an executor that ends end
// (agentcore.EndTask), what a reconciliation answers
// (agentcore.ReconcileAnswer), when tasks, executors and frameworks are
// forgotten (agentcore.ForgetTask, ForgetExecutor, ForgetFramework) and
// what a re-registration lists (agentcore.ReregisterExecutor). Its status
// updates go through the agent's own status update manager
// (agentcore.UpdateManager: per task, in order, retried 10 s doubling to
// 10 min, resent at once after a (re)registration and when the framework
// re-subscribes), whose checkpoint writes it keeps in memory and recovers
// from after a restart, as the agent recovers from its disk. The
// executors and the containerizer are models: a command executor per
// task that reports TASK_STARTING, TASK_RUNNING and the task's end.
type modelAgent struct {
	rng        *rand.Rand
	hostname   string
	total      resources.Resources
	id         string
	frameworks map[string]*agentFramework
	tasks      map[string]*agentTask // framework/task: every task the agent ever had, for the invariants
	// duration picks a new task's running time (0: until killed).
	duration func() time.Duration

	updates *agentcore.UpdateManager
	paused  bool                                       // no master: the manager forwards nothing
	streams map[agentcore.StreamKey]*checkpoint.Stream // the manager's checkpoint
	// calls are what the agent sends outside the manager's forwards
	// (reconciliation answers), in order, until the next drain.
	calls []*internalpb.Call
}

const (
	updateRetryMin = 10 * time.Second
	updateRetryMax = 10 * time.Minute
)

func newModelAgent(rng *rand.Rand, hostname string, total resources.Resources, duration func() time.Duration) *modelAgent {
	a := &modelAgent{rng: rng, hostname: hostname, total: total, frameworks: map[string]*agentFramework{},
		tasks: map[string]*agentTask{}, duration: duration, streams: map[agentcore.StreamKey]*checkpoint.Stream{}}
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

// ConnectCall lists, as the agent's link does, every framework on the
// agent, the executors the master knows (agentcore.ReregisterExecutor)
// and every task not forgotten.
func (a *modelAgent) ConnectCall() *internalpb.Call {
	info := mesospb.AgentInfo{Hostname: a.hostname, Resources: a.total.ToProto()}
	if a.id == "" {
		return &internalpb.Call{Type: internalpb.Call_REGISTER.Enum(), Register: &internalpb.Call_Register{AgentInfo: info}}
	}
	info.ID = &mesospb.AgentID{Value: a.id}
	r := &internalpb.Call_Reregister{AgentInfo: info}
	for _, fid := range sortedKeys(a.frameworks) {
		fw := a.frameworks[fid]
		r.Frameworks = append(r.Frameworks, fw.info)
		for _, eid := range sortedKeys(fw.executors) {
			e := fw.executors[eid]
			if agentcore.ReregisterExecutor(e.kind, e.state) {
				r.Executors = append(r.Executors, mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: e.id}})
			}
			for _, tid := range sortedKeys(e.tasks) {
				r.Tasks = append(r.Tasks, a.taskProto(e.tasks[tid]))
			}
		}
	}
	return &internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), AgentID: &mesospb.AgentID{Value: a.id}, Reregister: r}
}

func (a *modelAgent) taskProto(t *agentTask) mesospb.Task {
	p := mesospb.Task{
		Name: t.info.Name, TaskID: t.info.TaskID, FrameworkID: mesospb.FrameworkID{Value: t.framework},
		AgentID: mesospb.AgentID{Value: a.id}, State: t.state.Enum(), Resources: t.info.Resources,
		Statuses: append([]mesospb.TaskStatus(nil), t.statuses...),
	}
	if h := a.updates.Head(agentcore.StreamKey{Framework: t.framework, Task: t.id}); h != nil {
		p.StatusUpdateState, p.StatusUpdateUUID = h.Status.State, h.Status.UUID
	}
	return p
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
		if t := a.tasks[key.Framework+"/"+key.Task]; t != nil && !t.forgotten &&
			agentcore.ForgetTask(t.state, res.Outcome == agentcore.AckClosed) {
			a.forgetTask(t)
		}
	case internalpb.Event_PING:
		return append(a.drain(), &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: a.id}})
	case internalpb.Event_UPDATE_FRAMEWORK:
		fi := ev.UpdateFramework.FrameworkInfo
		if fi.ID != nil {
			if fw := a.frameworks[fi.ID.Value]; fw != nil {
				fw.info = fi
			}
			a.updates.ResumeFramework(fi.ID.Value, now)
		}
	case internalpb.Event_RECONCILE_TASKS:
		a.reconcile(now, ev.ReconcileTasks.FrameworkID.Value, ev.ReconcileTasks.TaskIDs)
	}
	return a.drain()
}

// runTask is RUN_TASK as the agent's runTasks takes it.
func (a *modelAgent) runTask(now time.Time, fwInfo mesospb.FrameworkInfo, ti mesospb.TaskInfo) {
	fid := fwInfo.ID.GetValue()
	fw := a.frameworks[fid]
	if fw == nil {
		fw = &agentFramework{executors: map[string]*modelExecutor{}, tasks: map[string]*agentTask{}}
		a.frameworks[fid] = fw
	}
	fw.info = fwInfo
	d := agentcore.DecideAdmit(agentcore.Admit{
		Framework:            fwInfo,
		FrameworkTerminating: fw.terminating,
		Tasks:                []mesospb.TaskInfo{ti},
		TaskKnown:            func(id string) bool { return fw.tasks[id] != nil },
		ExecutorState: func(id string) (agentcore.ExecutorState, bool) {
			if e := fw.executors[id]; e != nil {
				return e.state, true
			}
			return 0, false
		},
	})
	switch d.Verdict {
	case agentcore.AdmitRefuse:
		for _, id := range d.Refused {
			a.agentUpdate(now, fid, id.Value, d.Refusal)
		}
		a.maybeForgetFramework(fid)
		return
	case agentcore.AdmitIgnore:
		return
	}
	e := fw.executors[d.Info.ExecutorID.Value]
	if d.Verdict == agentcore.AdmitStart {
		e = &modelExecutor{fw: fw, id: d.Info.ExecutorID.Value, kind: d.Kind, state: agentcore.ExecutorRegistering, tasks: map[string]*agentTask{}}
		fw.executors[e.id] = e
	}
	rs, _ := resources.FromProto(ti.Resources)
	t := &agentTask{framework: fid, id: ti.TaskID.Value, info: ti, resources: rs, exec: e, state: mesospb.TASK_STAGING, queued: true}
	if d := a.duration(); d > 0 {
		t.endsAt = now.Add(d)
	}
	a.tasks[fid+"/"+t.id] = t
	fw.tasks[t.id] = t
	e.tasks[t.id] = t
	// The model executor subscribes at once and takes its queued task.
	e.state = agentcore.ExecutorRunning
	t.queued = false
	a.executorUpdate(now, t, mesospb.TASK_STARTING)
	a.executorUpdate(now, t, mesospb.TASK_RUNNING)
}

// killTask is KILL_TASK as the agent's killTask takes it.
func (a *modelAgent) killTask(now time.Time, fid, tid string) {
	fw := a.frameworks[fid]
	var t *agentTask
	if fw != nil {
		t = fw.tasks[tid]
	}
	k := agentcore.Kill{Known: t != nil, PartitionAware: fw != nil && agentcore.PartitionAware(&fw.info)}
	if t != nil {
		k.State, k.Queued, k.Executor = t.state, t.queued, t.exec.state
	}
	d := agentcore.DecideKill(k)
	switch d.Verdict {
	case agentcore.KillUnknown:
		a.agentUpdate(now, fid, tid, d.Refusal)
	case agentcore.KillQueued:
		a.agentUpdate(now, fid, tid, agentcore.KilledDuringLaunch(false))
	case agentcore.KillForward:
		// The model executor kills its task, reports it and exits.
		a.executorUpdate(now, t, mesospb.TASK_KILLED)
		a.executorExited(now, t.exec)
	}
}

// shutdownFramework is SHUTDOWN_FRAMEWORK: its executors are shut down
// (the model's go at once, without a word), their tasks end silently and
// are forgotten with the framework's update streams: the master removed
// it and will acknowledge nothing.
func (a *modelAgent) shutdownFramework(now time.Time, fid string) {
	fw := a.frameworks[fid]
	if fw == nil {
		return
	}
	fw.terminating = true
	for _, eid := range sortedKeys(fw.executors) {
		e := fw.executors[eid]
		if e.state.Ended() {
			continue
		}
		if e.ending == nil {
			end := agentcore.EndingShutdown("the framework is shutting down")
			e.ending = &end
		}
		a.terminateExecutor(now, e)
	}
	a.maybeForgetFramework(fid)
}

// executorExited is the end of a model executor by itself (its task
// ended): the agent terminates it.
func (a *modelAgent) executorExited(now time.Time, e *modelExecutor) {
	if e.state == agentcore.ExecutorTerminated {
		return
	}
	if e.ending == nil {
		end := agentcore.EndingExited(nil)
		e.ending = &end
	}
	a.terminateExecutor(now, e)
}

// terminateExecutor is the agent's terminateExecutor: the tasks left end
// as agentcore.EndTask says, and what can be forgotten is.
func (a *modelAgent) terminateExecutor(now time.Time, e *modelExecutor) {
	e.state = agentcore.ExecutorTerminated
	for _, tid := range sortedKeys(e.tasks) {
		t := e.tasks[tid]
		switch agentcore.EndTask(t.state, e.fw.terminating) {
		case agentcore.TaskEndSilent:
			t.state = e.ending.State
		case agentcore.TaskEndUpdate:
			a.agentUpdate(now, t.framework, t.id, *e.ending)
		}
	}
	// A command executor's end is not reported to the master
	// (agentcore.ReportExit); the model runs no other kind.
	if e.fw.terminating {
		for _, tid := range sortedKeys(e.tasks) {
			a.forgetTask(e.tasks[tid])
		}
	}
	a.maybeForgetExecutor(e)
}

// forgetTask drops a task: its last update was acknowledged, or its
// framework is gone.
func (a *modelAgent) forgetTask(t *agentTask) {
	t.forgotten = true
	fw := a.frameworks[t.framework]
	if fw != nil && fw.tasks[t.id] == t {
		delete(fw.tasks, t.id)
	}
	if e := t.exec; e != nil {
		delete(e.tasks, t.id)
		a.maybeForgetExecutor(e)
	}
	a.maybeForgetFramework(t.framework)
}

func (a *modelAgent) maybeForgetExecutor(e *modelExecutor) {
	if !agentcore.ForgetExecutor(e.state, len(e.tasks)) || e.fw.executors[e.id] != e {
		return
	}
	delete(e.fw.executors, e.id)
}

// maybeForgetFramework drops a framework with nothing left on the agent,
// and its update streams with it (Mesos's removeFramework).
func (a *modelAgent) maybeForgetFramework(fid string) {
	fw := a.frameworks[fid]
	if fw == nil || !agentcore.ForgetFramework(len(fw.executors), len(fw.tasks)) {
		return
	}
	delete(a.frameworks, fid)
	a.updates.Cleanup(fid)
}

// reconcile answers RECONCILE_TASKS as the agent's reconcileTasks does.
func (a *modelAgent) reconcile(now time.Time, fid string, ids []mesospb.TaskID) {
	fw := a.frameworks[fid]
	if len(ids) == 0 && fw != nil {
		for _, tid := range sortedKeys(fw.tasks) {
			ids = append(ids, fw.tasks[tid].info.TaskID)
		}
	}
	for _, id := range ids {
		var known *agentcore.ReconcileTask
		if fw != nil {
			if t := fw.tasks[id.Value]; t != nil {
				known = &agentcore.ReconcileTask{State: t.state}
				if t.exec != nil {
					known.ExecutorID = t.exec.id
				}
				if n := len(t.statuses); n > 0 {
					known.Last = &t.statuses[n-1]
				}
			}
		}
		u := agentcore.ReconcileAnswer(fid, a.id, id, known, now)
		a.calls = append(a.calls, &internalpb.Call{Type: internalpb.Call_STATUS_UPDATE.Enum(), AgentID: &mesospb.AgentID{Value: a.id}, StatusUpdate: u})
	}
}

// executorUpdate is an update the model executor sends for its task.
func (a *modelAgent) executorUpdate(now time.Time, t *agentTask, state mesospb.TaskState) {
	st := mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: t.id}, State: state.Enum(), Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: a.uuid()}
	if t.exec != nil {
		st.ExecutorID = &mesospb.ExecutorID{Value: t.exec.id}
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
// update manager, and, when it takes it, into the task's state
// (agentcore.ApplyStatus). A task the agent does not run (an answer to a
// kill of a task it does not know) gets a record of its own, for the
// invariants: its framework must get the update.
func (a *modelAgent) statusUpdate(now time.Time, fid string, st mesospb.TaskStatus) {
	key := fid + "/" + st.TaskID.Value
	t := a.tasks[key]
	live := t != nil && !t.forgotten
	if fw := a.frameworks[fid]; live && (fw == nil || fw.tasks[t.id] != t) {
		live = false
	}
	u := &internalpb.Call_StatusUpdate{FrameworkID: mesospb.FrameworkID{Value: fid}, Status: st, ExecutorID: st.ExecutorID}
	if a.updates.Update(u, now) != agentcore.UpdateTaken {
		return
	}
	if !live {
		// Not the agent's task: nothing of it is kept but its updates.
		if t == nil {
			t = &agentTask{framework: fid, id: st.TaskID.Value, info: mesospb.TaskInfo{TaskID: st.TaskID}, state: mesospb.TASK_STAGING, forgotten: true}
			a.tasks[key] = t
		}
		t.uuids = append(t.uuids, st.UUID)
		t.state = st.GetState()
		return
	}
	t.uuids = append(t.uuids, st.UUID)
	t.state, t.statuses, _ = agentcore.ApplyStatus(t.state, t.statuses, st)
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
			delete(a.streams, w.Key)
		}
	}
	var calls []*internalpb.Call
	for _, f := range r.Forwards {
		u := *f.Update
		if t := a.tasks[u.FrameworkID.Value+"/"+u.Status.TaskID.Value]; t != nil {
			u.LatestState = t.state.Enum()
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
		if !t.forgotten && t.exec != nil && !t.endsAt.IsZero() && !now.Before(t.endsAt) && !isTerminalState(t.state) {
			// The executor reports the end, and exits.
			a.executorUpdate(now, t, mesospb.TASK_FINISHED)
			a.executorExited(now, t.exec)
		}
	}
	a.updates.Tick(now)
	return a.drain()
}

// Restart: the agent process's crash. What the model keeps is what the
// agent checkpoints (its frameworks, executors and tasks before launching
// them, every update before forwarding it, every acknowledgement); its
// status update manager starts again from the checkpoint, paused until
// the agent registers. The model executors survive and reconnect.
func (a *modelAgent) Restart(now time.Time) {
	a.newUpdateManager()
	a.calls = nil
	var streams []checkpoint.Stream
	for _, k := range slices.SortedFunc(maps.Keys(a.streams), func(x, y agentcore.StreamKey) int {
		return cmp.Or(cmp.Compare(x.Framework, y.Framework), cmp.Compare(x.Task, y.Task))
	}) {
		streams = append(streams, *a.streams[k])
	}
	a.updates.Recover(streams)
	a.drain()
}

func (a *modelAgent) Shutdown(now time.Time) {
	for _, t := range a.tasks {
		if !t.forgotten && !isTerminalState(t.state) {
			t.state = mesospb.TASK_KILLED
		}
		t.forgotten = true
	}
	clear(a.frameworks)
	a.newUpdateManager()
	clear(a.streams)
	a.calls = nil
}

func (a *modelAgent) Tasks() []AgentTask {
	out := make([]AgentTask, 0, len(a.tasks))
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		out = append(out, AgentTask{FrameworkID: t.framework, TaskID: t.id, State: t.state, Resources: t.resources, Forgotten: t.forgotten, UUIDs: t.uuids})
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

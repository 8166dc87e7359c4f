package agentcore

import (
	"slices"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Tables are the agent's frameworks, their executor runs and their tasks,
// with their states: what the agent runs, as Mesos's Slave keeps it in
// its Framework, Executor and Task records. They change only through the
// methods below, each of which applies one event (a RUN_TASK, a kill, an
// executor's subscription or end, a status update, an acknowledgement's
// forgetting) with the decisions of tasks.go, and returns what the
// caller is to do about it: the updates to make, the executor to start,
// destroy or launch tasks on, the checkpoints to write, the records
// forgotten. The agent keeps its I/O handles (executor streams, drivers,
// timers) in maps of its own, keyed by run ID; the simulation
// (internal/sim) keeps none.
type Tables struct {
	frameworks map[string]*Framework
	history    history // what they forgot (history.go)
}

// NewTables returns empty tables.
func NewTables() *Tables { return &Tables{frameworks: map[string]*Framework{}} }

// Framework is a framework with executor runs or tasks on the agent.
type Framework struct {
	id   string
	info mesospb.FrameworkInfo
	runs map[string]*Run // by key: the executor ID, or a private key once a newer run took it
	// detached counts the runs under a private key, so forgetting a run
	// need not scan the table.
	detached    int
	tasks       map[string]*Task // every task not yet forgotten, by ID
	terminating bool             // SHUTDOWN_FRAMEWORK: no new tasks
}

// Run is one run of an executor: its ID (ContainerID) is fresh for each.
type Run struct {
	fw          *Framework
	key         string
	info        mesospb.ExecutorInfo
	kind        ExecutorKind
	containerID string // the run's ID: names the sandbox, prefixes its task containers
	sandbox     string
	state       ExecutorState
	queue       []LaunchItem     // waiting for the executor to subscribe, in order
	tasks       map[string]*Task // queued, launched and terminal-unacknowledged tasks
	// Every task ever given to the run, forgotten or not: the built-in
	// executors run each in a container named after it.
	taskIDs []mesospb.TaskID
	ending  *Ending // how its non-terminal tasks end when it terminates
}

// Task is a task the agent knows: queued for its executor, launched, or
// terminal with an update not yet acknowledged.
type Task struct {
	run   *Run
	info  mesospb.TaskInfo
	group *mesospb.TaskGroupInfo // the group it came in, nil for a single task
	state mesospb.TaskState
	// statuses keeps the latest status of each state the task went
	// through, without data, as Mesos keeps them.
	statuses []mesospb.TaskStatus
	// The state and uuid of the update at the head of the task's status
	// update stream (sent to the master, not yet acknowledged).
	headState *mesospb.TaskState
	headUUID  []byte
	queued    bool // waiting for the executor to subscribe
}

// Framework is the framework with the ID, nil when the agent has none.
func (t *Tables) Framework(id string) *Framework { return t.frameworks[id] }

// Len is the number of frameworks.
func (t *Tables) Len() int { return len(t.frameworks) }

// Frameworks lists the frameworks by ID.
func (t *Tables) Frameworks() []*Framework {
	out := make([]*Framework, 0, len(t.frameworks))
	for _, fw := range t.frameworks {
		out = append(out, fw)
	}
	slices.SortFunc(out, func(a, b *Framework) int { return strings.Compare(a.id, b.id) })
	return out
}

// AllTerminated reports whether every run of the frameworks that match
// (all of them when match is nil) has terminated: a shutdown or a stop
// of the agent waits for that.
func (t *Tables) AllTerminated(match func(*Framework) bool) bool {
	for _, fw := range t.frameworks {
		if match != nil && !match(fw) {
			continue
		}
		for _, r := range fw.runs {
			if r.state != ExecutorTerminated {
				return false
			}
		}
	}
	return true
}

// EachRun calls f for every run, in no particular order.
func (t *Tables) EachRun(f func(*Run)) {
	for _, fw := range t.frameworks {
		for _, r := range fw.runs {
			f(r)
		}
	}
}

// Run is the run that holds the executor ID in the framework, nil when
// none.
func (t *Tables) Run(fwID, execID string) *Run {
	if fw := t.frameworks[fwID]; fw != nil {
		return fw.runs[execID]
	}
	return nil
}

// Task is the framework's task with the ID, nil when the agent has none.
func (t *Tables) Task(fwID, taskID string) *Task {
	if fw := t.frameworks[fwID]; fw != nil {
		return fw.tasks[taskID]
	}
	return nil
}

// EnsureFramework records a framework the master sends tasks for, or
// takes its newer info: added says it is new, changed that its info is
// to be checkpointed.
func (t *Tables) EnsureFramework(info mesospb.FrameworkInfo) (fw *Framework, added, changed bool) {
	id := info.ID.GetValue()
	fw = t.frameworks[id]
	if fw == nil {
		fw = &Framework{id: id, runs: map[string]*Run{}, tasks: map[string]*Task{}}
		t.frameworks[id] = fw
		added = true
		t.history.frameworkReturned(id)
	}
	if !proto.Equal(&fw.info, &info) {
		fw.info = info
		changed = true
	}
	return fw, added, changed
}

// UpdateFramework takes UPDATE_FRAMEWORK: the framework's new info, if
// the agent has the framework; changed says it is to be checkpointed.
func (t *Tables) UpdateFramework(info mesospb.FrameworkInfo) (changed bool) {
	if info.ID == nil || t.frameworks[info.ID.Value] == nil {
		return false
	}
	_, _, changed = t.EnsureFramework(info)
	return changed
}

// ShutdownFramework takes SHUTDOWN_FRAMEWORK: the framework takes no new
// task; it returns its runs, by executor ID, for the caller to shut down.
func (t *Tables) ShutdownFramework(id string) []*Run {
	fw := t.frameworks[id]
	if fw == nil {
		return nil
	}
	fw.terminating = true
	return fw.Runs()
}

// ID is the framework's ID.
func (fw *Framework) ID() string { return fw.id }

// Info is the framework's info; the caller does not change it.
func (fw *Framework) Info() *mesospb.FrameworkInfo { return &fw.info }

// Terminating reports whether the framework is shutting down on the agent.
func (fw *Framework) Terminating() bool { return fw.terminating }

// PartitionAware reports whether the framework is PARTITION_AWARE.
func (fw *Framework) PartitionAware() bool { return PartitionAware(&fw.info) }

// Runs lists the framework's runs by executor ID (then run ID).
func (fw *Framework) Runs() []*Run {
	out := make([]*Run, 0, len(fw.runs))
	for _, r := range fw.runs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Run) int {
		if c := strings.Compare(a.info.ExecutorID.Value, b.info.ExecutorID.Value); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out
}

// EachRun calls f for each of the framework's runs, in no particular order.
func (fw *Framework) EachRun(f func(*Run)) {
	for _, r := range fw.runs {
		f(r)
	}
}

// Run is the run that holds the executor ID, nil when none.
func (fw *Framework) Run(execID string) *Run { return fw.runs[execID] }

// HasRunOf reports whether any run of the executor ID is left, holding
// the ID or detached.
func (fw *Framework) HasRunOf(execID string) bool {
	if fw.runs[execID] != nil {
		return true
	}
	if fw.detached > 0 {
		for _, r := range fw.runs {
			if r.info.ExecutorID.Value == execID {
				return true
			}
		}
	}
	return false
}

// Task is the framework's task with the ID, nil when none.
func (fw *Framework) Task(id string) *Task { return fw.tasks[id] }

// TaskCount is the number of tasks not forgotten.
func (fw *Framework) TaskCount() int { return len(fw.tasks) }

// RunCount is the number of runs not forgotten.
func (fw *Framework) RunCount() int { return len(fw.runs) }

// Framework is the run's framework.
func (r *Run) Framework() *Framework { return r.fw }

// FrameworkID is its framework's ID.
func (r *Run) FrameworkID() string { return r.fw.id }

// ID is the run's executor ID.
func (r *Run) ID() string { return r.info.ExecutorID.Value }

// Info is the run's ExecutorInfo; the caller does not change it.
func (r *Run) Info() *mesospb.ExecutorInfo { return &r.info }

// Kind says what runs the executor.
func (r *Run) Kind() ExecutorKind { return r.kind }

// ContainerID is the run's ID.
func (r *Run) ContainerID() string { return r.containerID }

// Sandbox is the run's sandbox directory.
func (r *Run) Sandbox() string { return r.sandbox }

// State is the run's lifecycle state.
func (r *Run) State() ExecutorState { return r.state }

// Ending is how its tasks end when it terminates, nil while undecided.
func (r *Run) Ending() *Ending { return r.ending }

// Queue is what waits for the executor to subscribe; the caller does not
// change it.
func (r *Run) Queue() []LaunchItem { return r.queue }

// Holder reports whether the run holds its executor ID (no newer run
// took it).
func (r *Run) Holder() bool { return r.fw.runs[r.ID()] == r }

// Task is the run's task with the ID, nil when none.
func (r *Run) Task(id string) *Task { return r.tasks[id] }

// TaskCount is the number of the run's tasks not forgotten.
func (r *Run) TaskCount() int { return len(r.tasks) }

// TaskIDs lists every task ever given to the run; the caller does not
// change it.
func (r *Run) TaskIDs() []mesospb.TaskID { return r.taskIDs }

// Tasks lists the run's tasks not forgotten, by ID.
func (r *Run) Tasks() []*Task {
	out := make([]*Task, 0, len(r.tasks))
	for _, t := range r.tasks {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *Task) int { return strings.Compare(a.info.TaskID.Value, b.info.TaskID.Value) })
	return out
}

// EachTask calls f for each of the run's tasks, in no particular order.
func (r *Run) EachTask(f func(*Task)) {
	for _, t := range r.tasks {
		f(t)
	}
}

// Live reports whether the run still has work: queued or non-terminal
// tasks.
func (r *Run) Live() bool {
	if len(r.queue) > 0 {
		return true
	}
	for _, t := range r.tasks {
		if !Terminal(t.state) {
			return true
		}
	}
	return false
}

// TaskUser is the user the run's task containers run as: the executor's
// command's, else the framework's (Mesos's --switch_user); "" for the
// agent's own.
func (r *Run) TaskUser() string {
	if r.info.Command != nil && r.info.Command.User != nil {
		return r.info.Command.GetUser()
	}
	return r.fw.info.User
}

// Run is the task's executor run.
func (t *Task) Run() *Run { return t.run }

// ID is the task's ID.
func (t *Task) ID() string { return t.info.TaskID.Value }

// Info is the task's TaskInfo; the caller does not change it.
func (t *Task) Info() *mesospb.TaskInfo { return &t.info }

// Group is the group the task came in, nil for a single task.
func (t *Task) Group() *mesospb.TaskGroupInfo { return t.group }

// State is the task's latest state.
func (t *Task) State() mesospb.TaskState { return t.state }

// Statuses are the latest status of each state the task went through;
// the caller does not change them.
func (t *Task) Statuses() []mesospb.TaskStatus { return t.statuses }

// Queued reports whether the task waits for its executor to subscribe.
func (t *Task) Queued() bool { return t.queued }

// Apply records a status update the status update manager took
// (ApplyStatus); a terminal one takes the task out of the queue.
func (t *Task) Apply(st mesospb.TaskStatus) {
	state, statuses, applied := ApplyStatus(t.state, t.statuses, st)
	if !applied {
		return
	}
	t.state, t.statuses = state, statuses
	if Terminal(t.state) {
		t.queued = false
	}
}

// SetHead shows the head of the task's status update stream (nil state:
// none).
func (t *Task) SetHead(state *mesospb.TaskState, uuid []byte) { t.headState, t.headUUID = state, uuid }

// Proto is the task as the master and the operator API see it.
func (t *Task) Proto() mesospb.Task {
	p := mesospb.Task{
		Name:              t.info.Name,
		TaskID:            t.info.TaskID,
		FrameworkID:       mesospb.FrameworkID{Value: t.run.fw.id},
		AgentID:           t.info.AgentID,
		State:             t.state.Enum(),
		Resources:         t.info.Resources,
		Statuses:          append([]mesospb.TaskStatus(nil), t.statuses...),
		StatusUpdateState: t.headState,
		StatusUpdateUUID:  t.headUUID,
		Labels:            t.info.Labels,
		Discovery:         t.info.Discovery,
		Container:         t.info.Container,
		HealthCheck:       t.info.HealthCheck,
		KillPolicy:        t.info.KillPolicy,
		Limits:            t.info.Limits,
	}
	if !t.run.kind.Command() {
		p.ExecutorID = &mesospb.ExecutorID{Value: t.run.ID()}
	}
	if u := t.run.TaskUser(); u != "" {
		p.User = &u
	}
	return p
}

// RunTasks is a RUN_TASK or RUN_TASK_GROUP for Tables.RunTasks.
type RunTasks struct {
	Phase     AgentPhase
	Framework mesospb.FrameworkInfo
	Executor  *mesospb.ExecutorInfo // the group's executor; nil for a single task
	Group     *mesospb.TaskGroupInfo
	Tasks     []mesospb.TaskInfo
	// AgentID fills in the tasks' agent ID when they have none.
	AgentID          string
	GoExecutor       func(name string) bool
	CommandAsProcess bool
	// NewRun names a new executor run: its ID and sandbox.
	NewRun func(fwID, execID string) (containerID, sandbox string)
}

// RunResult is what the agent does about a RUN_TASK.
type RunResult struct {
	Admission
	Framework *Framework
	// FrameworkAdded: the framework is new on the agent (the tables took
	// it out of their history); FrameworkChanged: its info is to be
	// checkpointed.
	FrameworkAdded, FrameworkChanged bool
	// Run is the run that takes the tasks (AdmitStart, AdmitQueue,
	// AdmitLaunch); with AdmitStart it is new.
	Run *Run
	// Item launches the tasks added (Run.Task has them, to checkpoint):
	// queued (AdmitStart, AdmitQueue) or for the caller to send
	// (AdmitLaunch: Launched or Requeue after).
	Item LaunchItem
}

// RunTasks takes a RUN_TASK or RUN_TASK_GROUP: DecideAdmit decides, with
// what the tables know, and the tables record what it admits.
func (t *Tables) RunTasks(in RunTasks) RunResult {
	fw, added, changed := t.EnsureFramework(in.Framework)
	res := RunResult{Framework: fw, FrameworkAdded: added, FrameworkChanged: changed}
	res.Admission = DecideAdmit(Admit{
		Phase:                in.Phase,
		Framework:            fw.info,
		FrameworkTerminating: fw.terminating,
		Executor:             in.Executor,
		Group:                in.Group,
		Tasks:                in.Tasks,
		GoExecutor:           in.GoExecutor,
		CommandAsProcess:     in.CommandAsProcess,
		TaskKnown:            func(id string) bool { return fw.tasks[id] != nil },
		ExecutorState: func(id string) (ExecutorState, bool) {
			if r := fw.runs[id]; r != nil {
				return r.state, true
			}
			return 0, false
		},
	})
	switch res.Verdict {
	case AdmitRefuse, AdmitIgnore:
		return res
	}
	r := fw.runs[res.Info.ExecutorID.Value]
	if res.Verdict == AdmitStart {
		r = t.newRun(fw, res.Info, res.Kind, in.NewRun)
	}
	res.Run = r
	var first *Task
	for i := range in.Tasks {
		task := &Task{run: r, info: in.Tasks[i], group: in.Group, state: mesospb.TASK_STAGING, queued: true}
		if task.info.AgentID.Value == "" {
			task.info.AgentID = mesospb.AgentID{Value: in.AgentID}
		}
		r.tasks[task.ID()] = task
		r.taskIDs = append(r.taskIDs, task.info.TaskID)
		fw.tasks[task.ID()] = task
		if i == 0 {
			first = task
		}
	}
	res.Item = LaunchItem{Group: in.Group}
	if in.Group == nil {
		res.Item.Task = &first.info
	}
	if res.Verdict != AdmitLaunch {
		r.queue = append(r.queue, res.Item)
	}
	return res
}

// newRun records a new run of an executor, detaching the previous run of
// its ID (terminated: DecideAdmit starts no run while one lives).
func (t *Tables) newRun(fw *Framework, info mesospb.ExecutorInfo, kind ExecutorKind, name func(fwID, execID string) (string, string)) *Run {
	r := &Run{fw: fw, key: info.ExecutorID.Value, info: info, kind: kind, tasks: map[string]*Task{}}
	r.containerID, r.sandbox = name(fw.id, r.key)
	if old := fw.runs[r.key]; old != nil {
		fw.detach(old)
	}
	fw.runs[r.key] = r
	return r
}

// detach moves a run out of the way of a newer run of its executor ID;
// one that may be forgotten (ForgetExecutor) goes.
func (fw *Framework) detach(old *Run) {
	delete(fw.runs, old.key)
	if ForgetExecutor(old.state, len(old.tasks)) {
		return
	}
	// Reachable for its tasks' acknowledgements under a key no executor
	// ID can take.
	old.key = "\x00" + old.containerID
	fw.runs[old.key] = old
	fw.detached++
}

// Launched notes that the item reached the executor: its tasks are no
// longer queued.
func (r *Run) Launched(item LaunchItem) {
	for _, id := range item.IDs() {
		if t := r.tasks[id]; t != nil {
			t.queued = false
		}
	}
}

// Requeue puts an item that could not be delivered back in the queue.
func (r *Run) Requeue(item LaunchItem) { r.queue = append(r.queue, item) }

// Subscribed takes an executor's SUBSCRIBE: a registering run is running
// from now on; first says it was its first subscription.
func (r *Run) Subscribed() (first bool) {
	first = r.state == ExecutorRegistering
	if first {
		r.state = ExecutorRunning
	}
	return first
}

// Launches takes the run's queue for the caller to launch (Launched, or
// Requeue what cannot go) once the executor subscribed, after the
// launches it never received when it subscribed again (resubscribed:
// RelaunchLost, with the tasks it lists as unacknowledged).
func (r *Run) Launches(resubscribed bool, unacknowledged []mesospb.TaskInfo) []LaunchItem {
	if resubscribed {
		tasks := r.Tasks()
		sent := make([]SentTask, len(tasks))
		for i, t := range tasks {
			sent[i] = SentTask{Info: &t.info, Group: t.group, State: t.state, Queued: t.queued, Statuses: len(t.statuses)}
		}
		r.queue = append(r.queue, RelaunchLost(sent, unacknowledged)...)
	}
	launch := r.queue
	r.queue = nil
	return launch
}

// Resubscribing marks a recovered run whose executor process lives on:
// it subscribed before the restart, and is to subscribe again.
func (r *Run) Resubscribing() { r.state = ExecutorRunning }

// Decide sets how the run's tasks end, unless that is decided: the first
// decision stands.
func (r *Run) Decide(e Ending) {
	if r.ending == nil {
		r.ending = &e
	}
}

// Overrule sets how the run's tasks end, whatever was decided before.
func (r *Run) Overrule(e Ending) { r.ending = &e }

// Shutdown decides how the run is shut down (DecideShutdown) and records
// it: a graceful shutdown leaves it terminating; the caller destroys it
// (Destroy) after ShutdownDestroy, or sends SHUTDOWN after
// ShutdownGraceful.
func (r *Run) Shutdown(why string) ShutdownVerdict {
	v := DecideShutdown(r.state)
	if v == ShutdownNone {
		return v
	}
	r.Decide(EndingShutdown(why))
	if v == ShutdownGraceful {
		r.state = ExecutorTerminating
	}
	return v
}

// Destroy takes the agent's decision to end the run now, without asking
// the executor: false when it has terminated already. Its tasks end as
// decided before, or EndingDestroyed.
func (r *Run) Destroy() bool {
	if r.state == ExecutorTerminated {
		return false
	}
	r.state = ExecutorTerminating
	r.Decide(EndingDestroyed())
	return true
}

// Exited takes the end of the run's executor (its driver returned, its
// process ended): it is terminating, its tasks end with e unless decided
// before. The caller cleans up, then Terminates it.
func (r *Run) Exited(e Ending) {
	r.Decide(e)
	r.state = ExecutorTerminating
}

// TaskEnding is an update the agent makes for a task a run left behind.
type TaskEnding struct {
	TaskID string
	Ending Ending
}

// Termination is what the agent does when a run terminates.
type Termination struct {
	// Ending is how its tasks ended.
	Ending Ending
	// Updates are the agent's updates for its tasks that were not
	// terminal, in task ID order, to make now.
	Updates []TaskEnding
	// ReportExit says the master hears EXECUTOR_EXITED (ReportExit).
	ReportExit bool
}

// Terminate marks a run gone (ok false: it was already): its queue is
// dropped, and its tasks that are not terminal end as decided (or with
// EndingTerminated): with an update from the agent (Updates), or, for a
// framework the master shut down, silently (EndTask). The caller makes
// the updates, then calls Terminated.
func (r *Run) Terminate() (term Termination, ok bool) {
	if r.state == ExecutorTerminated {
		return term, false
	}
	r.Decide(EndingTerminated())
	r.state = ExecutorTerminated
	r.queue = nil
	term.Ending = *r.ending
	term.ReportExit = ReportExit(r.kind)
	for _, t := range r.Tasks() {
		switch EndTask(t.state, r.fw.terminating) {
		case TaskEndSilent:
			t.state = r.ending.State
		case TaskEndUpdate:
			term.Updates = append(term.Updates, TaskEnding{TaskID: t.ID(), Ending: *r.ending})
		}
	}
	return term, true
}

// Forgotten is what the tables forgot, for the caller to clean up after:
// the tasks (to file as completed), runs (their sandboxes to collect)
// and frameworks (their checkpoints and update streams to drop), each in
// the order forgotten.
type Forgotten struct {
	Tasks      []*Task
	Runs       []*Run
	Frameworks []*Framework
}

func (f *Forgotten) add(g Forgotten) {
	f.Tasks = append(f.Tasks, g.Tasks...)
	f.Runs = append(f.Runs, g.Runs...)
	f.Frameworks = append(f.Frameworks, g.Frameworks...)
}

// Terminated forgets what a terminated run leaves nothing to wait for:
// all its tasks, when its framework was shut down by the master (their
// updates will never be acknowledged), then the run and its framework
// when nothing of them is left (ForgetExecutor, ForgetFramework).
func (t *Tables) Terminated(r *Run) Forgotten {
	var out Forgotten
	if r.fw.terminating {
		for _, task := range r.Tasks() {
			out.add(t.ForgetTask(task))
		}
	}
	out.add(t.ForgetRun(r))
	return out
}

// ForgetTask forgets a task (ForgetTask: terminal, its terminal update
// acknowledged; or its framework gone), then its run and framework when
// nothing of them is left.
func (t *Tables) ForgetTask(task *Task) Forgotten {
	r := task.run
	if r.tasks[task.ID()] != task {
		return Forgotten{}
	}
	delete(r.tasks, task.ID())
	if r.fw.tasks[task.ID()] == task {
		delete(r.fw.tasks, task.ID())
	}
	t.history.taskForgotten(task)
	out := Forgotten{Tasks: []*Task{task}}
	out.add(t.ForgetRun(r))
	out.add(t.ForgetFramework(r.fw))
	return out
}

// ForgetRun forgets a run that has terminated with every task forgotten
// (ForgetExecutor), then its framework if nothing of it is left.
func (t *Tables) ForgetRun(r *Run) Forgotten {
	if !ForgetExecutor(r.state, len(r.tasks)) || r.fw.runs[r.key] != r {
		return Forgotten{}
	}
	delete(r.fw.runs, r.key)
	if r.key != r.ID() {
		r.fw.detached--
	}
	t.history.runForgotten(r)
	out := Forgotten{Runs: []*Run{r}}
	out.add(t.ForgetFramework(r.fw))
	return out
}

// ForgetFramework forgets a framework with no run and no task left
// (ForgetFramework).
func (t *Tables) ForgetFramework(fw *Framework) Forgotten {
	if !ForgetFramework(len(fw.runs), len(fw.tasks)) || t.frameworks[fw.id] != fw {
		return Forgotten{}
	}
	delete(t.frameworks, fw.id)
	t.history.frameworkForgotten(fw)
	return Forgotten{Frameworks: []*Framework{fw}}
}

// KillResult is what the agent does about a KILL_TASK.
type KillResult struct {
	KillDecision
	Task *Task // the task, when the framework has it
	// KillQueued: the tasks to end with Ending (the task and the rest of
	// its queued group), by update from the agent; then the caller calls
	// AfterQueuedKill.
	Victims []string
	Ending  Ending
}

// Kill takes a KILL_TASK (DecideKill): a queued task leaves the queue
// with its group (DequeueKilled), to be ended by the agent.
func (t *Tables) Kill(fwID, taskID string) KillResult {
	fw := t.frameworks[fwID]
	var task *Task
	if fw != nil {
		task = fw.tasks[taskID]
	}
	k := Kill{Known: task != nil, PartitionAware: fw != nil && fw.PartitionAware()}
	if task != nil {
		k.State, k.Queued, k.Executor = task.state, task.queued, task.run.state
	}
	res := KillResult{KillDecision: DecideKill(k), Task: task}
	if res.Verdict != KillQueued {
		return res
	}
	r := task.run
	keep, victims, inGroup := DequeueKilled(r.queue, taskID)
	r.queue = keep
	res.Ending = KilledDuringLaunch(inGroup || task.group != nil)
	res.Victims = victims[:0]
	for _, id := range victims {
		if v := r.tasks[id]; v != nil && !Terminal(v.state) {
			res.Victims = append(res.Victims, id)
		}
	}
	return res
}

// AfterQueuedKill reports whether a run is to be destroyed once a queued
// kill's updates are made (ShutdownAfterQueuedKill), and decides its
// ending then.
func (r *Run) AfterQueuedKill() bool {
	if !ShutdownAfterQueuedKill(r.state, r.Live()) {
		return false
	}
	r.Overrule(EndingKilledDuringLaunch())
	return true
}

// Reconcile is what the agent knows of the framework's tasks a
// RECONCILE_TASKS names (all its tasks, by run then ID, when it names
// none): nil for a task it does not know. ids is returned filled in.
func (t *Tables) Reconcile(fwID string, ids []mesospb.TaskID) ([]mesospb.TaskID, []*ReconcileTask) {
	fw := t.frameworks[fwID]
	if len(ids) == 0 && fw != nil {
		for _, r := range fw.Runs() {
			for _, task := range r.Tasks() {
				ids = append(ids, task.info.TaskID)
			}
		}
	}
	known := make([]*ReconcileTask, len(ids))
	backing := make([]ReconcileTask, len(ids))
	for i, id := range ids {
		if fw == nil {
			continue
		}
		if task := fw.tasks[id.Value]; task != nil {
			backing[i] = ReconcileTask{State: task.state, ExecutorID: task.run.ID()}
			if n := len(task.statuses); n > 0 {
				backing[i].Last = &task.statuses[n-1]
			}
			known[i] = &backing[i]
		}
	}
	return ids, known
}

// Reregistration is what a REREGISTER lists of the tables.
type Reregistration struct {
	Frameworks []mesospb.FrameworkInfo
	Executors  []mesospb.ExecutorInfo // those the master knows (ReregisterExecutor)
	Tasks      []mesospb.Task         // every task not forgotten
}

// Reregistration lists the frameworks, executors and tasks for a
// REREGISTER, by framework, executor and task ID.
func (t *Tables) Reregistration() Reregistration {
	var out Reregistration
	for _, fw := range t.Frameworks() {
		out.Frameworks = append(out.Frameworks, fw.info)
		for _, r := range fw.Runs() {
			if ReregisterExecutor(r.kind, r.state) {
				out.Executors = append(out.Executors, r.info)
			}
			for _, task := range r.Tasks() {
				out.Tasks = append(out.Tasks, task.Proto())
			}
		}
	}
	return out
}

// RecoveredTask is a task of a recovered run, with the statuses its
// update stream holds.
type RecoveredTask struct {
	Info mesospb.TaskInfo
	// GroupKey names the group it came in (the ID of the group's first
	// task), "" for a single task.
	GroupKey string
	Statuses []*mesospb.TaskStatus
	// Head is the head of its stream, nil when none; Stream says it has
	// a stream at all.
	Head   *mesospb.TaskStatus
	Stream bool
}

// Recover adds a run recovered from the checkpoints, with its tasks. A
// task whose end was acknowledged before the restart (ForgetRecovered) is
// forgotten at once (forgotten; the history has it); a task whose ID
// another recovered run holds is dropped (dup). Of two runs of one
// executor ID the live one takes the ID.
func (t *Tables) Recover(fw *Framework, info mesospb.ExecutorInfo, kind ExecutorKind, containerID, sandbox string, tasks []RecoveredTask) (r *Run, forgotten []*Task, dup []string) {
	r = &Run{fw: fw, key: info.ExecutorID.Value, info: info, kind: kind, containerID: containerID, sandbox: sandbox, tasks: map[string]*Task{}}
	groups := map[string]*mesospb.TaskGroupInfo{}
	for _, rt := range tasks {
		task := &Task{run: r, info: rt.Info, state: mesospb.TASK_STAGING}
		for _, st := range rt.Statuses {
			task.Apply(*st)
		}
		if rt.Head != nil {
			task.headState, task.headUUID = rt.Head.State, rt.Head.UUID
		}
		id := task.ID()
		if ForgetRecovered(task.state, rt.Stream, fw.tasks[id] != nil) {
			r.taskIDs = append(r.taskIDs, task.info.TaskID)
			forgotten = append(forgotten, task)
			t.history.taskForgotten(task)
			continue
		}
		if rt.GroupKey != "" {
			g := groups[rt.GroupKey]
			if g == nil {
				g = &mesospb.TaskGroupInfo{}
				groups[rt.GroupKey] = g
			}
			g.Tasks = append(g.Tasks, rt.Info)
			task.group = g
		}
		if fw.tasks[id] != nil {
			dup = append(dup, id)
			continue
		}
		r.tasks[id] = task
		r.taskIDs = append(r.taskIDs, task.info.TaskID)
		fw.tasks[id] = task
	}
	if old := fw.runs[r.key]; old != nil {
		if r.Live() {
			fw.detach(old)
		} else {
			r.key = "\x00" + r.containerID
			fw.runs[r.key] = r
			fw.detached++
		}
	}
	if fw.runs[r.key] == nil {
		fw.runs[r.key] = r
	}
	return r, forgotten, dup
}

// Reattached notes a recovered task whose container a new built-in
// executor watches: it is launched.
func (task *Task) Reattached() { task.queued = false }

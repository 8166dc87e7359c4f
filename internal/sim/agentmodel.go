package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// AgentCore is the decision logic of one simulated agent, what the fault
// simulation needs of it: the agent's answers to the master's events, and
// its own timers (tasks ending, status updates retried). Connection
// management (when to connect, which stream is current, ping timeouts)
// is the simulation's, as it is the agent shell's in Apron. The simulation
// uses modelAgent, a model of Mesos's agent written for it; the real
// agent's core plugs in here once it is a pure state machine (issue 9).
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

// update is one status update of a task's stream.
type update struct {
	state mesospb.TaskState
	uuid  []byte
}

// agentTask is a task on the model agent. Its updates form a stream, as
// in Mesos's status update manager: the first is sent and retried with
// backoff until acknowledged, then the next; per task, in order.
type agentTask struct {
	framework, id string
	info          mesospb.TaskInfo
	resources     resources.Resources
	state         mesospb.TaskState
	endsAt        time.Time // zero: runs until killed
	pending       []update
	uuids         [][]byte // of every update made, in order
	nextRetry     time.Time
	backoff       time.Duration
	forgotten     bool
}

// modelAgent models a Mesos agent with checkpointing on (what a restart
// keeps: its ID, its frameworks, its tasks and their unacknowledged
// updates), a command executor that reports TASK_STARTING then
// TASK_RUNNING and the task's end, and the status update manager's
// retries (10 s doubling to 10 min; resent at once after (re)registration
// and when the framework re-subscribes, as Mesos's agent does on
// UpdateFrameworkMessage).
type modelAgent struct {
	rng        *rand.Rand
	hostname   string
	total      resources.Resources
	id         string
	frameworks map[string]mesospb.FrameworkInfo
	tasks      map[string]*agentTask // framework/task
	// duration picks a new task's running time (0: until killed).
	duration func() time.Duration
}

const (
	updateRetryMin = 10 * time.Second
	updateRetryMax = 10 * time.Minute
)

func newModelAgent(rng *rand.Rand, hostname string, total resources.Resources, duration func() time.Duration) *modelAgent {
	return &modelAgent{rng: rng, hostname: hostname, total: total, frameworks: map[string]mesospb.FrameworkInfo{},
		tasks: map[string]*agentTask{}, duration: duration}
}

func (a *modelAgent) ID() string { return a.id }

func (a *modelAgent) ConnectCall() *internalpb.Call {
	info := mesospb.AgentInfo{Hostname: a.hostname, Resources: a.total.ToProto()}
	if a.id == "" {
		return &internalpb.Call{Type: internalpb.Call_REGISTER.Enum(), Register: &internalpb.Call_Register{AgentInfo: info}}
	}
	info.ID = &mesospb.AgentID{Value: a.id}
	r := &internalpb.Call_Reregister{AgentInfo: info}
	live := map[string]bool{}
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		if t.forgotten {
			continue
		}
		live[t.framework] = true
		r.Tasks = append(r.Tasks, a.taskProto(t))
	}
	for _, fid := range sortedKeys(a.frameworks) {
		if live[fid] {
			r.Frameworks = append(r.Frameworks, a.frameworks[fid])
		}
	}
	return &internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), AgentID: &mesospb.AgentID{Value: a.id}, Reregister: r}
}

func (a *modelAgent) taskProto(t *agentTask) mesospb.Task {
	p := mesospb.Task{
		Name: t.info.Name, TaskID: t.info.TaskID, FrameworkID: mesospb.FrameworkID{Value: t.framework},
		AgentID: mesospb.AgentID{Value: a.id}, State: t.state.Enum(), Resources: t.info.Resources,
	}
	if len(t.pending) > 0 {
		p.StatusUpdateState, p.StatusUpdateUUID = t.pending[0].state.Enum(), t.pending[0].uuid
	}
	return p
}

func (a *modelAgent) Handle(now time.Time, ev *internalpb.Event) []*internalpb.Call {
	switch ev.GetType() {
	case internalpb.Event_REGISTERED, internalpb.Event_REREGISTERED:
		a.id = ev.Registered.AgentID.Value
		return a.resend(now, "")
	case internalpb.Event_RUN_TASK:
		ti := ev.RunTask.Task
		fid := ev.RunTask.Framework.ID.GetValue()
		key := fid + "/" + ti.TaskID.Value
		if a.tasks[key] != nil {
			return nil // a task ID is launched once (Mesos refuses a duplicate)
		}
		rs, _ := resources.FromProto(ti.Resources)
		a.frameworks[fid] = ev.RunTask.Framework
		t := &agentTask{framework: fid, id: ti.TaskID.Value, info: ti, resources: rs, state: mesospb.TASK_STAGING}
		if d := a.duration(); d > 0 {
			t.endsAt = now.Add(d)
		}
		a.tasks[key] = t
		return slices.Concat(a.transition(now, t, mesospb.TASK_STARTING), a.transition(now, t, mesospb.TASK_RUNNING))
	case internalpb.Event_KILL_TASK:
		k := ev.KillTask
		t := a.tasks[k.FrameworkID.Value+"/"+k.TaskID.Value]
		if t == nil || isTerminalState(t.state) {
			return nil
		}
		return a.transition(now, t, mesospb.TASK_KILLED)
	case internalpb.Event_SHUTDOWN_FRAMEWORK:
		// The executors are killed and the framework's updates dropped
		// (Mesos's status update manager cleans the framework up): the
		// master removed it and has no one to send them to.
		fid := ev.ShutdownFramework.FrameworkID.Value
		for _, t := range a.tasks {
			if t.framework == fid && !t.forgotten {
				t.state, t.pending, t.forgotten = mesospb.TASK_KILLED, nil, true
			}
		}
		delete(a.frameworks, fid)
	case internalpb.Event_ACKNOWLEDGE:
		ack := ev.Acknowledge
		t := a.tasks[ack.FrameworkID.Value+"/"+ack.TaskID.Value]
		if t == nil || len(t.pending) == 0 || string(t.pending[0].uuid) != string(ack.UUID) {
			return nil // a duplicate, or for an update already acknowledged
		}
		t.pending = t.pending[1:]
		t.backoff = updateRetryMin
		if len(t.pending) > 0 {
			t.nextRetry = now.Add(t.backoff)
			return []*internalpb.Call{a.statusCall(t, t.pending[0])}
		}
		if isTerminalState(t.state) {
			t.forgotten = true
		}
	case internalpb.Event_PING:
		return []*internalpb.Call{{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: a.id}}}
	case internalpb.Event_UPDATE_FRAMEWORK:
		fi := ev.UpdateFramework.FrameworkInfo
		if fi.ID != nil {
			if _, ok := a.frameworks[fi.ID.Value]; ok {
				a.frameworks[fi.ID.Value] = fi
			}
			return a.resend(now, fi.ID.Value)
		}
	case internalpb.Event_RECONCILE_TASKS:
		r := ev.ReconcileTasks
		var calls []*internalpb.Call
		for _, id := range r.TaskIDs {
			t := a.tasks[r.FrameworkID.Value+"/"+id.Value]
			if t == nil {
				t = &agentTask{framework: r.FrameworkID.Value, id: id.Value, state: mesospb.TASK_STAGING, info: mesospb.TaskInfo{TaskID: id}}
				a.tasks[r.FrameworkID.Value+"/"+id.Value] = t
				calls = append(calls, a.transition(now, t, mesospb.TASK_DROPPED)...)
			}
		}
		return calls
	}
	return nil
}

// resend sends at once the first pending update of each task (of one
// framework, or of all for ""), as Mesos's agent does when it
// (re)registers or a framework re-subscribes.
func (a *modelAgent) resend(now time.Time, framework string) []*internalpb.Call {
	var calls []*internalpb.Call
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		if len(t.pending) == 0 || (framework != "" && t.framework != framework) {
			continue
		}
		t.backoff = updateRetryMin
		t.nextRetry = now.Add(t.backoff)
		calls = append(calls, a.statusCall(t, t.pending[0]))
	}
	return calls
}

// transition moves t to state and queues its update; the update is sent
// now if it is the only one pending.
func (a *modelAgent) transition(now time.Time, t *agentTask, state mesospb.TaskState) []*internalpb.Call {
	t.state = state
	u := update{state: state, uuid: make([]byte, 16)}
	for i := range u.uuid {
		u.uuid[i] = byte(a.rng.Uint32())
	}
	t.pending = append(t.pending, u)
	t.uuids = append(t.uuids, u.uuid)
	if len(t.pending) > 1 {
		return nil // waits for the acknowledgement of the one before
	}
	t.backoff = updateRetryMin
	t.nextRetry = now.Add(t.backoff)
	return []*internalpb.Call{a.statusCall(t, u)}
}

func (a *modelAgent) statusCall(t *agentTask, u update) *internalpb.Call {
	return &internalpb.Call{
		Type:    internalpb.Call_STATUS_UPDATE.Enum(),
		AgentID: &mesospb.AgentID{Value: a.id},
		StatusUpdate: &internalpb.Call_StatusUpdate{
			FrameworkID: mesospb.FrameworkID{Value: t.framework},
			Status: mesospb.TaskStatus{
				TaskID: mesospb.TaskID{Value: t.id}, State: u.state.Enum(),
				Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: u.uuid,
			},
			LatestState: t.state.Enum(),
		},
	}
}

func (a *modelAgent) Tick(now time.Time, registered bool) []*internalpb.Call {
	var calls []*internalpb.Call
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		if t.forgotten {
			continue
		}
		if !t.endsAt.IsZero() && !now.Before(t.endsAt) && !isTerminalState(t.state) {
			// The executor reports the end; the update is sent once the
			// agent is registered.
			c := a.transition(now, t, mesospb.TASK_FINISHED)
			if registered {
				calls = append(calls, c...)
			}
			continue
		}
		if registered && len(t.pending) > 0 && !now.Before(t.nextRetry) {
			t.backoff = min(2*t.backoff, updateRetryMax)
			t.nextRetry = now.Add(t.backoff)
			calls = append(calls, a.statusCall(t, t.pending[0]))
		}
	}
	return calls
}

// Restart: everything of the model agent is checkpointed (Mesos checkpoints
// a task before launching it and an update before forwarding it); only
// its retry timers restart, and updates go out again after it registers.
func (a *modelAgent) Restart(now time.Time) {
	for _, t := range a.tasks {
		t.backoff, t.nextRetry = updateRetryMin, now.Add(updateRetryMin)
	}
}

func (a *modelAgent) Shutdown(now time.Time) {
	for _, t := range a.tasks {
		if !t.forgotten && !isTerminalState(t.state) {
			t.state = mesospb.TASK_KILLED
		}
		t.pending, t.forgotten = nil, true
	}
}

func (a *modelAgent) Tasks() []AgentTask {
	out := make([]AgentTask, 0, len(a.tasks))
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		out = append(out, AgentTask{FrameworkID: t.framework, TaskID: t.id, State: t.state, Resources: t.resources, Forgotten: t.forgotten, UUIDs: t.uuids})
	}
	return out
}

func (a *modelAgent) Pending() int {
	n := 0
	for _, t := range a.tasks {
		n += len(t.pending)
	}
	return n
}

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

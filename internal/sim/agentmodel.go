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
// uses modelAgent, whose status updates go through the agent's own status
// update manager (internal/agentcore); its tasks and executors are a model
// of Mesos's agent written for the simulation, until the agent's
// decisions about them are a pure core too.
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
	state         mesospb.TaskState
	endsAt        time.Time // zero: runs until killed
	uuids         [][]byte  // of every update made, in order
	forgotten     bool
}

// modelAgent models a Mesos agent with checkpointing on (what a restart
// keeps: its ID, its frameworks, its tasks and their unacknowledged
// updates), a command executor that reports TASK_STARTING then
// TASK_RUNNING and the task's end. Its status updates go through the
// agent's own status update manager (agentcore.UpdateManager: per task, in
// order, retried 10 s doubling to 10 min, resent at once after a
// (re)registration and when the framework re-subscribes), whose checkpoint
// writes it keeps in memory and recovers from after a restart, as the
// agent recovers from its disk.
type modelAgent struct {
	rng        *rand.Rand
	hostname   string
	total      resources.Resources
	id         string
	frameworks map[string]mesospb.FrameworkInfo
	tasks      map[string]*agentTask // framework/task
	// duration picks a new task's running time (0: until killed).
	duration func() time.Duration

	updates *agentcore.UpdateManager
	paused  bool                                       // no master: the manager forwards nothing
	streams map[agentcore.StreamKey]*checkpoint.Stream // the manager's checkpoint
}

const (
	updateRetryMin = 10 * time.Second
	updateRetryMax = 10 * time.Minute
)

func newModelAgent(rng *rand.Rand, hostname string, total resources.Resources, duration func() time.Duration) *modelAgent {
	a := &modelAgent{rng: rng, hostname: hostname, total: total, frameworks: map[string]mesospb.FrameworkInfo{},
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
		a.transition(now, t, mesospb.TASK_STARTING)
		a.transition(now, t, mesospb.TASK_RUNNING)
	case internalpb.Event_KILL_TASK:
		k := ev.KillTask
		t := a.tasks[k.FrameworkID.Value+"/"+k.TaskID.Value]
		if t == nil || isTerminalState(t.state) {
			return nil
		}
		a.transition(now, t, mesospb.TASK_KILLED)
	case internalpb.Event_SHUTDOWN_FRAMEWORK:
		// The executors are killed and the framework is forgotten with its
		// update streams, as the agent does (UpdateManager.Cleanup): the
		// master removed it and will acknowledge nothing.
		fid := ev.ShutdownFramework.FrameworkID.Value
		for _, t := range a.tasks {
			if t.framework == fid && !t.forgotten {
				if !isTerminalState(t.state) {
					t.state = mesospb.TASK_KILLED
				}
				t.forgotten = true
			}
		}
		delete(a.frameworks, fid)
		a.updates.Cleanup(fid)
	case internalpb.Event_ACKNOWLEDGE:
		ack := ev.Acknowledge
		t := a.tasks[ack.FrameworkID.Value+"/"+ack.TaskID.Value]
		res := a.updates.Ack(agentcore.StreamKey{Framework: ack.FrameworkID.Value, Task: ack.TaskID.Value}, ack.UUID, now)
		if res.Outcome == agentcore.AckClosed && t != nil {
			t.forgotten = true
		}
	case internalpb.Event_PING:
		return append(a.drain(), &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: a.id}})
	case internalpb.Event_UPDATE_FRAMEWORK:
		fi := ev.UpdateFramework.FrameworkInfo
		if fi.ID != nil {
			if _, ok := a.frameworks[fi.ID.Value]; ok {
				a.frameworks[fi.ID.Value] = fi
			}
			a.updates.ResumeFramework(fi.ID.Value, now)
		}
	case internalpb.Event_RECONCILE_TASKS:
		r := ev.ReconcileTasks
		for _, id := range r.TaskIDs {
			t := a.tasks[r.FrameworkID.Value+"/"+id.Value]
			if t == nil {
				t = &agentTask{framework: r.FrameworkID.Value, id: id.Value, state: mesospb.TASK_STAGING, info: mesospb.TaskInfo{TaskID: id}}
				a.tasks[r.FrameworkID.Value+"/"+id.Value] = t
				a.transition(now, t, mesospb.TASK_DROPPED)
			}
		}
	}
	return a.drain()
}

// transition moves t to state and gives its update to the status update
// manager, which forwards it when nothing of the task is in flight.
func (a *modelAgent) transition(now time.Time, t *agentTask, state mesospb.TaskState) {
	t.state = state
	uuid := make([]byte, 16)
	for i := range uuid {
		uuid[i] = byte(a.rng.Uint32())
	}
	t.uuids = append(t.uuids, uuid)
	a.updates.Update(&internalpb.Call_StatusUpdate{
		FrameworkID: mesospb.FrameworkID{Value: t.framework},
		Status: mesospb.TaskStatus{
			TaskID: mesospb.TaskID{Value: t.id}, State: state.Enum(),
			Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: uuid,
		},
	}, now)
}

// drain does what the manager decided: its checkpoint writes on the
// model's checkpoint, then the forwards, as calls stamped with the task's
// latest state (the agent's Slave::forward).
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
		if !t.forgotten && !t.endsAt.IsZero() && !now.Before(t.endsAt) && !isTerminalState(t.state) {
			a.transition(now, t, mesospb.TASK_FINISHED) // the executor reports the end
		}
	}
	a.updates.Tick(now)
	return a.drain()
}

// Restart: the agent process's crash. What the model keeps is what the
// agent checkpoints (its tasks before launching them, every update before
// forwarding it, every acknowledgement); its status update manager starts
// again from the checkpoint, paused until the agent registers.
func (a *modelAgent) Restart(now time.Time) {
	a.newUpdateManager()
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
	a.newUpdateManager()
	clear(a.streams)
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

package agentcore

import (
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The agent's decisions about what it says to an executor and what it
// takes from one: what a launch carries, which launches an executor that
// subscribes again never received, which of its calls the agent takes,
// and which task groups a new default executor takes over after a
// restart (Mesos's Slave::subscribe, Http::executor,
// validation::executor::call and Slave::_recover).

// LaunchItem is a task or a task group waiting for its executor, or sent
// to it: exactly one of Task and Group is set.
type LaunchItem struct {
	Task  *mesospb.TaskInfo
	Group *mesospb.TaskGroupInfo
}

// IDs lists the IDs of the item's task or tasks.
func (l LaunchItem) IDs() []string {
	if l.Group == nil {
		return []string{l.Task.TaskID.Value}
	}
	ids := make([]string, len(l.Group.Tasks))
	for i := range l.Group.Tasks {
		ids[i] = l.Group.Tasks[i].TaskID.Value
	}
	return ids
}

// Holds reports whether the item launches the task (QueueItem).
func (l LaunchItem) Holds(taskID string) bool {
	if l.Group == nil {
		return l.Task.TaskID.Value == taskID
	}
	for i := range l.Group.Tasks {
		if l.Group.Tasks[i].TaskID.Value == taskID {
			return true
		}
	}
	return false
}

// TaskIDs lists the item's tasks, and says whether it is a group
// (QueueItem).
func (l LaunchItem) TaskIDs() ([]string, bool) { return l.IDs(), l.Group != nil }

// Event is the LAUNCH or LAUNCH_GROUP that delivers the item.
func (l LaunchItem) Event() *executorpb.Event {
	if l.Group != nil {
		return &executorpb.Event{Type: executorpb.Event_LAUNCH_GROUP.Enum(), LaunchGroup: &executorpb.Event_LaunchGroup{TaskGroup: *l.Group}}
	}
	return &executorpb.Event{Type: executorpb.Event_LAUNCH.Enum(), Launch: &executorpb.Event_Launch{Task: *l.Task}}
}

// SentTask is a task of an executor as RelaunchLost sees it.
type SentTask struct {
	Info     *mesospb.TaskInfo
	Group    *mesospb.TaskGroupInfo // the group it came in (by identity), nil for a single task
	State    mesospb.TaskState
	Queued   bool // still waiting in the executor's queue
	Statuses int  // how many statuses it has had
}

// RelaunchLost decides which launches an executor that subscribes again
// gets anew: those of the tasks the agent sent it (not queued) that are
// still TASK_STAGING with no status at all, and that the executor does not
// list among its unacknowledged tasks, so it never received them (the
// stream that carried the LAUNCH was closed for falling behind). tasks is
// in the order the launches are to go; the tasks of one group go again as
// one group, in the order of its first task.
func RelaunchLost(tasks []SentTask, unacknowledged []mesospb.TaskInfo) []LaunchItem {
	known := make(map[string]bool, len(unacknowledged))
	for i := range unacknowledged {
		known[unacknowledged[i].TaskID.Value] = true
	}
	var out []LaunchItem
	groups := map[*mesospb.TaskGroupInfo][]mesospb.TaskInfo{}
	var order []*mesospb.TaskGroupInfo
	for _, t := range tasks {
		if t.Queued || t.State != mesospb.TASK_STAGING || t.Statuses > 0 || known[t.Info.TaskID.Value] {
			continue
		}
		if t.Group == nil {
			info := *t.Info
			out = append(out, LaunchItem{Task: &info})
			continue
		}
		if _, ok := groups[t.Group]; !ok {
			order = append(order, t.Group)
		}
		groups[t.Group] = append(groups[t.Group], *t.Info)
	}
	for _, g := range order {
		out = append(out, LaunchItem{Group: &mesospb.TaskGroupInfo{Tasks: groups[g]}})
	}
	return out
}

// CallRefusal is why the agent refuses an executor's call before looking
// at it.
type CallRefusal int

const (
	CallTaken     CallRefusal = iota // the call is looked at
	CallNoStream                     // it names a stream that is not the executor's current one
	CallNotSubbed                    // it names none, and the executor is not subscribed
)

// CheckExecutorCall decides whether the agent takes a call (UPDATE,
// MESSAGE, HEARTBEAT) of an executor run in state: one that names a
// stream (streamID) must come on the run's current subscription
// (current, "" when it has none); one without, as Mesos executors send
// them, is taken as Mesos's agent takes it (Http::executor), from an
// executor that has subscribed, even while it has no stream (it is
// reconnecting), and refused from one that never subscribed, or is being
// destroyed (cleaning) or has terminated.
func CheckExecutorCall(streamID, current string, state ExecutorState, cleaning bool) CallRefusal {
	switch {
	case streamID != "" && (current == "" || current != streamID):
		return CallNoStream
	case streamID == "" && (state == ExecutorRegistering || state == ExecutorTerminated || cleaning):
		return CallNotSubbed
	}
	return CallTaken
}

// ValidateExecutorUpdate applies Mesos's rules (validation::executor::call)
// to a status update from executor executorID and sets its source to
// SOURCE_EXECUTOR; it returns why the update is invalid, "" when it is
// valid. owner is the executor ID of the run the update's task belongs
// to when that is another run than the caller's ("" when it is the
// caller's, or the framework has no such task): an update for another
// run's task is invalid.
func ValidateExecutorUpdate(executorID, owner string, st *mesospb.TaskStatus) string {
	switch {
	case st.State == nil:
		return "status update without a state"
	case st.TaskID.Value == "":
		return "status update without a task ID"
	case len(st.UUID) != 16:
		return "status update needs a 16-byte uuid"
	case st.GetState() == mesospb.TASK_STAGING:
		return "an executor may not send TASK_STAGING"
	case st.Source != nil && st.GetSource() != mesospb.TaskStatus_SOURCE_EXECUTOR:
		return "status update from an executor with source " + st.GetSource().String()
	case st.ExecutorID != nil && st.ExecutorID.Value != executorID:
		return "status update names executor \"" + st.ExecutorID.Value + "\""
	case owner != "":
		return "task \"" + st.TaskID.Value + "\" belongs to executor \"" + owner + "\""
	}
	st.Source = mesospb.TaskStatus_SOURCE_EXECUTOR.Enum()
	return ""
}

// ReattachTask is a recovered task of a default executor run.
type ReattachTask struct {
	Info  *mesospb.TaskInfo
	Group *mesospb.TaskGroupInfo // the group it came in (by identity), nil for a single task
	State mesospb.TaskState
	// Alive says its container survived the agent's restart.
	Alive bool
}

// ReattachGroup is a task group (or a single task, as a group of one) a
// new default executor takes over: its tasks that are not terminal.
type ReattachGroup struct {
	Tasks []mesospb.TaskInfo
	// Alive says every one of its containers survived; otherwise the
	// group is lost whole: a task group runs whole or not at all.
	Alive bool
}

// PlanReattach groups the recovered tasks of a default executor run for
// reattachment (Mesos's default executor recovers a group as a whole):
// one ReattachGroup per group (or single task) with a task that is not
// terminal, in the order of tasks, holding the group's tasks that are
// not terminal. Terminal tasks are left as they are: their updates are
// already in their streams.
func PlanReattach(tasks []ReattachTask) []ReattachGroup {
	byID := make(map[string]*ReattachTask, len(tasks))
	for i := range tasks {
		byID[tasks[i].Info.TaskID.Value] = &tasks[i]
	}
	var out []ReattachGroup
	seen := map[*mesospb.TaskGroupInfo]bool{}
	for i := range tasks {
		t := &tasks[i]
		if Terminal(t.State) || seen[t.Group] {
			continue
		}
		if t.Group == nil {
			out = append(out, ReattachGroup{Tasks: []mesospb.TaskInfo{*t.Info}, Alive: t.Alive})
			continue
		}
		seen[t.Group] = true
		g := ReattachGroup{Alive: true}
		for j := range t.Group.Tasks {
			r := byID[t.Group.Tasks[j].TaskID.Value]
			if r == nil || Terminal(r.State) {
				continue
			}
			g.Tasks = append(g.Tasks, t.Group.Tasks[j])
			g.Alive = g.Alive && r.Alive
		}
		out = append(out, g)
	}
	return out
}

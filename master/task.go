package master

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/resources"
)

// task is the master's record of a task: what was launched and the latest
// state the agent reported.
type task struct {
	id        string
	framework string
	agent     string
	executor  string // "" for a command task
	info      mesospb.TaskInfo
	resources resources.Resources

	state    mesospb.TaskState // latest state known on the agent
	statuses []mesospb.TaskStatus
	// The latest status update forwarded to the framework (Mesos's
	// status_update_state and status_update_uuid), once there is one:
	// reconciliation answers its state, never one the framework has not
	// been sent yet (the agent's latest may be ahead). acked: the
	// framework has acknowledged it.
	forwarded   bool
	updateState mesospb.TaskState
	updateUUID  []byte
	acked       bool
}

func (t *task) key() string { return t.framework + "/" + t.id }

func (t *task) terminal() bool { return isTerminal(t.state) }

func isTerminal(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST,
		mesospb.TASK_ERROR, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// proto is the task as the operator API and re-registration report it.
func (t *task) proto() mesospb.Task {
	p := mesospb.Task{
		Name:        t.info.Name,
		TaskID:      t.info.TaskID,
		FrameworkID: mesospb.FrameworkID{Value: t.framework},
		AgentID:     mesospb.AgentID{Value: t.agent},
		State:       t.state.Enum(),
		Resources:   t.info.Resources,
		Statuses:    slices.Clone(t.statuses), // appendStatus reorders t.statuses in place
		Labels:      t.info.Labels,
		Discovery:   t.info.Discovery,
		Container:   t.info.Container,
		HealthCheck: t.info.HealthCheck,
		KillPolicy:  t.info.KillPolicy,
		Limits:      t.info.Limits,
	}
	if t.executor != "" {
		p.ExecutorID = &mesospb.ExecutorID{Value: t.executor}
	}
	if t.forwarded {
		p.StatusUpdateState = t.updateState.Enum()
		p.StatusUpdateUUID = t.updateUUID
	}
	if t.info.Command != nil {
		p.User = t.info.Command.User
	}
	return p
}

// masterStatus is a status the master itself generates (reconciliation, a
// task it refused or lost). It carries no uuid: schedulers do not
// acknowledge it and nobody retries it.
func (c *core) masterStatus(taskID, agentID string, state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string) mesospb.TaskStatus {
	st := mesospb.TaskStatus{
		TaskID:    mesospb.TaskID{Value: taskID},
		State:     state.Enum(),
		Source:    mesospb.TaskStatus_SOURCE_MASTER.Enum(),
		Reason:    reason.Enum(),
		Timestamp: ptr(float64(c.now.UnixNano()) / 1e9),
	}
	if msg != "" {
		st.Message = ptr(msg)
	}
	if agentID != "" {
		st.AgentID = &mesospb.AgentID{Value: agentID}
	}
	return st
}

// masterTaskStatus is masterStatus for a task the master knows, naming
// its agent and, as Mesos's createStatusUpdate, its executor.
func (c *core) masterTaskStatus(t *task, state mesospb.TaskState, reason mesospb.TaskStatus_Reason, msg string) mesospb.TaskStatus {
	st := c.masterStatus(t.id, t.agent, state, reason, msg)
	if t.executor != "" {
		st.ExecutorID = &mesospb.ExecutorID{Value: t.executor}
	}
	return st
}

func (c *core) sendUpdate(fw *framework, st mesospb.TaskStatus) {
	c.met.taskStates[st.GetState()]++
	c.sendScheduler(fw, &schedulerpb.Event{
		Type:   schedulerpb.Event_UPDATE.Enum(),
		Update: &schedulerpb.Event_Update{Status: st},
	})
}

// statusUpdate handles a task status update from an agent.
func (c *core) statusUpdate(a *agent, u *internalpb.Call_StatusUpdate) error {
	st := u.Status
	if st.State == nil {
		return fmt.Errorf("%w: status update without a state", ErrInvalidCall)
	}
	fw := c.frameworks[u.FrameworkID.Value]
	t := a.tasks[u.FrameworkID.Value+"/"+st.TaskID.Value]
	if t != nil {
		wasTerminal := t.terminal()
		latest := st.GetState()
		if u.LatestState != nil {
			latest = u.GetLatestState()
		}
		// As Mesos (Master::updateTask), a terminal state is final.
		if !wasTerminal {
			t.state = latest
		}
		t.statuses = appendStatus(t.statuses, st)
		if st.UUID != nil {
			t.forwarded, t.acked = true, false
			t.updateState, t.updateUUID = st.GetState(), st.UUID
		}
		if !wasTerminal && t.terminal() {
			c.taskEnded(a, t)
		}
		if st.UUID == nil && t.terminal() {
			c.forgetTask(a, t) // nothing will acknowledge it
		}
	}
	// As Mesos (evolve of StatusUpdateMessage), the update names its agent
	// and executor and carries a timestamp, whatever the status holds.
	st.AgentID = &mesospb.AgentID{Value: a.id}
	if u.ExecutorID != nil && st.ExecutorID == nil {
		st.ExecutorID = u.ExecutorID
	}
	if st.Timestamp == nil {
		st.Timestamp = ptr(seconds(c.now))
	}
	if t != nil {
		c.emitTaskUpdated(t, st)
	}
	if fw != nil {
		c.sendUpdate(fw, st)
	}
	return nil
}

// appendStatus keeps a task's status history short: the latest status of
// each state, as Mesos keeps only what reconciliation and the UI need.
func appendStatus(ss []mesospb.TaskStatus, st mesospb.TaskStatus) []mesospb.TaskStatus {
	// The kept copy drops the status's data, which may be large and which
	// the framework has been sent already (Mesos's Master::updateTask,
	// MESOS-1746).
	st.Data = nil
	for i := range ss {
		if ss[i].GetState() == st.GetState() {
			ss = append(ss[:i], ss[i+1:]...)
			break
		}
	}
	return append(ss, st)
}

// taskEnded returns a task's resources once it reached a terminal state.
func (c *core) taskEnded(a *agent, t *task) {
	c.countTaskEnded(t.state)
	c.recover(t.framework, a.id, t.resources, 0)
}

// forgetTask moves a terminal task that needs no more acknowledgement to
// its framework's completed list.
func (c *core) forgetTask(a *agent, t *task) {
	delete(a.tasks, t.key())
	fw := c.frameworks[t.framework]
	if fw == nil {
		return
	}
	delete(fw.tasks, t.id)
	c.completeTask(fw, t)
}

// completeTask appends t to fw's completed tasks. The list is trimmed in
// batches: it grows to twice its bound, then keeps the newest
// MaxCompletedTasksPerFramework, so a completed task costs O(1) amortized
// rather than a copy of the list. Readers take recentCompleted.
func (c *core) completeTask(fw *framework, t *task) {
	fw.completed = append(fw.completed, t)
	if limit := c.cfg.MaxCompletedTasksPerFramework; len(fw.completed) > 2*limit {
		n := copy(fw.completed, fw.completed[len(fw.completed)-limit:])
		clear(fw.completed[n:])
		fw.completed = fw.completed[:n]
	}
}

// recentCompleted is the newest limit tasks of fw's completed list,
// oldest first (the list itself may hold up to twice as many).
func (fw *framework) recentCompleted(limit int) []*task {
	return fw.completed[max(0, len(fw.completed)-limit):]
}

// acknowledge forwards a framework's acknowledgement to the agent holding
// the update, and forgets a terminal task once its last update is
// acknowledged.
func (c *core) acknowledge(fw *framework, ack *schedulerpb.Call_Acknowledge) error {
	if len(ack.UUID) == 0 {
		return fmt.Errorf("%w: acknowledge without a uuid", ErrInvalidCall)
	}
	a := c.agents[ack.AgentID.Value]
	if a == nil {
		return nil // the agent is gone; its updates went with it
	}
	if t := a.tasks[fw.id+"/"+ack.TaskID.Value]; t != nil && !t.acked && bytes.Equal(t.updateUUID, ack.UUID) {
		t.acked = true
		if isTerminal(t.updateState) {
			c.forgetTask(a, t)
		}
	}
	c.sendAgent(a, &internalpb.Event{
		Type: internalpb.Event_ACKNOWLEDGE.Enum(),
		Acknowledge: &internalpb.Event_Acknowledge{
			FrameworkID: mesospb.FrameworkID{Value: fw.id},
			TaskID:      ack.TaskID,
			UUID:        ack.UUID,
		},
	})
	return nil
}

// kill asks the task's agent to kill it. As Mesos (Master::kill), the kill
// of a task the master does not know is answered by reconciling that task,
// and one naming another agent than the task's is ignored.
func (c *core) kill(fw *framework, k *schedulerpb.Call_Kill) {
	agentID := ""
	if k.AgentID != nil {
		agentID = k.AgentID.Value
	}
	t := fw.tasks[k.TaskID.Value]
	if t == nil {
		c.reconcileTask(fw, k.TaskID.Value, agentID)
		return
	}
	if agentID != "" && agentID != t.agent {
		c.log.Warn("kill names another agent than the task's; ignored", "framework", fw.id, "task", t.id, "agent", agentID)
		return
	}
	a := c.agents[t.agent]
	if a == nil || a.stream == "" {
		return // the agent will be told after it re-registers, or declared lost
	}
	c.sendAgent(a, &internalpb.Event{
		Type: internalpb.Event_KILL_TASK.Enum(),
		KillTask: &internalpb.Event_KillTask{
			FrameworkID: mesospb.FrameworkID{Value: fw.id},
			TaskID:      k.TaskID,
			KillPolicy:  k.KillPolicy,
		},
	})
}

// unknownTaskState is what the master answers for a task it does not know:
// TASK_UNKNOWN for a partition-aware framework, TASK_LOST otherwise.
func (c *core) unknownTaskState(fw *framework) mesospb.TaskState {
	if fw.partitionAware() {
		return mesospb.TASK_UNKNOWN
	}
	return mesospb.TASK_LOST
}

// reconcile answers RECONCILE as Mesos (Master::reconcile) does: every
// task of the framework (implicit), or the listed ones (explicit), with
// REASON_RECONCILIATION, SOURCE_MASTER and no uuid (nothing to
// acknowledge).
func (c *core) reconcile(fw *framework, r *schedulerpb.Call_Reconcile) {
	if r == nil || len(r.Tasks) == 0 {
		for _, id := range sortedKeys(fw.tasks) {
			c.sendUpdate(fw, c.reconciliationStatus(fw.tasks[id]))
		}
		return
	}
	for _, rt := range r.Tasks {
		agentID := ""
		if rt.AgentID != nil {
			agentID = rt.AgentID.Value
		}
		c.reconcileTask(fw, rt.TaskID.Value, agentID)
	}
}

// reconcileTask answers the explicit reconciliation of one task: its
// latest state when the master knows it; for a task it does not know,
// TASK_GONE when the task was said to be on an agent the master has (the
// agent would have reported it), else TASK_UNKNOWN; TASK_LOST instead of
// either for a framework that is not PARTITION_AWARE.
func (c *core) reconcileTask(fw *framework, taskID, agentID string) {
	if t := fw.tasks[taskID]; t != nil {
		c.sendUpdate(fw, c.reconciliationStatus(t))
		return
	}
	if (agentID != "" && c.isRecovered(agentID)) || (agentID == "" && len(c.reg.recovered) > 0) {
		// Mesos's case (2): the task may be on an agent recovered from the
		// registry that has not re-registered yet. No answer: the
		// framework asks again, and hears of the task once the agent is
		// back or marked unreachable.
		c.log.Info("dropping the reconciliation of an unknown task: agents recovered from the registry have not re-registered yet",
			"framework", fw.id, "task", taskID, "agent", agentID)
		return
	}
	if agentID != "" && c.agents[agentID] != nil {
		state := mesospb.TASK_LOST
		if fw.partitionAware() {
			state = mesospb.TASK_GONE
		}
		c.sendUpdate(fw, c.masterStatus(taskID, agentID, state, mesospb.TaskStatus_REASON_RECONCILIATION,
			"Reconciliation: Task is unknown to the agent"))
		return
	}
	if c.reconcileRemoved(fw, taskID, agentID) {
		return // the agent was marked gone or is unreachable (operator_agents.go)
	}
	c.sendUpdate(fw, c.masterStatus(taskID, agentID, c.unknownTaskState(fw), mesospb.TaskStatus_REASON_RECONCILIATION,
		"Reconciliation: Task is unknown"))
}

// reconciliationStatus is a known task's state as Mesos's reconciliation
// gives it: that of the latest update forwarded to the framework,
// acknowledged or not (so the answer never runs ahead of the updates the
// agent has yet to deliver), else the latest the agent reported, with the
// health, check and container status of its latest status (not its
// labels).
func (c *core) reconciliationStatus(t *task) mesospb.TaskStatus {
	state := t.state
	if t.forwarded {
		state = t.updateState
	}
	st := c.masterTaskStatus(t, state, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: Latest task state")
	if n := len(t.statuses); n > 0 {
		last := t.statuses[n-1]
		st.Healthy, st.ContainerStatus, st.CheckStatus = last.Healthy, last.ContainerStatus, last.CheckStatus
	}
	return st
}

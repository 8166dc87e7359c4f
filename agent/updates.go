package agent

import (
	"net"
	"os"
	"strings"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/agentcore"
)

// The status update manager's shell: the decisions are
// agentcore.UpdateManager's; here the agent stamps what it adds to an
// update, keeps its task records in step, and does the I/O the manager
// decides on:
// checkpoint writes first, then ACKNOWLEDGED to executors, then the
// updates to the master, and one timer for the manager's next retry.

// statusUpdate takes a status update for a task (from its executor or made
// by the agent): it records the task's new state and queues the update for
// the master. An executor's update is acknowledged to the executor
// (ACKNOWLEDGED) once the agent has it checkpointed, as Mesos's agent does
// (Slave::___statusUpdate): from then on the agent, not the executor, is
// the one that retries it until the framework acknowledges it. A
// duplicate is acknowledged again, so an executor that missed the
// acknowledgement stops resending it.
func (a *Agent) statusUpdate(fwID, execID string, st mesospb.TaskStatus) {
	if a.id != "" {
		st.AgentID = &mesospb.AgentID{Value: a.id}
	}
	if execID != "" && st.ExecutorID == nil {
		st.ExecutorID = &mesospb.ExecutorID{Value: execID}
	}
	if st.Timestamp == nil {
		st.Timestamp = ptr(float64(a.clk.Now().UnixNano()) / 1e9)
	}
	key := agentcore.StreamKey{Framework: fwID, Task: st.TaskID.Value}
	t := a.streamTask(key)
	if t != nil {
		a.addContainerStatus(t, &st)
	}
	u := &internalpb.Call_StatusUpdate{FrameworkID: mesospb.FrameworkID{Value: fwID}, Status: st}
	if st.ExecutorID != nil {
		u.ExecutorID = &mesospb.ExecutorID{Value: st.ExecutorID.Value}
	}
	switch a.updates.Update(u, a.clk.Now()) {
	case agentcore.UpdateDuplicate:
		// The executor resent an update it missed the acknowledgement of.
	case agentcore.UpdateAfterTerminal:
		a.log.Warn("agent: dropping an update for a terminated task", "framework", fwID, "task", st.TaskID.Value, "state", st.GetState().String())
	case agentcore.UpdateTaken:
		// The task's state changes before the update goes out: the
		// master gets it as the update's latest_state.
		if t != nil {
			was := terminal(t.State())
			t.Apply(st)
			if !was && terminal(t.State()) {
				a.met.terminal[t.State()]++
			}
		}
		a.log.Debug("agent: status update", "framework", fwID, "task", st.TaskID.Value, "state", st.GetState().String(), "source", st.GetSource().String())
	}
	a.applyUpdates()
	a.syncUpdateHead(key)
}

// streamTask is the task record of a stream, nil when the agent has none.
func (a *Agent) streamTask(key agentcore.StreamKey) *taskRec {
	if fw := a.tables.Framework(key.Framework); fw != nil {
		return fw.Task(key.Task)
	}
	return nil
}

// syncUpdateHead shows the head of a task's stream in its record (the
// Task's status_update_state and status_update_uuid).
func (a *Agent) syncUpdateHead(key agentcore.StreamKey) {
	t := a.streamTask(key)
	if t == nil {
		return
	}
	if h := a.updates.Head(key); h != nil {
		t.SetHead(h.Status.State, h.Status.UUID)
	} else {
		t.SetHead(nil, nil)
	}
}

// applyUpdates does what the status update manager decided: its
// checkpoint writes, then the executors' acknowledgements, then the
// updates for the master; and sets the timer of its next retry. A failed
// write is logged, and the agent goes on, as it always has.
func (a *Agent) applyUpdates() {
	r := a.updates.Drain()
	for _, w := range r.Writes {
		fw, task := w.Key.Framework, w.Key.Task
		switch w.Op {
		case agentcore.WriteUpdate:
			if err := a.meta.appendUpdate(fw, task, w.Update); err != nil {
				a.log.Error("agent: checkpointing a status update", "task", task, "err", err)
			}
		case agentcore.WriteAck:
			if err := a.meta.appendAck(fw, task, w.UUID); err != nil {
				a.log.Error("agent: checkpointing an acknowledgement", "task", task, "err", err)
			}
		case agentcore.WriteRemove:
			err := a.meta.removeTask(fw, task)
			if err == nil || w.UUID == nil {
				break
			}
			// The ack must survive a restart if the log does: record it.
			a.log.Warn("agent: removing a task's checkpoint", "task", task, "err", err)
			if err := a.meta.appendAck(fw, task, w.UUID); err != nil {
				a.log.Error("agent: checkpointing an acknowledgement", "task", task, "err", err)
			}
			if err := a.meta.removeTask(fw, task); err != nil {
				a.log.Warn("agent: removing a task's checkpoint", "task", task, "err", err)
			}
		}
	}
	for _, ack := range r.ExecutorAcks {
		a.acknowledgeExecutor(ack.Framework, ack.Executor, ack.TaskID, ack.UUID)
	}
	for _, f := range r.Forwards {
		a.sendUpdate(f)
	}
	a.armUpdateRetry()
}

// sendUpdate queues the head of a stream for the master, with the task's
// latest state, as Mesos's agent (Slave::forward) adds it.
func (a *Agent) sendUpdate(f agentcore.UpdateForward) {
	head := f.Update
	if f.Retry {
		a.log.Info("agent: resending an unacknowledged status update", "framework", head.FrameworkID.Value, "task", head.Status.TaskID.Value, "next_retry", f.Next)
	}
	if !a.isRegistered() {
		return // the manager is paused until the agent registers; resent then
	}
	latest := head.Status.GetState()
	if t := a.streamTask(agentcore.StreamKey{Framework: head.FrameworkID.Value, Task: head.Status.TaskID.Value}); t != nil {
		latest = t.State()
	}
	u := *head
	u.LatestState = latest.Enum()
	a.outbox = append(a.outbox, &internalpb.Call{Type: internalpb.Call_STATUS_UPDATE.Enum(), StatusUpdate: &u})
}

// armUpdateRetry sets the one timer that ticks the status update manager
// when its next retry is due.
func (a *Agent) armUpdateRetry() {
	at, ok := a.updates.NextDeadline()
	if ok && a.updateTimer != 0 && at.Equal(a.updateTimerAt) {
		return
	}
	a.tm.cancel(a.updateTimer)
	a.updateTimer = 0
	if !ok {
		return
	}
	a.updateTimerAt = at
	a.updateTimer = a.tm.after(at.Sub(a.clk.Now()), func() {
		a.updateTimer = 0
		now := a.clk.Now()
		if now.Before(at) {
			now = at
		}
		a.updates.Tick(now)
		a.applyUpdates()
	})
}

// pauseUpdates stops the retries while the agent has no master.
func (a *Agent) pauseUpdates() {
	a.updates.Pause()
	a.applyUpdates()
}

// resumeUpdates sends every stream's head after a (re)registration, with
// fresh backoffs.
func (a *Agent) resumeUpdates() {
	a.updates.Resume(a.clk.Now())
	a.applyUpdates()
}

// resumeFramework resends at once, with fresh backoffs, the head of each of
// a framework's streams, when the master says the framework is back
// (UPDATE_FRAMEWORK, sent on its SUBSCRIBE): as Mesos's agent
// (Slave::updateFramework calls the status update manager's resume(),
// "Resuming status updates"), so that a failed-over framework gets its
// pending updates now rather than at the end of a retry backoff that may
// have grown to StatusUpdateRetryMax. Mesos resends every framework's
// pending updates; the others' retries are left as they are here.
func (a *Agent) resumeFramework(fwID string) {
	if fwID == "" || !a.isRegistered() {
		return // sent by resumeUpdates after the next registration
	}
	a.updates.ResumeFramework(fwID, a.clk.Now())
	a.applyUpdates()
}

// acknowledge handles the master's ACKNOWLEDGE: the head of the task's
// stream is done and the next update goes out. A terminal update's
// acknowledgement ends the stream and the task is forgotten.
func (a *Agent) acknowledge(fwID, taskID string, uuid []byte) {
	key := agentcore.StreamKey{Framework: fwID, Task: taskID}
	res := a.updates.Ack(key, uuid, a.clk.Now())
	switch res.Outcome {
	case agentcore.AckNoStream:
		a.log.Warn("agent: acknowledgement for no pending update", "framework", fwID, "task", taskID, "uuid", uuidString(uuid))
		return
	case agentcore.AckDuplicate:
		a.log.Warn("agent: duplicate acknowledgement", "framework", fwID, "task", taskID, "uuid", uuidString(uuid))
		return
	case agentcore.AckUnexpected:
		a.log.Warn("agent: acknowledgement for an update that is not the pending one", "framework", fwID, "task", taskID, "uuid", uuidString(uuid))
		return
	}
	// The executor had its ACKNOWLEDGED when the agent took the update.
	a.applyUpdates()
	a.syncUpdateHead(key)
	if res.Outcome == agentcore.AckClosed {
		if res.Dropped > 0 {
			a.log.Warn("agent: dropping updates queued after a terminal one", "framework", fwID, "task", taskID, "dropped", res.Dropped)
		}
		if t := a.streamTask(key); t != nil {
			a.forgetTask(t)
		}
	}
}

func (a *Agent) acknowledgeExecutor(fwID, execID string, taskID mesospb.TaskID, uuid []byte) {
	e := a.executor(fwID, execID)
	if e == nil || e.stream == nil {
		return // it resends the update when it subscribes again, and is answered then
	}
	a.sendExecutor(e, &executorpb.Event{
		Type:         executorpb.Event_ACKNOWLEDGED.Enum(),
		Acknowledged: &executorpb.Event_Acknowledged{TaskID: taskID, UUID: uuid},
	})
}

// addContainerStatus adds to a task's update what Mesos's agent adds
// (Slave::statusUpdate and _statusUpdate) to every update of a task that
// reached its executor, whatever its state or source: the status of the
// task's container, merged into what the executor set. Updates of tasks
// still queued, the agent's TASK_DROPPED and TASK_LOST, and the updates
// the agent makes once the executor's containers are gone get none, as
// in Mesos, whose containerizer knows no status for them.
//
// The container is the executor's run (ContainerID = the run's ID), or,
// for a task of a task group under the default executor, the task's
// container nested in it, as Mesos's default executor names it. Tasks
// share the host's network, so network_infos holds the agent's IP
// (Config.IP), as Mesos's agent fills it in when no network isolator
// did. executor_pid is the agent's own process for in-process executors;
// for an executor process it is left out, as the containerizer does not
// say (Mesos gives it). cgroup_info is left out.
func (a *Agent) addContainerStatus(t *taskRec, st *mesospb.TaskStatus) {
	e := t.Run()
	switch {
	case e == nil || t.Queued() || e.State() == execTerminated:
		return
	case st.GetSource() == mesospb.TaskStatus_SOURCE_AGENT &&
		(st.GetState() == mesospb.TASK_DROPPED || st.GetState() == mesospb.TASK_LOST):
		return
	}
	// A copy: an in-process executor still holds the status it sent.
	cs := &mesospb.ContainerStatus{}
	if st.ContainerStatus != nil {
		*cs = *st.ContainerStatus
	}
	if cs.ContainerID == nil {
		cs.ContainerID = a.taskContainerID(e, t)
	}
	if cs.ExecutorPid == nil && !e.Kind().Process() {
		cs.ExecutorPid = ptr(uint32(os.Getpid()))
	}
	if len(cs.NetworkInfos) == 0 {
		addr := mesospb.NetworkInfo_IPAddress{IPAddress: ptr(a.cfg.IP)}
		if ip := net.ParseIP(a.cfg.IP); ip != nil && ip.To4() == nil {
			addr.Protocol = mesospb.NetworkInfo_IPv6.Enum()
		}
		cs.NetworkInfos = []mesospb.NetworkInfo{{IPAddresses: []mesospb.NetworkInfo_IPAddress{addr}}}
	}
	st.ContainerStatus = cs
}

// taskContainerID is the ID of the container a task runs in, as Mesos
// reports it: the executor's container, or for a task group's task under
// the default executor its own container nested in the executor's (the
// way GET_CONTAINERS shows it).
func (a *Agent) taskContainerID(e *agentcore.Run, t *taskRec) *mesospb.ContainerID {
	run := &mesospb.ContainerID{Value: e.ContainerID()}
	if e.Kind() != kindDefault {
		return run
	}
	nested := strings.TrimPrefix(executor.TaskContainerID(e.ContainerID(), t.Info().TaskID), e.ContainerID()+".")
	return &mesospb.ContainerID{Value: nested, Parent: run}
}

package agent

import (
	"bytes"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/executor"
)

// The status update manager, as Mesos's: every task has a stream of
// updates; the head of each stream is sent to the master and resent with
// backoff until the master forwards the framework's acknowledgement of its
// uuid, then the next is sent. Streams are checkpointed (an append-only log
// of updates and acknowledgements per task), so a restarted agent resends
// what was not acknowledged.

type streamKey struct{ framework, task string }

type updateStream struct {
	key      streamKey
	pending  []*internalpb.Call_StatusUpdate // head first; the head is in flight
	received map[string]bool                 // uuids of every update taken
	acked    map[string]bool                 // uuids acknowledged
	// terminated is set once a terminal update is acknowledged: the stream
	// takes no more updates and is removed.
	terminated bool
	timer      timerID
	backoff    time.Duration
}

func newUpdateStream(key streamKey) *updateStream {
	return &updateStream{key: key, received: map[string]bool{}, acked: map[string]bool{}}
}

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
	key := streamKey{fwID, st.TaskID.Value}
	s := a.streams[key]
	if s == nil {
		s = newUpdateStream(key)
		a.streams[key] = s
	}
	id := string(st.UUID)
	ackExecutor := func() {
		if st.GetSource() == mesospb.TaskStatus_SOURCE_EXECUTOR && st.ExecutorID != nil {
			a.acknowledgeExecutor(fwID, st.ExecutorID.Value, st.TaskID, st.UUID)
		}
	}
	switch {
	case s.acked[id], s.received[id]:
		// The executor resent an update it missed the acknowledgement of.
		ackExecutor()
		return
	case s.terminated:
		a.log.Warn("agent: dropping an update for a terminated task", "framework", fwID, "task", st.TaskID.Value, "state", st.GetState().String())
		ackExecutor() // so that it stops resending it, as Mesos
		return
	}
	if fw := a.frameworks[fwID]; fw != nil {
		if t := fw.tasks[st.TaskID.Value]; t != nil {
			a.addContainerStatus(t, &st)
		}
	}
	u := &internalpb.Call_StatusUpdate{FrameworkID: mesospb.FrameworkID{Value: fwID}, Status: st}
	if st.ExecutorID != nil {
		u.ExecutorID = &mesospb.ExecutorID{Value: st.ExecutorID.Value}
	}
	if fw := a.frameworks[fwID]; fw != nil {
		if t := fw.tasks[st.TaskID.Value]; t != nil {
			was := terminal(t.state)
			a.updateTaskState(t, st)
			if !was && terminal(t.state) {
				a.met.terminal[t.state]++
			}
		}
	}
	if err := a.meta.appendUpdate(fwID, st.TaskID.Value, u); err != nil {
		a.log.Error("agent: checkpointing a status update", "task", st.TaskID.Value, "err", err)
	}
	a.log.Debug("agent: status update", "framework", fwID, "task", st.TaskID.Value, "state", st.GetState().String(), "source", st.GetSource().String())
	s.received[id] = true
	ackExecutor()
	s.pending = append(s.pending, u)
	if len(s.pending) == 1 {
		s.backoff = a.cfg.StatusUpdateRetry
		a.forwardUpdate(s)
	}
}

// forwardUpdate sends the head of a stream to the master (when registered)
// and sets its retry timer.
func (a *Agent) forwardUpdate(s *updateStream) {
	a.tm.cancel(s.timer)
	s.timer = 0
	if len(s.pending) == 0 {
		return
	}
	head := s.pending[0]
	latest := head.Status.GetState()
	if fw := a.frameworks[s.key.framework]; fw != nil {
		if t := fw.tasks[s.key.task]; t != nil {
			latest = t.state
			t.updateState, t.updateUUID = head.Status.State, head.Status.UUID
		}
	}
	if !a.registered || a.conn == nil {
		return // resent by resumeUpdates after the next registration
	}
	u := *head
	u.LatestState = latest.Enum()
	a.outbox = append(a.outbox, &internalpb.Call{Type: internalpb.Call_STATUS_UPDATE.Enum(), StatusUpdate: &u})
	s.timer = a.tm.after(s.backoff, func() {
		s.timer = 0
		s.backoff = min(2*s.backoff, a.cfg.StatusUpdateRetryMax)
		a.log.Info("agent: resending an unacknowledged status update", "framework", s.key.framework, "task", s.key.task, "next_retry", s.backoff)
		a.forwardUpdate(s)
	})
}

// pauseUpdates stops the retries while the agent has no master.
func (a *Agent) pauseUpdates() {
	for _, s := range a.streams {
		a.tm.cancel(s.timer)
		s.timer = 0
	}
}

// resumeUpdates sends every stream's head after a (re)registration, with
// fresh backoffs.
func (a *Agent) resumeUpdates() { a.resumeStreams("") }

// resumeFramework resends at once, with fresh backoffs, the head of each of
// a framework's streams, when the master says the framework is back
// (UPDATE_FRAMEWORK, sent on its SUBSCRIBE): as Mesos's agent
// (Slave::updateFramework calls the status update manager's resume(),
// "Resuming status updates"), so that a failed-over framework gets its
// pending updates now rather than at the end of a retry backoff that may
// have grown to StatusUpdateRetryMax. Mesos resends every framework's
// pending updates; the others' retries are left as they are here.
func (a *Agent) resumeFramework(fwID string) {
	if fwID == "" || !a.registered {
		return // sent by resumeUpdates after the next registration
	}
	a.resumeStreams(fwID)
}

// resumeStreams sends the head of every stream with pending updates (of
// one framework, or of all when fwID is ""), in a stable order.
func (a *Agent) resumeStreams(fwID string) {
	keys := make([]streamKey, 0, len(a.streams))
	for k, s := range a.streams {
		if len(s.pending) > 0 && (fwID == "" || k.framework == fwID) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].framework != keys[j].framework {
			return keys[i].framework < keys[j].framework
		}
		return keys[i].task < keys[j].task
	})
	for _, k := range keys {
		s := a.streams[k]
		s.backoff = a.cfg.StatusUpdateRetry
		a.forwardUpdate(s)
	}
}

// acknowledge handles the master's ACKNOWLEDGE: the head of the task's
// stream is done and the next update goes out. A terminal update's acknowledgement ends the stream and
// the task is forgotten.
func (a *Agent) acknowledge(fwID, taskID string, uuid []byte) {
	key := streamKey{fwID, taskID}
	s := a.streams[key]
	if s == nil || len(s.pending) == 0 {
		a.log.Warn("agent: acknowledgement for no pending update", "framework", fwID, "task", taskID, "uuid", uuidString(uuid))
		return
	}
	head := s.pending[0]
	if !bytes.Equal(head.Status.UUID, uuid) {
		a.log.Warn("agent: acknowledgement for an update that is not the pending one", "framework", fwID, "task", taskID, "uuid", uuidString(uuid))
		return
	}
	// The acknowledgement of a terminal update ends the stream, and the
	// stream's checkpoint with it: removing the log records the ack as
	// surely as an 'A' record would, so the record is written only when
	// the stream goes on (or the removal fails).
	ended := s.terminated || terminal(head.Status.GetState())
	removed := false
	if ended {
		if err := a.meta.removeTask(fwID, taskID); err != nil {
			a.log.Warn("agent: removing a task's checkpoint", "task", taskID, "err", err)
		} else {
			removed = true
		}
	}
	if !removed {
		if err := a.meta.appendAck(fwID, taskID, uuid); err != nil {
			a.log.Error("agent: checkpointing an acknowledgement", "task", taskID, "err", err)
		}
	}
	s.pending[0] = nil
	s.pending = s.pending[1:]
	s.acked[string(uuid)] = true
	a.tm.cancel(s.timer)
	s.timer = 0
	// The executor had its ACKNOWLEDGED when the agent took the update.
	var t *taskRec
	if fw := a.frameworks[fwID]; fw != nil {
		t = fw.tasks[taskID]
	}
	if t != nil {
		t.updateState, t.updateUUID = nil, nil
	}
	if terminal(head.Status.GetState()) {
		s.terminated = true
	}
	if s.terminated {
		if len(s.pending) > 0 {
			a.log.Warn("agent: dropping updates queued after a terminal one", "framework", fwID, "task", taskID, "dropped", len(s.pending))
		}
		delete(a.streams, key)
		if !removed {
			if err := a.meta.removeTask(fwID, taskID); err != nil {
				a.log.Warn("agent: removing a task's checkpoint", "task", taskID, "err", err)
			}
		}
		if t != nil {
			a.forgetTask(t)
		}
		return
	}
	s.backoff = a.cfg.StatusUpdateRetry
	a.forwardUpdate(s)
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
	e := t.exec
	switch {
	case e == nil || t.queued || e.state == execTerminated:
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
	if cs.ExecutorPid == nil && !e.kind.process() {
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
func (a *Agent) taskContainerID(e *executorRec, t *taskRec) *mesospb.ContainerID {
	run := &mesospb.ContainerID{Value: e.containerID}
	if e.kind != kindDefault {
		return run
	}
	nested := strings.TrimPrefix(executor.TaskContainerID(e.containerID, t.info.TaskID), e.containerID+".")
	return &mesospb.ContainerID{Value: nested, Parent: run}
}

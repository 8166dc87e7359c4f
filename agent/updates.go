package agent

import (
	"bytes"
	"sort"
	"time"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
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
// the master.
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
	switch {
	case s.acked[id]:
		// The executor resent an update it missed the acknowledgement of.
		if st.GetSource() == mesospb.TaskStatus_SOURCE_EXECUTOR {
			a.acknowledgeExecutor(fwID, execID, st.TaskID, st.UUID)
		}
		return
	case s.received[id]:
		return // a duplicate still in flight
	case s.terminated:
		a.log.Warn("agent: dropping an update for a terminated task", "framework", fwID, "task", st.TaskID.Value, "state", st.GetState().String())
		return
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
func (a *Agent) resumeUpdates() {
	keys := make([]streamKey, 0, len(a.streams))
	for k, s := range a.streams {
		if len(s.pending) > 0 {
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
// stream is done, the executor learns it (ACKNOWLEDGED), and the next
// update goes out. A terminal update's acknowledgement ends the stream and
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
	if head.Status.GetSource() == mesospb.TaskStatus_SOURCE_EXECUTOR && head.ExecutorID != nil {
		a.acknowledgeExecutor(fwID, head.ExecutorID.Value, head.Status.TaskID, uuid)
	}
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

package agentcore

import (
	"bytes"
	"container/heap"
	"sort"
	"time"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// UpdateManager is the status update manager's decisions, as Mesos's
// (src/status_update_manager): every task has a stream of updates, the
// head of each stream is in flight to the master, resent with backoff
// until the framework's acknowledgement of its uuid comes back, and only
// then does the next update of the task go out, so a framework sees each
// task's updates in order, each at least once.
//
// It is pure, as the master's StateMachine is: no goroutines, no I/O, no
// clock. Its inputs are method calls with the time in them (update, ack,
// tick, pause, resume, recover); what it decided accumulates until drain
// returns it as an UpdateReady. The agent's loop owns it and does the I/O
// (updates.go): it makes every checkpoint write of a Ready before the
// executor acknowledgements and the forwards of that Ready, which is what
// makes "checkpoint before forward" hold. A test drives it with no agent
// at all (updates_test.go).
type UpdateManager struct {
	retry    time.Duration // the first retry interval
	retryMax time.Duration // the bound the interval doubles up to

	// streams holds the streams with updates not yet acknowledged, and
	// the streams whose terminal update was acknowledged while later ones
	// were queued behind it (recovered so). Never replaced: the agent
	// reads it in place (loopState.streams).
	streams map[StreamKey]*stream
	due     dueHeap // the streams whose head waits for a retry, soonest first
	// paused is set while the agent has no master: heads are not
	// forwarded, no retry is due, and resume sends them all.
	paused bool

	out UpdateReady
}

type StreamKey struct{ Framework, Task string }

// stream is one task's stream.
type stream struct {
	key      StreamKey
	pending  []*internalpb.Call_StatusUpdate // head first; the head is in flight
	received map[string]bool                 // uuids of every update taken
	acked    map[string]bool                 // uuids acknowledged
	// terminated is set once a terminal update is acknowledged: the stream
	// takes no more updates and is removed.
	terminated bool
	backoff    time.Duration // the wait after the head's last forward
	deadline   time.Time     // when the head is resent; meaningful while in due
	index      int           // in due, or -1
}

func newStream(key StreamKey) *stream {
	return &stream{key: key, received: map[string]bool{}, acked: map[string]bool{}, index: -1}
}

// UpdateReady is what the manager decided since the last drain. The shell
// does every write, in order, before anything else of the same Ready.
type UpdateReady struct {
	Writes       []UpdateWrite
	ExecutorAcks []ExecutorAck
	Forwards     []UpdateForward
}

func (r UpdateReady) empty() bool {
	return len(r.Writes) == 0 && len(r.ExecutorAcks) == 0 && len(r.Forwards) == 0
}

type WriteOp int

const (
	WriteUpdate WriteOp = iota + 1 // append update to the stream's checkpoint
	WriteAck                       // append the acknowledgement of uuid
	// WriteRemove removes the task's checkpoint with its stream: the
	// stream has ended. uuid, when set, is the acknowledgement that ended
	// it, for a shell that cannot remove to record instead.
	WriteRemove
)

// UpdateWrite is a checkpoint write.
type UpdateWrite struct {
	Op     WriteOp
	Key    StreamKey
	Update *internalpb.Call_StatusUpdate
	UUID   []byte
}

// ExecutorAck says the agent has the update checkpointed (or had it
// already): its executor gets ACKNOWLEDGED and stops resending it.
type ExecutorAck struct {
	Framework, Executor string
	TaskID              mesospb.TaskID
	UUID                []byte
}

// UpdateForward is the head of a stream to send to the master.
type UpdateForward struct {
	Update *internalpb.Call_StatusUpdate
	// Retry says it is a resend for want of an acknowledgement; next is
	// the wait before the one after.
	Retry bool
	Next  time.Duration
}

// UpdateVerdict is what update did with an update.
type UpdateVerdict int

const (
	UpdateTaken         UpdateVerdict = iota + 1
	UpdateDuplicate                   // taken before: its executor is acknowledged again
	UpdateAfterTerminal               // the task's terminal update was acknowledged: dropped
)

// AckOutcome is what ack did with an acknowledgement.
type AckOutcome int

const (
	AckTaken      AckOutcome = iota + 1 // the head is done; the next goes out
	AckClosed                           // a terminal update's: the stream ended
	AckNoStream                         // for a task with no pending update
	AckDuplicate                        // of an update acknowledged before
	AckUnexpected                       // of an update that is not the head
)

// AckResult is what ack did, and for a stream it closed, how many updates
// queued behind the terminal one were dropped.
type AckResult struct {
	Outcome AckOutcome
	Dropped int
}

func NewUpdateManager(retry, retryMax time.Duration) *UpdateManager {
	return &UpdateManager{retry: retry, retryMax: retryMax, streams: map[StreamKey]*stream{}}
}

// update takes a status update, fully formed by the agent, at now. A new
// one is checkpointed, its executor acknowledged, and queued on its
// task's stream; it goes out at once when the stream had nothing in
// flight. An executor's update is acknowledged to the executor whatever
// the verdict, as Mesos's agent does, so that it stops resending it.
func (m *UpdateManager) Update(u *internalpb.Call_StatusUpdate, now time.Time) UpdateVerdict {
	key := StreamKey{u.FrameworkID.Value, u.Status.TaskID.Value}
	s := m.streams[key]
	if s == nil {
		s = newStream(key)
		m.streams[key] = s
	}
	id := string(u.Status.UUID)
	switch {
	case s.acked[id], s.received[id]:
		m.ackExecutor(u)
		return UpdateDuplicate
	case s.terminated:
		m.ackExecutor(u)
		return UpdateAfterTerminal
	}
	m.out.Writes = append(m.out.Writes, UpdateWrite{Op: WriteUpdate, Key: key, Update: u})
	s.received[id] = true
	m.ackExecutor(u)
	s.pending = append(s.pending, u)
	if len(s.pending) == 1 {
		s.backoff = m.retry
		m.forward(s, now, false)
	}
	return UpdateTaken
}

func (m *UpdateManager) ackExecutor(u *internalpb.Call_StatusUpdate) {
	st := &u.Status
	if st.GetSource() != mesospb.TaskStatus_SOURCE_EXECUTOR || st.ExecutorID == nil {
		return
	}
	m.out.ExecutorAcks = append(m.out.ExecutorAcks, ExecutorAck{
		Framework: u.FrameworkID.Value, Executor: st.ExecutorID.Value, TaskID: st.TaskID, UUID: st.UUID,
	})
}

// ack takes the master's ACKNOWLEDGE of uuid for a task's stream at now.
// Only the head's is taken: it is checkpointed, and the next update goes
// out with a fresh backoff; a terminal update's ends the stream, and its
// checkpoint goes with it. Any other is ignored, as Mesos ignores
// duplicate and unexpected acknowledgements.
func (m *UpdateManager) Ack(key StreamKey, uuid []byte, now time.Time) AckResult {
	s := m.streams[key]
	switch {
	case s == nil:
		return AckResult{Outcome: AckNoStream}
	case s.acked[string(uuid)]:
		return AckResult{Outcome: AckDuplicate}
	case len(s.pending) == 0:
		return AckResult{Outcome: AckNoStream}
	case !bytes.Equal(s.pending[0].Status.UUID, uuid):
		return AckResult{Outcome: AckUnexpected}
	}
	head := s.pending[0]
	// The removal of an ended stream's checkpoint records the ack as
	// surely as an ack record would.
	if s.terminated || Terminal(head.Status.GetState()) {
		m.out.Writes = append(m.out.Writes, UpdateWrite{Op: WriteRemove, Key: key, UUID: uuid})
	} else {
		m.out.Writes = append(m.out.Writes, UpdateWrite{Op: WriteAck, Key: key, UUID: uuid})
	}
	s.pending[0] = nil
	s.pending = s.pending[1:]
	s.acked[string(uuid)] = true
	m.unschedule(s)
	if Terminal(head.Status.GetState()) {
		s.terminated = true
	}
	if s.terminated {
		delete(m.streams, key)
		return AckResult{Outcome: AckClosed, Dropped: len(s.pending)}
	}
	s.backoff = m.retry
	m.forward(s, now, false)
	return AckResult{Outcome: AckTaken}
}

// tick resends, at now, the heads whose retry is due, each with its wait
// doubled up to retryMax.
func (m *UpdateManager) Tick(now time.Time) {
	// Taken off the heap first, so that each is resent once per tick
	// whatever its backoff.
	var due []*stream
	for len(m.due) > 0 && !m.due[0].deadline.After(now) {
		due = append(due, heap.Pop(&m.due).(*stream))
	}
	for _, s := range due {
		s.backoff = min(2*s.backoff, m.retryMax)
		m.forward(s, now, true)
	}
}

// pause stops forwarding while the agent has no master.
func (m *UpdateManager) Pause() {
	m.paused = true
	for len(m.due) > 0 {
		m.unschedule(m.due[0])
	}
}

// resume sends the head of every stream at now, with fresh backoffs,
// after the agent (re)registered.
func (m *UpdateManager) Resume(now time.Time) {
	m.paused = false
	m.resumeStreams("", now)
}

// resumeFramework resends at once, with fresh backoffs, the heads of one
// framework's streams: the framework is back (Mesos's agent resumes its
// status update manager on UPDATE_FRAMEWORK), and its pending updates
// need not wait for a backoff that may have grown to retryMax. The other
// frameworks' retries are left as they are. Nothing is sent while paused:
// resume will.
func (m *UpdateManager) ResumeFramework(fw string, now time.Time) {
	if m.paused {
		return
	}
	m.resumeStreams(fw, now)
}

// resumeStreams forwards the head of every stream with pending updates (of
// framework fw, or of all when fw is ""), in a stable order.
func (m *UpdateManager) resumeStreams(fw string, now time.Time) {
	keys := make([]StreamKey, 0, len(m.streams))
	for k, s := range m.streams {
		if len(s.pending) > 0 && (fw == "" || k.Framework == fw) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	for _, k := range keys {
		s := m.streams[k]
		s.backoff = m.retry
		m.forward(s, now, false)
	}
}

// recover rebuilds the streams from their checkpoints, replayed: updates
// acknowledged are done, the others pending in order. A stream whose
// terminal update was acknowledged and that has nothing pending is over:
// its checkpoint is removed. Nothing is forwarded: resume sends the heads
// once the agent has a master.
func (m *UpdateManager) Recover(streams []checkpoint.Stream) {
	for _, l := range streams {
		key := StreamKey{l.FrameworkID, l.TaskID}
		acked := make(map[string]bool, len(l.Acked))
		for _, a := range l.Acked {
			acked[string(a)] = true
		}
		s := newStream(key)
		for _, u := range l.Updates {
			id := string(u.Status.UUID)
			if s.received[id] {
				continue
			}
			s.received[id] = true
			if acked[id] {
				s.acked[id] = true
				if Terminal(u.Status.GetState()) {
					s.terminated = true
				}
			} else {
				s.pending = append(s.pending, u)
			}
		}
		if s.terminated && len(s.pending) == 0 {
			m.out.Writes = append(m.out.Writes, UpdateWrite{Op: WriteRemove, Key: key})
			continue
		}
		s.backoff = m.retry
		m.streams[key] = s
	}
}

// forward sends the head of s at now and schedules its retry after
// s.backoff; while paused it only forgets the retry.
func (m *UpdateManager) forward(s *stream, now time.Time, retry bool) {
	if len(s.pending) == 0 || m.paused {
		m.unschedule(s)
		return
	}
	m.out.Forwards = append(m.out.Forwards, UpdateForward{Update: s.pending[0], Retry: retry, Next: s.backoff})
	s.deadline = now.Add(s.backoff)
	if s.index >= 0 {
		heap.Fix(&m.due, s.index)
	} else {
		heap.Push(&m.due, s)
	}
}

func (m *UpdateManager) unschedule(s *stream) {
	if s.index >= 0 {
		heap.Remove(&m.due, s.index)
	}
}

// head is the update of a task in flight (or waiting for a master), nil
// when it has none.
func (m *UpdateManager) Head(key StreamKey) *internalpb.Call_StatusUpdate {
	if s := m.streams[key]; s != nil && len(s.pending) > 0 {
		return s.pending[0]
	}
	return nil
}

// has says whether a task has a stream.
func (m *UpdateManager) Has(key StreamKey) bool { return m.streams[key] != nil }

// nextDeadline is when tick has something to do next.
func (m *UpdateManager) NextDeadline() (time.Time, bool) {
	if len(m.due) == 0 {
		return time.Time{}, false
	}
	return m.due[0].deadline, true
}

// drain returns and clears what the manager decided.
func (m *UpdateManager) Drain() UpdateReady {
	r := m.out
	m.out = UpdateReady{}
	return r
}

func (k StreamKey) less(o StreamKey) bool {
	if k.Framework != o.Framework {
		return k.Framework < o.Framework
	}
	return k.Task < o.Task
}

// dueHeap orders streams by deadline, then key, so that ties resolve the
// same way every run.
type dueHeap []*stream

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].deadline.Equal(h[j].deadline) {
		return h[i].deadline.Before(h[j].deadline)
	}
	return h[i].key.less(h[j].key)
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	s := x.(*stream)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *dueHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	s.index = -1
	*h = old[:len(old)-1]
	return s
}

// Pending is how many updates wait for the master's acknowledgement, over
// every stream.
func (m *UpdateManager) Pending() int {
	n := 0
	for _, s := range m.streams {
		n += len(s.pending)
	}
	return n
}

// Len is how many streams the manager keeps.
func (m *UpdateManager) Len() int { return len(m.streams) }

// Cleanup drops every stream of a framework the agent forgets, with its
// checkpoint, as Mesos's status update manager does when the agent
// removes a framework: once its executors are gone nobody will
// acknowledge its updates (the master removed it), so they are not
// retried. It returns how many updates were dropped.
func (m *UpdateManager) Cleanup(framework string) int {
	keys := make([]StreamKey, 0)
	for k := range m.streams {
		if k.Framework == framework {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	dropped := 0
	for _, k := range keys {
		s := m.streams[k]
		dropped += len(s.pending)
		m.unschedule(s)
		delete(m.streams, k)
		m.out.Writes = append(m.out.Writes, UpdateWrite{Op: WriteRemove, Key: k})
	}
	return dropped
}

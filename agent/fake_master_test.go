package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
)

var errNotSubscribed = errors.New("fake master: not subscribed")

// fakeMaster implements agent.Master with the channel semantics of the
// links: it records connections and calls, answers REGISTER/REREGISTER
// with REGISTERED/REREGISTERED, closes a stream when the agent cancels it
// or a newer one replaces it, and lets the test push events and end the
// stream. With autoAck it acknowledges every status update at once, as a
// framework would.
type fakeMaster struct {
	mu       sync.Mutex
	autoAck  bool
	pingSecs float64 // announced in REGISTERED; default an hour
	n        int
	cur      *fakeStream
	connects []*internalpb.Call
	calls    []*internalpb.Call
}

type fakeStream struct {
	id     string
	events chan *internalpb.Event
	closed bool
}

func (s *fakeStream) close() {
	if !s.closed {
		s.closed = true
		close(s.events)
	}
}

func (m *fakeMaster) ConnectAgent(ctx context.Context, call *internalpb.Call) (string, <-chan *internalpb.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	s := &fakeStream{id: fmt.Sprintf("stream-%d", m.n), events: make(chan *internalpb.Event, 4096)}
	if m.cur != nil {
		m.cur.close()
	}
	m.cur = s
	m.connects = append(m.connects, call)
	ping := m.pingSecs
	if ping == 0 {
		ping = 3600 // tests that advance the clock must not lose the master
	}
	ev := &internalpb.Event{Registered: &internalpb.Event_Registered{
		PingIntervalSeconds: ptr(ping),
		MaxMissedPings:      ptr(uint32(5)),
	}}
	switch call.GetType() {
	case internalpb.Call_REGISTER:
		ev.Type = internalpb.Event_REGISTERED.Enum()
		ev.Registered.AgentID = mesospb.AgentID{Value: "agent-1"}
	case internalpb.Call_REREGISTER:
		ev.Type = internalpb.Event_REREGISTERED.Enum()
		ev.Registered.AgentID = *call.AgentID
	default:
		return "", nil, fmt.Errorf("fake master: connect with %s", call.GetType())
	}
	s.events <- ev
	context.AfterFunc(ctx, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		s.close()
	})
	return s.id, s.events, nil
}

func (m *fakeMaster) AgentCall(ctx context.Context, streamID string, call *internalpb.Call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || m.cur.id != streamID || m.cur.closed {
		return errNotSubscribed
	}
	m.calls = append(m.calls, call)
	if u := call.StatusUpdate; m.autoAck && u != nil && u.Status.UUID != nil {
		m.cur.events <- ackEvent(u)
	}
	return nil
}

func ackEvent(u *internalpb.Call_StatusUpdate) *internalpb.Event {
	return &internalpb.Event{
		Type: internalpb.Event_ACKNOWLEDGE.Enum(),
		Acknowledge: &internalpb.Event_Acknowledge{
			FrameworkID: u.FrameworkID, TaskID: u.Status.TaskID, UUID: u.Status.UUID,
		},
	}
}

// push sends an event on the current stream.
func (m *fakeMaster) push(ev *internalpb.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil && !m.cur.closed {
		m.cur.events <- ev
	}
}

// endStream ends the current stream from the master's side.
func (m *fakeMaster) endStream() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil {
		m.cur.close()
	}
}

func (m *fakeMaster) setPingInterval(secs float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pingSecs = secs
}

func (m *fakeMaster) setAutoAck(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.autoAck = on
}

func (m *fakeMaster) connections() []*internalpb.Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*internalpb.Call(nil), m.connects...)
}

func (m *fakeMaster) callsOf(t internalpb.Call_Type) []*internalpb.Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*internalpb.Call
	for _, c := range m.calls {
		if c.GetType() == t {
			out = append(out, c)
		}
	}
	return out
}

// updates are the status updates sent for a task, in order.
func (m *fakeMaster) updates(taskID string) []*internalpb.Call_StatusUpdate {
	var out []*internalpb.Call_StatusUpdate
	for _, c := range m.callsOf(internalpb.Call_STATUS_UPDATE) {
		if c.StatusUpdate.Status.TaskID.Value == taskID {
			out = append(out, c.StatusUpdate)
		}
	}
	return out
}

// states are the distinct states of a task's updates, in order.
func (m *fakeMaster) states(taskID string) []mesospb.TaskState {
	var out []mesospb.TaskState
	for _, u := range m.updates(taskID) {
		s := u.Status.GetState()
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// waitUpdate waits for an update of the task in the given state.
func (m *fakeMaster) waitUpdate(t *testing.T, taskID string, state mesospb.TaskState) *internalpb.Call_StatusUpdate {
	t.Helper()
	var found *internalpb.Call_StatusUpdate
	require.Eventually(t, func() bool {
		for _, u := range m.updates(taskID) {
			if u.Status.GetState() == state {
				found = u
				return true
			}
		}
		return false
	}, waitFor, tick, "no %s update for task %s; got %v", state, taskID, m.states(taskID))
	return found
}

const (
	waitFor = 20 * time.Second
	tick    = 5 * time.Millisecond
)

func ptr[T any](v T) *T { return &v }

// harness runs one agent against a fake master, with a fake clock and a
// temporary work directory.
type harness struct {
	t      *testing.T
	fm     *fakeMaster
	clk    *clock.Fake
	dir    string
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan error
}

func h0clock() *clock.Fake { return clock.NewFake(time.Unix(1_700_000_000, 0)) }

func newHarness(t *testing.T, configure ...func(*agent.Config)) *harness {
	t.Helper()
	h := &harness{t: t, fm: &fakeMaster{autoAck: true}, clk: h0clock(), dir: t.TempDir()}
	h.start(configure...)
	return h
}

// start makes and runs an agent on the harness's work directory.
func (h *harness) start(configure ...func(*agent.Config)) {
	t := h.t
	t.Helper()
	cfg := agent.Config{
		Master:    h.fm,
		WorkDir:   h.dir,
		Resources: "cpus:2;mem:1024;disk:1024;ports:[31000-31009]",
		Hostname:  "host-1",
		Clock:     h.clk,
	}
	for _, f := range configure {
		f(&cfg)
	}
	a, err := agent.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	h.a, h.cancel, h.done = a, cancel, make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx) // kill what a failed test left running
		h.cancel()
	})
}

// stop ends Run as an agent crash or restart would, leaving tasks running.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		require.ErrorIs(h.t, err, context.Canceled)
	case <-time.After(waitFor):
		h.t.Fatal("Run did not return")
	}
}

// waitConnects waits until the agent has connected n times.
func (h *harness) waitConnects(n int) []*internalpb.Call {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return len(h.fm.connections()) >= n }, waitFor, tick)
	return h.fm.connections()
}

// waitRegistered waits until the agent is registered.
func (h *harness) waitRegistered() {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		s, err := h.a.State(context.Background())
		return err == nil && s.Registered
	}, waitFor, tick)
}

func (h *harness) state() agent.State {
	h.t.Helper()
	s, err := h.a.State(context.Background())
	require.NoError(h.t, err)
	return s
}

// framework checkpoints, so that its tasks outlive the agent's restarts
// (see nocheckpoint_test.go for one that does not).
var framework = mesospb.FrameworkInfo{User: "", Name: "test", ID: &mesospb.FrameworkID{Value: "fw-1"}, Checkpoint: ptr(true)}

func commandTask(id, command string) mesospb.TaskInfo {
	return mesospb.TaskInfo{
		Name:    "task " + id,
		TaskID:  mesospb.TaskID{Value: id},
		AgentID: mesospb.AgentID{Value: "agent-1"},
		Command: &mesospb.CommandInfo{Value: ptr(command)},
	}
}

func runTask(task mesospb.TaskInfo) *internalpb.Event {
	return &internalpb.Event{
		Type:    internalpb.Event_RUN_TASK.Enum(),
		RunTask: &internalpb.Event_RunTask{Framework: framework, Task: task},
	}
}

func killTask(id string) *internalpb.Event {
	return &internalpb.Event{
		Type:     internalpb.Event_KILL_TASK.Enum(),
		KillTask: &internalpb.Event_KillTask{FrameworkID: *framework.ID, TaskID: mesospb.TaskID{Value: id}},
	}
}

// sandboxFile reads a file of a task's sandbox at Mesos's path.
func (h *harness) sandboxFile(execID, name string) string {
	h.t.Helper()
	matches, err := filepath.Glob(filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1", "executors", execID, "runs", "*", name))
	require.NoError(h.t, err)
	require.Len(h.t, matches, 1, "one run of executor %s", execID)
	b, err := os.ReadFile(matches[0])
	require.NoError(h.t, err)
	return string(b)
}

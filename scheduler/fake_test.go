package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/clock"
)

// errNotSubscribed stands for the master package's ErrNotSubscribed.
var errNotSubscribed = errors.New("fake master: not subscribed")

// fakeMaster implements Master with the channel semantics of the in-process
// link: a bounded channel per subscription, SUBSCRIBED first, closed by the
// master when the stream ends on its side or when the subscriber cancels.
// It records every call and lets a test push events and end streams.
type fakeMaster struct {
	heartbeat float64 // announced in SUBSCRIBED; 0 announces none

	mu            sync.Mutex
	streams       []*fakeStream
	calls         []sentCall
	subscribeErrs []error // returned by the next SUBSCRIBEs, in order
	callErr       error   // returned by every other call when set
}

type sentCall struct {
	streamID string
	call     *schedulerpb.Call
}

type fakeStream struct {
	id        string
	subscribe *schedulerpb.Call

	mu     sync.Mutex
	ch     chan *schedulerpb.Event
	closed bool
}

// send delivers ev, or closes the stream if the subscriber is too slow, as
// the master never blocks on a subscriber.
func (s *fakeStream) send(ev *schedulerpb.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	select {
	case s.ch <- ev:
		return true
	default:
		close(s.ch)
		s.closed = true
		return false
	}
}

func (s *fakeStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		close(s.ch)
		s.closed = true
	}
}

func (s *fakeStream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

var testMasterInfo = mesospb.MasterInfo{ID: "master-1", IP: 0x7f000001, Port: ptr(uint32(5050))}

func (m *fakeMaster) SubscribeScheduler(ctx context.Context, call *schedulerpb.Call) (string, <-chan *schedulerpb.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.subscribeErrs) > 0 {
		err := m.subscribeErrs[0]
		m.subscribeErrs = m.subscribeErrs[1:]
		return "", nil, err
	}
	if call.GetType() != schedulerpb.Call_SUBSCRIBE || call.Subscribe == nil {
		return "", nil, fmt.Errorf("fake master: not a SUBSCRIBE: %v", call)
	}
	// A new subscription supersedes the previous one.
	if n := len(m.streams); n > 0 {
		m.streams[n-1].close()
	}
	s := &fakeStream{
		id:        fmt.Sprintf("stream-%d", len(m.streams)+1),
		subscribe: call,
		ch:        make(chan *schedulerpb.Event, 64),
	}
	id := "fw-1"
	if call.FrameworkID != nil {
		id = call.FrameworkID.Value
	}
	sub := &schedulerpb.Event_Subscribed{FrameworkID: mesospb.FrameworkID{Value: id}, MasterInfo: &testMasterInfo}
	if m.heartbeat > 0 {
		sub.HeartbeatIntervalSeconds = ptr(m.heartbeat)
	}
	s.send(&schedulerpb.Event{Type: schedulerpb.Event_SUBSCRIBED.Enum(), Subscribed: sub})
	m.streams = append(m.streams, s)
	go func() { // the subscriber cancelling ctx ends the stream
		<-ctx.Done()
		s.close()
	}()
	return s.id, s.ch, nil
}

func (m *fakeMaster) SchedulerCall(ctx context.Context, streamID string, call *schedulerpb.Call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.streams)
	if n == 0 || m.streams[n-1].id != streamID || m.streams[n-1].isClosed() {
		return fmt.Errorf("stream %q: %w", streamID, errNotSubscribed)
	}
	if m.callErr != nil {
		return m.callErr
	}
	m.calls = append(m.calls, sentCall{streamID, call})
	if call.GetType() == schedulerpb.Call_TEARDOWN {
		m.streams[n-1].close()
	}
	return nil
}

// push sends ev on the current stream.
func (m *fakeMaster) push(t *testing.T, ev *schedulerpb.Event) {
	t.Helper()
	require.True(t, m.current(t).send(ev), "stream closed")
}

// endStream closes the current stream from the master's side.
func (m *fakeMaster) endStream(t *testing.T) { m.current(t).close() }

func (m *fakeMaster) current(t *testing.T) *fakeStream {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	require.NotEmpty(t, m.streams, "no subscription")
	return m.streams[len(m.streams)-1]
}

func (m *fakeMaster) subscribes() []*schedulerpb.Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*schedulerpb.Call
	for _, s := range m.streams {
		out = append(out, s.subscribe)
	}
	return out
}

func (m *fakeMaster) stream(i int) *fakeStream {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.streams[i]
}

func (m *fakeMaster) sent(types ...schedulerpb.Call_Type) []sentCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sentCall
	for _, c := range m.calls {
		if len(types) == 0 {
			out = append(out, c)
			continue
		}
		for _, t := range types {
			if c.call.GetType() == t {
				out = append(out, c)
			}
		}
	}
	return out
}

// recorder is a Scheduler that records what it is told; hooks, if set, run
// after recording.
type recorder struct {
	hooks Funcs

	mu       sync.Mutex
	log      []string
	fwID     mesospb.FrameworkID
	master   *mesospb.MasterInfo
	offers   [][]mesospb.Offer
	updates  []mesospb.TaskStatus
	rescinds []mesospb.OfferID
	errors   []string
}

func (r *recorder) add(entry string) {
	r.mu.Lock()
	r.log = append(r.log, entry)
	r.mu.Unlock()
}

func (r *recorder) entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

func (r *recorder) has(entry string) bool {
	for _, e := range r.entries() {
		if e == entry {
			return true
		}
	}
	return false
}

func (r *recorder) count(entry string) int {
	n := 0
	for _, e := range r.entries() {
		if e == entry {
			n++
		}
	}
	return n
}

func (r *recorder) Registered(ctx context.Context, d *Driver, id mesospb.FrameworkID, m *mesospb.MasterInfo) {
	r.mu.Lock()
	r.fwID, r.master = id, m
	r.mu.Unlock()
	r.add("registered " + id.Value)
	r.hooks.Registered(ctx, d, id, m)
}

func (r *recorder) Reregistered(ctx context.Context, d *Driver, m *mesospb.MasterInfo) {
	r.add("reregistered")
	r.hooks.Reregistered(ctx, d, m)
}

func (r *recorder) Disconnected(ctx context.Context, d *Driver) {
	r.add("disconnected")
	r.hooks.Disconnected(ctx, d)
}

func (r *recorder) ResourceOffers(ctx context.Context, d *Driver, offers []mesospb.Offer) {
	r.mu.Lock()
	r.offers = append(r.offers, offers)
	r.mu.Unlock()
	r.add(fmt.Sprintf("offers %d", len(offers)))
	r.hooks.ResourceOffers(ctx, d, offers)
}

func (r *recorder) OfferRescinded(ctx context.Context, d *Driver, id mesospb.OfferID) {
	r.mu.Lock()
	r.rescinds = append(r.rescinds, id)
	r.mu.Unlock()
	r.add("rescind " + id.Value)
	r.hooks.OfferRescinded(ctx, d, id)
}

func (r *recorder) StatusUpdate(ctx context.Context, d *Driver, st mesospb.TaskStatus) {
	r.mu.Lock()
	r.updates = append(r.updates, st)
	r.mu.Unlock()
	r.add("update " + st.TaskID.Value)
	r.hooks.StatusUpdate(ctx, d, st)
}

func (r *recorder) FrameworkMessage(ctx context.Context, d *Driver, a mesospb.AgentID, e mesospb.ExecutorID, data []byte) {
	r.add(fmt.Sprintf("message %s %s %s", a.Value, e.Value, data))
	r.hooks.FrameworkMessage(ctx, d, a, e, data)
}

func (r *recorder) AgentLost(ctx context.Context, d *Driver, a mesospb.AgentID) {
	r.add("agent lost " + a.Value)
	r.hooks.AgentLost(ctx, d, a)
}

func (r *recorder) ExecutorLost(ctx context.Context, d *Driver, a mesospb.AgentID, e mesospb.ExecutorID, status int) {
	r.add(fmt.Sprintf("executor lost %s %s %d", a.Value, e.Value, status))
	r.hooks.ExecutorLost(ctx, d, a, e, status)
}

func (r *recorder) Error(ctx context.Context, d *Driver, msg string) {
	r.mu.Lock()
	r.errors = append(r.errors, msg)
	r.mu.Unlock()
	r.add("error " + msg)
	r.hooks.Error(ctx, d, msg)
}

// harness runs a Driver against a fakeMaster on a fake clock.
type harness struct {
	t      *testing.T
	m      *fakeMaster
	clk    *clock.Fake
	rec    *recorder
	d      *Driver
	cancel context.CancelFunc
	done   chan error

	once   sync.Once
	runErr error
}

const (
	waitFor = 5 * time.Second
	tick    = time.Millisecond
)

func testInfo() mesospb.FrameworkInfo {
	return mesospb.FrameworkInfo{
		User:            "nobody",
		Name:            "test-framework",
		FailoverTimeout: ptr(60.0),
		Roles:           []string{"web", "batch"},
		Capabilities: []mesospb.FrameworkInfo_Capability{
			{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()},
		},
	}
}

// newHarness builds the driver; start runs it.
func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	return newHarnessInfo(t, testInfo(), opts...)
}

func newHarnessInfo(t *testing.T, info mesospb.FrameworkInfo, opts ...Option) *harness {
	t.Helper()
	h := &harness{
		t:   t,
		m:   &fakeMaster{heartbeat: 15},
		clk: clock.NewFake(time.Unix(1_700_000_000, 0)),
		rec: &recorder{},
	}
	all := append([]Option{WithMaster(h.m), WithClock(h.clk)}, opts...)
	d, err := NewDriver(h.rec, info, all...)
	require.NoError(t, err)
	h.d = d
	return h
}

func (h *harness) start() *harness {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		h.result()
	})
	return h
}

// startRegistered runs the driver and waits for Registered.
func startRegistered(t *testing.T, opts ...Option) *harness {
	t.Helper()
	h := newHarness(t, opts...).start()
	h.waitEntry("registered fw-1")
	return h
}

// result waits (bounded) for Run to return and gives its error.
func (h *harness) result() error {
	h.t.Helper()
	h.once.Do(func() {
		select {
		case h.runErr = <-h.done:
		case <-time.After(waitFor):
			h.t.Fatal("Run did not return")
		}
	})
	return h.runErr
}

func (h *harness) returned() bool {
	select {
	case err := <-h.done:
		h.once.Do(func() { h.runErr = err })
		return true
	default:
		return false
	}
}

func (h *harness) waitEntry(entry string) {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return h.rec.has(entry) }, waitFor, tick,
		"waiting for %q; have %q", entry, h.rec.entries())
}

// waitCount waits until entry has been recorded n times.
func (h *harness) waitCount(entry string, n int) {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return h.rec.count(entry) == n }, waitFor, tick,
		"waiting for %d x %q; have %q", n, entry, h.rec.entries())
}

// waitTimers waits until the driver has set exactly n timers.
func (h *harness) waitTimers(n int) {
	h.t.Helper()
	require.Eventually(h.t, func() bool { return h.clk.Waiters() == n }, waitFor, tick,
		"waiting for %d timers", n)
}

// passBackoff lets the pending re-subscription backoff timer fire.
func (h *harness) passBackoff() {
	h.t.Helper()
	h.waitTimers(1)
	h.clk.Advance(DefaultBackoffMax)
}

func ptr[T any](v T) *T { return &v }

func event(t schedulerpb.Event_Type) *schedulerpb.Event {
	return &schedulerpb.Event{Type: t.Enum()}
}

func offersEvent(ids ...string) *schedulerpb.Event {
	ev := event(schedulerpb.Event_OFFERS)
	ev.Offers = &schedulerpb.Event_Offers{}
	for _, id := range ids {
		ev.Offers.Offers = append(ev.Offers.Offers, mesospb.Offer{
			ID:          mesospb.OfferID{Value: id},
			FrameworkID: mesospb.FrameworkID{Value: "fw-1"},
			AgentID:     mesospb.AgentID{Value: "agent-1"},
			Hostname:    "host-1",
		})
	}
	return ev
}

func updateEvent(task string, uuid []byte) *schedulerpb.Event {
	ev := event(schedulerpb.Event_UPDATE)
	ev.Update = &schedulerpb.Event_Update{Status: mesospb.TaskStatus{
		TaskID:  mesospb.TaskID{Value: task},
		State:   mesospb.TASK_RUNNING.Enum(),
		AgentID: &mesospb.AgentID{Value: "agent-1"},
		UUID:    uuid,
	}}
	return ev
}

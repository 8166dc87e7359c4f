package scheduler_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// These tests run the driver against real masters served over HTTP, and
// real agents linked to them over HTTP.

const httpWait = 30 * time.Second

func ptr[T any](v T) *T { return &v }

// swappable serves whatever handler it holds now, so a test can put a new
// master behind the same URL.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (s *swappable) set(h http.Handler) { s.h.Store(&h) }

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

// runMaster runs a master until the test ends or stop is called.
func runMaster(t *testing.T, cfg master.Config) (m *master.Master, stop func()) {
	t.Helper()
	cfg.AllocationInterval = 50 * time.Millisecond
	m, err := master.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return m, stop
}

// serve serves h until the test ends.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections() // streams end with their connections
		srv.Close()
	})
	return srv
}

// runAgent runs an agent linked to the masters at urls over HTTP.
func runAgent(t *testing.T, opts []agent.HTTPOption, urls ...string) *agent.Agent {
	t.Helper()
	link, err := agent.NewHTTPMaster(urls, opts...)
	require.NoError(t, err)
	a, err := agent.New(agent.Config{
		Master:                 link,
		WorkDir:                t.TempDir(),
		Resources:              "cpus:2;mem:1024;disk:1024;ports:[31000-31009]",
		Hostname:               "agent-1",
		RegistrationBackoff:    10 * time.Millisecond,
		RegistrationBackoffMax: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), httpWait)
		defer scancel()
		_ = a.Shutdown(sctx)
		cancel()
		<-done
	})
	require.Eventually(t, func() bool { return a.ID() != "" }, httpWait, 5*time.Millisecond, "the agent registers")
	return a
}

// deadURL is the URL of a port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

// events is a Scheduler that passes its callbacks to the test.
type events struct {
	scheduler.Base
	registered   chan string // "registered <id>" or "reregistered <id>"
	disconnected chan struct{}
	offers       chan []mesospb.Offer
	updates      chan mesospb.TaskStatus
	errors       chan string
}

func newEvents() *events {
	return &events{
		registered:   make(chan string, 16),
		disconnected: make(chan struct{}, 16),
		offers:       make(chan []mesospb.Offer, 64),
		updates:      make(chan mesospb.TaskStatus, 64),
		errors:       make(chan string, 4),
	}
}

func (e *events) Registered(_ context.Context, _ *scheduler.Driver, id mesospb.FrameworkID, _ *mesospb.MasterInfo) {
	e.registered <- "registered " + id.Value
}

func (e *events) Reregistered(_ context.Context, d *scheduler.Driver, _ *mesospb.MasterInfo) {
	e.registered <- "reregistered " + d.FrameworkID().Value
}

func (e *events) Disconnected(context.Context, *scheduler.Driver) { e.disconnected <- struct{}{} }

func (e *events) ResourceOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.Offer) {
	select {
	case e.offers <- offers:
	default: // a test that does not read them lets the offers lapse
	}
}

func (e *events) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	e.updates <- st
}

func (e *events) Error(_ context.Context, _ *scheduler.Driver, msg string) { e.errors <- msg }

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(httpWait):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// runDriver runs a driver for ev until the test ends; the returned channel
// gives Run's result.
func runDriver(t *testing.T, ev *events, info mesospb.FrameworkInfo, opts ...scheduler.Option) (*scheduler.Driver, <-chan error) {
	t.Helper()
	opts = append([]scheduler.Option{scheduler.WithBackoff(10*time.Millisecond, 100*time.Millisecond)}, opts...)
	d, err := scheduler.NewDriver(ev, info, opts...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { defer close(finished); done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(httpWait):
			t.Error("Run did not return")
		}
	})
	return d, done
}

func frameworkInfo(name string) mesospb.FrameworkInfo {
	return mesospb.FrameworkInfo{User: "root", Name: name, FailoverTimeout: ptr(60.0)}
}

func trueTask(o mesospb.Offer, id string) mesospb.TaskInfo {
	return mesospb.TaskInfo{
		Name:    id,
		TaskID:  mesospb.TaskID{Value: id},
		AgentID: o.AgentID,
		Resources: []mesospb.Resource{
			{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
			{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 32}},
		},
		Command: &mesospb.CommandInfo{Value: ptr("true")},
	}
}

// waitState waits for an update of task with state want, failing on other
// terminal states.
func waitState(t *testing.T, ev *events, task string, want mesospb.TaskState) mesospb.TaskStatus {
	t.Helper()
	for {
		st := receive(t, ev.updates, "task "+task+" "+want.String())
		if st.TaskID.Value != task {
			continue
		}
		if st.GetState() == want {
			return st
		}
		switch st.GetState() {
		case mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST, mesospb.TASK_ERROR, mesospb.TASK_DROPPED:
			t.Fatalf("task %s: %s (%s), want %s", task, st.GetState(), st.GetMessage(), want)
		}
	}
}

func TestDriverRunsTaskOverHTTP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sched []scheduler.Option
		agent []agent.HTTPOption
	}{
		{"protobuf", nil, nil},
		{"json", []scheduler.Option{scheduler.WithJSON()}, []agent.HTTPOption{agent.WithJSON()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := runMaster(t, master.Config{})
			srv := serve(t, m.Handler())
			dead := deadURL(t)
			runAgent(t, tc.agent, dead, srv.URL)

			ev := newEvents()
			opts := append([]scheduler.Option{scheduler.WithMasterURL(dead, srv.URL)}, tc.sched...)
			d, done := runDriver(t, ev, frameworkInfo("http-"+tc.name), opts...)
			assert.Contains(t, receive(t, ev.registered, "Registered"), "registered ")

			offers := receive(t, ev.offers, "offers")
			ctx := context.Background()
			require.NoError(t, d.LaunchTasks(ctx, []mesospb.OfferID{offers[0].ID}, []mesospb.TaskInfo{trueTask(offers[0], "t1")}, nil))
			st := waitState(t, ev, "t1", mesospb.TASK_FINISHED)
			assert.Equal(t, offers[0].AgentID, *st.AgentID)

			require.NoError(t, d.Stop(false), "TEARDOWN over HTTP")
			require.NoError(t, receive(t, done, "Run to return"))
			st2, err := m.State(ctx)
			require.NoError(t, err)
			assert.Empty(t, st2.GetFrameworks.Frameworks, "torn down")
		})
	}
}

// standby is a master's answer when another one leads.
type standby string

func (s standby) Leader() (bool, string) { return false, string(s) }

func TestDriverFollowsRedirectToLeader(t *testing.T) {
	leader, _ := runMaster(t, master.Config{})
	leaderSrv := serve(t, leader.Handler())
	other, _ := runMaster(t, master.Config{Leadership: standby(leaderSrv.URL)})
	var standbyRequests atomic.Int32
	standbySrv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		standbyRequests.Add(1)
		other.Handler().ServeHTTP(w, r)
	}))
	noLeader, _ := runMaster(t, master.Config{Leadership: standby("")})
	unavailableSrv := serve(t, noLeader.Handler())

	ev := newEvents()
	d, _ := runDriver(t, ev, frameworkInfo("redirected"), scheduler.WithMasterURL(deadURL(t), unavailableSrv.URL, standbySrv.URL))
	receive(t, ev.registered, "Registered")
	require.NoError(t, d.ReviveOffers(context.Background()), "calls go to the leader")
	assert.Equal(t, int32(1), standbyRequests.Load(), "only the SUBSCRIBE went to the standby")

	st, err := leader.State(context.Background())
	require.NoError(t, err)
	require.Len(t, st.GetFrameworks.Frameworks, 1)
	assert.Equal(t, "redirected", st.GetFrameworks.Frameworks[0].FrameworkInfo.Name)
	st, err = other.State(context.Background())
	require.NoError(t, err)
	assert.Empty(t, st.GetFrameworks.Frameworks)
}

func TestDriverResubscribesWhenStreamEnds(t *testing.T) {
	first, stopFirst := runMaster(t, master.Config{})
	h := &swappable{}
	h.set(first.Handler())
	srv := serve(t, h)

	ev := newEvents()
	d, _ := runDriver(t, ev, frameworkInfo("persistent"), scheduler.WithMasterURL(srv.URL))
	registered := receive(t, ev.registered, "Registered")
	id := d.FrameworkID().Value
	require.Equal(t, "registered "+id, registered)

	// The connection breaks: the driver subscribes again, as the same
	// framework.
	srv.CloseClientConnections()
	receive(t, ev.disconnected, "Disconnected")
	assert.Equal(t, "reregistered "+id, receive(t, ev.registered, "Reregistered"))

	// The master goes away, closing every stream, and another takes its
	// place: the driver subscribes to it with its framework ID.
	second, _ := runMaster(t, master.Config{})
	h.set(second.Handler())
	stopFirst()
	receive(t, ev.disconnected, "Disconnected")
	assert.Equal(t, "reregistered "+id, receive(t, ev.registered, "Reregistered"))
	st, err := second.State(context.Background())
	require.NoError(t, err)
	require.Len(t, st.GetFrameworks.Frameworks, 1)
	assert.Equal(t, id, st.GetFrameworks.Frameworks[0].FrameworkInfo.ID.Value)
	require.NoError(t, d.ReviveOffers(context.Background()))
}

func TestRefusedSubscriptionAborts(t *testing.T) {
	m, _ := runMaster(t, master.Config{})
	srv := serve(t, m.Handler())
	ev := newEvents()
	// A suppressed role that is not the framework's: the master answers
	// 400, and would every time.
	_, done := runDriver(t, ev, frameworkInfo("confused"), scheduler.WithMasterURL(srv.URL), scheduler.WithSuppressedRoles("not-mine"))
	err := receive(t, done, "Run to return")
	require.ErrorIs(t, err, scheduler.ErrAborted)
	require.ErrorIs(t, err, scheduler.ErrInvalid)
	assert.Contains(t, receive(t, ev.errors, "Error"), "400")
}

func TestNoMasterRetries(t *testing.T) {
	// Nothing listens yet: the driver keeps trying, with backoff, until a
	// master appears at the address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	var attempts atomic.Int32
	client := &http.Client{Transport: countingTransport{&attempts}}

	ev := newEvents()
	runDriver(t, ev, frameworkInfo("patient"), scheduler.WithMasterURL(addr), scheduler.WithHTTPClient(client))
	require.Eventually(t, func() bool { return attempts.Load() >= 3 }, httpWait, 5*time.Millisecond)

	m, _ := runMaster(t, master.Config{})
	l, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: m.Handler()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	assert.Contains(t, receive(t, ev.registered, "Registered"), "registered ")
}

// countingTransport counts the requests it makes.
type countingTransport struct{ n *atomic.Int32 }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

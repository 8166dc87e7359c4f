package agent_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/memory"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// haFlip is a master's Leadership the test sets.
type haFlip struct {
	mu      sync.Mutex
	leading bool
}

func (f *haFlip) Leader() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leading, ""
}

func (f *haFlip) set(leading bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leading = leading
}

type haHandler struct{ h atomic.Pointer[http.Handler] }

func (s *haHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

// haMaster is a master served over HTTP on 127.0.0.1 that advertises
// that address in its MasterInfo; stop ends it and its connections.
type haMaster struct {
	m       *master.Master
	lead    *haFlip
	payload []byte
	stop    func()
}

func runHAMaster(t *testing.T) *haMaster {
	t.Helper()
	h := &haHandler{}
	srv := httptest.NewUnstartedServer(h)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	lead := &haFlip{}
	m, err := master.New(master.Config{Hostname: "127.0.0.1", IP: "127.0.0.1", Port: uint32(p), Leadership: lead,
		AllocationInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	handler := m.Handler()
	h.h.Store(&handler)
	srv.Start()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			srv.CloseClientConnections()
			srv.Close()
		})
	}
	t.Cleanup(stop)
	info := m.Info()
	payload, err := codec.MarshalJSON(&info)
	require.NoError(t, err)
	return &haMaster{m: m, lead: lead, payload: payload, stop: stop}
}

// haExecutor runs tasks until the test finishes them.
type haExecutor struct {
	drivers chan *executor.Driver
}

func (e *haExecutor) Registered(context.Context, *executor.Driver, executor.Info)   {}
func (e *haExecutor) Reregistered(context.Context, *executor.Driver, executor.Info) {}
func (e *haExecutor) Disconnected(context.Context, *executor.Driver)                {}
func (e *haExecutor) LaunchTask(ctx context.Context, d *executor.Driver, task *mesospb.TaskInfo) {
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: task.TaskID, State: mesospb.TASK_RUNNING.Enum()})
	e.drivers <- d
}
func (e *haExecutor) LaunchTaskGroup(context.Context, *executor.Driver, *mesospb.TaskGroupInfo) {}
func (e *haExecutor) KillTask(ctx context.Context, d *executor.Driver, id mesospb.TaskID, _ *mesospb.KillPolicy) {
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: id, State: mesospb.TASK_KILLED.Enum()})
}
func (e *haExecutor) Acknowledged(context.Context, *executor.Driver, mesospb.TaskID, []byte) {}
func (e *haExecutor) FrameworkMessage(context.Context, *executor.Driver, []byte)             {}
func (e *haExecutor) Shutdown(_ context.Context, d *executor.Driver)                         { d.Stop() }
func (e *haExecutor) Error(context.Context, *executor.Driver, string)                        {}

// haScheduler passes offers and updates to the test.
type haScheduler struct {
	scheduler.Base
	offers  chan []mesospb.Offer
	updates chan mesospb.TaskStatus
}

func (s *haScheduler) ResourceOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.Offer) {
	select {
	case s.offers <- offers:
	default:
	}
}

func (s *haScheduler) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	s.updates <- st
}

func haReceive[T any](t *testing.T, ch <-chan T, what string) T {
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

// While no master leads, the agent keeps its task running and the task's
// status update waits; once another master leads, the agent and the
// framework find it through the detector and the update reaches the
// framework, as with Mesos's agents across a master failover.
func TestAgentFollowsDetectedLeaderAndDeliversQueuedUpdates(t *testing.T) {
	a, b := runHAMaster(t), runHAMaster(t)
	g := memory.NewGroup()
	det := g.NewDetector()
	t.Cleanup(func() { _ = det.Close() }) // after the agent and driver stopped
	ca, cb := g.NewContender(), g.NewContender()
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	a.lead.set(true)
	campaign := func(c election.Contender, payload []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), httpWait)
		defer cancel()
		_, err := c.Campaign(ctx, payload)
		require.NoError(t, err)
	}
	campaign(ca, a.payload)

	exec := &haExecutor{drivers: make(chan *executor.Driver, 1)}
	link, err := agent.NewHTTPMaster(nil, agent.WithMasterDetector(det))
	require.NoError(t, err)
	ag, err := agent.New(agent.Config{
		Master:                 link,
		WorkDir:                t.TempDir(),
		Resources:              "cpus:1;mem:256;disk:256",
		Hostname:               "agent-1",
		Executors:              map[string]executor.Executor{"go-ha": exec},
		RegistrationBackoff:    10 * time.Millisecond,
		RegistrationBackoffMax: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan struct{})
	go func() { defer close(adone); _ = ag.Run(actx) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), httpWait)
		defer scancel()
		_ = ag.Shutdown(sctx)
		acancel()
		<-adone
	})

	sched := &haScheduler{offers: make(chan []mesospb.Offer, 16), updates: make(chan mesospb.TaskStatus, 16)}
	d, err := scheduler.NewDriver(sched, mesospb.FrameworkInfo{User: "root", Name: "ha", FailoverTimeout: ptr(60.0)},
		scheduler.WithMasterDetector(det), scheduler.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	require.NoError(t, err)
	dctx, dcancel := context.WithCancel(context.Background())
	ddone := make(chan struct{})
	go func() { defer close(ddone); _ = d.Run(dctx) }()
	t.Cleanup(func() { dcancel(); <-ddone })

	offers := haReceive(t, sched.offers, "offers")
	task := goTask("t1", "ex1", "go-ha")
	task.AgentID = offers[0].AgentID
	task.Resources = offers[0].Resources
	require.NoError(t, d.LaunchTasks(context.Background(), []mesospb.OfferID{offers[0].ID}, []mesospb.TaskInfo{task}, nil))
	st := haReceive(t, sched.updates, "TASK_RUNNING")
	require.Equal(t, mesospb.TASK_RUNNING, st.GetState(), st.GetMessage())
	ed := haReceive(t, exec.drivers, "the executor's driver")

	// Nobody leads: a resigns and goes away.
	require.NoError(t, ca.Resign(context.Background()))
	a.lead.set(false)
	a.stop()
	require.Eventually(t, func() bool { return !d.Connected() }, httpWait, 5*time.Millisecond)

	// The task finishes meanwhile; the agent keeps the update.
	require.NoError(t, ed.SendStatusUpdate(context.Background(), mesospb.TaskStatus{TaskID: task.TaskID, State: mesospb.TASK_FINISHED.Enum()}))
	require.Eventually(t, func() bool {
		s, err := ag.State(context.Background())
		if err != nil || len(s.Frameworks) != 1 || len(s.Frameworks[0].Executors) != 1 {
			return false
		}
		for _, tk := range s.Frameworks[0].Executors[0].Tasks {
			if tk.TaskID.Value == "t1" && tk.GetState() == mesospb.TASK_FINISHED {
				return true
			}
		}
		return false
	}, httpWait, 5*time.Millisecond, "the agent took the update")
	select {
	case st := <-sched.updates:
		t.Fatalf("an update without a master: %v", st.GetState())
	default:
	}

	// b leads: the update arrives there.
	b.lead.set(true)
	campaign(cb, b.payload)
	for {
		// A TASK_RUNNING whose acknowledgement a did not pass on in time
		// comes again first.
		st = haReceive(t, sched.updates, "TASK_FINISHED")
		assert.Equal(t, "t1", st.TaskID.Value)
		if st.GetState() != mesospb.TASK_RUNNING {
			break
		}
	}
	assert.Equal(t, mesospb.TASK_FINISHED, st.GetState(), st.GetMessage())
}

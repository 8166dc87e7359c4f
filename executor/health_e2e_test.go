package executor_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// e2eWait bounds every wait of the end-to-end test: the machines are
// shared and noisy; nothing asserts a duration.
const e2eWait = 30 * time.Second

// e2eScheduler records the updates a framework gets and hands it offers.
type e2eScheduler struct {
	scheduler.Base
	mu      sync.Mutex
	updates []mesospb.TaskStatus
	offers  chan []mesospb.Offer
}

func (s *e2eScheduler) ResourceOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.Offer) {
	select {
	case s.offers <- offers:
	default:
	}
}

func (s *e2eScheduler) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates = append(s.updates, st)
}

func (s *e2eScheduler) history() []mesospb.TaskStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mesospb.TaskStatus(nil), s.updates...)
}

// TestHealthCheckEndToEnd runs a master, an agent (its command executor,
// the process containerizer) and a framework in this process. The task's
// HTTP health check GETs a server the test runs on 127.0.0.1: it goes
// healthy; then the server answers 500 and, after consecutive_failures
// unhealthy updates, the task is killed as its kill policy says: SIGTERM,
// which it traps and survives, then SIGKILL after the grace period. The
// framework sees TASK_KILLING and TASK_KILLED with healthy=false.
func TestHealthCheckEndToEnd(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	port := uint32(srv.Listener.Addr().(*net.TCPAddr).Port)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	m, err := master.New(master.Config{AllocationInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	a, err := agent.New(agent.Config{
		Master:    m,
		WorkDir:   t.TempDir(),
		Resources: "cpus:2;mem:1024;disk:1000",
		Hostname:  "localhost",
	})
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), e2eWait)
		defer scancel()
		_ = a.Shutdown(sctx)
	}()

	sched := &e2eScheduler{offers: make(chan []mesospb.Offer, 16)}
	d, err := scheduler.NewDriver(sched, mesospb.FrameworkInfo{
		User: "root", Name: "health",
		Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_TASK_KILLING_STATE.Enum()}},
	}, scheduler.WithMaster(m))
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Run(ctx) }()
	defer func() { _ = d.Abort() }()

	var offers []mesospb.Offer
	select {
	case offers = <-sched.offers:
	case <-time.After(e2eWait):
		t.Fatal("no offers")
	}
	o := offers[0]
	termFile := filepath.Join(t.TempDir(), "term")
	script := "trap 'echo TERM >> " + termFile + "' TERM; while :; do sleep 0.05; done"
	task := mesospb.TaskInfo{
		Name: "web", TaskID: mesospb.TaskID{Value: "web"}, AgentID: o.AgentID,
		Resources: []mesospb.Resource{
			{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
			{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 64}},
		},
		Command:    &mesospb.CommandInfo{Value: &script},
		KillPolicy: &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: int64(300 * time.Millisecond)}},
		HealthCheck: &mesospb.HealthCheck{
			Type:                mesospb.HealthCheck_HTTP.Enum(),
			HTTP:                &mesospb.HealthCheck_HTTPCheckInfo{Port: port, Path: ptr("/health")},
			DelaySeconds:        ptr(0.0),
			IntervalSeconds:     ptr(0.05),
			TimeoutSeconds:      ptr(5.0),
			GracePeriodSeconds:  ptr(0.0),
			ConsecutiveFailures: ptr(uint32(3)),
		},
	}
	require.NoError(t, d.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, nil))

	healthUpdates := func() (out []bool) {
		for _, u := range sched.history() {
			if u.GetReason() == mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
				assert.Equal(t, mesospb.TASK_RUNNING, u.GetState())
				out = append(out, u.GetHealthy())
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(healthUpdates()) > 0 }, e2eWait, 10*time.Millisecond, "the task goes healthy")
	assert.Equal(t, []bool{true}, healthUpdates())

	status.Store(http.StatusInternalServerError)
	var last mesospb.TaskStatus
	require.Eventually(t, func() bool {
		h := sched.history()
		last = h[len(h)-1]
		return last.GetState() == mesospb.TASK_KILLED
	}, e2eWait, 10*time.Millisecond, "the task is killed")
	assert.Equal(t, []bool{true, false, false, false}, healthUpdates(), "one update per failure, none after the kill")
	var states []mesospb.TaskState
	for _, u := range sched.history() {
		if u.GetReason() != mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
			states = append(states, u.GetState())
		}
	}
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_KILLING, mesospb.TASK_KILLED}, states)
	require.NotNil(t, last.Healthy)
	assert.False(t, last.GetHealthy(), "killed for its health")
	assert.Equal(t, "Command terminated with signal SIGKILL", last.GetMessage(), "it survived SIGTERM until the grace period ended")
	term, err := os.ReadFile(termFile)
	require.NoError(t, err, "the task got SIGTERM first")
	assert.Contains(t, string(term), "TERM")
}

func ptr[T any](v T) *T { return &v }

package e2e_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// wait bounds every wait in these tests: generous, since the machines that
// run them are shared and noisy; no test asserts a duration.
const wait = 30 * time.Second

func ptr[T any](v T) *T { return &v }

// transport is how the cluster's pieces reach the master: every test runs
// once per transport, as a subtest named after it.
type transport struct {
	name string
	// http serves the master's HTTP API, and agents and frameworks use
	// it; otherwise they hold the *master.Master itself.
	http bool
	json bool // over HTTP, JSON instead of protobuf
}

var transports = []transport{
	{name: "in-process"},
	{name: "http", http: true},
	{name: "http-json", http: true, json: true},
}

// forEachTransport runs test as a subtest per transport.
func forEachTransport(t *testing.T, test func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { test(t, tr) })
	}
}

// cluster is a master and agents in this process, linked by a transport.
type cluster struct {
	t         *testing.T
	master    *master.Master
	link      []scheduler.Option // how frameworks reach the master
	agents    []*agent.Agent
	agentDirs []string
}

func startCluster(t *testing.T, tr transport, agents int, res string, cfg master.Config) *cluster {
	t.Helper()
	if cfg.AllocationInterval == 0 {
		cfg.AllocationInterval = 100 * time.Millisecond
	}
	m, err := master.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c := &cluster{t: t, master: m, link: []scheduler.Option{scheduler.WithMaster(m)}}
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	agentLink := func() agent.Master { return m }
	var srv *httptest.Server
	if tr.http {
		srv = httptest.NewServer(m.Handler())
		var agentOpts []agent.HTTPOption
		c.link = []scheduler.Option{scheduler.WithMasterURL(srv.URL)}
		if tr.json {
			agentOpts = append(agentOpts, agent.WithJSON())
			c.link = append(c.link, scheduler.WithJSON())
		}
		agentLink = func() agent.Master {
			l, err := agent.NewHTTPMaster([]string{srv.URL}, agentOpts...)
			require.NoError(t, err)
			return l
		}
	}
	dir := t.TempDir()
	for i := 0; i < agents; i++ {
		workDir := filepath.Join(dir, fmt.Sprintf("agent-%d", i))
		c.agentDirs = append(c.agentDirs, workDir)
		a, err := agent.New(agent.Config{
			Master:    agentLink(),
			WorkDir:   workDir,
			Resources: res,
			Hostname:  fmt.Sprintf("agent-%d", i),
		})
		require.NoError(t, err)
		c.agents = append(c.agents, a)
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(ctx) }()
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), wait)
		defer scancel()
		for _, a := range c.agents {
			_ = a.Shutdown(sctx)
		}
		cancel()
		wg.Wait()
		if srv != nil {
			srv.CloseClientConnections()
			srv.Close()
		}
	})
	require.Eventually(t, func() bool {
		for _, a := range c.agents {
			if a.ID() == "" {
				return false
			}
		}
		return true
	}, wait, 10*time.Millisecond, "agents register")
	return c
}

// recorder is a scheduler that hands every callback to the test. Status
// updates are also kept in order, so a test can wait for one whatever came
// before it.
type recorder struct {
	scheduler.Base
	mu         sync.Mutex
	history    []mesospb.TaskStatus
	registered chan mesospb.FrameworkID
	offers     chan []mesospb.Offer
	updates    chan mesospb.TaskStatus
	rescinded  chan mesospb.OfferID
	errors     chan string
}

func newRecorder() *recorder {
	return &recorder{
		registered: make(chan mesospb.FrameworkID, 16),
		offers:     make(chan []mesospb.Offer, 1024),
		updates:    make(chan mesospb.TaskStatus, 1024),
		rescinded:  make(chan mesospb.OfferID, 1024),
		errors:     make(chan string, 16),
	}
}

func (r *recorder) Registered(_ context.Context, _ *scheduler.Driver, id mesospb.FrameworkID, _ *mesospb.MasterInfo) {
	r.registered <- id
}
func (r *recorder) Reregistered(_ context.Context, d *scheduler.Driver, _ *mesospb.MasterInfo) {
	r.registered <- d.FrameworkID()
}
func (r *recorder) ResourceOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.Offer) {
	r.offers <- offers
}
func (r *recorder) OfferRescinded(_ context.Context, _ *scheduler.Driver, id mesospb.OfferID) {
	r.rescinded <- id
}
func (r *recorder) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	r.mu.Lock()
	r.history = append(r.history, st)
	r.mu.Unlock()
	select {
	case r.updates <- st:
	default: // tests that read the history need not drain the channel
	}
}
func (r *recorder) Error(_ context.Context, _ *scheduler.Driver, msg string) { r.errors <- msg }

// framework is a running driver with its recorder.
type framework struct {
	t      *testing.T
	rec    *recorder
	driver *scheduler.Driver
	id     mesospb.FrameworkID
	cancel context.CancelFunc
	done   chan error
}

func (c *cluster) subscribe(info mesospb.FrameworkInfo, opts ...scheduler.Option) *framework {
	c.t.Helper()
	rec := newRecorder()
	d, err := scheduler.NewDriver(rec, info, append(append([]scheduler.Option(nil), c.link...), opts...)...)
	require.NoError(c.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	f := &framework{t: c.t, rec: rec, driver: d, cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- d.Run(ctx) }()
	select {
	case f.id = <-rec.registered:
	case <-time.After(wait):
		c.t.Fatal("framework did not register")
	}
	c.t.Cleanup(func() { _ = d.Abort(); cancel() })
	return f
}

// nextOffers waits for the next batch of offers.
func (f *framework) nextOffers() []mesospb.Offer {
	f.t.Helper()
	select {
	case o := <-f.rec.offers:
		return o
	case <-time.After(wait):
		f.t.Fatal("no offers")
	}
	return nil
}

// waitState waits until a task has had an update with the given state,
// returning it; it fails on any other terminal state of that task.
func (f *framework) waitState(taskID string, want mesospb.TaskState) mesospb.TaskStatus {
	f.t.Helper()
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f.rec.mu.Lock()
		history := f.rec.history
		f.rec.mu.Unlock()
		for _, st := range history {
			if st.TaskID.Value != taskID {
				continue
			}
			if st.GetState() == want {
				return st
			}
			if terminal(st.GetState()) {
				f.t.Fatalf("task %s: got %s (%s), want %s", taskID, st.GetState(), st.GetMessage(), want)
			}
		}
	}
	f.t.Fatalf("task %s never reached %s", taskID, want)
	return mesospb.TaskStatus{}
}

func terminal(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST,
		mesospb.TASK_ERROR, mesospb.TASK_DROPPED, mesospb.TASK_GONE:
		return true
	}
	return false
}

func shellTask(id string, o mesospb.Offer, cmd string, cpus, mem float64) mesospb.TaskInfo {
	return mesospb.TaskInfo{
		Name:    id,
		TaskID:  mesospb.TaskID{Value: id},
		AgentID: o.AgentID,
		Resources: []mesospb.Resource{
			{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: cpus}},
			{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: mem}},
		},
		Command: &mesospb.CommandInfo{Value: ptr(cmd)},
	}
}

func ids(offers ...mesospb.Offer) []mesospb.OfferID {
	out := make([]mesospb.OfferID, len(offers))
	for i, o := range offers {
		out[i] = o.ID
	}
	return out
}

func (c *cluster) agentWorkDir(i int) string { return c.agentDirs[i] }

//go:build unix

package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/election/memory"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/scheduler"
	"github.com/apronhq/apron/service"
)

// instance is one RunElected of a test: a Service, its contender and its
// HTTP API.
type instance struct {
	svc       *service.Service
	contender *memory.Contender
	api       *httptest.Server
	cancel    context.CancelFunc
	done      chan struct{}
	err       error
}

func startInstance(t *testing.T, c *cluster, g *memory.Group, spec *service.Spec, store service.Store) *instance {
	svc, err := service.New(context.Background(), service.Config{Spec: spec, Store: store, DeclineFor: 100 * time.Millisecond, TickInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{svc: svc, contender: g.NewContender(), api: httptest.NewServer(svc.Handler()), cancel: cancel, done: make(chan struct{})}
	det := g.NewDetector()
	go func() {
		defer close(in.done)
		in.err = svc.RunElected(ctx, service.Election{Contender: in.contender, Detector: det, Instance: service.Instance{API: in.api.URL}},
			scheduler.WithMaster(c.master))
	}()
	t.Cleanup(func() { cancel(); <-in.done; in.api.Close(); _ = det.Close(); _ = in.contender.Close() })
	return in
}

func (in *instance) leads() bool { _, err := in.svc.Pods(context.Background()); return err == nil }

// masterTasks counts, per pod name, the tasks the master knows (running
// and completed).
func masterTasks(t *testing.T, c *cluster) map[string]int {
	resp, err := c.master.OperatorCall(context.Background(), &masterpb.Call{Type: masterpb.Call_GET_TASKS.Enum()})
	require.NoError(t, err)
	out := map[string]int{}
	for _, task := range append(append(resp.GetTasks.Tasks, resp.GetTasks.PendingTasks...), resp.GetTasks.CompletedTasks...) {
		out[task.Name]++
	}
	return out
}

// Two instances, one leader: the standby's API sends clients to the
// leader; the leader cut off mid-deploy stops at once (RunElected returns
// ErrLostLeadership); the standby takes over from the stored state and
// finishes the plan, launching no pod twice.
func TestRunElectedFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end service test skipped in -short mode")
	}
	c := startCluster(t, 3)
	store := &recordingStore{MemStore: service.NewMemStore()}
	g := memory.NewGroup()
	spec := e2eSpec(3, "v1")
	a := startInstance(t, c, g, spec, store)
	require.Eventually(t, a.leads, wait, 10*time.Millisecond, "a leads")
	b := startInstance(t, c, g, spec, store)

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	require.Eventually(t, func() bool {
		resp, err := noRedirect.Get(b.api.URL + "/v1/plans/deploy")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == http.StatusTemporaryRedirect && resp.Header.Get("Location") == a.api.URL+"/v1/plans/deploy" && body["leader"] == a.api.URL
	}, wait, 10*time.Millisecond, "the standby redirects to the leader")
	resp, err := http.Get(b.api.URL + "/v1/pods")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a client following the redirect gets the leader's answer")
	_, err = b.svc.Pods(context.Background())
	assert.ErrorIs(t, err, service.ErrNotLeader)

	// Cut a off once node-1 is launched.
	require.Eventually(t, func() bool {
		p, err := a.svc.Pod(context.Background(), "node-1")
		return err == nil && p.TaskID != ""
	}, wait, 5*time.Millisecond, "node-1 launched")
	g.Cut(a.contender)
	select {
	case <-a.done:
	case <-time.After(wait):
		t.Fatal("the deposed leader did not stop")
	}
	assert.ErrorIs(t, a.err, service.ErrLostLeadership)
	saves := store.len()
	require.Eventually(t, func() bool {
		p, err := b.svc.Plan(context.Background(), service.PlanDeploy)
		return err == nil && p.Status == service.StatusComplete
	}, wait, 20*time.Millisecond, "the new leader finishes the deploy")
	assert.Greater(t, store.len(), saves)
	assert.Equal(t, map[string]int{"node-0": 1, "node-1": 1, "node-2": 1}, masterTasks(t, c), "every pod launched once")
	pods, err := b.svc.Pods(context.Background())
	require.NoError(t, err)
	for _, p := range pods {
		assert.True(t, p.Ready, p.Name)
		assert.Equal(t, 1, p.Launches, p.Name)
	}
	resp, err = noRedirect.Get(a.api.URL + "/v1/plans")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the stopped instance serves nothing")
}

// gateStore holds a Save in flight until released: a deposed leader's
// late write.
type gateStore struct {
	service.Store
	mu      sync.Mutex
	armed   bool
	blocked chan struct{} // closed when a Save waits at the gate
	release chan struct{}
	result  error
}

func (g *gateStore) Save(ctx context.Context, data []byte, version int64) (int64, error) {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if !armed {
		return g.Store.Save(ctx, data, version)
	}
	close(g.blocked)
	<-g.release
	v, err := g.Store.Save(ctx, data, version)
	g.mu.Lock()
	g.result = err
	g.mu.Unlock()
	return v, err
}

// A write the deposed leader had in flight when its term ended lands
// after its successor took over: the store's compare-and-set refuses it,
// since taking over saved a new version first.
func TestRunElectedFencesLateWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end service test skipped in -short mode")
	}
	c := startCluster(t, 3)
	mem := service.NewMemStore()
	gate := &gateStore{Store: mem, blocked: make(chan struct{}), release: make(chan struct{})}
	g := memory.NewGroup()
	spec := e2eSpec(3, "v1")
	a := startInstance(t, c, g, spec, gate)
	require.Eventually(t, a.leads, wait, 10*time.Millisecond, "a leads")
	b := startInstance(t, c, g, spec, mem)
	gate.mu.Lock()
	gate.armed = true
	gate.mu.Unlock()
	select {
	case <-gate.blocked:
	case <-time.After(wait):
		t.Fatal("a never saved")
	}
	g.Cut(a.contender) // a's save is in flight
	require.Eventually(t, b.leads, wait, 10*time.Millisecond, "b took over")
	_, version, err := mem.Load(context.Background())
	require.NoError(t, err)
	close(gate.release)
	<-a.done
	gate.mu.Lock()
	assert.ErrorIs(t, gate.result, service.ErrConflict, "the late write is refused")
	gate.mu.Unlock()
	assert.ErrorIs(t, a.err, service.ErrLostLeadership)
	_, after, err := mem.Load(context.Background())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after, version, "only b writes")
	require.Eventually(t, func() bool {
		p, err := b.svc.Plan(context.Background(), service.PlanDeploy)
		return err == nil && p.Status == service.StatusComplete
	}, wait, 20*time.Millisecond, "b finishes the deploy")
	for name, n := range masterTasks(t, c) {
		assert.Equal(t, 1, n, "%s launched once", name)
	}
}

// The spec is remembered in the state, with every store: a restart with
// a spec the deployed one cannot move to is refused and changes nothing;
// a valid change rolls out.
func TestSpecRememberedByStores(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end service test skipped in -short mode")
	}
	c := startCluster(t, 1)
	stores := map[string]func(t *testing.T) service.Store{
		"memory": func(*testing.T) service.Store { return service.NewMemStore() },
		"file": func(t *testing.T) service.Store {
			return service.NewFileStore(filepath.Join(t.TempDir(), "state.json"))
		},
		"zookeeper": func(t *testing.T) service.Store {
			srv := zktest.Start(t) // skips without ZooKeeper
			conn, _, err := zk.Connect([]string{srv.Addr}, 10*time.Second, zk.WithLogInfo(false))
			require.NoError(t, err)
			t.Cleanup(conn.Close)
			s, err := service.NewZKStore(conn, "/apron/services/remembered")
			require.NoError(t, err)
			return s
		},
	}
	for _, name := range []string{"memory", "file", "zookeeper"} {
		t.Run(name, func(t *testing.T) {
			store := stores[name](t)
			spec := func(mode string, size float64) *service.Spec {
				s := e2eSpec(1, mode)
				s.Name = "kv-" + name
				s.Pods[0].Volumes[0].Size = size
				return s
			}
			r := run(t, c, spec("v1", 10), store)
			r.waitPlan(t, service.PlanDeploy, service.StatusComplete)
			first := r.pod(t, "node-0")
			r.stop()
			data, version, err := store.Load(context.Background())
			require.NoError(t, err)

			_, err = service.New(context.Background(), service.Config{Spec: spec("v1", 20), Store: store})
			require.ErrorIs(t, err, service.ErrSpecChange)
			assert.Contains(t, err.Error(), `volumes cannot change once deployed, the pods' data is on them (deployed: data of 10 MB; new: data of 20 MB)`)
			after, v, err := store.Load(context.Background())
			require.NoError(t, err)
			assert.Equal(t, version, v, "nothing saved")
			assert.Equal(t, data, after)

			r = run(t, c, spec("v2", 10), store)
			require.Eventually(t, func() bool {
				p := r.pod(t, "node-0")
				return p.Launches == 2 && p.Ready && p.Config == p.Target && p.Config != first.Config
			}, wait, 20*time.Millisecond, "the valid change rolls out")
			assert.Equal(t, first.PersistenceIDs, r.pod(t, "node-0").PersistenceIDs, "in place")
			r.stop()
			st, err := loadState(store)
			require.NoError(t, err)
			assert.Equal(t, "v2", st.Spec.Pods[0].Env["MODE"], "the new spec is remembered")
		})
	}
}

func loadState(s service.Store) (*service.State, error) {
	data, _, err := s.Load(context.Background())
	if err != nil {
		return nil, err
	}
	return service.UnmarshalState(data)
}

// A standby that knows no leader says so with a 503, and RunElected
// without a contender is refused.
func TestRunElectedStandbyWithoutDetector(t *testing.T) {
	svc, err := service.New(context.Background(), service.Config{Spec: e2eSpec(1, "v1"), Store: service.NewMemStore()})
	require.NoError(t, err)
	assert.Error(t, svc.RunElected(context.Background(), service.Election{}))
	g := memory.NewGroup()
	other := g.NewContender()
	_, err = other.Campaign(context.Background(), []byte(`{"kind":"apron-service","service":"kv"}`))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.RunElected(ctx, service.Election{Contender: g.NewContender()}) }()
	require.Eventually(t, func() bool {
		_, err := svc.Plans(ctx)
		return errors.Is(err, service.ErrNotLeader)
	}, wait, 10*time.Millisecond, "standing by")
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/plans")
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "service: not the leader: standing by, no leader known", body["error"])
	cancel()
	assert.NoError(t, <-done, "ctx ended while standing by")
}

//go:build unix

package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
	"github.com/apronhq/apron/scheduler"
	"github.com/apronhq/apron/service"
)

// wait bounds every wait: generous, for shared noisy machines; nothing
// asserts a duration.
const wait = 60 * time.Second

// recordingStore is a MemStore that keeps every state saved, in order:
// since the service saves before it acts, the history shows every
// decision.
type recordingStore struct {
	*service.MemStore
	mu      sync.Mutex
	history []*service.State
}

func (r *recordingStore) Save(ctx context.Context, data []byte, version int64) (int64, error) {
	v, err := r.MemStore.Save(ctx, data, version)
	if err == nil {
		st, _ := service.UnmarshalState(data)
		r.mu.Lock()
		r.history = append(r.history, st)
		r.mu.Unlock()
	}
	return v, err
}

// since returns the states saved from index i on.
func (r *recordingStore) since(i int) []*service.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*service.State(nil), r.history[i:]...)
}

func (r *recordingStore) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.history)
}

type cluster struct {
	master    *master.Master
	agents    []*agent.Agent
	agentDirs []string
}

func startCluster(t *testing.T, n int) *cluster {
	m, err := master.New(master.Config{AllocationInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	c := &cluster{master: m}
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		workDir := filepath.Join(dir, fmt.Sprintf("agent-%d", i))
		a, err := agent.New(agent.Config{
			Master: m, WorkDir: workDir, Hostname: fmt.Sprintf("agent-%d", i),
			Resources: "cpus:2;mem:1024;disk:1000;ports:[31000-31100]",
		})
		require.NoError(t, err)
		c.agents = append(c.agents, a)
		c.agentDirs = append(c.agentDirs, workDir)
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

func (c *cluster) agentIndex(id string) int {
	for i, a := range c.agents {
		if a.ID() == id {
			return i
		}
	}
	return -1
}

// volumeDir is where an agent keeps a persistent volume.
func (c *cluster) volumeDir(agentID, role, persistenceID string) string {
	return filepath.Join(c.agentDirs[c.agentIndex(agentID)], "volumes", "roles", role, persistenceID)
}

// reserved returns, per agent, the resources the master shows reserved.
func (c *cluster) reserved(t *testing.T) map[string]resources.Resources {
	resp, err := c.master.OperatorCall(context.Background(), &masterpb.Call{Type: masterpb.Call_GET_AGENTS.Enum()})
	require.NoError(t, err)
	out := map[string]resources.Resources{}
	for _, a := range resp.GetAgents.Agents {
		rs, err := resources.FromProto(a.TotalResources)
		require.NoError(t, err)
		out[a.AgentInfo.ID.Value] = rs.Reserved()
	}
	return out
}

func e2eSpec(count int, mode string) *service.Spec {
	return &service.Spec{
		Name: "kv", Role: "kv-role", Principal: "kv-principal",
		Pods: []service.PodSpec{{
			Name: "node", Count: count, CPUs: 0.1, Mem: 32,
			Ports:   []service.PortSpec{{Name: "client"}},
			Volumes: []service.VolumeSpec{{Path: "data", Size: 10}},
			Env:     map[string]string{"MODE": mode},
			Configs: []service.ConfigSpec{{Path: "conf/peers", Template: "{{range .Peers}}{{.Pod}} {{end}}"}},
			// The file from an earlier run on the volume is noted in
			// data/log; the pid lets the test kill the task's process;
			// "ready", in the task's new sandbox, says it is done.
			Command: `test -f data/index && echo "found $(cat data/index) $MODE" >> data/log; ` +
				`echo {{.Index}} > data/index; echo $$ > data/pid; touch ready; exec sleep 100000`,
			Readiness:       &service.CheckSpec{Command: "test -f ready"},
			Placement:       service.Placement{MaxPerHost: 1},
			Quorum:          true,
			KillGracePeriod: time.Second,
		}},
	}
}

type runner struct {
	svc    *service.Service
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned err
	err    error
}

func run(t *testing.T, c *cluster, spec *service.Spec, store service.Store) *runner {
	svc, err := service.New(context.Background(), service.Config{Spec: spec, Store: store, DeclineFor: 100 * time.Millisecond, TickInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = svc.Run(ctx, scheduler.WithMaster(c.master)); close(r.done) }()
	t.Cleanup(func() { cancel(); <-r.done })
	require.Eventually(t, func() bool { _, err := svc.Pods(ctx); return err == nil }, wait, 10*time.Millisecond)
	return r
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

func (r *runner) waitPlan(t *testing.T, name string, want service.Status) {
	t.Helper()
	require.Eventually(t, func() bool {
		p, err := r.svc.Plan(context.Background(), name)
		return err == nil && p.Status == want
	}, wait, 20*time.Millisecond, "plan %s %s", name, want)
}

func (r *runner) pod(t *testing.T, name string) service.PodStatus {
	p, err := r.svc.Pod(context.Background(), name)
	require.NoError(t, err)
	return p
}

// TestServiceEndToEnd runs a 3-pod service on a real master and 4 real
// agents: serial deploy, labelled reservations and volumes in the
// master's state, in-place recovery on the volume, replace, a rolling
// config change across a scheduler restart, scale up, and uninstall.
func TestServiceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end service test skipped in -short mode")
	}
	c := startCluster(t, 4)
	store := &recordingStore{MemStore: service.NewMemStore()}
	r := run(t, c, e2eSpec(3, "v1"), store)
	ctx := context.Background()

	// Deploy: serial, each pod launched only once the one before is ready.
	r.waitPlan(t, service.PlanDeploy, service.StatusComplete)
	assertSerial(t, store.since(0), 3)
	pods, err := r.svc.Pods(ctx)
	require.NoError(t, err)
	require.Len(t, pods, 3)
	agentsUsed := map[string]bool{}
	for _, p := range pods {
		agentsUsed[p.AgentID] = true
		data, err := os.ReadFile(filepath.Join(c.volumeDir(p.AgentID, "kv-role", p.PersistenceIDs[0]), "index"))
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(p.Index), strings.TrimSpace(string(data)))
	}
	assert.Len(t, agentsUsed, 3, "one pod per host")

	// The master shows the reservations with the service's labels, and
	// the volumes.
	reserved := c.reserved(t)
	for _, p := range pods {
		rs := reserved[p.AgentID]
		require.False(t, rs.Empty(), "pod %s has no reservation", p.Name)
		labels := map[string]string{}
		for _, l := range rs[0].Reservations[0].Labels {
			labels[l.Key] = l.Value
		}
		assert.Equal(t, map[string]string{"service": "kv", "pod": p.Name, "resource_id": p.ResourceID}, labels)
		vols := rs.PersistentVolumes()
		require.Len(t, vols, 1)
		assert.Equal(t, p.PersistenceIDs[0], vols[0].Disk.Persistence.ID)
	}

	// Kill node-1's process: it is relaunched on the same agent and finds
	// its file on the volume.
	before := r.pod(t, "node-1")
	volume := c.volumeDir(before.AgentID, "kv-role", before.PersistenceIDs[0])
	pid, err := os.ReadFile(filepath.Join(volume, "pid"))
	require.NoError(t, err)
	n, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(volume, "pid")))
	require.NoError(t, syscall.Kill(n, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		p := r.pod(t, "node-1")
		return p.TaskID != before.TaskID && p.Ready
	}, wait, 20*time.Millisecond, "node-1 relaunched")
	after := r.pod(t, "node-1")
	assert.Equal(t, before.AgentID, after.AgentID)
	assert.Equal(t, before.PersistenceIDs, after.PersistenceIDs)
	log, err := os.ReadFile(filepath.Join(volume, "log"))
	require.NoError(t, err)
	assert.Equal(t, "found 1 v1\n", string(log))

	// Replace node-0 (over the HTTP API): another agent, a new volume; the
	// old one is destroyed and unreserved.
	srv := httptest.NewServer(r.svc.Handler())
	defer srv.Close()
	old := r.pod(t, "node-0")
	resp, err := http.Post(srv.URL+"/v1/pods/node-0/replace", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Eventually(t, func() bool {
		p := r.pod(t, "node-0")
		return p.AgentID != "" && p.AgentID != old.AgentID && p.Ready
	}, wait, 20*time.Millisecond, "node-0 replaced")
	moved := r.pod(t, "node-0")
	assert.NotEqual(t, old.PersistenceIDs, moved.PersistenceIDs)
	_, err = os.Stat(filepath.Join(c.volumeDir(moved.AgentID, "kv-role", moved.PersistenceIDs[0]), "log"))
	assert.True(t, os.IsNotExist(err), "a new volume has no history")
	require.Eventually(t, func() bool { return c.reserved(t)[old.AgentID].Empty() }, wait, 20*time.Millisecond,
		"the old agent's reservation is unreserved")
	_, err = os.Stat(c.volumeDir(old.AgentID, "kv-role", old.PersistenceIDs[0]))
	assert.True(t, os.IsNotExist(err), "the old volume is destroyed")

	// GET /v1/plans answers JSON.
	resp, err = http.Get(srv.URL + "/v1/plans/deploy")
	require.NoError(t, err)
	var plan service.PlanStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&plan))
	resp.Body.Close()
	assert.Equal(t, service.StatusComplete, plan.Status)
	resp, err = http.Get(srv.URL + "/v1/pods/nope")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// A config change rolls out one pod at a time; the scheduler is
	// restarted half way (new driver, same store) and finishes the plan
	// without launching any pod twice.
	mark := store.len()
	require.NoError(t, r.svc.UpdateSpec(ctx, e2eSpec(3, "v2")))
	require.Eventually(t, func() bool {
		p := r.pod(t, "node-0")
		return p.Config != old.Config && p.Ready
	}, wait, 20*time.Millisecond, "node-0 rolled out")
	r.stop()
	r = run(t, c, e2eSpec(3, "v2"), store)
	r.waitPlan(t, service.PlanDeploy, service.StatusComplete)
	rollout := store.since(mark)
	assertOneDown(t, rollout)
	launches := map[string]map[string]bool{}
	for _, st := range rollout {
		for name, p := range st.Pods {
			// Launched means started on an agent: a launch whose ACCEPT
			// the stopped scheduler never delivered is reconciled as
			// TASK_LOST and does not count.
			started := p.TaskState == "TASK_STARTING" || p.TaskState == "TASK_RUNNING"
			if started && p.Config == p.Target && p.Config != old.Config {
				if launches[name] == nil {
					launches[name] = map[string]bool{}
				}
				launches[name][p.TaskID] = true
			}
		}
	}
	for _, name := range []string{"node-0", "node-1", "node-2"} {
		if !assert.Len(t, launches[name], 1, "%s launched once with the new config", name) {
			for _, st := range rollout {
				if p := st.Pods[name]; p != nil {
					t.Logf("%s: task %s %s ready=%v config=%s target=%s killing=%v agent=%s", name, p.TaskID, p.TaskState, p.Ready, p.Config, p.Target, p.Killing, p.AgentID)
				}
			}
		}
		p := r.pod(t, name)
		log, err := os.ReadFile(filepath.Join(c.volumeDir(p.AgentID, "kv-role", p.PersistenceIDs[0]), "log"))
		require.NoError(t, err)
		assert.Contains(t, string(log), "v2", "%s restarted in place with v2", name)
	}

	// Scale to 4.
	require.NoError(t, r.svc.UpdateSpec(ctx, e2eSpec(4, "v2")))
	r.waitPlan(t, service.PlanDeploy, service.StatusComplete)
	pods, err = r.svc.Pods(ctx)
	require.NoError(t, err)
	assert.Len(t, pods, 4)

	// Uninstall: Run returns, nothing reserved remains.
	require.NoError(t, r.svc.Uninstall(ctx))
	select {
	case <-r.done:
		require.NoError(t, r.err)
	case <-time.After(wait):
		t.Fatal("uninstall did not finish")
	}
	for id, rs := range c.reserved(t) {
		assert.True(t, rs.Empty(), "agent %s still holds %s", id, rs)
	}
	for _, p := range pods {
		assert.Eventually(t, func() bool {
			_, err := os.Stat(c.volumeDir(p.AgentID, "kv-role", p.PersistenceIDs[0]))
			return os.IsNotExist(err)
		}, wait, 20*time.Millisecond, "volume of %s destroyed", p.Name)
	}
}

// assertSerial checks, over saved states, that pod i got a task only once
// pod i-1 was ready.
func assertSerial(t *testing.T, states []*service.State, n int) {
	t.Helper()
	for _, st := range states {
		for i := 1; i < n; i++ {
			p := st.Pods[fmt.Sprintf("node-%d", i)]
			prev := st.Pods[fmt.Sprintf("node-%d", i-1)]
			if p != nil && p.TaskID != "" && p.Launches == 1 {
				require.True(t, prev != nil && prev.Ready, "node-%d launched before node-%d was ready", i, i-1)
			}
		}
	}
}

// assertOneDown checks that no saved state had two pods not ready.
func assertOneDown(t *testing.T, states []*service.State) {
	t.Helper()
	for i, st := range states {
		down := 0
		for _, p := range st.Pods {
			if !p.Ready {
				down++
			}
		}
		require.LessOrEqual(t, down, 1, "state %d has %d pods down", i, down)
	}
}

// A service that is not running answers 503, not a hang.
func TestHTTPNotRunning(t *testing.T) {
	svc, err := service.New(context.Background(), service.Config{Spec: e2eSpec(1, "v1"), Store: service.NewMemStore()})
	require.NoError(t, err)
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/plans")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp, err = http.Get(srv.URL + "/v1/nothing")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// A scale down with a decommission hook: the hook runs (on its own
// goroutine: it may call the Service) while the pod still runs, is run
// again after a failure, and the pod is removed only once it succeeds.
func TestDecommissionHookEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end service test skipped in -short mode")
	}
	c := startCluster(t, 2)
	var (
		mu     sync.Mutex
		states []string
		svc    *service.Service
	)
	hook := func(ctx context.Context, pod service.PodStatus) error {
		p, err := svc.Pod(ctx, pod.Name)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		states = append(states, pod.Name+" "+p.TaskState)
		if len(states) == 1 {
			return fmt.Errorf("first try fails")
		}
		return nil
	}
	svc, err := service.New(context.Background(), service.Config{Spec: e2eSpec(2, "v1"), Store: service.NewMemStore(),
		DeclineFor: 100 * time.Millisecond, TickInterval: 100 * time.Millisecond, Decommission: hook})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = svc.Run(ctx, scheduler.WithMaster(c.master)); close(r.done) }()
	t.Cleanup(r.stop)
	r.waitPlan(t, service.PlanDeploy, service.StatusComplete)
	p1 := r.pod(t, "node-1")
	require.NoError(t, svc.UpdateSpec(ctx, e2eSpec(1, "v1")))
	require.Eventually(t, func() bool {
		pods, err := svc.Pods(ctx)
		return err == nil && len(pods) == 1
	}, wait, 20*time.Millisecond, "node-1 removed")
	mu.Lock()
	assert.Equal(t, []string{"node-1 TASK_RUNNING", "node-1 TASK_RUNNING"}, states, "run twice, while node-1 ran")
	mu.Unlock()
	require.Eventually(t, func() bool { return c.reserved(t)[p1.AgentID].Empty() }, wait, 20*time.Millisecond, "node-1 unreserved")
}

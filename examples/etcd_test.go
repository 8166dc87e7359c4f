package examples

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/service"
)

// TestEtcdOperator runs the etcd operator (examples/etcd) with real etcd
// members on a master and agents, all separate processes on loopback
// (issue 12): deploy 3 members; a member's etcd killed with SIGKILL is
// restarted in place on its data (same member ID, keys intact); an agent
// killed for good has its member replaced on a spare agent, removed from
// and re-added to the etcd cluster; a rolling configuration change while
// a writer puts a key every 50 ms never loses quorum; scale to 5, with
// the operator killed with SIGKILL mid-deploy and restarted on its state
// file, no member launched twice; scale back to 3, the two highest
// members removed from etcd's membership before their tasks end and
// their reservations and volumes freed; uninstall leaves no reservation or
// volume behind. Skipped with -short, off Linux, and without etcd and
// etcdctl (Debian's etcd-server and etcd-client).
func TestEtcdOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process etcd test: builds the example binaries and runs real etcd members; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	etcdBin := needEtcd(t)
	dir := t.TempDir()
	t.Cleanup(func() { killLeftovers(t, dir) }) // etcd members outlive the agents' SIGTERM
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/etcd")
	master, agents, startAgent := startOperatorCluster(t, bin, dir, 4, 24000)

	api := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	state := filepath.Join(dir, "operator-state.json")
	startOperator := func(extra ...string) *proctest.Proc {
		args := append([]string{"-master", master.Addr, "-listen", api, "-state", state, "-etcd", etcdBin,
			"-cpus", "0.2", "-mem", "128", "-disk", "200", "-replace-after", "2s", "-log-level", "info"}, extra...)
		op := proctest.Start(t, "etcd-operator", exec.Command(bin["etcd"], args...))
		require.NoError(t, op.WaitHTTP("http://"+api+"/v1/plans", wait))
		return op
	}

	// Deploy 3 members.
	start := time.Now()
	op := startOperator()
	waitDeploy(t, api)
	t.Logf("start → 3 members healthy: %.1f s", time.Since(start).Seconds())
	eps := endpoints(t, api)
	require.Len(t, eps, 3)
	members := memberList(t, eps)
	require.Len(t, members, 3)
	for _, m := range members {
		assert.True(t, m.started, "member %s started", m.name)
	}
	etcdctl(t, eps, "put", "k1", "v1")
	etcdctl(t, eps, "endpoint", "health")

	t.Run("RestartInPlace", func(t *testing.T) {
		before := pod(t, api, "member-1")
		pid := etcdPid(dir, "member-1")
		require.NotZero(t, pid, "member-1's etcd process")
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			p := pod(t, api, "member-1")
			return p.TaskID != before.TaskID && p.Ready
		}, wait, 100*time.Millisecond, "member-1 restarted")
		after := pod(t, api, "member-1")
		assert.Equal(t, before.AgentID, after.AgentID, "restarted in place")
		assert.Equal(t, before.PersistenceIDs, after.PersistenceIDs)
		ep := []string{memberEndpoint(after)}
		assert.Equal(t, "k1\nv1", strings.TrimSpace(etcdctl(t, ep, "get", "k1", "--consistency=s")), "its data is intact")
		assert.Equal(t, members, memberList(t, endpoints(t, api)), "same members, same IDs")
		etcdctl(t, endpoints(t, api), "endpoint", "health")
	})

	t.Run("ReplaceLostAgent", func(t *testing.T) {
		before := pod(t, api, "member-2")
		var lost string
		for name := range agents {
			if hostOf(name) == before.Hostname {
				lost = name
			}
		}
		require.NotEmpty(t, lost)
		agents[lost].Kill(t, wait)
		killLeftovers(t, filepath.Join(dir, lost)) // its member's etcd outlives it
		delete(agents, lost)
		require.Eventually(t, func() bool {
			p := pod(t, api, "member-2")
			return p.AgentID != before.AgentID && p.AgentID != "" && p.Ready
		}, wait, 100*time.Millisecond, "member-2 replaced")
		after := pod(t, api, "member-2")
		assert.NotEqual(t, before.PersistenceIDs, after.PersistenceIDs, "a new volume")
		eps := endpoints(t, api)
		now := memberList(t, eps)
		require.Len(t, now, 3, "the old member-2 was removed: %v", now)
		for _, m := range now {
			assert.True(t, m.started, "member %s started", m.name)
			if m.name == "member-2" {
				assert.Equal(t, "http://"+after.Hostname+":"+strconv.FormatUint(after.Ports["peer"], 10), m.peerURL)
				assert.NotEqual(t, members["member-2"].id, m.id, "a new member")
			} else {
				assert.Equal(t, members[m.name], m)
			}
		}
		assert.Equal(t, "k1\nv1", strings.TrimSpace(etcdctl(t, []string{memberEndpoint(after)}, "get", "k1", "--consistency=s")))
		etcdctl(t, eps, "endpoint", "health")
	})

	t.Run("RollingUpdate", func(t *testing.T) {
		w := startWriter(endpoints(t, api))
		downs := watchDown(api)
		time.Sleep(time.Second) // some writes before
		op.Stop()
		op = startOperator("-etcd-flags", "--snapshot-count=5000")
		require.Eventually(t, func() bool {
			for _, p := range pods(t, api) {
				if p.Config != p.Target || !p.Ready || p.Launches < 2 {
					return false
				}
			}
			return deployStatus(api) == service.StatusComplete
		}, wait, 100*time.Millisecond, "the new configuration rolled out")
		time.Sleep(time.Second) // some writes after
		maxDown, longestDown := downs.stop()
		writes, failed, longestGap := w.stop()
		t.Logf("rolling update: %d writes, %d failed, longest failing stretch %v; longest member restart %v",
			writes, failed, longestGap.Round(time.Millisecond), longestDown.Round(time.Millisecond))
		assert.LessOrEqual(t, maxDown, 1, "never more than one member down: quorum kept")
		assert.Less(t, failed, writes)
		assert.LessOrEqual(t, longestGap, longestDown, "no write failed for longer than one member's restart")
		for _, p := range pods(t, api) {
			pid := etcdPid(dir, p.Name)
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			assert.Contains(t, string(cmdline), "--snapshot-count=5000", "%s runs the new flags", p.Name)
		}
		etcdctl(t, endpoints(t, api), "endpoint", "health")
	})

	t.Run("ScaleTo5", func(t *testing.T) {
		for i := 5; len(agents) < 5; i++ {
			startAgent(i)
		}
		op.Stop()
		op = startOperator("-etcd-flags", "--snapshot-count=5000", "-members", "5")
		// The operator is killed with SIGKILL once member-3 is launched,
		// and restarted on its state file.
		require.Eventually(t, func() bool { return pod(t, api, "member-3").TaskID != "" }, wait, 20*time.Millisecond)
		p3 := pod(t, api, "member-3")
		op.Kill(t, wait)
		t.Logf("operator killed with member-3 %s, ready=%v", p3.TaskState, p3.Ready)
		op = startOperator("-etcd-flags", "--snapshot-count=5000", "-members", "5")
		waitDeploy(t, api)
		eps := endpoints(t, api)
		require.Len(t, eps, 5)
		ms := memberList(t, eps)
		require.Len(t, ms, 5)
		for _, m := range ms {
			assert.True(t, m.started, "member %s started", m.name)
		}
		etcdctl(t, eps, "endpoint", "health")
		// Every member was launched once since the update: a launch the
		// killed operator recorded but never sent did not reach the master.
		launched := map[string]int{}
		for _, task := range masterTasks(t, master.Addr) {
			launched[task.Name]++
		}
		assert.Equal(t, 1, launched["member-3"], "member-3 launched once")
		assert.Equal(t, 1, launched["member-4"], "member-4 launched once")
	})

	t.Run("ScaleTo3", func(t *testing.T) {
		gone := []service.PodStatus{pod(t, api, "member-3"), pod(t, api, "member-4")}
		var stay []string
		for _, p := range pods(t, api) {
			if p.Index < 3 {
				stay = append(stay, memberEndpoint(p))
			}
		}
		require.Len(t, stay, 3)
		op.Stop()
		op = startOperator("-etcd-flags", "--snapshot-count=5000", "-members", "3")
		// Until both tasks have ended, every task seen ended is checked
		// to be out of etcd's membership already (the list is read after
		// the task states, so a member still listed was listed after its
		// task ended).
		require.Eventually(t, func() bool {
			running := map[string]bool{}
			for _, task := range masterTasks(t, master.Addr) {
				running[task.Name] = running[task.Name] || task.State == "TASK_RUNNING"
			}
			names, err := memberNames(stay)
			if err != nil {
				return false // a leader change as a member leaves
			}
			for _, p := range gone {
				assert.False(t, !running[p.Name] && names[p.Name], "%s's task ended while it was still an etcd member", p.Name)
			}
			return !running["member-3"] && !running["member-4"]
		}, wait, 50*time.Millisecond, "member-3's and member-4's tasks ended")
		require.Eventually(t, func() bool { return len(pods(t, api)) == 3 }, wait, 100*time.Millisecond, "3 pods left")
		ms := memberList(t, stay)
		require.Len(t, ms, 3, "etcd has 3 members: %v", ms)
		for i := 0; i < 3; i++ {
			assert.True(t, ms[fmt.Sprintf("member-%d", i)].started, "member-%d started", i)
		}
		assert.Eventually(t, func() bool {
			out := operator(t, master.Addr, `{"type":"GET_AGENTS"}`)
			for _, p := range gone {
				for _, id := range append(p.PersistenceIDs, p.ResourceID) {
					if strings.Contains(out, id) {
						return false
					}
				}
			}
			return true
		}, wait, 100*time.Millisecond, "no reservation or volume of member-3 or member-4 left in the master's GET_AGENTS")
		etcdctl(t, stay, "endpoint", "health")
		assert.Equal(t, "k1\nv1", strings.TrimSpace(etcdctl(t, stay, "get", "k1")), "the keys are intact")
		assert.Equal(t, service.StatusComplete, deployStatus(api))
	})

	t.Run("Uninstall", func(t *testing.T) {
		uninstall(t, master.Addr, api, op, dir, agents, "etcd")
		require.Eventually(t, func() bool {
			for i := 0; i < 5; i++ {
				if etcdPid(dir, fmt.Sprintf("member-%d", i)) != 0 {
					return false
				}
			}
			return true
		}, wait, 100*time.Millisecond, "no etcd left running")
	})
}

// uninstall asks the operator whose API is at api to uninstall its
// service, and checks that it exits and that no reservation or volume of
// role is left, in the master or in the agents' work dirs under dir.
func uninstall(t *testing.T, master, api string, op *proctest.Proc, dir string, agents map[string]*proctest.Proc, role string) {
	t.Helper()
	out := operator(t, master, `{"type":"GET_AGENTS"}`)
	require.Contains(t, out, `"reservations"`, "the pods' reservations, before")
	require.Contains(t, out, `"persistence"`, "and their volumes")
	resp, err := client.Post("http://"+api+"/v1/uninstall", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	assert.Equal(t, 0, op.Wait(t, wait), "the operator exits once uninstalled")
	// The master applies the last DESTROY and UNRESERVE, the agents
	// delete the volumes' directories, as the operator exits.
	assert.Eventually(t, func() bool {
		out := operator(t, master, `{"type":"GET_AGENTS"}`)
		return !strings.Contains(out, `"reservations"`) && !strings.Contains(out, `"persistence"`)
	}, wait, 100*time.Millisecond, "no reservation or volume left in the master's GET_AGENTS")
	for name := range agents {
		assert.Eventually(t, func() bool {
			vols, _ := filepath.Glob(filepath.Join(dir, name, "volumes", "roles", role, "*"))
			return len(vols) == 0
		}, wait, 100*time.Millisecond, "%s's volumes are deleted", name)
	}
}

func getJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func pods(t *testing.T, api string) []service.PodStatus {
	var out []service.PodStatus
	require.NoError(t, getJSON("http://"+api+"/v1/pods", &out))
	return out
}

func pod(t *testing.T, api, name string) service.PodStatus {
	var out service.PodStatus
	require.NoError(t, getJSON("http://"+api+"/v1/pods/"+name, &out))
	return out
}

func deployStatus(api string) service.Status {
	var p service.PlanStatus
	if getJSON("http://"+api+"/v1/plans/deploy", &p) != nil {
		return ""
	}
	return p.Status
}

func waitDeploy(t *testing.T, api string) {
	t.Helper()
	require.Eventually(t, func() bool { return deployStatus(api) == service.StatusComplete }, wait, 100*time.Millisecond, "deploy plan complete")
}

func memberEndpoint(p service.PodStatus) string {
	return fmt.Sprintf("http://%s:%d", p.Hostname, p.Ports["client"])
}

// endpoints are the client URLs of the ready members.
func endpoints(t *testing.T, api string) []string {
	var out []string
	for _, p := range pods(t, api) {
		if p.Ready {
			out = append(out, memberEndpoint(p))
		}
	}
	return out
}

func etcdctl(t *testing.T, eps []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("etcdctl", append([]string{"--endpoints", strings.Join(eps, ","), "--command-timeout", "10s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "etcdctl %s: %s", strings.Join(args, " "), out)
	return string(out)
}

type etcdMember struct {
	id, name, peerURL string
	started           bool
}

// memberList is `etcdctl member list` by member name (an unstarted
// member by its peer URL).
func memberList(t *testing.T, eps []string) map[string]etcdMember {
	out := map[string]etcdMember{}
	for _, line := range strings.Split(strings.TrimSpace(etcdctl(t, eps, "member", "list")), "\n") {
		f := strings.Split(line, ", ")
		require.GreaterOrEqual(t, len(f), 4, "member list line %q", line)
		m := etcdMember{id: f[0], started: f[1] == "started", name: f[2], peerURL: f[3]}
		key := m.name
		if key == "" {
			key = m.peerURL
		}
		require.NotContains(t, out, key, "two members named %s", key)
		out[key] = m
	}
	return out
}

// memberNames is the set of member names in `etcdctl member list`.
func memberNames(eps []string) (map[string]bool, error) {
	cmd := exec.Command("etcdctl", "--endpoints", strings.Join(eps, ","), "--command-timeout", "5s", "member", "list")
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Split(line, ", "); len(f) >= 4 {
			names[f[2]] = true
		}
	}
	return names, nil
}

// etcdPid finds the etcd process of the member name started by an agent
// under dir; 0 when there is none.
func etcdPid(dir, name string) int {
	return proctest.Find(func(p proctest.Process) bool {
		i := slices.Index(p.Args, "--name")
		return i >= 0 && i+1 < len(p.Args) && p.Args[i+1] == name && p.InSandboxUnder(dir)
	})
}

type masterTask struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

// masterTasks are the tasks, running and completed, the master knows.
func masterTasks(t *testing.T, addr string) []masterTask {
	var r struct {
		GetTasks struct {
			Tasks          []masterTask `json:"tasks"`
			CompletedTasks []masterTask `json:"completed_tasks"`
		} `json:"get_tasks"`
	}
	require.NoError(t, json.Unmarshal([]byte(operator(t, addr, `{"type":"GET_TASKS"}`)), &r))
	return append(r.GetTasks.Tasks, r.GetTasks.CompletedTasks...)
}

// writer puts a key every 50 ms through etcd's JSON gateway, trying the
// members in turn until one takes it, and records the stretches of
// failed writes.
type writer struct {
	cancel context.CancelFunc
	done   chan struct{}

	writes, failed int
	longest        time.Duration
}

func startWriter(eps []string) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{cancel: cancel, done: make(chan struct{})}
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	put := func(ep string, i int) bool {
		body := fmt.Sprintf(`{"key":%q,"value":%q}`, base64.StdEncoding.EncodeToString([]byte("w")),
			base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(i))))
		resp, err := hc.Post(ep+"/v3/kv/put", "application/json", strings.NewReader(body))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var failingSince time.Time
		next := 0
		for i := 0; ; i++ {
			ok := false
			for j := 0; j < len(eps) && !ok; j++ {
				if ok = put(eps[(next+j)%len(eps)], i); ok {
					next = (next + j) % len(eps)
				}
			}
			w.writes++
			switch {
			case !ok:
				w.failed++
				if failingSince.IsZero() {
					failingSince = time.Now()
				}
			case !failingSince.IsZero():
				w.longest = max(w.longest, time.Since(failingSince))
				failingSince = time.Time{}
			}
			select {
			case <-ctx.Done():
				if !failingSince.IsZero() {
					w.longest = max(w.longest, time.Since(failingSince))
				}
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *writer) stop() (writes, failed int, longest time.Duration) {
	w.cancel()
	<-w.done
	return w.writes, w.failed, w.longest
}

// downWatch polls the operator's pods: the most members not ready at
// once, and the longest time one member was not ready.
type downWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	most    int
	longest time.Duration
}

func watchDown(api string) *downWatch {
	ctx, cancel := context.WithCancel(context.Background())
	d := &downWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		since := map[string]time.Time{}
		for ctx.Err() == nil {
			var ps []service.PodStatus
			if getJSON("http://"+api+"/v1/pods", &ps) == nil {
				down := 0
				for _, p := range ps {
					if !p.Ready {
						down++
						if since[p.Name].IsZero() {
							since[p.Name] = time.Now()
						}
					} else if !since[p.Name].IsZero() {
						d.mu.Lock()
						d.longest = max(d.longest, time.Since(since[p.Name]))
						d.mu.Unlock()
						delete(since, p.Name)
					}
				}
				d.mu.Lock()
				d.most = max(d.most, down)
				d.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return d
}

func (d *downWatch) stop() (most int, longest time.Duration) {
	d.cancel()
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.most, d.longest
}

package examples

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/examples/internal/batch"
	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/internal/zktest"
)

// TestMasterHA runs three masters elected in a real ZooKeeper, two agents
// and a batch framework, all as separate processes following the leader
// through zk:// (issue 10). In the middle of one job: the leader is cut
// off from ZooKeeper (it steps down and exits; a standby takes over), then
// the next leader is killed with SIGKILL (the third takes over). The job
// completes with every task run once and every status update received.
// Then the whole cluster is killed and started again: agents come back
// with their running tasks, weights and quotas are still set. Skipped
// with -short, off Linux and without ZooKeeper.
func TestMasterHA(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds the example binaries and runs ZooKeeper and a cluster of processes; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	if ok, why := zktest.Available(); !ok {
		t.Skipf("needs ZooKeeper: %s", why)
	}
	zoo := zktest.Start(t)
	proxy := zktest.NewProxy(t, zoo.Addr) // master-1's way to ZooKeeper
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()
	const session = 2 * time.Second
	zkURL := func(addr string) string { return "zk://" + addr + "/apron-ha" }

	startMaster := func(name, zkAddr string) *proctest.Proc {
		addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
		p := proctest.Start(t, name, exec.Command(bin["master"], "-listen", addr, "-zk", zkURL(zkAddr), "-quorum", "2",
			"-zk-session-timeout", session.String(), "-allocation-interval", "100ms",
			"-work-dir", filepath.Join(dir, name), "-log-level", "info"))
		p.Addr = addr
		p.WaitFor(t, regexp.MustCompile(`(?m)listening on http://`), wait)
		return p
	}
	masters := []*proctest.Proc{startMaster("master-1", proxy.Addr())}
	leader := waitLeader(t, masters, -1)
	require.Equal(t, 0, leader, "master-1 started first, and leads")
	masters = append(masters, startMaster("master-2", zoo.Addr), startMaster("master-3", zoo.Addr))

	startAgent := func(name string) *proctest.Proc {
		return proctest.StartServer(t, name, "/health", wait, func(addr string) *exec.Cmd {
			return exec.Command(bin["agent"], "-master", zkURL(zoo.Addr), "-listen", addr,
				"-work-dir", filepath.Join(dir, name), "-hostname", name,
				"-resources", "cpus:2;mem:2048;disk:1000;ports:[31000-32000]", "-log-level", "info")
		})
	}
	agents := []*proctest.Proc{startAgent("agent-1"), startAgent("agent-2")}
	require.Eventually(t, func() bool { return agentsRegistered(masters[0].Addr) == 2 }, wait, 50*time.Millisecond,
		"both agents find the leader through ZooKeeper")
	// Standbys send clients to the leader.
	noRedirects := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get("http://" + masters[1].Addr + "/state")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	require.Equal(t, "//"+masters[0].Addr+"/state", resp.Header.Get("Location"), "Mesos's protocol-relative form")

	operator(t, masters[0].Addr, `{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"ha","weight":3}]}}`)
	operator(t, masters[0].Addr, `{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"ha","guarantees":{"cpus":{"value":1}}}]}}`)

	events := filepath.Join(dir, "events.jsonl")
	const tasks = 16
	job := proctest.Start(t, "batch", exec.Command(bin["batch"], "-master", zkURL(zoo.Addr), "-role", "ha",
		"-failover-timeout", "1h", "-tasks", fmt.Sprint(tasks), "-cmd", "sleep $((TASK_INDEX % 3 + 1))",
		"-cpus", "0.5", "-mem", "32", "-events", events))
	job.WaitFor(t, regexp.MustCompile(`(?s)finished on.*finished on`), wait)

	// The leader is cut off from ZooKeeper: it steps down, and exits, within
	// the session timeout; a standby takes over once ZooKeeper expires it.
	proxy.Block()
	cut := time.Now()
	code := masters[0].Wait(t, wait)
	t.Logf("the cut-off leader exited (code %d) %v after the cut (session timeout %v)", code, time.Since(cut).Round(10*time.Millisecond), session)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, masters[0].Output(), "lost leadership")
	leader = waitLeader(t, masters, 0)
	t.Logf("master-%d leads %v after the cut", leader+1, time.Since(cut).Round(10*time.Millisecond))

	job.WaitFor(t, regexp.MustCompile(`(?s)framework re-registered.*finished on.*finished on.*finished on`), wait)
	// The new leader dies. Failover time: the kill, a new leader serving,
	// the framework re-subscribed, its first launch on a new offer.
	killed := time.Now()
	masters[leader].Kill(t, wait)
	next := waitLeader(t, masters, leader)
	serving := time.Since(killed)
	t.Logf("kill -9 of the leader → master-%d serving: %v", next+1, serving.Round(10*time.Millisecond))

	// Their supervisor starts the dead masters again: standbys now.
	proxy.Unblock()
	masters[0] = masters[0].Restart(t, wait)
	masters[0].WaitFor(t, regexp.MustCompile(`(?m)listening on http://`), wait)
	masters[leader] = masters[leader].Restart(t, wait)
	masters[leader].WaitFor(t, regexp.MustCompile(`(?m)listening on http://`), wait)

	require.Equal(t, 0, job.Wait(t, wait), "the job completes across both failovers")
	assert.Contains(t, job.Output(), fmt.Sprintf("%d tasks: %d finished, 0 failed for good", tasks, tasks))
	checkRanOnce(t, events, tasks)
	// The first launch once the new leader serves is on one of its offers.
	if launch, ok := firstLaunchAfter(t, events, killed.Add(serving)); ok {
		t.Logf("kill -9 of the leader → first launch on an offer of the new leader: %v (session timeout %v)",
			launch.Sub(killed).Round(10*time.Millisecond), session)
	}
	if os.Getenv("APRON_HA_LOG") != "" {
		t.Logf("killed at %s", killed.Format(time.RFC3339Nano))
		for _, p := range append(append([]*proctest.Proc{job}, masters...), agents...) {
			t.Logf("%s:\n%s", p.Name, p.Output())
		}
	}

	t.Run("WholeClusterRestart", func(t *testing.T) {
		long := proctest.Start(t, "batch-long", exec.Command(bin["batch"], "-master", zkURL(zoo.Addr), "-role", "ha",
			"-failover-timeout", "1h", "-tasks", "4", "-cmd", "sleep 120", "-cpus", "0.5", "-mem", "32", "-name", "long"))
		long.WaitFor(t, regexp.MustCompile(`(?m)^framework-id: (\S+)$`), wait)
		cur := waitLeader(t, masters, -1)
		require.Eventually(t, func() bool { return runningTasks(t, masters[cur].Addr) == 4 }, wait, 100*time.Millisecond)

		// Everything dies at once.
		long.Kill(t, wait)
		for _, p := range append(append([]*proctest.Proc{}, masters...), agents...) {
			require.NoError(t, p.Signal(syscall.SIGKILL))
			p.Wait(t, wait)
		}
		for i := range masters {
			masters[i] = masters[i].Restart(t, wait)
		}
		for i := range agents {
			agents[i] = agents[i].Restart(t, wait)
		}
		cur = waitLeader(t, masters, -1)
		require.Eventually(t, func() bool {
			return agentsRegistered(masters[cur].Addr) == 2 && runningTasks(t, masters[cur].Addr) == 4
		}, wait, 100*time.Millisecond, "the agents come back with their running tasks")
		w := operator(t, masters[cur].Addr, `{"type":"GET_WEIGHTS"}`)
		assert.Contains(t, w, `"role":"ha"`)
		assert.Contains(t, w, `"weight":3`)
		q := operator(t, masters[cur].Addr, `{"type":"GET_QUOTA"}`)
		assert.Contains(t, q, `"role":"ha"`)
		assert.Contains(t, q, `"guarantees":{"cpus":{"value":1}}`)
	})
}

// waitLeader waits for one of masters other than not to answer /health
// with 200 (only the leader does) and returns its index.
func waitLeader(t *testing.T, masters []*proctest.Proc, not int) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		alive := 0
		for i, m := range masters {
			if i == not || m.Exited() {
				continue
			}
			alive++
			resp, err := client.Get("http://" + m.Addr + "/health")
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return i
			}
		}
		if alive == 0 {
			t.Fatalf("no master left to lead")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no master leads after %v", wait)
	return -1
}

// operator posts a JSON operator call to a master and returns the answer.
func operator(t *testing.T, addr, call string) string {
	t.Helper()
	resp, err := client.Post("http://"+addr+"/api/v1", "application/json", strings.NewReader(call))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", call, body)
	return string(bytes.ReplaceAll(body, []byte(" "), nil))
}

// runningTasks counts the TASK_RUNNING tasks in the master's GET_TASKS.
func runningTasks(t *testing.T, addr string) int {
	resp, err := client.Post("http://"+addr+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_TASKS"}`))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		GetTasks struct {
			Tasks []struct {
				State string `json:"state"`
			} `json:"tasks"`
		} `json:"get_tasks"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
		return -1
	}
	n := 0
	for _, task := range r.GetTasks.Tasks {
		if task.State == "TASK_RUNNING" {
			n++
		}
	}
	return n
}

// firstLaunchAfter is the time of the first launch in the event log after t0.
func firstLaunchAfter(t *testing.T, path string, t0 time.Time) (time.Time, bool) {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev batch.Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Type != "LAUNCH" {
			continue
		}
		if at := time.Unix(0, ev.Time); at.After(t0) {
			return at, true
		}
	}
	return time.Time{}, false
}

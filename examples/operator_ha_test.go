package examples

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/service"
)

// TestOperatorHA runs two copies of the etcd operator (examples/etcd)
// with their state in a real ZooKeeper (-zk), on a master and three
// agents, all separate processes (issue 12, "the scheduler killed with
// -9 in the middle of a deploy plan: its standby finishes the plan with
// no pod launched twice"): one leads, the other stands by and redirects
// its API to the leader; the leader is killed with SIGKILL once member-1
// is launched; the standby takes over after the ZooKeeper session
// timeout, finishes the deploy, and the master knows one task per member,
// all running, none launched twice. The killed copy started again stands
// by; a copy started with another -disk (a volume size, which cannot
// change once deployed) is refused with a clear message and the running
// service is untouched. Skipped with -short, off Linux, and without etcd,
// etcdctl or ZooKeeper.
func TestOperatorHA(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process operator HA test: builds the example binaries and runs real etcd members and ZooKeeper; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	etcdBin := needEtcd(t)
	if ok, why := zktest.Available(); !ok {
		t.Skipf("needs ZooKeeper for the operators' state and election: %s", why)
	}
	zoo := zktest.Start(t)
	dir := t.TempDir()
	t.Cleanup(func() { killLeftovers(t, dir) }) // etcd members outlive the agents' SIGTERM
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/etcd")
	master, _, _ := startOperatorCluster(t, bin, dir, 3, 26000)

	zkURL := "zk://" + zoo.Addr + "/apron/etcd-ha"
	startCopy := func(name, api string, extra ...string) *proctest.Proc {
		args := append([]string{"-master", master.Addr, "-listen", api, "-zk", zkURL, "-zk-session-timeout", "2s",
			"-etcd", etcdBin, "-cpus", "0.2", "-mem", "128", "-disk", "200", "-log-level", "info"}, extra...)
		return proctest.Start(t, name, exec.Command(bin["etcd"], args...))
	}
	apiA := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	apiB := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))

	start := time.Now()
	a := startCopy("etcd-operator-a", apiA)
	require.Eventually(t, func() bool { code, _ := standbyAnswer(apiA); return code == http.StatusOK }, wait, 20*time.Millisecond, "a leads")
	b := startCopy("etcd-operator-b", apiB)
	require.Eventually(t, func() bool {
		code, loc := standbyAnswer(apiB)
		return code == http.StatusTemporaryRedirect && loc == "http://"+apiA+"/v1/plans/deploy"
	}, wait, 20*time.Millisecond, "b stands by, redirecting to a")
	assert.NotEmpty(t, deployStatus(apiB), "a client following the redirect gets the leader's plan")

	// The leader dies in the middle of the deploy plan.
	require.Eventually(t, func() bool {
		var p service.PodStatus
		return getJSON("http://"+apiA+"/v1/pods/member-1", &p) == nil && p.TaskID != ""
	}, wait, 20*time.Millisecond, "member-1 launched")
	var before []service.PodStatus
	require.NoError(t, getJSON("http://"+apiA+"/v1/pods", &before))
	a.Kill(t, wait)
	killed := time.Now()
	t.Logf("leader killed %.1f s after its start, with %s", killed.Sub(start).Seconds(), podsSummary(before))

	require.Eventually(t, func() bool { code, _ := standbyAnswer(apiB); return code == http.StatusOK }, wait, 20*time.Millisecond, "b takes over")
	t.Logf("b leads %.1f s after the kill", time.Since(killed).Seconds())
	waitDeploy(t, apiB)
	t.Logf("deploy complete %.1f s after the kill", time.Since(killed).Seconds())
	after := pods(t, apiB)
	require.Len(t, after, 3)
	for _, p := range after {
		assert.True(t, p.Ready, "%s ready", p.Name)
	}
	for _, p := range before {
		if p.TaskID != "" {
			assert.Equal(t, p.TaskID, pod(t, apiB, p.Name).TaskID, "%s's task was adopted, not launched again", p.Name)
		}
	}
	assertLaunchedOnce(t, master.Addr, []string{"member-0", "member-1", "member-2"})
	eps := endpoints(t, apiB)
	require.Len(t, eps, 3)
	ms := memberList(t, eps)
	require.Len(t, ms, 3)
	for _, m := range ms {
		assert.True(t, m.started, "member %s started", m.name)
	}
	etcdctl(t, eps, "endpoint", "health")

	// The killed copy, started again, stands by.
	a = startCopy("etcd-operator-a2", apiA)
	require.Eventually(t, func() bool {
		code, loc := standbyAnswer(apiA)
		return code == http.StatusTemporaryRedirect && loc == "http://"+apiB+"/v1/plans/deploy"
	}, wait, 20*time.Millisecond, "a stands by, redirecting to b")

	// A copy with another volume size is refused, and changes nothing.
	bad := startCopy("etcd-operator-bad", fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t)), "-disk", "300")
	assert.Equal(t, 1, bad.Wait(t, wait), "refused")
	t.Logf("the copy with -disk 300 says: %s", lastLine(bad.Output()))
	assert.Contains(t, bad.Output(), `spec change refused: pod type "member": volumes cannot change once deployed, the pods' data is on them (deployed: data of 200 MB; new: data of 300 MB)`)
	assert.Equal(t, after, pods(t, apiB), "the running service is untouched")
	code, _ := standbyAnswer(apiB)
	assert.Equal(t, http.StatusOK, code, "b still leads")
	assertLaunchedOnce(t, master.Addr, []string{"member-0", "member-1", "member-2"})
	assert.False(t, b.Exited())
}

// standbyAnswer is the status of GET /v1/plans/deploy on an operator's
// API, not following redirects, and the redirect's Location.
func standbyAnswer(api string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("http://" + api + "/v1/plans/deploy")
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// haTask is a task in the master's GET_TASKS.
type haTask struct {
	TaskID struct {
		Value string `json:"value"`
	} `json:"task_id"`
	Name  string `json:"name"`
	State string `json:"state"`
}

// assertLaunchedOnce checks every task the master knows, running or
// completed: each pod has exactly one live task, RUNNING, and a pod
// launched more than once had its earlier tasks fail (never two at once,
// never one killed to make room for a duplicate).
func assertLaunchedOnce(t *testing.T, masterAddr string, pods []string) {
	t.Helper()
	var r struct {
		GetTasks struct {
			Tasks          []haTask `json:"tasks"`
			PendingTasks   []haTask `json:"pending_tasks"`
			CompletedTasks []haTask `json:"completed_tasks"`
		} `json:"get_tasks"`
	}
	require.NoError(t, json.Unmarshal([]byte(operator(t, masterAddr, `{"type":"GET_TASKS"}`)), &r))
	live := map[string][]string{}
	for _, task := range append(r.GetTasks.Tasks, r.GetTasks.PendingTasks...) {
		live[task.Name] = append(live[task.Name], task.TaskID.Value+" "+task.State)
	}
	for _, name := range pods {
		require.Len(t, live[name], 1, "one live task of %s: %v", name, live[name])
		assert.Regexp(t, " TASK_RUNNING$", live[name][0], name)
	}
	var names []string
	for name := range live {
		names = append(names, name)
	}
	sort.Strings(names)
	assert.Equal(t, pods, names, "no task of anything else")
	for _, task := range r.GetTasks.CompletedTasks {
		assert.Contains(t, []string{"TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED"}, task.State,
			"%s's task %s ended %s: a pod launched again must have failed first", task.Name, task.TaskID.Value, task.State)
	}
	t.Logf("master's tasks: %d live, %d completed", len(r.GetTasks.Tasks)+len(r.GetTasks.PendingTasks), len(r.GetTasks.CompletedTasks))
}

func podsSummary(ps []service.PodStatus) string {
	s := ""
	for _, p := range ps {
		s += fmt.Sprintf("%s: task %q %s ready=%v; ", p.Name, p.TaskID, p.TaskState, p.Ready)
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

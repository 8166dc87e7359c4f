package compat_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/internal/zktest"
)

// nodeTasks is how many command tasks the node framework launches.
const nodeTasks = 3

// TestNodeFramework runs node/scheduler.js, a framework written with the npm
// package mesos-framework (JavaScript, written against Apache Mesos by
// others), against a master and an agent: it subscribes, launches command
// tasks through the package's own offer handling and two tasks on a custom
// executor (node/executor.js, the package's Executor class), reconciles,
// kills, and tears down. A difference both Apron's Go client and its
// servers shared would go unseen by the Go tests; not by this one.
//
// It needs node and node/node_modules (.ci/setup installs both: npm ci);
// it is skipped, saying so, when either is missing.
func TestNodeFramework(t *testing.T) {
	t.Parallel()
	node, dir := nodeClient(t)
	runNodeScheduler(t, node, dir, startCluster(t).master.Addr)
}

// TestNodeFrameworkThroughStandby runs the same framework against two
// masters elected in ZooKeeper, given the address of the standby: the
// package follows the standby's 307 to the leader (parsing Location as
// Mesos writes it, "//host:port/path") and runs its job there.
func TestNodeFrameworkThroughStandby(t *testing.T) {
	t.Parallel()
	node, dir := nodeClient(t)
	if ok, why := zktest.Available(); !ok {
		t.Skipf("needs ZooKeeper: %s", why)
	}
	zoo := zktest.Start(t)
	zk := "zk://" + zoo.Addr + "/apron-compat"
	var masters []*proctest.Proc
	for i := 0; i < 2; i++ {
		addr := "127.0.0.1:" + strconv.Itoa(proctest.FreePort(t))
		m := proctest.Start(t, "master-"+strconv.Itoa(i+1), exec.Command(binaries["master"], "-listen", addr,
			"-zk", zk, "-quorum", "1", "-zk-session-timeout", "4s", "-allocation-interval", "100ms",
			"-heartbeat-interval", "1s", "-log-level", "info"))
		m.Addr = addr
		require.NoError(t, m.WaitHTTP("http://"+addr+"/version", wait))
		if i == 0 {
			require.NoError(t, m.WaitHTTP("http://"+addr+"/health", wait), "the first master leads")
		}
		masters = append(masters, m)
	}
	proctest.StartServer(t, "agent", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(binaries["agent"], "-master", zk, "-listen", addr,
			"-work-dir", filepath.Join(t.TempDir(), "agent"), "-hostname", "localhost",
			"-resources", "cpus:4;mem:4096;disk:1000;ports:[31000-32000]",
			"-command-executor", "process", "-log-level", "info")
	})
	require.Eventually(t, func() bool { return agentsRegistered(masters[0].Addr) == 1 }, wait, 50*time.Millisecond,
		"the agent finds the leader in ZooKeeper")
	runNodeScheduler(t, node, dir, masters[1].Addr)
}

// nodeClient finds node and the npm client, or skips.
func nodeClient(t *testing.T) (node, dir string) {
	t.Helper()
	var err error
	if node, err = exec.LookPath("node"); err != nil {
		t.Skip("node is not installed (.ci/setup installs it): the mesos-framework (JavaScript) client is not run")
	}
	dir, err = filepath.Abs("node")
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mesos-framework", "package.json")); err != nil {
		t.Skip("internal/compat/node/node_modules is missing (run `npm ci` there, as .ci/setup does): the mesos-framework (JavaScript) client is not run")
	}
	return node, dir
}

// runNodeScheduler runs node/scheduler.js against the master at
// masterAddr and checks its job.
func runNodeScheduler(t *testing.T, node, dir, masterAddr string) {
	t.Helper()
	logDir := t.TempDir()
	env := append(os.Environ(),
		"COMPAT_MASTER="+masterAddr,
		"COMPAT_TASKS="+strconv.Itoa(nodeTasks),
		"COMPAT_LOG_DIR="+logDir,
		"COMPAT_TIMEOUT_MS=60000",
	)
	// The package's logger writes to ./logs when told nothing; run it in a
	// directory of the test's.
	cmd := exec.Command(node, filepath.Join(dir, "scheduler.js"))
	cmd.Env, cmd.Dir = env, t.TempDir()
	p := proctest.Start(t, "scheduler.js", cmd)
	code := p.Wait(t, 90*time.Second)
	out := p.Output()
	lines := jsonLines(out)
	if testing.Verbose() || code != 0 {
		t.Logf("scheduler.js output:\n%s", out)
		if b, err := os.ReadFile(filepath.Join(logDir, "mesos-framework.log")); err == nil && code != 0 {
			t.Logf("mesos-framework.log:\n%s", tail(string(b), 4000))
		}
	}
	require.NotEmpty(t, lines, "scheduler.js printed no JSON lines")
	last := lines[len(lines)-1]
	assert.Equal(t, "ok", last["result"], "scheduler.js result: %v", last)
	assert.Equal(t, 0, code, "scheduler.js exit status")

	finished := map[string]bool{}
	states := map[string][]string{}
	for _, l := range lines {
		if l["event"] == "update" {
			id, _ := l["task_id"].(string)
			st, _ := l["state"].(string)
			states[id] = append(states[id], st)
			if st == "TASK_FINISHED" {
				finished[id] = true
			}
		}
	}
	assert.Len(t, finished, nodeTasks+1, "the command tasks and the executor's finishing task finished: %v", states)
	killed := false
	for id, sts := range states {
		if strings.HasPrefix(id, "compat-exec-kill-") && contains(sts, "TASK_KILLED") {
			killed = true
		}
	}
	assert.True(t, killed, "the executor's running task was killed: %v", states)
	for _, ev := range []string{"subscribed", "launch_executor_tasks", "reconcile_explicit", "reconcile_implicit", "kill", "torn_down"} {
		assert.True(t, hasEvent(lines, ev), "scheduler.js reached %q", ev)
	}
}

// jsonLines decodes the lines of out that are JSON objects.
func jsonLines(out string) []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

func hasEvent(lines []map[string]any, ev string) bool {
	for _, l := range lines {
		if l["event"] == ev {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

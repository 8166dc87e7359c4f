package examples

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/examples/internal/batch"
	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/internal/zktest"
)

// TestBatchHA runs the batch framework highly available (-zk, issue 10):
// a real ZooKeeper, a master, two agents and three batch instances on one
// election path, as separate processes. The first leads; the leader is
// killed with SIGKILL while its tasks run; the next instance takes over
// once the dead one's session expires, re-subscribes with the framework
// ID stored in ZooKeeper, adopts the running tasks and finishes the job:
// every task ran once (one task ID each) and finished once. The third
// instance then leads, finds the job over in ZooKeeper and exits. Bad
// input follows: a bad URL, an unreachable ZooKeeper, a stored framework
// the master has removed. Skipped with -short, off Linux, and without
// ZooKeeper (java and Debian's zookeeper package).
func TestBatchHA(t *testing.T) {
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
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()

	master := proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-allocation-interval", "100ms", "-log-level", "info")
	})
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("agent-%d", i)
		proctest.StartServer(t, name, "/health", wait, func(addr string) *exec.Cmd {
			return exec.Command(bin["agent"], "-master", master.Addr, "-listen", addr,
				"-work-dir", filepath.Join(dir, name), "-hostname", name,
				"-resources", "cpus:2;mem:2048;disk:1000;ports:[31000-32000]", "-log-level", "info")
		})
	}
	require.Eventually(t, func() bool { return agentsRegistered(master.Addr) == 2 }, wait, 50*time.Millisecond,
		"both agents register with the master")

	const sessionTimeout = 2 * time.Second // zktest's servers allow it (minSessionTimeout 400 ms)
	conn, _, err := zk.Connect([]string{zoo.Addr}, 5*time.Second, zk.WithLogger(nopLogger{}))
	require.NoError(t, err)
	defer conn.Close()

	// job runs three instances on path, the first reaching ZooKeeper at
	// firstZK; hurt(first) takes the leader out; it returns the framework ID.
	job := func(t *testing.T, path, firstZK string, hurt func(first *proctest.Proc)) (id string, outs []string) {
		events := filepath.Join(t.TempDir(), "events.jsonl")
		// 12 tasks of 1 to 3 s, 8 at a time: the leader is hurt once two
		// have finished; the instance that takes over finishes the others.
		args := func(zkAddr string) []string {
			return []string{"-master", master.Addr, "-zk", "zk://" + zkAddr + path, "-zk-session-timeout", sessionTimeout.String(),
				"-tasks", "12", "-cmd", "sleep $((TASK_INDEX % 3 + 1))", "-cpus", "0.5", "-mem", "32", "-name", "ha", "-events", events}
		}
		first := proctest.Start(t, "batch-1", exec.Command(bin["batch"], args(firstZK)...))
		first.WaitFor(t, regexp.MustCompile(`(?m)^leading the job at `), wait)
		second := proctest.Start(t, "batch-2", exec.Command(bin["batch"], args(zoo.Addr)...))
		second.WaitFor(t, regexp.MustCompile(`(?m)^standing by: \S+ pid \d+ leads the job`), wait)
		third := proctest.Start(t, "batch-3", exec.Command(bin["batch"], args(zoo.Addr)...))
		third.WaitFor(t, regexp.MustCompile(`(?m)^standing by: `), wait)

		id = first.WaitFor(t, regexp.MustCompile(`(?m)^framework-id: (\S+)$`), wait)[1]
		// Some tasks finished (the journal says so), others run (to be
		// adopted), some may be launching.
		first.WaitFor(t, regexp.MustCompile(`(?s)finished on.*finished on`), wait)
		hurtAt := time.Now()
		hurt(first)

		second.WaitFor(t, regexp.MustCompile(`(?m)^leading the job at `), wait)
		t.Logf("the standby took over %v after the leader was hurt (session timeout %v)", time.Since(hurtAt).Round(10*time.Millisecond), sessionTimeout)
		require.Equal(t, 0, second.Wait(t, wait), "the job succeeds under the standby")
		out2 := second.Output()
		assert.Contains(t, out2, "resuming framework "+id+" from the journal in ZooKeeper")
		assert.Contains(t, out2, "framework "+id+" registered", "it re-subscribed as the same framework")
		assert.Regexp(t, `reconciling \d+ outstanding tasks`, out2, "the running tasks were reconciled")
		assert.Contains(t, out2, "12 tasks: 12 finished, 0 failed for good")

		require.Equal(t, 0, third.Wait(t, wait), "the last instance finds the job over")
		assert.Contains(t, third.Output(), "is over already (framework "+id)
		checkRanOnce(t, events, 12)

		// ZooKeeper says the job is over; its journal is cleaned up.
		data, _, err := conn.Get(path + "/" + batch.FrameworkZnode)
		require.NoError(t, err)
		var st batch.JobState
		require.NoError(t, json.Unmarshal(data, &st))
		assert.Equal(t, id, st.FrameworkID)
		assert.True(t, st.Done && st.Succeeded, "job state %s", data)
		records, _, err := conn.Children(path + "/" + batch.JournalZnode)
		require.NoError(t, err)
		assert.Empty(t, records)
		if os.Getenv("APRON_HA_LOG") != "" {
			t.Logf("first:\n%s\nsecond:\n%s\nthird:\n%s", first.Output(), out2, third.Output())
		}
		return id, []string{first.Output(), out2, third.Output()}
	}

	var removedID string
	t.Run("Kill9", func(t *testing.T) {
		id, outs := job(t, "/apron/batch-fw", zoo.Addr, func(first *proctest.Proc) {
			first.Kill(t, wait)
		})
		assert.NotContains(t, outs[0], "12 tasks:", "the leader was killed before the job ended")
		removedID = id
	})

	t.Run("Partition", func(t *testing.T) {
		// The leader is cut off from ZooKeeper (not from the master): it
		// steps down and stops talking to the master before its session
		// expires and the standby takes over; back in touch, it stands by,
		// then finds the job over.
		proxy := zktest.NewProxy(t, zoo.Addr)
		var first *proctest.Proc
		_, outs := job(t, "/apron/batch-partition", proxy.Addr(), func(p *proctest.Proc) {
			first = p
			proxy.Block()
			blocked := time.Now()
			p.WaitFor(t, regexp.MustCompile(`(?m)^lost the leadership \(election: session lost\): stopped talking to the master`), wait)
			t.Logf("the leader stepped down %v after it was cut off from ZooKeeper", time.Since(blocked).Round(10*time.Millisecond))
		})
		proxy.Unblock()
		assert.Equal(t, 0, first.Wait(t, wait), "the old leader finds the job over")
		assert.Contains(t, first.Output(), "is over already (framework ")
		assert.NotContains(t, outs[0], "12 tasks:", "the old leader did not run the job to its end")
	})

	t.Run("BadURL", func(t *testing.T) {
		for _, u := range []string{"zk://127.0.0.1/apron/x", "zk://" + zoo.Addr, "http://" + zoo.Addr + "/apron"} {
			p := proctest.Start(t, "batch-bad-url", exec.Command(bin["batch"], "-master", master.Addr, "-zk", u))
			assert.Equal(t, 2, p.Wait(t, wait), u)
			assert.Regexp(t, "-zk: (zookeeper: bad URL|.*needs a path of its own)", p.Output(), u)
		}
	})
	t.Run("ZooKeeperUnreachable", func(t *testing.T) {
		port := proctest.FreePort(t)
		p := proctest.Start(t, "batch-no-zk", exec.Command(bin["batch"], "-master", master.Addr,
			"-zk", fmt.Sprintf("zk://127.0.0.1:%d/apron/x", port), "-timeout", "3s"))
		assert.Equal(t, 2, p.Wait(t, wait), "gives up at -timeout")
		out := p.Output()
		assert.Contains(t, out, "cannot reach ZooKeeper at zk://127.0.0.1:")
		assert.NotContains(t, out, "panic")
	})
	t.Run("FrameworkRemoved", func(t *testing.T) {
		// The job's framework was torn down when the job ended; a path
		// naming it (as if the job had not been marked over) is refused.
		require.NotEmpty(t, removedID, "the Kill9 job ran")
		gone, err := json.Marshal(batch.JobState{FrameworkID: removedID})
		require.NoError(t, err)
		_, err = conn.Create("/apron/batch-removed", nil, 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
		_, err = conn.Create("/apron/batch-removed/"+batch.FrameworkZnode, gone, 0, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
		p := proctest.Start(t, "batch-removed", exec.Command(bin["batch"], "-master", master.Addr,
			"-zk", "zk://"+zoo.Addr+"/apron/batch-removed", "-tasks", "1", "-cmd", "true"))
		assert.Equal(t, 1, p.Wait(t, wait))
		assert.Contains(t, p.Output(), "the master refuses the framework stored in ZooKeeper: framework "+removedID)
	})
}

// checkRanOnce reads the event log of every batch process: each of the n
// tasks ran once and finished once: one TASK_RUNNING and one
// TASK_FINISHED update from its agent (counted by uuid: an update sent
// again to the instance that took over counts once), whatever task IDs
// it was given (an attempt whose launch never reached the master comes
// back TASK_LOST from reconciliation, and is launched again).
func checkRanOnce(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	running := map[string]map[string]bool{}  // task name -> uuids of TASK_RUNNING
	finished := map[string]map[string]bool{} // task name -> uuids of TASK_FINISHED
	add := func(m map[string]map[string]bool, name, uuid string) {
		if m[name] == nil {
			m[name] = map[string]bool{}
		}
		m[name][uuid] = true
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev batch.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "event line %q", sc.Text())
		if strings.HasPrefix(ev.TaskID, "apron-batch-reconciled-") {
			continue
		}
		name := ev.TaskID[:strings.LastIndexByte(ev.TaskID, '-')]
		names[name] = true
		if ev.UUID == "" {
			continue // the master's (reconciliation): not a run
		}
		switch ev.State {
		case "TASK_RUNNING":
			add(running, name, ev.UUID)
		case "TASK_FINISHED":
			add(finished, name, ev.UUID)
		}
	}
	require.NoError(t, sc.Err())
	assert.Len(t, names, n, "every task appears in the event log")
	for name := range names {
		assert.Len(t, running[name], 1, "task %s ran once", name)
		assert.Len(t, finished[name], 1, "task %s finished once", name)
	}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

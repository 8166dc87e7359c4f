package examples

import (
	"context"
	"fmt"
	"net/http"
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

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
	"github.com/apronhq/apron/internal/zktest"
	"github.com/apronhq/apron/service"
)

// TestZooKeeperOperator runs the ZooKeeper operator (examples/zookeeper)
// with real ZooKeeper servers on a master and 4 agents, all separate
// processes on loopback (issue 12): the 3-server ensemble forms (one
// leader, two followers); a client writes a znode; a server's JVM killed
// with SIGKILL is restarted in place on its data; the leader replaced
// through the operator's HTTP API comes back on the spare agent and the
// others are restarted one at a time to learn its address, while a
// client keeps writing (the longest gap between its writes is logged);
// a rolling zoo.cfg change never has two servers down. Skipped with -short, off Linux, and without java and Debian's
// zookeeper jar.
func TestZooKeeperOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process ZooKeeper test: builds the example binaries and runs three JVMs; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	if ok, why := zktest.Available(); !ok {
		t.Skipf("needs ZooKeeper: %s", why)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash (the servers' readiness check)")
	}
	dir := t.TempDir()
	t.Cleanup(func() { killLeftovers(t, dir) }) // JVMs outlive the agents' SIGTERM
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/zookeeper")
	master, _, _ := startOperatorCluster(t, bin, dir, 4, 26000)

	api := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	state := filepath.Join(dir, "operator-state.json")
	startOperator := func(extra ...string) *proctest.Proc {
		args := append([]string{"-master", master.Addr, "-listen", api, "-state", state,
			"-cpus", "0.2", "-mem", "320", "-disk", "100", "-tick", "500ms",
			"-jvm-flags", "-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1", "-log-level", "info"}, extra...)
		op := proctest.Start(t, "zk-operator", exec.Command(bin["zookeeper"], args...))
		require.NoError(t, op.WaitHTTP("http://"+api+"/v1/plans", wait))
		return op
	}

	start := time.Now()
	op := startOperator()
	waitDeploy(t, api)
	t.Logf("start → ensemble of 3 serving: %.1f s", time.Since(start).Seconds())
	leader := zkModes(t, api)
	// Each server's first (and only) launch knew the whole ensemble.
	for _, p := range pods(t, api) {
		assert.Equal(t, 1, p.Launches, "%s launched once", p.Name)
		conf, err := zktest.FourLetter(zkAddr(p), "conf")
		require.NoError(t, err)
		for i, q := range pods(t, api) {
			assert.Contains(t, conf, fmt.Sprintf("server.%d=%s:%d:%d", i+1, q.Hostname, q.Ports["peer"], q.Ports["election"]), "%s's zoo.cfg", p.Name)
		}
	}

	conn, _, err := zk.Connect(zkAddrs(t, api), 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Create("/apron", []byte("v1"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)

	t.Run("RestartInPlace", func(t *testing.T) {
		before := pod(t, api, "server-1")
		pid := zkPid(dir, "server-1")
		require.NotZero(t, pid, "server-1's JVM")
		killed := time.Now()
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			p := pod(t, api, "server-1")
			return p.TaskID != before.TaskID && p.Ready
		}, wait, 100*time.Millisecond, "server-1 restarted")
		t.Logf("server-1's JVM killed → restarted in place and serving: %.1f s", time.Since(killed).Seconds())
		after := pod(t, api, "server-1")
		assert.Equal(t, before.AgentID, after.AgentID, "restarted in place")
		assert.Equal(t, before.PersistenceIDs, after.PersistenceIDs)
		assert.Equal(t, "v1", zkGet(t, zkAddr(after), "/apron"), "its data is intact")
		leader = zkModes(t, api)
	})

	t.Run("ReplaceLeader", func(t *testing.T) {
		before := pod(t, api, leader)
		w := startZKWriter(conn)
		downs := watchDown(api)
		time.Sleep(time.Second) // some writes before
		replaced := time.Now()
		resp, err := client.Post("http://"+api+"/v1/pods/"+leader+"/replace", "application/json", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.Eventually(t, func() bool {
			p := pod(t, api, leader)
			return p.AgentID != before.AgentID && p.AgentID != "" && p.Ready
		}, wait, 100*time.Millisecond, "%s replaced", leader)
		t.Logf("%s (the leader) replaced → serving on the spare agent: %.1f s", leader, time.Since(replaced).Seconds())
		after := pod(t, api, leader)
		// The others are restarted to learn its new address.
		require.Eventually(t, func() bool {
			for _, p := range pods(t, api) {
				if !p.Ready || (p.Name != leader && p.Launches < 2) {
					return false
				}
			}
			return deployStatus(api) == service.StatusComplete
		}, wait, 100*time.Millisecond, "the other servers restarted")
		t.Logf("replace → every server restarted with the new address and serving: %.1f s", time.Since(replaced).Seconds())
		time.Sleep(time.Second) // some writes after
		writes, longest := w.stop()
		maxDown, _ := downs.stop()
		t.Logf("client during the replacement: %d writes, longest gap between successful writes %v", writes, longest.Round(time.Millisecond))
		assert.LessOrEqual(t, maxDown, 1, "never more than one server down: quorum kept")
		for _, p := range pods(t, api) {
			conf, err := zktest.FourLetter(zkAddr(p), "conf")
			require.NoError(t, err)
			assert.Contains(t, conf, fmt.Sprintf("=%s:%d:%d", after.Hostname, after.Ports["peer"], after.Ports["election"]), "%s's zoo.cfg names %s where it is", p.Name, leader)
		}
		assert.NotEqual(t, before.PersistenceIDs, after.PersistenceIDs, "a new volume")
		assert.Equal(t, "v1", zkGet(t, zkAddr(after), "/apron"), "the new server synced from the leader")
		data, _, err := conn.Get("/apron/w")
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(writes-1), string(data), "the last write is there")
		zkModes(t, api)
	})

	t.Run("RollingConfigChange", func(t *testing.T) {
		w := startZKWriter(conn)
		downs := watchDown(api)
		op.Stop()
		op = startOperator("-zoo-cfg", "maxClientCnxns=100")
		require.Eventually(t, func() bool {
			for _, p := range pods(t, api) {
				if p.Config != p.Target || !p.Ready || p.Launches < 2 {
					return false
				}
			}
			return deployStatus(api) == service.StatusComplete
		}, wait, 100*time.Millisecond, "the new zoo.cfg rolled out")
		maxDown, longestDown := downs.stop()
		writes, longest := w.stop()
		t.Logf("rolling change: %d writes, longest gap %v; longest server restart %v",
			writes, longest.Round(time.Millisecond), longestDown.Round(time.Millisecond))
		assert.LessOrEqual(t, maxDown, 1, "never more than one server down: quorum kept")
		for _, p := range pods(t, api) {
			conf, err := zktest.FourLetter(zkAddr(p), "conf")
			require.NoError(t, err)
			assert.Contains(t, conf, "maxClientCnxns=100", "%s runs the new zoo.cfg", p.Name)
		}
		zkModes(t, api)
		assert.Equal(t, "v1", zkGet(t, strings.Join(zkAddrs(t, api), ","), "/apron"))
	})
	op.Stop()
}

func zkAddr(p service.PodStatus) string { return fmt.Sprintf("%s:%d", p.Hostname, p.Ports["client"]) }

func zkAddrs(t *testing.T, api string) []string {
	var out []string
	for _, p := range pods(t, api) {
		out = append(out, zkAddr(p))
	}
	return out
}

// zkModes checks that the ensemble has one leader and the others follow
// (srvr's Mode), and returns the leader's pod.
func zkModes(t *testing.T, api string) (leader string) {
	t.Helper()
	modes := map[string]int{}
	for _, p := range pods(t, api) {
		out, err := zktest.FourLetter(zkAddr(p), "srvr")
		require.NoError(t, err)
		for _, line := range strings.Split(out, "\n") {
			if mode, ok := strings.CutPrefix(line, "Mode: "); ok {
				modes[mode]++
				if mode == "leader" {
					leader = p.Name
				}
			}
		}
	}
	require.Equal(t, map[string]int{"leader": 1, "follower": 2}, modes)
	return leader
}

// zkGet reads a znode through the servers at addrs (comma-separated),
// after a sync.
func zkGet(t *testing.T, addrs, path string) string {
	t.Helper()
	c, _, err := zk.Connect(strings.Split(addrs, ","), 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Sync(path)
	require.NoError(t, err)
	data, _, err := c.Get(path)
	require.NoError(t, err)
	return string(data)
}

// zkPid finds the JVM of the pod name started by an agent under dir; 0
// when there is none.
func zkPid(dir, name string) int {
	return proctest.Find(func(p proctest.Process) bool {
		return slices.Contains(p.Args, "-Dapron.pod="+name) && p.InSandboxUnder(dir)
	})
}

// zkWriter sets /apron/w to a counter every 50 ms through one client
// (which moves between servers by itself), and records the longest time
// between two successful writes.
type zkWriter struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	writes  int
	longest time.Duration
}

func startZKWriter(conn *zk.Conn) *zkWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &zkWriter{cancel: cancel, done: make(chan struct{})}
	_, _ = conn.Create("/apron/w", nil, 0, zk.WorldACL(zk.PermAll))
	go func() {
		defer close(w.done)
		last := time.Now()
		for ctx.Err() == nil {
			w.mu.Lock()
			n := w.writes
			w.mu.Unlock()
			if _, err := conn.Set("/apron/w", []byte(strconv.Itoa(n)), -1); err == nil {
				w.mu.Lock()
				w.writes++
				w.longest = max(w.longest, time.Since(last))
				w.mu.Unlock()
				last = time.Now()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

func (w *zkWriter) stop() (writes int, longest time.Duration) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes, w.longest
}

// zkQuiet drops go-zookeeper's logs (reconnections are expected here).
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

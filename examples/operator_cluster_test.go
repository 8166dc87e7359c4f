package examples

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
)

// startOperatorCluster starts the operator tests' cluster, a master and n
// agents, each a separate process on loopback, and waits until every
// agent has registered. Agent i is "agent-i", with hostOf("agent-i") as
// its hostname (the services advertise it to each other and listen on
// every address) and the ports [ports+100i, ports+100i+99]; add starts
// agent i later. The master notices a lost agent within 2 s.
func startOperatorCluster(t *testing.T, bin map[string]string, dir string, n, ports int) (master *proctest.Proc, agents map[string]*proctest.Proc, add func(i int)) {
	t.Helper()
	master = proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-allocation-interval", "100ms",
			"-agent-ping-timeout", "500ms", "-max-agent-ping-timeouts", "4", "-log-level", "info")
	})
	agents = map[string]*proctest.Proc{}
	add = func(i int) {
		name := fmt.Sprintf("agent-%d", i)
		agents[name] = proctest.StartServer(t, name, "/health", wait, func(addr string) *exec.Cmd {
			return exec.Command(bin["agent"], "-master", master.Addr, "-listen", addr,
				"-work-dir", filepath.Join(dir, name), "-hostname", hostOf(name),
				"-resources", fmt.Sprintf("cpus:2;mem:2048;disk:2000;ports:[%d-%d]", ports+100*i, ports+100*i+99), "-log-level", "info")
		})
	}
	for i := 1; i <= n; i++ {
		add(i)
	}
	require.Eventually(t, func() bool { return agentsRegistered(master.Addr) == n }, wait, 50*time.Millisecond)
	return master, agents, add
}

// needEtcd skips t without etcd and etcdctl (Debian's etcd-server and
// etcd-client) and returns etcd's path.
func needEtcd(t *testing.T) string {
	t.Helper()
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("needs etcd on PATH (Debian's etcd-server)")
	}
	if _, err := exec.LookPath("etcdctl"); err != nil {
		t.Skip("needs etcdctl on PATH (Debian's etcd-client)")
	}
	return etcd
}

// hostOf is the hostname of an agent of startOperatorCluster: a loopback
// address of its own.
func hostOf(agent string) string {
	i, _ := strconv.Atoi(strings.TrimPrefix(agent, "agent-"))
	return fmt.Sprintf("127.0.0.%d", i+1)
}

// Package compat_test is Apron's compatibility suite: it runs the example
// master and agent binaries as processes on loopback and checks, over raw
// HTTP, the facts that Apache Mesos's source and documentation state about
// its v1 HTTP APIs and endpoints, and drives a Mesos client written in
// another language (node/, the npm package mesos-framework) against them.
//
// Nothing here uses Apron's Go types: requests are JSON written by hand,
// answers are decoded into map[string]any, and streams are read off the TCP
// connection so that HTTP chunk boundaries are visible. Each fact cites the
// Mesos file it comes from (paths in apache/mesos).
package compat_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
)

// wait bounds every wait of the suite: generous, for shared, noisy
// machines; nothing here asserts a duration.
const wait = 60 * time.Second

// binaries holds the paths of the example binaries, built once by TestMain.
var binaries map[string]string

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	if runtime.GOOS != "linux" {
		fmt.Println("compat: skipped: the agent's process containerizer needs Linux")
		return 0, nil
	}
	dir, err := os.MkdirTemp("", "apron-compat-bin-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	if binaries, err = proctest.Build(dir, "examples/master", "examples/agent"); err != nil {
		return 1, err
	}
	return m.Run(), nil
}

// cluster is a master and one agent, processes of the test.
type cluster struct {
	master, agent *proctest.Proc
	agentWorkDir  string
	agentPort     int
	masterPort    int
}

// startCluster starts a master (HEARTBEAT every second, allocations every
// 100ms) and one agent whose command executors are processes of their own,
// as Mesos's are, and waits until the agent is registered.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{agentWorkDir: filepath.Join(t.TempDir(), "agent")}
	c.master = proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(binaries["master"], "-listen", addr, "-allocation-interval", "100ms",
			"-heartbeat-interval", "1s", "-log-level", "info")
	})
	c.agent = proctest.StartServer(t, "agent", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(binaries["agent"], "-master", c.master.Addr, "-listen", addr,
			"-work-dir", c.agentWorkDir, "-hostname", "localhost",
			"-resources", "cpus:4;mem:4096;disk:1000;ports:[31000-32000]",
			"-command-executor", "process", "-log-level", "info")
	})
	c.masterPort = c.master.Port
	c.agentPort = c.agent.Port
	require.Eventually(t, func() bool { return agentsRegistered(c.master.Addr) == 1 }, wait, 50*time.Millisecond,
		"the agent registers with the master")
	return c
}

// agentsRegistered counts the agents in the operator API's GET_AGENTS.
func agentsRegistered(masterAddr string) int {
	code, body := postJSON("http://"+masterAddr+"/api/v1", `{"type":"GET_AGENTS"}`, nil)
	if code != http.StatusOK {
		return -1
	}
	m, err := decodeObject(body)
	if err != nil {
		return -1
	}
	agents, _ := dig(m, "get_agents", "agents").([]any)
	return len(agents)
}

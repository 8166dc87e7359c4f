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
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wait bounds every wait of the suite: generous, for shared, noisy
// machines; nothing here asserts a duration.
const wait = 60 * time.Second

// binaries holds the paths of the example binaries, built once by TestMain.
var binaries = map[string]string{}

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
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", dir+string(filepath.Separator),
		"github.com/apronhq/apron/examples/master", "github.com/apronhq/apron/examples/agent")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("go build: %v\n%s", err, out)
	}
	binaries["master"] = filepath.Join(dir, "master")
	binaries["agent"] = filepath.Join(dir, "agent")
	return m.Run(), nil
}

// cluster is a master and one agent, processes of the test.
type cluster struct {
	master, agent *proc
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
	c.master = startWithFreePort(t, "master", func(port int) []string {
		return []string{binaries["master"], "-listen", loopback(port), "-allocation-interval", "100ms",
			"-heartbeat-interval", "1s", "-log-level", "info"}
	}, func(addr string) bool { return statusOf("http://"+addr+"/health") == http.StatusOK })
	c.agent = startWithFreePort(t, "agent", func(port int) []string {
		return []string{binaries["agent"], "-master", c.master.addr, "-listen", loopback(port),
			"-work-dir", c.agentWorkDir, "-hostname", "localhost",
			"-resources", "cpus:4;mem:4096;disk:1000;ports:[31000-32000]",
			"-command-executor", "process", "-log-level", "info"}
	}, func(addr string) bool { return statusOf("http://"+addr+"/health") == http.StatusOK })
	c.masterPort = portOf(c.master.addr)
	c.agentPort = portOf(c.agent.addr)
	require.Eventually(t, func() bool { return agentsRegistered(c.master.addr) == 1 }, wait, 50*time.Millisecond,
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

// proc is a process of the test, its output kept for the test's log.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // the address it serves on, if any

	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{} // closed when the process has been waited for
	code int
}

// start starts a process in its own process group; it and what it started
// are killed when the test ends, and its output goes to the test's log if
// the test failed.
func start(t *testing.T, name string, env []string, dir, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Dir = dir
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	require.NoError(t, p.cmd.Start(), "start %s", name)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.Write(sc.Bytes())
			p.out.WriteByte('\n')
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() {
		err := p.cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		w.Close()
		<-copied
		p.mu.Lock()
		p.code = code
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s (%s):\n%s", name, strings.Join(p.cmd.Args, " "), p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v", p.name, d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// stop ends the process and what it started: SIGTERM, a grace period,
// then SIGKILL of its process group.
func (p *proc) stop() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// startWithFreePort starts a server process on a port free at the time,
// and picks another when the process could not listen on it. ready tells
// when it serves.
func startWithFreePort(t *testing.T, name string, argv func(port int) []string, ready func(addr string) bool) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		args := argv(port)
		p := start(t, name, os.Environ(), "", args[0], args[1:]...)
		p.addr = loopback(port)
		deadline := time.Now().Add(wait)
		for !p.exited() && !ready(p.addr) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !p.exited() && ready(p.addr) {
			return p
		}
		out := p.output()
		if p.exited() && strings.Contains(out, "address already in use") && attempt < 5 {
			t.Logf("%s: port %d was taken; trying another", name, port)
			continue
		}
		t.Fatalf("%s did not start serving on %s:\n%s", name, p.addr, out)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

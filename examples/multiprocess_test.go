// Package examples holds Apron's runnable example binaries, one directory
// each, and the test that runs them as separate processes.
package examples

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wait bounds every wait of the test: generous, for shared, noisy machines;
// nothing here asserts a duration.
const wait = 2 * time.Minute

// TestMultiProcess builds the example binaries and runs a cluster of
// processes on loopback: a master, two agents (one running command
// executors in process, one as processes of their own) and the batch
// framework. A first job runs to the end; a second one is killed (SIGKILL)
// mid-job and resumed by a new process with its framework ID, which
// re-subscribes, reconciles, and finishes the job without running again
// what had finished.
func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds the example binaries and runs a cluster of processes; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	bin := buildBinaries(t, "master", "agent", "batch")
	dir := t.TempDir()

	master := startWithFreePort(t, "master", func(port int) []string {
		return []string{bin["master"], "-listen", loopback(port), "-allocation-interval", "100ms", "-log-level", "info"}
	}, func(addr string) bool { return get(addr+"/health") == http.StatusOK })
	for i, mode := range []string{"in-process", "process"} {
		name := fmt.Sprintf("agent-%d", i+1)
		startWithFreePort(t, name, func(port int) []string {
			return []string{bin["agent"], "-master", master.addr, "-listen", loopback(port),
				"-work-dir", filepath.Join(dir, name), "-hostname", name,
				"-resources", "cpus:2;mem:2048;disk:1000;ports:[31000-32000]", "-attributes", "rack:r" + strconv.Itoa(i+1),
				"-command-executor", mode, "-log-level", "info"}
		}, func(addr string) bool { return get(addr+"/health") == http.StatusOK })
	}
	require.Eventually(t, func() bool { return agentsRegistered(master.addr) == 2 }, wait, 50*time.Millisecond,
		"both agents register with the master")

	t.Run("Job", func(t *testing.T) {
		batch := start(t, "batch", bin["batch"], "-master", master.addr, "-tasks", "6",
			"-cmd", `echo "task $TASK_INDEX in $MESOS_SANDBOX"`, "-cpus", "0.5", "-mem", "32", "-name", "job",
			"-journal-dir", t.TempDir())
		require.Equal(t, 0, batch.wait(t), "the batch job succeeds")
		out := batch.output()
		assert.Contains(t, out, "6 tasks: 6 finished, 0 failed for good")
		assert.Regexp(t, `(?m)^framework-id: \S+$`, out)
		// 6 tasks of 0.5 cpus do not fit on one agent of 2: both ran some,
		// agent-2 with command executor processes.
		assert.Contains(t, out, "finished on agent-1")
		assert.Contains(t, out, "finished on agent-2")
	})

	t.Run("Failover", func(t *testing.T) {
		journal := t.TempDir()
		// Tasks of 1 to 3 seconds: some finish before the kill, some run
		// through it, none is launched after it.
		args := []string{"-master", master.addr, "-tasks", "8", "-cmd", `sleep $((TASK_INDEX % 3 + 1)); echo done`,
			"-cpus", "0.5", "-mem", "32", "-failover-timeout", "60s", "-journal-dir", journal, "-name", "failover"}
		first := start(t, "batch-1", bin["batch"], args...)
		idLine := first.waitFor(t, regexp.MustCompile(`(?m)^framework-id: (\S+)$`))
		id := idLine[1]
		first.waitFor(t, regexp.MustCompile(`(?s)finished on.*finished on`)) // two done
		require.NoError(t, first.cmd.Process.Kill(), "SIGKILL the framework mid-job")
		first.wait(t)
		out1 := first.output()
		require.NotContains(t, out1, "8 tasks:", "the first process was killed before the job ended")
		finished1 := matches(`(?m)(task-\d+)-\d+\s+finished on`, out1)
		require.GreaterOrEqual(t, len(finished1), 2)

		second := start(t, "batch-2", bin["batch"], append(args, "-framework-id", id)...)
		require.Equal(t, 0, second.wait(t), "the resumed job succeeds")
		out2 := second.output()
		if testing.Verbose() {
			t.Logf("first run, killed:\n%s\nsecond run:\n%s", out1, out2)
		}
		assert.Contains(t, out2, "resuming framework "+id+" from the journal")
		assert.Contains(t, out2, "framework "+id+" registered", "it re-subscribed as the same framework")
		assert.Regexp(t, `reconciling \d+ outstanding tasks`, out2, "tasks left running were reconciled")
		assert.Contains(t, out2, "reconciled (")
		assert.Contains(t, out2, "8 tasks: 8 finished, 0 failed for good")
		for _, name := range matches(`(?m)(task-\d+)-\d+\s+running on`, out2) {
			assert.NotContains(t, finished1, name, "task %s, finished before the kill, ran again", name)
		}
		assert.Empty(t, matches(`(task-\d+-[2-9])`, out1+out2), "no task needed a second attempt")
	})
}

// buildBinaries builds the named example commands into a temporary
// directory and returns their paths.
func buildBinaries(t *testing.T, names ...string) map[string]string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, statErr := os.Stat(goTool); statErr != nil {
			t.Skipf("multi-process test: needs the go tool to build the example binaries (%v)", err)
		}
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "github.com/apronhq/apron/examples/"+n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, args...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	paths := map[string]string{}
	for _, n := range names {
		paths[n] = filepath.Join(dir, n)
	}
	return paths
}

// proc is a process of the test, its output kept for the test's log.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // the address it serves on, if any

	mu     sync.Mutex
	out    bytes.Buffer
	change chan struct{} // closed and replaced when output arrives
	done   chan struct{} // closed when the process has been waited for
	code   int
}

// start starts a process; it is killed when the test ends, and its output
// goes to the test's log if the test failed.
func start(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, change: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	// Its own process group, so that what it starts (executor processes)
	// is killed with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	require.NoError(t, p.cmd.Start(), "start %s", name)
	go p.read(r)
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

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.out.Write(sc.Bytes())
		p.out.WriteByte('\n')
		close(p.change)
		p.change = make(chan struct{})
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
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
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(wait):
		t.Fatalf("%s did not exit within %v", p.name, wait)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// waitFor waits until the output matches re and returns the submatches.
func (p *proc) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(wait)
	for {
		p.mu.Lock()
		m := re.FindStringSubmatch(p.out.String())
		change := p.change
		p.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-change:
		case <-p.done:
			// The last output may have come with the exit.
			if m := re.FindStringSubmatch(p.output()); m != nil {
				return m
			}
			t.Fatalf("%s exited without printing %q", p.name, re)
		case <-deadline:
			t.Fatalf("%s did not print %q within %v", p.name, re, wait)
		}
	}
}

// stop ends the process and what it started: SIGTERM, a grace period,
// then SIGKILL of its process group.
func (p *proc) stop() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// startWithFreePort starts a server process on a port free at the time,
// and picks another when the process could not listen on it (another
// process took it meanwhile). ready tells when it serves.
func startWithFreePort(t *testing.T, name string, argv func(port int) []string, ready func(addr string) bool) *proc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		args := argv(port)
		p := start(t, name, args[0], args[1:]...)
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

var client = &http.Client{Timeout: 5 * time.Second}

// get returns the status of a GET, 0 when the request failed.
func get(addr string) int {
	resp, err := client.Get("http://" + addr)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// agentsRegistered counts the agents in the master's /state.
func agentsRegistered(masterAddr string) int {
	resp, err := client.Get("http://" + masterAddr + "/state")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var st struct {
		GetAgents struct {
			Agents []json.RawMessage `json:"agents"`
		} `json:"get_agents"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return -1
	}
	return len(st.GetAgents.Agents)
}

// matches returns the first submatch of every match of re in s.
func matches(re, s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// Package examples holds Apron's runnable example binaries, one directory
// each, and the test that runs them as separate processes.
package examples

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
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
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()

	master := proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-allocation-interval", "100ms", "-log-level", "info")
	})
	for i, mode := range []string{"in-process", "process"} {
		name := fmt.Sprintf("agent-%d", i+1)
		proctest.StartServer(t, name, "/health", wait, func(addr string) *exec.Cmd {
			return exec.Command(bin["agent"], "-master", master.Addr, "-listen", addr,
				"-work-dir", filepath.Join(dir, name), "-hostname", name,
				"-resources", "cpus:2;mem:2048;disk:1000;ports:[31000-32000]", "-attributes", "rack:r"+strconv.Itoa(i+1),
				"-command-executor", mode, "-log-level", "info")
		})
	}
	require.Eventually(t, func() bool { return agentsRegistered(master.Addr) == 2 }, wait, 50*time.Millisecond,
		"both agents register with the master")

	t.Run("Job", func(t *testing.T) {
		batch := proctest.Start(t, "batch", exec.Command(bin["batch"], "-master", master.Addr, "-tasks", "6",
			"-cmd", `echo "task $TASK_INDEX in $MESOS_SANDBOX"`, "-cpus", "0.5", "-mem", "32", "-name", "job",
			"-journal-dir", t.TempDir()))
		require.Equal(t, 0, batch.Wait(t, wait), "the batch job succeeds")
		out := batch.Output()
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
		args := []string{"-master", master.Addr, "-tasks", "8", "-cmd", `sleep $((TASK_INDEX % 3 + 1)); echo done`,
			"-cpus", "0.5", "-mem", "32", "-failover-timeout", "60s", "-journal-dir", journal, "-name", "failover"}
		first := proctest.Start(t, "batch-1", exec.Command(bin["batch"], args...))
		idLine := first.WaitFor(t, regexp.MustCompile(`(?m)^framework-id: (\S+)$`), wait)
		id := idLine[1]
		first.WaitFor(t, regexp.MustCompile(`(?s)finished on.*finished on`), wait) // two done
		require.NoError(t, first.Cmd.Process.Kill(), "SIGKILL the framework mid-job")
		first.Wait(t, wait)
		out1 := first.Output()
		require.NotContains(t, out1, "8 tasks:", "the first process was killed before the job ended")
		finished1 := matches(`(?m)(task-\d+)-\d+\s+finished on`, out1)
		require.GreaterOrEqual(t, len(finished1), 2)

		second := proctest.Start(t, "batch-2", exec.Command(bin["batch"], append(args, "-framework-id", id)...))
		require.Equal(t, 0, second.Wait(t, wait), "the resumed job succeeds")
		out2 := second.Output()
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

var client = &http.Client{Timeout: 5 * time.Second}

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

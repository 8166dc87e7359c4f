package examples

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
)

// TestAgentExecutorAuthentication runs an agent with
// -authenticate-http-executors: its command executors (processes of their
// own) subscribe and report with the token the agent gave them, so the
// job completes, while a forged TASK_FINISHED for a running task, without
// the token or with one signed by another key, is refused and changes
// nothing (issue 13's first attack).
func TestAgentExecutorAuthentication(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: builds the example binaries; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("multi-process test: the agents' process containerizer needs Linux")
	}
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()
	key := filepath.Join(dir, "executor.key")
	require.NoError(t, os.WriteFile(key, []byte("a secret only the agent knows, 32+ bytes"), 0o600))

	master := proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-allocation-interval", "100ms")
	})
	agent := proctest.StartServer(t, "agent", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["agent"], "-master", master.Addr, "-listen", addr, "-work-dir", filepath.Join(dir, "agent"),
			"-hostname", "agent", "-resources", "cpus:2;mem:1024;disk:1000;ports:[31000-32000]",
			"-command-executor", "process", "-authenticate-http-executors", "-executor-secret-key", key)
	})
	batch := proctest.Start(t, "batch", exec.Command(bin["batch"], "-master", master.Addr, "-tasks", "1",
		"-cmd", "sleep 4", "-cpus", "0.1", "-mem", "16", "-name", "exec-auth", "-journal-dir", t.TempDir(), "-timeout", "90s"))

	// The running task, as the agent's /state shows it.
	type task struct {
		ID          string `json:"id"`
		State       string `json:"state"`
		FrameworkID string `json:"framework_id"`
		ExecutorID  string `json:"executor_id"`
	}
	var running task
	require.Eventually(t, func() bool {
		resp, err := client.Get("http://" + agent.Addr + "/state")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Frameworks []struct {
				ID        string `json:"id"`
				Executors []struct {
					ID    string `json:"id"`
					Tasks []task `json:"tasks"`
				} `json:"executors"`
			} `json:"frameworks"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		for _, f := range st.Frameworks {
			for _, e := range f.Executors {
				for _, tk := range e.Tasks {
					if tk.State == "TASK_RUNNING" {
						running = tk
						running.FrameworkID, running.ExecutorID = f.ID, e.ID
						return true
					}
				}
			}
		}
		return false
	}, wait, 50*time.Millisecond, "a task runs: its executor subscribed with its token")

	forged := fmt.Sprintf(`{"type":"UPDATE","framework_id":{"value":%q},"executor_id":{"value":%q},`+
		`"update":{"status":{"task_id":{"value":%q},"state":"TASK_FINISHED","source":"SOURCE_EXECUTOR","uuid":"AAECAwQFBgcICQoLDA0ODw=="}}}`,
		running.FrameworkID, running.ExecutorID, running.ID)
	// A token of the right shape signed with another key.
	otherKey := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJmaWQiOiJ4In0.c2lnbmF0dXJlLW9mLWFub3RoZXIta2V5"
	for _, authz := range []string{"", "Bearer " + otherKey} {
		req, err := http.NewRequest(http.MethodPost, "http://"+agent.Addr+"/api/v1/executor", strings.NewReader(forged))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "forged update (%q): %s", authz, body)
	}

	require.Equal(t, 0, batch.Wait(t, wait), batch.Output())
	assert.Contains(t, batch.Output(), "1 tasks: 1 finished, 0 failed for good")
}

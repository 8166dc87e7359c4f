package executor

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// serveFiles serves files by path; anything else is a 404.
func serveFiles(t *testing.T, files map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func withURIs(ti mesospb.TaskInfo, uris ...mesospb.CommandInfo_URI) mesospb.TaskInfo {
	ti.Command.URIs = uris
	return ti
}

func boolPtr(b bool) *bool { return &b }

// Each task of a group finds its own URIs in its own sandbox
// (<executor sandbox>/tasks/<task>), fetched before it starts.
func TestDefaultExecutorFetchesEachTasksURIs(t *testing.T) {
	srv := serveFiles(t, map[string]string{
		"/a/data.txt": "for a\n",
		"/b/tool.sh":  "#!/bin/sh\necho tool of b\n",
	})
	h := newCmdHarness(t)
	h.start(NewDefaultExecutor(h.cfg))
	h.agent.push(t, launchGroupEvent(
		withURIs(shellTask("a", "cat data.txt > out.txt && test ! -e tool.sh"),
			mesospb.CommandInfo_URI{Value: srv.URL + "/a/data.txt"}),
		withURIs(shellTask("b", "./tool.sh > out.txt && test ! -e data.txt"),
			mesospb.CommandInfo_URI{Value: srv.URL + "/b/tool.sh", Executable: boolPtr(true)}),
		shellTask("c", "true"),
	))
	h.waitStates("a", finished...)
	h.waitStates("b", finished...)
	h.waitStates("c", finished...)

	sandboxA := filepath.Join(h.cfg.Sandbox, "tasks", "a")
	sandboxB := filepath.Join(h.cfg.Sandbox, "tasks", "b")
	assert.Equal(t, "for a\n", h.readFile(filepath.Join(sandboxA, "out.txt")))
	assert.Equal(t, "tool of b\n", h.readFile(filepath.Join(sandboxB, "out.txt")))
	st, err := os.Stat(filepath.Join(sandboxB, "tool.sh"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
	assert.NoFileExists(t, filepath.Join(h.cfg.Sandbox, "data.txt"), "not in the executor's sandbox")
	assert.Contains(t, h.readFile(filepath.Join(sandboxA, "stderr")), "Fetching URI '"+srv.URL+"/a/data.txt'")
	h.requireStopped()
}

// A failed fetch fails the whole group, which never runs: the task whose
// fetch failed with Mesos's reason and message, the others naming it.
func TestDefaultExecutorFetchFailureFailsGroup(t *testing.T) {
	srv := serveFiles(t, map[string]string{"/ok.txt": "fine\n"})
	h := newCmdHarness(t)
	h.start(NewDefaultExecutor(h.cfg))
	h.agent.push(t, launchGroupEvent(
		withURIs(shellTask("ok", "echo ran > ran.txt; sleep 100"), mesospb.CommandInfo_URI{Value: srv.URL + "/ok.txt"}),
		withURIs(shellTask("missing", "echo ran > ran.txt"), mesospb.CommandInfo_URI{Value: srv.URL + "/missing.txt"}),
		shellTask("plain", "echo ran > ran.txt; sleep 100"),
	))
	fetchFailed := []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_FAILED}
	ups := h.waitStates("missing", fetchFailed...)
	assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, ups[1].GetReason())
	assert.Equal(t, "Failed to fetch all URIs for container 'run1.missing': fetching '"+srv.URL+
		"/missing.txt': HTTP error: 404 Not Found", ups[1].GetMessage())
	for _, id := range []string{"ok", "plain"} {
		ups := h.waitStates(id, fetchFailed...)
		assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED, ups[1].GetReason(), id)
		assert.True(t, strings.HasPrefix(ups[1].GetMessage(), `Task "missing" of the group failed to launch: Failed to fetch all URIs`),
			ups[1].GetMessage())
	}
	for _, id := range []string{"ok", "missing", "plain"} {
		assert.NoFileExists(t, filepath.Join(h.cfg.Sandbox, "tasks", id, "ran.txt"), "task %s never ran", id)
	}
	h.requireStopped()
}

// A kill while the group's URIs are fetched cancels the fetch and kills
// the whole group before anything runs.
func TestDefaultExecutorKillDuringFetch(t *testing.T) {
	requested := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requested <- struct{}{}
		<-r.Context().Done() // never answers: only a cancelled fetch ends
	}))
	t.Cleanup(srv.Close)
	h := newCmdHarness(t)
	h.start(NewDefaultExecutor(h.cfg))
	h.agent.push(t, launchGroupEvent(
		withURIs(shellTask("slow", "echo ran > ran.txt"), mesospb.CommandInfo_URI{Value: srv.URL + "/slow"}),
		shellTask("other", "echo ran > ran.txt"),
	))
	select {
	case <-requested:
	case <-time.After(waitFor):
		t.Fatal("no fetch")
	}
	h.agent.push(t, killEvent("other", -1))
	killedEarly := []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_KILLED}
	ups := h.waitStates("other", killedEarly...)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, ups[1].GetReason())
	assert.Equal(t, "Task killed before it was launched", ups[1].GetMessage())
	ups = h.waitStates("slow", killedEarly...)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, ups[1].GetReason())
	assert.Equal(t, `Task "other" of the group was killed before it was launched`, ups[1].GetMessage())
	assert.NoFileExists(t, filepath.Join(h.cfg.Sandbox, "tasks", "slow", "ran.txt"))
	h.requireStopped()
}

package agent_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// filesGet GETs a files endpoint of the agent and decodes its JSON.
func filesGet(t *testing.T, h *harness, endpoint string, q url.Values, into any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, endpoint+"?"+q.Encode(), nil))
	if rec.Code == http.StatusOK && into != nil {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), into), rec.Body.String())
	}
	return rec.Code
}

// filesOperator posts a JSON operator call and decodes the JSON answer.
func filesOperator(t *testing.T, h *harness, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, agent.OperatorAPIPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return rec.Code, nil
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
	return rec.Code, m
}

// A task's stdout is readable through /files/read and READ_FILE, under the
// sandbox's real path and Mesos's virtual path, and listed by
// /files/browse and LIST_FILES.
func TestFilesAgentReadsTaskStdout(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo hello from the task")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
	runs, err := filepath.Glob(filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1", "executors", "t1", "runs", "*"))
	require.NoError(t, err)
	require.Len(t, runs, 1)
	sandbox := runs[0]

	want := "hello from the task\n"
	for _, p := range []string{
		sandbox + "/stdout",
		"/frameworks/fw-1/executors/t1/runs/latest/stdout",
		filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1", "executors", "t1", "runs", "latest", "stdout"),
	} {
		var got map[string]any
		require.Equal(t, http.StatusOK, filesGet(t, h, "/files/read", url.Values{"path": {p}, "offset": {"0"}}, &got), p)
		assert.Equal(t, map[string]any{"data": want, "offset": float64(0)}, got, p)
		require.Equal(t, http.StatusOK, filesGet(t, h, "/files/read", url.Values{"path": {p}, "offset": {"-1"}}, &got), p)
		assert.Equal(t, map[string]any{"data": "", "offset": float64(len(want))}, got, p)
	}

	var list []map[string]any
	require.Equal(t, http.StatusOK, filesGet(t, h, "/files/browse", url.Values{"path": {sandbox}}, &list))
	paths := map[string]bool{}
	for _, e := range list {
		paths[e["path"].(string)] = true
		assert.Contains(t, e, "mode")
		assert.Contains(t, e, "uid")
	}
	assert.True(t, paths[sandbox+"/stdout"], "listing: %v", list)
	assert.True(t, paths[sandbox+"/stderr"], "listing: %v", list)

	// READ_FILE answers the size and the bytes (base64 in JSON, as bytes).
	code, resp := filesOperator(t, h, `{"type":"READ_FILE","read_file":{"path":"/frameworks/fw-1/executors/t1/runs/latest/stdout","offset":6,"length":4}}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "READ_FILE", resp["type"])
	rf := resp["read_file"].(map[string]any)
	assert.Equal(t, float64(len(want)), rf["size"])
	data, err := base64.StdEncoding.DecodeString(rf["data"].(string))
	require.NoError(t, err)
	assert.Equal(t, "from", string(data))

	code, resp = filesOperator(t, h, `{"type":"LIST_FILES","list_files":{"path":"`+sandbox+`"}}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "LIST_FILES", resp["type"])
	infos := resp["list_files"].(map[string]any)["file_infos"].([]any)
	require.NotEmpty(t, infos)
	first := infos[0].(map[string]any)
	for _, k := range []string{"path", "nlink", "size", "mtime", "mode", "uid", "gid"} {
		assert.Contains(t, first, k)
	}

	// Mesos's refusals.
	code, _ = filesOperator(t, h, `{"type":"READ_FILE","read_file":{"path":"/frameworks/fw-1/executors/t1/runs/latest/../../../../../etc/passwd","offset":0}}`)
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = filesOperator(t, h, `{"type":"READ_FILE","read_file":{"path":"/frameworks/fw-1/executors/nope/runs/latest/stdout","offset":0}}`)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = filesOperator(t, h, `{"type":"READ_FILE"}`)
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = filesOperator(t, h, `{"type":"LIST_FILES"}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, http.StatusNotFound, filesGet(t, h, "/files/read", url.Values{"path": {"/etc/passwd"}, "offset": {"0"}}, nil))

	var dbg map[string]string
	require.Equal(t, http.StatusOK, filesGet(t, h, "/files/debug", nil, &dbg))
	assert.Equal(t, sandbox, dbg["/frameworks/fw-1/executors/t1/runs/latest"])
	assert.Equal(t, sandbox, dbg[sandbox])
}

// A sandbox's paths are detached when it is garbage collected; until then
// the finished task's output stays readable.
func TestFilesAgentDetachesCollectedSandbox(t *testing.T) {
	h, _ := gcHarness(t, noDiskWatch)
	h.waitRegistered()
	sandbox := h.gcFinish("t1")
	var got map[string]any
	latest := "/frameworks/fw-1/executors/t1/runs/latest/out"
	require.Equal(t, http.StatusOK, filesGet(t, h, "/files/read", url.Values{"path": {latest}, "offset": {"0"}}, &got))
	assert.Equal(t, "hi\n", got["data"])

	h.gcAdvance(gcDelay)
	gcWaitGone(t, sandbox)
	var dbg map[string]string
	require.Eventually(t, func() bool {
		require.Equal(t, http.StatusOK, filesGet(t, h, "/files/debug", nil, &dbg))
		return len(dbg) == 0
	}, waitFor, tick, "attached: %v", dbg)
	assert.Equal(t, http.StatusNotFound, filesGet(t, h, "/files/read", url.Values{"path": {latest}, "offset": {"0"}}, nil))
}

// An embedder's log file, attached as Mesos attaches /slave/log.
func TestFilesAgentAttachFile(t *testing.T) {
	h := newHarness(t)
	log := filepath.Join(t.TempDir(), "agent.log")
	require.NoError(t, os.WriteFile(log, []byte("line 1\nline 2\n"), 0o644))
	require.NoError(t, h.a.AttachFile(log, "/slave/log"))
	var got map[string]any
	require.Equal(t, http.StatusOK, filesGet(t, h, "/files/read", url.Values{"path": {"/slave/log"}, "offset": {"7"}}, &got))
	assert.Equal(t, "line 2\n", got["data"])
	h.a.DetachFile("/slave/log")
	assert.Equal(t, http.StatusNotFound, filesGet(t, h, "/files/read", url.Values{"path": {"/slave/log"}}, nil))
}

// A restarted agent attaches the sandboxes of the runs it recovers.
func TestFilesAgentRecoveredSandbox(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo started; sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	require.Eventually(t, func() bool { return h.sandboxFile("t1", "stdout") == "started\n" }, waitFor, tick)
	h.stop()

	h.start()
	h.waitRegistered()
	var got map[string]any
	require.Equal(t, http.StatusOK, filesGet(t, h, "/files/read",
		url.Values{"path": {"/frameworks/fw-1/executors/t1/runs/latest/stdout"}, "offset": {"0"}}, &got))
	assert.Equal(t, "started\n", got["data"])

	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
}

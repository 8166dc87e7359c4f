package master_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
)

// filesAgent is an agent's HTTP API (a real agent's Handler, not running:
// its files API needs no master) on loopback, registered with the master
// under its address.
type filesAgent struct {
	id      string
	sandbox string // a sandbox at the agent's real layout, holding stdout
	srv     *httptest.Server
}

func registerFilesAgent(t *testing.T, m *master.Master, port int) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, events, err := m.ConnectAgent(ctx, &internalpb.Call{
		Type: internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
			Hostname: "127.0.0.1", Port: ptr(int32(port)),
		}},
	})
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, internalpb.Event_REGISTERED, ev.GetType())
	go func() {
		for range events { // the master's pings: unanswered, harmless here
		}
	}()
	return ev.Registered.AgentID.Value
}

func startFilesAgent(t *testing.T, m *master.Master) *filesAgent {
	t.Helper()
	dir := t.TempDir()
	a, err := agent.New(agent.Config{Master: m, WorkDir: dir, Resources: "cpus:1;mem:64;disk:64", Hostname: "127.0.0.1"})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	id := registerFilesAgent(t, m, srv.Listener.Addr().(*net.TCPAddr).Port)
	sandbox := filepath.Join(dir, "agents", id, "frameworks", "fw-1", "executors", "ex-1", "runs", "run-1")
	require.NoError(t, os.MkdirAll(sandbox, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(sandbox, "stdout"), []byte("task output\n"), 0o644))
	require.NoError(t, a.AttachFile(sandbox, sandbox))
	require.NoError(t, a.AttachFile(sandbox, "/frameworks/fw-1/executors/ex-1/runs/latest"))
	return &filesAgent{id: id, sandbox: sandbox, srv: srv}
}

func filesQuery(endpoint string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return endpoint + "?" + q.Encode()
}

func decodeJSON(t *testing.T, text string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(text), &m), text)
	return m
}

// postOperatorJSON posts an operator call as JSON to the master.
func postOperatorJSON(t *testing.T, h *httpMaster, body string) (int, map[string]any) {
	t.Helper()
	resp := h.post("/api/v1", "application/json", "", []byte(body))
	text := bodyText(t, resp)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, decodeJSON(t, text)
}

func bodyText(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// The master forwards a request for a sandbox to the agent that holds it:
// by the agent ID in the sandbox's real path, or by agent_id=.
func TestFilesMasterProxiesToAgent(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	ag := startFilesAgent(t, h.m)
	stdout := ag.sandbox + "/stdout"

	resp, text := h.get(filesQuery("/files/read", "path", stdout, "offset", "0"))
	require.Equal(t, http.StatusOK, resp.StatusCode, text)
	assert.Equal(t, map[string]any{"data": "task output\n", "offset": float64(0)}, decodeJSON(t, text))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	resp, text = h.get(filesQuery("/files/read", "path", stdout))
	require.Equal(t, http.StatusOK, resp.StatusCode, text)
	assert.Equal(t, map[string]any{"data": "", "offset": float64(12)}, decodeJSON(t, text), "no offset: the size")

	resp, text = h.get(filesQuery("/files/read", "path", "/frameworks/fw-1/executors/ex-1/runs/latest/stdout", "offset", "5", "agent_id", ag.id))
	require.Equal(t, http.StatusOK, resp.StatusCode, text)
	assert.Equal(t, "output\n", decodeJSON(t, text)["data"])

	resp, text = h.get(filesQuery("/files/browse", "path", ag.sandbox))
	require.Equal(t, http.StatusOK, resp.StatusCode, text)
	var list []map[string]any
	require.NoError(t, json.Unmarshal([]byte(text), &list))
	require.Len(t, list, 1)
	assert.Equal(t, stdout, list[0]["path"])
	assert.Equal(t, "-rw-r--r--", list[0]["mode"])

	resp, text = h.get(filesQuery("/files/download", "path", stdout))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "task output\n", text)
	assert.Equal(t, "attachment; filename=stdout", resp.Header.Get("Content-Disposition"))

	resp, text = h.get(filesQuery("/files/debug", "agent_id", ag.id))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, ag.sandbox, decodeJSON(t, text)[ag.sandbox], "the agent's table")

	// The agent's refusals come back as they are.
	resp, _ = h.get(filesQuery("/files/read", "path", ag.sandbox+"/../../../../../../../../etc/passwd", "offset", "0"))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = h.get(filesQuery("/files/read", "path", ag.sandbox+"/missing", "offset", "0"))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// READ_FILE and LIST_FILES through the master's operator API.
	code, out := postOperatorJSON(t, h, `{"type":"READ_FILE","read_file":{"path":"`+stdout+`","offset":0,"length":4}}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "READ_FILE", out["type"])
	rf := out["read_file"].(map[string]any)
	assert.Equal(t, float64(12), rf["size"])
	data, err := base64.StdEncoding.DecodeString(rf["data"].(string))
	require.NoError(t, err)
	assert.Equal(t, "task", string(data))

	code, out = postOperatorJSON(t, h, `{"type":"LIST_FILES","list_files":{"path":"`+ag.sandbox+`"}}`)
	require.Equal(t, http.StatusOK, code)
	infos := out["list_files"].(map[string]any)["file_infos"].([]any)
	require.Len(t, infos, 1)
	fi := infos[0].(map[string]any)
	assert.Equal(t, stdout, fi["path"])
	assert.Equal(t, float64(0o100644), fi["mode"], "st_mode bits, as Mesos's FileInfo")
	for _, k := range []string{"nlink", "size", "mtime", "uid", "gid"} {
		assert.Contains(t, fi, k)
	}

	code, _ = postOperatorJSON(t, h, `{"type":"READ_FILE","read_file":{"path":"`+ag.sandbox+`/missing","offset":0}}`)
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = postOperatorJSON(t, h, `{"type":"READ_FILE"}`)
	assert.Equal(t, http.StatusBadRequest, code)
}

func TestFilesMasterUnknownAndUnreachableAgents(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	resp, _ := h.get(filesQuery("/files/read", "path", "/x", "agent_id", "no-such-agent"))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = h.get(filesQuery("/files/read", "path", "/work/agents/no-such-agent/frameworks/f/stdout", "offset", "0"))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	code, _ := postOperatorJSON(t, h, `{"type":"READ_FILE","read_file":{"path":"/work/slaves/no-such-agent/x","offset":0}}`)
	assert.Equal(t, http.StatusNotFound, code)

	// An agent whose address answers nothing: its port is closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	id := registerFilesAgent(t, h.m, port)
	p := "/work/agents/" + id + "/frameworks/f/executors/e/runs/r/stdout"
	resp, text := h.get(filesQuery("/files/read", "path", p, "offset", "0"))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, text)
	assert.Contains(t, text, "127.0.0.1:"+strconv.Itoa(port))
	code, _ = postOperatorJSON(t, h, `{"type":"LIST_FILES","list_files":{"path":"`+p+`"}}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// The master's own files, as Mesos's /master/log, are its to serve, on a
// standby too; what it would forward, a standby sends to the leader.
func TestFilesMasterOwnFilesAndStandby(t *testing.T) {
	log := filepath.Join(t.TempDir(), "master.log")
	require.NoError(t, os.WriteFile(log, []byte("I1207 started\n"), 0o644))

	h := startHTTPMaster(t, master.Config{Leadership: fakeLeadership{leader: "http://leader.example:5050"}})
	require.NoError(t, h.m.AttachFile(log, "/master/log"))
	resp, text := h.get(filesQuery("/files/read", "path", "/master/log", "offset", "0"))
	require.Equal(t, http.StatusOK, resp.StatusCode, text)
	assert.Equal(t, "I1207 started\n", decodeJSON(t, text)["data"])
	resp, text = h.get("/files/debug")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"/master/log": log}, decodeJSON(t, text))

	resp, _ = h.get(filesQuery("/files/read", "path", "/x", "agent_id", "a-1"))
	assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	assert.Equal(t, "//leader.example:5050/files/read?agent_id=a-1&path=%2Fx", resp.Header.Get("Location"))

	h.m.DetachFile("/master/log")
	resp, _ = h.get(filesQuery("/files/read", "path", "/master/log", "offset", "0"))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

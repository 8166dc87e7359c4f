package agent_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
)

// testJWT signs claims as RFC 7519 says, independently of the agent's
// code: header and payload base64url without padding, HMAC-SHA256 over
// "header.payload".
func testJWT(key []byte, header string, claims map[string]string) string {
	payload, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

const hs256 = `{"alg":"HS256","typ":"JWT"}`

// postExecutorAs posts a call to the executor API with an Authorization
// header ("" for none).
func postExecutorAs(t *testing.T, url, authorization, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+agent.ExecutorAPIPath, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", codec.MediaTypeJSON)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// The first attack: with executor authentication on, nobody
// without the executor's token reports its task finished, and an
// executor's token does not speak for another executor; the real
// executors (processes, with the token the agent gave them) run their
// tasks.
func TestExecutorTokens(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h := newHTTPHarness(t, func(c *agent.Config) {
		c.CommandExecutorMode = agent.CommandExecutorProcess
		c.AuthenticateHTTPExecutors = true
		c.ExecutorSecretKey = key
	})
	// Real executors subscribe and report with their tokens.
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.push(runTask(commandTask("t2", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	h.fm.waitUpdate(t, "t2", mesospb.TASK_RUNNING)
	runs := map[string]string{}
	for _, e := range h.state().Frameworks[0].Executors {
		runs[e.Info.ExecutorID.Value] = e.ContainerID
	}
	require.Len(t, runs, 2)
	token := func(eid, cid string) string {
		return "Bearer " + testJWT(key, hs256, map[string]string{"fid": "fw-1", "eid": eid, "cid": cid})
	}

	const ids = `"framework_id":{"value":"fw-1"},"executor_id":{"value":"t1"}`
	finished := `{"type":"UPDATE",` + ids + `,"update":{"status":{"task_id":{"value":"t1"},"state":"TASK_FINISHED","source":"SOURCE_EXECUTOR","uuid":"AAECAwQFBgcICQoLDA0ODw=="}}}`
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("fw:secret"))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"fid":"fw-1","eid":"t1","cid":"`+runs["t1"]+`"}`)) + "."
	for _, tc := range []struct {
		name, authorization, body string
		want                      int
	}{
		{"no credential", "", finished, http.StatusUnauthorized},
		{"basic", basic, finished, http.StatusUnauthorized},
		{"garbage", "Bearer x.y.z", finished, http.StatusUnauthorized},
		{"wrong key", "Bearer " + testJWT([]byte("another key"), hs256, map[string]string{"fid": "fw-1", "eid": "t1", "cid": runs["t1"]}), finished, http.StatusUnauthorized},
		{"alg none", "Bearer " + none, finished, http.StatusUnauthorized},
		{"alg HS512 header", "Bearer " + testJWT(key, `{"alg":"HS512"}`, map[string]string{"fid": "fw-1", "eid": "t1", "cid": runs["t1"]}), finished, http.StatusUnauthorized},
		{"no claims", "Bearer " + testJWT(key, hs256, map[string]string{}), finished, http.StatusUnauthorized},
		{"another executor's token", token("t2", runs["t2"]), finished, http.StatusForbidden},
		{"another run's container", token("t1", runs["t2"]), finished, http.StatusForbidden},
		{"another framework", "Bearer " + testJWT(key, hs256, map[string]string{"fid": "fw-2", "eid": "t1", "cid": runs["t1"]}), finished, http.StatusForbidden},
		{"subscribe as another", token("t2", runs["t2"]), `{"type":"SUBSCRIBE",` + ids + `}`, http.StatusForbidden},
		// As in Mesos, a heartbeat is taken from any authenticated executor.
		{"heartbeat", token("t2", runs["t2"]), `{"type":"HEARTBEAT",` + ids + `}`, http.StatusAccepted},
	} {
		code, hdr, body := postExecutorAs(t, h.srv.URL, tc.authorization, tc.body)
		assert.Equal(t, tc.want, code, "%s: %s", tc.name, body)
		if tc.want == http.StatusUnauthorized {
			assert.Equal(t, `Bearer realm="mesos-agent-executor"`, hdr.Get("WWW-Authenticate"), tc.name)
		}
	}
	// Nothing reached the master: t1 is still running.
	assert.NotContains(t, h.fm.states("t1"), mesospb.TASK_FINISHED)
	for _, e := range h.state().Frameworks[0].Executors {
		for _, task := range e.Tasks {
			assert.Equal(t, mesospb.TASK_RUNNING, task.GetState(), "task %s", task.TaskID.Value)
		}
	}
	// The executor's own token is what it takes (the body was fine).
	code, _, body := postExecutorAs(t, h.srv.URL, token("t1", runs["t1"]), finished)
	assert.Equal(t, http.StatusAccepted, code, body)
	h.fm.waitUpdate(t, "t1", mesospb.TASK_FINISHED)
}

// Executors get their token in MESOS_EXECUTOR_AUTHENTICATION_TOKEN, and
// the command executor does not pass it on to its task.
func TestExecutorTokenEnvironment(t *testing.T) {
	key := []byte("another secret key, long enough")
	h := newHTTPHarness(t, func(c *agent.Config) {
		c.CommandExecutorMode = agent.CommandExecutorProcess
		c.ExecutorSecretKey = key // tokens given, not required
	})
	h.fm.push(runTask(commandTask("e1", `echo "token:$MESOS_EXECUTOR_AUTHENTICATION_TOKEN"`)))
	h.fm.waitUpdate(t, "e1", mesospb.TASK_FINISHED)
	assert.Equal(t, "token:\n", h.sandboxFile("e1", "stdout"))
}

// authHarness is an agent with ACLs and Basic credentials on every
// family, served on loopback.
func authHarness(t *testing.T, acls string, configure ...func(*agent.Config)) (*harness, string) {
	t.Helper()
	parsed, err := auth.ParseACLs([]byte(acls))
	require.NoError(t, err)
	h := newHarness(t, append([]func(*agent.Config){func(c *agent.Config) {
		c.Authenticator = auth.NewBasic([]auth.Credential{{Principal: "ops", Secret: "ops-secret"}, {Principal: "viewer", Secret: "viewer-secret"}})
		c.AuthenticateHTTPReadOnly = true
		c.AuthenticateHTTPReadWrite = true
		c.Authorizer = auth.NewLocal(parsed)
	}}, configure...)...)
	h.waitRegistered()
	srv := httptest.NewServer(h.a.Handler())
	t.Cleanup(srv.Close)
	return h, srv.URL
}

// do sends a request with a Basic credential (principal "" for none).
func do(t *testing.T, method, url, principal, secret, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", codec.MediaTypeJSON)
	}
	if principal != "" {
		req.SetBasicAuth(principal, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// Every endpoint asks for a credential of its family's realm, as Mesos's
// agent routes them, and says nothing about what was wrong.
func TestAgentHTTPAuthentication(t *testing.T) {
	_, url := authHarness(t, `{"permissive": true}`)
	const getHealth = `{"type":"GET_HEALTH"}`
	for _, tc := range []struct {
		method, path, body, realm string
	}{
		{http.MethodPost, "/api/v1", getHealth, auth.RealmAgentReadWrite},
		{http.MethodPost, "/slave(1)/api/v1", getHealth, auth.RealmAgentReadWrite},
		{http.MethodGet, "/logging/toggle", "", auth.RealmAgentReadWrite},
		{http.MethodGet, "/state", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/state.json", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/slave(1)/state", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/flags", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/containers", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/monitor/statistics", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/metrics/snapshot", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/metrics", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/files/debug", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/files/browse?path=/", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/files/read?path=/x&offset=0", "", auth.RealmAgentReadOnly},
		{http.MethodGet, "/files/download?path=/x", "", auth.RealmAgentReadOnly},
	} {
		name := tc.method + " " + tc.path
		for _, cred := range [][2]string{{"", ""}, {"ops", "wrong"}, {"nobody", "ops-secret"}} {
			code, hdr, body := do(t, tc.method, url+tc.path, cred[0], cred[1], tc.body)
			assert.Equal(t, http.StatusUnauthorized, code, "%s as %q", name, cred[0])
			assert.Equal(t, `Basic realm="`+tc.realm+`"`, hdr.Get("WWW-Authenticate"), name)
			assert.NotContains(t, body, "wrong", name)
		}
		code, _, body := do(t, tc.method, url+tc.path, "ops", "ops-secret", tc.body)
		assert.NotEqual(t, http.StatusUnauthorized, code, "%s with the credential: %s", name, body)
	}
	for _, path := range []string{"/health", "/version"} {
		code, _, _ := do(t, http.MethodGet, url+path, "", "", "")
		assert.Equal(t, http.StatusOK, code, path)
	}
}

const agentACLs = `{
  "permissive": true,
  "view_flags": [{"principals": {"values": ["viewer"]}, "flags": {"type": "NONE"}}],
  "set_log_level": [{"principals": {"values": ["viewer"]}, "level": {"type": "NONE"}}],
  "prune_images": [{"principals": {"values": ["viewer"]}, "images": {"type": "NONE"}}],
  "view_frameworks": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "view_executors": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "view_tasks": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "view_containers": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "access_sandboxes": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "access_mesos_logs": [{"principals": {"values": ["viewer"]}, "logs": {"type": "NONE"}}],
  "kill_nested_containers": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "wait_nested_containers": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "launch_nested_container_sessions_under_parent_with_user": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}],
  "attach_containers_output": [{"principals": {"values": ["viewer"]}, "users": {"type": "NONE"}}]
}`

// The operator API and the files API, authorized by Mesos's ACLs: a
// refusal is 403 naming the action and changes nothing; reads are
// filtered.
func TestAgentAuthorization(t *testing.T) {
	h, url := authHarness(t, agentACLs)
	h.fm.push(runTask(commandTask("a1", "echo out; sleep 1000")))
	h.fm.waitUpdate(t, "a1", mesospb.TASK_RUNNING)
	run := h.state().Frameworks[0].Executors[0]
	sandbox := run.Directory

	op := func(principal, call string) (int, string) {
		code, _, body := do(t, http.MethodPost, url+"/api/v1", principal, principal+"-secret", call)
		return code, body
	}
	level := func() string {
		code, body := op("ops", `{"type":"GET_LOGGING_LEVEL"}`)
		require.Equal(t, http.StatusOK, code, body)
		return body
	}
	before := level()
	containerID := `{"value":"` + run.ContainerID + `"}`
	for _, tc := range []struct{ call, action string }{
		{`{"type":"GET_FLAGS"}`, "VIEW_FLAGS"},
		{`{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":3,"duration":{"nanoseconds":60000000000}}}`, "SET_LOG_LEVEL"},
		{`{"type":"PRUNE_IMAGES"}`, "PRUNE_IMAGES"},
		{`{"type":"KILL_CONTAINER","kill_container":{"container_id":` + containerID + `}}`, "KILL_NESTED_CONTAINER"},
		{`{"type":"WAIT_CONTAINER","wait_container":{"container_id":` + containerID + `}}`, "WAIT_NESTED_CONTAINER"},
		{`{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"n1","parent":` + containerID + `},"command":{"value":"true"}}}`, "LAUNCH_NESTED_CONTAINER_SESSION"},
		{`{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{"container_id":` + containerID + `}}`, "ATTACH_CONTAINER_OUTPUT"},
		{`{"type":"LIST_FILES","list_files":{"path":"` + sandbox + `"}}`, "ACCESS_SANDBOX"},
		{`{"type":"READ_FILE","read_file":{"path":"` + sandbox + `/stdout","offset":0}}`, "ACCESS_SANDBOX"},
	} {
		code, body := op("viewer", tc.call)
		assert.Equal(t, http.StatusForbidden, code, "%s: %s", tc.call, body)
		assert.Contains(t, body, tc.action, tc.call)
	}
	assert.Equal(t, before, level(), "a refused SET_LOGGING_LEVEL changes nothing")
	assert.NotContains(t, h.fm.states("a1"), mesospb.TASK_KILLED, "a refused KILL_CONTAINER kills nothing")
	s := h.state()
	require.Len(t, s.Frameworks, 1)
	assert.Equal(t, mesospb.TASK_RUNNING, s.Frameworks[0].Executors[0].Tasks[0].GetState())

	// The same calls are allowed to ops.
	code, body := op("ops", `{"type":"GET_FLAGS"}`)
	assert.Equal(t, http.StatusOK, code, body)
	code, body = op("ops", `{"type":"LIST_FILES","list_files":{"path":"`+sandbox+`"}}`)
	assert.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "stdout")

	// Reads are filtered: viewer sees no framework, executor, task or
	// container; ops sees them all.
	decode := func(body string) *agentpb.Response {
		var resp agentpb.Response
		require.NoError(t, codec.JSON.Unmarshal([]byte(body), &resp), body)
		return &resp
	}
	code, body = op("viewer", `{"type":"GET_STATE"}`)
	require.Equal(t, http.StatusOK, code, body)
	st := decode(body).GetState
	assert.Empty(t, st.GetFrameworks.Frameworks)
	assert.Empty(t, st.GetExecutors.Executors)
	assert.Empty(t, st.GetTasks.LaunchedTasks)
	code, body = op("ops", `{"type":"GET_STATE"}`)
	require.Equal(t, http.StatusOK, code, body)
	st = decode(body).GetState
	assert.Len(t, st.GetFrameworks.Frameworks, 1)
	assert.Len(t, st.GetExecutors.Executors, 1)
	assert.Len(t, st.GetTasks.LaunchedTasks, 1)
	code, body = op("viewer", `{"type":"GET_CONTAINERS"}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Empty(t, decode(body).GetContainers.Containers)
	code, body = op("ops", `{"type":"GET_CONTAINERS"}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Len(t, decode(body).GetContainers.Containers, 1)

	// The files endpoints and /flags.
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/files/browse?path=" + sandbox, http.StatusForbidden},
		{"/files/read?path=" + sandbox + "/stdout&offset=0", http.StatusForbidden},
		{"/files/download?path=" + sandbox + "/stdout", http.StatusForbidden},
		{"/files/browse?path=/frameworks/fw-1/executors/a1/runs/latest", http.StatusForbidden},
		{"/flags", http.StatusForbidden},
		{"/logging/toggle?level=3&duration=1mins", http.StatusForbidden},
	} {
		code, _, body := do(t, http.MethodGet, url+tc.path, "viewer", "viewer-secret", "")
		assert.Equal(t, tc.want, code, "%s: %s", tc.path, body)
		code, _, body = do(t, http.MethodGet, url+tc.path, "ops", "ops-secret", "")
		assert.Equal(t, http.StatusOK, code, "%s as ops: %s", tc.path, body)
	}

	// Mesos's /state, /containers and /monitor/statistics are filtered.
	type stateDoc struct {
		Flags      map[string]any   `json:"flags"`
		Frameworks []map[string]any `json:"frameworks"`
	}
	for _, tc := range []struct {
		principal string
		visible   int
	}{{"viewer", 0}, {"ops", 1}} {
		code, _, body := do(t, http.MethodGet, url+"/state", tc.principal, tc.principal+"-secret", "")
		require.Equal(t, http.StatusOK, code, body)
		var doc stateDoc
		require.NoError(t, json.Unmarshal([]byte(body), &doc))
		assert.Len(t, doc.Frameworks, tc.visible, "/state as %s", tc.principal)
		assert.Equal(t, tc.visible == 1, doc.Flags != nil, "/state's flags as %s", tc.principal)
		code, _, body = do(t, http.MethodGet, url+"/containers", tc.principal, tc.principal+"-secret", "")
		require.Equal(t, http.StatusOK, code, body)
		var cs []map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &cs))
		assert.Len(t, cs, tc.visible, "/containers as %s", tc.principal)
	}
}

// An agent with a credential sends it on every request to its master,
// and a refusal of its registration is logged as an error.
func TestAgentCredentialToMaster(t *testing.T) {
	var (
		mu    sync.Mutex
		users []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		mu.Lock()
		users = append(users, user)
		mu.Unlock()
		if !ok || user != "agent" || pass != "right" {
			auth.Challenge(w, "Basic", "apron-master-agent")
			return
		}
		http.Error(w, "no master here", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	m, err := agent.NewHTTPMaster([]string{srv.URL}, agent.WithCredential(auth.Credential{Principal: "agent", Secret: "wrong"}))
	require.NoError(t, err)
	logs := &recordingHandler{}
	a, err := agent.New(agent.Config{Master: m, WorkDir: t.TempDir(), Resources: "cpus:1;mem:128;disk:128;ports:[31000-31000]", Hostname: "h", Clock: h0clock(), Logger: slog.New(logs)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.Eventually(t, func() bool { return logs.has(slog.LevelError, "refused the agent's registration") }, waitFor, tick)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, users)
	assert.Equal(t, "agent", users[0])
}

// recordingHandler keeps the messages logged.
type recordingHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (r *recordingHandler) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recordingHandler) WithGroup(string) slog.Handler      { return r }

func (r *recordingHandler) has(level slog.Level, text string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level == level && strings.Contains(rec.Message, text) {
			return true
		}
	}
	return false
}

// Sandboxes are 0750 and their logs 0640, as Mesos makes them.
func TestSandboxPermissions(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("p1", "echo hi")))
	h.fm.waitUpdate(t, "p1", mesospb.TASK_FINISHED)
	matches, err := filepath.Glob(filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1", "executors", "p1", "runs", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, matches)
	var run string
	for _, m := range matches {
		if filepath.Base(m) != "latest" {
			run = m
		}
	}
	fi, err := os.Stat(run)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o750), fi.Mode().Perm(), "sandbox %s", run)
	for _, name := range []string{"stdout", "stderr"} {
		fi, err := os.Stat(filepath.Join(run, name))
		require.NoError(t, err)
		assert.Zero(t, fi.Mode().Perm()&0o007, "%s is not for others: %v", name, fi.Mode())
	}
}

// A switch without what it needs is a configuration error.
func TestSecurityConfig(t *testing.T) {
	for name, configure := range map[string]func(*agent.Config){
		"readonly without authenticator":  func(c *agent.Config) { c.AuthenticateHTTPReadOnly = true },
		"readwrite without authenticator": func(c *agent.Config) { c.AuthenticateHTTPReadWrite = true },
		"executors without key":           func(c *agent.Config) { c.AuthenticateHTTPExecutors = true },
	} {
		cfg := agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir(), Resources: "cpus:1;mem:64;disk:64;ports:[31000-31000]", Hostname: "h"}
		configure(&cfg)
		_, err := agent.New(cfg)
		assert.ErrorIs(t, err, agent.ErrInvalidConfig, name)
	}
}

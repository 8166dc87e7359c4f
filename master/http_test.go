package master_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/recordio"
	"github.com/apronhq/apron/resources"
)

// httpWait bounds every wait on the network in these tests; generous, as
// the machines that run them are shared. No test asserts a duration.
const httpWait = 20 * time.Second

// fakeLeadership is a Leadership a test sets.
type fakeLeadership struct {
	leading bool
	leader  string
}

func (f fakeLeadership) Leader() (bool, string) { return f.leading, f.leader }

// httpMaster is a running master behind an httptest server.
type httpMaster struct {
	t   *testing.T
	m   *master.Master
	srv *httptest.Server
}

// startHTTPMaster runs a master with fast ticks, allocations and heartbeats
// (so they arrive while a test waits) and serves its Handler.
func startHTTPMaster(t *testing.T, cfg master.Config) *httpMaster {
	t.Helper()
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 5 * time.Millisecond
	}
	if cfg.AllocationInterval == 0 {
		cfg.AllocationInterval = 50 * time.Millisecond
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	m, err := master.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		cancel() // ends every stream, so the server's requests finish
		<-done
		srv.Close()
	})
	return &httpMaster{t: t, m: m, srv: srv}
}

func (h *httpMaster) url(path string) string { return h.srv.URL + path }

// post sends body to path and returns the answer; the request ends with
// the test.
func (h *httpMaster) post(path, contentType, streamID string, body []byte) *http.Response {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	h.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url(path), bytes.NewReader(body))
	require.NoError(h.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Accept", contentType)
	}
	if streamID != "" {
		req.Header.Set(httpapi.StreamIDHeader, streamID)
	}
	resp, err := httpapi.NoRedirects.Do(req)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// postCall encodes call with c and posts it.
func (h *httpMaster) postCall(path string, c codec.Codec, streamID string, call proto.Message) *http.Response {
	h.t.Helper()
	b, err := c.Marshal(call)
	require.NoError(h.t, err)
	return h.post(path, c.MediaType(), streamID, b)
}

func (h *httpMaster) get(path string) (*http.Response, string) {
	h.t.Helper()
	resp, err := httpapi.NoRedirects.Get(h.url(path))
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp, string(b)
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// recordStream reads RecordIO records off a raw response body, checking
// the framing byte by byte: "<decimal length>\n<bytes>".
type recordStream struct {
	t *testing.T
	r *bufio.Reader
	c codec.Codec
}

var lengthLine = regexp.MustCompile(`^[0-9]+\n$`)

func newRecordStream(t *testing.T, resp *http.Response) *recordStream {
	c, err := codec.ForMediaType(resp.Header.Get("Content-Type"))
	require.NoError(t, err)
	return &recordStream{t: t, r: bufio.NewReader(resp.Body), c: c}
}

// next returns the next record's bytes, or io.EOF when the stream ended.
func (s *recordStream) next() ([]byte, error) {
	line, err := s.r.ReadString('\n')
	if err != nil {
		if err == io.EOF && line == "" {
			return nil, io.EOF
		}
		return nil, err
	}
	require.Regexp(s.t, lengthLine, line, "a record starts with its decimal length and a newline")
	n, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
	require.NoError(s.t, err)
	rec := make([]byte, n)
	_, err = io.ReadFull(s.r, rec)
	return rec, err
}

func (s *recordStream) event(ev proto.Message) {
	s.t.Helper()
	rec, err := s.next()
	require.NoError(s.t, err)
	require.NoError(s.t, s.c.Unmarshal(rec, ev), "record %q", rec)
}

// schedulerEvent reads events until one of type want.
func (s *recordStream) schedulerEvent(want schedulerpb.Event_Type) *schedulerpb.Event {
	s.t.Helper()
	for {
		var ev schedulerpb.Event
		s.event(&ev)
		if ev.GetType() == want {
			return &ev
		}
	}
}

func subscribeCall(info mesospb.FrameworkInfo) *schedulerpb.Call {
	call := &schedulerpb.Call{
		Type:      schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: info},
	}
	if info.ID != nil {
		call.FrameworkID = info.ID
	}
	return call
}

// subscribe subscribes a framework over HTTP and returns its stream, past
// SUBSCRIBED.
func (h *httpMaster) subscribe(c codec.Codec, info mesospb.FrameworkInfo) (s *recordStream, streamID, frameworkID string) {
	h.t.Helper()
	resp := h.postCall("/api/v1/scheduler", c, "", subscribeCall(info))
	if resp.StatusCode != http.StatusOK {
		require.FailNow(h.t, "SUBSCRIBE failed", "%s: %s", resp.Status, body(h.t, resp))
	}
	streamID = resp.Header.Get(httpapi.StreamIDHeader)
	require.NotEmpty(h.t, streamID, "SUBSCRIBE answers with a Mesos-Stream-Id")
	s = newRecordStream(h.t, resp)
	var ev schedulerpb.Event
	s.event(&ev)
	require.Equal(h.t, schedulerpb.Event_SUBSCRIBED, ev.GetType(), "SUBSCRIBED comes first")
	return s, streamID, ev.Subscribed.FrameworkID.Value
}

// fakeAgent registers with the master in process, answers pings, and
// reports every task it is asked to run as TASK_RUNNING.
func fakeAgent(t testing.TB, m *master.Master, hostname, res string) (agentID string, stop func()) {
	t.Helper()
	return fakeAgentCtx(t, context.Background(), m, hostname, res)
}

// fakeAgentCtx is fakeAgent with its calls under ctx (which may carry a
// principal).
func fakeAgentCtx(t testing.TB, ctx context.Context, m *master.Master, hostname, res string) (agentID string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	rs, err := resources.Parse(res)
	require.NoError(t, err)
	stream, events, err := m.ConnectAgent(ctx, &internalpb.Call{
		Type:     internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{Hostname: hostname, Resources: rs.ToProto()}},
	})
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, internalpb.Event_REGISTERED, ev.GetType())
	agentID = ev.Registered.AgentID.Value
	call := func(c *internalpb.Call) {
		c.AgentID = &mesospb.AgentID{Value: agentID}
		_ = m.AgentCall(ctx, stream, c)
	}
	go func() {
		for ev := range events {
			switch ev.GetType() {
			case internalpb.Event_PING:
				call(&internalpb.Call{Type: internalpb.Call_PONG.Enum()})
			case internalpb.Event_RUN_TASK:
				call(&internalpb.Call{
					Type: internalpb.Call_STATUS_UPDATE.Enum(),
					StatusUpdate: &internalpb.Call_StatusUpdate{
						FrameworkID: *ev.RunTask.Framework.ID,
						Status: mesospb.TaskStatus{
							TaskID: ev.RunTask.Task.TaskID, State: mesospb.TASK_RUNNING.Enum(),
							Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: []byte("uuid-" + ev.RunTask.Task.TaskID.Value),
						},
					},
				})
			}
		}
	}()
	stop = func() {
		call(&internalpb.Call{Type: internalpb.Call_UNREGISTER.Enum()})
		cancel()
	}
	return agentID, stop
}

func TestHTTPSchedulerSubscribeBothEncodings(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	for _, c := range []codec.Codec{codec.JSON, codec.Protobuf} {
		t.Run(c.MediaType(), func(t *testing.T) {
			resp := h.postCall("/api/v1/scheduler", c, "", subscribeCall(frameworkInfo("sub-"+c.MediaType())))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, c.MediaType(), resp.Header.Get("Content-Type"))
			require.NotEmpty(t, resp.Header.Get(httpapi.StreamIDHeader))

			// The raw bytes: "<len>\n" then exactly len bytes of one event.
			r := bufio.NewReader(resp.Body)
			line, err := r.ReadString('\n')
			require.NoError(t, err)
			require.Regexp(t, lengthLine, line)
			n, _ := strconv.Atoi(strings.TrimSuffix(line, "\n"))
			rec := make([]byte, n)
			_, err = io.ReadFull(r, rec)
			require.NoError(t, err)
			if c == codec.JSON {
				assert.True(t, bytes.HasPrefix(rec, []byte(`{"type":"SUBSCRIBED"`)), "%s", rec)
			}
			var ev schedulerpb.Event
			require.NoError(t, c.Unmarshal(rec, &ev))
			require.Equal(t, schedulerpb.Event_SUBSCRIBED, ev.GetType())
			assert.NotEmpty(t, ev.Subscribed.FrameworkID.Value)
			assert.InDelta(t, 0.1, ev.Subscribed.GetHeartbeatIntervalSeconds(), 1e-9)
			require.NotNil(t, ev.Subscribed.MasterInfo)

			s := &recordStream{t: t, r: r, c: c}
			s.schedulerEvent(schedulerpb.Event_HEARTBEAT)
			s.schedulerEvent(schedulerpb.Event_HEARTBEAT)
		})
	}
}

func TestHTTPSchedulerCallsNeedTheirStream(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	_, streamA, fwA := h.subscribe(codec.JSON, frameworkInfo("a"))
	_, streamB, fwB := h.subscribe(codec.Protobuf, frameworkInfo("b"))
	require.NotEqual(t, streamA, streamB)

	revive := func(fw string) *schedulerpb.Call {
		return &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum(), FrameworkID: &mesospb.FrameworkID{Value: fw}}
	}
	for _, tc := range []struct {
		name, stream, framework string
		want                    int
	}{
		// Mesos's codes (Master::Http::scheduler): 400 for a missing or
		// mismatched stream ID and for an unknown framework.
		{"no stream id", "", fwA, http.StatusBadRequest},
		{"unknown stream id", "not-a-stream", fwA, http.StatusBadRequest},
		{"another framework's stream", streamB, fwA, http.StatusBadRequest},
		{"a call for another framework", streamA, fwB, http.StatusBadRequest},
		{"an unknown framework", streamA, "no-such-framework", http.StatusBadRequest},
		{"its own stream", streamA, fwA, http.StatusAccepted},
		{"the other's own stream", streamB, fwB, http.StatusAccepted},
	} {
		resp := h.postCall("/api/v1/scheduler", codec.JSON, tc.stream, revive(tc.framework))
		msg := body(t, resp)
		assert.Equal(t, tc.want, resp.StatusCode, "%s: %s", tc.name, msg)
		if tc.want != http.StatusAccepted {
			assert.NotEmpty(t, strings.TrimSpace(msg), "%s: errors say why", tc.name)
		}
	}

	// A call without framework_id is malformed, whatever its stream.
	resp := h.postCall("/api/v1/scheduler", codec.JSON, streamA, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body(t, resp), "framework_id")
	// An invalid call on a good stream: 400 naming the field.
	resp = h.postCall("/api/v1/scheduler", codec.JSON, streamA, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(), FrameworkID: &mesospb.FrameworkID{Value: fwA}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body(t, resp), "decline")
}

func TestHTTPRequestErrors(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	big := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"` + strings.Repeat("x", httpapi.DefaultMaxBodyBytes) + `"}}}`
	for _, tc := range []struct {
		name, method, path, ctype, body string
		want                            int
		says                            string
	}{
		{"missing required field", http.MethodPost, "/api/v1/scheduler", codec.MediaTypeJSON,
			`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u"}}}`, http.StatusBadRequest, `"name"`},
		{"wrong type of value", http.MethodPost, "/api/v1/scheduler", codec.MediaTypeJSON,
			`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":3}}}`, http.StatusBadRequest, "subscribe.framework_info.name"},
		{"truncated JSON", http.MethodPost, "/api/v1/scheduler", codec.MediaTypeJSON, `{"type":`, http.StatusBadRequest, ""},
		{"no type", http.MethodPost, "/api/v1/scheduler", codec.MediaTypeJSON, `{}`, http.StatusBadRequest, "type"},
		{"subscribe without subscribe", http.MethodPost, "/api/v1/scheduler", codec.MediaTypeJSON, `{"type":"SUBSCRIBE"}`, http.StatusBadRequest, "subscribe"},
		{"bad protobuf", http.MethodPost, "/api/v1/scheduler", codec.MediaTypeProtobuf, "\xff\xff\xff", http.StatusBadRequest, ""},
		{"GET", http.MethodGet, "/api/v1/scheduler", "", "", http.StatusMethodNotAllowed, "POST"},
		{"text", http.MethodPost, "/api/v1/scheduler", "text/plain", "{}", http.StatusUnsupportedMediaType, ""},
		{"no content type", http.MethodPost, "/api/v1/scheduler", "", "{}", http.StatusBadRequest, "Content-Type"},
		{"too big", http.MethodPost, "/api/v1/scheduler", codec.MediaTypeJSON, big, http.StatusRequestEntityTooLarge, ""},
		{"agent link GET", http.MethodGet, "/apron/v1/agent", "", "", http.StatusMethodNotAllowed, ""},
		{"agent link bad body", http.MethodPost, "/apron/v1/agent", codec.MediaTypeJSON, `{"type":"REGISTER","register":{}}`, http.StatusBadRequest, "agent_info"},
		{"operator GET", http.MethodGet, "/api/v1", "", "", http.StatusMethodNotAllowed, ""},
		{"operator no type", http.MethodPost, "/api/v1", codec.MediaTypeJSON, `{}`, http.StatusBadRequest, "type"},
		{"operator wrong field type", http.MethodPost, "/api/v1", codec.MediaTypeJSON, `{"type":"GET_METRICS","get_metrics":7}`, http.StatusBadRequest, "get_metrics"},
		{"metrics POST", http.MethodPost, "/metrics", "", "", http.StatusMethodNotAllowed, ""},
		{"state POST", http.MethodPost, "/state", "", "", http.StatusMethodNotAllowed, ""},
	} {
		req, err := http.NewRequest(tc.method, h.url(tc.path), strings.NewReader(tc.body))
		require.NoError(t, err)
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, tc.name)
		msg := body(t, resp)
		resp.Body.Close()
		assert.Equal(t, tc.want, resp.StatusCode, "%s: %s", tc.name, msg)
		assert.NotEmpty(t, strings.TrimSpace(msg), "%s: errors carry a message", tc.name)
		assert.Contains(t, msg, tc.says, tc.name)
	}
}

func TestHTTPStandby(t *testing.T) {
	h := startHTTPMaster(t, master.Config{Leadership: fakeLeadership{leader: "http://leader.example:5050"}})
	for _, path := range []string{"/api/v1/scheduler", "/apron/v1/agent", "/api/v1"} {
		resp := h.post(path, codec.MediaTypeJSON, "", []byte(`{"type":"SUBSCRIBE"}`))
		assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, path)
		assert.Equal(t, "//leader.example:5050"+path, resp.Header.Get("Location"), path)
	}
	resp, _ := h.get("/state")
	assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	assert.Equal(t, "//leader.example:5050/state", resp.Header.Get("Location"))

	// The client library follows the redirect's Location.
	_, err := (&httpapi.Client{}).Subscribe(context.Background(), h.url("/api/v1/scheduler"), subscribeCall(frameworkInfo("f")))
	var re *httpapi.RedirectError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, "http://leader.example:5050/api/v1/scheduler", re.Location)

	resp, msg := h.get("/health")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, msg, "not leading")
	resp, msg = h.get("/metrics")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, msg, "\napron_master_elected 0\n")
	resp, _ = h.get("/version")
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// No leader known: 503, so clients retry.
	h2 := startHTTPMaster(t, master.Config{Leadership: fakeLeadership{}})
	for _, path := range []string{"/api/v1/scheduler", "/apron/v1/agent", "/api/v1"} {
		resp := h2.post(path, codec.MediaTypeJSON, "", []byte(`{"type":"SUBSCRIBE"}`))
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, path)
		assert.Empty(t, resp.Header.Get("Location"))
	}

	// A leader is healthy.
	h3 := startHTTPMaster(t, master.Config{Leadership: fakeLeadership{leading: true}})
	resp, msg = h3.get("/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "OK", strings.TrimSpace(msg))
}

func TestHTTPSecondSubscribeEndsTheFirstStream(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	info := frameworkInfo("failover")
	info.FailoverTimeout = ptr(60.0)
	first, _, fw := h.subscribe(codec.JSON, info)

	info.ID = &mesospb.FrameworkID{Value: fw}
	second, _, fw2 := h.subscribe(codec.Protobuf, info)
	assert.Equal(t, fw, fw2)

	// The first stream says why, then its body ends.
	var sawError bool
	for {
		rec, err := first.next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		var ev schedulerpb.Event
		require.NoError(t, first.c.Unmarshal(rec, &ev))
		if ev.GetType() == schedulerpb.Event_ERROR {
			sawError = true
		}
	}
	assert.True(t, sawError, "the superseded scheduler is told")
	second.schedulerEvent(schedulerpb.Event_HEARTBEAT) // the new one lives on
}

func TestHTTPAgentLink(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	rs := resources.MustParse("cpus:2;mem:1024")
	resp := h.postCall("/apron/v1/agent", codec.JSON, "", &internalpb.Call{
		Type:     internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{Hostname: "a1", Resources: rs.ToProto()}},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	stream := resp.Header.Get(httpapi.StreamIDHeader)
	require.NotEmpty(t, stream)
	s := newRecordStream(t, resp)
	var ev internalpb.Event
	s.event(&ev)
	require.Equal(t, internalpb.Event_REGISTERED, ev.GetType())
	agentID := ev.Registered.AgentID

	pong := &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &agentID}
	resp = h.postCall("/apron/v1/agent", codec.Protobuf, "", pong)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp = h.postCall("/apron/v1/agent", codec.Protobuf, "wrong", pong)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp = h.postCall("/apron/v1/agent", codec.Protobuf, stream, pong)
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, body(t, resp))

	st, err := h.m.State(context.Background())
	require.NoError(t, err)
	require.Len(t, st.GetAgents.Agents, 1)
	assert.True(t, st.GetAgents.Agents[0].Active)
}

// operator posts an operator call and decodes the answer.
func (h *httpMaster) operator(c codec.Codec, call *masterpb.Call) *masterpb.Response {
	h.t.Helper()
	var resp masterpb.Response
	require.NoError(h.t, (&httpapi.Client{Codec: c}).CallInto(context.Background(), h.url("/api/v1"), "", call, &resp))
	return &resp
}

func opCall(t masterpb.Call_Type) *masterpb.Call { return &masterpb.Call{Type: t.Enum()} }

func TestHTTPOperatorCalls(t *testing.T) {
	h := startHTTPMaster(t, master.Config{Weights: map[string]float64{"eng": 2}})
	agentID, _ := fakeAgent(t, h.m, "agent-1", "cpus:4;mem:4096")
	sched, _, fw := h.subscribe(codec.JSON, frameworkInfo("op"))
	sched.schedulerEvent(schedulerpb.Event_OFFERS)

	for _, c := range []codec.Codec{codec.JSON, codec.Protobuf} {
		resp := h.operator(c, opCall(masterpb.Call_GET_STATE))
		require.Equal(t, masterpb.Response_GET_STATE, resp.GetType())
		st := resp.GetState
		require.Len(t, st.GetAgents.Agents, 1, c.MediaType())
		assert.Equal(t, agentID, st.GetAgents.Agents[0].AgentInfo.ID.Value)
		require.Len(t, st.GetFrameworks.Frameworks, 1)
		f := st.GetFrameworks.Frameworks[0]
		assert.Equal(t, fw, f.FrameworkInfo.ID.Value)
		assert.True(t, f.Connected)
		assert.NotEmpty(t, f.Offers, "the framework holds its offer")
	}

	resp := h.operator(codec.JSON, opCall(masterpb.Call_GET_AGENTS))
	assert.Len(t, resp.GetAgents.Agents, 1)
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_FRAMEWORKS))
	assert.Len(t, resp.GetFrameworks.Frameworks, 1)
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_TASKS))
	assert.Equal(t, masterpb.Response_GET_TASKS, resp.GetType())
	require.NotNil(t, resp.GetTasks)
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_EXECUTORS))
	require.NotNil(t, resp.GetExecutors)
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_HEALTH))
	assert.True(t, resp.GetHealth.Healthy)
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_VERSION))
	assert.Equal(t, master.MesosVersion, resp.GetVersion.VersionInfo.Version)
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_MASTER))
	assert.Equal(t, h.m.Info().ID, resp.GetMaster.MasterInfo.ID)
	assert.Positive(t, resp.GetMaster.GetStartTime())
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_FLAGS))
	flags := map[string]string{}
	for _, f := range resp.GetFlags.Flags {
		flags[f.Name] = f.GetValue()
	}
	assert.Equal(t, "50ms", flags["allocation_interval"])
	assert.Equal(t, "eng=2", flags["weights"])
	resp = h.operator(codec.JSON, opCall(masterpb.Call_GET_METRICS))
	metrics := map[string]float64{}
	for _, m := range resp.GetMetrics.Metrics {
		metrics[m.Name] = m.GetValue()
	}
	assert.Equal(t, 1.0, metrics["master/elected"])
	assert.Equal(t, 1.0, metrics["master/slaves_connected"])
	assert.Equal(t, 1.0, metrics["master/frameworks_connected"])
	assert.GreaterOrEqual(t, metrics["master/offers_made"], 1.0)

	// Weights: the configured one, then an update; a bad update changes
	// nothing, not even its good entries.
	weights := func() map[string]float64 {
		out := map[string]float64{}
		for _, w := range h.operator(codec.JSON, opCall(masterpb.Call_GET_WEIGHTS)).GetWeights.WeightInfos {
			out[w.GetRole()] = w.Weight
		}
		return out
	}
	assert.Equal(t, map[string]float64{"eng": 2}, weights())
	update := func(ws ...mesospb.WeightInfo) error {
		_, err := (&httpapi.Client{Codec: codec.JSON}).Call(context.Background(), h.url("/api/v1"), "",
			&masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(), UpdateWeights: &masterpb.Call_UpdateWeights{WeightInfos: ws}})
		return err
	}
	require.NoError(t, update(mesospb.WeightInfo{Role: ptr("eng"), Weight: 3}, mesospb.WeightInfo{Role: ptr("ops"), Weight: 0.5}))
	assert.Equal(t, map[string]float64{"eng": 3, "ops": 0.5}, weights())
	for _, bad := range [][]mesospb.WeightInfo{
		{{Role: ptr("eng"), Weight: 7}, {Role: ptr("ops"), Weight: -1}},
		{{Role: ptr("eng"), Weight: 7}, {Role: ptr("/bad"), Weight: 1}},
		{{Role: ptr("eng"), Weight: 7}, {Weight: 1}},
		{{Role: ptr("eng"), Weight: 7}, {Role: ptr("eng"), Weight: 1}},
	} {
		err := update(bad...)
		var he *httpapi.Error
		require.True(t, errors.As(err, &he), "%v", err)
		assert.Equal(t, http.StatusBadRequest, he.Status, he.Message)
	}
	assert.Equal(t, map[string]float64{"eng": 3, "ops": 0.5}, weights(), "nothing half-applied")

	roles := map[string]float64{}
	for _, r := range h.operator(codec.JSON, opCall(masterpb.Call_GET_ROLES)).GetRoles.Roles {
		roles[r.Name] = r.Weight
	}
	assert.Equal(t, 3.0, roles["eng"])
	assert.Contains(t, roles, "*", "the framework's role")

	// A call without the field its type needs: 400 naming the field
	// (maintenance_test.go has the maintenance calls in full).
	for typ, field := range map[masterpb.Call_Type]string{
		masterpb.Call_START_MAINTENANCE:           "start_maintenance",
		masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE: "update_maintenance_schedule",
	} {
		_, err := (&httpapi.Client{Codec: codec.JSON}).Call(context.Background(), h.url("/api/v1"), "", opCall(typ))
		var he *httpapi.Error
		require.True(t, errors.As(err, &he), "%v", err)
		assert.Equal(t, http.StatusBadRequest, he.Status)
		assert.Contains(t, he.Message, field)
	}
}

// The reservation and volume calls answer 202 when applied, 400 when
// invalid and 409 when the agent lacks the resources, as Mesos's do; the
// body is the README's example.
func TestHTTPOperatorReservations(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	agentID, _ := fakeAgent(t, h.m, "agent-1", "cpus:4;mem:4096")
	body := func(typ, field, agent string, cpus float64) []byte {
		return []byte(fmt.Sprintf(`{
  "type": %q,
  %q: {
    "agent_id": {"value": %q},
    "resources": [
      {"name": "cpus", "type": "SCALAR", "scalar": {"value": %v},
       "reservations": [{"type": "DYNAMIC", "role": "db", "principal": "ops",
                         "labels": {"labels": [{"key": "owner", "value": "dba"}]}}]}
    ]
  }
}`, typ, field, agent, cpus))
	}
	status := func(b []byte) int {
		resp := h.post("/api/v1", codec.MediaTypeJSON, "", b)
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		t.Logf("%d %s", resp.StatusCode, msg)
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusAccepted, status(body("RESERVE_RESOURCES", "reserve_resources", agentID, 2)))
	assert.Equal(t, http.StatusBadRequest, status(body("RESERVE_RESOURCES", "reserve_resources", "nope", 2)))
	assert.Equal(t, http.StatusConflict, status(body("RESERVE_RESOURCES", "reserve_resources", agentID, 3)))
	st := h.operator(codec.JSON, opCall(masterpb.Call_GET_AGENTS)).GetAgents.Agents[0]
	total, err := resources.FromProto(st.TotalResources)
	require.NoError(t, err)
	assert.Equal(t, 2.0, total.Reserved().Named(resources.NameCPUs).Quantities()[resources.NameCPUs].Float64())
	assert.Equal(t, http.StatusAccepted, status(body("UNRESERVE_RESOURCES", "unreserve_resources", agentID, 2)))
	assert.Equal(t, http.StatusBadRequest, status([]byte(`{"type": "CREATE_VOLUMES"}`)))
}

func TestHTTPStateAndVersion(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	fakeAgent(t, h.m, "agent-1", "cpus:1;mem:128")
	resp, msg := h.get("/state")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, codec.MediaTypeJSON, resp.Header.Get("Content-Type"))
	var st masterpb.Response_GetState
	require.NoError(t, codec.UnmarshalJSON([]byte(msg), &st))
	require.Len(t, st.GetAgents.Agents, 1)
	assert.Equal(t, "agent-1", st.GetAgents.Agents[0].AgentInfo.Hostname)

	resp, msg = h.get("/version")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, msg, fmt.Sprintf(`"version":%q`, master.MesosVersion), "Mesos's /version: see TestEndpointSmallOnes")
	resp, msg = h.get("/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "OK", strings.TrimSpace(msg))
}

func TestHTTPOperatorSubscribe(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	for _, c := range []codec.Codec{codec.JSON, codec.Protobuf} {
		t.Run(c.MediaType(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), httpWait)
			defer cancel()
			ops, err := (&httpapi.Client{Codec: c}).Subscribe(ctx, h.url("/api/v1"), opCall(masterpb.Call_SUBSCRIBE))
			require.NoError(t, err)
			defer ops.Close()
			var ev masterpb.Event
			require.NoError(t, ops.Next(&ev))
			require.Equal(t, masterpb.Event_SUBSCRIBED, ev.GetType())
			require.NotNil(t, ev.Subscribed.GetState)
			assert.InDelta(t, 0.1, ev.Subscribed.GetHeartbeatIntervalSeconds(), 1e-9)

			// next returns the next event of type want, skipping others.
			next := func(want masterpb.Event_Type) *masterpb.Event {
				t.Helper()
				for {
					var ev masterpb.Event
					require.NoError(t, ops.Next(&ev))
					if ev.GetType() == want {
						return &ev
					}
				}
			}
			agentID, stopAgent := fakeAgent(t, h.m, "agent-"+c.MediaType(), "cpus:2;mem:1024")
			ev2 := next(masterpb.Event_AGENT_ADDED)
			assert.Equal(t, agentID, ev2.AgentAdded.Agent.AgentInfo.ID.Value)

			sched, streamID, fw := h.subscribe(codec.JSON, frameworkInfo("watched-"+c.MediaType()))
			ev2 = next(masterpb.Event_FRAMEWORK_ADDED)
			assert.Equal(t, fw, ev2.FrameworkAdded.Framework.FrameworkInfo.ID.Value)
			assert.True(t, ev2.FrameworkAdded.Framework.Connected)

			// A task: launched (TASK_ADDED), then running (TASK_UPDATED).
			var offer mesospb.Offer
			for offer.AgentID.Value != agentID {
				for _, o := range sched.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers {
					if o.AgentID.Value == agentID {
						offer = o
					}
				}
			}
			accept := launchCall(offerIDs(offer), commandTask("t1", offer, "cpus:1;mem:64"))
			accept.FrameworkID = &mesospb.FrameworkID{Value: fw}
			resp := h.postCall("/api/v1/scheduler", codec.JSON, streamID, accept)
			require.Equal(t, http.StatusAccepted, resp.StatusCode, body(t, resp))
			ev2 = next(masterpb.Event_TASK_ADDED)
			assert.Equal(t, "t1", ev2.TaskAdded.Task.TaskID.Value)
			assert.Equal(t, mesospb.TASK_STAGING, ev2.TaskAdded.Task.GetState())
			ev2 = next(masterpb.Event_TASK_UPDATED)
			assert.Equal(t, fw, ev2.TaskUpdated.FrameworkID.Value)
			assert.Equal(t, mesospb.TASK_RUNNING, ev2.TaskUpdated.Status.GetState())
			assert.Equal(t, mesospb.TASK_RUNNING, ev2.TaskUpdated.GetState())

			next(masterpb.Event_HEARTBEAT)

			teardown := &schedulerpb.Call{Type: schedulerpb.Call_TEARDOWN.Enum(), FrameworkID: &mesospb.FrameworkID{Value: fw}}
			resp = h.postCall("/api/v1/scheduler", codec.JSON, streamID, teardown)
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
			ev2 = next(masterpb.Event_FRAMEWORK_REMOVED)
			assert.Equal(t, fw, ev2.FrameworkRemoved.FrameworkInfo.ID.Value)
			for {
				if _, err := sched.next(); err != nil {
					require.ErrorIs(t, err, io.EOF, "TEARDOWN ends the scheduler's stream")
					break
				}
			}

			stopAgent()
			ev2 = next(masterpb.Event_AGENT_REMOVED)
			assert.Equal(t, agentID, ev2.AgentRemoved.AgentID.Value)
		})
	}
}

func TestOperatorSubscriberUpdatedOnResubscribe(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events, err := h.m.SubscribeOperator(ctx)
	require.NoError(t, err)
	require.Equal(t, masterpb.Event_SUBSCRIBED, (<-events).GetType())

	info := frameworkInfo("again")
	info.FailoverTimeout = ptr(60.0)
	_, _, fw := h.subscribe(codec.JSON, info)
	info.ID = &mesospb.FrameworkID{Value: fw}
	h.subscribe(codec.JSON, info)
	var types []masterpb.Event_Type
	for len(types) < 2 {
		select {
		case ev := <-events:
			if ev.GetType() != masterpb.Event_HEARTBEAT {
				types = append(types, ev.GetType())
			}
		case <-time.After(httpWait):
			t.Fatal("no event")
		}
	}
	assert.Equal(t, []masterpb.Event_Type{masterpb.Event_FRAMEWORK_ADDED, masterpb.Event_FRAMEWORK_UPDATED}, types)
}

// A sample line: name, optional {label="value",...}, one space, a value.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? (\S+)$`)

func TestHTTPMetrics(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	fakeAgent(t, h.m, "agent-1", "cpus:2;mem:1024")
	sched, streamID, fw := h.subscribe(codec.JSON, frameworkInfo("metrics"))
	offers := sched.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	decline := &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(), FrameworkID: &mesospb.FrameworkID{Value: fw},
		Decline: &schedulerpb.Call_Decline{OfferIDs: offerIDs(offers...)}}
	resp := h.postCall("/api/v1/scheduler", codec.JSON, streamID, decline)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	resp, text := h.get("/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4"))
	require.True(t, strings.HasSuffix(text, "\n"))

	types := map[string]string{}
	helps := map[string]bool{}
	values := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
			f := strings.SplitN(line, " ", 4)
			require.Len(t, f, 4, line)
			helps[f[2]] = true
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			require.Len(t, f, 4, line)
			require.Contains(t, []string{"counter", "gauge", "histogram"}, f[3], line)
			types[f[2]] = f[3]
		default:
			m := sampleLine.FindStringSubmatch(line)
			require.NotNil(t, m, "sample line %q", line)
			name := m[1]
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if family := strings.TrimSuffix(name, suffix); types[family] == "histogram" {
					name = family // a histogram's series are named after its family
				}
			}
			require.Contains(t, types, name, "# TYPE comes before %s", name)
			require.True(t, helps[name], "# HELP comes before %s", name)
			v, err := strconv.ParseFloat(m[4], 64)
			require.NoError(t, err, line)
			values[name+m[2]] = v
		}
	}
	for name, typ := range map[string]string{
		"apron_master_offers_made_total":           "counter",
		"apron_master_offers_declined_total":       "counter",
		"apron_master_offers_rescinded_total":      "counter",
		"apron_master_tasks_launched_total":        "counter",
		"apron_master_task_updates_total":          "counter",
		"apron_master_frameworks":                  "gauge",
		"apron_master_agents":                      "gauge",
		"apron_master_allocation_runs_total":       "counter",
		"apron_master_allocation_duration_seconds": "gauge",
		"apron_master_elected":                     "gauge",
	} {
		assert.Equal(t, typ, types[name], name)
	}
	assert.Equal(t, 1.0, values["apron_master_elected"])
	assert.Equal(t, 1.0, values[`apron_master_agents{state="connected"}`])
	assert.Equal(t, 0.0, values[`apron_master_agents{state="disconnected"}`])
	assert.Equal(t, 1.0, values[`apron_master_frameworks{state="connected"}`])
	assert.Contains(t, values, `apron_master_task_updates_total{state="TASK_RUNNING"}`)
	assert.GreaterOrEqual(t, values["apron_master_offers_made_total"], 1.0)
	assert.GreaterOrEqual(t, values["apron_master_offers_declined_total"], 1.0)
	assert.GreaterOrEqual(t, values["apron_master_allocation_runs_total"], 1.0)
}

// A subscriber that stops reading is disconnected once its buffer is full
// and its backlog over the bound (here, one byte: at once), and the master
// goes on serving everyone else.
func TestSlowOperatorSubscriberIsDropped(t *testing.T) {
	const buffer = 16
	h := startHTTPMaster(t, master.Config{StreamBuffer: buffer, StreamBacklog: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, slow, err := h.m.SubscribeOperator(ctx) // never read below
	require.NoError(t, err)
	_, fast, err := h.m.SubscribeOperator(ctx)
	require.NoError(t, err)
	added := make(chan string)
	go func() {
		defer close(added)
		for ev := range fast {
			if ev.GetType() == masterpb.Event_AGENT_ADDED {
				added <- ev.AgentAdded.Agent.AgentInfo.Hostname
			}
		}
	}()

	// The fast subscriber reads each event before the next agent comes;
	// the slow one reads nothing.
	const agents = 3 * buffer
	for i := range agents {
		host := fmt.Sprintf("agent-%d", i)
		fakeAgent(t, h.m, host, "cpus:1;mem:64")
		select {
		case got, ok := <-added:
			require.True(t, ok, "the fast subscriber's stream ended")
			require.Equal(t, host, got, "a subscriber that keeps up misses nothing")
		case <-time.After(httpWait):
			t.Fatal("the fast subscriber got no AGENT_ADDED")
		}
	}
	st, err := h.m.State(context.Background())
	require.NoError(t, err, "the master still answers")
	require.Len(t, st.GetAgents.Agents, agents)

	n := 0
	timeout := time.After(httpWait)
	for open := true; open; {
		select {
		case _, open = <-slow:
			if open {
				n++
			}
		case <-timeout:
			t.Fatal("the slow subscriber's stream was not closed")
		}
	}
	assert.LessOrEqual(t, n, buffer, "the slow subscriber got at most its buffer")

}

// postBatch posts records as an application/recordio batch of calls
// encoded as msgType says.
func (h *httpMaster) postBatch(msgType, streamID string, records ...[]byte) *http.Response {
	h.t.Helper()
	var buf bytes.Buffer
	w := recordio.NewWriter(&buf)
	for _, r := range records {
		require.NoError(h.t, w.WriteRecord(r))
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	h.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/apron/v1/agent"), &buf)
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", httpapi.MediaTypeRecordIO)
	req.Header.Set(httpapi.MessageContentTypeHeader, msgType)
	req.Header.Set(httpapi.StreamIDHeader, streamID)
	resp, err := httpapi.NoRedirects.Do(req)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestHTTPAgentLinkBatch(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	resp := h.postCall("/apron/v1/agent", codec.Protobuf, "", &internalpb.Call{
		Type:     internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{Hostname: "a1"}},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	stream := resp.Header.Get(httpapi.StreamIDHeader)
	var ev internalpb.Event
	newRecordStream(t, resp).event(&ev)
	agentID := ev.Registered.AgentID
	enc := func(c codec.Codec, call *internalpb.Call) []byte {
		b, err := c.Marshal(call)
		require.NoError(t, err)
		return b
	}
	pong := &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &agentID}
	stranger := &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: "other"}}
	noAgent := &internalpb.Call{Type: internalpb.Call_PONG.Enum()}
	register := &internalpb.Call{Type: internalpb.Call_REGISTER.Enum(), AgentID: &agentID, Register: &internalpb.Call_Register{}}

	for _, c := range []codec.Codec{codec.Protobuf, codec.JSON} {
		resp = h.postBatch(c.MediaType(), stream, enc(c, pong), enc(c, pong), enc(c, pong))
		assert.Equal(t, http.StatusAccepted, resp.StatusCode, body(t, resp))
	}
	for _, tc := range []struct {
		name, msgType, stream string
		records               [][]byte
		status                int
		contains              string
	}{
		{"undecodable record", codec.MediaTypeJSON, stream, [][]byte{enc(codec.JSON, pong), []byte("{not json")}, http.StatusBadRequest, "record 1"},
		{"record without agent_id", codec.MediaTypeProtobuf, stream, [][]byte{enc(codec.Protobuf, pong), enc(codec.Protobuf, noAgent)}, http.StatusBadRequest, "record 1: expecting 'agent_id'"},
		{"register in a batch", codec.MediaTypeProtobuf, stream, [][]byte{enc(codec.Protobuf, register)}, http.StatusBadRequest, "record 0: a REGISTER call opens a stream"},
		{"empty batch", codec.MediaTypeProtobuf, stream, nil, http.StatusBadRequest, "at least one record"},
		{"bad message type", "text/plain", stream, [][]byte{enc(codec.Protobuf, pong)}, http.StatusUnsupportedMediaType, "Message-Content-Type"},
		{"no stream", codec.MediaTypeProtobuf, "", [][]byte{enc(codec.Protobuf, pong)}, http.StatusForbidden, ""},
		{"refused call", codec.MediaTypeProtobuf, stream, [][]byte{enc(codec.Protobuf, pong), enc(codec.Protobuf, stranger), enc(codec.Protobuf, pong)}, http.StatusForbidden, "call 1:"},
		{"too large", codec.MediaTypeProtobuf, stream, [][]byte{make([]byte, httpapi.DefaultMaxBodyBytes)}, http.StatusRequestEntityTooLarge, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.postBatch(tc.msgType, tc.stream, tc.records...)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Contains(t, body(t, resp), tc.contains)
		})
	}

	// A torn record is malformed.
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/apron/v1/agent"), strings.NewReader("5\nab"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", httpapi.MediaTypeRecordIO)
	req.Header.Set(httpapi.MessageContentTypeHeader, codec.MediaTypeProtobuf)
	req.Header.Set(httpapi.StreamIDHeader, stream)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body(t, resp), "record 0")
}

// A subscriber that reads slowly loses nothing: what does not fit in its
// buffer waits in its backlog, in order, and reaches it as it reads; the
// stream's end comes after its last event.
func TestSlowSubscriberGetsEverything(t *testing.T) {
	const buffer = 4
	h := startHTTPMaster(t, master.Config{StreamBuffer: buffer})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, slow, err := h.m.SubscribeOperator(ctx) // read only at the end
	require.NoError(t, err)
	const agents = 10 * buffer
	for i := range agents {
		fakeAgent(t, h.m, fmt.Sprintf("agent-%d", i), "cpus:1;mem:64")
	}
	var hosts []string
	timeout := time.After(httpWait)
	for len(hosts) < agents {
		select {
		case ev, ok := <-slow:
			require.True(t, ok, "the slow subscriber was disconnected after %d agents", len(hosts))
			if ev.GetType() == masterpb.Event_AGENT_ADDED {
				hosts = append(hosts, ev.AgentAdded.Agent.AgentInfo.Hostname)
			}
		case <-timeout:
			t.Fatalf("got %d of %d AGENT_ADDED", len(hosts), agents)
		}
	}
	for i, host := range hosts {
		assert.Equal(t, fmt.Sprintf("agent-%d", i), host, "in order")
	}
}

// A stream the master ends while its reader is behind ends after the
// events it was sent: the backlog goes out first.
func TestEndedStreamDeliversItsBacklog(t *testing.T) {
	h := startHTTPMaster(t, master.Config{StreamBuffer: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, events, err := h.m.SubscribeScheduler(ctx, subscribeCall(frameworkInfo("behind")))
	require.NoError(t, err)
	// SUBSCRIBED fills the buffer, HEARTBEAT waits in the backlog; the
	// framework then tears itself down, which ends the stream.
	st, err := h.m.State(context.Background())
	require.NoError(t, err)
	require.Len(t, st.GetFrameworks.Frameworks, 1)
	fid := st.GetFrameworks.Frameworks[0].FrameworkInfo.ID.Value
	require.NoError(t, h.m.SchedulerCall(ctx, id, &schedulerpb.Call{Type: schedulerpb.Call_TEARDOWN.Enum(), FrameworkID: &mesospb.FrameworkID{Value: fid}}))
	var got []schedulerpb.Event_Type
	timeout := time.After(httpWait)
	for open := true; open; {
		select {
		case ev, ok := <-events:
			if open = ok; ok {
				got = append(got, ev.GetType())
			}
		case <-timeout:
			t.Fatalf("the stream did not end; got %v", got)
		}
	}
	require.GreaterOrEqual(t, len(got), 2, "got %v", got)
	assert.Equal(t, []schedulerpb.Event_Type{schedulerpb.Event_SUBSCRIBED, schedulerpb.Event_HEARTBEAT}, got[:2])
}

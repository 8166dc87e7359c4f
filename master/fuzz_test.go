package master_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master"
)

// schedulerFuzz is a running master for the scheduler endpoint's fuzz
// targets, with an agent and a subscribed framework so that calls naming
// that framework on its stream reach the master's decision logic.
type schedulerFuzz struct {
	handler     http.Handler
	stream      atomic.Value // string: the framework's current stream
	frameworkID string
}

func newSchedulerFuzz(f *testing.F) *schedulerFuzz {
	m, err := master.New(master.Config{
		Rand:               rand.New(rand.NewPCG(1, 2)), // the same IDs in every run, so the corpus stays meaningful
		TickInterval:       5 * time.Millisecond,
		AllocationInterval: 20 * time.Millisecond,
		HeartbeatInterval:  time.Second,
	})
	require.NoError(f, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done })

	// Its hostname is where the files API forwards sandbox paths: loopback,
	// so fuzzed paths never send traffic off this machine (nor DNS queries).
	fakeAgent(f, m, "localhost", "cpus:8;mem:8192;ports:[31000-32000]")
	fz := &schedulerFuzz{handler: m.Handler()}
	info := frameworkInfo("fuzz")
	info.FailoverTimeout = ptr(3600.0)
	id, events, err := m.SubscribeScheduler(ctx, subscribeCall(info))
	require.NoError(f, err)
	ev := <-events
	fz.frameworkID = ev.Subscribed.FrameworkID.Value
	fz.stream.Store(id)
	// Inputs may tear the framework down or subscribe in its place: keep
	// it subscribed, so later inputs find a stream again.
	info.ID = &mesospb.FrameworkID{Value: fz.frameworkID}
	go func(events <-chan *schedulerpb.Event) {
		for {
			for range events {
			}
			if ctx.Err() != nil {
				return
			}
			id, next, err := m.SubscribeScheduler(ctx, subscribeCall(info))
			if err != nil {
				return
			}
			fz.stream.Store(id)
			events = next
		}
	}(events)
	return fz
}

// streamingRecorder ends the request's context once a stream has started,
// so a SUBSCRIBE that succeeds is answered and then disconnected rather
// than served forever.
type streamingRecorder struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (r *streamingRecorder) WriteHeader(code int) {
	r.ResponseRecorder.WriteHeader(code)
	if code == http.StatusOK {
		r.cancel()
	}
}

// post serves one request and returns its status code.
func (fz *schedulerFuzz) post(mediaType string, withStream bool, body []byte) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/scheduler", bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	req.Header.Set("Accept", mediaType)
	if withStream {
		req.Header.Set(httpapi.StreamIDHeader, fz.stream.Load().(string))
	}
	w := &streamingRecorder{ResponseRecorder: httptest.NewRecorder(), cancel: cancel}
	fz.handler.ServeHTTP(w, req)
	return w.Code
}

// fuzzSeeds are calls of every type, on behalf of the fuzz framework.
func (fz *schedulerFuzz) seeds() []string {
	calls := []string{
		`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}`,
		`{"type":"SUBSCRIBE","framework_id":{"value":"FW"},"subscribe":{"framework_info":{"id":{"value":"FW"},"user":"root","name":"fuzz","failover_timeout":3600}}}`,
		`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","roles":["a","b"],"capabilities":[{"type":"MULTI_ROLE"}]},"suppressed_roles":["a"]}}`,
		`{"type":"TEARDOWN","framework_id":{"value":"FW"}}`,
		`{"type":"ACCEPT","framework_id":{"value":"FW"},"accept":{"offer_ids":[{"value":"O1"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t1"},"agent_id":{"value":"A"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}}],"command":{"value":"true"}}]}}],"filters":{"refuse_seconds":1}}}`,
		`{"type":"DECLINE","framework_id":{"value":"FW"},"decline":{"offer_ids":[{"value":"O1"}],"filters":{"refuse_seconds":5}}}`,
		`{"type":"REVIVE","framework_id":{"value":"FW"},"revive":{"roles":["*"]}}`,
		`{"type":"SUPPRESS","framework_id":{"value":"FW"}}`,
		`{"type":"KILL","framework_id":{"value":"FW"},"kill":{"task_id":{"value":"t1"},"agent_id":{"value":"A"}}}`,
		`{"type":"SHUTDOWN","framework_id":{"value":"FW"},"shutdown":{"executor_id":{"value":"e"},"agent_id":{"value":"A"}}}`,
		`{"type":"ACKNOWLEDGE","framework_id":{"value":"FW"},"acknowledge":{"agent_id":{"value":"A"},"task_id":{"value":"t1"},"uuid":"AAECAw=="}}`,
		`{"type":"RECONCILE","framework_id":{"value":"FW"},"reconcile":{"tasks":[{"task_id":{"value":"t1"}}]}}`,
		`{"type":"MESSAGE","framework_id":{"value":"FW"},"message":{"agent_id":{"value":"A"},"executor_id":{"value":"e"},"data":"aGk="}}`,
		`{"type":"REQUEST","framework_id":{"value":"FW"},"request":{"requests":[]}}`,
		`{"type":"UPDATE_FRAMEWORK","framework_id":{"value":"FW"},"update_framework":{"framework_info":{"id":{"value":"FW"},"user":"root","name":"fuzz2","failover_timeout":3600}}}`,
		`{"type":"ACCEPT","framework_id":{"value":"FW"},"accept":{"offer_ids":[{"value":"O1"}],"operations":[{"type":"RESERVE","id":{"value":"op"},"reserve":{"resources":[]}},{"type":"LAUNCH_GROUP","id":{"value":"op2"},"launch_group":{"executor":{"executor_id":{"value":"e"}},"task_group":{"tasks":[]}}}]}}`,
		`{"type":"ACCEPT_INVERSE_OFFERS","framework_id":{"value":"FW"},"accept_inverse_offers":{"inverse_offer_ids":[{"value":"I1"}]}}`,
		`{"type":"DECLINE_INVERSE_OFFERS","framework_id":{"value":"FW"},"decline_inverse_offers":{"inverse_offer_ids":[{"value":"I1"}],"filters":{"refuse_seconds":1}}}`,
		`{"type":"RECONCILE_OPERATIONS","framework_id":{"value":"FW"},"reconcile_operations":{"operations":[{"operation_id":{"value":"op"},"agent_id":{"value":"A"}}]}}`,
		`{"type":"ACKNOWLEDGE_OPERATION_STATUS","framework_id":{"value":"FW"},"acknowledge_operation_status":{"agent_id":{"value":"A"},"uuid":"AAECAwQFBgcICQoLDA0ODw==","operation_id":{"value":"op"}}}`,
	}
	for i := range calls {
		calls[i] = strings.ReplaceAll(calls[i], `"FW"`, `"`+fz.frameworkID+`"`)
	}
	return calls
}

// check is the property both targets hold: whatever the body, the master
// answers without panicking, and never with a server error but 503.
func check(t *testing.T, status int, body []byte) {
	if status >= 500 && status != http.StatusServiceUnavailable {
		t.Fatalf("status %d for body %q", status, body)
	}
}

// FuzzSchedulerHTTPJSON posts arbitrary JSON bodies to /api/v1/scheduler
// of a running master, with and without its framework's stream ID.
func FuzzSchedulerHTTPJSON(f *testing.F) {
	fz := newSchedulerFuzz(f)
	for _, s := range fz.seeds() {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, withStream bool) {
		check(t, fz.post(codec.MediaTypeJSON, withStream, body), body)
	})
}

// FuzzSchedulerHTTPProtobuf does the same with protobuf bodies.
func FuzzSchedulerHTTPProtobuf(f *testing.F) {
	fz := newSchedulerFuzz(f)
	for _, s := range fz.seeds() {
		var call schedulerpb.Call
		require.NoError(f, codec.UnmarshalJSON([]byte(s), &call), s)
		b, err := codec.Protobuf.Marshal(&call)
		require.NoError(f, err)
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, body []byte, withStream bool) {
		check(t, fz.post(codec.MediaTypeProtobuf, withStream, body), body)
	})
}

// FuzzOperatorHTTPJSON posts arbitrary JSON bodies to the operator API
// (/api/v1) of a running master with an agent and a framework: whatever
// the body, no panic and no server error but 503.
func FuzzOperatorHTTPJSON(f *testing.F) {
	fz := newSchedulerFuzz(f)
	agent := `{"value":"` + fz.frameworkID[:strings.LastIndex(fz.frameworkID, "-")] + `-S1"}`
	for _, s := range []string{
		`{"type":"GET_STATE"}`, `{"type":"GET_AGENTS"}`, `{"type":"GET_FRAMEWORKS"}`, `{"type":"GET_TASKS"}`,
		`{"type":"GET_METRICS","get_metrics":{"timeout":{"nanoseconds":1}}}`, `{"type":"GET_FLAGS"}`, `{"type":"GET_OPERATIONS"}`,
		`{"type":"GET_LOGGING_LEVEL"}`, `{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":3,"duration":{"nanoseconds":-5}}}`,
		`{"type":"LIST_FILES","list_files":{"path":"/master/log"}}`, `{"type":"READ_FILE","read_file":{"path":"../x","offset":18446744073709551615,"length":5}}`,
		`{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"a","weight":2}]}}`,
		`{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"a","limits":{"cpus":{"value":1}}}]}}`,
		`{"type":"RESERVE_RESOURCES","reserve_resources":{"agent_id":AG,"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"DYNAMIC","role":"a"}]}]}}`,
		`{"type":"GROW_VOLUME","grow_volume":{"agent_id":AG,"volume":{"name":"disk","type":"SCALAR","scalar":{"value":1}},"addition":{"name":"disk","type":"SCALAR","scalar":{"value":1}}}}`,
		`{"type":"SHRINK_VOLUME","shrink_volume":{"agent_id":AG,"volume":{"name":"disk","type":"SCALAR","scalar":{"value":2}},"subtract":{"value":1}}}`,
		`{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[{"machine_ids":[{"hostname":"localhost"}],"unavailability":{"start":{"nanoseconds":0},"duration":{"nanoseconds":9223372036854775807}}}]}}}`,
		`{"type":"START_MAINTENANCE","start_maintenance":{"machines":[{"hostname":"localhost","ip":"::1"}]}}`,
		`{"type":"STOP_MAINTENANCE","stop_maintenance":{"machines":[{"hostname":"localhost"}]}}`,
		`{"type":"GET_MAINTENANCE_STATUS"}`, `{"type":"GET_MAINTENANCE_SCHEDULE"}`,
		`{"type":"DRAIN_AGENT","drain_agent":{"agent_id":AG,"max_grace_period":{"seconds":-1,"nanos":-1},"mark_gone":true}}`,
		`{"type":"DEACTIVATE_AGENT","deactivate_agent":{"agent_id":AG}}`, `{"type":"REACTIVATE_AGENT","reactivate_agent":{"agent_id":AG}}`,
		`{"type":"MARK_AGENT_GONE","mark_agent_gone":{"agent_id":AG}}`,
		`{"type":"TEARDOWN","teardown":{"framework_id":{"value":"FW"}}}`,
	} {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "AG", agent), `"FW"`, `"`+fz.frameworkID+`"`)
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1", bytes.NewReader(body))
		req.Header.Set("Content-Type", codec.MediaTypeJSON)
		w := &streamingRecorder{ResponseRecorder: httptest.NewRecorder(), cancel: cancel}
		fz.handler.ServeHTTP(w, req)
		check(t, w.Code, body)
	})
}

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

	fakeAgent(f, m, "fuzz-agent", "cpus:8;mem:8192;ports:[31000-32000]")
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

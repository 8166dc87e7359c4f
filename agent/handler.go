package agent

import (
	"errors"
	"io"
	"net/http"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/httpmetrics"
)

// Paths of the agent's HTTP API.
const (
	ExecutorAPIPath = "/api/v1/executor" // the Mesos v1 executor API
	OperatorAPIPath = "/api/v1"          // the Mesos v1 agent operator API
)

// maxAPIBody bounds a call's body; executor updates carry task data.
const maxAPIBody = httpapi.DefaultMaxBodyBytes

// Handler returns the agent's HTTP API, wire-compatible with a Mesos agent's:
//
//   - POST /api/v1/executor: the executor API (executorpb Call and Event),
//     served by SubscribeExecutor and ExecutorCall. SUBSCRIBE answers 200
//     with a RecordIO stream (SUBSCRIBED first, then the agent's events,
//     and HEARTBEAT every Config.ExecutorHeartbeatInterval of silence);
//     UPDATE, MESSAGE and HEARTBEAT answer 202. As in Mesos, a call names
//     its executor by framework_id and executor_id and goes to that
//     executor's current subscription; a Mesos-Stream-Id header, when
//     present, must name that subscription.
//   - POST /api/v1: the operator API (agentpb Call and Response):
//     GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_STATE,
//     GET_CONTAINERS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS,
//     GET_AGENT, GET_LOGGING_LEVEL, SET_LOGGING_LEVEL, GET_OPERATIONS,
//     GET_RESOURCE_PROVIDERS, KILL_CONTAINER and WAIT_CONTAINER, and
//     the debugging calls LAUNCH_NESTED_CONTAINER_SESSION,
//     LAUNCH_NESTED_CONTAINER, ATTACH_CONTAINER_INPUT and
//     ATTACH_CONTAINER_OUTPUT, whose requests and answers stream
//     (operator_nested.go); other calls answer 501 naming the call.
//   - GET /health (200 "OK" while Run runs, else 503) and GET /metrics
//     (Prometheus text format).
//   - Mesos's own endpoints, in Mesos's JSON shapes (endpoints.go): GET
//     /state, /flags, /containers, /monitor/statistics, /metrics/snapshot,
//     /logging/toggle and /version; the agent's are also under /slave(1)/,
//     as is the operator API (/slave(1)/api/v1).
//
// Calls are protobuf or JSON (Content-Type); Accept picks the answer's
// encoding, JSON by default. Status codes are Mesos's: 400 for a malformed
// or invalid call, or one naming a framework or executor the agent does
// not know, 403 for a call of an executor that never subscribed (or of
// another subscription), 405 for a method other than POST, 406 for
// an Accept it cannot satisfy, 413 for a body over 8 MiB, 415 for a body
// that is neither protobuf nor JSON, 503 when the agent is not running.
//
// With authentication on (Config.AuthenticateHTTP*), a request without a
// valid credential is answered 401 with a WWW-Authenticate challenge of
// its family's realm; one the Config.Authorizer refuses, 403 naming the
// action (auth.go).
//
// The embedder serves Handler where Config.Endpoint says executor
// processes find it. Streams end when Run returns.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	executorAPI := a.executorAuthenticated(http.HandlerFunc(a.serveExecutorAPI)) // auth.go
	mux.Handle(ExecutorAPIPath, executorAPI)
	// Mesos's executor library posts to /slave(1)/api/v1/executor, built
	// from MESOS_SLAVE_PID.
	mux.Handle("/"+pidName+ExecutorAPIPath, executorAPI)
	mux.Handle(OperatorAPIPath, a.readWrite(http.HandlerFunc(a.serveOperatorAPI)))
	mux.HandleFunc("/health", a.serveHealth)
	httpDuration := httpmetrics.NewHistogram("apron_agent_http_request_duration_seconds",
		"Duration of HTTP requests by endpoint (the route's pattern) and status code; for a streaming "+
			"response (an executor's SUBSCRIBE, ATTACH_CONTAINER_OUTPUT), the time until its headers were sent.")
	mux.Handle("/metrics", a.readOnly(a.promHandler(httpDuration)))
	a.mesosRoutes(mux) // /state, /containers, /metrics/snapshot...: endpoints.go
	a.routeFiles(mux)  // /files/*: files.go
	return httpmetrics.Instrument(mux, httpDuration)
}

// readOnly and readWrite wrap h in the authentication of its family
// (auth.go).
func (a *Agent) readOnly(h http.Handler) http.Handler {
	return a.authenticated(a.cfg.AuthenticateHTTPReadOnly, auth.RealmAgentReadOnly, h)
}

func (a *Agent) readWrite(h http.Handler) http.Handler {
	return a.authenticated(a.cfg.AuthenticateHTTPReadWrite, auth.RealmAgentReadWrite, h)
}

func (a *Agent) serveExecutorAPI(w http.ResponseWriter, r *http.Request) {
	var call executorpb.Call
	c, err := httpapi.DecodeCall(r, &call, maxAPIBody, httpapi.LogIgnored(a.log))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if call.FrameworkID.Value == "" || call.ExecutorID.Value == "" {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "expecting 'framework_id' and 'executor_id' to be present"))
		return
	}
	switch call.GetType() {
	case executorpb.Call_SUBSCRIBE:
		id, events, err := a.subscribeExecutorAs(r.Context(), claimsFrom(r.Context()), &call)
		if err != nil {
			httpapi.WriteError(w, handlerError(err))
			return
		}
		heartbeat := func() *executorpb.Event { return &executorpb.Event{Type: executorpb.Event_HEARTBEAT.Enum()} }
		httpapi.ServeStream(w, r, c, id, events, heartbeat, a.cfg.ExecutorHeartbeatInterval)
	case executorpb.Call_HEARTBEAT:
		// As Mesos (Http::executor): accepted before any other check, from
		// any executor, subscribed or not.
		w.WriteHeader(http.StatusAccepted)
	case executorpb.Call_UPDATE, executorpb.Call_MESSAGE:
		streamID := r.Header.Get(httpapi.StreamIDHeader)
		claims := claimsFrom(r.Context())
		err, perr := request(a, r.Context(), func() error { return a.executorCallAs(claims, streamID, &call) })
		if perr != nil {
			err = perr
		}
		if err != nil {
			httpapi.WriteError(w, handlerError(err))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "expecting 'type' to be one of SUBSCRIBE, UPDATE, MESSAGE, HEARTBEAT, got %s", call.GetType()))
	}
}

// executorCallAs is ExecutorCall for a call that may name no stream, as a
// Mesos executor's (see executorCall), from a caller whose token made
// claims (nil: none; see checkClaims).
func (a *Agent) executorCallAs(claims *executorClaims, streamID string, call *executorpb.Call) error {
	if claims != nil {
		e, err := a.callingExecutor(call)
		if err != nil {
			return err
		}
		if err := checkClaims(claims, e); err != nil {
			return err
		}
	}
	return a.executorCall(streamID, call)
}

// handlerError maps an error of the executor link to its HTTP answer.
func handlerError(err error) error {
	var he *httpapi.Error
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, ErrNotSubscribed):
		return httpapi.Errorf(http.StatusForbidden, "%v", err)
	case errors.Is(err, ErrInvalidCall):
		return httpapi.Errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, ErrStopped):
		return httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	case httpapi.Canceled(err):
		return httpapi.Errorf(http.StatusServiceUnavailable, "the request ended before the agent answered: %v", err)
	}
	return err
}

func (a *Agent) serveOperatorAPI(w http.ResponseWriter, r *http.Request) {
	if isStreamingOperatorRequest(r) { // operator_nested.go
		a.serveStreamingOperatorCall(w, r)
		return
	}
	var call agentpb.Call
	c, err := httpapi.DecodeCall(r, &call, maxAPIBody, httpapi.LogIgnored(a.log))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	ap, err := a.authorizeOperator(r.Context(), &call) // auth.go
	if err != nil {
		httpapi.WriteError(w, authError(err))
		return
	}
	if a.serveOperatorStream(w, r, c, &call) { // answers that stream
		return
	}
	resp, err := a.operatorCall(r.Context(), &call)
	if err == nil {
		err = a.filterResponse(r.Context(), resp, ap)
	}
	if err != nil {
		httpapi.WriteError(w, handlerError(err))
		return
	}
	if resp == nil {
		// Calls such as SET_LOGGING_LEVEL and KILL_CONTAINER answer 200
		// with no body, as Mesos's.
		w.WriteHeader(http.StatusOK)
		return
	}
	httpapi.WriteMessage(w, c, resp)
}

// requireGET answers 405 to a method other than GET or HEAD.
func requireGET(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "expecting a 'GET' request, received '%s'", r.Method))
	return false
}

func (a *Agent) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !requireGET(w, r) {
		return
	}
	if _, err := request(a, r.Context(), func() bool { return true }); err != nil {
		httpapi.WriteError(w, handlerError(err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "OK\n")
}

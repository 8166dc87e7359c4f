package master

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master/webui"
)

// Handler returns the master's HTTP API:
//
//	POST /api/v1/scheduler  the Mesos v1 scheduler API (schedulerpb Call/Event)
//	POST /apron/v1/agent    Apron's agent link (internalpb Call/Event)
//	POST /api/v1            the Mesos v1 operator API (masterpb Call/Response/Event)
//	GET  /state             GET_STATE as JSON (the operator API's protobuf JSON)
//	GET  /health            200 "OK" while leading, 503 otherwise
//	GET  /metrics           Prometheus text format
//	GET  /, /ui/...         the web UI (package webui), unless Config.DisableWebUI
//
// and the endpoints of a Mesos master that tools read, in Mesos's own JSON
// (see endpoints.go), under Mesos's "/master/" prefix and, as Mesos's
// libprocess delegates root paths to the master, at the root where Apron
// has no endpoint of its own there:
//
//	GET /master/state, /master/state.json, /state.json
//	GET /master/state-summary, /state-summary
//	GET /master/frameworks, /frameworks      ?framework_id=
//	GET /master/slaves, /slaves              ?slave_id=
//	GET /master/tasks, /tasks                ?limit= &offset= &order= &framework_id= &task_id=
//	GET /master/roles, /roles
//	GET /master/flags, /flags
//	GET /master/redirect, /redirect          307 to the leader, "//host:port"
//	GET /master/health                       200, empty, from any running master
//	GET /metrics/snapshot                    Mesos's metric names, a flat JSON object
//	GET /version                             Mesos's /version
//	/teardown, /reserve, /unreserve, /create-volumes, /destroy-volumes,
//	/quota, /weights                         Mesos's older operator endpoints (endpoints_v0.go)
//
// The Mesos v1 APIs are also served under "/master/" (/master/api/v1,
// /master/api/v1/scheduler), as Mesos serves them. Apron's /state and
// /health keep their meaning (Mesos's /state is /master/state, and its
// /health answers 200 on a standby too; see /master/health).
//
// With Config's Authenticate* switches on, each family of endpoints asks
// for a credential first (401 with WWW-Authenticate naming its realm),
// before the leader redirect, as auth.go lists them; /health,
// /master/health, /version and /redirect stay open, as Mesos's. With a
// Config.Authorizer, calls are authorized and reads filtered for the
// authenticated principal (auth.go, auth_operator.go, auth_view.go).
//
// A master that does not lead answers 307 to the same path on the leader,
// or 503 when it knows no leader, except on /health, /master/health,
// /metrics, /metrics/snapshot, /version, /flags, /master/flags and
// /redirect, which every master answers itself, as Mesos's do. The
// handler holds no state of its own: streams are the master's, and end
// when the request's context does.
func (m *Master) Handler() http.Handler {
	mux := http.NewServeMux()
	// Authentication comes first, before the leader redirect and the
	// body (auth.go lists the families).
	cfg := m.cfg
	readOnly := func(h http.Handler) http.Handler {
		return m.authenticated(cfg.AuthenticateHTTPReadOnly, auth.RealmMasterReadOnly, h)
	}
	readWrite := func(h http.Handler) http.Handler {
		return m.authenticated(cfg.AuthenticateHTTPReadWrite, auth.RealmMasterReadWrite, h)
	}
	scheduler := m.authenticated(cfg.AuthenticateFrameworks, auth.RealmMasterScheduler,
		m.leaderOnly(m.admission.wrap(http.HandlerFunc(m.serveScheduler))))
	operator := readWrite(m.leaderOnly(http.HandlerFunc(m.serveOperator)))
	mux.Handle("/api/v1/scheduler", scheduler)
	mux.Handle("/master/api/v1/scheduler", scheduler)
	mux.Handle("/apron/v1/agent", m.authenticated(cfg.AuthenticateAgents, RealmMasterAgent,
		m.leaderOnly(http.HandlerFunc(m.serveAgent))))
	mux.Handle("/api/v1", operator)
	mux.Handle("/master/api/v1", operator)
	mux.Handle("/state", readOnly(m.leaderOnly(getOnly(m.serveState))))
	mux.Handle("/health", getOnly(m.serveHealth))
	mux.Handle("/metrics", readOnly(getOnly(m.prom.handler().ServeHTTP)))

	// Mesos's endpoints, at both paths where Mesos answers them.
	both := func(path string, h http.Handler) {
		mux.Handle("/master"+path, h)
		mux.Handle(path, h)
	}
	state := readOnly(m.leaderOnly(getOnly(m.serveMesosState())))
	mux.Handle("/master/state", state)
	mux.Handle("/master/state.json", state)
	mux.Handle("/state.json", state)
	both("/state-summary", readOnly(m.leaderOnly(getOnly(m.serveStateSummary()))))
	both("/frameworks", readOnly(m.leaderOnly(getOnly(m.serveFrameworks()))))
	both("/slaves", readOnly(m.leaderOnly(getOnly(m.serveSlaves()))))
	both("/tasks", readOnly(m.leaderOnly(getOnly(m.serveTasks()))))
	both("/roles", readOnly(m.leaderOnly(getOnly(m.serveMesosRoles()))))
	both("/flags", readOnly(m.authorizedFor(auth.ViewFlags, nil, getOnly(m.serveFlags()))))
	both("/redirect", getOnly(m.serveRedirect))
	mux.Handle("/master/health", getOnly(m.serveMasterHealth))
	mux.Handle("/metrics/snapshot", readOnly(m.authorizedFor(auth.GetEndpoint, &auth.Object{Value: "/metrics/snapshot"},
		getOnly(m.serveMetricsSnapshot()))))
	mux.Handle("/version", getOnly(m.serveVersion))
	m.routeFiles(mux, readOnly) // /files/*: files.go
	// /maintenance/*, /machine/*: maintenance_http.go
	m.routeMaintenance(both, readOnly, readWrite)
	// /teardown, /reserve, /quota, /weights, ...: endpoints_v0.go
	m.routeV0(both, readWrite)
	if !cfg.DisableWebUI {
		// The UI, in the read-only family as /state: a browser asked for
		// a credential shows its own prompt, then sends it with every
		// request of the page. Only the page goes to the leader (its
		// requests are relative, so they follow it there); the assets are
		// the same on every master.
		ui := webui.Handler()
		mux.Handle("/{$}", readOnly(m.leaderOnly(ui)))
		mux.Handle("/index.html", readOnly(m.leaderOnly(ui)))
		mux.Handle(webui.AssetPrefix, readOnly(ui))
	}
	return m.prom.instrument(mux)
}

// leading asks the configured Leadership; without one the master leads.
func (m *Master) leading() (bool, string) {
	if m.cfg.Leadership == nil {
		return true, ""
	}
	return m.cfg.Leadership.Leader()
}

// leaderOnly answers for a master that does not lead: 307 to the same
// endpoint on the leader, as Mesos does, so clients find it; 503 when no
// leader is known, so they retry later.
func (m *Master) leaderOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leading, leader := m.leading()
		if leading && m.cfg.Registry != nil && !m.recovered.Load() {
			// Mesos answers so while its registrar recovers.
			httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "master has not finished recovery"))
			return
		}
		if leading {
			h.ServeHTTP(w, r)
			return
		}
		if leader == "" {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "no leading master is known"))
			return
		}
		// Protocol-relative, as Mesos writes it ("//host:port/path"):
		// clients written against Mesos parse that form.
		loc := protocolRelative(leader) + r.URL.RequestURI()
		w.Header().Set("Location", loc)
		httpapi.WriteError(w, httpapi.Errorf(http.StatusTemporaryRedirect, "this master is not the leader; the leader is %s", leader))
	})
}

// getOnly admits GET and HEAD.
func getOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpapi.WriteError(w, httpapi.Errorf(http.StatusMethodNotAllowed, "expecting a 'GET' request, received '%s'", r.Method))
			return
		}
		h(w, r)
	})
}

// httpError maps the master's errors to the status codes a Mesos client
// expects.
func httpError(err error) error {
	var he *httpapi.Error
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, ErrNotSubscribed), errors.Is(err, ErrForbidden):
		return httpapi.Errorf(http.StatusForbidden, "%v", err)
	case errors.Is(err, ErrAuthorizer):
		return httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	case errors.Is(err, ErrInvalidCall):
		return httpapi.Errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, ErrConflict):
		return httpapi.Errorf(http.StatusConflict, "%v", err)
	case errors.Is(err, ErrNotFound):
		return httpapi.Errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, errors.ErrUnsupported):
		return httpapi.Errorf(http.StatusNotImplemented, "%v", err)
	case errors.Is(err, ErrStopped):
		return httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	case httpapi.Canceled(err):
		return httpapi.Errorf(http.StatusServiceUnavailable, "the request ended before the master answered: %v", err)
	}
	return err
}

// validType rejects a call whose type is missing or not one of names (a
// protobuf body may carry any number there).
func validType[T ~int32](typ T, unknown T, names map[int32]string) error {
	if _, ok := names[int32(typ)]; !ok || typ == unknown {
		return httpapi.Errorf(http.StatusBadRequest, "expecting 'type' to be present and known")
	}
	return nil
}

// serveScheduler is POST /api/v1/scheduler. SUBSCRIBE answers 200 with the
// framework's event stream, which lasts as long as the request; any other
// call must carry the stream's Mesos-Stream-Id and is answered 202 (400
// without it or for an unknown framework, 403 for one not subscribed, as
// Mesos answers).
func (m *Master) serveScheduler(w http.ResponseWriter, r *http.Request) {
	var call schedulerpb.Call
	c, err := httpapi.DecodeCall(r, &call, 0, httpapi.LogIgnored(m.core.log))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if err := validType(call.GetType(), schedulerpb.Call_UNKNOWN, schedulerpb.Call_Type_name); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	streamID := r.Header.Get(httpapi.StreamIDHeader)
	if call.GetType() == schedulerpb.Call_SUBSCRIBE {
		if streamID != "" {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "a SUBSCRIBE call must not carry the '%s' header", httpapi.StreamIDHeader))
			return
		}
		if call.Subscribe == nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "expecting 'subscribe' to be present"))
			return
		}
		id, events, err := m.SubscribeScheduler(r.Context(), &call)
		if err != nil {
			httpapi.WriteError(w, httpError(err))
			return
		}
		httpapi.ServeStream(w, r, c, id, events, nil, 0)
		return
	}
	if call.FrameworkID == nil {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "expecting 'framework_id' to be present"))
		return
	}
	if err := m.SchedulerCall(r.Context(), streamID, &call); err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// serveAgent is POST /apron/v1/agent, the agent link: REGISTER or
// REREGISTER answers 200 with the agent's event stream; any other call
// carries the stream's Mesos-Stream-Id and is answered 202.
//
// Calls on a stream may also come several in one request, as Mesos's
// streaming requests do: Content-Type application/recordio, one call per
// record, encoded as Message-Content-Type says. A batch is checked whole
// first (a record that does not decode or is not a valid call is a 400
// naming it, and nothing is applied), then applied in order as AgentCalls
// does: a call the master refuses ends the batch with the error of that
// call, "call <index>: ...", the calls before it staying applied.
func (m *Master) serveAgent(w http.ResponseWriter, r *http.Request) {
	calls, c, err := httpapi.DecodeCalls[internalpb.Call](r, 0, httpapi.LogIgnored(m.core.log))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	batch := httpapi.IsBatch(r)
	streamID := r.Header.Get(httpapi.StreamIDHeader)
	for i, call := range calls {
		if e := checkAgentCall(call, batch); e != nil {
			if batch {
				e = httpapi.Errorf(e.Status, "record %d: %s", i, e.Message)
			}
			httpapi.WriteError(w, e)
			return
		}
	}
	if call := calls[0]; !batch && (call.GetType() == internalpb.Call_REGISTER || call.GetType() == internalpb.Call_REREGISTER) {
		if streamID != "" {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "a %s call must not carry the '%s' header", call.GetType(), httpapi.StreamIDHeader))
			return
		}
		id, events, err := m.ConnectAgent(withPeerAddr(r.Context(), r.RemoteAddr), call)
		if err != nil {
			httpapi.WriteError(w, httpError(err))
			return
		}
		httpapi.ServeBatchedStream(w, r, c, id, events, nil, 0)
		return
	}
	if streamID == "" {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusForbidden, "every call but REGISTER and REREGISTER must carry the '%s' header of its stream", httpapi.StreamIDHeader))
		return
	}
	if batch {
		err = m.AgentCalls(r.Context(), streamID, calls)
	} else {
		err = m.AgentCall(r.Context(), streamID, calls[0])
	}
	if err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// checkAgentCall is what serveAgent checks of a call before the master
// sees it; REGISTER and REREGISTER open a stream and cannot come in a
// batch.
func checkAgentCall(call *internalpb.Call, batch bool) *httpapi.Error {
	if _, ok := internalpb.Call_Type_name[int32(call.GetType())]; !ok || call.GetType() == internalpb.Call_UNKNOWN {
		return httpapi.Errorf(http.StatusBadRequest, "expecting 'type' to be present and known")
	}
	if t := call.GetType(); t == internalpb.Call_REGISTER || t == internalpb.Call_REREGISTER {
		if batch {
			return httpapi.Errorf(http.StatusBadRequest, "a %s call opens a stream and cannot come in a batch", t)
		}
		return nil
	}
	if call.AgentID == nil {
		return httpapi.Errorf(http.StatusBadRequest, "expecting 'agent_id' to be present")
	}
	return nil
}

// serveState is GET /state: GET_STATE in JSON.
func (m *Master) serveState(w http.ResponseWriter, r *http.Request) {
	if !httpapi.AcceptsJSONOnly(r) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotAcceptable, "/state answers %s only", codec.MediaTypeJSON))
		return
	}
	st, err := m.State(r.Context())
	if err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	b, err := codec.MarshalJSON(st)
	if err != nil {
		httpapi.WriteError(w, fmt.Errorf("encoding the state: %w", err))
		return
	}
	writeBody(w, r, codec.MediaTypeJSON, b)
}

// serveHealth is GET /health: 200 "OK" from a running leader, 503 from a
// standby or a stopped master, so a load balancer sends traffic to the
// leader only.
func (m *Master) serveHealth(w http.ResponseWriter, r *http.Request) {
	if leading, _ := m.leading(); !leading {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "not leading"))
		return
	}
	select {
	case <-m.done:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "stopped"))
		return
	default:
	}
	writeBody(w, r, "text/plain; charset=utf-8", []byte("OK\n"))
}

func writeBody(w http.ResponseWriter, r *http.Request, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

package master

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/mesosjson"
)

// This file serves the HTTP endpoints of a Mesos master that tools read
// (service discovery, exporters, UIs): /master/state, /master/frameworks,
// ... in the JSON Mesos writes (package mesosjson, endpoints_model.go),
// built from the operator API's answers. Mesos serves each under its
// process's prefix ("/master/state") and, through libprocess's delegate,
// at the root too ("/state"); Apron serves both where the root path is
// free (see Handler).

// view copies what parts asks for off the core. It runs on the master's
// goroutine.
func (c *core) view(parts viewParts, elected bool, now time.Time) *mesosView {
	v := &mesosView{now: now, elected: elected}
	ask := func(t masterpb.Call_Type) *masterpb.Response {
		resp, err := c.operatorCall(&masterpb.Call{Type: t.Enum()}, elected)
		if err != nil {
			c.log.Warn("the Mesos endpoints could not read the state", "call", t, "err", err)
			return nil
		}
		return resp
	}
	if parts&(viewState|viewMetrics) != 0 {
		v.state = ask(masterpb.Call_GET_STATE).GetGetState()
		v.agentIPs = make(map[string]string, len(c.agents))
		for id, a := range c.agents {
			if ip := agentIP(a); ip != "" {
				v.agentIPs[id] = ip
			}
		}
	}
	if parts&(viewMaster|viewMetrics) != 0 {
		v.master = ask(masterpb.Call_GET_MASTER).GetGetMaster()
	}
	if parts&viewFlags != 0 {
		v.flags = ask(masterpb.Call_GET_FLAGS).GetGetFlags().GetFlags()
	}
	if parts&viewRoles != 0 {
		v.roles = c.rolesView()
	}
	if parts&viewMetrics != 0 {
		v.metrics = c.snapshotMetrics(elected)
		v.metrics.tasksEnded = maps.Clone(c.met.tasksEnded) // read off the master's goroutine
		v.operatorSubscribers = len(c.ops.subs)
		v.allocatorRoles = c.alloc.Roles()
		v.drf = c.cfg.Sorter == allocator.SorterDRF
	}
	return v
}

// mesosView reads the master for a Mesos endpoint.
// The state in it shows what the principal of ctx may see (auth_view.go).
func (m *Master) mesosView(ctx context.Context, parts viewParts) (*mesosView, error) {
	leading, _ := m.leading()
	var ap approvers
	if parts&(viewState|viewRoles) != 0 {
		var err error
		if ap, err = m.approvers(ctx, principalOf(ctx), viewActions...); err != nil {
			return nil, err
		}
	}
	var v *mesosView
	err := m.do(ctx, func(c *core) {
		v = c.view(parts, leading, m.cfg.Clock.Now())
		c.filterState(v.state, ap)
		filterRoles(&v.roles, ap)
	})
	return v, err
}

// serveModel answers a Mesos endpoint: it reads the view and writes what
// doc makes of it (see mesosjson.Serve).
func (m *Master) serveModel(parts viewParts, doc func(*http.Request, *mesosView) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mesosjson.Serve(w, r, func() (any, error) {
			v, err := m.mesosView(r.Context(), parts)
			if err != nil {
				return nil, httpError(err)
			}
			return doc(r, v)
		})
	}
}

// queryValue is a query parameter as Mesos reads it: nil when absent, the
// last value when repeated.
func queryValue(r *http.Request, key string) *string {
	vs, ok := r.URL.Query()[key]
	if !ok || len(vs) == 0 {
		return nil
	}
	return &vs[len(vs)-1]
}

// serveMesosState is GET /master/state (also /master/state.json and
// /state.json, which Mesos served until 1.7 and older tools still ask
// for).
func (m *Master) serveMesosState() http.HandlerFunc {
	return m.serveModel(viewState|viewMaster|viewFlags, func(_ *http.Request, v *mesosView) (any, error) {
		return newStateIndex(v).state(), nil
	})
}

// serveStateSummary is GET /master/state-summary.
func (m *Master) serveStateSummary() http.HandlerFunc {
	return m.serveModel(viewState|viewMaster, func(_ *http.Request, v *mesosView) (any, error) {
		return newStateIndex(v).stateSummary(), nil
	})
}

// serveFrameworks is GET /master/frameworks[?framework_id=].
func (m *Master) serveFrameworks() http.HandlerFunc {
	return m.serveModel(viewState, func(r *http.Request, v *mesosView) (any, error) {
		return newStateIndex(v).frameworksDoc(queryValue(r, "framework_id")), nil
	})
}

// serveSlaves is GET /master/slaves[?slave_id=].
func (m *Master) serveSlaves() http.HandlerFunc {
	return m.serveModel(viewState, func(r *http.Request, v *mesosView) (any, error) {
		return newStateIndex(v).slavesDoc(queryValue(r, "slave_id")), nil
	})
}

// serveTasks is GET /master/tasks with Mesos's query: limit (default
// 100), offset, order (asc, or descending by default), framework_id and
// task_id. A limit or offset that is not an integer is ignored, as Mesos
// ignores it; a negative limit means no limit, a negative offset an empty
// page (Mesos reads both as huge unsigned numbers).
func (m *Master) serveTasks() http.HandlerFunc {
	return m.serveModel(viewState, func(r *http.Request, v *mesosView) (any, error) {
		q := tasksQuery{limit: defaultTaskLimit, frameworkID: queryValue(r, "framework_id"), taskID: queryValue(r, "task_id")}
		if s := queryValue(r, "limit"); s != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(*s)); err == nil {
				q.limit = n
			}
		}
		if s := queryValue(r, "offset"); s != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(*s)); err == nil {
				q.offset = n
			}
		}
		if s := queryValue(r, "order"); s != nil && *s == "asc" {
			q.ascending = true
		}
		return newStateIndex(v).tasksDoc(q), nil
	})
}

// serveMesosRoles is GET /master/roles and /roles.
func (m *Master) serveMesosRoles() http.HandlerFunc {
	return m.serveModel(viewState|viewRoles, func(_ *http.Request, v *mesosView) (any, error) {
		return newStateIndex(v).roles(), nil
	})
}

// serveFlags is GET /flags and /master/flags: {"flags": {name: value}}.
// As Mesos, a standby answers it itself.
func (m *Master) serveFlags() http.HandlerFunc {
	return m.serveModel(viewFlags, func(_ *http.Request, v *mesosView) (any, error) {
		return map[string]map[string]string{"flags": mesosjson.Flags(v.flags)}, nil
	})
}

// serveMetricsSnapshot is GET /metrics/snapshot: a flat object of metric
// names to numbers, as libprocess's metrics process writes it. Any master,
// leading or not, answers it itself (master/elected tells which).
func (m *Master) serveMetricsSnapshot() http.HandlerFunc {
	model := m.serveModel(viewMetrics, func(_ *http.Request, v *mesosView) (any, error) {
		return mesosjson.Doubles(v.metricsMap()), nil
	})
	return func(w http.ResponseWriter, r *http.Request) {
		if !m.running() {
			// A standby, waiting to lead: Mesos's answer has
			// master/elected 0, which is what monitors look for.
			mesosjson.Serve(w, r, func() (any, error) {
				return mesosjson.Doubles(map[string]float64{"master/elected": 0}), nil
			})
			return
		}
		model(w, r)
	}
}

// serveVersion is GET /version: the Mesos API version Apron implements,
// which clients compare with Mesos's versions, the build, and Apron's
// version.
func (m *Master) serveVersion(w http.ResponseWriter, r *http.Request) {
	mesosjson.Serve(w, r, func() (any, error) { return mesosjson.VersionOf(MesosVersion), nil })
}

// serveMasterHealth is GET /master/health: 200 with no body from a running
// master, leading or not, as Mesos's (a load balancer that wants the
// leader asks /health, which answers 503 from a standby).
func (m *Master) serveMasterHealth(w http.ResponseWriter, r *http.Request) {
	select {
	case <-m.done:
		httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "stopped"))
		return
	default:
	}
	w.WriteHeader(http.StatusOK)
}

// serveRedirect is GET /master/redirect (and /redirect): 307 to the
// leading master's base URL, protocol-relative ("//host:port") as Mesos
// writes it, so a browser keeps its scheme; 503 when no leader is known.
// A leader redirects to itself. Paths under it are 404, as Mesos guards
// against redirect loops.
func (m *Master) serveRedirect(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/master/redirect" && r.URL.Path != "/redirect" {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusNotFound, "no such endpoint"))
		return
	}
	leading, leader := m.leading()
	base := ""
	if leading {
		// MasterInfo's hostname and port, which Config sets.
		base = "//" + joinHostPort(m.cfg.Hostname, int64(m.cfg.Port))
	} else if leader != "" {
		base = protocolRelative(leader)
	}
	if base == "" {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusServiceUnavailable, "no leader elected"))
		return
	}
	w.Header().Set("Location", base)
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// protocolRelative turns a leader's base URL ("http://10.0.0.2:5050")
// into the form Mesos redirects to ("//10.0.0.2:5050").
func protocolRelative(leader string) string {
	if u, err := url.Parse(leader); err == nil && u.Host != "" {
		return "//" + u.Host + strings.TrimSuffix(u.Path, "/")
	}
	return "//" + strings.TrimPrefix(strings.TrimSuffix(leader, "/"), "//")
}

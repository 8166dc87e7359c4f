package master

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/httpapi"
)

// SubscribeOperator opens an operator event stream (the operator API's
// SUBSCRIBE). The channel starts with SUBSCRIBED, holding the whole state
// and the heartbeat interval, then carries TASK_ADDED, TASK_UPDATED,
// AGENT_ADDED, AGENT_REMOVED, FRAMEWORK_ADDED, FRAMEWORK_UPDATED,
// FRAMEWORK_REMOVED and HEARTBEAT as they happen: Mesos's event types, all
// of them. Mesos has no event for a change of a known agent's total, so
// neither has Apron: reservations and volumes made or destroyed (by
// frameworks' ACCEPT or the operator calls) show in GET_AGENTS and
// GET_STATE, and an agent that re-registers, whatever its resources, is
// announced again with AGENT_ADDED carrying its total. It is closed when
// the subscriber falls StreamBuffer events behind, or the master stops;
// cancelling ctx ends the subscription.
//
// With a Config.Authorizer, the stream shows what the principal of ctx
// may see: the frameworks, tasks and executors of its view ACLs
// (auth_view.go).
func (m *Master) SubscribeOperator(ctx context.Context) (string, <-chan *masterpb.Event, error) {
	ap, err := m.approvers(ctx, principalOf(ctx), viewActions...)
	if err != nil {
		return "", nil, err
	}
	sub := &subscriber{operator: make(chan *masterpb.Event, m.cfg.StreamBuffer), stop: make(chan struct{})}
	id, err := m.openStream(ctx, sub, func(c *core) (string, error) { return c.subscribeOperator(ap), nil })
	if err != nil {
		return "", nil, err
	}
	return id, sub.operator, nil
}

// OperatorCall answers an operator API call other than SUBSCRIBE. A call
// that is malformed gives an error wrapping ErrInvalidCall; one Apron does
// not implement yet, an error wrapping errors.ErrUnsupported; one valid
// that the cluster's state cannot satisfy, an error wrapping ErrConflict;
// one naming an agent Mesos answers 404 for (MARK_AGENT_GONE), an error
// wrapping ErrNotFound. A nil Response with a nil error means the call was
// applied and has no answer (UPDATE_WEIGHTS, the quota updates,
// RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES, DESTROY_VOLUMES,
// GROW_VOLUME, SHRINK_VOLUME, SET_LOGGING_LEVEL, TEARDOWN, MARK_AGENT_GONE,
// DEACTIVATE_AGENT, REACTIVATE_AGENT, DRAIN_AGENT). With a
// Config.Authorizer, a call the principal ctx carries (auth.PrincipalFrom;
// none is an unauthenticated caller) may not make gives an error wrapping
// ErrForbidden and changes nothing (auth_operator.go).
func (m *Master) OperatorCall(ctx context.Context, call *masterpb.Call) (*masterpb.Response, error) {
	if t := call.GetType(); t == masterpb.Call_LIST_FILES || t == masterpb.Call_READ_FILE {
		return m.filesCall(ctx, call) // files.go: off the core, forwarded to agents
	}
	leading, _ := m.leading()
	// The approvers first, off the master's goroutine (auth.go).
	principal, authenticated := auth.PrincipalFrom(ctx)
	ap, err := m.approvers(ctx, principal, operatorActions(call)...)
	if err != nil {
		return nil, err
	}
	by := operatorRequester{name: principal, authenticated: authenticated}
	var resp *masterpb.Response
	if derr := m.do(ctx, func(c *core) {
		if err = c.authorizeOperator(call, ap); err != nil {
			return
		}
		resp, err = c.operatorCallBy(call, leading, by)
		c.filterResponse(resp, ap)
	}); derr != nil {
		return nil, derr
	}
	return resp, err
}

// serveOperator is POST /api/v1: one masterpb.Call, answered with a
// masterpb.Response (200), nothing (200, for UPDATE_WEIGHTS and the quota
// updates; 202, as Mesos, for the reservation and volume calls), or, for
// SUBSCRIBE, a stream of masterpb.Event. The master sends the stream's
// HEARTBEATs itself.
func (m *Master) serveOperator(w http.ResponseWriter, r *http.Request) {
	var call masterpb.Call
	c, err := httpapi.DecodeCall(r, &call, 0, httpapi.LogIgnored(m.core.log))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if call.GetType() == masterpb.Call_SUBSCRIBE {
		_, events, err := m.SubscribeOperator(r.Context())
		if err != nil {
			httpapi.WriteError(w, httpError(err))
			return
		}
		httpapi.ServeStream(w, r, c, "", events, nil, 0)
		return
	}
	resp, err := m.OperatorCall(r.Context(), &call)
	if err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	if resp == nil {
		if answersAccepted(call.GetType()) {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	httpapi.WriteMessage(w, c, resp)
}

// serveRoles is GET /roles: every role with its weight, quota, what it
// consumes of the quota, what is allocated and offered to it, and its
// frameworks, as JSON in the shape of Mesos's /roles endpoint.
func (m *Master) serveRoles(w http.ResponseWriter, r *http.Request) {
	var v rolesView
	if err := m.do(r.Context(), func(c *core) { v = c.rolesView() }); err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		httpapi.WriteError(w, fmt.Errorf("encoding the roles: %w", err))
		return
	}
	writeBody(w, r, codec.MediaTypeJSON, b)
}

// metrics returns a snapshot of the master's metrics.
func (m *Master) metrics(ctx context.Context) (metricsSnapshot, error) {
	if !m.running() {
		return metricsSnapshot{}, nil // a standby: not elected, nothing else
	}
	leading, _ := m.leading()
	var s metricsSnapshot
	err := m.do(ctx, func(c *core) { s = c.snapshotMetrics(leading) })
	return s, err
}

// serveMetrics is GET /metrics, in the Prometheus text exposition format.
func (m *Master) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s, err := m.metrics(r.Context())
	if err != nil {
		httpapi.WriteError(w, httpError(err))
		return
	}
	var b strings.Builder
	s.writePrometheus(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, b.String())
	}
}

// writePrometheus writes the snapshot in the Prometheus text format: each
// family with its # HELP and # TYPE lines, then its samples.
func (s metricsSnapshot) writePrometheus(w io.Writer) {
	family := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	sample := func(name, labels string, v float64) {
		if labels != "" {
			labels = "{" + labels + "}"
		}
		fmt.Fprintf(w, "%s%s %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
	}
	one := func(name, typ, help string, v float64) {
		family(name, typ, help)
		sample(name, "", v)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	one("apron_master_elected", "gauge", "Whether this master is the leader (1) or not (0).", b2f(s.elected))
	family("apron_master_frameworks", "gauge", "Frameworks known to the master, by connection state.")
	sample("apron_master_frameworks", `state="connected"`, float64(s.frameworksConnected))
	sample("apron_master_frameworks", `state="disconnected"`, float64(s.frameworksDisconnected))
	family("apron_master_agents", "gauge", "Agents known to the master, by connection state.")
	sample("apron_master_agents", `state="connected"`, float64(s.agentsConnected))
	sample("apron_master_agents", `state="disconnected"`, float64(s.agentsDisconnected))
	one("apron_master_offers_outstanding", "gauge", "Offers made and not yet accepted, declined or rescinded.", float64(s.offersOutstanding))
	one("apron_master_offers_made_total", "counter", "Offers made to frameworks.", float64(s.offersMade))
	one("apron_master_offers_declined_total", "counter", "Offers declined by frameworks.", float64(s.offersDeclined))
	one("apron_master_offers_rescinded_total", "counter", "Offers rescinded by the master.", float64(s.offersRescinded))
	one("apron_master_tasks_launched_total", "counter", "Tasks the master sent to agents to launch.", float64(s.tasksLaunched))
	family("apron_master_task_updates_total", "counter", "Task status updates sent to frameworks, by state.")
	for _, st := range taskStates() {
		sample("apron_master_task_updates_total", `state="`+st.String()+`"`, float64(s.taskStates[st]))
	}
	one("apron_master_allocation_runs_total", "counter", "Allocation cycles run, full or over the agents that changed.", float64(s.allocationRuns))
	one("apron_master_allocation_duration_seconds", "gauge", "Duration of the last allocation cycle.", s.allocationTime.Seconds())
}

// OperatorCall answers an operator API call other than SUBSCRIBE, as
// Master.OperatorCall does; the state machine reports itself as leading.
func (s *StateMachine) OperatorCall(call *masterpb.Call) (*masterpb.Response, error) {
	return s.c.operatorCall(call, true)
}

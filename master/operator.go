package master

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

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

// OperatorCall answers an operator API call other than SUBSCRIBE, as
// Master.OperatorCall does; the state machine reports itself as leading.
func (s *StateMachine) OperatorCall(call *masterpb.Call) (*masterpb.Response, error) {
	return s.c.operatorCall(call, true)
}

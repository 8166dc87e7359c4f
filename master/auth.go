package master

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/resources"
)

// Authentication and authorization, as Mesos's master does them (issue
// 13; package auth has the mechanisms).
//
// Authentication belongs to the HTTP API: Handler wraps each endpoint
// family in auth.Authenticate when its Config switch is on, outside the
// leader redirect, so a request without a valid credential gets 401
// before anything else (its body is not even read). The families, by
// realm, as Mesos routes them:
//
//	mesos-master-scheduler  /api/v1/scheduler (AuthenticateFrameworks)
//	apron-master-agent      /apron/v1/agent (AuthenticateAgents)
//	mesos-master-readwrite  /api/v1, /maintenance/schedule, /machine/down,
//	                        /machine/up, /teardown, /reserve, /unreserve,
//	                        /create-volumes, /destroy-volumes, /quota,
//	                        /weights (AuthenticateHTTPReadWrite)
//	mesos-master-readonly   /state, /state.json, /state-summary, /frameworks,
//	                        /slaves, /tasks, /roles, /flags, /metrics,
//	                        /metrics/snapshot, /maintenance/status, /files/*
//	                        (AuthenticateHTTPReadOnly)
//	none                    /health, /master/health, /version, /redirect
//
// (each also under "/master"). The in-process links (SubscribeScheduler,
// SchedulerCall, ConnectAgent, OperatorCall called by Go code in the
// embedding process) are not authenticated: a context carrying a
// principal (auth.WithPrincipal, which the HTTP API sets) is treated as
// authenticated, one without as Mesos treats an unauthenticated request.
//
// Authorization follows Mesos's ObjectApprover split, and one rule: the
// master's state machine never waits for the authorizer, which may be a
// remote policy service. So every authorized call goes in two steps:
//
//  1. in the caller's goroutine, before m.do, ask Config.Authorizer for
//     the approvers of the caller's principal for the actions the call may
//     need (Master.approvers; this may block, or fail: 503);
//  2. inside m.do, apply them to the objects the state names (approvers
//     are pure), and refuse before changing anything (ErrForbidden: 403
//     naming the action).
//
// A framework keeps the approvers it got at SUBSCRIBE (for its
// FrameworkInfo.principal, as Mesos's Framework::objectApprovers), so its
// ACCEPTs (RUN_TASK, the reservation and volume operations) and
// UPDATE_FRAMEWORK (REGISTER_FRAMEWORK for new roles) are decided inside
// the core with no round trip; a re-subscription gets fresh ones. A nil
// approvers value (no Authorizer) allows everything at no cost.
//
// What is authorized, and where:
//
//	frameworks  REGISTER_FRAMEWORK at SUBSCRIBE and UPDATE_FRAMEWORK (403),
//	            RUN_TASK per task (TASK_ERROR, REASON_TASK_UNAUTHORIZED or
//	            REASON_TASK_GROUP_UNAUTHORIZED), the ACCEPT's reservation and
//	            volume operations (dropped); an authenticated principal must
//	            be the framework's on every call (400)
//	agents      REGISTER_AGENT and the static reservations' RESERVE_RESOURCES
//	            at REGISTER and REREGISTER (403); calls on an agent stream
//	            only from the principal that opened it (403)
//	operators   auth_operator.go: every call that changes something (403);
//	            /flags (VIEW_FLAGS), /metrics/snapshot and /files/debug
//	            (GET_ENDPOINT_WITH_PATH)
//	reads       auth_view.go: the state, the operator event stream, /roles
//	            and the quota and weights are filtered; sandbox files need
//	            ACCESS_SANDBOX, other agent files ACCESS_MESOS_LOG

// RealmMasterAgent is the realm of the master's agent link, Apron's own
// (Mesos's agents authenticate with SASL, outside HTTP).
const RealmMasterAgent = "apron-master-agent"

var (
	// ErrForbidden: the authorizer refused a call (403, naming the
	// action). Nothing was changed.
	ErrForbidden = auth.ErrForbidden
	// ErrAuthorizer: the authorizer failed to answer (503: try again).
	ErrAuthorizer = auth.ErrAuthorizerFailed
)

// authenticated wraps h to ask for a credential of realm when on.
func (m *Master) authenticated(on bool, realm string, h http.Handler) http.Handler {
	if !on {
		return h
	}
	return auth.Authenticate(m.cfg.Authenticator, realm, h)
}

// approvers are one subject's approvers, by action (nil allows every
// action: the master has no authorizer).
type approvers = auth.Approvers

// approvers asks the authorizer for principal's approvers of actions
// ("" is no principal: an unauthenticated caller). It may block: call it
// outside m.do.
func (m *Master) approvers(ctx context.Context, principal string, actions ...auth.Action) (approvers, error) {
	return auth.GetApprovers(ctx, m.cfg.Authorizer, auth.Subject{Principal: principal}, actions...)
}

// principalOf is the authenticated principal ctx carries, "" for none.
func principalOf(ctx context.Context) string {
	p, _ := auth.PrincipalFrom(ctx)
	return p
}

// frameworkActions are the actions a framework's approvers cover, as
// Mesos's Framework::createObjectApprovers.
var frameworkActions = []auth.Action{
	auth.RegisterFramework, auth.RunTask,
	auth.ReserveResources, auth.UnreserveResources,
	auth.CreateVolume, auth.DestroyVolume, auth.ResizeVolume,
}

// registrationObject is the object of REGISTER_FRAMEWORK, as Mesos's
// ActionObject::frameworkRegistration: the FrameworkInfo, and the single
// role of a framework that is not MULTI_ROLE.
func registrationObject(info *mesospb.FrameworkInfo) *auth.Object {
	obj := &auth.Object{FrameworkInfo: info}
	if !hasCapability(*info, mesospb.FrameworkInfo_Capability_MULTI_ROLE) {
		obj.Value = info.GetRole()
	}
	return obj
}

// registrationText is how Mesos names a registration in a refusal:
// "register framework <id> with roles { a, b }".
func registrationText(info *mesospb.FrameworkInfo, roles []string) string {
	return fmt.Sprintf("register framework %s with roles { %s }", info.GetID().GetValue(), strings.Join(roles, ", "))
}

// taskUser is the user a task runs as, as Mesos's authorization reads
// it: its command's, else its executor's, else its framework's.
func taskUser(ti *mesospb.TaskInfo, fw *mesospb.FrameworkInfo) string {
	switch {
	case ti.Command != nil && ti.Command.User != nil:
		return ti.Command.GetUser()
	case ti.Executor != nil && ti.Executor.Command != nil && ti.Executor.Command.User != nil:
		return ti.Executor.Command.GetUser()
	}
	return fw.User
}

// checkRunTask authorizes RUN_TASK of ti for framework fw, with Mesos's
// words for a refusal.
func checkRunTask(ap approvers, ti *mesospb.TaskInfo, fw *framework) error {
	if ap == nil {
		return nil
	}
	what := fmt.Sprintf("launch task %s of framework %s under user '%s'", ti.TaskID.Value, fw.id, taskUser(ti, &fw.info))
	if err := ap.Check(auth.RunTask, &auth.Object{TaskInfo: ti, FrameworkInfo: &fw.info}, what); err != nil {
		// Mesos: "Principal '<p>' no authorized to launch task ..." (sic).
		return fmt.Errorf("%w: Principal '%s' not authorized to %s", errTask, fw.info.GetPrincipal(), what)
	}
	return nil
}

// actionObject is one authorization an operation needs.
type actionObject struct {
	action auth.Action
	obj    *auth.Object
}

// operationObjects are the authorizations an offer operation needs, as
// Mesos's ActionObject::reserve, unreserve, createVolume, destroyVolume,
// growVolume and shrinkVolume build them: one per resource (Mesos keeps
// one per role; the answer is the same). A RESERVE with a source also
// needs UNRESERVE of the source's reservations. Operations that need none
// (LAUNCH is authorized task by task) return nil.
func operationObjects(op *mesospb.Offer_Operation) []actionObject {
	var out []actionObject
	each := func(action auth.Action, ps []mesospb.Resource) {
		for i := range ps {
			r := &ps[i]
			out = append(out, actionObject{action, &auth.Object{Resource: r, Value: legacyValue(action, r)}})
		}
		if len(ps) == 0 {
			out = append(out, actionObject{action, nil})
		}
	}
	switch op.GetType() {
	case mesospb.Offer_Operation_RESERVE:
		if r := op.Reserve; r != nil {
			if len(r.Source) > 0 {
				each(auth.UnreserveResources, r.Source)
			}
			each(auth.ReserveResources, r.Resources)
		}
	case mesospb.Offer_Operation_UNRESERVE:
		if r := op.Unreserve; r != nil {
			each(auth.UnreserveResources, r.Resources)
		}
	case mesospb.Offer_Operation_CREATE:
		if c := op.Create; c != nil {
			each(auth.CreateVolume, c.Volumes)
		}
	case mesospb.Offer_Operation_DESTROY:
		if d := op.Destroy; d != nil {
			each(auth.DestroyVolume, d.Volumes)
		}
	case mesospb.Offer_Operation_GROW_VOLUME:
		if g := op.GrowVolume; g != nil {
			each(auth.ResizeVolume, []mesospb.Resource{g.Volume})
		}
	case mesospb.Offer_Operation_SHRINK_VOLUME:
		if s := op.ShrinkVolume; s != nil {
			each(auth.ResizeVolume, []mesospb.Resource{s.Volume})
		}
	}
	return out
}

// legacyValue is the Object.value Mesos sets beside the resource: the
// reservation role for actions on roles, the reserver's or creator's
// principal for UNRESERVE and DESTROY.
func legacyValue(action auth.Action, r *mesospb.Resource) string {
	switch action {
	case auth.UnreserveResources:
		if n := len(r.Reservations); n > 0 {
			return r.Reservations[n-1].GetPrincipal()
		}
		return r.GetReservation().GetPrincipal()
	case auth.DestroyVolume:
		return r.GetDisk().GetPersistence().GetPrincipal()
	}
	if n := len(r.Reservations); n > 0 {
		return r.Reservations[n-1].GetRole()
	}
	if r.Role != nil {
		return r.GetRole()
	}
	return "*"
}

// checkOperation authorizes an offer operation, by a framework or the
// operator.
func checkOperation(ap approvers, op *mesospb.Offer_Operation) error {
	if ap == nil {
		return nil
	}
	for _, ao := range operationObjects(op) {
		what := op.GetType().String()
		if ao.obj != nil && ao.obj.Resource != nil {
			what = fmt.Sprintf("%s %s", op.GetType(), describeResource(ao.obj.Resource))
		}
		if err := ap.Check(ao.action, ao.obj, what); err != nil {
			return err
		}
	}
	return nil
}

// describeResource names a resource in a refusal.
func describeResource(p *mesospb.Resource) string { return describeResources([]mesospb.Resource{*p}) }

// authenticateSubscribe applies the authenticated principal of ctx to a
// SUBSCRIBE, as Mesos's scheduler endpoint does: FrameworkInfo.principal
// must be it, and is set to it when absent. call is not changed: the
// result is a copy when it differs.
func authenticateSubscribe(ctx context.Context, call *schedulerpb.Call) (*schedulerpb.Call, error) {
	principal, ok := auth.PrincipalFrom(ctx)
	if !ok || call.Subscribe == nil {
		return call, nil
	}
	info := &call.Subscribe.FrameworkInfo
	if info.Principal != nil {
		if info.GetPrincipal() != principal {
			return nil, fmt.Errorf("%w: Failed to validate scheduler::Call: Authenticated principal '%s' does not match principal '%s' set in `FrameworkInfo`",
				ErrInvalidCall, principal, info.GetPrincipal())
		}
		return call, nil
	}
	cp, sub := *call, *call.Subscribe
	sub.FrameworkInfo.Principal = &principal
	cp.Subscribe = &sub
	return &cp, nil
}

// checkFrameworkPrincipal refuses a scheduler call whose authenticated
// principal is not its framework's, as Mesos's scheduler endpoint does
// once it has found the framework. An unknown framework is
// schedulerCall's to answer.
func (c *core) checkFrameworkPrincipal(call *schedulerpb.Call, principal string) error {
	if call.FrameworkID == nil {
		return nil
	}
	fw := c.frameworks[call.FrameworkID.Value]
	if fw == nil || fw.info.GetPrincipal() == principal && fw.info.Principal != nil {
		return nil
	}
	return fmt.Errorf("%w: Authenticated principal '%s' does not match principal '%s' set in `FrameworkInfo`",
		ErrInvalidCall, principal, fw.info.GetPrincipal())
}

// authorizeAgent authorizes a REGISTER or REREGISTER as Mesos's
// ActionObject::agentRegistration: RESERVE_RESOURCES of the agent's
// static reservations (so an agent cannot offer resources reserved to any
// role it likes), then REGISTER_AGENT.
func authorizeAgent(call *internalpb.Call, ap approvers) error {
	if ap == nil {
		return nil
	}
	var info *mesospb.AgentInfo
	verb := "register"
	switch {
	case call.GetType() == internalpb.Call_REGISTER && call.Register != nil:
		info = &call.Register.AgentInfo
	case call.GetType() == internalpb.Call_REREGISTER && call.Reregister != nil:
		info, verb = &call.Reregister.AgentInfo, "reregister"
	default:
		return nil // malformed: connectAgent says why
	}
	what := verb + " agent providing resources " + describeResources(info.Resources)
	for i := range info.Resources {
		r := &info.Resources[i]
		if len(r.Reservations) == 0 && (r.Role == nil || r.GetRole() == "*") {
			continue // not reserved
		}
		if err := ap.Check(auth.ReserveResources, &auth.Object{Resource: r, Value: legacyValue(auth.ReserveResources, r)}, what); err != nil {
			return err
		}
	}
	return ap.Check(auth.RegisterAgent, nil, what)
}

// describeResources names resources in a refusal.
func describeResources(ps []mesospb.Resource) string {
	rs, err := resources.FromProto(ps)
	if err != nil {
		return fmt.Sprintf("(%d resources)", len(ps))
	}
	return rs.String()
}

// authorizedFor answers 403 to a request whose principal may not do
// action to obj before h: /flags's VIEW_FLAGS (no object), and
// GET_ENDPOINT_WITH_PATH of the endpoints Mesos authorizes so
// (/metrics/snapshot, /files/debug; the object is the path).
func (m *Master) authorizedFor(action auth.Action, obj *auth.Object, h http.Handler) http.Handler {
	if m.cfg.Authorizer == nil {
		return h
	}
	what := "perform " + action.String()
	if obj != nil {
		what = "GET " + obj.Value
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := m.approvers(r.Context(), principalOf(r.Context()), action)
		if err == nil {
			err = ap.Check(action, obj, what)
		}
		if err != nil {
			httpapi.WriteError(w, httpError(err))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkStreamPrincipal refuses a call on an agent stream from another
// principal than the one that opened it: a stream ID is a bearer token,
// and a framework that holds a credential valid on the agent link must
// not speak for an agent whose stream ID it learnt or guessed.
func (c *core) checkStreamPrincipal(ctx context.Context, streamID string) error {
	s := c.streams[streamID]
	if s == nil || s.principal == nil {
		return nil
	}
	if p, ok := auth.PrincipalFrom(ctx); !ok || p != *s.principal {
		return fmt.Errorf("%w: stream %q was opened by another principal", ErrNotSubscribed, streamID)
	}
	return nil
}

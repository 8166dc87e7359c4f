package master

import (
	"fmt"
	"slices"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
)

// Authorization of the operator API, as Mesos's master authorizes each
// call (src/master/http.cpp): the calls that change something are
// refused whole (403 naming the action, nothing changed); GET_QUOTA,
// GET_WEIGHTS and GET_ROLES leave out the roles the principal may not
// see. The maintenance endpoints (maintenance_http.go) are their
// operator calls and are authorized the same way.
//
// GET_STATE, GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS, GET_AGENTS, the
// operator event stream, LIST_FILES and READ_FILE are filtered or
// authorized as auth_view.go says.

// objectlessActions are the operator calls authorized with no object (the
// ACLs of their kinds name ANY or NONE).
var objectlessActions = map[masterpb.Call_Type]auth.Action{
	masterpb.Call_MARK_AGENT_GONE:             auth.MarkAgentGone,
	masterpb.Call_DRAIN_AGENT:                 auth.DrainAgent,
	masterpb.Call_DEACTIVATE_AGENT:            auth.DeactivateAgent,
	masterpb.Call_REACTIVATE_AGENT:            auth.ReactivateAgent,
	masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE: auth.UpdateMaintenanceSchedule,
	masterpb.Call_GET_MAINTENANCE_SCHEDULE:    auth.GetMaintenanceSchedule,
	masterpb.Call_START_MAINTENANCE:           auth.StartMaintenance,
	masterpb.Call_STOP_MAINTENANCE:            auth.StopMaintenance,
	masterpb.Call_GET_MAINTENANCE_STATUS:      auth.GetMaintenanceStatus,
	masterpb.Call_SET_LOGGING_LEVEL:           auth.SetLogLevel,
	masterpb.Call_GET_FLAGS:                   auth.ViewFlags,
}

// operatorActions are the actions whose approvers an operator call
// needs.
func operatorActions(call *masterpb.Call) []auth.Action {
	if a, ok := objectlessActions[call.GetType()]; ok {
		return []auth.Action{a}
	}
	switch call.GetType() {
	case masterpb.Call_TEARDOWN:
		return []auth.Action{auth.TeardownFramework}
	case masterpb.Call_RESERVE_RESOURCES:
		return []auth.Action{auth.ReserveResources, auth.UnreserveResources}
	case masterpb.Call_UNRESERVE_RESOURCES:
		return []auth.Action{auth.UnreserveResources}
	case masterpb.Call_CREATE_VOLUMES:
		return []auth.Action{auth.CreateVolume}
	case masterpb.Call_DESTROY_VOLUMES:
		return []auth.Action{auth.DestroyVolume}
	case masterpb.Call_GROW_VOLUME, masterpb.Call_SHRINK_VOLUME:
		return []auth.Action{auth.ResizeVolume}
	case masterpb.Call_UPDATE_QUOTA, masterpb.Call_SET_QUOTA, masterpb.Call_REMOVE_QUOTA:
		return []auth.Action{auth.UpdateQuota}
	case masterpb.Call_GET_QUOTA:
		return []auth.Action{auth.GetQuota}
	case masterpb.Call_UPDATE_WEIGHTS:
		return []auth.Action{auth.UpdateWeight}
	case masterpb.Call_GET_WEIGHTS, masterpb.Call_GET_ROLES:
		return []auth.Action{auth.ViewRole}
	case masterpb.Call_GET_STATE, masterpb.Call_GET_FRAMEWORKS, masterpb.Call_GET_TASKS, masterpb.Call_GET_EXECUTORS, masterpb.Call_GET_AGENTS:
		return viewActions // auth_view.go
	}
	return nil
}

// authorizeOperator applies an operator call's approvers to what it
// would change, before anything is. A call that is malformed is let
// through: operatorCall refuses it with the reason.
func (c *core) authorizeOperator(call *masterpb.Call, ap approvers) error {
	if ap == nil {
		return nil
	}
	typ := call.GetType()
	if a, ok := objectlessActions[typ]; ok {
		return ap.Check(a, nil, "perform "+typ.String())
	}
	role := func(action auth.Action, role, what string) error {
		if role == "" {
			return nil // invalid: refused as such
		}
		return ap.Check(action, &auth.Object{Value: role}, fmt.Sprintf("%s of role '%s'", what, role))
	}
	switch typ {
	case masterpb.Call_TEARDOWN:
		if call.Teardown == nil {
			return nil
		}
		id := call.Teardown.FrameworkID.Value
		fw := c.frameworks[id]
		if fw == nil {
			return nil
		}
		return ap.Check(auth.TeardownFramework, &auth.Object{FrameworkInfo: &fw.info},
			fmt.Sprintf("teardown framework %s of principal '%s'", id, fw.info.GetPrincipal()))
	case masterpb.Call_RESERVE_RESOURCES, masterpb.Call_UNRESERVE_RESOURCES,
		masterpb.Call_CREATE_VOLUMES, masterpb.Call_DESTROY_VOLUMES:
		_, op, _, err := operatorOperation(call)
		if err != nil {
			return nil
		}
		return checkOperation(ap, op)
	case masterpb.Call_GROW_VOLUME:
		if g := call.GrowVolume; g != nil {
			return checkOperation(ap, &mesospb.Offer_Operation{Type: mesospb.Offer_Operation_GROW_VOLUME.Enum(),
				GrowVolume: &mesospb.Offer_Operation_GrowVolume{Volume: g.Volume, Addition: g.Addition}})
		}
	case masterpb.Call_SHRINK_VOLUME:
		if s := call.ShrinkVolume; s != nil {
			return checkOperation(ap, &mesospb.Offer_Operation{Type: mesospb.Offer_Operation_SHRINK_VOLUME.Enum(),
				ShrinkVolume: &mesospb.Offer_Operation_ShrinkVolume{Volume: s.Volume, Subtract: s.Subtract}})
		}
	case masterpb.Call_UPDATE_QUOTA:
		if u := call.UpdateQuota; u != nil {
			for _, qc := range u.QuotaConfigs {
				if err := role(auth.UpdateQuota, qc.Role, "update quota"); err != nil {
					return err
				}
			}
		}
	case masterpb.Call_SET_QUOTA:
		if s := call.SetQuota; s != nil {
			return role(auth.UpdateQuota, s.QuotaRequest.GetRole(), "set quota")
		}
	case masterpb.Call_REMOVE_QUOTA:
		if r := call.RemoveQuota; r != nil {
			return role(auth.UpdateQuota, r.Role, "remove quota")
		}
	case masterpb.Call_UPDATE_WEIGHTS:
		if u := call.UpdateWeights; u != nil {
			for _, wi := range u.WeightInfos {
				if err := role(auth.UpdateWeight, wi.GetRole(), "update weight"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// filterOperatorResponse leaves out of a read what the principal may not
// see, as Mesos filters GET_QUOTA (get_quotas), GET_WEIGHTS and GET_ROLES
// (view_roles).
func filterOperatorResponse(resp *masterpb.Response, ap approvers) {
	if ap == nil || resp == nil {
		return
	}
	sees := func(action auth.Action, role string) bool {
		return ap.Allows(action, &auth.Object{Value: role})
	}
	if q := resp.GetQuota; q != nil {
		q.Status.Infos = slices.DeleteFunc(q.Status.Infos, func(i masterpb.QuotaInfo) bool { return !sees(auth.GetQuota, i.GetRole()) })
		q.Status.Configs = slices.DeleteFunc(q.Status.Configs, func(c masterpb.QuotaConfig) bool { return !sees(auth.GetQuota, c.Role) })
	}
	if w := resp.GetWeights; w != nil {
		w.WeightInfos = slices.DeleteFunc(w.WeightInfos, func(i mesospb.WeightInfo) bool { return !sees(auth.ViewRole, i.GetRole()) })
	}
	if r := resp.GetRoles; r != nil {
		r.Roles = slices.DeleteFunc(r.Roles, func(r mesospb.Role) bool { return !sees(auth.ViewRole, r.Name) })
	}
}

// namesItself checks, for an authenticated operator, that the
// reservations a RESERVE makes and the volumes a CREATE makes name its
// principal, as Mesos's validation::operation requires (conversion
// refuses another principal; this refuses none at all).
func (o operatorRequester) namesItself(op *mesospb.Offer_Operation) error {
	if !o.authenticated {
		return nil
	}
	switch {
	case op.GetType() == mesospb.Offer_Operation_RESERVE && op.Reserve != nil:
		for _, r := range op.Reserve.Resources {
			if n := len(r.Reservations); n > 0 && r.Reservations[n-1].Principal == nil {
				return fmt.Errorf("%w: A reserve operation was attempted by principal '%s', but there is a reserved resource in the request with no principal set", errOperation, o.name)
			}
		}
	case op.GetType() == mesospb.Offer_Operation_CREATE && op.Create != nil:
		for _, v := range op.Create.Volumes {
			if v.GetDisk().GetPersistence() != nil && v.Disk.Persistence.Principal == nil {
				return fmt.Errorf("%w: Create volume operation attempted by principal '%s', but there is a volume in the operation with no principal set in 'disk.persistence'", errOperation, o.name)
			}
		}
	}
	return nil
}

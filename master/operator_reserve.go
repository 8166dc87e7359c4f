package master

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// Reservations and persistent volumes through the operator API, as Mesos's
// RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES and
// DESTROY_VOLUMES: the offer operations of operations.go, checked with the
// same rules, applied to the agent's unallocated resources. The operator
// names unallocated resources (no allocation_info). An operator who
// authenticated must name its own principal in the reservations and
// volumes it makes, as Mesos requires; an unauthenticated one may name
// any, or none. Labels are taken as given. With an authorizer, each call
// is authorized first (auth_operator.go).
//
// As in Mesos, when the agent's free resources do not hold what the
// operation needs, the master rescinds outstanding offers on that agent,
// one at a time in offer ID order, skipping those that hold none of what
// is missing, until they do; resources used by tasks and executors are
// never touched. The rescinded offers' resources go back with no filter
// (Mesos sets a 5 s one to win a race with its allocator process, which a
// single-owner core does not have). Then the conversion is applied to the
// allocator, the master's view of the agent's total and the agent's
// checkpointed resources, and the agent is offered again.
//
// Answers: 202 when applied, 400 for an invalid call (unknown agent,
// malformed resources, an operation Mesos's rules refuse, a volume in use),
// 409 Conflict when the agent does not have the resources free even with
// its offers rescinded, as Mesos answers when applying fails. Unlike
// Mesos, Apron checks that before rescinding anything, so a refused call
// changes nothing.

// operatorRequester reads the operator's resources: unallocated, and,
// when the operator authenticated, whose principal reservations and
// volumes must name (as Mesos's validation requires).
type operatorRequester struct {
	name          string // the authenticated principal
	authenticated bool
}

func (operatorRequester) operationResources(ps []mesospb.Resource) (resources.Resources, string, error) {
	rs, err := resources.FromProto(ps)
	if err == nil {
		err = rs.Validate()
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", errOperation, err)
	}
	for _, r := range rs {
		if r.IsAllocated() {
			return nil, "", fmt.Errorf("%w: %s carries allocation_info; the operator API operates on unallocated resources", errOperation, r)
		}
	}
	if rs = resources.New(rs...); rs.Empty() {
		return nil, "", fmt.Errorf("%w: no resources", errOperation)
	}
	return rs, "", nil
}

func (o operatorRequester) principal() (string, bool) { return o.name, o.authenticated }

// operatorOperation turns an operator call into the offer operation it
// applies and the agent it applies to; ok is false for other calls.
func operatorOperation(call *masterpb.Call) (agentID string, op *mesospb.Offer_Operation, ok bool, err error) {
	missing := func(field string) error {
		return fmt.Errorf("%w: expecting '%s' to be present", ErrInvalidCall, field)
	}
	switch call.GetType() {
	case masterpb.Call_RESERVE_RESOURCES:
		r := call.ReserveResources
		if r == nil {
			return "", nil, true, missing("reserve_resources")
		}
		return r.AgentID.Value, &mesospb.Offer_Operation{Type: mesospb.Offer_Operation_RESERVE.Enum(),
			Reserve: &mesospb.Offer_Operation_Reserve{Source: r.Source, Resources: r.Resources}}, true, nil
	case masterpb.Call_UNRESERVE_RESOURCES:
		u := call.UnreserveResources
		if u == nil {
			return "", nil, true, missing("unreserve_resources")
		}
		return u.AgentID.Value, &mesospb.Offer_Operation{Type: mesospb.Offer_Operation_UNRESERVE.Enum(),
			Unreserve: &mesospb.Offer_Operation_Unreserve{Resources: u.Resources}}, true, nil
	case masterpb.Call_CREATE_VOLUMES:
		c := call.CreateVolumes
		if c == nil {
			return "", nil, true, missing("create_volumes")
		}
		return c.AgentID.Value, &mesospb.Offer_Operation{Type: mesospb.Offer_Operation_CREATE.Enum(),
			Create: &mesospb.Offer_Operation_Create{Volumes: c.Volumes}}, true, nil
	case masterpb.Call_DESTROY_VOLUMES:
		d := call.DestroyVolumes
		if d == nil {
			return "", nil, true, missing("destroy_volumes")
		}
		return d.AgentID.Value, &mesospb.Offer_Operation{Type: mesospb.Offer_Operation_DESTROY.Enum(),
			Destroy: &mesospb.Offer_Operation_Destroy{Volumes: d.Volumes}}, true, nil
	}
	return "", nil, false, nil
}

// acceptedCalls are the operator calls answered 202 Accepted, as Mesos
// answers them, rather than 200.
var acceptedCalls = []masterpb.Call_Type{
	masterpb.Call_RESERVE_RESOURCES, masterpb.Call_UNRESERVE_RESOURCES,
	masterpb.Call_CREATE_VOLUMES, masterpb.Call_DESTROY_VOLUMES,
	masterpb.Call_GROW_VOLUME, masterpb.Call_SHRINK_VOLUME,
}

func answersAccepted(t masterpb.Call_Type) bool { return slices.Contains(acceptedCalls, t) }

// operate applies an operator's operation to agent agentID: validate,
// rescind offers until the agent has what it needs free, convert.
func (c *core) operate(agentID string, op *mesospb.Offer_Operation, by operatorRequester) error {
	a := c.agents[agentID]
	if a == nil {
		return fmt.Errorf("%w: no agent found with ID %q", ErrInvalidCall, agentID)
	}
	invalid := func(err error) error {
		msg := strings.TrimPrefix(err.Error(), errOperation.Error()+": ")
		msg = strings.TrimPrefix(msg, op.GetType().String()+": ")
		return fmt.Errorf("%w: invalid %s operation on agent %s: %s", ErrInvalidCall, op.GetType(), a.id, msg)
	}
	if err := by.namesItself(op); err != nil {
		return invalid(err) // auth_operator.go
	}
	from, to, err := conversion(a, op, by)
	if err != nil {
		return invalid(err)
	}
	free := c.alloc.Available(a.id)
	var offered resources.Resources
	for _, o := range a.offers {
		offered = offered.Add(o.resources.Unallocated())
	}
	if op.GetType() == mesospb.Offer_Operation_DESTROY {
		used := a.total.Subtract(free).Subtract(offered)
		for _, v := range from {
			if used.ContainsResource(v) {
				return invalid(fmt.Errorf("persistent volume %s is in use", v.Disk.Persistence.ID))
			}
		}
	}
	if !free.Add(offered).Contains(from) {
		return fmt.Errorf("%w: agent %s does not have %s free, even with its offers rescinded (free: %s; offered: %s)",
			ErrConflict, a.id, from, orNothing(free), orNothing(offered))
	}
	c.rescindToFree(a, from)
	if err := c.alloc.UpdateAllocation("", a.id, from, to); err != nil {
		if errors.Is(err, allocator.ErrOverAllocation) {
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
		return invalid(err)
	}
	c.convertAgent(a, from, to)
	c.dirtyAgents[a.id] = true
	c.log.Info("operator operation applied", "agent", a.id, "operation", op.GetType(), "resources", to.String())
	return nil
}

// rescindToFree rescinds a's offers, in offer ID order, until the
// allocator holds need free on the agent; an offer with none of what is
// missing stays.
func (c *core) rescindToFree(a *agent, need resources.Resources) {
	for _, id := range sortedKeys(a.offers) {
		free := c.alloc.Available(a.id)
		if free.Contains(need) {
			return
		}
		missing := need.Subtract(free)
		if missing.Subtract(a.offers[id].resources.Unallocated()).Equal(missing) {
			continue
		}
		c.rescindOffer(a.offers[id])
	}
}

func orNothing(rs resources.Resources) string {
	if rs.Empty() {
		return "nothing"
	}
	return rs.String()
}

package master

import (
	"fmt"
	"strings"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// Resizing persistent volumes: GROW_VOLUME and SHRINK_VOLUME, as operator
// calls and as offer operations in ACCEPT, with Mesos's rules
// (src/master/validation.cpp, src/common/resources_utils.cpp):
//
//   - GROW_VOLUME takes a persistent volume and an addition of the same
//     disk (same reservations, same source: Mesos's "stripped volume +
//     addition is one resource") and makes one volume of the sum. The
//     addition must be more than zero.
//   - SHRINK_VOLUME takes a volume and gives back a smaller one and the
//     difference as plain disk with the volume's reservations. The amount
//     subtracted must be more than zero and less than the volume's size,
//     and the volume may not be on a MOUNT disk.
//   - Neither applies to a shared volume or one from a resource provider.
//
// Both are speculative, as in Mesos: applied at once to the allocator, the
// master's view of the agent and, through CHECKPOINT_RESOURCES, the
// agent, which keeps the volume's directory and data (Apron puts no size
// limit on a volume's directory; Mesos's agent does not either unless its
// disk isolator enforces quotas).
//
// As operator calls they go the way of CREATE_VOLUMES (operator_reserve.go):
// 202 Accepted when applied, 400 for an invalid call, 409 when the agent
// does not have the volume and addition free even with its offers
// rescinded (a volume in use by a task cannot be resized). In an ACCEPT,
// an invalid resize is dropped, and its result is not usable by the
// ACCEPT's later operations: it goes back to the allocator with no
// filter, as Mesos's master handles resized resources.
//
// Difference from Mesos: Mesos refuses both on an agent without the
// RESIZE_VOLUME capability; every Apron agent can apply them (they are
// checkpoints the master sends), so Apron does not check it.

// resizeVolume answers the operator's GROW_VOLUME or SHRINK_VOLUME.
func (c *core) resizeVolume(call *masterpb.Call, by operatorRequester) error {
	var agentID *mesospb.AgentID
	op := &mesospb.Offer_Operation{}
	switch call.GetType() {
	case masterpb.Call_GROW_VOLUME:
		g := call.GrowVolume
		if g == nil {
			return fmt.Errorf("%w: expecting 'grow_volume' to be present", ErrInvalidCall)
		}
		agentID = g.AgentID
		op.Type = mesospb.Offer_Operation_GROW_VOLUME.Enum()
		op.GrowVolume = &mesospb.Offer_Operation_GrowVolume{Volume: g.Volume, Addition: g.Addition}
	default:
		s := call.ShrinkVolume
		if s == nil {
			return fmt.Errorf("%w: expecting 'shrink_volume' to be present", ErrInvalidCall)
		}
		agentID = s.AgentID
		op.Type = mesospb.Offer_Operation_SHRINK_VOLUME.Enum()
		op.ShrinkVolume = &mesospb.Offer_Operation_ShrinkVolume{Volume: s.Volume, Subtract: s.Subtract}
	}
	if agentID == nil {
		return fmt.Errorf("%w: expecting 'agent_id' to be present; only agent default resources are supported right now", ErrInvalidCall)
	}
	return c.operate(agentID.Value, op, by)
}

// resizeConversion is what a GROW_VOLUME or SHRINK_VOLUME takes and what
// it gives back, after Mesos's checks.
func resizeConversion(op *mesospb.Offer_Operation, by requester) (from, to resources.Resources, err error) {
	if op.GetType() == mesospb.Offer_Operation_GROW_VOLUME {
		if op.GrowVolume == nil {
			return nil, nil, fmt.Errorf("%w: GROW_VOLUME without grow_volume", errOperation)
		}
		return growConversion(op.GrowVolume, by)
	}
	if op.ShrinkVolume == nil {
		return nil, nil, fmt.Errorf("%w: SHRINK_VOLUME without shrink_volume", errOperation)
	}
	return shrinkConversion(op.ShrinkVolume, by)
}

func growConversion(g *mesospb.Offer_Operation_GrowVolume, by requester) (from, to resources.Resources, err error) {
	vol, err := oneResource(by, g.Volume, "GrowVolume.volume")
	if err != nil {
		return nil, nil, err
	}
	if g.Addition.Scalar != nil && resources.ScalarOf(g.Addition.Scalar.Value) <= 0 {
		return nil, nil, fmt.Errorf("%w: the size of 'GrowVolume.addition' field must be greater than zero", errOperation)
	}
	add, err := oneResource(by, g.Addition, "GrowVolume.addition")
	if err != nil {
		return nil, nil, err
	}
	if err := resizable(vol, "GrowVolume.volume", "Growing"); err != nil {
		return nil, nil, err
	}
	if len(resources.New(vol.StripVolume(), add)) != 1 {
		return nil, nil, fmt.Errorf("%w: incompatible resources in the 'GrowVolume.volume' and 'GrowVolume.addition' fields", errOperation)
	}
	grown := vol
	grown.Scalar = vol.Scalar.Add(add.Scalar)
	return resources.New(vol, add), resources.New(grown), nil
}

func shrinkConversion(s *mesospb.Offer_Operation_ShrinkVolume, by requester) (from, to resources.Resources, err error) {
	vol, err := oneResource(by, s.Volume, "ShrinkVolume.volume")
	if err != nil {
		return nil, nil, err
	}
	sub := resources.ScalarOf(s.Subtract.Value)
	switch {
	case sub <= 0:
		return nil, nil, fmt.Errorf("%w: value of 'ShrinkVolume.subtract' must be greater than zero", errOperation)
	case vol.Type != resources.TypeScalar || vol.Scalar <= sub:
		return nil, nil, fmt.Errorf("%w: value of 'ShrinkVolume.subtract' must be smaller than the size of 'ShrinkVolume.volume'", errOperation)
	case vol.Disk != nil && vol.Disk.Source != nil && vol.Disk.Source.Type == resources.SourceMount:
		return nil, nil, fmt.Errorf("%w: shrinking a volume on a MOUNT disk is not supported", errOperation)
	}
	if err := resizable(vol, "ShrinkVolume.volume", "Shrinking"); err != nil {
		return nil, nil, err
	}
	freed := vol.StripVolume()
	freed.Scalar = sub
	shrunk := vol
	shrunk.Scalar = vol.Scalar.Sub(sub)
	return resources.New(vol), resources.New(shrunk, freed), nil
}

// oneResource parses one resource of a resize as its requester reads
// resources.
func oneResource(by requester, p mesospb.Resource, field string) (resources.Resource, error) {
	rs, _, err := by.operationResources([]mesospb.Resource{p})
	if err == nil && len(rs) != 1 {
		err = fmt.Errorf("%w: %s is not one resource", errOperation, p.Name)
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), errOperation.Error()+": ")
		return resources.Resource{}, fmt.Errorf("%w: invalid resource in the '%s' field: %s", errOperation, field, msg)
	}
	return rs[0], nil
}

// resizable checks that r is a persistent volume Mesos lets resize.
// doing is "Growing" or "Shrinking", for the messages.
func resizable(r resources.Resource, field, doing string) error {
	switch {
	case r.ProviderID != "":
		return fmt.Errorf("%w: %s a volume from a resource provider is not supported", errOperation, doing)
	case r.Disk == nil:
		return fmt.Errorf("%w: invalid persistent volume in the '%s' field: resource %s does not have DiskInfo", errOperation, field, r)
	case r.Disk.Persistence == nil:
		return fmt.Errorf("%w: invalid persistent volume in the '%s' field: 'persistence' is not set in DiskInfo", errOperation, field)
	case r.Disk.Volume == nil:
		return fmt.Errorf("%w: invalid persistent volume in the '%s' field: expecting 'volume' to be set for persistent volume", errOperation, field)
	case r.Disk.Volume.Mode == resources.RO:
		return fmt.Errorf("%w: invalid persistent volume in the '%s' field: read-only persistent volume not supported", errOperation, field)
	case r.Shared:
		return fmt.Errorf("%w: %s a shared persistent volume is not supported", errOperation, doing)
	}
	return nil
}

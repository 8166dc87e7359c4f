package allocator

import (
	"fmt"
	"maps"

	"github.com/apronhq/apron/resources"
)

// UpdateAllocation implements Allocator. The available resources of the
// agent do not change when the resources converted are allocated, so
// neither do the idle state and the filter caches; shares stay, since
// quantities do; what moves is the agent's total, the reservations counted
// toward quotas and the shape of the allocation.
func (d *DRF) UpdateAllocation(frameworkID, agentID string, from, to resources.Resources) error {
	ag := d.agents[agentID]
	var fw *framework
	if frameworkID != "" {
		fw = d.frameworks[frameworkID]
		if fw == nil {
			return fmt.Errorf("%w: %q", ErrUnknownFramework, frameworkID)
		}
	}
	if ag == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	if resources.New(from...).Empty() && resources.New(to...).Empty() {
		return nil
	}
	if fw == nil {
		return d.convertAvailable(ag, from, to)
	}
	a := fw.allocs[ag]
	def := ""
	if a != nil {
		def = soleRole(a.res)
	}
	w := where{frameworkID, agentID}
	from, err := attribute(from, def, w)
	if err != nil {
		return err
	}
	to, err = attribute(to, def, w)
	if err != nil {
		return err
	}
	if err := sameQuantities(from, to); err != nil {
		return err
	}
	if err := holds(a, frameworkID, agentID, from); err != nil {
		return err
	}
	total, err := validateTotal(agentID, ag.total.Subtract(from.Unallocated()).Add(to.Unallocated()))
	if err != nil {
		return err
	}
	d.setTotal(ag, total)
	a.own()
	a.res.SubtractInPlace(from)
	a.res.AddInPlace(to)
	d.account(fw, from, -1)
	d.account(fw, to, 1)
	return nil
}

// convertAvailable converts unallocated resources of ag.
func (d *DRF) convertAvailable(ag *agent, from, to resources.Resources) error {
	from, to = resources.New(from...), resources.New(to...)
	if anyAllocated(from) || anyAllocated(to) {
		return fmt.Errorf("%w: agent %q: unallocated resources to convert carry an allocation role", ErrInvalid, ag.id)
	}
	for _, rs := range []resources.Resources{from, to} {
		if err := rs.Validate(); err != nil {
			return fmt.Errorf("%w: agent %q: %w", ErrInvalid, ag.id, err)
		}
	}
	if err := sameQuantities(from, to); err != nil {
		return err
	}
	if !ag.available.Contains(from) {
		return fmt.Errorf("%w: agent %q has %s free, not %s", ErrOverAllocation, ag.id, ag.available, from)
	}
	total, err := validateTotal(ag.id, ag.total.Subtract(from).Add(to))
	if err != nil {
		return err
	}
	d.setTotal(ag, total)
	if ag.active {
		d.quota.addFree(d, from, -1)
		d.quota.addFree(d, to, 1)
	}
	// A new slice: the old one may be shared with a filter.
	ag.available = ag.available.Subtract(from).Add(to)
	ag.version++
	// What is free changed shape: other roles may now be eligible for it.
	ag.idle = idleState{}
	return nil
}

// setTotal replaces an agent's total by one of the same scalar quantities,
// keeping the reservations counted toward quotas.
func (d *DRF) setTotal(ag *agent, total resources.Resources) {
	d.quota.addReserved(d, ag.total, -1)
	d.quota.addReserved(d, total, 1)
	ag.total = total
}

// sameQuantities checks that, role by role, to has the quantities of from.
func sameQuantities(from, to resources.Resources) error {
	roles := map[string]bool{}
	for i := range from {
		roles[from[i].AllocationRole] = true
	}
	for i := range to {
		roles[to[i].AllocationRole] = true
	}
	for role := range roles {
		f := ofRole(from, role).Quantities()
		t := ofRole(to, role).Quantities()
		if !maps.Equal(f, t) {
			return fmt.Errorf("%w: converting %s into %s changes quantities", ErrInvalid, ofRole(from, role), ofRole(to, role))
		}
	}
	return nil
}

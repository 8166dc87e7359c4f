package allocator

import (
	"fmt"
	"maps"
	"slices"

	"github.com/apronhq/apron/resources"
)

// Check implements Allocator. Besides the invariants every allocator keeps,
// it verifies DRF's own bookkeeping: the cached available resources, the
// cluster totals, the allocated quantities of every role and framework, the
// links between them and, unless a re-sort is pending, the orderings. It
// costs a walk over everything, so it is meant for tests.
func (d *DRF) Check() error {
	if err := d.checkAgents(); err != nil {
		return err
	}
	if err := d.checkFrameworks(); err != nil {
		return err
	}
	return d.checkRoles()
}

func negative(rs resources.Resources) bool {
	return slices.ContainsFunc(rs, func(r resources.Resource) bool {
		return r.Type == resources.TypeScalar && r.Scalar < 0
	})
}

func eqQty(a, b []resources.Scalar) bool {
	for i := range max(len(a), len(b)) {
		var x, y resources.Scalar
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return false
		}
	}
	return true
}

func (d *DRF) checkAgents() error {
	if len(d.agentList) != len(d.agents) {
		return fmt.Errorf("allocator: %d agents listed, %d known", len(d.agentList), len(d.agents))
	}
	for i, ag := range d.agentList {
		if ag.pos != i || d.agents[ag.id] != ag {
			return fmt.Errorf("allocator: agent %q misplaced in the agent list", ag.id)
		}
	}
	var total []resources.Scalar
	for _, id := range slices.Sorted(maps.Keys(d.agents)) {
		ag := d.agents[id]
		if negative(ag.total) || negative(ag.available) {
			return fmt.Errorf("allocator: agent %q has negative resources: total %s, available %s", id, ag.total, ag.available)
		}
		if slices.ContainsFunc(ag.available, resources.Resource.IsAllocated) {
			return fmt.Errorf("allocator: agent %q: available %s carries allocation roles", id, ag.available)
		}
		sum := ag.available
		for _, fwID := range slices.Sorted(maps.Keys(ag.allocs)) {
			a := ag.allocs[fwID]
			fw := d.frameworks[fwID]
			if fw == nil || a.fw != fw || a.ag != ag || fw.allocs[id] != a {
				return fmt.Errorf("allocator: allocation of framework %q on agent %q is not linked both ways", fwID, id)
			}
			if len(a.res) == 0 || negative(a.res) {
				return fmt.Errorf("allocator: allocation of framework %q on agent %q is empty or negative: %s", fwID, id, a.res)
			}
			for _, r := range a.res {
				if r.AllocationRole == "" || !r.IsAllocatableTo(r.AllocationRole) {
					return fmt.Errorf("allocator: framework %q on agent %q holds %s, badly attributed", fwID, id, r)
				}
			}
			sum = sum.Add(a.res.Unallocated())
		}
		if !sum.Equal(ag.total) {
			return fmt.Errorf("allocator: agent %q: allocations plus available are %s, total is %s", id, sum, ag.total)
		}
		d.addScalars(&total, ag.total, 1)
	}
	if !eqQty(total, d.total) {
		return fmt.Errorf("allocator: cluster totals %v, agents add up to %v", d.total, total)
	}
	return nil
}

func (d *DRF) checkFrameworks() error {
	for _, id := range slices.Sorted(maps.Keys(d.frameworks)) {
		fw := d.frameworks[id]
		if fw.id != id {
			return fmt.Errorf("allocator: framework %q filed as %q", fw.id, id)
		}
		if !fw.added && len(fw.allocs) == 0 {
			return fmt.Errorf("allocator: framework %q is neither added nor holding resources", id)
		}
		qty := map[string][]resources.Scalar{}
		agents := map[string]int{}
		for agentID, a := range fw.allocs {
			if ag := d.agents[agentID]; ag == nil || ag.allocs[id] != a {
				return fmt.Errorf("allocator: framework %q: allocation on agent %q is not linked both ways", id, agentID)
			}
			for _, name := range rolesOf(a.res) {
				agents[name]++
				q := qty[name]
				d.addScalars(&q, ofRole(a.res, name), 1)
				qty[name] = q
			}
		}
		for name := range agents {
			if fw.roles[name] == nil {
				return fmt.Errorf("allocator: framework %q holds resources of role %q but is not tracked under it", id, name)
			}
		}
		for name, fr := range fw.roles {
			switch {
			case fr.fw != fw || fr.role != d.roles[name] || !slices.Contains(fr.role.frameworks, fr):
				return fmt.Errorf("allocator: framework %q: membership of role %q is not linked both ways", id, name)
			case !eqQty(fr.qty, qty[name]):
				return fmt.Errorf("allocator: framework %q role %q: quantities %v, allocations add up to %v", id, name, fr.qty, qty[name])
			case fr.agents != agents[name]:
				return fmt.Errorf("allocator: framework %q role %q: counts %d agents, holds resources on %d", id, name, fr.agents, agents[name])
			case !fr.subscribed && fr.agents == 0:
				return fmt.Errorf("allocator: framework %q still tracked under role %q it left", id, name)
			case fr.suppressed && !fr.subscribed:
				return fmt.Errorf("allocator: framework %q suppresses role %q it does not subscribe to", id, name)
			case fr.subscribed && !fw.added:
				return fmt.Errorf("allocator: framework %q not added but subscribed to %q", id, name)
			case fr.offerable != (fw.added && fw.active && fr.subscribed && !fr.suppressed):
				return fmt.Errorf("allocator: framework %q role %q: offerable flag is stale", id, name)
			}
		}
		for agentID, fs := range fw.filters {
			if d.agents[agentID] == nil {
				return fmt.Errorf("allocator: framework %q has filters for unknown agent %q", id, agentID)
			}
			for _, f := range fs {
				if fr := fw.roles[f.role]; fr == nil || !fr.subscribed {
					return fmt.Errorf("allocator: framework %q has a filter for role %q it does not subscribe to", id, f.role)
				}
			}
		}
	}
	return nil
}

func (d *DRF) checkRoles() error {
	if len(d.order) != len(d.roles) {
		return fmt.Errorf("allocator: %d roles ordered, %d known", len(d.order), len(d.roles))
	}
	for i, r := range d.order {
		if d.roles[r.name] != r {
			return fmt.Errorf("allocator: ordered role %q is not known", r.name)
		}
		if len(r.frameworks) == 0 {
			return fmt.Errorf("allocator: role %q has no frameworks", r.name)
		}
		if r.weight != d.weight(r.name) {
			return fmt.Errorf("allocator: role %q has weight %v, want %v", r.name, r.weight, d.weight(r.name))
		}
		var qty []resources.Scalar
		offerable := 0
		for j, fr := range r.frameworks {
			if fr.role != r || fr.fw.roles[r.name] != fr || d.frameworks[fr.fw.id] != fr.fw {
				return fmt.Errorf("allocator: role %q lists framework %q, not linked back", r.name, fr.fw.id)
			}
			for k, v := range fr.qty {
				d.addScalar(&qty, k, v, 1)
			}
			if fr.offerable {
				offerable++
			}
			if d.stale {
				continue
			}
			if fr.key != d.share(fr.qty) {
				return fmt.Errorf("allocator: role %q framework %q: share %v, positioned as %v", r.name, fr.fw.id, d.share(fr.qty), fr.key)
			}
			if j > 0 && !less(r.frameworks[j-1], fr) {
				return fmt.Errorf("allocator: role %q: frameworks %q and %q out of order", r.name, r.frameworks[j-1].fw.id, fr.fw.id)
			}
		}
		if !eqQty(qty, r.qty) {
			return fmt.Errorf("allocator: role %q: quantities %v, its frameworks add up to %v", r.name, r.qty, qty)
		}
		if offerable != r.offerable {
			return fmt.Errorf("allocator: role %q counts %d offerable frameworks, has %d", r.name, r.offerable, offerable)
		}
		if d.stale {
			continue
		}
		if r.key != d.share(r.qty)/r.weight {
			return fmt.Errorf("allocator: role %q: share %v, positioned as %v", r.name, d.share(r.qty)/r.weight, r.key)
		}
		if i > 0 && !less(d.order[i-1], r) {
			return fmt.Errorf("allocator: roles %q and %q out of order", d.order[i-1].name, r.name)
		}
	}
	return nil
}

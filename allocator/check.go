package allocator

import (
	"fmt"
	"maps"
	mathbits "math/bits"
	"slices"

	"github.com/apronhq/apron/resources"
)

// Check implements Allocator. Besides the invariants every allocator keeps,
// it verifies DRF's own bookkeeping: the cached available resources, the
// cluster totals, the quantities of every framework role and node of the
// role tree, the links between them, the quota headroom, the filter
// indexes, the idle agents and, unless a re-sort is pending, the
// orderings. It costs a walk over everything, so it is meant for tests.
func (d *DRF) Check() error {
	if err := d.checkAgents(); err != nil {
		return err
	}
	if err := d.checkFrameworks(); err != nil {
		return err
	}
	if err := d.checkFilters(); err != nil {
		return err
	}
	return d.checkTree()
}

func negative(rs resources.Resources) bool {
	return slices.ContainsFunc(rs, func(r resources.Resource) bool {
		return r.Type == resources.TypeScalar && r.Scalar < 0
	})
}

func eqQty(a, b []resources.Scalar) bool {
	for i := range max(len(a), len(b)) {
		if at(a, i) != at(b, i) {
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
	var total, free []resources.Scalar
	reserved := map[string][]resources.Scalar{}
	for _, id := range slices.Sorted(maps.Keys(d.agents)) {
		ag := d.agents[id]
		if negative(ag.total) || negative(ag.available) {
			return fmt.Errorf("allocator: agent %q has negative resources: total %s, available %s", id, ag.total, ag.available)
		}
		if anyAllocated(ag.available) {
			return fmt.Errorf("allocator: agent %q: available %s carries allocation roles", id, ag.available)
		}
		sum := ag.available
		for _, a := range ag.sortedAllocs() {
			fwID := a.fw.id
			fw := d.frameworks[fwID]
			if fw == nil || a.fw != fw || a.ag != ag || fw.allocs[ag] != a {
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
		if ag.active && d.quota.tracking {
			for i := range ag.available {
				if counted(&ag.available[i]) {
					addScalar(&free, d.nameIndex(ag.available[i].Name), ag.available[i].Scalar, 1)
				}
			}
		}
		for _, r := range ag.total {
			if r.Type == resources.TypeScalar && r.IsReserved() {
				for p := r.Role(); p != ""; p = parentOf(p) {
					v := reserved[p]
					addScalar(&v, d.nameIndex(r.Name), r.Scalar, 1)
					reserved[p] = v
				}
			}
		}
		if ag.idle.on && !ag.idle.avail.Contains(ag.available) {
			return fmt.Errorf("allocator: agent %q is idle with %s free, more than %s it had then", id, ag.available, ag.idle.avail)
		}
	}
	if !eqQty(total, d.total) {
		return fmt.Errorf("allocator: cluster totals %v, agents add up to %v", d.total, total)
	}
	if !eqQty(free, d.quota.free) {
		return fmt.Errorf("allocator: quota headroom available %v, active agents have %v free", d.quota.free, free)
	}
	for _, role := range slices.Sorted(maps.Keys(d.quota.reserved)) {
		if !eqQty(reserved[role], d.quota.reserved[role]) {
			return fmt.Errorf("allocator: role %q: reserved %v, agents reserve %v", role, d.quota.reserved[role], reserved[role])
		}
	}
	for role := range reserved {
		if d.quota.reserved[role] == nil {
			return fmt.Errorf("allocator: role %q has reservations not counted", role)
		}
	}
	return nil
}

func anyAllocated(rs resources.Resources) bool {
	for i := range rs {
		if rs[i].AllocationRole != "" {
			return true
		}
	}
	return false
}

// checkFilters verifies the two indexes of the filters against each other,
// in O(filters + agents).
func (d *DRF) checkFilters() error {
	type counts struct{ n, nref int }
	seen := map[*agent]counts{}
	for idx, fr := range d.frs {
		if fr == nil {
			continue
		}
		for ag := range fr.filters.first {
			fs := fr.filters.get(ag, nil)
			if ag.pos >= len(d.agentList) || d.agentList[ag.pos] != ag {
				return fmt.Errorf("allocator: framework %q has filters for unknown agent %q", fr.fw.id, ag.id)
			}
			af := &ag.filters
			if len(fs) == 0 || !af.bits.has(idx) {
				return fmt.Errorf("allocator: agent %q: framework %q role %q has %d filters, bit %v", ag.id, fr.fw.id, fr.role.name, len(fs), af.bits.has(idx))
			}
			c := seen[ag]
			for _, f := range fs {
				c.n++
				if f.expires < af.earliest {
					return fmt.Errorf("allocator: agent %q: a filter expires at %v, before the earliest %v", ag.id, f.expires, af.earliest)
				}
				if same(f.refused, af.ref) {
					c.nref++
					continue // checked once, below
				}
				if len(f.refused) == 0 || anyAllocated(f.refused) {
					return fmt.Errorf("allocator: agent %q: filter of framework %q refuses %s", ag.id, fr.fw.id, f.refused)
				}
			}
			seen[ag] = c
		}
	}
	for _, ag := range d.agentList {
		af := &ag.filters
		bits := 0
		for w, word := range af.bits {
			for ; word != 0; word &= word - 1 {
				bits++
				idx := w<<6 | mathbits.TrailingZeros64(word)
				if idx >= len(d.frs) || d.frs[idx] == nil || len(d.frs[idx].filters.get(ag, nil)) == 0 {
					return fmt.Errorf("allocator: agent %q has filter bit %d of no framework role with filters there", ag.id, idx)
				}
			}
		}
		if c := seen[ag]; c.n != af.n || c.nref != af.nref {
			return fmt.Errorf("allocator: agent %q counts %d filters (%d interned), has %d (%d)", ag.id, af.n, af.nref, c.n, c.nref)
		}
		if af.nref > 0 && anyAllocated(af.ref) {
			return fmt.Errorf("allocator: agent %q: interned refused set %s is allocated", ag.id, af.ref)
		}
	}
	return nil
}

func (d *DRF) checkFrameworks() error {
	customMins := 0
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
		for ag, a := range fw.allocs {
			agentID := ag.id
			if d.agents[agentID] != ag || ag.allocs[fw] != a || a.ag != ag {
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
			_, hasMins := fw.mins[name]
			switch {
			case fr.fw != fw || fr.role != d.roles[name] || !fr.role.frameworks.contains(fr):
				return fmt.Errorf("allocator: framework %q: membership of role %q is not linked both ways", id, name)
			case fr.idx < 0 || fr.idx >= len(d.frs) || d.frs[fr.idx] != fr:
				return fmt.Errorf("allocator: framework %q role %q: index %d is not its own", id, name, fr.idx)
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
			case fr.hasMins != (hasMins && fr.subscribed):
				return fmt.Errorf("allocator: framework %q role %q: minimum offer size is stale", id, name)
			case fr.filters.len() > 0 && !fr.subscribed:
				return fmt.Errorf("allocator: framework %q has filters for role %q it does not subscribe to", id, name)
			}
			if fr.hasMins {
				customMins++
			}
			for ag := range fr.filters.more {
				if _, ok := fr.filters.first[ag]; !ok {
					return fmt.Errorf("allocator: framework %q keeps further filters on agent %q without a first", id, ag.id)
				}
			}
			for ag := range fr.filters.first {
				if d.agents[ag.id] != ag {
					return fmt.Errorf("allocator: framework %q has filters for unknown agent %q", id, ag.id)
				}
			}
		}
	}
	if customMins != d.customMins {
		return fmt.Errorf("allocator: %d framework roles with their own minimum offer size, %d counted", customMins, d.customMins)
	}
	live := 0
	for _, fr := range d.frs {
		if fr != nil {
			live++
		}
	}
	if live+len(d.freeIdx) != len(d.frs) {
		return fmt.Errorf("allocator: %d framework roles indexed, %d free indexes, %d slots", live, len(d.freeIdx), len(d.frs))
	}
	return nil
}

func (d *DRF) checkTree() error {
	// What counts toward quotas, by role, from the allocations.
	countedQty := map[string][]resources.Scalar{}
	for _, fw := range d.frameworks {
		for _, a := range fw.allocs {
			for _, r := range a.res {
				if counted(&r) {
					v := countedQty[r.AllocationRole]
					addScalar(&v, d.nameIndex(r.Name), r.Scalar, 1)
					countedQty[r.AllocationRole] = v
				}
			}
		}
	}
	nodes := 0
	var walk func(r *role) ([]resources.Scalar, error)
	walk = func(r *role) ([]resources.Scalar, error) {
		if r != d.root {
			nodes++
			switch {
			case d.roles[r.name] != r:
				return nil, fmt.Errorf("allocator: node %q is not filed", r.name)
			case parentOf(r.name) != r.parent.name:
				return nil, fmt.Errorf("allocator: node %q under %q", r.name, r.parent.name)
			case r.frameworks.len() == 0 && r.children.len() == 0:
				return nil, fmt.Errorf("allocator: node %q has neither frameworks nor children", r.name)
			case r.weight != d.weight(r.name):
				return nil, fmt.Errorf("allocator: role %q has weight %v, want %v", r.name, r.weight, d.weight(r.name))
			case r.quota != d.quota.set[r.name]:
				return nil, fmt.Errorf("allocator: role %q has a stale quota", r.name)
			}
		}
		var own, sub, quota []resources.Scalar
		offerable, ownOfferable, customMins := 0, 0, 0
		frameworks := r.frameworks.slice()
		if len(frameworks) != r.frameworks.len() {
			return nil, fmt.Errorf("allocator: role %q counts %d frameworks, lists %d", r.name, r.frameworks.len(), len(frameworks))
		}
		for j, fr := range frameworks {
			if fr.role != r || fr.fw.roles[r.name] != fr || d.frameworks[fr.fw.id] != fr.fw {
				return nil, fmt.Errorf("allocator: role %q lists framework %q, not linked back", r.name, fr.fw.id)
			}
			for k, v := range fr.qty {
				addScalar(&own, k, v, 1)
			}
			if fr.offerable {
				ownOfferable++
			}
			if fr.hasMins {
				customMins++
			}
			if d.stale {
				continue
			}
			if fr.key != d.share(fr.qty) {
				return nil, fmt.Errorf("allocator: role %q framework %q: share %v, positioned as %v", r.name, fr.fw.id, d.share(fr.qty), fr.key)
			}
			if d.sorter == SorterDRF && j > 0 && !less(frameworks[j-1], fr) {
				return nil, fmt.Errorf("allocator: role %q: frameworks %q and %q out of order", r.name, frameworks[j-1].fw.id, fr.fw.id)
			}
		}
		for k, v := range own {
			addScalar(&sub, k, v, 1)
		}
		for k, v := range countedQty[r.name] {
			addScalar(&quota, k, v, 1)
		}
		offerable = ownOfferable
		children := r.children.slice()
		for j, c := range children {
			if c.parent != r {
				return nil, fmt.Errorf("allocator: node %q lists child %q, not linked back", r.name, c.name)
			}
			cq, err := walk(c)
			if err != nil {
				return nil, err
			}
			for k, v := range cq {
				addScalar(&sub, k, v, 1)
			}
			for k, v := range c.quotaQty {
				addScalar(&quota, k, v, 1)
			}
			offerable += c.offerable
			if d.stale {
				continue
			}
			if c.key != d.share(c.qty)/c.weight {
				return nil, fmt.Errorf("allocator: role %q: share %v, positioned as %v", c.name, d.share(c.qty)/c.weight, c.key)
			}
			if d.sorter == SorterDRF && j > 0 && !less(children[j-1], c) {
				return nil, fmt.Errorf("allocator: roles %q and %q out of order", children[j-1].name, c.name)
			}
		}
		switch {
		case !eqQty(own, r.ownQty):
			return nil, fmt.Errorf("allocator: role %q: own quantities %v, its frameworks add up to %v", r.name, r.ownQty, own)
		case r != d.root && !eqQty(sub, r.qty):
			return nil, fmt.Errorf("allocator: role %q: quantities %v, its subtree adds up to %v", r.name, r.qty, sub)
		case r != d.root && !eqQty(quota, r.quotaQty):
			return nil, fmt.Errorf("allocator: role %q: quota consumption %v, allocations add up to %v", r.name, r.quotaQty, quota)
		case ownOfferable != r.ownOfferable || offerable != r.offerable:
			return nil, fmt.Errorf("allocator: role %q counts %d/%d offerable frameworks, has %d/%d", r.name, r.ownOfferable, r.offerable, ownOfferable, offerable)
		case customMins != r.customMins:
			return nil, fmt.Errorf("allocator: role %q counts %d frameworks with their own minimum offer size, has %d", r.name, r.customMins, customMins)
		}
		return sub, nil
	}
	if _, err := walk(d.root); err != nil {
		return err
	}
	if q := &d.quota; len(q.guaranteed) > 0 && !q.requiredStale {
		followed := slices.Clone(q.required)
		q.requiredStale = true
		if want := q.requiredHeadroom(d); !eqQty(followed, want) {
			return fmt.Errorf("allocator: required quota headroom followed as %v, is %v", followed, want)
		}
	}
	if nodes != len(d.roles) {
		return fmt.Errorf("allocator: %d roles filed, %d in the tree", len(d.roles), nodes)
	}
	return nil
}

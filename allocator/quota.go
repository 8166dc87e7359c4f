package allocator

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/apronhq/apron/resources"
)

// Quotas follow Mesos 1.9's guarantees and limits, on every level of the
// role tree:
//
//   - a role consumes what is reserved to it and its descendants, allocated
//     or not, plus the unreserved, non-revocable resources allocated to
//     them;
//   - a limit caps the unreserved scalars offered to the role's subtree, so
//     that its consumption never exceeds the limit;
//   - a guarantee sets resources aside: the required headroom is, over the
//     top of the tree, what the guarantees still lack (a role needs the
//     larger of its own shortfall and the sum of what its guaranteed
//     descendants need), and no role is offered unreserved scalars that
//     would leave less than that free on the active agents;
//   - a cycle first walks only the roles under an unmet guarantee (stage
//     1), offering each what lowers the required headroom (what its own
//     guarantee and its ancestors' lack beyond what their other guaranteed
//     descendants need), even out of the headroom, plus what else it may
//     use within its limits and the surplus headroom; then every role
//     (stage 2), within limits and headroom.
//
// Reserved, revocable and non-scalar resources are never held back: they
// count toward no limit (reservations were counted when made).

// roleQuota is a quota as set, with its amounts indexed by resource name.
type roleQuota struct {
	role      string
	spec      Quota
	guarantee []amount
	limit     []amount
	// For a guarantee: the nearest ancestor with one (nil when none), what
	// the role needs (its own shortfall or, if larger, childNeed: what its
	// nearest guaranteed descendants need together), by name index.
	up              *roleQuota
	need, childNeed []resources.Scalar
}

// guaranteeOf is the role's guarantee of the resource of name index n.
func (rq *roleQuota) guaranteeOf(n int) resources.Scalar {
	for _, g := range rq.guarantee {
		if g.n == n {
			return g.v
		}
	}
	return 0
}

type amount struct {
	n int // name index
	v resources.Scalar
}

// quotaBook keeps what quotas need beyond the role tree.
type quotaBook struct {
	set map[string]*roleQuota
	// guaranteed lists the roles with a guarantee, deepest first.
	guaranteed []string
	// reserved is, by role, the scalars reserved to it or a descendant on
	// every agent.
	reserved map[string][]resources.Scalar
	// free is the counted resources (unreserved, non-revocable scalars)
	// free on active agents: the headroom available. It is kept only
	// while some quota is set (tracking).
	free     []resources.Scalar
	tracking bool
	// required is the headroom the guarantees need: the sum of what the
	// guaranteed roles without a guaranteed ancestor need. It follows
	// allocations (consume), and is recomputed whole when requiredStale.
	required      []resources.Scalar
	requiredStale bool
	room, alt     []resources.Scalar  // scratch
	offer         resources.Resources // scratch: what stage2Offer cut
}

const unbounded = resources.Scalar(math.MaxInt64)

func (q *quotaBook) init() {
	q.set = map[string]*roleQuota{}
	q.reserved = map[string][]resources.Scalar{}
}

// active reports whether any quota is set.
func (q *quotaBook) active() bool { return len(q.set) > 0 }

// changed notes that what the guarantees need must be recomputed.
func (q *quotaBook) changed() {
	if len(q.guaranteed) > 0 {
		q.requiredStale = true
	}
}

func setAt(v *[]resources.Scalar, n int, x resources.Scalar) {
	addScalar(v, n, x.Sub(at(*v, n)), 1)
}

// consume updates what the guarantees need after the consumption of role r
// (and so of its ancestors) of the resource of name index n changed:
// O(r's depth).
func (q *quotaBook) consume(d *DRF, r *role, n int) {
	if len(q.guaranteed) == 0 || q.requiredStale {
		return
	}
	change := resources.Scalar(0) // in the need of the guaranteed role below
	for a := r; a != d.root; a = a.parent {
		rq := a.quota
		if rq == nil || len(rq.guarantee) == 0 {
			continue
		}
		below := at(rq.childNeed, n).Add(change)
		setAt(&rq.childNeed, n, below)
		need := max(rq.guaranteeOf(n).Sub(q.consumedAt(d, a.name, n)), below, 0)
		change = need.Sub(at(rq.need, n))
		setAt(&rq.need, n, need)
	}
	setAt(&q.required, n, at(q.required, n).Add(change))
}

// addFree adds (sign 1) or subtracts the counted entries of rs to the
// headroom available.
func (q *quotaBook) addFree(d *DRF, rs resources.Resources, sign int) {
	if !q.tracking {
		return
	}
	for i := range rs {
		if counted(&rs[i]) {
			addScalar(&q.free, d.nameIndex(rs[i].Name), rs[i].Scalar, sign)
		}
	}
}

// addReserved adds (sign 1) or subtracts the reserved scalars of an
// agent's total to the consumption of their roles and the roles' ancestors.
func (q *quotaBook) addReserved(d *DRF, total resources.Resources, sign int) {
	for i := range total {
		r := &total[i]
		if r.Type != resources.TypeScalar || len(r.Reservations) == 0 {
			continue
		}
		n := d.nameIndex(r.Name)
		for p := r.Role(); p != ""; p = parentOf(p) {
			v := q.reserved[p]
			addScalar(&v, n, r.Scalar, sign)
			q.reserved[p] = v
		}
		q.changed()
	}
}

// consumedAt is what role consumes of the resource of name index n.
func (q *quotaBook) consumedAt(d *DRF, role string, n int) resources.Scalar {
	c := at(q.reserved[role], n)
	if r := d.roles[role]; r != nil {
		c = c.Add(at(r.quotaQty, n))
	}
	return c
}

// consumed is what role consumes, by name index.
func (q *quotaBook) consumed(d *DRF, role string) []resources.Scalar {
	out := make([]resources.Scalar, len(d.nameList))
	for n := range out {
		out[n] = q.consumedAt(d, role, n)
	}
	return out
}

// requiredHeadroom is what the guarantees still lack, by name index. A
// guaranteed role needs the larger of its own shortfall and the sum of
// what its nearest guaranteed descendants need; the requirement is the sum
// of what the guaranteed roles without a guaranteed ancestor need.
func (q *quotaBook) requiredHeadroom(d *DRF) []resources.Scalar {
	if !q.requiredStale {
		return q.required
	}
	q.requiredStale = false
	q.required = append(q.required[:0], make([]resources.Scalar, len(d.nameList))...)
	for _, role := range q.guaranteed {
		rq := q.set[role]
		rq.childNeed = append(rq.childNeed[:0], make([]resources.Scalar, len(d.nameList))...)
	}
	for _, role := range q.guaranteed { // deepest first
		rq := q.set[role]
		rq.need = append(rq.need[:0], rq.childNeed...)
		for _, g := range rq.guarantee {
			if short := g.v.Sub(q.consumedAt(d, role, g.n)); short > at(rq.need, g.n) {
				setAt(&rq.need, g.n, short)
			}
		}
		dst := &q.required
		if rq.up != nil {
			dst = &rq.up.childNeed
		}
		for n, v := range rq.need {
			addScalar(dst, n, v, 1)
		}
	}
	return q.required
}

// allowance sets q.alt to how much of each counted resource role r can be
// given toward the guarantees, reducing the required headroom as much as
// it is given (the quota stage's "guarantee part"), and reports whether
// any is positive. Going up r's guaranteed ancestors (r included), each
// adds what it lacks beyond what its guaranteed descendants need.
func (q *quotaBook) allowance(d *DRF, r *role) bool {
	q.requiredHeadroom(d)
	q.alt = append(q.alt[:0], make([]resources.Scalar, len(d.nameList))...)
	any := false
	for a := r; a != d.root; a = a.parent {
		if a.quota == nil || len(a.quota.guarantee) == 0 {
			continue
		}
		below := a.quota.childNeed
		for _, g := range a.quota.guarantee {
			short := g.v.Sub(q.consumedAt(d, a.name, g.n))
			if extra := short.Sub(at(below, g.n)); extra > 0 {
				q.alt[g.n] = q.alt[g.n].Add(extra)
				any = true
			}
		}
	}
	return any
}

// unmet reports whether some guarantee is not met.
func (q *quotaBook) unmet(d *DRF) bool {
	if len(q.guaranteed) == 0 {
		return false
	}
	return slices.ContainsFunc(q.requiredHeadroom(d), func(v resources.Scalar) bool { return v > 0 })
}

// markStage1 marks the nodes the quota stage of this cycle visits.
func (q *quotaBook) markStage1(d *DRF) {
	var mark func(r *role, under bool) bool
	mark = func(r *role, under bool) bool {
		under = under || (r.quota != nil && len(r.quota.guarantee) > 0)
		r.ownStage1 = under
		any := under && r.ownOfferable > 0
		r.children.each(func(c *role) bool {
			if mark(c, under) {
				any = true
			}
			return true
		})
		r.inStage1 = any
		return any
	}
	mark(d.root, false)
}

// limitRoom sets q.room to what r may still be allocated of each counted
// resource under the limits of r and its ancestors (unbounded where none
// applies) and reports whether any limit applies.
func (q *quotaBook) limitRoom(d *DRF, r *role) bool {
	q.room = q.room[:0]
	for range d.nameList {
		q.room = append(q.room, unbounded)
	}
	limited := false
	for a := r; a != d.root; a = a.parent {
		if a.quota == nil {
			continue
		}
		for _, l := range a.quota.limit {
			limited = true
			left := max(l.v.Sub(q.consumedAt(d, a.name, l.n)), 0)
			q.room[l.n] = min(q.room[l.n], left)
		}
	}
	return limited
}

// surplusRoom lowers q.room to the headroom available beyond what the
// guarantees require, and reports whether any is required.
func (q *quotaBook) surplusRoom(d *DRF) bool {
	required := false
	for n, v := range q.requiredHeadroom(d) {
		if v > 0 {
			required = true
			q.room[n] = min(q.room[n], max(at(q.free, n).Sub(v), 0))
		}
	}
	return required
}

// stage2Offer is what r may be offered of cand in the second stage: its
// counted resources within the limits and the surplus headroom. It notes
// in the cycle when that held something back.
func (q *quotaBook) stage2Offer(d *DRF, r *role, cand resources.Resources) resources.Resources {
	limited := q.limitRoom(d, r)
	if required := q.surplusRoom(d); !limited && !required {
		return cand
	}
	// The cut offer lives in a scratch slice: offer copies it.
	out, cut := shrink(d, cand, q.room, q.offer[:0])
	if cut {
		d.quotaHit = true
		q.offer = out
	}
	return out
}

// stage1Offer is what r may be offered of cand in the quota stage: nothing
// unless it helps toward an unmet guarantee (see allowance); then that
// part (within limits, even out of the headroom), plus what else r may use
// within its limits and the surplus headroom.
func (q *quotaBook) stage1Offer(d *DRF, r *role, cand resources.Resources) resources.Resources {
	if !q.allowance(d, r) {
		// Allowances only shrink during the quota stage: the role is done.
		r.ownStage1 = false
		return nil
	}
	q.limitRoom(d, r)
	for n := range q.alt {
		q.alt[n] = min(q.alt[n], q.room[n])
	}
	countedPart := cand.Filter(func(r resources.Resource) bool { return counted(&r) })
	rest := cand.Filter(func(r resources.Resource) bool { return !counted(&r) })
	guar, _ := shrink(d, countedPart, q.alt, nil)
	if len(guar) == 0 {
		return nil
	}
	for i := range guar {
		n := d.nameIndex(guar[i].Name)
		q.room[n] = max(q.room[n].Sub(guar[i].Scalar), 0)
	}
	q.surplusRoom(d)
	more, _ := shrink(d, countedPart.Subtract(guar), q.room, nil)
	return rest.Add(guar).Add(more)
}

// shrink returns rs with its counted entries cut so that, by name, they fit
// in room (which it uses up), and reports whether anything was cut. A
// divisible resource is cut to what fits; an exclusive one (a MOUNT disk)
// is kept whole or left out. When nothing is cut, rs itself is returned;
// else the result is appended to buf (empty, possibly nil).
func shrink(d *DRF, rs resources.Resources, room []resources.Scalar, buf resources.Resources) (resources.Resources, bool) {
	var out resources.Resources
	cut := false
	for i := range rs {
		r := rs[i]
		if counted(&r) {
			n := d.nameIndex(r.Name)
			have := unbounded
			if n < len(room) {
				have = room[n]
			}
			if r.Scalar > have {
				if !cut {
					out, cut = append(buf, rs[:i]...), true
				}
				if exclusive(&r) || have == 0 {
					continue
				}
				r.Scalar = have
			}
			if n < len(room) {
				room[n] = have.Sub(r.Scalar)
			}
		}
		if cut {
			out = append(out, r)
		}
	}
	if !cut {
		return rs, false
	}
	return out, true
}

// exclusive reports whether r is used whole (a shared resource, a
// persistent volume, a disk with a MOUNT, BLOCK or identified RAW source).
func exclusive(r *resources.Resource) bool {
	if r.Shared {
		return true
	}
	if r.Disk == nil {
		return false
	}
	if r.Disk.Persistence != nil {
		return true
	}
	s := r.Disk.Source
	return s != nil && (s.Type == resources.SourceMount || s.Type == resources.SourceBlock || (s.Type == resources.SourceRaw && s.ID != ""))
}

func (q Quota) clone() Quota {
	return Quota{Guarantee: maps.Clone(q.Guarantee), Limit: maps.Clone(q.Limit)}
}

// SetQuota implements Allocator.
func (d *DRF) SetQuota(role string, q Quota) error {
	if err := resources.ValidateRole(role); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if role == "*" {
		return fmt.Errorf("%w: role \"*\" takes no quota", ErrInvalid)
	}
	if err := validateQuantities(q.Guarantee); err != nil {
		return fmt.Errorf("%w: guarantee of role %q: %w", ErrInvalid, role, err)
	}
	if err := validateQuantities(q.Limit); err != nil {
		return fmt.Errorf("%w: limit of role %q: %w", ErrInvalid, role, err)
	}
	for _, name := range slices.Sorted(maps.Keys(q.Guarantee)) {
		if l, ok := q.Limit[name]; ok && q.Guarantee[name] > l {
			return fmt.Errorf("%w: role %q: guarantee of %s %s exceeds its limit %s", ErrInvalid, role, name, q.Guarantee[name], l)
		}
	}
	rq := &roleQuota{role: role, spec: Quota{Guarantee: Quantities{}, Limit: Quantities{}}}
	for _, name := range slices.Sorted(maps.Keys(q.Guarantee)) {
		if v := q.Guarantee[name]; v > 0 {
			rq.spec.Guarantee[name] = v
			rq.guarantee = append(rq.guarantee, amount{d.nameIndex(name), v})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(q.Limit)) {
		v := q.Limit[name]
		rq.spec.Limit[name] = v
		rq.limit = append(rq.limit, amount{d.nameIndex(name), v})
	}
	if len(rq.guarantee) == 0 && len(rq.limit) == 0 {
		rq = nil
		delete(d.quota.set, role)
	} else {
		d.quota.set[role] = rq
	}
	if r := d.roles[role]; r != nil {
		r.quota = rq
	}
	d.quota.reindex()
	if tracking := d.quota.active(); tracking != d.quota.tracking {
		d.quota.free, d.quota.tracking = d.quota.free[:0], tracking
		for _, ag := range d.agentList {
			if ag.active {
				d.quota.addFree(d, ag.available, 1)
			}
		}
	}
	return nil
}

// reindex lists the guaranteed roles, deepest first, with their nearest
// guaranteed ancestors.
func (q *quotaBook) reindex() {
	q.guaranteed = q.guaranteed[:0]
	for role, rq := range q.set {
		if len(rq.guarantee) > 0 {
			q.guaranteed = append(q.guaranteed, role)
		}
	}
	slices.SortFunc(q.guaranteed, func(a, b string) int {
		if da, db := strings.Count(a, "/"), strings.Count(b, "/"); da != db {
			return db - da
		}
		return strings.Compare(a, b)
	})
	for _, role := range q.guaranteed {
		rq := q.set[role]
		rq.up = nil
		for p := parentOf(role); p != ""; p = parentOf(p) {
			if a := q.set[p]; a != nil && len(a.guarantee) > 0 {
				rq.up = a
				break
			}
		}
	}
	q.requiredStale = true
}

// Quotas implements Allocator.
func (d *DRF) Quotas() map[string]Quota {
	out := make(map[string]Quota, len(d.quota.set))
	for role, rq := range d.quota.set {
		out[role] = rq.spec.clone()
	}
	return out
}

package allocator

import (
	"maps"
	"slices"
	"strings"

	"github.com/apronhq/apron/resources"
)

// role is a node of the role tree: a role, with its sub-roles as children
// ("eng/backend" under "eng"). The root is the unnamed node above the
// top-level roles. A node exists while the role or one of its descendants
// has frameworks tracked under it.
//
// Among siblings, a role is ordered by the weighted dominant share of what
// is allocated to it and its descendants. A role that has frameworks of
// its own and sub-roles too puts its own frameworks, taken together, among
// its children as one more entry of weight 1 (Mesos's "." node), ordered by
// the share of what is allocated to the role itself.
type role struct {
	name   string // the path, "eng/backend"
	parent *role
	weight float64
	quota  *roleQuota // nil when none is set

	children   ordered[*role]          // sub-roles, by ascending (key, name) with SorterDRF
	frameworks ordered[*frameworkRole] // the role's own members, by ascending (key, framework ID) with SorterDRF

	qty      []resources.Scalar // allocated to the role and its descendants
	ownQty   []resources.Scalar // allocated to the role itself
	quotaQty []resources.Scalar // the part of qty that counts toward quotas
	key      float64            // share(qty)/weight, as positioned among its siblings

	// offerable counts the offerable framework roles of the subtree,
	// ownOfferable those of the role itself, offerBits holds the indexes
	// of the latter; customMins counts the role's own members with their
	// own minimum offer size.
	offerable, ownOfferable, customMins int
	offerBits                           bitset

	// inStage1 marks, during a cycle, the nodes the quota stage walks
	// into, and ownStage1 those whose own frameworks it considers: the
	// roles under a guarantee.
	inStage1, ownStage1 bool
}

// parentOf is the path of a role's parent, "" for a top-level role.
func parentOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i]
	}
	return ""
}

func (fr *frameworkRole) sortKey() (float64, string) { return fr.key, fr.fw.id }
func (r *role) sortKey() (float64, string)           { return r.key, r.name }

// ---- orderings ----

type keyed interface {
	comparable
	sortKey() (float64, string)
}

func less[T keyed](a, b T) bool {
	ak, an := a.sortKey()
	bk, bn := b.sortKey()
	if ak != bk {
		return ak < bk
	}
	return an < bn
}

func cmpKeyed[T keyed](a, b T) int {
	if less(a, b) {
		return -1
	}
	if less(b, a) {
		return 1
	}
	return 0
}

// search returns the first index of s whose element is not before x.
func search[T keyed](s []T, x T) int {
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if less(s[m], x) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (d *DRF) rekeyFR(fr *frameworkRole) {
	if d.stale {
		return
	}
	k := d.share(fr.qty)
	if k == fr.key {
		return
	}
	if d.sorter != SorterDRF {
		fr.key = k
		return
	}
	fr.role.frameworks.move(fr, func() { fr.key = k })
}

// rekeyRole repositions r and its ancestors among their siblings.
func (d *DRF) rekeyRole(r *role) {
	if d.stale {
		return
	}
	for ; r != d.root; r = r.parent {
		k := d.share(r.qty) / r.weight
		if k == r.key {
			continue
		}
		if d.sorter != SorterDRF {
			r.key = k
			continue
		}
		r.parent.children.move(r, func() { r.key = k })
	}
}

// refresh recomputes every share and re-sorts every ordering after the
// cluster totals changed: O(R log R + F log F).
func (d *DRF) refresh() {
	if !d.stale {
		return
	}
	var walk func(r *role)
	walk = func(r *role) {
		r.frameworks.each(func(fr *frameworkRole) bool {
			fr.key = d.share(fr.qty)
			return true
		})
		r.children.each(func(c *role) bool {
			c.key = d.share(c.qty) / c.weight
			walk(c)
			return true
		})
		if d.sorter == SorterDRF {
			r.frameworks.sort()
			r.children.sort()
		}
	}
	walk(d.root)
	d.stale = false
}

// ---- nodes and membership ----

// node returns the node of the role at path, creating it and its
// ancestors if needed.
func (d *DRF) node(path string) *role {
	if r := d.roles[path]; r != nil {
		return r
	}
	parent := d.root
	if p := parentOf(path); p != "" {
		parent = d.node(p)
	}
	r := &role{name: path, parent: parent, weight: d.weight(path), quota: d.quota.set[path]}
	d.roles[path] = r
	parent.children.insert(r)
	return r
}

// prune removes r and its ancestors as long as they have neither
// frameworks nor children.
func (d *DRF) prune(r *role) {
	for r != d.root && r.frameworks.len() == 0 && r.children.len() == 0 {
		r.parent.children.remove(r)
		delete(d.roles, r.name)
		r = r.parent
	}
}

// track returns fw's membership of the role called name, creating it (and
// the role's node) if needed.
func (d *DRF) track(fw *framework, name string) *frameworkRole {
	if fr := fw.roles[name]; fr != nil {
		return fr
	}
	r := d.node(name)
	fr := &frameworkRole{fw: fw, role: r}
	if n := len(d.freeIdx); n > 0 {
		fr.idx = d.freeIdx[n-1]
		d.freeIdx = d.freeIdx[:n-1]
		d.frs[fr.idx] = fr
	} else {
		fr.idx = len(d.frs)
		d.frs = append(d.frs, fr)
	}
	fw.roles[name] = fr
	r.frameworks.insert(fr)
	return fr
}

// untrackIfIdle forgets fr once the framework neither subscribes to the
// role nor holds anything allocated to it, and prunes the tree.
func (d *DRF) untrackIfIdle(fr *frameworkRole) {
	if fr.subscribed || fr.agents > 0 || fr.fw.roles[fr.role.name] != fr {
		return
	}
	d.refreshOfferable(fr)
	d.setMins(fr, nil, false)
	d.dropFilters(fr)
	r := fr.role
	r.frameworks.remove(fr)
	delete(fr.fw.roles, r.name)
	d.frs[fr.idx] = nil
	d.freeIdx = append(d.freeIdx, fr.idx)
	d.prune(r)
}

// refreshOfferable recomputes fr.offerable and the counts of its role and
// ancestors, and reports whether it changed. A framework role that becomes
// offerable is logged as eligible.
func (d *DRF) refreshOfferable(fr *frameworkRole) bool {
	o := fr.fw.added && fr.fw.active && fr.subscribed && !fr.suppressed
	if o == fr.offerable {
		return false
	}
	fr.offerable = o
	delta := -1
	if o {
		delta = 1
	}
	fr.role.ownOfferable += delta
	if o {
		fr.role.offerBits.set(fr.idx)
	} else {
		fr.role.offerBits.unset(fr.idx)
	}
	for a := fr.role; a != nil; a = a.parent {
		a.offerable += delta
	}
	if o {
		d.logEligible(fr)
	}
	return true
}

// setMins gives fr its own minimum offer size (has) or the allocator's.
func (d *DRF) setMins(fr *frameworkRole, mins [][]quantity, has bool) {
	if fr.hasMins != has {
		delta := -1
		if has {
			delta = 1
		}
		fr.role.customMins += delta
		d.customMins += delta
	}
	fr.mins, fr.hasMins = mins, has
}

// setRoles makes fw subscribe to exactly roles, with suppressed among them
// suppressed. Roles left lose their filters.
func (d *DRF) setRoles(fw *framework, roles, suppressed []string) {
	for name, fr := range fw.roles {
		if fr.subscribed && !slices.Contains(roles, name) {
			fr.subscribed, fr.suppressed = false, false
			d.dropFilters(fr)
		}
	}
	for _, name := range roles {
		fr := d.track(fw, name)
		fr.subscribed = true
		fr.suppressed = slices.Contains(suppressed, name)
	}
	for _, name := range slices.Sorted(maps.Keys(fw.roles)) {
		fr := fw.roles[name]
		mins, has := fw.mins[name]
		d.setMins(fr, mins, has && fr.subscribed)
		d.refreshOfferable(fr)
		d.untrackIfIdle(fr)
	}
}

func (d *DRF) refreshFramework(fw *framework) {
	for _, name := range slices.Sorted(maps.Keys(fw.roles)) {
		d.refreshOfferable(fw.roles[name])
	}
}

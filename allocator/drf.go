package allocator

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/apronhq/apron/resources"
)

// Options configures a DRF allocator.
type Options struct {
	// Rand orders the agents of each cycle. Default: a source seeded 1, so
	// that an allocator is deterministic unless told otherwise.
	Rand *rand.Rand
	// MinAllocatable lists alternative minimum offer sizes, as Mesos's
	// --min_allocatable_resources flag ("cpus:0.01|mem:32"): a framework is
	// offered the resources it may use on an agent only if their quantities
	// reach every quantity of at least one alternative, whatever the
	// reservations. nil means Mesos's default, cpus:0.01 or mem:32; an
	// empty, non-nil slice means any non-empty offer is made.
	MinAllocatable []resources.Resources
}

// quantity is an amount of a named resource, scalar or counted.
type quantity struct {
	name   string
	amount resources.Scalar
}

// DRF is the hierarchical weighted Dominant Resource Fairness allocator;
// see the package documentation. Create it with NewDRF.
type DRF struct {
	rng      *rand.Rand
	minAlloc [][]quantity

	// names interns scalar resource names; quantity vectors ([]Scalar) are
	// indexed by them.
	names    map[string]int
	nameList []string
	total    []resources.Scalar // scalar totals of every agent, by name index

	agents     map[string]*agent
	agentList  []*agent // the order cycles shuffle; agent.pos indexes it
	frameworks map[string]*framework
	roles      map[string]*role // roles with at least one tracked framework
	order      []*role          // the roles by ascending (key, name)
	weights    map[string]float64

	// stale means the cluster totals changed since keys were computed:
	// every share must be recomputed and every ordering re-sorted before
	// the next cycle. While stale, keys are not maintained.
	stale bool
	visit uint64 // counts AllocateAgents calls

	// Scratch space of a cycle, kept to avoid allocating each time.
	scratch      []*agent
	touchedFRs   []*frameworkRole
	touchedRoles []*role
}

type agent struct {
	id, hostname string
	total        resources.Resources
	available    resources.Resources    // total minus every allocation, unallocated
	allocs       map[string]*allocation // by framework ID
	pos          int
	visit        uint64 // the last AllocateAgents call that listed the agent
}

// allocation is what one framework holds on one agent, with each entry's
// allocation role set. It is shared by the framework and the agent.
type allocation struct {
	fw  *framework
	ag  *agent
	res resources.Resources
}

type framework struct {
	id string
	// added is false for a framework known only from an agent's used
	// resources (AddAgent) that has not been added yet: it is never
	// offered anything.
	added  bool
	active bool
	// roles holds the roles the framework is tracked under: those it
	// subscribes to and those it still holds resources allocated to.
	roles   map[string]*frameworkRole
	allocs  map[string]*allocation // by agent ID
	filters map[string][]filter    // by agent ID
}

// frameworkRole is a framework as a member of one role.
type frameworkRole struct {
	fw         *framework
	role       *role
	subscribed bool
	suppressed bool
	offerable  bool // added, active, subscribed and not suppressed
	agents     int  // agents where the framework holds resources of this role
	qty        []resources.Scalar
	key        float64 // dominant share of qty, as positioned in role.frameworks
}

type role struct {
	name       string
	weight     float64
	qty        []resources.Scalar
	key        float64          // weighted dominant share, as positioned in DRF.order
	frameworks []*frameworkRole // by ascending (key, framework ID)
	offerable  int              // frameworks with offerable set
}

// filter is a refused-offer filter for one role on one agent.
type filter struct {
	role    string
	refused resources.Resources // unallocated
	expires time.Time
}

func (fr *frameworkRole) sortKey() (float64, string) { return fr.key, fr.fw.id }
func (r *role) sortKey() (float64, string)           { return r.key, r.name }

// NewDRF returns an empty weighted DRF allocator.
func NewDRF(opts Options) *DRF {
	d := &DRF{
		rng:        opts.Rand,
		names:      map[string]int{},
		agents:     map[string]*agent{},
		frameworks: map[string]*framework{},
		roles:      map[string]*role{},
		weights:    map[string]float64{},
	}
	if d.rng == nil {
		d.rng = rand.New(rand.NewPCG(1, 0))
	}
	mins := opts.MinAllocatable
	if mins == nil {
		mins = []resources.Resources{
			{resources.NewScalar(resources.NameCPUs, 0.01)},
			{resources.NewScalar(resources.NameMem, 32)},
		}
	}
	d.minAlloc = make([][]quantity, 0, len(mins))
	for _, alt := range mins {
		q := alt.Quantities()
		qs := make([]quantity, 0, len(q))
		for _, name := range slices.Sorted(maps.Keys(q)) {
			if q[name] > 0 {
				qs = append(qs, quantity{name, q[name]})
			}
		}
		d.minAlloc = append(d.minAlloc, qs)
	}
	return d
}

var _ Allocator = (*DRF)(nil)

// ---- quantities and shares ----

func (d *DRF) nameIndex(name string) int {
	i, ok := d.names[name]
	if !ok {
		i = len(d.nameList)
		d.names[name] = i
		d.nameList = append(d.nameList, name)
	}
	return i
}

// addScalars adds (sign 1) or subtracts (sign -1) the scalar entries of rs
// to the vector v.
func (d *DRF) addScalars(v *[]resources.Scalar, rs resources.Resources, sign int) {
	for i := range rs {
		r := &rs[i]
		if r.Type != resources.TypeScalar {
			continue
		}
		d.addScalar(v, d.nameIndex(r.Name), r.Scalar, sign)
	}
}

func (d *DRF) addScalar(v *[]resources.Scalar, i int, s resources.Scalar, sign int) {
	if i >= len(*v) {
		*v = append(*v, make([]resources.Scalar, i+1-len(*v))...)
	}
	if sign > 0 {
		(*v)[i] = (*v)[i].Add(s)
	} else {
		(*v)[i] = (*v)[i].Sub(s)
	}
}

// share is the dominant share of q: its largest fraction of a cluster
// total.
func (d *DRF) share(q []resources.Scalar) float64 {
	m := 0.0
	for i, v := range q {
		if v <= 0 || i >= len(d.total) || d.total[i] <= 0 {
			continue
		}
		if s := float64(v) / float64(d.total[i]); s > m {
			m = s
		}
	}
	return m
}

func (d *DRF) weight(role string) float64 {
	if w, ok := d.weights[role]; ok {
		return w
	}
	return 1
}

// allocatable reports whether rs reaches the minimum offer size.
func (d *DRF) allocatable(rs resources.Resources) bool {
	if len(rs) == 0 {
		return false
	}
	if len(d.minAlloc) == 0 {
		return true
	}
	for _, alt := range d.minAlloc {
		ok := true
		for _, q := range alt {
			var have resources.Scalar
			for i := range rs {
				if rs[i].Name == q.name {
					have = have.Add(rs[i].Quantity())
				}
			}
			if have < q.amount {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

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

func insertSorted[T keyed](s []T, x T) []T {
	return slices.Insert(s, search(s, x), x)
}

// indexOf finds x in s, by binary search when s is ordered by the keys it
// holds, else by scanning.
func indexOf[T keyed](s []T, x T) int {
	if i := search(s, x); i < len(s) && s[i] == x {
		return i
	}
	return slices.Index(s, x)
}

// fixAt moves s[i], whose key changed, to its place: O(log n) comparisons
// and a copy of the elements it passes.
func fixAt[T keyed](s []T, i int) {
	x := s[i]
	switch {
	case i+1 < len(s) && less(s[i+1], x):
		j := i + 1 + search(s[i+1:], x) // x goes before s[j]
		copy(s[i:j-1], s[i+1:j])
		s[j-1] = x
	case i > 0 && less(x, s[i-1]):
		j := search(s[:i], x) // x goes at j
		copy(s[j+1:i+1], s[j:i])
		s[j] = x
	}
}

func (d *DRF) rekeyFR(fr *frameworkRole) {
	if d.stale {
		return
	}
	i := indexOf(fr.role.frameworks, fr)
	fr.key = d.share(fr.qty)
	fixAt(fr.role.frameworks, i)
}

func (d *DRF) rekeyRole(r *role) {
	if d.stale {
		return
	}
	i := indexOf(d.order, r)
	r.key = d.share(r.qty) / r.weight
	fixAt(d.order, i)
}

// refresh recomputes every share and re-sorts every ordering after the
// cluster totals changed: O(R log R + F log F).
func (d *DRF) refresh() {
	if !d.stale {
		return
	}
	for _, r := range d.order {
		for _, fr := range r.frameworks {
			fr.key = d.share(fr.qty)
		}
		slices.SortFunc(r.frameworks, cmpKeyed[*frameworkRole])
		r.key = d.share(r.qty) / r.weight
	}
	slices.SortFunc(d.order, cmpKeyed[*role])
	d.stale = false
}

// ---- role membership ----

// track returns fw's membership of the role called name, creating it (and
// the role) if needed.
func (d *DRF) track(fw *framework, name string) *frameworkRole {
	if fr := fw.roles[name]; fr != nil {
		return fr
	}
	r := d.roles[name]
	if r == nil {
		r = &role{name: name, weight: d.weight(name)}
		d.roles[name] = r
		d.order = insertSorted(d.order, r)
	}
	fr := &frameworkRole{fw: fw, role: r}
	fw.roles[name] = fr
	r.frameworks = insertSorted(r.frameworks, fr)
	return fr
}

// untrackIfIdle forgets fr once the framework neither subscribes to the
// role nor holds anything allocated to it, and the role once it has no
// frameworks.
func (d *DRF) untrackIfIdle(fr *frameworkRole) {
	if fr.subscribed || fr.agents > 0 || fr.fw.roles[fr.role.name] != fr {
		return
	}
	r := fr.role
	if fr.offerable {
		fr.offerable = false
		r.offerable--
	}
	i := indexOf(r.frameworks, fr)
	r.frameworks = slices.Delete(r.frameworks, i, i+1)
	delete(fr.fw.roles, r.name)
	if len(r.frameworks) == 0 {
		j := indexOf(d.order, r)
		d.order = slices.Delete(d.order, j, j+1)
		delete(d.roles, r.name)
	}
}

func (d *DRF) refreshOfferable(fr *frameworkRole) {
	o := fr.fw.added && fr.fw.active && fr.subscribed && !fr.suppressed
	if o == fr.offerable {
		return
	}
	fr.offerable = o
	if o {
		fr.role.offerable++
	} else {
		fr.role.offerable--
	}
}

// setRoles makes fw subscribe to exactly roles, with suppressed among them
// suppressed. Roles left lose their filters.
func (d *DRF) setRoles(fw *framework, roles, suppressed []string) {
	for name, fr := range fw.roles {
		if fr.subscribed && !slices.Contains(roles, name) {
			fr.subscribed, fr.suppressed = false, false
			d.dropFilters(fw, func(r string) bool { return r == name })
		}
	}
	for _, name := range roles {
		fr := d.track(fw, name)
		fr.subscribed = true
		fr.suppressed = slices.Contains(suppressed, name)
	}
	for _, fr := range fw.roles {
		d.refreshOfferable(fr)
		d.untrackIfIdle(fr)
	}
}

func (d *DRF) refreshFramework(fw *framework) {
	for _, fr := range fw.roles {
		d.refreshOfferable(fr)
	}
}

// ---- allocation bookkeeping ----

// rolesOf returns the distinct allocation roles of rs.
func rolesOf(rs resources.Resources) []string { return appendRoles(nil, rs) }

// appendRoles appends the distinct allocation roles of rs to dst.
func appendRoles(dst []string, rs resources.Resources) []string {
	for i := range rs {
		if !slices.Contains(dst, rs[i].AllocationRole) {
			dst = append(dst, rs[i].AllocationRole)
		}
	}
	return dst
}

// allocateTo returns rs (normalized, unallocated) allocated to role: what
// rs.Allocate(role) returns, by a plain copy, since giving every entry the
// same role keeps them distinct.
func allocateTo(rs resources.Resources, role string) resources.Resources {
	out := slices.Clone(rs)
	for i := range out {
		out[i].AllocationRole = role
	}
	return out
}

// unallocate returns rs (normalized, attributed) without allocation roles:
// a plain copy when rs has a single role, else rs.Unallocated(), which
// merges what the roles kept apart.
func unallocate(rs resources.Resources) resources.Resources {
	if len(rs) == 0 || slices.ContainsFunc(rs[1:], func(r resources.Resource) bool { return r.AllocationRole != rs[0].AllocationRole }) {
		return rs.Unallocated()
	}
	return allocateTo(rs, "")
}

func hasRole(rs resources.Resources, role string) bool {
	for i := range rs {
		if rs[i].AllocationRole == role {
			return true
		}
	}
	return false
}

func ofRole(rs resources.Resources, role string) resources.Resources {
	return rs.Filter(func(r resources.Resource) bool { return r.AllocationRole == role })
}

// charge records rs (every entry attributed to a role) as allocated to fw
// on ag, taking unalloc (rs without allocation roles) from the agent's
// available resources; the caller has checked that it is there. all says
// unalloc is everything available (and may be the available slice itself).
// In a cycle (deferred) the orderings are updated after the agent, by the
// cycle.
//
// An agent's available resources and each allocation are accumulators
// owned by the allocator alone, changed in place; they are never handed out
// without a copy.
func (d *DRF) charge(fw *framework, ag *agent, rs, unalloc resources.Resources, all, deferred bool) {
	a := fw.allocs[ag.id]
	if a == nil {
		a = &allocation{fw: fw, ag: ag}
		fw.allocs[ag.id] = a
		ag.allocs[fw.id] = a
	}
	var buf [4]string
	roles := appendRoles(buf[:0], rs)
	for _, name := range roles {
		fr := d.track(fw, name)
		if !hasRole(a.res, name) {
			fr.agents++
		}
	}
	if a.res == nil {
		a.res = slices.Clone(rs) // never share the caller's slice
	} else {
		a.res.AddInPlace(rs)
	}
	if all {
		clear(ag.available)
		ag.available = ag.available[:0]
	} else {
		ag.available.SubtractInPlace(unalloc)
	}
	for i := range rs {
		r := &rs[i]
		if r.Type != resources.TypeScalar {
			continue
		}
		fr := fw.roles[r.AllocationRole]
		n := d.nameIndex(r.Name)
		d.addScalar(&fr.qty, n, r.Scalar, 1)
		d.addScalar(&fr.role.qty, n, r.Scalar, 1)
	}
	for _, name := range roles {
		fr := fw.roles[name]
		if deferred {
			d.touchedFRs = append(d.touchedFRs, fr)
			d.touchedRoles = append(d.touchedRoles, fr.role)
		} else {
			d.rekeyFR(fr)
			d.rekeyRole(fr.role)
		}
	}
}

// release takes rs (attributed, held by fw on ag) out of the allocation and
// gives it back to the agent; all says rs is the whole allocation (and may
// be the allocation's slice itself).
func (d *DRF) release(fw *framework, ag *agent, rs resources.Resources, all bool) {
	a := fw.allocs[ag.id]
	if all {
		a.res = nil
	} else {
		a.res.SubtractInPlace(rs)
	}
	ag.available.AddInPlace(unallocate(rs))
	for i := range rs {
		r := &rs[i]
		if r.Type != resources.TypeScalar {
			continue
		}
		fr := fw.roles[r.AllocationRole]
		n := d.nameIndex(r.Name)
		d.addScalar(&fr.qty, n, r.Scalar, -1)
		d.addScalar(&fr.role.qty, n, r.Scalar, -1)
	}
	if len(a.res) == 0 {
		delete(fw.allocs, ag.id)
		delete(ag.allocs, fw.id)
	}
	var buf [4]string
	for _, name := range appendRoles(buf[:0], rs) {
		fr := fw.roles[name]
		if !hasRole(a.res, name) {
			fr.agents--
		}
		d.rekeyFR(fr)
		d.rekeyRole(fr.role)
		d.untrackIfIdle(fr)
	}
}

// gcPending forgets a framework known only from agents once it holds
// nothing.
func (d *DRF) gcPending(fw *framework) {
	if !fw.added && len(fw.allocs) == 0 {
		d.forget(fw)
	}
}

// forget removes fw, which holds nothing, from every role.
func (d *DRF) forget(fw *framework) {
	for _, fr := range fw.roles {
		fr.subscribed = false
		d.refreshOfferable(fr)
		d.untrackIfIdle(fr)
	}
	delete(d.frameworks, fw.id)
}

func (d *DRF) dropFilters(fw *framework, match func(role string) bool) {
	for agentID, fs := range fw.filters {
		fs = slices.DeleteFunc(fs, func(f filter) bool { return match(f.role) })
		if len(fs) == 0 {
			delete(fw.filters, agentID)
		} else {
			fw.filters[agentID] = fs
		}
	}
}

// filtered reports whether fw refused, for role on ag, resources containing
// cand in a filter still running at now; it drops expired filters.
func (fw *framework) filtered(agentID, role string, cand resources.Resources, now time.Time) bool {
	fs, ok := fw.filters[agentID]
	if !ok {
		return false
	}
	hit := false
	kept := fs[:0]
	for _, f := range fs {
		if !now.Before(f.expires) {
			continue
		}
		kept = append(kept, f)
		if !hit && f.role == role && f.refused.Contains(cand) {
			hit = true
		}
	}
	if len(kept) < len(fs) {
		clear(fs[len(kept):])
		if len(kept) == 0 {
			delete(fw.filters, agentID)
		} else {
			fw.filters[agentID] = kept
		}
	}
	return hit
}

// addFilter records a refusal, dropping the filters it subsumes and those
// expired.
func (fw *framework) addFilter(agentID string, f filter, now time.Time) {
	fs := slices.DeleteFunc(fw.filters[agentID], func(o filter) bool {
		return !now.Before(o.expires) ||
			(o.role == f.role && !o.expires.After(f.expires) && f.refused.Contains(o.refused))
	})
	if fw.filters == nil {
		fw.filters = map[string][]filter{}
	}
	fw.filters[agentID] = append(fs, f)
}

// ---- validation ----

func validateFramework(f Framework) error {
	if f.ID == "" {
		return fmt.Errorf("%w: framework with an empty ID", ErrInvalid)
	}
	if len(f.Roles) == 0 {
		return fmt.Errorf("%w: framework %q has no roles", ErrInvalid, f.ID)
	}
	for i, r := range f.Roles {
		if err := resources.ValidateRole(r); err != nil {
			return fmt.Errorf("%w: framework %q: %w", ErrInvalid, f.ID, err)
		}
		if slices.Contains(f.Roles[:i], r) {
			return fmt.Errorf("%w: framework %q lists role %q twice", ErrInvalid, f.ID, r)
		}
	}
	for _, r := range f.SuppressedRoles {
		if !slices.Contains(f.Roles, r) {
			return fmt.Errorf("%w: framework %q suppresses role %q it does not subscribe to", ErrInvalid, f.ID, r)
		}
	}
	return nil
}

func validateTotal(agentID string, total resources.Resources) (resources.Resources, error) {
	rs := resources.New(total...)
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("%w: agent %q: %w", ErrInvalid, agentID, err)
	}
	for i := range rs {
		if rs[i].AllocationRole != "" {
			return nil, fmt.Errorf("%w: agent %q: total resource %s is allocated", ErrInvalid, agentID, rs[i])
		}
	}
	return rs, nil
}

// attribute returns rs normalized with every entry's allocation role set,
// giving def to entries without one; it fails when def is empty then, or
// when an entry is reserved to a role it cannot be allocated to.
func attribute(rs resources.Resources, def, what string) (resources.Resources, error) {
	rs = resources.New(rs...)
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	missing := false
	for i := range rs {
		r := &rs[i]
		if r.AllocationRole == "" {
			if def == "" {
				return nil, fmt.Errorf("%w: %s: %s has no allocation role and the framework has no single role", ErrInvalid, what, r)
			}
			missing = true
			continue
		}
		if err := resources.ValidateRole(r.AllocationRole); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
		}
		if !r.IsAllocatableTo(r.AllocationRole) {
			return nil, fmt.Errorf("%w: %s: %s cannot be allocated to role %q", ErrInvalid, what, r, r.AllocationRole)
		}
	}
	if !missing {
		return rs, nil
	}
	out := make(resources.Resources, 0, len(rs))
	for _, r := range rs {
		if r.AllocationRole == "" {
			r.AllocationRole = def
			if !r.IsAllocatableTo(def) {
				return nil, fmt.Errorf("%w: %s: %s cannot be allocated to role %q", ErrInvalid, what, r, def)
			}
		}
		out = append(out, r)
	}
	return resources.New(out...), nil
}

// soleRole is the framework's only subscribed role, or "".
func (fw *framework) soleRole() string {
	only := ""
	for name, fr := range fw.roles {
		if fr.subscribed {
			if only != "" {
				return ""
			}
			only = name
		}
	}
	return only
}

// soleRole is the only allocation role in rs, or "".
func soleRole(rs resources.Resources) string {
	if roles := rolesOf(rs); len(roles) == 1 {
		return roles[0]
	}
	return ""
}

func newFramework(id string) *framework {
	return &framework{id: id, roles: map[string]*frameworkRole{}, allocs: map[string]*allocation{}}
}

func (d *DRF) addedFramework(id string) (*framework, error) {
	fw := d.frameworks[id]
	if fw == nil || !fw.added {
		return nil, fmt.Errorf("%w: %q", ErrUnknownFramework, id)
	}
	return fw, nil
}

// ---- frameworks ----

// AddFramework implements Allocator.
func (d *DRF) AddFramework(f Framework, used map[string]resources.Resources) error {
	if err := validateFramework(f); err != nil {
		return err
	}
	fw := d.frameworks[f.ID]
	if fw != nil && fw.added {
		return fmt.Errorf("%w: framework %q", ErrExists, f.ID)
	}
	def := ""
	if len(f.Roles) == 1 {
		def = f.Roles[0]
	}
	type change struct {
		ag              *agent
		rs, unallocated resources.Resources
	}
	var changes []change
	for _, id := range slices.Sorted(maps.Keys(used)) {
		ag := d.agents[id]
		if ag == nil {
			return fmt.Errorf("%w: %q, used by framework %q", ErrUnknownAgent, id, f.ID)
		}
		rs, err := attribute(used[id], def, fmt.Sprintf("framework %q on agent %q", f.ID, id))
		if err != nil {
			return err
		}
		have := ag.available
		if fw != nil {
			if a := fw.allocs[id]; a != nil {
				have = have.Add(a.res.Unallocated())
			}
		}
		un := rs.Unallocated()
		if !have.Contains(un) {
			return fmt.Errorf("%w: framework %q uses %s on agent %q, which has only %s free",
				ErrOverAllocation, f.ID, rs, id, have)
		}
		changes = append(changes, change{ag, rs, un})
	}
	if fw == nil {
		fw = newFramework(f.ID)
		d.frameworks[f.ID] = fw
	}
	fw.added, fw.active = true, f.Active
	d.setRoles(fw, f.Roles, f.SuppressedRoles)
	for _, c := range changes {
		if a := fw.allocs[c.ag.id]; a != nil {
			d.release(fw, c.ag, a.res, true)
		}
		if len(c.rs) > 0 {
			d.charge(fw, c.ag, c.rs, c.unallocated, false, false)
		}
	}
	return nil
}

// UpdateFramework implements Allocator.
func (d *DRF) UpdateFramework(f Framework) error {
	if err := validateFramework(f); err != nil {
		return err
	}
	fw, err := d.addedFramework(f.ID)
	if err != nil {
		return err
	}
	if fw.active && !f.Active {
		fw.filters = nil
	}
	fw.active = f.Active
	d.setRoles(fw, f.Roles, f.SuppressedRoles)
	return nil
}

// RemoveFramework implements Allocator.
func (d *DRF) RemoveFramework(frameworkID string) error {
	fw := d.frameworks[frameworkID]
	if fw == nil {
		return fmt.Errorf("%w: %q", ErrUnknownFramework, frameworkID)
	}
	for _, agentID := range slices.Sorted(maps.Keys(fw.allocs)) {
		d.release(fw, d.agents[agentID], fw.allocs[agentID].res, true)
	}
	d.forget(fw)
	return nil
}

// ActivateFramework implements Allocator.
func (d *DRF) ActivateFramework(frameworkID string) error {
	fw, err := d.addedFramework(frameworkID)
	if err != nil {
		return err
	}
	fw.active = true
	d.refreshFramework(fw)
	return nil
}

// DeactivateFramework implements Allocator.
func (d *DRF) DeactivateFramework(frameworkID string) error {
	fw, err := d.addedFramework(frameworkID)
	if err != nil {
		return err
	}
	fw.active = false
	fw.filters = nil
	d.refreshFramework(fw)
	return nil
}

// ---- agents ----

// AddAgent implements Allocator.
func (d *DRF) AddAgent(a Agent, used map[string]resources.Resources) error {
	if a.ID == "" {
		return fmt.Errorf("%w: agent with an empty ID", ErrInvalid)
	}
	if d.agents[a.ID] != nil {
		return fmt.Errorf("%w: agent %q", ErrExists, a.ID)
	}
	total, err := validateTotal(a.ID, a.Total)
	if err != nil {
		return err
	}
	type change struct {
		fwID            string
		rs, unallocated resources.Resources
	}
	var changes []change
	var sum resources.Resources
	for _, id := range slices.Sorted(maps.Keys(used)) {
		if id == "" {
			return fmt.Errorf("%w: agent %q: used resources of a framework with an empty ID", ErrInvalid, a.ID)
		}
		def := ""
		if fw := d.frameworks[id]; fw != nil && fw.added {
			def = fw.soleRole()
		}
		rs, err := attribute(used[id], def, fmt.Sprintf("framework %q on agent %q", id, a.ID))
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			continue
		}
		un := rs.Unallocated()
		sum = sum.Add(un)
		changes = append(changes, change{id, rs, un})
	}
	if !total.Contains(sum) {
		return fmt.Errorf("%w: agent %q has %s but its frameworks use %s", ErrOverAllocation, a.ID, total, sum)
	}
	ag := &agent{
		id: a.ID, hostname: a.Hostname, total: total, available: slices.Clone(total),
		allocs: map[string]*allocation{}, pos: len(d.agentList),
	}
	d.agents[a.ID] = ag
	d.agentList = append(d.agentList, ag)
	d.addScalars(&d.total, total, 1)
	d.stale = true
	for _, c := range changes {
		fw := d.frameworks[c.fwID]
		if fw == nil {
			fw = newFramework(c.fwID)
			d.frameworks[c.fwID] = fw
		}
		d.charge(fw, ag, c.rs, c.unallocated, false, false)
	}
	return nil
}

// allocated is the sum of the agent's allocations, unallocated, summed in
// framework order so that the result is deterministic.
func (ag *agent) allocated() resources.Resources {
	var sum resources.Resources
	for _, id := range slices.Sorted(maps.Keys(ag.allocs)) {
		sum = sum.Add(ag.allocs[id].res.Unallocated())
	}
	return sum
}

// UpdateAgent implements Allocator.
func (d *DRF) UpdateAgent(agentID string, total resources.Resources) error {
	ag := d.agents[agentID]
	if ag == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	total, err := validateTotal(agentID, total)
	if err != nil {
		return err
	}
	allocated := ag.allocated()
	if !total.Contains(allocated) {
		return fmt.Errorf("%w: agent %q: new total %s does not hold what is allocated, %s",
			ErrOverAllocation, agentID, total, allocated)
	}
	d.addScalars(&d.total, ag.total, -1)
	d.addScalars(&d.total, total, 1)
	ag.total = total
	ag.available = total.Subtract(allocated)
	d.stale = true
	return nil
}

// RemoveAgent implements Allocator.
func (d *DRF) RemoveAgent(agentID string) error {
	ag := d.agents[agentID]
	if ag == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	for _, id := range slices.Sorted(maps.Keys(ag.allocs)) {
		fw := ag.allocs[id].fw
		d.release(fw, ag, ag.allocs[id].res, true)
		d.gcPending(fw)
	}
	for _, fw := range d.frameworks {
		delete(fw.filters, agentID)
	}
	last := d.agentList[len(d.agentList)-1]
	d.agentList[ag.pos] = last
	last.pos = ag.pos
	d.agentList[len(d.agentList)-1] = nil
	d.agentList = d.agentList[:len(d.agentList)-1]
	delete(d.agents, agentID)
	d.addScalars(&d.total, ag.total, -1)
	d.stale = true
	return nil
}

// ---- recovery, suppression, weights ----

// Recover implements Allocator.
func (d *DRF) Recover(frameworkID, agentID string, rs resources.Resources, refuse time.Duration, now time.Time) error {
	fw := d.frameworks[frameworkID]
	if fw == nil {
		return fmt.Errorf("%w: %q", ErrUnknownFramework, frameworkID)
	}
	ag := d.agents[agentID]
	if ag == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	if resources.New(rs...).Empty() {
		return nil
	}
	a := fw.allocs[agentID]
	def := ""
	if a != nil {
		def = soleRole(a.res)
	}
	rs, err := attribute(rs, def, fmt.Sprintf("framework %q on agent %q", frameworkID, agentID))
	if err != nil {
		return err
	}
	if a == nil || !a.res.Contains(rs) {
		var held resources.Resources
		if a != nil {
			held = a.res
		}
		return fmt.Errorf("%w: framework %q holds %s on agent %q, not %s",
			ErrOverAllocation, frameworkID, held, agentID, rs)
	}
	d.release(fw, ag, rs, false) // rs is attribute's fresh copy
	if refuse > 0 && fw.added {
		expires := now.Add(min(refuse, MaxRefuse))
		for _, name := range rolesOf(rs) {
			if fr := fw.roles[name]; fr != nil && fr.subscribed {
				fw.addFilter(agentID, filter{role: name, refused: unallocate(ofRole(rs, name)), expires: expires}, now)
			}
		}
	}
	d.gcPending(fw)
	return nil
}

// subscribed returns roles, or all of fw's subscribed roles when roles is
// empty, checking that fw subscribes to each.
func (fw *framework) subscribed(roles []string) ([]*frameworkRole, error) {
	var out []*frameworkRole
	if len(roles) == 0 {
		for _, fr := range fw.roles {
			if fr.subscribed {
				out = append(out, fr)
			}
		}
		return out, nil
	}
	for _, name := range roles {
		fr := fw.roles[name]
		if fr == nil || !fr.subscribed {
			return nil, fmt.Errorf("%w: framework %q does not subscribe to role %q", ErrInvalid, fw.id, name)
		}
		out = append(out, fr)
	}
	return out, nil
}

// Suppress implements Allocator.
func (d *DRF) Suppress(frameworkID string, roles ...string) error {
	fw, err := d.addedFramework(frameworkID)
	if err != nil {
		return err
	}
	frs, err := fw.subscribed(roles)
	if err != nil {
		return err
	}
	for _, fr := range frs {
		fr.suppressed = true
		d.refreshOfferable(fr)
	}
	return nil
}

// Revive implements Allocator.
func (d *DRF) Revive(frameworkID string, roles ...string) error {
	fw, err := d.addedFramework(frameworkID)
	if err != nil {
		return err
	}
	frs, err := fw.subscribed(roles)
	if err != nil {
		return err
	}
	for _, fr := range frs {
		fr.suppressed = false
		d.refreshOfferable(fr)
	}
	d.dropFilters(fw, func(role string) bool {
		return slices.ContainsFunc(frs, func(fr *frameworkRole) bool { return fr.role.name == role })
	})
	return nil
}

// SetWeight implements Allocator.
func (d *DRF) SetWeight(role string, weight float64) error {
	if err := resources.ValidateRole(role); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !(weight > 0) || math.IsInf(weight, 0) {
		return fmt.Errorf("%w: weight %v for role %q is not a positive finite number", ErrInvalid, weight, role)
	}
	d.weights[role] = weight
	if r := d.roles[role]; r != nil {
		r.weight = weight
		d.rekeyRole(r)
	}
	return nil
}

// ---- cycles ----

// Allocate implements Allocator.
func (d *DRF) Allocate(now time.Time) []Offer {
	d.scratch = append(d.scratch[:0], d.agentList...)
	return d.cycle(now, d.scratch)
}

// AllocateAgents implements Allocator.
func (d *DRF) AllocateAgents(now time.Time, agentIDs ...string) []Offer {
	d.scratch = d.scratch[:0]
	d.visit++
	for _, id := range agentIDs {
		if ag := d.agents[id]; ag != nil && ag.visit != d.visit {
			ag.visit = d.visit
			d.scratch = append(d.scratch, ag)
		}
	}
	return d.cycle(now, d.scratch)
}

// cycle offers the free resources of agents, visited in random order. See
// the package documentation for what it costs.
func (d *DRF) cycle(now time.Time, agents []*agent) []Offer {
	d.refresh()
	d.rng.Shuffle(len(agents), func(i, j int) { agents[i], agents[j] = agents[j], agents[i] })
	var offers []Offer
	for _, ag := range agents {
		if !d.allocatable(ag.available) {
			continue // no part of it can make an offer
		}
		// Without reservations, every role may use everything free.
		unreserved := !slices.ContainsFunc(ag.available, resources.Resource.IsReserved)
		for _, r := range d.order {
			if len(ag.available) == 0 {
				break
			}
			if r.offerable == 0 {
				continue
			}
			var cand resources.Resources
			computed := false
			for _, fr := range r.frameworks {
				if !fr.offerable {
					continue
				}
				if !computed {
					computed = true
					if unreserved {
						cand = ag.available
					} else {
						cand = ag.available.AllocatableTo(r.name)
					}
					if !d.allocatable(cand) {
						break
					}
				}
				if fr.fw.filtered(ag.id, r.name, cand, now) {
					continue
				}
				rs := allocateTo(cand, r.name)
				d.charge(fr.fw, ag, rs, cand, unreserved, true)
				offers = append(offers, Offer{FrameworkID: fr.fw.id, AgentID: ag.id, Role: r.name, Resources: rs})
				break // the role may use nothing more on this agent
			}
		}
		// Each role and framework got at most one offer on this agent and
		// the others' shares did not change, so repositioning them now
		// gives every later agent the order it would see had we done it
		// after each offer.
		for _, fr := range d.touchedFRs {
			d.rekeyFR(fr)
		}
		for _, r := range d.touchedRoles {
			d.rekeyRole(r)
		}
		clear(d.touchedFRs)
		clear(d.touchedRoles)
		d.touchedFRs, d.touchedRoles = d.touchedFRs[:0], d.touchedRoles[:0]
	}
	clear(agents)
	return offers
}

// ---- introspection ----

// Allocation implements Allocator.
func (d *DRF) Allocation(frameworkID string) map[string]resources.Resources {
	fw := d.frameworks[frameworkID]
	if fw == nil {
		return nil
	}
	out := make(map[string]resources.Resources, len(fw.allocs))
	for id, a := range fw.allocs {
		out[id] = slices.Clone(a.res)
	}
	return out
}

// Available implements Allocator.
func (d *DRF) Available(agentID string) resources.Resources {
	ag := d.agents[agentID]
	if ag == nil {
		return nil
	}
	return slices.Clone(ag.available)
}

// Roles implements Allocator.
func (d *DRF) Roles() []RoleInfo {
	names := slices.Collect(maps.Keys(d.roles))
	for name := range d.weights {
		if d.roles[name] == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]RoleInfo, 0, len(names))
	for _, name := range names {
		info := RoleInfo{Name: name, Weight: d.weight(name), Allocated: map[string]resources.Scalar{}}
		if r := d.roles[name]; r != nil {
			for i, v := range r.qty {
				if v != 0 {
					info.Allocated[d.nameList[i]] = v
				}
			}
			info.Share = d.share(r.qty) / r.weight
			for _, fr := range r.frameworks {
				info.Frameworks = append(info.Frameworks, fr.fw.id)
			}
			slices.Sort(info.Frameworks)
		}
		out = append(out, info)
	}
	return out
}

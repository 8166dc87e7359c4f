package allocator

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/apronhq/apron/resources"
)

// Sorter chooses the order in which a cycle walks the roles of the tree and
// the frameworks of each role.
type Sorter int

const (
	// SorterDRF walks them by ascending weighted dominant share, Mesos's
	// "drf" sorter (the default).
	SorterDRF Sorter = iota
	// SorterRandom walks them in a random order drawn afresh for every
	// agent: among siblings, each is next with a probability proportional
	// to its weight (a role's own frameworks, taken together, weighing 1),
	// and the frameworks of a role are shuffled. It is Mesos's "random"
	// sorter, an answer to DRF starving frameworks whose tasks are large.
	SorterRandom
)

// Options configures a DRF allocator.
type Options struct {
	// Rand orders the agents of each cycle (and everything else with
	// SorterRandom). Default: a source seeded 1, so that an allocator is
	// deterministic unless told otherwise.
	Rand *rand.Rand
	// MinAllocatable lists alternative minimum offer sizes, as Mesos's
	// --min_allocatable_resources flag ("cpus:0.01|mem:32"): a framework is
	// offered the resources it may use on an agent only if their quantities
	// reach every quantity of at least one alternative, whatever the
	// reservations. nil means Mesos's default, cpus:0.01 or mem:32; an
	// empty, non-nil slice means any non-empty offer is made. A framework
	// may replace it for its offers of a role (Framework.MinAllocatable).
	MinAllocatable []resources.Resources
	// Sorter orders roles and frameworks; SorterDRF by default.
	Sorter Sorter
}

// quantity is an amount of a named resource, scalar or counted.
type quantity struct {
	name   string
	amount resources.Scalar
}

// DRF is Mesos's hierarchical allocator: weighted Dominant Resource
// Fairness over a tree of roles, with quotas, reservations and refusal
// filters; see the package documentation. Create it with NewDRF. Like
// every Allocator, it is owned by one goroutine.
type DRF struct {
	rng      *rand.Rand
	sorter   Sorter
	minAlloc [][]quantity

	// names interns scalar resource names; quantity vectors ([]Scalar) are
	// indexed by them.
	names    map[string]int
	nameList []string
	total    []resources.Scalar // scalar totals of every agent, by name index

	agents     map[string]*agent
	agentList  []*agent // the order cycles shuffle; agent.pos indexes it
	frameworks map[string]*framework
	root       *role            // the role tree's root, named ""
	roles      map[string]*role // every other node of the tree, by path
	weights    map[string]float64

	// frs indexes every framework role by its idx, so that an agent's
	// filter bits lead back to them; freeIdx are the indexes free for
	// reuse.
	frs     []*frameworkRole
	freeIdx []int
	// customMins counts framework roles with their own minimum offer size.
	customMins int

	quota quotaBook

	// stale means the cluster totals changed since keys were computed:
	// every share must be recomputed and every ordering re-sorted before
	// the next cycle. While stale, keys are not maintained.
	stale bool
	visit uint64 // counts AllocateAgents calls

	// epoch numbers the entries of eligibleLog, the framework roles that
	// may have become eligible for offers they were not (see cycle.go).
	epoch       uint64
	eligibleLog []logEntry

	cycleState
}

type agent struct {
	id, hostname string
	total        resources.Resources
	available    resources.Resources        // total minus every allocation, unallocated
	allocs       map[*framework]*allocation // by framework
	pos          int
	visit        uint64 // the last AllocateAgents call that listed the agent
	active       bool
	// version counts the changes of available (from 1), so that facts
	// derived from it can be cached.
	version uint64

	filters agentFilters
	idle    idleState
}

// allocation is what one framework holds on one agent, with each entry's
// allocation role set. It is shared by the framework and the agent.
type allocation struct {
	fw  *framework
	ag  *agent
	res resources.Resources
	// shared says res is also the slice of an offer handed out: it is
	// copied before being changed in place (most offers are declined or
	// used whole, and never need the copy).
	shared bool
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
	roles  map[string]*frameworkRole
	allocs map[*agent]*allocation
	// mins are the framework's own minimum offer sizes, by role.
	mins map[string][][]quantity
}

// frameworkRole is a framework as a member of one role.
type frameworkRole struct {
	fw         *framework
	role       *role
	idx        int // in DRF.frs
	subscribed bool
	suppressed bool
	offerable  bool // added, active, subscribed and not suppressed
	agents     int  // agents where the framework holds resources of this role
	qty        []resources.Scalar
	key        float64 // dominant share of qty, as positioned in role.frameworks
	// mins, when hasMins, replaces the allocator's minimum offer size.
	mins    [][]quantity
	hasMins bool
	// filters are the framework's refusal filters for the role, by agent.
	filters filterMap
}

// NewDRF returns an empty allocator.
func NewDRF(opts Options) *DRF {
	d := &DRF{
		rng:        opts.Rand,
		sorter:     opts.Sorter,
		names:      map[string]int{},
		agents:     map[string]*agent{},
		frameworks: map[string]*framework{},
		root:       &role{weight: 1},
		roles:      map[string]*role{},
		weights:    map[string]float64{},
	}
	d.quota.init()
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
		d.minAlloc = append(d.minAlloc, quantitiesOf(alt.Quantities()))
	}
	return d
}

var _ Allocator = (*DRF)(nil)

// quantitiesOf lists the positive amounts of q, sorted by name.
func quantitiesOf(q map[string]resources.Scalar) []quantity {
	qs := make([]quantity, 0, len(q))
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if q[name] > 0 {
			qs = append(qs, quantity{name, q[name]})
		}
	}
	return qs
}

// ---- quantities and shares ----

func (d *DRF) nameIndex(name string) int {
	if len(d.nameList) <= 8 {
		// A cluster knows a handful of scalar names: comparing them beats
		// hashing.
		for i, n := range d.nameList {
			if n == name {
				return i
			}
		}
	}
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
		addScalar(v, d.nameIndex(r.Name), r.Scalar, sign)
	}
}

func addScalar(v *[]resources.Scalar, i int, s resources.Scalar, sign int) {
	if i >= len(*v) {
		*v = append(*v, make([]resources.Scalar, i+1-len(*v))...)
	}
	if sign > 0 {
		(*v)[i] = (*v)[i].Add(s)
	} else {
		(*v)[i] = (*v)[i].Sub(s)
	}
}

// at is v[i], or 0 past its end.
func at(v []resources.Scalar, i int) resources.Scalar {
	if i < len(v) {
		return v[i]
	}
	return 0
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

// allocatable reports whether rs reaches the minimum offer size mins (one
// of its alternatives); no alternative at all means any non-empty rs.
func allocatable(rs resources.Resources, mins [][]quantity) bool {
	if len(rs) == 0 {
		return false
	}
	if len(mins) == 0 {
		return true
	}
	for _, alt := range mins {
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

// allocatableFor reports whether rs reaches fr's minimum offer size.
func (d *DRF) allocatableFor(fr *frameworkRole, rs resources.Resources) bool {
	if fr.hasMins {
		return allocatable(rs, fr.mins)
	}
	return allocatable(rs, d.minAlloc)
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

// counted reports whether a resource counts toward quotas: an unreserved,
// non-revocable scalar (reservations count for their role whole, allocated
// or not).
func counted(r *resources.Resource) bool {
	return r.Type == resources.TypeScalar && len(r.Reservations) == 0 && !r.Revocable
}

// account adds (sign 1) or subtracts the scalar entries of rs, each
// attributed to one of fw's tracked roles, to the quantities of fw's roles
// and of the role tree.
func (d *DRF) account(fw *framework, rs resources.Resources, sign int) {
	for i := range rs {
		r := &rs[i]
		if r.Type != resources.TypeScalar {
			continue
		}
		fr := fw.roles[r.AllocationRole]
		n := d.nameIndex(r.Name)
		addScalar(&fr.qty, n, r.Scalar, sign)
		addScalar(&fr.role.ownQty, n, r.Scalar, sign)
		c := counted(r)
		for a := fr.role; a != d.root; a = a.parent {
			addScalar(&a.qty, n, r.Scalar, sign)
			if c {
				addScalar(&a.quotaQty, n, r.Scalar, sign)
			}
		}
		if c {
			d.quota.consume(d, fr.role, n)
		}
	}
}

// charge records rs (every entry attributed to a role) as allocated to fw
// on ag, taking unalloc (rs without allocation roles) from the agent's
// available resources; the caller has checked that it is there. all says
// rs is everything available: its slice may be the available slice itself,
// handed over.
// In a cycle (deferred) the orderings are updated after the agent, by the
// cycle.
//
// An agent's available resources and each allocation are accumulators
// owned by the allocator alone, changed in place; they are never handed out
// without a copy.
func (d *DRF) charge(fw *framework, ag *agent, rs, unalloc resources.Resources, all, deferred bool) {
	a := fw.allocs[ag]
	if a == nil {
		a = &allocation{fw: fw, ag: ag}
		fw.allocs[ag] = a
		ag.allocs[fw] = a
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
		a.res, a.shared = rs, true
	} else {
		a.own()
		a.res.AddInPlace(rs)
	}
	if ag.active {
		d.quota.addFree(d, unalloc, -1)
	}
	if all {
		ag.available = nil
	} else {
		ag.available.SubtractInPlace(unalloc)
	}
	ag.version++ // available shrank: an idle agent stays idle
	d.account(fw, rs, 1)
	for _, name := range roles {
		fr := fw.roles[name]
		if deferred {
			d.touchedFRs = append(d.touchedFRs, fr)
		} else {
			d.rekeyFR(fr)
			d.rekeyRole(fr.role)
		}
	}
}

// own makes the allocation's slice its own, to change it in place.
func (a *allocation) own() {
	if a.shared {
		a.res, a.shared = slices.Clone(a.res), false
	}
}

// release takes rs (attributed, held by fw on ag) out of the allocation and
// gives it back to the agent; all says rs is the whole allocation (and may
// be the allocation's slice itself). un is rs unallocated, or nil; owned
// says nothing else holds it, so that an agent with nothing free can take
// it as it is.
func (d *DRF) release(fw *framework, ag *agent, rs, un resources.Resources, owned, all bool) {
	a := fw.allocs[ag]
	if un == nil {
		un, owned = unallocate(rs), true
	}
	switch {
	case all || (len(rs) == len(a.res) && rs.Contains(a.res)):
		a.res, a.shared = nil, false
	default:
		a.own()
		a.res.SubtractInPlace(rs)
	}
	if len(ag.available) == 0 && owned {
		ag.available = un
	} else {
		ag.available.AddInPlace(un)
	}
	ag.version++
	if ag.active {
		d.quota.addFree(d, un, 1)
	}
	d.grown(ag)
	d.account(fw, rs, -1)
	if len(a.res) == 0 {
		delete(fw.allocs, ag)
		delete(ag.allocs, fw)
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
	for _, name := range slices.Sorted(maps.Keys(fw.roles)) {
		fr := fw.roles[name]
		fr.subscribed = false
		d.refreshOfferable(fr)
		d.untrackIfIdle(fr)
	}
	delete(d.frameworks, fw.id)
}

// ---- validation ----

func validateFramework(f Framework) (map[string][][]quantity, error) {
	if f.ID == "" {
		return nil, fmt.Errorf("%w: framework with an empty ID", ErrInvalid)
	}
	if len(f.Roles) == 0 {
		return nil, fmt.Errorf("%w: framework %q has no roles", ErrInvalid, f.ID)
	}
	for i, r := range f.Roles {
		if err := resources.ValidateRole(r); err != nil {
			return nil, fmt.Errorf("%w: framework %q: %w", ErrInvalid, f.ID, err)
		}
		if slices.Contains(f.Roles[:i], r) {
			return nil, fmt.Errorf("%w: framework %q lists role %q twice", ErrInvalid, f.ID, r)
		}
	}
	for _, r := range f.SuppressedRoles {
		if !slices.Contains(f.Roles, r) {
			return nil, fmt.Errorf("%w: framework %q suppresses role %q it does not subscribe to", ErrInvalid, f.ID, r)
		}
	}
	var mins map[string][][]quantity
	for _, role := range slices.Sorted(maps.Keys(f.MinAllocatable)) {
		if !slices.Contains(f.Roles, role) {
			return nil, fmt.Errorf("%w: framework %q sets a minimum offer size for role %q it does not subscribe to", ErrInvalid, f.ID, role)
		}
		alts := make([][]quantity, 0, len(f.MinAllocatable[role]))
		for _, q := range f.MinAllocatable[role] {
			if err := validateQuantities(q); err != nil {
				return nil, fmt.Errorf("%w: framework %q: minimum offer size for role %q: %w", ErrInvalid, f.ID, role, err)
			}
			alts = append(alts, quantitiesOf(q))
		}
		if mins == nil {
			mins = map[string][][]quantity{}
		}
		mins[role] = alts
	}
	return mins, nil
}

func validateQuantities(q Quantities) error {
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if name == "" {
			return fmt.Errorf("a resource without a name")
		}
		if v := q[name]; v < 0 || v > resources.MaxScalar {
			return fmt.Errorf("%s: %s is out of range", name, v)
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

// where names, for error messages, the framework and agent resources are
// attributed to; it is formatted only when there is an error.
type where struct{ framework, agent string }

func (w where) String() string { return fmt.Sprintf("framework %q on agent %q", w.framework, w.agent) }

// attribute returns rs normalized with every entry's allocation role set,
// giving def to entries without one; it fails when def is empty then, or
// when an entry is reserved to a role it cannot be allocated to.
func attribute(rs resources.Resources, def string, what where) (resources.Resources, error) {
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

// holds checks that allocation a (nil when there is none) of the framework
// on the agent holds rs.
func holds(a *allocation, frameworkID, agentID string, rs resources.Resources) error {
	if a != nil && a.res.Contains(rs) {
		return nil
	}
	var held resources.Resources
	if a != nil {
		held = a.res
	}
	return fmt.Errorf("%w: framework %q holds %s on agent %q, not %s",
		ErrOverAllocation, frameworkID, held, agentID, rs)
}

// soleRole is the only allocation role in rs, or "".
func soleRole(rs resources.Resources) string {
	if len(rs) == 0 {
		return ""
	}
	for i := range rs[1:] {
		if rs[i+1].AllocationRole != rs[0].AllocationRole {
			return ""
		}
	}
	return rs[0].AllocationRole
}

func newFramework(id string) *framework {
	return &framework{id: id, roles: map[string]*frameworkRole{}, allocs: map[*agent]*allocation{}}
}

// sortedAllocs lists the framework's allocations by agent ID.
func (fw *framework) sortedAllocs() []*allocation {
	out := slices.Collect(maps.Values(fw.allocs))
	slices.SortFunc(out, func(a, b *allocation) int { return strings.Compare(a.ag.id, b.ag.id) })
	return out
}

// sortedAllocs lists the agent's allocations by framework ID.
func (ag *agent) sortedAllocs() []*allocation {
	out := slices.Collect(maps.Values(ag.allocs))
	slices.SortFunc(out, func(a, b *allocation) int { return strings.Compare(a.fw.id, b.fw.id) })
	return out
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
	mins, err := validateFramework(f)
	if err != nil {
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
		rs, err := attribute(used[id], def, where{f.ID, id})
		if err != nil {
			return err
		}
		have := ag.available
		if fw != nil {
			if a := fw.allocs[ag]; a != nil {
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
	fw.added, fw.active, fw.mins = true, f.Active, mins
	d.setRoles(fw, f.Roles, f.SuppressedRoles)
	for _, c := range changes {
		if a := fw.allocs[c.ag]; a != nil {
			d.release(fw, c.ag, a.res, nil, false, true)
		}
		if len(c.rs) > 0 {
			d.charge(fw, c.ag, c.rs, c.unallocated, false, false)
		}
	}
	return nil
}

// UpdateFramework implements Allocator.
func (d *DRF) UpdateFramework(f Framework) error {
	mins, err := validateFramework(f)
	if err != nil {
		return err
	}
	fw, err := d.addedFramework(f.ID)
	if err != nil {
		return err
	}
	if fw.active && !f.Active {
		d.dropFrameworkFilters(fw)
	}
	fw.active, fw.mins = f.Active, mins
	d.setRoles(fw, f.Roles, f.SuppressedRoles)
	for _, fr := range fw.roles {
		if fr.offerable {
			d.logEligible(fr) // its minimum offer size may have shrunk
		}
	}
	return nil
}

// RemoveFramework implements Allocator.
func (d *DRF) RemoveFramework(frameworkID string) error {
	fw := d.frameworks[frameworkID]
	if fw == nil {
		return fmt.Errorf("%w: %q", ErrUnknownFramework, frameworkID)
	}
	for _, a := range fw.sortedAllocs() {
		d.release(fw, a.ag, a.res, nil, false, true)
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
	d.dropFrameworkFilters(fw)
	d.refreshFramework(fw)
	return nil
}

func (d *DRF) dropFrameworkFilters(fw *framework) {
	for _, fr := range fw.roles {
		d.dropFilters(fr)
	}
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
		rs, err := attribute(used[id], def, where{id, a.ID})
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
		allocs: map[*framework]*allocation{}, pos: len(d.agentList), active: true, version: 1,
	}
	d.agents[a.ID] = ag
	d.agentList = append(d.agentList, ag)
	d.addScalars(&d.total, total, 1)
	d.quota.addReserved(d, total, 1)
	d.quota.addFree(d, total, 1)
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
	for _, a := range ag.sortedAllocs() {
		sum = sum.Add(a.res.Unallocated())
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
	d.quota.addReserved(d, ag.total, -1)
	d.quota.addReserved(d, total, 1)
	if ag.active {
		d.quota.addFree(d, ag.available, -1)
	}
	ag.total = total
	ag.available = total.Subtract(allocated)
	ag.version++
	if ag.active {
		d.quota.addFree(d, ag.available, 1)
	}
	ag.idle = idleState{}
	d.stale = true
	return nil
}

// RemoveAgent implements Allocator.
func (d *DRF) RemoveAgent(agentID string) error {
	ag := d.agents[agentID]
	if ag == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	for _, a := range ag.sortedAllocs() {
		d.release(a.fw, ag, a.res, nil, false, true)
		d.gcPending(a.fw)
	}
	d.dropAgentFilters(ag)
	if ag.active {
		d.quota.addFree(d, ag.available, -1)
	}
	d.quota.addReserved(d, ag.total, -1)
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

// ActivateAgent implements Allocator.
func (d *DRF) ActivateAgent(agentID string) error {
	ag := d.agents[agentID]
	if ag == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	if !ag.active {
		ag.active = true
		ag.idle = idleState{}
		d.quota.addFree(d, ag.available, 1)
	}
	return nil
}

// DeactivateAgent implements Allocator.
func (d *DRF) DeactivateAgent(agentID string) error {
	ag := d.agents[agentID]
	if ag == nil {
		return fmt.Errorf("%w: %q", ErrUnknownAgent, agentID)
	}
	if ag.active {
		ag.active = false
		d.quota.addFree(d, ag.available, -1)
	}
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
	a := fw.allocs[ag]
	def := ""
	if a != nil {
		def = soleRole(a.res)
	}
	rs, err := attribute(rs, def, where{frameworkID, agentID})
	if err != nil {
		return err
	}
	if err := holds(a, frameworkID, agentID, rs); err != nil {
		return err
	}
	un := unallocate(rs)
	owned := true // un is held by nothing else
	if refuse > 0 && fw.added {
		expires := stampOf(now.Add(min(refuse, MaxRefuse)))
		roles := rolesOf(rs)
		for _, name := range roles {
			fr := fw.roles[name]
			if fr == nil || !fr.subscribed {
				continue
			}
			refused := un
			if len(roles) > 1 {
				refused = unallocate(ofRole(rs, name))
			}
			if same(d.addFilter(fr, ag, refused, expires, stampOf(now)), un) {
				owned = false // the filter keeps it, unchanged
			}
		}
	}
	d.release(fw, ag, rs, un, owned, false) // rs is attribute's fresh copy
	d.gcPending(fw)
	return nil
}

// subscribed returns roles, or all of fw's subscribed roles when roles is
// empty, checking that fw subscribes to each.
func (fw *framework) subscribed(roles []string) ([]*frameworkRole, error) {
	var out []*frameworkRole
	if len(roles) == 0 {
		for _, name := range slices.Sorted(maps.Keys(fw.roles)) {
			if fr := fw.roles[name]; fr.subscribed {
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

// Revive implements Allocator. It costs O(the framework's filters for the
// roles revived), whatever the size of the cluster.
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
		hadFilters := fr.filters.len() > 0
		d.dropFilters(fr)
		if !d.refreshOfferable(fr) && fr.offerable && hadFilters {
			d.logEligible(fr)
		}
	}
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

// ---- introspection ----

// Allocation implements Allocator.
func (d *DRF) Allocation(frameworkID string) map[string]resources.Resources {
	fw := d.frameworks[frameworkID]
	if fw == nil {
		return nil
	}
	out := make(map[string]resources.Resources, len(fw.allocs))
	for ag, a := range fw.allocs {
		out[ag.id] = slices.Clone(a.res)
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
	set := map[string]bool{}
	for name := range d.roles {
		set[name] = true
	}
	for name := range d.weights {
		set[name] = true
	}
	for name := range d.quota.set {
		set[name] = true
	}
	// Roles with reservations, as Mesos's Master::knownRoles() lists
	// them: an operator's reservation for a role no framework uses yet is
	// still the role's (its ancestors come with it, from the book).
	for name, v := range d.quota.reserved {
		if slices.ContainsFunc(v, func(s resources.Scalar) bool { return s != 0 }) {
			set[name] = true
		}
	}
	for name := range set {
		for p := parentOf(name); p != ""; p = parentOf(p) {
			set[p] = true
		}
	}
	names := slices.Sorted(maps.Keys(set))
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
			r.frameworks.each(func(fr *frameworkRole) bool {
				info.Frameworks = append(info.Frameworks, fr.fw.id)
				return true
			})
			slices.Sort(info.Frameworks)
		}
		if q := d.quota.set[name]; q != nil {
			info.Quota = q.spec.clone()
		}
		info.Consumed = Quantities{}
		for i, v := range d.quota.consumed(d, name) {
			if v != 0 {
				info.Consumed[d.nameList[i]] = v
			}
		}
		out = append(out, info)
	}
	return out
}

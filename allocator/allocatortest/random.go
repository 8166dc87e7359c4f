package allocatortest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/resources"
)

// The random test drives an allocator with seeded random operations and
// checks it, after every one, against a model of the contract: what is
// allocated where, what is free, which filters run, what each role
// consumes of its quota. Offers are checked for safety (only to active,
// unsuppressed frameworks of a subscribed role, only on active agents, only
// resources free and allowed to the role, never what a running filter
// covers, never beyond a quota limit) and cycles for work conservation
// (afterwards, no visited active agent has cpus or mem an eligible
// framework could be offered within the limits and the headroom the
// guarantees need). Conversions (UpdateAllocation) reserve and unreserve
// allocated and free resources dynamically in between. Every amount is
// whole cpus or a multiple of 256 MB, so
// anything non-empty passes Mesos's minimum offer size.

// The roles form a tree: eng/ml and eng/data under eng.
var (
	modelRoles = []string{"web", "batch", "eng", "eng/ml", "eng/data"}
	quotaRoles = []string{"batch", "eng", "eng/ml"}
)

type mAgent struct {
	total, avail resources.Resources
	allocs       map[string]resources.Resources // by framework, allocated
	inactive     bool
}

type mFilter struct {
	agent, role string
	refused     resources.Resources
	expires     time.Time
}

type mFramework struct {
	added, active bool
	roles         []string
	suppressed    map[string]bool
	filters       []mFilter
}

type model struct {
	t       *testing.T
	a       allocator.Allocator
	rng     *rand.Rand
	now     time.Time
	agents  map[string]*mAgent
	fws     map[string]*mFramework
	weights map[string]float64
	quotas  map[string]allocator.Quota
	gone    []string // IDs of removed agents and frameworks, to check they stay gone
	next    int
	offers  int
}

func testRandom(t *testing.T, newAllocator func() allocator.Allocator) {
	steps := 2500
	if testing.Short() {
		steps = 600
	}
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			m := &model{
				t: t, a: newAllocator(), rng: rand.New(rand.NewPCG(seed, 42)), now: t0,
				agents: map[string]*mAgent{}, fws: map[string]*mFramework{}, weights: map[string]float64{},
				quotas: map[string]allocator.Quota{},
			}
			for step := range steps {
				op := m.step()
				if t.Failed() {
					t.Fatalf("step %d (%s) failed", step, op)
				}
				m.verify(fmt.Sprintf("step %d (%s)", step, op))
			}
			require.Positive(t, m.offers, "the random test made no offers")
		})
	}
}

func (m *model) id(prefix string) string {
	m.next++
	return fmt.Sprintf("%s%d", prefix, m.next)
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func (m *model) agentIDs() []string { return slices.Sorted(maps.Keys(m.agents)) }
func (m *model) fwIDs() []string    { return slices.Sorted(maps.Keys(m.fws)) }

func (m *model) addedIDs() []string {
	var out []string
	for _, id := range m.fwIDs() {
		if m.fws[id].added {
			out = append(out, id)
		}
	}
	return out
}

// step applies one random operation to the allocator and the model.
func (m *model) step() string {
	t := m.t
	switch n := m.rng.IntN(100); {
	case n < 6 && len(m.agents) < 14:
		return m.addAgent()
	case n < 8 && len(m.agents) > 0:
		id := pick(m.rng, m.agentIDs())
		require.NoError(t, m.a.RemoveAgent(id))
		m.removeAgent(id)
		return "remove agent " + id
	case n < 11 && len(m.agents) > 0:
		return m.updateAgent()
	case n < 15 && len(m.fws) < 9:
		return m.addFramework()
	case n < 17 && len(m.fws) > 0:
		id := pick(m.rng, m.fwIDs())
		require.NoError(t, m.a.RemoveFramework(id))
		m.removeFramework(id)
		return "remove framework " + id
	case n < 20 && len(m.addedIDs()) > 0:
		return m.updateFramework()
	case n < 24 && len(m.addedIDs()) > 0:
		id := pick(m.rng, m.addedIDs())
		fw := m.fws[id]
		if fw.active {
			require.NoError(t, m.a.DeactivateFramework(id))
			fw.active, fw.filters = false, nil
			return "deactivate " + id
		}
		require.NoError(t, m.a.ActivateFramework(id))
		fw.active = true
		return "activate " + id
	case n < 36:
		m.allocate(nil)
		return "allocate"
	case n < 42 && len(m.agents) > 0:
		var ids []string
		for _, id := range m.agentIDs() {
			if m.rng.IntN(3) == 0 {
				ids = append(ids, id)
			}
		}
		m.allocate(ids)
		return fmt.Sprintf("allocate agents %v", ids)
	case n < 70:
		return m.recover()
	case n < 77 && len(m.addedIDs()) > 0:
		return m.suppressOrRevive()
	case n < 79:
		role, w := pick(m.rng, modelRoles), pick(m.rng, []float64{0.5, 1, 2, 3})
		require.NoError(t, m.a.SetWeight(role, w))
		m.weights[role] = w
		return fmt.Sprintf("weight %s %v", role, w)
	case n < 86:
		return m.convert()
	case n < 89:
		d := time.Duration(m.rng.IntN(20000)) * time.Millisecond
		m.now = m.now.Add(d)
		return fmt.Sprintf("advance %v", d)
	case n < 92 && len(m.agents) > 0:
		id := pick(m.rng, m.agentIDs())
		ag := m.agents[id]
		if ag.inactive {
			require.NoError(t, m.a.ActivateAgent(id))
			ag.inactive = false
			return "activate agent " + id
		}
		require.NoError(t, m.a.DeactivateAgent(id))
		ag.inactive = true
		return "deactivate agent " + id
	case n < 95:
		return m.setQuota()
	default:
		return m.badCall()
	}
}

// setQuota sets a random quota (or none) on one of the quota roles.
func (m *model) setQuota() string {
	role := pick(m.rng, quotaRoles)
	q := allocator.Quota{}
	if m.rng.IntN(4) > 0 {
		q = allocator.Quota{Guarantee: allocator.Quantities{}, Limit: allocator.Quantities{}}
		if g := m.rng.IntN(6); g > 0 {
			q.Guarantee["cpus"] = resources.ScalarOf(float64(g))
		}
		if m.rng.IntN(2) == 0 {
			q.Guarantee["mem"] = resources.ScalarOf(float64(256 * (1 + m.rng.IntN(8))))
		}
		if m.rng.IntN(2) == 0 {
			q.Limit["cpus"] = q.Guarantee["cpus"].Add(resources.ScalarOf(float64(m.rng.IntN(8))))
		}
		if m.rng.IntN(3) == 0 {
			q.Limit["mem"] = q.Guarantee["mem"].Add(resources.ScalarOf(float64(256 * m.rng.IntN(8))))
		}
	}
	require.NoError(m.t, m.a.SetQuota(role, q))
	if len(q.Guarantee) == 0 && len(q.Limit) == 0 {
		delete(m.quotas, role)
	} else {
		m.quotas[role] = q
	}
	return fmt.Sprintf("quota %s %v", role, q)
}

// subrole reports whether role is ancestor or below it.
func subrole(role, ancestor string) bool { return resources.IsSubroleOrSelf(role, ancestor) }

// consumed is what role consumes of its quota: what is reserved to it and
// its sub-roles, plus the unreserved, non-revocable scalars allocated to
// them.
func (m *model) consumed(role string) map[string]resources.Scalar {
	out := map[string]resources.Scalar{}
	for _, ag := range m.agents {
		for _, r := range ag.total {
			if r.Type == resources.TypeScalar && r.IsReserved() && subrole(r.Role(), role) {
				out[r.Name] = out[r.Name].Add(r.Scalar)
			}
		}
		for _, rs := range ag.allocs {
			for _, r := range rs {
				if counted(r) && subrole(r.AllocationRole, role) {
					out[r.Name] = out[r.Name].Add(r.Scalar)
				}
			}
		}
	}
	return out
}

func counted(r resources.Resource) bool {
	return r.Type == resources.TypeScalar && r.IsUnreserved() && !r.Revocable
}

// required is the headroom the guarantees need: a guaranteed role needs
// the larger of its shortfall and what its nearest guaranteed descendants
// need together; the roles without a guaranteed ancestor add up.
func (m *model) required() map[string]resources.Scalar {
	guaranteed := []string{}
	for role, q := range m.quotas {
		if len(q.Guarantee) > 0 {
			guaranteed = append(guaranteed, role)
		}
	}
	// Deepest first.
	slices.SortFunc(guaranteed, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	below := map[string]map[string]resources.Scalar{}
	out := map[string]resources.Scalar{}
	for _, role := range guaranteed {
		need := map[string]resources.Scalar{}
		maps.Copy(need, below[role])
		c := m.consumed(role)
		for name, g := range m.quotas[role].Guarantee {
			if short := g.Sub(c[name]); short > need[name] {
				need[name] = short
			}
		}
		up := ""
		for p := parent(role); p != ""; p = parent(p) {
			if len(m.quotas[p].Guarantee) > 0 {
				up = p
				break
			}
		}
		dst := out
		if up != "" {
			if below[up] == nil {
				below[up] = map[string]resources.Scalar{}
			}
			dst = below[up]
		}
		for name, v := range need {
			if v > 0 {
				dst[name] = dst[name].Add(v)
			}
		}
	}
	return out
}

func parent(role string) string {
	if i := strings.LastIndexByte(role, '/'); i >= 0 {
		return role[:i]
	}
	return ""
}

// room is what the role may still be allocated of each counted resource
// under the quota limits, and beyond what the guarantees hold back; a
// resource not named is not bounded.
func (m *model) room(role string) map[string]resources.Scalar {
	room := map[string]resources.Scalar{}
	bound := func(name string, v resources.Scalar) {
		v = max(v, 0)
		if old, ok := room[name]; !ok || v < old {
			room[name] = v
		}
	}
	for a := role; a != ""; a = parent(a) {
		c := m.consumed(a)
		for name, l := range m.quotas[a].Limit {
			bound(name, l.Sub(c[name]))
		}
	}
	free := map[string]resources.Scalar{}
	for _, ag := range m.agents {
		if !ag.inactive {
			for _, r := range ag.avail {
				if counted(r) {
					free[r.Name] = free[r.Name].Add(r.Scalar)
				}
			}
		}
	}
	for name, v := range m.required() {
		if v > 0 {
			bound(name, free[name].Sub(v))
		}
	}
	return room
}

// shrink cuts the counted entries of rs to room.
func shrink(rs resources.Resources, room map[string]resources.Scalar) resources.Resources {
	room = maps.Clone(room)
	var out resources.Resources
	for _, r := range rs {
		if v, ok := room[r.Name]; ok && counted(r) {
			r.Scalar = min(r.Scalar, v)
			room[r.Name] = v.Sub(r.Scalar)
		}
		out = append(out, r)
	}
	return resources.New(out...)
}

func (m *model) randomTotal() resources.Resources {
	rs := res(fmt.Sprintf("cpus:%d;mem:%d;disk:%d;ports:[31000-31009]",
		1+m.rng.IntN(8), 256*(1+m.rng.IntN(16)), 256*(1+m.rng.IntN(8))))
	if m.rng.IntN(2) == 0 {
		role := pick(m.rng, modelRoles)
		rs = rs.Add(res(fmt.Sprintf("cpus(%s):%d;mem(%s):%d", role, 1+m.rng.IntN(3), role, 256*(1+m.rng.IntN(4)))))
	}
	return rs
}

func (m *model) addAgent() string {
	id := m.id("agent")
	total := m.randomTotal()
	used := map[string]resources.Resources{}
	if m.rng.IntN(3) == 0 {
		// Tasks the agent reports: of an added framework, or of one not
		// yet added.
		fwID := m.id("ghost")
		role := pick(m.rng, modelRoles)
		if ids := m.addedIDs(); len(ids) > 0 && m.rng.IntN(2) == 0 {
			fwID = pick(m.rng, ids)
			role = pick(m.rng, m.fws[fwID].roles)
		}
		used[fwID] = res("cpus:1;mem:256").Allocate(role)
	}
	require.NoError(m.t, m.a.AddAgent(allocator.Agent{ID: id, Hostname: id, Total: total}, used))
	ag := &mAgent{total: total, avail: total, allocs: map[string]resources.Resources{}}
	m.agents[id] = ag
	for fwID, rs := range used {
		if m.fws[fwID] == nil {
			m.fws[fwID] = &mFramework{suppressed: map[string]bool{}}
		}
		ag.allocs[fwID] = rs
		ag.avail = ag.avail.Subtract(rs.Unallocated())
	}
	return fmt.Sprintf("add agent %s %s used %v", id, total, used)
}

func (m *model) removeAgent(id string) {
	delete(m.agents, id)
	m.gone = append(m.gone, id)
	for _, fwID := range m.fwIDs() {
		fw := m.fws[fwID]
		fw.filters = slices.DeleteFunc(fw.filters, func(f mFilter) bool { return f.agent == id })
		m.gcGhost(fwID)
	}
}

// gcGhost forgets a framework not added once it holds nothing.
func (m *model) gcGhost(id string) {
	if m.fws[id].added {
		return
	}
	for _, ag := range m.agents {
		if len(ag.allocs[id]) > 0 {
			return
		}
	}
	delete(m.fws, id)
	m.gone = append(m.gone, id)
}

func (m *model) allocated(ag *mAgent) resources.Resources {
	var sum resources.Resources
	for _, id := range slices.Sorted(maps.Keys(ag.allocs)) {
		sum = sum.Add(ag.allocs[id].Unallocated())
	}
	return sum
}

func (m *model) updateAgent() string {
	id := pick(m.rng, m.agentIDs())
	ag := m.agents[id]
	var total resources.Resources
	if m.rng.IntN(2) == 0 {
		total = ag.total.Add(res("cpus:1;mem:256"))
	} else {
		total = ag.total.Subtract(res("cpus:1;mem:256"))
	}
	allocated := m.allocated(ag)
	err := m.a.UpdateAgent(id, total)
	if !total.Contains(allocated) {
		require.ErrorIs(m.t, err, allocator.ErrOverAllocation)
		return "update agent (rejected) " + id
	}
	require.NoError(m.t, err)
	ag.total, ag.avail = total, total.Subtract(allocated)
	return fmt.Sprintf("update agent %s to %s", id, total)
}

func (m *model) randomRoles() (roles, suppressed []string) {
	for _, r := range modelRoles {
		if m.rng.IntN(3) == 0 {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		roles = []string{pick(m.rng, modelRoles)}
	}
	for _, r := range roles {
		if m.rng.IntN(5) == 0 {
			suppressed = append(suppressed, r)
		}
	}
	return roles, suppressed
}

func setOf(s []string) map[string]bool {
	out := map[string]bool{}
	for _, x := range s {
		out[x] = true
	}
	return out
}

func (m *model) addFramework() string {
	id := m.id("fw")
	used := map[string]resources.Resources(nil)
	var ghosts []string
	for _, g := range m.fwIDs() {
		if !m.fws[g].added {
			ghosts = append(ghosts, g)
		}
	}
	if len(ghosts) > 0 && m.rng.IntN(2) == 0 {
		// A framework coming back after its agents: passing what they
		// reported again, or nothing, changes nothing.
		id = pick(m.rng, ghosts)
		if m.rng.IntN(2) == 0 {
			used = map[string]resources.Resources{}
			for _, agID := range m.agentIDs() {
				if rs := m.agents[agID].allocs[id]; len(rs) > 0 {
					used[agID] = rs
				}
			}
		}
	}
	roles, suppressed := m.randomRoles()
	active := m.rng.IntN(5) > 0
	require.NoError(m.t, m.a.AddFramework(allocator.Framework{ID: id, Roles: roles, SuppressedRoles: suppressed, Active: active}, used))
	fw := m.fws[id]
	if fw == nil {
		fw = &mFramework{}
		m.fws[id] = fw
	}
	fw.added, fw.active, fw.roles, fw.suppressed = true, active, roles, setOf(suppressed)
	return fmt.Sprintf("add framework %s %v suppressed %v active %v used %v", id, roles, suppressed, active, used)
}

func (m *model) removeFramework(id string) {
	for _, ag := range m.agents {
		if rs, ok := ag.allocs[id]; ok {
			ag.avail = ag.avail.Add(rs.Unallocated())
			delete(ag.allocs, id)
		}
	}
	delete(m.fws, id)
	m.gone = append(m.gone, id)
}

func (m *model) updateFramework() string {
	id := pick(m.rng, m.addedIDs())
	fw := m.fws[id]
	roles, suppressed := m.randomRoles()
	active := m.rng.IntN(4) > 0
	require.NoError(m.t, m.a.UpdateFramework(allocator.Framework{ID: id, Roles: roles, SuppressedRoles: suppressed, Active: active}))
	if fw.active && !active {
		fw.filters = nil
	}
	fw.filters = slices.DeleteFunc(fw.filters, func(f mFilter) bool { return !slices.Contains(roles, f.role) })
	fw.active, fw.roles, fw.suppressed = active, roles, setOf(suppressed)
	return fmt.Sprintf("update framework %s %v suppressed %v active %v", id, roles, suppressed, active)
}

func (m *model) suppressOrRevive() string {
	id := pick(m.rng, m.addedIDs())
	fw := m.fws[id]
	var roles []string
	for _, r := range fw.roles {
		if m.rng.IntN(2) == 0 {
			roles = append(roles, r)
		}
	}
	affected := roles
	if len(roles) == 0 {
		affected = fw.roles
	}
	if m.rng.IntN(2) == 0 {
		require.NoError(m.t, m.a.Suppress(id, roles...))
		for _, r := range affected {
			fw.suppressed[r] = true
		}
		return fmt.Sprintf("suppress %s %v", id, roles)
	}
	require.NoError(m.t, m.a.Revive(id, roles...))
	for _, r := range affected {
		delete(fw.suppressed, r)
	}
	fw.filters = slices.DeleteFunc(fw.filters, func(f mFilter) bool { return slices.Contains(affected, f.role) })
	return fmt.Sprintf("revive %s %v", id, roles)
}

// filtered reports whether a running filter of fw covers rs for role on
// the agent.
func (m *model) filtered(fw *mFramework, agentID, role string, rs resources.Resources) bool {
	for _, f := range fw.filters {
		if f.agent == agentID && f.role == role && m.now.Before(f.expires) && f.refused.Contains(rs) {
			return true
		}
	}
	return false
}

func (m *model) allocate(agentIDs []string) {
	t := m.t
	var offers []allocator.Offer
	scope := agentIDs
	if agentIDs == nil {
		offers = m.a.Allocate(m.now)
		scope = m.agentIDs()
	} else {
		offers = m.a.AllocateAgents(m.now, append(agentIDs, "no-such-agent")...)
	}
	m.offers += len(offers)
	offered := map[string]map[string]bool{} // role -> names of counted resources offered
	for _, o := range offers {
		require.Truef(t, slices.Contains(scope, o.AgentID), "offer on agent %s outside the cycle %v", o.AgentID, scope)
		require.Falsef(t, m.agents[o.AgentID].inactive, "offer on inactive agent %s", o.AgentID)
		if offered[o.Role] == nil {
			offered[o.Role] = map[string]bool{}
		}
		for _, r := range o.Resources {
			if counted(r) {
				offered[o.Role][r.Name] = true
			}
		}
		fw := m.fws[o.FrameworkID]
		require.NotNilf(t, fw, "offer to unknown framework %s", o.FrameworkID)
		require.Truef(t, fw.added && fw.active, "offer to framework %s, added %v active %v", o.FrameworkID, fw.added, fw.active)
		require.Containsf(t, fw.roles, o.Role, "offer to framework %s for role %s it does not subscribe to", o.FrameworkID, o.Role)
		require.Falsef(t, fw.suppressed[o.Role], "offer to framework %s for suppressed role %s", o.FrameworkID, o.Role)
		require.NotEmpty(t, o.Resources, "empty offer")
		for _, r := range o.Resources {
			require.Equalf(t, o.Role, r.AllocationRole, "offer for role %s holds %s", o.Role, r)
			require.Truef(t, r.IsAllocatableTo(o.Role), "offer for role %s holds %s, reserved elsewhere", o.Role, r)
		}
		ag := m.agents[o.AgentID]
		un := o.Resources.Unallocated()
		require.Truef(t, ag.avail.Contains(un), "offer of %s on agent %s, which has only %s free", un, o.AgentID, ag.avail)
		require.Falsef(t, m.filtered(fw, o.AgentID, o.Role, un), "offer of %s on agent %s to framework %s, which refused it", un, o.AgentID, o.FrameworkID)
		ag.avail = ag.avail.Subtract(un)
		ag.allocs[o.FrameworkID] = ag.allocs[o.FrameworkID].Add(o.Resources)
	}
	// Limits.
	for limited, q := range m.quotas {
		c := m.consumed(limited)
		for role, names := range offered {
			if !subrole(role, limited) {
				continue
			}
			for name, l := range q.Limit {
				require.Falsef(t, names[name] && c[name] > l, "role %s was offered %s beyond the limit of %s: %s consumed, limit %s",
					role, name, limited, c[name], l)
			}
		}
	}
	// Work conservation.
	rooms := map[string]map[string]resources.Scalar{}
	for _, role := range modelRoles {
		rooms[role] = m.room(role)
	}
	for _, agID := range scope {
		ag := m.agents[agID]
		if ag.inactive {
			continue
		}
		for _, fwID := range m.addedIDs() {
			fw := m.fws[fwID]
			if !fw.active {
				continue
			}
			for _, role := range fw.roles {
				cand := shrink(ag.avail.AllocatableTo(role), rooms[role])
				if fw.suppressed[role] || (cand.CPUs() == 0 && cand.Mem() == 0) || m.filtered(fw, agID, role, cand) {
					continue
				}
				require.Failf(t, "cycle not work-conserving",
					"after the cycle, agent %s still has %s that framework %s could be offered for role %s", agID, cand, fwID, role)
			}
		}
	}
}

// randomPart returns a random part of rs (allocated, non-empty), made of
// whole cpus and multiples of 256 MB.
func (m *model) randomPart(rs resources.Resources) resources.Resources {
	switch m.rng.IntN(4) {
	case 0:
		return rs
	case 1:
		role := pick(m.rng, rs).AllocationRole
		return rs.Filter(func(r resources.Resource) bool { return r.AllocationRole == role })
	}
	r := pick(m.rng, rs)
	switch r.Type {
	case resources.TypeScalar:
		unit := resources.ScalarOf(256)
		if r.Name == resources.NameCPUs {
			unit = resources.ScalarOf(1)
		}
		r.Scalar = unit * resources.Scalar(1+m.rng.Int64N(int64(r.Scalar/unit)))
	case resources.TypeRanges:
		p := r.Ranges[m.rng.IntN(len(r.Ranges))].Begin
		r.Ranges = resources.RangesOf(resources.Range{Begin: p, End: p})
	}
	return resources.New(r)
}

func (m *model) holdings() (fwIDs, agentIDs []string) {
	for _, agID := range m.agentIDs() {
		for _, fwID := range slices.Sorted(maps.Keys(m.agents[agID].allocs)) {
			fwIDs, agentIDs = append(fwIDs, fwID), append(agentIDs, agID)
		}
	}
	return fwIDs, agentIDs
}

func (m *model) recover() string {
	fwIDs, agentIDs := m.holdings()
	if len(fwIDs) == 0 {
		m.allocate(nil)
		return "allocate (nothing to recover)"
	}
	i := m.rng.IntN(len(fwIDs))
	fwID, agID := fwIDs[i], agentIDs[i]
	ag, fw := m.agents[agID], m.fws[fwID]
	part := m.randomPart(ag.allocs[fwID])
	refuse := pick(m.rng, []time.Duration{0, 0, -time.Second, time.Second, 10 * time.Second, time.Hour, 1000 * 24 * time.Hour})
	require.NoError(m.t, m.a.Recover(fwID, agID, part, refuse, m.now))
	ag.allocs[fwID] = ag.allocs[fwID].Subtract(part)
	if len(ag.allocs[fwID]) == 0 {
		delete(ag.allocs, fwID)
	}
	ag.avail = ag.avail.Add(part.Unallocated())
	if refuse > 0 && fw.added {
		expires := m.now.Add(min(refuse, allocator.MaxRefuse))
		for _, role := range slices.Sorted(maps.Keys(part.Allocations())) {
			if slices.Contains(fw.roles, role) {
				fw.filters = append(fw.filters, mFilter{agID, role, part.Allocations()[role].Unallocated(), expires})
			}
		}
	}
	m.gcGhost(fwID)
	return fmt.Sprintf("recover %s from %s on %s, refuse %v", part, fwID, agID, refuse)
}

// badCall makes a call the allocator must reject; verify then checks that
// nothing changed.
func (m *model) badCall() string {
	fwIDs, agentIDs := m.holdings()
	switch m.rng.IntN(4) {
	case 0:
		if len(fwIDs) > 0 {
			i := m.rng.IntN(len(fwIDs))
			held := m.agents[agentIDs[i]].allocs[fwIDs[i]]
			more := held.Add(res("cpus:1000").Allocate(held[0].AllocationRole))
			require.ErrorIs(m.t, m.a.Recover(fwIDs[i], agentIDs[i], more, time.Hour, m.now), allocator.ErrOverAllocation)
			return "recover too much"
		}
	case 1:
		if len(m.agents) > 0 {
			err := m.a.AddAgent(allocator.Agent{ID: "late", Total: res("cpus:1")}, map[string]resources.Resources{
				pick(m.rng, m.agentIDs()): res("cpus:2").Allocate("web"),
			})
			require.ErrorIs(m.t, err, allocator.ErrOverAllocation)
			return "add agent over-allocated"
		}
	case 2:
		if ids := m.addedIDs(); len(ids) > 0 {
			id := ids[m.rng.IntN(len(ids))]
			for _, r := range modelRoles {
				if !slices.Contains(m.fws[id].roles, r) {
					require.ErrorIs(m.t, m.a.Suppress(id, r), allocator.ErrInvalid)
					return "suppress a role not subscribed"
				}
			}
		}
	}
	require.ErrorIs(m.t, m.a.Recover("no-such-framework", "x", res("cpus:1"), 0, m.now), allocator.ErrUnknownFramework)
	return "recover for an unknown framework"
}

// verify compares the allocator with the model.
func (m *model) verify(when string) {
	t := m.t
	require.NoErrorf(t, m.a.Check(), "%s", when)
	for _, agID := range m.agentIDs() {
		ag := m.agents[agID]
		m.expect(ag.avail.Equal(resources.New(m.a.Available(agID)...)),
			"%s: agent %s available: model %s, allocator %s", when, agID, ag.avail, m.a.Available(agID))
		m.expect(m.allocated(ag).Add(ag.avail).Equal(ag.total), "%s: model lost track of agent %s", when, agID)
	}
	quantities := map[string]map[string]resources.Scalar{}
	members := map[string][]string{}
	for _, fwID := range m.fwIDs() {
		got := m.a.Allocation(fwID)
		want := map[string]resources.Resources{}
		for _, agID := range m.agentIDs() {
			if rs := m.agents[agID].allocs[fwID]; len(rs) > 0 {
				want[agID] = rs
			}
		}
		m.expectEqual(slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(got)), "%s: agents of framework %s", when, fwID)
		for agID, rs := range want {
			m.expect(rs.Equal(resources.New(got[agID]...)), "%s: framework %s on agent %s: model %s, allocator %s", when, fwID, agID, rs, got[agID])
			for role, part := range rs.Allocations() {
				q := quantities[role]
				if q == nil {
					q = map[string]resources.Scalar{}
					quantities[role] = q
				}
				for _, r := range part {
					if r.Type == resources.TypeScalar {
						q[r.Name] = q[r.Name].Add(r.Scalar)
					}
				}
				if !slices.Contains(members[role], fwID) {
					members[role] = append(members[role], fwID)
				}
			}
		}
		for _, role := range m.fws[fwID].roles {
			if !slices.Contains(members[role], fwID) {
				members[role] = append(members[role], fwID)
			}
		}
	}
	for _, id := range m.gone {
		if m.agents[id] == nil && m.fws[id] == nil {
			m.expect(len(m.a.Allocation(id)) == 0, "%s: removed %s still has allocations", when, id)
			m.expect(len(m.a.Available(id)) == 0, "%s: removed %s still has resources", when, id)
		}
	}
	set := map[string]bool{}
	for role := range members {
		set[role] = true
	}
	for role := range m.weights {
		set[role] = true
	}
	for role := range m.quotas {
		set[role] = true
	}
	for _, ag := range m.agents { // reserved scalars: Mesos's knownRoles()
		for _, r := range ag.total {
			if r.Type == resources.TypeScalar && r.IsReserved() && r.Scalar != 0 {
				set[r.Role()] = true
			}
		}
	}
	for role := range set {
		for p := parent(role); p != ""; p = parent(p) {
			set[p] = true
		}
	}
	names := slices.Sorted(maps.Keys(set))
	m.expectEqual(m.quotas, m.a.Quotas(), "%s: quotas", when)
	roles := m.a.Roles()
	got := make([]string, len(roles))
	for i, r := range roles {
		got[i] = r.Name
	}
	m.expectEqual(fmt.Sprint(names), fmt.Sprint(got), "%s: roles", when)
	for _, r := range roles {
		want := m.weights[r.Name]
		if want == 0 {
			want = 1
		}
		m.expectEqual(want, r.Weight, "%s: weight of %s", when, r.Name)
		slices.Sort(members[r.Name])
		m.expectEqual(fmt.Sprint(members[r.Name]), fmt.Sprint(r.Frameworks), "%s: frameworks of role %s", when, r.Name)
		q := map[string]resources.Scalar{}
		for role, rq := range quantities {
			if subrole(role, r.Name) {
				for k, v := range rq {
					q[k] = q[k].Add(v)
				}
			}
		}
		m.expectEqual(nonZero(q), r.Allocated, "%s: allocated to role %s and its sub-roles", when, r.Name)
		m.expectEqual(nonZero(m.consumed(r.Name)), map[string]resources.Scalar(r.Consumed), "%s: consumed by role %s", when, r.Name)
		m.expectEqual(m.quotas[r.Name], r.Quota, "%s: quota of role %s", when, r.Name)
	}
}

// expect fails the test when cond is false; unlike require it costs
// nothing when it holds, which matters in a test of thousands of steps.
func (m *model) expect(cond bool, format string, args ...any) {
	if !cond {
		m.t.Helper()
		m.t.Fatalf(format, args...)
	}
}

func (m *model) expectEqual(want, got any, format string, args ...any) {
	if !assert.ObjectsAreEqual(want, got) {
		m.t.Helper()
		require.Equalf(m.t, want, got, format, args...)
	}
}

func nonZero(q map[string]resources.Scalar) map[string]resources.Scalar {
	out := map[string]resources.Scalar{}
	for k, v := range q {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// convert reserves dynamically, or unreserves, a random part of what a
// framework holds on an agent or, as an operator does, of what is free.
func (m *model) convert() string {
	fwIDs, agentIDs := m.holdings()
	operator := len(fwIDs) == 0 || m.rng.IntN(3) == 0
	var fwID, agID string
	var pool resources.Resources
	if operator {
		if len(m.agents) == 0 {
			return "convert (no agent)"
		}
		agID = pick(m.rng, m.agentIDs())
		pool = m.agents[agID].avail
	} else {
		i := m.rng.IntN(len(fwIDs))
		fwID, agID = fwIDs[i], agentIDs[i]
		pool = m.agents[agID].allocs[fwID]
	}
	if len(pool) == 0 {
		return "convert (nothing there)"
	}
	r := pick(m.rng, pool)
	if r.Type != resources.TypeScalar || r.IsStaticallyReserved() {
		return "convert (not a candidate)"
	}
	unit := resources.ScalarOf(256)
	if r.Name == resources.NameCPUs {
		unit = resources.ScalarOf(1)
	}
	if r.Scalar < unit {
		return "convert (too small)"
	}
	r.Scalar = unit * resources.Scalar(1+m.rng.Int64N(int64(r.Scalar/unit)))
	from := resources.New(r)
	var to resources.Resources
	if r.IsDynamicallyReserved() {
		to = from.PopReservation()
	} else {
		role := r.AllocationRole
		if operator {
			role = pick(m.rng, modelRoles)
		}
		to = from.PushReservation(resources.Reservation{Type: resources.Dynamic, Role: role, Principal: "ops"})
	}
	require.NoError(m.t, m.a.UpdateAllocation(fwID, agID, from, to))
	ag := m.agents[agID]
	if operator {
		ag.avail = ag.avail.Subtract(from).Add(to)
	} else {
		ag.allocs[fwID] = ag.allocs[fwID].Subtract(from).Add(to)
	}
	ag.total = ag.total.Subtract(from.Unallocated()).Add(to.Unallocated())
	return fmt.Sprintf("convert %s into %s for %q on %s", from, to, fwID, agID)
}

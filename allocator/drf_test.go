package allocator_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/allocator/allocatortest"
	"github.com/apronhq/apron/resources"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newDRF(seed uint64) *allocator.DRF {
	return allocator.NewDRF(allocator.Options{Rand: rand.New(rand.NewPCG(seed, 1))})
}

func TestDRFConformance(t *testing.T) {
	allocatortest.Run(t, func() allocator.Allocator { return newDRF(1) })
}

func TestDRFDefaultOptions(t *testing.T) {
	allocatortest.Run(t, func() allocator.Allocator { return allocator.NewDRF(allocator.Options{}) })
}

// simulate runs cycles in which each framework launches one task per offer
// when it fits, returns the rest, and declines for an hour an offer its
// task does not fit, until no offers are made; it returns the tasks
// launched per framework. With agents, each cycle is AllocateAgents over
// one agent, round robin, so every offer is answered before the next is
// made (as when the master allocates on each recovery); without, each is a
// full cycle.
//
// Shares count offers until they are answered, so in a full cycle over
// many agents the frameworks take turns at whole agents and, launching one
// task per offer, grow at the same number of tasks per cycle: fairness is
// then only within about one agent's worth. Answered one by one, offers
// let the shares reflect the tasks and DRF ends within one task.
func simulate(t *testing.T, d *allocator.DRF, agents []string, tasks map[string]resources.Resources) map[string]int {
	t.Helper()
	launched := map[string]int{}
	now := t0
	for i, idle := 0, 0; ; i++ {
		require.Less(t, i, 100000, "the simulation does not end")
		var offers []allocator.Offer
		if agents == nil {
			offers = d.Allocate(now)
		} else {
			offers = d.AllocateAgents(now, agents[i%len(agents)])
		}
		if len(offers) == 0 {
			if idle++; agents == nil || idle == len(agents) {
				break
			}
			continue
		}
		idle = 0
		for _, o := range offers {
			task := tasks[o.FrameworkID].Allocate(o.Role)
			if o.Resources.Contains(task) {
				launched[o.FrameworkID]++
				require.NoError(t, d.Recover(o.FrameworkID, o.AgentID, o.Resources.Subtract(task), 0, now))
			} else {
				require.NoError(t, d.Recover(o.FrameworkID, o.AgentID, o.Resources, time.Hour, now))
			}
		}
		require.NoError(t, d.Check())
		now = now.Add(time.Millisecond)
	}
	return launched
}

// dominant is the dominant share of n tasks of shape task in a cluster of
// total.
func dominant(n int, task, total resources.Resources) float64 {
	s := 0.0
	for name, q := range task.Quantities() {
		s = max(s, float64(n)*q.Float64()/total.ScalarOf(name).Float64())
	}
	return s
}

// cluster adds n agents of the given shape and returns their IDs and
// their sum.
func cluster(t *testing.T, d *allocator.DRF, n int, shape string) ([]string, resources.Resources) {
	var ids []string
	var total resources.Resources
	for i := range n {
		id := fmt.Sprint("agent", i)
		rs := resources.MustParse(shape)
		require.NoError(t, d.AddAgent(allocator.Agent{ID: id, Total: rs}, nil))
		ids, total = append(ids, id), total.Add(rs)
	}
	return ids, total
}

func TestDRFTaskShapes(t *testing.T) {
	// The example of the DRF paper (Ghodsi et al., 2011): A's tasks are
	// memory-heavy, B's cpu-heavy; in a pool of 9 cpus and 18 GB, DRF
	// gives A 3 tasks and B 2, a dominant share of 2/3 each.
	tasks := map[string]resources.Resources{
		"A": resources.MustParse("cpus:1;mem:4096"),
		"B": resources.MustParse("cpus:3;mem:1024"),
	}
	for _, tc := range []struct {
		agents       int
		shape        string
		fullCycles   bool
		wantA, wantB int
	}{
		{1, "cpus:9;mem:18432", true, 3, 2},
		{1, "cpus:36;mem:73728", true, 12, 8},
		{4, "cpus:9;mem:18432", false, 12, 8},
		{8, "cpus:9;mem:18432", false, 24, 16},
		{4, "cpus:90;mem:184320", false, 120, 80},
		{40, "cpus:9;mem:36864", false, 180, 60}, // cpu-bound: A's tasks count as much as B's
	} {
		for seed := range uint64(3) {
			name := fmt.Sprintf("%dx%s/full=%v/seed=%d", tc.agents, tc.shape, tc.fullCycles, seed)
			t.Run(name, func(t *testing.T) {
				d := newDRF(seed)
				ids, total := cluster(t, d, tc.agents, tc.shape)
				if tc.fullCycles {
					ids = nil
				}
				for _, id := range []string{"A", "B"} {
					require.NoError(t, d.AddFramework(allocator.Framework{ID: id, Roles: []string{"role-" + id}, Active: true}, nil))
				}
				launched := simulate(t, d, ids, tasks)
				a, b := dominant(launched["A"], tasks["A"], total), dominant(launched["B"], tasks["B"], total)
				oneTask := max(dominant(1, tasks["A"], total), dominant(1, tasks["B"], total))
				require.InDelta(t, a, b, oneTask, "dominant shares differ by more than a task: A %d tasks (%.3f), B %d (%.3f)",
					launched["A"], a, launched["B"], b)
				require.Equal(t, tc.wantA, launched["A"])
				require.Equal(t, tc.wantB, launched["B"])
			})
		}
	}
}

func TestDRFWeights(t *testing.T) {
	task := resources.MustParse("cpus:1;mem:512")
	for seed := range uint64(3) {
		d := newDRF(seed)
		ids, total := cluster(t, d, 10, "cpus:6;mem:6144")
		require.NoError(t, d.SetWeight("heavy", 2))
		require.NoError(t, d.AddFramework(allocator.Framework{ID: "H", Roles: []string{"heavy"}, Active: true}, nil))
		require.NoError(t, d.AddFramework(allocator.Framework{ID: "L", Roles: []string{"light"}, Active: true}, nil))
		launched := simulate(t, d, ids, map[string]resources.Resources{"H": task, "L": task})
		h, l := dominant(launched["H"], task, total), dominant(launched["L"], task, total)
		require.InDelta(t, h/2, l, dominant(1, task, total), "weighted shares differ by more than a task: heavy %d tasks (%.3f), light %d (%.3f)",
			launched["H"], h, launched["L"], l)
		require.Equal(t, 40, launched["H"])
		require.Equal(t, 20, launched["L"])

		roles := d.Roles()
		require.Len(t, roles, 2)
		require.Equal(t, "heavy", roles[0].Name)
		require.Equal(t, 2.0, roles[0].Weight)
		require.InDelta(t, h/2, roles[0].Share, 1e-9)
		require.InDelta(t, l, roles[1].Share, 1e-9)
	}

	// Weights order whole agents in a full cycle too: 2 agents of 3 go to
	// the heavy role.
	d := newDRF(1)
	cluster(t, d, 30, "cpus:1;mem:1024")
	require.NoError(t, d.SetWeight("heavy", 2))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "H", Roles: []string{"heavy"}, Active: true}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "L", Roles: []string{"light"}, Active: true}, nil))
	per := map[string]int{}
	for _, o := range d.Allocate(t0) {
		per[o.FrameworkID]++
	}
	require.Equal(t, map[string]int{"H": 20, "L": 10}, per)
}

func TestDRFManyRoles(t *testing.T) {
	d := newDRF(3)
	for i := range 22 {
		require.NoError(t, d.AddAgent(allocator.Agent{ID: fmt.Sprint("agent", i), Total: resources.MustParse("cpus:4;mem:4096")}, nil))
	}
	var roles []string
	for i := range 10 {
		roles = append(roles, fmt.Sprint("r", i))
	}
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "multi", Roles: roles, Active: true}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "solo", Roles: []string{"solo"}, Active: true}, nil))

	// Eleven roles, 22 identical agents: two agents each, whichever
	// framework the roles belong to.
	offers := d.Allocate(t0)
	require.Len(t, offers, 22)
	require.NoError(t, d.Check())
	perRole := map[string]int{}
	for _, o := range offers {
		perRole[o.Role]++
		if o.FrameworkID == "multi" {
			require.Contains(t, roles, o.Role)
		} else {
			require.Equal(t, "solo", o.Role)
		}
	}
	for _, r := range append(slices.Clone(roles), "solo") {
		require.Equal(t, 2, perRole[r], "agents of role %s", r)
	}
	infos := d.Roles()
	require.Len(t, infos, 11)
	for _, info := range infos {
		require.Equal(t, resources.ScalarOf(8), info.Allocated["cpus"], "role %s", info.Name)
	}
	alloc := d.Allocation("multi")
	require.Len(t, alloc, 20)
	seen := map[string]bool{}
	for _, rs := range alloc {
		require.Len(t, rs.Allocations(), 1)
		for role := range rs.Allocations() {
			seen[role] = true
		}
	}
	require.Len(t, seen, 10)

	// With all but one of its roles suppressed, the multi-role framework
	// shares the cluster evenly with the single-role one.
	for _, o := range offers {
		require.NoError(t, d.Recover(o.FrameworkID, o.AgentID, o.Resources, 0, t0))
	}
	require.NoError(t, d.Suppress("multi", roles[:9]...))
	perFramework := map[string]int{}
	for _, o := range d.Allocate(t0) {
		perFramework[o.FrameworkID]++
		if o.FrameworkID == "multi" {
			require.Equal(t, "r9", o.Role)
		}
	}
	require.Equal(t, map[string]int{"multi": 11, "solo": 11}, perFramework)
}

func TestDRFFrameworksWithinRole(t *testing.T) {
	d := newDRF(5)
	for i := range 12 {
		require.NoError(t, d.AddAgent(allocator.Agent{ID: fmt.Sprint("agent", i), Total: resources.MustParse("cpus:2;mem:2048")}, nil))
	}
	for _, id := range []string{"f1", "f2", "f3"} {
		require.NoError(t, d.AddFramework(allocator.Framework{ID: id, Roles: []string{"shared"}, Active: true}, nil))
	}
	perFramework := map[string]int{}
	for _, o := range d.Allocate(t0) {
		perFramework[o.FrameworkID]++
	}
	require.Equal(t, map[string]int{"f1": 4, "f2": 4, "f3": 4}, perFramework)
}

func TestDRFDeterministic(t *testing.T) {
	run := func(seed uint64) []allocator.Offer {
		d := newDRF(seed)
		for i := range 50 {
			require.NoError(t, d.AddAgent(allocator.Agent{ID: fmt.Sprint("agent", i), Total: resources.MustParse(fmt.Sprintf("cpus:%d;mem:%d", 1+i%7, 1024*(1+i%5)))}, nil))
		}
		for i := range 7 {
			require.NoError(t, d.AddFramework(allocator.Framework{ID: fmt.Sprint("fw", i), Roles: []string{fmt.Sprint("role", i%3)}, Active: true}, nil))
		}
		var all []allocator.Offer
		now := t0
		for range 20 {
			offers := d.Allocate(now)
			all = append(all, offers...)
			for j, o := range offers {
				require.NoError(t, d.Recover(o.FrameworkID, o.AgentID, o.Resources, time.Duration(j%3)*time.Second, now))
			}
			now = now.Add(time.Second)
		}
		return all
	}
	a, b := run(9), run(9)
	require.Equal(t, len(a), len(b))
	for i := range a {
		require.Equal(t, a[i].FrameworkID, b[i].FrameworkID)
		require.Equal(t, a[i].AgentID, b[i].AgentID)
		require.Equal(t, a[i].Role, b[i].Role)
		require.Equal(t, a[i].Resources.String(), b[i].Resources.String())
	}
	c := run(10)
	same := len(a) == len(c)
	for i := 0; same && i < len(a); i++ {
		same = a[i].AgentID == c[i].AgentID
	}
	require.False(t, same, "another seed visits the agents in another order")
}

func TestDRFMinAllocatable(t *testing.T) {
	d := allocator.NewDRF(allocator.Options{MinAllocatable: []resources.Resources{resources.MustParse("cpus:1;mem:1024")}})
	require.NoError(t, d.AddAgent(allocator.Agent{ID: "small", Total: resources.MustParse("cpus:0.5;mem:4096")}, nil))
	require.NoError(t, d.AddAgent(allocator.Agent{ID: "big", Total: resources.MustParse("cpus:1;mem:1024")}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "f", Roles: []string{"r"}, Active: true}, nil))
	offers := d.Allocate(t0)
	require.Len(t, offers, 1)
	require.Equal(t, "big", offers[0].AgentID)

	// The default: cpus:0.01 or mem:32.
	d = allocator.NewDRF(allocator.Options{})
	require.NoError(t, d.AddAgent(allocator.Agent{ID: "tiny", Total: resources.MustParse("cpus:0.001;mem:31;disk:1000")}, nil))
	require.NoError(t, d.AddAgent(allocator.Agent{ID: "mem", Total: resources.MustParse("mem:32")}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "f", Roles: []string{"r"}, Active: true}, nil))
	offers = d.Allocate(t0)
	require.Len(t, offers, 1)
	require.Equal(t, "mem", offers[0].AgentID)

	// No minimum at all.
	d = allocator.NewDRF(allocator.Options{MinAllocatable: []resources.Resources{}})
	require.NoError(t, d.AddAgent(allocator.Agent{ID: "tiny", Total: resources.MustParse("ports:[1-2]")}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "f", Roles: []string{"r"}, Active: true}, nil))
	require.Len(t, d.Allocate(t0), 1)
}

func TestDRFRandomSorterConformance(t *testing.T) {
	allocatortest.Run(t, func() allocator.Allocator {
		return allocator.NewDRF(allocator.Options{Rand: rand.New(rand.NewPCG(3, 1)), Sorter: allocator.SorterRandom})
	})
}

// shares runs simulate and returns each framework's dominant share.
func shares(t *testing.T, d *allocator.DRF, ids []string, total resources.Resources, tasks map[string]resources.Resources) map[string]float64 {
	launched := simulate(t, d, ids, tasks)
	out := map[string]float64{}
	for id, task := range tasks {
		out[id] = dominant(launched[id], task, total)
	}
	return out
}

func TestDRFHierarchicalWeights(t *testing.T) {
	// eng (weight 2) and ops (1) share the cluster 2:1; within eng, eng/a
	// (1) and eng/b (3) share eng's part 1:3. Shares are judged among
	// siblings only: eng/b's weight does not count against ops.
	task := resources.MustParse("cpus:1;mem:512")
	for seed := range uint64(3) {
		d := newDRF(seed)
		ids, total := cluster(t, d, 12, "cpus:6;mem:6144")
		for role, w := range map[string]float64{"eng": 2, "eng/a": 1, "eng/b": 3, "ops": 1} {
			require.NoError(t, d.SetWeight(role, w))
		}
		for id, role := range map[string]string{"A": "eng/a", "B": "eng/b", "O": "ops"} {
			require.NoError(t, d.AddFramework(allocator.Framework{ID: id, Roles: []string{role}, Active: true}, nil))
		}
		got := shares(t, d, ids, total, map[string]resources.Resources{"A": task, "B": task, "O": task})
		one := dominant(1, task, total)
		require.InDelta(t, 2.0/3, got["A"]+got["B"], one, "eng: %v", got)
		require.InDelta(t, 1.0/3, got["O"], one, "ops: %v", got)
		require.InDelta(t, 1.0/6, got["A"], one, "eng/a: %v", got)
		require.InDelta(t, 1.0/2, got["B"], one, "eng/b: %v", got)
	}
}

func TestDRFOwnFrameworksAmongSubroles(t *testing.T) {
	// A role's own frameworks compete with its sub-roles as one more
	// sibling of weight 1 (Mesos's "." node).
	task := resources.MustParse("cpus:1;mem:512")
	d := newDRF(1)
	ids, total := cluster(t, d, 8, "cpus:6;mem:6144")
	require.NoError(t, d.SetWeight("eng/a", 3))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "E", Roles: []string{"eng"}, Active: true}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "A", Roles: []string{"eng/a"}, Active: true}, nil))
	got := shares(t, d, ids, total, map[string]resources.Resources{"E": task, "A": task})
	one := dominant(1, task, total)
	require.InDelta(t, 0.25, got["E"], one, "%v", got)
	require.InDelta(t, 0.75, got["A"], one, "%v", got)
}

func TestDRFMultiRoleHierarchy(t *testing.T) {
	// A framework of two roles in different subtrees gets offers for each,
	// each role judged among its own siblings.
	d := newDRF(2)
	cluster(t, d, 12, "cpus:2;mem:2048")
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "M", Roles: []string{"eng/a", "ops"}, Active: true}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "B", Roles: []string{"eng/b"}, Active: true}, nil))
	perRole := map[string]int{}
	for _, o := range d.Allocate(t0) {
		perRole[o.Role]++
		require.Equal(t, map[string]string{"eng/a": "M", "ops": "M", "eng/b": "B"}[o.Role], o.FrameworkID)
		for _, r := range o.Resources {
			require.Equal(t, o.Role, r.AllocationRole)
		}
	}
	// eng and ops take turns (6 agents each); within eng, a and b (3 each).
	require.Equal(t, map[string]int{"eng/a": 3, "eng/b": 3, "ops": 6}, perRole)
	require.NoError(t, d.Check())
}

func TestDRFQuotaGuaranteeFirst(t *testing.T) {
	// Without quota, five roles taking turns give each 2 agents of 10. A
	// guarantee of 12 cpus is met first (stage 1), whatever the order.
	d := newDRF(4)
	cluster(t, d, 10, "cpus:4;mem:4096")
	require.NoError(t, d.SetQuota("q", allocator.Quota{Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(12)}}))
	for i := range 4 {
		require.NoError(t, d.AddFramework(allocator.Framework{ID: fmt.Sprint("f", i), Roles: []string{fmt.Sprint("r", i)}, Active: true}, nil))
	}
	// The quota role already holds nothing and is added last: its name
	// and position do not matter.
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "zq", Roles: []string{"q"}, Active: true}, nil))
	cpus := map[string]resources.Scalar{}
	for _, o := range d.Allocate(t0) {
		cpus[o.Role] = cpus[o.Role].Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(12), cpus["q"])
	var others resources.Scalar
	for i := range 4 {
		others = others.Add(cpus[fmt.Sprint("r", i)])
	}
	require.Equal(t, resources.ScalarOf(28), others)
	require.NoError(t, d.Check())
	info := map[string]allocator.RoleInfo{}
	for _, r := range d.Roles() {
		info[r.Name] = r
	}
	require.Equal(t, resources.ScalarOf(12), info["q"].Consumed["cpus"])
}

func TestDRFQuotaNestedGuarantees(t *testing.T) {
	// eng is guaranteed 8 cpus, eng/a 6 of them: 8 are held back for eng's
	// subtree (not 14), and frameworks of eng/b may use eng's part beyond
	// eng/a's.
	d := newDRF(5)
	cluster(t, d, 8, "cpus:2;mem:2048")
	require.NoError(t, d.SetQuota("eng", allocator.Quota{Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(8)}}))
	require.NoError(t, d.SetQuota("eng/a", allocator.Quota{Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(6)}}))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "web", Roles: []string{"web"}, Active: true}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "a", Roles: []string{"eng/a"}, SuppressedRoles: []string{"eng/a"}, Active: true}, nil))
	require.NoError(t, d.AddFramework(allocator.Framework{ID: "b", Roles: []string{"eng/b"}, SuppressedRoles: []string{"eng/b"}, Active: true}, nil))
	var web resources.Scalar
	for _, o := range d.Allocate(t0) {
		web = web.Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(8), web, "16 cpus less the 8 eng needs")

	require.NoError(t, d.Revive("b"))
	var b resources.Scalar
	for _, o := range d.Allocate(t0) {
		require.Equal(t, "b", o.FrameworkID)
		b = b.Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(2), b, "eng/b may take eng's 2 beyond eng/a's 6, not eng/a's")

	require.NoError(t, d.Revive("a"))
	var a resources.Scalar
	for _, o := range d.Allocate(t0) {
		require.Equal(t, "a", o.FrameworkID)
		a = a.Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(6), a)
	require.NoError(t, d.Check())
}

func TestDRFRandomSorterFollowsWeights(t *testing.T) {
	// With the random sorter, a role is first with a probability
	// proportional to its weight.
	d := allocator.NewDRF(allocator.Options{Rand: rand.New(rand.NewPCG(7, 7)), Sorter: allocator.SorterRandom})
	require.NoError(t, d.AddAgent(allocator.Agent{ID: "a", Total: resources.MustParse("cpus:1;mem:1024")}, nil))
	for i, w := range []float64{1, 2, 3} {
		role := fmt.Sprint("r", i)
		require.NoError(t, d.SetWeight(role, w))
		require.NoError(t, d.AddFramework(allocator.Framework{ID: role, Roles: []string{role}, Active: true}, nil))
	}
	const n = 6000
	count := map[string]int{}
	for range n {
		o := d.Allocate(t0)
		require.Len(t, o, 1)
		count[o[0].Role]++
		require.NoError(t, d.Recover(o[0].FrameworkID, o[0].AgentID, o[0].Resources, 0, t0))
	}
	for i, w := range []float64{1, 2, 3} {
		require.InDelta(t, w/6, float64(count[fmt.Sprint("r", i)])/n, 0.02, "%v", count)
	}
}

// A role that only has reservations is a role the master knows, with its
// ancestors, as Mesos's Master::knownRoles() lists "all reservation
// roles"; once the reservation goes, so does the role.
func TestDRFRolesWithOnlyReservations(t *testing.T) {
	d := newDRF(1)
	require.NoError(t, d.AddAgent(allocator.Agent{ID: "a1", Total: resources.MustParse("cpus:2;mem:1024;disk(ops/reserved):100")}, nil))
	names := func() []string {
		var out []string
		for _, r := range d.Roles() {
			out = append(out, r.Name)
		}
		return out
	}
	require.Equal(t, []string{"ops", "ops/reserved"}, names())
	info := d.Roles()[1]
	require.Equal(t, resources.ScalarOf(100), info.Consumed["disk"], "a reservation is consumed by its role")
	require.NoError(t, d.UpdateAgent("a1", resources.MustParse("cpus:2;mem:1024;disk:100")))
	require.Empty(t, names())
}

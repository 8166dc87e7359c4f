// Package allocatortest is the conformance suite of allocator.Allocator:
// every implementation runs it from its tests with
//
//	allocatortest.Run(t, func() allocator.Allocator { return myAllocator() })
//
// The suite checks the contract of the interface, not a fairness policy:
// who gets offers and who never does, what an offer holds, filters,
// suppression, reservations in the role tree, inactive agents, quota limits
// and the headroom held for guarantees, the bookkeeping of allocations and
// errors, conversions of allocated and free resources (reservations and
// persistent volumes), and, in a seeded random test of a few thousand operations checked
// against a model, that nothing is ever allocated twice, that no limit is
// ever exceeded and that cycles are work-conserving.
package allocatortest

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/resources"
)

// Run runs the suite. newAllocator must return a new, empty allocator each
// time; for the suite to be reproducible it should be deterministic (a
// seeded source of randomness), and its minimum offer size must be no
// larger than Mesos's default (cpus:0.01 or mem:32).
func Run(t *testing.T, newAllocator func() allocator.Allocator) {
	tests := []struct {
		name string
		run  func(t *testing.T, a allocator.Allocator)
	}{
		{"OffersOnlyToActiveUnsuppressedFrameworks", testActiveUnsuppressed},
		{"OfferHoldsEverythingTheRoleMayUse", testOfferContents},
		{"RefuseFilterExpires", testFilterExpires},
		{"FilterYieldsToMoreResources", testFilterYields},
		{"FiltersArePerRole", testFiltersPerRole},
		{"ReviveClearsFilters", testReviveClearsFilters},
		{"DeactivateClearsFilters", testDeactivateClearsFilters},
		{"SuppressAndRevivePerRole", testSuppressRevive},
		{"ReservedResourcesOnlyToTheirRole", testReservations},
		{"RemoveFrameworkReturnsAllocations", testRemoveFramework},
		{"RemoveAgentDropsAllocations", testRemoveAgent},
		{"UpdateAgent", testUpdateAgent},
		{"UpdateFrameworkRoles", testUpdateFramework},
		{"UsedResourcesAfterFailover", testFailover},
		{"RecoverAttributesRoles", testRecoverRoles},
		{"AllocateAgentsVisitsOnlyThoseAgents", testAllocateAgents},
		{"Weights", testWeights},
		{"DeactivatedAgentsGetNoOffers", testAgentActivation},
		{"RoleTree", testRoleTree},
		{"ReservationsReachTheirRoleAndSubroles", testHierarchicalReservations},
		{"QuotaLimitsAreNeverExceeded", testQuotaLimits},
		{"QuotaGuaranteesHoldHeadroom", testQuotaGuarantees},
		{"QuotaBookkeeping", testQuotaBookkeeping},
		{"FrameworkMinimumOfferSize", testFrameworkMinAllocatable},
		{"Errors", testErrors},
		{"UpdateAllocation", testUpdateAllocation},
		{"UpdateAllocationUnallocated", testUpdateAllocationUnallocated},
		{"UpdateAllocationErrors", testUpdateAllocationErrors},
		{"Random", func(t *testing.T, _ allocator.Allocator) { testRandom(t, newAllocator) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAllocator()
			tc.run(t, a)
			require.NoError(t, a.Check())
		})
	}
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func res(s string) resources.Resources { return resources.MustParse(s) }

func requireRes(t *testing.T, want, got resources.Resources, what string, args ...any) {
	t.Helper()
	require.Truef(t, resources.New(want...).Equal(resources.New(got...)),
		"%s: want %s, got %s", fmt.Sprintf(what, args...), want, got)
}

func addAgent(t *testing.T, a allocator.Allocator, id, total string) {
	t.Helper()
	require.NoError(t, a.AddAgent(allocator.Agent{ID: id, Hostname: id + ".example", Total: res(total)}, nil))
}

func addFramework(t *testing.T, a allocator.Allocator, id string, roles ...string) {
	t.Helper()
	require.NoError(t, a.AddFramework(allocator.Framework{ID: id, Roles: roles, Active: true}, nil))
}

// allocate runs a full cycle and checks the allocator's invariants.
func allocate(t *testing.T, a allocator.Allocator, now time.Time) []allocator.Offer {
	t.Helper()
	offers := a.Allocate(now)
	require.NoError(t, a.Check())
	return offers
}

// one requires exactly one offer and returns it.
func one(t *testing.T, offers []allocator.Offer) allocator.Offer {
	t.Helper()
	require.Lenf(t, offers, 1, "offers: %v", offers)
	return offers[0]
}

func recoverOffer(t *testing.T, a allocator.Allocator, o allocator.Offer, refuse time.Duration, now time.Time) {
	t.Helper()
	require.NoError(t, a.Recover(o.FrameworkID, o.AgentID, o.Resources, refuse, now))
	require.NoError(t, a.Check())
}

func testActiveUnsuppressed(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	require.NoError(t, a.AddFramework(allocator.Framework{ID: "inactive", Roles: []string{"r"}}, nil))
	require.NoError(t, a.AddFramework(allocator.Framework{ID: "suppressed", Roles: []string{"r"}, SuppressedRoles: []string{"r"}, Active: true}, nil))
	require.Empty(t, allocate(t, a, t0), "no framework may be offered anything")

	addFramework(t, a, "active", "r")
	o := one(t, allocate(t, a, t0))
	require.Equal(t, "active", o.FrameworkID)
	require.Empty(t, allocate(t, a, t0), "the agent is fully allocated")

	recoverOffer(t, a, o, 0, t0)
	require.NoError(t, a.DeactivateFramework("active"))
	require.Empty(t, allocate(t, a, t0), "the only active framework was deactivated")

	require.NoError(t, a.ActivateFramework("inactive"))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "inactive", o.FrameworkID)
	recoverOffer(t, a, o, 0, t0)

	require.NoError(t, a.Suppress("inactive"))
	require.Empty(t, allocate(t, a, t0))
	require.NoError(t, a.Revive("suppressed"))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "suppressed", o.FrameworkID)
}

func testOfferContents(t *testing.T, a allocator.Allocator) {
	total := "cpus:4;mem:1024;disk:2048;ports:[31000-31999];gpus:1"
	addAgent(t, a, "a1", total)
	addFramework(t, a, "f", "r")
	requireRes(t, res(total), a.Available("a1"), "available before")

	o := one(t, allocate(t, a, t0))
	require.Equal(t, allocator.Offer{FrameworkID: "f", AgentID: "a1", Role: "r", Resources: o.Resources}, o)
	requireRes(t, res(total).Allocate("r"), o.Resources, "offer")
	for _, r := range o.Resources {
		require.Equal(t, "r", r.AllocationRole, "allocation role of %s", r)
	}
	require.Empty(t, a.Available("a1"))
	alloc := a.Allocation("f")
	require.Len(t, alloc, 1)
	requireRes(t, o.Resources, alloc["a1"], "allocation")

	roles := a.Roles()
	require.Len(t, roles, 1)
	require.Equal(t, "r", roles[0].Name)
	require.Equal(t, 1.0, roles[0].Weight)
	require.Equal(t, []string{"f"}, roles[0].Frameworks)
	require.Equal(t, map[string]resources.Scalar{
		"cpus": resources.ScalarOf(4), "mem": resources.ScalarOf(1024),
		"disk": resources.ScalarOf(2048), "gpus": resources.ScalarOf(1),
	}, roles[0].Allocated, "ports are not a scalar")
	require.InDelta(t, 1.0, roles[0].Share, 1e-9)

	// Part of the offer used by a task, the rest declined.
	task := res("cpus:1;mem:256").Allocate("r")
	recoverOffer(t, a, allocator.Offer{FrameworkID: "f", AgentID: "a1", Resources: o.Resources.Subtract(task)}, 0, t0)
	requireRes(t, task, a.Allocation("f")["a1"], "allocation after the decline")
	requireRes(t, res(total).Subtract(res("cpus:1;mem:256")), a.Available("a1"), "available after the decline")
	o = one(t, allocate(t, a, t0))
	requireRes(t, res(total).Subtract(res("cpus:1;mem:256")).Allocate("r"), o.Resources, "second offer")
}

func testFilterExpires(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r")
	o := one(t, allocate(t, a, t0))
	recoverOffer(t, a, o, 10*time.Second, t0)
	require.Empty(t, allocate(t, a, t0))
	require.Empty(t, allocate(t, a, t0.Add(10*time.Second-time.Millisecond)))
	requireRes(t, res("cpus:4;mem:1024"), a.Available("a1"), "a filtered agent keeps its resources free")
	o = one(t, allocate(t, a, t0.Add(10*time.Second)))
	require.Equal(t, "f", o.FrameworkID)

	// Without refuse, the resources are offered again at once.
	recoverOffer(t, a, o, 0, t0.Add(10*time.Second))
	one(t, allocate(t, a, t0.Add(10*time.Second)))
}

func testFilterYields(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r")
	o := one(t, allocate(t, a, t0))

	// A task takes part of the offer; the rest is declined for an hour.
	task := res("cpus:1;mem:256").Allocate("r")
	recoverOffer(t, a, allocator.Offer{FrameworkID: "f", AgentID: "a1", Resources: o.Resources.Subtract(task)}, time.Hour, t0)
	require.Empty(t, allocate(t, a, t0.Add(time.Second)))

	// The task ends: the agent now has more free than was refused.
	require.NoError(t, a.Recover("f", "a1", task, 0, t0.Add(2*time.Second)))
	o = one(t, allocate(t, a, t0.Add(2*time.Second)))
	requireRes(t, res("cpus:4;mem:1024").Allocate("r"), o.Resources, "offer after the task ended")

	// Refuse the whole agent; a smaller agent stays filtered, a larger one
	// (or one with different resources) is offered again.
	recoverOffer(t, a, o, time.Hour, t0.Add(3*time.Second))
	require.NoError(t, a.UpdateAgent("a1", res("cpus:2;mem:512")))
	require.Empty(t, allocate(t, a, t0.Add(4*time.Second)))
	require.NoError(t, a.UpdateAgent("a1", res("cpus:2;mem:512;disk:100")))
	o = one(t, allocate(t, a, t0.Add(5*time.Second)))
	requireRes(t, res("cpus:2;mem:512;disk:100").Allocate("r"), o.Resources, "offer after growing")
	recoverOffer(t, a, o, time.Hour, t0.Add(5*time.Second))
	require.NoError(t, a.UpdateAgent("a1", res("cpus:8;mem:512;disk:100")))
	one(t, allocate(t, a, t0.Add(6*time.Second)))
}

func testFiltersPerRole(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r1", "r2")
	first := one(t, allocate(t, a, t0))
	recoverOffer(t, a, first, time.Hour, t0)
	second := one(t, allocate(t, a, t0))
	require.NotEqual(t, first.Role, second.Role, "a refusal for one role does not filter the other")
	recoverOffer(t, a, second, time.Hour, t0)
	require.Empty(t, allocate(t, a, t0))

	// Filters are per agent too.
	addAgent(t, a, "a2", "cpus:4;mem:1024")
	o := one(t, allocate(t, a, t0))
	require.Equal(t, "a2", o.AgentID)
}

func testReviveClearsFilters(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r1", "r2")
	first := one(t, allocate(t, a, t0))
	recoverOffer(t, a, first, time.Hour, t0)
	second := one(t, allocate(t, a, t0))
	recoverOffer(t, a, second, time.Hour, t0)
	require.Empty(t, allocate(t, a, t0))

	require.NoError(t, a.Revive("f", first.Role))
	o := one(t, allocate(t, a, t0))
	require.Equal(t, first.Role, o.Role, "only the revived role's filters are gone")
	recoverOffer(t, a, o, time.Hour, t0)
	require.Empty(t, allocate(t, a, t0))

	require.NoError(t, a.Revive("f"))
	one(t, allocate(t, a, t0))
}

func testDeactivateClearsFilters(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r")
	recoverOffer(t, a, one(t, allocate(t, a, t0)), time.Hour, t0)
	require.Empty(t, allocate(t, a, t0))
	require.NoError(t, a.DeactivateFramework("f"))
	require.NoError(t, a.ActivateFramework("f"))
	one(t, allocate(t, a, t0))
}

func testSuppressRevive(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r1", "r2")
	require.NoError(t, a.Suppress("f", "r1"))
	for range 3 {
		o := one(t, allocate(t, a, t0))
		require.Equal(t, "r2", o.Role)
		recoverOffer(t, a, o, 0, t0)
	}
	require.NoError(t, a.Suppress("f"))
	require.Empty(t, allocate(t, a, t0))
	require.NoError(t, a.Revive("f", "r1"))
	o := one(t, allocate(t, a, t0))
	require.Equal(t, "r1", o.Role)
	recoverOffer(t, a, o, 0, t0)
	require.NoError(t, a.Suppress("f"))
	require.NoError(t, a.Revive("f"))
	one(t, allocate(t, a, t0))

	require.ErrorIs(t, a.Suppress("f", "r3"), allocator.ErrInvalid)
	require.ErrorIs(t, a.Revive("f", "r3"), allocator.ErrInvalid)

	// Suppressed roles given when the framework is added.
	require.NoError(t, a.Suppress("f"))
	addAgent(t, a, "a2", "cpus:4;mem:1024")
	require.NoError(t, a.AddFramework(allocator.Framework{ID: "g", Roles: []string{"q1", "q2"}, SuppressedRoles: []string{"q2"}, Active: true}, nil))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, allocator.Offer{FrameworkID: "g", AgentID: "a2", Role: "q1", Resources: o.Resources}, o)
}

func testReservations(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024;cpus(analytics):2;mem(analytics):512")
	addFramework(t, a, "web", "web")
	o := one(t, allocate(t, a, t0))
	requireRes(t, res("cpus:4;mem:1024").Allocate("web"), o.Resources, "offer to another role")
	requireRes(t, res("cpus(analytics):2;mem(analytics):512"), a.Available("a1"), "reserved resources left")
	require.Empty(t, allocate(t, a, t0), "reserved resources are not offered to another role")

	addFramework(t, a, "an", "analytics")
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "an", o.FrameworkID)
	requireRes(t, res("cpus(analytics):2;mem(analytics):512").Allocate("analytics"), o.Resources, "offer to the role")

	// A framework of both roles gets the reserved resources for its
	// analytics role only.
	addAgent(t, a, "a2", "cpus(analytics):1;mem(analytics):256")
	require.NoError(t, a.RemoveFramework("an"))
	require.NoError(t, a.Suppress("web"))
	addFramework(t, a, "both", "web", "analytics")
	offers := allocate(t, a, t0)
	require.Len(t, offers, 2)
	for _, o := range offers {
		require.Equal(t, "both", o.FrameworkID)
		require.Equal(t, "analytics", o.Role)
	}

	// Used resources reserved to another role are rejected.
	err := a.AddAgent(allocator.Agent{ID: "a3", Total: res("cpus(analytics):2")},
		map[string]resources.Resources{"web": res("cpus(analytics):1").Allocate("web")})
	require.ErrorIs(t, err, allocator.ErrInvalid)
}

func testRemoveFramework(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addAgent(t, a, "a2", "cpus:2;mem:512")
	addFramework(t, a, "f1", "r")
	require.Len(t, allocate(t, a, t0), 2)
	require.NoError(t, a.RemoveFramework("f1"))
	require.NoError(t, a.Check())
	require.Empty(t, a.Allocation("f1"))
	requireRes(t, res("cpus:4;mem:1024"), a.Available("a1"), "a1")
	requireRes(t, res("cpus:2;mem:512"), a.Available("a2"), "a2")
	for _, r := range a.Roles() {
		require.NotContains(t, r.Frameworks, "f1")
		require.Empty(t, r.Allocated)
	}
	require.ErrorIs(t, a.RemoveFramework("f1"), allocator.ErrUnknownFramework)

	addFramework(t, a, "f2", "r")
	offers := allocate(t, a, t0)
	require.Len(t, offers, 2)
	for _, o := range offers {
		require.Equal(t, "f2", o.FrameworkID)
	}
	// The ID can be used again.
	addFramework(t, a, "f1", "r")
}

func testRemoveAgent(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addAgent(t, a, "a2", "cpus:2;mem:512")
	addFramework(t, a, "f", "r")
	for _, o := range allocate(t, a, t0) {
		if o.AgentID == "a1" {
			recoverOffer(t, a, o, time.Hour, t0)
		}
	}
	require.Empty(t, allocate(t, a, t0))
	require.NoError(t, a.RemoveAgent("a1"))
	require.NoError(t, a.Check())
	require.Nil(t, a.Available("a1"))
	alloc := a.Allocation("f")
	require.Len(t, alloc, 1)
	requireRes(t, res("cpus:2;mem:512").Allocate("r"), alloc["a2"], "allocation on a2")
	roles := a.Roles()
	require.Len(t, roles, 1)
	require.Equal(t, map[string]resources.Scalar{"cpus": resources.ScalarOf(2), "mem": resources.ScalarOf(512)}, roles[0].Allocated)
	require.ErrorIs(t, a.Recover("f", "a1", res("cpus:1").Allocate("r"), 0, t0), allocator.ErrUnknownAgent)
	require.ErrorIs(t, a.RemoveAgent("a1"), allocator.ErrUnknownAgent)

	// An agent that comes back under the same ID has no filters.
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	o := one(t, allocate(t, a, t0))
	require.Equal(t, "a1", o.AgentID)

	// Removing the last agent of a framework leaves it added, with nothing.
	require.NoError(t, a.RemoveAgent("a1"))
	require.NoError(t, a.RemoveAgent("a2"))
	require.Empty(t, a.Allocation("f"))
	require.NoError(t, a.Suppress("f"), "the framework is still known")
}

func testUpdateAgent(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r")
	o := one(t, allocate(t, a, t0))
	task := res("cpus:1;mem:256").Allocate("r")
	recoverOffer(t, a, allocator.Offer{FrameworkID: "f", AgentID: "a1", Resources: o.Resources.Subtract(task)}, 0, t0)

	require.NoError(t, a.UpdateAgent("a1", res("cpus:8;mem:1024")))
	requireRes(t, res("cpus:7;mem:768"), a.Available("a1"), "available after growing")
	require.NoError(t, a.UpdateAgent("a1", res("cpus:1;mem:256")))
	require.Empty(t, a.Available("a1"))
	require.ErrorIs(t, a.UpdateAgent("a1", res("cpus:0.5;mem:256")), allocator.ErrOverAllocation)
	require.ErrorIs(t, a.UpdateAgent("a1", res("cpus(x):4;mem:4096")), allocator.ErrOverAllocation)
	require.ErrorIs(t, a.UpdateAgent("a1", res("cpus:4").Allocate("r")), allocator.ErrInvalid)
	require.ErrorIs(t, a.UpdateAgent("nope", res("cpus:4")), allocator.ErrUnknownAgent)
	require.Empty(t, a.Available("a1"), "rejected updates change nothing")
	requireRes(t, task, a.Allocation("f")["a1"], "allocation")
}

func testUpdateFramework(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r1")
	o := one(t, allocate(t, a, t0))
	require.Equal(t, "r1", o.Role)

	require.NoError(t, a.UpdateFramework(allocator.Framework{ID: "f", Roles: []string{"r2"}, Active: true}))
	require.NoError(t, a.Check())
	requireRes(t, o.Resources, a.Allocation("f")["a1"], "resources of a role left stay allocated")
	byName := map[string]allocator.RoleInfo{}
	for _, r := range a.Roles() {
		byName[r.Name] = r
	}
	require.Equal(t, []string{"f"}, byName["r1"].Frameworks, "still tracked under the role it holds resources of")
	require.Equal(t, []string{"f"}, byName["r2"].Frameworks)

	addAgent(t, a, "a2", "cpus:4;mem:1024")
	o2 := one(t, allocate(t, a, t0))
	require.Equal(t, allocator.Offer{FrameworkID: "f", AgentID: "a2", Role: "r2", Resources: o2.Resources}, o2)

	recoverOffer(t, a, o, time.Hour, t0)
	for _, r := range a.Roles() {
		require.NotEqual(t, "r1", r.Name, "the role is gone with its last allocation")
	}
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "r2", o.Role, "no filter for a role the framework left, no offer for it either")

	// Activity and suppression are replaced too.
	require.NoError(t, a.UpdateFramework(allocator.Framework{ID: "f", Roles: []string{"r2", "r3"}, SuppressedRoles: []string{"r2"}}))
	recoverOffer(t, a, o, 0, t0)
	require.Empty(t, allocate(t, a, t0), "inactive")
	require.NoError(t, a.UpdateFramework(allocator.Framework{ID: "f", Roles: []string{"r2", "r3"}, SuppressedRoles: []string{"r2"}, Active: true}))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "r3", o.Role)

	require.ErrorIs(t, a.UpdateFramework(allocator.Framework{ID: "f", Roles: []string{"r2"}, SuppressedRoles: []string{"r3"}}), allocator.ErrInvalid)
	require.ErrorIs(t, a.UpdateFramework(allocator.Framework{ID: "nope", Roles: []string{"r2"}}), allocator.ErrUnknownFramework)
}

func testFailover(t *testing.T, a allocator.Allocator) {
	task := res("cpus:1;mem:256").Allocate("r")
	// The agent re-registers first, with a task of a framework not yet back.
	require.NoError(t, a.AddAgent(allocator.Agent{ID: "a1", Total: res("cpus:4;mem:1024")},
		map[string]resources.Resources{"f": task}))
	require.NoError(t, a.Check())
	requireRes(t, res("cpus:3;mem:768"), a.Available("a1"), "available")
	requireRes(t, task, a.Allocation("f")["a1"], "allocation of the framework not yet added")
	require.Empty(t, allocate(t, a, t0), "no framework to offer to")

	// The framework re-subscribes and the master passes the same task.
	require.NoError(t, a.AddFramework(allocator.Framework{ID: "f", Roles: []string{"r"}, Active: true},
		map[string]resources.Resources{"a1": task}))
	require.NoError(t, a.Check())
	requireRes(t, res("cpus:3;mem:768"), a.Available("a1"), "available after the framework came back")
	requireRes(t, task, a.Allocation("f")["a1"], "allocation")
	o := one(t, allocate(t, a, t0))
	requireRes(t, res("cpus:3;mem:768").Allocate("r"), o.Resources, "offer")
	require.NoError(t, a.Recover("f", "a1", task, 0, t0))
	require.ErrorIs(t, a.AddFramework(allocator.Framework{ID: "f", Roles: []string{"r"}}, nil), allocator.ErrExists)

	// A framework that never comes back is removed, and its resources freed.
	require.NoError(t, a.AddAgent(allocator.Agent{ID: "a2", Total: res("cpus:4;mem:1024")},
		map[string]resources.Resources{"ghost": res("cpus:2;mem:512").Allocate("g")}))
	require.Equal(t, "g", a.Roles()[0].Name)
	require.NoError(t, a.RemoveFramework("ghost"))
	requireRes(t, res("cpus:4;mem:1024"), a.Available("a2"), "available after the ghost left")
	require.Empty(t, a.Allocation("ghost"))

	// Used resources must carry a role when the framework is not known.
	err := a.AddAgent(allocator.Agent{ID: "a3", Total: res("cpus:4")}, map[string]resources.Resources{"ghost": res("cpus:1")})
	require.ErrorIs(t, err, allocator.ErrInvalid)
	// ... and fit.
	err = a.AddAgent(allocator.Agent{ID: "a3", Total: res("cpus:4")}, map[string]resources.Resources{
		"f": res("cpus:3").Allocate("r"), "ghost": res("cpus:2").Allocate("g"),
	})
	require.ErrorIs(t, err, allocator.ErrOverAllocation)
	require.Nil(t, a.Available("a3"))
	// A known framework with one role may pass them unallocated.
	require.NoError(t, a.AddAgent(allocator.Agent{ID: "a3", Total: res("cpus:4")}, map[string]resources.Resources{"f": res("cpus:1")}))
	requireRes(t, res("cpus:1").Allocate("r"), a.Allocation("f")["a3"], "allocation on a3")
}

func testRecoverRoles(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r")
	one(t, allocate(t, a, t0))
	// A single-role framework may return resources without a role.
	require.NoError(t, a.Recover("f", "a1", res("cpus:1"), 0, t0))
	requireRes(t, res("cpus:3;mem:1024").Allocate("r"), a.Allocation("f")["a1"], "allocation")
	one(t, allocate(t, a, t0))

	addAgent(t, a, "a2", "cpus:4;mem:1024")
	addFramework(t, a, "m", "r1", "r2")
	require.NoError(t, a.Suppress("f"))
	o1 := one(t, allocate(t, a, t0))
	require.Equal(t, "a2", o1.AgentID)
	require.NoError(t, a.Recover("m", "a2", res("cpus:1;mem:1").Allocate(o1.Role), 0, t0))
	require.NoError(t, a.Suppress("m", o1.Role))
	o2 := one(t, allocate(t, a, t0))
	require.NotEqual(t, o1.Role, o2.Role)
	// Now m holds both roles on a2: resources without a role are ambiguous.
	require.ErrorIs(t, a.Recover("m", "a2", res("cpus:1"), 0, t0), allocator.ErrInvalid)
	// Resources of both roles at once are fine.
	both := res("cpus:1").Allocate(o1.Role).Add(res("cpus:1").Allocate(o2.Role))
	require.NoError(t, a.Recover("m", "a2", both, 0, t0))
	requireRes(t, res("cpus:2"), a.Available("a2"), "available")
	// Empty resources are a no-op.
	require.NoError(t, a.Recover("m", "a2", nil, time.Hour, t0))
}

func testAllocateAgents(t *testing.T, a allocator.Allocator) {
	for _, id := range []string{"a1", "a2", "a3"} {
		addAgent(t, a, id, "cpus:1;mem:128")
	}
	addFramework(t, a, "f", "r")
	offers := a.AllocateAgents(t0, "a2", "nope", "a2")
	require.NoError(t, a.Check())
	require.Equal(t, "a2", one(t, offers).AgentID)
	require.Empty(t, a.AllocateAgents(t0))
	offers = allocate(t, a, t0)
	got := []string{offers[0].AgentID, offers[1].AgentID}
	slices.Sort(got)
	require.Equal(t, []string{"a1", "a3"}, got)
}

func testWeights(t *testing.T, a allocator.Allocator) {
	require.NoError(t, a.SetWeight("heavy", 2.5))
	addFramework(t, a, "f", "light")
	roles := a.Roles()
	require.Len(t, roles, 2)
	require.Equal(t, "heavy", roles[0].Name)
	require.Equal(t, 2.5, roles[0].Weight)
	require.Empty(t, roles[0].Frameworks)
	require.Equal(t, "light", roles[1].Name)
	require.Equal(t, 1.0, roles[1].Weight)

	for _, w := range []float64{0, -1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		require.ErrorIs(t, a.SetWeight("heavy", w), allocator.ErrInvalid, "weight %v", w)
	}
	require.ErrorIs(t, a.SetWeight("bad role", 1), allocator.ErrInvalid)
	require.ErrorIs(t, a.SetWeight("", 1), allocator.ErrInvalid)
	require.Equal(t, 2.5, a.Roles()[0].Weight)
}

// snapshot describes everything observable about the given frameworks and
// agents, canonically.
func snapshot(a allocator.Allocator, frameworks, agents []string) string {
	var b strings.Builder
	for _, id := range frameworks {
		alloc := a.Allocation(id)
		fmt.Fprintf(&b, "framework %s:", id)
		for _, agentID := range slices.Sorted(maps.Keys(alloc)) {
			fmt.Fprintf(&b, " %s=%s", agentID, canon(alloc[agentID]))
		}
		b.WriteByte('\n')
	}
	for _, id := range agents {
		fmt.Fprintf(&b, "agent %s: %s\n", id, canon(a.Available(id)))
	}
	for _, r := range a.Roles() {
		fmt.Fprintf(&b, "role %s: %v %v %v\n", r.Name, r.Weight, r.Frameworks, r.Allocated)
	}
	return b.String()
}

// canon formats rs independently of the order of its entries.
func canon(rs resources.Resources) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

func testErrors(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024;cpus(r):1")
	addAgent(t, a, "a2", "cpus:4;mem:1024")
	addFramework(t, a, "f", "r")
	addFramework(t, a, "g", "r", "s")
	require.NoError(t, a.Suppress("g"))
	offers := allocate(t, a, t0)
	require.Len(t, offers, 2)
	frameworks, agents := []string{"f", "g", "nope"}, []string{"a1", "a2", "nope"}
	before := snapshot(a, frameworks, agents)

	fw := func(id string, roles ...string) allocator.Framework {
		return allocator.Framework{ID: id, Roles: roles, Active: true}
	}
	huge := map[string]resources.Resources{"a1": res("cpus:100").Allocate("r")}
	cases := []struct {
		name string
		err  error
		call func() error
	}{
		{"AddFramework existing", allocator.ErrExists, func() error { return a.AddFramework(fw("f", "r"), nil) }},
		{"AddFramework empty ID", allocator.ErrInvalid, func() error { return a.AddFramework(fw("", "r"), nil) }},
		{"AddFramework no roles", allocator.ErrInvalid, func() error { return a.AddFramework(fw("h"), nil) }},
		{"AddFramework duplicate role", allocator.ErrInvalid, func() error { return a.AddFramework(fw("h", "r", "r"), nil) }},
		{"AddFramework invalid role", allocator.ErrInvalid, func() error { return a.AddFramework(fw("h", "r", "a b"), nil) }},
		{"AddFramework suppressed role not subscribed", allocator.ErrInvalid, func() error {
			return a.AddFramework(allocator.Framework{ID: "h", Roles: []string{"r"}, SuppressedRoles: []string{"s"}}, nil)
		}},
		{"AddFramework used on unknown agent", allocator.ErrUnknownAgent, func() error {
			return a.AddFramework(fw("h", "r"), map[string]resources.Resources{"nope": res("cpus:1")})
		}},
		{"AddFramework used beyond the agent", allocator.ErrOverAllocation, func() error { return a.AddFramework(fw("h", "r"), huge) }},
		{"AddFramework used already allocated", allocator.ErrOverAllocation, func() error {
			return a.AddFramework(fw("h", "r"), map[string]resources.Resources{"a1": res("cpus:1").Allocate("r")})
		}},
		{"UpdateFramework unknown", allocator.ErrUnknownFramework, func() error { return a.UpdateFramework(fw("nope", "r")) }},
		{"UpdateFramework no roles", allocator.ErrInvalid, func() error { return a.UpdateFramework(fw("f")) }},
		{"RemoveFramework unknown", allocator.ErrUnknownFramework, func() error { return a.RemoveFramework("nope") }},
		{"ActivateFramework unknown", allocator.ErrUnknownFramework, func() error { return a.ActivateFramework("nope") }},
		{"DeactivateFramework unknown", allocator.ErrUnknownFramework, func() error { return a.DeactivateFramework("nope") }},
		{"AddAgent existing", allocator.ErrExists, func() error { return a.AddAgent(allocator.Agent{ID: "a1", Total: res("cpus:1")}, nil) }},
		{"AddAgent empty ID", allocator.ErrInvalid, func() error { return a.AddAgent(allocator.Agent{Total: res("cpus:1")}, nil) }},
		{"AddAgent allocated total", allocator.ErrInvalid, func() error {
			return a.AddAgent(allocator.Agent{ID: "a3", Total: res("cpus:1").Allocate("r")}, nil)
		}},
		{"AddAgent used beyond total", allocator.ErrOverAllocation, func() error {
			return a.AddAgent(allocator.Agent{ID: "a3", Total: res("cpus:1")}, map[string]resources.Resources{"f": res("cpus:2").Allocate("r")})
		}},
		{"UpdateAgent unknown", allocator.ErrUnknownAgent, func() error { return a.UpdateAgent("nope", res("cpus:1")) }},
		{"UpdateAgent below allocation", allocator.ErrOverAllocation, func() error { return a.UpdateAgent("a1", res("cpus:1")) }},
		{"RemoveAgent unknown", allocator.ErrUnknownAgent, func() error { return a.RemoveAgent("nope") }},
		{"Recover unknown framework", allocator.ErrUnknownFramework, func() error { return a.Recover("nope", "a1", res("cpus:1"), 0, t0) }},
		{"Recover unknown agent", allocator.ErrUnknownAgent, func() error { return a.Recover("f", "nope", res("cpus:1"), 0, t0) }},
		{"Recover more than held", allocator.ErrOverAllocation, func() error {
			return a.Recover(offers[0].FrameworkID, offers[0].AgentID, offers[0].Resources.Add(res("cpus:1").Allocate("r")), time.Hour, t0)
		}},
		{"Recover another role", allocator.ErrOverAllocation, func() error {
			return a.Recover(offers[0].FrameworkID, offers[0].AgentID, res("cpus:1").Allocate("s"), time.Hour, t0)
		}},
		{"Recover from a framework holding nothing", allocator.ErrOverAllocation, func() error {
			return a.Recover("g", "a1", res("cpus:1").Allocate("r"), time.Hour, t0)
		}},
		{"Suppress unknown framework", allocator.ErrUnknownFramework, func() error { return a.Suppress("nope") }},
		{"Suppress unsubscribed role", allocator.ErrInvalid, func() error { return a.Suppress("f", "s") }},
		{"Revive unknown framework", allocator.ErrUnknownFramework, func() error { return a.Revive("nope") }},
		{"Revive unsubscribed role", allocator.ErrInvalid, func() error { return a.Revive("f", "r", "s") }},
		{"SetWeight zero", allocator.ErrInvalid, func() error { return a.SetWeight("r", 0) }},
		{"SetWeight NaN", allocator.ErrInvalid, func() error { return a.SetWeight("r", math.NaN()) }},
	}
	for _, tc := range cases {
		err := tc.call()
		require.ErrorIsf(t, err, tc.err, "%s", tc.name)
		assert.NotEmptyf(t, err.Error(), "%s", tc.name)
		for _, other := range []error{allocator.ErrUnknownFramework, allocator.ErrUnknownAgent, allocator.ErrExists, allocator.ErrInvalid, allocator.ErrOverAllocation} {
			if other != tc.err {
				assert.Falsef(t, errors.Is(err, other), "%s: %v is also %v", tc.name, err, other)
			}
		}
		require.NoErrorf(t, a.Check(), "%s", tc.name)
		require.Equalf(t, before, snapshot(a, frameworks, agents), "%s changed the allocator", tc.name)
	}

	// Nothing was filtered by the rejected recoveries either.
	for _, o := range offers {
		recoverOffer(t, a, o, 0, t0)
	}
	require.Len(t, allocate(t, a, t0), 2)
}

func testAgentActivation(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addAgent(t, a, "a2", "cpus:2;mem:512")
	addFramework(t, a, "f", "r")
	require.NoError(t, a.DeactivateAgent("a1"))
	require.NoError(t, a.DeactivateAgent("a1"), "deactivating twice is fine")
	o := one(t, allocate(t, a, t0))
	require.Equal(t, "a2", o.AgentID, "a deactivated agent is not offered")
	requireRes(t, res("cpus:4;mem:1024"), a.Available("a1"), "its resources stay free")

	// An agent deactivated while its resources are allocated keeps the
	// allocation, and gets it back when it is recovered, without offering
	// it.
	require.NoError(t, a.DeactivateAgent("a2"))
	requireRes(t, o.Resources, a.Allocation("f")["a2"], "allocation on the deactivated agent")
	recoverOffer(t, a, o, 0, t0)
	require.Empty(t, allocate(t, a, t0))
	require.Empty(t, a.AllocateAgents(t0, "a1", "a2"))

	require.NoError(t, a.ActivateAgent("a1"))
	require.NoError(t, a.ActivateAgent("a1"), "activating twice is fine")
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "a1", o.AgentID)
	require.NoError(t, a.ActivateAgent("a2"))
	o = one(t, a.AllocateAgents(t0, "a2"))
	require.Equal(t, "a2", o.AgentID)

	require.ErrorIs(t, a.ActivateAgent("nope"), allocator.ErrUnknownAgent)
	require.ErrorIs(t, a.DeactivateAgent("nope"), allocator.ErrUnknownAgent)
}

func roleInfos(a allocator.Allocator) map[string]allocator.RoleInfo {
	out := map[string]allocator.RoleInfo{}
	for _, r := range a.Roles() {
		out[r.Name] = r
	}
	return out
}

func testRoleTree(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024")
	addFramework(t, a, "f", "eng/backend/search")
	offers := allocate(t, a, t0)
	require.NoError(t, a.Suppress("f"))
	addAgent(t, a, "a2", "cpus:4;mem:1024")
	addFramework(t, a, "g", "eng")
	require.NoError(t, a.SetWeight("ops/web", 2))
	offers = append(offers, allocate(t, a, t0)...)
	require.Len(t, offers, 2)
	roles := roleInfos(a)
	names := make([]string, 0, len(roles))
	for _, r := range a.Roles() {
		names = append(names, r.Name)
	}
	require.Equal(t, []string{"eng", "eng/backend", "eng/backend/search", "ops", "ops/web"}, names,
		"roles with frameworks or weights, and their ancestors")
	require.Equal(t, []string{"g"}, roles["eng"].Frameworks, "a role lists its own frameworks")
	require.Empty(t, roles["eng/backend"].Frameworks)
	require.Equal(t, []string{"f"}, roles["eng/backend/search"].Frameworks)
	require.Equal(t, resources.ScalarOf(8), roles["eng"].Allocated["cpus"], "a role's allocation includes its sub-roles'")
	require.Equal(t, resources.ScalarOf(4), roles["eng/backend"].Allocated["cpus"])
	require.Equal(t, resources.ScalarOf(4), roles["eng/backend/search"].Allocated["cpus"])
	require.Equal(t, 2.0, roles["ops/web"].Weight)
	require.Empty(t, roles["ops"].Allocated)

	// Offers carry the role they are for.
	for _, o := range offers {
		want := map[string]string{"f": "eng/backend/search", "g": "eng"}[o.FrameworkID]
		require.Equal(t, want, o.Role)
	}

	// The tree shrinks with its frameworks.
	require.NoError(t, a.RemoveFramework("f"))
	roles = roleInfos(a)
	require.NotContains(t, roles, "eng/backend/search")
	require.NotContains(t, roles, "eng/backend")
	require.Equal(t, resources.ScalarOf(4), roles["eng"].Allocated["cpus"])
}

func testHierarchicalReservations(t *testing.T, a allocator.Allocator) {
	refined := res("cpus(eng):2;mem(eng):256").PushReservation(resources.Reservation{
		Type: resources.Dynamic, Role: "eng/backend", Principal: "ops",
	})
	total := res("cpus(eng):1;mem(eng):256").Add(refined)
	require.NoError(t, a.AddAgent(allocator.Agent{ID: "a1", Total: total}, nil))

	// Neither a sibling nor a role whose name merely starts alike is
	// offered resources reserved to eng.
	addFramework(t, a, "other", "engineering", "ops")
	require.Empty(t, allocate(t, a, t0))

	// A framework of eng is offered what is reserved to eng, not what was
	// refined to eng/backend.
	addFramework(t, a, "parent", "eng")
	o := one(t, allocate(t, a, t0))
	require.Equal(t, allocator.Offer{FrameworkID: "parent", AgentID: "a1", Role: "eng", Resources: o.Resources}, o)
	requireRes(t, res("cpus(eng):1;mem(eng):256").Allocate("eng"), o.Resources, "offer to eng")

	// A framework of eng/backend/search may use both.
	recoverOffer(t, a, o, 0, t0)
	require.NoError(t, a.Suppress("parent"))
	addFramework(t, a, "child", "eng/backend/search")
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "eng/backend/search", o.Role)
	requireRes(t, total.Allocate("eng/backend/search"), o.Resources, "offer to a descendant")
	require.Equal(t, resources.ScalarOf(3), roleInfos(a)["eng"].Consumed["cpus"], "reservations count toward their role and its ancestors")
	require.Equal(t, resources.ScalarOf(2), roleInfos(a)["eng/backend"].Consumed["cpus"])
}

func testQuotaLimits(t *testing.T, a allocator.Allocator) {
	for i := range 6 {
		addAgent(t, a, fmt.Sprint("a", i), "cpus:2;mem:1024;ports:[1-10]")
	}
	addAgent(t, a, "r", "cpus(eng):1;mem(eng):128")
	require.NoError(t, a.SetQuota("eng", allocator.Quota{Limit: allocator.Quantities{"cpus": resources.ScalarOf(5)}}))
	addFramework(t, a, "parent", "eng")
	addFramework(t, a, "child", "eng/a")
	addFramework(t, a, "grandchild", "eng/a/b")

	engCPUs := func() resources.Scalar {
		return roleInfos(a)["eng"].Consumed["cpus"]
	}
	now := t0
	var held []allocator.Offer
	for range 5 {
		offers := allocate(t, a, now)
		for _, o := range offers {
			require.True(t, o.Role == "eng" || strings.HasPrefix(o.Role, "eng/"), "offer for %s", o.Role)
		}
		held = append(held, offers...)
		require.LessOrEqual(t, engCPUs(), resources.ScalarOf(5), "the limit counts the role's descendants and reservations")
		now = now.Add(time.Second)
	}
	// 1 reserved cpu and 4 unreserved: the limit is reached, the rest of
	// the cluster (memory too) is offered when it comes with cpus inside
	// the limit, and never beyond.
	require.Equal(t, resources.ScalarOf(5), engCPUs())
	var cpus resources.Scalar
	for _, o := range held {
		cpus = cpus.Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(5), cpus)

	// Another role is not limited.
	addFramework(t, a, "web", "web")
	var webCPUs resources.Scalar
	for _, o := range allocate(t, a, now) {
		require.Equal(t, "web", o.FrameworkID)
		webCPUs = webCPUs.Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(8), webCPUs)

	// Raising the limit lets the role grow again once resources come back.
	require.NoError(t, a.SetQuota("eng", allocator.Quota{Limit: allocator.Quantities{"cpus": resources.ScalarOf(20)}}))
	require.NoError(t, a.Suppress("web"))
	for _, o := range allocate(t, a, now) {
		require.Fail(t, "nothing is free", "offer %v", o)
	}
}

func testQuotaGuarantees(t *testing.T, a allocator.Allocator) {
	for i := range 4 {
		addAgent(t, a, fmt.Sprint("a", i), "cpus:4;mem:4096")
	}
	// Role q is guaranteed 6 cpus; its framework is suppressed for now.
	require.NoError(t, a.SetQuota("q", allocator.Quota{Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(6)}}))
	require.NoError(t, a.AddFramework(allocator.Framework{ID: "quota", Roles: []string{"q"}, SuppressedRoles: []string{"q"}, Active: true}, nil))
	addFramework(t, a, "other", "web")

	// The other role gets no more than 16-6 cpus: 6 are held back.
	var cpus resources.Scalar
	for _, o := range allocate(t, a, t0) {
		require.Equal(t, "other", o.FrameworkID)
		cpus = cpus.Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(10), cpus)
	require.Empty(t, allocate(t, a, t0), "what is held back stays free")

	// When the quota framework revives, it gets its guarantee.
	require.NoError(t, a.Revive("quota"))
	cpus = 0
	for _, o := range allocate(t, a, t0) {
		require.Equal(t, "quota", o.FrameworkID)
		cpus = cpus.Add(o.Resources.ScalarOf("cpus"))
	}
	require.Equal(t, resources.ScalarOf(6), cpus)
	require.Equal(t, resources.ScalarOf(6), roleInfos(a)["q"].Consumed["cpus"])

	// Removing the quota releases nothing (nothing is held back any more).
	require.NoError(t, a.SetQuota("q", allocator.Quota{}))
	require.Empty(t, a.Quotas())
}

func testQuotaBookkeeping(t *testing.T, a allocator.Allocator) {
	q := allocator.Quota{
		Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(2)},
		Limit:     allocator.Quantities{"cpus": resources.ScalarOf(4), "mem": resources.ScalarOf(1024)},
	}
	require.NoError(t, a.SetQuota("eng/backend", q))
	require.Equal(t, map[string]allocator.Quota{"eng/backend": q}, a.Quotas())
	roles := roleInfos(a)
	require.Equal(t, q, roles["eng/backend"].Quota)
	require.Contains(t, roles, "eng", "a role's ancestors are listed")

	for name, bad := range map[string]allocator.Quota{
		"guarantee above limit": {Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(5)}, Limit: allocator.Quantities{"cpus": resources.ScalarOf(4)}},
		"negative guarantee":    {Guarantee: allocator.Quantities{"cpus": -1}},
		"negative limit":        {Limit: allocator.Quantities{"mem": -1}},
		"unnamed resource":      {Limit: allocator.Quantities{"": resources.ScalarOf(1)}},
	} {
		require.ErrorIs(t, a.SetQuota("eng", bad), allocator.ErrInvalid, name)
	}
	require.ErrorIs(t, a.SetQuota("*", q), allocator.ErrInvalid)
	require.ErrorIs(t, a.SetQuota("a b", q), allocator.ErrInvalid)
	require.ErrorIs(t, a.SetQuota("", q), allocator.ErrInvalid)
	require.Equal(t, map[string]allocator.Quota{"eng/backend": q}, a.Quotas(), "rejected quotas change nothing")

	// Quotas returns copies.
	a.Quotas()["eng/backend"].Limit["cpus"] = 0
	require.Equal(t, resources.ScalarOf(4), a.Quotas()["eng/backend"].Limit["cpus"])

	require.NoError(t, a.SetQuota("eng/backend", allocator.Quota{}))
	require.Empty(t, a.Quotas())
}

func testFrameworkMinAllocatable(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "small", "cpus:2;mem:1024")
	addAgent(t, a, "big", "cpus:8;mem:1024")
	require.NoError(t, a.AddFramework(allocator.Framework{
		ID: "picky", Roles: []string{"r", "s"}, Active: true,
		MinAllocatable: map[string][]allocator.Quantities{
			"r": {{"cpus": resources.ScalarOf(4)}, {"mem": resources.ScalarOf(2048)}},
		},
	}, nil))
	require.NoError(t, a.Suppress("picky", "s"))
	o := one(t, allocate(t, a, t0))
	require.Equal(t, "big", o.AgentID, "only the agent reaching one of the framework's minimums")
	require.Equal(t, "r", o.Role)

	// Its other role keeps the allocator's minimum.
	require.NoError(t, a.Revive("picky", "s"))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, allocator.Offer{FrameworkID: "picky", AgentID: "small", Role: "s", Resources: o.Resources}, o)
	recoverOffer(t, a, o, 0, t0)

	// A role with no alternative takes anything; updating the framework
	// replaces its minimums.
	require.NoError(t, a.UpdateFramework(allocator.Framework{
		ID: "picky", Roles: []string{"r"}, Active: true,
		MinAllocatable: map[string][]allocator.Quantities{"r": nil},
	}))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "small", o.AgentID)

	require.ErrorIs(t, a.UpdateFramework(allocator.Framework{
		ID: "picky", Roles: []string{"r"}, MinAllocatable: map[string][]allocator.Quantities{"t": nil},
	}), allocator.ErrInvalid, "a minimum for a role not subscribed")
	require.ErrorIs(t, a.UpdateFramework(allocator.Framework{
		ID: "picky", Roles: []string{"r"}, MinAllocatable: map[string][]allocator.Quantities{"r": {{"cpus": -1}}},
	}), allocator.ErrInvalid, "a negative minimum")
}

// Package allocator decides which framework is offered which agent's
// resources: the Allocator interface the master drives, and DRF, the
// hierarchical weighted Dominant Resource Fairness allocator of Apache
// Mesos, with quotas. An allocator is a pure data structure: no goroutines,
// no I/O, no clock (time is passed in) and no global state; its only
// randomness is an injected, seeded source. The conformance suite in
// allocatortest runs against any implementation.
//
// # Offers, allocations, filters
//
// An allocation cycle (Allocate, or AllocateAgents for the agents whose
// free resources changed) returns offers: "framework F may use these
// resources of agent A, for role R". From that moment the resources are
// allocated to F, whether F's scheduler still has to look at the offer or
// has launched tasks on it; the allocator does not tell the two apart.
// They become free again only through Recover: the master recovers a
// declined or rescinded offer, the part of an accepted offer no task used,
// and the resources of every task that ends. A framework that declines may
// refuse the agent for a while: Recover with refuse > 0 leaves a filter,
// and until it expires the framework is not offered, for that role on that
// agent, anything contained in what it refused; an agent with more or
// different free resources is offered again. A framework can also suppress
// offers for some or all of its roles until it revives them (Revive also
// drops its filters), an inactive (disconnected) framework gets no offers
// at all, and neither does a deactivated agent (disconnected, or draining),
// which keeps its allocations.
//
// Operations that change the shape of resources but not their amounts
// (RESERVE, UNRESERVE, CREATE and DESTROY of a persistent volume) go
// through UpdateAllocation, on what a framework holds (the offer it
// accepted) or on what is free (the operator API): the agent's total
// changes with them, shares do not, and a new reservation counts toward
// its role's quota at once.
//
// # Roles
//
// Roles are paths ("eng/backend/search") and form a tree. Resources
// reserved to a role are offered only to it and its descendants (a
// reservation to eng serves eng/backend; a reservation refined to
// eng/backend does not serve eng); unreserved ones to any role. A framework
// subscribes to one role or several (MULTI_ROLE) and is offered resources
// for each, every offer carrying its role. Weights (SetWeight) apply at
// every level of the tree.
//
// # Fairness
//
// A role's dominant share is the largest fraction of the cluster's total of
// any scalar resource (cpus, mem, disk, gpus...; ranges such as ports and
// sets do not count) that is allocated to it and its descendants, divided
// by its weight; it orders the role among its siblings only (Mesos's
// hierarchical sorter). A role with frameworks of its own and sub-roles
// puts its own frameworks among its children as one more sibling, of
// weight 1, for what is allocated to the role itself. A cycle visits the
// agents in random order; on each it walks the tree from the root, the
// children of each node from the lowest share up, and in each role its
// frameworks from the lowest dominant share of their own allocation in that
// role up (ties go to the smaller name or ID, so cycles are reproducible).
// The first framework of a role that is active, unsuppressed, not filtered
// and for which the offer reaches its minimum size (Options.MinAllocatable:
// by default cpus:0.01 or mem:32, as Mesos; a framework may set its own per
// role, as FrameworkInfo.offer_filters) is offered everything on the agent
// the role may use. Shares are updated after each agent, so the next agent
// goes to whoever is now furthest behind. With siblings of weight 2 and 1
// both asking for everything, the first ends with twice the dominant share
// of the second. Offers count toward shares until they are recovered, so
// fairness is as fine as the offers. Options.Sorter selects Mesos's random
// sorter instead: siblings in a random order weighted by weight, the
// frameworks of a role shuffled.
//
// # Quota
//
// A quota (SetQuota) has a guarantee and a limit, in quantities of scalar
// resources, counted over the role and its descendants: what is reserved
// to them, allocated or not, plus the unreserved, non-revocable resources
// allocated to them, as Mesos counts a role's consumption. A limit is never
// exceeded: unreserved scalars offered to a role are cut to what its limit,
// and its ancestors' limits, leave. A guarantee holds resources back: the
// required headroom is what the guarantees still lack (a guaranteed role
// needs the larger of its own shortfall and the sum of what its nearest
// guaranteed descendants need), and no role is offered unreserved scalars
// that would leave less than that free on the active agents. When some
// guarantee is unmet, a cycle first walks only the roles under a guarantee,
// offering each what lowers the requirement (even out of the headroom) and
// what else it may use within its limits and the surplus, then every role.
// Reserved, revocable and non-scalar resources are never held back.
//
// # Cost
//
// A cycle costs O(A) for the A agents it is given plus the walks it makes;
// most agents need none. An agent whose last walk found nobody eligible for
// what is left on it is idle, and stays so until it gets back more than it
// had then, a filter that mattered expires, or some framework role becomes
// eligible where it was not (added, activated, unsuppressed, revived, its
// minimum offer size changed): a cycle skips such an agent in O(1), and
// when a few framework roles were logged eligible since, checks only those.
// So a cluster where nothing changed costs O(A) per cycle, and a framework
// reviving often costs O(A) cheap checks, not a walk of every framework on
// every agent.
//
// A walk costs O(depth × siblings passed) to find the roles with offerable
// frameworks (a subtree without any is passed in O(1)), and in each role,
// frameworks are checked in order until one is eligible: a bit test for
// "no filter of this framework here", and when every filter on the agent
// refused the same resources (frameworks declining whole offers, interned
// once per agent) and what is free still fits in them, another bit test
// for "filtered". When nearly all of a large role's frameworks refused the
// agent, the few that did not are found through the bits, in
// O(frameworks/64). An offer costs O(resources on the agent) plus the move
// of the framework and its roles in their orderings, O(log n + 64) in
// lists kept in blocks of 64. A cycle that follows a change of the
// cluster's totals (an agent added, removed or resized) first recomputes
// every share and re-sorts, O(R log R + F log F). Quotas add, per role
// walked, O(depth) to cut offers to limits and headroom; the headroom
// required follows allocations in O(depth).
//
// Filters are kept by framework role and agent, so Revive costs O(that
// framework's filters) and RemoveAgent O(the filters on the agent).
// Recover, AddFramework and the like reposition one framework and its
// roles. Check walks everything and is meant for tests.
package allocator

// Package allocator decides which framework is offered which agent's
// resources: the Allocator interface the master drives, and DRF, weighted
// Dominant Resource Fairness as Apache Mesos's hierarchical allocator does
// it. An allocator is a pure data structure: no goroutines, no I/O, no
// clock (time is passed in) and no global state; its only randomness is an
// injected, seeded source. The conformance suite in allocatortest runs
// against any implementation.
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
// drops its filters), and an inactive (disconnected) framework gets no
// offers at all. Resources reserved to a role are offered only to
// frameworks of that role; unreserved ones to any.
//
// # Fairness
//
// A role's dominant share is the largest fraction of the cluster's total of
// any scalar resource (cpus, mem, disk, gpus...; ranges such as ports and
// sets do not count) that is allocated to it, divided by its weight. A
// cycle visits the agents in random order; on each agent it walks the roles
// from the lowest weighted share up, and in each role its frameworks from
// the lowest dominant share of their own allocation in that role up (ties
// go to the smaller name or ID, so cycles are reproducible). The first
// framework that is active, unsuppressed for the role and not filtered is
// offered everything on the agent the role may use (the free unreserved
// resources and those reserved to the role), provided that reaches the
// minimum offer size (Options.MinAllocatable: by default cpus:0.01 or
// mem:32, as Mesos). Shares are updated after each offer, so the next agent
// goes to whoever is now furthest behind. With a role of weight 2 and one
// of weight 1 both asking for everything, the first ends with twice the
// dominant share of the second. Offers count toward shares until they are
// recovered, so fairness is as fine as the offers: frameworks that answer
// offers one at a time (the master allocating again on each recovery) and
// take a task from each end with dominant shares within about a task of
// each other, while within one full cycle over many agents they take turns
// at whole agents. Quota and hierarchical role trees (sub-role shares
// rolling up into their parents) are not implemented yet; the roles are
// kept in one flat ordering, which a tree of orderings can replace.
//
// # Cost
//
// DRF caches each agent's free resources and keeps the roles, and each
// role's frameworks, in slices ordered by share; an offer moves the role
// and framework that received it to their new places, O(log R) comparisons
// and a copy of the entries passed (at most R roles, or F_r frameworks of
// the role). A
// cycle over A agents costs O(A) to shuffle them, then for each agent with
// free resources above the minimum, O(R) to walk the roles (a role with no
// active, unsuppressed framework is passed over in O(1)) plus, in each
// role that has one, O(F_r) framework checks in the worst case (each one a
// lookup of the framework's filters for the agent, and a containment test
// per running filter), plus O(resources on the agent) per offer. A cycle
// that follows a change of the cluster's totals (an agent added, removed or
// resized) first recomputes every share and re-sorts, O(R log R + F log F).
// Recover, AddFramework and the like reposition one role and framework
// (O(log n) comparisons and a copy of what they pass); RemoveAgent also
// drops every framework's filters for the agent, O(F). Check walks
// everything and is meant for tests.
package allocator

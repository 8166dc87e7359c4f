package allocator

import (
	"errors"
	"time"

	"github.com/apronhq/apron/resources"
)

// Errors returned by allocators; test them with errors.Is. The wrapping
// error names the framework, agent or role concerned. A call that returns
// an error has changed nothing.
var (
	// ErrUnknownFramework: no framework with that ID is known.
	ErrUnknownFramework = errors.New("unknown framework")
	// ErrUnknownAgent: no agent with that ID is known.
	ErrUnknownAgent = errors.New("unknown agent")
	// ErrExists: a framework or agent with that ID was already added.
	ErrExists = errors.New("already exists")
	// ErrInvalid: malformed input, such as a framework without roles, a
	// suppressed role the framework is not subscribed to, an invalid weight
	// or quota, or resources reserved to a role other than the one they
	// are allocated to.
	ErrInvalid = errors.New("invalid argument")
	// ErrOverAllocation: resources said to be allocated that the agent does
	// not have free (AddAgent, AddFramework, UpdateAgent) or that the
	// framework does not hold (Recover).
	ErrOverAllocation = errors.New("over-allocation")
)

// MaxRefuse caps the refuse duration of Recover, as Mesos caps
// refuse_seconds.
const MaxRefuse = 365 * 24 * time.Hour

// Quantities are amounts of scalar resources by name ("cpus" → 4, "mem" →
// 4096), whatever their reservations or other attributes: Mesos's
// ResourceQuantities, as quotas and minimum offer sizes are given.
type Quantities map[string]resources.Scalar

// Quota is what a role is guaranteed and what it may never exceed, counted
// over the role and its sub-roles: the reservations made to them (allocated
// or not) plus the unreserved, non-revocable resources allocated to them,
// as Mesos counts a role's quota consumption. A resource a Quantities does
// not name is neither guaranteed nor limited.
type Quota struct {
	// Guarantee is set aside for the role: while its consumption is below
	// it, resources are held back from other roles so that it can still be
	// met (Mesos's quota headroom), and the role is offered resources
	// before any role without an unmet guarantee.
	Guarantee Quantities
	// Limit is never exceeded: the role and its sub-roles are not offered
	// unreserved resources beyond it. Each amount must be no less than the
	// guarantee of the same resource.
	Limit Quantities
}

// Framework is what the allocator knows of a framework.
type Framework struct {
	ID string
	// Roles are the roles the framework subscribes to (FrameworkInfo.roles,
	// or its single legacy role); at least one, no duplicates.
	Roles []string
	// SuppressedRoles are roles, among Roles, for which the framework wants
	// no offers.
	SuppressedRoles []string
	// Active is false while the scheduler is disconnected: an inactive
	// framework keeps its allocation but gets no offers.
	Active bool
	// MinAllocatable gives, for some of the framework's roles, alternative
	// minimum offer sizes that replace the allocator's own for the
	// framework's offers of that role (FrameworkInfo.offer_filters
	// min_allocatable_resources): an offer is made only if it holds at
	// least every quantity of one alternative. A role given with no
	// alternative takes any non-empty offer.
	MinAllocatable map[string][]Quantities
}

// Agent is what the allocator knows of an agent.
type Agent struct {
	ID       string
	Hostname string
	// Total is everything the agent has, reserved or not; no entry may
	// carry an allocation role.
	Total resources.Resources
}

// Offer is an allocation made by a cycle: the master turns it into an offer
// to the framework. Its resources are allocated to the framework from the
// moment Allocate returns them until they are recovered.
type Offer struct {
	FrameworkID string
	AgentID     string
	// Role is the role the resources are allocated to; every entry of
	// Resources carries it as its AllocationRole.
	Role      string
	Resources resources.Resources
}

// RoleInfo describes a role for the operator API.
type RoleInfo struct {
	Name   string
	Weight float64
	// Allocated is the scalar quantity of each resource allocated to the
	// role and its sub-roles (offered or used by tasks), by resource name;
	// zeros are left out.
	Allocated map[string]resources.Scalar
	// Share is the role's weighted dominant share, which orders it among
	// its siblings: the largest fraction of the cluster's total of any
	// scalar resource that is allocated to the role and its sub-roles,
	// divided by its weight.
	Share float64
	// Frameworks are the IDs of the frameworks subscribed to the role
	// itself or still holding resources allocated to it, sorted.
	Frameworks []string
	// Quota is the role's quota (empty when none is set), and Consumed what
	// counts against it: the reservations to the role and its sub-roles
	// plus the unreserved, non-revocable resources allocated to them.
	Quota    Quota
	Consumed Quantities
}

// Allocator decides which framework is offered which agent's resources.
//
// An Allocator is a data structure owned by one goroutine (the master's): it
// is not safe for concurrent use, starts no goroutines, does no I/O and
// never reads a clock; the caller passes the time to the calls that need it.
// Methods never panic on bad input; one that returns an error has changed
// nothing.
//
// Roles form a tree by their paths: "eng/backend" is a child of "eng".
// Resources reserved to a role may be allocated to it and to its
// descendants (refined reservations), never to another role.
//
// Resources passed to an Allocator as allocated (used, recovered) carry
// their allocation role (Resource.AllocationRole). Where an entry has none,
// the framework's only role is assumed (for Recover: the only role of what
// it holds on that agent), and the call fails with ErrInvalid when there is
// more than one or, for a framework not yet added, none known. An entry
// reserved to a role it cannot be allocated to is ErrInvalid too.
type Allocator interface {
	// AddFramework adds a framework. used gives, by agent ID, the resources
	// the framework holds on agents the allocator already knows (tasks
	// learnt after a master failover). used[agent] replaces whatever the
	// allocator already attributes to the framework on that agent (from
	// AddAgent, when the agent re-registered before the framework
	// re-subscribed), so passing the same resources to both does not count
	// them twice. Allocations recorded by AddAgent for a framework not yet
	// added are kept (and counted toward their roles' shares) until the
	// framework is added or removed, or they are recovered.
	AddFramework(f Framework, used map[string]resources.Resources) error
	// UpdateFramework replaces a framework's roles, suppressed roles,
	// activity and minimum offer sizes (UPDATE_FRAMEWORK, re-subscription).
	// Resources allocated to a role the framework leaves stay allocated,
	// and count toward the role, until recovered; its filters for that
	// role are dropped. Becoming inactive drops its filters, as
	// DeactivateFramework does.
	UpdateFramework(f Framework) error
	// RemoveFramework forgets a framework; everything allocated to it
	// returns to its agents.
	RemoveFramework(frameworkID string) error
	// ActivateFramework lets a framework be offered resources again.
	ActivateFramework(frameworkID string) error
	// DeactivateFramework stops offers to a framework (its scheduler
	// disconnected) and drops its filters, as Mesos does; it keeps its
	// allocation.
	DeactivateFramework(frameworkID string) error

	// AddAgent adds an agent, active. used gives, by framework ID, the
	// resources frameworks hold on it (tasks it reports when it
	// re-registers); the framework need not have been added yet. Their sum
	// must fit in the agent's total (ErrOverAllocation).
	AddAgent(a Agent, used map[string]resources.Resources) error
	// UpdateAgent changes an agent's total resources. What is allocated on
	// the agent must still fit (ErrOverAllocation). A larger agent gets
	// past refusal filters made for a smaller one.
	UpdateAgent(agentID string, total resources.Resources) error
	// RemoveAgent forgets an agent, the allocations on it and every
	// framework's filters for it.
	RemoveAgent(agentID string) error
	// ActivateAgent lets an agent's resources be offered again.
	ActivateAgent(agentID string) error
	// DeactivateAgent stops offers of an agent's resources (it is
	// disconnected, or draining); what is allocated on it stays allocated
	// and can be recovered.
	DeactivateAgent(agentID string) error

	// Recover returns resources allocated to a framework on an agent: a
	// declined or rescinded offer, the unused part of an accepted offer,
	// or the resources of a task that ended. The framework must hold them
	// (ErrOverAllocation). With refuse > 0 (capped at MaxRefuse) the
	// framework is not offered, for the same role on that agent, resources
	// contained in what it refused until now+refuse: Mesos's refused-offer
	// filter, so an agent with more or different free resources is offered
	// again. Filters are made only for roles the framework subscribes to.
	Recover(frameworkID, agentID string, rs resources.Resources, refuse time.Duration, now time.Time) error
	// UpdateAllocation applies an operation that changes the shape of
	// resources but not their amounts (RESERVE, UNRESERVE, CREATE and
	// DESTROY of a persistent volume) to what a framework holds on an
	// agent: from, which the framework must hold (ErrOverAllocation),
	// becomes to, and the agent's total changes the same way. Entries of
	// from and to carry their allocation role (or take the framework's
	// only role there, as Recover); each role must get back exactly the
	// quantities it gave (ErrInvalid), and to must be allocatable to its
	// role. With frameworkID "", the operation applies to the agent's
	// unallocated resources instead (the operator API): from and to carry
	// no allocation role and from must be free on the agent. Shares do not
	// change; quota consumption does (a reservation counts for its role
	// whether allocated or not).
	UpdateAllocation(frameworkID, agentID string, from, to resources.Resources) error
	// Suppress stops offers to a framework for some of its roles, or all
	// of them when none is given.
	Suppress(frameworkID string, roles ...string) error
	// Revive unsuppresses a framework's roles (all of them when none is
	// given) and drops its filters for them.
	Revive(frameworkID string, roles ...string) error
	// SetWeight sets a role's weight (1 by default): a role of weight 2 is
	// entitled to twice the dominant share of a sibling of weight 1. A
	// weight that is not a positive finite number is ErrInvalid.
	SetWeight(role string, weight float64) error
	// SetQuota sets a role's quota; an empty Quota removes it. Amounts must
	// be non-negative and no guarantee may exceed the limit of the same
	// resource (ErrInvalid); role "*" takes no quota. Resources already
	// allocated beyond a new limit stay allocated until recovered.
	SetQuota(role string, q Quota) error
	// Quotas returns the quotas set, by role.
	Quotas() map[string]Quota

	// Allocate runs one allocation cycle over every agent and returns the
	// offers made. A cycle is work-conserving: afterwards, no active agent
	// has free resources that an active, unsuppressed framework could be
	// offered for one of its roles without breaking one of its filters,
	// the minimum size of an offer, a quota limit or the headroom held for
	// quota guarantees.
	Allocate(now time.Time) []Offer
	// AllocateAgents runs a cycle over the given agents only (those that
	// gained free resources), so that its cost grows with what changed.
	// Unknown IDs are ignored.
	AllocateAgents(now time.Time, agentIDs ...string) []Offer

	// Allocation returns what is allocated to a framework, by agent ID;
	// nil for an unknown framework.
	Allocation(frameworkID string) map[string]resources.Resources
	// Available returns the unallocated resources of an agent; nil for an
	// unknown agent.
	Available(agentID string) resources.Resources
	// Roles describes the roles that have frameworks, allocations,
	// reserved scalars, a weight or a quota set, and their ancestors,
	// sorted by name.
	Roles() []RoleInfo
	// Check verifies the allocator's invariants (on every agent, the
	// allocations plus the available resources are the total, and nothing
	// is negative; implementations add their own) and describes the first
	// violation found.
	Check() error
}

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
	// or resources reserved to a role other than the one they are
	// allocated to.
	ErrInvalid = errors.New("invalid argument")
	// ErrOverAllocation: resources said to be allocated that the agent does
	// not have free (AddAgent, AddFramework, UpdateAgent) or that the
	// framework does not hold (Recover).
	ErrOverAllocation = errors.New("over-allocation")
)

// MaxRefuse caps the refuse duration of Recover, as Mesos caps
// refuse_seconds.
const MaxRefuse = 365 * 24 * time.Hour

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
	// role (offered or used by tasks), by resource name; zeros are left
	// out.
	Allocated map[string]resources.Scalar
	// Share is the role's weighted dominant share: the largest fraction of
	// the cluster's total of any scalar resource that is allocated to the
	// role, divided by its weight.
	Share float64
	// Frameworks are the IDs of the frameworks subscribed to the role or
	// still holding resources allocated to it, sorted.
	Frameworks []string
}

// Allocator decides which framework is offered which agent's resources.
//
// An Allocator is a data structure owned by one goroutine (the master's): it
// is not safe for concurrent use, starts no goroutines, does no I/O and
// never reads a clock; the caller passes the time to the calls that need it.
// Methods never panic on bad input; one that returns an error has changed
// nothing.
//
// Resources passed to an Allocator carry their allocation role
// (Resource.AllocationRole) when they are allocated; where an entry has
// none, the framework's only role is assumed, and the call fails with
// ErrInvalid when the framework has more than one.
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
	// UpdateFramework replaces a framework's roles, suppressed roles and
	// activity (UPDATE_FRAMEWORK, re-subscription). Resources allocated to
	// a role the framework leaves stay allocated, and count toward the
	// role, until recovered; its filters for that role are dropped.
	// Becoming inactive drops its filters, as DeactivateFramework does.
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

	// AddAgent adds an agent. used gives, by framework ID, the resources
	// frameworks hold on it (tasks it reports when it re-registers); the
	// framework need not have been added yet. Their sum must fit in the
	// agent's total (ErrOverAllocation).
	AddAgent(a Agent, used map[string]resources.Resources) error
	// UpdateAgent changes an agent's total resources. What is allocated on
	// the agent must still fit (ErrOverAllocation). A larger agent gets
	// past refusal filters made for a smaller one.
	UpdateAgent(agentID string, total resources.Resources) error
	// RemoveAgent forgets an agent, the allocations on it and every
	// framework's filters for it.
	RemoveAgent(agentID string) error

	// Recover returns resources allocated to a framework on an agent: a
	// declined or rescinded offer, the unused part of an accepted offer,
	// or the resources of a task that ended. The framework must hold them
	// (ErrOverAllocation). With refuse > 0 (capped at MaxRefuse) the
	// framework is not offered, for the same role on that agent, resources
	// contained in what it refused until now+refuse: Mesos's refused-offer
	// filter, so an agent with more or different free resources is offered
	// again. Filters are made only for roles the framework subscribes to.
	Recover(frameworkID, agentID string, rs resources.Resources, refuse time.Duration, now time.Time) error
	// Suppress stops offers to a framework for some of its roles, or all
	// of them when none is given.
	Suppress(frameworkID string, roles ...string) error
	// Revive unsuppresses a framework's roles (all of them when none is
	// given) and drops its filters for them.
	Revive(frameworkID string, roles ...string) error
	// SetWeight sets a role's weight (1 by default): a role of weight 2 is
	// entitled to twice the dominant share of a role of weight 1. A weight
	// that is not a positive finite number is ErrInvalid.
	SetWeight(role string, weight float64) error

	// Allocate runs one allocation cycle over every agent and returns the
	// offers made. A cycle is work-conserving: afterwards, no agent has
	// free resources that an active, unsuppressed framework could be
	// offered for one of its roles without breaking one of its filters or
	// the minimum size of an offer.
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
	// Roles describes the roles that have frameworks, allocations or a
	// weight set, sorted by name.
	Roles() []RoleInfo
	// Check verifies the allocator's invariants (on every agent, the
	// allocations plus the available resources are the total, and nothing
	// is negative; implementations add their own) and describes the first
	// violation found.
	Check() error
}

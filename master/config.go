package master

import (
	crand "crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/resources"
)

// Config configures a master. The zero value of every field but the ones
// marked required is a working default, Mesos's where Mesos has one.
type Config struct {
	// Hostname and Port describe the master in MasterInfo (Mesos's
	// --hostname and --port).
	Hostname string
	Port     uint32
	// IP is the address the master advertises in MasterInfo (ip, pid and
	// address.ip), as Mesos's --ip or --advertise_ip: the address clients
	// reach it on, never 0.0.0.0. Empty means Hostname when Hostname is an
	// IP literal, 127.0.0.1 for "localhost", else unknown (MasterInfo then
	// carries ip 0 and no address.ip, and its pid names Hostname).
	IP string

	// Allocator divides resources among frameworks. Default: weighted DRF
	// (allocator.NewDRF) seeded from Rand, configured by MinAllocatable
	// and Sorter.
	Allocator allocator.Allocator
	// MinAllocatable lists alternative minimum offer sizes for the default
	// allocator, as Mesos's --min_allocatable_resources
	// ("cpus:0.01|mem:32"): resources are offered only when they reach
	// every quantity of at least one alternative. nil means Mesos's
	// default, cpus:0.01 or mem:32; an empty, non-nil slice lets any
	// non-empty offer through. A framework replaces it for its own offers
	// of a role with FrameworkInfo.offer_filters. Only with a nil
	// Allocator.
	MinAllocatable []resources.Resources
	// Sorter chooses how the default allocator orders roles and frameworks:
	// allocator.SorterDRF (the default) or allocator.SorterRandom, Mesos's
	// --role_sorter and --framework_sorter (one choice serves both). Only
	// with a nil Allocator.
	Sorter allocator.Sorter
	// AllocationInterval is how often a full allocation cycle runs
	// (Mesos: 1 s). Resources that become free (a new agent, a declined
	// offer, an ended task) are offered sooner, at the next tick.
	AllocationInterval time.Duration
	// TickInterval is the master's time resolution: timers and
	// event-triggered allocations run on ticks (default 20 ms).
	TickInterval time.Duration
	// OfferTimeout rescinds offers not answered in time; 0 (the default,
	// as Mesos) means offers never time out.
	OfferTimeout time.Duration
	// HeartbeatInterval is how often subscribed schedulers get HEARTBEAT
	// (Mesos: 15 s).
	HeartbeatInterval time.Duration
	// AgentPingTimeout and MaxAgentPingTimeouts: the master pings every
	// agent each AgentPingTimeout and considers it unreachable after
	// MaxAgentPingTimeouts pings in a row without a PONG (Mesos: 15 s × 5).
	AgentPingTimeout     time.Duration
	MaxAgentPingTimeouts int
	// MaxCompletedTasksPerFramework bounds the terminal tasks kept per
	// framework, live or completed, for the operator API (Mesos's
	// --max_completed_tasks_per_framework, default 1000). Negative keeps
	// none.
	MaxCompletedTasksPerFramework int
	// MaxCompletedFrameworks bounds the torn-down frameworks kept, with
	// their completed tasks, for the operator API's completed_frameworks;
	// the oldest is dropped first (Mesos's --max_completed_frameworks,
	// default 50). Negative keeps none.
	MaxCompletedFrameworks int
	// StreamBuffer is the number of events queued for one subscriber's
	// reader (default 4096); what does not fit waits in the subscriber's
	// backlog.
	StreamBuffer int
	// StreamBacklog bounds, in bytes of encoded events, what waits for one
	// slow subscriber beyond StreamBuffer (default 64 MiB: a reconciliation
	// of 100,000 tasks, or a launch of as many on one agent, fits). A
	// subscriber whose backlog grows past it is disconnected, so a stuck
	// client never grows the master without bound, and the master never
	// waits for one.
	StreamBacklog int
	// Weights are the initial role weights (default 1 for every role).
	Weights map[string]float64
	// Quotas are the initial role quotas, as UPDATE_QUOTA would set them
	// (Mesos sets quota only at run time; an embedder may know its quotas
	// up front). The capacity check of UPDATE_QUOTA does not apply: no
	// agent has registered yet.
	Quotas map[string]allocator.Quota
	// Leadership says whether this master leads; the HTTP API of a master
	// that does not redirects clients to the leader (307) or, when no
	// leader is known, answers 503. nil means the master always leads.
	Leadership Leadership
	// AgentTLS, when set, says the agents serve HTTPS, as a cluster where
	// Mesos's LIBPROCESS_SSL_ENABLED is on: Offer.url (and inverse
	// offers') of an agent connected over HTTP says https, and the files
	// API reaches agents over https with this client configuration (it
	// verifies them, and presents its certificate to agents that require
	// one). The master's own server TLS is its HTTP server's (serve
	// Handler on a TLS listener). nil: http, as Mesos writes.
	AgentTLS *tls.Config

	// Registry keeps what must survive the master's death: admitted,
	// unreachable and gone agents, weights, quotas, the maintenance
	// schedule (see Registry). Run recovers it before serving anything,
	// and every change to it is durable before its effects reach anyone.
	// nil: the master keeps all of it in memory and a restarted master
	// starts empty, learning agents and frameworks as they come back.
	Registry Registry
	// AgentReregisterTimeout is how long agents admitted in the recovered
	// registry have to re-register before they are marked unreachable
	// (Mesos's --agent_reregister_timeout, 10 min). Only with a Registry.
	AgentReregisterTimeout time.Duration
	// RecoveryAgentRemovalLimit is the largest fraction of the recovered
	// agents that may be marked unreachable when AgentReregisterTimeout
	// runs out; more means something is wrong with the cluster rather
	// than with the agents, and Run fails with ErrRecoveryLimit instead,
	// as Mesos's master exits (--recovery_agent_removal_limit, 100%).
	// 0 means the default, 1.
	RecoveryAgentRemovalLimit float64

	// Clock, Rand and Logger are injected for tests; defaults are the
	// system clock, a ChaCha8 source seeded from crypto/rand and a
	// discarding logger. Stream IDs come from Rand and act as bearer
	// tokens for a stream's calls: an injected Rand should be
	// unpredictable too outside tests.
	Clock  clock.Clock
	Rand   *rand.Rand
	Logger *slog.Logger

	// Authenticator authenticates the HTTP API's requests (Mesos's
	// --http_authenticators; auth.NewBasic over a --credentials file is
	// Mesos's "basic"). Each endpoint family asks for a credential when
	// its switch below is on (Mesos's --authenticate_* flags), and a
	// request without a valid one is answered 401 before anything else
	// happens, leader redirect included. Required when a switch is on.
	// See auth.go for which endpoint is in which family.
	Authenticator auth.Authenticator
	// AuthenticateFrameworks: the scheduler API (realm
	// mesos-master-scheduler) needs a credential, and a framework's
	// FrameworkInfo.principal must be the authenticated principal (Mesos's
	// --authenticate_frameworks / --authenticate_http_frameworks).
	AuthenticateFrameworks bool
	// AuthenticateAgents: the agent link (realm apron-master-agent) needs
	// a credential (Mesos's --authenticate_agents).
	AuthenticateAgents bool
	// AuthenticateHTTPReadOnly: the endpoints that only read (/state,
	// /frameworks, /tasks, /metrics/snapshot, /files/*, ...: realm
	// mesos-master-readonly) need a credential (Mesos's
	// --authenticate_http_readonly).
	AuthenticateHTTPReadOnly bool
	// AuthenticateHTTPReadWrite: the operator API and the endpoints that
	// change something (realm mesos-master-readwrite) need a credential
	// (Mesos's --authenticate_http_readwrite).
	AuthenticateHTTPReadWrite bool
	// RateLimits hold each principal's scheduler API requests to a rate
	// (Mesos's --rate_limits; ParseRateLimits). nil: no limits.
	RateLimits *RateLimits
	// MaxClientRequests bounds the scheduler API requests one client (an
	// authenticated principal, else an IP address) may have open at once,
	// its subscriptions included, so that a flood of subscriptions cannot
	// take the master down; more are answered 429. 0: no bound.
	MaxClientRequests int
	// Authorizer decides what each principal may do (Mesos's --acls with
	// its local authorizer: auth.NewLocal). nil allows everything, as
	// Mesos without ACLs, at no cost. The master asks it for approvers
	// outside its state machine's goroutine, so it may be remote and slow.
	Authorizer auth.Authorizer
	// AgentCredential is the credential the master presents to agents
	// (HTTP Basic) when it forwards a files request to one (files.go), for
	// agents that require one on their read-only endpoints (Mesos's agent
	// --authenticate_http_readonly). nil sends none. The principal needs
	// access_sandboxes and access_mesos_logs on the agents: the master
	// has already authorized the request for its own caller.
	AgentCredential *auth.Credential

	// DisableWebUI turns off the web UI the master serves at "/" (package
	// webui), for an embedder that serves its own there or wants no UI;
	// the APIs it reads stay.
	DisableWebUI bool

	// LogLevel, when set, is the level the embedder's log handler
	// consults (slog.HandlerOptions.Level): the operator API's
	// GET_LOGGING_LEVEL reports it and SET_LOGGING_LEVEL changes it for a
	// while, as Mesos's glog verbosity (see logging.go). nil: the master
	// keeps a level that no handler reads.
	LogLevel *slog.LevelVar
}

// Leadership tells a master whether it leads, and who does when it does not.
// The election package implements it; it must be safe for concurrent use.
type Leadership interface {
	// Leader reports whether this master leads and, when it does not, the
	// leader's base URL (like "http://10.0.0.2:5050"), or "" when no leader
	// is known.
	Leader() (leading bool, leaderURL string)
}

func (c Config) withDefaults() (Config, error) {
	if c.RateLimits != nil {
		if err := c.RateLimits.validate(); err != nil {
			return c, fmt.Errorf("master: %w", err)
		}
	}
	if c.MaxClientRequests < 0 {
		return c, fmt.Errorf("master: MaxClientRequests must not be negative")
	}
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.Port == 0 {
		c.Port = 5050
	}
	if c.AllocationInterval == 0 {
		c.AllocationInterval = time.Second
	}
	if c.TickInterval == 0 {
		c.TickInterval = 20 * time.Millisecond
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 15 * time.Second
	}
	if c.AgentPingTimeout == 0 {
		c.AgentPingTimeout = 15 * time.Second
	}
	if c.MaxAgentPingTimeouts == 0 {
		c.MaxAgentPingTimeouts = 5
	}
	if c.MaxCompletedTasksPerFramework == 0 {
		c.MaxCompletedTasksPerFramework = 1000
	}
	if c.MaxCompletedFrameworks == 0 {
		c.MaxCompletedFrameworks = 50
	}
	if c.AgentReregisterTimeout == 0 {
		c.AgentReregisterTimeout = 10 * time.Minute
	}
	if c.RecoveryAgentRemovalLimit == 0 {
		c.RecoveryAgentRemovalLimit = 1
	}
	if c.RecoveryAgentRemovalLimit < 0 || c.RecoveryAgentRemovalLimit > 1 || c.RecoveryAgentRemovalLimit != c.RecoveryAgentRemovalLimit {
		return c, fmt.Errorf("master: RecoveryAgentRemovalLimit %v is not a fraction between 0 and 1", c.RecoveryAgentRemovalLimit)
	}
	if c.Authenticator == nil && (c.AuthenticateFrameworks || c.AuthenticateAgents || c.AuthenticateHTTPReadOnly || c.AuthenticateHTTPReadWrite) {
		return c, fmt.Errorf("master: authentication is switched on but Config.Authenticator is nil")
	}
	if c.IP == "" {
		c.IP = defaultIP(c.Hostname)
	} else if _, err := netip.ParseAddr(c.IP); err != nil {
		return c, fmt.Errorf("master: IP %q is not an IP address", c.IP)
	}
	if c.StreamBacklog == 0 {
		c.StreamBacklog = 64 << 20
	}
	if c.StreamBuffer == 0 {
		c.StreamBuffer = 4096
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Rand == nil {
		// A cryptographically strong generator: whoever sees some of its
		// outputs (its own stream ID) cannot compute the others'.
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails (Go 1.24)
		c.Rand = rand.New(rand.NewChaCha8(seed))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Allocator == nil {
		if err := validateMinAllocatable(c.MinAllocatable); err != nil {
			return c, err
		}
		if c.Sorter != allocator.SorterDRF && c.Sorter != allocator.SorterRandom {
			return c, fmt.Errorf("master: unknown Sorter %d", c.Sorter)
		}
		// Its own stream from the same seed, so the master's IDs do not
		// shift the allocator's agent order.
		c.Allocator = allocator.NewDRF(allocator.Options{
			Rand:           rand.New(rand.NewPCG(c.Rand.Uint64(), c.Rand.Uint64())),
			MinAllocatable: c.MinAllocatable,
			Sorter:         c.Sorter,
		})
	} else if c.MinAllocatable != nil || c.Sorter != allocator.SorterDRF {
		// Silently ignoring them would leave the embedder guessing why
		// offers do not change.
		return c, fmt.Errorf("master: MinAllocatable and Sorter configure the default allocator; with Config.Allocator set, pass them to that allocator")
	}
	for _, role := range sortedKeys(c.Quotas) {
		if err := validateQuota(role, c.Quotas[role]); err != nil {
			return c, fmt.Errorf("master: Quotas: %w", err)
		}
	}
	for name, d := range map[string]time.Duration{
		"AllocationInterval": c.AllocationInterval, "TickInterval": c.TickInterval,
		"HeartbeatInterval": c.HeartbeatInterval, "AgentPingTimeout": c.AgentPingTimeout,
		"AgentReregisterTimeout": c.AgentReregisterTimeout,
	} {
		if d < 0 {
			return c, fmt.Errorf("master: %s is negative (%v)", name, d)
		}
	}
	if c.OfferTimeout < 0 || c.MaxAgentPingTimeouts < 0 || c.StreamBuffer < 0 || c.StreamBacklog < 0 {
		return c, fmt.Errorf("master: negative OfferTimeout, MaxAgentPingTimeouts, StreamBuffer or StreamBacklog")
	}
	c.MaxCompletedTasksPerFramework = max(c.MaxCompletedTasksPerFramework, 0)
	c.MaxCompletedFrameworks = max(c.MaxCompletedFrameworks, 0)
	return c, nil
}

// defaultIP is the address a master without Config.IP advertises: its
// hostname when that is an IP literal, the loopback address for
// "localhost", else none (resolving a name is I/O the embedder does).
func defaultIP(hostname string) string {
	if a, err := netip.ParseAddr(hostname); err == nil {
		return a.String()
	}
	if hostname == "localhost" {
		return "127.0.0.1"
	}
	return ""
}

// validateMinAllocatable checks Config.MinAllocatable: each alternative
// names resources once, with non-negative amounts (their quantities: a
// scalar's value, the number of ports or set items).
func validateMinAllocatable(alts []resources.Resources) error {
	for i, alt := range alts {
		if err := alt.Validate(); err != nil {
			return fmt.Errorf("master: MinAllocatable[%d]: %w", i, err)
		}
		seen := map[string]bool{}
		for _, r := range alt {
			if seen[r.Name] {
				return fmt.Errorf("master: MinAllocatable[%d] names %q twice", i, r.Name)
			}
			seen[r.Name] = true
		}
	}
	return nil
}

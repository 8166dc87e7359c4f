package master

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/apronhq/apron/allocator"
	apiv1 "github.com/apronhq/apron/api/v1"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/mesosjson"
	"github.com/apronhq/apron/resources"
)

// core is the master's decision logic: a state machine that takes one input
// at a time (a framework call, an agent call, a stream ending, a tick with
// the time in it) and leaves its outputs in its outbox (events to send,
// streams to close). It does no I/O, starts no goroutine and reads no clock,
// so a test or a simulation drives it deterministically; Master is the shell
// that owns it on one goroutine.
type core struct {
	cfg   Config
	log   *slog.Logger
	rand  *rand.Rand
	alloc allocator.Allocator
	info  mesospb.MasterInfo

	now time.Time

	streams    map[string]*stream
	frameworks map[string]*framework
	agents     map[string]*agent
	offers     map[string]*offer
	// completed holds the frameworks removed (torn down, or gone past their
	// failover timeout), oldest first, at most MaxCompletedFrameworks, for
	// the operator API's completed_frameworks, as Mesos keeps them.
	completed []*framework

	nextFramework, nextAgent, nextOffer uint64

	// Allocation: a full cycle is due at nextAllocation; agents whose free
	// resources grew are allocated at the next tick.
	nextAllocation time.Time
	dirtyAgents    map[string]bool
	allocateAll    bool // run a full cycle at the next tick
	nextPing       time.Time

	out outbox
	met metrics
	ops operators // operator API subscribers and weights

	maint maintenance // maintenance schedule, machine modes, inverse offers (maintenance.go)

	admin   agentAdmin     // deactivated, draining, gone agents (operator_agents.go)
	reg     registryMirror // what the registry holds, recovered agents (registry_core.go)
	logging logLevel       // SET_LOGGING_LEVEL (logging.go)
}

// outbox holds what the core decided to send since the shell last drained it.
type outbox struct {
	messages []message
	closes   []string // streams to end
	// registry holds the operations to make durable before any of this
	// outbox's messages and closes take effect (registry_core.go).
	registry []RegistryOp
}

type message struct {
	stream    string
	scheduler *schedulerpb.Event
	agent     *internalpb.Event
	operator  *masterpb.Event
}

type streamKind int

const (
	schedulerStream streamKind = iota
	agentStream
	operatorStream
)

type stream struct {
	id   string
	kind streamKind
	peer string // framework or agent ID
	// principal authenticated the agent stream's REGISTER or REREGISTER;
	// only it may call on the stream (auth.go).
	principal *string
}

// metrics are counters the operator API and /metrics report.
type metrics struct {
	offersMade, offersDeclined, offersRescinded uint64
	tasksLaunched                               uint64
	taskStates                                  map[mesospb.TaskState]uint64
	tasksEnded                                  map[mesospb.TaskState]uint64 // see countTaskEnded
	allocationRuns                              uint64
	allocationTime                              time.Duration
}

func newCore(cfg Config, now time.Time) *core {
	c := &core{
		cfg:         cfg,
		log:         cfg.Logger,
		rand:        cfg.Rand,
		alloc:       cfg.Allocator,
		now:         now,
		streams:     map[string]*stream{},
		frameworks:  map[string]*framework{},
		agents:      map[string]*agent{},
		offers:      map[string]*offer{},
		dirtyAgents: map[string]bool{},
		met:         metrics{taskStates: map[mesospb.TaskState]uint64{}},
		ops:         operators{weights: map[string]float64{}, started: now},
	}
	c.info = masterInfo(cfg, c.uuid())
	c.nextAllocation = now.Add(cfg.AllocationInterval)
	c.nextPing = now.Add(cfg.AgentPingTimeout)
	for role, w := range cfg.Weights {
		if err := c.alloc.SetWeight(role, w); err != nil {
			c.log.Warn("ignoring role weight", "role", role, "weight", w, "err", err)
			continue
		}
		c.ops.weights[role] = w
	}
	for _, role := range sortedKeys(cfg.Quotas) {
		if err := c.alloc.SetQuota(role, cfg.Quotas[role]); err != nil {
			c.log.Warn("ignoring role quota", "role", role, "err", err)
		}
	}
	return c
}

// Version is the version of Apron itself (of this master's build).
const Version = mesosjson.ApronVersion

// MesosVersion is the version of the Apache Mesos API Apron implements
// (v1.MesosVersion). The master reports it where Mesos reports
// MESOS_VERSION (MasterInfo.version, GET_VERSION, /version), since clients
// parse it as a Mesos version and some refuse anything older than 1.0;
// Apron's own version is Version.
const MesosVersion = apiv1.MesosVersion

func ptr[T any](v T) *T { return &v }

// uuid returns a random RFC 4122 version 4 UUID from the injected source.
func (c *core) uuid() string {
	var b [16]byte
	c.uuidBytes(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

func (c *core) uuidBytes(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := c.rand.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
}

// Mesos-style IDs: the master's ID with a sequence number, so IDs from
// different masters never collide.
func (c *core) newFrameworkID() string {
	c.nextFramework++
	return fmt.Sprintf("%s-%04d", c.info.ID, c.nextFramework)
}
func (c *core) newAgentID() string {
	c.nextAgent++
	return fmt.Sprintf("%s-S%d", c.info.ID, c.nextAgent)
}
func (c *core) newOfferID() string {
	c.nextOffer++
	return fmt.Sprintf("%s-O%d", c.info.ID, c.nextOffer)
}

func (c *core) newStream(kind streamKind, peer string) *stream {
	s := &stream{id: c.uuid(), kind: kind, peer: peer}
	c.streams[s.id] = s
	return s
}

// endStream forgets a stream and tells the shell to close it.
func (c *core) endStream(id string) {
	if _, ok := c.streams[id]; !ok {
		return
	}
	delete(c.streams, id)
	c.out.closes = append(c.out.closes, id)
}

func (c *core) sendScheduler(fw *framework, ev *schedulerpb.Event) {
	if fw.stream == "" {
		return
	}
	c.out.messages = append(c.out.messages, message{stream: fw.stream, scheduler: ev})
}

func (c *core) sendAgent(a *agent, ev *internalpb.Event) {
	if a.stream == "" {
		return
	}
	c.out.messages = append(c.out.messages, message{stream: a.stream, agent: ev})
}

// drain returns and clears the outbox.
func (c *core) drain() outbox {
	c.persistSettings()
	o := c.out
	c.out = outbox{}
	return o
}

// streamEnded is the input for a stream that ended on the peer's side or
// because the shell could not deliver to it.
func (c *core) streamEnded(id string) {
	s, ok := c.streams[id]
	if !ok {
		return
	}
	delete(c.streams, id)
	switch s.kind {
	case schedulerStream:
		if fw := c.frameworks[s.peer]; fw != nil && fw.stream == id {
			c.frameworkDisconnected(fw)
		}
	case agentStream:
		if a := c.agents[s.peer]; a != nil && a.stream == id {
			c.agentDisconnected(a)
		}
	case operatorStream:
		c.operatorLeft(id)
	}
}

// offer is resources on one agent offered to one framework for one role.
type offer struct {
	id        string
	framework string
	agent     string
	role      string
	resources resources.Resources
	created   time.Time
}

// proto is the offer in full, as the master keeps it and the operator API
// reports it; offerFor shapes it for the framework's capabilities.
func (o *offer) proto(a *agent, fw *framework) mesospb.Offer {
	p := o.header(a, fw)
	p.Resources = o.resources.ToProto()
	p.AllocationInfo = &mesospb.Resource_AllocationInfo{Role: ptr(o.role)}
	return p
}

// header is the offer without its resources and allocation.
func (o *offer) header(a *agent, fw *framework) mesospb.Offer {
	p := mesospb.Offer{
		ID:             mesospb.OfferID{Value: o.id},
		FrameworkID:    mesospb.FrameworkID{Value: o.framework},
		AgentID:        mesospb.AgentID{Value: o.agent},
		Hostname:       a.info.Hostname,
		URL:            offerURL(a),
		Domain:         a.info.Domain,
		Attributes:     a.info.Attributes,
		Unavailability: a.unavailabilityProto(), // a DRAINING machine's (maintenance.go)
	}
	// As Mesos: the framework's executors running on the agent.
	if fw != nil {
		for _, id := range sortedKeys(fw.executors[a.id]) {
			p.ExecutorIDs = append(p.ExecutorIDs, mesospb.ExecutorID{Value: id})
		}
	}
	return p
}

// removeOffer forgets an offer and gives its resources back to the
// allocator, with a filter of refuse (0 for none).
func (c *core) removeOffer(o *offer, refuse time.Duration) {
	delete(c.offers, o.id)
	if fw := c.frameworks[o.framework]; fw != nil {
		delete(fw.offers, o.id)
	}
	if a := c.agents[o.agent]; a != nil {
		delete(a.offers, o.id)
	}
	c.recover(o.framework, o.agent, o.resources, refuse)
}

// rescindOffer removes an offer and tells its framework.
func (c *core) rescindOffer(o *offer) {
	c.removeOffer(o, 0)
	c.met.offersRescinded++
	if fw := c.frameworks[o.framework]; fw != nil {
		c.sendScheduler(fw, &schedulerpb.Event{
			Type:    schedulerpb.Event_RESCIND.Enum(),
			Rescind: &schedulerpb.Event_Rescind{OfferID: mesospb.OfferID{Value: o.id}},
		})
	}
}

// recover returns resources to the allocator and marks the agent for the
// next event-triggered allocation.
func (c *core) recover(frameworkID, agentID string, rs resources.Resources, refuse time.Duration) {
	if rs.Empty() {
		return
	}
	if err := c.alloc.Recover(frameworkID, agentID, rs, refuse, c.now); err != nil {
		// The allocator and the master disagree: a bug, never input.
		c.log.Error("allocator refused recovered resources", "framework", frameworkID, "agent", agentID, "resources", rs.String(), "err", err)
		return
	}
	c.dirtyAgents[agentID] = true
}

package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// Faults are the probabilities of a run's fault model. Message faults
// are per message; process and partition faults are rates per peer and
// simulated second.
type Faults struct {
	// MaxDelay bounds a message's latency (uniform in [0, MaxDelay]).
	MaxDelay time.Duration
	// Drop loses a call (a request from a peer) on the way to the
	// master, as a failed request the caller does not retry, or a
	// connection attempt (the peer tries again after its timeout).
	// Duplicate delivers a call twice when it is safe to retry (see
	// idempotent). Reorder gives a framework's call its own latency, so
	// it may overtake calls sent before it or be overtaken: a scheduler
	// may make its calls in parallel requests. An agent's calls are
	// never reordered (Apron's agent makes a stream's calls in order, on
	// one sender, as Mesos's libprocess link delivers them); a duplicate
	// follows its original. A stream's messages are never reordered,
	// duplicated or lost alone.
	Drop, Duplicate, Reorder float64
	// Break breaks a stream at one of its messages (its opening
	// included): that message and those after it are lost. The master
	// notices (the stream ends) or not (a half-open connection: pings
	// and heartbeats tell), as does the peer, which reconnects.
	Break float64
	// AgentCrash crashes an agent process, which restarts within MaxDown
	// and recovers from its checkpoint; AgentDeath ends one for good (at
	// most a quarter of the agents); AgentReboot reboots an agent's
	// machine: its tasks die with it, and it comes back within MaxDown as
	// a new agent (REGISTER, a new ID), as a Mesos agent does after a
	// reboot, leaving the old ID to the master's health checks;
	// FrameworkCrash crashes a scheduler,
	// which restarts within MaxDown and fails over (re-subscribes with
	// its ID, then reconciles).
	AgentCrash, AgentDeath, AgentReboot, FrameworkCrash float64
	// MasterFailover replaces the master by a new one (a rate per
	// simulated second for the cluster).
	MasterFailover float64
	MaxDown        time.Duration
	// Partition cuts a peer off for up to MaxPartition; streams break
	// once a partition outlasts TCPTimeout, else what was in flight is
	// delivered after the heal.
	Partition    float64
	MaxPartition time.Duration
	TCPTimeout   time.Duration
	// ExecutorCrash is the share of tasks whose executor dies when the
	// task would have ended, instead of reporting its end: the agent
	// fails the task (TASK_FAILED, REASON_EXECUTOR_TERMINATED), as its
	// core decides for an executor that leaves tasks behind.
	ExecutorCrash float64
}

// RandomFaults draws a run's fault probabilities from rng: each fault is
// off in some runs and up to a few percent in others, so a sweep of seeds
// covers each alone and in combination.
func RandomFaults(rng *rand.Rand) Faults {
	p := func(maxp float64) float64 {
		if rng.IntN(4) == 0 {
			return 0
		}
		return rng.Float64() * maxp
	}
	return Faults{
		MaxDelay:       time.Duration(rng.IntN(3000)) * time.Millisecond,
		Drop:           p(0.05),
		Duplicate:      p(0.1),
		Reorder:        p(0.2),
		Break:          p(0.002),
		AgentCrash:     p(0.01),
		AgentDeath:     p(0.002),
		AgentReboot:    p(0.002),
		MasterFailover: p(0.005),
		FrameworkCrash: p(0.01),
		MaxDown:        time.Duration(1+rng.IntN(90)) * time.Second,
		Partition:      p(0.005),
		MaxPartition:   time.Duration(1+rng.IntN(150)) * time.Second,
		TCPTimeout:     20 * time.Second,
		// Not drawn: the other faults of a seed stay what they were.
		ExecutorCrash: 0.1,
	}
}

// FaultConfig describes a run with faults.
type FaultConfig struct {
	Seed           uint64
	Agents         int
	AgentResources string
	Frameworks     int
	// Shape is each task's resources; each framework runs Tasks tasks.
	Shape string
	Tasks int
	// TaskDuration ± TaskJitter is a task's running time; LongRunning is
	// the fraction of tasks that run until killed. KillRate is how often
	// a framework kills one of its running tasks (per second).
	TaskDuration, TaskJitter time.Duration
	LongRunning              float64
	KillRate                 float64
	// Faults, when nil, are drawn with RandomFaults from the seed.
	Faults *Faults
	// FaultsFor is how long faults are injected; then none for Quiesce,
	// after which the cluster must have settled.
	FaultsFor, Quiesce time.Duration
	Step               time.Duration
	// Trace, if set, is told what happens, step by step.
	Trace func(string)
	// Tolerate names invariants whose violations are counted in
	// FaultResult.Tolerated instead of ending the run: those of master
	// defects known and not fixed yet, so a sweep looks past them.
	Tolerate []string
	// CheckAll checks the step invariants after every step; by default a
	// step in which nothing reached the master or a peer and the master
	// said nothing (about three steps in four) is not checked again: it
	// changed nothing the invariants read.
	CheckAll bool
	// Master configures the master; its Allocator, when nil, is a DRF
	// allocator seeded from Seed.
	Master master.Config
}

// FaultResult sums up a run with faults.
type FaultResult struct {
	Faults                          Faults
	Steps, Checks                   int
	Launched, Finished, Killed      int
	Failed                          int // tasks ending FAILED (their executors crashed)
	Lost                            int // tasks ending LOST, DROPPED, GONE, UNREACHABLE or UNKNOWN to their framework
	Running                         int // tasks running at the end
	AgentCrashes, AgentDeaths       int
	AgentReboots, MasterFailovers   int
	FrameworkCrashes, Partitions    int
	Reconnects                      int
	Net                             NetStats
	SimulatedTime                   time.Duration
	Wall                            time.Duration
	UpdatesSeen, ReconciliationSeen int
	// Tolerated counts the violations of the invariants in
	// FaultConfig.Tolerate, by invariant; the first of each is in
	// FirstTolerated.
	Tolerated      map[string]int
	FirstTolerated map[string]*Violation
}

func (r FaultResult) String() string {
	s := fmt.Sprintf("%d steps (%v simulated, %v wall), %d checks; tasks: %d launched, %d finished, %d killed, %d failed, %d lost/unreachable, %d running; "+
		"faults: %d master failovers, %d agent crashes, %d deaths, %d reboots, %d framework crashes, %d partitions, %d reconnects; "+
		"net: %d sent, %d dropped, %d duplicated, %d reordered, %d held, %d breaks",
		r.Steps, r.SimulatedTime, r.Wall.Round(time.Millisecond), r.Checks, r.Launched, r.Finished, r.Killed, r.Failed, r.Lost, r.Running,
		r.MasterFailovers, r.AgentCrashes, r.AgentDeaths, r.AgentReboots, r.FrameworkCrashes, r.Partitions, r.Reconnects,
		r.Net.Sent, r.Net.Dropped, r.Net.Duplicated, r.Net.Reordered, r.Net.Held, r.Net.Breaks)
	for _, inv := range sortedKeys(r.Tolerated) {
		s += fmt.Sprintf("; tolerated %d violations of %q, the first: %v", r.Tolerated[inv], inv, r.FirstTolerated[inv])
	}
	return s
}

// Violation is an invariant that did not hold: the seed and step reproduce
// it (APRON_SIM_SEED=<seed>).
type Violation struct {
	Seed      uint64
	Agents    int // the run's cluster size, for the rerun
	Step      int
	At        time.Duration // simulated time since the start
	Invariant string
	Detail    string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("seed %d, step %d (t=%v): invariant %q violated: %s (a TestFaults or TestFaultsSweep seed reruns with APRON_SIM_SEED=%d APRON_SIM_AGENTS=%d go test ./internal/sim -run 'TestFaults$' -v)",
		v.Seed, v.Step, v.At, v.Invariant, v.Detail, v.Seed, v.Agents)
}

type agentNode struct {
	name      string
	core      AgentCore
	total     resources.Resources
	down      bool
	dead      bool // crashed for good, or shut down by the master
	restartAt time.Time
	// reboot: it comes back with a new core (no ID, no tasks); the IDs
	// it had before are in former.
	reboot bool
	former []string
	// Connection: gen counts connect attempts; stream is the stream the
	// agent holds (after the connect's answer), registered once
	// REGISTERED or REREGISTERED came on it.
	gen         int
	connecting  bool
	retryAt     time.Time
	backoff     time.Duration
	stream      string
	registered  bool
	lastPing    time.Time
	pingTimeout time.Duration
}

type fwNode struct {
	name       string
	m          *modelFramework
	down       bool
	removed    bool // the master refused it: "Framework has been removed"
	restartAt  time.Time
	gen        int
	connecting bool
	retryAt    time.Time
	backoff    time.Duration
	stream     string
	subscribed bool
	lastEvent  time.Time
}

// connectTimeout is how long a peer waits for the answer to a connect
// before it tries again (with backoff).
const connectTimeout = 10 * time.Second

// notice is a peer learning, at at, that its stream broke.
type notice struct {
	peer, stream string
	at           time.Time
}

// taskObs is what the simulation saw reach a framework about one task.
type taskObs struct {
	states []mesospb.TaskState
	// terminal is the first terminal state other than TASK_LOST it saw
	// in an update of the agent's; recorded the first in a
	// reconciliation answer from the master's record of the task.
	terminal, recorded mesospb.TaskState
	reported           bool // a "reconciliation order" violation was counted
	// uuids are those of the agent's updates it saw, in the order it
	// first saw each.
	uuids [][]byte
	seen  map[string]bool
}

type faultSim struct {
	cfg FaultConfig
	rng *rand.Rand
	sm  *master.StateMachine
	// registry is the masters' durable registry: every operation a master
	// emits is applied before its outputs go on the wire, and a master
	// that fails over recovers it.
	registry   *master.RegistryState
	net        *network
	start, now time.Time
	step       int
	faultsOn   bool
	agents     []*agentNode
	fws        []*fwNode
	agentBy    map[string]*agentNode
	fwBy       map[string]*fwNode
	owner      map[string]string // stream -> peer
	notices    []notice
	obs        map[string]map[string]*taskObs // framework name -> task ID
	res        FaultResult
	failure    *Violation
	// dirty: something reached the master or a peer, or the master
	// said something, since the last check. A step where nothing did
	// changed nothing the invariants read, so its check is skipped.
	dirty     bool
	heartbeat time.Duration
	// taskDuration picks a new task's running time (0: until killed).
	taskDuration func() time.Duration
}

// RunFaults runs the cluster under the fault model: faults for FaultsFor,
// then quiescence, checking the invariants after every step and at the
// end. A violation is returned as a *Violation naming the seed and step.
func RunFaults(cfg FaultConfig) (FaultResult, error) {
	wall := time.Now()
	if cfg.Step == 0 {
		cfg.Step = 100 * time.Millisecond
	}
	if cfg.Quiesce == 0 {
		cfg.Quiesce = 5 * time.Minute
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0xfa17))
	faults := RandomFaults(rng)
	if cfg.Faults != nil {
		faults = *cfg.Faults
	}
	if faults.TCPTimeout == 0 {
		faults.TCPTimeout = 20 * time.Second
	}
	s := &faultSim{
		cfg: cfg, rng: rng, start: time.Unix(1_700_000_000, 0),
		agentBy: map[string]*agentNode{}, fwBy: map[string]*fwNode{},
		owner: map[string]string{}, obs: map[string]map[string]*taskObs{},
	}
	s.now = s.start
	s.res.Faults = faults
	s.net = newNetwork(rand.New(rand.NewPCG(cfg.Seed, 3)), faults, &s.res.Net)
	s.heartbeat = 15 * time.Second
	if cfg.Master.HeartbeatInterval > 0 {
		s.heartbeat = cfg.Master.HeartbeatInterval
	}
	sm, err := s.newMaster()
	if err != nil {
		return s.res, err
	}
	s.sm = sm
	if err := s.setUp(); err != nil {
		return s.res, err
	}
	s.faultsOn = true
	s.net.on = true
	faultsEnd := s.start.Add(cfg.FaultsFor)
	end := faultsEnd.Add(cfg.Quiesce)
	for s.now.Before(end) && s.failure == nil {
		s.now = s.now.Add(cfg.Step)
		s.step++
		if s.faultsOn && !s.now.Before(faultsEnd) {
			s.quiesce()
		}
		if s.faultsOn {
			s.injectFaults()
		}
		s.partitionBreaks()
		s.deliverDue()
		s.tickPeers()
		s.sm.Tick(s.now)
		s.drain()
		s.deliverDue()
		if s.failure == nil && (s.dirty || s.cfg.CheckAll) {
			s.dirty = false
			s.checkStep()
		}
	}
	if s.failure == nil {
		s.checkQuiescent()
	}
	s.res.Steps = s.step
	s.res.SimulatedTime = s.now.Sub(s.start)
	s.summarize()
	s.res.Wall = time.Since(wall)
	if s.failure != nil {
		return s.res, s.failure
	}
	return s.res, nil
}

// newMaster starts a master (the first, or one after a failover), which
// recovers the registry before anything else.
func (s *faultSim) newMaster() (*master.StateMachine, error) {
	mcfg := s.cfg.Master
	gen := uint64(s.res.MasterFailovers)
	if mcfg.Rand == nil || gen > 0 {
		mcfg.Rand = rand.New(rand.NewPCG(s.cfg.Seed, 1+100*gen))
	}
	if s.cfg.Master.Allocator == nil || gen > 0 {
		// A failed-over master's allocator starts empty too; a
		// configured one cannot be reused.
		mcfg.Allocator = allocator.NewDRF(allocator.Options{Rand: rand.New(rand.NewPCG(s.cfg.Seed, 2+100*gen))})
	}
	if mcfg.OfferTimeout == 0 {
		// A lost ACCEPT or DECLINE leaves its offer outstanding; an
		// operator facing lossy frameworks sets --offer_timeout.
		mcfg.OfferTimeout = time.Minute
	}
	if mcfg.AgentReregisterTimeout == 0 {
		// Agents dead for good are marked unreachable within the run.
		mcfg.AgentReregisterTimeout = time.Minute
	}
	sm, err := master.NewStateMachine(mcfg, s.now)
	if err != nil {
		return nil, err
	}
	if s.registry == nil {
		s.registry = master.NewRegistryState()
	}
	sm.Recover(s.registry.Clone(), s.now)
	return sm, nil
}

// failoverMaster replaces the master with a new one: everything on the
// wire to or from the old one is lost, and every peer learns of the new
// leader (from ZooKeeper, in Apron and Mesos) within a few seconds and
// connects to it: agents re-register with their tasks, frameworks
// re-subscribe with their IDs and reconcile.
func (s *faultSim) failoverMaster() {
	s.res.MasterFailovers++
	sm, err := s.newMaster()
	if err != nil {
		s.fail("master failover", "the new master does not start: %v", err)
		return
	}
	s.tracef("the master fails over")
	s.sm = sm
	s.dirty = true
	s.net.queue = nil
	clear(s.net.fifo)
	s.notices = nil
	for _, a := range s.agents {
		a.stream, a.registered, a.connecting = "", false, false
		a.backoff = 0
		a.retryAt = s.now.Add(time.Duration(s.rng.Int64N(int64(5 * time.Second))))
	}
	for _, fw := range s.fws {
		fw.stream, fw.subscribed, fw.connecting = "", false, false
		fw.backoff = 0
		fw.retryAt = s.now.Add(time.Duration(s.rng.Int64N(int64(5 * time.Second))))
		fw.m.crash() // its offers were the old master's
	}
}

func (s *faultSim) tracef(format string, args ...any) {
	if s.cfg.Trace != nil {
		s.cfg.Trace(fmt.Sprintf("step %d (t=%v): ", s.step, s.now.Sub(s.start)) + fmt.Sprintf(format, args...))
	}
}

func (s *faultSim) fail(invariant, format string, args ...any) {
	if s.failure != nil {
		return
	}
	v := &Violation{Seed: s.cfg.Seed, Agents: s.cfg.Agents, Step: s.step, At: s.now.Sub(s.start), Invariant: invariant, Detail: fmt.Sprintf(format, args...)}
	s.tracef("VIOLATION %s: %s", invariant, v.Detail)
	if slices.Contains(s.cfg.Tolerate, invariant) {
		if s.res.Tolerated == nil {
			s.res.Tolerated, s.res.FirstTolerated = map[string]int{}, map[string]*Violation{}
		}
		if s.res.Tolerated[invariant] == 0 {
			s.res.FirstTolerated[invariant] = v
		}
		s.res.Tolerated[invariant]++
		return
	}
	s.failure = v
}

func (s *faultSim) setUp() error {
	total, err := resources.Parse(s.cfg.AgentResources)
	if err != nil {
		return err
	}
	shape, err := resources.Parse(s.cfg.Shape)
	if err != nil {
		return err
	}
	s.taskDuration = func() time.Duration {
		if s.rng.Float64() < s.cfg.LongRunning {
			return 0
		}
		d := s.cfg.TaskDuration
		if s.cfg.TaskJitter > 0 {
			d += time.Duration(s.rng.Int64N(int64(2*s.cfg.TaskJitter))) - s.cfg.TaskJitter
		}
		return max(d, s.cfg.Step)
	}
	for i := range s.cfg.Agents {
		name := fmt.Sprintf("agent-%d", i)
		a := &agentNode{name: name, total: total, core: newModelAgent(s.rng, name, total, s.taskDuration, s.res.Faults.ExecutorCrash)}
		s.agents = append(s.agents, a)
		s.agentBy[name] = a
		s.connectAgent(a)
	}
	for i := range s.cfg.Frameworks {
		name := fmt.Sprintf("fw-%d", i)
		f := &fwNode{name: name, m: &modelFramework{
			rng: s.rng, name: name, role: "*", partitionAware: i%2 == 1, shape: shape,
			remaining: s.cfg.Tasks, tasks: map[string]*fwTask{}, killRate: s.cfg.KillRate, step: s.cfg.Step,
		}}
		s.fws = append(s.fws, f)
		s.fwBy[name] = f
		s.obs[name] = map[string]*taskObs{}
		s.connectFramework(f)
	}
	return nil
}

// --- faults ---------------------------------------------------------------

func (s *faultSim) chance(rate float64) bool {
	return rate > 0 && s.rng.Float64() < rate*s.cfg.Step.Seconds()
}

func (s *faultSim) injectFaults() {
	f := s.res.Faults
	if s.chance(f.MasterFailover) {
		s.failoverMaster()
	}
	dead := 0
	for _, a := range s.agents {
		if a.dead {
			dead++
		}
	}
	for _, a := range s.agents {
		if a.dead || a.down {
			continue
		}
		switch {
		case s.chance(f.AgentDeath) && dead < len(s.agents)/4:
			dead++
			s.res.AgentDeaths++
			s.tracef("%s (%s) dies for good", a.name, a.core.ID())
			a.dead = true
			s.abandonAgentStream(a, s.rng.IntN(2) == 0)
		case s.chance(f.AgentReboot) && a.core.ID() != "":
			s.res.AgentReboots++
			a.down, a.reboot = true, true
			a.restartAt = s.now.Add(s.downtime())
			s.tracef("%s (%s) reboots, back at %v as a new agent", a.name, a.core.ID(), a.restartAt.Sub(s.start))
			s.abandonAgentStream(a, s.rng.IntN(2) == 0)
		case s.chance(f.AgentCrash):
			s.res.AgentCrashes++
			a.down = true
			a.restartAt = s.now.Add(s.downtime())
			s.tracef("%s (%s) crashes, restarts at %v", a.name, a.core.ID(), a.restartAt.Sub(s.start))
			s.abandonAgentStream(a, true)
		}
	}
	for _, fw := range s.fws {
		if fw.down || fw.removed {
			continue
		}
		if s.chance(f.FrameworkCrash) {
			s.res.FrameworkCrashes++
			fw.down = true
			fw.restartAt = s.now.Add(s.downtime())
			s.tracef("%s (%s) crashes, restarts at %v", fw.name, fw.m.id, fw.restartAt.Sub(s.start))
			s.abandonFrameworkStream(fw, true)
			fw.m.crash()
		}
	}
	peers := make([]string, 0, len(s.agents)+len(s.fws))
	for _, a := range s.agents {
		peers = append(peers, a.name)
	}
	for _, fw := range s.fws {
		peers = append(peers, fw.name)
	}
	for _, p := range peers {
		if s.net.parts[p] == nil && s.chance(f.Partition) {
			s.res.Partitions++
			heal := s.now.Add(time.Second + time.Duration(s.rng.Int64N(int64(max(f.MaxPartition, time.Second)))))
			s.tracef("%s partitioned until %v", p, heal.Sub(s.start))
			s.net.cut(p, s.now, heal, f.TCPTimeout)
		}
	}
}

func (s *faultSim) downtime() time.Duration {
	return time.Second + time.Duration(s.rng.Int64N(int64(max(s.res.Faults.MaxDown, time.Second))))
}

// quiesce stops injecting faults: partitions heal, messages only lag.
func (s *faultSim) quiesce() {
	s.tracef("faults stop; quiescence")
	s.faultsOn = false
	s.net.on = false
	// The workload stops with the faults: no new launches or kills, so
	// what quiescence checks is what was in flight settling.
	for _, fw := range s.fws {
		fw.m.killRate, fw.m.remaining = 0, 0
	}
	s.net.healAll(s.now)
}

// partitionBreaks breaks the streams of peers partitioned longer than the
// TCP timeout: both ends notice.
func (s *faultSim) partitionBreaks() {
	for _, p := range sortedKeys(s.net.parts) {
		pt := s.net.parts[p]
		if pt.broke || s.now.Before(pt.breakAt) || !pt.heal.After(pt.breakAt) {
			continue
		}
		pt.broke = true
		if a := s.agentBy[p]; a != nil && a.stream != "" {
			s.tracef("%s's stream %s times out", p, short(a.stream))
			s.net.broken[a.stream] = true
			s.abandonAgentStream(a, true)
			s.scheduleAgentRetry(a)
		}
		if fw := s.fwBy[p]; fw != nil && fw.stream != "" {
			s.tracef("%s's stream %s times out", p, short(fw.stream))
			s.net.broken[fw.stream] = true
			s.abandonFrameworkStream(fw, true)
			s.scheduleFwRetry(fw)
		}
	}
}

// --- connections ------------------------------------------------------------

func (s *faultSim) connectAgent(a *agentNode) {
	a.gen++
	if a.gen > 1 {
		s.res.Reconnects++
	}
	a.connecting = true
	a.backoff = min(max(2*a.backoff, time.Second), time.Minute)
	a.retryAt = s.now.Add(connectTimeout + a.backoff + time.Duration(s.rng.Int64N(int64(time.Second))))
	call := a.core.ConnectCall()
	s.tracef("%s connects (attempt %d): %v with %d tasks", a.name, a.gen, call.GetType(), len(call.GetReregister().GetTasks()))
	s.sendPacket(&packet{kind: pkAgentConnect, peer: a.name, gen: a.gen, agent: call})
}

func (s *faultSim) connectFramework(fw *fwNode) {
	fw.gen++
	if fw.gen > 1 {
		s.res.Reconnects++
	}
	fw.connecting = true
	fw.backoff = min(max(2*fw.backoff, time.Second), time.Minute)
	fw.retryAt = s.now.Add(connectTimeout + fw.backoff + time.Duration(s.rng.Int64N(int64(time.Second))))
	s.tracef("%s subscribes (attempt %d) as %q", fw.name, fw.gen, fw.m.id)
	s.sendPacket(&packet{kind: pkSchedSubscribe, peer: fw.name, gen: fw.gen, sched: fw.m.subscribeCall()})
}

// abandonAgentStream: the agent stops reading its stream (it crashed, or
// gave up on it). The master hears of it if told (a reset that gets
// through), else from its pings.
func (s *faultSim) abandonAgentStream(a *agentNode, tell bool) {
	if a.stream != "" && tell && !s.cutOff(a.name) {
		s.streamEnded(a.stream)
		s.drain()
	}
	a.stream, a.registered, a.connecting = "", false, false
}

func (s *faultSim) abandonFrameworkStream(fw *fwNode, tell bool) {
	if fw.stream != "" && tell && !s.cutOff(fw.name) {
		s.streamEnded(fw.stream)
		s.drain()
	}
	fw.stream, fw.subscribed, fw.connecting = "", false, false
}

func (s *faultSim) cutOff(peer string) bool {
	pt := s.net.parts[peer]
	return pt != nil && s.now.Before(pt.heal)
}

func (s *faultSim) scheduleAgentRetry(a *agentNode) {
	a.retryAt = s.now.Add(time.Duration(s.rng.Int64N(int64(2 * time.Second))))
}

func (s *faultSim) scheduleFwRetry(fw *fwNode) {
	fw.retryAt = s.now.Add(time.Duration(s.rng.Int64N(int64(2 * time.Second))))
}

func (s *faultSim) tickPeers() {
	for _, a := range s.agents {
		if a.dead {
			continue
		}
		if a.down {
			if s.now.Before(a.restartAt) {
				continue
			}
			a.down = false
			if a.reboot {
				s.tracef("%s is back after its reboot", a.name)
				a.reboot = false
				a.former = append(a.former, a.core.ID())
				a.core = newModelAgent(s.rng, a.name, a.total, s.taskDuration, s.res.Faults.ExecutorCrash)
			} else {
				s.tracef("%s restarts and recovers", a.name)
				a.core.Restart(s.now)
			}
			a.backoff = 0
			s.connectAgent(a)
		}
		for _, n := range s.notices {
			if n.peer == a.name && n.stream == a.stream && !s.now.Before(n.at) {
				s.tracef("%s notices its stream %s broke", a.name, short(a.stream))
				s.abandonAgentStream(a, false)
				s.scheduleAgentRetry(a)
			}
		}
		switch {
		case a.stream != "" && !a.registered && s.now.Sub(a.lastPing) > connectTimeout:
			// The stream opened but its REGISTERED never came.
			s.tracef("%s got no answer on its new stream: reconnects", a.name)
			s.abandonAgentStream(a, true)
			s.connectAgent(a)
		case a.registered && s.now.Sub(a.lastPing) > a.pingTimeout:
			// Mesos's agent: no ping from the master within
			// ping_interval × max_missed_pings: re-register.
			s.tracef("%s has had no ping for %v: reconnects", a.name, s.now.Sub(a.lastPing))
			s.abandonAgentStream(a, true)
			s.connectAgent(a)
		case a.stream == "" && !s.now.Before(a.retryAt):
			s.connectAgent(a)
		}
		if calls := a.core.Tick(s.now, a.registered); a.registered {
			for _, c := range calls {
				s.sendPacket(&packet{kind: pkAgentCall, peer: a.name, stream: a.stream, agent: c})
			}
		}
	}
	for _, fw := range s.fws {
		if fw.removed {
			continue
		}
		if fw.down {
			if s.now.Before(fw.restartAt) {
				continue
			}
			s.tracef("%s restarts and fails over", fw.name)
			fw.down = false
			fw.backoff = 0
			s.connectFramework(fw)
		}
		for _, n := range s.notices {
			if n.peer == fw.name && n.stream == fw.stream && !s.now.Before(n.at) {
				s.tracef("%s notices its stream %s broke", fw.name, short(fw.stream))
				s.abandonFrameworkStream(fw, false)
				s.scheduleFwRetry(fw)
			}
		}
		switch {
		case fw.stream != "" && s.now.Sub(fw.lastEvent) > 3*s.heartbeat:
			// No heartbeat for three intervals: the connection is dead.
			s.tracef("%s has had no event for %v: re-subscribes", fw.name, s.now.Sub(fw.lastEvent))
			s.abandonFrameworkStream(fw, true)
			s.connectFramework(fw)
		case fw.stream == "" && !s.now.Before(fw.retryAt):
			s.connectFramework(fw)
		}
		if fw.subscribed {
			for _, c := range fw.m.tick(s.now) {
				s.sendPacket(&packet{kind: pkSchedCall, peer: fw.name, stream: fw.stream, sched: c})
			}
		}
	}
	kept := s.notices[:0]
	for _, n := range s.notices {
		if s.now.Before(n.at) {
			kept = append(kept, n)
		}
	}
	s.notices = kept
}

// --- the wire -----------------------------------------------------------------

func (s *faultSim) sendPacket(p *packet) {
	if broke := s.net.send(s.now, p); broke != "" {
		s.streamBroke(broke)
	}
}

// streamBroke: a message was lost on a stream, which breaks it. Each end
// notices now or never (then timeouts tell it).
func (s *faultSim) streamBroke(stream string) {
	peer := s.owner[stream]
	s.tracef("stream %s of %s breaks", short(stream), peer)
	if s.rng.IntN(2) == 0 {
		s.streamEnded(stream)
		s.drain()
	}
	if s.rng.IntN(2) == 0 {
		s.notices = append(s.notices, notice{peer: peer, stream: stream, at: s.now.Add(s.net.latency())})
	}
}

// drain routes what the master decided onto the wire.
func (s *faultSim) drain() {
	for {
		r := s.sm.Ready()
		if len(r.Outputs) == 0 && len(r.Closes) == 0 && len(r.Registry) == 0 {
			return
		}
		if err := s.registry.Apply(r.Registry...); err != nil {
			s.fail("registry", "the master emitted an invalid registry operation: %v", err)
			return
		}
		if err := s.sm.Err(); err != nil {
			s.fail("registry", "the master stops: %v", err)
			return
		}
		s.dirty = true
		for _, o := range canonical(r.Outputs) {
			peer, ok := s.owner[o.Stream]
			if !ok {
				s.fail("routing", "the master sent %v on stream %s, which it never opened", o, o.Stream)
				return
			}
			switch {
			case o.Scheduler != nil:
				s.sendPacket(&packet{kind: pkSchedEvent, peer: peer, stream: o.Stream, sev: o.Scheduler})
			case o.Agent != nil:
				s.sendPacket(&packet{kind: pkAgentEvent, peer: peer, stream: o.Stream, aev: o.Agent})
			}
		}
		for _, id := range r.Closes {
			s.sendPacket(&packet{kind: pkClosed, peer: s.owner[id], stream: id})
		}
	}
}

func (s *faultSim) deliverDue() {
	for range 1000 {
		due := s.net.due(s.now)
		if len(due) == 0 || s.failure != nil {
			return
		}
		for _, p := range due {
			if s.failure != nil {
				return
			}
			if p.stream != "" && s.net.broken[p.stream] {
				if p.kind == pkAgentEvent && p.aev.GetType() == internalpb.Event_RUN_TASK {
					s.tracef("RUN_TASK %s lost on broken stream %s", p.aev.RunTask.Task.TaskID.Value, short(p.stream))
				}
				continue
			}
			if s.net.hold(s.now, p) {
				continue
			}
			s.deliver(p)
		}
	}
	s.fail("liveness", "messages at %v still due after 1000 rounds: a message loop", s.now.Sub(s.start))
}

func (s *faultSim) deliver(p *packet) {
	s.dirty = true
	switch p.kind {
	case pkAgentConnect:
		stream, err := s.sm.ConnectAgent(p.agent)
		if err != nil {
			s.fail("master accepts valid calls", "%s's %v refused: %v", p.peer, p.agent.GetType(), err)
			return
		}
		s.owner[stream] = p.peer
		s.sendPacket(&packet{kind: pkOpened, peer: p.peer, gen: p.gen, stream: stream})
		s.drain()
	case pkSchedSubscribe:
		stream, err := s.sm.SubscribeScheduler(p.sched)
		if err != nil {
			s.fail("master accepts valid calls", "%s's SUBSCRIBE refused: %v", p.peer, err)
			return
		}
		s.owner[stream] = p.peer
		s.sendPacket(&packet{kind: pkOpened, peer: p.peer, gen: p.gen, stream: stream})
		s.drain()
	case pkAgentCall:
		if u := p.agent.StatusUpdate; u != nil {
			s.tracef("master gets from %s on %s: %s %v (latest %v) uuid %x", p.peer, short(p.stream), u.Status.TaskID.Value, u.Status.GetState(), u.GetLatestState(), u.Status.UUID)
		}
		err := s.sm.AgentCall(p.stream, p.agent)
		if err != nil && !errors.Is(err, master.ErrNotSubscribed) {
			s.fail("master accepts valid calls", "%s's %v refused: %v", p.peer, p.agent.GetType(), err)
		}
		s.drain()
	case pkSchedCall:
		if acc := p.sched.Accept; acc != nil && len(acc.Operations) > 0 {
			var ids []string
			for _, ti := range acc.Operations[0].Launch.TaskInfos {
				ids = append(ids, ti.TaskID.Value)
			}
			s.tracef("master gets %s's ACCEPT of %s launching %v on %s", p.peer, acc.OfferIDs[0].Value, ids, acc.Operations[0].Launch.TaskInfos[0].AgentID.Value)
		}
		err := s.sm.SchedulerCall(p.stream, p.sched)
		if err != nil && !staleCall(err) {
			s.fail("master accepts valid calls", "%s's %v refused: %v", p.peer, p.sched.GetType(), err)
		}
		s.drain()
	case pkOpened, pkAgentEvent, pkSchedEvent, pkClosed:
		if a := s.agentBy[p.peer]; a != nil {
			s.agentReceives(a, p)
		} else if fw := s.fwBy[p.peer]; fw != nil {
			s.frameworkReceives(fw, p)
		}
	}
}

// staleCall says whether the master refused a call because it came on a
// stream that is no longer the framework's: the framework re-subscribed,
// or was removed, since it sent it.
func staleCall(err error) bool {
	if errors.Is(err, master.ErrNotSubscribed) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "didn't match the stream ID") || strings.Contains(msg, "cannot be found")
}

func (s *faultSim) agentReceives(a *agentNode, p *packet) {
	if p.kind == pkOpened {
		if a.down || a.dead || !a.connecting || p.gen != a.gen {
			// Nobody waits for this connection any more: it is closed.
			s.streamEnded(p.stream)
			s.drain()
			return
		}
		a.connecting, a.stream, a.lastPing = false, p.stream, s.now
		return
	}
	if a.down || a.dead || p.stream != a.stream {
		if p.kind == pkAgentEvent && p.aev.GetType() == internalpb.Event_RUN_TASK {
			s.tracef("%s does not read stream %s (down %t, dead %t, holds %s): RUN_TASK %s lost", a.name, short(p.stream), a.down, a.dead, short(a.stream), p.aev.RunTask.Task.TaskID.Value)
		}
		return // a stream the agent no longer reads
	}
	if p.kind == pkClosed {
		s.tracef("%s's stream %s ended by the master", a.name, short(p.stream))
		a.stream, a.registered = "", false
		s.scheduleAgentRetry(a)
		return
	}
	ev := p.aev
	switch ev.GetType() {
	case internalpb.Event_RUN_TASK:
		s.tracef("%s runs %s", a.name, ev.RunTask.Task.TaskID.Value)
	case internalpb.Event_REGISTERED, internalpb.Event_REREGISTERED:
		a.registered = true
		a.backoff = 0
		a.lastPing = s.now
		r := ev.Registered
		a.pingTimeout = time.Duration(r.GetPingIntervalSeconds()*float64(time.Second)) * time.Duration(max(r.GetMaxMissedPings(), 1))
		s.tracef("%s %v as %s", a.name, ev.GetType(), r.AgentID.Value)
	case internalpb.Event_PING:
		a.lastPing = s.now
	case internalpb.Event_SHUTDOWN:
		s.tracef("%s (%s) told to shut down: %s", a.name, a.core.ID(), ev.Shutdown.GetMessage())
		a.core.Shutdown(s.now)
		a.dead = true
		a.stream, a.registered = "", false
		return
	}
	for _, c := range a.core.Handle(s.now, ev) {
		s.sendPacket(&packet{kind: pkAgentCall, peer: a.name, stream: a.stream, agent: c})
	}
}

func (s *faultSim) frameworkReceives(fw *fwNode, p *packet) {
	if p.kind == pkOpened {
		if fw.down || fw.removed || !fw.connecting || p.gen != fw.gen {
			s.streamEnded(p.stream)
			s.drain()
			return
		}
		fw.connecting, fw.stream, fw.lastEvent = false, p.stream, s.now
		return
	}
	if fw.down || fw.removed || p.stream != fw.stream {
		return
	}
	if p.kind == pkClosed {
		s.tracef("%s's stream %s ended by the master", fw.name, short(p.stream))
		fw.stream, fw.subscribed = "", false
		s.scheduleFwRetry(fw)
		return
	}
	fw.lastEvent = s.now
	ev := p.sev
	if t := ev.GetType(); t != schedulerpb.Event_HEARTBEAT && t != schedulerpb.Event_UPDATE && t != schedulerpb.Event_OFFERS {
		s.tracef("%s gets %v", fw.name, t)
	}
	switch ev.GetType() {
	case schedulerpb.Event_SUBSCRIBED:
		fw.subscribed = true
		fw.backoff = 0
		s.tracef("%s subscribed as %s", fw.name, ev.Subscribed.FrameworkID.Value)
	case schedulerpb.Event_ERROR:
		s.tracef("%s told: %s", fw.name, ev.Error.Message)
		if strings.Contains(ev.Error.Message, "has been removed") {
			// Its failover timeout is a week: nothing here may remove it.
			s.fail("framework kept", "%s (%s) was refused: %q", fw.name, fw.m.id, ev.Error.Message)
			fw.removed = true
			fw.stream, fw.subscribed = "", false
		}
		return
	case schedulerpb.Event_UPDATE:
		s.observe(fw, &ev.Update.Status)
	}
	for _, c := range fw.m.event(s.now, ev) {
		s.sendPacket(&packet{kind: pkSchedCall, peer: fw.name, stream: fw.stream, sched: c})
	}
}

// canonical orders a batch of the master's outputs so that a seed
// replays: by stream (streams are independent), and within a stream,
// runs of events the master emits while ranging over a Go map (its
// RESCINDs, its own task updates) by offer or task ID. Events of
// different offers or tasks commute: Mesos promises no order among them.
// Without this the master's map iteration order leaks into the run.
func canonical(outs []master.Output) []master.Output {
	outs = slices.Clone(outs)
	slices.SortStableFunc(outs, func(a, b master.Output) int { return strings.Compare(a.Stream, b.Stream) })
	key := func(o master.Output) (string, bool) {
		ev := o.Scheduler
		switch {
		case ev == nil:
			return "", false
		case ev.GetType() == schedulerpb.Event_RESCIND:
			return "r" + ev.Rescind.OfferID.Value, true
		case ev.GetType() == schedulerpb.Event_UPDATE && ev.Update.Status.GetSource() == mesospb.TaskStatus_SOURCE_MASTER:
			return "u" + ev.Update.Status.TaskID.Value, true
		}
		return "", false
	}
	for i := 0; i < len(outs); {
		j := i + 1
		if _, ok := key(outs[i]); ok {
			for j < len(outs) && outs[j].Stream == outs[i].Stream {
				if _, ok := key(outs[j]); !ok {
					break
				}
				j++
			}
			slices.SortStableFunc(outs[i:j], func(a, b master.Output) int {
				ka, _ := key(a)
				kb, _ := key(b)
				return strings.Compare(ka, kb)
			})
		}
		i = j
	}
	return outs
}

func short(stream string) string {
	if len(stream) > 8 {
		return stream[:8]
	}
	return stream
}

func (s *faultSim) summarize() {
	for _, fw := range s.fws {
		for _, t := range fw.m.tasks {
			s.res.Launched++
			switch t.state {
			case mesospb.TASK_FINISHED:
				s.res.Finished++
			case mesospb.TASK_KILLED:
				s.res.Killed++
			case mesospb.TASK_FAILED:
				s.res.Failed++
			case mesospb.TASK_RUNNING:
				s.res.Running++
			case mesospb.TASK_LOST, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_UNREACHABLE, mesospb.TASK_UNKNOWN:
				s.res.Lost++
			}
		}
	}
}

// streamEnded tells the master a stream ended.
func (s *faultSim) streamEnded(stream string) {
	s.dirty = true
	s.sm.StreamEnded(stream)
}

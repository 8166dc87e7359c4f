// Package sim is a deterministic simulation of a whole cluster around the
// master's state machine: simulated agents and frameworks answer its events
// on a simulated clock, in one goroutine, with no I/O. It checks the
// cluster's invariants as it goes (every step by default), so a run of
// thousands of agents is both a load test and a proof that nothing is
// double-offered, over-allocated or forgotten.
//
// The workload follows the Mesos paper's: frameworks of different task
// shapes, in roles of different weights (role paths form a tree), each
// with a backlog of tasks of 30 s ± 10 s, launching what fits on each offer
// and declining the rest. A run reports how long offers take to become
// running tasks (in simulated time), how long the allocator's cycles take
// (in wall time, measured, never asserted), how much of the cluster tasks
// use, and how fair the allocation is: Jain's index over the weighted
// dominant shares of the top-level roles, and over the dominant shares of
// the frameworks of each role.
//
// # Faults
//
// RunFaults runs a small cluster under a seeded fault model instead
// (faults.go, network.go): the master's real StateMachine, simulated
// agents and frameworks, and a network between them that delays every
// message (logical time), loses, duplicates and reorders requests, breaks
// streams (each end noticing at once or only by its timeouts), partitions
// peers (holding what is in flight when the partition heals before the
// TCP timeout, breaking the streams when it does not), crashes and
// restarts agents (recovering from their checkpoint and re-registering
// with their tasks), reboots agents (their tasks die; they come back as
// new agents), kills agents for good (the master's health checks must
// remove them), crashes and restarts frameworks (which fail over with
// their framework ID and reconcile), and fails the master over (a new
// StateMachine that recovers the registry the old one kept, every
// operation of which was applied before its outputs went out; agents
// re-register, frameworks re-subscribe). Each run draws its
// probabilities from its seed (RandomFaults). After the faults stop, the
// run goes on without faults for a while (quiescence) and then checks that
// everything settled. The invariants, and what Mesos promises for each,
// are listed in invariants.go; a violation is a *Violation naming the
// seed and the step, and the seed replays the run: the simulation is
// deterministic (the master's outputs are put in a canonical order where
// it ranges over Go maps, see canonical).
//
// The simulated agent (modelAgent, agentmodel.go) keeps its frameworks,
// executor runs and tasks in the agent's own tables (agentcore.Tables),
// which make the agent's own decisions: admission, kills, shutdowns,
// executor terminations, reconciliation answers, re-registration and the
// forget rules run the code Apron's agent runs, and its status updates
// go through the agent's own status update manager
// (agentcore.UpdateManager: each task's stream sent one at a time and
// retried from 10 s doubling to 10 min until acknowledged, resent at once
// on (re)registration and when the framework re-subscribes). Its
// executors and containers are models: a command executor per task that
// reports TASK_STARTING, TASK_RUNNING and the task's end. It sits behind
// the AgentCore interface. The frameworks are modelled too
// (frameworkmodel.go): highly available Mesos schedulers that persist
// their ID and tasks, set a failover timeout of a week, acknowledge every
// update, reconcile after subscribing and every 30 s, and kill some of
// their tasks.
package sim

import (
	"fmt"
	"maps"
	"math"
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

// Config describes a simulation.
type Config struct {
	Agents         int
	AgentResources string // Mesos text form, the same for every agent
	// Workload lists the frameworks by groups. When it is empty,
	// Frameworks frameworks in role "*" run TasksPerFramework tasks each,
	// framework i of shape Shapes[i % len(Shapes)].
	Workload          []FrameworkGroup
	Frameworks        int
	Shapes            []string
	TasksPerFramework int
	// TaskDuration is a task's mean running time; each task runs for a
	// uniformly random time within ±TaskJitter of it.
	TaskDuration, TaskJitter time.Duration
	// Duration bounds the simulated time; Step is the tick (default
	// 100 ms): frameworks answer the offers of a step at the next one.
	Duration, Step time.Duration
	Seed           uint64
	// Warmup is the simulated time after which utilization and fairness
	// are sampled (default a third of Duration).
	Warmup time.Duration
	// CheckEvery runs the invariant checks every so many steps (default 1)
	// and after the last.
	CheckEvery int
	// MinAllocatable is the allocator's minimum offer size, alternatives in
	// Mesos text form, as the master's --min_allocatable_resources flag
	// ("cpus:0.5;mem:1024"); empty for Mesos's default. Ignored when
	// Master.Allocator is set.
	MinAllocatable []string
	// Master configures the master (role weights in Master.Weights). Its
	// Allocator, when nil, is a DRF allocator seeded from Seed.
	Master master.Config
}

// FrameworkGroup describes Count frameworks alike.
type FrameworkGroup struct {
	Count int
	// Roles are the roles each framework subscribes to: one (as
	// FrameworkInfo.role), or several (MULTI_ROLE).
	Roles []string
	// Shape is each task's resources (Mesos text form).
	Shape string
	// Tasks is how many tasks each framework runs in all: its backlog.
	Tasks int
}

// Result sums up a run.
type Result struct {
	Launched, Finished int
	OffersMade         int
	Steps              int
	SimulatedTime      time.Duration
	// LiveTasks is how many tasks the master still tracks at the end; with
	// every task finished and acknowledged, none.
	LiveTasks int
	// OfferToRunning are the simulated delays between an offer reaching a
	// framework and a task launched on it running, sorted.
	OfferToRunning []time.Duration
	// FullCycles and EventCycles are the wall times of the allocation
	// cycles the master ran, over every agent (Allocate) and over the
	// agents whose resources changed (AllocateAgents), sorted.
	FullCycles, EventCycles []time.Duration
	// CPUUtilization and MemUtilization are the mean fractions of the
	// cluster's cpus and memory running tasks hold, sampled after Warmup.
	CPUUtilization, MemUtilization float64
	// JainRoles is the mean, over samples, of Jain's index over the
	// weighted dominant shares of the top-level roles that have frameworks
	// with tasks left to launch; JainFrameworks the mean of Jain's index
	// over the dominant shares of such frameworks of a same role (single
	// role frameworks, roles with at least two). 1 is perfectly fair.
	JainRoles, JainFrameworks float64
	Samples                   int
	// Checks counts the invariant checks that ran (and held).
	Checks int
	// Wall is the wall time the run took.
	Wall time.Duration
}

// Percentile returns the p-th percentile (0 to 100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// String summarizes a result in a few lines.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tasks launched, %d finished in %v simulated (%d steps, %d offers, %d checks), %v wall\n",
		r.Launched, r.Finished, r.SimulatedTime, r.Steps, r.OffersMade, r.Checks, r.Wall.Round(time.Millisecond))
	fmt.Fprintf(&b, "offer -> running (simulated): p50 %v, p99 %v\n",
		Percentile(r.OfferToRunning, 50), Percentile(r.OfferToRunning, 99))
	for _, c := range []struct {
		name string
		d    []time.Duration
	}{{"full", r.FullCycles}, {"event", r.EventCycles}} {
		fmt.Fprintf(&b, "%s allocation cycles (wall): %d, p50 %v, p99 %v, max %v\n", c.name, len(c.d),
			Percentile(c.d, 50).Round(time.Microsecond), Percentile(c.d, 99).Round(time.Microsecond), Percentile(c.d, 100).Round(time.Microsecond))
	}
	fmt.Fprintf(&b, "utilization: cpus %.1f%%, mem %.1f%%; fairness (Jain): roles %.4f, frameworks %.4f (%d samples)",
		100*r.CPUUtilization, 100*r.MemUtilization, r.JainRoles, r.JainFrameworks, r.Samples)
	return b.String()
}

type simFramework struct {
	stream, id string
	roles      []string
	shape      resources.Resources
	remaining  int // tasks not yet launched
	running    int
	suppressed bool
	pending    []mesospb.Offer // offers to answer at the next step
	// use is what the framework's running tasks hold, by role and
	// resource name.
	use map[string]map[string]float64
}

type simTask struct {
	id, framework, role string
	agent               *simAgent
	resources           resources.Resources
	endsAt              time.Time
}

type simAgent struct {
	stream, id string
	total      resources.Resources
	tasks      map[string]*simTask // by framework/task
}

type outstanding struct {
	agent      string
	resources  resources.Resources
	receivedAt time.Time
}

type simulation struct {
	cfg        Config
	rng        *rand.Rand
	sm         *master.StateMachine
	start, now time.Time
	frameworks []*simFramework
	byStream   map[string]*simFramework
	byID       map[string]*simFramework
	agents     map[string]*simAgent // by stream
	agentByID  map[string]*simAgent
	offers     map[string]outstanding // offers held by frameworks
	// ending holds the running tasks by the step at which they end.
	ending   map[int][]*simTask
	offerAt  map[string]time.Time // task ID -> when its offer reached its framework
	total    map[string]float64   // the cluster's scalar totals
	weights  map[string]float64
	res      Result
	nextTask int
	sums     struct{ cpu, mem, jainRoles, jainFrameworks float64 }
	fairN    struct{ roles, frameworks int }
}

// timedAllocator measures the wall time of the master's allocation cycles.
type timedAllocator struct {
	allocator.Allocator
	full, event *[]time.Duration
}

func (t timedAllocator) Allocate(now time.Time) []allocator.Offer {
	start := time.Now()
	offers := t.Allocator.Allocate(now)
	*t.full = append(*t.full, time.Since(start))
	return offers
}

func (t timedAllocator) AllocateAgents(now time.Time, agentIDs ...string) []allocator.Offer {
	start := time.Now()
	offers := t.Allocator.AllocateAgents(now, agentIDs...)
	*t.event = append(*t.event, time.Since(start))
	return offers
}

// Run runs a simulation and returns its result, or the first violated
// invariant.
func Run(cfg Config) (Result, error) {
	wallStart := time.Now()
	if cfg.Step == 0 {
		cfg.Step = 100 * time.Millisecond
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = 1
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = cfg.Duration / 3
	}
	if len(cfg.Workload) == 0 {
		if cfg.Frameworks > 0 && len(cfg.Shapes) == 0 {
			return Result{}, fmt.Errorf("sim: %d frameworks and no Shapes", cfg.Frameworks)
		}
		for i := range cfg.Frameworks {
			cfg.Workload = append(cfg.Workload, FrameworkGroup{Count: 1, Roles: []string{"*"}, Shape: cfg.Shapes[i%len(cfg.Shapes)], Tasks: cfg.TasksPerFramework})
		}
	}
	start := time.Unix(1_700_000_000, 0)
	s := &simulation{
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)),
		start:     start,
		now:       start,
		byStream:  map[string]*simFramework{},
		byID:      map[string]*simFramework{},
		agents:    map[string]*simAgent{},
		agentByID: map[string]*simAgent{},
		offers:    map[string]outstanding{},
		ending:    map[int][]*simTask{},
		offerAt:   map[string]time.Time{},
		total:     map[string]float64{},
		weights:   cfg.Master.Weights,
	}
	mcfg := cfg.Master
	if mcfg.Rand == nil {
		mcfg.Rand = rand.New(rand.NewPCG(cfg.Seed, 1))
	}
	if mcfg.Allocator == nil {
		opts := allocator.Options{Rand: rand.New(rand.NewPCG(cfg.Seed, 2))}
		for _, text := range cfg.MinAllocatable {
			rs, err := resources.Parse(text)
			if err != nil {
				return s.res, fmt.Errorf("min allocatable: %w", err)
			}
			opts.MinAllocatable = append(opts.MinAllocatable, rs)
		}
		mcfg.Allocator = allocator.NewDRF(opts)
	}
	mcfg.Allocator = timedAllocator{mcfg.Allocator, &s.res.FullCycles, &s.res.EventCycles}
	sm, err := master.NewStateMachine(mcfg, s.now)
	if err != nil {
		return s.res, err
	}
	s.sm = sm
	if err := s.setUp(); err != nil {
		return s.res, err
	}
	for end := s.now.Add(cfg.Duration); s.now.Before(end); {
		s.now = s.now.Add(cfg.Step)
		s.res.Steps++
		if err := s.finishTasks(); err != nil {
			return s.res, err
		}
		if err := s.answerOffers(); err != nil {
			return s.res, err
		}
		s.sm.Tick(s.now)
		if err := s.deliver(); err != nil {
			return s.res, err
		}
		if s.res.Steps%cfg.CheckEvery == 0 {
			if err := s.check(); err != nil {
				return s.res, fmt.Errorf("step %d (%v): %w", s.res.Steps, s.now.Sub(start), err)
			}
		}
		if s.now.Sub(start) >= cfg.Warmup && s.res.Steps%10 == 0 {
			s.sample()
		}
		if s.done() {
			break
		}
	}
	if err := s.check(); err != nil {
		return s.res, fmt.Errorf("at the end (%v): %w", s.now.Sub(start), err)
	}
	s.res.SimulatedTime = s.now.Sub(start)
	s.res.LiveTasks = len(s.sm.State().GetTasks.Tasks)
	if n := float64(s.res.Samples); n > 0 {
		s.res.CPUUtilization, s.res.MemUtilization = s.sums.cpu/n, s.sums.mem/n
	}
	if s.fairN.roles > 0 {
		s.res.JainRoles = s.sums.jainRoles / float64(s.fairN.roles)
	}
	if s.fairN.frameworks > 0 {
		s.res.JainFrameworks = s.sums.jainFrameworks / float64(s.fairN.frameworks)
	}
	for _, ds := range [][]time.Duration{s.res.OfferToRunning, s.res.FullCycles, s.res.EventCycles} {
		slices.Sort(ds)
	}
	s.res.Wall = time.Since(wallStart)
	return s.res, nil
}

func (s *simulation) setUp() error {
	total, err := resources.Parse(s.cfg.AgentResources)
	if err != nil {
		return err
	}
	for name, q := range total.Quantities() {
		s.total[name] = q.Float64() * float64(s.cfg.Agents)
	}
	for i := 0; i < s.cfg.Agents; i++ {
		stream, err := s.sm.ConnectAgent(&internalpb.Call{
			Type: internalpb.Call_REGISTER.Enum(),
			Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
				Hostname: fmt.Sprintf("agent-%d", i), Resources: total.ToProto(),
			}},
		})
		if err != nil {
			return err
		}
		s.agents[stream] = &simAgent{stream: stream, total: total, tasks: map[string]*simTask{}}
	}
	for _, g := range s.cfg.Workload {
		shape, err := resources.Parse(g.Shape)
		if err != nil {
			return err
		}
		for range g.Count {
			info := mesospb.FrameworkInfo{User: "sim", Name: fmt.Sprintf("framework-%d", len(s.frameworks))}
			if len(g.Roles) == 1 {
				info.Role = ptr(g.Roles[0])
			} else {
				info.Roles = g.Roles
				info.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}
			}
			stream, err := s.sm.SubscribeScheduler(&schedulerpb.Call{
				Type:      schedulerpb.Call_SUBSCRIBE.Enum(),
				Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: info},
			})
			if err != nil {
				return err
			}
			fw := &simFramework{stream: stream, roles: g.Roles, shape: shape, remaining: g.Tasks, use: map[string]map[string]float64{}}
			s.frameworks = append(s.frameworks, fw)
			s.byStream[stream] = fw
		}
	}
	return s.deliver()
}

func (s *simulation) done() bool {
	for _, fw := range s.frameworks {
		if fw.remaining > 0 || fw.running > 0 {
			return false
		}
	}
	return true
}

// deliver hands the master's output to the simulated peers until the master
// has nothing more to say.
func (s *simulation) deliver() error {
	for {
		r := s.sm.Ready()
		if len(r.Outputs) == 0 && len(r.Closes) == 0 {
			return nil
		}
		for _, o := range r.Outputs {
			var err error
			switch {
			case o.Scheduler != nil:
				err = s.frameworkEvent(s.byStream[o.Stream], o.Scheduler)
			case o.Agent != nil:
				err = s.agentEvent(s.agents[o.Stream], o.Agent)
			}
			if err != nil {
				return err
			}
		}
		if len(r.Closes) > 0 {
			return fmt.Errorf("master closed streams %v in a run where nobody leaves", r.Closes)
		}
	}
}

func (s *simulation) frameworkEvent(fw *simFramework, ev *schedulerpb.Event) error {
	if fw == nil {
		return fmt.Errorf("event %v for an unknown stream", ev.GetType())
	}
	call := &schedulerpb.Call{FrameworkID: &mesospb.FrameworkID{Value: fw.id}}
	switch ev.GetType() {
	case schedulerpb.Event_SUBSCRIBED:
		fw.id = ev.Subscribed.FrameworkID.Value
		s.byID[fw.id] = fw
		return nil
	case schedulerpb.Event_OFFERS:
		for _, o := range ev.Offers.Offers {
			s.res.OffersMade++
			offered, err := resources.FromProto(o.Resources)
			if err != nil {
				return err
			}
			if _, dup := s.offers[o.ID.Value]; dup {
				return fmt.Errorf("offer %s made twice", o.ID.Value)
			}
			role := o.AllocationInfo.GetRole()
			if o.AllocationInfo == nil && len(fw.roles) == 1 {
				role = fw.roles[0] // not MULTI_ROLE: offers carry no allocation_info, as Mesos's
			}
			if !slices.Contains(fw.roles, role) {
				return fmt.Errorf("framework %s offered resources for role %q, not one of %v", fw.id, role, fw.roles)
			}
			s.offers[o.ID.Value] = outstanding{agent: o.AgentID.Value, resources: offered, receivedAt: s.now}
			fw.pending = append(fw.pending, o)
		}
		return nil
	case schedulerpb.Event_UPDATE:
		st := ev.Update.Status
		if st.UUID == nil {
			return nil
		}
		call.Type = schedulerpb.Call_ACKNOWLEDGE.Enum()
		call.Acknowledge = &schedulerpb.Call_Acknowledge{AgentID: *st.AgentID, TaskID: st.TaskID, UUID: st.UUID}
		return s.sm.SchedulerCall(fw.stream, call)
	case schedulerpb.Event_RESCIND:
		delete(s.offers, ev.Rescind.OfferID.Value)
		for i, o := range fw.pending {
			if o.ID.Value == ev.Rescind.OfferID.Value {
				fw.pending = append(fw.pending[:i], fw.pending[i+1:]...)
				break
			}
		}
		return nil
	case schedulerpb.Event_HEARTBEAT:
		return nil
	}
	return fmt.Errorf("framework %s got an unexpected %v", fw.id, ev.GetType())
}

// answerOffers has every framework answer the offers it received in the
// last step, as a scheduler would after some thought.
func (s *simulation) answerOffers() error {
	for _, fw := range s.frameworks {
		pending := fw.pending
		fw.pending = nil
		for i := range pending {
			if err := s.useOffer(fw, &pending[i]); err != nil {
				return err
			}
		}
	}
	return s.deliver()
}

// useOffer launches as many of the framework's tasks as fit on an offer
// and declines the rest for Mesos's default 5 seconds, an offer it cannot
// use at all for 30 seconds; once it has nothing left to launch, it
// suppresses offers, as schedulers are advised to.
func (s *simulation) useOffer(fw *simFramework, o *mesospb.Offer) error {
	held := s.offers[o.ID.Value]
	need := fw.shape.Allocate(o.AllocationInfo.GetRole())
	var tasks []mesospb.TaskInfo
	left := held.resources
	for fw.remaining > 0 && left.Contains(need) {
		s.nextTask++
		id := fmt.Sprintf("task-%d", s.nextTask)
		tasks = append(tasks, mesospb.TaskInfo{
			Name: id, TaskID: mesospb.TaskID{Value: id}, AgentID: o.AgentID,
			Resources: need.ToProto(), Command: &mesospb.CommandInfo{Value: ptr("sleep")},
		})
		s.offerAt[id] = held.receivedAt
		left = left.Subtract(need)
		fw.remaining--
		fw.running++
		s.res.Launched++
	}
	delete(s.offers, o.ID.Value)
	call := &schedulerpb.Call{
		FrameworkID: &mesospb.FrameworkID{Value: fw.id},
		Type:        schedulerpb.Call_ACCEPT.Enum(),
		Accept: &schedulerpb.Call_Accept{
			OfferIDs: []mesospb.OfferID{o.ID},
			Filters:  &mesospb.Filters{RefuseSeconds: ptr(5.0)},
		},
	}
	if len(tasks) > 0 {
		call.Accept.Operations = []mesospb.Offer_Operation{{
			Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{TaskInfos: tasks},
		}}
	} else {
		call.Accept.Filters.RefuseSeconds = ptr(30.0)
	}
	if err := s.sm.SchedulerCall(fw.stream, call); err != nil {
		return err
	}
	if fw.remaining == 0 && !fw.suppressed {
		// Nothing left to launch: no more offers, please.
		fw.suppressed = true
		return s.sm.SchedulerCall(fw.stream, &schedulerpb.Call{
			FrameworkID: &mesospb.FrameworkID{Value: fw.id},
			Type:        schedulerpb.Call_SUPPRESS.Enum(),
		})
	}
	return nil
}

func (s *simulation) agentEvent(a *simAgent, ev *internalpb.Event) error {
	if a == nil {
		return fmt.Errorf("event %v for an unknown agent stream", ev.GetType())
	}
	switch ev.GetType() {
	case internalpb.Event_REGISTERED:
		a.id = ev.Registered.AgentID.Value
		s.agentByID[a.id] = a
	case internalpb.Event_RUN_TASK:
		t := ev.RunTask.Task
		rs, err := resources.FromProto(t.Resources)
		if err != nil {
			return err
		}
		fid := ev.RunTask.Framework.ID.Value
		fw := s.byID[fid]
		if fw == nil {
			return fmt.Errorf("task %s of unknown framework %s", t.TaskID.Value, fid)
		}
		d := s.cfg.TaskDuration
		if s.cfg.TaskJitter > 0 {
			d += time.Duration(s.rng.Int64N(int64(2*s.cfg.TaskJitter))) - s.cfg.TaskJitter
		}
		st := &simTask{id: t.TaskID.Value, framework: fid, agent: a, resources: rs, endsAt: s.now.Add(d)}
		if len(rs) > 0 {
			st.role = rs[0].AllocationRole
		}
		a.tasks[fid+"/"+st.id] = st
		// This step's finishTasks has run: a task whose time is already up
		// (a jitter as large as the duration) ends at the next one.
		step := max(int((st.endsAt.Sub(s.start)+s.cfg.Step-1)/s.cfg.Step), s.res.Steps+1)
		s.ending[step] = append(s.ending[step], st)
		fw.account(st, 1)
		if at, ok := s.offerAt[st.id]; ok {
			s.res.OfferToRunning = append(s.res.OfferToRunning, s.now.Sub(at))
			delete(s.offerAt, st.id)
		}
		return s.status(a, fid, st.id, mesospb.TASK_RUNNING)
	case internalpb.Event_PING:
		return s.sm.AgentCall(a.stream, &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: a.id}})
	case internalpb.Event_ACKNOWLEDGE:
	default:
		return fmt.Errorf("agent %s got an unexpected %v", a.id, ev.GetType())
	}
	return nil
}

// account adds (sign 1) or removes a running task's resources to what the
// framework uses.
func (fw *simFramework) account(t *simTask, sign float64) {
	use := fw.use[t.role]
	if use == nil {
		use = map[string]float64{}
		fw.use[t.role] = use
	}
	for _, r := range t.resources {
		if r.Type == resources.TypeScalar {
			use[r.Name] += sign * r.Scalar.Float64()
		}
	}
}

func (s *simulation) status(a *simAgent, frameworkID, taskID string, state mesospb.TaskState) error {
	uuid := make([]byte, 16)
	for i := range uuid {
		uuid[i] = byte(s.rng.Uint32())
	}
	return s.sm.AgentCall(a.stream, &internalpb.Call{
		Type:    internalpb.Call_STATUS_UPDATE.Enum(),
		AgentID: &mesospb.AgentID{Value: a.id},
		StatusUpdate: &internalpb.Call_StatusUpdate{
			FrameworkID: mesospb.FrameworkID{Value: frameworkID},
			Status: mesospb.TaskStatus{
				TaskID: mesospb.TaskID{Value: taskID}, State: state.Enum(),
				Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: uuid,
			},
		},
	})
}

// finishTasks ends the tasks whose time is up, in the order they started.
func (s *simulation) finishTasks() error {
	step := s.res.Steps
	due := s.ending[step]
	delete(s.ending, step)
	for _, t := range due {
		a := t.agent
		delete(a.tasks, t.framework+"/"+t.id)
		if err := s.status(a, t.framework, t.id, mesospb.TASK_FINISHED); err != nil {
			return fmt.Errorf("finishing task %s: %w", t.id, err)
		}
		fw := s.byID[t.framework]
		fw.account(t, -1)
		fw.running--
		s.res.Finished++
	}
	return nil
}

// sample records utilization and fairness.
func (s *simulation) sample() {
	s.res.Samples++
	used := map[string]float64{}
	roleUse := map[string]map[string]float64{} // top-level role -> name -> used
	backlogged := map[string]bool{}            // top-level roles with a framework wanting more
	byRole := map[string][]float64{}           // single-role frameworks wanting more, by role: dominant shares
	for _, fw := range s.frameworks {
		for _, role := range sortedKeys(fw.use) {
			use := fw.use[role]
			top := topRole(role)
			if roleUse[top] == nil {
				roleUse[top] = map[string]float64{}
			}
			for _, name := range sortedKeys(use) {
				used[name] += use[name]
				roleUse[top][name] += use[name]
			}
		}
		if fw.remaining == 0 {
			continue
		}
		for _, role := range fw.roles {
			backlogged[topRole(role)] = true
		}
		if len(fw.roles) == 1 {
			byRole[fw.roles[0]] = append(byRole[fw.roles[0]], s.dominant(fw.use[fw.roles[0]]))
		}
	}
	s.sums.cpu += used[resources.NameCPUs] / s.total[resources.NameCPUs]
	s.sums.mem += used[resources.NameMem] / s.total[resources.NameMem]
	var xs []float64
	for _, top := range sortedKeys(backlogged) {
		w := 1.0
		if v, ok := s.weights[top]; ok {
			w = v
		}
		xs = append(xs, s.dominant(roleUse[top])/w)
	}
	if len(xs) >= 2 {
		s.sums.jainRoles += jain(xs)
		s.fairN.roles++
	}
	sum, n := 0.0, 0
	for _, role := range sortedKeys(byRole) {
		if shares := byRole[role]; len(shares) >= 2 {
			sum += jain(shares)
			n++
		}
	}
	if n > 0 {
		s.sums.jainFrameworks += sum / float64(n)
		s.fairN.frameworks++
	}
}

func topRole(role string) string {
	if i := strings.IndexByte(role, '/'); i >= 0 {
		return role[:i]
	}
	return role
}

// dominant is the dominant share of use in the cluster.
func (s *simulation) dominant(use map[string]float64) float64 {
	d := 0.0
	for name, v := range use {
		if t := s.total[name]; t > 0 {
			d = max(d, v/t)
		}
	}
	return d
}

// jain is Jain's fairness index of xs: (Σx)² / (n Σx²), 1 when all are
// equal, 1/n when one has everything.
func jain(xs []float64) float64 {
	sum, sq := 0.0, 0.0
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// check verifies the cluster's invariants: the allocator's own, and on
// every agent, what is offered plus what tasks hold fits in its total.
func (s *simulation) check() error {
	s.res.Checks++
	if err := s.sm.Allocator().Check(); err != nil {
		return err
	}
	used := map[string]resources.Resources{}
	for _, id := range sortedKeys(s.offers) {
		o := s.offers[id]
		used[o.agent] = used[o.agent].Add(o.resources.Unallocated())
	}
	for _, a := range s.agents {
		for _, t := range a.tasks {
			used[a.id] = used[a.id].Add(t.resources.Unallocated())
		}
	}
	for id, u := range used {
		a := s.agentByID[id]
		if a == nil {
			return fmt.Errorf("resources in use on unknown agent %s", id)
		}
		if !a.total.Contains(u) {
			return fmt.Errorf("agent %s over-allocated: %s in use of %s", id, u, a.total)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func ptr[T any](v T) *T { return &v }

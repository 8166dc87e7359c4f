// Package sim is a deterministic simulation of a whole cluster around the
// master's state machine: simulated agents and frameworks answer its events
// on a simulated clock, in one goroutine, with no I/O. After every step it
// checks the cluster's invariants, so a run of thousands of agents is both a
// load test and a proof that nothing is double-offered, over-allocated or
// forgotten.
package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

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
	Frameworks     int
	// Shapes are task shapes (Mesos text form); framework i uses
	// Shapes[i % len(Shapes)].
	Shapes []string
	// TasksPerFramework is how many tasks each framework runs in all.
	TasksPerFramework int
	// TaskDuration is a task's mean running time; each task runs for a
	// uniformly random time within ±TaskJitter of it.
	TaskDuration, TaskJitter time.Duration
	// Duration bounds the simulated time; Step is the tick.
	Duration, Step time.Duration
	Seed           uint64
	// Master configures the master (Rand and allocation settings).
	Master master.Config
}

// Result sums up a run.
type Result struct {
	Launched, Finished, Refused int
	OffersMade                  int
	Steps                       int
	SimulatedTime               time.Duration
	// LiveTasks is how many tasks the master still tracks at the end; with
	// every task finished and acknowledged, none.
	LiveTasks int
	// OfferToRunning are the simulated delays between an offer reaching a
	// framework and a task launched on it running, sorted.
	OfferToRunning []time.Duration
}

type simFramework struct {
	stream, id string
	shape      resources.Resources
	remaining  int // tasks not yet launched
	running    int
	offersAt   map[string]time.Time
	pending    []mesospb.Offer // offers to answer at the next step
}

type simTask struct {
	framework, agent string
	resources        resources.Resources
	endsAt           time.Time
	launchedAt       time.Time
	offeredAt        time.Time
}

type simAgent struct {
	stream, id string
	total      resources.Resources
	tasks      map[string]*simTask // by framework/task
}

type simulation struct {
	cfg        Config
	rng        *rand.Rand
	sm         *master.StateMachine
	now        time.Time
	frameworks []*simFramework
	byStream   map[string]*simFramework
	agents     map[string]*simAgent // by stream
	agentByID  map[string]*simAgent
	offers     map[string]outstanding // offers held by frameworks
	res        Result
	nextTask   int
}

type outstanding struct {
	agent     string
	resources resources.Resources
}

// Run runs a simulation and returns its result, or the first violated
// invariant.
func Run(cfg Config) (Result, error) {
	if cfg.Step == 0 {
		cfg.Step = 100 * time.Millisecond
	}
	s := &simulation{
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)),
		now:       time.Unix(1_700_000_000, 0),
		byStream:  map[string]*simFramework{},
		agents:    map[string]*simAgent{},
		agentByID: map[string]*simAgent{},
		offers:    map[string]outstanding{},
	}
	mcfg := cfg.Master
	if mcfg.Rand == nil {
		mcfg.Rand = rand.New(rand.NewPCG(cfg.Seed, 1))
	}
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
		s.finishTasks()
		if err := s.answerOffers(); err != nil {
			return s.res, err
		}
		s.sm.Tick(s.now)
		if err := s.deliver(); err != nil {
			return s.res, err
		}
		if err := s.check(); err != nil {
			return s.res, fmt.Errorf("step %d (%v): %w", s.res.Steps, s.now.Sub(time.Unix(1_700_000_000, 0)), err)
		}
		if s.done() {
			break
		}
	}
	s.res.SimulatedTime = s.now.Sub(time.Unix(1_700_000_000, 0))
	s.res.LiveTasks = len(s.sm.State().GetTasks.Tasks)
	sort.Slice(s.res.OfferToRunning, func(i, j int) bool { return s.res.OfferToRunning[i] < s.res.OfferToRunning[j] })
	return s.res, nil
}

func (s *simulation) setUp() error {
	total, err := resources.Parse(s.cfg.AgentResources)
	if err != nil {
		return err
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
	for i := 0; i < s.cfg.Frameworks; i++ {
		shape, err := resources.Parse(s.cfg.Shapes[i%len(s.cfg.Shapes)])
		if err != nil {
			return err
		}
		stream, err := s.sm.SubscribeScheduler(&schedulerpb.Call{
			Type: schedulerpb.Call_SUBSCRIBE.Enum(),
			Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: mesospb.FrameworkInfo{
				User: "sim", Name: fmt.Sprintf("framework-%d", i),
			}},
		})
		if err != nil {
			return err
		}
		fw := &simFramework{stream: stream, shape: shape, remaining: s.cfg.TasksPerFramework, offersAt: map[string]time.Time{}}
		s.frameworks = append(s.frameworks, fw)
		s.byStream[stream] = fw
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
			s.offers[o.ID.Value] = outstanding{agent: o.AgentID.Value, resources: offered}
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
// and declines the rest for a second.
func (s *simulation) useOffer(fw *simFramework, o *mesospb.Offer) error {
	offered := s.offers[o.ID.Value].resources
	need := fw.shape.Allocate(o.AllocationInfo.GetRole())
	var tasks []mesospb.TaskInfo
	left := offered
	for fw.remaining > 0 && left.Contains(need) {
		s.nextTask++
		id := fmt.Sprintf("task-%d", s.nextTask)
		tasks = append(tasks, mesospb.TaskInfo{
			Name: id, TaskID: mesospb.TaskID{Value: id}, AgentID: o.AgentID,
			Resources: need.ToProto(), Command: &mesospb.CommandInfo{Value: ptr("sleep")},
		})
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
			Filters:  &mesospb.Filters{RefuseSeconds: ptr(1.0)},
		},
	}
	if len(tasks) > 0 {
		call.Accept.Operations = []mesospb.Offer_Operation{{
			Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{TaskInfos: tasks},
		}}
		for _, t := range tasks {
			fw.offersAt[t.TaskID.Value] = s.now
		}
	}
	if fw.remaining == 0 {
		call.Accept.Filters.RefuseSeconds = ptr(3600.0)
	}
	return s.sm.SchedulerCall(fw.stream, call)
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
		d := s.cfg.TaskDuration
		if s.cfg.TaskJitter > 0 {
			d += time.Duration(s.rng.Int64N(int64(2*s.cfg.TaskJitter))) - s.cfg.TaskJitter
		}
		st := &simTask{framework: fid, agent: a.id, resources: rs, endsAt: s.now.Add(d), launchedAt: s.now}
		a.tasks[fid+"/"+t.TaskID.Value] = st
		for _, fw := range s.frameworks {
			if fw.id == fid {
				if at, ok := fw.offersAt[t.TaskID.Value]; ok {
					s.res.OfferToRunning = append(s.res.OfferToRunning, s.now.Sub(at))
					delete(fw.offersAt, t.TaskID.Value)
				}
			}
		}
		return s.status(a, fid, t.TaskID.Value, mesospb.TASK_RUNNING)
	case internalpb.Event_PING:
		return s.sm.AgentCall(a.stream, &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: a.id}})
	case internalpb.Event_ACKNOWLEDGE:
	default:
		return fmt.Errorf("agent %s got an unexpected %v", a.id, ev.GetType())
	}
	return nil
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

// finishTasks ends the tasks whose time is up, in a deterministic order.
func (s *simulation) finishTasks() {
	var due []string
	for _, a := range s.agents {
		for key, t := range a.tasks {
			if !s.now.Before(t.endsAt) {
				due = append(due, a.stream+"|"+key)
			}
		}
	}
	sort.Strings(due)
	for _, d := range due {
		var stream, key string
		for i := 0; i < len(d); i++ {
			if d[i] == '|' {
				stream, key = d[:i], d[i+1:]
				break
			}
		}
		a := s.agents[stream]
		t := a.tasks[key]
		delete(a.tasks, key)
		taskID := key[len(t.framework)+1:]
		_ = s.status(a, t.framework, taskID, mesospb.TASK_FINISHED)
		for _, fw := range s.frameworks {
			if fw.id == t.framework {
				fw.running--
			}
		}
		s.res.Finished++
	}
}

// check verifies the cluster's invariants: the allocator's own, and on
// every agent, what is offered plus what tasks hold fits in its total.
func (s *simulation) check() error {
	if err := s.sm.Allocator().Check(); err != nil {
		return err
	}
	used := map[string]resources.Resources{}
	for _, o := range s.offers {
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

func ptr[T any](v T) *T { return &v }

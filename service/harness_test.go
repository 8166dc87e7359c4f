package service

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/resources"
)

// sim is a synthetic cluster for core tests: agents with resources that
// ACCEPTs change as a master would (reserve, create, launch, destroy,
// unreserve), and a core that the test feeds and restarts. No goroutine,
// no clock: the test says when offers go out and which statuses arrive.
type sim struct {
	t      *testing.T
	spec   *Spec
	core   *Core
	saved  *State // what the shell would have stored
	agents map[string]*simAgent
	order  []string
	ids    int
	now    time.Time
	tasks  map[string]*simTask // every task launched, by ID
	calls  []*schedulerpb.Call // all calls of the last drain
	nOffer int
	offers map[string]string // agent of every offer made, by offer ID
	hook   bool              // the core runs with CoreConfig.DecommissionHook
	hooks  []string          // pods of the last drain's Ready.Hooks
}

type simAgent struct {
	id, host string
	attrs    map[string]string
	total    resources.Resources
	used     map[string]resources.Resources // by task
}

type simTask struct {
	info  mesospb.TaskInfo
	agent string
	state mesospb.TaskState
}

func testSpec() *Spec {
	return &Spec{
		Name: "db", Role: "db-role", Principal: "db-principal",
		Pods: []PodSpec{{
			Name: "node", Count: 3, CPUs: 1, Mem: 128,
			Ports:   []PortSpec{{Name: "client"}},
			Volumes: []VolumeSpec{{Path: "data", Size: 100}},
			Command: "echo {{.Index}} > data/index; sleep 1000",
			Quorum:  true,
		}},
	}
}

func newSim(t *testing.T, spec *Spec, agents int) *sim {
	s := &sim{t: t, spec: spec, agents: map[string]*simAgent{}, tasks: map[string]*simTask{}, offers: map[string]string{}, now: time.Unix(1000, 0)}
	for i := 0; i < agents; i++ {
		s.addAgent(fmt.Sprintf("zone-%d", i%2))
	}
	s.restart()
	return s
}

func (s *sim) addAgent(zone string) *simAgent {
	i := len(s.order)
	a := &simAgent{
		id: fmt.Sprintf("agent-%d", i), host: fmt.Sprintf("host-%d", i),
		attrs: map[string]string{"zone": zone},
		total: resources.MustParse("cpus:4;mem:1024;disk:1000;ports:[31000-31009]"),
		used:  map[string]resources.Resources{},
	}
	s.agents[a.id] = a
	s.order = append(s.order, a.id)
	return a
}

func (s *sim) newID() string { s.ids++; return fmt.Sprintf("id%d", s.ids) }

// restart builds a new core from the saved state, as a restarted
// scheduler does, and subscribes it.
func (s *sim) restart() {
	c, err := NewCore(CoreConfig{Spec: s.spec, State: s.saved, NewID: s.newID, DecommissionHook: s.hook})
	require.NoError(s.t, err)
	s.core = c
	s.core.Tick(s.now)
	s.core.Subscribed("fw-1")
	s.drain()
}

// drain takes the core's Ready: saves the state, applies the calls.
func (s *sim) drain() []*schedulerpb.Call {
	r := s.core.Ready()
	if r.State != nil {
		s.saved = r.State
	}
	s.calls = r.Calls
	s.hooks = nil
	for _, p := range r.Hooks {
		s.hooks = append(s.hooks, p.Name)
	}
	for _, call := range r.Calls {
		if call.GetType() == schedulerpb.Call_ACCEPT {
			s.apply(call.Accept)
		}
	}
	return r.Calls
}

// drainLost takes the core's Ready and saves its state but loses its calls
// (the scheduler crashed before sending them).
func (s *sim) drainLost() []*schedulerpb.Call {
	r := s.core.Ready()
	if r.State != nil {
		s.saved = r.State
	}
	s.calls = r.Calls
	return r.Calls
}

func (s *sim) offerOf(a *simAgent) mesospb.Offer {
	free := a.total
	for _, u := range a.used {
		free = free.Subtract(u)
	}
	s.nOffer++
	s.offers[fmt.Sprintf("offer-%d", s.nOffer)] = a.id
	o := mesospb.Offer{
		ID:       mesospb.OfferID{Value: fmt.Sprintf("offer-%d", s.nOffer)},
		AgentID:  mesospb.AgentID{Value: a.id},
		Hostname: a.host,
		// Allocated to the role, as offers are.
		Resources: free.Allocate(s.spec.Role).ToProto(),
	}
	for k, v := range a.attrs {
		o.Attributes = append(o.Attributes, mesospb.Attribute{Name: k, Type: mesospb.Value_TEXT, Text: &mesospb.Value_Text{Value: v}})
	}
	return o
}

// offer sends one offer per named agent (all agents if none) and drains.
func (s *sim) offer(agents ...string) []*schedulerpb.Call {
	if len(agents) == 0 {
		agents = s.order
	}
	var offers []mesospb.Offer
	for _, id := range agents {
		offers = append(offers, s.offerOf(s.agents[id]))
	}
	s.core.Offers(offers)
	return s.drain()
}

func res(t *testing.T, ps []mesospb.Resource) resources.Resources {
	rs, err := resources.FromProto(ps)
	require.NoError(t, err)
	return rs.Unallocated()
}

// apply performs an ACCEPT on the agent its tasks name or, lacking tasks,
// the one whose offer it was (found by the resources).
func (s *sim) apply(acc *schedulerpb.Call_Accept) {
	var a *simAgent
	if len(acc.OfferIDs) > 0 {
		a = s.agents[s.offers[acc.OfferIDs[0].Value]]
	}
	for _, op := range acc.Operations {
		if op.Launch != nil {
			a = s.agents[op.Launch.TaskInfos[0].AgentID.Value]
		}
	}
	if a == nil {
		// cleanup-only accepts: the agent holding the resources
		for _, id := range s.order {
			ag := s.agents[id]
			ok := true
			for _, op := range acc.Operations {
				switch {
				case op.Destroy != nil:
					ok = ok && ag.total.Contains(res(s.t, op.Destroy.Volumes))
				case op.Unreserve != nil && len(acc.Operations) == 1:
					ok = ok && ag.total.Contains(res(s.t, op.Unreserve.Resources))
				case op.Reserve != nil:
					ok = false
				}
			}
			if ok {
				a = ag
				break
			}
		}
	}
	require.NotNil(s.t, a, "no agent for accept")
	for _, op := range acc.Operations {
		switch {
		case op.Reserve != nil:
			r := res(s.t, op.Reserve.Resources)
			require.True(s.t, a.total.Contains(r.PopReservation()), "reserve %s on %s", r, a.total)
			a.total = a.total.Subtract(r.PopReservation()).Add(r)
		case op.Unreserve != nil:
			r := res(s.t, op.Unreserve.Resources)
			require.True(s.t, a.total.Contains(r), "unreserve %s from %s", r, a.total)
			a.total = a.total.Subtract(r).Add(r.PopReservation())
		case op.Create != nil:
			v := res(s.t, op.Create.Volumes)
			var from resources.Resources
			for _, r := range v {
				from = from.AddResource(r.StripVolume())
			}
			require.True(s.t, a.total.Contains(from), "create %s on %s", v, a.total)
			a.total = a.total.Subtract(from).Add(v)
		case op.Destroy != nil:
			v := res(s.t, op.Destroy.Volumes)
			var to resources.Resources
			for _, r := range v {
				to = to.AddResource(r.StripVolume())
			}
			require.True(s.t, a.total.Contains(v))
			a.total = a.total.Subtract(v).Add(to)
		case op.Launch != nil:
			for _, ti := range op.Launch.TaskInfos {
				r := res(s.t, ti.Resources)
				require.True(s.t, a.total.Contains(r), "task %s needs %s, agent has %s", ti.TaskID.Value, r, a.total)
				a.used[ti.TaskID.Value] = r
				s.tasks[ti.TaskID.Value] = &simTask{info: ti, agent: a.id, state: mesospb.TASK_STAGING}
			}
		}
	}
}

// status sends a status for a task and drains; terminal states free the
// task's resources.
func (s *sim) status(taskID string, state mesospb.TaskState, mods ...func(*mesospb.TaskStatus)) []*schedulerpb.Call {
	task := s.tasks[taskID]
	require.NotNil(s.t, task, "unknown task %s", taskID)
	task.state = state
	if terminalState(state.String()) {
		delete(s.agents[task.agent].used, taskID)
	}
	st := mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: taskID}, State: state.Enum(), AgentID: &mesospb.AgentID{Value: task.agent},
		Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum()}
	for _, m := range mods {
		m(&st)
	}
	s.core.Update(st)
	return s.drain()
}

// tick advances the sim's clock by d, tells the core, and drains.
func (s *sim) tick(d time.Duration) []*schedulerpb.Call {
	s.now = s.now.Add(d)
	s.core.Tick(s.now)
	return s.drain()
}

// podTask is the pod's current task ID.
func (s *sim) podTask(pod string) string {
	p, err := s.core.Pod(pod)
	require.NoError(s.t, err)
	return p.TaskID
}

// run sends RUNNING for the pod's current task.
func (s *sim) run(pod string) []*schedulerpb.Call {
	return s.status(s.podTask(pod), mesospb.TASK_RUNNING)
}

// kills answers every KILL in calls with TASK_KILLED.
func (s *sim) kills(calls []*schedulerpb.Call) {
	for _, c := range calls {
		if c.GetType() == schedulerpb.Call_KILL {
			s.status(c.Kill.TaskID.Value, mesospb.TASK_KILLED)
		}
	}
}

// launched are the pods launched by calls, sorted.
func launched(calls []*schedulerpb.Call) []string {
	var out []string
	for _, c := range calls {
		if c.GetType() != schedulerpb.Call_ACCEPT {
			continue
		}
		for _, op := range c.Accept.Operations {
			if op.Launch != nil {
				for _, ti := range op.Launch.TaskInfos {
					out = append(out, ti.Name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ops counts the operations of each type in calls.
func ops(calls []*schedulerpb.Call) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		if c.GetType() == schedulerpb.Call_ACCEPT {
			for _, op := range c.Accept.Operations {
				out[op.GetType().String()]++
			}
		}
		if c.GetType() != schedulerpb.Call_ACCEPT {
			out[c.GetType().String()]++
		}
	}
	return out
}

func killed(calls []*schedulerpb.Call) []string {
	var out []string
	for _, c := range calls {
		if c.GetType() == schedulerpb.Call_KILL {
			out = append(out, c.Kill.TaskID.Value)
		}
	}
	return out
}

// deployAll runs the deploy plan to completion (serial).
func (s *sim) deployAll() {
	for i := 0; i < 10 && s.planStatus(PlanDeploy) != StatusComplete; i++ {
		s.offer()
		for _, p := range s.core.Pods() {
			if p.TaskState == "TASK_STAGING" {
				s.run(p.Name)
			}
		}
	}
	require.Equal(s.t, StatusComplete, s.planStatus(PlanDeploy))
}

func (s *sim) planStatus(name string) Status {
	p, err := s.core.Plan(name)
	require.NoError(s.t, err)
	return p.Status
}

// reservedFor is what agent a holds reserved with the pod's labels.
func (a *simAgent) reservedFor(pod string) resources.Resources {
	return a.total.Filter(func(r resources.Resource) bool {
		if len(r.Reservations) == 0 {
			return false
		}
		for _, l := range r.Reservations[len(r.Reservations)-1].Labels {
			if l.Key == LabelPod && l.Value == pod {
				return true
			}
		}
		return false
	})
}

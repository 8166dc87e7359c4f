package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/resources"
)

// fwTask is what a framework knows of a task it launched. A framework
// records a task before it sends the ACCEPT that launches it, and each
// update before it acknowledges it, so all of this survives its crash.
type fwTask struct {
	id, agent string
	state     mesospb.TaskState // the latest it was told; STAGING at launch
	updated   time.Time
	// final: the agent's own update (one with a uuid) said the task
	// ended. The framework is done with it: a later reconciliation answer
	// (the master forgot the task once the update was acknowledged, so it
	// answers TASK_LOST or TASK_GONE to a RECONCILE sent before) changes
	// nothing, as a framework following Mesos's reconciliation guide
	// treats it.
	final bool
	// killed: the framework asked for the task's kill; it asks again at
	// each reconciliation until told the task ended, as a framework must
	// (a KILL is not retried by Mesos).
	killed bool
}

// modelFramework models a highly available Mesos scheduler: it persists
// its framework ID and its tasks; it subscribes with a failover timeout of
// a week, re-subscribes with its ID after a failure and then reconciles
// (explicitly its non-terminal tasks, then implicitly), reconciles
// periodically, acknowledges every update with a uuid, launches its
// backlog on its offers and declines what it cannot use, suppresses once
// the backlog is empty, and now and then kills one of its running tasks.
type modelFramework struct {
	rng            *rand.Rand
	name           string
	role           string
	partitionAware bool
	shape          resources.Resources
	// Persistent.
	id        string
	remaining int
	tasks     map[string]*fwTask
	nextTask  int
	// Volatile: lost in a crash.
	offers        []mesospb.Offer
	lastReconcile time.Time
	killRate      float64 // kills per second
	step          time.Duration
}

// reconcileEvery is how often a framework reconciles its tasks, as Mesos
// advises frameworks to do periodically.
const reconcileEvery = 30 * time.Second

func (f *modelFramework) info() mesospb.FrameworkInfo {
	fi := mesospb.FrameworkInfo{
		User: "sim", Name: f.name, Role: ptr(f.role), FailoverTimeout: ptr(7 * 24 * time.Hour.Seconds()),
		Checkpoint: ptr(true),
	}
	if f.partitionAware {
		fi.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()}}
	}
	if f.id != "" {
		fi.ID = &mesospb.FrameworkID{Value: f.id}
	}
	return fi
}

func (f *modelFramework) subscribeCall() *schedulerpb.Call {
	c := &schedulerpb.Call{Type: schedulerpb.Call_SUBSCRIBE.Enum(), Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: f.info()}}
	if f.id != "" {
		c.FrameworkID = &mesospb.FrameworkID{Value: f.id}
	}
	return c
}

func (f *modelFramework) call(t schedulerpb.Call_Type) *schedulerpb.Call {
	return &schedulerpb.Call{Type: t.Enum(), FrameworkID: &mesospb.FrameworkID{Value: f.id}}
}

// crash loses what the framework held in memory only.
func (f *modelFramework) crash() {
	f.offers = nil
	f.lastReconcile = time.Time{}
}

// settled says whether the framework considers a task done with: it was
// told a terminal state, or that the master does not know it.
func settled(s mesospb.TaskState) bool {
	return isTerminalState(s) || s == mesospb.TASK_UNKNOWN
}

// reconcile is explicit reconciliation of the tasks not settled, then
// implicit reconciliation, as Mesos's reconciliation guide describes.
func (f *modelFramework) reconcile(now time.Time) []*schedulerpb.Call {
	f.lastReconcile = now
	exp := f.call(schedulerpb.Call_RECONCILE)
	exp.Reconcile = &schedulerpb.Call_Reconcile{}
	for _, id := range sortedKeys(f.tasks) {
		t := f.tasks[id]
		if settled(t.state) && t.state != mesospb.TASK_UNKNOWN {
			continue
		}
		rt := schedulerpb.Call_Reconcile_Task{TaskID: mesospb.TaskID{Value: id}}
		if t.agent != "" {
			rt.AgentID = &mesospb.AgentID{Value: t.agent}
		}
		exp.Reconcile.Tasks = append(exp.Reconcile.Tasks, rt)
	}
	calls := []*schedulerpb.Call{}
	if len(exp.Reconcile.Tasks) > 0 {
		calls = append(calls, exp)
	}
	for _, id := range sortedKeys(f.tasks) {
		if t := f.tasks[id]; t.killed && !settled(t.state) {
			calls = append(calls, f.kill(t))
		}
	}
	imp := f.call(schedulerpb.Call_RECONCILE)
	imp.Reconcile = &schedulerpb.Call_Reconcile{}
	return append(calls, imp)
}

// event handles an event of the master; it returns the calls to send.
func (f *modelFramework) event(now time.Time, ev *schedulerpb.Event) []*schedulerpb.Call {
	switch ev.GetType() {
	case schedulerpb.Event_SUBSCRIBED:
		f.id = ev.Subscribed.FrameworkID.Value
		calls := f.reconcile(now)
		if f.remaining == 0 {
			calls = append(calls, f.call(schedulerpb.Call_SUPPRESS))
		}
		return calls
	case schedulerpb.Event_OFFERS:
		f.offers = append(f.offers, ev.Offers.Offers...)
	case schedulerpb.Event_RESCIND:
		for i, o := range f.offers {
			if o.ID.Value == ev.Rescind.OfferID.Value {
				f.offers = append(f.offers[:i], f.offers[i+1:]...)
				break
			}
		}
	case schedulerpb.Event_UPDATE:
		st := ev.Update.Status
		t := f.tasks[st.TaskID.Value]
		if t != nil && !t.final {
			t.state, t.updated = st.GetState(), now
			if st.AgentID != nil {
				t.agent = st.AgentID.Value
			}
			t.final = st.UUID != nil && isTerminalState(st.GetState())
		}
		if st.UUID != nil && st.AgentID != nil {
			ack := f.call(schedulerpb.Call_ACKNOWLEDGE)
			ack.Acknowledge = &schedulerpb.Call_Acknowledge{AgentID: *st.AgentID, TaskID: st.TaskID, UUID: st.UUID}
			return []*schedulerpb.Call{ack}
		}
	}
	return nil
}

// tick answers the offers of the last step, reconciles when it is time,
// and may kill a task.
func (f *modelFramework) tick(now time.Time) []*schedulerpb.Call {
	var calls []*schedulerpb.Call
	offers := f.offers
	f.offers = nil
	for i := range offers {
		calls = append(calls, f.answer(now, &offers[i])...)
	}
	if now.Sub(f.lastReconcile) >= reconcileEvery {
		calls = append(calls, f.reconcile(now)...)
	}
	if f.killRate > 0 && f.rng.Float64() < f.killRate*f.step.Seconds() {
		var running []string
		for _, id := range sortedKeys(f.tasks) {
			if f.tasks[id].state == mesospb.TASK_RUNNING {
				running = append(running, id)
			}
		}
		if len(running) > 0 {
			t := f.tasks[running[f.rng.IntN(len(running))]]
			t.killed = true
			calls = append(calls, f.kill(t))
		}
	}
	return calls
}

// kill is the KILL of a task.
func (f *modelFramework) kill(t *fwTask) *schedulerpb.Call {
	k := f.call(schedulerpb.Call_KILL)
	k.Kill = &schedulerpb.Call_Kill{TaskID: mesospb.TaskID{Value: t.id}, AgentID: &mesospb.AgentID{Value: t.agent}}
	return k
}

func (f *modelFramework) answer(now time.Time, o *mesospb.Offer) []*schedulerpb.Call {
	offered, err := resources.FromProto(o.Resources)
	if err != nil {
		panic(fmt.Sprintf("framework %s: offer %s: %v", f.name, o.ID.Value, err))
	}
	// Offers to a framework that is not MULTI_ROLE carry no
	// allocation_info, and neither do their resources.
	need := f.shape.Allocate(o.AllocationInfo.GetRole())
	var tasks []mesospb.TaskInfo
	for f.remaining > 0 && offered.Contains(need) {
		f.nextTask++
		id := fmt.Sprintf("%s-task-%d", f.name, f.nextTask)
		f.tasks[id] = &fwTask{id: id, agent: o.AgentID.Value, state: mesospb.TASK_STAGING, updated: now}
		tasks = append(tasks, mesospb.TaskInfo{
			Name: id, TaskID: mesospb.TaskID{Value: id}, AgentID: o.AgentID,
			Resources: need.ToProto(), Command: &mesospb.CommandInfo{Value: ptr("sleep")},
		})
		offered = offered.Subtract(need)
		f.remaining--
	}
	var calls []*schedulerpb.Call
	if len(tasks) == 0 {
		d := f.call(schedulerpb.Call_DECLINE)
		d.Decline = &schedulerpb.Call_Decline{OfferIDs: []mesospb.OfferID{o.ID}, Filters: &mesospb.Filters{RefuseSeconds: ptr(5.0)}}
		calls = append(calls, d)
	} else {
		a := f.call(schedulerpb.Call_ACCEPT)
		a.Accept = &schedulerpb.Call_Accept{
			OfferIDs:   []mesospb.OfferID{o.ID},
			Operations: []mesospb.Offer_Operation{{Type: mesospb.Offer_Operation_LAUNCH.Enum(), Launch: &mesospb.Offer_Operation_Launch{TaskInfos: tasks}}},
			Filters:    &mesospb.Filters{RefuseSeconds: ptr(1.0)},
		}
		calls = append(calls, a)
	}
	if f.remaining == 0 {
		calls = append(calls, f.call(schedulerpb.Call_SUPPRESS))
	}
	return calls
}

package master_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

func ptr[T any](v T) *T { return &v }

// harness drives a master state machine on a fake timeline and sorts what
// it sends by stream, so a test reads like a conversation.
type harness struct {
	t      *testing.T
	sm     *master.StateMachine
	now    time.Time
	sched  map[string][]*schedulerpb.Event
	agent  map[string][]*internalpb.Event
	closed map[string]bool
	// registry holds the registry operations emitted since the last look.
	registry []master.RegistryOp
}

func newHarness(t *testing.T, cfg master.Config) *harness {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	now := time.Unix(1_700_000_000, 0)
	sm, err := master.NewStateMachine(cfg, now)
	require.NoError(t, err)
	return &harness{t: t, sm: sm, now: now,
		sched: map[string][]*schedulerpb.Event{}, agent: map[string][]*internalpb.Event{}, closed: map[string]bool{}}
}

func (h *harness) collect() {
	r := h.sm.Ready()
	for _, o := range r.Outputs {
		if o.Scheduler != nil {
			h.sched[o.Stream] = append(h.sched[o.Stream], o.Scheduler)
		}
		if o.Agent != nil {
			h.agent[o.Stream] = append(h.agent[o.Stream], o.Agent)
		}
	}
	for _, id := range r.Closes {
		h.closed[id] = true
	}
	h.registry = append(h.registry, r.Registry...)
	require.NoError(h.t, h.sm.Allocator().Check(), "allocator invariants")
}

// advance moves time forward in ticks of 20 ms, as the master's shell does.
func (h *harness) advance(d time.Duration) {
	for end := h.now.Add(d); h.now.Before(end); {
		h.now = h.now.Add(20 * time.Millisecond)
		h.sm.Tick(h.now)
		h.collect()
	}
}

func frameworkInfo(name string) mesospb.FrameworkInfo {
	return mesospb.FrameworkInfo{User: "root", Name: name}
}

func (h *harness) subscribe(info mesospb.FrameworkInfo) (stream, frameworkID string) {
	h.t.Helper()
	call := &schedulerpb.Call{
		Type:      schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: info},
	}
	if info.ID != nil {
		call.FrameworkID = info.ID
	}
	stream, err := h.sm.SubscribeScheduler(call)
	require.NoError(h.t, err)
	h.collect()
	evs := h.take(stream)
	require.NotEmpty(h.t, evs)
	require.Equal(h.t, schedulerpb.Event_SUBSCRIBED, evs[0].GetType())
	return stream, evs[0].Subscribed.FrameworkID.Value
}

func (h *harness) call(stream, frameworkID string, call *schedulerpb.Call) error {
	call.FrameworkID = &mesospb.FrameworkID{Value: frameworkID}
	err := h.sm.SchedulerCall(stream, call)
	h.collect()
	return err
}

func (h *harness) registerAgent(res string) (stream, agentID string) {
	h.t.Helper()
	rs, err := resources.Parse(res)
	require.NoError(h.t, err)
	stream, err = h.sm.ConnectAgent(&internalpb.Call{
		Type: internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
			Hostname: "host-" + res, Resources: rs.ToProto(),
		}},
	})
	require.NoError(h.t, err)
	h.collect()
	evs := h.takeAgent(stream)
	require.NotEmpty(h.t, evs)
	require.Equal(h.t, internalpb.Event_REGISTERED, evs[0].GetType())
	return stream, evs[0].Registered.AgentID.Value
}

func (h *harness) agentCall(stream, agentID string, call *internalpb.Call) error {
	call.AgentID = &mesospb.AgentID{Value: agentID}
	err := h.sm.AgentCall(stream, call)
	h.collect()
	return err
}

// sendStatus has the agent report a task state with a fresh uuid.
func (h *harness) sendStatus(stream, agentID, frameworkID, taskID string, state mesospb.TaskState) []byte {
	h.t.Helper()
	uuid := []byte(taskID + state.String())
	require.NoError(h.t, h.agentCall(stream, agentID, &internalpb.Call{
		Type: internalpb.Call_STATUS_UPDATE.Enum(),
		StatusUpdate: &internalpb.Call_StatusUpdate{
			FrameworkID: mesospb.FrameworkID{Value: frameworkID},
			Status: mesospb.TaskStatus{
				TaskID: mesospb.TaskID{Value: taskID}, State: state.Enum(),
				Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: uuid,
			},
		},
	}))
	return uuid
}

func (h *harness) take(stream string) []*schedulerpb.Event {
	evs := h.sched[stream]
	delete(h.sched, stream)
	return evs
}

func (h *harness) takeAgent(stream string) []*internalpb.Event {
	evs := h.agent[stream]
	delete(h.agent, stream)
	return evs
}

// offers returns the offers the framework's stream received since the last look.
func (h *harness) offers(stream string) []mesospb.Offer {
	var out []mesospb.Offer
	rest := h.sched[stream][:0]
	for _, ev := range h.sched[stream] {
		if ev.GetType() == schedulerpb.Event_OFFERS {
			out = append(out, ev.Offers.Offers...)
		} else {
			rest = append(rest, ev)
		}
	}
	h.sched[stream] = rest
	return out
}

// updates returns the task statuses the stream received since the last look.
func (h *harness) updates(stream string) []mesospb.TaskStatus {
	var out []mesospb.TaskStatus
	rest := h.sched[stream][:0]
	for _, ev := range h.sched[stream] {
		if ev.GetType() == schedulerpb.Event_UPDATE {
			out = append(out, ev.Update.Status)
		} else {
			rest = append(rest, ev)
		}
	}
	h.sched[stream] = rest
	return out
}

func (h *harness) agentEventsOf(stream string, t internalpb.Event_Type) []*internalpb.Event {
	return takeOfType(h.agent, stream, t)
}

// takeOfType removes the events of type t from a stream's events and
// returns them, leaving the others in order.
func takeOfType[E interface{ GetType() T }, T comparable](byStream map[string][]E, stream string, t T) []E {
	var out []E
	rest := byStream[stream][:0]
	for _, ev := range byStream[stream] {
		if ev.GetType() == t {
			out = append(out, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	byStream[stream] = rest
	return out
}

func commandTask(id string, offer mesospb.Offer, res string) mesospb.TaskInfo {
	rs := resources.MustParse(res)
	return mesospb.TaskInfo{
		Name:      id,
		TaskID:    mesospb.TaskID{Value: id},
		AgentID:   offer.AgentID,
		Resources: rs.ToProto(),
		Command:   &mesospb.CommandInfo{Value: ptr("true")},
	}
}

func launchCall(offerIDs []mesospb.OfferID, tasks ...mesospb.TaskInfo) *schedulerpb.Call {
	return &schedulerpb.Call{
		Type: schedulerpb.Call_ACCEPT.Enum(),
		Accept: &schedulerpb.Call_Accept{
			OfferIDs: offerIDs,
			Operations: []mesospb.Offer_Operation{{
				Type:   mesospb.Offer_Operation_LAUNCH.Enum(),
				Launch: &mesospb.Offer_Operation_Launch{TaskInfos: tasks},
			}},
			Filters: &mesospb.Filters{RefuseSeconds: ptr(0.0)},
		},
	}
}

func offerIDs(offers ...mesospb.Offer) []mesospb.OfferID {
	ids := make([]mesospb.OfferID, len(offers))
	for i, o := range offers {
		ids[i] = o.ID
	}
	return ids
}

func sumOffers(offers []mesospb.Offer) resources.Resources {
	var total resources.Resources
	for _, o := range offers {
		rs, _ := resources.FromProto(o.Resources)
		total = total.Add(rs)
	}
	return total
}

package scheduler

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// inverseRecorder is a recorder that also handles inverse offers.
type inverseRecorder struct {
	*recorder
	onInverse func(ctx context.Context, d *Driver, offers []mesospb.InverseOffer)
}

func (r inverseRecorder) InverseOffers(ctx context.Context, d *Driver, offers []mesospb.InverseOffer) {
	for _, o := range offers {
		r.add("inverse offer " + o.ID.Value + " agent " + o.AgentID.GetValue())
	}
	if r.onInverse != nil {
		r.onInverse(ctx, d, offers)
	}
}

func (r inverseRecorder) InverseOfferRescinded(_ context.Context, _ *Driver, id mesospb.OfferID) {
	r.add("inverse rescind " + id.Value)
}

func inverseOffersEvent(ids ...string) *schedulerpb.Event {
	ev := event(schedulerpb.Event_INVERSE_OFFERS)
	ev.InverseOffers = &schedulerpb.Event_InverseOffers{}
	for _, id := range ids {
		ev.InverseOffers.InverseOffers = append(ev.InverseOffers.InverseOffers, mesospb.InverseOffer{
			ID:             mesospb.OfferID{Value: id},
			FrameworkID:    mesospb.FrameworkID{Value: "fw-1"},
			AgentID:        &mesospb.AgentID{Value: "agent-1"},
			Unavailability: mesospb.Unavailability{Start: mesospb.TimeInfo{Nanoseconds: 1}},
		})
	}
	return ev
}

func rescindInverseEvent(id string) *schedulerpb.Event {
	ev := event(schedulerpb.Event_RESCIND_INVERSE_OFFER)
	ev.RescindInverseOffer = &schedulerpb.Event_RescindInverseOffer{InverseOfferID: mesospb.OfferID{Value: id}}
	return ev
}

func TestInverseOffersReachAHandler(t *testing.T) {
	h := newHarness(t)
	rec := inverseRecorder{recorder: h.rec}
	rec.onInverse = func(ctx context.Context, d *Driver, offers []mesospb.InverseOffer) {
		// A callback may answer at once.
		assert.NoError(t, d.DeclineInverseOffers(ctx, []mesospb.OfferID{offers[0].ID}, &mesospb.Filters{RefuseSeconds: ptr(60.0)}))
	}
	d, err := NewDriver(rec, testInfo(), WithMaster(h.m), WithClock(h.clk))
	require.NoError(t, err)
	h.d = d
	h.start()
	h.waitEntry("registered fw-1")

	h.m.push(t, event(schedulerpb.Event_INVERSE_OFFERS)) // none: no callback
	h.m.push(t, event(schedulerpb.Event_RESCIND_INVERSE_OFFER))
	h.m.push(t, inverseOffersEvent("i1"))
	h.m.push(t, rescindInverseEvent("i0"))
	h.m.push(t, offersEvent("o1"))
	h.waitEntry("offers 1")
	assert.Equal(t, []string{
		"registered fw-1",
		"inverse offer i1 agent agent-1",
		"inverse rescind i0",
		"offers 1",
	}, h.rec.entries())

	sent := h.m.sent(schedulerpb.Call_DECLINE_INVERSE_OFFERS)
	require.Len(t, sent, 1)
	assert.Equal(t, []mesospb.OfferID{{Value: "i1"}}, sent[0].call.DeclineInverseOffers.InverseOfferIDs)
	assert.Equal(t, 60.0, sent[0].call.DeclineInverseOffers.Filters.GetRefuseSeconds())
}

func TestInverseOffersWithoutHandlerAreDropped(t *testing.T) {
	h := startRegistered(t) // recorder does not implement InverseOfferHandler
	_, handles := Scheduler(h.rec).(InverseOfferHandler)
	require.False(t, handles)
	h.m.push(t, inverseOffersEvent("i1"))
	h.m.push(t, rescindInverseEvent("i1"))
	h.m.push(t, offersEvent("o1"))
	h.waitEntry("offers 1")
	assert.Equal(t, []string{"registered fw-1", "offers 1"}, h.rec.entries())
	assert.True(t, h.d.Connected())
}

func TestFuncsHandlesInverseOffers(t *testing.T) {
	var got []string
	f := Funcs{
		OnInverseOffers: func(_ context.Context, _ *Driver, offers []mesospb.InverseOffer) {
			got = append(got, "offers "+offers[0].ID.Value)
		},
		OnInverseOfferRescinded: func(_ context.Context, _ *Driver, id mesospb.OfferID) {
			got = append(got, "rescind "+id.Value)
		},
	}
	var s Scheduler = f
	handler, ok := s.(InverseOfferHandler)
	require.True(t, ok)
	handler.InverseOffers(context.Background(), nil, inverseOffersEvent("i1").InverseOffers.InverseOffers)
	handler.InverseOfferRescinded(context.Background(), nil, mesospb.OfferID{Value: "i1"})
	assert.Equal(t, []string{"offers i1", "rescind i1"}, got)
	// Unset fields are no-ops.
	Funcs{}.InverseOffers(context.Background(), nil, nil)
	Funcs{}.InverseOfferRescinded(context.Background(), nil, mesospb.OfferID{})
}

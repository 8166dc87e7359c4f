package scheduler

import (
	"context"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// InverseOfferHandler is implemented by a Scheduler that takes part in
// maintenance. An inverse offer is the master asking for the framework's
// resources on an agent back: the agent's machine is scheduled for
// maintenance, from InverseOffer.Unavailability on (offers of that agent
// carry the same Offer.Unavailability). The framework answers with
// AcceptInverseOffers (it can do without the agent by then: a best-effort
// promise to move its tasks away) or DeclineInverseOffers (it cannot); the
// operator reads the answers in the master's maintenance status and
// decides, for the master changes nothing itself. An inverse offer stays
// outstanding until answered or rescinded, and the master sends a new one
// after the answer's filters (refuse_seconds, 5 s by default) run out, so
// the framework can change its mind.
//
// The driver finds the handler by type assertion on the Scheduler passed to
// NewDriver; a Scheduler that does not implement it never sees inverse
// offers, which stay unanswered (Mesos reports no answer as UNKNOWN).
type InverseOfferHandler interface {
	// InverseOffers hands the framework new inverse offers.
	InverseOffers(ctx context.Context, d *Driver, offers []mesospb.InverseOffer)
	// InverseOfferRescinded says an inverse offer is no longer valid (its
	// agent went away, or its unavailability changed and a new one
	// follows); answering it does nothing.
	InverseOfferRescinded(ctx context.Context, d *Driver, inverseOfferID mesospb.OfferID)
}

// AcceptInverseOffers tells the master the framework can give up the
// agents of the inverse offers by their unavailability. filters (nil: the
// master's default, 5 s) delays the next inverse offer for each agent.
func (d *Driver) AcceptInverseOffers(ctx context.Context, inverseOfferIDs []mesospb.OfferID, filters *mesospb.Filters) error {
	return d.send(ctx, &schedulerpb.Call{
		Type: schedulerpb.Call_ACCEPT_INVERSE_OFFERS.Enum(),
		AcceptInverseOffers: &schedulerpb.Call_AcceptInverseOffers{
			InverseOfferIDs: inverseOfferIDs,
			Filters:         filters,
		},
	})
}

// DeclineInverseOffers tells the master the framework cannot give up the
// agents of the inverse offers by their unavailability. filters (nil: the
// master's default, 5 s) delays the next inverse offer for each agent.
func (d *Driver) DeclineInverseOffers(ctx context.Context, inverseOfferIDs []mesospb.OfferID, filters *mesospb.Filters) error {
	return d.send(ctx, &schedulerpb.Call{
		Type: schedulerpb.Call_DECLINE_INVERSE_OFFERS.Enum(),
		DeclineInverseOffers: &schedulerpb.Call_DeclineInverseOffers{
			InverseOfferIDs: inverseOfferIDs,
			Filters:         filters,
		},
	})
}

// handleInverse delivers INVERSE_OFFERS and RESCIND_INVERSE_OFFER to the
// scheduler's InverseOfferHandler, if it has one; it reports whether ev
// was one of them.
func (d *Driver) handleInverse(ctx context.Context, ev *schedulerpb.Event) bool {
	h, ok := d.sched.(InverseOfferHandler)
	switch ev.GetType() {
	case schedulerpb.Event_INVERSE_OFFERS:
		if offers := ev.GetInverseOffers().GetInverseOffers(); ok && len(offers) > 0 {
			h.InverseOffers(ctx, d, offers)
		}
	case schedulerpb.Event_RESCIND_INVERSE_OFFER:
		if r := ev.GetRescindInverseOffer(); ok && r != nil {
			h.InverseOfferRescinded(ctx, d, r.InverseOfferID)
		}
	default:
		return false
	}
	return true
}

var _ InverseOfferHandler = Funcs{}

// InverseOffers calls OnInverseOffers if set.
func (f Funcs) InverseOffers(ctx context.Context, d *Driver, offers []mesospb.InverseOffer) {
	if f.OnInverseOffers != nil {
		f.OnInverseOffers(ctx, d, offers)
	}
}

// InverseOfferRescinded calls OnInverseOfferRescinded if set.
func (f Funcs) InverseOfferRescinded(ctx context.Context, d *Driver, id mesospb.OfferID) {
	if f.OnInverseOfferRescinded != nil {
		f.OnInverseOfferRescinded(ctx, d, id)
	}
}

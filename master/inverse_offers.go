package master

import (
	"math"
	"slices"
	"time"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// Inverse offers ask a framework for its resources on an agent back: the
// master sends one to every connected framework that holds resources
// (offered or in use, tasks or executors) on an agent of a DRAINING
// machine, carrying the machine's unavailability and no resources (the
// whole agent). A framework has at most one outstanding per agent; it
// answers with ACCEPT_INVERSE_OFFERS (it can do without the agent) or
// DECLINE_INVERSE_OFFERS (it cannot), which the operator reads in
// GET_MAINTENANCE_STATUS. The answer changes nothing else: the operator
// decides. Its filters (refuse_seconds, 5 s by default) keep the next
// inverse offer for that agent away for that long; otherwise a new one
// follows at the next allocation run, as Mesos's allocator makes them.
//
// An inverse offer is rescinded (RESCIND_INVERSE_OFFER) when its agent
// disconnects, is deactivated or is removed, when the schedule changes its agent's
// unavailability, and after Config.OfferTimeout if one is set; it is
// dropped silently when its framework disconnects. Mesos's allocator does
// this bookkeeping; Apron keeps it in the master's core, next to the
// machines it is about, and leaves the allocator alone.

// inverseOffer is an inverse offer outstanding with a framework.
type inverseOffer struct {
	id, framework, agent string
	// stream is the framework's stream it was sent on: a framework that
	// re-subscribed is sent new ones.
	stream         string
	d              *drainingAgent
	unavailability mesospb.Unavailability
	url            *mesospb.URL // the agent's, as offers carry it
	created        time.Time
}

func (io *inverseOffer) proto() mesospb.InverseOffer {
	return mesospb.InverseOffer{
		ID:             mesospb.OfferID{Value: io.id},
		URL:            io.url,
		FrameworkID:    mesospb.FrameworkID{Value: io.framework},
		AgentID:        &mesospb.AgentID{Value: io.agent},
		Unavailability: cloneUnavailability(io.unavailability),
	}
}

// drainingAgent is an agent on a DRAINING machine with what Mesos's
// allocator keeps for it: the inverse offers outstanding, the frameworks'
// latest answers and their refusal filters, by framework ID. It is made
// afresh whenever the agent's unavailability changes.
type drainingAgent struct {
	unavailability mesospb.Unavailability
	outstanding    map[string]string
	statuses       map[string]masterpb.InverseOfferStatus
	filters        map[string]inverseFilter
}

// inverseFilter keeps inverse offers for an agent from a framework until
// a time, for as long as the framework stays on the stream that answered
// (Mesos drops a framework's filters when it disconnects).
type inverseFilter struct {
	until  time.Time
	stream string
}

// unavailabilityProto is the unavailability an agent's offers carry, a
// copy each time: schedulers in the same process get the proto itself.
func (a *agent) unavailabilityProto() *mesospb.Unavailability {
	if a.unavailability == nil {
		return nil
	}
	u := cloneUnavailability(*a.unavailability)
	return &u
}

// startDraining puts an agent on a DRAINING machine with unavailability u.
func (c *core) startDraining(a *agent, u mesospb.Unavailability) {
	c.maint.init()
	u = cloneUnavailability(u)
	a.unavailability = &u
	c.maint.draining[a.id] = &drainingAgent{
		unavailability: u,
		outstanding:    map[string]string{},
		statuses:       map[string]masterpb.InverseOfferStatus{},
		filters:        map[string]inverseFilter{},
	}
	c.dirtyAgents[a.id] = true
}

// maintenanceTick runs at the end of each tick: it drops the inverse offers
// whose agent or framework went away, rescinds those past the offer
// timeout, and after an allocation run makes new ones.
func (c *core) maintenanceTick() {
	if len(c.maint.draining) == 0 && len(c.maint.inverse) == 0 {
		return
	}
	c.pruneInverseOffers()
	if c.cfg.OfferTimeout > 0 {
		for _, id := range sortedKeys(c.maint.inverse) {
			if io := c.maint.inverse[id]; !c.now.Before(io.created.Add(c.cfg.OfferTimeout)) {
				c.dropInverseOffer(io, true)
			}
		}
	}
	if c.met.allocationRuns != c.maint.allocationRuns {
		c.maint.allocationRuns = c.met.allocationRuns
		c.makeInverseOffers()
	}
}

// pruneInverseOffers drops the inverse offers that no longer stand: their
// framework was removed (nothing to tell), or re-subscribed, or their
// agent disconnected, was deactivated or removed, or left maintenance
// (rescinded). It forgets removed agents too.
func (c *core) pruneInverseOffers() {
	for _, id := range sortedKeys(c.maint.inverse) {
		io := c.maint.inverse[id]
		fw, a := c.frameworks[io.framework], c.agents[io.agent]
		switch {
		case fw == nil:
			c.dropInverseOffer(io, false)
		case a == nil || !c.agentActive(a) || c.maint.draining[io.agent] != io.d || fw.stream != io.stream:
			c.dropInverseOffer(io, true)
		}
	}
	for id := range c.maint.draining {
		if c.agents[id] == nil {
			delete(c.maint.draining, id)
		}
	}
}

// dropInverseOffer forgets an inverse offer, telling its framework when
// rescind is set and it is connected. The framework's answer, if any, has
// been recorded by the caller; without one, its status stays as it was.
func (c *core) dropInverseOffer(io *inverseOffer, rescind bool) {
	delete(c.maint.inverse, io.id)
	if io.d.outstanding[io.framework] == io.id {
		delete(io.d.outstanding, io.framework)
	}
	if !rescind {
		return
	}
	if fw := c.frameworks[io.framework]; fw != nil {
		c.sendScheduler(fw, &schedulerpb.Event{
			Type:                schedulerpb.Event_RESCIND_INVERSE_OFFER.Enum(),
			RescindInverseOffer: &schedulerpb.Event_RescindInverseOffer{InverseOfferID: mesospb.OfferID{Value: io.id}},
		})
	}
}

// agentActive says whether an agent can be given inverse offers for, as
// Mesos's Slave::active: connected and not deactivated by the operator.
func (c *core) agentActive(a *agent) bool {
	return a.stream != "" && !c.admin.deactivated[a.id]
}

// rescindInverseOffersOn rescinds every inverse offer for an agent.
func (c *core) rescindInverseOffersOn(agentID string) {
	for _, id := range sortedKeys(c.maint.inverse) {
		if io := c.maint.inverse[id]; io.agent == agentID {
			c.dropInverseOffer(io, true)
		}
	}
}

// makeInverseOffers sends an inverse offer for each draining agent to each
// connected framework holding resources there that has none outstanding
// for it and no filter against it: one INVERSE_OFFERS event per framework.
func (c *core) makeInverseOffers() {
	batches := map[string][]mesospb.InverseOffer{}
	var order []string
	for _, agentID := range sortedKeys(c.maint.draining) {
		a, d := c.agents[agentID], c.maint.draining[agentID]
		if a == nil || !c.agentActive(a) {
			continue
		}
		for _, fwID := range c.agentUsers(a) {
			fw := c.frameworks[fwID]
			if fw == nil || fw.stream == "" {
				continue
			}
			if _, ok := d.outstanding[fwID]; ok {
				continue
			}
			if f, ok := d.filters[fwID]; ok {
				if f.stream == fw.stream && c.now.Before(f.until) {
					continue
				}
				delete(d.filters, fwID)
			}
			io := &inverseOffer{
				id: c.newOfferID(), framework: fwID, agent: a.id, stream: fw.stream,
				d: d, unavailability: d.unavailability, url: offerURL(a), created: c.now,
			}
			c.maint.inverse[io.id] = io
			d.outstanding[fwID] = io.id
			if _, ok := batches[fwID]; !ok {
				order = append(order, fwID)
			}
			batches[fwID] = append(batches[fwID], io.proto())
		}
	}
	for _, fwID := range order {
		c.sendScheduler(c.frameworks[fwID], &schedulerpb.Event{
			Type:          schedulerpb.Event_INVERSE_OFFERS.Enum(),
			InverseOffers: &schedulerpb.Event_InverseOffers{InverseOffers: batches[fwID]},
		})
	}
}

// agentUsers lists, sorted, the frameworks with resources offered or in
// use on an agent: offers, live tasks, executors.
func (c *core) agentUsers(a *agent) []string {
	set := map[string]bool{}
	for _, o := range a.offers {
		set[o.framework] = true
	}
	for _, t := range a.tasks {
		if !t.terminal() {
			set[t.framework] = true
		}
	}
	for id, fw := range c.frameworks {
		if len(fw.executors[a.id]) > 0 {
			set[id] = true
		}
	}
	users := make([]string, 0, len(set))
	for id := range set {
		users = append(users, id)
	}
	slices.Sort(users)
	return users
}

// answerInverseOffers handles ACCEPT_INVERSE_OFFERS and
// DECLINE_INVERSE_OFFERS: each inverse offer of the framework still
// outstanding records the answer, with the time, and the filters. IDs that
// are unknown, no longer valid or another framework's are ignored, as
// Mesos ignores them.
func (c *core) answerInverseOffers(fw *framework, call *schedulerpb.Call) error {
	var (
		ids     []mesospb.OfferID
		filters *mesospb.Filters
		answer  masterpb.InverseOfferStatus_Status
	)
	switch call.GetType() {
	case schedulerpb.Call_ACCEPT_INVERSE_OFFERS:
		if call.AcceptInverseOffers == nil {
			return missing("accept_inverse_offers")
		}
		ids, filters, answer = call.AcceptInverseOffers.InverseOfferIDs, call.AcceptInverseOffers.Filters, masterpb.InverseOfferStatus_ACCEPT
	case schedulerpb.Call_DECLINE_INVERSE_OFFERS:
		if call.DeclineInverseOffers == nil {
			return missing("decline_inverse_offers")
		}
		ids, filters, answer = call.DeclineInverseOffers.InverseOfferIDs, call.DeclineInverseOffers.Filters, masterpb.InverseOfferStatus_DECLINE
	default:
		return missing("accept_inverse_offers")
	}
	c.pruneInverseOffers()
	refuse := inverseRefuse(filters)
	for _, id := range ids {
		io := c.maint.inverse[id.Value]
		if io == nil || io.framework != fw.id {
			continue
		}
		io.d.statuses[fw.id] = masterpb.InverseOfferStatus{
			Status:      answer.Enum(),
			FrameworkID: mesospb.FrameworkID{Value: fw.id},
			Timestamp:   mesospb.TimeInfo{Nanoseconds: c.now.UnixNano()},
		}
		c.dropInverseOffer(io, false)
		if refuse > 0 {
			io.d.filters[fw.id] = inverseFilter{until: c.now.Add(refuse), stream: fw.stream}
		}
	}
	return nil
}

// inverseRefuse is how long an answer's filters keep the next inverse
// offer away: refuse_seconds, 5 s when unset; as Mesos's allocator does
// for inverse offers, a negative or NaN value means the default, and more
// than 365 days means 365 days.
func inverseRefuse(f *mesospb.Filters) time.Duration {
	const max = 365 * 24 * time.Hour
	secs := f.GetRefuseSeconds()
	switch {
	case math.IsNaN(secs) || secs < 0:
		secs = mesospb.Default_Filters_RefuseSeconds
	case secs > max.Seconds():
		return max
	}
	return time.Duration(secs * float64(time.Second))
}

// inverseOffersOf lists a framework's outstanding inverse offers, for
// GET_FRAMEWORKS.
func (c *core) inverseOffersOf(frameworkID string) []mesospb.InverseOffer {
	if len(c.maint.inverse) == 0 {
		return nil
	}
	var out []mesospb.InverseOffer
	for _, id := range sortedKeys(c.maint.inverse) {
		if io := c.maint.inverse[id]; io.framework == frameworkID {
			out = append(out, io.proto())
		}
	}
	return out
}

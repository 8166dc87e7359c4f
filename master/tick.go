package master

import (
	"sort"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// tick advances the core's time: heartbeats, failover and offer timeouts,
// agent health, and allocation.
func (c *core) tick(now time.Time) {
	if now.Before(c.now) {
		return // time never runs backwards for the core
	}
	c.now = now

	for _, fw := range c.frameworks {
		switch {
		case fw.stream != "" && !now.Before(fw.nextHeartbeat):
			c.sendScheduler(fw, &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()})
			fw.nextHeartbeat = now.Add(c.cfg.HeartbeatInterval)
		case fw.stream == "" && !fw.disconnectedAt.IsZero() && !now.Before(fw.disconnectedAt.Add(fw.failoverTimeout)):
			c.log.Info("framework failover timeout expired", "framework", fw.id)
			c.removeFramework(fw)
		}
	}

	c.operatorHeartbeats()
	c.operatorTimers() // logging level revert, drained agents (operator_agents.go)
	c.recoveryTimers() // recovered agents that did not come back (registry_core.go)

	if !now.Before(c.nextPing) {
		c.nextPing = now.Add(c.cfg.AgentPingTimeout)
		for _, a := range c.agents {
			if !a.ponged {
				a.missedPings++
			}
			if a.missedPings >= c.cfg.MaxAgentPingTimeouts {
				c.agentUnreachable(a.id) // may still be drained or marked gone (operator_agents.go)
				c.removeAgent(a, mesospb.TaskStatus_REASON_AGENT_REMOVED, "The agent stopped answering pings")
				continue
			}
			a.ponged = false
			c.sendAgent(a, &internalpb.Event{Type: internalpb.Event_PING.Enum(), Ping: &internalpb.Event_Ping{Connected: ptr(true)}})
		}
	}

	if c.cfg.OfferTimeout > 0 {
		for _, o := range c.offers {
			if !now.Before(o.created.Add(c.cfg.OfferTimeout)) {
				c.rescindOffer(o)
			}
		}
	}

	var offers []allocator.Offer
	switch {
	case !now.Before(c.nextAllocation) || c.allocateAll:
		if !now.Before(c.nextAllocation) {
			c.nextAllocation = now.Add(c.cfg.AllocationInterval)
		}
		c.allocateAll = false
		clear(c.dirtyAgents)
		offers = c.alloc.Allocate(now)
		c.met.allocationRuns++
	case len(c.dirtyAgents) > 0:
		ids := make([]string, 0, len(c.dirtyAgents))
		for id := range c.dirtyAgents {
			ids = append(ids, id)
		}
		sort.Strings(ids) // the allocator shuffles; keep its input deterministic
		clear(c.dirtyAgents)
		offers = c.alloc.AllocateAgents(now, ids...)
		c.met.allocationRuns++
	}
	c.makeOffers(offers)
	c.maintenanceTick() // inverse offers (inverse_offers.go)
}

// makeOffers turns the allocator's decisions into offers, one OFFERS event
// per framework.
func (c *core) makeOffers(decisions []allocator.Offer) {
	byFramework := map[string][]mesospb.Offer{}
	var order []string
	for _, d := range decisions {
		fw, a := c.frameworks[d.FrameworkID], c.agents[d.AgentID]
		if fw == nil || a == nil || fw.stream == "" || a.stream == "" {
			// Nobody to offer to, or nothing to launch on: give it back.
			if a != nil {
				c.recover(d.FrameworkID, d.AgentID, d.Resources, 0)
				delete(c.dirtyAgents, d.AgentID) // no tight loop on an agent that cannot be offered
			}
			continue
		}
		o := &offer{
			id:        c.newOfferID(),
			framework: fw.id,
			agent:     a.id,
			role:      d.Role,
			resources: d.Resources,
			created:   c.now,
		}
		c.offers[o.id] = o
		fw.offers[o.id] = o
		a.offers[o.id] = o
		if _, ok := byFramework[fw.id]; !ok {
			order = append(order, fw.id)
		}
		byFramework[fw.id] = append(byFramework[fw.id], c.offerFor(fw, o, a))
		c.met.offersMade++
	}
	for _, id := range order {
		c.sendScheduler(c.frameworks[id], &schedulerpb.Event{
			Type:   schedulerpb.Event_OFFERS.Enum(),
			Offers: &schedulerpb.Event_Offers{Offers: byFramework[id]},
		})
	}
}

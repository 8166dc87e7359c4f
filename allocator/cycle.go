package allocator

import (
	"math/bits"
	"time"

	"github.com/apronhq/apron/resources"
)

// A cycle visits agents in random order. On each it walks the role tree
// (walk): from the root, the children of each node in the sorter's order,
// and in each role the frameworks in the sorter's order, offering a role's
// first eligible framework everything on the agent the role may use. With
// quotas, a first stage (stage 1) walks only roles under an unmet
// guarantee before the second, full one, as Mesos does.
//
// # Idle agents
//
// Most of a busy cluster's agents have nothing anyone can be offered: what
// they have free is filtered, too small, or reserved to roles without
// eligible frameworks. A walk that ends without anyone eligible for what
// is left marks the agent idle, remembering what was free (idleState) and
// the time the first filter that mattered expires. The claim "no framework
// is eligible for any part of idle.avail" then stays true until:
//
//   - the agent gets back more than idle.avail (grown turns idle off);
//   - a filter that mattered expires (idle.until);
//   - some framework role becomes eligible where it was not: it became
//     offerable, was revived, or its minimum offer size changed. Those
//     events are logged with increasing epochs (logEligible).
//
// A cycle skips an idle agent with no log entry since its idle.epoch, in
// O(1); and on one with a few entries, checks only the framework roles
// logged (quickCheck), so a framework reviving before every cycle costs
// each cycle a check of that framework alone on each agent, not a walk of
// every framework on every agent. A walk held back by a quota limit or
// headroom leaves the agent not idle, since those depend on the rest of the
// cluster.

type idleState struct {
	on    bool
	avail resources.Resources // what was free when the agent was found idle
	epoch uint64              // the last eligibility log entry then
	until stamp               // the first expiry of a filter that mattered
}

type logEntry struct {
	epoch uint64
	fr    *frameworkRole
}

// eligibleLogSize bounds the eligibility log: an idle agent that missed
// more entries than are kept is walked whole.
const eligibleLogSize = 64

// cycleState is the scratch space of a cycle, kept to avoid allocating.
type cycleState struct {
	now        time.Time
	nowStamp   stamp
	offers     []Offer
	lastOffers int
	// merge indexes the offers of the quota stage by framework role and
	// agent, so that the second stage adds to them rather than making a
	// second offer for the same role on the same agent.
	merge      map[offerKey]int
	stage1     bool
	scratch    []*agent
	touchedFRs []*frameworkRole
	pick       []*role  // SorterRandom: the entries of the nodes being walked
	fbuf       []filter // the filters of one framework role on one agent

	// About the agent being walked:
	unreserved bool  // nothing free on it is reserved
	until      stamp // the first expiry of a filter that mattered
	quotaHit   bool  // a quota limit or the headroom held something back

	stats cycleStats
}

// cycleStats counts what cycles did with the agents they were given, for
// tests and benchmarks.
type cycleStats struct {
	skipped, quick, walked int
	byBits                 int // role walks that went by filter bits
}

type offerKey struct {
	fr *frameworkRole
	ag *agent
}

// logEligible records that fr may have become eligible for offers it was
// not eligible for.
func (d *DRF) logEligible(fr *frameworkRole) {
	d.epoch++
	if len(d.eligibleLog) >= 2*eligibleLogSize {
		n := copy(d.eligibleLog, d.eligibleLog[len(d.eligibleLog)-eligibleLogSize:])
		clear(d.eligibleLog[n:])
		d.eligibleLog = d.eligibleLog[:n]
	}
	d.eligibleLog = append(d.eligibleLog, logEntry{d.epoch, fr})
}

// loggedSince returns the log entries after epoch, and false when some of
// them are no longer kept.
func (d *DRF) loggedSince(epoch uint64) ([]logEntry, bool) {
	if epoch >= d.epoch {
		return nil, true
	}
	if len(d.eligibleLog) == 0 || epoch+1 < d.eligibleLog[0].epoch {
		return nil, false
	}
	return d.eligibleLog[epoch+1-d.eligibleLog[0].epoch:], true
}

// grown is called when ag got resources back: it stays idle only if what
// it has free is still part of what it had when found idle.
func (d *DRF) grown(ag *agent) {
	if ag.idle.on && !ag.idle.avail.Contains(ag.available) {
		ag.idle.on = false
	}
}

func (d *DRF) noteExpiry(t stamp) { d.until = min(d.until, t) }

// idleNow reports whether ag is idle and none of its filters that mattered
// has expired.
func (d *DRF) idleNow(ag *agent) bool {
	return ag.idle.on && d.nowStamp < ag.idle.until
}

// Allocate implements Allocator.
func (d *DRF) Allocate(now time.Time) []Offer {
	d.scratch = append(d.scratch[:0], d.agentList...)
	return d.cycle(now, d.scratch)
}

// AllocateAgents implements Allocator.
func (d *DRF) AllocateAgents(now time.Time, agentIDs ...string) []Offer {
	d.scratch = d.scratch[:0]
	d.visit++
	for _, id := range agentIDs {
		if ag := d.agents[id]; ag != nil && ag.visit != d.visit {
			ag.visit = d.visit
			d.scratch = append(d.scratch, ag)
		}
	}
	return d.cycle(now, d.scratch)
}

// cycle offers the free resources of agents, visited in random order. See
// the package documentation for what it costs.
func (d *DRF) cycle(now time.Time, agents []*agent) []Offer {
	d.refresh()
	d.now, d.nowStamp = now, stampOf(now)
	d.offers = make([]Offer, 0, min(d.lastOffers, len(agents)))
	// Agents that cannot be offered anything are left out before the
	// shuffle, in O(1) each.
	n := 0
	for _, ag := range agents {
		if ag.active && !(d.idleNow(ag) && ag.idle.epoch == d.epoch) {
			agents[n] = ag
			n++
		}
	}
	d.stats.skipped += len(agents) - n
	clear(agents[n:])
	agents = agents[:n]
	d.rng.Shuffle(len(agents), func(i, j int) { agents[i], agents[j] = agents[j], agents[i] })
	if d.quota.unmet(d) {
		// Mesos shuffles again between the stages, to spread what the
		// first one took.
		d.stage1, d.merge = true, map[offerKey]int{}
		d.quota.markStage1(d)
		for _, ag := range agents {
			if !d.quota.unmet(d) {
				break
			}
			d.walk(ag, true)
		}
		d.stage1 = false
		d.rng.Shuffle(len(agents), func(i, j int) { agents[i], agents[j] = agents[j], agents[i] })
	}
	for _, ag := range agents {
		if d.idleNow(ag) && d.quickCheck(ag) {
			d.stats.quick++
			continue
		}
		d.stats.walked++
		d.walk(ag, false)
	}
	clear(agents)
	d.merge = nil
	offers := d.offers
	d.offers, d.lastOffers = nil, len(offers)
	return offers
}

// quickCheck handles an idle agent by looking only at the framework roles
// logged eligible since it was found idle (see the comment at the top),
// and reports whether that was enough. It was not when too many entries
// were logged, when more than one of them is eligible (the sorter must
// choose) or when quotas are set.
func (d *DRF) quickCheck(ag *agent) bool {
	if d.quota.active() {
		return false
	}
	entries, ok := d.loggedSince(ag.idle.epoch)
	if !ok {
		return false
	}
	d.until = ag.idle.until
	d.unreserved = !anyReserved(ag.available)
	var only *frameworkRole
	for _, e := range entries {
		fr := e.fr
		if fr == only || !fr.offerable {
			continue
		}
		cand := d.candidate(ag, fr.role)
		if !d.allocatableFor(fr, cand) || d.filtered(fr, ag, cand) {
			continue
		}
		if only != nil {
			return false
		}
		only = fr
	}
	if only == nil {
		// The logged framework roles were checked against what is free
		// now, part of idle.avail: the claim holds for that.
		ag.idle.avail = append(ag.idle.avail[:0], ag.available...)
		ag.idle.epoch, ag.idle.until = d.epoch, d.until
		return true
	}
	// Nobody else is eligible for anything here: the walk would offer
	// only what it offers now. The epoch stays, so that the framework is
	// looked at again when it gives the resources back.
	d.offer(only, ag, d.candidate(ag, only.role))
	d.afterAgent()
	ag.idle.until = d.until
	return true
}

// walk offers ag's free resources along the role tree: in the quota stage
// to the roles under an unmet guarantee only, else to every role, after
// which the agent is idle unless a quota held something back.
func (d *DRF) walk(ag *agent, stage1 bool) {
	d.sweepFilters(ag)
	d.until, d.quotaHit = never, false
	d.unreserved = !anyReserved(ag.available)
	if d.customMins > 0 || allocatable(ag.available, d.minAlloc) {
		d.visitNode(d.root, ag, stage1)
	}
	d.afterAgent()
	if stage1 {
		return
	}
	if d.quotaHit {
		ag.idle.on = false
		return
	}
	ag.idle = idleState{
		on:    true,
		avail: append(ag.idle.avail[:0], ag.available...),
		epoch: d.epoch,
		until: d.until,
	}
}

// afterAgent repositions the framework roles and roles that got offers on
// the agent just walked. Each got at most one offer there and the others'
// shares did not change, so doing it now gives every later agent the
// order it would see had it been done after each offer.
func (d *DRF) afterAgent() {
	for _, fr := range d.touchedFRs {
		d.rekeyFR(fr)
		d.rekeyRole(fr.role)
	}
	clear(d.touchedFRs)
	d.touchedFRs = d.touchedFRs[:0]
}

// visitNode walks the subtree of r on ag and reports whether the agent has
// nothing left.
func (d *DRF) visitNode(r *role, ag *agent, stage1 bool) bool {
	if d.sorter == SorterRandom {
		return d.visitRandom(r, ag, stage1)
	}
	own := r.ownOfferable > 0 && (!stage1 || r.ownStage1)
	ownKey := 0.0
	if own && r.children.len() > 0 {
		ownKey = d.share(r.ownQty)
	}
	for _, b := range r.children.blocks {
		for _, c := range b {
			if own && ownKey <= c.key {
				own = false
				if d.tryRole(r, ag, stage1) {
					return true
				}
			}
			if c.offerable > 0 && (!stage1 || c.inStage1) && d.visitNode(c, ag, stage1) {
				return true
			}
		}
	}
	return own && d.tryRole(r, ag, stage1)
}

// visitRandom is visitNode for SorterRandom: the next entry among r's own
// frameworks (weight 1) and its children (their weights) is drawn with a
// probability proportional to its weight.
func (d *DRF) visitRandom(r *role, ag *agent, stage1 bool) bool {
	base := len(d.pick)
	defer func() { d.pick = d.pick[:base] }()
	if r.ownOfferable > 0 && (!stage1 || r.ownStage1) {
		d.pick = append(d.pick, nil) // nil stands for r's own frameworks
	}
	r.children.each(func(c *role) bool {
		if c.offerable > 0 && (!stage1 || c.inStage1) {
			d.pick = append(d.pick, c)
		}
		return true
	})
	for len(d.pick) > base {
		entries := d.pick[base:]
		sum := 0.0
		for _, e := range entries {
			sum += entryWeight(e)
		}
		x := d.rng.Float64() * sum
		j := len(entries) - 1
		for i, e := range entries {
			if x -= entryWeight(e); x < 0 {
				j = i
				break
			}
		}
		e := entries[j]
		entries[j] = entries[len(entries)-1]
		d.pick = d.pick[:len(d.pick)-1]
		var done bool
		if e == nil {
			done = d.tryRole(r, ag, stage1)
		} else {
			done = d.visitNode(e, ag, stage1)
		}
		if done {
			return true
		}
	}
	return false
}

func entryWeight(e *role) float64 {
	if e == nil {
		return 1
	}
	return e.weight
}

func anyReserved(rs resources.Resources) bool {
	for i := range rs {
		if len(rs[i].Reservations) > 0 {
			return true
		}
	}
	return false
}

// candidate is what ag has free that role r may use.
func (d *DRF) candidate(ag *agent, r *role) resources.Resources {
	if d.unreserved {
		return ag.available
	}
	return ag.available.AllocatableTo(r.name)
}

// tryRole offers what r may use on ag to the first of its frameworks, in
// the sorter's order, that is eligible: offerable, not filtered, and
// reaching its minimum offer size. It reports whether the agent has
// nothing left.
func (d *DRF) tryRole(r *role, ag *agent, stage1 bool) bool {
	cand := d.candidate(ag, r)
	switch {
	case stage1:
		cand = d.quota.stage1Offer(d, r, cand)
	case d.quota.active():
		cand = d.quota.stage2Offer(d, r, cand)
	}
	if len(cand) == 0 {
		return len(ag.available) == 0
	}
	big := allocatable(cand, d.minAlloc) // reaches the allocator's minimum
	if !big && r.customMins == 0 {
		return false
	}
	if d.sorter == SorterRandom {
		// A partial Fisher-Yates shuffle: a uniformly random order, drawn
		// only as far as needed.
		n := r.frameworks.len()
		for i := range n {
			pi, pj := r.frameworks.at(i), r.frameworks.at(i+d.rng.IntN(n-i))
			*pi, *pj = *pj, *pi
			if d.eligible(*pi, ag, cand, big) {
				d.offer(*pi, ag, cand)
				return len(ag.available) == 0
			}
		}
		return false
	}
	if r.frameworks.len() >= denseRole && d.allRefusedFit(ag) && unrefused(r, ag) <= fewUnrefused {
		// Many frameworks, nearly all of which refused the agent: pick
		// among the few that did not, found by their bits, rather than
		// walking past all the others.
		d.stats.byBits++
		if fr := d.firstUnrefused(r, ag, cand, big); fr != nil {
			d.offer(fr, ag, cand)
			return len(ag.available) == 0
		}
		d.noteExpiry(ag.filters.earliest)
		return false
	}
	for _, b := range r.frameworks.blocks {
		for _, fr := range b {
			if d.eligible(fr, ag, cand, big) {
				d.offer(fr, ag, cand)
				return len(ag.available) == 0
			}
		}
	}
	return false
}

// A role's walk on an agent whose filters all cover what it has free goes
// by bits when the role has at least denseRole frameworks, at most
// fewUnrefused of them offerable without a filter there. (Variables, for
// tests.)
var denseRole, fewUnrefused = 64, 32

// unrefused counts r's offerable frameworks without a filter on ag.
func unrefused(r *role, ag *agent) int {
	n := 0
	refused := ag.filters.bits
	for w, word := range r.offerBits {
		if w < len(refused) {
			word &^= refused[w]
		}
		n += bits.OnesCount64(word)
	}
	return n
}

// firstUnrefused returns the first framework of r, in DRF order, that is
// offerable, reaches its minimum offer size with cand, and has no filter
// on ag (where, allRefusedFit, every filter covers cand): in O(r's index
// words + the frameworks without a filter there).
func (d *DRF) firstUnrefused(r *role, ag *agent, cand resources.Resources, big bool) *frameworkRole {
	var best *frameworkRole
	refused := ag.filters.bits
	for w, word := range r.offerBits {
		if w < len(refused) {
			word &^= refused[w]
		}
		for ; word != 0; word &= word - 1 {
			fr := d.frs[w<<6|bits.TrailingZeros64(word)]
			if fr.hasMins && !allocatable(cand, fr.mins) || !fr.hasMins && !big {
				continue
			}
			if best == nil || less(fr, best) {
				best = fr
			}
		}
	}
	return best
}

// eligible reports whether fr may be offered cand on ag; big says cand
// reaches the allocator's minimum offer size.
func (d *DRF) eligible(fr *frameworkRole, ag *agent, cand resources.Resources, big bool) bool {
	if !fr.offerable {
		return false
	}
	if fr.hasMins {
		big = allocatable(cand, fr.mins)
	}
	return big && !d.filtered(fr, ag, cand)
}

// offer allocates cand, free on ag, to fr and records the offer. When
// cand is all the agent has free, its slice becomes the offer's, without a
// copy (the agent starts a new one when resources come back).
func (d *DRF) offer(fr *frameworkRole, ag *agent, cand resources.Resources) {
	var rs resources.Resources
	all := same(cand, ag.available)
	if all {
		rs = cand
		for i := range rs {
			rs[i].AllocationRole = fr.role.name
		}
	} else {
		rs = allocateTo(cand, fr.role.name)
	}
	d.charge(fr.fw, ag, rs, cand, all, true)
	key := offerKey{fr, ag}
	if i, ok := d.merge[key]; ok {
		d.offers[i].Resources = d.offers[i].Resources.Add(rs)
		return
	}
	if d.stage1 {
		d.merge[key] = len(d.offers)
	}
	d.offers = append(d.offers, Offer{FrameworkID: fr.fw.id, AgentID: ag.id, Role: fr.role.name, Resources: rs})
}

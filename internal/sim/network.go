package sim

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// packetKind says which way a packet goes and what it carries.
type packetKind int

const (
	// Peer to master. A connect opens a stream (REGISTER, REREGISTER,
	// SUBSCRIBE); a call is any other request, on a stream the peer holds.
	pkAgentConnect packetKind = iota
	pkAgentCall
	pkSchedSubscribe
	pkSchedCall
	// Master to peer, on a stream: its opening (the connect's answer),
	// its events in order, and its end.
	pkOpened
	pkAgentEvent
	pkSchedEvent
	pkClosed
)

func (k packetKind) toMaster() bool { return k <= pkSchedCall }

// packet is one message in flight.
type packet struct {
	at   time.Time
	seq  uint64
	kind packetKind
	peer string // the simulated agent or framework at the far end
	// gen is the peer's connection attempt a connect or opening belongs to.
	gen    int
	stream string
	agent  *internalpb.Call
	sched  *schedulerpb.Call
	aev    *internalpb.Event
	sev    *schedulerpb.Event
}

// partition cuts a peer off from the master until heal. A partition that
// lasts longer than the TCP timeout breaks the peer's streams once that
// timeout has passed (breakAt); a shorter one only holds what is in
// flight, as TCP retransmits it after the heal.
type partition struct {
	heal, breakAt time.Time
	broke         bool
}

// network is the fault model between the master and its peers. Calls
// (each its own request, as over HTTP) may be lost, duplicated when
// retrying them is safe, delayed and reordered; a stream's messages are
// delayed but delivered in order until the stream breaks, and a break
// loses what was in flight on it; partitions hold or break everything of
// a peer.
type network struct {
	rng    *rand.Rand
	faults Faults
	on     bool // faults are being injected (else: latency only)
	queue  []*packet
	seq    uint64
	// fifo is, per link (a stream, or a peer's connects), the time its
	// last packet is due: an in-order packet is never due before it.
	fifo   map[string]time.Time
	broken map[string]bool // streams broken in the network
	parts  map[string]*partition
	stats  *NetStats
}

// NetStats counts what the network did to messages.
type NetStats struct {
	Sent, Dropped, Duplicated, Reordered, Breaks, Held int
}

func newNetwork(rng *rand.Rand, f Faults, stats *NetStats) *network {
	return &network{rng: rng, faults: f, fifo: map[string]time.Time{}, broken: map[string]bool{}, parts: map[string]*partition{}, stats: stats}
}

func (n *network) latency() time.Duration {
	if n.faults.MaxDelay <= 0 {
		return 0
	}
	return time.Duration(n.rng.Int64N(int64(n.faults.MaxDelay) + 1))
}

// idempotent says whether a client may safely send a call twice: a retry
// after a lost answer. Status updates and pongs are retried by the agent
// anyway; a framework's acknowledgement, reconciliation, decline,
// suppress and revive mean the same the second time. ACCEPT and KILL are
// not duplicated: Mesos's ACCEPT is not idempotent (a replay names a used
// offer and its tasks are reported lost with REASON_INVALID_OFFERS), and
// no Mesos client retries it.
func idempotent(p *packet) bool {
	switch p.kind {
	case pkAgentCall:
		t := p.agent.GetType()
		return t == internalpb.Call_STATUS_UPDATE || t == internalpb.Call_PONG
	case pkSchedCall:
		switch p.sched.GetType() {
		case schedulerpb.Call_ACKNOWLEDGE, schedulerpb.Call_RECONCILE, schedulerpb.Call_DECLINE,
			schedulerpb.Call_SUPPRESS, schedulerpb.Call_REVIVE:
			return true
		}
	}
	return false
}

// send puts a packet on the wire at now. It reports a stream broken by
// this send (a message lost on a stream breaks it, as a TCP connection
// that loses data), or "".
func (n *network) send(now time.Time, p *packet) (broke string) {
	n.stats.Sent++
	link := p.link()
	p.at = now.Add(n.latency())
	if n.on {
		f := n.faults
		switch {
		case p.kind == pkAgentCall || p.kind == pkSchedCall:
			if n.rng.Float64() < f.Drop {
				n.stats.Dropped++
				return ""
			}
			dup := idempotent(p) && n.rng.Float64() < f.Duplicate
			if p.kind == pkSchedCall && n.rng.Float64() < f.Reorder {
				// Its own request: it may overtake or be overtaken.
				n.stats.Reordered++
				p.at = p.at.Add(n.latency())
				n.push(p)
				if dup {
					n.duplicate(now, p)
				}
				return ""
			}
			if dup {
				// A retry of the same request, right behind it (the
				// agent's calls go in order, one stream's sender).
				defer func() {
					n.stats.Duplicated++
					q := *p
					n.push(&q)
				}()
			}
		case p.kind == pkAgentConnect || p.kind == pkSchedSubscribe:
			if n.rng.Float64() < f.Drop {
				n.stats.Dropped++ // the connection attempt fails; the peer retries
				return ""
			}
		case p.kind == pkAgentEvent || p.kind == pkSchedEvent || p.kind == pkOpened:
			if n.rng.Float64() < f.Break {
				n.stats.Breaks++
				n.broken[p.stream] = true
				return p.stream
			}
		}
	}
	if last := n.fifo[link]; p.at.Before(last) {
		p.at = last
	}
	n.fifo[link] = p.at
	n.push(p)
	return ""
}

func (n *network) duplicate(now time.Time, p *packet) {
	n.stats.Duplicated++
	q := *p
	q.at = now.Add(n.latency() + n.latency())
	n.push(&q)
}

func (n *network) push(p *packet) {
	n.seq++
	p.seq = n.seq
	n.queue = append(n.queue, p)
}

// due takes the packets due by now, in time order.
func (n *network) due(now time.Time) []*packet {
	var out, keep []*packet
	for _, p := range n.queue {
		if p.at.After(now) {
			keep = append(keep, p)
		} else {
			out = append(out, p)
		}
	}
	n.queue = keep
	slices.SortFunc(out, func(a, b *packet) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return int(a.seq - b.seq)
	})
	return out
}

// cut partitions peer until heal; tcpTimeout says when its streams break
// if the partition outlasts it.
func (n *network) cut(peer string, now, heal time.Time, tcpTimeout time.Duration) {
	n.parts[peer] = &partition{heal: heal, breakAt: now.Add(tcpTimeout)}
}

// link names the ordered channel a packet travels on: its stream, or its
// peer's connects.
func (p *packet) link() string {
	if p.kind == pkAgentConnect || p.kind == pkSchedSubscribe {
		return p.peer + "/connect"
	}
	return p.peer + "/" + p.stream
}

// hold keeps p back if its peer is partitioned now: until the heal, as
// TCP retransmits it then (if its stream breaks meanwhile, it is lost
// with the stream). It reports whether p was held.
func (n *network) hold(now time.Time, p *packet) bool {
	pt := n.parts[p.peer]
	if pt == nil {
		return false
	}
	if !now.Before(pt.heal) {
		delete(n.parts, p.peer)
		return false
	}
	n.stats.Held++
	p.at = pt.heal
	if link := p.link(); n.fifo[link].Before(p.at) {
		n.fifo[link] = p.at
	}
	// Back in the queue with its sequence number: it stays ahead of what
	// was sent after it on its link.
	n.queue = append(n.queue, p)
	return true
}

// healAll ends every partition now: what they held is due, and so is
// what queued up behind it on its links.
func (n *network) healAll(now time.Time) {
	for _, p := range n.queue {
		if pt := n.parts[p.peer]; pt != nil && p.at.After(now) {
			p.at = now
			n.fifo[p.link()] = now
		}
	}
	clear(n.parts)
}

package agentcore

import (
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
)

// DefaultPingInterval and DefaultMaxMissedPings apply when the master's
// REGISTERED does not say (Mesos: 15 s × 5).
const (
	DefaultPingInterval   = 15 * time.Second
	DefaultMaxMissedPings = 5
)

// Link is the master link's decisions, as Mesos's agent makes them
// (src/slave/slave.cpp): when to (re)connect and with what backoff
// (doReliableRegistration: a random wait up to a bound that doubles with
// every attempt, up to RegistrationBackoffMax), REGISTER for an agent with
// no ID and REREGISTER once it has one, the agent ID checkpointed before a
// registration is acted on, the master's pings (the agent gives the master
// up when it has not pinged for its ping interval × max missed pings,
// Slave::pingTimeout, or when a ping says the master considers the agent
// disconnected, Slave::ping), and the calls made while the agent has no
// master: EXECUTOR_EXITED waits for the next registration, in order, and
// the others are dropped, as Mesos drops them.
//
// It is pure, as the master's StateMachine and the status update manager
// (updates.go) are: no goroutines, no I/O, no clock. Its inputs are
// method calls with the time in them (start, connected, registered,
// pinged, disconnected, tick, stop, send); what it decided accumulates
// until drain returns it as a LinkReady. The one source of randomness, the
// reconnection jitter, is injected (the agent's Config.Rand). The agent's
// loop owns it and does the I/O (link.go): the dials, the streams, the
// checkpoint of the agent ID, the calls. Which master a dial reaches is
// the Master's business (HTTPMaster tries the last master it reached, then
// each candidate, and follows a standby's redirect to the leader); the
// core only decides when to dial and what to say. A test drives it with no
// agent at all (link_test.go).
type Link struct {
	backoffMin, backoffMax time.Duration
	// jitter draws the wait before a reconnection, in [0, bound].
	jitter func(bound time.Duration) time.Duration

	phase linkPhase
	// gen numbers the connection attempts: an outcome or a stream of an
	// earlier one is stale.
	gen      uint64
	stopping bool   // the agent is shutting down: no more dials
	agentID  string // "" until a master first registers the agent

	backoff time.Duration // the bound of the next reconnection's wait
	dialDue bool          // a dial is scheduled at dialAt (phase linkIdle)
	dialAt  time.Time

	pingTimeout  time.Duration // of the current registration
	pingDeadline time.Time     // phase linkRegistered

	held []*internalpb.Call // EXECUTOR_EXITED waiting for a registration

	out LinkReady
}

// linkPhase is where the link is.
type linkPhase int

const (
	linkIdle       linkPhase = iota // no stream, no attempt: waiting for dialAt, if dialDue
	linkDialing                     // attempt gen is in flight
	linkConnected                   // stream gen is open, its registration answer awaited
	linkRegistered                  // stream gen is open and the master registered the agent
)

// LinkReady is what the core decided since the last drain. The shell does
// them in this order: the ID write, the hang-up, the calls, the
// registration, the dial.
type LinkReady struct {
	// WriteID is an agent ID to checkpoint (and adopt) before anything
	// else of this Ready: a registration is acted on only once the ID it
	// gave is on disk, so an agent restarted after it re-registers with
	// it. replaced is the ID the master replaced, for the log.
	WriteID  string
	Replaced string
	// HangUp ends stream gen: the master is taken to be gone.
	HangUp *HangUp
	// Sends are calls for the master, in order (the held EXECUTOR_EXITED
	// of a registration, PONG).
	Sends []*internalpb.Call
	// Registered says the master (re)Registered the agent: the shell
	// resumes what waits for a master (the status updates).
	Registered bool
	// Dial starts a connection attempt now.
	Dial *Dial
}

func (r LinkReady) empty() bool {
	return r.WriteID == "" && r.HangUp == nil && len(r.Sends) == 0 && !r.Registered && r.Dial == nil
}

// HangUp ends a stream.
type HangUp struct {
	Gen uint64
	Why string
}

// Dial is a connection attempt: REGISTER when agentID is "", else
// REREGISTER with it (and everything the agent runs, which the shell adds).
type Dial struct {
	Gen        uint64
	Reregister bool
	AgentID    string
}

// ConnOutcome is what connected did with an attempt's outcome.
type ConnOutcome int

const (
	ConnAccepted ConnOutcome = iota + 1 // the stream is the link's: read it
	ConnFailed                          // the attempt failed: a reconnection is scheduled
	ConnStale                           // not the attempt in flight: close it
)

// RegOutcome is what registered did with a registration answer.
type RegOutcome int

const (
	RegTaken   RegOutcome = iota + 1
	RegNoID               // the answer has no agent ID: ignored
	RegIgnored            // no stream awaits one: ignored
)

// SendVerdict is what send did with a call.
type SendVerdict int

const (
	SendNow     SendVerdict = iota + 1 // the agent is registered: it goes out
	SendHeld                           // EXECUTOR_EXITED, kept for the next registration
	SendDropped                        // no master, as Mesos
)

// maxHeldCalls bounds the EXECUTOR_EXITED calls kept while disconnected.
const maxHeldCalls = 10000

// NewLink returns the link of an agent known as agentID ("" before
// its first registration), to reconnect with waits drawn by jitter up to a
// bound that starts at backoffMin and doubles up to backoffMax.
func NewLink(backoffMin, backoffMax time.Duration, jitter func(time.Duration) time.Duration, agentID string) *Link {
	return &Link{backoffMin: backoffMin, backoffMax: backoffMax, jitter: jitter, agentID: agentID, backoff: backoffMin}
}

// start dials at once: the agent has just started (or recovered).
func (l *Link) Start(now time.Time) {
	if l.phase == linkIdle && !l.stopping {
		l.dialNow()
	}
}

// connected takes the outcome of attempt gen at now: ok says the master
// accepted the registration call and opened a stream.
func (l *Link) Connected(gen uint64, ok bool, now time.Time) ConnOutcome {
	if gen != l.gen || l.phase != linkDialing {
		return ConnStale
	}
	if !ok {
		l.phase = linkIdle
		l.scheduleDial(now)
		return ConnFailed
	}
	l.phase = linkConnected
	return ConnAccepted
}

// registered takes the master's REGISTERED or REREGISTERED on the open
// stream at now, with the agent ID it gave and its ping policy (zero: the
// defaults). The agent is registered once the ID is checkpointed: the
// Ready has the write, the held calls, and the registration, in the order
// the shell does them.
func (l *Link) Registered(id string, pingInterval time.Duration, maxMissedPings int, now time.Time) RegOutcome {
	if l.phase != linkConnected && l.phase != linkRegistered {
		return RegIgnored
	}
	if id == "" {
		return RegNoID
	}
	if id != l.agentID {
		l.out.WriteID, l.out.Replaced = id, l.agentID
		l.agentID = id
	}
	l.phase = linkRegistered
	l.backoff = l.backoffMin
	if pingInterval <= 0 {
		pingInterval = DefaultPingInterval
	}
	if maxMissedPings <= 0 {
		maxMissedPings = DefaultMaxMissedPings
	}
	l.pingTimeout = pingInterval * time.Duration(maxMissedPings)
	l.pingDeadline = now.Add(l.pingTimeout)
	l.out.Sends = append(l.out.Sends, l.held...)
	l.held = nil
	l.out.Registered = true
	return RegTaken
}

// pinged takes the master's PING at now; disowned says the ping tells the
// agent that the master considers it disconnected. A registered agent
// answers PONG and waits for the next ping; a disowned one gives the
// stream up and registers again, as Mesos's agent does (a one-way
// partition: the master saw the agent's socket break, the agent did not).
// Pings before the registration are ignored; it reports whether it took
// the ping.
func (l *Link) Pinged(disowned bool, now time.Time) bool {
	if l.phase != linkRegistered {
		return false
	}
	l.pingDeadline = now.Add(l.pingTimeout)
	if disowned {
		l.lose("the master considers the agent disconnected", now)
		return true
	}
	l.out.Sends = append(l.out.Sends, &internalpb.Call{Type: internalpb.Call_PONG.Enum()})
	return true
}

// heard takes any event of the master's stream at now. A master that
// talks is alive, so the ping deadline moves: a PING waiting in the
// agent's queue behind a burst of thousands of launches must not make the
// agent give up its stream (and the launches behind it) for want of a
// ping. Mesos's agent has no such queue: it answers pings at once while
// its launches run asynchronously.
func (l *Link) Heard(now time.Time) {
	if l.phase == linkRegistered {
		l.pingDeadline = now.Add(l.pingTimeout)
	}
}

// disconnected takes the end of stream gen at now (the master closed it,
// or the connection broke): the stream is hung up and a reconnection
// scheduled. It reports whether gen was the link's stream.
func (l *Link) Disconnected(gen uint64, why string, now time.Time) bool {
	if gen != l.gen || (l.phase != linkConnected && l.phase != linkRegistered) {
		return false
	}
	l.lose(why, now)
	return true
}

// tick gives the master up if it has not pinged in time, and dials if a
// reconnection is due, at now.
func (l *Link) Tick(now time.Time) {
	if l.phase == linkRegistered && !now.Before(l.pingDeadline) {
		l.lose("no ping from the master in "+l.pingTimeout.String(), now)
	}
	if l.phase == linkIdle && l.dialDue && !now.Before(l.dialAt) {
		l.dialNow()
	}
}

// stop is the agent's shutdown: no more dials. The stream, if any, is
// kept: the last updates and UNREGISTER go out on it.
func (l *Link) Stop() {
	l.stopping = true
	l.dialDue = false
}

// send decides what becomes of a call for the master (status updates
// included: while the agent has no master their manager is paused, and
// resent on registration).
func (l *Link) Send(c *internalpb.Call) SendVerdict {
	if l.phase == linkRegistered {
		return SendNow
	}
	if c.GetType() == internalpb.Call_EXECUTOR_EXITED && len(l.held) < maxHeldCalls {
		l.held = append(l.held, c)
		return SendHeld
	}
	return SendDropped
}

// isRegistered says the agent has a master: calls go out.
func (l *Link) IsRegistered() bool { return l.phase == linkRegistered }

// registration is what the next dial says: REGISTER for an agent with no
// ID, REREGISTER with it.
func (l *Link) Registration() Dial {
	return Dial{Gen: l.gen + 1, Reregister: l.agentID != "", AgentID: l.agentID}
}

// nextDeadline is when tick has something to do: the next dial, or the
// ping deadline.
func (l *Link) NextDeadline() (time.Time, bool) {
	switch {
	case l.phase == linkIdle && l.dialDue:
		return l.dialAt, true
	case l.phase == linkRegistered:
		return l.pingDeadline, true
	}
	return time.Time{}, false
}

// drain returns what was decided since the last drain.
func (l *Link) Drain() LinkReady {
	r := l.out
	l.out = LinkReady{}
	return r
}

func (l *Link) dialNow() {
	d := l.Registration()
	l.gen = d.Gen
	l.phase = linkDialing
	l.dialDue = false
	l.out.Dial = &d
}

// masterDetected: another master was detected as leader (Mesos's
// Slave::detected). The backoff starts over, and an agent waiting to
// reconnect tries within backoffMin rather than at the end of a wait grown
// against the master that died: a random wait still, so the agents that
// lost it together do not all reach the new one at once.
func (l *Link) MasterDetected(now time.Time) {
	l.backoff = l.backoffMin
	if l.phase != linkIdle || !l.dialDue || l.stopping {
		return // connected, or an attempt in flight, which fails or lands on its own
	}
	due := l.dialAt
	l.scheduleDial(now)
	if due.Before(l.dialAt) {
		l.dialAt = due
	}
}

// lose hangs the stream up and schedules a reconnection.
func (l *Link) lose(why string, now time.Time) {
	l.out.HangUp = &HangUp{Gen: l.gen, Why: why}
	l.phase = linkIdle
	l.scheduleDial(now)
}

// scheduleDial waits a random delay up to the current bound, which
// doubles with every attempt up to backoffMax, so that agents that lost
// their master together do not all come back at once.
func (l *Link) scheduleDial(now time.Time) {
	if l.stopping {
		return
	}
	delay := time.Duration(0)
	if l.backoff > 0 {
		delay = min(max(l.jitter(l.backoff), 0), l.backoff)
	}
	l.backoff = min(2*l.backoff, l.backoffMax)
	l.dialDue, l.dialAt = true, now.Add(delay)
}

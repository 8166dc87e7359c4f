package agent

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The master link's core, driven step by step with no agent, no clock and
// no network: each step is one input, and its want is the Ready it must
// produce, one line per output in the order the shell does them:
// W(rite the agent ID), H(ang up), S(end), R(egistered), D(ial).

var linkT0 = time.Unix(1e9, 0)

const (
	linkMin = time.Second
	linkMax = time.Minute
)

// fullJitter waits the whole bound, so that the steps read as the backoff;
// it records the bounds it was asked for.
type fullJitter struct{ bounds []time.Duration }

func (j *fullJitter) draw(b time.Duration) time.Duration {
	j.bounds = append(j.bounds, b)
	return b
}

func newTestLink(id string) (*linkState, *fullJitter) {
	j := &fullJitter{}
	return newLinkState(linkMin, linkMax, j.draw, id), j
}

// linkStep is one input: start, connected (ok), failed, registered (id;
// ping and misses, zero for the defaults), ping, disowned (a ping with
// connected=false), ended (the stream ended), tick, stop, send (call:
// EXECUTOR_EXITED of executor call, or another call when call is
// "message"). at is the time after t0; gen, when set, is the attempt or
// stream the input is about (default: the link's current one). want is
// the Ready; result, when set, what the input returned; next, when set,
// the next deadline after t0 ("none" when there is none).
type linkStep struct {
	op     string
	at     time.Duration
	gen    uint64
	id     string
	ping   time.Duration
	misses int
	call   string
	want   []string
	result any
	next   string
}

func renderLink(r linkReady) []string {
	var out []string
	if r.writeID != "" {
		line := "W " + r.writeID
		if r.replaced != "" {
			line += " replacing " + r.replaced
		}
		out = append(out, line)
	}
	if h := r.hangUp; h != nil {
		out = append(out, fmt.Sprintf("H %d %s", h.gen, h.why))
	}
	for _, c := range r.sends {
		line := "S " + c.GetType().String()
		if c.ExecutorExited != nil {
			line += " " + c.ExecutorExited.ExecutorID.Value
		}
		out = append(out, line)
	}
	if r.registered {
		out = append(out, "R")
	}
	if d := r.dial; d != nil {
		if d.reregister {
			out = append(out, fmt.Sprintf("D %d REREGISTER %s", d.gen, d.agentID))
		} else {
			out = append(out, fmt.Sprintf("D %d REGISTER", d.gen))
		}
	}
	return out
}

func exitedCall(executor string) *internalpb.Call {
	return &internalpb.Call{
		Type: internalpb.Call_EXECUTOR_EXITED.Enum(),
		ExecutorExited: &internalpb.Call_ExecutorExited{
			FrameworkID: mesospb.FrameworkID{Value: "fw"},
			ExecutorID:  mesospb.ExecutorID{Value: executor},
		},
	}
}

func runLinkSteps(t *testing.T, l *linkState, steps []linkStep) {
	t.Helper()
	for i, s := range steps {
		now := linkT0.Add(s.at)
		gen := s.gen
		if gen == 0 {
			gen = l.gen
		}
		name := fmt.Sprintf("step %d (%s at +%s)", i, s.op, s.at)
		var res any
		switch s.op {
		case "start":
			l.start(now)
		case "connected":
			res = l.connected(gen, true, now)
		case "failed":
			res = l.connected(gen, false, now)
		case "registered":
			res = l.registered(s.id, s.ping, s.misses, now)
		case "ping":
			res = l.pinged(false, now)
		case "disowned":
			res = l.pinged(true, now)
		case "ended":
			res = l.disconnected(gen, "the master ended the stream", now)
		case "tick":
			l.tick(now)
		case "stop":
			l.stop()
		case "detected":
			l.masterDetected(now)
		case "send":
			c := &internalpb.Call{Type: internalpb.Call_EXECUTOR_MESSAGE.Enum()}
			if s.call != "message" {
				c = exitedCall(s.call)
			}
			res = l.send(c)
		default:
			t.Fatalf("%s: unknown op", name)
		}
		if s.result != nil {
			assert.Equal(t, s.result, res, name)
		}
		got := renderLink(l.drain())
		if len(s.want) == 0 {
			assert.Empty(t, got, name)
		} else {
			assert.Equal(t, s.want, got, name)
		}
		if s.next != "" {
			next := "none"
			if at, ok := l.nextDeadline(); ok {
				next = "+" + at.Sub(linkT0).String()
			}
			assert.Equal(t, s.next, next, name)
		}
	}
}

func TestLinkSteps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		id    string // the agent's ID at start
		steps []linkStep
	}{{
		name: "REGISTER, then REREGISTER with the ID the master gave",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}, next: "none"},
			{op: "connected", result: connAccepted, next: "none"},
			{op: "registered", id: "a1", at: time.Second, result: regTaken,
				want: []string{"W a1", "R"}, next: "+1m16s"}, // 15 s × 5 missed pings
			{op: "ended", at: 2 * time.Second, result: true,
				want: []string{"H 1 the master ended the stream"}, next: "+3s"},
			{op: "tick", at: 3 * time.Second, want: []string{"D 2 REREGISTER a1"}},
			{op: "connected", at: 3 * time.Second, result: connAccepted},
			// The same ID again: nothing to write.
			{op: "registered", id: "a1", at: 3 * time.Second, result: regTaken, want: []string{"R"}},
		},
	}, {
		// The backoff grown while the old master was gone starts over
		// when a new leader is detected (Mesos's Slave::detected).
		name: "a new leader detected: the backoff starts over",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "failed", result: connFailed, next: "+1s"},
			{op: "tick", at: time.Second, want: []string{"D 2 REGISTER"}},
			{op: "failed", at: time.Second, result: connFailed, next: "+3s"},
			{op: "tick", at: 3 * time.Second, want: []string{"D 3 REGISTER"}},
			{op: "failed", at: 3 * time.Second, result: connFailed, next: "+7s"},
			{op: "detected", at: 4 * time.Second, next: "+5s"},
			{op: "tick", at: 5 * time.Second, want: []string{"D 4 REGISTER"}},
			// In flight or connected: nothing changes but the backoff.
			{op: "detected", at: 5 * time.Second, next: "none"},
			{op: "failed", at: 5 * time.Second, result: connFailed, next: "+6s"},
		},
	}, {
		name: "a recovered ID re-registers at once",
		id:   "a0",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REREGISTER a0"}},
			{op: "connected", result: connAccepted},
			{op: "registered", id: "a0", result: regTaken, want: []string{"R"}},
		},
	}, {
		// A failed-over master that does not know the agent gives it a
		// new ID, which is checkpointed before the rest, and used from
		// then on.
		name: "master failover: the new master's answer",
		id:   "a0",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REREGISTER a0"}},
			{op: "connected", result: connAccepted},
			{op: "registered", id: "a0", want: []string{"R"}},
			{op: "send", call: "ex1", result: sendNow},
			// The leader dies: its stream ends while an executor exits.
			{op: "ended", at: 10 * time.Second, want: []string{"H 1 the master ended the stream"}, next: "+11s"},
			{op: "send", call: "ex2", at: 10 * time.Second, result: sendHeld},
			// The first attempt finds no master (none leads yet).
			{op: "tick", at: 11 * time.Second, want: []string{"D 2 REREGISTER a0"}},
			{op: "failed", at: 11 * time.Second, result: connFailed, next: "+13s"},
			{op: "tick", at: 13 * time.Second, want: []string{"D 3 REREGISTER a0"}},
			{op: "connected", at: 13 * time.Second, result: connAccepted},
			{op: "registered", id: "b0", at: 13 * time.Second, result: regTaken,
				want: []string{"W b0 replacing a0", "S EXECUTOR_EXITED ex2", "R"}},
			{op: "disowned", at: 20 * time.Second, result: true,
				want: []string{"H 3 the master considers the agent disconnected"}, next: "+21s"},
			{op: "tick", at: 21 * time.Second, want: []string{"D 4 REREGISTER b0"}},
		},
	}, {
		name: "registration answers that are not taken",
		steps: []linkStep{
			{op: "registered", id: "a1", result: regIgnored}, // no stream
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "registered", id: "a1", result: regIgnored}, // still dialing
			{op: "connected", result: connAccepted},
			{op: "registered", id: "", result: regNoID, next: "none"},
			{op: "ping", result: false}, // not registered yet
			{op: "registered", id: "a1", result: regTaken, want: []string{"W a1", "R"}},
		},
	}, {
		name: "stale outcomes and streams",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "failed", result: connFailed, next: "+1s"},
			{op: "failed", gen: 1, result: connStale}, // once is enough
			{op: "tick", at: time.Second, want: []string{"D 2 REGISTER"}},
			{op: "connected", gen: 1, at: time.Second, result: connStale},
			{op: "connected", gen: 2, at: time.Second, result: connAccepted},
			{op: "ended", gen: 1, at: time.Second, result: false},
			{op: "registered", id: "a1", at: time.Second, want: []string{"W a1", "R"}},
			{op: "ended", gen: 1, at: time.Second, result: false},
			{op: "ping", at: 2 * time.Second, result: true, want: []string{"S PONG"}},
		},
	}, {
		name: "pings keep the link, silence ends it",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "connected"},
			{op: "registered", id: "a1", ping: time.Second, misses: 5, want: []string{"W a1", "R"}, next: "+5s"},
			{op: "ping", at: 3 * time.Second, result: true, want: []string{"S PONG"}, next: "+8s"},
			{op: "tick", at: 8*time.Second - time.Nanosecond},
			{op: "tick", at: 8 * time.Second, want: []string{"H 1 no ping from the master in 5s"}, next: "+9s"},
			{op: "ping", at: 8 * time.Second, result: false}, // too late
			{op: "tick", at: 9 * time.Second, want: []string{"D 2 REREGISTER a1"}, next: "none"},
		},
	}, {
		name: "EXECUTOR_EXITED waits for a registration, in order; other calls are dropped",
		steps: []linkStep{
			{op: "send", call: "ex0", result: sendHeld},
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "send", call: "ex1", result: sendHeld},
			{op: "send", call: "message", result: sendDropped},
			{op: "failed", next: "+1s"},
			{op: "send", call: "ex2", result: sendHeld},
			{op: "tick", at: time.Second, want: []string{"D 2 REGISTER"}},
			{op: "connected", at: time.Second},
			{op: "send", call: "ex3", at: time.Second, result: sendHeld}, // not registered yet
			{op: "registered", id: "a1", at: time.Second,
				want: []string{"W a1", "S EXECUTOR_EXITED ex0", "S EXECUTOR_EXITED ex1", "S EXECUTOR_EXITED ex2", "S EXECUTOR_EXITED ex3", "R"}},
			{op: "send", call: "ex4", at: time.Second, result: sendNow},
			{op: "send", call: "message", at: time.Second, result: sendNow},
			{op: "ended", at: 2 * time.Second, want: []string{"H 2 the master ended the stream"}},
			{op: "send", call: "ex5", at: 2 * time.Second, result: sendHeld},
			{op: "tick", at: 3 * time.Second, want: []string{"D 3 REREGISTER a1"}},
			{op: "connected", at: 3 * time.Second},
			// Held once: ex0..ex3 went out with the first registration.
			{op: "registered", id: "a1", at: 3 * time.Second, want: []string{"S EXECUTOR_EXITED ex5", "R"}},
		},
	}, {
		name: "a shutdown dials no more but keeps its stream",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "stop"},
			{op: "connected", result: connAccepted}, // the attempt in flight may still land
			{op: "registered", id: "a1", want: []string{"W a1", "R"}},
			{op: "ping", at: time.Second, want: []string{"S PONG"}},
			{op: "send", call: "ex1", result: sendNow},
			{op: "ended", at: 2 * time.Second, want: []string{"H 1 the master ended the stream"}, next: "none"},
			{op: "tick", at: time.Hour},
			{op: "start", at: time.Hour},
		},
	}, {
		name: "a shutdown cancels the next dial",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "failed", next: "+1s"},
			{op: "stop", next: "none"},
			{op: "tick", at: time.Hour},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newTestLink(tc.id)
			runLinkSteps(t, l, tc.steps)
		})
	}
}

// The wait before each attempt is drawn up to a bound that starts at the
// registration backoff and doubles up to its maximum, as Mesos's
// doReliableRegistration; a registration starts it over.
func TestLinkBackoff(t *testing.T) {
	l, j := newTestLink("")
	now := linkT0
	l.start(now)
	d := l.drain().dial
	require.NotNil(t, d)
	var waits []time.Duration
	for range 9 {
		require.Equal(t, connFailed, l.connected(d.gen, false, now))
		at, ok := l.nextDeadline()
		require.True(t, ok)
		waits = append(waits, at.Sub(now))
		l.tick(at.Add(-time.Nanosecond))
		require.True(t, l.drain().empty(), "not before its time")
		now = at
		l.tick(now)
		d = l.drain().dial
		require.NotNil(t, d)
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	assert.Equal(t, want, waits)
	assert.Equal(t, want, j.bounds, "the jitter's bounds")

	// Registered, then lost: back to the first bound.
	require.Equal(t, connAccepted, l.connected(d.gen, true, now))
	require.Equal(t, regTaken, l.registered("a1", 0, 0, now))
	l.drain()
	require.True(t, l.disconnected(d.gen, "gone", now))
	l.drain()
	assert.Equal(t, time.Second, j.bounds[len(j.bounds)-1])

	// A draw outside [0, bound] is clamped into it.
	for _, draw := range []time.Duration{-time.Hour, time.Hour} {
		l := newLinkState(linkMin, linkMax, func(time.Duration) time.Duration { return draw }, "")
		l.start(linkT0)
		require.Equal(t, connFailed, l.connected(l.drain().dial.gen, false, linkT0))
		at, _ := l.nextDeadline()
		assert.False(t, at.Before(linkT0), draw)
		assert.False(t, at.After(linkT0.Add(linkMin)), draw)
	}

	// No backoff configured: the next attempt is at once.
	l = newLinkState(0, 0, func(time.Duration) time.Duration { panic("no draw without a bound") }, "")
	l.start(linkT0)
	require.Equal(t, connFailed, l.connected(l.drain().dial.gen, false, linkT0))
	l.tick(linkT0)
	assert.NotNil(t, l.drain().dial)
}

// A ping timeout and a reconnection due at the same time both happen in
// one tick: the stream is hung up before the new attempt.
func TestLinkPingTimeoutAndImmediateRedial(t *testing.T) {
	l := newLinkState(linkMin, linkMax, func(time.Duration) time.Duration { return 0 }, "")
	runLinkSteps(t, l, []linkStep{
		{op: "start", want: []string{"D 1 REGISTER"}},
		{op: "connected"},
		{op: "registered", id: "a1", ping: time.Second, misses: 2, want: []string{"W a1", "R"}},
		{op: "tick", at: time.Hour, want: []string{"H 1 no ping from the master in 2s", "D 2 REREGISTER a1"}},
	})
}

// Any event from the master moves the ping deadline, as a ping does: a
// busy agent that reads a long burst of launches before the PING behind
// them keeps its stream.
func TestLinkAnyEventKeepsTheStream(t *testing.T) {
	l := newLinkState(linkMin, linkMax, func(time.Duration) time.Duration { return 0 }, "")
	l.start(linkT0)
	l.connected(l.drain().dial.gen, true, linkT0)
	l.registered("a1", time.Second, 2, linkT0)
	l.drain()
	l.heard(linkT0.Add(1500 * time.Millisecond))
	l.tick(linkT0.Add(3 * time.Second))
	assert.True(t, l.isRegistered(), "heard 1.5 s in: the 2 s timeout runs from then")
	l.tick(linkT0.Add(3500 * time.Millisecond))
	assert.False(t, l.isRegistered(), "nothing heard for 2 s")
}

// The held EXECUTOR_EXITED calls are bounded.
func TestLinkHeldCallsAreBounded(t *testing.T) {
	l, _ := newTestLink("")
	for i := range maxHeldCalls {
		require.Equal(t, sendHeld, l.send(exitedCall(fmt.Sprint(i))))
	}
	assert.Equal(t, sendDropped, l.send(exitedCall("one too many")))
	l.start(linkT0)
	l.connected(l.drain().dial.gen, true, linkT0)
	l.registered("a1", 0, 0, linkT0)
	r := l.drain()
	require.Len(t, r.sends, maxHeldCalls)
	assert.Equal(t, "0", r.sends[0].ExecutorExited.ExecutorID.Value)
	assert.Equal(t, fmt.Sprint(maxHeldCalls-1), r.sends[maxHeldCalls-1].ExecutorExited.ExecutorID.Value)
}

// The core stays pure: no clock, no goroutine, no agent, no I/O.
func TestLinkStateIsPure(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "linkcore.go", nil, parser.ImportsOnly)
	require.NoError(t, err)
	allowed := map[string]bool{
		`"time"`: true,
		`"github.com/apronhq/apron/api/v1/internalpb"`: true,
	}
	for _, imp := range f.Imports {
		assert.True(t, allowed[imp.Path.Value], "linkcore.go imports %s", imp.Path.Value)
	}
	src, err := os.ReadFile("linkcore.go")
	require.NoError(t, err)
	for _, bad := range []string{"time.Now", "time.Since", "time.After", "go func", "a *Agent", "chan ", "rand."} {
		assert.NotContains(t, string(src), bad)
	}
}

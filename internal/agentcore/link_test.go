package agentcore

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

func newTestLink(id string) (*Link, *fullJitter) {
	j := &fullJitter{}
	return NewLink(linkMin, linkMax, j.draw, id), j
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

func renderLink(r LinkReady) []string {
	var out []string
	if r.WriteID != "" {
		line := "W " + r.WriteID
		if r.Replaced != "" {
			line += " replacing " + r.Replaced
		}
		out = append(out, line)
	}
	if h := r.HangUp; h != nil {
		out = append(out, fmt.Sprintf("H %d %s", h.Gen, h.Why))
	}
	for _, c := range r.Sends {
		line := "S " + c.GetType().String()
		if c.ExecutorExited != nil {
			line += " " + c.ExecutorExited.ExecutorID.Value
		}
		out = append(out, line)
	}
	if r.Registered {
		out = append(out, "R")
	}
	if d := r.Dial; d != nil {
		if d.Reregister {
			out = append(out, fmt.Sprintf("D %d REREGISTER %s", d.Gen, d.AgentID))
		} else {
			out = append(out, fmt.Sprintf("D %d REGISTER", d.Gen))
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

func runLinkSteps(t *testing.T, l *Link, steps []linkStep) {
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
			l.Start(now)
		case "connected":
			res = l.Connected(gen, true, now)
		case "failed":
			res = l.Connected(gen, false, now)
		case "registered":
			res = l.Registered(s.id, s.ping, s.misses, now)
		case "ping":
			res = l.Pinged(false, now)
		case "disowned":
			res = l.Pinged(true, now)
		case "ended":
			res = l.Disconnected(gen, "the master ended the stream", now)
		case "tick":
			l.Tick(now)
		case "stop":
			l.Stop()
		case "detected":
			l.MasterDetected(now)
		case "send":
			c := &internalpb.Call{Type: internalpb.Call_EXECUTOR_MESSAGE.Enum()}
			if s.call != "message" {
				c = exitedCall(s.call)
			}
			res = l.Send(c)
		default:
			t.Fatalf("%s: unknown op", name)
		}
		if s.result != nil {
			assert.Equal(t, s.result, res, name)
		}
		got := renderLink(l.Drain())
		if len(s.want) == 0 {
			assert.Empty(t, got, name)
		} else {
			assert.Equal(t, s.want, got, name)
		}
		if s.next != "" {
			next := "none"
			if at, ok := l.NextDeadline(); ok {
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
			{op: "connected", result: ConnAccepted, next: "none"},
			{op: "registered", id: "a1", at: time.Second, result: RegTaken,
				want: []string{"W a1", "R"}, next: "+1m16s"}, // 15 s × 5 missed pings
			{op: "ended", at: 2 * time.Second, result: true,
				want: []string{"H 1 the master ended the stream"}, next: "+3s"},
			{op: "tick", at: 3 * time.Second, want: []string{"D 2 REREGISTER a1"}},
			{op: "connected", at: 3 * time.Second, result: ConnAccepted},
			// The same ID again: nothing to write.
			{op: "registered", id: "a1", at: 3 * time.Second, result: RegTaken, want: []string{"R"}},
		},
	}, {
		// The backoff grown while the old master was gone starts over
		// when a new leader is detected (Mesos's Slave::detected).
		name: "a new leader detected: the backoff starts over",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "failed", result: ConnFailed, next: "+1s"},
			{op: "tick", at: time.Second, want: []string{"D 2 REGISTER"}},
			{op: "failed", at: time.Second, result: ConnFailed, next: "+3s"},
			{op: "tick", at: 3 * time.Second, want: []string{"D 3 REGISTER"}},
			{op: "failed", at: 3 * time.Second, result: ConnFailed, next: "+7s"},
			{op: "detected", at: 4 * time.Second, next: "+5s"},
			{op: "tick", at: 5 * time.Second, want: []string{"D 4 REGISTER"}},
			// In flight or connected: nothing changes but the backoff.
			{op: "detected", at: 5 * time.Second, next: "none"},
			{op: "failed", at: 5 * time.Second, result: ConnFailed, next: "+6s"},
		},
	}, {
		name: "a recovered ID re-registers at once",
		id:   "a0",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REREGISTER a0"}},
			{op: "connected", result: ConnAccepted},
			{op: "registered", id: "a0", result: RegTaken, want: []string{"R"}},
		},
	}, {
		// A failed-over master that does not know the agent gives it a
		// new ID, which is checkpointed before the rest, and used from
		// then on.
		name: "master failover: the new master's answer",
		id:   "a0",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REREGISTER a0"}},
			{op: "connected", result: ConnAccepted},
			{op: "registered", id: "a0", want: []string{"R"}},
			{op: "send", call: "ex1", result: SendNow},
			// The leader dies: its stream ends while an executor exits.
			{op: "ended", at: 10 * time.Second, want: []string{"H 1 the master ended the stream"}, next: "+11s"},
			{op: "send", call: "ex2", at: 10 * time.Second, result: SendHeld},
			// The first attempt finds no master (none leads yet).
			{op: "tick", at: 11 * time.Second, want: []string{"D 2 REREGISTER a0"}},
			{op: "failed", at: 11 * time.Second, result: ConnFailed, next: "+13s"},
			{op: "tick", at: 13 * time.Second, want: []string{"D 3 REREGISTER a0"}},
			{op: "connected", at: 13 * time.Second, result: ConnAccepted},
			{op: "registered", id: "b0", at: 13 * time.Second, result: RegTaken,
				want: []string{"W b0 replacing a0", "S EXECUTOR_EXITED ex2", "R"}},
			{op: "disowned", at: 20 * time.Second, result: true,
				want: []string{"H 3 the master considers the agent disconnected"}, next: "+21s"},
			{op: "tick", at: 21 * time.Second, want: []string{"D 4 REREGISTER b0"}},
		},
	}, {
		name: "registration answers that are not taken",
		steps: []linkStep{
			{op: "registered", id: "a1", result: RegIgnored}, // no stream
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "registered", id: "a1", result: RegIgnored}, // still dialing
			{op: "connected", result: ConnAccepted},
			{op: "registered", id: "", result: RegNoID, next: "none"},
			{op: "ping", result: false}, // not registered yet
			{op: "registered", id: "a1", result: RegTaken, want: []string{"W a1", "R"}},
		},
	}, {
		name: "stale outcomes and streams",
		steps: []linkStep{
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "failed", result: ConnFailed, next: "+1s"},
			{op: "failed", gen: 1, result: ConnStale}, // once is enough
			{op: "tick", at: time.Second, want: []string{"D 2 REGISTER"}},
			{op: "connected", gen: 1, at: time.Second, result: ConnStale},
			{op: "connected", gen: 2, at: time.Second, result: ConnAccepted},
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
			{op: "send", call: "ex0", result: SendHeld},
			{op: "start", want: []string{"D 1 REGISTER"}},
			{op: "send", call: "ex1", result: SendHeld},
			{op: "send", call: "message", result: SendDropped},
			{op: "failed", next: "+1s"},
			{op: "send", call: "ex2", result: SendHeld},
			{op: "tick", at: time.Second, want: []string{"D 2 REGISTER"}},
			{op: "connected", at: time.Second},
			{op: "send", call: "ex3", at: time.Second, result: SendHeld}, // not registered yet
			{op: "registered", id: "a1", at: time.Second,
				want: []string{"W a1", "S EXECUTOR_EXITED ex0", "S EXECUTOR_EXITED ex1", "S EXECUTOR_EXITED ex2", "S EXECUTOR_EXITED ex3", "R"}},
			{op: "send", call: "ex4", at: time.Second, result: SendNow},
			{op: "send", call: "message", at: time.Second, result: SendNow},
			{op: "ended", at: 2 * time.Second, want: []string{"H 2 the master ended the stream"}},
			{op: "send", call: "ex5", at: 2 * time.Second, result: SendHeld},
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
			{op: "connected", result: ConnAccepted}, // the attempt in flight may still land
			{op: "registered", id: "a1", want: []string{"W a1", "R"}},
			{op: "ping", at: time.Second, want: []string{"S PONG"}},
			{op: "send", call: "ex1", result: SendNow},
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
	l.Start(now)
	d := l.Drain().Dial
	require.NotNil(t, d)
	var waits []time.Duration
	for range 9 {
		require.Equal(t, ConnFailed, l.Connected(d.Gen, false, now))
		at, ok := l.NextDeadline()
		require.True(t, ok)
		waits = append(waits, at.Sub(now))
		l.Tick(at.Add(-time.Nanosecond))
		require.True(t, l.Drain().empty(), "not before its time")
		now = at
		l.Tick(now)
		d = l.Drain().Dial
		require.NotNil(t, d)
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	assert.Equal(t, want, waits)
	assert.Equal(t, want, j.bounds, "the jitter's bounds")

	// Registered, then lost: back to the first bound.
	require.Equal(t, ConnAccepted, l.Connected(d.Gen, true, now))
	require.Equal(t, RegTaken, l.Registered("a1", 0, 0, now))
	l.Drain()
	require.True(t, l.Disconnected(d.Gen, "gone", now))
	l.Drain()
	assert.Equal(t, time.Second, j.bounds[len(j.bounds)-1])

	// A draw outside [0, bound] is clamped into it.
	for _, draw := range []time.Duration{-time.Hour, time.Hour} {
		l := NewLink(linkMin, linkMax, func(time.Duration) time.Duration { return draw }, "")
		l.Start(linkT0)
		require.Equal(t, ConnFailed, l.Connected(l.Drain().Dial.Gen, false, linkT0))
		at, _ := l.NextDeadline()
		assert.False(t, at.Before(linkT0), draw)
		assert.False(t, at.After(linkT0.Add(linkMin)), draw)
	}

	// No backoff configured: the next attempt is at once.
	l = NewLink(0, 0, func(time.Duration) time.Duration { panic("no draw without a bound") }, "")
	l.Start(linkT0)
	require.Equal(t, ConnFailed, l.Connected(l.Drain().Dial.Gen, false, linkT0))
	l.Tick(linkT0)
	assert.NotNil(t, l.Drain().Dial)
}

// A ping timeout and a reconnection due at the same time both happen in
// one tick: the stream is hung up before the new attempt.
func TestLinkPingTimeoutAndImmediateRedial(t *testing.T) {
	l := NewLink(linkMin, linkMax, func(time.Duration) time.Duration { return 0 }, "")
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
	l := NewLink(linkMin, linkMax, func(time.Duration) time.Duration { return 0 }, "")
	l.Start(linkT0)
	l.Connected(l.Drain().Dial.Gen, true, linkT0)
	l.Registered("a1", time.Second, 2, linkT0)
	l.Drain()
	l.Heard(linkT0.Add(1500 * time.Millisecond))
	l.Tick(linkT0.Add(3 * time.Second))
	assert.True(t, l.IsRegistered(), "heard 1.5 s in: the 2 s timeout runs from then")
	l.Tick(linkT0.Add(3500 * time.Millisecond))
	assert.False(t, l.IsRegistered(), "nothing heard for 2 s")
}

// The held EXECUTOR_EXITED calls are bounded.
func TestLinkHeldCallsAreBounded(t *testing.T) {
	l, _ := newTestLink("")
	for i := range maxHeldCalls {
		require.Equal(t, SendHeld, l.Send(exitedCall(fmt.Sprint(i))))
	}
	assert.Equal(t, SendDropped, l.Send(exitedCall("one too many")))
	l.Start(linkT0)
	l.Connected(l.Drain().Dial.Gen, true, linkT0)
	l.Registered("a1", 0, 0, linkT0)
	r := l.Drain()
	require.Len(t, r.Sends, maxHeldCalls)
	assert.Equal(t, "0", r.Sends[0].ExecutorExited.ExecutorID.Value)
	assert.Equal(t, fmt.Sprint(maxHeldCalls-1), r.Sends[maxHeldCalls-1].ExecutorExited.ExecutorID.Value)
}

// The core stays pure: no clock, no goroutine, no agent, no I/O.
func TestLinkStateIsPure(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "link.go", nil, parser.ImportsOnly)
	require.NoError(t, err)
	allowed := map[string]bool{
		`"time"`: true,
		`"github.com/apronhq/apron/api/v1/internalpb"`: true,
	}
	for _, imp := range f.Imports {
		assert.True(t, allowed[imp.Path.Value], "link.go imports %s", imp.Path.Value)
	}
	src, err := os.ReadFile("link.go")
	require.NoError(t, err)
	for _, bad := range []string{"time.Now", "time.Since", "time.After", "go func", "a *Agent", "chan ", "rand."} {
		assert.NotContains(t, string(src), bad)
	}
}

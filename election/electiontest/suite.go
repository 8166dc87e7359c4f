// Package electiontest is the conformance suite every election
// implementation passes, as containerd's snapshotter suite is for
// snapshotters: Run(t, factory) checks that one member leads at a time,
// that leadership ends on session loss, resignation and close, that
// another member takes over, that detectors converge on the leader and
// report none when no member leads, and that payloads arrive intact.
package electiontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/election"
)

// Cluster is one fresh election made by a Factory for one test.
type Cluster interface {
	// NewContender returns a new member; the cluster closes it at t's
	// cleanup.
	NewContender(t *testing.T) election.Contender
	// NewDetector returns a new detector, closed at t's cleanup.
	NewDetector(t *testing.T) election.Detector
	// Cut makes c lose contact with the coordination service for longer
	// than its session lasts (for ZooKeeper: a proxy that stops
	// forwarding); Restore reconnects it.
	Cut(t *testing.T, c election.Contender)
	Restore(t *testing.T, c election.Contender)
}

// Factory makes a Cluster for one test.
type Factory func(t *testing.T) Cluster

// Wait bounds every wait for something that must happen; it is a liveness
// bound for a hung implementation, not a timing assertion.
const Wait = 60 * time.Second

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Cluster)
	}{
		{"OneLeader", testOneLeader},
		{"PayloadIntact", testPayloadIntact},
		{"ResignHandsOver", testResignHandsOver},
		{"CloseHandsOver", testCloseHandsOver},
		{"SessionLossStepsDown", testSessionLoss},
		{"NoLeaderWhenNone", testNoLeaderWhenNone},
		{"CampaignCancelled", testCampaignCancelled},
		{"Lead", testLead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, factory(t))
		})
	}
}

// monitor checks that terms never overlap: a member that becomes leader
// finds every earlier term already ended.
type monitor struct {
	t     *testing.T
	mu    sync.Mutex
	terms []*election.Term
}

func (m *monitor) record(term *election.Term) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, old := range m.terms {
		if old == term {
			return
		}
		select {
		case <-old.Done():
		default:
			m.t.Errorf("term %s began while term %s had not ended: two leaders", term.ID(), old.ID())
		}
	}
	m.terms = append(m.terms, term)
}

type result struct {
	i    int
	term *election.Term
	err  error
}

// campaign starts Campaign for each contender, reporting winners on the
// returned channel.
func campaign(ctx context.Context, m *monitor, cs []election.Contender, payloads [][]byte) <-chan result {
	out := make(chan result, len(cs))
	for i := range cs {
		campaignOne(ctx, m, cs, payloads, i, out)
	}
	return out
}

// campaignOne starts Campaign for cs[i], reporting on out.
func campaignOne(ctx context.Context, m *monitor, cs []election.Contender, payloads [][]byte, i int, out chan<- result) {
	go func() {
		term, err := cs[i].Campaign(ctx, payloads[i])
		if err == nil {
			m.record(term)
		}
		out <- result{i, term, err}
	}()
}

func next(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r
	case <-time.After(Wait):
		t.Fatalf("no leader after %v", Wait)
		return result{}
	}
}

func noMore(t *testing.T, ch <-chan result) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("second leader %d (err %v) while the first leads", r.i, r.err)
	default:
	}
}

func ended(t *testing.T, term *election.Term, want error) {
	t.Helper()
	select {
	case <-term.Done():
	case <-time.After(Wait):
		t.Fatalf("term %s did not end after %v", term.ID(), Wait)
	}
	require.ErrorIs(t, term.Err(), want)
}

// converge waits until every detector reports want (an unknown Leader
// means none) and returns what they report.
func converge(t *testing.T, ds []election.Detector, want func(election.Leader) bool) election.Leader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	var got election.Leader
	for i, d := range ds {
		l := d.Leader()
		for !want(l) {
			var err error
			l, err = d.Detect(ctx, l)
			require.NoError(t, err, "detector %d last saw %q", i, l.ID)
		}
		if i > 0 {
			require.Equal(t, got.ID, l.ID, "detectors disagree")
			require.Equal(t, got.Payload, l.Payload, "detectors disagree")
		}
		got = l
	}
	return got
}

func payloadIs(p []byte) func(election.Leader) bool {
	return func(l election.Leader) bool { return l.Known() && bytes.Equal(l.Payload, p) }
}

func none(l election.Leader) bool { return !l.Known() }

func members(t *testing.T, c Cluster, n int) ([]election.Contender, [][]byte) {
	cs := make([]election.Contender, n)
	ps := make([][]byte, n)
	for i := range cs {
		cs[i] = c.NewContender(t)
		ps[i] = []byte(fmt.Sprintf(`{"id":"member-%d"}`, i))
	}
	return cs, ps
}

func detectors(t *testing.T, c Cluster, n int) []election.Detector {
	ds := make([]election.Detector, n)
	for i := range ds {
		ds[i] = c.NewDetector(t)
	}
	return ds
}

func testOneLeader(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &monitor{t: t}
	cs, ps := members(t, c, 3)
	ds := detectors(t, c, 2)
	wins := campaign(ctx, m, cs, ps)
	r := next(t, wins)
	l := converge(t, ds, payloadIs(ps[r.i]))
	require.Equal(t, r.term.ID(), l.ID)
	noMore(t, wins)
	// Campaign again while leading: the same term.
	again, err := cs[r.i].Campaign(ctx, ps[r.i])
	require.NoError(t, err)
	require.Same(t, r.term, again)
	noMore(t, wins)
}

func testPayloadIntact(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	payload := make([]byte, 0, 4096)
	for i := 0; i < 4096; i++ {
		payload = append(payload, byte(i*7))
	}
	ct := c.NewContender(t)
	ds := detectors(t, c, 1)
	m := &monitor{t: t}
	next(t, campaign(ctx, m, []election.Contender{ct}, [][]byte{payload}))
	converge(t, ds, payloadIs(payload))
	// A new payload replaces the old one.
	_, err := ct.Campaign(ctx, []byte("second"))
	require.NoError(t, err)
	converge(t, ds, payloadIs([]byte("second")))
}

func testResignHandsOver(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &monitor{t: t}
	cs, ps := members(t, c, 3)
	ds := detectors(t, c, 2)
	wins := campaign(ctx, m, cs, ps)
	first := next(t, wins)
	converge(t, ds, payloadIs(ps[first.i]))
	require.NoError(t, cs[first.i].Resign(ctx))
	ended(t, first.term, election.ErrResigned)
	second := next(t, wins)
	require.NotEqual(t, first.i, second.i)
	converge(t, ds, payloadIs(ps[second.i]))
	noMore(t, wins)

	// The resigned member enters again; then each remaining member leads
	// in turn as the one before resigns.
	rest := make(chan result, 2)
	campaignOne(ctx, m, cs, ps, first.i, rest)
	go func() { rest <- <-wins }()
	require.NoError(t, cs[second.i].Resign(ctx))
	ended(t, second.term, election.ErrResigned)
	led := map[int]bool{}
	for range 2 {
		r := next(t, rest)
		require.False(t, led[r.i], "member %d led twice", r.i)
		led[r.i] = true
		converge(t, ds, payloadIs(ps[r.i]))
		noMore(t, rest)
		if r.i == first.i {
			require.NotEqual(t, first.term.ID(), r.term.ID(), "a new candidacy after resigning")
		}
		require.NoError(t, cs[r.i].Resign(ctx))
		ended(t, r.term, election.ErrResigned)
	}
	require.True(t, led[first.i])
	converge(t, ds, none)
}

func testCloseHandsOver(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &monitor{t: t}
	cs, ps := members(t, c, 2)
	ds := detectors(t, c, 1)
	wins := campaign(ctx, m, cs, ps)
	first := next(t, wins)
	require.NoError(t, cs[first.i].Close())
	ended(t, first.term, election.ErrClosed)
	second := next(t, wins)
	converge(t, ds, payloadIs(ps[second.i]))
	_, err := cs[first.i].Campaign(ctx, ps[first.i])
	require.ErrorIs(t, err, election.ErrClosed)
}

func testSessionLoss(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &monitor{t: t}
	cs, ps := members(t, c, 2)
	ds := detectors(t, c, 2)
	wins := campaign(ctx, m, cs, ps)
	first := next(t, wins)
	converge(t, ds, payloadIs(ps[first.i]))

	cut := time.Now()
	c.Cut(t, cs[first.i])
	ended(t, first.term, election.ErrSessionLost)
	steppedDown := time.Since(cut)
	second := next(t, wins) // the monitor checks the first term ended before
	took := time.Since(cut)
	require.NotEqual(t, first.i, second.i)
	converge(t, ds, payloadIs(ps[second.i]))
	t.Logf("failover: leader cut off → stepped down after %v, new leader told after %v", steppedDown, took)

	// Back in a new session, the old leader waits behind the new one.
	c.Restore(t, cs[first.i])
	wins2 := make(chan result, 1)
	campaignOne(ctx, m, cs, ps, first.i, wins2)
	converge(t, ds, payloadIs(ps[second.i]))
	noMore(t, wins2)
	require.NoError(t, cs[second.i].Resign(ctx))
	back := next(t, wins2)
	require.NotEqual(t, first.term.ID(), back.term.ID(), "a new term, not the old one")
	converge(t, ds, payloadIs(ps[first.i]))
}

func testNoLeaderWhenNone(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ds := detectors(t, c, 2)
	converge(t, ds, none)
	// Nobody leads: Detect from "none" blocks.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := ds[0].Detect(short, election.Leader{})
	cancelShort()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	m := &monitor{t: t}
	cs, ps := members(t, c, 1)
	r := next(t, campaign(ctx, m, cs, ps))
	converge(t, ds, payloadIs(ps[0]))
	require.NoError(t, cs[0].Resign(ctx))
	ended(t, r.term, election.ErrResigned)
	converge(t, ds, none)

	// A leader that loses its session is not reported once it is gone.
	r = next(t, campaign(ctx, m, cs, ps))
	converge(t, ds, payloadIs(ps[0]))
	c.Cut(t, cs[0])
	ended(t, r.term, election.ErrSessionLost)
	converge(t, ds, none)
	c.Restore(t, cs[0])
}

func testCampaignCancelled(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &monitor{t: t}
	cs, ps := members(t, c, 2)
	first := next(t, campaign(ctx, m, cs[:1], ps[:1]))
	short, cancelShort := context.WithCancel(ctx)
	wins := campaign(short, m, cs[1:], ps[1:])
	cancelShort()
	select {
	case r := <-wins:
		require.ErrorIs(t, r.err, context.Canceled)
	case <-time.After(Wait):
		t.Fatal("Campaign ignored its context")
	}
	select {
	case <-first.term.Done():
		t.Fatal("the leader's term ended when another Campaign was cancelled")
	default:
	}
}

func testLead(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ct := c.NewContender(t)
	leading := make(chan context.Context, 4)
	done := make(chan error, 1)
	go func() {
		done <- election.Lead(ctx, ct, []byte("lead"), func(ctx context.Context) {
			leading <- ctx
			<-ctx.Done()
		})
	}()
	var lctx context.Context
	select {
	case lctx = <-leading:
	case <-time.After(Wait):
		t.Fatal("Lead never led")
	}
	c.Cut(t, ct)
	select {
	case <-lctx.Done():
	case <-time.After(Wait):
		t.Fatal("Lead's context outlived the session")
	}
	c.Restore(t, ct)
	select {
	case <-leading:
	case <-time.After(Wait):
		t.Fatal("Lead did not lead again after a new session")
	}
	cancel()
	select {
	case err := <-done:
		require.True(t, errors.Is(err, context.Canceled), "Lead returned %v", err)
	case <-time.After(Wait):
		t.Fatal("Lead did not return")
	}
}

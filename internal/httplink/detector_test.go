package httplink_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/memory"
	"github.com/apronhq/apron/internal/httplink"
)

// masterInfo is the payload a master at base campaigns with: its
// MasterInfo as JSON.
func masterInfo(t *testing.T, id, base string) []byte {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	host, portStr, err := net.SplitHostPort(u.Host)
	require.NoError(t, err)
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err)
	p := uint32(port)
	info := mesospb.MasterInfo{ID: id, Port: &p, Address: &mesospb.Address{IP: &host, Port: int32(port)}}
	data, err := codec.MarshalJSON(&info)
	require.NoError(t, err)
	return data
}

// countingDetector counts the Detect calls made on it, so a test knows
// when a watcher has handled a change and waits for the next.
type countingDetector struct {
	election.Detector
	calls atomic.Int32
}

func (d *countingDetector) Detect(ctx context.Context, previous election.Leader) (election.Leader, error) {
	d.calls.Add(1)
	return d.Detector.Detect(ctx, previous)
}

// syncBuffer is a log sink the link's goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newDetectorLink(t *testing.T, d election.Detector, log *slog.Logger, urls ...string) *link {
	t.Helper()
	l, err := httplink.New[schedulerpb.Event](httplink.Config{URLs: urls, Path: path, Detector: d, Logger: log})
	require.NoError(t, err)
	return l
}

func campaign(t *testing.T, c election.Contender, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := c.Campaign(ctx, payload)
	require.NoError(t, err)
}

// The link subscribes where the detector says the leader is; when another
// master leads, the stream on the old one ends and the next subscription
// lands on the new leader.
func TestDetectorFollowsLeader(t *testing.T) {
	a, aSrv := newFake(t)
	b, bSrv := newFake(t)
	g := memory.NewGroup()
	d := &countingDetector{Detector: g.NewDetector()}
	t.Cleanup(func() { _ = d.Close() })
	ca, cb := g.NewContender(), g.NewContender()
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	campaign(t, ca, masterInfo(t, "a", aSrv.URL))

	// bSrv is a static fallback: the detected leader comes first.
	l := newDetectorLink(t, d, nil, bSrv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, events, err := l.Subscribe(ctx, subscribe())
	require.NoError(t, err)
	next(t, events)
	assert.Equal(t, 1, a.requestCount())
	assert.Zero(t, b.requestCount())
	require.NoError(t, l.Call(ctx, id, revive()))
	assert.Equal(t, []string{id + " REVIVE"}, a.callLog())

	// The same master leading again (a new term, same address) and no
	// leader at all leave the stream open: the watcher goes back to
	// waiting instead of ending it.
	require.Eventually(t, func() bool { return d.calls.Load() == 1 }, wait, poll)
	require.NoError(t, ca.Resign(ctx))
	require.Eventually(t, func() bool { return d.calls.Load() == 2 }, wait, poll, "no leader seen")
	campaign(t, ca, masterInfo(t, "a", aSrv.URL))
	require.Eventually(t, func() bool { return d.calls.Load() == 3 }, wait, poll, "a's new term seen")
	a.stream(0) <- &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()}
	assert.Equal(t, schedulerpb.Event_HEARTBEAT, next(t, events).GetType(), "the stream is still open")

	// b leads: the stream on a ends, although a did not end it.
	require.NoError(t, ca.Resign(ctx))
	campaign(t, cb, masterInfo(t, "b", bSrv.URL))
	waitClosed(t, events)
	select {
	case <-a.ended:
	case <-time.After(wait):
		t.Fatal("a did not see the stream end")
	}
	assert.ErrorIs(t, l.Call(ctx, id, revive()), httplink.ErrNoStream)

	id, events, err = l.Subscribe(ctx, subscribe())
	require.NoError(t, err)
	next(t, events)
	assert.Equal(t, 1, subscriptions(b), "the new leader, not the last master")
	assert.Equal(t, 1, subscriptions(a))
	require.NoError(t, l.Call(ctx, id, revive()))
	assert.Equal(t, []string{id + " REVIVE"}, b.callLog())
}

// Without a leader and without static URLs there is nobody to try: the
// subscription fails at once, saying why, and the caller retries later.
func TestDetectorNoLeader(t *testing.T) {
	g := memory.NewGroup()
	d := g.NewDetector()
	t.Cleanup(func() { _ = d.Close() })
	l := newDetectorLink(t, d, nil)
	_, _, err := l.Subscribe(context.Background(), subscribe())
	require.ErrorIs(t, err, httplink.ErrNoMaster)
	assert.Contains(t, err.Error(), "no leading master is detected")

	// With a static URL, that one is tried.
	f, srv := newFake(t)
	l = newDetectorLink(t, d, nil, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events, err := l.Subscribe(ctx, subscribe())
	require.NoError(t, err)
	next(t, events)
	assert.Equal(t, 1, f.requestCount())

	// A leader appearing elsewhere moves the stream there.
	other, otherSrv := newFake(t)
	c := g.NewContender()
	t.Cleanup(func() { _ = c.Close() })
	campaign(t, c, masterInfo(t, "other", otherSrv.URL))
	waitClosed(t, events)
	_, events, err = l.Subscribe(ctx, subscribe())
	require.NoError(t, err)
	next(t, events)
	assert.Equal(t, 1, other.requestCount())

	// A link needs URLs or a detector.
	_, err = httplink.New[schedulerpb.Event](httplink.Config{Path: path})
	assert.ErrorIs(t, err, httplink.ErrBadURL)
}

// A leader whose payload names no master is skipped with a log line.
func TestDetectorGarbagePayloadSkipped(t *testing.T) {
	g := memory.NewGroup()
	d := g.NewDetector()
	t.Cleanup(func() { _ = d.Close() })
	c := g.NewContender()
	t.Cleanup(func() { _ = c.Close() })
	campaign(t, c, []byte("\x00not json{"))

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	l := newDetectorLink(t, d, log)
	_, _, err := l.Subscribe(context.Background(), subscribe())
	require.ErrorIs(t, err, httplink.ErrNoMaster)
	assert.Contains(t, logs.String(), "payload names no master")

	f, srv := newFake(t)
	l = newDetectorLink(t, d, log, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events, err := l.Subscribe(ctx, subscribe())
	require.NoError(t, err)
	next(t, events)
	assert.Equal(t, 1, f.requestCount(), "the static URL after the unusable leader")

	// A MasterInfo without an address is no better.
	require.NoError(t, c.Resign(ctx))
	campaign(t, c, []byte(`{"id":"x","ip":0}`))
	f.stream(0) <- &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()}
	assert.Equal(t, schedulerpb.Event_HEARTBEAT, next(t, events).GetType())
}

// A stream's watcher leaves with the stream, and a closed detector stops
// it too: the link leaves no goroutine behind.
func TestDetectorWatchersDoNotLeak(t *testing.T) {
	f, srv := newFake(t)
	g := memory.NewGroup()
	c := g.NewContender()
	t.Cleanup(func() { _ = c.Close() })
	campaign(t, c, masterInfo(t, "m", srv.URL))
	before := runtime.NumGoroutine()
	for i := 0; i < 4; i++ {
		d := g.NewDetector()
		l := newDetectorLink(t, d, nil)
		ctx, cancel := context.WithCancel(context.Background())
		_, events, err := l.Subscribe(ctx, subscribe())
		require.NoError(t, err)
		next(t, events)
		if i%2 == 0 {
			cancel()
			waitClosed(t, events)
			<-f.ended
		} else {
			// The detector goes first; the stream then ends as usual.
			require.NoError(t, d.Close())
			f.stream(i) <- &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()}
			next(t, events)
			cancel()
			waitClosed(t, events)
			<-f.ended
		}
		_ = d.Close()
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(poll) {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		now := runtime.NumGoroutine()
		if now <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d now:\n%s", before, now, buf[:runtime.Stack(buf, true)])
		}
	}
}

func subscriptions(f *fakeMaster) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams)
}

package httplink_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/httplink"
)

const (
	path = "/api/v1/scheduler"
	wait = 10 * time.Second
	poll = 5 * time.Millisecond
)

type link = httplink.Link[schedulerpb.Event, *schedulerpb.Event]

// fakeMaster answers SUBSCRIBE with a stream fed by the test and records
// the other calls.
type fakeMaster struct {
	t        *testing.T
	mu       sync.Mutex
	streams  []chan *schedulerpb.Event
	calls    []string // "<stream id> <type>"
	requests int
	ended    chan struct{} // a stream handler returned
}

func newFake(t *testing.T) (*fakeMaster, *httptest.Server) {
	f := &fakeMaster{t: t, ended: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return f, srv
}

func (f *fakeMaster) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if r.URL.Path != path {
		http.NotFound(w, r)
		return
	}
	var call schedulerpb.Call
	c, err := httpapi.DecodeCall(r, &call, 0)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if call.GetType() != schedulerpb.Call_SUBSCRIBE {
		f.mu.Lock()
		f.calls = append(f.calls, r.Header.Get(httpapi.StreamIDHeader)+" "+call.GetType().String())
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	events := make(chan *schedulerpb.Event, 16)
	f.mu.Lock()
	f.streams = append(f.streams, events)
	id := fmt.Sprintf("stream-%d", len(f.streams))
	f.mu.Unlock()
	events <- subscribed()
	httpapi.ServeStream(w, r, c, id, events, nil, 0)
	f.ended <- struct{}{}
}

func (f *fakeMaster) stream(i int) chan *schedulerpb.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams[i]
}

func (f *fakeMaster) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeMaster) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func subscribed() *schedulerpb.Event {
	return &schedulerpb.Event{Type: schedulerpb.Event_SUBSCRIBED.Enum(),
		Subscribed: &schedulerpb.Event_Subscribed{FrameworkID: mesospb.FrameworkID{Value: "fw"}}}
}

func subscribe() *schedulerpb.Call {
	return &schedulerpb.Call{Type: schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: mesospb.FrameworkInfo{User: "u", Name: "n"}}}
}

func revive() *schedulerpb.Call { return &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()} }

func newLink(t *testing.T, c codec.Codec, urls ...string) *link {
	t.Helper()
	l, err := httplink.New[schedulerpb.Event](httplink.Config{URLs: urls, Path: path, Client: httpapi.Client{Codec: c}})
	require.NoError(t, err)
	return l
}

func next(t *testing.T, events <-chan *schedulerpb.Event) *schedulerpb.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		require.True(t, ok, "stream ended")
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
		return nil
	}
}

func waitClosed(t *testing.T, events <-chan *schedulerpb.Event) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("stream not closed")
		}
	}
}

// deadURL is the URL of a port nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

func TestSubscribeCallAndEnd(t *testing.T) {
	for _, c := range []codec.Codec{codec.Protobuf, codec.JSON} {
		t.Run(c.MediaType(), func(t *testing.T) {
			f, srv := newFake(t)
			l := newLink(t, c, srv.URL)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			id, events, err := l.Subscribe(ctx, subscribe())
			require.NoError(t, err)
			assert.Equal(t, "stream-1", id)
			assert.Equal(t, schedulerpb.Event_SUBSCRIBED, next(t, events).GetType())

			f.stream(0) <- &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()}
			assert.Equal(t, schedulerpb.Event_HEARTBEAT, next(t, events).GetType())

			require.NoError(t, l.Call(ctx, id, revive()))
			assert.Equal(t, []string{"stream-1 REVIVE"}, f.callLog(), "calls carry the stream ID")

			// The master ends the stream: the channel closes and the stream
			// is forgotten.
			close(f.stream(0))
			waitClosed(t, events)
			err = l.Call(ctx, id, revive())
			assert.ErrorIs(t, err, httplink.ErrNoStream)
			assert.Len(t, f.callLog(), 1, "nothing sent on an ended stream")
		})
	}
}

func TestCancelEndsStreamWithoutLeaks(t *testing.T) {
	f, srv := newFake(t)
	l := newLink(t, nil, srv.URL)
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		_, events, err := l.Subscribe(ctx, subscribe())
		require.NoError(t, err)
		next(t, events)
		// Events the caller never reads fill the channel: the reader must
		// still leave on cancel.
		for j := 0; j < 10; j++ {
			f.stream(i) <- &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()}
		}
		cancel()
		waitClosed(t, events)
		select {
		case <-f.ended:
		case <-time.After(wait):
			t.Fatal("the master did not see the stream end")
		}
	}
	// Polled here, not in require.Eventually, which runs its condition on
	// a goroutine of its own.
	for deadline := time.Now().Add(wait); ; time.Sleep(poll) {
		// Idle keep-alive connections hold goroutines of their own.
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

func TestSkipsDeadAndUnavailableAndFollowsRedirect(t *testing.T) {
	leader, leaderSrv := newFake(t)
	var unavailable, standby int
	var mu sync.Mutex
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		unavailable++
		mu.Unlock()
		http.Error(w, "no leader", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		standby++
		mu.Unlock()
		w.Header().Set("Location", leaderSrv.URL+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	l := newLink(t, nil, deadURL(t), busy.URL, redirect.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, events, err := l.Subscribe(ctx, subscribe())
	require.NoError(t, err)
	next(t, events)
	require.NoError(t, l.Call(ctx, id, revive()))
	assert.Equal(t, []string{"stream-1 REVIVE"}, leader.callLog(), "calls go to the leader")
	mu.Lock()
	assert.Equal(t, 1, unavailable)
	assert.Equal(t, 1, standby, "calls do not go through the standby")
	mu.Unlock()

	// The next subscription goes straight to the master of the last one.
	cancel()
	waitClosed(t, events)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	_, events, err = l.Subscribe(ctx2, subscribe())
	require.NoError(t, err)
	next(t, events)
	mu.Lock()
	assert.Equal(t, 1, unavailable)
	assert.Equal(t, 1, standby)
	mu.Unlock()
}

func TestRedirectLoopIsBounded(t *testing.T) {
	var hops int
	var mu sync.Mutex
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hops++
		mu.Unlock()
		w.Header().Set("Location", r.URL.Path) // relative: itself
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	l := newLink(t, nil, srv.URL)
	_, _, err := l.Subscribe(context.Background(), subscribe())
	require.ErrorIs(t, err, httplink.ErrNoMaster)
	assert.ErrorIs(t, err, httpapi.ErrRedirect)
	assert.Contains(t, err.Error(), "redirects")
	mu.Lock()
	assert.Equal(t, httplink.DefaultMaxRedirects+1, hops)
	mu.Unlock()
}

func TestRefusedCallIsNotRetriedElsewhere(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "framework_info.user is empty", http.StatusBadRequest)
	}))
	defer bad.Close()
	other, otherSrv := newFake(t)
	l := newLink(t, nil, bad.URL, otherSrv.URL)
	_, _, err := l.Subscribe(context.Background(), subscribe())
	var he *httpapi.Error
	require.True(t, errors.As(err, &he), "%v", err)
	assert.Equal(t, http.StatusBadRequest, he.Status)
	assert.Contains(t, err.Error(), "user is empty")
	assert.Zero(t, other.requestCount(), "a 400 is about the call, not the master")
}

func TestNoMaster(t *testing.T) {
	l := newLink(t, nil, deadURL(t), deadURL(t))
	_, _, err := l.Subscribe(context.Background(), subscribe())
	require.ErrorIs(t, err, httplink.ErrNoMaster)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = l.Subscribe(ctx, subscribe())
	require.ErrorIs(t, err, context.Canceled)
}

func TestCallErrorsKeepTheStatus(t *testing.T) {
	f, srv := newFake(t)
	_ = f
	l := newLink(t, nil, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, events, err := l.Subscribe(ctx, subscribe())
	require.NoError(t, err)
	next(t, events)
	// A call the fake cannot decode is answered 400.
	err = l.Call(ctx, id, &mesospb.FrameworkInfo{User: "u", Name: "n"})
	var he *httpapi.Error
	require.True(t, errors.As(err, &he), "%v", err)
	assert.Equal(t, http.StatusBadRequest, he.Status)
}

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.0.1:5050":        "http://10.0.0.1:5050/api/v1/scheduler",
		"http://10.0.0.1:5050/":       "http://10.0.0.1:5050/api/v1/scheduler",
		"10.0.0.1:5050":               "http://10.0.0.1:5050/api/v1/scheduler",
		"https://m.example/mesos/":    "https://m.example/mesos/api/v1/scheduler",
		" http://[::1]:5050 ":         "http://[::1]:5050/api/v1/scheduler",
		"http://user:pw@m.example:80": "http://user:pw@m.example:80/api/v1/scheduler",
	} {
		got, err := httplink.Endpoint(in, path)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "ftp://m:21", "http://", "http://m:5050/?x=1", "http://m:5050/#f", "http://%zz"} {
		_, err := httplink.Endpoint(in, path)
		assert.ErrorIs(t, err, httplink.ErrBadURL, in)
	}
	_, err := httplink.New[schedulerpb.Event](httplink.Config{Path: path})
	assert.ErrorIs(t, err, httplink.ErrBadURL, "no URL")
}

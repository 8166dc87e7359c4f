package zookeeper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/electiontest"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/internal/zktest"
)

const sessionTimeout = 2 * time.Second

var pathSeq atomic.Int64

// cluster is one election on a shared server: a fresh path per test, and
// a proxy per contender so the suite can cut it off.
type cluster struct {
	srv     *zktest.Server
	path    string
	opts    zookeeper.Options
	mu      sync.Mutex
	proxies map[election.Contender]*zktest.Proxy
}

func newCluster(srv *zktest.Server, opts zookeeper.Options) *cluster {
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = sessionTimeout
	}
	return &cluster{
		srv: srv, opts: opts,
		path:    fmt.Sprintf("/apron/test-%d", pathSeq.Add(1)),
		proxies: map[election.Contender]*zktest.Proxy{},
	}
}

func (c *cluster) url(t testing.TB, addr string) zookeeper.URL {
	u, err := zookeeper.ParseURL("zk://" + addr + c.path)
	require.NoError(t, err)
	return u
}

func (c *cluster) NewContender(t *testing.T) election.Contender {
	p := zktest.NewProxy(t, c.srv.Addr)
	ct, err := zookeeper.NewContender(c.url(t, p.Addr()), c.opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ct.Close() })
	c.mu.Lock()
	c.proxies[ct] = p
	c.mu.Unlock()
	return ct
}

func (c *cluster) NewDetector(t *testing.T) election.Detector {
	d, err := zookeeper.NewDetector(c.url(t, c.srv.Addr), c.opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func (c *cluster) proxy(ct election.Contender) *zktest.Proxy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proxies[ct]
}

func (c *cluster) Cut(_ *testing.T, ct election.Contender)     { c.proxy(ct).Block() }
func (c *cluster) Restore(_ *testing.T, ct election.Contender) { c.proxy(ct).Unblock() }

// TestZooKeeper runs everything against one server (a JVM start costs
// seconds); every test works under a path of its own.
func TestZooKeeper(t *testing.T) {
	srv := zktest.Start(t)
	t.Run("Conformance", func(t *testing.T) {
		electiontest.Run(t, func(*testing.T) electiontest.Cluster { return newCluster(srv, zookeeper.Options{}) })
	})
	t.Run("WireLayoutMatchesMesos", func(t *testing.T) { testWireLayoutMatchesMesos(t, srv) })
	t.Run("ForeignAndGarbageZnodesSkipped", func(t *testing.T) { testForeignAndGarbageZnodesSkipped(t, srv) })
	t.Run("UnreachableAtStart", func(t *testing.T) { testUnreachableAtStart(t, srv) })
	t.Run("DigestAuth", func(t *testing.T) { testDigestAuth(t, srv) })
	t.Run("NoHerd", func(t *testing.T) { testNoHerd(t, srv) })
	t.Run("ReconnectInSameSession", func(t *testing.T) { testReconnectInSameSession(t, srv) })
	t.Run("DetectorCutOffForgetsLeader", func(t *testing.T) { testDetectorCutOff(t, srv) })
}

// A detector cut off from ZooKeeper for longer than a session keeps the
// last leader only that long, then reports none; reconnected, it finds
// the leader again.
func testDetectorCutOff(t *testing.T, srv *zktest.Server) {
	c := newCluster(srv, zookeeper.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), electiontest.Wait)
	defer cancel()
	ct := c.NewContender(t)
	term, err := ct.Campaign(ctx, []byte("a"))
	require.NoError(t, err)
	p := zktest.NewProxy(t, srv.Addr)
	d, err := zookeeper.NewDetector(c.url(t, p.Addr()), c.opts)
	require.NoError(t, err)
	defer d.Close()
	l, err := d.Detect(ctx, election.Leader{})
	require.NoError(t, err)
	require.Equal(t, term.ID(), l.ID)
	p.Block()
	l, err = d.Detect(ctx, l)
	require.NoError(t, err)
	require.False(t, l.Known(), "a detector cut off must stop reporting a leader it cannot see")
	p.Unblock()
	l, err = d.Detect(ctx, l)
	require.NoError(t, err)
	require.Equal(t, term.ID(), l.ID)
}

// Each contender watches only the znode just ahead of it: the leader's
// znode is watched by its successor (and by the leader itself, to notice
// its deletion), never by the whole line.
func testNoHerd(t *testing.T, srv *zktest.Server) {
	c := newCluster(srv, zookeeper.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), electiontest.Wait)
	defer cancel()
	const n = 4
	var leaderID string
	for i := 0; i < n; i++ {
		ct := c.NewContender(t)
		if i == 0 {
			term, err := ct.Campaign(ctx, []byte("0"))
			require.NoError(t, err)
			leaderID = term.ID()
			continue
		}
		go func() { _, _ = ct.Campaign(ctx, []byte(fmt.Sprint(i))) }()
	}
	var watchers map[string]int
	require.Eventually(t, func() bool {
		out, err := zktest.FourLetter(srv.Addr, "wchp")
		require.NoError(t, err)
		watchers = map[string]int{}
		total, node := 0, ""
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.HasPrefix(line, c.path+"/"):
				node = strings.TrimPrefix(line, c.path+"/")
			case strings.HasPrefix(line, "/"):
				node = ""
			case node != "" && strings.TrimSpace(line) != "":
				watchers[node]++
				total++
			}
		}
		return total >= n
	}, electiontest.Wait, 50*time.Millisecond)
	require.Equal(t, 2, watchers[leaderID], "leader's znode watchers: %v", watchers)
	for node, w := range watchers {
		require.LessOrEqual(t, w, 2, "znode %s watchers: %v", node, watchers)
	}
}

// A leader whose connection drops steps down at once (it cannot know
// whether its session survives); when it reconnects in the same session
// its znode is still first and it leads again, in a new term, without
// anyone else having led.
func testReconnectInSameSession(t *testing.T, srv *zktest.Server) {
	c := newCluster(srv, zookeeper.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), electiontest.Wait)
	defer cancel()
	leader := c.NewContender(t)
	term, err := leader.Campaign(ctx, []byte("a"))
	require.NoError(t, err)
	other := c.NewContender(t)
	otherWon := make(chan struct{})
	go func() {
		if _, err := other.Campaign(ctx, []byte("b")); err == nil {
			close(otherWon)
		}
	}()
	c.proxy(leader).CloseConns()
	<-term.Done()
	require.ErrorIs(t, term.Err(), election.ErrSessionLost)
	again, err := leader.Campaign(ctx, []byte("a"))
	require.NoError(t, err)
	require.NotSame(t, term, again)
	require.Equal(t, term.ID(), again.ID(), "the same znode, kept by the same session")
	select {
	case <-otherWon:
		t.Fatal("the other contender led while the leader's session lived")
	default:
	}
}

func connect(t testing.TB, addr string) *zk.Conn {
	conn, _, err := zk.Connect([]string{addr}, sessionTimeout, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	return conn
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// Mesos's detector and tools read <path>/json.info_<10 digits> holding
// the payload; nothing else (go-zookeeper's protected "_c_<guid>-" names
// would break them).
func testWireLayoutMatchesMesos(t *testing.T, srv *zktest.Server) {
	c := newCluster(srv, zookeeper.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), electiontest.Wait)
	defer cancel()
	info := []byte(`{"id":"m1","ip":16777343,"port":5050,"pid":"master@127.0.0.1:5050","hostname":"localhost","version":"1.11.0","address":{"hostname":"localhost","ip":"127.0.0.1","port":5050}}`)
	ct := c.NewContender(t)
	term, err := ct.Campaign(ctx, info)
	require.NoError(t, err)

	conn := connect(t, srv.Addr)
	children, _, err := conn.Children(c.path)
	require.NoError(t, err)
	require.Len(t, children, 1)
	require.Regexp(t, regexp.MustCompile(`^json\.info_\d{10}$`), children[0])
	require.Equal(t, children[0], term.ID())
	data, st, err := conn.Get(c.path + "/" + children[0])
	require.NoError(t, err)
	require.Equal(t, info, data)
	require.NotZero(t, st.EphemeralOwner, "the znode must be ephemeral")
}

// Znodes that are not json.info_ (Mesos's log replicas, old protobuf
// "info_" nodes) are ignored; a json.info_ znode whose data Validate
// rejects is skipped by detectors and contenders alike, with a log line.
func testForeignAndGarbageZnodesSkipped(t *testing.T, srv *zktest.Server) {
	var logs syncBuffer
	opts := zookeeper.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Validate: func(b []byte) error {
			if !json.Valid(b) {
				return errors.New("not JSON")
			}
			return nil
		},
	}
	c := newCluster(srv, opts)
	conn := connect(t, srv.Addr)
	_, err := conn.Create("/apron", nil, 0, zk.WorldACL(zk.PermAll))
	if !errors.Is(err, zk.ErrNodeExists) {
		require.NoError(t, err)
	}
	_, err = conn.Create(c.path, nil, 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	for _, n := range []string{"/log_replicas", "/info_", "/json.info_"} {
		flags := int32(zk.FlagSequence | zk.FlagEphemeral)
		if n == "/log_replicas" {
			flags = 0
		}
		data := []byte("\x08\x01garbage")
		_, err := conn.Create(c.path+n, data, flags, zk.WorldACL(zk.PermAll))
		require.NoError(t, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), electiontest.Wait)
	defer cancel()
	d := c.NewDetector(t)
	ct := c.NewContender(t)
	term, err := ct.Campaign(ctx, []byte(`{"id":"good"}`))
	require.NoError(t, err, "the garbage znode ahead must not block the contender")
	l := d.Leader()
	for l.ID != term.ID() {
		l, err = d.Detect(ctx, l)
		require.NoError(t, err)
	}
	require.Equal(t, `{"id":"good"}`, string(l.Payload))
	require.Contains(t, logs.String(), "skipping znode with invalid data")

	_, err = ct.Campaign(ctx, []byte("not json"))
	require.Error(t, err, "a contender must not campaign with a payload its detectors would skip")
}

// An unreachable ZooKeeper is an error in the log and a Campaign that
// waits (and honours its context), then leads once ZooKeeper answers.
func testUnreachableAtStart(t *testing.T, srv *zktest.Server) {
	var logs syncBuffer
	opts := zookeeper.Options{SessionTimeout: sessionTimeout, Logger: slog.New(slog.NewTextHandler(&logs, nil))}

	// Nothing listens: connection refused.
	u, err := zookeeper.ParseURL("zk://127.0.0.1:1/apron")
	require.NoError(t, err)
	ct, err := zookeeper.NewContender(u, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err = ct.Campaign(ctx, []byte("x"))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, ct.Close())
	require.Contains(t, logs.String(), "cannot reach zookeeper")

	// A server that does not answer until it does.
	c := newCluster(srv, opts)
	p := zktest.NewProxy(t, srv.Addr)
	p.Block()
	ct, err = zookeeper.NewContender(c.url(t, p.Addr()), opts)
	require.NoError(t, err)
	defer ct.Close()
	won := make(chan error, 1)
	go func() {
		_, err := ct.Campaign(context.Background(), []byte("x"))
		won <- err
	}()
	select {
	case err := <-won:
		t.Fatalf("led without a ZooKeeper: %v", err)
	case <-time.After(time.Second):
	}
	p.Unblock()
	select {
	case err := <-won:
		require.NoError(t, err)
	case <-time.After(electiontest.Wait):
		t.Fatal("did not lead once ZooKeeper answered")
	}
}

// Digest credentials in the URL authenticate the session; the znodes are
// world-readable (Mesos tools read them) and creator-writable.
func testDigestAuth(t *testing.T, srv *zktest.Server) {
	u, err := zookeeper.ParseURL("zk://apron:secret@" + srv.Addr + "/apron/auth")
	require.NoError(t, err)
	ct, err := zookeeper.NewContender(u, zookeeper.Options{SessionTimeout: sessionTimeout})
	require.NoError(t, err)
	defer ct.Close()
	ctx, cancel := context.WithTimeout(context.Background(), electiontest.Wait)
	defer cancel()
	term, err := ct.Campaign(ctx, []byte("p"))
	require.NoError(t, err)

	conn := connect(t, srv.Addr)
	data, _, err := conn.Get("/apron/auth/" + term.ID())
	require.NoError(t, err)
	require.Equal(t, "p", string(data))
	err = conn.Delete("/apron/auth/"+term.ID(), -1)
	require.ErrorIs(t, err, zk.ErrNoAuth, "an unauthenticated client must not delete the leader's znode")
}

// BenchmarkFailover measures the time from the leader's connection being
// killed (as kill -9 of its process would: the socket closes, no
// closeSession) to the next contender being told it leads, with a 2 s
// session timeout. Run: go test -run XXX -bench Failover -benchtime 3x ./election/zookeeper
func BenchmarkFailover(b *testing.B) {
	srv := zktest.Start(b)
	opts := zookeeper.Options{SessionTimeout: sessionTimeout}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := fmt.Sprintf("/apron/bench-%d", pathSeq.Add(1))
		u1, _ := zookeeper.ParseURL("zk://" + srv.Addr + path)
		p := zktest.NewProxy(b, srv.Addr)
		up, _ := zookeeper.ParseURL("zk://" + p.Addr() + path)
		leader, err := zookeeper.NewContender(up, opts)
		require.NoError(b, err)
		ctx := context.Background()
		_, err = leader.Campaign(ctx, []byte("a"))
		require.NoError(b, err)
		standby, err := zookeeper.NewContender(u1, opts)
		require.NoError(b, err)
		won := make(chan time.Time, 1)
		go func() {
			if _, err := standby.Campaign(ctx, []byte("b")); err == nil {
				won <- time.Now()
			}
		}()
		time.Sleep(200 * time.Millisecond) // let the standby queue up
		b.StartTimer()
		start := time.Now()
		p.Block()
		p.CloseConns()
		at := <-won
		b.StopTimer()
		total += at.Sub(start)
		b.Logf("failover (kill of the leader's connection, %v session): %v", sessionTimeout, at.Sub(start))
		_ = leader.Close()
		_ = standby.Close()
		p.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Losing the ZooKeeper server a leader is connected to costs it its term
// only until the client reconnects to another server of the ensemble in
// the same session: it leads again with the same znode, and nobody else
// leads meanwhile.
func TestEnsembleServerLoss(t *testing.T) {
	zktest.RequireEnsembleTests(t)
	e := zktest.StartEnsemble(t, 3)
	u, err := zookeeper.ParseURL("zk://" + strings.Join(e.Addrs(), ",") + "/apron/ensemble")
	require.NoError(t, err)
	opts := zookeeper.Options{SessionTimeout: 4 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), electiontest.Wait)
	defer cancel()
	leader, err := zookeeper.NewContender(u, opts)
	require.NoError(t, err)
	defer leader.Close()
	term, err := leader.Campaign(ctx, []byte("a"))
	require.NoError(t, err)
	id := term.ID()
	other, err := zookeeper.NewContender(u, opts)
	require.NoError(t, err)
	defer other.Close()
	otherWon := make(chan struct{})
	go func() {
		if _, err := other.Campaign(ctx, []byte("b")); err == nil {
			close(otherWon)
		}
	}()
	for i, s := range e.Servers {
		s.Stop()
		// If the leader was connected to s it steps down, then leads again.
		term, err = leader.Campaign(ctx, []byte("a"))
		require.NoError(t, err)
		require.Equal(t, id, term.ID(), "server %d down: the session must survive", i)
		s.Restart()
	}
	select {
	case <-otherWon:
		t.Fatal("the other contender led while the leader's session lived")
	default:
	}
}

package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/internal/clock"
)

// Label is the prefix of the election's znodes, Mesos's MASTER_INFO_JSON_LABEL:
// a member's znode is Label + "_" + a ten-digit sequence number.
const Label = "json.info"

const prefix = Label + "_"

// Options tune a Contender or Detector; the zero value is usable.
type Options struct {
	// SessionTimeout is the ZooKeeper session timeout (default 10 s, as
	// Mesos's --zk_session_timeout). A leader cut off from ZooKeeper steps
	// down when its client notices (at most about two thirds of it); the
	// others take over once the server expires the session.
	SessionTimeout time.Duration
	// Validate, when set, says whether a znode's data is a payload this
	// election understands (a master passes a MasterInfo JSON check).
	// Znodes it rejects are skipped with a log line, by detectors and by
	// contenders looking for their predecessor alike, so both agree on
	// the leader.
	Validate func(data []byte) error
	// Logger gets connection trouble and skipped znodes (default: discard).
	Logger *slog.Logger
	// Clock times retries (default: the system clock).
	Clock clock.Clock
	// RetryInterval is the wait between attempts after an error that
	// reconnecting does not cure, such as a missing permission (default 1 s).
	RetryInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = time.Second
	}
	return o
}

// session is one ZooKeeper connection and what its event callback learnt.
// go-zookeeper drops events when its channel is full, so the callback
// (which sees every event) is the source of truth, and it must not block.
type session struct {
	url  URL
	opts Options
	log  *slog.Logger

	conn *zk.Conn
	wake chan struct{} // buffered 1: something changed

	mu     sync.Mutex
	state  zk.State
	epoch  uint64 // bumped at every session state change
	onLoss func() // called, without mu, when the session state leaves HasSession
}

func newSession(u URL, opts Options, onLoss func()) *session {
	return &session{url: u, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), onLoss: onLoss}
}

func (s *session) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *session) callback(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.mu.Lock()
	lost := s.state == zk.StateHasSession && ev.State != zk.StateHasSession
	s.state = ev.State
	s.epoch++
	s.mu.Unlock()
	if lost && s.onLoss != nil {
		s.onLoss()
	}
	switch ev.State {
	case zk.StateExpired:
		s.log.Warn("zookeeper session expired", "url", s.url.String())
	case zk.StateAuthFailed:
		s.log.Error("zookeeper authentication failed", "url", s.url.String())
	case zk.StateDisconnected:
		if lost {
			s.log.Warn("disconnected from zookeeper", "url", s.url.String())
		}
	}
	s.poke()
}

// current returns the state and its epoch.
func (s *session) current() (zk.State, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.epoch
}

// dial connects (go-zookeeper then reconnects by itself, and opens a new
// session after an expiry). It fails only when no server name resolves.
func (s *session) dial() error {
	conn, _, err := zk.Connect(s.url.Servers, s.opts.SessionTimeout,
		zk.WithEventCallback(s.callback), zk.WithLogger(zkLogger{s.log, s.url}))
	if err != nil {
		return fmt.Errorf("%w: zookeeper %s: %v", election.ErrUnavailable, s.url, err)
	}
	s.conn = conn
	return nil
}

// ready authenticates (once: go-zookeeper sends the credentials again on
// every new connection and session) and makes sure the election's path
// exists.
func (s *session) ready(authed *bool) error {
	if s.url.User != "" && !*authed {
		if err := s.conn.AddAuth("digest", []byte(s.url.User+":"+s.url.Password)); err != nil {
			return fmt.Errorf("zookeeper %s: authenticating: %w", s.url, err)
		}
		*authed = true
	}
	return s.ensurePath()
}

func (s *session) acl() []zk.ACL {
	if s.url.User != "" {
		// Mesos's EVERYONE_READ_CREATOR_ALL.
		return []zk.ACL{{Perms: zk.PermRead, Scheme: "world", ID: "anyone"}, {Perms: zk.PermAll, Scheme: "auth", ID: ""}}
	}
	return zk.WorldACL(zk.PermAll)
}

func (s *session) ensurePath() error {
	if s.url.Path == "/" {
		return nil
	}
	ok, _, err := s.conn.Exists(s.url.Path)
	if err != nil || ok {
		return err
	}
	p := ""
	for _, part := range strings.Split(s.url.Path[1:], "/") {
		p += "/" + part
		_, err := s.conn.Create(p, nil, 0, s.acl())
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zookeeper %s: creating %s: %w", s.url, p, err)
		}
	}
	return nil
}

func (s *session) child(name string) string {
	if s.url.Path == "/" {
		return "/" + name
	}
	return s.url.Path + "/" + name
}

// member is one json.info_ znode.
type member struct {
	name string
	seq  int64
}

// members lists the election's znodes, lowest sequence first, ignoring
// znodes of other kinds (Mesos's log replicas, protobuf "info_" nodes).
func members(children []string) []member {
	var ms []member
	for _, c := range children {
		rest, ok := strings.CutPrefix(c, prefix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		ms = append(ms, member{name: c, seq: n})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	return ms
}

func (s *session) valid(name string, data []byte) bool {
	if s.opts.Validate == nil {
		return true
	}
	if err := s.opts.Validate(data); err != nil {
		s.log.Warn("skipping znode with invalid data", "znode", s.child(name), "err", err)
		return false
	}
	return true
}

// transient reports errors that a reconnect cures: wait for the next
// session event rather than a retry timer.
func transient(err error) bool {
	return errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrConnectionClosed) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved) ||
		errors.Is(err, zk.ErrClosing)
}

type zkLogger struct {
	log *slog.Logger
	url URL
}

func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.HasPrefix(msg, "failed to connect") {
		l.log.Warn("cannot reach zookeeper, retrying", "url", l.url.String(), "err", msg)
		return
	}
	l.log.Debug("zk: "+msg, "url", l.url.String())
}

// sleep waits d on the injected clock, or until ctx is done or wake fires.
func sleep(ctx context.Context, c clock.Clock, d time.Duration, wake <-chan struct{}) {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
	case <-ctx.Done():
	case <-wake:
	}
}

// wait blocks until the session changes, a watch fires, the retry
// interval passes (when retry), extra fires, or ctx is done (false).
func wait(ctx context.Context, s *session, watch, watch2 <-chan zk.Event, retry bool, extra ...<-chan time.Time) bool {
	var timeout <-chan time.Time
	if retry {
		t := s.opts.Clock.NewTimer(s.opts.RetryInterval)
		defer t.Stop()
		timeout = t.C()
	}
	var x <-chan time.Time
	if len(extra) > 0 {
		x = extra[0]
	}
	select {
	case <-s.wake:
	case <-watch:
	case <-watch2:
	case <-timeout:
	case <-x:
	case <-ctx.Done():
		return false
	}
	return true
}

// Dial opens a connection of its own to u's servers, authenticated as u's
// user when the URL names one, for other uses of the election's ensemble
// (a master keeps its registry there). It waits for a session until ctx
// ends (the log says while ZooKeeper cannot be reached); go-zookeeper then
// reconnects by itself. The caller closes the connection.
func Dial(ctx context.Context, u URL, opts Options) (*zk.Conn, error) {
	opts = opts.withDefaults()
	connected := make(chan struct{})
	var once sync.Once
	conn, _, err := zk.Connect(u.Servers, opts.SessionTimeout, zk.WithLogger(zkLogger{opts.Logger, u}),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.State == zk.StateHasSession {
				once.Do(func() { close(connected) })
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("%w: zookeeper %s: %v", election.ErrUnavailable, u, err)
	}
	select {
	case <-connected:
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("%w: zookeeper %s: %w", election.ErrUnavailable, u, ctx.Err())
	}
	if u.User != "" {
		if err := conn.AddAuth("digest", []byte(u.User+":"+u.Password)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("zookeeper %s: authenticating: %w", u, err)
		}
	}
	return conn, nil
}

// ACL is the ACL of the znodes created under u: readable by everyone and
// writable by their creator only when u names a user (Mesos's
// EVERYONE_READ_CREATOR_ALL), open to all otherwise.
func ACL(u URL) []zk.ACL {
	s := session{url: u}
	return s.acl()
}

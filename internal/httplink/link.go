// Package httplink is the client half of Apron's links over HTTP: the
// scheduler's link to a master (/api/v1/scheduler) and the agent's
// (/apron/v1/agent). A Link turns the Mesos-style HTTP API back into the
// shape of the in-process links: Subscribe returns a stream ID and a
// bounded channel of events that is closed when the stream ends, and Call
// sends any other call on behalf of a stream.
//
// A Link knows several candidate masters, of which one leads. Subscribe
// tries first the master it last subscribed to, then the candidates in
// order. A master that is not the leader answers 307 with the leader's
// Location: the Link subscribes there, with the same call, up to
// MaxRedirects times (it does not let net/http replay the request, so the
// hop is visible and bounded). A master that refuses the connection,
// answers 503 (no leader known, or stopping) or fails on its side (5xx,
// 404) is skipped for the next candidate. A 4xx answer other than 404 is
// about the call, which every master would refuse alike: it is returned at
// once. Calls go to the master the stream was opened with, carrying its
// Mesos-Stream-Id.
//
// # Following an election
//
// With a Detector (Mesos's zk:// master detection), Subscribe tries the
// master the detector names first, then the static URLs as above; with no
// leader known and no static URL it fails at once with ErrNoMaster, and
// the caller retries after its backoff, as Mesos's drivers wait for a
// detected master. A leader whose payload does not name a master is
// skipped with a log line. Each open stream is watched: when the detector
// names a new leader that is not the master the stream is on, the stream
// ends (its events channel closes) and the caller subscribes again, which
// lands on the new leader, as Mesos's drivers re-register with a newly
// detected master. A detector that knows no leader for a while (the
// leader's znode is gone, or the detector lost ZooKeeper) ends no stream:
// a master that stops leading ends its streams itself, and a client cut
// off from ZooKeeper should not cut off a master that still leads.
//
// The Link starts no goroutine of its own: a stream's watcher lives as
// long as the stream, so a Link needs no Close. The Detector is the
// caller's, who closes it after the last use of the Link.
package httplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/internal/httpapi"
)

var (
	// ErrNoStream: a call on behalf of a stream this Link does not have
	// open (never opened, or ended). Nothing was sent.
	ErrNoStream = errors.New("httplink: stream not open")
	// ErrNoMaster: no candidate master accepted the subscription; the
	// error wraps each candidate's failure, or says that no leading
	// master is detected when there was none to try. It is not final:
	// subscribe again later.
	ErrNoMaster = errors.New("httplink: no master accepted the subscription")
	// errNoLeader is the cause ErrNoMaster wraps when there was nobody
	// to try: no detected leader and no static URL.
	errNoLeader = errors.New("no leading master is detected (and no static master URL is configured)")
	// ErrBadURL: a candidate URL is not an http or https URL with a host.
	ErrBadURL = errors.New("httplink: bad master URL")
)

// Defaults of Config.
const (
	DefaultMaxRedirects = 4
	DefaultBuffer       = 64
)

// Config configures a Link.
type Config struct {
	// URLs are the candidate masters, like "http://10.0.0.1:5050" (a URL
	// without scheme gets http://; a path is kept as a prefix). They may
	// be empty when Detector is set; then they are the fallbacks tried
	// after the detected leader.
	URLs []string
	// Detector, when set, names the leading master (see the package
	// documentation). The Link only reads it; the caller closes it.
	Detector election.Detector
	// LeaderURL turns a leader's payload into the master's base URL
	// ("http://10.0.0.2:5050"). Default: the payload is a MasterInfo as
	// JSON, as Mesos and Apron masters campaign with (DefaultLeaderURL).
	LeaderURL func(payload []byte) (string, error)
	// Path is the endpoint's path, appended to each URL
	// ("/api/v1/scheduler").
	Path string
	// Client posts the calls; its HTTP client must not follow redirects
	// and must have no Timeout, which would cut streams (the zero Client
	// is right).
	Client httpapi.Client
	// MaxRedirects bounds the 307s followed from one candidate.
	MaxRedirects int
	// Buffer is the capacity of an events channel. The goroutine reading
	// the stream blocks when it is full, which leaves the events in the
	// connection and, past its buffers, in the master's own bounded queue:
	// the master decides when a subscriber is too slow.
	Buffer int
	// Logger gets the reasons streams end; default: discard.
	Logger *slog.Logger
	// HTTPS says the client speaks TLS (Client's transport carries its
	// configuration): URLs without a scheme, the masters a Detector
	// names (MasterInfo has no scheme) and redirects to http:// URLs get
	// https://, as Mesos's drivers use https for every master once
	// LIBPROCESS_SSL_ENABLED is on. A URL given as http:// stays so.
	HTTPS bool
}

// Link is the client of one endpoint on a set of candidate masters. E is
// the event message type (schedulerpb.Event), PE its pointer type. It is
// safe for concurrent use.
type Link[E any, PE interface {
	*E
	proto.Message
}] struct {
	cfg        Config
	candidates []string // endpoint URLs

	mu      sync.Mutex
	last    string                 // endpoint of the last subscription
	streams map[string]*openStream // by stream ID
}

type openStream struct{ endpoint string }

// New checks cfg and returns a Link.
func New[E any, PE interface {
	*E
	proto.Message
}](cfg Config) (*Link[E, PE], error) {
	if len(cfg.URLs) == 0 && cfg.Detector == nil {
		return nil, fmt.Errorf("%w: no URL and no detector", ErrBadURL)
	}
	if cfg.LeaderURL == nil {
		cfg.LeaderURL = DefaultLeaderURL
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = DefaultMaxRedirects
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Link[E, PE]{cfg: cfg, streams: map[string]*openStream{}}
	seen := map[string]bool{}
	for _, raw := range cfg.URLs {
		if cfg.HTTPS && !strings.Contains(raw, "://") {
			raw = "https://" + strings.TrimSpace(raw)
		}
		ep, err := Endpoint(raw, cfg.Path)
		if err != nil {
			return nil, err
		}
		if !seen[ep] {
			seen[ep] = true
			l.candidates = append(l.candidates, ep)
		}
	}
	return l, nil
}

// DefaultLeaderURL reads a leader's payload as a MasterInfo in JSON, the
// way Mesos and Apron masters publish themselves, and returns its base URL.
func DefaultLeaderURL(payload []byte) (string, error) {
	info, err := codec.ParseMasterInfo(payload)
	if err != nil {
		return "", err
	}
	return codec.MasterURL(info)
}

// Endpoint joins a master's base URL and an endpoint path.
func Endpoint(base, path string) (string, error) {
	s := strings.TrimSpace(base)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadURL, base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: %q (want http://host:port)", ErrBadURL, base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	return u.String(), nil
}

// Subscribe opens a stream with call (see the package documentation for
// the choice of master). The channel is closed when the stream ends: the
// master ended it, the connection broke, an event did not decode, or ctx
// was cancelled, which is how the caller ends it.
func (l *Link[E, PE]) Subscribe(ctx context.Context, call proto.Message) (string, <-chan PE, error) {
	var leader election.Leader
	if l.cfg.Detector != nil {
		// Read before subscribing: a change after this point is seen by
		// the stream's watcher, which starts from this leader.
		leader = l.cfg.Detector.Leader()
	}
	order := l.order(leader)
	if len(order) == 0 {
		return "", nil, fmt.Errorf("%w: %w", ErrNoMaster, errNoLeader)
	}
	var errs []error
	for _, ep := range order {
		sctx, cancel := context.WithCancel(ctx)
		s, at, err := l.subscribeAt(sctx, ep, call)
		if err == nil {
			id, events := l.serve(sctx, cancel, s, at, leader)
			return id, events, nil
		}
		cancel()
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		if !tryNext(err) {
			return "", nil, err
		}
		l.cfg.Logger.Debug("master skipped", "endpoint", ep, "err", err)
		errs = append(errs, err)
	}
	return "", nil, fmt.Errorf("%w: %w", ErrNoMaster, errors.Join(errs...))
}

// order is the detected leader, then the last master subscribed to, then
// the candidates.
func (l *Link[E, PE]) order(leader election.Leader) []string {
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	var out []string
	add := func(ep string) {
		if ep != "" && !slices.Contains(out, ep) {
			out = append(out, ep)
		}
	}
	if leader.Known() {
		add(l.leaderEndpoint(leader))
	}
	if len(out) > 0 || len(l.candidates) > 0 {
		// Without a detected leader, the last master is tried only among
		// static candidates: with a detector alone, it is a master that
		// no longer leads.
		add(last)
	}
	for _, c := range l.candidates {
		add(c)
	}
	return out
}

// leaderEndpoint is the endpoint on the master leader names, or "" (with a
// log line) when its payload does not name one.
func (l *Link[E, PE]) leaderEndpoint(leader election.Leader) string {
	base, err := l.cfg.LeaderURL(leader.Payload)
	if err == nil {
		base = l.secure(base)
		var ep string
		if ep, err = Endpoint(base, l.cfg.Path); err == nil {
			return ep
		}
	}
	l.cfg.Logger.Warn("detected leader skipped: its payload names no master", "leader", leader.ID, "err", err)
	return ""
}

// subscribeAt subscribes at ep, following redirects; it returns the
// stream and the endpoint that accepted it.
func (l *Link[E, PE]) subscribeAt(ctx context.Context, ep string, call proto.Message) (*httpapi.Stream, string, error) {
	for hops := 0; ; hops++ {
		s, err := l.cfg.Client.Subscribe(ctx, ep, call)
		var re *httpapi.RedirectError
		if !errors.As(err, &re) {
			if err != nil {
				var he *httpapi.Error
				if errors.As(err, &he) {
					err = fmt.Errorf("%s: %w", ep, err)
				}
			}
			return s, ep, err
		}
		if re.Location == "" {
			return nil, "", fmt.Errorf("%s: 307 without Location: %w", ep, err)
		}
		if hops >= l.cfg.MaxRedirects {
			return nil, "", fmt.Errorf("%s: more than %d redirects (the last to %s): %w", ep, l.cfg.MaxRedirects, re.Location, err)
		}
		to := l.secure(re.Location)
		l.cfg.Logger.Info("master redirected the subscription to the leader", "from", ep, "to", to)
		ep = to
	}
}

// secure turns an http:// URL (a detected master, a redirect) into
// https:// when the Link speaks TLS.
func (l *Link[E, PE]) secure(u string) string {
	if l.cfg.HTTPS && strings.HasPrefix(u, "http://") {
		return "https://" + strings.TrimPrefix(u, "http://")
	}
	return u
}

// tryNext says whether a failed subscription should be tried on the next
// candidate: yes for connection errors, redirect loops and failures of
// the master; no for a refusal of the call itself.
func tryNext(err error) bool {
	var he *httpapi.Error
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == http.StatusNotFound || he.Status < 400
	}
	return true
}

// serve records the stream and starts the goroutine that reads it, and
// with a detector the one that ends it when another master leads; cancel
// ends ctx, the stream's own context.
func (l *Link[E, PE]) serve(ctx context.Context, cancel context.CancelFunc, s *httpapi.Stream, ep string, leader election.Leader) (string, <-chan PE) {
	open := &openStream{endpoint: ep}
	l.mu.Lock()
	l.last = ep
	l.streams[s.ID] = open
	l.mu.Unlock()
	if l.cfg.Detector != nil {
		go l.watch(ctx, cancel, s.ID, ep, leader)
	}
	events := make(chan PE, l.cfg.Buffer)
	go func() {
		defer close(events)
		defer cancel() // stops the watcher
		defer s.Close()
		// Forgotten before the channel closes, so a caller who saw it
		// closed gets ErrNoStream for the stream's calls.
		defer l.forget(s.ID, open)
		for {
			ev := PE(new(E))
			if err := s.Next(ev); err != nil {
				switch {
				case ctx.Err() != nil:
				case errors.Is(err, io.EOF):
					l.cfg.Logger.Info("master ended the stream", "endpoint", ep, "stream_id", s.ID)
				default:
					l.cfg.Logger.Warn("stream broken", "endpoint", ep, "stream_id", s.ID, "err", err)
				}
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s.ID, events
}

// watch ends the stream id on ep (by cancel) when the detector names a
// leader that is not ep's master; it returns when ctx ends (the stream
// ended) or the detector is closed.
func (l *Link[E, PE]) watch(ctx context.Context, cancel context.CancelFunc, id, ep string, leader election.Leader) {
	for {
		next, err := l.cfg.Detector.Detect(ctx, leader)
		if err != nil {
			if ctx.Err() == nil {
				l.cfg.Logger.Warn("master detector stopped; the stream is no longer watched", "stream_id", id, "err", err)
			}
			return
		}
		leader = next
		if !leader.Known() {
			l.cfg.Logger.Info("no leading master detected; the stream stays open", "endpoint", ep, "stream_id", id)
			continue
		}
		at := l.leaderEndpoint(leader)
		if at == "" || at == ep {
			continue
		}
		l.cfg.Logger.Info("a new master leads; ending the stream to subscribe there", "endpoint", ep, "stream_id", id, "leader", at)
		cancel()
		return
	}
}

func (l *Link[E, PE]) forget(id string, s *openStream) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams[id] == s {
		delete(l.streams, id)
	}
}

// Call sends call on behalf of the open stream streamID, to the master
// that opened it. A non-2xx answer is an *httpapi.Error (or
// *httpapi.RedirectError for 307); a stream not open gives ErrNoStream.
func (l *Link[E, PE]) Call(ctx context.Context, streamID string, call proto.Message) error {
	l.mu.Lock()
	s := l.streams[streamID]
	l.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %q", ErrNoStream, streamID)
	}
	_, err := l.cfg.Client.Call(ctx, s.endpoint, streamID, call)
	return err
}

// CallBatch is Call for several calls in one request (see
// httpapi.Client.CallBatch); the endpoint must take batches.
func (l *Link[E, PE]) CallBatch(ctx context.Context, streamID string, calls []proto.Message) error {
	l.mu.Lock()
	s := l.streams[streamID]
	l.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %q", ErrNoStream, streamID)
	}
	return l.cfg.Client.CallBatch(ctx, s.endpoint, streamID, calls)
}

// NoRedirects returns a copy of c (nil: http.DefaultClient) that hands 307
// answers back, as a Link needs to see them.
func NoRedirects(c *http.Client) *http.Client {
	if c == nil {
		return httpapi.NoRedirects
	}
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// LeaderChanges returns a channel that receives a value each time the
// Link's detector reports a new leader, until ctx ends; without a detector
// it is closed at once. The drivers use it to start their backoff over
// when a new master is elected, as Mesos's do on a detection. A change is
// one from the leader known when LeaderChanges is called.
func (l *Link[E, PE]) LeaderChanges(ctx context.Context) <-chan struct{} {
	out := make(chan struct{})
	d := l.cfg.Detector
	if d == nil {
		close(out)
		return out
	}
	last := d.Leader() // now, not when the goroutine gets to run
	go func() {
		defer close(out)
		for {
			leader, err := d.Detect(ctx, last)
			if err != nil {
				return
			}
			last = leader
			if !leader.Known() {
				continue
			}
			select {
			case out <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

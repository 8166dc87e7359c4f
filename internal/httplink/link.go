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
package httplink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/internal/httpapi"
)

var (
	// ErrNoStream: a call on behalf of a stream this Link does not have
	// open (never opened, or ended). Nothing was sent.
	ErrNoStream = errors.New("httplink: stream not open")
	// ErrNoMaster: no candidate master accepted the subscription; the
	// error wraps each candidate's failure.
	ErrNoMaster = errors.New("httplink: no master accepted the subscription")
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
	// without scheme gets http://; a path is kept as a prefix).
	URLs []string
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
	if len(cfg.URLs) == 0 {
		return nil, fmt.Errorf("%w: no URL", ErrBadURL)
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
	var errs []error
	for _, ep := range l.order() {
		s, at, err := l.subscribeAt(ctx, ep, call)
		if err == nil {
			id, events := l.serve(ctx, s, at)
			return id, events, nil
		}
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

// order is the last master subscribed to, then the candidates.
func (l *Link[E, PE]) order() []string {
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	if last == "" {
		return l.candidates
	}
	out := []string{last}
	for _, c := range l.candidates {
		if c != last {
			out = append(out, c)
		}
	}
	return out
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
		l.cfg.Logger.Info("master redirected the subscription to the leader", "from", ep, "to", re.Location)
		ep = re.Location
	}
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

// serve records the stream and starts the goroutine that reads it.
func (l *Link[E, PE]) serve(ctx context.Context, s *httpapi.Stream, ep string) (string, <-chan PE) {
	open := &openStream{endpoint: ep}
	l.mu.Lock()
	l.last = ep
	l.streams[s.ID] = open
	l.mu.Unlock()
	events := make(chan PE, l.cfg.Buffer)
	go func() {
		defer close(events)
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

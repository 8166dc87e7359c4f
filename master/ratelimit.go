package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/httpapi"
)

// RateLimits are Mesos's --rate_limits: how many scheduler API requests
// per second each principal may make. A principal listed with a QPS is
// held to it; one listed without is not limited; the others (and clients
// that did not authenticate) share the aggregate default, when there is
// one. A request over its principal's rate waits for its turn, as Mesos
// queues a throttled framework's messages; once Capacity requests wait,
// the next is answered 429 (Mesos drops the message: "capacity
// exceeded"). Capacity nil: no bound on the waiting.
type RateLimits struct {
	Limits                   []RateLimit `json:"limits"`
	AggregateDefaultQPS      *float64    `json:"aggregate_default_qps,omitempty"`
	AggregateDefaultCapacity *uint64     `json:"aggregate_default_capacity,omitempty"`
}

// RateLimit is one principal's limit.
type RateLimit struct {
	Principal string   `json:"principal"`
	QPS       *float64 `json:"qps,omitempty"`
	Capacity  *uint64  `json:"capacity,omitempty"`
}

// ParseRateLimits parses Mesos's --rate_limits JSON, with Mesos's checks:
// a principal appears once, and a QPS is positive.
func ParseRateLimits(data []byte) (*RateLimits, error) {
	var rl RateLimits
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rl); err != nil {
		return nil, fmt.Errorf("rate limits: invalid JSON: %w", err)
	}
	if err := rl.validate(); err != nil {
		return nil, err
	}
	return &rl, nil
}

func (rl *RateLimits) validate() error {
	seen := map[string]bool{}
	for _, l := range rl.Limits {
		switch {
		case l.Principal == "":
			return errors.New("rate limits: a limit without a principal")
		case seen[l.Principal]:
			return fmt.Errorf("rate limits: duplicate principal %s", l.Principal)
		case l.QPS != nil && !(*l.QPS > 0 && !math.IsInf(*l.QPS, 1)):
			return fmt.Errorf("rate limits: invalid qps: %v. It must be a positive number", *l.QPS)
		}
		seen[l.Principal] = true
	}
	if q := rl.AggregateDefaultQPS; q != nil && !(*q > 0 && !math.IsInf(*q, 1)) {
		return fmt.Errorf("rate limits: invalid aggregate_default_qps: %v. It must be a positive number", *q)
	}
	return nil
}

// ErrRateLimited: a client is over its rate limit with too many requests
// waiting already, or has too many requests open (429).
var ErrRateLimited = errors.New("master: rate limited")

// limiter spaces requests 1/qps apart (Mesos's RateLimiter: no bursts)
// and bounds how many wait.
type limiter struct {
	interval time.Duration
	capacity int // -1: no bound
	mu       sync.Mutex
	next     time.Time // when the next request may go
	waiting  int
}

func newLimiter(qps float64, capacity *uint64) *limiter {
	l := &limiter{interval: time.Duration(float64(time.Second) / qps), capacity: -1}
	if capacity != nil {
		l.capacity = int(min(*capacity, math.MaxInt32))
	}
	return l
}

// acquire waits for the request's turn; it fails at once when capacity
// requests wait already, and when ctx ends first.
func (l *limiter) acquire(ctx context.Context, clk clock.Clock) error {
	l.mu.Lock()
	now := clk.Now()
	if l.next.Before(now) {
		l.next = now
	}
	delay := l.next.Sub(now)
	if delay > 0 && l.capacity >= 0 && l.waiting >= l.capacity {
		l.mu.Unlock()
		return fmt.Errorf("%w: capacity(%d) exceeded", ErrRateLimited, l.capacity)
	}
	l.next = l.next.Add(l.interval)
	if delay <= 0 {
		l.mu.Unlock()
		return nil
	}
	l.waiting++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}()
	t := clk.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// admission holds the scheduler API's rate limiters and counts each
// client's open requests. It belongs to the HTTP shell, not the state
// machine: it decides only whether a request reaches the master.
type admission struct {
	clk        clock.Clock
	limiters   map[string]*limiter // by principal; nil value: not limited
	def        *limiter            // the aggregate default, or nil
	maxPerPeer int                 // 0: no bound
	mu         sync.Mutex
	open       map[string]int // by client
}

func newAdmission(cfg *Config) *admission {
	a := &admission{clk: cfg.Clock, maxPerPeer: cfg.MaxClientRequests, open: map[string]int{}}
	if rl := cfg.RateLimits; rl != nil {
		a.limiters = map[string]*limiter{}
		for _, l := range rl.Limits {
			a.limiters[l.Principal] = nil
			if l.QPS != nil {
				a.limiters[l.Principal] = newLimiter(*l.QPS, l.Capacity)
			}
		}
		if rl.AggregateDefaultQPS != nil {
			a.def = newLimiter(*rl.AggregateDefaultQPS, rl.AggregateDefaultCapacity)
		}
	}
	return a
}

// client names who sent r: its authenticated principal, else its IP
// address.
func client(r *http.Request) (key, principal string) {
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		return "principal " + p, p
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "address " + host, ""
}

// wrap applies the limits to h: at most MaxClientRequests requests open
// per client (its subscriptions and calls in flight), and the rate
// limits; refusals answer 429 and reach nothing.
func (a *admission) wrap(h http.Handler) http.Handler {
	if a.limiters == nil && a.def == nil && a.maxPerPeer == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, principal := client(r)
		if a.maxPerPeer > 0 {
			a.mu.Lock()
			if a.open[key] >= a.maxPerPeer {
				a.mu.Unlock()
				httpapi.WriteError(w, httpapi.Errorf(http.StatusTooManyRequests, "too many requests open for %s (at most %d)", key, a.maxPerPeer))
				return
			}
			a.open[key]++
			a.mu.Unlock()
			defer func() {
				a.mu.Lock()
				if a.open[key]--; a.open[key] == 0 {
					delete(a.open, key)
				}
				a.mu.Unlock()
			}()
		}
		l, listed := a.limiters[principal]
		if principal == "" || !listed {
			l = a.def
		}
		if l != nil {
			if err := l.acquire(r.Context(), a.clk); err != nil {
				if errors.Is(err, ErrRateLimited) {
					httpapi.WriteError(w, httpapi.Errorf(http.StatusTooManyRequests, "rate limit of %s: %v", key, err))
				}
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

package scheduler

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/internal/clock"
)

// Defaults for the re-subscription backoff. The first retry after a lost
// stream comes quickly, so a master failover costs little; the cap keeps a
// framework close behind a master that is coming back, as Mesos's executor
// driver does with its 2 s subscription backoff.
const (
	DefaultBackoffMin = 250 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
)

// missedHeartbeats is how many heartbeat intervals of silence make the driver
// give up on a stream, as Mesos's scheduler API documentation advises.
const missedHeartbeats = 5

// defaultHeartbeat is the interval assumed until SUBSCRIBED says otherwise
// (Mesos masters' default), so a master that never answers a SUBSCRIBE is
// noticed too.
const defaultHeartbeat = 15 * time.Second

// maxHeartbeat bounds the interval a master may announce, so a nonsense
// value cannot overflow a time.Duration.
const maxHeartbeat = 24 * time.Hour

// Option configures a Driver.
type Option func(*config)

type config struct {
	master          Master
	clock           clock.Clock
	log             *slog.Logger
	explicitAcks    bool
	backoffMin      time.Duration
	backoffMax      time.Duration
	suppressedRoles []string

	// WithMasterURL's and WithMasterDetector's link, built by NewDriver
	// once every option is in.
	masterURLs []string // nil: neither option given
	detector   election.Detector
	json       bool
	httpClient *http.Client
	credential *auth.Credential // WithCredential's
	tls        *tls.Config      // WithTLS's
}

// WithMaster sets the master to subscribe to: the in-process
// *master.Master or any other Master. It, WithMasterURL or
// WithMasterDetector is required; WithMaster replaces the other two, and
// they replace it: the last one given counts.
func WithMaster(m Master) Option {
	return func(c *config) { c.master, c.masterURLs, c.detector = m, nil, nil }
}

// WithClock sets the clock used for heartbeat timeouts and backoff
// (default clock.Real()).
func WithClock(c clock.Clock) Option { return func(cfg *config) { cfg.clock = c } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithExplicitAcknowledgements turns off implicit acknowledgements: the
// framework must call AcknowledgeStatusUpdate for every update that carries
// a uuid, or the agent keeps resending it.
func WithExplicitAcknowledgements() Option { return func(c *config) { c.explicitAcks = true } }

// WithBackoff sets the re-subscription backoff: the first retry waits min,
// each failed attempt doubles the wait up to max, and a successful
// subscription resets it. Requires 0 < min <= max.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = min, max }
}

// WithSuppressedRoles subscribes with offers suppressed for these roles, as
// SuppressOffers would right after subscribing, but without a window in
// which offers arrive.
func WithSuppressedRoles(roles ...string) Option {
	return func(c *config) { c.suppressedRoles = append([]string(nil), roles...) }
}

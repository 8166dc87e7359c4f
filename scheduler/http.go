package scheduler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/httplink"
)

// SchedulerPath is the master's endpoint of the scheduler API (Mesos v1).
const SchedulerPath = "/api/v1/scheduler"

// WithMasterURL connects the driver to a master over the Mesos v1
// scheduler HTTP API (POST <url>/api/v1/scheduler), for an Apron or Apache
// Mesos master on another machine. urls are candidate masters, like
// "http://10.0.0.1:5050" (http:// is assumed when there is no scheme):
// SUBSCRIBE tries the master the driver last subscribed to, then each
// candidate in order, skipping those that refuse the connection or answer
// 503, and follows a standby's 307 to the leader (a few hops at most),
// subscribing there again rather than replaying the request; every other
// call goes to the master that accepted the SUBSCRIBE, with its
// Mesos-Stream-Id. When no master accepts, the driver retries after its
// backoff.
//
// The master's answers map to the driver's errors: 403 (the framework is
// not subscribed) and 307 on a call (it no longer leads) to
// ErrNotConnected, after which the driver subscribes again; 400 to
// ErrInvalid, which for a SUBSCRIBE aborts the driver, as the master would
// refuse it every time; other failures keep the status in the message. A
// stream that ends also makes the driver subscribe again.
//
// Calls are protobuf-encoded unless WithJSON is given. WithMasterURL and
// WithMaster replace each other: the last one given counts. With
// WithMasterDetector, urls are the fallbacks tried after the detected
// leader.
func WithMasterURL(urls ...string) Option {
	return func(c *config) {
		c.master = nil
		c.masterURLs = append([]string{}, urls...)
	}
}

// WithMasterDetector connects the driver over HTTP, as WithMasterURL does,
// to the master d names as the leader: Mesos's master detection, where
// d is typically a zookeeper.Detector on the masters' zk:// URL (each
// master campaigns with its MasterInfo as JSON, the payload d must carry).
// SUBSCRIBE goes to the detected leader first; when another master comes
// to lead, the driver ends its stream (the Scheduler sees Disconnected)
// and subscribes there, with its FrameworkID, as Mesos's driver does on a
// newly detected master, so the framework needs a failover_timeout that
// covers a master failover. While no leader is known the driver retries
// after its backoff, without giving up. A detector that knows no leader
// for a while does not end a stream: a master that stops leading ends
// its streams itself.
//
// WithMasterDetector and WithMasterURL combine: URLs given with
// WithMasterURL are static fallbacks, tried after the detected leader, or
// when none is detected. WithMaster replaces both. The driver does not
// close d; the caller does, after Run has returned.
func WithMasterDetector(d election.Detector) Option {
	return func(c *config) {
		c.master = nil
		c.detector = d
		if c.masterURLs == nil {
			// Non-nil: NewDriver builds the HTTP link.
			c.masterURLs = []string{}
		}
	}
}

// WithJSON makes WithMasterURL's client speak application/json instead of
// application/x-protobuf.
func WithJSON() Option { return func(c *config) { c.json = true } }

// WithHTTPClient sets the HTTP client WithMasterURL's link uses (for TLS,
// proxies, authentication in a RoundTripper...). The driver uses a copy
// that does not follow redirects itself; the client must have no Timeout,
// which would cut the event stream: bound calls with their context.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithTLS makes WithMasterURL's and WithMasterDetector's link speak TLS
// with cfg (its RootCAs or VerifyConnection verify the master; its
// certificate, when the master requires one from clients): master URLs
// written host:port, the masters a detector names (a MasterInfo carries
// no scheme) and standbys' redirects to http:// URLs then get https://,
// as Mesos's driver speaks https to every master once
// LIBPROCESS_SSL_ENABLED is on; a URL written http:// stays so. A
// standby's protocol-relative redirect ("//host:port") keeps https. The
// configuration goes into a copy of WithHTTPClient's transport, which
// must then be an *http.Transport (or nil, for net/http's default):
// NewDriver fails with ErrInvalid otherwise. With another RoundTripper,
// leave WithTLS out, make the RoundTripper speak TLS, and give
// WithMasterURL https:// URLs. A cfg whose callbacks read reloaded
// files (Apron's internal/tlsconfig does) renews certificates without
// restarting the driver.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// withTLS is hc (nil: net/http's default) with its transport speaking
// TLS with cfg.
func withTLS(hc *http.Client, cfg *tls.Config) (*http.Client, error) {
	var cp http.Client
	if hc != nil {
		cp = *hc
	}
	var tr *http.Transport
	switch t := cp.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, fmt.Errorf("%w: WithTLS needs WithHTTPClient's transport to be an *http.Transport, not %T", ErrInvalid, t)
	}
	tr.TLSClientConfig = cfg
	cp.Transport = tr
	return &cp, nil
}

// httpMaster is a Master reached over HTTP.
type httpMaster struct {
	link *httplink.Link[schedulerpb.Event, *schedulerpb.Event]
}

// WithCredential authenticates the driver to the master with cred, as
// HTTP Basic on every request the HTTP link makes (SUBSCRIBE and every
// call, to whichever master leads: after a redirect or a leader change
// too), as a Mesos master with --authenticate_frameworks and the "basic"
// authenticator expects. The master then sets FrameworkInfo.principal to
// cred.Principal when the framework leaves it empty, and refuses one that
// differs. Read the secret from a file (auth.ReadCredential), not from a
// command line that ps shows. It applies to WithMasterURL and
// WithMasterDetector; the in-process link of WithMaster is not
// authenticated (the master trusts its own process).
func WithCredential(cred auth.Credential) Option {
	return func(c *config) { c.credential = &cred }
}

func newHTTPMaster(cfg *config) (*httpMaster, error) {
	hc := cfg.httpClient
	if cfg.tls != nil {
		var err error
		if hc, err = withTLS(hc, cfg.tls); err != nil {
			return nil, err
		}
	}
	if cfg.credential != nil {
		hc = auth.WithBasic(hc, *cfg.credential)
	}
	client := httpapi.Client{Codec: codec.Protobuf, HTTP: httplink.NoRedirects(hc)}
	if cfg.json {
		client.Codec = codec.JSON
	}
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	link, err := httplink.New[schedulerpb.Event](httplink.Config{
		URLs:     cfg.masterURLs,
		Detector: cfg.detector,
		Path:     SchedulerPath,
		Client:   client,
		Logger:   log,
		HTTPS:    cfg.tls != nil,
	})
	if err != nil {
		return nil, err
	}
	return &httpMaster{link: link}, nil
}

func (m *httpMaster) SubscribeScheduler(ctx context.Context, call *schedulerpb.Call) (string, <-chan *schedulerpb.Event, error) {
	id, events, err := m.link.Subscribe(ctx, call)
	var he *httpapi.Error
	if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
		// Not authenticated, or not authorized to register: the master
		// would refuse it every time, so the driver aborts, as Mesos's
		// does when its authentication fails.
		return "", nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return "", nil, httpError(err)
	}
	return id, events, nil
}

// LeaderChanges tells the driver of each newly detected leader (see
// leaderChanger).
func (m *httpMaster) LeaderChanges(ctx context.Context) <-chan struct{} {
	return m.link.LeaderChanges(ctx)
}

func (m *httpMaster) SchedulerCall(ctx context.Context, streamID string, call *schedulerpb.Call) error {
	return httpError(m.link.Call(ctx, streamID, call))
}

// httpError maps an HTTP failure to the driver's errors.
func httpError(err error) error {
	var he *httpapi.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, httplink.ErrNoStream), errors.Is(err, httpapi.ErrRedirect):
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	case errors.As(err, &he) && he.Status == http.StatusForbidden && strings.Contains(he.Message, "Not authorized"):
		// A refusal of the authorizer (Apron's and Mesos's masters word
		// it so), not a lost subscription: the stream goes on.
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case errors.As(err, &he) && he.Status == http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	case errors.As(err, &he) && he.Status == http.StatusBadRequest:
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/httplink"
)

// This file is the agent's client of the master over HTTP (the agent ->
// master link); the agent's own HTTP API is in handler.go.

// MasterAgentPath is the master's endpoint of Apron's agent link.
const MasterAgentPath = "/apron/v1/agent"

// HTTPMaster is a Master reached over HTTP, for an agent on another
// machine than its master: it posts the agent's calls (internalpb.Call,
// protobuf unless WithJSON) to <url>/apron/v1/agent and reads the master's
// events from the RecordIO stream REGISTER or REREGISTER opens.
//
// It knows several candidate masters. ConnectAgent tries the master it last
// connected to, then each candidate in order, skipping those that refuse
// the connection or answer 503, and follows a standby's 307 to the leader
// (a few hops at most), registering there again rather than replaying the
// request; every other call goes to the master that accepted the
// registration, with its Mesos-Stream-Id. When none accepts, the agent
// retries after its registration backoff, as it does when the stream ends
// (the master closed it, or the connection broke).
//
// Errors keep the master's status and message; a call on a stream that has
// ended fails without being sent. An HTTPMaster is safe for concurrent use.
type HTTPMaster struct {
	link *httplink.Link[internalpb.Event, *internalpb.Event]
}

var (
	_ Master          = (*HTTPMaster)(nil)
	_ BatchMaster     = (*HTTPMaster)(nil)
	_ DetectingMaster = (*HTTPMaster)(nil)
)

// LeaderChanges implements DetectingMaster: a value each time the detector
// reports a new leader; without WithMasterDetector the channel is closed
// at once.
func (m *HTTPMaster) LeaderChanges(ctx context.Context) <-chan struct{} {
	return m.link.LeaderChanges(ctx)
}

// HTTPOption configures an HTTPMaster.
type HTTPOption func(*httpOptions)

type httpOptions struct {
	json     bool
	client   *http.Client
	cred     *auth.Credential
	log      *slog.Logger
	detector election.Detector
}

// WithJSON makes an HTTPMaster speak application/json instead of
// application/x-protobuf.
func WithJSON() HTTPOption { return func(o *httpOptions) { o.json = true } }

// WithHTTPClient sets the HTTP client (for TLS, proxies...). The HTTPMaster
// uses a copy that does not follow redirects itself; the client must have
// no Timeout, which would cut the event stream.
func WithHTTPClient(c *http.Client) HTTPOption { return func(o *httpOptions) { o.client = c } }

// WithCredential makes the HTTPMaster authenticate to the masters with
// cred (HTTP Basic on every request, those to a new leader included), for
// a master that authenticates its agents (Mesos's --authenticate_agents;
// the agent's --credential). A master that refuses it (401, or 403 from
// its authorizer) is retried after the registration backoff, and the
// agent logs each refusal as an error. It works with WithHTTPClient in
// either order.
func WithCredential(cred auth.Credential) HTTPOption {
	return func(o *httpOptions) { o.cred = &cred }
}

// WithHTTPLogger sets the logger told why streams end (default: discard).
func WithHTTPLogger(l *slog.Logger) HTTPOption { return func(o *httpOptions) { o.log = l } }

// WithMasterDetector makes the HTTPMaster find the leading master through
// d, as a Mesos agent started with --master=zk://... does: d is typically
// a zookeeper.Detector on the masters' election, whose leader's payload is
// its MasterInfo as JSON. Registration goes to the detected leader first,
// then to the URLs given to NewHTTPMaster (static fallbacks; there may be
// none). When another master comes to lead, the agent's stream ends and
// the agent re-registers there; while none is known it retries after its
// registration backoff, keeping its tasks running and their status updates
// queued until a master takes them. The HTTPMaster does not close d; the
// caller does once the agent has stopped.
func WithMasterDetector(d election.Detector) HTTPOption {
	return func(o *httpOptions) { o.detector = d }
}

// NewHTTPMaster returns a Master for the masters at urls, like
// "http://10.0.0.1:5050" (http:// is assumed when there is no scheme). It
// fails with ErrInvalidConfig when there is no URL (and no
// WithMasterDetector) or one does not parse; it connects to nothing until
// the agent runs.
func NewHTTPMaster(urls []string, opts ...HTTPOption) (*HTTPMaster, error) {
	var o httpOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	hc := o.client
	if o.cred != nil {
		hc = auth.WithBasic(hc, *o.cred)
	}
	client := httpapi.Client{Codec: codec.Protobuf, HTTP: httplink.NoRedirects(hc)}
	if o.json {
		client.Codec = codec.JSON
	}
	link, err := httplink.New[internalpb.Event](httplink.Config{
		URLs:     urls,
		Detector: o.detector,
		Path:     MasterAgentPath,
		Client:   client,
		Logger:   o.log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &HTTPMaster{link: link}, nil
}

// ConnectAgent registers (REGISTER or REREGISTER) and opens the agent's
// stream; cancelling ctx closes it.
func (m *HTTPMaster) ConnectAgent(ctx context.Context, call *internalpb.Call) (string, <-chan *internalpb.Event, error) {
	return m.link.Subscribe(ctx, call)
}

// AgentCall sends call on the stream streamID, to the master that opened it.
func (m *HTTPMaster) AgentCall(ctx context.Context, streamID string, call *internalpb.Call) error {
	return m.link.Call(ctx, streamID, call)
}

// maxBatchBytes bounds the calls AgentCalls puts in one request (their
// protobuf size, JSON being a few times larger), well under the master's
// limit on a body; a single larger call goes alone.
const maxBatchBytes = 1 << 20

// AgentCalls sends calls on the stream streamID in as few requests as
// their size allows, each an application/recordio body of several calls
// (see BatchMaster). A failure is an *internalpb.CallError whose Index
// counts from the first of calls.
func (m *HTTPMaster) AgentCalls(ctx context.Context, streamID string, calls []*internalpb.Call) error {
	for start := 0; start < len(calls); {
		end, size := start, 0
		for end < len(calls) && (end == start || size+calls[end].Size() <= maxBatchBytes) {
			size += calls[end].Size()
			end++
		}
		var err error
		if end-start == 1 {
			err = m.link.Call(ctx, streamID, calls[start])
		} else {
			msgs := make([]proto.Message, end-start)
			for i, c := range calls[start:end] {
				msgs[i] = c
			}
			err = m.link.CallBatch(ctx, streamID, msgs)
		}
		if err != nil {
			return &internalpb.CallError{Index: start + failedIndex(err), Err: err}
		}
		start = end
	}
	return nil
}

// failedIndex reads which call of a batch the master refused from its
// answer ("call <index>: ..."); any other failure is the first call's.
func failedIndex(err error) int {
	var he *httpapi.Error
	if !errors.As(err, &he) {
		return 0
	}
	rest, ok := strings.CutPrefix(he.Message, "call ")
	if !ok {
		return 0
	}
	digits, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 {
		return 0
	}
	return i
}

package executor

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/tlsconfig"
)

// ExecutorAPIPath is the path of an agent's executor API.
const ExecutorAPIPath = "/api/v1/executor"

// httpStreamBuffer is the number of decoded events the HTTP link holds for
// the driver; the agent's side of the stream is bounded too, so a driver
// that falls behind slows the connection, never the agent.
const httpStreamBuffer = 64

// HTTPAgent returns the executor link to the agent whose HTTP API is at
// endpoint: "host:port" as MESOS_AGENT_ENDPOINT gives it, or a URL
// ("http://host:port"). Calls are POSTed to <endpoint>/api/v1/executor in
// protobuf, as a Mesos executor library does: SUBSCRIBE opens a chunked
// RecordIO stream whose events (HEARTBEAT included) arrive on the returned
// channel, closed when the agent ends the stream or the connection breaks;
// cancelling the SUBSCRIBE's ctx closes the connection. Other calls are
// answered 202; another answer is an error carrying the agent's status and
// message. The stream ID the agent sends (Mesos-Stream-Id) goes back with
// each call, so an Apron agent refuses calls of a superseded stream; Mesos
// agents send none and go by the call's executor and framework IDs.
//
// When the process's environment has LIBPROCESS_SSL_ENABLED=true, as the
// agent of a cluster with TLS gives its executors, the link speaks https
// (an http:// URL or host:port is upgraded, as Mesos's executor library
// picks https then), verifies the agent against LIBPROCESS_SSL_CA_FILE
// (or _CA_DIR) and presents LIBPROCESS_SSL_CERT_FILE and _KEY_FILE when
// the agent asks for a client certificate; see HTTPAgentFromEnv. An
// environment that does not make a usable configuration gives a link
// whose every call fails, saying why. The executor's token
// (MESOS_EXECUTOR_AUTHENTICATION_TOKEN), when the agent gave one, goes
// with every call as Authorization: Bearer, and is removed from the
// process's environment, as Mesos's executor library does.
func HTTPAgent(endpoint string) Agent {
	a, err := HTTPAgentFromEnv(endpoint, os.Getenv)
	// As Mesos's executor library: the token leaves the environment, so
	// that the tasks this process starts do not inherit it.
	_ = os.Unsetenv(AuthenticationTokenEnv)
	if err != nil {
		return failedAgent{err}
	}
	return a
}

// AuthenticationTokenEnv holds the token an agent that authenticates its
// executors (Mesos's --authenticate_http_executors) gives an executor
// process; the link sends it with every call as Authorization: Bearer.
const AuthenticationTokenEnv = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"

// bearerTransport sends an executor's token with every request.
type bearerTransport struct {
	base  http.RoundTripper
	token string
}

// RoundTrip sends a copy of r with the token.
func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	r2 := r.Clone(r.Context()) // a RoundTripper must not change r
	r2.Header.Set("Authorization", "Bearer "+t.token)
	return base.RoundTrip(r2)
}

// withToken makes a's requests carry token, when there is one.
func (a *httpAgent) withToken(token string) *httpAgent {
	if token != "" {
		a.client.HTTP.Transport = &bearerTransport{base: a.client.HTTP.Transport, token: token}
	}
	return a
}

// HTTPAgentFromEnv is HTTPAgent with the LIBPROCESS_SSL_* environment and
// MESOS_EXECUTOR_AUTHENTICATION_TOKEN read through getenv (and left in
// the environment); it fails when that environment turns TLS on but its
// files cannot be used.
func HTTPAgentFromEnv(endpoint string, getenv func(string) string) (Agent, error) {
	files, enabled, err := tlsconfig.FromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	a := &httpAgent{
		url:    endpointURL(endpoint),
		client: httpapi.Client{HTTP: &http.Client{CheckRedirect: httpapi.NoRedirects.CheckRedirect}},
	}
	token := getenv(AuthenticationTokenEnv)
	if !enabled {
		return a.withToken(token), nil
	}
	src, err := tlsconfig.Load(files, tlsconfig.Options{})
	if err != nil {
		return nil, fmt.Errorf("executor: LIBPROCESS_SSL_*: %w", err)
	}
	if strings.HasPrefix(a.url, "http://") {
		a.url = "https://" + strings.TrimPrefix(a.url, "http://")
	}
	a.client.HTTP.Transport = src.Transport()
	return a.withToken(token), nil
}

// failedAgent is the link of an executor whose TLS environment is
// unusable.
type failedAgent struct{ err error }

func (f failedAgent) SubscribeExecutor(context.Context, *executorpb.Call) (string, <-chan *executorpb.Event, error) {
	return "", nil, f.err
}

func (f failedAgent) ExecutorCall(context.Context, string, *executorpb.Call) error { return f.err }

// endpointURL is the executor API URL of an agent endpoint.
func endpointURL(endpoint string) string {
	u := strings.TrimRight(strings.TrimSpace(endpoint), "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	if strings.HasSuffix(u, ExecutorAPIPath) {
		return u
	}
	return u + ExecutorAPIPath
}

type httpAgent struct {
	url    string
	client httpapi.Client
}

var _ Agent = (*httpAgent)(nil)

// SubscribeExecutor implements Agent over HTTP.
func (a *httpAgent) SubscribeExecutor(ctx context.Context, call *executorpb.Call) (string, <-chan *executorpb.Event, error) {
	s, err := a.client.Subscribe(ctx, a.url, call)
	if err != nil {
		return "", nil, fmt.Errorf("subscribing at %s: %w", a.url, err)
	}
	events := make(chan *executorpb.Event, httpStreamBuffer)
	// Closing the body is what unblocks a read in progress.
	stop := context.AfterFunc(ctx, func() { s.Close() })
	go func() {
		defer close(events)
		defer stop()
		defer s.Close()
		for {
			ev := &executorpb.Event{}
			if err := s.Next(ev); err != nil {
				return // io.EOF: the agent ended the stream; else it broke
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s.ID, events, nil
}

// ExecutorCall implements Agent over HTTP.
func (a *httpAgent) ExecutorCall(ctx context.Context, streamID string, call *executorpb.Call) error {
	if _, err := a.client.Call(ctx, a.url, streamID, call); err != nil {
		return fmt.Errorf("%s call to %s: %w", call.GetType(), a.url, err)
	}
	return nil
}

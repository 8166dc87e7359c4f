package executor

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/tlsconfig"
	"github.com/apronhq/apron/internal/tlsconfig/tlstest"
)

// serveFakeAgentTLS serves a fake agent's executor API over TLS with a
// certificate of ca, requiring a client certificate ca signed; its
// host:port.
func serveFakeAgentTLS(t *testing.T, ca *tlstest.CA, a *fakeAgent) string {
	t.Helper()
	plain := serveFakeAgent(t, a, new(atomic.Int32))
	pair := ca.Issue(t, "agent")
	src, err := tlsconfig.Load(tlsconfig.Files{CertFile: pair.CertFile, KeyFile: pair.KeyFile, CAFile: ca.CAFile, RequireClientCert: true}, tlsconfig.Options{})
	require.NoError(t, err)
	cfg, err := src.ServerConfig()
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(plain.Config.Handler)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener = tls.NewListener(srv.Listener, cfg)
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.Listener.Addr().String()
}

func sslEnv(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// An executor whose environment has LIBPROCESS_SSL_ENABLED=true talks
// https to the agent at MESOS_AGENT_ENDPOINT's host:port, verifying it
// with the CA and presenting its certificate.
func TestHTTPAgentTLSFromEnv(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	a := newFakeAgent()
	addr := serveFakeAgentTLS(t, ca, a)
	exec := ca.Issue(t, "executor")
	subscribe := &executorpb.Call{Type: executorpb.Call_SUBSCRIBE.Enum(), FrameworkID: mesospb.FrameworkID{Value: "f1"}, ExecutorID: mesospb.ExecutorID{Value: "e1"}}

	link, err := HTTPAgentFromEnv(addr, sslEnv(map[string]string{
		"LIBPROCESS_SSL_ENABLED":   "true",
		"LIBPROCESS_SSL_CERT_FILE": exec.CertFile,
		"LIBPROCESS_SSL_KEY_FILE":  exec.KeyFile,
		"LIBPROCESS_SSL_CA_FILE":   ca.CAFile,
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events, err := link.SubscribeExecutor(ctx, subscribe)
	require.NoError(t, err)
	assert.Equal(t, executorpb.Event_SUBSCRIBED, (<-events).GetType())
	cancel()

	t.Run("without TLS the agent refuses", func(t *testing.T) {
		link, err := HTTPAgentFromEnv(addr, sslEnv(nil))
		require.NoError(t, err)
		_, _, err = link.SubscribeExecutor(context.Background(), subscribe)
		require.Error(t, err)
	})
	t.Run("a certificate of another CA is refused", func(t *testing.T) {
		other := tlstest.NewCA(t, "other")
		intruder := other.Issue(t, "intruder")
		link, err := HTTPAgentFromEnv(addr, sslEnv(map[string]string{
			"LIBPROCESS_SSL_ENABLED":   "1",
			"LIBPROCESS_SSL_CERT_FILE": intruder.CertFile,
			"LIBPROCESS_SSL_KEY_FILE":  intruder.KeyFile,
			"LIBPROCESS_SSL_CA_FILE":   ca.CAFile,
		}))
		require.NoError(t, err)
		_, _, err = link.SubscribeExecutor(context.Background(), subscribe)
		require.Error(t, err)
	})
	t.Run("an unusable environment fails every call", func(t *testing.T) {
		_, err := HTTPAgentFromEnv(addr, sslEnv(map[string]string{"LIBPROCESS_SSL_ENABLED": "true"}))
		require.ErrorIs(t, err, tlsconfig.ErrConfig)
		t.Setenv("LIBPROCESS_SSL_ENABLED", "true")
		t.Setenv("LIBPROCESS_SSL_CERT_FILE", exec.CertFile+".missing")
		t.Setenv("LIBPROCESS_SSL_KEY_FILE", exec.KeyFile)
		_, _, err = HTTPAgent(addr).SubscribeExecutor(context.Background(), subscribe)
		require.ErrorIs(t, err, tlsconfig.ErrConfig)
	})
}

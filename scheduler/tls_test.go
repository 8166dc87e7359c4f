package scheduler_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/tlsconfig"
	"github.com/apronhq/apron/internal/tlsconfig/tlstest"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// serveTLS serves h over TLS with a certificate of ca; its host:port.
func serveTLS(t *testing.T, ca *tlstest.CA, h http.Handler) string {
	t.Helper()
	pair := ca.Issue(t, "master")
	src, err := tlsconfig.Load(tlsconfig.Files{CertFile: pair.CertFile, KeyFile: pair.KeyFile}, tlsconfig.Options{})
	require.NoError(t, err)
	cfg, err := src.ServerConfig()
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Listener = tls.NewListener(srv.Listener, cfg)
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.Listener.Addr().String()
}

// TestHTTPTLS: with WithTLS, a master given as host:port is reached over
// https, and so is the leader a standby redirects to with Mesos's
// protocol-relative Location.
func TestHTTPTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	leader, _ := runMaster(t, master.Config{})
	leaderAddr := serveTLS(t, ca, leader.Handler())
	other, _ := runMaster(t, master.Config{Leadership: standby("http://" + leaderAddr)})
	standbyAddr := serveTLS(t, ca, other.Handler())

	src, err := tlsconfig.Load(tlsconfig.Files{CAFile: ca.CAFile}, tlsconfig.Options{})
	require.NoError(t, err)
	ev := newEvents()
	d, _ := runDriver(t, ev, frameworkInfo("tls"), scheduler.WithMasterURL(standbyAddr), scheduler.WithTLS(src.ClientConfig()))
	receive(t, ev.registered, "registration")
	require.NoError(t, d.ReviveOffers(context.Background()))
	st, err := leader.State(context.Background())
	require.NoError(t, err)
	assert.Len(t, st.GetFrameworks.Frameworks, 1)

	_, err = scheduler.NewDriver(ev, frameworkInfo("bad"), scheduler.WithMasterURL(leaderAddr), scheduler.WithTLS(src.ClientConfig()),
		scheduler.WithHTTPClient(&http.Client{Transport: roundTripper(func(*http.Request) (*http.Response, error) { return nil, nil })}))
	assert.ErrorIs(t, err, scheduler.ErrInvalid, "WithTLS cannot configure a RoundTripper it does not know")
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

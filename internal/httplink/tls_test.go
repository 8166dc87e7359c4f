package httplink_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/election/memory"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/httplink"
	"github.com/apronhq/apron/internal/tlsconfig"
	"github.com/apronhq/apron/internal/tlsconfig/tlstest"
)

// startTLS serves h over TLS with a certificate of ca; the host:port.
func startTLS(t *testing.T, ca *tlstest.CA, h http.Handler) string {
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

// tlsClient is a client that speaks TLS only to https:// URLs (a plain
// transport, unlike tlsconfig's): the link must ask for https itself.
func tlsClient(t *testing.T, ca *tlstest.CA) httpapi.Client {
	t.Helper()
	src, err := tlsconfig.Load(tlsconfig.Files{CAFile: ca.CAFile}, tlsconfig.Options{})
	require.NoError(t, err)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = src.ClientConfig()
	t.Cleanup(tr.CloseIdleConnections)
	return httpapi.Client{HTTP: httplink.NoRedirects(&http.Client{Transport: tr})}
}

// A TLS link reaches masters named by host:port and by a detector (whose
// MasterInfo has no scheme) over https, and a standby's protocol-relative
// redirect ("//host:port/path", as Mesos writes it) keeps https.
func TestHTTPS(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	leader, _ := newFake(t)
	leaderAddr := startTLS(t, ca, http.HandlerFunc(leader.serve))
	var redirected atomic.Bool
	standbyAddr := startTLS(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Store(true)
		w.Header().Set("Location", "//"+leaderAddr+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	client := tlsClient(t, ca)

	t.Run("host:port and redirect", func(t *testing.T) {
		l, err := httplink.New[schedulerpb.Event](httplink.Config{URLs: []string{standbyAddr}, Path: path, Client: client, HTTPS: true})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		id, events, err := l.Subscribe(ctx, subscribe())
		require.NoError(t, err)
		next(t, events)
		assert.True(t, redirected.Load())
		require.NoError(t, l.Call(ctx, id, revive()))
		assert.Contains(t, leader.callLog(), id+" REVIVE")
	})

	t.Run("without HTTPS, host:port is http and fails", func(t *testing.T) {
		l, err := httplink.New[schedulerpb.Event](httplink.Config{URLs: []string{leaderAddr}, Path: path, Client: client})
		require.NoError(t, err)
		_, _, err = l.Subscribe(context.Background(), subscribe())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "HTTP request to an HTTPS server")
	})

	t.Run("detected leader", func(t *testing.T) {
		g := memory.NewGroup()
		d := g.NewDetector()
		t.Cleanup(func() { _ = d.Close() })
		c := g.NewContender()
		t.Cleanup(func() { _ = c.Close() })
		campaign(t, c, masterInfo(t, "leader", "http://"+leaderAddr))
		l, err := httplink.New[schedulerpb.Event](httplink.Config{Detector: d, Path: path, Client: client, HTTPS: true})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, events, err := l.Subscribe(ctx, subscribe())
		require.NoError(t, err)
		next(t, events)
	})

	t.Run("an explicit http:// URL stays http", func(t *testing.T) {
		l, err := httplink.New[schedulerpb.Event](httplink.Config{URLs: []string{"http://" + leaderAddr}, Path: path, Client: client, HTTPS: true})
		require.NoError(t, err)
		_, _, err = l.Subscribe(context.Background(), subscribe())
		require.Error(t, err)
		assert.True(t, strings.Contains(err.Error(), "http://"+leaderAddr), err.Error())
	})
}

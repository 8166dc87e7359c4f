package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/tlsconfig"
	"github.com/apronhq/apron/internal/tlsconfig/tlstest"
)

// serve runs an HTTPS server with src's ServerConfig on loopback and
// returns its address.
func serve(t *testing.T, src *tlsconfig.Source) string {
	t.Helper()
	cfg, err := src.ServerConfig()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func load(t *testing.T, f tlsconfig.Files, o tlsconfig.Options) *tlsconfig.Source {
	t.Helper()
	s, err := tlsconfig.Load(f, o)
	require.NoError(t, err)
	return s
}

// get fetches url with a client on src, a new connection each time.
func get(src *tlsconfig.Source, url string) error {
	c := src.HTTPClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "ok" {
		return errors.New("unexpected answer " + string(b))
	}
	return nil
}

// serial is the serial number of the certificate the server at addr
// presents now.
func serial(t *testing.T, client *tlsconfig.Source, addr string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, client.ClientConfig())
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestHandshake(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	srvPair := ca.Issue(t, "server")
	addr := serve(t, load(t, tlsconfig.Files{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile}, tlsconfig.Options{}))

	client := load(t, tlsconfig.Files{CAFile: ca.CAFile}, tlsconfig.Options{})
	require.NoError(t, get(client, "https://"+addr+"/"))
	// host:port with http:// is spoken as https, as libprocess does
	// with SSL enabled.
	require.NoError(t, get(client, "http://"+addr+"/"))
	_, port, _ := net.SplitHostPort(addr)
	require.NoError(t, get(client, "https://localhost:"+port+"/"))

	t.Run("wrong CA refused", func(t *testing.T) {
		other := tlstest.NewCA(t, "other")
		bad := load(t, tlsconfig.Files{CAFile: other.CAFile}, tlsconfig.Options{})
		err := get(bad, "https://"+addr+"/")
		require.Error(t, err)
		var unknown x509.UnknownAuthorityError
		assert.ErrorAs(t, err, &unknown)
	})
	t.Run("system roots refuse a private CA", func(t *testing.T) {
		require.Error(t, get(load(t, tlsconfig.Files{}, tlsconfig.Options{}), "https://"+addr+"/"))
	})
	t.Run("insecure accepts any", func(t *testing.T) {
		other := tlstest.NewCA(t, "other")
		ins := load(t, tlsconfig.Files{CAFile: other.CAFile, InsecureSkipVerify: true}, tlsconfig.Options{})
		require.NoError(t, get(ins, "https://"+addr+"/"))
	})
	t.Run("plain HTTP client refused", func(t *testing.T) {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			defer resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		}
	})
}

func TestRequireClientCert(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	srvPair := ca.Issue(t, "server")
	addr := serve(t, load(t, tlsconfig.Files{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, CAFile: ca.CAFile, RequireClientCert: true}, tlsconfig.Options{}))

	require.Error(t, get(load(t, tlsconfig.Files{CAFile: ca.CAFile}, tlsconfig.Options{}), "https://"+addr+"/"), "a client without a certificate")

	other := tlstest.NewCA(t, "other")
	foreign := other.Issue(t, "intruder")
	require.Error(t, get(load(t, tlsconfig.Files{CAFile: ca.CAFile, CertFile: foreign.CertFile, KeyFile: foreign.KeyFile}, tlsconfig.Options{}), "https://"+addr+"/"),
		"a client certificate of another CA")

	agent := ca.Issue(t, "agent")
	require.NoError(t, get(load(t, tlsconfig.Files{CAFile: ca.CAFile, CertFile: agent.CertFile, KeyFile: agent.KeyFile}, tlsconfig.Options{}), "https://"+addr+"/"))
}

func TestReloadCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	first := ca.Issue(t, "server")
	clk := clock.NewFake(time.Unix(1000, 0))
	srv := load(t, tlsconfig.Files{CertFile: first.CertFile, KeyFile: first.KeyFile}, tlsconfig.Options{Clock: clk, Interval: 5 * time.Second})
	addr := serve(t, srv)
	client := load(t, tlsconfig.Files{CAFile: ca.CAFile}, tlsconfig.Options{})
	require.Equal(t, first.Cert.SerialNumber.Int64(), serial(t, client, addr))

	second := ca.Issue(t, "server") // rewrites the same files
	require.NotEqual(t, first.Cert.SerialNumber, second.Cert.SerialNumber)
	assert.Equal(t, first.Cert.SerialNumber.Int64(), serial(t, client, addr), "files are not reread before the interval")

	clk.Advance(5 * time.Second)
	assert.Equal(t, second.Cert.SerialNumber.Int64(), serial(t, client, addr), "the renewed certificate, without a restart")

	t.Run("a half-written pair keeps the old one", func(t *testing.T) {
		key, err := os.ReadFile(second.KeyFile)
		require.NoError(t, err)
		third := ca.Issue(t, "server")
		require.NoError(t, os.WriteFile(third.KeyFile, key, 0o600)) // the new cert, the old key
		clk.Advance(5 * time.Second)
		assert.Equal(t, second.Cert.SerialNumber.Int64(), serial(t, client, addr))
		require.Error(t, srv.Reload())
	})
}

func TestReloadCA(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	pair := ca.Issue(t, "server")
	addr := serve(t, load(t, tlsconfig.Files{CertFile: pair.CertFile, KeyFile: pair.KeyFile}, tlsconfig.Options{}))

	other := tlstest.NewCA(t, "other")
	clk := clock.NewFake(time.Unix(1000, 0))
	client := load(t, tlsconfig.Files{CAFile: other.CAFile}, tlsconfig.Options{Clock: clk, Interval: time.Second})
	require.Error(t, get(client, "https://"+addr+"/"))

	b, err := os.ReadFile(ca.CAFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(other.CAFile, b, 0o600))
	clk.Advance(time.Second)
	require.NoError(t, get(client, "https://"+addr+"/"))
}

func TestCADir(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	pair := ca.Issue(t, "server")
	addr := serve(t, load(t, tlsconfig.Files{CertFile: pair.CertFile, KeyFile: pair.KeyFile}, tlsconfig.Options{}))
	dir := t.TempDir()
	b, err := os.ReadFile(ca.CAFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dir+"/0a1b2c3d.0", b, 0o644))
	require.NoError(t, os.WriteFile(dir+"/README", []byte("not a certificate"), 0o644))
	require.NoError(t, get(load(t, tlsconfig.Files{CADir: dir}, tlsconfig.Options{}), "https://"+addr+"/"))
}

func TestLoadErrors(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster")
	pair := ca.Issue(t, "server")
	other := ca.Issue(t, "other")
	for name, f := range map[string]tlsconfig.Files{
		"cert without key":          {CertFile: pair.CertFile},
		"key without cert":          {KeyFile: pair.KeyFile},
		"mismatched pair":           {CertFile: pair.CertFile, KeyFile: other.KeyFile},
		"missing file":              {CertFile: pair.CertFile + ".missing", KeyFile: pair.KeyFile},
		"CA not PEM":                {CAFile: pair.KeyFile},
		"require without a CA":      {CertFile: pair.CertFile, KeyFile: pair.KeyFile, RequireClientCert: true},
		"missing CA dir":            {CADir: t.TempDir() + "/none"},
		"CA dir without a CA in it": {CADir: t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tlsconfig.Load(f, tlsconfig.Options{})
			assert.ErrorIs(t, err, tlsconfig.ErrConfig)
		})
	}
	s := load(t, tlsconfig.Files{CAFile: ca.CAFile}, tlsconfig.Options{})
	_, err := s.ServerConfig()
	assert.ErrorIs(t, err, tlsconfig.ErrConfig, "a server needs a certificate")
}

func TestFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name    string
		getenv  func(string) string
		want    tlsconfig.Files
		enabled bool
		err     bool
	}{
		{name: "unset", getenv: env()},
		{name: "disabled", getenv: env("LIBPROCESS_SSL_ENABLED", "false", "LIBPROCESS_SSL_CERT_FILE", "c")},
		{name: "enabled", getenv: env("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_CERT_FILE", "c", "LIBPROCESS_SSL_KEY_FILE", "k", "LIBPROCESS_SSL_CA_FILE", "ca", "LIBPROCESS_SSL_CA_DIR", "d"),
			want: tlsconfig.Files{CertFile: "c", KeyFile: "k", CAFile: "ca", CADir: "d"}, enabled: true},
		{name: "1 and legacy SSL_ prefix", getenv: env("SSL_ENABLED", "1", "SSL_CERT_FILE", "c", "LIBPROCESS_SSL_KEY_FILE", "k", "SSL_KEY_FILE", "old"),
			want: tlsconfig.Files{CertFile: "c", KeyFile: "k"}, enabled: true},
		{name: "require client cert (legacy name)", getenv: env("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_CERT_FILE", "c", "LIBPROCESS_SSL_KEY_FILE", "k", "LIBPROCESS_SSL_REQUIRE_CERT", "true"),
			want: tlsconfig.Files{CertFile: "c", KeyFile: "k", RequireClientCert: true}, enabled: true},
		{name: "verify off explicitly", getenv: env("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_CERT_FILE", "c", "LIBPROCESS_SSL_KEY_FILE", "k", "LIBPROCESS_SSL_VERIFY_SERVER_CERT", "0"),
			want: tlsconfig.Files{CertFile: "c", KeyFile: "k", InsecureSkipVerify: true}, enabled: true},
		{name: "require implies verify", getenv: env("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_CERT_FILE", "c", "LIBPROCESS_SSL_KEY_FILE", "k", "LIBPROCESS_SSL_VERIFY_SERVER_CERT", "false", "LIBPROCESS_SSL_REQUIRE_CLIENT_CERT", "1"),
			want: tlsconfig.Files{CertFile: "c", KeyFile: "k", RequireClientCert: true}, enabled: true},
		{name: "no key", getenv: env("LIBPROCESS_SSL_ENABLED", "true", "LIBPROCESS_SSL_CERT_FILE", "c"), enabled: true, err: true},
		{name: "bad boolean", getenv: env("LIBPROCESS_SSL_ENABLED", "yes"), err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, enabled, err := tlsconfig.FromEnv(tc.getenv)
			if tc.err {
				assert.ErrorIs(t, err, tlsconfig.ErrConfig)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.enabled, enabled)
			assert.Equal(t, tc.want, f)
		})
	}
	// Env round-trips.
	f := tlsconfig.Files{CertFile: "c", KeyFile: "k", CAFile: "ca", RequireClientCert: true}
	m := map[string]string{}
	for _, kv := range tlsconfig.Env(f) {
		k, v, _ := cut(kv)
		m[k] = v
	}
	back, enabled, err := tlsconfig.FromEnv(func(k string) string { return m[k] })
	require.NoError(t, err)
	assert.True(t, enabled)
	assert.Equal(t, f, back)
}

func cut(kv string) (string, string, bool) {
	for i := range kv {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

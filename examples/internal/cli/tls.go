package cli

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/apronhq/apron/internal/tlsconfig"
	"github.com/apronhq/apron/scheduler"
)

// TLS is the TLS flags of the binaries: -tls-cert, -tls-key, -tls-ca
// (and -tls-ca-dir), and for servers -tls-require-client-cert. Given no
// -tls-* flag, a binary takes Mesos's LIBPROCESS_SSL_* environment
// instead (LIBPROCESS_SSL_ENABLED=true with _CERT_FILE, _KEY_FILE,
// _CA_FILE, _CA_DIR, _REQUIRE_CLIENT_CERT, _VERIFY_SERVER_CERT), so a
// Mesos operator's configuration carries over. The files are reread when
// they change (see internal/tlsconfig), so certificates are renewed
// without a restart.
type TLS struct {
	Cert, Key, CA, CADir string
	RequireClientCert    bool

	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string

	set bool // a -tls-* flag was given
}

// RegisterServer adds the flags of a binary that serves (and connects:
// its certificate is also its client certificate).
func (t *TLS) RegisterServer(fs *flag.FlagSet) {
	t.register(fs, "serve HTTPS with the certificate (chain) in PEM `file`, and present it as the client certificate on connections this binary makes (default: LIBPROCESS_SSL_CERT_FILE when LIBPROCESS_SSL_ENABLED=true)")
	fs.BoolVar(&t.RequireClientCert, "tls-require-client-cert", false, "refuse clients (agents, frameworks, operators) without a certificate that -tls-ca signed, as Mesos's LIBPROCESS_SSL_REQUIRE_CLIENT_CERT")
}

// RegisterClient adds the flags of a binary that only connects (a
// framework): -tls-ca turns TLS on; -tls-cert and -tls-key are its client
// certificate, for masters that require one.
func (t *TLS) RegisterClient(fs *flag.FlagSet) {
	t.register(fs, "client certificate (chain) in PEM `file`, for masters that require one (default: LIBPROCESS_SSL_CERT_FILE when LIBPROCESS_SSL_ENABLED=true)")
}

func (t *TLS) register(fs *flag.FlagSet, certHelp string) {
	fs.StringVar(&t.Cert, "tls-cert", "", certHelp)
	fs.StringVar(&t.Key, "tls-key", "", "private key in PEM `file` of -tls-cert")
	fs.StringVar(&t.CA, "tls-ca", "", "PEM `file` of the CA certificates that sign the cluster's certificates: servers are verified against it, and with -tls-require-client-cert clients too; giving it (or any -tls-* flag) turns TLS on and makes host:port and detected masters https")
	fs.StringVar(&t.CADir, "tls-ca-dir", "", "`directory` of CA certificate files, as -tls-ca (Mesos's LIBPROCESS_SSL_CA_DIR)")
}

// Files is the configuration the flags, or else the environment, give;
// ok is false when TLS is off.
func (t *TLS) Files() (f tlsconfig.Files, ok bool, err error) {
	if t.Cert != "" || t.Key != "" || t.CA != "" || t.CADir != "" || t.RequireClientCert {
		f = tlsconfig.Files{CertFile: t.Cert, KeyFile: t.Key, CAFile: t.CA, CADir: t.CADir, RequireClientCert: t.RequireClientCert}
		return f, true, nil
	}
	getenv := t.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	f, ok, err = tlsconfig.FromEnv(getenv)
	if err != nil {
		return f, ok, fmt.Errorf("LIBPROCESS_SSL_* environment: %w", err)
	}
	return f, ok, nil
}

// Source loads the certificates, or returns nil when TLS is off.
func (t *TLS) Source(log *slog.Logger) (*tlsconfig.Source, error) {
	f, ok, err := t.Files()
	if err != nil || !ok {
		return nil, err
	}
	src, err := tlsconfig.Load(f, tlsconfig.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("-tls-*: %w", err)
	}
	return src, nil
}

// Listener wraps ln in TLS with src's server configuration; nil src
// leaves ln as it is.
func Listener(ln net.Listener, src *tlsconfig.Source) (net.Listener, error) {
	if src == nil {
		return ln, nil
	}
	cfg, err := src.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("serving TLS needs -tls-cert and -tls-key: %w", err)
	}
	return tls.NewListener(ln, cfg), nil
}

// HTTPClient is the client for connections to masters: nil (net/http's
// default) without TLS.
func HTTPClient(src *tlsconfig.Source) *http.Client {
	if src == nil {
		return nil
	}
	return src.HTTPClient()
}

// Scheme is "https" with TLS, else "http", for the URLs a binary prints.
func Scheme(src *tlsconfig.Source) string {
	if src == nil {
		return "http"
	}
	return "https"
}

// SchedulerOptions are the driver's options for the flags: WithTLS with
// the client configuration (reloaded as its files change), or none when
// TLS is off.
func (t *TLS) SchedulerOptions(log *slog.Logger) ([]scheduler.Option, error) {
	src, err := t.Source(log)
	if err != nil || src == nil {
		return nil, err
	}
	return []scheduler.Option{scheduler.WithTLS(src.ClientConfig())}, nil
}

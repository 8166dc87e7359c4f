// Package tlsconfig builds the *tls.Config of Apron's servers (master,
// agent, the executor API) and clients (drivers, the agent's link,
// executors, the example binaries) from PEM files: a certificate, its key
// and the CA that signs the cluster's certificates, as Mesos's libprocess
// takes them from LIBPROCESS_SSL_CERT_FILE, _KEY_FILE and _CA_FILE.
//
// # Reloading
//
// Certificates are renewed while the cluster runs: a Source rereads its
// files at a handshake when Options.Interval has passed since it last
// looked (reading three small files every few seconds, only when
// connections are made), and swaps in the new certificate, key and CA at
// once, so the next handshake uses them; connections already open keep
// theirs. A rewrite caught half done (a new certificate beside the old
// key) is no error for the server: it keeps what it had, logs, and looks
// again at the next interval. No goroutine is started, so a Source needs
// no Close.
//
// # Choices
//
// TLS 1.2 is the minimum (Mesos enables only 1.2 by default; Go's 1.3 is
// allowed too). Clients verify the server's certificate and its name (a
// DNS name, or an IP address in the certificate's IP SANs: Mesos's
// LIBPROCESS_SSL_VERIFY_IPADD is always on) against the CA, or the
// system's roots when no CA is given; only an explicit
// LIBPROCESS_SSL_VERIFY_SERVER_CERT=false turns that off, Mesos's
// default, which Apron does not share. Servers ask for a client
// certificate only with RequireClientCert (Mesos's
// LIBPROCESS_SSL_REQUIRE_CLIENT_CERT), and then refuse a client without
// one the CA signed. Only HTTP/1.1 is offered (ALPN), as libprocess
// speaks.
package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apronhq/apron/internal/clock"
)

// ErrConfig: the files named are missing, unreadable, or do not make a
// usable configuration.
var ErrConfig = errors.New("tlsconfig: bad TLS configuration")

// DefaultInterval is how often, at most, a Source rereads its files.
const DefaultInterval = 5 * time.Second

// Files names the PEM files of a TLS configuration.
type Files struct {
	// CertFile and KeyFile are this process's certificate (chain) and
	// its private key: required for a server, optional for a client (its
	// client certificate).
	CertFile, KeyFile string
	// CAFile holds the certificates of the CAs trusted to sign servers'
	// (and, with RequireClientCert, clients') certificates. CADir is a
	// directory of such files (every regular file in it is read), as
	// OpenSSL's CA directory. Neither: the system's roots.
	CAFile, CADir string
	// RequireClientCert makes a server refuse a client that presents no
	// certificate signed by the CA.
	RequireClientCert bool
	// InsecureSkipVerify makes a client accept any server certificate:
	// Mesos's default without LIBPROCESS_SSL_VERIFY_SERVER_CERT, never
	// Apron's unless asked.
	InsecureSkipVerify bool
}

// Enabled says whether any file is named: TLS is on.
func (f Files) Enabled() bool {
	return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" || f.CADir != ""
}

// Options tune a Source.
type Options struct {
	// Clock times the rereading of the files (default: the system's).
	Clock clock.Clock
	// Interval is the least time between two readings of the files
	// (default DefaultInterval; negative: at every handshake).
	Interval time.Duration
	// Logger gets reloads and failed reloads (default: discard).
	Logger *slog.Logger
}

// Source holds the current certificate, key and CA of Files, and rereads
// them as the package documentation says. It is safe for concurrent use.
type Source struct {
	files    Files
	clock    clock.Clock
	interval time.Duration
	log      *slog.Logger

	cur atomic.Pointer[material]

	mu        sync.Mutex // serialises reloads
	lastCheck time.Time
}

// material is one reading of the files.
type material struct {
	raw    [][]byte // the bytes read, to tell a change
	cert   *tls.Certificate
	pool   *x509.CertPool // nil: the system's roots
	server *tls.Config    // what a server handshake uses
}

// Load reads f and returns its Source. It fails with ErrConfig when a
// file cannot be read or parsed, when a certificate has no key (or the
// reverse), or when they do not match.
func Load(f Files, o Options) (*Source, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("%w: a certificate needs its key and a key its certificate (cert %q, key %q)", ErrConfig, f.CertFile, f.KeyFile)
	}
	if f.RequireClientCert && f.CAFile == "" && f.CADir == "" {
		return nil, fmt.Errorf("%w: requiring client certificates needs the CA that signs them", ErrConfig)
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{files: f, clock: o.Clock, interval: o.Interval, log: o.Logger}
	m, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	s.lastCheck = s.clock.Now()
	return s, nil
}

// Files returns what s reads.
func (s *Source) Files() Files { return s.files }

// HasCertificate says whether s has a certificate of its own (a server
// needs one; a client presents it when asked).
func (s *Source) HasCertificate() bool { return s.files.CertFile != "" }

// Reload rereads the files now; on an error s keeps what it had.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastCheck = s.clock.Now()
	return s.reloadLocked()
}

func (s *Source) reloadLocked() error {
	m, err := s.read()
	if err != nil {
		return err
	}
	old := s.cur.Load()
	if sameRaw(old.raw, m.raw) {
		return nil
	}
	s.cur.Store(m)
	s.log.Info("TLS certificates reloaded", "cert", s.files.CertFile, "ca", s.files.CAFile, "ca_dir", s.files.CADir)
	return nil
}

// current is the material for a handshake, reread first when the
// interval has passed.
func (s *Source) current() *material {
	now := s.clock.Now()
	if s.mu.TryLock() {
		if s.interval < 0 || now.Sub(s.lastCheck) >= s.interval {
			s.lastCheck = now
			if err := s.reloadLocked(); err != nil {
				s.log.Warn("TLS files changed but cannot be used; keeping the certificates loaded before", "err", err)
			}
		}
		s.mu.Unlock()
	}
	// A handshake while another reloads uses what is there: it never
	// waits on the disk.
	return s.cur.Load()
}

func sameRaw(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func (s *Source) read() (*material, error) {
	f := s.files
	m := &material{}
	if f.CertFile != "" {
		cb, err := os.ReadFile(f.CertFile)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate: %w", ErrConfig, err)
		}
		kb, err := os.ReadFile(f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: key: %w", ErrConfig, err)
		}
		cert, err := tls.X509KeyPair(cb, kb)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %s and key %s: %w", ErrConfig, f.CertFile, f.KeyFile, err)
		}
		m.cert = &cert
		m.raw = append(m.raw, cb, kb)
	}
	var caFiles []string
	if f.CAFile != "" {
		caFiles = append(caFiles, f.CAFile)
	}
	if f.CADir != "" {
		entries, err := os.ReadDir(f.CADir)
		if err != nil {
			return nil, fmt.Errorf("%w: CA directory: %w", ErrConfig, err)
		}
		var names []string
		for _, e := range entries {
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				names = append(names, filepath.Join(f.CADir, e.Name()))
			}
		}
		sort.Strings(names)
		caFiles = append(caFiles, names...)
	}
	if f.CAFile != "" || f.CADir != "" {
		m.pool = x509.NewCertPool()
		n := 0
		for _, name := range caFiles {
			b, err := os.ReadFile(name)
			if err != nil {
				if f.CADir != "" && name != f.CAFile {
					continue // a dangling link or a directory in the CA dir
				}
				return nil, fmt.Errorf("%w: CA: %w", ErrConfig, err)
			}
			m.raw = append(m.raw, b)
			if m.pool.AppendCertsFromPEM(b) {
				n++
			} else if name == f.CAFile {
				return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrConfig, name)
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: no CA certificate in %s", ErrConfig, f.CADir)
		}
	}
	if m.cert != nil {
		m.server = &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*m.cert},
			NextProtos:   []string{"http/1.1"},
		}
		if f.RequireClientCert {
			m.server.ClientAuth = tls.RequireAndVerifyClientCert
			m.server.ClientCAs = m.pool
		}
	}
	return m, nil
}

// ServerConfig is the configuration of a server: each handshake takes
// the current certificate (and client CA). It fails with ErrConfig when
// s has no certificate.
func (s *Source) ServerConfig() (*tls.Config, error) {
	if !s.HasCertificate() {
		return nil, fmt.Errorf("%w: a server needs a certificate and its key", ErrConfig)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.current().server, nil
		},
	}, nil
}

// ClientConfig is the configuration of a client: it verifies the server
// against the current CA and presents the current certificate, if any,
// when the server asks for one.
func (s *Source) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		// Verification is VerifyConnection's, against the CA of the
		// moment: crypto/tls reads RootCAs once per Config.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if s.files.InsecureSkipVerify {
				return nil
			}
			return verifyServer(cs, s.current().pool)
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := s.current(); m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		},
	}
}

// verifyServer is what crypto/tls does with RootCAs and ServerName.
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tlsconfig: the server presented no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		DNSName:       cs.ServerName,
		Intermediates: x509.NewCertPool(),
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

// Transport is an HTTP transport speaking TLS with ClientConfig, with
// net/http's default dialing, proxy and idle-connection settings. As
// libprocess with SSL enabled, it speaks TLS to every server: a request
// for an http:// URL is sent to the same host and port as https://, so a
// master URL detected from ZooKeeper's MasterInfo (which has no scheme)
// or written as host:port reaches a TLS master.
func (s *Source) Transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = s.ClientConfig()
	t.ForceAttemptHTTP2 = false
	return upgrade{t}
}

// HTTPClient is an *http.Client on Transport, with no timeout (streams
// last) and net/http's redirect policy (Apron's links replace it).
func (s *Source) HTTPClient() *http.Client {
	return &http.Client{Transport: s.Transport()}
}

// upgrade sends http:// requests as https://.
type upgrade struct{ t *http.Transport }

func (u upgrade) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		r2 := r.Clone(r.Context())
		r2.URL.Scheme = "https"
		return u.t.RoundTrip(r2)
	}
	return u.t.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport.
func (u upgrade) CloseIdleConnections() { u.t.CloseIdleConnections() }

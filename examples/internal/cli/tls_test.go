package cli_test

import (
	"flag"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/internal/tlsconfig"
	"github.com/apronhq/apron/internal/tlsconfig/tlstest"
)

// Flags win; without them Mesos's LIBPROCESS_SSL_* environment is the
// default; neither is TLS off.
func TestTLSFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"LIBPROCESS_SSL_ENABLED":             "true",
		"LIBPROCESS_SSL_CERT_FILE":           "env.pem",
		"LIBPROCESS_SSL_KEY_FILE":            "env-key.pem",
		"LIBPROCESS_SSL_CA_FILE":             "env-ca.pem",
		"LIBPROCESS_SSL_REQUIRE_CLIENT_CERT": "true",
	}
	parse := func(env map[string]string, args ...string) (tlsconfig.Files, bool, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		tf := cli.TLS{Getenv: func(k string) string { return env[k] }}
		tf.RegisterServer(fs)
		require.NoError(t, fs.Parse(args))
		return tf.Files()
	}
	f, ok, err := parse(env)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, tlsconfig.Files{CertFile: "env.pem", KeyFile: "env-key.pem", CAFile: "env-ca.pem", RequireClientCert: true}, f)

	f, ok, err = parse(env, "-tls-cert", "c.pem", "-tls-key", "k.pem", "-tls-ca", "ca.pem")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, tlsconfig.Files{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}, f)

	_, ok, err = parse(nil)
	require.NoError(t, err)
	assert.False(t, ok)

	_, _, err = parse(map[string]string{"LIBPROCESS_SSL_ENABLED": "true"})
	assert.ErrorIs(t, err, tlsconfig.ErrConfig, "enabled without a certificate")
}

func TestTLSListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	same, err := cli.Listener(ln, nil)
	require.NoError(t, err)
	assert.Equal(t, ln, same, "no TLS: the listener as it is")

	ca := tlstest.NewCA(t, "cluster")
	src, err := (&cli.TLS{CA: ca.CAFile}).Source(nil)
	require.NoError(t, err)
	_, err = cli.Listener(ln, src)
	assert.ErrorIs(t, err, tlsconfig.ErrConfig, "serving needs a certificate")
	assert.Equal(t, "https", cli.Scheme(src))
	assert.Equal(t, "http", cli.Scheme(nil))
}

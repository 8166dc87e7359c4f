package tlsconfig

import (
	"fmt"
	"strings"
)

// EnvPrefix is the prefix of libprocess's SSL environment variables.
// Mesos also reads them with the older SSL_ prefix, under
// LIBPROCESS_SSL_'s precedence; FromEnv does too.
const EnvPrefix = "LIBPROCESS_SSL_"

// Environment variables FromEnv reads (after EnvPrefix), as libprocess
// names them.
const (
	EnvEnabled           = "ENABLED"
	EnvCertFile          = "CERT_FILE"
	EnvKeyFile           = "KEY_FILE"
	EnvCAFile            = "CA_FILE"
	EnvCADir             = "CA_DIR"
	EnvVerifyServerCert  = "VERIFY_SERVER_CERT"
	EnvVerifyCert        = "VERIFY_CERT" // legacy alias of VERIFY_SERVER_CERT
	EnvRequireClientCert = "REQUIRE_CLIENT_CERT"
	EnvRequireCert       = "REQUIRE_CERT" // legacy alias of REQUIRE_CLIENT_CERT
)

// FromEnv reads Mesos's LIBPROCESS_SSL_* environment (getenv is
// os.Getenv, or a test's map): enabled says whether
// LIBPROCESS_SSL_ENABLED is on. It mirrors libprocess: CERT_FILE and
// KEY_FILE are required when enabled; CA_FILE and CA_DIR name the CA;
// REQUIRE_CLIENT_CERT (or REQUIRE_CERT) makes servers require client
// certificates. It differs where libprocess is insecure: server
// certificates are verified unless VERIFY_SERVER_CERT (or VERIFY_CERT) is
// explicitly false. What Go decides for itself is accepted and ignored:
// VERIFY_IPADD (IP SANs are always checked), VERIFY_DEPTH, CIPHERS,
// ECDH_CURVES, HOSTNAME_VALIDATION_SCHEME (Go's is OpenSSL's), the
// ENABLE_* protocol switches (TLS 1.2 and 1.3 are on) and
// SUPPORT_DOWNGRADE (never: a server refuses plain HTTP, a client never
// falls back to it). A boolean is true/1 or false/0, as libprocess reads
// it; anything else is an error.
func FromEnv(getenv func(string) string) (f Files, enabled bool, err error) {
	get := func(name string) string {
		if v := getenv(EnvPrefix + name); v != "" {
			return v
		}
		return getenv("SSL_" + name)
	}
	boolean := func(names ...string) (value, set bool, err error) {
		for _, name := range names {
			v := strings.TrimSpace(get(name))
			switch strings.ToLower(v) {
			case "":
				continue
			case "true", "1":
				return true, true, nil
			case "false", "0":
				value, set = false, true
				continue // an alias may still say true, as libprocess ORs them
			default:
				return false, false, fmt.Errorf("%w: %s%s=%q: want true, false, 1 or 0", ErrConfig, EnvPrefix, name, v)
			}
		}
		return value, set, nil
	}
	enabled, _, err = boolean(EnvEnabled)
	if err != nil || !enabled {
		return Files{}, false, err
	}
	f = Files{
		CertFile: get(EnvCertFile),
		KeyFile:  get(EnvKeyFile),
		CAFile:   get(EnvCAFile),
		CADir:    get(EnvCADir),
	}
	if f.CertFile == "" || f.KeyFile == "" {
		return Files{}, true, fmt.Errorf("%w: %s%s=true needs %s%s and %s%s", ErrConfig, EnvPrefix, EnvEnabled, EnvPrefix, EnvCertFile, EnvPrefix, EnvKeyFile)
	}
	if f.RequireClientCert, _, err = boolean(EnvRequireClientCert, EnvRequireCert); err != nil {
		return Files{}, true, err
	}
	verify, set, err := boolean(EnvVerifyServerCert, EnvVerifyCert)
	if err != nil {
		return Files{}, true, err
	}
	// Requiring client certificates implies verifying servers, in
	// libprocess too.
	f.InsecureSkipVerify = set && !verify && !f.RequireClientCert
	return f, true, nil
}

// Env is the LIBPROCESS_SSL_* environment that makes a process started
// with it (an executor) read f back with FromEnv.
func Env(f Files) []string {
	env := []string{EnvPrefix + EnvEnabled + "=true"}
	add := func(name, v string) {
		if v != "" {
			env = append(env, EnvPrefix+name+"="+v)
		}
	}
	add(EnvCertFile, f.CertFile)
	add(EnvKeyFile, f.KeyFile)
	add(EnvCAFile, f.CAFile)
	add(EnvCADir, f.CADir)
	if f.RequireClientCert {
		add(EnvRequireClientCert, "true")
	}
	if f.InsecureSkipVerify {
		add(EnvVerifyServerCert, "false")
	} else {
		add(EnvVerifyServerCert, "true")
	}
	return env
}

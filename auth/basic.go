package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
)

// ErrUnauthenticated: a request carries no credential, or one that is not
// valid. It says no more, on purpose.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator finds the principal of an HTTP request.
type Authenticator interface {
	// Authenticate returns the principal that sent r, or
	// ErrUnauthenticated (or another error: the authenticator itself
	// failed, which is answered 401 too, and logged).
	Authenticate(r *http.Request) (principal string, err error)
	// Scheme is the challenge's scheme, "Basic" for Mesos's basic
	// authenticator: a 401 answers WWW-Authenticate: <scheme> realm="…".
	Scheme() string
}

// Basic is Mesos's "basic" HTTP authenticator: the request's
// Authorization: Basic header against a set of credentials. Secrets are
// compared in constant time (over their SHA-256, so that their lengths
// leak nothing either).
type Basic struct {
	secrets map[string][sha256.Size]byte
}

// NewBasic returns a Basic authenticator over creds.
func NewBasic(creds []Credential) *Basic {
	b := &Basic{secrets: make(map[string][sha256.Size]byte, len(creds))}
	for _, c := range creds {
		b.secrets[c.Principal] = sha256.Sum256([]byte(c.Secret))
	}
	return b
}

// Scheme is "Basic".
func (*Basic) Scheme() string { return "Basic" }

// Authenticate checks r's Basic credential.
func (b *Basic) Authenticate(r *http.Request) (string, error) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", ErrUnauthenticated
	}
	want, known := b.secrets[user]
	// Hash and compare even for an unknown principal, so that the time
	// taken does not tell which principals exist.
	got := sha256.Sum256([]byte(pass))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !known {
		return "", ErrUnauthenticated
	}
	return user, nil
}

// Challenge answers an unauthenticated request: 401 with a
// WWW-Authenticate header naming scheme and realm, and a body that says
// nothing about what was wrong.
func Challenge(w http.ResponseWriter, scheme, realm string) {
	w.Header().Set("WWW-Authenticate", scheme+" realm="+strconv.Quote(realm))
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
}

// Mesos's realms, one per endpoint family; a 401 names the family's.
const (
	RealmMasterReadOnly  = "mesos-master-readonly"
	RealmMasterReadWrite = "mesos-master-readwrite"
	RealmMasterScheduler = "mesos-master-scheduler"
	RealmAgentReadOnly   = "mesos-agent-readonly"
	RealmAgentReadWrite  = "mesos-agent-readwrite"
	RealmAgentExecutor   = "mesos-agent-executor"
)

// Authenticate wraps h so that only requests authn accepts reach it,
// with the principal in their context (PrincipalFrom). A nil authn lets
// every request through with no principal.
func Authenticate(authn Authenticator, realm string, h http.Handler) http.Handler {
	if authn == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := authn.Authenticate(r)
		if err != nil {
			Challenge(w, authn.Scheme(), realm)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

package auth

import "net/http"

// BasicTransport sends a credential with every request it carries, as
// HTTP Basic: a client (a scheduler driver, an agent's link to its
// master) wraps its transport in one so that every request is
// authenticated, those after a redirect or a leader change included.
type BasicTransport struct {
	// Base carries the requests; nil means http.DefaultTransport.
	Base       http.RoundTripper
	Credential Credential
}

// RoundTrip sends a copy of r with the credential.
func (t *BasicTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	// A RoundTripper must not change the request it is given.
	r2 := r.Clone(r.Context())
	r2.SetBasicAuth(t.Credential.Principal, t.Credential.Secret)
	return base.RoundTrip(r2)
}

// WithBasic returns a copy of hc (nil: a zero http.Client) whose
// requests all carry cred.
func WithBasic(hc *http.Client, cred Credential) *http.Client {
	var cp http.Client
	if hc != nil {
		cp = *hc
	}
	cp.Transport = &BasicTransport{Base: cp.Transport, Credential: cred}
	return &cp
}

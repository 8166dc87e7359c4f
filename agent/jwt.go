package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Executor tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519), as
// Mesos's JWTSecretGenerator makes them for --authenticate_http_executors
// and libprocess's JWT authenticator checks them. The claims are Mesos's:
// "fid" (framework ID), "eid" (executor ID) and "cid" (the executor's
// container ID), all strings. Only HS256 is accepted: a token saying
// "alg":"none" (or anything else) is refused, whatever its signature.

// errBadToken: a token that does not parse, is not signed with the key,
// or has expired. It says no more, on purpose.
var errBadToken = errors.New("invalid token")

// jwtHeader is the header of every token the agent signs.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// signJWT returns the token of claims signed with key.
func signJWT(key []byte, claims map[string]string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(jwtMAC(key, signed)), nil
}

func jwtMAC(key []byte, signed string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(signed))
	return h.Sum(nil)
}

// verifyJWT checks token's signature with key (in constant time), its
// algorithm (HS256 only) and, when it has one, its expiry ("exp", seconds
// since the epoch) against now, and returns its string claims.
func verifyJWT(key []byte, token string, now time.Time) (map[string]string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errBadToken
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, errBadToken
	}
	var h struct {
		Alg *string `json:"alg"`
		Typ *string `json:"typ"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg == nil || *h.Alg != "HS256" || (h.Typ != nil && *h.Typ != "JWT") {
		return nil, errBadToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, jwtMAC(key, parts[0]+"."+parts[1])) {
		return nil, errBadToken
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errBadToken
	}
	var raw map[string]any
	if json.Unmarshal(body, &raw) != nil {
		return nil, errBadToken
	}
	claims := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			claims[k] = v
		case float64:
			if k == "exp" && now.Unix() >= int64(v) {
				return nil, errBadToken
			}
		}
	}
	return claims, nil
}

// executorClaims are what an executor's token says it is.
type executorClaims struct {
	frameworkID, executorID, containerID string
}

type claimsKey struct{}

// executorToken is the token the agent gives the executor run e
// (MESOS_EXECUTOR_AUTHENTICATION_TOKEN), "" when it has no key.
func (a *Agent) executorToken(e *executorRec) (string, error) {
	if len(a.cfg.ExecutorSecretKey) == 0 {
		return "", nil
	}
	return signJWT(a.cfg.ExecutorSecretKey, map[string]string{"fid": e.FrameworkID(), "eid": e.ID(), "cid": e.ContainerID()})
}

// checkClaims refuses a call about executor run e from a caller whose
// token names another executor, framework or container (Mesos's
// verifyExecutorClaims): one executor may not speak for another. A
// caller with no claims (an in-process executor, or an agent that does
// not authenticate executors) passes.
func checkClaims(c *executorClaims, e *executorRec) error {
	switch {
	case c == nil:
		return nil
	case c.frameworkID != e.FrameworkID():
		return fmt.Errorf("%w: the authenticated executor does not have an 'fid' claim with the framework ID %s, which is set in the call", ErrNotSubscribed, e.FrameworkID())
	case c.executorID != e.ID():
		return fmt.Errorf("%w: the authenticated executor does not have an 'eid' claim with the executor ID %s, which is set in the call", ErrNotSubscribed, e.ID())
	case c.containerID != e.ContainerID():
		return fmt.Errorf("%w: the authenticated executor does not have a 'cid' claim with the correct active ContainerID", ErrNotSubscribed)
	}
	return nil
}

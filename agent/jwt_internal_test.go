package agent

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJWTRoundTrip(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1_700_000_000, 0)
	tok, err := signJWT(key, map[string]string{"fid": "f", "eid": "e", "cid": "c"})
	require.NoError(t, err)
	claims, err := verifyJWT(key, tok, now)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"fid": "f", "eid": "e", "cid": "c"}, claims)

	parts := strings.Split(tok, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	assert.JSONEq(t, `{"alg":"HS256","typ":"JWT"}`, string(hdr))

	enc := base64.RawURLEncoding.EncodeToString
	for name, bad := range map[string]string{
		"other key":        mustSign(t, []byte("other"), map[string]string{"fid": "f"}),
		"tampered payload": parts[0] + "." + enc([]byte(`{"fid":"g","eid":"e","cid":"c"}`)) + "." + parts[2],
		"alg none":         enc([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".",
		"no alg":           enc([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		"two parts":        parts[0] + "." + parts[1],
		"empty":            "",
		"bad base64":       "!!." + parts[1] + "." + parts[2],
	} {
		_, err := verifyJWT(key, bad, now)
		assert.ErrorIs(t, err, errBadToken, name)
	}

	// An expiry, when a token has one, is honoured.
	signedExp := func(exp string) string {
		body := enc([]byte(`{"fid":"f","exp":` + exp + `}`))
		signed := jwtHeader + "." + body
		return signed + "." + enc(jwtMAC(key, signed))
	}
	_, err = verifyJWT(key, signedExp("1600000000"), now)
	assert.ErrorIs(t, err, errBadToken, "expired")
	_, err = verifyJWT(key, signedExp("1800000000"), now)
	assert.NoError(t, err, "not expired")
}

func mustSign(t *testing.T, key []byte, claims map[string]string) string {
	t.Helper()
	tok, err := signJWT(key, claims)
	require.NoError(t, err)
	return tok
}

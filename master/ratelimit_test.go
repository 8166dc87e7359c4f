package master_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/master"
)

func TestParseRateLimits(t *testing.T) {
	rl, err := master.ParseRateLimits([]byte(`{"limits": [{"principal": "a", "qps": 5, "capacity": 10}, {"principal": "b"}],
		"aggregate_default_qps": 1, "aggregate_default_capacity": 2}`))
	require.NoError(t, err)
	require.Len(t, rl.Limits, 2)
	assert.Equal(t, 5.0, *rl.Limits[0].QPS)
	assert.Nil(t, rl.Limits[1].QPS)
	assert.Equal(t, uint64(2), *rl.AggregateDefaultCapacity)
	for name, doc := range map[string]string{
		"duplicate":     `{"limits": [{"principal": "a"}, {"principal": "a"}]}`,
		"zero qps":      `{"limits": [{"principal": "a", "qps": 0}]}`,
		"no principal":  `{"limits": [{"qps": 1}]}`,
		"unknown field": `{"limit": []}`,
		"negative cap":  `{"limits": [{"principal": "a", "qps": 1, "capacity": -1}]}`,
	} {
		_, err := master.ParseRateLimits([]byte(doc))
		assert.Error(t, err, name)
	}
}

// subscribeAs posts a SUBSCRIBE as principal (no credential for "") and
// returns the answer; a stream stays open until the test ends.
func subscribeAs(t *testing.T, h *httpMaster, principal, name string) *http.Response {
	t.Helper()
	info := frameworkInfo(name)
	if principal != "" {
		info.Principal = &principal
	}
	b, err := codec.JSON.Marshal(subscribeCall(info))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/api/v1/scheduler"), bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if principal != "" {
		req.SetBasicAuth(principal, "secret-"+principal)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A client that opens subscription after subscription is stopped at
// MaxClientRequests with 429, and other clients go on subscribing.
func TestSubscriptionFloodIsBoundedPerClient(t *testing.T) {
	creds := []auth.Credential{{Principal: "flood", Secret: "secret-flood"}, {Principal: "good", Secret: "secret-good"}}
	h := startHTTPMaster(t, master.Config{
		Authenticator: auth.NewBasic(creds), AuthenticateFrameworks: true, MaxClientRequests: 3,
	})
	for i := range 3 {
		resp := subscribeAs(t, h, "flood", "flood")
		require.Equal(t, http.StatusOK, resp.StatusCode, "subscription %d", i)
	}
	resp := subscribeAs(t, h, "flood", "flood")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Contains(t, body(t, resp), "too many requests open for principal flood")

	for range 3 {
		assert.Equal(t, http.StatusOK, subscribeAs(t, h, "good", "good").StatusCode, "another principal is served during the flood")
	}
	r, _ := h.get("/health")
	assert.Equal(t, http.StatusOK, r.StatusCode)
}

// A principal over its rate with its waiting room full gets 429; a
// principal listed without a qps, and one under its own limit, are
// served; unauthenticated clients share the aggregate default.
func TestRateLimits(t *testing.T) {
	qps, none := 0.001, uint64(0) // one request, then the next in 1,000 s
	creds := []auth.Credential{{Principal: "slow", Secret: "secret-slow"}, {Principal: "free", Secret: "secret-free"}}
	h := startHTTPMaster(t, master.Config{
		Authenticator: auth.NewBasic(creds),
		RateLimits: &master.RateLimits{
			Limits:              []master.RateLimit{{Principal: "slow", QPS: &qps, Capacity: &none}, {Principal: "free"}},
			AggregateDefaultQPS: &qps, AggregateDefaultCapacity: &none,
		},
	})
	h2 := startHTTPMaster(t, master.Config{
		Authenticator: auth.NewBasic(creds), AuthenticateFrameworks: true,
		RateLimits: &master.RateLimits{Limits: []master.RateLimit{{Principal: "slow", QPS: &qps, Capacity: &none}, {Principal: "free"}}},
	})
	assert.Equal(t, http.StatusOK, subscribeAs(t, h2, "slow", "s1").StatusCode)
	resp := subscribeAs(t, h2, "slow", "s2")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Contains(t, body(t, resp), "capacity(0) exceeded")
	for range 3 {
		assert.Equal(t, http.StatusOK, subscribeAs(t, h2, "free", "f").StatusCode)
	}

	// Without authentication every client shares the default.
	assert.Equal(t, http.StatusOK, subscribeAs(t, h, "", "anon1").StatusCode)
	assert.Equal(t, http.StatusTooManyRequests, subscribeAs(t, h, "", "anon2").StatusCode)
}

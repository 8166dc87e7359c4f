package webui_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/master"
)

type standby struct{ leader string }

func (s standby) Leader() (bool, string) { return false, s.leader }

// startMaster serves a running master's Handler.
func startMaster(t *testing.T, cfg master.Config) http.Handler {
	t.Helper()
	m, err := master.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m.Handler()
}

func status(h http.Handler, path string, user ...string) *http.Response {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if len(user) == 2 {
		req.SetBasicAuth(user[0], user[1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// The master serves the UI at "/" and its assets under /ui/, and every
// endpoint it served before, as before.
func TestWebUIMountedByMaster(t *testing.T) {
	h := startMaster(t, master.Config{})
	resp := status(h, "/")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, http.StatusOK, status(h, "/ui/app.js").StatusCode)
	for _, p := range []string{"/state", "/health", "/roles", "/tasks", "/master/state", "/version", "/metrics"} {
		assert.Equal(t, http.StatusOK, status(h, p).StatusCode, p)
	}
	assert.Equal(t, http.StatusNotFound, status(h, "/no-such-endpoint").StatusCode, "/ catches nothing else")
	assert.Equal(t, http.StatusNotFound, status(h, "/ui/no-such.js").StatusCode)
}

func TestWebUIDisabled(t *testing.T) {
	h := startMaster(t, master.Config{DisableWebUI: true})
	assert.Equal(t, http.StatusNotFound, status(h, "/").StatusCode)
	assert.Equal(t, http.StatusNotFound, status(h, "/ui/app.js").StatusCode)
	assert.Equal(t, http.StatusOK, status(h, "/state").StatusCode)
}

// With the read-only endpoints authenticated, the UI asks for a
// credential as /state does: the browser shows its prompt and then sends
// the credential with the page's every request.
func TestWebUIAuthenticated(t *testing.T) {
	h := startMaster(t, master.Config{
		Authenticator:            auth.NewBasic([]auth.Credential{{Principal: "ops", Secret: "s3cret"}}),
		AuthenticateHTTPReadOnly: true,
	})
	for _, p := range []string{"/", "/ui/app.js"} {
		resp := status(h, p)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, p)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `Basic realm="`, p)
		assert.Equal(t, http.StatusOK, status(h, p, "ops", "s3cret").StatusCode, p)
	}
}

// A standby sends a browser that opens its UI to the leader's; the
// assets, the same on every master, it serves itself.
func TestWebUIStandbyRedirects(t *testing.T) {
	h := startMaster(t, master.Config{Leadership: standby{leader: "http://10.0.0.2:5050"}})
	resp := status(h, "/")
	assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	assert.Equal(t, "//10.0.0.2:5050/", resp.Header.Get("Location"))
	assert.Equal(t, http.StatusOK, status(h, "/ui/app.js").StatusCode)
}

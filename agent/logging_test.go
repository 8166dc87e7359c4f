package agent_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
)

// postOperator POSTs a JSON operator call and returns the status and body.
func postOperator(t *testing.T, h *harness, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, agent.OperatorAPIPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// loggingLevel is GET_LOGGING_LEVEL's level, checking the answer's shape.
func loggingLevel(t *testing.T, h *harness) float64 {
	t.Helper()
	code, body := postOperator(t, h, `{"type":"GET_LOGGING_LEVEL"}`)
	require.Equal(t, http.StatusOK, code, body)
	var resp map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	assert.Equal(t, "GET_LOGGING_LEVEL", resp["type"])
	level, ok := obj(t, resp["get_logging_level"])["level"].(float64)
	require.True(t, ok, body)
	return level
}

func withLevel(lv *slog.LevelVar) func(*agent.Config) {
	return func(c *agent.Config) { c.LogLevel = lv }
}

func TestLoggingLevelSetAndRevert(t *testing.T) {
	lv := new(slog.LevelVar)
	h := newHarness(t, withLevel(lv))
	h.waitRegistered()
	assert.Equal(t, 0.0, loggingLevel(t, h))

	// SET answers 200 with no body (Mesos's code, though its doc says 202).
	code, body := postOperator(t, h, `{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":1,"duration":{"nanoseconds":60000000000}}}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Empty(t, body)
	assert.Equal(t, slog.LevelDebug, lv.Level())
	assert.Equal(t, 1.0, loggingLevel(t, h))

	// Reverted by the agent's clock once the duration has passed.
	h.clk.Advance(59 * time.Second)
	assert.Equal(t, 1.0, loggingLevel(t, h))
	h.clk.Advance(time.Second)
	require.Eventually(t, func() bool { return lv.Level() == slog.LevelInfo }, waitFor, tick)
	assert.Equal(t, 0.0, loggingLevel(t, h))

	// A later SET replaces the pending revert.
	code, _ = postOperator(t, h, `{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":3,"duration":{"nanoseconds":10000000000}}}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, 3.0, loggingLevel(t, h))
	code, _ = postOperator(t, h, `{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":2,"duration":{"nanoseconds":100000000000}}}`)
	require.Equal(t, http.StatusOK, code)
	h.clk.Advance(10 * time.Second)
	assert.Equal(t, 2.0, loggingLevel(t, h))
	assert.Equal(t, slog.LevelDebug, lv.Level())
	h.clk.Advance(90 * time.Second)
	require.Eventually(t, func() bool { return lv.Level() == slog.LevelInfo }, waitFor, tick)

	// Setting the original level back needs no revert.
	postOperator(t, h, `{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":1,"duration":{"nanoseconds":1000000000}}}`)
	code, _ = postOperator(t, h, `{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":0,"duration":{"nanoseconds":1000000000}}}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, slog.LevelInfo, lv.Level())
	assert.Equal(t, 0.0, loggingLevel(t, h))
}

// An embedder's level other than Info is the original one the agent
// reverts to.
func TestLoggingLevelRevertsToTheEmbeddersLevel(t *testing.T) {
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	var logs bytes.Buffer
	h := newHarness(t, withLevel(lv), func(c *agent.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: lv}))
	})
	h.waitRegistered()
	code, _ := postOperator(t, h, `{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":1,"duration":{"nanoseconds":5000000000}}}`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, slog.LevelDebug, lv.Level())
	h.clk.Advance(5 * time.Second)
	require.Eventually(t, func() bool { return lv.Level() == slog.LevelWarn }, waitFor, tick)
}

func TestLoggingLevelRefusals(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	for _, body := range []string{
		`{"type":"SET_LOGGING_LEVEL"}`,
		`{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":1}}`,
		`{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":"x","duration":{"nanoseconds":1}}}`,
	} {
		code, text := postOperator(t, h, body)
		assert.Equal(t, http.StatusBadRequest, code, "%s: %s", body, text)
	}
	code, text := postOperator(t, h, `{"type":"SET_LOGGING_LEVEL"}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, text, "Expecting 'set_logging_level' to be present")
}

func TestLoggingToggle(t *testing.T) {
	lv := new(slog.LevelVar)
	h := newHarness(t, withLevel(lv))
	h.waitRegistered()
	code, body := get(t, h, "/logging/toggle")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "0\n", body)

	code, body = get(t, h, "/logging/toggle?level=1&duration=10secs")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, slog.LevelDebug, lv.Level())
	_, body = get(t, h, "/logging/toggle")
	assert.Equal(t, "1\n", body)
	h.clk.Advance(10 * time.Second)
	require.Eventually(t, func() bool { return lv.Level() == slog.LevelInfo }, waitFor, tick)

	for path, want := range map[string]string{
		"/logging/toggle?level=1":                  "Expecting 'duration=value' in query.",
		"/logging/toggle?duration=1secs":           "Expecting 'level=value' in query.",
		"/logging/toggle?level=x&duration=1secs":   "",
		"/logging/toggle?level=-1&duration=1secs":  "Invalid level '-1'.",
		"/logging/toggle?level=1&duration=forever": "",
	} {
		code, body := get(t, h, path)
		assert.Equal(t, http.StatusBadRequest, code, path)
		assert.Contains(t, body, want, path)
	}

	// Under the original level is refused, as libprocess does.
	lv.Set(slog.LevelDebug)
	code, body = get(t, h, "/logging/toggle?level=0&duration=1secs")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "'0' < original level.")
}

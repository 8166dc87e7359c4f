package master_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
)

func setLoggingLevel(level uint32, d time.Duration) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_SET_LOGGING_LEVEL.Enum(), SetLoggingLevel: &masterpb.Call_SetLoggingLevel{
		Level: level, Duration: mesospb.DurationInfo{Nanoseconds: int64(d)},
	}}
}

func (h *harness) verbosity() uint32 {
	h.t.Helper()
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_LOGGING_LEVEL.Enum()})
	require.NoError(h.t, err)
	require.Equal(h.t, masterpb.Response_GET_LOGGING_LEVEL, resp.GetType())
	return resp.GetLoggingLevel.Level
}

// SET_LOGGING_LEVEL changes the embedder's slog level for a while, timed
// by the state machine's clock, as Mesos's glog verbosity.
func TestLoggingLevel(t *testing.T) {
	lv := new(slog.LevelVar) // Info
	h := newHarness(t, master.Config{LogLevel: lv})
	assert.Equal(t, uint32(0), h.verbosity())

	_, err := h.operator(&masterpb.Call{Type: masterpb.Call_SET_LOGGING_LEVEL.Enum()})
	require.ErrorIs(t, err, master.ErrInvalidCall, "set_logging_level missing")

	h.apply(setLoggingLevel(1, 10*time.Second))
	assert.Equal(t, slog.LevelDebug, lv.Level())
	assert.Equal(t, uint32(1), h.verbosity())
	h.advance(9 * time.Second)
	assert.Equal(t, slog.LevelDebug, lv.Level())

	// A later call replaces the pending revert, which still goes back to
	// the level before the first.
	h.apply(setLoggingLevel(3, 5*time.Second))
	assert.Equal(t, slog.LevelDebug-2, lv.Level())
	assert.Equal(t, uint32(3), h.verbosity())
	h.advance(2 * time.Second)
	assert.Equal(t, slog.LevelDebug-2, lv.Level(), "the first call's duration no longer counts")
	h.advance(3 * time.Second)
	assert.Equal(t, slog.LevelInfo, lv.Level(), "reverted")
	assert.Equal(t, uint32(0), h.verbosity())

	// Setting the original level cancels a pending revert.
	h.apply(setLoggingLevel(2, time.Second))
	h.apply(setLoggingLevel(0, time.Second))
	lv.Set(slog.LevelWarn) // the embedder's own change stays
	h.advance(2 * time.Second)
	assert.Equal(t, slog.LevelWarn, lv.Level())
	assert.Equal(t, uint32(0), h.verbosity(), "Warn reads as verbosity 0")
}

// Without Config.LogLevel the master keeps a level of its own.
func TestLoggingLevelWithoutLevelVar(t *testing.T) {
	h := newHarness(t, master.Config{})
	h.apply(setLoggingLevel(2, time.Second))
	assert.Equal(t, uint32(2), h.verbosity())
	h.advance(time.Second)
	assert.Equal(t, uint32(0), h.verbosity())
}

// Apron tracks no operations (no resource providers, every operation
// speculative), as a Mesos master whose agents have none.
func TestGetOperations(t *testing.T) {
	h := newHarness(t, master.Config{})
	h.registerAgent("cpus:1;mem:128")
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_OPERATIONS.Enum()})
	require.NoError(t, err)
	assert.Equal(t, masterpb.Response_GET_OPERATIONS, resp.GetType())
	require.NotNil(t, resp.GetOperations)
	assert.Empty(t, resp.GetOperations.Operations)
}

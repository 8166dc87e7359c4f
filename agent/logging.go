package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/httpapi"
)

// The logging level, as the operator calls GET_LOGGING_LEVEL and
// SET_LOGGING_LEVEL and libprocess's /logging/toggle see it. Mesos's level
// is glog's verbosity (FLAGS_v): 0 logs INFO and above, 1 and more add
// the VLOG(n) messages, which libprocess uses for its chatter. Apron logs
// with slog, whose level is Config.LogLevel: verbosity 0 is slog.LevelInfo
// and any verbosity of 1 or more is slog.LevelDebug (slog has nothing
// finer). As in libprocess (process/logging.hpp), a level other than the
// original one reverts to it once the duration has passed, on the agent's
// clock; a later SET replaces the pending revert.

// glogToSlog maps a glog verbosity to the slog level it enables.
func glogToSlog(v uint32) slog.Level {
	if v == 0 {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// currentGlogLevel is the verbosity the agent reports: what the last
// SET_LOGGING_LEVEL set while the level is still the one it made, else
// the level's own mapping (the embedder may change Config.LogLevel too).
// It runs on the loop.
func (a *Agent) currentGlogLevel() uint32 {
	cur := a.cfg.LogLevel.Level()
	if s := a.ops.logging.set; s != nil && s.slog == cur {
		return s.glog
	}
	if cur <= slog.LevelDebug {
		return 1
	}
	return 0
}

// originalGlogLevel is the verbosity a revert returns to. It runs on the
// loop.
func (a *Agent) originalGlogLevel() uint32 {
	if a.ops.logging.revert == 0 {
		return a.currentGlogLevel()
	}
	if a.ops.logging.original <= slog.LevelDebug {
		return 1
	}
	return 0
}

// setLoggingLevel sets the verbosity for d, then reverts it, as
// libprocess's Logging::set_level. It runs on the loop.
func (a *Agent) setLoggingLevel(level uint32, d time.Duration) {
	l := &a.ops.logging
	if l.revert == 0 {
		l.original = a.cfg.LogLevel.Level()
	}
	original := a.originalGlogLevel()
	a.tm.cancel(l.revert)
	l.revert = 0
	if level == original {
		// Back to the original level: nothing to revert.
		a.cfg.LogLevel.Set(l.original)
		l.set = nil
		a.log.Info("agent: logging level set", "level", level)
		return
	}
	l.set = &levelSet{glog: level, slog: glogToSlog(level)}
	a.cfg.LogLevel.Set(l.set.slog)
	a.log.Info("agent: logging level set", "level", level, "for", d)
	l.revert = a.tm.after(d, func() {
		l.revert = 0
		l.set = nil
		a.cfg.LogLevel.Set(l.original)
		a.log.Info("agent: logging level reverted", "level", l.original)
	})
}

// loggingCall answers GET_LOGGING_LEVEL and SET_LOGGING_LEVEL. As Mesos's
// (src/slave/http.cpp getLoggingLevel, setLoggingLevel), GET answers 200
// with the level and SET answers 200 with no body (Mesos's
// operator-http-api.md says 202; its code answers OK).
func (a *Agent) loggingCall(ctx context.Context, call *agentpb.Call) (*agentpb.Response, error) {
	if call.GetType() == agentpb.Call_GET_LOGGING_LEVEL {
		level, err := request(a, ctx, a.currentGlogLevel)
		if err != nil {
			return nil, err
		}
		return &agentpb.Response{
			Type:            agentpb.Response_GET_LOGGING_LEVEL.Enum(),
			GetLoggingLevel: &agentpb.Response_GetLoggingLevel{Level: level},
		}, nil
	}
	set := call.GetSetLoggingLevel()
	if set == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'set_logging_level' to be present")
	}
	d := time.Duration(set.Duration.Nanoseconds)
	if _, err := request(a, ctx, func() bool { a.setLoggingLevel(set.Level, d); return true }); err != nil {
		return nil, err
	}
	return nil, nil
}

// serveLoggingToggle is libprocess's GET /logging/toggle: with no query it
// answers the verbosity; with level and duration it sets it, refusing a
// level under the original one, as libprocess's Logging::toggle.
func (a *Agent) serveLoggingToggle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	level, duration := q.Get("level"), q.Get("duration")
	if !q.Has("level") && !q.Has("duration") {
		v, err := request(a, r.Context(), a.currentGlogLevel)
		if err != nil {
			httpapi.WriteError(w, handlerError(err))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "%d\n", v)
		return
	}
	bad := func(format string, args ...any) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, format, args...))
	}
	switch {
	case !q.Has("duration"):
		bad("Expecting 'duration=value' in query.")
		return
	case !q.Has("level"):
		bad("Expecting 'level=value' in query.")
		return
	}
	v, err := strconv.Atoi(level)
	if err != nil {
		bad("Failed to convert '%s' to number.", level)
		return
	}
	if v < 0 {
		bad("Invalid level '%d'.", v)
		return
	}
	d, err := executor.ParseDuration(duration)
	if err != nil {
		bad("%v.", err)
		return
	}
	refused, err := request(a, r.Context(), func() bool {
		if uint64(v) < uint64(a.originalGlogLevel()) {
			return true
		}
		a.setLoggingLevel(uint32(min(v, 1<<31)), d)
		return false
	})
	switch {
	case err != nil:
		httpapi.WriteError(w, handlerError(err))
	case refused:
		bad("'%d' < original level.", v)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

package master

import (
	"log/slog"
	"time"

	"github.com/apronhq/apron/api/v1/masterpb"
)

// The logging level of the operator API's GET_LOGGING_LEVEL and
// SET_LOGGING_LEVEL. Mesos's level is glog's verbosity (FLAGS_v): 0 logs
// INFO and above, and each level above 0 adds the VLOG(n) messages with
// n up to it (libprocess uses 1 to 3). Apron logs with log/slog, so the
// verbosity maps onto an slog level in Config.LogLevel, the slog.LevelVar
// the embedder's handler consults:
//
//	verbosity 0  ->  slog.LevelInfo
//	verbosity 1  ->  slog.LevelDebug
//	verbosity n  ->  slog.LevelDebug - (n-1), for handlers with levels finer than Debug
//
// and back: a level above Debug (Info, Warn, Error) reads as 0, Debug as
// 1, each step below Debug one more.
//
// SET_LOGGING_LEVEL sets the level at once and, as libprocess's
// Logging::set_level, reverts it after the call's duration unless the new
// level is the one it reverts to; a later call replaces the pending
// revert. The revert is timed by the core's clock (a tick), never by a
// timer of its own. The level it reverts to is the one in force before the
// first SET_LOGGING_LEVEL of the current run of changes (libprocess keeps
// the level the process started with; an embedder may have changed it
// since). Mesos answers 200 OK (its docs say 202; its code answers OK).

// logLevel is the operator's change of the logging level.
type logLevel struct {
	original slog.Level // what revertAt restores
	revertAt time.Time  // zero: no revert pending
}

// levelVar is the level handlers consult: Config.LogLevel, or one of the
// core's own when the embedder gave none.
func (c *core) levelVar() *slog.LevelVar {
	if c.cfg.LogLevel == nil {
		c.cfg.LogLevel = new(slog.LevelVar)
	}
	return c.cfg.LogLevel
}

// verbosityOf is the glog verbosity an slog level stands for.
func verbosityOf(l slog.Level) uint32 {
	if l > slog.LevelDebug {
		return 0
	}
	return 1 + uint32(slog.LevelDebug-l)
}

// levelOf is the slog level of a glog verbosity.
func levelOf(v uint32) slog.Level {
	if v == 0 {
		return slog.LevelInfo
	}
	const finest = 1 << 20 // far below any level a handler uses; no overflow
	return slog.LevelDebug - slog.Level(min(v-1, finest))
}

func (c *core) getLoggingLevel() *masterpb.Response_GetLoggingLevel {
	return &masterpb.Response_GetLoggingLevel{Level: verbosityOf(c.levelVar().Level())}
}

func (c *core) setLoggingLevel(s *masterpb.Call_SetLoggingLevel) {
	lv := c.levelVar()
	if c.logging.revertAt.IsZero() {
		c.logging.original = lv.Level()
	}
	level := levelOf(s.Level)
	lv.Set(level)
	c.log.Info("logging level set by the operator", "verbosity", s.Level, "level", level, "duration", time.Duration(s.Duration.Nanoseconds))
	if level == c.logging.original {
		c.logging.revertAt = time.Time{}
		return
	}
	c.logging.revertAt = c.now.Add(max(time.Duration(s.Duration.Nanoseconds), 0))
}

// revertLoggingLevel restores the level when its duration is over.
func (c *core) revertLoggingLevel() {
	if c.logging.revertAt.IsZero() || c.now.Before(c.logging.revertAt) {
		return
	}
	c.logging.revertAt = time.Time{}
	c.levelVar().Set(c.logging.original)
	c.log.Info("logging level reverted", "level", c.logging.original)
}

package executor

import (
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// healthTracker decides, from the results of a task's health check, what
// Mesos's health checker (src/checks/health_checker.cpp) reports: a
// healthy update on the first success and on the first success after
// failures; an unhealthy update on every failure, except failures within
// the grace period before the first success, which are ignored; and the
// kill once consecutiveFailures failures follow each other.
type healthTracker struct {
	maxFailures  uint32
	grace        time.Duration
	start        time.Time // the task's launch
	initializing bool      // no success yet
	failures     uint32    // consecutive
}

func newHealthTracker(h *mesospb.HealthCheck, start time.Time) *healthTracker {
	return &healthTracker{
		maxFailures:  h.GetConsecutiveFailures(),
		grace:        seconds(h.GetGracePeriodSeconds()),
		start:        start,
		initializing: true,
	}
}

// observe takes one result at now and says whether to send an update,
// with which health, and whether to kill the task.
func (h *healthTracker) observe(now time.Time, healthy bool) (report, kill bool) {
	if healthy {
		report = h.initializing || h.failures > 0
		h.initializing = false
		h.failures = 0
		return report, false
	}
	if h.initializing && h.grace > 0 && now.Sub(h.start) <= h.grace {
		return false, false
	}
	h.failures++
	return true, h.failures >= h.maxFailures
}

// healthy interprets a health check's result as Mesos does: a command that
// exited 0, an HTTP status in [200, 400), a TCP connection made.
func healthy(st *mesospb.CheckStatusInfo, err error) bool {
	if err != nil || st == nil {
		return false
	}
	switch st.GetType() {
	case mesospb.CheckInfo_COMMAND:
		return st.Command.GetExitCode() == 0
	case mesospb.CheckInfo_HTTP:
		c := st.HTTP.GetStatusCode()
		return c >= 200 && c < 400
	case mesospb.CheckInfo_TCP:
		return st.TCP.GetSucceeded()
	}
	return true
}

// checkTracker decides when a task's check reports, as Mesos's checker
// (src/checks/checker.cpp): whenever its CheckStatusInfo changes, a run
// that could not be performed counting as the empty status of its type,
// which is also where it starts.
type checkTracker struct {
	prev *mesospb.CheckStatusInfo
}

func newCheckTracker(typ mesospb.CheckInfo_Type) *checkTracker {
	return &checkTracker{prev: emptyCheckStatus(typ)}
}

// observe returns the status to report, or nil when it has not changed.
func (c *checkTracker) observe(st *mesospb.CheckStatusInfo, err error) *mesospb.CheckStatusInfo {
	if err != nil || st == nil {
		st = emptyCheckStatus(c.prev.GetType())
	}
	if proto.Equal(st, c.prev) {
		return nil
	}
	c.prev = st
	return st
}

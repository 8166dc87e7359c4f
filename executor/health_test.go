package executor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
)

// TestHealthTracker: Mesos's health checker's decisions, result by result.
func TestHealthTracker(t *testing.T) {
	type step struct {
		at      time.Duration // since launch
		healthy bool
		report  bool
		kill    bool
	}
	for _, tc := range []struct {
		name  string
		hc    mesospb.HealthCheck
		steps []step
	}{{
		name: "defaults: 3 failures, 10 s grace",
		steps: []step{
			{at: 5 * time.Second, healthy: false},                // in the grace period, before a success: ignored
			{at: 10 * time.Second, healthy: false},               // the grace period's last instant: ignored
			{at: 11 * time.Second, healthy: false, report: true}, // after it: the first failure
			{at: 12 * time.Second, healthy: true, report: true},  // the first success
			{at: 13 * time.Second, healthy: true},                // no change: nothing
			{at: 14 * time.Second, healthy: false, report: true}, // every failure is reported
			{at: 15 * time.Second, healthy: false, report: true},
			{at: 16 * time.Second, healthy: true, report: true}, // a success after failures
			{at: 17 * time.Second, healthy: false, report: true},
			{at: 18 * time.Second, healthy: false, report: true},
			{at: 19 * time.Second, healthy: false, report: true, kill: true},
		},
	}, {
		name: "a success ends the grace period",
		hc:   mesospb.HealthCheck{GracePeriodSeconds: ptr(100.0), ConsecutiveFailures: ptr(uint32(1))},
		steps: []step{
			{at: time.Second, healthy: false},
			{at: 2 * time.Second, healthy: true, report: true},
			{at: 3 * time.Second, healthy: false, report: true, kill: true},
		},
	}, {
		name: "no grace period",
		hc:   mesospb.HealthCheck{GracePeriodSeconds: ptr(0.0), ConsecutiveFailures: ptr(uint32(2))},
		steps: []step{
			{at: 0, healthy: false, report: true},
			{at: time.Second, healthy: false, report: true, kill: true},
		},
	}, {
		name: "consecutive_failures 0 kills at the first failure, as Mesos's >= does",
		hc:   mesospb.HealthCheck{GracePeriodSeconds: ptr(0.0), ConsecutiveFailures: ptr(uint32(0))},
		steps: []step{
			{at: 0, healthy: true, report: true},
			{at: time.Second, healthy: false, report: true, kill: true},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealthTracker(&tc.hc, epoch)
			for i, s := range tc.steps {
				report, kill := h.observe(epoch.Add(s.at), s.healthy)
				assert.Equal(t, s.report, report, "step %d: report", i)
				assert.Equal(t, s.kill, kill, "step %d: kill", i)
			}
		})
	}
}

func TestHealthyInterpretation(t *testing.T) {
	code := func(c int32) *mesospb.CheckStatusInfo {
		return &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_COMMAND.Enum(), Command: &mesospb.CheckStatusInfo_Command{ExitCode: &c}}
	}
	status := func(c uint32) *mesospb.CheckStatusInfo {
		return &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_HTTP.Enum(), HTTP: &mesospb.CheckStatusInfo_Http{StatusCode: &c}}
	}
	tcp := func(ok bool) *mesospb.CheckStatusInfo {
		return &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_TCP.Enum(), TCP: &mesospb.CheckStatusInfo_Tcp{Succeeded: &ok}}
	}
	assert.True(t, healthy(code(0), nil))
	assert.False(t, healthy(code(1), nil))
	assert.False(t, healthy(code(0), errors.New("timed out")))
	for c, want := range map[uint32]bool{199: false, 200: true, 302: true, 399: true, 400: false, 503: false} {
		assert.Equal(t, want, healthy(status(c), nil), "status %d", c)
	}
	assert.True(t, healthy(tcp(true), nil))
	assert.False(t, healthy(tcp(false), nil))
}

func TestCheckTracker(t *testing.T) {
	c := newCheckTracker(mesospb.CheckInfo_COMMAND)
	code := func(v int32) *mesospb.CheckStatusInfo {
		return &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_COMMAND.Enum(), Command: &mesospb.CheckStatusInfo_Command{ExitCode: &v}}
	}
	assert.Nil(t, c.observe(nil, errors.New("failed")), "a failure before any result: still empty")
	assert.Equal(t, code(1), c.observe(code(1), nil))
	assert.Nil(t, c.observe(code(1), nil), "no change")
	assert.Equal(t, code(0), c.observe(code(0), nil))
	assert.Equal(t, emptyCheckStatus(mesospb.CheckInfo_COMMAND), c.observe(nil, errors.New("timed out")),
		"a failed run reports the empty status")
	assert.Nil(t, c.observe(nil, errors.New("timed out again")))
}

func TestEmptyCheckStatus(t *testing.T) {
	assert.Equal(t, `type:COMMAND command:<> `, emptyCheckStatus(mesospb.CheckInfo_COMMAND).String())
	assert.Equal(t, `type:HTTP http:<> `, emptyCheckStatus(mesospb.CheckInfo_HTTP).String())
	assert.Equal(t, `type:TCP tcp:<> `, emptyCheckStatus(mesospb.CheckInfo_TCP).String())
}

func TestMesosDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		20 * time.Second:        "20secs",
		1500 * time.Millisecond: "1.5secs",
		100 * time.Millisecond:  "100ms",
		2 * time.Minute:         "2mins",
		3 * time.Hour:           "3hrs",
	} {
		assert.Equal(t, want, mesosDuration(d))
	}
}

func TestCheckContainerID(t *testing.T) {
	assert.Equal(t, "p.t.check-7", checkContainerID("p.t", 7))
	long := checkContainerID(strings.Repeat("x", containerizer.MaxIDLength), 12)
	assert.Len(t, long, containerizer.MaxIDLength)
	assert.True(t, strings.HasSuffix(long, ".check-12"))
	require.NoError(t, containerizer.ValidateID(long))
}

// TestValidateChecks: Mesos's messages (common/validation.cpp, with the
// prefix of master/validation.cpp) for each way a check is invalid.

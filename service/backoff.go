package service

import (
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Relaunch backoff defaults (Backoff's zero values).
const (
	DefaultBackoffInitial    = time.Second
	DefaultBackoffMax        = time.Minute
	DefaultBackoffResetAfter = time.Minute
)

// Backoff paces the recovery plan's relaunches of a pod whose task
// failed, so that a pod that cannot start (a Kafka broker whose killed
// predecessor is still registered in ZooKeeper until its session
// expires, a bad disk, a missing dependency) is not relaunched, its
// distribution fetched and its process started, many times a second.
// After a pod's task ends on its own (FAILED, FINISHED, ERROR, DROPPED,
// or KILLED by anyone but the service: a failed health check), its
// relaunch waits Initial, doubled for each consecutive such failure, up
// to Max; offers are declined meanwhile (for at most the time left), and
// the pod's status and plan step say until when it waits (DELAYED).
// The failures are forgotten once the pod has been ready for ResetAfter.
//
// Only those relaunches wait: a pod's first launch, relaunches the
// operator commands (RestartPod, which also ends a wait under way;
// ReplacePod, which also forgets the failures), the deploy plan's
// (roll-outs of a new configuration, including to a pod that is
// waiting), and those of a pod whose task was lost with its agent
// (LOST, UNREACHABLE, GONE: ReplaceAfter times those) do not.
//
// The count and the end of the wait are kept in the State, as a wall
// clock time: a restarted scheduler (or a standby taking over) keeps
// pacing a pod that keeps failing instead of starting over from Initial
// each time, which is what a scheduler restarted by the same trouble
// (a ZooKeeper outage) would otherwise do; a wait found longer than Max
// from now (another instance's clock, a lower Max) is cut to Max.
//
// DC/OS Commons has the same (opt-in there, and framework-wide, through
// ENABLE_BACKOFF, FRAMEWORK_INITIAL_BACKOFF = 60 s,
// FRAMEWORK_BACKOFF_FACTOR = 1.15 and FRAMEWORK_MAX_LAUNCH_DELAY =
// 300 s); here it is on by default, with a shorter first delay, since a
// stateful pod that failed once is usually wanted back at once, and a
// shorter cap, since a pod that waits stays down.
type Backoff struct {
	// Initial is the delay after a pod's first failure (default 1 s).
	Initial time.Duration `json:"initial,omitempty"`
	// Max caps the delay (default 1 min, or Initial if that is longer).
	Max time.Duration `json:"max,omitempty"`
	// ResetAfter is how long a pod must have been ready for its
	// failures to be forgotten (default 1 min).
	ResetAfter time.Duration `json:"reset_after,omitempty"`
	// Disabled relaunches failed pods on their next offer, without
	// delay.
	Disabled bool `json:"disabled,omitempty"`
}

func (b Backoff) validate() error {
	if b.Initial < 0 || b.Max < 0 || b.ResetAfter < 0 {
		return invalid("relaunch_backoff: negative initial, max or reset_after")
	}
	if b.Initial > 0 && b.Max > 0 && b.Initial > b.Max {
		return invalid("relaunch_backoff: initial %v is above max %v", b.Initial, b.Max)
	}
	return nil
}

func (b Backoff) initial() time.Duration {
	if b.Initial > 0 {
		return b.Initial
	}
	return DefaultBackoffInitial
}

func (b Backoff) max() time.Duration {
	if b.Max > 0 {
		return b.Max
	}
	return max(DefaultBackoffMax, b.initial())
}

func (b Backoff) resetAfter() time.Duration {
	if b.ResetAfter > 0 {
		return b.ResetAfter
	}
	return DefaultBackoffResetAfter
}

// Delay is the wait before relaunching a pod after its nth consecutive
// failure (n ≥ 1): Initial doubled n-1 times, at most Max; zero when
// Disabled.
func (b Backoff) Delay(n int) time.Duration {
	if b.Disabled || n < 1 {
		return 0
	}
	d, ceiling := b.initial(), b.max()
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// relaunchFailure: a terminal state that says the task itself ended, as
// opposed to it being lost with its agent (or its fate unknown).
func relaunchFailure(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FAILED, mesospb.TASK_FINISHED, mesospb.TASK_KILLED, mesospb.TASK_ERROR, mesospb.TASK_DROPPED:
		return true
	}
	return false
}

// failed counts a failure of the pod's task and starts its wait.
func (c *Core) failed(p *PodState) {
	if c.stable(p) {
		p.Failures = 0
	}
	p.Failures++
	p.BackoffUntil = time.Time{}
	if d := c.spec.RelaunchBackoff.Delay(p.Failures); d > 0 {
		p.BackoffUntil = c.now.Add(d)
	}
	c.changed()
}

// stable: the pod has been ready long enough for its failures to be
// forgotten. A pod ready in a state saved before ReadySince was kept
// counts as stable.
func (c *Core) stable(p *PodState) bool {
	return p.Ready && !c.now.IsZero() && c.now.Sub(p.ReadySince) >= c.spec.RelaunchBackoff.resetAfter()
}

// backingOff: the recovery plan would relaunch the pod but for its
// backoff.
func (c *Core) backingOff(p *PodState) bool {
	return !c.spec.RelaunchBackoff.Disabled && c.now.Before(p.BackoffUntil) &&
		p.TaskID != "" && !p.active() && p.Config == p.Target && !p.Decommission && !c.state.Uninstalling
}

// paceRelaunches forgets the failures of pods that have been ready long
// enough, and cuts waits longer than Max from now.
func (c *Core) paceRelaunches() {
	if c.now.IsZero() {
		return
	}
	ceiling := c.now.Add(c.spec.RelaunchBackoff.max())
	for _, p := range c.state.Pods {
		if p.Failures > 0 && c.stable(p) {
			p.Failures, p.BackoffUntil = 0, time.Time{}
			c.changed()
		}
		if p.BackoffUntil.After(ceiling) {
			p.BackoffUntil = ceiling
			c.changed()
		}
	}
}

// nextRelaunch is the time until the first waiting pod may be
// relaunched, zero when none waits: no offer is declined for longer.
func (c *Core) nextRelaunch() time.Duration {
	var next time.Duration
	for _, p := range c.state.Pods {
		if c.backingOff(p) {
			if d := p.BackoffUntil.Sub(c.now); next == 0 || d < next {
				next = d
			}
		}
	}
	return next
}

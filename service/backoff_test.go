package service

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

func TestBackoffDelay(t *testing.T) {
	s := time.Second
	cases := []struct {
		name string
		b    Backoff
		want []time.Duration // after the 1st, 2nd, ... failure
	}{
		{"defaults", Backoff{}, []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, time.Minute, time.Minute}},
		{"custom", Backoff{Initial: 3 * s, Max: 10 * s}, []time.Duration{3 * s, 6 * s, 10 * s, 10 * s}},
		{"initial above the default max", Backoff{Initial: 2 * time.Minute}, []time.Duration{2 * time.Minute, 2 * time.Minute}},
		{"disabled", Backoff{Disabled: true}, []time.Duration{0, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []time.Duration
			for n := 1; n <= len(tc.want); n++ {
				got = append(got, tc.b.Delay(n))
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.want[len(tc.want)-1], tc.b.Delay(1000), "no overflow")
		})
	}
}

// refusals are the refuse_seconds of the declines in calls.
func refusals(calls []*schedulerpb.Call) []float64 {
	var out []float64
	for _, c := range calls {
		if c.GetType() == schedulerpb.Call_DECLINE {
			out = append(out, c.Decline.Filters.GetRefuseSeconds())
		}
	}
	return out
}

// recoveryStep is the pod's step in the recovery plan.
func (s *sim) recoveryStep(pod string) StepStatus {
	plan, err := s.core.Plan(PlanRecovery)
	require.NoError(s.t, err)
	for _, st := range plan.Phases[0].Steps {
		if st.Pod == pod {
			return st
		}
	}
	return StepStatus{}
}

// A pod whose task keeps failing is relaunched after a delay that doubles
// with each failure, up to a cap; its agent's offers are declined
// meanwhile, for no longer than the wait, and it is relaunched on the
// first offer once the wait is over.
func TestRelaunchBackoffGrows(t *testing.T) {
	s := time.Second
	cases := []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"defaults", Backoff{}, []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, time.Minute, time.Minute}},
		{"custom", Backoff{Initial: 3 * s, Max: 10 * s}, []time.Duration{3 * s, 6 * s, 10 * s, 10 * s}},
		{"disabled", Backoff{Disabled: true}, []time.Duration{0, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			spec.RelaunchBackoff = tc.b
			sm := newSim(t, spec, 3)
			sm.deployAll()
			agent := sm.tasks[sm.podTask("node-1")].agent
			for i, d := range tc.want {
				states := []mesospb.TaskState{mesospb.TASK_FAILED, mesospb.TASK_FINISHED, mesospb.TASK_KILLED, mesospb.TASK_ERROR}
				sm.status(sm.podTask("node-1"), states[i%len(states)])
				p, _ := sm.core.Pod("node-1")
				assert.Equal(t, i+1, p.Failures)
				if d > 0 {
					assert.Equal(t, sm.now.Add(d), p.BackoffUntil, "failure %d", i+1)
					assert.Equal(t, StepStatus{Pod: "node-1", Status: StatusDelayed, BackoffUntil: sm.now.Add(d)}, sm.recoveryStep("node-1"))
					assert.Equal(t, StatusInProgress, sm.planStatus(PlanRecovery))
					calls := sm.offer(agent)
					assert.Equal(t, map[string]int{"DECLINE": 1}, ops(calls), "failure %d: its offer is not used", i+1)
					require.Len(t, refusals(calls), 1)
					assert.LessOrEqual(t, refusals(calls)[0], d.Seconds(), "declined for no longer than the wait")
					sm.tick(d - time.Second)
					assert.Empty(t, launched(sm.offer(agent)), "failure %d: a second early", i+1)
					assert.Equal(t, map[string]int{"REVIVE": 1}, ops(sm.tick(time.Second)), "failure %d: wanted again", i+1)
				} else {
					assert.True(t, p.BackoffUntil.IsZero())
					assert.Equal(t, StatusInProgress, sm.recoveryStep("node-1").Status)
				}
				calls := sm.offer(agent)
				require.Equal(t, []string{"node-1"}, launched(calls), "failure %d", i+1)
				assert.Equal(t, map[string]int{"LAUNCH": 1}, ops(calls))
				sm.run("node-1") // ready, but only just: the next failure counts on
			}
		})
	}
}

// Readiness held for ResetAfter forgets the failures; readiness held for
// less, or a task running without passing its readiness check, does not.
func TestRelaunchBackoffResetsOnceReady(t *testing.T) {
	passing := func(st *mesospb.TaskStatus) {
		st.CheckStatus = &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_COMMAND.Enum(), Command: &mesospb.CheckStatusInfo_Command{ExitCode: ptr(int32(0))}}
	}
	cases := []struct {
		name       string
		resetAfter time.Duration
		ready      bool          // the relaunched task passes its check
		up         time.Duration // how long it runs before failing again
		want       time.Duration // the wait after that failure
	}{
		{"ready for reset_after", 0, true, DefaultBackoffResetAfter, DefaultBackoffInitial},
		{"ready for less", 0, true, DefaultBackoffResetAfter - time.Second, 2 * DefaultBackoffInitial},
		{"running, never ready", 0, false, 10 * DefaultBackoffResetAfter, 2 * DefaultBackoffInitial},
		{"custom reset_after", 10 * time.Second, true, 10 * time.Second, DefaultBackoffInitial},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			spec.Pods[0].Count = 1
			spec.Pods[0].Readiness = &CheckSpec{Command: "true"}
			spec.RelaunchBackoff.ResetAfter = tc.resetAfter
			s := newSim(t, spec, 1)
			require.Equal(t, []string{"node-0"}, launched(s.offer()))
			s.status(s.podTask("node-0"), mesospb.TASK_RUNNING, passing)
			require.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
			// First failure.
			s.status(s.podTask("node-0"), mesospb.TASK_FAILED)
			s.tick(DefaultBackoffInitial)
			require.Equal(t, []string{"node-0"}, launched(s.offer()))
			if tc.ready {
				s.status(s.podTask("node-0"), mesospb.TASK_RUNNING, passing)
			} else {
				s.run("node-0")
			}
			s.tick(tc.up)
			p, _ := s.core.Pod("node-0")
			if tc.want == DefaultBackoffInitial {
				assert.Zero(t, p.Failures, "forgotten while it runs")
			} else {
				assert.Equal(t, 1, p.Failures)
			}
			s.status(s.podTask("node-0"), mesospb.TASK_FAILED)
			p, _ = s.core.Pod("node-0")
			assert.Equal(t, s.now.Add(tc.want), p.BackoffUntil)
		})
	}
}

// Relaunches that are not recoveries from a failure wait for nothing,
// whatever the pod's failures: those the operator commands (restart,
// replace, including of a pod that waits) and the deploy plan's
// (roll-outs of a new configuration).
func TestRelaunchBackoffSparesPlannedRelaunches(t *testing.T) {
	cases := []struct {
		name string
		// waiting: the command comes while the pod waits after its
		// second failure; else once it runs again after it.
		waiting bool
		act     func(t *testing.T, s *sim)
		// failures is the count after: a new placement starts afresh.
		failures int
	}{
		{"restart", false, func(t *testing.T, s *sim) {
			require.NoError(t, s.core.RestartPod("node-1"))
			s.kills(s.drain())
		}, 2},
		{"restart while waiting", true, func(t *testing.T, s *sim) {
			require.NoError(t, s.core.RestartPod("node-1"))
			s.drain()
		}, 2},
		{"replace", false, func(t *testing.T, s *sim) {
			require.NoError(t, s.core.ReplacePod("node-1"))
			s.kills(s.drain())
		}, 0},
		{"replace while waiting", true, func(t *testing.T, s *sim) {
			require.NoError(t, s.core.ReplacePod("node-1"))
			s.drain()
		}, 0},
		{"roll-out", false, func(t *testing.T, s *sim) {
			next := testSpec()
			next.Pods[0].Strategy, next.Pods[0].Quorum = Parallel, false
			next.Pods[0].Env = map[string]string{"MODE": "v2"}
			require.NoError(t, s.core.UpdateSpec(next))
			s.kills(s.drain())
		}, 2},
		{"roll-out to a waiting pod", true, func(t *testing.T, s *sim) {
			next := testSpec()
			next.Pods[0].Strategy, next.Pods[0].Quorum = Parallel, false
			next.Pods[0].Env = map[string]string{"MODE": "v2"}
			require.NoError(t, s.core.UpdateSpec(next))
			s.kills(s.drain())
		}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			spec.Pods[0].Strategy, spec.Pods[0].Quorum = Parallel, false
			s := newSim(t, spec, 4)
			s.deployAll()
			for i := 1; i <= 2; i++ {
				s.status(s.podTask("node-1"), mesospb.TASK_FAILED)
				if i == 2 && tc.waiting {
					break
				}
				s.tick(spec.RelaunchBackoff.Delay(i))
				require.Equal(t, []string{"node-1"}, launched(s.offer()))
				s.run("node-1")
			}
			p, _ := s.core.Pod("node-1")
			require.Equal(t, 2, p.Failures)
			tc.act(t, s)
			assert.Contains(t, launched(s.offer()), "node-1", "relaunched on the next offer")
			p, _ = s.core.Pod("node-1")
			assert.Equal(t, tc.failures, p.Failures)
		})
	}
}

// The failures and the end of the wait are in the state: a restarted
// scheduler keeps the wait; one longer than Max from now (another
// instance's clock) is cut to Max.
func TestRelaunchBackoffAcrossRestart(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	s.status(s.podTask("node-1"), mesospb.TASK_FAILED)
	s.tick(time.Second)
	s.offer()
	s.run("node-1")
	s.status(s.podTask("node-1"), mesospb.TASK_FAILED)
	until := s.now.Add(2 * time.Second)
	require.True(t, until.Equal(s.saved.Pods["node-1"].BackoffUntil), "saved")
	s.restart()
	p, _ := s.core.Pod("node-1")
	assert.Equal(t, 2, p.Failures)
	assert.True(t, until.Equal(p.BackoffUntil), "kept: %v", p.BackoffUntil)
	assert.Empty(t, launched(s.offer()), "still waiting")
	s.tick(2 * time.Second)
	assert.Equal(t, []string{"node-1"}, launched(s.offer()))
	s.run("node-1")

	s.status(s.podTask("node-1"), mesospb.TASK_FAILED)
	s.saved.Pods["node-1"].BackoffUntil = s.now.Add(time.Hour)
	s.restart()
	p, _ = s.core.Pod("node-1")
	assert.True(t, s.now.Add(DefaultBackoffMax).Equal(p.BackoffUntil), "cut to max: %v", p.BackoffUntil)
}

// A task lost with its agent, or killed by the service (a restart, a
// roll-out, a decommission), is no failure: nothing waits.
func TestRelaunchBackoffCountsOnlyFailures(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	s.status(s.podTask("node-1"), mesospb.TASK_LOST)
	p, _ := s.core.Pod("node-1")
	assert.Zero(t, p.Failures)
	assert.Equal(t, []string{"node-1"}, launched(s.offer()))
	s.run("node-1")
	// Killed by a restart, the task fails rather than reporting KILLED.
	require.NoError(t, s.core.RestartPod("node-1"))
	require.Len(t, killed(s.drain()), 1)
	s.status(s.podTask("node-1"), mesospb.TASK_FAILED)
	p, _ = s.core.Pod("node-1")
	assert.Zero(t, p.Failures)
	assert.Equal(t, []string{"node-1"}, launched(s.offer()))
	// A duplicate terminal status counts once.
	s.run("node-1")
	task := s.podTask("node-1")
	s.status(task, mesospb.TASK_FAILED)
	s.status(task, mesospb.TASK_FAILED)
	p, _ = s.core.Pod("node-1")
	assert.Equal(t, 1, p.Failures)
}

// The operator sees the wait in the pod's status and its plan step, as
// the HTTP API encodes them.
func TestRelaunchBackoffStatusJSON(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	s.status(s.podTask("node-1"), mesospb.TASK_FAILED)
	p, err := s.core.Pod("node-1")
	require.NoError(t, err)
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, 1.0, got["failures"])
	assert.Equal(t, s.now.Add(time.Second).Format(time.RFC3339Nano), got["backoff_until"])
	plan, err := s.core.Plan(PlanRecovery)
	require.NoError(t, err)
	b, err = json.Marshal(plan)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"status":"DELAYED","backoff_until":"`)
	// Once the wait is over, no backoff_until.
	s.tick(time.Second)
	p, _ = s.core.Pod("node-1")
	b, _ = json.Marshal(p)
	assert.NotContains(t, string(b), "backoff_until")
	assert.Equal(t, StatusInProgress, s.recoveryStep("node-1").Status)
}

package service

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With a decommission hook, a pod removed by a scale down keeps running
// until its hook succeeds: the core asks for the hook (again after a
// failure or a restart), and only then kills the pod and frees its
// resources. Uninstall runs no hook.
func TestDecommissionHook(t *testing.T) {
	cases := []struct {
		name string
		// before runs between the first ask and the hook's success; it
		// returns whether node-2's hook is asked for again.
		before func(s *sim) bool
	}{
		{"succeeds", func(s *sim) bool { s.drain(); return false }},
		{"fails once", func(s *sim) bool {
			s.core.HookDone("node-2", errors.New("peers unreachable"))
			s.drain()
			return true
		}},
		{"scheduler restarted", func(s *sim) bool { s.restart(); return true }},
		{"ticks and offers", func(s *sim) bool {
			s.core.Tick(s.now)
			s.drain()
			s.offer()
			return false
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, testSpec(), 3)
			s.hook = true
			s.restart()
			s.deployAll()
			down := testSpec()
			down.Pods[0].Count = 2
			s.spec = down
			require.NoError(t, s.core.UpdateSpec(down))
			calls := s.drain()
			assert.Equal(t, []string{"node-2"}, s.hooks)
			assert.Empty(t, killed(calls), "not killed before its hook")
			again := tc.before(s)
			if again {
				assert.Equal(t, []string{"node-2"}, s.hooks, "asked again")
			} else {
				assert.Empty(t, s.hooks, "asked once")
			}
			assert.Equal(t, "TASK_RUNNING", s.core.state.Pods["node-2"].TaskState, "still running")
			p2, _ := s.core.Pod("node-2")
			s.core.HookDone("node-2", nil)
			calls = s.drain()
			assert.Equal(t, []string{p2.TaskID}, killed(calls))
			s.kills(calls)
			s.offer()
			_, err := s.core.Pod("node-2")
			assert.ErrorIs(t, err, ErrUnknownPod)
			assert.True(t, s.agents[p2.AgentID].reservedFor("node-2").Empty(), "unreserved")
		})
	}
	t.Run("uninstall", func(t *testing.T) {
		s := newSim(t, testSpec(), 3)
		s.hook = true
		s.restart()
		s.deployAll()
		s.core.Uninstall()
		calls := s.drain()
		assert.Empty(t, s.hooks)
		assert.Len(t, killed(calls), 3)
	})
}

package service

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

func togetherSpec() *Spec {
	spec := testSpec()
	ps := &spec.Pods[0]
	ps.PlaceTogether = true
	ps.Placement.MaxPerHost = 1
	ps.Command = `{{range .Peers}}server.{{add .Index 1}}={{.Addr "client"}} {{end}}`
	return spec
}

// offerUntilLaunched offers every agent until each of the pods has a task
// (at most rounds times), and counts the operations of those offers.
func (s *sim) offerUntilLaunched(rounds int, pods ...string) map[string]int {
	total := map[string]int{}
	for i := 0; i < rounds; i++ {
		for k, v := range ops(s.offer()) {
			total[k] += v
		}
		all := true
		for _, p := range pods {
			all = all && s.podTask(p) != ""
		}
		if all {
			break
		}
	}
	return total
}

// A PlaceTogether type's pods are all placed (RESERVE, CREATE) before any
// is launched, and each task's first command names every peer.
func TestPlaceTogether(t *testing.T) {
	s := newSim(t, togetherSpec(), 3)
	calls := s.offer()
	assert.Equal(t, []string{"node-2"}, launched(calls), "only the last one placed is launched at once")
	assert.Equal(t, 3, ops(calls)["RESERVE"])
	assert.Equal(t, 3, ops(calls)["CREATE"])
	calls = s.offer()
	assert.Equal(t, []string{"node-0", "node-1"}, launched(calls), "the others, on their reservations")
	assert.Equal(t, map[string]int{"LAUNCH": 2, "DECLINE": 1}, ops(calls))
	var want string
	for i := 0; i < 3; i++ {
		p, _ := s.core.Pod(podName("node", i))
		want += fmt.Sprintf("server.%d=%s:%d ", i+1, p.Hostname, p.Ports["client"])
	}
	for i := 0; i < 3; i++ {
		assert.Equal(t, want, s.tasks[s.podTask(podName("node", i))].info.Command.GetValue(), "node-%d's command", i)
	}
	for i := 0; i < 3; i++ {
		assert.Empty(t, killed(s.run(podName("node", i))), "none restarted: all knew their peers")
	}
	assert.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
}

// A replaced pod's peers learn its new address: once it is ready, they
// are restarted in place one at a time (a quorum type), each with a
// command naming it where it is now.
func TestPlaceTogetherReplaceRestartsPeers(t *testing.T) {
	cases := []struct {
		replace string
		peers   []string // restarted, in order
	}{
		{"node-0", []string{"node-1", "node-2"}},
		{"node-2", []string{"node-0", "node-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.replace, func(t *testing.T) { testReplaceRestartsPeers(t, tc.replace, tc.peers) })
	}
}

func testReplaceRestartsPeers(t *testing.T, replace string, peers []string) {
	s := newSim(t, togetherSpec(), 4)
	s.offerUntilLaunched(3, "node-0", "node-1", "node-2")
	for i := 0; i < 3; i++ {
		s.run(podName("node", i))
	}
	require.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
	require.NoError(t, s.core.ReplacePod(replace))
	s.kills(s.drain())
	calls := s.offer()
	require.Equal(t, []string{replace}, launched(calls))
	assert.Empty(t, killed(calls), "peers wait until %s is ready", replace)
	moved, _ := s.core.Pod(replace)
	addr := fmt.Sprintf("server.%d=%s:%d ", moved.Index+1, moved.Hostname, moved.Ports["client"])
	assert.Equal(t, StatusInProgress, s.planStatus(PlanDeploy))
	assert.Empty(t, killed(s.offer()), "peers wait until %s is ready", replace)
	calls = s.run(replace)
	for _, name := range peers {
		before, _ := s.core.Pod(name)
		require.Equal(t, []string{before.TaskID}, killed(calls), "%s restarted, alone", name)
		s.kills(calls)
		calls = s.offer()
		require.Equal(t, []string{name}, launched(calls))
		assert.Equal(t, 1, ops(calls)["LAUNCH"])
		assert.Zero(t, ops(calls)["RESERVE"], "in place")
		after, _ := s.core.Pod(name)
		assert.Equal(t, before.AgentID, after.AgentID)
		assert.Contains(t, s.tasks[after.TaskID].info.Command.GetValue(), addr, "%s knows %s's new address", name, replace)
		assert.Empty(t, killed(s.offer()), "nothing else down before %s is ready", name)
		calls = s.run(name)
	}
	assert.Empty(t, killed(calls))
	assert.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
}

// The scheduler crashes after placing a pod and before launching it: with
// its ACCEPT applied, the restarted core adopts the reservation; with it
// lost, it places the pod anew. Either way every pod ends with one
// reservation and one volume, and is launched once.
func TestPlaceTogetherCrashBeforeLaunch(t *testing.T) {
	cases := []struct {
		name     string
		lost     bool
		reserves int // after the restart
	}{
		{"accept applied", false, 2},
		{"accept lost", true, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, togetherSpec(), 3)
			s.core.Offers([]mesospb.Offer{s.offerOf(s.agents["agent-0"])})
			if tc.lost {
				s.drainLost()
			} else {
				s.drain()
			}
			assert.Equal(t, map[string]int{"RESERVE": 1, "CREATE": 1}, ops(s.calls), "node-0 placed, not launched")
			s.restart()
			total := s.offerUntilLaunched(4, "node-0", "node-1", "node-2")
			assert.Equal(t, tc.reserves, total["RESERVE"])
			assert.Equal(t, 3, total["LAUNCH"])
			for i := 0; i < 3; i++ {
				pod := podName("node", i)
				vols := 0
				for _, a := range s.agents {
					vols += len(a.reservedFor(pod).PersistentVolumes())
				}
				assert.Equal(t, 1, vols, "%s has one volume", pod)
			}
			assert.Len(t, s.tasks, 3, "no pod launched twice")
		})
	}
}

// Only a pod's first launch on a placement waits for its peers: while
// node-0's replacement finds no agent, node-1 still recovers in place,
// and node-0 is launched as soon as it is placed.
func TestPlaceTogetherRecoveryDoesNotWait(t *testing.T) {
	s := newSim(t, togetherSpec(), 3)
	s.offerUntilLaunched(3, "node-0", "node-1", "node-2")
	for i := 0; i < 3; i++ {
		s.run(podName("node", i))
	}
	require.NoError(t, s.core.ReplacePod("node-0"))
	s.kills(s.drain())
	s.status(s.podTask("node-1"), mesospb.TASK_FAILED)
	s.tick(DefaultBackoffInitial)
	assert.Equal(t, []string{"node-1"}, launched(s.offer()), "no agent for node-0 (one per host), node-1 relaunched")
	s.addAgent("zone-1")
	calls := s.offer()
	assert.Equal(t, []string{"node-0"}, launched(calls))
	assert.Equal(t, 1, ops(calls)["RESERVE"])
}

package sim_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/sim"
	"github.com/apronhq/apron/master"
)

func TestThousandAgentsHundredFrameworks(t *testing.T) {
	res, err := sim.Run(sim.Config{
		Agents:            1000,
		AgentResources:    "cpus:8;mem:16384;disk:100000;ports:[31000-32000]",
		Frameworks:        100,
		Shapes:            []string{"cpus:1;mem:1024", "cpus:0.5;mem:4096", "cpus:2;mem:512"},
		TasksPerFramework: 20,
		TaskDuration:      30 * time.Second,
		TaskJitter:        10 * time.Second,
		Duration:          10 * time.Minute,
		Seed:              7,
	})
	require.NoError(t, err)
	assert.Equal(t, 100*20, res.Launched)
	assert.Equal(t, res.Launched, res.Finished, "every launched task finished")
	assert.Zero(t, res.LiveTasks, "and the master forgot each once acknowledged")
	assert.Equal(t, res.Steps+1, res.Checks, "the invariants were checked at every step")
	t.Log(res)
}

// paperWorkload is the Mesos paper's kind of workload on a role tree: tasks
// of 30 s ± 10 s, frameworks of different shapes in roles of different
// weights (eng twice research and batch; within eng, backend three times
// frontend), some frameworks of two roles, every framework with more tasks
// than the cluster runs at once.
func paperWorkload(agents, frameworks int, duration time.Duration) sim.Config {
	per := func(share float64) int { return max(1, int(share*float64(frameworks))) }
	// Each task holds about 1.5 cpus of an agent's 4 and lasts 30 s: a
	// framework's fair part of the cluster runs about 2.7*agents/frameworks
	// at a time; twice what it could run over the whole run keeps it busy.
	tasks := 2 * int(duration/(30*time.Second)+1) * agents * 3 / frameworks
	return sim.Config{
		Agents:         agents,
		AgentResources: "cpus:4;mem:16384;disk:100000;ports:[31000-32000]",
		Workload: []sim.FrameworkGroup{
			{Count: per(0.3), Roles: []string{"eng/backend"}, Shape: "cpus:2;mem:2048", Tasks: tasks},
			{Count: per(0.2), Roles: []string{"eng/frontend"}, Shape: "cpus:1;mem:4096", Tasks: tasks},
			{Count: per(0.2), Roles: []string{"research"}, Shape: "cpus:0.5;mem:6144", Tasks: tasks},
			{Count: per(0.25), Roles: []string{"batch"}, Shape: "cpus:1;mem:1024", Tasks: tasks},
			{Count: per(0.05), Roles: []string{"research", "batch"}, Shape: "cpus:1;mem:2048", Tasks: tasks},
		},
		TaskDuration: 30 * time.Second,
		TaskJitter:   10 * time.Second,
		Duration:     duration,
		// No offer smaller than the smallest task, as an operator would
		// set --min_allocatable_resources: leftovers nobody can use are
		// not offered round and round.
		MinAllocatable: []string{"cpus:0.5;mem:1024"},
		Master: master.Config{Weights: map[string]float64{
			"eng": 2, "research": 1, "batch": 1, "eng/backend": 3, "eng/frontend": 1,
		}},
	}
}

// TestFiveThousandAgents runs the paper workload on 5,000 agents and 200
// frameworks for 40 simulated seconds (sampled after 25, once the first
// tasks end and free resources), checking the invariants every tenth
// step: the cluster stays nearly full, and shares stay fair.
func TestFiveThousandAgents(t *testing.T) {
	cfg := paperWorkload(5000, 200, 40*time.Second)
	cfg.Warmup = 25 * time.Second
	cfg.Seed = 11
	cfg.CheckEvery = 10
	res, err := sim.Run(cfg)
	require.NoError(t, err)
	t.Log(res)
	assert.Greater(t, res.Launched, 20000)
	assert.Greater(t, res.CPUUtilization, 0.8, "the cluster is nearly full")
	assert.Greater(t, res.JainRoles, 0.9, "top-level roles get shares by their weights")
	assert.Greater(t, res.JainFrameworks, 0.9, "frameworks of a role get equal shares")
	assert.Equal(t, 100*time.Millisecond, sim.Percentile(res.OfferToRunning, 100), "every offer is answered at the next step")
}

// TestFiftyThousandAgents is the scale run: 50,000 agents and 1,000
// frameworks, the invariants checked throughout. It takes minutes: it runs
// only when asked, with APRON_SIM_LARGE=1 and without -short.
func TestFiftyThousandAgents(t *testing.T) {
	if testing.Short() || os.Getenv("APRON_SIM_LARGE") == "" {
		t.Skip("50,000 agents: set APRON_SIM_LARGE=1 (and no -short) to run")
	}
	cfg := paperWorkload(50000, 1000, 2*time.Minute)
	cfg.Seed = 13
	cfg.CheckEvery = 10
	res, err := sim.Run(cfg)
	require.NoError(t, err)
	t.Log(res)
	assert.Greater(t, res.CPUUtilization, 0.8)
	assert.Greater(t, res.JainRoles, 0.9)
	assert.Greater(t, res.JainFrameworks, 0.9)
}

// A task whose random duration is zero or less still ends, at the next
// step, so the run finishes every task.
func TestTasksWithNoTimeLeftEnd(t *testing.T) {
	res, err := sim.Run(sim.Config{
		Agents:            2,
		AgentResources:    "cpus:4;mem:4096",
		Frameworks:        2,
		Shapes:            []string{"cpus:1;mem:512"},
		TasksPerFramework: 20,
		TaskDuration:      100 * time.Millisecond,
		TaskJitter:        time.Second,
		Duration:          time.Minute,
		Seed:              3,
	})
	require.NoError(t, err)
	assert.Equal(t, 2*20, res.Launched)
	assert.Equal(t, res.Launched, res.Finished, "every launched task finished")
	assert.Less(t, res.SimulatedTime, time.Minute, "the run ended once the work was done")
}

// Frameworks without task shapes are an error, not a division by zero.
func TestFrameworksWithoutShapes(t *testing.T) {
	_, err := sim.Run(sim.Config{Agents: 1, AgentResources: "cpus:1;mem:128", Frameworks: 1, Duration: time.Second})
	require.Error(t, err)
}

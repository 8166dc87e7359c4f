package sim_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/sim"
)

// faultConfig is the cluster of the fault runs: a few agents, frameworks
// alternately partition-aware or not, short tasks and some that run until
// killed, two minutes of faults then five of quiescence.
func faultConfig(seed uint64, agents int) sim.FaultConfig {
	frameworks := 1 + agents/3
	return sim.FaultConfig{
		Seed:           seed,
		Agents:         agents,
		AgentResources: "cpus:4;mem:4096",
		Frameworks:     frameworks,
		Shape:          "cpus:1;mem:512",
		Tasks:          4 * agents,
		TaskDuration:   20 * time.Second,
		TaskJitter:     15 * time.Second,
		LongRunning:    0.2,
		KillRate:       0.02,
		FaultsFor:      2 * time.Minute,
		Quiesce:        5 * time.Minute,
	}
}

// runSeed runs one seed and fails the test with the violation, which
// names the seed and the step. verbose (or APRON_SIM_TRACE=1) traces the
// whole run into the test log; a failure logs the trace's last lines.
func runSeed(t *testing.T, cfg sim.FaultConfig, verbose bool) sim.FaultResult {
	t.Helper()
	verbose = verbose || os.Getenv("APRON_SIM_TRACE") != ""
	var trace []string
	cfg.Trace = func(s string) {
		if !verbose && len(trace) >= 400 {
			trace = append(trace[:0], trace[200:]...)
		}
		trace = append(trace, s)
	}
	res, err := sim.RunFaults(cfg)
	if err != nil {
		if verbose {
			for _, l := range trace {
				t.Log(l)
			}
		} else {
			for _, l := range trace[max(0, len(trace)-40):] {
				t.Log(l)
			}
		}
		t.Logf("faults: %+v", res.Faults)
		t.Fatalf("%v\n%v", err, res)
	}
	if verbose {
		for _, l := range trace {
			t.Log(l)
		}
	}
	return res
}

// TestFaults runs a handful of seeds, each with its own fault
// probabilities; APRON_SIM_SEED=<n> runs seed n alone, traced.
func TestFaults(t *testing.T) {
	if v := os.Getenv("APRON_SIM_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "APRON_SIM_SEED")
		agents := 6
		if v := os.Getenv("APRON_SIM_AGENTS"); v != "" {
			agents, err = strconv.Atoi(v)
			require.NoError(t, err, "APRON_SIM_AGENTS")
		}
		cfg := faultConfig(seed, agents)
		cfg.CheckAll = true
		res := runSeed(t, cfg, true)
		t.Log(res)
		return
	}
	// Seed 1 replays TestReconciliationRunsAheadOfUpdates's defect (at
	// step 455).
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			res := runSeed(t, faultConfig(seed, 6), false)
			assert.Positive(t, res.Launched)
			t.Log(res)
		})
	}
}

// TestFaultsSweep runs many seeds on a larger cluster: APRON_SIM_SEEDS=<n>
// (and no -short) runs n seeds from APRON_SIM_FIRST_SEED (1), on
// APRON_SIM_AGENTS agents (12).
func TestFaultsSweep(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("APRON_SIM_SEEDS"))
	if testing.Short() || n == 0 {
		t.Skip("the sweep: set APRON_SIM_SEEDS=<n> (and no -short) to run seeds 1..n")
	}
	first, _ := strconv.Atoi(os.Getenv("APRON_SIM_FIRST_SEED"))
	agents := 12
	if v, err := strconv.Atoi(os.Getenv("APRON_SIM_AGENTS")); err == nil && v > 0 {
		agents = v
	}
	for seed := uint64(max(first, 1)); seed < uint64(max(first, 1)+n); seed++ {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			runSeed(t, faultConfig(seed, agents), false)
		})
	}
}

// A run without faults settles with every task accounted for.
func TestNoFaults(t *testing.T) {
	cfg := faultConfig(1, 4)
	cfg.Faults = &sim.Faults{MaxDelay: 500 * time.Millisecond}
	res := runSeed(t, cfg, false)
	assert.Equal(t, 2*16, res.Launched)
	assert.Zero(t, res.Lost)
	assert.Equal(t, res.Launched, res.Finished+res.Killed+res.Running)
}

// The same seed runs the same way.
func TestFaultsDeterministic(t *testing.T) {
	a := runSeed(t, faultConfig(3, 4), false)
	b := runSeed(t, faultConfig(3, 4), false)
	a.Wall, b.Wall = 0, 0
	assert.Equal(t, a, b)
}

// Master failovers with the other faults: the new master recovers the
// registry, agents re-register and frameworks re-subscribe. A seed reruns
// with -run 'TestFaultsMasterFailover/<seed>' (APRON_SIM_TRACE=1 traces it).
func TestFaultsMasterFailover(t *testing.T) {
	// Seed 13 replays TestReconciliationAfterMasterFailover's defect (at
	// step 95).
	// APRON_SIM_SEEDS=<n> runs seeds 1..n instead.
	seeds := []uint64{1, 2, 3, 4, 13}
	n, _ := strconv.Atoi(os.Getenv("APRON_SIM_SEEDS"))
	if n > 0 {
		seeds = nil
		for seed := uint64(1); seed <= uint64(n); seed++ {
			seeds = append(seeds, seed)
		}
	}
	for _, seed := range seeds {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			cfg := faultConfig(seed, 6)
			cfg.Faults = &sim.Faults{
				MaxDelay: time.Second, Drop: 0.01, Duplicate: 0.02, Reorder: 0.05, Break: 0.0005,
				AgentCrash: 0.005, AgentDeath: 0.002, FrameworkCrash: 0.005, MaxDown: 30 * time.Second,
				MasterFailover: 0.04,
			}
			res := runSeed(t, cfg, false)
			if n == 0 {
				assert.Positive(t, res.MasterFailovers)
			}
			t.Log(res)
		})
	}
}

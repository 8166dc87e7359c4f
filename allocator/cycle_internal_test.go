package allocator

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/resources"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// declineAll recovers every offer with a filter for refuse.
func declineAll(t *testing.T, d *DRF, offers []Offer, refuse time.Duration, now time.Time) {
	t.Helper()
	for _, o := range offers {
		require.NoError(t, d.Recover(o.FrameworkID, o.AgentID, o.Resources, refuse, now))
	}
	require.NoError(t, d.Check())
}

// TestCostFollowsChange checks, through the cycle's counters, that cycles
// leave alone the agents nothing changed for, and that a framework reviving
// makes every agent checked for it alone.
func TestCostFollowsChange(t *testing.T) {
	d := NewDRF(Options{Rand: rand.New(rand.NewPCG(1, 2))})
	for i := range 50 {
		require.NoError(t, d.AddAgent(Agent{ID: fmt.Sprint("agent", i), Total: resources.MustParse("cpus:4;mem:4096")}, nil))
	}
	for i := range 5 {
		require.NoError(t, d.AddFramework(Framework{ID: fmt.Sprint("fw", i), Roles: []string{"*"}, Active: true}, nil))
	}
	now := t0
	for round := 0; ; round++ {
		require.Less(t, round, 10)
		offers := d.Allocate(now)
		if len(offers) == 0 {
			break
		}
		declineAll(t, d, offers, time.Hour, now)
		now = now.Add(time.Second)
	}
	// Every framework refused every agent: a cycle does nothing at all.
	d.stats = cycleStats{}
	require.Empty(t, d.Allocate(now))
	require.Equal(t, cycleStats{skipped: 50}, d.stats)

	// One agent changes: it alone is walked.
	require.NoError(t, d.UpdateAgent("agent7", resources.MustParse("cpus:5;mem:4096")))
	d.stats = cycleStats{}
	offers := d.Allocate(now)
	require.Len(t, offers, 1)
	require.Equal(t, cycleStats{skipped: 49, walked: 1}, d.stats)
	for len(offers) > 0 {
		declineAll(t, d, offers, time.Hour, now)
		offers = d.Allocate(now)
	}

	// A framework revives: every agent is checked for it alone, and
	// offered to it.
	require.NoError(t, d.Revive("fw3"))
	d.stats = cycleStats{}
	offers = d.Allocate(now)
	require.Len(t, offers, 50)
	for _, o := range offers {
		require.Equal(t, "fw3", o.FrameworkID)
	}
	require.Equal(t, cycleStats{quick: 50}, d.stats)

	// It declines for good: one more quick look, then nothing.
	declineAll(t, d, offers, time.Hour, now)
	d.stats = cycleStats{}
	require.Empty(t, d.Allocate(now))
	require.Equal(t, cycleStats{quick: 50}, d.stats)
	d.stats = cycleStats{}
	require.Empty(t, d.Allocate(now))
	require.Equal(t, cycleStats{skipped: 50}, d.stats)

	// It revives and declines without a filter: it is offered everything
	// again at once.
	require.NoError(t, d.Revive("fw3"))
	offers = d.Allocate(now)
	require.Len(t, offers, 50)
	declineAll(t, d, offers, 0, now)
	d.stats = cycleStats{}
	offers = d.Allocate(now)
	require.Len(t, offers, 50)
	require.Equal(t, cycleStats{quick: 50}, d.stats)

	// Once it is suppressed, the others' filters expiring bring the agents
	// back to them.
	require.NoError(t, d.Suppress("fw3"))
	declineAll(t, d, offers, 0, now)
	require.Empty(t, d.Allocate(now))
	now = now.Add(2 * time.Hour)
	d.stats = cycleStats{}
	offers = d.Allocate(now)
	require.Len(t, offers, 50)
	for _, o := range offers {
		require.NotEqual(t, "fw3", o.FrameworkID)
	}
	require.Zero(t, d.stats.skipped)
	require.NoError(t, d.Check())
}

// TestOrderedList checks the block list against a sorted slice.
func TestOrderedList(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var o ordered[*role]
	var all []*role
	for step := range 5000 {
		switch {
		case len(all) == 0 || rng.IntN(3) > 0:
			r := &role{name: fmt.Sprint("r", step), key: float64(rng.IntN(50))}
			o.insert(r)
			all = append(all, r)
		case rng.IntN(2) == 0:
			i := rng.IntN(len(all))
			o.remove(all[i])
			all = append(all[:i], all[i+1:]...)
		default:
			r := all[rng.IntN(len(all))]
			o.move(r, func() { r.key = float64(rng.IntN(50)) })
		}
		got := o.slice()
		require.Len(t, got, len(all))
		require.Equal(t, len(all), o.len())
		for i := 1; i < len(got); i++ {
			require.True(t, less(got[i-1], got[i]), "step %d: out of order at %d", step, i)
		}
		for _, b := range o.blocks {
			require.NotEmpty(t, b)
			require.LessOrEqual(t, len(b), blockSize)
		}
	}
}

// TestDenseRolesPickAsTheWalk checks that picking among a large role's
// frameworks by their filter bits offers exactly what walking them in order
// does, through random declines, partial uses and expiring filters.
func TestDenseRolesPickAsTheWalk(t *testing.T) {
	byBits := 0
	run := func(dense bool) []Offer {
		saved, savedFew := denseRole, fewUnrefused
		defer func() { denseRole, fewUnrefused = saved, savedFew }()
		if !dense {
			denseRole = 1 << 30
		}
		d := NewDRF(Options{Rand: rand.New(rand.NewPCG(5, 6))})
		rng := rand.New(rand.NewPCG(7, 8))
		for i := range 60 {
			require.NoError(t, d.AddAgent(Agent{ID: fmt.Sprint("agent", i), Total: resources.MustParse("cpus:8;mem:8192;ports:[1-100]")}, nil))
		}
		for i := range 150 {
			role := "*"
			if i%3 == 0 {
				role = "eng/x"
			}
			f := Framework{ID: fmt.Sprint("fw", i), Roles: []string{role}, Active: true}
			if i%10 == 0 {
				f.MinAllocatable = map[string][]Quantities{role: {{"cpus": resources.ScalarOf(6)}}}
			}
			require.NoError(t, d.AddFramework(f, nil))
		}
		var all []Offer
		now := t0
		for round := range 400 {
			offers := d.Allocate(now)
			all = append(all, offers...)
			for _, o := range offers {
				refuse := []time.Duration{time.Hour, time.Hour, time.Hour, 30 * time.Second, 0}[rng.IntN(5)]
				give := o.Resources
				if rng.IntN(4) == 0 {
					// A task keeps a cpu for a while; the rest is declined.
					give = o.Resources.Subtract(resources.MustParse("cpus:1").Allocate(o.Role))
				}
				require.NoError(t, d.Recover(o.FrameworkID, o.AgentID, give, refuse, now))
				if len(give) < len(o.Resources) || !give.Equal(o.Resources) {
					require.NoError(t, d.Recover(o.FrameworkID, o.AgentID, o.Resources.Subtract(give), 0, now.Add(time.Minute)))
				}
			}
			if round%50 == 0 {
				require.NoError(t, d.Revive(fmt.Sprint("fw", round%150)))
				require.NoError(t, d.Check())
			}
			now = now.Add(10 * time.Second)
		}
		if dense {
			byBits = d.stats.byBits
		}
		return all
	}
	bits, walk := run(true), run(false)
	require.Equal(t, len(walk), len(bits))
	for i := range walk {
		require.Equal(t, walk[i].FrameworkID, bits[i].FrameworkID, "offer %d", i)
		require.Equal(t, walk[i].AgentID, bits[i].AgentID, "offer %d", i)
		require.True(t, walk[i].Resources.Equal(bits[i].Resources), "offer %d", i)
	}
	require.Greater(t, len(walk), 1000)
	require.Greater(t, byBits, 100, "the bits were used")
}

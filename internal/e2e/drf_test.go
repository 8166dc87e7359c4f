package e2e_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// usage is what the tasks launched so far hold, by agent.
type usage struct {
	mu      sync.Mutex
	byAgent map[string]resources.Resources
}

func (u *usage) add(agent string, rs resources.Resources) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.byAgent[agent] = u.byAgent[agent].Add(rs)
}

// full reports whether no agent has room for any of the shapes.
func (u *usage) full(agents []string, total resources.Resources, shapes ...resources.Resources) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range agents {
		free := total.Subtract(u.byAgent[a])
		for _, s := range shapes {
			if free.Contains(s) {
				return false
			}
		}
	}
	return true
}

// greedy has a framework launch one long task of the given shape per offer
// while one fits, declining the rest, so the allocator decides who gets what.
func greedy(ctx context.Context, f *framework, name string, cpus, mem float64, launched *atomic.Int32, used *usage) {
	need := resources.New(resources.NewScalar("cpus", cpus), resources.NewScalar("mem", mem))
	for {
		select {
		case <-ctx.Done():
			return
		case offers := <-f.rec.offers:
			for _, o := range offers {
				rs, _ := resources.FromProto(o.Resources)
				if rs.Unallocated().Contains(need) {
					task := shellTask(fmt.Sprintf("%s-%d", name, launched.Load()+1), o, "sleep 120", cpus, mem)
					if f.driver.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, &mesospb.Filters{RefuseSeconds: ptr(0.0)}) == nil {
						launched.Add(1)
						used.add(o.AgentID.Value, need)
					}
				} else {
					_ = f.driver.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, &mesospb.Filters{RefuseSeconds: ptr(0.5)})
				}
			}
		}
	}
}

// TestTwoFrameworksShareFairly runs a cpu-heavy and a mem-heavy framework
// on one agent. With a single agent only one framework holds its offer at a
// time, and every remainder goes to whoever has the lower dominant share, so
// DRF makes them alternate: 3 tasks each, one task of either being a quarter
// of the agent's cpus or mem. A first-come allocator would give the
// cpu-heavy one 4 tasks and the other none. (With several agents the result
// depends on how long each scheduler sits on its offers, which a test cannot
// control.)
func TestTwoFrameworksShareFairly(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, "cpus:4;mem:2048;disk:1000", master.Config{})
		a := c.subscribe(info("cpu-heavy"))
		b := c.subscribe(info("mem-heavy"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var na, nb atomic.Int32
		used := &usage{byAgent: map[string]resources.Resources{}}
		go greedy(ctx, a, "a", 1, 128, &na, used)
		go greedy(ctx, b, "b", 0.25, 512, &nb, used)

		// Run until neither shape fits.
		agents := []string{c.agents[0].ID()}
		total := resources.MustParse("cpus:4;mem:2048")
		shapeA, shapeB := resources.MustParse("cpus:1;mem:128"), resources.MustParse("cpus:0.25;mem:512")
		require.Eventually(t, func() bool { return used.full(agents, total, shapeA, shapeB) }, wait, 50*time.Millisecond, "the agent fills up")
		t.Logf("cpu-heavy ran %d tasks, mem-heavy %d", na.Load(), nb.Load())
		assert.Equal(t, int32(3), na.Load(), "cpu-heavy: dominant share 3/4 of the cpus")
		assert.Equal(t, int32(3), nb.Load(), "mem-heavy: dominant share 3/4 of the mem")
	})
}

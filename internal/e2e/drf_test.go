package e2e_test

import (
	"context"
	"fmt"
	"math"
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

func TestTwoFrameworksShareFairly(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 2, "cpus:4;mem:2048;disk:1000", master.Config{})
		a := c.subscribe(info("cpu-heavy"))
		b := c.subscribe(info("mem-heavy"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var na, nb atomic.Int32
		used := &usage{byAgent: map[string]resources.Resources{}}
		go greedy(ctx, a, "a", 1, 128, &na, used)
		go greedy(ctx, b, "b", 0.25, 512, &nb, used)

		// Run until neither shape fits anywhere.
		var agents []string
		for _, ag := range c.agents {
			agents = append(agents, ag.ID())
		}
		total := resources.MustParse("cpus:4;mem:2048")
		shapeA, shapeB := resources.MustParse("cpus:1;mem:128"), resources.MustParse("cpus:0.25;mem:512")
		require.Eventually(t, func() bool { return used.full(agents, total, shapeA, shapeB) }, wait, 50*time.Millisecond, "the cluster fills up")
		// Dominant shares: a's is its cpus of 8, b's its mem of 4096; one task
		// of either is 1/8 of the cluster.
		shareA := float64(na.Load()) * 1 / 8
		shareB := float64(nb.Load()) * 512 / 4096
		t.Logf("cpu-heavy ran %d tasks (share %.3f), mem-heavy %d (share %.3f)", na.Load(), shareA, nb.Load(), shareB)
		assert.LessOrEqual(t, math.Abs(shareA-shareB), 1.0/8+1e-9, "dominant shares within one task")
	})
}

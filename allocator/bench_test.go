package allocator_test

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/resources"
)

// The benchmarks mirror Apache Mesos's allocator benchmarks
// (src/tests/hierarchical_allocator_benchmarks.cpp and
// HierarchicalAllocator_BENCHMARK_Test in hierarchical_allocator_tests.cpp).
// Run them with
//
//	go test ./allocator -run '^$' -bench . -benchtime 20x
//
// The 50,000-agent cases take a few seconds each to set up; -short leaves
// them out. Besides ns/op and allocs/op they report offers/op and, for
// the cluster they build, the heap the allocator holds per agent and per
// framework.

var benchSizes = []struct{ agents, frameworks int }{{1000, 1000}, {10000, 1000}, {50000, 1000}}

// Mesos's DeclineOffers agent: its total, and what one framework already
// uses on it (16 tasks of a cpu, 16 ports).
var (
	benchAgent = resources.MustParse("cpus:24;mem:4096;disk:4096;ports:[31000-32000]")
	benchUsed  = func() resources.Resources {
		// makePortRanges in Mesos's benchmark: 16 ranges of two ports,
		// spread over [31000, 32000].
		var ports []resources.Range
		step := uint64(1000 / 16)
		for i := range uint64(16) {
			b := 31000 + i*step
			ports = append(ports, resources.Range{Begin: b, End: b + 1})
		}
		return resources.MustParse("cpus:16;mem:2014;disk:1024").
			AddResource(resources.NewRanges(resources.NamePorts, ports...))
	}()
)

func skipLarge(b *testing.B, agents int) {
	if agents > 10000 && testing.Short() {
		b.Skip("50,000 agents: left out by -short")
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// footprint is the heap an allocator holds per framework and per agent.
type footprint struct{ perFramework, perAgent float64 }

func (f footprint) report(b *testing.B) {
	b.ReportMetric(f.perFramework, "B/framework")
	b.ReportMetric(f.perAgent, "B/agent")
}

// declineCluster builds Mesos's DeclineOffers cluster: frameworks in role
// "*", agents each with benchUsed held by one framework, round robin.
func declineCluster(b *testing.B, agents, frameworks int, opts allocator.Options) (*allocator.DRF, footprint) {
	b.Helper()
	before := heapInUse()
	d := allocator.NewDRF(opts)
	for i := range frameworks {
		f := allocator.Framework{ID: fmt.Sprint("framework-", i), Roles: []string{"*"}, Active: true}
		if err := d.AddFramework(f, nil); err != nil {
			b.Fatal(err)
		}
	}
	withFrameworks := heapInUse()
	for i := range agents {
		used := map[string]resources.Resources{fmt.Sprint("framework-", i%frameworks): benchUsed.Allocate("*")}
		if err := d.AddAgent(allocator.Agent{ID: fmt.Sprint("agent-", i), Total: benchAgent}, used); err != nil {
			b.Fatal(err)
		}
	}
	withAgents := heapInUse()
	return d, footprint{float64(withFrameworks-before) / float64(frameworks), float64(withAgents-withFrameworks) / float64(agents)}
}

// BenchmarkDeclineOffers is Mesos's DeclineOffers: M frameworks in role
// "*", N agents each already running 16 tasks of one framework; every
// round, each outstanding offer is declined with an infinite filter
// (refuse_seconds INT_MAX, capped at MaxRefuse) and one allocation cycle
// runs. One op is one cycle; the declines are not timed. Mesos 1.5 took
// 1.06 s for a cycle making 10,000 offers at N=10,000, M=1,000. Rounds
// follow one another from the first, so with b.N rounds the figure is the
// mean of the first b.N (every agent is offered in each of the first M
// rounds; after 2M, as Mesos's loop, the cluster is rebuilt, untimed).
func BenchmarkDeclineOffers(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("agents=%d/frameworks=%d", size.agents, size.frameworks), func(b *testing.B) {
			skipLarge(b, size.agents)
			d, fp := declineCluster(b, size.agents, size.frameworks, allocator.Options{})
			now := t0
			var offers []allocator.Offer
			offered, round := 0, 0
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if round == 2*size.frameworks {
					d, _ = declineCluster(b, size.agents, size.frameworks, allocator.Options{})
					offers, round = nil, 0
				}
				for _, o := range offers {
					if err := d.Recover(o.FrameworkID, o.AgentID, o.Resources, allocator.MaxRefuse, now); err != nil {
						b.Fatal(err)
					}
				}
				now = now.Add(time.Second)
				round++
				b.StartTimer()
				start := cpuTime()
				offers = d.Allocate(now)
				cpu += cpuTime() - start
				offered += len(offers)
			}
			b.ReportMetric(float64(offered)/float64(b.N), "offers/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			fp.report(b)
		})
	}
}

// BenchmarkDeclineOffersFullRun runs Mesos's DeclineOffers loop whole:
// 2M rounds, by which time every framework has refused every agent for
// good (M filters on each agent) and cycles have nothing left to do. One
// op is the whole run; it reports the mean, median and slowest cycle, and
// the heap held at the end, per filter. Run it with -benchtime 1x.
func BenchmarkDeclineOffersFullRun(b *testing.B) {
	for _, size := range benchSizes[:2] {
		b.Run(fmt.Sprintf("agents=%d/frameworks=%d", size.agents, size.frameworks), func(b *testing.B) {
			var cycles []time.Duration
			var heap float64
			for range b.N {
				b.StopTimer()
				before := heapInUse()
				d, _ := declineCluster(b, size.agents, size.frameworks, allocator.Options{})
				b.StartTimer()
				now := t0
				var offers []allocator.Offer
				for range 2 * size.frameworks {
					for _, o := range offers {
						if err := d.Recover(o.FrameworkID, o.AgentID, o.Resources, allocator.MaxRefuse, now); err != nil {
							b.Fatal(err)
						}
					}
					now = now.Add(time.Second)
					start := time.Now()
					offers = d.Allocate(now)
					cycles = append(cycles, time.Since(start))
				}
				b.StopTimer()
				heap = float64(heapInUse()-before) / float64(size.agents*size.frameworks)
				runtime.KeepAlive(d)
				b.StartTimer()
			}
			slices.Sort(cycles)
			var sum time.Duration
			for _, c := range cycles {
				sum += c
			}
			b.ReportMetric(float64(sum.Nanoseconds())/float64(len(cycles)), "mean-ns/cycle")
			b.ReportMetric(float64(cycles[len(cycles)/2].Nanoseconds()), "p50-ns/cycle")
			b.ReportMetric(float64(cycles[len(cycles)-1].Nanoseconds()), "max-ns/cycle")
			b.ReportMetric(heap, "B/filter")
		})
	}
}

// BenchmarkAddAgents measures adding N agents, each with 16 tasks of one
// of M frameworks, to an allocator that has the frameworks, then one cycle
// offering them (Mesos's AddAndUpdateSlave, with the cycle). One op is
// the whole; ns/agent divides it.
func BenchmarkAddAgents(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("agents=%d/frameworks=%d", size.agents, size.frameworks), func(b *testing.B) {
			skipLarge(b, size.agents)
			ids := make([]string, size.agents)
			used := make([]map[string]resources.Resources, size.agents)
			for i := range ids {
				ids[i] = fmt.Sprint("agent-", i)
				used[i] = map[string]resources.Resources{fmt.Sprint("framework-", i%size.frameworks): benchUsed.Allocate("*")}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				d := allocator.NewDRF(allocator.Options{})
				for i := range size.frameworks {
					if err := d.AddFramework(allocator.Framework{ID: fmt.Sprint("framework-", i), Roles: []string{"*"}, Active: true}, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				for i, id := range ids {
					if err := d.AddAgent(allocator.Agent{ID: id, Total: benchAgent}, used[i]); err != nil {
						b.Fatal(err)
					}
				}
				if n := len(d.Allocate(t0)); n != size.agents {
					b.Fatalf("%d offers for %d agents", n, size.agents)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size.agents), "ns/agent")
		})
	}
}

// BenchmarkTasksEnd measures the cycle that follows N tasks ending, one on
// each agent of a full cluster (Mesos's ResourceLabels-style churn): each
// frees a task's resources, the cycle offers them, and the offers are
// taken by new tasks (untimed), so the cluster stays full. One op is the N
// recoveries and the cycle; recover-ns/task is the recoveries' share.
func BenchmarkTasksEnd(b *testing.B) {
	task := resources.MustParse("cpus:1;mem:128").Allocate("*")
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("agents=%d/frameworks=%d", size.agents, size.frameworks), func(b *testing.B) {
			skipLarge(b, size.agents)
			d, _ := declineCluster(b, size.agents, size.frameworks, allocator.Options{})
			// Fill the cluster: what is offered stays allocated, as tasks.
			offers := d.Allocate(t0)
			holder := map[string]string{} // agent -> a framework with a task there
			for _, o := range offers {
				holder[o.AgentID] = o.FrameworkID
			}
			now := t0
			var recoverTime time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				now = now.Add(time.Second)
				start := time.Now()
				for agentID, fwID := range holder {
					if err := d.Recover(fwID, agentID, task, 0, now); err != nil {
						b.Fatal(err)
					}
				}
				recoverTime += time.Since(start)
				offers := d.Allocate(now)
				if len(offers) != size.agents {
					b.Fatalf("%d offers after %d tasks ended", len(offers), size.agents)
				}
				b.StopTimer()
				for _, o := range offers {
					holder[o.AgentID] = o.FrameworkID
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(recoverTime.Nanoseconds())/float64(b.N*size.agents), "recover-ns/task")
		})
	}
}

// BenchmarkQuota measures cycles with many roles under quota: R roles
// (eng/team-i, weights 1 to 3) of 10 frameworks each, every role with a
// guarantee and a limit, the guarantees adding up to half the cluster.
// Every round the offers are declined without a filter, so each cycle
// runs both stages: guarantees first, then the rest within limits and
// headroom. One op is one cycle.
func BenchmarkQuota(b *testing.B) {
	for _, size := range []struct{ agents, roles int }{{1000, 100}, {10000, 100}, {10000, 1000}} {
		b.Run(fmt.Sprintf("agents=%d/roles=%d", size.agents, size.roles), func(b *testing.B) {
			d := allocator.NewDRF(allocator.Options{})
			cpus := float64(size.agents) * 24 / 2 / float64(size.roles)
			for r := range size.roles {
				role := fmt.Sprintf("eng/team-%d", r)
				if err := d.SetWeight(role, float64(1+r%3)); err != nil {
					b.Fatal(err)
				}
				q := allocator.Quota{
					Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(cpus)},
					Limit:     allocator.Quantities{"cpus": resources.ScalarOf(2 * cpus)},
				}
				if err := d.SetQuota(role, q); err != nil {
					b.Fatal(err)
				}
				for f := range 10 {
					fw := allocator.Framework{ID: fmt.Sprintf("framework-%d-%d", r, f), Roles: []string{role}, Active: true}
					if err := d.AddFramework(fw, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := range size.agents {
				if err := d.AddAgent(allocator.Agent{ID: fmt.Sprint("agent-", i), Total: benchAgent}, nil); err != nil {
					b.Fatal(err)
				}
			}
			now := t0
			var offers []allocator.Offer
			offered := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for _, o := range offers {
					if err := d.Recover(o.FrameworkID, o.AgentID, o.Resources, 0, now); err != nil {
						b.Fatal(err)
					}
				}
				now = now.Add(time.Second)
				b.StartTimer()
				offers = d.Allocate(now)
				offered += len(offers)
			}
			b.ReportMetric(float64(offered)/float64(b.N), "offers/op")
		})
	}
}

// BenchmarkRevive measures what a framework that revives before every
// cycle costs the others, in a cluster where every other framework has
// declined every agent for good (Mesos's DeclineOffers after M rounds).
// One op is the revive and the cycle, which offers every agent to the
// reviving framework; its declines, with an infinite filter, are not
// timed. "quiet" is the same cycle without the revive: nothing to do. A
// revive costs O(the framework's filters) and the cycle that follows
// O(agents), where a walk of every framework on every agent would cost
// O(agents × frameworks).
func BenchmarkRevive(b *testing.B) {
	for _, size := range []struct{ agents, frameworks int }{{1000, 1000}, {10000, 100}, {10000, 1000}} {
		for _, mode := range []string{"revive", "quiet"} {
			b.Run(fmt.Sprintf("agents=%d/frameworks=%d/%s", size.agents, size.frameworks, mode), func(b *testing.B) {
				if size.agents*size.frameworks > 1e6 && testing.Short() {
					b.Skip("10,000 agents × 1,000 frameworks to saturate: left out by -short")
				}
				d, _ := declineCluster(b, size.agents, size.frameworks, allocator.Options{})
				now := t0
				// Decline until nobody takes anything.
				for {
					offers := d.Allocate(now)
					if len(offers) == 0 {
						break
					}
					for _, o := range offers {
						if err := d.Recover(o.FrameworkID, o.AgentID, o.Resources, allocator.MaxRefuse, now); err != nil {
							b.Fatal(err)
						}
					}
					now = now.Add(time.Second)
				}
				offered := 0
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					now = now.Add(time.Second)
					if mode == "revive" {
						if err := d.Revive("framework-0"); err != nil {
							b.Fatal(err)
						}
					}
					offers := d.Allocate(now)
					offered += len(offers)
					b.StopTimer()
					for _, o := range offers {
						if err := d.Recover(o.FrameworkID, o.AgentID, o.Resources, allocator.MaxRefuse, now); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(offered)/float64(b.N), "offers/op")
			})
		}
	}
}

package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

const agentResources = "cpus:2;mem:1024;disk:1000;ports:[31000-31100]"

func info(name string) mesospb.FrameworkInfo {
	return mesospb.FrameworkInfo{User: "root", Name: name}
}

func TestCommandTasksRunAndEnd(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, agentResources, master.Config{})
		f := c.subscribe(info("commands"))
		offers := f.nextOffers()
		o := offers[0]
		ctx := context.Background()
		require.NoError(t, f.driver.LaunchTasks(ctx, ids(offers...), []mesospb.TaskInfo{
			shellTask("ok", o, "echo hello from apron", 0.5, 64),
			shellTask("fails", o, "echo oops >&2; exit 3", 0.5, 64),
		}, nil))

		st := f.waitState("ok", mesospb.TASK_FINISHED)
		assert.Equal(t, o.AgentID, *st.AgentID)
		st = f.waitState("fails", mesospb.TASK_FAILED)
		assert.Contains(t, st.GetMessage(), "exited with status 3")

		// The task really ran: its stdout is in its sandbox, where Mesos puts it.
		var found []string
		_ = filepath.Walk(c.agentWorkDir(0), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Name() == "stdout" && strings.Contains(p, "/executors/ok/runs/") {
				found = append(found, p)
			}
			return nil
		})
		require.Len(t, found, 1)
		out, err := os.ReadFile(found[0])
		require.NoError(t, err)
		assert.Contains(t, string(out), "hello from apron")
	})
}

func TestKillAfterGracePeriod(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, agentResources, master.Config{})
		f := c.subscribe(info("killer"))
		offers := f.nextOffers()
		ctx := context.Background()
		task := shellTask("stubborn", offers[0], "trap 'echo got TERM' TERM; while true; do sleep 0.1; done", 0.5, 64)
		task.KillPolicy = &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: int64(300 * time.Millisecond)}}
		require.NoError(t, f.driver.LaunchTasks(ctx, ids(offers...), []mesospb.TaskInfo{task}, nil))
		f.waitState("stubborn", mesospb.TASK_RUNNING)
		require.NoError(t, f.driver.KillTask(ctx, mesospb.TaskID{Value: "stubborn"}, &offers[0].AgentID))
		f.waitState("stubborn", mesospb.TASK_KILLED)
	})
}

func TestReconciliation(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, agentResources, master.Config{})
		f := c.subscribe(info("reconciler"))
		offers := f.nextOffers()
		ctx := context.Background()
		require.NoError(t, f.driver.LaunchTasks(ctx, ids(offers...), []mesospb.TaskInfo{shellTask("long", offers[0], "sleep 60", 0.5, 64)}, nil))
		f.waitState("long", mesospb.TASK_RUNNING)

		require.NoError(t, f.driver.ReconcileTasks(ctx, []mesospb.TaskStatus{
			{TaskID: mesospb.TaskID{Value: "long"}}, {TaskID: mesospb.TaskID{Value: "never-launched"}},
		}))
		got := map[string]mesospb.TaskStatus{}
		require.Eventually(t, func() bool {
			f.rec.mu.Lock()
			defer f.rec.mu.Unlock()
			for _, st := range f.rec.history {
				if st.GetReason() == mesospb.TaskStatus_REASON_RECONCILIATION {
					got[st.TaskID.Value] = st
				}
			}
			return len(got) == 2
		}, wait, 10*time.Millisecond, "reconciliation answered")
		long, never := got["long"], got["never-launched"]
		assert.Equal(t, mesospb.TASK_RUNNING, long.GetState())
		assert.Equal(t, mesospb.TASK_LOST, never.GetState())
	})
}

func TestDisconnectWithoutFailoverKillsTasks(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, agentResources, master.Config{})
		f := c.subscribe(info("short-lived"))
		offers := f.nextOffers()
		ctx := context.Background()
		require.NoError(t, f.driver.LaunchTasks(ctx, ids(offers...), []mesospb.TaskInfo{shellTask("orphan", offers[0], "sleep 60", 0.5, 64)}, nil))
		f.waitState("orphan", mesospb.TASK_RUNNING)
		require.NoError(t, f.driver.Stop(true)) // disconnect; failover_timeout is 0
		// The master removes the framework and the agent kills its tasks: all
		// of the agent's resources are offered to the next framework.
		g := c.subscribe(info("next"))
		require.Eventually(t, func() bool {
			for {
				select {
				case offers := <-g.rec.offers:
					var total resources.Resources
					for _, o := range offers {
						rs, _ := resources.FromProto(o.Resources)
						total = total.Add(rs)
					}
					if total.CPUs() == 2 {
						return true
					}
					_ = g.driver.DeclineOffer(ctx, ids(offers...), &mesospb.Filters{RefuseSeconds: ptr(0.0)})
				default:
					return false
				}
			}
		}, wait, 50*time.Millisecond)
	})
}

func TestResubscribeWithinFailoverKeepsTasks(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, agentResources, master.Config{})
		fi := info("survivor")
		fi.FailoverTimeout = ptr(60.0)
		f := c.subscribe(fi)
		offers := f.nextOffers()
		ctx := context.Background()
		require.NoError(t, f.driver.LaunchTasks(ctx, ids(offers...), []mesospb.TaskInfo{shellTask("keeper", offers[0], "sleep 60", 0.5, 64)}, nil))
		f.waitState("keeper", mesospb.TASK_RUNNING)
		require.NoError(t, f.driver.Stop(true))

		fi.ID = &f.id
		g := c.subscribe(fi)
		assert.Equal(t, f.id, g.id)
		require.NoError(t, g.driver.ReconcileTasks(ctx, nil))
		st := g.waitState("keeper", mesospb.TASK_RUNNING)
		assert.Equal(t, mesospb.TaskStatus_REASON_RECONCILIATION, st.GetReason())
	})
}

func TestDeclinedOffersReturnAfterRefuseSeconds(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, agentResources, master.Config{})
		f := c.subscribe(info("decliner"))
		ctx := context.Background()
		offers := f.nextOffers()
		declined := time.Now()
		require.NoError(t, f.driver.DeclineOffer(ctx, ids(offers...), &mesospb.Filters{RefuseSeconds: ptr(1.0)}))
		again := f.nextOffers()
		assert.Equal(t, offers[0].AgentID, again[0].AgentID)
		// Not a timing assertion: the filter must have held at least its
		// second, as the master counts it: its time is that of its last tick
		// (TickInterval, 20 ms), which may come before declined.
		assert.GreaterOrEqual(t, time.Since(declined), time.Second-20*time.Millisecond)
	})
}

func TestInvalidAcceptLosesNothing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 1, agentResources, master.Config{})
		f := c.subscribe(info("clumsy"))
		offers := f.nextOffers()
		ctx := context.Background()
		require.NoError(t, f.driver.LaunchTasks(ctx, ids(offers...), []mesospb.TaskInfo{
			shellTask("huge", offers[0], "true", 64, 64),
		}, &mesospb.Filters{RefuseSeconds: ptr(0.0)}))
		st := f.waitState("huge", mesospb.TASK_ERROR)
		assert.Contains(t, st.GetMessage(), "needs")
		again := f.nextOffers()
		rs, err := resources.FromProto(again[0].Resources)
		require.NoError(t, err)
		assert.Equal(t, 2.0, rs.CPUs(), "the refused task used nothing")
	})
}

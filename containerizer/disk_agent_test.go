//go:build linux

package containerizer_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// diskFramework records what its driver hears.
type diskFramework struct {
	scheduler.Base
	mu      sync.Mutex
	offers  []mesospb.Offer
	updates []mesospb.TaskStatus
}

func (f *diskFramework) ResourceOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.Offer) {
	f.mu.Lock()
	f.offers = append(f.offers, offers...)
	f.mu.Unlock()
}

func (f *diskFramework) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	f.mu.Lock()
	f.updates = append(f.updates, st)
	f.mu.Unlock()
}

func (f *diskFramework) last() (mesospb.TaskStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.updates) == 0 {
		return mesospb.TaskStatus{}, false
	}
	return f.updates[len(f.updates)-1], true
}

// diskCluster is a master, an agent whose containerizer is a process one
// wrapped by containerizer.Disk on a fake clock, and a framework that has
// launched one task writing 3 MiB into a sandbox of 1 MB disk.
type diskCluster struct {
	clk   *clock.Fake
	disk  *containerizer.Disk
	agent *agent.Agent
	fw    *diskFramework
	drv   *scheduler.Driver
}

func startDiskCluster(t *testing.T, enforce bool) *diskCluster {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := &diskCluster{clk: clock.NewFake(time.Unix(1e9, 0)), fw: &diskFramework{}}
	c.disk = newDisk(t, dir, c.clk, enforce)
	m, err := master.New(master.Config{AllocationInterval: 20 * time.Millisecond, Logger: log})
	require.NoError(t, err)
	c.agent, err = agent.New(agent.Config{
		Master: m, WorkDir: filepath.Join(dir, "agent"), Resources: "cpus:2;mem:1024;disk:100;ports:[31000-31001]",
		Containerizer: c.disk, Logger: log,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	go func() { defer wg.Done(); _ = c.agent.Run(ctx) }()
	c.drv, err = scheduler.NewDriver(c.fw, mesospb.FrameworkInfo{User: "", Name: "disk"}, scheduler.WithMaster(m))
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = c.drv.Run(ctx) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), diskWait)
		defer scancel()
		_ = c.agent.Shutdown(sctx)
		cancel()
		wg.Wait()
		_ = c.disk.Close()
	})

	var o mesospb.Offer
	require.Eventually(t, func() bool {
		c.fw.mu.Lock()
		defer c.fw.mu.Unlock()
		if len(c.fw.offers) == 0 {
			return false
		}
		o = c.fw.offers[0]
		return true
	}, diskWait, 10*time.Millisecond, "an offer")
	scalar := func(name string, v float64) mesospb.Resource {
		return mesospb.Resource{Name: name, Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: v}}
	}
	task := mesospb.TaskInfo{
		Name: "writer", TaskID: mesospb.TaskID{Value: "writer"}, AgentID: o.AgentID,
		Resources: []mesospb.Resource{scalar("cpus", 0.5), scalar("mem", 64), scalar("disk", 1)},
		Command:   &mesospb.CommandInfo{Value: ptrTo("head -c 3145728 /dev/zero > big; touch written; exec sleep 300")},
	}
	require.NoError(t, c.drv.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, nil))
	require.Eventually(t, func() bool {
		st, ok := c.fw.last()
		return ok && st.GetState() == mesospb.TASK_RUNNING
	}, diskWait, 10*time.Millisecond, "the task runs")
	return c
}

func ptrTo[T any](v T) *T { return &v }

// measured ticks the fake clock until the task's sandbox has been
// measured at 3 MiB or more, and returns its container's ID.
func (c *diskCluster) measured(t *testing.T) string {
	t.Helper()
	var id string
	require.Eventually(t, func() bool {
		c.clk.Advance(time.Second)
		ids, _ := c.disk.Containers(context.Background())
		for _, cid := range ids {
			if u, err := c.disk.Usage(context.Background(), cid); err == nil && u.DiskUsedBytes >= 3<<20 {
				id = cid
				return true
			}
		}
		return false
	}, diskWait, 20*time.Millisecond, "the sandbox measured past its quota")
	return id
}

// End to end through an agent: a task writing past its disk fails with
// Mesos's reason and message.
func TestDiskQuotaThroughAgent(t *testing.T) {
	c := startDiskCluster(t, true)
	var st mesospb.TaskStatus
	require.Eventually(t, func() bool {
		c.clk.Advance(time.Second)
		var ok bool
		st, ok = c.fw.last()
		return ok && st.GetState() != mesospb.TASK_RUNNING
	}, diskWait, 20*time.Millisecond, "the task ends")
	assert.Equal(t, mesospb.TASK_FAILED, st.GetState(), st.GetMessage())
	assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_LIMITATION_DISK, st.GetReason())
	assert.Regexp(t, `^Disk usage \([0-9]+(B|KB|MB)\) exceeds quota \(1MB\)$`, st.GetMessage())
}

// Without enforcement the same task runs on, and the agent reports its
// disk in GET_CONTAINERS.
func TestDiskQuotaReportedThroughAgent(t *testing.T) {
	c := startDiskCluster(t, false)
	c.measured(t)
	c.clk.Advance(5 * time.Second)
	st, _ := c.fw.last()
	assert.Equal(t, mesospb.TASK_RUNNING, st.GetState(), st.GetMessage())

	srv := httptest.NewServer(c.agent.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_CONTAINERS"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var got struct {
		GetContainers struct {
			Containers []struct {
				ResourceStatistics struct {
					DiskLimitBytes uint64 `json:"disk_limit_bytes"`
					DiskUsedBytes  uint64 `json:"disk_used_bytes"`
				} `json:"resource_statistics"`
			} `json:"containers"`
		} `json:"get_containers"`
	}
	require.NoError(t, json.Unmarshal(body, &got), string(body))
	var limits, used []uint64
	for _, ct := range got.GetContainers.Containers {
		limits = append(limits, ct.ResourceStatistics.DiskLimitBytes)
		used = append(used, ct.ResourceStatistics.DiskUsedBytes)
	}
	assert.Contains(t, limits, uint64(1<<20), string(body))
	require.NotEmpty(t, used)
	assert.GreaterOrEqual(t, maxOf(used), uint64(3<<20), string(body))
}

func maxOf(xs []uint64) uint64 {
	var m uint64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

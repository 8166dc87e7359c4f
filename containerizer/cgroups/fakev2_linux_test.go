package cgroups

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The v2 manager against a fake unified hierarchy: a plain directory laid
// out as cgroupfs would be, with the fixtures of testdata/. It covers what a
// machine whose controllers are bound to v1 cannot: v2 stats, limit files
// and the inotify OOM watch. No root needed.

func fakeV2(t *testing.T) (*manager, string) {
	t.Helper()
	mnt := t.TempDir()
	all := "cpu io memory pids"
	put := func(rel, content string) {
		p := filepath.Join(mnt, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	put("cgroup.controllers", all+"\n")
	put("cgroup.subtree_control", all+"\n")
	put("apron/cgroup.controllers", all+"\n")
	put("apron/cgroup.subtree_control", all+"\n")
	c := "apron/c1/"
	for file, fixtureName := range map[string]string{
		"cpu.stat": "v2-cpu.stat", "memory.stat": "v2-memory.stat",
		"cgroup.events": "v2-cgroup.events",
	} {
		put(c+file, fixture(t, fixtureName))
	}
	put(c+"memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
	for file, content := range map[string]string{
		"cgroup.procs": "12\n34\n", "cgroup.threads": "12\n34\n35\n",
		"cpu.max": "50000 100000\n", "cpu.weight": "100\n",
		"memory.current": "3145728\n", "memory.peak": "4194304\n",
		"memory.max": "67108864\n", "memory.low": "67108864\n",
		"memory.swap.current": "0\n", "memory.swap.max": "max\n",
		"pids.current": "2\n", "pids.max": "16\n", "pids.events": "max 3\n",
		"io.weight": "default 100\n",
	} {
		put(c+file, content)
	}
	put("apron/c1/sub/cgroup.procs", "56\n")
	put("apron/c1/sub/cgroup.threads", "56\n")
	mgr, err := New(Options{Mode: ModeV2, System: &System{Unified: mnt, UnifiedControllers: []string{"cpu", "io", "memory", "pids"}}})
	require.NoError(t, err)
	return mgr.(*manager), filepath.Join(mnt, c)
}

func TestFakeV2Stats(t *testing.T) {
	m, _ := fakeV2(t)
	ids, err := m.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, ids)
	pids, err := m.Pids("c1")
	require.NoError(t, err)
	assert.Equal(t, []int{12, 34, 56}, pids, "sub-cgroups included")
	s, err := m.Stats("c1")
	require.NoError(t, err)
	assert.Equal(t, Stats{
		Processes: 3, Threads: 4,
		CPUUser: 2500 * time.Millisecond, CPUSystem: time.Second,
		CPUPeriods: 200, CPUThrottled: 17, CPUThrottledTime: 420 * time.Millisecond,
		CPUQuota:    0.5,
		MemoryUsage: 3145728, MemoryMaxUsage: 4194304,
		MemoryLimit: 67108864, MemorySoftLimit: 67108864,
		MemoryRSS: 2097152, MemoryCache: 1048576, MemoryMappedFile: 524288, MemoryUnevictable: 8192,
		PidsCurrent: 2, PidsMax: 16, PidsLimited: 3,
	}, s)
}

func TestFakeV2Update(t *testing.T) {
	m, dir := fakeV2(t)
	read := func(f string) string { return readTrim(t, filepath.Join(dir, f)) }
	require.NoError(t, m.Update("c1", Limits{CPUs: 2, CPULimit: 1.5, MemoryBytes: 128 << 20, PidsMax: 32, BlkioWeight: 1000}))
	assert.Equal(t, "79", read("cpu.weight"))
	assert.Equal(t, "150000 100000", read("cpu.max"))
	assert.Equal(t, "134217728", read("memory.max"))
	assert.Equal(t, "134217728", read("memory.low"))
	assert.Equal(t, "0", read("memory.swap.max"))
	assert.Equal(t, "32", read("pids.max"))
	assert.Equal(t, "default 10000", read("io.weight"))

	require.NoError(t, m.Update("c1", Limits{CPUs: 1, MemoryBytes: 64 << 20}))
	assert.Equal(t, "134217728", read("memory.max"), "never lowered")
	assert.Equal(t, "67108864", read("memory.low"))
	assert.Equal(t, "max 100000", read("cpu.max"), "no cap without EnableCFS")
	assert.Equal(t, "max", read("pids.max"))
}

func TestFakeV2CreateRollsBack(t *testing.T) {
	m, _ := fakeV2(t)
	// A plain directory has no control files: the first write fails and
	// Create removes what it made.
	err := m.Create("c2", Limits{CPUs: 1})
	require.Error(t, err)
	ids, err := m.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, ids)
	assert.ErrorIs(t, m.Create("c1", Limits{}), ErrExists)
}

func TestFakeV2WaitOOM(t *testing.T) {
	m, dir := fakeV2(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		n   uint64
		err error
	}
	got := make(chan result, 1)
	go func() {
		n, err := m.WaitOOM(ctx, "c1")
		got <- result{n, err}
	}()
	// Write until the watcher sees it: it may not be watching yet.
	events := filepath.Join(dir, "memory.events")
	require.Eventually(t, func() bool {
		require.NoError(t, os.WriteFile(events, []byte("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n"), 0o644))
		select {
		case r := <-got:
			require.NoError(t, r.err)
			assert.Equal(t, uint64(1), r.n)
			return true
		case <-time.After(10 * time.Millisecond):
			return false
		}
	}, 30*time.Second, time.Millisecond)

	// The cgroup going away ends the watch.
	require.NoError(t, os.WriteFile(events, []byte("oom_kill 0\n"), 0o644))
	go func() {
		n, err := m.WaitOOM(ctx, "c1")
		got <- result{n, err}
	}()
	require.NoError(t, os.RemoveAll(dir))
	r := <-got
	assert.ErrorIs(t, r.err, ErrNotFound)
}

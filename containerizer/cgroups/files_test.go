package cgroups

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Tests of the file formats and of the files limits become: no file system,
// no root, so both versions are covered on any machine.

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

func systemFrom(t *testing.T, mountinfo, procCgroups string) System {
	t.Helper()
	sys, err := parseSystem(strings.NewReader(fixture(t, mountinfo)), strings.NewReader(fixture(t, procCgroups)))
	require.NoError(t, err)
	return sys
}

func TestDetectHybrid(t *testing.T) {
	sys := systemFrom(t, "mountinfo-hybrid", "proc-cgroups-hybrid")
	assert.Equal(t, "/sys/fs/cgroup/unified", sys.Unified)
	assert.True(t, sys.Hybrid())
	assert.Equal(t, "/sys/fs/cgroup/cpu,cpuacct", sys.V1["cpu"])
	assert.Equal(t, "/sys/fs/cgroup/cpu,cpuacct", sys.V1["cpuacct"])
	assert.Equal(t, "/sys/fs/cgroup/memory", sys.V1["memory"])
	assert.Equal(t, "/sys/fs/cgroup/my hugetlb", sys.V1["hugetlb"], "octal escape")
	assert.NotContains(t, sys.V1, "name=systemd")
	assert.NotContains(t, sys.V1, "devices", "enabled but not mounted")

	mode, err := sys.choose(ModeAuto)
	require.NoError(t, err)
	assert.Equal(t, ModeV1, mode, "v2 has no controllers in a hybrid")
	_, err = sys.choose(ModeV2)
	assert.NoError(t, err, "v2 may be forced, for what it can do without controllers")

	sys.UnifiedControllers = []string{"cpu", "memory", "pids"}
	mode, err = sys.choose(ModeAuto)
	require.NoError(t, err)
	assert.Equal(t, ModeV2, mode, "v2 preferred when it has the controllers")
}

func TestDetectUnified(t *testing.T) {
	sys := systemFrom(t, "mountinfo-unified", "proc-cgroups-unified")
	assert.Equal(t, "/sys/fs/cgroup", sys.Unified)
	assert.Empty(t, sys.V1)
	assert.False(t, sys.Hybrid())
	sys.UnifiedControllers = parseControllers("cpuset cpu io memory hugetlb pids rdma misc\n")
	mode, err := sys.choose(ModeAuto)
	require.NoError(t, err)
	assert.Equal(t, ModeV2, mode)
	_, err = sys.choose(ModeV1)
	assert.ErrorIs(t, err, ErrUnavailable)
}

func TestDetectNothingUsable(t *testing.T) {
	sys := systemFrom(t, "mountinfo-unified", "proc-cgroups-unified")
	sys.UnifiedControllers = []string{"pids"}
	_, err := sys.choose(ModeAuto)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "cgroup2 at /sys/fs/cgroup lacks controllers cpu, memory")
	assert.Contains(t, err.Error(), "v1 lacks controllers cpu, memory, cpuacct")

	_, err = System{}.choose(ModeAuto)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "no cgroup2 file system is mounted")
}

func TestDetectMalformed(t *testing.T) {
	_, err := parseSystem(strings.NewReader("1 2 3\n"), strings.NewReader(""))
	assert.Error(t, err)
	_, err = parseSystem(strings.NewReader(""), strings.NewReader("cpu 1\n"))
	assert.Error(t, err)
	sys, err := parseSystem(strings.NewReader(""), strings.NewReader(""))
	require.NoError(t, err)
	assert.Empty(t, sys.V1)
}

func TestParseGarbage(t *testing.T) {
	g := fixture(t, "garbage")
	assert.Empty(t, parseKeyValues(g))
	assert.Empty(t, parsePids(g+"\n-3\n0\n"))
	var s Stats
	v1Stats(&s, g, g, g, g, g, g)
	v2Stats(&s, g, g, g)
	assert.Equal(t, Stats{}, s)
	_, err := parseCPUMax(g)
	assert.Error(t, err)
	_, err = parseLimit(g)
	assert.Error(t, err)
	assert.Zero(t, v1Quota(g, g))
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]uint64{
		"max\n": 0, "-1": 0, "9223372036854771712\n": 0, "33554432\n": 33554432, "0": 0,
	} {
		got, err := parseLimit(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
}

func TestParseCPUMax(t *testing.T) {
	q, err := parseCPUMax("max 100000\n")
	require.NoError(t, err)
	assert.Zero(t, q)
	q, err = parseCPUMax("150000 100000\n")
	require.NoError(t, err)
	assert.InDelta(t, 1.5, q, 1e-9)
	_, err = parseCPUMax("150000 0")
	assert.Error(t, err)
	assert.Equal(t, "150000 100000", formatCPUMax(150*time.Millisecond))
	assert.InDelta(t, 0.5, v1Quota("50000\n", "100000\n"), 1e-9)
	assert.Zero(t, v1Quota("-1\n", "100000\n"))
}

func TestParsePidsAndEvents(t *testing.T) {
	assert.Equal(t, []int{12, 7, 99}, parsePids("12\n7\n99\n"))
	assert.Equal(t, []int{1, 2, 5}, sortedUnique([]int{5, 1, 2, 5, 1}))
	populated, ok := parseEventsFlag(fixture(t, "v2-cgroup.events"), "populated")
	assert.True(t, ok)
	assert.True(t, populated)
	frozen, ok := parseEventsFlag(fixture(t, "v2-cgroup.events"), "frozen")
	assert.True(t, ok)
	assert.False(t, frozen)
}

func TestV1Stats(t *testing.T) {
	var s Stats
	v1Stats(&s, fixture(t, "v1-cpu.stat"), fixture(t, "v1-cpuacct.stat"), "", "",
		fixture(t, "v1-memory.stat"), fixture(t, "v1-memory.oom_control"))
	assert.Equal(t, Stats{
		CPUUser: 2500 * time.Millisecond, CPUSystem: 500 * time.Millisecond,
		CPUPeriods: 120, CPUThrottled: 30, CPUThrottledTime: 1500 * time.Millisecond,
		MemoryRSS: 2097152, MemoryCache: 1048576, MemoryMappedFile: 524288,
		MemorySwap: 4096, MemoryUnevictable: 8192, OOMKills: 3,
	}, s)
	// The nanosecond counters win over the ticks when present.
	v1Stats(&s, "", fixture(t, "v1-cpuacct.stat"), "1234567\n", "7654321\n", "", "")
	assert.Equal(t, 1234567*time.Nanosecond, s.CPUUser)
	assert.Equal(t, 7654321*time.Nanosecond, s.CPUSystem)
}

func TestV2Stats(t *testing.T) {
	var s Stats
	v2Stats(&s, fixture(t, "v2-cpu.stat"), fixture(t, "v2-memory.stat"), fixture(t, "v2-memory.events"))
	assert.Equal(t, Stats{
		CPUUser: 2500 * time.Millisecond, CPUSystem: time.Second,
		CPUPeriods: 200, CPUThrottled: 17, CPUThrottledTime: 420 * time.Millisecond,
		MemoryRSS: 2097152, MemoryCache: 1048576, MemoryMappedFile: 524288,
		MemoryUnevictable: 8192, OOMKills: 2,
	}, s)
}

func TestFill(t *testing.T) {
	s := Stats{
		Processes: 3, Threads: 1 << 40, CPUUser: 1500 * time.Millisecond, CPUSystem: 250 * time.Millisecond,
		CPUPeriods: 10, CPUThrottled: 2, CPUThrottledTime: 30 * time.Millisecond,
		MemoryUsage: 100, MemoryLimit: 200, MemoryRSS: 60, MemoryCache: 40, MemoryMappedFile: 5,
	}
	var rs mesospb.ResourceStatistics
	s.Fill(&rs)
	assert.Equal(t, uint32(3), *rs.Processes)
	assert.Equal(t, uint32(math.MaxUint32), *rs.Threads, "clamped, not wrapped")
	assert.InDelta(t, 1.5, *rs.CpusUserTimeSecs, 1e-9)
	assert.InDelta(t, 0.25, *rs.CpusSystemTimeSecs, 1e-9)
	assert.Equal(t, uint32(10), *rs.CpusNrPeriods)
	assert.Equal(t, uint32(2), *rs.CpusNrThrottled)
	assert.InDelta(t, 0.03, *rs.CpusThrottledTimeSecs, 1e-9)
	assert.Equal(t, uint64(100), *rs.MemTotalBytes)
	assert.Equal(t, uint64(200), *rs.MemLimitBytes)
	assert.Nil(t, rs.MemSoftLimitBytes, "no soft limit")
	assert.Nil(t, rs.MemTotalMemswBytes, "no swap accounting")
	assert.Equal(t, uint64(60), *rs.MemRssBytes)
	assert.Equal(t, uint64(40), *rs.MemCacheBytes)
	assert.Equal(t, uint64(5), *rs.MemMappedFileBytes)
	assert.Nil(t, rs.CpusLimit, "the allocation is the containerizer's to fill")
}

func TestCPUMapping(t *testing.T) {
	assert.Equal(t, uint64(2), cpuShares(0.001), "Mesos's minimum")
	assert.Equal(t, uint64(1024), cpuShares(1))
	assert.Equal(t, uint64(512), cpuShares(0.5))
	assert.Equal(t, uint64(MaxCPUShares), cpuShares(10000))
	// runc/crun: 1 + (shares-2)*9999/262142.
	assert.Equal(t, uint64(1), sharesToWeight(2))
	assert.Equal(t, uint64(39), sharesToWeight(1024))
	assert.Equal(t, uint64(10000), sharesToWeight(262144))
	assert.Equal(t, uint64(1), blkioToIOWeight(10))
	assert.Equal(t, uint64(10000), blkioToIOWeight(1000))
	assert.Equal(t, uint64(5000), blkioToIOWeight(505))

	q, ok := Limits{CPUs: 2}.cfsQuota(false)
	assert.False(t, ok, "no CFS without EnableCFS or CPULimit")
	q, ok = Limits{CPUs: 2}.cfsQuota(true)
	assert.True(t, ok)
	assert.Equal(t, 200*time.Millisecond, q)
	q, ok = Limits{CPUs: 0.001}.cfsQuota(true)
	assert.True(t, ok)
	assert.Equal(t, MinCFSQuota, q, "Mesos's minimum quota")
	q, ok = Limits{CPUs: 2, CPULimit: 0.5}.cfsQuota(false)
	assert.True(t, ok)
	assert.Equal(t, 50*time.Millisecond, q)
	_, ok = Limits{CPUs: 2, CPULimit: math.Inf(1)}.cfsQuota(true)
	assert.False(t, ok, "+Inf is no cap")
}

func writesOf(ws []limitWrite) []string {
	var out []string
	for _, w := range ws {
		s := w.controller + ":" + w.file + "=" + w.value
		if w.optional {
			s += "?"
		}
		out = append(out, s)
	}
	return out
}

func TestV1LimitWrites(t *testing.T) {
	l := Limits{CPUs: 1.5, MemoryBytes: 64 << 20, PidsMax: 16, BlkioWeight: 300}
	assert.Equal(t, []string{
		"cpu:cpu.shares=1536",
		"cpu:cpu.cfs_period_us=100000",
		"cpu:cpu.cfs_quota_us=150000",
		"memory:memory.soft_limit_in_bytes=67108864",
		"memory:memory.limit_in_bytes=67108864",
		"memory:memory.memsw.limit_in_bytes=67108864?",
		"pids:pids.max=16",
		"blkio:blkio.weight=300?",
		"blkio:blkio.bfq.weight=300?",
	}, writesOf(v1LimitWrites(l, true, memoryNow{create: true})))

	assert.Equal(t, []string{
		"cpu:cpu.shares=1024?",
		"cpu:cpu.cfs_quota_us=-1?",
		"memory:memory.soft_limit_in_bytes=-1?",
		"memory:memory.memsw.limit_in_bytes=-1?",
		"memory:memory.limit_in_bytes=-1?",
		"pids:pids.max=max?",
	}, writesOf(v1LimitWrites(Limits{}, false, memoryNow{create: true})), "zero is the default, and optional")

	// Mesos's minimum memory.
	assert.Contains(t, writesOf(v1LimitWrites(Limits{MemoryBytes: 1}, false, memoryNow{create: true})),
		"memory:memory.limit_in_bytes=33554432")

	// Update: raise memsw before the limit; never lower the limit.
	assert.Equal(t, []string{
		"memory:memory.soft_limit_in_bytes=134217728",
		"memory:memory.memsw.limit_in_bytes=134217728?",
		"memory:memory.limit_in_bytes=134217728",
	}, memoryOnly(v1LimitWrites(Limits{MemoryBytes: 128 << 20}, false, memoryNow{current: 64 << 20})))
	assert.Equal(t, []string{
		"memory:memory.soft_limit_in_bytes=33554432",
	}, memoryOnly(v1LimitWrites(Limits{MemoryBytes: 32 << 20}, false, memoryNow{current: 64 << 20})))
	// From no limit to one: the limit first, then memsw down to it.
	assert.Equal(t, []string{
		"memory:memory.soft_limit_in_bytes=33554432",
		"memory:memory.limit_in_bytes=33554432",
		"memory:memory.memsw.limit_in_bytes=33554432?",
	}, memoryOnly(v1LimitWrites(Limits{MemoryBytes: 32 << 20}, false, memoryNow{})))
}

func memoryOnly(ws []limitWrite) []string {
	var out []string
	for _, s := range writesOf(ws) {
		if strings.HasPrefix(s, "memory:") {
			out = append(out, s)
		}
	}
	return out
}

func TestV2LimitWrites(t *testing.T) {
	l := Limits{CPUs: 1, CPULimit: 2, MemoryBytes: 64 << 20, PidsMax: 16, BlkioWeight: 1000}
	assert.Equal(t, []string{
		"cpu:cpu.weight=39",
		"cpu:cpu.max=200000 100000",
		"memory:memory.low=67108864",
		"memory:memory.max=67108864",
		"memory:memory.swap.max=0?",
		"pids:pids.max=16",
		"io:io.weight=default 10000?",
		"io:io.bfq.weight=default 10000?",
	}, writesOf(v2LimitWrites(l, false, memoryNow{create: true})))

	assert.Equal(t, []string{
		"cpu:cpu.weight=100?",
		"cpu:cpu.max=max 100000?",
		"memory:memory.low=0?",
		"memory:memory.max=max?",
		"memory:memory.swap.max=0?",
		"pids:pids.max=max?",
	}, writesOf(v2LimitWrites(Limits{}, false, memoryNow{create: true})))

	assert.NotContains(t, writesOf(v2LimitWrites(Limits{MemoryBytes: 32 << 20}, false, memoryNow{current: 64 << 20})),
		"memory:memory.max=33554432", "never lowered by Update")
	assert.Contains(t, writesOf(v2LimitWrites(Limits{}, false, memoryNow{current: 64 << 20})),
		"memory:memory.max=max?", "no limit is a raise")
}

func TestValidate(t *testing.T) {
	good := []Limits{{}, {CPUs: 0.1, MemoryBytes: 1 << 30, PidsMax: 100, BlkioWeight: 10}, {CPULimit: math.Inf(1)}}
	for _, l := range good {
		assert.NoError(t, l.Validate(), "%+v", l)
	}
	bad := []Limits{
		{CPUs: -1}, {CPUs: math.NaN()}, {CPUs: math.Inf(1)}, {CPUs: 1e9},
		{CPULimit: -0.5}, {CPULimit: math.NaN()}, {CPULimit: 1e300},
		{MemoryBytes: math.MaxUint64}, {PidsMax: MaxPids + 1},
		{BlkioWeight: 9}, {BlkioWeight: 1001},
	}
	for _, l := range bad {
		assert.ErrorIs(t, l.Validate(), ErrInvalidLimits, "%+v", l)
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "task-1.2_x", strings.Repeat("x", 242)} {
		assert.NoError(t, ValidateID(id), id)
	}
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a b", "a\x00", strings.Repeat("x", 243), "é"} {
		assert.ErrorIs(t, ValidateID(id), ErrInvalidID, id)
	}
	assert.NoError(t, validateRoot("apron/agent-1"))
	for _, r := range []string{"/apron", "apron/", "a/../b", "a//b"} {
		assert.Error(t, validateRoot(r), r)
	}
}

// FuzzParsers feeds the parsers what a broken or future kernel might put
// in /proc and /sys: none may panic.
func FuzzParsers(f *testing.F) {
	for _, name := range []string{"garbage", "mountinfo-hybrid", "proc-cgroups-hybrid", "v1-memory.stat", "v2-cpu.stat", "v2-memory.events"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		f.Add(string(b))
	}
	f.Add("1 2 3 4 5 6 - cgroup\n")
	f.Add(`1 2 0:1 / /a\1 rw - cgroup2 x rw` + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseSystem(strings.NewReader(s), strings.NewReader(s))
		_, _ = parseSystem(strings.NewReader(s), strings.NewReader(""))
		_ = parseKeyValues(s)
		_ = sortedUnique(parsePids(s))
		_, _ = parseCPUMax(s)
		_, _ = parseLimit(s)
		_ = v1Quota(s, s)
		_, _ = parseEventsFlag(s, "frozen")
		_ = unescapeOctal(s)
		var st Stats
		v1Stats(&st, s, s, s, s, s, s)
		v2Stats(&st, s, s, s)
		st.Fill(&mesospb.ResourceStatistics{})
	})
}

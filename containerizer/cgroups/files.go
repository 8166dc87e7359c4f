package cgroups

import (
	"bufio"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The formats of cgroup files, and the files a Limits becomes. Nothing here
// touches the file system, so that both versions' formats are tested on any
// machine. Parsers skip what they do not understand rather than fail: a
// newer kernel adds keys, and a sample with a field missing is more useful
// than none.

// parseKeyValues parses "key value" lines (cpu.stat, memory.stat,
// memory.events, memory.oom_control, pids.events, cpuacct.stat). Values
// that are not unsigned integers are skipped.
func parseKeyValues(s string) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		out[f[0]] = v
	}
	return out
}

// v1Unlimited is the smallest value v1 reports for "no limit"
// (PAGE_COUNTER_MAX in bytes is just under MaxInt64).
const v1Unlimited = 1 << 62

// parseLimit parses a limit file: a number, or "max" (v2) or a huge
// number or -1 (v1) for none, which is 0.
func parseLimit(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "max" || s == "-1" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroups: bad limit %q", s)
	}
	if v >= v1Unlimited {
		return 0, nil
	}
	return v, nil
}

// parseCPUMax parses v2 cpu.max, "$MAX $PERIOD" where $MAX may be "max",
// into the quota in cores (0 for none).
func parseCPUMax(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, fmt.Errorf("cgroups: bad cpu.max %q", s)
	}
	period, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || period == 0 {
		return 0, fmt.Errorf("cgroups: bad cpu.max period %q", s)
	}
	if f[0] == "max" {
		return 0, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroups: bad cpu.max quota %q", s)
	}
	return float64(quota) / float64(period), nil
}

// v1Quota converts v1 cpu.cfs_quota_us and cpu.cfs_period_us into cores.
func v1Quota(quota, period string) float64 {
	q, err1 := strconv.ParseInt(strings.TrimSpace(quota), 10, 64)
	p, err2 := strconv.ParseInt(strings.TrimSpace(period), 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return float64(q) / float64(p)
}

// parsePids parses cgroup.procs or tasks: one decimal PID a line. Lines
// that are not positive numbers are skipped.
func parsePids(s string) []int {
	var out []int
	for _, l := range strings.Split(s, "\n") {
		if pid, err := strconv.Atoi(strings.TrimSpace(l)); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// parseEventsFlag reads a flag of v2 cgroup.events ("populated 1",
// "frozen 0").
func parseEventsFlag(s, key string) (bool, bool) {
	v, ok := parseKeyValues(s)[key]
	return v == 1, ok
}

// sortedUnique sorts pids and drops duplicates.
func sortedUnique(pids []int) []int {
	sort.Ints(pids)
	out := pids[:0]
	for i, p := range pids {
		if i == 0 || p != pids[i-1] {
			out = append(out, p)
		}
	}
	return out
}

// limitWrite is one value written to one file of a container's cgroup.
type limitWrite struct {
	// controller must be available for the write; "" for core files.
	controller  string
	file, value string
	// optional writes are skipped when the controller or the file is
	// missing: resets to a default, and knobs some kernels lack.
	optional bool
}

// memoryNow is what Update needs to know of the current hard memory limit
// (0 for none) to raise and never lower it; create is set by Create.
type memoryNow struct {
	create  bool
	current uint64
}

// raiseHard says whether to write the hard limit newLimit (0 for none).
func (m memoryNow) raiseHard(newLimit uint64) bool {
	switch {
	case m.create:
		return true
	case newLimit == 0: // no limit is the highest
		return m.current != 0
	case m.current == 0:
		// No limit was set (a Create without one): setting one now is
		// what the caller asked for, as Mesos sets it the first time.
		return true
	}
	return newLimit > m.current
}

// v1LimitWrites returns the writes that set l on v1, in order.
func v1LimitWrites(l Limits, enableCFS bool, mem memoryNow) []limitWrite {
	var w []limitWrite
	if l.CPUs > 0 {
		w = append(w, limitWrite{controller: "cpu", file: "cpu.shares", value: u(cpuShares(l.CPUs))})
	} else {
		w = append(w, limitWrite{controller: "cpu", file: "cpu.shares", value: "1024", optional: true})
	}
	if q, ok := l.cfsQuota(enableCFS); ok {
		w = append(w,
			limitWrite{controller: "cpu", file: "cpu.cfs_period_us", value: u(uint64(CFSPeriod / time.Microsecond))},
			limitWrite{controller: "cpu", file: "cpu.cfs_quota_us", value: u(uint64(q / time.Microsecond))})
	} else {
		w = append(w, limitWrite{controller: "cpu", file: "cpu.cfs_quota_us", value: "-1", optional: true})
	}

	hard := l.memoryLimit()
	soft := limitWrite{controller: "memory", file: "memory.soft_limit_in_bytes", value: "-1", optional: true}
	if hard != 0 {
		soft = limitWrite{controller: "memory", file: "memory.soft_limit_in_bytes", value: u(hard)}
	}
	w = append(w, soft)
	if mem.raiseHard(hard) {
		value := "-1"
		if hard != 0 {
			value = u(hard)
		}
		limit := limitWrite{controller: "memory", file: "memory.limit_in_bytes", value: value, optional: hard == 0}
		// memory.memsw.limit_in_bytes (memory + swap) must stay >= the
		// memory limit: equal to it turns swap off. Lower the memory
		// limit (from none) before memsw, raise memsw before the
		// memory limit.
		memsw := limitWrite{controller: "memory", file: "memory.memsw.limit_in_bytes", value: value, optional: true}
		if hard != 0 && (mem.create || mem.current == 0) {
			w = append(w, limit, memsw)
		} else {
			w = append(w, memsw, limit)
		}
	}

	if l.PidsMax > 0 {
		w = append(w, limitWrite{controller: "pids", file: "pids.max", value: u(l.PidsMax)})
	} else {
		w = append(w, limitWrite{controller: "pids", file: "pids.max", value: "max", optional: true})
	}
	if l.BlkioWeight > 0 {
		// CFQ's blkio.weight, else BFQ's; throttling-only kernels have
		// neither. The caller writes the first that exists.
		v := strconv.Itoa(int(l.BlkioWeight))
		w = append(w,
			limitWrite{controller: "blkio", file: "blkio.weight", value: v, optional: true},
			limitWrite{controller: "blkio", file: "blkio.bfq.weight", value: v, optional: true})
	}
	return w
}

// v2LimitWrites returns the writes that set l on v2, in order.
func v2LimitWrites(l Limits, enableCFS bool, mem memoryNow) []limitWrite {
	var w []limitWrite
	if l.CPUs > 0 {
		w = append(w, limitWrite{controller: "cpu", file: "cpu.weight", value: u(sharesToWeight(cpuShares(l.CPUs)))})
	} else {
		w = append(w, limitWrite{controller: "cpu", file: "cpu.weight", value: "100", optional: true})
	}
	if q, ok := l.cfsQuota(enableCFS); ok {
		w = append(w, limitWrite{controller: "cpu", file: "cpu.max", value: formatCPUMax(q)})
	} else {
		w = append(w, limitWrite{controller: "cpu", file: "cpu.max", value: "max " + u(uint64(CFSPeriod/time.Microsecond)), optional: true})
	}

	hard := l.memoryLimit()
	if hard != 0 {
		// Mesos sets memory.low, the memory the kernel reclaims from
		// the container only when nothing else is left, to the request.
		w = append(w, limitWrite{controller: "memory", file: "memory.low", value: u(hard)})
	} else {
		w = append(w, limitWrite{controller: "memory", file: "memory.low", value: "0", optional: true})
	}
	if mem.raiseHard(hard) {
		if hard != 0 {
			w = append(w, limitWrite{controller: "memory", file: "memory.max", value: u(hard)})
		} else {
			w = append(w, limitWrite{controller: "memory", file: "memory.max", value: "max", optional: true})
		}
	}
	// No swap: without CONFIG_MEMCG_SWAP the file is missing and there
	// is nothing to turn off.
	w = append(w, limitWrite{controller: "memory", file: "memory.swap.max", value: "0", optional: true})

	if l.PidsMax > 0 {
		w = append(w, limitWrite{controller: "pids", file: "pids.max", value: u(l.PidsMax)})
	} else {
		w = append(w, limitWrite{controller: "pids", file: "pids.max", value: "max", optional: true})
	}
	if l.BlkioWeight > 0 {
		v := "default " + u(blkioToIOWeight(l.BlkioWeight))
		w = append(w,
			limitWrite{controller: "io", file: "io.weight", value: v, optional: true},
			limitWrite{controller: "io", file: "io.bfq.weight", value: v, optional: true})
	}
	return w
}

// formatCPUMax formats v2 cpu.max for a quota per CFSPeriod.
func formatCPUMax(quota time.Duration) string {
	return u(uint64(quota/time.Microsecond)) + " " + u(uint64(CFSPeriod/time.Microsecond))
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }

// usecs converts microseconds, as cpu.stat counts them, to a Duration.
func usecs(v uint64) time.Duration {
	if v > math.MaxInt64/uint64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(v) * time.Microsecond
}

// nsecs converts nanoseconds to a Duration.
func nsecs(v uint64) time.Duration {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(v)
}

// v1Stats fills the v1 parts of s from the files' contents; a missing
// file is "".
func v1Stats(s *Stats, cpuStat, cpuacctStat, usageUser, usageSys, memStat, oomControl string) {
	cs := parseKeyValues(cpuStat)
	s.CPUPeriods, s.CPUThrottled = cs["nr_periods"], cs["nr_throttled"]
	s.CPUThrottledTime = nsecs(cs["throttled_time"])
	// cpuacct.usage_user/_sys (ns) are exact; cpuacct.stat counts
	// USER_HZ ticks, which the kernel fixes at 100 for user space.
	uu, errU := strconv.ParseUint(strings.TrimSpace(usageUser), 10, 64)
	us, errS := strconv.ParseUint(strings.TrimSpace(usageSys), 10, 64)
	if errU == nil && errS == nil {
		s.CPUUser, s.CPUSystem = nsecs(uu), nsecs(us)
	} else {
		ticks := parseKeyValues(cpuacctStat)
		s.CPUUser = nsecs(ticks["user"] * uint64(10*time.Millisecond))
		s.CPUSystem = nsecs(ticks["system"] * uint64(10*time.Millisecond))
	}
	ms := parseKeyValues(memStat)
	s.MemoryRSS, s.MemoryCache = ms["total_rss"], ms["total_cache"]
	s.MemoryMappedFile, s.MemorySwap = ms["total_mapped_file"], ms["total_swap"]
	s.MemoryUnevictable = ms["total_unevictable"]
	s.OOMKills = parseKeyValues(oomControl)["oom_kill"]
}

// v2Stats fills the v2 parts of s from the files' contents; a missing
// file is "".
func v2Stats(s *Stats, cpuStat, memStat, memEvents string) {
	cs := parseKeyValues(cpuStat)
	s.CPUUser, s.CPUSystem = usecs(cs["user_usec"]), usecs(cs["system_usec"])
	s.CPUPeriods, s.CPUThrottled = cs["nr_periods"], cs["nr_throttled"]
	s.CPUThrottledTime = usecs(cs["throttled_usec"])
	ms := parseKeyValues(memStat)
	s.MemoryRSS, s.MemoryCache = ms["anon"], ms["file"]
	s.MemoryMappedFile, s.MemoryUnevictable = ms["file_mapped"], ms["unevictable"]
	s.OOMKills = parseKeyValues(memEvents)["oom_kill"]
}

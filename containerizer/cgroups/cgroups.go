package cgroups

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Errors returned by managers, wrapped with details; test them with
// errors.Is.
var (
	// ErrInvalidID: the container ID is not a safe single path element.
	ErrInvalidID = errors.New("invalid container id")
	// ErrInvalidLimits: a limit is negative, not a number or out of the
	// range the kernel accepts.
	ErrInvalidLimits = errors.New("invalid cgroup limits")
	// ErrNotFound: no cgroup of the container exists.
	ErrNotFound = errors.New("cgroup not found")
	// ErrExists: Create for a container whose cgroup exists already.
	ErrExists = errors.New("cgroup already exists")
	// ErrUnavailable: cgroups, or a controller a limit or call needs, are
	// not available on this machine.
	ErrUnavailable = errors.New("cgroups unavailable")
)

// Mode is a cgroup version.
type Mode int

const (
	// ModeAuto lets New pick the version from what the machine mounts.
	ModeAuto Mode = iota
	// ModeV1 is the legacy one-hierarchy-per-controller layout.
	ModeV1
	// ModeV2 is the unified hierarchy.
	ModeV2
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeV1:
		return "v1"
	case ModeV2:
		return "v2"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Constants of Mesos's cgroups isolators.
const (
	// CPUSharesPerCPU is cpu.shares per core.
	CPUSharesPerCPU = 1024
	// MinCPUShares is the least cpu.shares the kernel accepts.
	MinCPUShares = 2
	// MaxCPUShares is the most cpu.shares the kernel accepts.
	MaxCPUShares = 262144
	// CFSPeriod is the CFS bandwidth period (the kernel's default).
	CFSPeriod = 100 * time.Millisecond
	// MinCFSQuota is the smallest CFS quota set.
	MinCFSQuota = time.Millisecond
	// MinMemoryBytes is the smallest hard memory limit set: less would
	// leave too little for a process to start.
	MinMemoryBytes = 32 << 20
	// MaxCPUs is the most cores a limit may name.
	MaxCPUs = 1 << 16
	// MaxPids is the kernel's PID_MAX_LIMIT, the largest pids.max.
	MaxPids = 1 << 22
)

// Limits are the resources a container may use. Zero leaves a resource at
// the kernel's default (unlimited, or the default weight).
type Limits struct {
	// CPUs is the container's CPU share in cores (0.5 is half a core):
	// its weight against other containers when the CPUs are busy.
	CPUs float64
	// CPULimit caps the container at this many cores with a CFS quota.
	// 0 means CPUs when Options.EnableCFS is set, else no cap;
	// +Inf means no cap.
	CPULimit float64
	// MemoryBytes is the memory limit. The kernel OOM-kills a process of
	// a container that goes over it.
	MemoryBytes uint64
	// PidsMax is the most processes and threads the container may have.
	PidsMax uint64
	// BlkioWeight is the proportional block I/O weight on v1's scale,
	// 10 to 1000 (the default is 500 on v1, 100 on v2's io.weight, to
	// which it is mapped as runc does).
	BlkioWeight uint16
}

// Validate reports ErrInvalidLimits for a limit the kernel cannot take.
func (l Limits) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidLimits, fmt.Sprintf(format, args...))
	}
	switch {
	case math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0) || l.CPUs < 0:
		return bad("cpus %v is not a finite non-negative number", l.CPUs)
	case math.IsNaN(l.CPULimit) || math.IsInf(l.CPULimit, -1) || l.CPULimit < 0:
		return bad("cpu limit %v is not a non-negative number", l.CPULimit)
	case l.CPUs > MaxCPUs:
		return bad("cpus %v is more than any machine has", l.CPUs)
	case !math.IsInf(l.CPULimit, 1) && l.CPULimit > MaxCPUs:
		return bad("cpu limit %v is more than any machine has (+Inf is no limit)", l.CPULimit)
	case l.MemoryBytes > math.MaxInt64:
		return bad("memory %d bytes is too large", l.MemoryBytes)
	case l.PidsMax > MaxPids:
		return bad("pids max %d is more than the kernel's %d", l.PidsMax, MaxPids)
	case l.BlkioWeight != 0 && (l.BlkioWeight < 10 || l.BlkioWeight > 1000):
		return bad("blkio weight %d is not in [10, 1000]", l.BlkioWeight)
	}
	return nil
}

// cpuShares is Mesos's cpu.shares for cpus cores.
func cpuShares(cpus float64) uint64 {
	s := uint64(cpus * CPUSharesPerCPU)
	return min(max(s, MinCPUShares), MaxCPUShares)
}

// sharesToWeight maps v1 cpu.shares [2, 262144] onto v2 cpu.weight
// [1, 10000] linearly, as runc and crun do, so that a container's weight
// relative to another's is the same on both versions.
func sharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	shares = min(max(shares, MinCPUShares), MaxCPUShares)
	return 1 + ((shares-2)*9999)/262142
}

// blkioToIOWeight maps v1 blkio.weight [10, 1000] onto v2 io.weight
// [1, 10000], as runc does.
func blkioToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

// cfsQuota returns the CFS quota for l, and whether there is one.
func (l Limits) cfsQuota(enableCFS bool) (time.Duration, bool) {
	cores := l.CPULimit
	if cores == 0 && enableCFS {
		cores = l.CPUs
	}
	if cores == 0 || math.IsInf(cores, 1) {
		return 0, false
	}
	q := time.Duration(cores * float64(CFSPeriod))
	return max(q, MinCFSQuota), true
}

// memoryLimit is the hard memory limit for l, 0 for none.
func (l Limits) memoryLimit() uint64 {
	if l.MemoryBytes == 0 {
		return 0
	}
	return max(l.MemoryBytes, MinMemoryBytes)
}

// ValidateID reports ErrInvalidID unless id can name a cgroup directory:
// 1 to 242 bytes of [A-Za-z0-9_.-], not "." or "..", as the
// containerizer's container IDs are.
func ValidateID(id string) error {
	if err := validName(id); err != nil {
		return fmt.Errorf("%w %q: %v", ErrInvalidID, id, err)
	}
	return nil
}

func validName(s string) error {
	if s == "" || len(s) > 242 {
		return errors.New("must be 1 to 242 bytes")
	}
	if s == "." || s == ".." {
		return errors.New(`must not be "." or ".."`)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("byte %q is not one of [A-Za-z0-9_.-]", c)
		}
	}
	return nil
}

// validateRoot checks Options.Root: one or more valid names joined by "/".
func validateRoot(root string) error {
	for _, el := range strings.Split(root, "/") {
		if err := validName(el); err != nil {
			return fmt.Errorf("cgroups: invalid root %q: %v", root, err)
		}
	}
	return nil
}

// Options configure New.
type Options struct {
	// Root is the cgroup, relative to each hierarchy's mount, under which
	// the containers' cgroups are made: "apron" when empty. One or more
	// names of [A-Za-z0-9_.-] separated by "/". Two managers with the same
	// Root (on one machine) see the same containers.
	Root string
	// Mode forces a cgroup version; ModeAuto picks one (see the package
	// documentation).
	Mode Mode
	// EnableCFS caps every container at its CPUs with a CFS quota when
	// Limits.CPULimit is 0 (Mesos's --cgroups_enable_cfs).
	EnableCFS bool
	// System is where the hierarchies are mounted; nil detects it with
	// Detect. Tests set it to use a private cgroup2 mount.
	System *System
	// PollInterval is how often Kill and Destroy look again at a cgroup
	// that is not empty yet or not frozen yet: 10ms when 0.
	PollInterval time.Duration
}

func (o *Options) setDefaults() {
	if o.Root == "" {
		o.Root = "apron"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Millisecond
	}
}

// Manager makes and tends the cgroups of containers. Methods are safe for
// concurrent use, also by managers in other processes with the same Root,
// as far as the kernel's cgroup file system is; concurrent calls for one
// container are the caller's to order (Add after Create, nothing after
// Destroy). Methods taking an id return ErrInvalidID for an unsafe one and
// ErrNotFound when the container has no cgroup.
type Manager interface {
	// Mode is the cgroup version this manager uses.
	Mode() Mode
	// Create makes the container's cgroups and sets limits; ErrExists if
	// they exist, ErrUnavailable if a limit needs a controller the
	// machine lacks. On error nothing is left behind.
	Create(id string, limits Limits) error
	// Update sets limits as Create does, a zero field going back to the
	// kernel's default; but the hard memory limit is only ever raised.
	Update(id string, limits Limits) error
	// Add moves process pid, with all its threads, into the container.
	Add(id string, pid int) error
	// Dirs returns the container's cgroup directories, one per
	// hierarchy. On v2 there is exactly one, fit for CLONE_INTO_CGROUP.
	Dirs(id string) ([]string, error)
	// Pids lists, sorted, the processes in the container (and in any
	// cgroup its processes made below it).
	Pids(id string) ([]int, error)
	// Stats samples the container's usage.
	Stats(id string) (Stats, error)
	// Kill SIGKILLs every process in the container, freezing it first
	// where it can so that none forks meanwhile, and returns when none is
	// left. Processes killed but not yet reaped by their parent (zombies)
	// no longer count.
	Kill(ctx context.Context, id string) error
	// Destroy kills the container's processes and removes its cgroups.
	Destroy(ctx context.Context, id string) error
	// List returns, sorted, the IDs of the containers with a cgroup
	// under Root: those of a previous agent after a restart, and any
	// half made or half destroyed.
	List() ([]string, error)
	// WaitOOM blocks until the kernel has OOM-killed at least one process
	// of the container since its cgroup was made, and returns how many
	// (at least 1). It returns ErrNotFound if the cgroup goes away first
	// and ctx.Err() when ctx ends first.
	WaitOOM(ctx context.Context, id string) (uint64, error)
}

// Stats is a sample of a container's usage. Fields the kernel does not
// report are zero.
type Stats struct {
	// Processes and Threads are how many the container has.
	Processes, Threads uint64
	// CPUUser and CPUSystem are the CPU time its processes used.
	CPUUser, CPUSystem time.Duration
	// CPUPeriods is how many CFS periods have elapsed with a quota;
	// CPUThrottled how many of them throttled the container, for
	// CPUThrottledTime in total.
	CPUPeriods, CPUThrottled uint64
	CPUThrottledTime         time.Duration
	// CPUQuota is the CFS limit in cores, 0 for none.
	CPUQuota float64
	// MemoryUsage is the memory charged to the container now (v1
	// memory.usage_in_bytes, v2 memory.current), MemoryMaxUsage the most
	// it ever was (v2: memory.peak, kernel 5.19 and later).
	MemoryUsage, MemoryMaxUsage uint64
	// MemoryLimit and MemorySoftLimit are the limits set, 0 for none.
	MemoryLimit, MemorySoftLimit uint64
	// MemoryRSS is anonymous memory (v1 total_rss, v2 anon), MemoryCache
	// the page cache (v1 total_cache, v2 file), MemoryMappedFile the part
	// of it mapped, MemorySwap swapped out, MemoryUnevictable locked.
	MemoryRSS, MemoryCache, MemoryMappedFile, MemorySwap, MemoryUnevictable uint64
	// MemorySwapUsage is memory and swap together (v1 memsw), 0 when the
	// kernel does not account it.
	MemorySwapUsage uint64
	// OOMKills is how many processes the kernel OOM-killed in the
	// container.
	OOMKills uint64
	// PidsCurrent is the pids controller's count, PidsMax its limit (0
	// for none); PidsLimited how often a fork failed on it.
	PidsCurrent, PidsMax, PidsLimited uint64
}

// Fill sets the fields of rs that s knows: processes, threads, CPU times
// and throttling, memory usage and limits. It leaves Timestamp, CpusLimit
// (the allocation, which the containerizer knows) and everything else
// alone. The OOM count has no field in ResourceStatistics; the
// containerizer reports an OOM as a TASK_FAILED with
// REASON_CONTAINER_LIMITATION_MEMORY instead.
func (s Stats) Fill(rs *mesospb.ResourceStatistics) {
	u32 := func(v uint64) *uint32 {
		x := uint32(min(v, math.MaxUint32))
		return &x
	}
	u64 := func(v uint64) *uint64 { return &v }
	f64 := func(v float64) *float64 { return &v }
	rs.Processes = u32(s.Processes)
	rs.Threads = u32(s.Threads)
	rs.CpusUserTimeSecs = f64(s.CPUUser.Seconds())
	rs.CpusSystemTimeSecs = f64(s.CPUSystem.Seconds())
	rs.CpusNrPeriods = u32(s.CPUPeriods)
	rs.CpusNrThrottled = u32(s.CPUThrottled)
	rs.CpusThrottledTimeSecs = f64(s.CPUThrottledTime.Seconds())
	rs.MemTotalBytes = u64(s.MemoryUsage)
	if s.MemorySwapUsage != 0 {
		rs.MemTotalMemswBytes = u64(s.MemorySwapUsage)
	}
	if s.MemoryLimit != 0 {
		rs.MemLimitBytes = u64(s.MemoryLimit)
	}
	if s.MemorySoftLimit != 0 {
		rs.MemSoftLimitBytes = u64(s.MemorySoftLimit)
	}
	rs.MemRssBytes = u64(s.MemoryRSS)
	rs.MemCacheBytes = u64(s.MemoryCache)
	// The deprecated names of the same numbers, which older consumers of
	// /monitor/statistics read.
	rs.MemAnonBytes = u64(s.MemoryRSS)
	rs.MemFileBytes = u64(s.MemoryCache)
	rs.MemMappedFileBytes = u64(s.MemoryMappedFile)
	rs.MemSwapBytes = u64(s.MemorySwap)
	rs.MemUnevictableBytes = u64(s.MemoryUnevictable)
}

// New returns the manager for this machine: v2 or v1 as opts.Mode says or,
// with ModeAuto, as the mounted hierarchies allow (see the package
// documentation). It makes nothing until Create.
func New(opts Options) (Manager, error) {
	opts.setDefaults()
	if err := validateRoot(opts.Root); err != nil {
		return nil, err
	}
	return newManager(opts)
}

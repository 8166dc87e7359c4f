package cgroups

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// v1Controllers are the v1 hierarchies a container joins. cpuset is left
// out: a cpuset cgroup needs cpus and mems copied in before it can hold a
// process, and Apron sets no cpuset.
var v1Controllers = []string{"blkio", "cpu", "cpuacct", "freezer", "memory", "pids"}

// v2Controllers are the controllers enabled for containers on v2.
var v2Controllers = []string{"cpu", "io", "memory", "pids"}

// manager implements Manager for both versions: they differ in a few files
// (limits, stats, freezing, OOM events) and share the rest (directories,
// processes, listing, removal).
type manager struct {
	opts Options
	mode Mode
	// mounts are the distinct hierarchies a container has a directory
	// in, sorted; one for v2.
	mounts []string
	// ctrl maps a controller to the mount of its hierarchy.
	ctrl map[string]string
}

func newManager(opts Options) (Manager, error) {
	var sys System
	if opts.System != nil {
		sys = *opts.System
	} else {
		var err error
		if sys, err = Detect(); err != nil {
			return nil, err
		}
	}
	if sys.Unified != "" && sys.UnifiedControllers == nil {
		if b, err := os.ReadFile(filepath.Join(sys.Unified, "cgroup.controllers")); err == nil {
			sys.UnifiedControllers = parseControllers(string(b))
		}
	}
	mode, err := sys.choose(opts.Mode)
	if err != nil {
		return nil, err
	}
	m := &manager{opts: opts, mode: mode, ctrl: map[string]string{}}
	if mode == ModeV2 {
		m.mounts = []string{sys.Unified}
		for _, c := range v2Controllers {
			if slices.Contains(sys.UnifiedControllers, c) {
				m.ctrl[c] = sys.Unified
			}
		}
		return m, nil
	}
	for _, c := range v1Controllers {
		if mnt := sys.V1[c]; mnt != "" {
			m.ctrl[c] = mnt
			if !slices.Contains(m.mounts, mnt) {
				m.mounts = append(m.mounts, mnt)
			}
		}
	}
	sort.Strings(m.mounts)
	return m, nil
}

func (m *manager) Mode() Mode { return m.mode }

func (m *manager) rootDir(mount string) string { return filepath.Join(mount, m.opts.Root) }

func (m *manager) dir(mount, id string) string { return filepath.Join(mount, m.opts.Root, id) }

// ctrlDir is the container's directory in the hierarchy of controller c.
func (m *manager) ctrlDir(c, id string) (string, bool) {
	mnt, ok := m.ctrl[c]
	if !ok {
		return "", false
	}
	return m.dir(mnt, id), true
}

// existing returns the container's directories that exist, or
// ErrNotFound when none does.
func (m *manager) existing(id string) ([]string, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	var dirs []string
	for _, mnt := range m.mounts {
		d := m.dir(mnt, id)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%w: container %q under %q", ErrNotFound, id, m.opts.Root)
	}
	return dirs, nil
}

func (m *manager) Dirs(id string) ([]string, error) { return m.existing(id) }

// available reports the controllers a container's cgroup can use: on v1
// those mounted; on v2 those enabled in Root's cgroup.subtree_control.
func (m *manager) available() map[string]bool {
	out := map[string]bool{}
	if m.mode == ModeV1 {
		for c := range m.ctrl {
			out[c] = true
		}
		return out
	}
	b, _ := os.ReadFile(filepath.Join(m.rootDir(m.mounts[0]), "cgroup.subtree_control"))
	for _, c := range parseControllers(string(b)) {
		out[c] = true
	}
	return out
}

// ensureRoot makes Root in every hierarchy and, on v2, enables the
// controllers for the cgroups below it, from the mount down.
func (m *manager) ensureRoot() error {
	if m.mode == ModeV1 {
		for _, mnt := range m.mounts {
			if err := os.MkdirAll(m.rootDir(mnt), 0o755); err != nil {
				return fmt.Errorf("cgroups: %w", err)
			}
		}
		return nil
	}
	dir := m.mounts[0]
	levels := append([]string{""}, strings.Split(m.opts.Root, "/")...)
	for i, el := range levels {
		dir = filepath.Join(dir, el)
		if i > 0 {
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("cgroups: %w", err)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
		have := parseControllers(string(b))
		for _, c := range v2Controllers {
			if slices.Contains(have, c) {
				// A controller that cannot be enabled (a process in
				// a non-root ancestor, say) is left out; limits that
				// need it then fail with ErrUnavailable.
				_ = writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+c)
			}
		}
	}
	return nil
}

func (m *manager) Create(id string, limits Limits) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := limits.Validate(); err != nil {
		return err
	}
	if len(m.mounts) == 0 {
		return fmt.Errorf("%w: no hierarchy", ErrUnavailable)
	}
	if err := m.ensureRoot(); err != nil {
		return err
	}
	writes := m.limitWrites(limits, memoryNow{create: true})
	avail := m.available()
	for _, w := range writes {
		if !w.optional && w.controller != "" && !avail[w.controller] {
			return fmt.Errorf("%w: the %s controller, needed to set %s, is not available in cgroup %s", ErrUnavailable, w.controller, w.file, m.mode)
		}
	}
	var made []string
	for _, mnt := range m.mounts {
		d := m.dir(mnt, id)
		if err := os.Mkdir(d, 0o755); err != nil {
			removeDirs(made)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: %s", ErrExists, d)
			}
			return fmt.Errorf("cgroups: %w", err)
		}
		made = append(made, d)
	}
	if err := m.apply(id, writes, avail); err != nil {
		removeDirs(made)
		return err
	}
	return nil
}

func (m *manager) limitWrites(l Limits, mem memoryNow) []limitWrite {
	if m.mode == ModeV2 {
		return v2LimitWrites(l, m.opts.EnableCFS, mem)
	}
	return v1LimitWrites(l, m.opts.EnableCFS, mem)
}

func (m *manager) apply(id string, writes []limitWrite, avail map[string]bool) error {
	for _, w := range writes {
		if !avail[w.controller] {
			if w.optional {
				continue
			}
			return fmt.Errorf("%w: the %s controller, needed to set %s, is not available", ErrUnavailable, w.controller, w.file)
		}
		d, _ := m.ctrlDir(w.controller, id)
		p := filepath.Join(d, w.file)
		if w.optional {
			if _, err := os.Stat(p); err != nil {
				continue
			}
		}
		if err := writeFile(p, w.value); err != nil {
			return fmt.Errorf("cgroups: setting %s: %w", w.file, err)
		}
	}
	return nil
}

func (m *manager) Update(id string, limits Limits) error {
	if _, err := m.existing(id); err != nil {
		return err
	}
	if err := limits.Validate(); err != nil {
		return err
	}
	var mem memoryNow
	if d, ok := m.ctrlDir("memory", id); ok {
		file := "memory.limit_in_bytes"
		if m.mode == ModeV2 {
			file = "memory.max"
		}
		if b, err := os.ReadFile(filepath.Join(d, file)); err == nil {
			cur, err := parseLimit(string(b))
			if err != nil {
				return err
			}
			mem.current = cur
		}
	}
	return m.apply(id, m.limitWrites(limits, mem), m.available())
}

func (m *manager) Add(id string, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroups: invalid pid %d", pid)
	}
	dirs, err := m.existing(id)
	if err != nil {
		return err
	}
	if len(dirs) != len(m.mounts) {
		return fmt.Errorf("%w: container %q is missing from some hierarchies (half destroyed?)", ErrNotFound, id)
	}
	for _, d := range dirs {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroups: adding pid %d: %w", pid, err)
		}
	}
	return nil
}

func (m *manager) Pids(id string) ([]int, error) {
	dirs, err := m.existing(id)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		p, err := readRecursive(d, "cgroup.procs")
		if err != nil {
			return nil, err
		}
		pids = append(pids, p...)
	}
	return sortedUnique(pids), nil
}

func (m *manager) Stats(id string) (Stats, error) {
	if _, err := m.existing(id); err != nil {
		return Stats{}, err
	}
	read := func(c, file string) string {
		d, ok := m.ctrlDir(c, id)
		if !ok {
			return ""
		}
		b, err := os.ReadFile(filepath.Join(d, file))
		if err != nil {
			return ""
		}
		return string(b)
	}
	num := func(c, file string) uint64 {
		v, _ := parseLimit(read(c, file))
		return v
	}
	var s Stats
	pids, err := m.Pids(id)
	if err != nil {
		return Stats{}, err
	}
	s.Processes = uint64(len(pids))
	s.PidsCurrent, s.PidsMax = num("pids", "pids.current"), num("pids", "pids.max")
	s.PidsLimited = parseKeyValues(read("pids", "pids.events"))["max"]
	if m.mode == ModeV1 {
		if d, ok := m.ctrlDir("memory", id); ok {
			s.Threads = uint64(len(mustRecursive(d, "tasks")))
		}
		v1Stats(&s, read("cpu", "cpu.stat"), read("cpuacct", "cpuacct.stat"),
			read("cpuacct", "cpuacct.usage_user"), read("cpuacct", "cpuacct.usage_sys"),
			read("memory", "memory.stat"), read("memory", "memory.oom_control"))
		s.CPUQuota = v1Quota(read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us"))
		s.MemoryUsage = num("memory", "memory.usage_in_bytes")
		s.MemoryMaxUsage = num("memory", "memory.max_usage_in_bytes")
		s.MemoryLimit = num("memory", "memory.limit_in_bytes")
		s.MemorySoftLimit = num("memory", "memory.soft_limit_in_bytes")
		s.MemorySwapUsage = num("memory", "memory.memsw.usage_in_bytes")
		return s, nil
	}
	d := m.dir(m.mounts[0], id)
	s.Threads = uint64(len(mustRecursive(d, "cgroup.threads")))
	// cpu.stat's usage lines are core (there without the cpu
	// controller); read it straight from the directory.
	cpuStat, _ := os.ReadFile(filepath.Join(d, "cpu.stat"))
	v2Stats(&s, string(cpuStat), read("memory", "memory.stat"), read("memory", "memory.events"))
	if q, err := parseCPUMax(read("cpu", "cpu.max")); err == nil {
		s.CPUQuota = q
	}
	s.MemoryUsage = num("memory", "memory.current")
	s.MemoryMaxUsage = num("memory", "memory.peak")
	s.MemoryLimit = num("memory", "memory.max")
	s.MemorySoftLimit = num("memory", "memory.low")
	s.MemorySwap = num("memory", "memory.swap.current")
	return s, nil
}

func (m *manager) Kill(ctx context.Context, id string) error {
	dirs, err := m.existing(id)
	if err != nil {
		return err
	}
	for {
		pids, err := m.Pids(id)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if m.mode == ModeV2 && writeFile(filepath.Join(dirs[0], "cgroup.kill"), "1") == nil {
			// cgroup.kill (Linux 5.14) kills the whole subtree
			// atomically: no fork escapes it.
		} else {
			// Freeze so that nothing forks between reading the PIDs
			// and killing them; if it will not freeze (a process in
			// uninterruptible sleep), kill what is there and loop.
			frozen := m.freeze(ctx, id)
			if frozen {
				if pids, err = m.Pids(id); err != nil {
					m.thaw(id)
					return err
				}
			}
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			if frozen {
				m.thaw(id)
			}
		}
		if err := sleep(ctx, m.opts.PollInterval); err != nil {
			return err
		}
	}
}

// freezeAttempts is how many PollIntervals freeze waits for a cgroup to
// be frozen before it gives up.
const freezeAttempts = 100

// freeze freezes the container and reports whether it is frozen.
func (m *manager) freeze(ctx context.Context, id string) bool {
	file, value, stateFile := "freezer.state", "FROZEN", "freezer.state"
	d, ok := m.ctrlDir("freezer", id)
	if m.mode == ModeV2 {
		file, value, stateFile = "cgroup.freeze", "1", "cgroup.events"
		d, ok = m.dir(m.mounts[0], id), true
	}
	if !ok || writeFile(filepath.Join(d, file), value) != nil {
		return false
	}
	for range freezeAttempts {
		b, err := os.ReadFile(filepath.Join(d, stateFile))
		if err != nil {
			break
		}
		if m.mode == ModeV1 && strings.TrimSpace(string(b)) == "FROZEN" {
			return true
		}
		if frozen, _ := parseEventsFlag(string(b), "frozen"); m.mode == ModeV2 && frozen {
			return true
		}
		if sleep(ctx, m.opts.PollInterval) != nil {
			break
		}
	}
	m.thaw(id)
	return false
}

func (m *manager) thaw(id string) {
	if m.mode == ModeV2 {
		_ = writeFile(filepath.Join(m.dir(m.mounts[0], id), "cgroup.freeze"), "0")
		return
	}
	if d, ok := m.ctrlDir("freezer", id); ok {
		_ = writeFile(filepath.Join(d, "freezer.state"), "THAWED")
	}
}

func (m *manager) Destroy(ctx context.Context, id string) error {
	dirs, err := m.existing(id)
	if err != nil {
		return err
	}
	if err := m.Kill(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	for _, d := range dirs {
		for {
			err := removeTree(d)
			if err == nil {
				break
			}
			// EBUSY: a process is still on its way out.
			if !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("cgroups: removing %s: %w", d, err)
			}
			if err := sleep(ctx, m.opts.PollInterval); err != nil {
				return fmt.Errorf("cgroups: removing %s: %w", d, err)
			}
		}
	}
	return nil
}

func (m *manager) List() ([]string, error) {
	var ids []string
	for _, mnt := range m.mounts {
		entries, err := os.ReadDir(m.rootDir(mnt))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroups: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && validName(e.Name()) == nil && !slices.Contains(ids, e.Name()) {
				ids = append(ids, e.Name())
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// writeFile writes value to a cgroup file in one write(2), as the kernel
// wants it, without creating anything (O_TRUNC, as runc does, is a no-op
// on cgroupfs and keeps a test fixture in a plain directory whole).
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, path, err)
	}
	return nil
}

// readRecursive reads the PIDs in file (cgroup.procs, tasks,
// cgroup.threads) of dir and of every cgroup below it. A cgroup removed
// meanwhile is skipped.
func readRecursive(dir, file string) ([]int, error) {
	var out []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, file))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		out = append(out, parsePids(string(b))...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	return out, nil
}

func mustRecursive(dir, file string) []int {
	p, _ := readRecursive(dir, file)
	return p
}

// removeTree removes the cgroup dir and the cgroups below it, deepest
// first. Files in a cgroup are the kernel's and go with rmdir.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// removeDirs undoes a failed Create's mkdirs.
func removeDirs(dirs []string) {
	for _, d := range dirs {
		_ = removeTree(d)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

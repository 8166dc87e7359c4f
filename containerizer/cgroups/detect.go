package cgroups

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// System is where a machine mounts its cgroup hierarchies.
type System struct {
	// V1 maps each enabled v1 controller that is mounted to its
	// hierarchy's mount point (co-mounted controllers share one).
	V1 map[string]string
	// Unified is the mount point of the cgroup2 hierarchy, "" for none.
	Unified string
	// UnifiedControllers are the controllers available at the root of
	// the cgroup2 hierarchy (its cgroup.controllers), sorted.
	UnifiedControllers []string
}

// Hybrid reports whether the machine mounts both v1 controllers and a
// cgroup2 hierarchy.
func (s System) Hybrid() bool { return len(s.V1) > 0 && s.Unified != "" }

// choose picks the version for mode, or explains what is missing.
func (s System) choose(mode Mode) (Mode, error) {
	v2Missing := s.missingV2()
	v1Missing := s.missingV1()
	switch mode {
	case ModeV2:
		if s.Unified == "" {
			return 0, fmt.Errorf("%w: cgroup v2 requested but no cgroup2 file system is mounted", ErrUnavailable)
		}
		return ModeV2, nil
	case ModeV1:
		if len(v1Missing) > 0 {
			return 0, fmt.Errorf("%w: cgroup v1 requested but controllers %s are not mounted and enabled", ErrUnavailable, strings.Join(v1Missing, ", "))
		}
		return ModeV1, nil
	}
	if len(v2Missing) == 0 {
		return ModeV2, nil
	}
	if len(v1Missing) == 0 {
		return ModeV1, nil
	}
	var v2why string
	if s.Unified == "" {
		v2why = "no cgroup2 file system is mounted"
	} else {
		v2why = fmt.Sprintf("cgroup2 at %s lacks controllers %s (controllers bound to a v1 hierarchy do not show in v2)", s.Unified, strings.Join(v2Missing, ", "))
	}
	return 0, fmt.Errorf("%w: neither version is usable: %s; v1 lacks controllers %s (see /proc/cgroups and /proc/self/mountinfo)", ErrUnavailable, v2why, strings.Join(v1Missing, ", "))
}

// requiredControllers are those without which a manager is useless.
var requiredControllers = []string{"cpu", "memory"}

func (s System) missingV2() []string {
	var missing []string
	for _, c := range requiredControllers {
		if s.Unified == "" || !slices.Contains(s.UnifiedControllers, c) {
			missing = append(missing, c)
		}
	}
	return missing
}

func (s System) missingV1() []string {
	var missing []string
	for _, c := range append(requiredControllers, "cpuacct") {
		if s.V1[c] == "" {
			missing = append(missing, c)
		}
	}
	return missing
}

// Detect reads /proc/self/mountinfo, /proc/cgroups and the cgroup2 root's
// cgroup.controllers to find the machine's hierarchies.
func Detect() (System, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return System{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// /proc/cgroups lists the v1 controllers the kernel has; it is absent
	// from kernels without v1 support, which is fine.
	pc, err := os.ReadFile("/proc/cgroups")
	if err != nil && !os.IsNotExist(err) {
		return System{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	sys, err := parseSystem(bytes.NewReader(mi), bytes.NewReader(pc))
	if err != nil {
		return System{}, err
	}
	if sys.Unified != "" {
		if b, err := os.ReadFile(filepath.Join(sys.Unified, "cgroup.controllers")); err == nil {
			sys.UnifiedControllers = parseControllers(string(b))
		}
	}
	return sys, nil
}

// parseSystem builds a System (without UnifiedControllers) from the text
// of /proc/self/mountinfo and /proc/cgroups.
func parseSystem(mountinfo, procCgroups io.Reader) (System, error) {
	enabled, err := parseProcCgroups(procCgroups)
	if err != nil {
		return System{}, err
	}
	mounts, err := parseMountinfo(mountinfo)
	if err != nil {
		return System{}, err
	}
	sys := System{V1: map[string]string{}}
	for _, m := range mounts {
		switch m.fsType {
		case "cgroup2":
			if sys.Unified == "" {
				sys.Unified = m.mountPoint
			}
		case "cgroup":
			for _, opt := range strings.Split(m.superOpts, ",") {
				if enabled[opt] && sys.V1[opt] == "" {
					sys.V1[opt] = m.mountPoint
				}
			}
		}
	}
	return sys, nil
}

type mountEntry struct {
	mountPoint, fsType, superOpts string
}

// parseMountinfo reads the lines of /proc/<pid>/mountinfo (proc(5)):
// "id parent major:minor root mountpoint opts [optional...] - fstype source superopts".
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+4 {
			return nil, fmt.Errorf("cgroups: malformed mountinfo line %q", sc.Text())
		}
		out = append(out, mountEntry{
			mountPoint: unescapeOctal(fields[4]),
			fsType:     fields[sep+1],
			superOpts:  fields[sep+3],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroups: reading mountinfo: %w", err)
	}
	return out, nil
}

// unescapeOctal undoes mountinfo's \ooo escapes of space, tab, newline and
// backslash.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroups returns the enabled controllers of /proc/cgroups:
// "#subsys_name hierarchy num_cgroups enabled" lines.
func parseProcCgroups(r io.Reader) (map[string]bool, error) {
	enabled := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("cgroups: malformed /proc/cgroups line %q", line)
		}
		enabled[f[0]] = f[3] == "1"
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroups: reading /proc/cgroups: %w", err)
	}
	return enabled, nil
}

// parseControllers parses a space-separated cgroup.controllers or
// cgroup.subtree_control, sorted.
func parseControllers(s string) []string {
	f := strings.Fields(s)
	sort.Strings(f)
	return f
}

package proctest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is a process of this machine as Linux's /proc shows it: what
// tests look for among the processes a cluster started (an executor, a
// task's service) or left behind.
type Process struct {
	Pid  int
	Args []string
	Env  []string // NAME=value
}

// Getenv returns the value of the variable name in p's environment.
func (p Process) Getenv(name string) (string, bool) {
	for _, kv := range p.Env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// InSandboxUnder reports whether p runs in a sandbox under dir: its
// MESOS_DIRECTORY (which the agent sets for executors and tasks) is below
// dir, an agent's work dir or a test's.
func (p Process) InSandboxUnder(dir string) bool {
	sandbox, ok := p.Getenv("MESOS_DIRECTORY")
	return ok && strings.HasPrefix(sandbox, dir+string(filepath.Separator))
}

// Processes lists the machine's processes other than this one; none off
// Linux. A process that ends while it is read is left out.
func Processes() []Process {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	self := os.Getpid()
	out := make([]Process, 0, len(dirs))
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(d, "environ"))
		out = append(out, Process{Pid: pid, Args: split0(cmdline), Env: split0(env)})
	}
	return out
}

// Find returns the pid of a process match accepts; 0 when none does.
func Find(match func(Process) bool) int {
	for _, p := range Processes() {
		if match(p) {
			return p.Pid
		}
	}
	return 0
}

// split0 splits /proc's NUL-terminated strings.
func split0(b []byte) []string {
	s := strings.TrimRight(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/proctest"
)

const wait = 60 * time.Second

// pidsRunning lists the pids whose command line is exactly argv.
func pidsRunning(argv ...string) []int {
	var pids []int
	for _, p := range proctest.Processes() {
		if slices.Equal(p.Args, argv) {
			pids = append(pids, p.Pid)
		}
	}
	return pids
}

// A task of a framework that does not checkpoint dies with its agent,
// kill -9 included, in the Linux containerizer (in a pid namespace of its
// own, and in the host's); a checkpointing framework's task outlives it.
func TestLinuxContainerDiesWithAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("the Linux containerizer needs Linux and root (namespaces, cgroups, mounts)")
	}
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	master := proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-allocation-interval", "100ms")
	})
	for i, tc := range []struct {
		name       string
		isolation  string
		checkpoint bool
		user       string // the task's: its init takes this user, which disarms a parent-death signal
		dies       bool
	}{
		{"pid-namespace", "filesystem/linux,cgroups/cpu,cgroups/mem,namespaces/pid", false, "", true},
		{"host-pids", "filesystem/linux,cgroups/cpu,cgroups/mem", false, "", true},
		{"other-user", "filesystem/linux,cgroups/cpu,cgroups/mem,namespaces/pid", false, "nobody", true},
		{"checkpointing", "filesystem/linux,cgroups/cpu,cgroups/mem,namespaces/pid", true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The task's user must reach its sandbox: t.TempDir's parents
			// do not let it through.
			dir, err := os.MkdirTemp("", "apron-dies-with-agent-")
			require.NoError(t, err)
			t.Cleanup(func() { os.RemoveAll(dir) })
			require.NoError(t, os.Chmod(dir, 0o755))
			cgroupsRoot := fmt.Sprintf("apron-dies-test-%d-%d", os.Getpid(), i)
			sleep := []string{"sleep", strconv.Itoa(40000 + os.Getpid()%10000*10 + i)}
			t.Cleanup(func() {
				for _, pid := range pidsRunning(sleep...) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				time.Sleep(100 * time.Millisecond) // the killed leave their cgroups
				dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupsRoot + "/*")
				dirs2, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupsRoot)
				for _, d := range append(dirs, dirs2...) {
					os.Remove(d)
				}
			})
			agent := proctest.StartServer(t, "agent", "/health", wait, func(addr string) *exec.Cmd {
				return exec.Command(bin["agent"], "-master", master.Addr, "-listen", addr,
					"-work-dir", filepath.Join(dir, "agent"), "-hostname", "agent-"+tc.name,
					"-resources", "cpus:2;mem:1024;disk:1000;ports:[31000-31010]",
					"-isolation", tc.isolation, "-cgroups-root", cgroupsRoot)
			})
			job := proctest.Start(t, "batch", exec.Command(bin["batch"], "-master", master.Addr,
				"-tasks", "1", "-cmd", "exec "+sleep[0]+" "+sleep[1], "-cpus", "0.1", "-mem", "32",
				"-checkpoint="+strconv.FormatBool(tc.checkpoint), "-max-attempts", "1", "-user", tc.user))
			job.WaitFor(t, regexp.MustCompile(`running on agent-`+tc.name), wait)
			require.Eventually(t, func() bool { return len(pidsRunning(sleep...)) == 1 }, wait, 20*time.Millisecond, "the task runs")

			require.NoError(t, agent.Signal(syscall.SIGKILL))
			agent.Wait(t, wait)
			if tc.dies {
				require.Eventually(t, func() bool { return len(pidsRunning(sleep...)) == 0 }, wait, 20*time.Millisecond,
					"the task of a framework that does not checkpoint dies with its agent")
				return
			}
			// The checkpointing framework's task outlives its agent.
			time.Sleep(500 * time.Millisecond)
			require.Len(t, pidsRunning(sleep...), 1, "a checkpointing framework's task outlives its agent")
		})
	}
}

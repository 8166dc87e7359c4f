package examples

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/internal/imagetest"
	"github.com/apronhq/apron/internal/proctest"
)

// TestContainers runs tasks in containers from a Docker image, end to end
// through the binaries: a registry on loopback serving a busybox image, a
// master, an agent with the Linux containerizer (-isolation ...
// -image-providers docker), and bin/batch -image. Each task checks from
// inside that it has the image's files and not the host's, its own
// hostname and pid namespace, and its sandbox at /mnt/mesos/sandbox; a
// memory hog over its 32 MB fails with REASON_CONTAINER_LIMITATION_MEMORY;
// a task whose agent is killed with -9 and restarted finishes all the same.
// Needs root (namespaces, cgroups, mounts); skipped otherwise.
func TestContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("the Linux containerizer needs Linux and root (namespaces, cgroups, mounts)")
	}
	reg := imagetest.NewRegistry(t)
	reg.Push(t, "apron/busybox:test", imagetest.Busybox(t, map[string]string{"/apron-marker": "from the image\n"}))
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")
	dir := t.TempDir()
	hostOnly := filepath.Join(dir, "host-only")
	require.NoError(t, os.WriteFile(hostOnly, []byte("x"), 0o644))
	hostname, err := os.Hostname()
	require.NoError(t, err)

	master := proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["master"], "-listen", addr, "-allocation-interval", "100ms", "-log-level", "info")
	})
	cgroupsRoot := fmt.Sprintf("apron-test-%d", os.Getpid())
	t.Cleanup(func() {
		// The agent's cgroups root, empty once its containers are gone.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupsRoot)
		for _, d := range append(dirs, "/sys/fs/cgroup/"+cgroupsRoot) {
			os.Remove(d)
		}
	})
	agent := proctest.StartServer(t, "agent", "/health", wait, func(addr string) *exec.Cmd {
		return exec.Command(bin["agent"], "-master", master.Addr, "-listen", addr,
			"-work-dir", filepath.Join(dir, "agent"), "-hostname", "agent-1",
			"-resources", "cpus:2;mem:2048;disk:1000;ports:[31000-32000]",
			"-isolation", "filesystem/linux,cgroups/cpu,cgroups/mem,cgroups/pids,namespaces/pid,docker/runtime",
			"-image-providers", "docker", "-docker-registry", reg.URL(),
			"-cgroups-root", cgroupsRoot, "-log-level", "info")
	})
	require.Eventually(t, func() bool { return agentsRegistered(master.Addr) == 1 }, wait, 50*time.Millisecond)

	inside := strings.Join([]string{
		`test "$(cat /apron-marker)" = "from the image"`, // the image's files
		`test ! -e ` + hostOnly,                          // not the host's
		`test "$(hostname)" != "` + hostname + `"`,       // a hostname of its own
		`test $$ -lt 100`,                                // a pid namespace of its own
		`test "$MESOS_SANDBOX" = /mnt/mesos/sandbox`,
		`echo "$TASK_INDEX" > /mnt/mesos/sandbox/proof`,
	}, " && ")
	job := proctest.Start(t, "batch", exec.Command(bin["batch"], "-master", master.Addr, "-image", "apron/busybox:test",
		"-tasks", "3", "-cmd", inside, "-cpus", "0.2", "-mem", "64", "-max-attempts", "1"))
	code := job.Wait(t, wait)
	require.Equal(t, 0, code, "every task passed its checks inside the container:\n%s", job.Output())
	assert.Contains(t, job.Output(), "3 tasks: 3 finished")
	proofs, err := filepath.Glob(filepath.Join(dir, "agent", "*", "*", "frameworks", "*", "executors", "*", "runs", "*", "proof"))
	require.NoError(t, err)
	assert.Len(t, proofs, 3, "each task wrote into its sandbox through /mnt/mesos/sandbox")

	// A running container's usage comes from its cgroups: the memory
	// breakdown and the CFS periods, as Mesos's /monitor/statistics has
	// them.
	sleeper := proctest.Start(t, "batch-sleeper", exec.Command(bin["batch"], "-master", master.Addr, "-image", "apron/busybox:test",
		"-tasks", "1", "-cmd", "sleep 60", "-cpus", "0.2", "-mem", "64"))
	sleeper.WaitFor(t, regexp.MustCompile(`running on agent-1`), wait)
	require.Eventually(t, func() bool {
		resp, err := client.Get("http://" + agent.Addr + "/monitor/statistics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"mem_cache_bytes"`) && strings.Contains(string(b), `"cpus_nr_periods"`)
	}, wait, 100*time.Millisecond, "the cgroup statistics of the running container")
	sleeper.Kill(t, wait)

	// The agent killed with -9 while a container runs: restarted, it finds
	// the container again and reports the task's real end.
	survivor := proctest.Start(t, "batch-survivor", exec.Command(bin["batch"], "-master", master.Addr, "-image", "apron/busybox:test",
		"-tasks", "1", "-cmd", "sleep 3; exit 0", "-cpus", "0.2", "-mem", "64", "-max-attempts", "1"))
	survivor.WaitFor(t, regexp.MustCompile(`running on agent-1`), wait)
	agent.Kill(t, wait)
	agent = agent.Restart(t, wait)
	require.Equal(t, 0, survivor.Wait(t, wait), "the task outlived the agent and finished:\n%s", survivor.Output())
	assert.Contains(t, survivor.Output(), "1 tasks: 1 finished, 0 failed for good, 0 needed a retry")

	events := filepath.Join(dir, "hog.jsonl")
	hog := proctest.Start(t, "batch-hog", exec.Command(bin["batch"], "-master", master.Addr, "-image", "apron/busybox:test",
		"-tasks", "1", "-cmd", "dd if=/dev/zero of=/dev/null bs=100M count=1", "-cpus", "0.2", "-mem", "32",
		"-max-attempts", "1", "-events", events))
	assert.NotEqual(t, 0, hog.Wait(t, wait), "the hog fails")
	log, err := os.ReadFile(events)
	require.NoError(t, err)
	assert.Contains(t, string(log), "REASON_CONTAINER_LIMITATION_MEMORY", "%s", log)

	// Every container is destroyed once its task's end is acknowledged,
	// its root filesystem unmounted: none is left for the agent's stop
	// to leave mounted under the test's directory.
	require.Eventually(t, func() bool {
		left, _ := filepath.Glob(filepath.Join(dir, "agent", "containers-linux", "*.task-*"))
		return len(left) == 0
	}, wait, 50*time.Millisecond, "the agent's containers are destroyed")
}

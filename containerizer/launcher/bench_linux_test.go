//go:build linux

package launcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/apronhq/apron/containerizer/launcher"
)

// benchTask writes one byte to its stdout, a pipe the benchmark reads:
// the byte's arrival is the task's first instruction having run.
var benchTask = []string{"/bin/busybox", "echo", "x"}

// BenchmarkStart measures launch to the task's first write, on the same
// busybox root filesystem, for the launcher (with its init as pid 1, and
// with the task as pid 1) and for `runc run` and `crun run` (Debian's runc
// and crun) with an equivalent config.json: new pid, mount, uts and ipc
// namespaces, the host's network, /proc, /sys (read-only, masked paths),
// /dev, /dev/pts, /dev/shm and /tmp. runc and crun also make (and remove)
// a cgroup for each container, which the launcher leaves to the cgroups
// package: "crun-nocgroups" is crun without that work, the like-for-like
// comparison. "exec-only" is the floor: the task forked and executed from
// here with nothing around it. "launcher-small-init" starts
// testdata/init, a binary that is only an init, as Spec.Init: the
// difference to "launcher" is what initializing the packages of a larger
// binary (this test binary) costs.
//
// Each iteration starts one container with each contender in turn, so a
// noisy machine slows them all alike; each reports its mean
// launch-to-first-write time as "<contender>-ms". ns/op is the sum, with
// the containers' ends and clean-up. Contenders not installed are left out
// with a message.
func BenchmarkStart(b *testing.B) {
	needRoot(b)
	root := busyboxRootfs(b)
	type contender struct {
		name  string
		start func(i int) time.Duration
	}
	cs := []contender{
		{"exec-only", func(int) time.Duration { return startExec(b, root) }},
		{"launcher", func(int) time.Duration { return startLauncher(b, root, "", false) }},
		{"launcher-noinit", func(int) time.Duration { return startLauncher(b, root, "", true) }},
	}
	// The same init in a binary with nothing else to initialize.
	if small, err := buildSmallInit(b); err != nil {
		b.Logf("no launcher-small-init comparison: %v", err)
	} else {
		cs = append(cs, contender{"launcher-small-init", func(int) time.Duration { return startLauncher(b, root, small, false) }})
	}
	for _, oci := range []struct {
		name, bin string
		flags     []string
	}{
		{"runc", "runc", nil},
		{"crun", "crun", nil},
		{"crun-nocgroups", "crun", []string{"--cgroup-manager=disabled"}},
	} {
		bin, err := exec.LookPath(oci.bin)
		if err != nil {
			b.Logf("%s is not installed (apt-get install -y %s): no %s comparison", oci.bin, oci.bin, oci.name)
			continue
		}
		bundle := ociBundle(b, root)
		state := b.TempDir()
		cs = append(cs, contender{oci.name, func(i int) time.Duration {
			return startOCI(b, bin, oci.flags, bundle, state, fmt.Sprintf("apron-bench-%d-%d", os.Getpid(), i))
		}})
	}
	// crun refuses this machine's cgroups otherwise; see hideHybridCgroup.
	hideHybridCgroup(b)
	total := make([]time.Duration, len(cs))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, c := range cs {
			total[j] += c.start(i)
		}
	}
	for j, c := range cs {
		b.ReportMetric(float64(total[j].Microseconds())/1000/float64(b.N), c.name+"-ms")
	}
}

// startExec is the floor: the task forked and executed from the host,
// with no namespace, mount or helper.
func startExec(b *testing.B, root string) time.Duration {
	r, w, err := os.Pipe()
	require.NoError(b, err)
	defer r.Close()
	cmd := exec.Command(filepath.Join(root, benchTask[0]), benchTask[1:]...)
	cmd.Stdout = w
	t0 := time.Now()
	require.NoError(b, cmd.Start())
	w.Close()
	readByte(b, r)
	d := time.Since(t0)
	require.NoError(b, cmd.Wait())
	return d
}

func startLauncher(b *testing.B, root, init string, noInit bool) time.Duration {
	r, w, err := os.Pipe()
	require.NoError(b, err)
	defer r.Close()
	t0 := time.Now()
	p, err := launcher.Start(context.Background(), &launcher.Spec{
		Args: benchTask, Rootfs: root, Hostname: "bench", NoInit: noInit, Init: init, Stdout: w,
	})
	w.Close()
	require.NoError(b, err)
	readByte(b, r)
	d := time.Since(t0)
	ws, err := p.Wait()
	require.NoError(b, err)
	require.Equal(b, 0, ws.ExitStatus())
	return d
}

func startOCI(b *testing.B, bin string, flags []string, bundle, state, id string) time.Duration {
	r, w, err := os.Pipe()
	require.NoError(b, err)
	defer r.Close()
	cmd := exec.Command(bin, append(append([]string{"--root", state}, flags...), "run", "--bundle", bundle, id)...)
	cmd.Stdout = w
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	require.NoError(b, cmd.Start())
	w.Close()
	readByte(b, r)
	d := time.Since(t0)
	require.NoError(b, cmd.Wait())
	return d
}

// buildSmallInit builds testdata/init, a binary that is a container init
// and nothing else.
func buildSmallInit(b *testing.B) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	out := filepath.Join(b.TempDir(), "init")
	if msg, err := exec.Command(gobin, "build", "-o", out, "./testdata/init").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./testdata/init: %v: %s", err, msg)
	}
	return out, nil
}

func readByte(b *testing.B, r io.Reader) {
	var buf [1]byte
	_, err := io.ReadFull(r, buf[:])
	require.NoError(b, err)
	require.Equal(b, byte('x'), buf[0])
}

// ociBundle writes a bundle whose config.json runs benchTask in rootfs.
func ociBundle(b *testing.B, rootfs string) string {
	bundle := b.TempDir()
	cfg, err := json.Marshal(ociConfig(rootfs))
	require.NoError(b, err)
	require.NoError(b, os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o644))
	return bundle
}

// hideHybridCgroup makes the processes this goroutine starts see cgroup
// v1 only. crun refuses cgroup v1 with controllers on a cgroup v2
// hierarchy mounted beside it ("hybrid mode", as on this project's test
// machines), even with its cgroup manager disabled: this goroutine's
// thread gets a mount namespace of its own without /sys/fs/cgroup/unified
// (the host's is untouched). The thread stays locked, so it ends with the
// goroutine (the benchmark's).
func hideHybridCgroup(b *testing.B) {
	const unified = "/sys/fs/cgroup/unified"
	var st unix.Statfs_t
	if unix.Statfs(unified, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return
	}
	runtime.LockOSThread()
	require.NoError(b, unix.Unshare(unix.CLONE_NEWNS))
	require.NoError(b, unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""))
	require.NoError(b, unix.Unmount(unified, unix.MNT_DETACH))
}

// ociConfig is the OCI runtime spec of the container the launcher makes.
func ociConfig(rootfs string) map[string]any {
	type m = map[string]any
	kernelFS := []string{"nosuid", "noexec", "nodev"}
	return m{
		"ociVersion": "1.0.2",
		"process": m{
			"terminal": false,
			"user":     m{"uid": 0, "gid": 0},
			"args":     benchTask,
			"env":      []string{"PATH=/bin"},
			"cwd":      "/",
		},
		"root":     m{"path": rootfs},
		"hostname": "bench",
		"mounts": []m{
			{"destination": "/proc", "type": "proc", "source": "proc", "options": kernelFS},
			{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": append(kernelFS, "ro")},
			{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "mode=1777"}},
		},
		"linux": m{
			"namespaces": []m{{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}},
			"maskedPaths": []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
				"/sys/firmware", "/sys/devices/virtual/powercap",
			},
			"readonlyPaths": []string{"/proc"},
		},
	}
}

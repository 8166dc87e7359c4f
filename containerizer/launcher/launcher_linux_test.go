//go:build linux

package launcher_test

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/apronhq/apron/containerizer/launcher"
)

// TestMain lets the test binary be the containers' init.
func TestMain(m *testing.M) {
	if launcher.IsInit() {
		launcher.RunInit()
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// hostBusybox is a statically linked busybox, which runs in any root
// filesystem (Debian's busybox-static).
const hostBusybox = "/bin/busybox"

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces and mounts")
	}
}

func needBusybox(t testing.TB) {
	t.Helper()
	f, err := elf.Open(hostBusybox)
	if err != nil {
		t.Skipf("needs a static %s (apt-get install busybox-static): %v", hostBusybox, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("needs a statically linked %s (apt-get install busybox-static)", hostBusybox)
		}
	}
}

// busyboxRootfs builds a minimal root filesystem: busybox, its applets
// the tests use, and /marker.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	needBusybox(t)
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	data, err := os.ReadFile(hostBusybox)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755))
	for _, applet := range []string{"sh", "hostname", "ls", "cat", "ps", "mount", "id", "sleep", "echo", "grep", "touch", "kill", "pwd", "true", "cut"} {
		require.NoError(t, os.Symlink("busybox", filepath.Join(root, "bin", applet)))
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "marker"), []byte("from the image\n"), 0o644))
	return root
}

// sandbox makes a sandbox directory anyone may use.
func sandbox(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	require.NoError(t, os.Chmod(d, 0o777))
	return d
}

// run starts spec with its output in a file and waits for it.
func run(t *testing.T, spec *launcher.Spec) (string, syscall.WaitStatus) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	defer out.Close()
	spec.Stdout, spec.Stderr = out, out
	p, err := launcher.Start(context.Background(), spec)
	require.NoError(t, err)
	ws, err := p.Wait()
	require.NoError(t, err)
	b, err := os.ReadFile(out.Name())
	require.NoError(t, err)
	t.Logf("container output:\n%s", b)
	return string(b), ws
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// values picks the "key=value" lines of a container's output.
func values(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.ContainsAny(k, " \t") {
			m[k] = v
		}
	}
	return m
}

// mountOpts returns the options of the mount at target in a /proc/mounts
// listing.
func mountOpts(mounts, target string) string {
	for _, l := range strings.Split(mounts, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == target {
			return f[3]
		}
	}
	return ""
}

func TestImageContainer(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	sb := sandbox(t)
	hostFile := filepath.Join(t.TempDir(), "host-only")
	require.NoError(t, os.WriteFile(hostFile, []byte("host"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(sb, "in"), []byte("sandbox-in"), 0o644))

	out, ws := run(t, &launcher.Spec{
		Args: sh(`
echo "hostname=$(hostname)"
echo "self=$$"
echo "ppid=$(cut -d' ' -f4 /proc/$$/stat)"
echo "init=$(cat /proc/1/cmdline)"
ps -o pid,ppid,args | while read -r pid ppid args; do echo "ps.$pid=$ppid $args"; done
echo "marker=$(cat /marker)"
[ -e ` + hostFile + ` ] && echo hostfile=present || echo hostfile=absent
[ -e /usr/lib ] && echo hostlib=present || echo hostlib=absent
echo "sandbox=$MESOS_SANDBOX"
echo "pwd=$(pwd)"
echo "in=$(cat /mnt/mesos/sandbox/in)"
echo written > /mnt/mesos/sandbox/out
echo "uid=$(id -u)"
echo "devs=$(ls /dev | tr '\n' ' ')"
echo "zero=$(/bin/busybox head -c 3 /dev/zero | /bin/busybox od -An -tx1 | tr -d ' ')"
echo nope > /proc/sys/kernel/domainname 2>/dev/null && echo procwrite=ok || echo procwrite=refused
echo "keys=$(cat /proc/keys | /bin/busybox wc -c)"
echo "---"
cat /proc/mounts
`),
		Env:      []string{"PATH=/bin"},
		Hostname: "task-host",
		Rootfs:   root,
		Sandbox:  sb,
	})
	require.True(t, ws.Exited(), "status %v", ws)
	require.Equal(t, 0, ws.ExitStatus())
	v := values(out)
	assert.Equal(t, "task-host", v["hostname"])
	assert.Equal(t, "1", v["ppid"], "the task runs under its init")
	assert.Contains(t, v["init"], "apron container init", "pid 1 is the launcher's init")
	// ps: pid 1 is the init, its one child the task, and the rest the
	// task's own children.
	procs := 0
	for k, val := range v {
		pid, ok := strings.CutPrefix(k, "ps.")
		if !ok || pid == "PID" {
			continue
		}
		procs++
		ppid, args, _ := strings.Cut(val, " ")
		switch {
		case pid == "1":
			assert.Equal(t, "0", ppid)
			assert.Contains(t, args, "apron container init")
		case pid == v["self"]:
			assert.Equal(t, "1", ppid)
			assert.Contains(t, args, "/bin/sh -c")
		default:
			assert.Equal(t, v["self"], ppid, "process %s (%s) is not the task's", pid, args)
		}
	}
	assert.GreaterOrEqual(t, procs, 3, "ps shows the init, the task and ps")
	assert.Equal(t, "from the image", v["marker"])
	assert.Equal(t, "absent", v["hostfile"])
	assert.Equal(t, "absent", v["hostlib"])
	assert.Equal(t, "/mnt/mesos/sandbox", v["sandbox"])
	assert.Equal(t, "/mnt/mesos/sandbox", v["pwd"])
	assert.Equal(t, "sandbox-in", v["in"])
	assert.Equal(t, "0", v["uid"])
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin", "stdout", "stderr"} {
		assert.Contains(t, strings.Fields(v["devs"]), d)
	}
	assert.Equal(t, "000000", v["zero"])
	assert.Equal(t, "refused", v["procwrite"])
	assert.Equal(t, "0", v["keys"], "/proc/keys is masked")
	got, err := os.ReadFile(filepath.Join(sb, "out"))
	require.NoError(t, err)
	assert.Equal(t, "written\n", string(got))

	_, mounts, _ := strings.Cut(out, "---\n")
	for _, ro := range []string{"/proc", "/sys"} {
		assert.Contains(t, strings.Split(mountOpts(mounts, ro), ","), "ro", "%s is read-only", ro)
	}
	assert.Contains(t, strings.Split(mountOpts(mounts, "/tmp"), ","), "rw")
	assert.NotEmpty(t, mountOpts(mounts, "/dev/pts"))
	assert.NotEmpty(t, mountOpts(mounts, "/dev/shm"))
	assert.NotEmpty(t, mountOpts(mounts, "/mnt/mesos/sandbox"))
}

func TestRunsAsUser(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	sb := sandbox(t)
	out, ws := run(t, &launcher.Spec{
		Args:   sh(`echo "id=$(id -u):$(id -g):$(id -G)"; echo "init=$(grep '^Uid:' /proc/1/status | tr -s '\t ' ' ')"; echo x > mine; echo "initfds=$(ls /proc/1/fd 2>/dev/null | /bin/busybox wc -l)"; echo "ownfds=$(ls /proc/$$/fd | /bin/busybox wc -l)"`),
		Env:    []string{"PATH=/bin"},
		User:   &launcher.User{UID: 65534, GID: 65534, Groups: []uint32{65534, 100}},
		Rootfs: root, Sandbox: sb,
	})
	require.Equal(t, 0, ws.ExitStatus(), out)
	v := values(out)
	assert.Equal(t, "65534:65534:65534 100", v["id"])
	assert.Equal(t, "Uid: 65534 65534 65534 65534", v["init"], "the init runs as the task's user too")
	assert.Equal(t, "0", v["initfds"], "the task cannot reach the init's descriptors")
	assert.NotEqual(t, "0", v["ownfds"])
	fi, err := os.Stat(filepath.Join(sb, "mine"))
	require.NoError(t, err)
	assert.Equal(t, uint32(65534), fi.Sys().(*syscall.Stat_t).Uid)
}

func TestExitStatusPropagates(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	for _, noInit := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoInit=%v", noInit), func(t *testing.T) {
			_, ws := run(t, &launcher.Spec{Args: sh("exit 7"), Rootfs: root, NoInit: noInit})
			require.True(t, ws.Exited(), "status %v", ws)
			assert.Equal(t, 7, ws.ExitStatus())
		})
	}
	t.Run("signal", func(t *testing.T) {
		// The task kills itself: Wait reports the signal, not the init's
		// exit code.
		_, ws := run(t, &launcher.Spec{Args: sh("kill -USR1 $$; sleep 5"), Env: []string{"PATH=/bin"}, Rootfs: root})
		require.True(t, ws.Signaled(), "status %v", ws)
		assert.Equal(t, syscall.SIGUSR1, ws.Signal())
	})
}

// pidsInNamespace lists the host pids of the processes in the pid
// namespace with inode ns.
func pidsInNamespace(t *testing.T, ns uint64) []int {
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", pid), &st) == nil && st.Ino == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestInitReapsOrphans(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	// A grandchild orphaned to pid 1 ends while the task runs on: the init
	// must reap it, or it stays a zombie the task can see.
	out, ws := run(t, &launcher.Spec{
		Args: sh(`sh -c 'sleep 0.2 &'; sleep 1.5; for f in /proc/[0-9]*/stat; do read -r l < $f && echo "stat=$l"; done`),
		Env:  []string{"PATH=/bin"}, Rootfs: root,
	})
	require.Equal(t, 0, ws.ExitStatus())
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "stat="); ok {
			_, rest, _ := strings.Cut(s, ") ")
			assert.False(t, strings.HasPrefix(rest, "Z"), "a zombie is left: %s", s)
		}
	}
	assert.Contains(t, out, "(sh) ")

	// A task that leaves a process behind ends cleanly, and takes it along.
	spec := &launcher.Spec{Args: sh("sleep 1000 & exit 0"), Env: []string{"PATH=/bin"}, Rootfs: root}
	p, err := launcher.Start(context.Background(), spec)
	require.NoError(t, err)
	ns := p.Handle().PidNS
	ws, err = p.Wait()
	require.NoError(t, err)
	assert.True(t, ws.Exited() && ws.ExitStatus() == 0, "status %v", ws)
	assert.Empty(t, pidsInNamespace(t, ns), "processes left in the container's pid namespace")
}

// startReady starts spec with a pipe as stdout and waits for its first
// line.
func startReady(t *testing.T, spec *launcher.Spec) (*launcher.Process, *bufio.Reader) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	spec.Stdout = w
	p, err := launcher.Start(context.Background(), spec)
	w.Close()
	require.NoError(t, err)
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	return p, br
}

func TestSignal(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	t.Run("kill ends everything", func(t *testing.T) {
		p, _ := startReady(t, &launcher.Spec{
			Args: sh("sleep 1000 & sleep 1000 & echo ready; wait"), Env: []string{"PATH=/bin"}, Rootfs: root,
		})
		ns := p.Handle().PidNS
		require.Len(t, pidsInNamespace(t, ns), 4, "init, sh and two sleeps")
		require.NoError(t, p.Kill())
		ws, err := p.Wait()
		require.NoError(t, err)
		assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "status %v", ws)
		assert.Empty(t, pidsInNamespace(t, ns))
		assert.NoError(t, p.Signal(syscall.SIGTERM), "signalling an ended container is no error")
	})
	t.Run("forwarded to the task", func(t *testing.T) {
		p, _ := startReady(t, &launcher.Spec{
			Args: sh("trap 'exit 3' TERM; echo ready; while true; do sleep 0.05; done"), Env: []string{"PATH=/bin"}, Rootfs: root,
		})
		require.NoError(t, p.Signal(syscall.SIGTERM))
		ws, err := p.Wait()
		require.NoError(t, err)
		assert.Equal(t, 3, ws.ExitStatus(), "status %v", ws)
	})
}

func TestAttach(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	p, _ := startReady(t, &launcher.Spec{Args: sh("echo ready; exec sleep 1000"), Env: []string{"PATH=/bin"}, Rootfs: root})
	h := p.Handle()
	assert.Equal(t, p.Pid(), h.Pid)

	stale := h
	stale.StartTime++
	_, err := launcher.Attach(stale)
	assert.ErrorContains(t, err, "another process")

	a, err := launcher.Attach(h)
	require.NoError(t, err)
	require.NoError(t, a.Kill())
	_, err = a.Wait()
	assert.ErrorIs(t, err, launcher.ErrStatusLost)
	ws, err := p.Wait()
	require.NoError(t, err)
	assert.True(t, ws.Signaled(), "status %v", ws)
}

func TestHostRoot(t *testing.T) {
	needRoot(t)
	needBusybox(t)
	sb := sandbox(t)
	require.NoError(t, os.WriteFile(filepath.Join(sb, "in"), []byte("sandbox-in"), 0o644))
	hostFile := filepath.Join(t.TempDir(), "host-visible")
	require.NoError(t, os.WriteFile(hostFile, []byte("host"), 0o644))
	out, ws := run(t, &launcher.Spec{
		Args: []string{hostBusybox, "sh", "-c", `
b=` + hostBusybox + `
echo "sandbox=$MESOS_SANDBOX"
echo "pwd=$($b pwd)"
echo "in=$($b cat /mnt/mesos/sandbox/in)"
echo "hostfile=$($b cat ` + hostFile + `)"
echo "ppid=$($b cut -d' ' -f4 /proc/$$/stat)"
echo "hostname=$($b hostname)"
echo written > /mnt/mesos/sandbox/out`},
		Hostname: "no-image",
		Sandbox:  sb,
	})
	require.Equal(t, 0, ws.ExitStatus(), out)
	v := values(out)
	assert.Equal(t, "/mnt/mesos/sandbox", v["sandbox"])
	assert.Equal(t, "/mnt/mesos/sandbox", v["pwd"])
	assert.Equal(t, "sandbox-in", v["in"])
	assert.Equal(t, "host", v["hostfile"], "the host's root")
	assert.Equal(t, "1", v["ppid"], "a new /proc for the new pid namespace")
	assert.Equal(t, "no-image", v["hostname"])
	got, err := os.ReadFile(filepath.Join(sb, "out"))
	require.NoError(t, err)
	assert.Equal(t, "written\n", string(got))
	h, _ := os.Hostname()
	assert.NotEqual(t, "no-image", h, "the host keeps its hostname")
}

func TestVolumes(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	sb := sandbox(t)
	hostDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(hostDir, "data"), []byte("host-data"), 0o644))
	hostRW := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(sb, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(sb, "sub", "f"), []byte("sandbox-sub"), 0o644))
	// The image points /evil at /etc: a volume there lands in the image's
	// /etc, never the host's.
	require.NoError(t, os.Symlink("/etc/apron-launcher-test", filepath.Join(root, "evil")))

	out, ws := run(t, &launcher.Spec{
		Args: sh(`
echo "ro=$(cat /data/data)"
echo x > /data/new 2>/dev/null && echo rowrite=ok || echo rowrite=refused
echo y > /rw/new && echo rwwrite=ok
echo "sub=$(cat /vol/f)"
echo "file=$(cat /one)"
echo "evil=$(ls -d /etc/apron-launcher-test)"`),
		Env:    []string{"PATH=/bin"},
		Rootfs: root, Sandbox: sb,
		Mounts: []launcher.Mount{
			{Source: hostDir, Target: "/data", ReadOnly: true},
			{Source: hostRW, Target: "/rw"},
			{Source: "sub", SourceInSandbox: true, Target: "/vol"},
			{Source: filepath.Join(hostDir, "data"), Target: "/one", ReadOnly: true},
			{Source: hostRW, Target: "/evil"},
		},
	})
	require.Equal(t, 0, ws.ExitStatus(), out)
	v := values(out)
	assert.Equal(t, "host-data", v["ro"])
	assert.Equal(t, "refused", v["rowrite"])
	assert.Equal(t, "ok", v["rwwrite"])
	assert.Equal(t, "sandbox-sub", v["sub"])
	assert.Equal(t, "host-data", v["file"])
	assert.Equal(t, "/etc/apron-launcher-test", v["evil"])
	assert.FileExists(t, filepath.Join(hostRW, "new"))
	assert.NoFileExists(t, filepath.Join(hostDir, "new"))
	assert.NoDirExists(t, "/etc/apron-launcher-test", "the image's symbolic link led out of it")
	assert.DirExists(t, filepath.Join(root, "etc", "apron-launcher-test"))
}

func TestUnsafeVolumesRefused(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	sb := sandbox(t)
	require.NoError(t, os.Symlink("/proc/sys", filepath.Join(root, "p")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(sb, "esc")))
	for _, tc := range []struct {
		name  string
		mount launcher.Mount
		want  string
	}{
		{"target through a link into /proc", launcher.Mount{Source: sb, Target: "/p/kernel"}, "resolves to /proc/sys/kernel, in /proc"},
		{"sandbox source through a link out of the sandbox", launcher.Mount{Source: "esc", SourceInSandbox: true, Target: "/x"}, "opening the source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := launcher.Start(context.Background(), &launcher.Spec{
				Args: []string{"/bin/true"}, Rootfs: root, Sandbox: sb, Mounts: []launcher.Mount{tc.mount},
			})
			require.ErrorIs(t, err, launcher.ErrStartFailed)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestImageWithLinkedProcRefused(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "elsewhere"), 0o755))
	require.NoError(t, os.Symlink("/elsewhere", filepath.Join(root, "proc")))
	_, err := launcher.Start(context.Background(), &launcher.Spec{Args: []string{"/bin/true"}, Rootfs: root})
	require.ErrorIs(t, err, launcher.ErrStartFailed)
	assert.ErrorContains(t, err, "the image's /proc is a symbolic link (to /elsewhere)")
}

func TestBadSpecsRefused(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	ok := func() launcher.Spec { return launcher.Spec{Args: []string{"/bin/true"}, Rootfs: root, Sandbox: root} }
	for _, tc := range []struct {
		name string
		edit func(*launcher.Spec)
		want string
	}{
		{"no command", func(s *launcher.Spec) { s.Args = nil }, "no command"},
		{"relative rootfs", func(s *launcher.Spec) { s.Rootfs = "rootfs" }, "not an absolute path"},
		{"missing rootfs", func(s *launcher.Spec) { s.Rootfs = filepath.Join(root, "nope") }, "no such file"},
		{"rootfs a file", func(s *launcher.Spec) { s.Rootfs = file }, "not a directory"},
		{"rootfs the host's", func(s *launcher.Spec) { s.Rootfs = "/" }, "leave Rootfs empty"},
		{"named network", func(s *launcher.Spec) { s.Network = "calico" }, `network "calico": named networks need CNI`},
		{"net namespace", func(s *launcher.Spec) { s.Namespaces = []launcher.Namespace{"net"} }, "host's network"},
		{"relative target", func(s *launcher.Spec) { s.Mounts = []launcher.Mount{{Source: root, Target: "data"}} }, "not an absolute path"},
		{"escaping target", func(s *launcher.Spec) { s.Mounts = []launcher.Mount{{Source: root, Target: "/a/../../etc"}} }, `contains ".."`},
		{"target in /proc", func(s *launcher.Spec) { s.Mounts = []launcher.Mount{{Source: root, Target: "/proc/sys"}} }, "in /proc"},
		{"target the root", func(s *launcher.Spec) { s.Mounts = []launcher.Mount{{Source: root, Target: "/"}} }, "the container's root"},
		{"missing source", func(s *launcher.Spec) { s.Mounts = []launcher.Mount{{Source: "/nonexistent-apron", Target: "/x"}} }, "no such file"},
		{"relative host source", func(s *launcher.Spec) { s.Mounts = []launcher.Mount{{Source: "x", Target: "/x"}} }, "not an absolute path"},
		{"escaping sandbox source", func(s *launcher.Spec) {
			s.Mounts = []launcher.Mount{{Source: "../x", SourceInSandbox: true, Target: "/x"}}
		}, "relative to the sandbox"},
		{"hostname without uts", func(s *launcher.Spec) {
			s.Hostname = "h"
			s.Namespaces = []launcher.Namespace{launcher.NamespacePID, launcher.NamespaceMount}
		}, "uts namespace"},
		{"rootfs without mount namespace", func(s *launcher.Spec) { s.Namespaces = []launcher.Namespace{launcher.NamespacePID} }, "mount namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok()
			require.NoError(t, s.Validate())
			tc.edit(&s)
			_, err := launcher.Start(context.Background(), &s)
			require.ErrorIs(t, err, launcher.ErrInvalidSpec)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestFailureInsideComesBack(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	for _, tc := range []struct {
		name string
		spec launcher.Spec
		want string
	}{
		{"missing argv[0]", launcher.Spec{Args: []string{"/bin/nonexistent-cmd"}}, `executing "/bin/nonexistent-cmd": no such file or directory`},
		{"missing argv[0] in PATH", launcher.Spec{Args: []string{"nonexistent-cmd"}, Env: []string{"PATH=/bin"}}, `"nonexistent-cmd": executable file not found in PATH "/bin"`},
		{"missing argv[0], no init", launcher.Spec{Args: []string{"/bin/nonexistent-cmd"}, NoInit: true}, `executing "/bin/nonexistent-cmd": no such file or directory`},
		{"working directory no directory", launcher.Spec{Args: []string{"/bin/true"}, Dir: "/marker/x"}, `working directory "/marker/x"`},
		{"uid cannot be set", launcher.Spec{Args: []string{"/bin/true"}, User: &launcher.User{UID: 1<<32 - 1}}, "setting uid 4294967295"},
		{"not executable", launcher.Spec{Args: []string{"/marker"}}, `executing "/marker": permission denied`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Rootfs = root
			_, err := launcher.Start(context.Background(), &tc.spec)
			require.ErrorIs(t, err, launcher.ErrStartFailed)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestCgroupAndHookBeforeSetup(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	procs := filepath.Join(t.TempDir(), "cgroup.procs") // stands in for a cgroup's
	require.NoError(t, os.WriteFile(procs, nil, 0o644))
	var hooked int
	out, ws := run(t, &launcher.Spec{
		Args: []string{"/bin/true"}, Rootfs: root,
		CgroupProcs: []string{procs},
		Hook: func(pid int) error {
			hooked = pid
			b, err := os.ReadFile(procs)
			if err != nil || string(b) != strconv.Itoa(pid) {
				return fmt.Errorf("the init was not in its cgroup before the hook: %q, %v", b, err)
			}
			return nil
		},
	})
	require.Equal(t, 0, ws.ExitStatus(), out)
	assert.NotZero(t, hooked)

	_, err := launcher.Start(context.Background(), &launcher.Spec{
		Args: []string{"/bin/true"}, Rootfs: root,
		Hook: func(int) error { return io.ErrClosedPipe },
	})
	require.ErrorIs(t, err, launcher.ErrStartFailed)
	assert.ErrorContains(t, err, "hook: io: read/write on closed pipe")
}

func TestStartHonoursContext(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := launcher.Start(ctx, &launcher.Spec{
		Args: []string{"/bin/true"}, Rootfs: root,
		// The hook cancels the start while the init waits for its spec.
		Hook: func(int) error { cancel(); time.Sleep(10 * time.Millisecond); return nil },
	})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestExtraFilesAndWorkdir(t *testing.T) {
	needRoot(t)
	root := busyboxRootfs(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	// The image's working directory is missing from its root filesystem:
	// made, as Mesos does.
	p, err := launcher.Start(context.Background(), &launcher.Spec{
		Args: sh("echo \"$(pwd)\" >&3"), Env: []string{"PATH=/bin"}, Rootfs: root,
		Dir: "/work/dir", ExtraFiles: []*os.File{w},
	})
	w.Close()
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "/work/dir\n", string(got))
	ws, err := p.Wait()
	require.NoError(t, err)
	assert.Equal(t, 0, ws.ExitStatus())
}

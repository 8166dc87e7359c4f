package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// helperEnv makes the test binary a helper process instead of running
// tests: "hog" allocates memory until killed, "create" plays an agent that
// makes a container and dies by SIGKILL.
const helperEnv = "APRON_CGROUPS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "hog":
		hog()
	case "create":
		createAndDie()
	}
	os.Exit(3)
}

// hog waits for a line on stdin (its cue that it is in its cgroup), then
// allocates and touches memory, 1 MiB at a time, up to 1 GiB.
func hog() {
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	var keep [][]byte
	for range 1024 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Println("survived", len(keep))
	os.Exit(0)
}

// createAndDie makes container $ID under $ROOT with a sleep in it, prints
// the sleep's PID, and kills itself with SIGKILL, as an agent killed with
// -9 would leave things.
func createAndDie() {
	mode, _ := strconv.Atoi(os.Getenv("MODE"))
	m, err := New(Options{Root: os.Getenv("ROOT"), Mode: Mode(mode)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	id := os.Getenv("ID")
	cpus, _ := strconv.ParseFloat(os.Getenv("CPUS"), 64)
	if err := m.Create(id, Limits{CPUs: cpus}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(5)
	}
	cmd := exec.Command("/bin/sh", "-c", "read x; exec sleep 300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		os.Exit(6)
	}
	if err := m.Add(id, cmd.Process.Pid); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(7)
	}
	_, _ = io.WriteString(in, "go\n")
	fmt.Println(cmd.Process.Pid)
	_ = os.Stdout.Sync()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

// testManager returns a manager of mode on a private Root, which it
// removes, with every cgroup in it, when the test ends.
func testManager(t *testing.T, mode Mode, opts Options) *manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make cgroups")
	}
	sys, err := Detect()
	require.NoError(t, err)
	switch mode {
	case ModeV1:
		if missing := sys.missingV1(); len(missing) > 0 {
			t.Skipf("needs cgroup v1 controllers %v mounted", missing)
		}
	case ModeV2:
		if sys.Unified == "" {
			t.Skip("needs a cgroup2 file system mounted")
		}
	}
	opts.Mode = mode
	opts.Root = fmt.Sprintf("apron-test-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", "#", "-").Replace(t.Name()))
	mgr, err := New(opts)
	require.NoError(t, err)
	m := mgr.(*manager)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ids, err := m.List()
		assert.NoError(t, err)
		for _, id := range ids {
			assert.NoError(t, m.Destroy(ctx, id))
		}
		for _, mnt := range m.mounts {
			// Deepest first, for a nested Root.
			for dir := m.rootDir(mnt); dir != mnt; dir = filepath.Dir(dir) {
				if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
					t.Errorf("removing %s: %v", dir, err)
				}
			}
		}
	})
	return m
}

// needControllers skips unless the manager can use every controller in cs.
func needControllers(t *testing.T, m *manager, cs ...string) {
	t.Helper()
	if m.mode == ModeV2 {
		require.NoError(t, m.ensureRoot())
	}
	avail := m.available()
	for _, c := range cs {
		if !avail[c] {
			t.Skipf("the %s controller is not available to cgroup %s here (on a hybrid machine v1 holds the controllers)", c, m.mode)
		}
	}
}

// proc is a process started by a test, held at a gate until released.
type proc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	done chan struct{}
	err  error
}

// startGated starts "/bin/sh -c 'read x; script'" (or cmd when given):
// Add it to id's cgroup, then release() it.
func startGated(t *testing.T, script string, cmd *exec.Cmd) *proc {
	t.Helper()
	if cmd == nil {
		cmd = exec.Command("/bin/sh", "-c", "read x; "+script)
	}
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, in: in, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			// Frozen, or in uninterruptible sleep: say so rather
			// than hang the test binary.
			t.Errorf("process %d did not end after SIGKILL", cmd.Process.Pid)
		}
	})
	return p
}

func (p *proc) release(t *testing.T) {
	t.Helper()
	_, err := io.WriteString(p.in, "go\n")
	require.NoError(t, err)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitExit waits for the process to end and returns its wait status.
func (p *proc) waitExit(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("process did not end")
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestV1(t *testing.T) { runSuite(t, ModeV1) }
func TestV2(t *testing.T) { runSuite(t, ModeV2) }
func runSuite(t *testing.T, mode Mode) {
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, mode) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, mode) })
	t.Run("OOM", func(t *testing.T) { testOOM(t, mode) })
	t.Run("PidsLimit", func(t *testing.T) { testPidsLimit(t, mode) })
	t.Run("Recovery", func(t *testing.T) { testRecovery(t, mode) })
	t.Run("KillFrozenForkLoop", func(t *testing.T) { testKillForkLoop(t, mode) })
}

func testLifecycle(t *testing.T, mode Mode) {
	m := testManager(t, mode, Options{EnableCFS: true})
	ctx := ctxFor(t)
	limits := Limits{}
	if mode == ModeV1 {
		// A low CFS cap, so that even a busy loop on a loaded machine is
		// throttled.
		limits = Limits{CPUs: 0.5, CPULimit: 0.05, MemoryBytes: 64 << 20, PidsMax: 100}
	} else {
		// Set whatever the unified hierarchy has controllers for.
		avail := func() map[string]bool { require.NoError(t, m.ensureRoot()); return m.available() }()
		if avail["cpu"] {
			limits.CPUs, limits.CPULimit = 0.5, 0.05
		}
		if avail["memory"] {
			limits.MemoryBytes = 64 << 20
		}
		if avail["pids"] {
			limits.PidsMax = 100
		}
		t.Logf("v2 controllers available: %v; limits tested: %+v", avail, limits)
	}
	require.NoError(t, m.Create("c1", limits))
	assert.Equal(t, mode, m.Mode())

	dirs, err := m.Dirs("c1")
	require.NoError(t, err)
	require.Len(t, dirs, len(m.mounts))
	if mode == ModeV2 {
		require.Len(t, dirs, 1, "one directory for CLONE_INTO_CGROUP")
	}

	file := func(c, name string) string {
		d, ok := m.ctrlDir(c, "c1")
		require.True(t, ok, c)
		return readTrim(t, filepath.Join(d, name))
	}
	if mode == ModeV1 {
		assert.Equal(t, "512", file("cpu", "cpu.shares"))
		assert.Equal(t, "100000", file("cpu", "cpu.cfs_period_us"))
		assert.Equal(t, "5000", file("cpu", "cpu.cfs_quota_us"))
		assert.Equal(t, "67108864", file("memory", "memory.limit_in_bytes"))
		assert.Equal(t, "67108864", file("memory", "memory.soft_limit_in_bytes"))
		if d, _ := m.ctrlDir("memory", "c1"); fileExists(filepath.Join(d, "memory.memsw.limit_in_bytes")) {
			assert.Equal(t, "67108864", file("memory", "memory.memsw.limit_in_bytes"), "no swap")
		}
		assert.Equal(t, "100", file("pids", "pids.max"))
	} else {
		if limits.CPUs > 0 {
			assert.Equal(t, "20", file("cpu", "cpu.weight"))
			assert.Equal(t, "5000 100000", file("cpu", "cpu.max"))
		}
		if limits.MemoryBytes > 0 {
			assert.Equal(t, "67108864", file("memory", "memory.max"))
			assert.Equal(t, "67108864", file("memory", "memory.low"))
		}
		if limits.PidsMax > 0 {
			assert.Equal(t, "100", file("pids", "pids.max"))
		}
	}

	busy := startGated(t, "while :; do :; done", nil)
	require.NoError(t, m.Add("c1", busy.pid()))
	busy.release(t)
	pids, err := m.Pids("c1")
	require.NoError(t, err)
	assert.Equal(t, []int{busy.pid()}, pids)

	first, err := m.Stats("c1")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), first.Processes)
	require.Eventually(t, func() bool {
		s, err := m.Stats("c1")
		return err == nil && s.CPUUser+s.CPUSystem > first.CPUUser+first.CPUSystem
	}, 30*time.Second, 20*time.Millisecond, "cpu time grows for a busy loop")
	if limits.CPUs > 0 {
		// A twentieth of a core for a loop that wants a whole one.
		require.Eventually(t, func() bool {
			s, err := m.Stats("c1")
			return err == nil && s.CPUThrottled > 0 && s.CPUThrottledTime > 0
		}, 30*time.Second, 20*time.Millisecond, "throttled under a CFS quota")
	}
	s, err := m.Stats("c1")
	require.NoError(t, err)
	if limits.CPUs > 0 {
		assert.InDelta(t, 0.05, s.CPUQuota, 1e-9)
		assert.NotZero(t, s.CPUPeriods)
	}
	if limits.MemoryBytes > 0 {
		assert.Equal(t, uint64(64<<20), s.MemoryLimit)
	}
	if limits.PidsMax > 0 {
		assert.Equal(t, uint64(100), s.PidsMax)
		assert.Equal(t, uint64(1), s.PidsCurrent)
	}
	var rs mesospb.ResourceStatistics
	s.Fill(&rs)
	assert.Equal(t, uint32(1), rs.GetProcesses())
	assert.Positive(t, rs.GetCpusUserTimeSecs()+rs.GetCpusSystemTimeSecs())

	if limits.MemoryBytes > 0 {
		memFile := "memory.limit_in_bytes"
		if mode == ModeV2 {
			memFile = "memory.max"
		}
		require.NoError(t, m.Update("c1", Limits{CPUs: 1, MemoryBytes: 128 << 20, PidsMax: 100}))
		assert.Equal(t, "134217728", file("memory", memFile), "raised")
		require.NoError(t, m.Update("c1", Limits{CPUs: 1, MemoryBytes: 64 << 20, PidsMax: 100}))
		assert.Equal(t, "134217728", file("memory", memFile), "never lowered")
		if mode == ModeV1 {
			assert.Equal(t, "1024", file("cpu", "cpu.shares"))
			assert.Equal(t, "100000", file("cpu", "cpu.cfs_quota_us"), "EnableCFS: capped at CPUs")
			assert.Equal(t, "67108864", file("memory", "memory.soft_limit_in_bytes"), "soft limit follows")
		}
	}

	ids, err := m.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"c1"}, ids)

	require.NoError(t, m.Destroy(ctx, "c1"))
	ws := busy.waitExit(t)
	assert.Equal(t, syscall.SIGKILL, ws.Signal())
	for _, d := range dirs {
		assert.NoDirExists(t, d)
	}
	ids, err = m.List()
	require.NoError(t, err)
	assert.Empty(t, ids)
	assert.ErrorIs(t, m.Destroy(ctx, "c1"), ErrNotFound)
	_, err = m.Stats("c1")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorIs(t, m.Add("c1", os.Getpid()), ErrNotFound)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func testBadInput(t *testing.T, mode Mode) {
	m := testManager(t, mode, Options{})
	ctx := ctxFor(t)
	for _, id := range []string{"", "..", ".", "../../escape", "a/b", "/abs"} {
		assert.ErrorIs(t, m.Create(id, Limits{}), ErrInvalidID, id)
		assert.ErrorIs(t, m.Destroy(ctx, id), ErrInvalidID, id)
		_, err := m.Pids(id)
		assert.ErrorIs(t, err, ErrInvalidID, id)
	}
	assert.ErrorIs(t, m.Create("x", Limits{CPUs: -1}), ErrInvalidLimits)
	assert.ErrorIs(t, m.Create("x", Limits{PidsMax: 1 << 40}), ErrInvalidLimits)
	ids, err := m.List()
	require.NoError(t, err)
	assert.Empty(t, ids, "nothing made for bad input")

	require.NoError(t, m.Create("x", Limits{}))
	assert.ErrorIs(t, m.Create("x", Limits{}), ErrExists)
	_, err = m.Dirs("x")
	assert.NoError(t, err, "a refused Create leaves the first alone")
	assert.Error(t, m.Add("x", 0))
	assert.ErrorIs(t, m.Update("x", Limits{CPUs: -1}), ErrInvalidLimits)
	_, err = m.Stats("missing")
	assert.ErrorIs(t, err, ErrNotFound)

	_, err = New(Options{Root: "../etc"})
	assert.Error(t, err)
}

func testOOM(t *testing.T, mode Mode) {
	m := testManager(t, mode, Options{})
	needControllers(t, m, "memory")
	ctx := ctxFor(t)
	require.NoError(t, m.Create("hog", Limits{MemoryBytes: 32 << 20}))

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=hog")
	hog := startGated(t, "", cmd)
	require.NoError(t, m.Add("hog", hog.pid()))

	type result struct {
		n   uint64
		err error
	}
	got := make(chan result, 1)
	go func() {
		n, err := m.WaitOOM(ctx, "hog")
		got <- result{n, err}
	}()
	// Nothing yet: WaitOOM is still waiting (it would have sent).
	select {
	case r := <-got:
		t.Fatalf("WaitOOM returned before any OOM: %+v", r)
	default:
	}
	hog.release(t)
	r := <-got
	require.NoError(t, r.err)
	assert.GreaterOrEqual(t, r.n, uint64(1))
	ws := hog.waitExit(t)
	assert.Equal(t, syscall.SIGKILL, ws.Signal(), "killed by the OOM killer")

	s, err := m.Stats("hog")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, s.OOMKills, uint64(1))
	// The counter outlives the event: a watch started late still sees it.
	n, err := m.WaitOOM(ctx, "hog")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, uint64(1))

	// A watch on a cgroup without OOM ends when the cgroup goes, or when
	// its ctx does.
	require.NoError(t, m.Create("calm", Limits{MemoryBytes: 64 << 20}))
	short, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := m.WaitOOM(short, "calm")
		assert.ErrorIs(t, err, context.Canceled)
	}()
	cancel()
	wg.Wait()
	gone := make(chan error, 1)
	go func() {
		_, err := m.WaitOOM(ctx, "calm")
		gone <- err
	}()
	require.NoError(t, m.Destroy(ctx, "calm"))
	assert.ErrorIs(t, <-gone, ErrNotFound)
}

func testPidsLimit(t *testing.T, mode Mode) {
	m := testManager(t, mode, Options{})
	needControllers(t, m, "pids")
	ctx := ctxFor(t)
	require.NoError(t, m.Create("bomb", Limits{PidsMax: 16}))
	// A bounded fork bomb: 64 sleeps wanted, 16 tasks allowed.
	bomb := startGated(t, "i=0; while [ $i -lt 64 ]; do sleep 300 & i=$((i+1)); done; wait", nil)
	require.NoError(t, m.Add("bomb", bomb.pid()))
	bomb.release(t)
	require.Eventually(t, func() bool {
		s, err := m.Stats("bomb")
		return err == nil && s.PidsLimited > 0
	}, 30*time.Second, 20*time.Millisecond, "forks refused at the limit")
	s, err := m.Stats("bomb")
	require.NoError(t, err)
	assert.LessOrEqual(t, s.PidsCurrent, uint64(16))
	pids, err := m.Pids("bomb")
	require.NoError(t, err)
	assert.LessOrEqual(t, len(pids), 16)
	assert.Greater(t, len(pids), 1)

	require.NoError(t, m.Destroy(ctx, "bomb"))
	bomb.waitExit(t)
	for _, pid := range pids {
		assert.False(t, alive(pid), "pid %d survived Destroy", pid)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func testRecovery(t *testing.T, mode Mode) {
	m := testManager(t, mode, Options{})
	ctx := ctxFor(t)
	cpus := "0.25"
	if mode == ModeV2 && !func() bool { require.NoError(t, m.ensureRoot()); return m.available()["cpu"] }() {
		cpus = "0"
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=create", "ROOT="+m.opts.Root, "ID=survivor",
		"MODE="+strconv.Itoa(int(mode)), "CPUS="+cpus)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "stderr: %s", stderr.String())
	require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "stderr: %s", stderr.String())
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err, "helper output %q", out)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	// A new manager, as a restarted agent makes, finds the container.
	again, err := New(Options{Root: m.opts.Root, Mode: mode})
	require.NoError(t, err)
	ids, err := again.List()
	require.NoError(t, err)
	assert.Equal(t, []string{"survivor"}, ids)
	require.Eventually(t, func() bool {
		pids, err := again.Pids("survivor")
		return err == nil && len(pids) == 1 && pids[0] == pid
	}, 10*time.Second, 10*time.Millisecond)
	_, err = again.Stats("survivor")
	require.NoError(t, err)
	require.NoError(t, again.Destroy(ctx, "survivor"))
	require.Eventually(t, func() bool { return !alive(pid) }, 10*time.Second, 10*time.Millisecond)
	ids, err = again.List()
	require.NoError(t, err)
	assert.Empty(t, ids)
}

// testKillForkLoop kills a container that forks as fast as it can, which
// only freezing (or cgroup.kill) makes reliable, and checks the freezer
// itself.
func testKillForkLoop(t *testing.T, mode Mode) {
	m := testManager(t, mode, Options{})
	ctx := ctxFor(t)
	// Bounded twice over: by the loop, and by a pids limit where there
	// is a pids controller.
	limits := Limits{}
	if m.available()["pids"] {
		limits.PidsMax = 64
	}
	require.NoError(t, m.Create("forky", limits))
	p := startGated(t, "i=0; while [ $i -lt 5000 ]; do /bin/true & i=$((i+1)); done; wait", nil)
	require.NoError(t, m.Add("forky", p.pid()))
	p.release(t)

	sh := startGated(t, "exec sleep 300", nil)
	require.NoError(t, m.Add("forky", sh.pid()))
	require.True(t, m.freeze(ctx, "forky"), "the container freezes")
	m.thaw("forky")

	require.NoError(t, m.Kill(ctx, "forky"))
	pids, err := m.Pids("forky")
	require.NoError(t, err)
	assert.Empty(t, pids)
	p.waitExit(t)
	sh.waitExit(t)
	require.NoError(t, m.Destroy(ctx, "forky"))
}

// TestV2CloneIntoCgroup starts a process straight into a v2 cgroup with
// CLONE_INTO_CGROUP, as a launcher may instead of Add.
func TestV2CloneIntoCgroup(t *testing.T) {
	m := testManager(t, ModeV2, Options{})
	require.NoError(t, m.Create("clone", Limits{}))
	dirs, err := m.Dirs("clone")
	require.NoError(t, err)
	require.Len(t, dirs, 1)
	fd, err := syscall.Open(dirs[0], syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer syscall.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "exec sleep 300")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	p := startGated(t, "", cmd)
	pids, err := m.Pids("clone")
	require.NoError(t, err)
	assert.Equal(t, []int{p.pid()}, pids)
	require.NoError(t, m.Destroy(ctxFor(t), "clone"))
	p.waitExit(t)
}

func TestAutoPicksAVersion(t *testing.T) {
	sys, err := Detect()
	require.NoError(t, err)
	mode, err := sys.choose(ModeAuto)
	if err != nil {
		t.Skipf("no usable cgroups here: %v", err)
	}
	m, err := New(Options{Root: "apron-test-unused"})
	require.NoError(t, err)
	assert.Equal(t, mode, m.Mode())
	t.Logf("machine: v1 %v, unified %q with %v, hybrid %v: picked %s", sys.V1, sys.Unified, sys.UnifiedControllers, sys.Hybrid(), mode)
}

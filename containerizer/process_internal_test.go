//go:build linux

package containerizer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testProcess(t *testing.T, stateDir string, opts ...func(*ProcessOptions)) *Process {
	t.Helper()
	o := ProcessOptions{
		StateDir: stateDir,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range opts {
		f(&o)
	}
	p, err := NewProcess(o)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		if ids, err := p.Containers(ctx); err == nil {
			for _, id := range ids {
				p.Destroy(ctx, id)
			}
		}
		p.Close()
	})
	return p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func shellConfig(dir, id, script string) Config {
	return Config{ID: id, Command: ShellCommand(script), Sandbox: filepath.Join(dir, id), Env: []string{"PATH=/usr/bin:/bin"}}
}

// waitFile polls until a container has written a line to a file.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	require.Eventually(t, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && strings.HasSuffix(string(b), "\n")
	}, 30*time.Second, 5*time.Millisecond, "waiting for %s", path)
	return strings.TrimSpace(string(b))
}

// readPid waits for a pid a container writes to a file.
func readPid(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(waitFile(t, path))
	require.NoError(t, err)
	return pid
}

// replayJournal reads the journal in dir as a new containerizer would, without
// compacting it.
func replayJournal(t *testing.T, dir string) map[string]*checkpoint {
	t.Helper()
	j := &journal{live: make(map[string]*journalEntry)}
	f, err := os.Open(filepath.Join(dir, journalName))
	require.NoError(t, err)
	defer f.Close()
	_, err = j.replay(f)
	require.NoError(t, err)
	m := make(map[string]*checkpoint)
	for _, cp := range j.checkpoints() {
		m[cp.ID] = cp
	}
	return m
}

// writeJournal adds launch records to the journal in dir.
func writeJournal(t *testing.T, dir string, cps ...*checkpoint) {
	t.Helper()
	j, _, err := openJournal(dir)
	require.NoError(t, err)
	for _, cp := range cps {
		require.NoError(t, j.launched(cp))
	}
	require.NoError(t, j.close())
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "1234 (a) (b c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 30 7 3 20 0 3 0 987654 10000000 321 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	s, err := parseProcStat([]byte(line))
	require.NoError(t, err)
	assert.Equal(t, procStat{State: 'S', PGID: 1234, Session: 1234, UTime: 250, STime: 30, CUTime: 7, CSTime: 3, Threads: 3, StartTicks: 987654, RSSPages: 321}, s)

	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S 1 notanumber 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0 5 0 1"} {
		_, err := parseProcStat([]byte(bad))
		assert.Error(t, err, "%q", bad)
	}

	self, err := readProcStat(os.Getpid(), nil)
	require.NoError(t, err)
	assert.Equal(t, syscall.Getpgrp(), self.PGID)
	assert.NotZero(t, self.StartTicks)
	_, err = readProcStat(1<<30, nil)
	assert.ErrorIs(t, err, errNoProcess)
}

func TestNewProcessNeedsStateDir(t *testing.T) {
	_, err := NewProcess(ProcessOptions{})
	require.Error(t, err)
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func TestProcessUsageUsesClock(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	p := testProcess(t, t.TempDir(), func(o *ProcessOptions) { o.Clock = fixedClock{now} })
	require.NoError(t, p.Launch(testCtx(t), shellConfig(t.TempDir(), "c", "sleep 600")))
	u, err := p.Usage(testCtx(t), "c")
	require.NoError(t, err)
	assert.Equal(t, now, u.Timestamp)
}

func TestProcessUsageCPU(t *testing.T) {
	p := testProcess(t, t.TempDir())
	require.NoError(t, p.Launch(testCtx(t), shellConfig(t.TempDir(), "busy", "while :; do :; done")))
	require.Eventually(t, func() bool {
		u, err := p.Usage(testCtx(t), "busy")
		return err == nil && u.CPUUserSeconds+u.CPUSystemSeconds > 0
	}, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Signal(testCtx(t), "busy", syscall.SIGKILL))
	_, err := p.Wait(testCtx(t), "busy")
	require.NoError(t, err)
	// After the end, the CPU time comes from the reaped process's rusage.
	u, err := p.Usage(testCtx(t), "busy")
	require.NoError(t, err)
	assert.Positive(t, u.CPUUserSeconds+u.CPUSystemSeconds)
	assert.Zero(t, u.Processes)
}

func TestProcessCheckpointLifecycle(t *testing.T) {
	state := t.TempDir()
	p := testProcess(t, state)
	cfg := shellConfig(t.TempDir(), "c", "trap 'exit 3' TERM; echo ready > ready; sleep 600 & wait")
	require.NoError(t, p.Launch(testCtx(t), cfg))
	waitFile(t, filepath.Join(cfg.Sandbox, "ready"))
	cp := replayJournal(t, state)["c"]
	require.NotNil(t, cp)
	assert.Positive(t, cp.PID)
	assert.NotZero(t, cp.StartTicks)
	assert.Equal(t, readBootID(), cp.BootID)
	assert.Equal(t, cfg.Env, cp.Env, "nested containers inherit it after a restart")
	assert.Nil(t, cp.Termination)

	require.NoError(t, p.Signal(testCtx(t), "c", syscall.SIGTERM))
	term, err := p.Wait(testCtx(t), "c")
	require.NoError(t, err)
	assert.Equal(t, 3, term.ExitCode)
	cp = replayJournal(t, state)["c"]
	require.NotNil(t, cp)
	require.NotNil(t, cp.Termination, "the termination is checkpointed")
	assert.Equal(t, term, cp.Termination.termination())

	require.NoError(t, p.Destroy(testCtx(t), "c"))
	assert.Empty(t, replayJournal(t, state))
}

// A container whose process ended, and was reaped by someone else, while no
// containerizer watched it is recovered as ended with an unknown status.
func TestProcessRecoverLostProcess(t *testing.T) {
	state := t.TempDir()
	p1 := testProcess(t, state)
	require.NoError(t, p1.Launch(testCtx(t), shellConfig(t.TempDir(), "lost", "sleep 600")))
	cp := replayJournal(t, state)["lost"]
	require.NotNil(t, cp)
	require.NoError(t, p1.Close())
	require.NoError(t, syscall.Kill(-cp.PID, syscall.SIGKILL))
	var ws syscall.WaitStatus
	_, err := syscall.Wait4(cp.PID, &ws, 0, nil)
	require.NoError(t, err)

	p2 := testProcess(t, state)
	ids, err := p2.Recover(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"lost"}, ids)
	term, err := p2.Wait(testCtx(t), "lost")
	require.NoError(t, err)
	assert.False(t, term.StatusKnown(), "%+v", term)
	assert.Equal(t, -1, term.ExitCode)
	assert.Contains(t, term.Message, "unknown")
	require.NoError(t, p2.Signal(testCtx(t), "lost", syscall.SIGKILL), "nothing is signalled")
	require.NoError(t, p2.Destroy(testCtx(t), "lost"))
}

// A checkpoint whose pid now names another process (another start time, or
// another boot) never leads to that process being watched or signalled: here
// the other process is the test itself.
func TestProcessRecoverGuardsPidReuse(t *testing.T) {
	state := t.TempDir()
	self, err := readProcStat(os.Getpid(), nil)
	require.NoError(t, err)
	writeJournal(t, state,
		&checkpoint{Version: checkpointVersion, ID: "other-start", PID: os.Getpid(), StartTicks: self.StartTicks + 1, BootID: readBootID()},
		&checkpoint{Version: checkpointVersion, ID: "other-boot", PID: os.Getpid(), StartTicks: self.StartTicks, BootID: "00000000-0000-0000-0000-000000000000"},
	)

	p := testProcess(t, state)
	ids, err := p.Recover(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"other-boot", "other-start"}, ids)
	for _, id := range ids {
		term, err := p.Wait(testCtx(t), id)
		require.NoError(t, err)
		assert.False(t, term.StatusKnown(), "%s: %+v", id, term)
		require.NoError(t, p.Signal(testCtx(t), id, syscall.SIGKILL))
		u, err := p.Usage(testCtx(t), id)
		require.NoError(t, err)
		assert.Zero(t, u.Processes, "%s: the test's own process is not counted", id)
		require.NoError(t, p.Destroy(testCtx(t), id))
	}
}

func TestProcessRecoverSkipsBadRecords(t *testing.T) {
	state := t.TempDir()
	records := strings.Join([]string{
		`{not json`,
		`{"launch":{"version":99,"id":"future","pid":1}}`,
		`{"launch":{"version":1,"id":"a/b","pid":1}}`,
		`{"launch":{"version":1,"id":"nopid"}}`,
		`{"end":{"id":"never-launched","termination":{"exit_code":0}}}`,
		`{"something":"else"}`,
		`{"launch":{"version":1,"id":"destroyed","pid":999999999}}`,
		`{"destroy":"destroyed"}`,
		`{"launch":{"version":1,"id":"torn","pid":999999999,"start_ticks":1}}`,
		// A crash inside the append of the termination leaves a torn line.
		`{"end":{"id":"torn","termination":{"exit_co`,
	}, "\n")
	require.NoError(t, os.WriteFile(filepath.Join(state, journalName), []byte(records), 0o600))

	p := testProcess(t, state)
	// Opening compacted the journal to its one live record.
	b, err := os.ReadFile(filepath.Join(state, journalName))
	require.NoError(t, err)
	assert.Equal(t, `{"launch":{"version":1,"id":"torn","pid":999999999,"start_ticks":1}}`+"\n", string(b))

	ids, err := p.Recover(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"torn"}, ids)
	term, err := p.Wait(testCtx(t), "torn")
	require.NoError(t, err)
	assert.False(t, term.StatusKnown())
}

func TestJournalCompacts(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir)
	require.NoError(t, err)
	const n, keep = 3000, 10
	for i := range n {
		id := strconv.Itoa(i)
		require.NoError(t, j.launched(&checkpoint{Version: checkpointVersion, ID: id, PID: 1000 + i}))
		require.NoError(t, j.ended(id, Termination{ExitCode: i % 3, Message: "exited"}))
		if i >= keep {
			require.NoError(t, j.destroyed(id))
		}
	}
	require.NoError(t, j.destroyed("never-launched"))
	require.NoError(t, j.close())

	b, err := os.ReadFile(filepath.Join(dir, journalName))
	require.NoError(t, err)
	assert.Less(t, strings.Count(string(b), "\n"), journalCompactMin+3, "the journal was compacted")
	cps := replayJournal(t, dir)
	require.Len(t, cps, keep)
	for i := range keep {
		cp := cps[strconv.Itoa(i)]
		require.NotNil(t, cp, "container %d", i)
		assert.Equal(t, 1000+i, cp.PID)
		require.NotNil(t, cp.Termination)
		assert.Equal(t, i%3, cp.Termination.ExitCode)
	}
}

// A recovered process that is not this process's child (the grandchild of a
// container, adopted by init) is watched through its pidfd alone.
func TestProcessRecoverNonChild(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	p1 := testProcess(t, state)
	cfg := shellConfig(dir, "parent", "sleep 600 & echo $! > bgpid")
	require.NoError(t, p1.Launch(testCtx(t), cfg))
	_, err := p1.Wait(testCtx(t), "parent")
	require.NoError(t, err)
	pid := readPid(t, filepath.Join(cfg.Sandbox, "bgpid"))
	st, err := readProcStat(pid, nil)
	require.NoError(t, err)
	require.NoError(t, p1.Close())
	writeJournal(t, state, &checkpoint{Version: checkpointVersion, ID: "orphan", PID: pid, StartTicks: st.StartTicks, BootID: readBootID(), Sandbox: dir})

	p2 := testProcess(t, state)
	ids, err := p2.Recover(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"orphan", "parent"}, ids)
	term, err := p2.Wait(testCtx(t), "parent")
	require.NoError(t, err)
	assert.Equal(t, 0, term.ExitCode, "the checkpointed termination")

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = p2.Wait(short, "orphan")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, p2.Destroy(testCtx(t), "orphan"))
	require.Eventually(t, func() bool {
		s, err := readProcStat(pid, nil)
		return err != nil || s.StartTicks != st.StartTicks || s.State == 'Z'
	}, 30*time.Second, 5*time.Millisecond)
}

// A container recovered after a restart gives its nested containers its
// environment as launched, whatever its process shows now; one recovered
// from a record that has none, what its process shows.
func TestProcessRecoveredNestedEnv(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	p1 := testProcess(t, state)
	cfg := shellConfig(dir, "parent", "exec env -i A=shown /bin/sh -c 'echo ready >ready; exec /bin/sleep 600'")
	cfg.Env = append(cfg.Env, "A=launched")
	require.NoError(t, p1.Launch(testCtx(t), cfg))
	waitFile(t, filepath.Join(cfg.Sandbox, "ready"))
	cp := replayJournal(t, state)["parent"]
	require.NotNil(t, cp)
	require.NoError(t, p1.Close())
	unrecorded := *cp
	unrecorded.ID, unrecorded.Env = "old", nil
	writeJournal(t, state, cp, &unrecorded)

	p2 := testProcess(t, state)
	t.Cleanup(func() {
		p2.Destroy(context.Background(), "old")
		p2.Destroy(context.Background(), "parent")
	})
	_, err := p2.Recover(testCtx(t))
	require.NoError(t, err)
	for parent, want := range map[string]string{"parent": "launched", "old": "shown"} {
		stdio, err := p2.LaunchNested(testCtx(t), NestedConfig{ID: parent + ".n", Parent: parent, Command: ShellCommand("/bin/echo $A")})
		require.NoError(t, err)
		stdio.Stdin.Close()
		out, _ := io.ReadAll(stdio.Stdout)
		stdio.Close()
		assert.Equal(t, want+"\n", string(out), parent)
		require.NoError(t, p2.Destroy(testCtx(t), parent+".n"))
	}
}

// The real restart: an agent process launches a container and exits; this
// process recovers it, although it is not its child and never was.
func TestProcessContainerSurvivesAgentExit(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	agent := exec.Command(os.Args[0], "-test.run=^TestHelperAgent$")
	agent.Env = append(os.Environ(), "APRON_TEST_AGENT="+state+":"+dir)
	out, err := agent.CombinedOutput()
	require.NoError(t, err, "helper agent: %s", out)

	p := testProcess(t, state)
	ids, err := p.Recover(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"survivor"}, ids)
	u, err := p.Usage(testCtx(t), "survivor")
	require.NoError(t, err)
	assert.Equal(t, 1, u.Processes)

	waited := make(chan Termination, 1)
	entered := make(chan struct{})
	go func() {
		close(entered)
		term, err := p.Wait(testCtx(t), "survivor")
		assert.NoError(t, err)
		waited <- term
	}()
	<-entered
	// A short while for the goroutine to block in Wait: one that came after
	// Destroy would find the container gone.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = p.Wait(short, "survivor")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, p.Destroy(testCtx(t), "survivor"))
	term := <-waited
	assert.Equal(t, ReasonDestroyed, term.Reason)
	assert.False(t, term.StatusKnown(), "%+v", term)
}

// TestHelperAgent is the agent process of TestProcessContainerSurvivesAgentExit.
func TestHelperAgent(t *testing.T) {
	arg := os.Getenv("APRON_TEST_AGENT")
	if arg == "" {
		t.Skip("run by TestProcessContainerSurvivesAgentExit")
	}
	state, dir, _ := strings.Cut(arg, ":")
	p, err := NewProcess(ProcessOptions{StateDir: state})
	require.NoError(t, err)
	cfg := Config{ID: "survivor", Command: ExecCommand("/bin/sleep", "600"), Sandbox: filepath.Join(dir, "survivor")}
	require.NoError(t, p.Launch(context.Background(), cfg))
	// Exit without closing or destroying anything, as a crashing agent does.
	os.Exit(0)
}

// An agent that is not root runs containers as its own user only.
func TestProcessNotRootRunsOnlyAsItself(t *testing.T) {
	self, err := user.Current()
	require.NoError(t, err)
	p := testProcess(t, t.TempDir())
	p.root = false // as if
	dir := t.TempDir()

	cfg := shellConfig(dir, "self", "id -u")
	cfg.User = self.Username
	require.NoError(t, p.Launch(testCtx(t), cfg))
	term, err := p.Wait(testCtx(t), "self")
	require.NoError(t, err)
	assert.Equal(t, 0, term.ExitCode)
	assert.Equal(t, self.Uid, waitFile(t, filepath.Join(cfg.Sandbox, "stdout")))

	other := "nobody"
	if self.Username == other {
		other = "root"
	}
	cfg = shellConfig(dir, "other", "true")
	cfg.User = other
	err = p.Launch(testCtx(t), cfg)
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "not root")
}

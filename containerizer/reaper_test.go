//go:build linux

package containerizer_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/containerizertest"
)

// TestMain lets the test binary be the reaper (ProcessOptions.Reaper), and
// the agent process that TestReaperKeepsExitStatusAcrossAgentKill kills.
func TestMain(m *testing.M) {
	if containerizer.IsReaper() {
		if err := containerizer.RunReaper(); err != nil {
			fmt.Fprintln(os.Stderr, "reaper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if dir := os.Getenv(helperAgentEnv); dir != "" {
		os.Exit(helperAgent(dir))
	}
	os.Exit(m.Run())
}

// reaperArgv is the reaper command line for tests: this test binary, with
// the state directory as an argument so that a test finds its reaper.
func reaperArgv(t testing.TB, stateDir string) []string {
	exe, err := os.Executable()
	require.NoError(t, err)
	return []string{exe, "reaper", stateDir}
}

func newReaped(t testing.TB, stateDir string) *containerizer.Process {
	p, err := containerizer.NewProcess(containerizer.ProcessOptions{
		StateDir: stateDir,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Reaper:   reaperArgv(t, stateDir),
	})
	require.NoError(t, err)
	return p
}

func TestProcessWithReaperConformance(t *testing.T) {
	containerizertest.Run(t, func(t *testing.T, stateDir string) containerizer.Containerizer {
		return newReaped(t, stateDir)
	})
}

const helperAgentEnv = "APRON_TEST_HELPER_AGENT"

// helperAgent is an agent process's stand-in: it launches two containers
// through the reaper, says so on stdout, and waits to be killed.
func helperAgent(stateDir string) int {
	p, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: stateDir, Reaper: []string{os.Args[0], "reaper", stateDir}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	sandboxes := filepath.Join(stateDir, "..", "sandboxes")
	for _, id := range []string{"ends-while-down", "ends-after-recovery", "killed-while-down", "dies-with-agent"} {
		// Each container ends when the test creates its file "go".
		script := fmt.Sprintf(`while [ ! -e go ]; do sleep 0.02; done; exit %d`, len(id))
		if id == "killed-while-down" || id == "dies-with-agent" {
			script = `echo $$ > pid; while :; do sleep 0.02; done`
		}
		cfg := containerizer.Config{ID: id, Command: containerizer.ShellCommand(script),
			Sandbox: filepath.Join(sandboxes, id), Env: []string{"PATH=/usr/bin:/bin"}, DiesWithAgent: id == "dies-with-agent"}
		if err := p.Launch(context.Background(), cfg); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	}
	fmt.Println("launched")
	select {}
}

// An agent killed with SIGKILL leaves its containers to the reaper; the
// next containerizer on the state directory learns how each ended: while no
// agent ran, or after it recovered them.
func TestReaperKeepsExitStatusAcrossAgentKill(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	sandboxes := filepath.Join(dir, "sandboxes")

	agent := exec.Command(os.Args[0], "-test.run=^$")
	agent.Env = append(os.Environ(), helperAgentEnv+"="+stateDir)
	agent.Stderr = os.Stderr
	out, err := agent.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, agent.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "launched\n", line)
	require.NoError(t, agent.Process.Signal(syscall.SIGKILL))
	agent.Wait()

	// While no agent runs: one container exits, one is killed.
	require.NoError(t, os.WriteFile(filepath.Join(sandboxes, "ends-while-down", "go"), nil, 0o644))
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(sandboxes, "killed-while-down", "pid"))
		_, scanErr := fmt.Sscan(string(b), &pid)
		return err == nil && scanErr == nil
	}, time.Minute, 10*time.Millisecond)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	p := newReaped(t, stateDir)
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids, err := p.Recover(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"dies-with-agent", "ends-after-recovery", "ends-while-down", "killed-while-down"}, ids)

	// The reaper killed the container that dies with its agent as soon as
	// the agent's connections closed.
	term, err := p.Wait(ctx, "dies-with-agent")
	require.NoError(t, err)
	assert.Equal(t, syscall.SIGKILL, term.Signal, "%+v", term)

	term, err = p.Wait(ctx, "ends-while-down")
	require.NoError(t, err)
	assert.True(t, term.StatusKnown(), "%+v", term)
	assert.Equal(t, len("ends-while-down"), term.ExitCode, "%+v", term)

	term, err = p.Wait(ctx, "killed-while-down")
	require.NoError(t, err)
	assert.Equal(t, syscall.SIGKILL, term.Signal, "%+v", term)

	require.NoError(t, os.WriteFile(filepath.Join(sandboxes, "ends-after-recovery", "go"), nil, 0o644))
	term, err = p.Wait(ctx, "ends-after-recovery")
	require.NoError(t, err)
	assert.Equal(t, len("ends-after-recovery"), term.ExitCode, "%+v", term)

	// The statuses are recorded: a later containerizer, with no reaper
	// configured, knows them too.
	for _, id := range ids {
		require.NoError(t, p.Destroy(ctx, id))
	}
	require.NoError(t, p.Close())
	requireReaperGone(t, stateDir)
}

// requireReaperGone checks that the reaper of stateDir has exited, as it
// does once nothing is connected and no container is left.
func requireReaperGone(t *testing.T, stateDir string) {
	t.Helper()
	assert.Eventually(t, func() bool { return len(reapers(t, stateDir)) == 0 }, time.Minute, 20*time.Millisecond,
		"the reaper exits once idle")
}

// reapers lists the live reaper processes of stateDir started by newReaped.
func reapers(t *testing.T, stateDir string) []int {
	want := strings.Join(reaperArgv(t, stateDir), "\x00") + "\x00"
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || string(cmdline) != want {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && !strings.Contains(string(st), ") Z ") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// A reaper that dies takes the exit statuses of its running containers
// with it, but nothing hangs: they end with the status unknown, and the
// next launch starts a new reaper.
func TestReaperKilled(t *testing.T) {
	stateDir, dir := t.TempDir(), t.TempDir()
	p := newReaped(t, stateDir)
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := func(id, script string) containerizer.Config {
		return containerizer.Config{ID: id, Command: containerizer.ShellCommand(script), Sandbox: filepath.Join(dir, id), Env: []string{"PATH=/usr/bin:/bin"}}
	}
	require.NoError(t, p.Launch(ctx, cfg("orphan", `while [ ! -e go ]; do sleep 0.02; done`)))
	pids := reapers(t, stateDir)
	require.Len(t, pids, 1)
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "orphan", "go"), nil, 0o644))
	term, err := p.Wait(ctx, "orphan")
	require.NoError(t, err)
	assert.False(t, term.StatusKnown(), "%+v", term)
	require.NoError(t, p.Destroy(ctx, "orphan"))

	require.NoError(t, p.Launch(ctx, cfg("next", "exit 3")))
	term, err = p.Wait(ctx, "next")
	require.NoError(t, err)
	assert.Equal(t, 3, term.ExitCode, "%+v", term)
	require.NoError(t, p.Destroy(ctx, "next"))
	require.NoError(t, p.Close())
	requireReaperGone(t, stateDir)
}

// BenchmarkLaunchTrueReaper is BenchmarkLaunchTrue with the containers
// forked by the reaper.
func BenchmarkLaunchTrueReaper(b *testing.B) {
	benchLaunchTrue(b, newReaped(b, b.TempDir()))
}

// BenchmarkLaunchTrueParallelReaper is BenchmarkLaunchTrueParallel with the
// containers forked by the reaper.
func BenchmarkLaunchTrueParallelReaper(b *testing.B) {
	benchLaunchTrueParallel(b, newReaped(b, b.TempDir()))
}

//go:build linux

package containerizer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/containerizertest"
)

func newProcess(t testing.TB, stateDir string) *containerizer.Process {
	p, err := containerizer.NewProcess(containerizer.ProcessOptions{
		StateDir: stateDir,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	return p
}

func TestProcessConformance(t *testing.T) {
	containerizertest.Run(t, func(t *testing.T, stateDir string) containerizer.Containerizer {
		return newProcess(t, stateDir)
	})
}

// BenchmarkLaunchTrue measures one container's whole life: launch /bin/true,
// wait for it, destroy it.
func BenchmarkLaunchTrue(b *testing.B) {
	benchLaunchTrue(b, newProcess(b, b.TempDir()))
}

// BenchmarkLaunchTrueParallel does the same with 130 containers in flight per
// CPU (260 on two cores, as in the design's batch-task target).
func BenchmarkLaunchTrueParallel(b *testing.B) {
	benchLaunchTrueParallel(b, newProcess(b, b.TempDir()))
}

func benchLaunchTrue(b *testing.B, p containerizer.Containerizer) {
	b.Cleanup(func() { p.Close() })
	dir := b.TempDir()
	ctx := context.Background()
	i := 0
	cpu := startCPU()
	for b.Loop() {
		i++
		launchWaitDestroy(b, ctx, p, dir, i)
	}
	reportTasks(b, cpu)
}

func benchLaunchTrueParallel(b *testing.B, p containerizer.Containerizer) {
	b.Cleanup(func() { p.Close() })
	dir := b.TempDir()
	ctx := context.Background()
	b.SetParallelism(130)
	var next chanCounter = make(chan int, 1)
	next <- 0
	cpu := startCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			launchWaitDestroy(b, ctx, p, dir, next.inc())
		}
	})
	reportTasks(b, cpu)
}

type chanCounter chan int

func (c chanCounter) inc() int {
	n := <-c + 1
	c <- n
	return n
}

func launchWaitDestroy(b *testing.B, ctx context.Context, p containerizer.Containerizer, dir string, i int) {
	id := fmt.Sprintf("true-%d", i)
	cfg := containerizer.Config{
		ID:      id,
		Command: containerizer.ExecCommand("/bin/true"),
		Sandbox: filepath.Join(dir, id),
		Env:     []string{"PATH=/usr/bin:/bin"},
	}
	if err := p.Launch(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	term, err := p.Wait(ctx, id)
	if err != nil || term.ExitCode != 0 {
		b.Fatalf("wait: %+v %v", term, err)
	}
	if err := p.Destroy(ctx, id); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkExecTrueBaseline is the floor under BenchmarkLaunchTrue: a bare
// os/exec of /bin/true, with no sandbox, files, checkpoint or watcher.
func BenchmarkExecTrueBaseline(b *testing.B) {
	cpu := startCPU()
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
	reportTasks(b, cpu)
}

// startCPU returns the CPU time this process (the agent, not its children)
// has used so far.
func startCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportTasks reports the throughput, and the agent's own CPU time per task,
// which contention on a shared machine disturbs less than wall time.
func reportTasks(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(float64((startCPU()-cpu0).Microseconds())/float64(b.N), "agent-cpu-µs/op")
}

// A link the task left in its sandbox as stdout or stderr fails the
// launch: the containerizer would write to, and chown, what it points to.
func TestProcessRefusesLinkedOutput(t *testing.T) {
	p := newProcess(t, t.TempDir())
	t.Cleanup(func() { p.Close() })
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious\n"), 0o600))
	for _, name := range []string{"stdout", "stderr"} {
		sandbox := t.TempDir()
		require.NoError(t, os.Symlink(victim, filepath.Join(sandbox, name)))
		err := p.Launch(t.Context(), containerizer.Config{ID: "linked-" + name, Command: containerizer.ShellCommand("echo written"), Sandbox: sandbox})
		require.ErrorIs(t, err, containerizer.ErrLaunchFailed, name)
		b, err := os.ReadFile(victim)
		require.NoError(t, err)
		require.Equal(t, "precious\n", string(b), name)
	}
}

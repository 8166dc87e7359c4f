package containerizer_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/clock"
)

// The no-op containerizer runs no process, so the conformance suite's
// cases about what a process does (exit codes, output, environment,
// children, users, recovery after a restart) cannot apply to it; these
// tests cover the lifecycle part of the contract it keeps.

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func noopConfig(id string) containerizer.Config {
	return containerizer.Config{ID: id, Command: containerizer.ShellCommand("exit 3"), Sandbox: "/nonexistent/sandbox/" + id}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requireRunning checks that id has not ended: Wait is still blocked
// after a short while.
func requireRunning(t *testing.T, c containerizer.Containerizer, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	term, err := c.Wait(ctx, id)
	require.ErrorIs(t, err, context.DeadlineExceeded, "container %s ended: %+v", id, term)
}

func TestNoopEndsAtOnceByDefault(t *testing.T) {
	n := containerizer.NewNoop(containerizer.NoopOptions{})
	defer n.Close()
	ctx := testCtx(t)
	require.NoError(t, n.Launch(ctx, noopConfig("a")))
	term, err := n.Wait(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 0, term.ExitCode, "the command is not run: every container exits 0")
	assert.Equal(t, syscall.Signal(0), term.Signal)
	assert.Equal(t, containerizer.ReasonNone, term.Reason)
	assert.True(t, term.StatusKnown())
	assert.NotEmpty(t, term.Message)
	// Waiting again gives the same end, until Destroy.
	again, err := n.Wait(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, term, again)
	require.NoError(t, n.Destroy(ctx, "a"))
	_, err = n.Wait(ctx, "a")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
}

func TestNoopRunTimeOnTheClock(t *testing.T) {
	fake := clock.NewFake(epoch)
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Second, Clock: fake})
	defer n.Close()
	ctx := testCtx(t)
	require.NoError(t, n.Launch(ctx, noopConfig("a")))
	requireRunning(t, n, "a")
	fake.Advance(999 * time.Millisecond)
	requireRunning(t, n, "a")
	fake.Advance(time.Millisecond)
	term, err := n.Wait(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 0, term.ExitCode)
	assert.Equal(t, containerizer.ReasonNone, term.Reason)
	require.NoError(t, n.Destroy(ctx, "a"))
}

func TestNoopRunTimeFromEnv(t *testing.T) {
	fake := clock.NewFake(epoch)
	n := containerizer.NewNoop(containerizer.NoopOptions{Clock: fake})
	defer n.Close()
	ctx := testCtx(t)

	cfg := noopConfig("slow")
	cfg.Env = []string{containerizer.NoopRunTimeEnv + "=1h", containerizer.NoopRunTimeEnv + "=5s"}
	require.NoError(t, n.Launch(ctx, cfg))
	requireRunning(t, n, "slow")
	fake.Advance(4 * time.Second)
	requireRunning(t, n, "slow")
	fake.Advance(time.Second)
	term, err := n.Wait(ctx, "slow")
	require.NoError(t, err, "the last value counts, as getenv has it")
	assert.Equal(t, 0, term.ExitCode)

	for _, bad := range []string{"soon", "-1s", ""} {
		cfg := noopConfig("bad")
		cfg.Env = []string{containerizer.NoopRunTimeEnv + "=" + bad}
		err := n.Launch(ctx, cfg)
		require.ErrorIs(t, err, containerizer.ErrInvalidConfig, "%q", bad)
		assert.Contains(t, err.Error(), containerizer.NoopRunTimeEnv)
	}
	ids, err := n.Containers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"slow"}, ids)
}

func TestNoopSignal(t *testing.T) {
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Hour})
	defer n.Close()
	ctx := testCtx(t)
	require.NoError(t, n.Launch(ctx, noopConfig("s")))
	require.NoError(t, n.Signal(ctx, "s", 0))
	require.NoError(t, n.Signal(ctx, "s", syscall.SIGCHLD))
	requireRunning(t, n, "s")

	require.NoError(t, n.Signal(ctx, "s", syscall.SIGTERM))
	term, err := n.Wait(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, syscall.SIGTERM, term.Signal)
	assert.Equal(t, -1, term.ExitCode)
	assert.Equal(t, containerizer.ReasonNone, term.Reason)
	assert.True(t, term.StatusKnown())
	// Signalling an ended container is not an error and changes nothing.
	require.NoError(t, n.Signal(ctx, "s", syscall.SIGKILL))
	again, err := n.Wait(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, term, again)
}

func TestNoopDestroy(t *testing.T) {
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Hour})
	defer n.Close()
	ctx := testCtx(t)
	require.NoError(t, n.Launch(ctx, noopConfig("d")))

	const waiters = 8
	terms := make(chan containerizer.Termination, waiters)
	var started, done sync.WaitGroup
	for range waiters {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			term, err := n.Wait(ctx, "d")
			assert.NoError(t, err)
			terms <- term
		}()
	}
	started.Wait()
	requireRunning(t, n, "d")

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = n.Destroy(ctx, "d") })
	}
	wg.Wait()
	succeeded := 0
	for _, err := range errs {
		if err == nil {
			succeeded++
		} else {
			assert.ErrorIs(t, err, containerizer.ErrUnknownContainer)
		}
	}
	assert.Equal(t, 1, succeeded, "one Destroy removes the container; the others find it gone")

	done.Wait()
	close(terms)
	for term := range terms {
		assert.Equal(t, containerizer.ReasonDestroyed, term.Reason)
		assert.Equal(t, syscall.SIGKILL, term.Signal)
		assert.Equal(t, -1, term.ExitCode)
		assert.NotEmpty(t, term.Message)
	}
	_, err := n.Wait(ctx, "d")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
	// The ID is free again.
	require.NoError(t, n.Launch(ctx, noopConfig("d")))
}

func TestNoopWaitHonoursContext(t *testing.T) {
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Hour})
	defer n.Close()
	require.NoError(t, n.Launch(testCtx(t), noopConfig("long")))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := n.Wait(ctx, "long")
		errc <- err
	}()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	err := n.Launch(ctx, noopConfig("cancelled"))
	require.ErrorIs(t, err, context.Canceled, "Launch with a cancelled context")
	_, err = n.Wait(testCtx(t), "cancelled")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
}

func TestNoopErrors(t *testing.T) {
	n := containerizer.NewNoop(containerizer.NoopOptions{})
	defer n.Close()
	ctx := testCtx(t)

	_, err := n.Wait(ctx, "nope")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
	assert.Contains(t, err.Error(), "nope")
	require.ErrorIs(t, n.Signal(ctx, "nope", syscall.SIGTERM), containerizer.ErrUnknownContainer)
	require.ErrorIs(t, n.Destroy(ctx, "nope"), containerizer.ErrUnknownContainer)
	_, err = n.Usage(ctx, "nope")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)

	require.NoError(t, n.Launch(ctx, noopConfig("dup")))
	err = n.Launch(ctx, noopConfig("dup"))
	require.ErrorIs(t, err, containerizer.ErrContainerExists, "an ended container keeps its ID until destroyed")
	assert.Contains(t, err.Error(), "dup")

	for name, mutate := range map[string]func(*containerizer.Config){
		"bad ID":           func(c *containerizer.Config) { c.ID = "a/b" },
		"relative sandbox": func(c *containerizer.Config) { c.Sandbox = "relative" },
		"empty command":    func(c *containerizer.Config) { c.Command = containerizer.Command{} },
		"env without =":    func(c *containerizer.Config) { c.Env = []string{"NOEQUALS"} },
		"negative cpus":    func(c *containerizer.Config) { c.Limits.CPUs = -1 },
	} {
		cfg := noopConfig("good")
		mutate(&cfg)
		require.ErrorIs(t, n.Launch(ctx, cfg), containerizer.ErrInvalidConfig, name)
	}
	ids, err := n.Containers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"dup"}, ids, "no invalid config left a container")
}

func TestNoopUsageContainersRecover(t *testing.T) {
	fake := clock.NewFake(epoch)
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Hour, Clock: fake})
	defer n.Close()
	ctx := testCtx(t)

	cfg := noopConfig("b")
	cfg.Limits = containerizer.Limits{CPUs: 0.5, MemoryBytes: 64 << 20}
	require.NoError(t, n.Launch(ctx, cfg))
	require.NoError(t, n.Launch(ctx, noopConfig("a")))
	require.NoError(t, n.Launch(ctx, noopConfig("c")))
	u, err := n.Usage(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, containerizer.Usage{Timestamp: epoch, Limits: cfg.Limits}, u)

	ids, err := n.Containers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, ids)
	require.NoError(t, n.Destroy(ctx, "a"))
	ids, err = n.Containers(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"b", "c"}, ids)

	recovered, err := n.Recover(ctx)
	require.NoError(t, err)
	assert.Empty(t, recovered)
	// A new no-op containerizer finds nothing of the old one's.
	recovered, err = containerizer.NewNoop(containerizer.NoopOptions{}).Recover(ctx)
	require.NoError(t, err)
	assert.Empty(t, recovered)
}

func TestNoopClose(t *testing.T) {
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Hour})
	ctx := testCtx(t)
	require.NoError(t, n.Launch(ctx, noopConfig("survivor")))
	errc := make(chan error, 1)
	go func() {
		_, err := n.Wait(ctx, "survivor")
		errc <- err
	}()
	requireRunning(t, n, "survivor")
	require.NoError(t, n.Close())
	require.ErrorIs(t, <-errc, containerizer.ErrClosed)
	require.NoError(t, n.Close(), "Close is idempotent")
	require.ErrorIs(t, n.Launch(ctx, noopConfig("late")), containerizer.ErrClosed)
	_, err := n.Wait(ctx, "survivor")
	require.ErrorIs(t, err, containerizer.ErrClosed)
	_, err = n.Containers(ctx)
	require.ErrorIs(t, err, containerizer.ErrClosed)
	_, err = n.Recover(ctx)
	require.ErrorIs(t, err, containerizer.ErrClosed)
}

func TestNoopConcurrentAndNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	fake := clock.NewFake(epoch)
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Second, Clock: fake})
	ctx := testCtx(t)
	const count = 200
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			id := fmt.Sprintf("c%03d", i)
			if !assert.NoError(t, n.Launch(ctx, noopConfig(id))) {
				return
			}
			if i%2 == 0 {
				// Half are destroyed while they run, half end by themselves.
				assert.NoError(t, n.Destroy(ctx, id))
			}
		})
	}
	wg.Wait()
	fake.Advance(time.Second)
	for i := 1; i < count; i += 2 {
		id := fmt.Sprintf("c%03d", i)
		term, err := n.Wait(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, 0, term.ExitCode, id)
		require.NoError(t, n.Destroy(ctx, id))
	}
	ids, err := n.Containers(ctx)
	require.NoError(t, err)
	assert.Empty(t, ids)
	require.NoError(t, n.Close())
	// Every run timer's goroutine has ended. (Polled here rather than with
	// require.Eventually, which runs its condition on a goroutine of its
	// own.)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left running")
}

func TestNoopRecordsVolumes(t *testing.T) {
	n := containerizer.NewNoop(containerizer.NoopOptions{RunTime: time.Hour})
	t.Cleanup(func() { _ = n.Close() })
	cfg := noopConfig("vols")
	cfg.Volumes = []containerizer.Volume{{HostPath: "/var/lib/apron/volumes/roles/db/v1", ContainerPath: "data"}}
	require.NoError(t, n.Launch(testCtx(t), cfg))
	got, err := n.Volumes("vols")
	require.NoError(t, err)
	assert.Equal(t, cfg.Volumes, got)
	_, err = n.Volumes("nope")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)

	bad := noopConfig("bad")
	bad.Volumes = []containerizer.Volume{{HostPath: "/h", ContainerPath: "/"}}
	err = n.Launch(testCtx(t), bad)
	require.ErrorIs(t, err, containerizer.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "root")
	require.NoError(t, n.Destroy(testCtx(t), "vols"))
}

// Package containerizertest is the conformance suite every
// [containerizer.Containerizer] passes: launch, wait, exit codes, sandbox
// files, environment, signals, destroy, usage, concurrency, users and
// recovery after a restart.
//
// An implementation's test runs it with a factory:
//
//	func TestConformance(t *testing.T) {
//		containerizertest.Run(t, func(t *testing.T, stateDir string) containerizer.Containerizer {
//			c, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: stateDir})
//			require.NoError(t, err)
//			return c
//		})
//	}
//
// The suite runs real processes with /bin/sh and common commands (sleep, env,
// id). It needs root only for the user test, which it skips otherwise. It
// never measures time: where it must see that something does not happen
// (a container that ignores SIGTERM), it waits a short bounded while.
package containerizertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
)

// Factory makes a containerizer that keeps its state in stateDir, a
// directory the suite made for it. The suite calls it more than once with
// the same stateDir to test recovery after a restart, and closes every
// containerizer it gets.
type Factory func(t *testing.T, stateDir string) containerizer.Containerizer

const (
	// timeout bounds every blocking call, so a broken implementation fails
	// instead of hanging the test binary.
	timeout = 60 * time.Second
	// stillRunning is how long a container that should keep running is
	// watched before the suite believes it does.
	stillRunning = 200 * time.Millisecond
	// eventually bounds the polls for effects that are asynchronous by
	// nature (a file a container writes, a process being reaped).
	eventually = 30 * time.Second
	tick       = 5 * time.Millisecond
)

// Run runs the conformance suite against the containerizers newContainerizer
// makes. Subtests run in parallel, each with its own containerizer.
func Run(t *testing.T, newContainerizer Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"LaunchWaitExitZero", testExitZero},
		{"ExitCode", testExitCode},
		{"ExecCommand", testExecCommand},
		{"ExecArgv0", testExecArgv0},
		{"ExecLooksUpPath", testExecLooksUpPath},
		{"ExecRelativeToSandbox", testExecRelativeToSandbox},
		{"LaunchFailed", testLaunchFailed},
		{"StdoutStderrAppended", testStdoutStderr},
		{"EnvironmentExact", testEnvironment},
		{"WorkingDirectoryIsSandbox", testWorkingDirectory},
		{"SandboxCreated", testSandboxCreated},
		{"VolumesInSandbox", testVolumes},
		{"VolumeAtAbsolutePath", testAbsoluteVolume},
		{"ImageUnsupportedOrRun", testImageRefusedClearly},
		{"SignalTerm", testSignalTerm},
		{"TrappedTermSurvivesSignalNotDestroy", testTrappedTerm},
		{"DestroyKillsChildren", testDestroyKillsChildren},
		{"DestroyKillsLeftoversOfEndedContainer", testDestroyKillsLeftovers},
		{"DestroyEnded", testDestroyEnded},
		{"DestroyConcurrent", testDestroyConcurrent},
		{"ManyWaiters", testManyWaiters},
		{"WaitHonoursContext", testWaitContext},
		{"UnknownContainer", testUnknown},
		{"DuplicateID", testDuplicate},
		{"InvalidConfig", testInvalidConfig},
		{"Usage", testUsage},
		{"Containers", testContainers},
		{"ConcurrentLaunches", testConcurrentLaunches},
		{"RunAsUser", testRunAsUser},
		{"Recover", testRecover},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newHarness(t, newContainerizer))
		})
	}
}

// harness is one subtest's containerizer and its helpers.
type harness struct {
	t        *testing.T
	c        containerizer.Containerizer
	newC     Factory
	stateDir string
	dir      string // parent of the sandboxes
}

func newHarness(t *testing.T, newC Factory) *harness {
	h := &harness{t: t, newC: newC, stateDir: t.TempDir(), dir: t.TempDir()}
	// Registered first, so it runs last: whatever a closed containerizer of
	// this subtest left running is recovered and destroyed.
	t.Cleanup(func() {
		c := newC(t, h.stateDir)
		if _, err := c.Recover(context.Background()); err != nil {
			t.Errorf("cleanup: recover: %v", err)
		}
		destroyAll(t, c)
	})
	h.c = h.open()
	return h
}

// open makes a containerizer on the subtest's state directory, destroyed
// and closed at the end of the subtest.
func (h *harness) open() containerizer.Containerizer {
	c := h.newC(h.t, h.stateDir)
	h.t.Cleanup(func() { destroyAll(h.t, c) })
	return c
}

func destroyAll(t *testing.T, c containerizer.Containerizer) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if ids, err := c.Containers(ctx); err == nil {
		for _, id := range ids {
			if err := c.Destroy(ctx, id); err != nil && !errors.Is(err, containerizer.ErrUnknownContainer) {
				t.Errorf("cleanup: destroy %s: %v", id, err)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("cleanup: close: %v", err)
	}
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// config returns a Config for id with its own sandbox.
func (h *harness) config(id string, cmd containerizer.Command) containerizer.Config {
	return containerizer.Config{
		ID:      id,
		Command: cmd,
		Sandbox: filepath.Join(h.dir, id),
		Env:     []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
	}
}

func (h *harness) launch(cfg containerizer.Config) {
	h.t.Helper()
	require.NoError(h.t, h.c.Launch(ctx(h.t), cfg), "launch %s", cfg.ID)
}

func (h *harness) run(id, script string) containerizer.Config {
	h.t.Helper()
	cfg := h.config(id, containerizer.ShellCommand(script))
	h.launch(cfg)
	return cfg
}

func (h *harness) wait(id string) containerizer.Termination {
	h.t.Helper()
	term, err := h.c.Wait(ctx(h.t), id)
	require.NoError(h.t, err, "wait %s", id)
	return term
}

// requireRunning checks that id has not ended after a short while.
func (h *harness) requireRunning(id string) {
	h.t.Helper()
	c, cancel := context.WithTimeout(context.Background(), stillRunning)
	defer cancel()
	term, err := h.c.Wait(c, id)
	require.ErrorIs(h.t, err, context.DeadlineExceeded, "container %s ended: %+v", id, term)
}

// waitInBackground calls Wait for a running container in a goroutine and
// returns what it gets. The goroutine has been scheduled, and given a short
// while to block in Wait, when it returns: Wait callers blocked when Destroy
// runs get the termination, but one that only calls Wait after the
// container is gone gets ErrUnknownContainer.
func (h *harness) waitInBackground(id string) <-chan containerizer.Termination {
	h.t.Helper()
	entered := make(chan struct{})
	waited := make(chan containerizer.Termination, 1)
	go func() {
		close(entered)
		term, err := h.c.Wait(ctx(h.t), id)
		assert.NoError(h.t, err, "wait %s", id)
		waited <- term
	}()
	<-entered
	h.requireRunning(id)
	return waited
}

// readFile polls until the sandbox file exists and is not empty, and
// returns its content.
func readFile(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	require.Eventually(t, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0 && b[len(b)-1] == '\n'
	}, eventually, tick, "waiting for %s", path)
	return string(b)
}

func requireExited(t *testing.T, term containerizer.Termination, code int) {
	t.Helper()
	assert.Equal(t, code, term.ExitCode, "exit code; termination %+v", term)
	assert.Equal(t, syscall.Signal(0), term.Signal, "signal; termination %+v", term)
	assert.Equal(t, containerizer.ReasonNone, term.Reason, "reason; termination %+v", term)
	assert.True(t, term.StatusKnown())
	assert.NotEmpty(t, term.Message)
}

func requireDestroyed(t *testing.T, term containerizer.Termination) {
	t.Helper()
	assert.Equal(t, containerizer.ReasonDestroyed, term.Reason, "reason; termination %+v", term)
	assert.Equal(t, -1, term.ExitCode, "exit code; termination %+v", term)
	assert.NotEmpty(t, term.Message)
}

func testExitZero(t *testing.T, h *harness) {
	h.run("true", "true")
	requireExited(t, h.wait("true"), 0)
}

func testExitCode(t *testing.T, h *harness) {
	h.run("exit3", "exit 3")
	requireExited(t, h.wait("exit3"), 3)
}

func testExecCommand(t *testing.T, h *harness) {
	h.launch(h.config("exec", containerizer.ExecCommand("/bin/sh", "-c", "exit 4")))
	requireExited(t, h.wait("exec"), 4)
}

func testExecArgv0(t *testing.T, h *harness) {
	cfg := h.config("argv0", containerizer.Command{Value: "/bin/sh", Args: []string{"custom-argv0", "-c", `echo "$0"`}})
	h.launch(cfg)
	requireExited(t, h.wait("argv0"), 0)
	assert.Equal(t, "custom-argv0\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
}

func testExecLooksUpPath(t *testing.T, h *harness) {
	cfg := h.config("path", containerizer.ExecCommand("sh", "-c", "exit 5"))
	cfg.Env = []string{"PATH=/nonexistent:/bin:/usr/bin"}
	h.launch(cfg)
	requireExited(t, h.wait("path"), 5)

	// Without PATH in the environment, the usual default.
	cfg = h.config("default-path", containerizer.ExecCommand("sh", "-c", "exit 6"))
	cfg.Env = nil
	h.launch(cfg)
	requireExited(t, h.wait("default-path"), 6)
}

func testExecRelativeToSandbox(t *testing.T, h *harness) {
	cfg := h.config("relative", containerizer.ExecCommand("./script.sh"))
	require.NoError(t, os.MkdirAll(cfg.Sandbox, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Sandbox, "script.sh"), []byte("#!/bin/sh\nexit 8\n"), 0o755))
	h.launch(cfg)
	requireExited(t, h.wait("relative"), 8)
}

func testLaunchFailed(t *testing.T, h *harness) {
	for _, cmd := range []containerizer.Command{
		containerizer.ExecCommand("/nonexistent/program"),
		containerizer.ExecCommand("apron-no-such-program"),
	} {
		err := h.c.Launch(ctx(t), h.config("fails", cmd))
		require.ErrorIs(t, err, containerizer.ErrLaunchFailed, "command %+v", cmd)
		assert.Contains(t, err.Error(), "fails", "the error names the container")
		_, err = h.c.Wait(ctx(t), "fails")
		require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
	}
	// The ID is free again.
	h.run("fails", "exit 0")
	requireExited(t, h.wait("fails"), 0)
}

func testStdoutStderr(t *testing.T, h *harness) {
	cfg := h.config("output", containerizer.ShellCommand("echo out; echo err >&2"))
	require.NoError(t, os.MkdirAll(cfg.Sandbox, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Sandbox, "stdout"), []byte("before\n"), 0o644))
	h.launch(cfg)
	requireExited(t, h.wait("output"), 0)
	assert.Equal(t, "before\nout\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
	assert.Equal(t, "err\n", readFile(t, filepath.Join(cfg.Sandbox, "stderr")))
}

func testEnvironment(t *testing.T, h *harness) {
	envPath, err := exec.LookPath("env")
	if err != nil {
		t.Skip("needs the env command:", err)
	}
	env := []string{"B=two words", "A=1", "EMPTY=", "EQUALS=a=b", "DUP=first", "DUP=second"}
	cfg := h.config("env", containerizer.ExecCommand(envPath))
	cfg.Env = env
	h.launch(cfg)
	requireExited(t, h.wait("env"), 0)
	got := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(cfg.Sandbox, "stdout")), "\n"), "\n")
	assert.Equal(t, env, got, "the environment is passed exactly, in order, duplicates kept")

	// No environment is an empty one, not the agent's.
	cfg = h.config("noenv", containerizer.ExecCommand(envPath))
	cfg.Env = nil
	h.launch(cfg)
	requireExited(t, h.wait("noenv"), 0)
	out, err := os.ReadFile(filepath.Join(cfg.Sandbox, "stdout"))
	require.NoError(t, err)
	assert.Empty(t, string(out))
}

func testWorkingDirectory(t *testing.T, h *harness) {
	cfg := h.run("cwd", "pwd -P; echo here > relative")
	requireExited(t, h.wait("cwd"), 0)
	want, err := filepath.EvalSymlinks(cfg.Sandbox)
	require.NoError(t, err)
	assert.Equal(t, want+"\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
	assert.Equal(t, "here\n", readFile(t, filepath.Join(cfg.Sandbox, "relative")))
}

func testSandboxCreated(t *testing.T, h *harness) {
	cfg := h.config("nested", containerizer.ShellCommand("echo ok"))
	cfg.Sandbox = filepath.Join(h.dir, "a", "b", "c")
	h.launch(cfg)
	requireExited(t, h.wait("nested"), 0)
	assert.Equal(t, "ok\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
}

// testVolumes: a volume's host directory is reachable at its container
// path, relative to the sandbox, and what the container writes there
// outlives it; a second container on the same sandbox sees the same data.
func testVolumes(t *testing.T, h *harness) {
	host := filepath.Join(h.dir, "volume")
	require.NoError(t, os.MkdirAll(host, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(host, "in"), []byte("hello\n"), 0o644))
	vols := []containerizer.Volume{{HostPath: host, ContainerPath: "data/vol"}}
	cfg := h.config("vol1", containerizer.ShellCommand("cat data/vol/in && echo world > data/vol/out"))
	cfg.Volumes = vols
	h.launch(cfg)
	requireExited(t, h.wait("vol1"), 0)
	assert.Equal(t, "hello\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
	assert.Equal(t, "world\n", readFile(t, filepath.Join(host, "out")), "written through to the host directory")

	again := h.config("vol2", containerizer.ShellCommand("cat data/vol/out"))
	again.Sandbox, again.Volumes = cfg.Sandbox, vols
	h.launch(again)
	requireExited(t, h.wait("vol2"), 0)
	assert.Equal(t, "hello\nworld\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
}

// testAbsoluteVolume: a volume at an absolute container path is either
// refused with ErrUnsupported (a containerizer without a mount namespace),
// leaving no container, or reachable at that path.
func testAbsoluteVolume(t *testing.T, h *harness) {
	host := filepath.Join(h.dir, "abs-volume")
	require.NoError(t, os.MkdirAll(host, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(host, "in"), []byte("hello\n"), 0o644))
	cfg := h.config("absvol", containerizer.ShellCommand("cat /apron-test-volume/in"))
	cfg.Volumes = []containerizer.Volume{{HostPath: host, ContainerPath: "/apron-test-volume"}}
	err := h.c.Launch(ctx(t), cfg)
	if errors.Is(err, containerizer.ErrUnsupported) {
		ids, err := h.c.Containers(ctx(t))
		require.NoError(t, err)
		assert.NotContains(t, ids, "absvol")
		return
	}
	require.NoError(t, err)
	requireExited(t, h.wait("absvol"), 0)
	assert.Equal(t, "hello\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
}

// testImageRefusedClearly: an image a containerizer cannot run is refused
// with ErrUnsupported, or, by one that runs images, fails to launch
// (ErrLaunchFailed) when it does not exist; either way no container is
// left.
func testImageRefusedClearly(t *testing.T, h *harness) {
	cfg := h.config("img", containerizer.ShellCommand("true"))
	cfg.Image = "127.0.0.1:1/apron/no-such-image:latest"
	err := h.c.Launch(ctx(t), cfg)
	require.Error(t, err)
	assert.True(t, errors.Is(err, containerizer.ErrUnsupported) || errors.Is(err, containerizer.ErrLaunchFailed), "%v", err)
	assert.Contains(t, err.Error(), "no-such-image", "the error names the image")
	ids, err := h.c.Containers(ctx(t))
	require.NoError(t, err)
	assert.NotContains(t, ids, "img")
}

func testSignalTerm(t *testing.T, h *harness) {
	h.run("sleeper", "sleep 600")
	require.NoError(t, h.c.Signal(ctx(t), "sleeper", syscall.SIGTERM))
	term := h.wait("sleeper")
	assert.Equal(t, syscall.SIGTERM, term.Signal, "termination %+v", term)
	assert.Equal(t, -1, term.ExitCode)
	assert.Equal(t, containerizer.ReasonNone, term.Reason)
	assert.True(t, term.StatusKnown())
	// Signalling a container that has ended is not an error.
	require.NoError(t, h.c.Signal(ctx(t), "sleeper", syscall.SIGTERM))
}

func testTrappedTerm(t *testing.T, h *harness) {
	// SIG_IGN is inherited across exec, so sleep ignores SIGTERM too.
	cfg := h.run("stubborn", "trap '' TERM; echo ready > ready; sleep 600")
	readFile(t, filepath.Join(cfg.Sandbox, "ready"))
	require.NoError(t, h.c.Signal(ctx(t), "stubborn", syscall.SIGTERM))
	h.requireRunning("stubborn")

	require.NoError(t, h.c.Destroy(ctx(t), "stubborn"))
	_, err := h.c.Wait(ctx(t), "stubborn")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer, "destroyed containers are forgotten")
}

func testDestroyKillsChildren(t *testing.T, h *harness) {
	cfg := h.run("parent", "sleep 600 & echo $! > bgpid; wait")
	bg := readProcess(t, filepath.Join(cfg.Sandbox, "bgpid"))

	waited := h.waitInBackground("parent")
	require.NoError(t, h.c.Destroy(ctx(t), "parent"))
	term := <-waited
	requireDestroyed(t, term)
	assert.Equal(t, syscall.SIGKILL, term.Signal, "termination %+v", term)
	bg.requireDead(t)
}

func testDestroyKillsLeftovers(t *testing.T, h *harness) {
	// The main process ends and leaves a background process behind.
	cfg := h.run("leaver", "sleep 600 & echo $! > bgpid")
	bg := readProcess(t, filepath.Join(cfg.Sandbox, "bgpid"))
	requireExited(t, h.wait("leaver"), 0)
	bg.requireAlive(t)
	require.NoError(t, h.c.Destroy(ctx(t), "leaver"))
	bg.requireDead(t)
}

func testDestroyEnded(t *testing.T, h *harness) {
	h.run("ended", "exit 2")
	requireExited(t, h.wait("ended"), 2)
	// Waiting again gives the same termination until Destroy.
	requireExited(t, h.wait("ended"), 2)
	require.NoError(t, h.c.Destroy(ctx(t), "ended"))
	_, err := h.c.Wait(ctx(t), "ended")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
	require.ErrorIs(t, h.c.Destroy(ctx(t), "ended"), containerizer.ErrUnknownContainer)
	ids, err := h.c.Containers(ctx(t))
	require.NoError(t, err)
	assert.NotContains(t, ids, "ended")
}

func testDestroyConcurrent(t *testing.T, h *harness) {
	h.run("target", "sleep 600")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = h.c.Destroy(ctx(t), "target") })
	}
	wg.Wait()
	succeeded := 0
	for i, err := range errs {
		// A call that began after another had removed the container finds
		// it unknown.
		if err == nil {
			succeeded++
		} else {
			assert.ErrorIs(t, err, containerizer.ErrUnknownContainer, "destroy %d", i)
		}
	}
	assert.Positive(t, succeeded)
	_, err := h.c.Wait(ctx(t), "target")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
}

func testManyWaiters(t *testing.T, h *harness) {
	h.run("waited", "sleep 600")
	const n = 8
	terms := make(chan containerizer.Termination, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			term, err := h.c.Wait(ctx(t), "waited")
			assert.NoError(t, err)
			terms <- term
		})
	}
	require.NoError(t, h.c.Signal(ctx(t), "waited", syscall.SIGKILL))
	wg.Wait()
	close(terms)
	for term := range terms {
		assert.Equal(t, syscall.SIGKILL, term.Signal, "termination %+v", term)
		assert.Equal(t, containerizer.ReasonNone, term.Reason, "a signal sent with Signal is not a destroy")
	}
	assert.Equal(t, syscall.SIGKILL, h.wait("waited").Signal, "Wait after the end")
}

func testWaitContext(t *testing.T, h *harness) {
	h.run("long", "sleep 600")
	c, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.c.Wait(c, "long")
		errc <- err
	}()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	c, cancel = context.WithCancel(context.Background())
	cancel()
	err := h.c.Launch(c, h.config("cancelled", containerizer.ShellCommand("true")))
	require.ErrorIs(t, err, context.Canceled, "Launch with a cancelled context")
	_, err = h.c.Wait(ctx(t), "cancelled")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
}

func testUnknown(t *testing.T, h *harness) {
	_, err := h.c.Wait(ctx(t), "nope")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
	assert.Contains(t, err.Error(), "nope", "the error names the container")
	require.ErrorIs(t, h.c.Signal(ctx(t), "nope", syscall.SIGTERM), containerizer.ErrUnknownContainer)
	require.ErrorIs(t, h.c.Destroy(ctx(t), "nope"), containerizer.ErrUnknownContainer)
	_, err = h.c.Usage(ctx(t), "nope")
	require.ErrorIs(t, err, containerizer.ErrUnknownContainer)
}

func testDuplicate(t *testing.T, h *harness) {
	h.run("dup", "sleep 600")
	err := h.c.Launch(ctx(t), h.config("dup", containerizer.ShellCommand("true")))
	require.ErrorIs(t, err, containerizer.ErrContainerExists)
	assert.Contains(t, err.Error(), "dup")
	require.NoError(t, h.c.Destroy(ctx(t), "dup"))

	// An ended container keeps its ID until it is destroyed.
	h.run("dup", "true")
	requireExited(t, h.wait("dup"), 0)
	require.ErrorIs(t, h.c.Launch(ctx(t), h.config("dup", containerizer.ShellCommand("true"))), containerizer.ErrContainerExists)
	require.NoError(t, h.c.Destroy(ctx(t), "dup"))
	h.run("dup", "exit 1")
	requireExited(t, h.wait("dup"), 1)
}

func testInvalidConfig(t *testing.T, h *harness) {
	good := func() containerizer.Config { return h.config("good", containerizer.ShellCommand("true")) }
	cases := map[string]func(*containerizer.Config){
		"empty ID":            func(c *containerizer.Config) { c.ID = "" },
		"ID with a slash":     func(c *containerizer.Config) { c.ID = "a/b" },
		"ID with a space":     func(c *containerizer.Config) { c.ID = "a b" },
		"ID ..":               func(c *containerizer.Config) { c.ID = ".." },
		"ID too long":         func(c *containerizer.Config) { c.ID = strings.Repeat("x", containerizer.MaxIDLength+1) },
		"no sandbox":          func(c *containerizer.Config) { c.Sandbox = "" },
		"relative sandbox":    func(c *containerizer.Config) { c.Sandbox = "relative/dir" },
		"empty command":       func(c *containerizer.Config) { c.Command = containerizer.Command{} },
		"empty shell command": func(c *containerizer.Config) { c.Command = containerizer.ShellCommand("") },
		"shell with args": func(c *containerizer.Config) {
			c.Command = containerizer.Command{Shell: true, Value: "true", Args: []string{"x"}}
		},
		"NUL in command":     func(c *containerizer.Config) { c.Command = containerizer.ShellCommand("true\x00") },
		"NUL in argument":    func(c *containerizer.Config) { c.Command = containerizer.ExecCommand("/bin/true", "a\x00b") },
		"env without =":      func(c *containerizer.Config) { c.Env = []string{"NOEQUALS"} },
		"env with empty key": func(c *containerizer.Config) { c.Env = []string{"=value"} },
		"NUL in env":         func(c *containerizer.Config) { c.Env = []string{"A=b\x00c"} },
		"unknown user":       func(c *containerizer.Config) { c.User = "apron-no-such-user" },
		"negative cpus":      func(c *containerizer.Config) { c.Limits.CPUs = -1 },
		"NaN cpus":           func(c *containerizer.Config) { c.Limits.CPUs = math.NaN() },
		"volume at the root": func(c *containerizer.Config) {
			c.Volumes = []containerizer.Volume{{HostPath: h.dir, ContainerPath: "/"}}
		},
		"volume path leaving the sandbox": func(c *containerizer.Config) {
			c.Volumes = []containerizer.Volume{{HostPath: h.dir, ContainerPath: "a/../../data"}}
		},
		"volume at the sandbox": func(c *containerizer.Config) {
			c.Volumes = []containerizer.Volume{{HostPath: h.dir, ContainerPath: "."}}
		},
		"relative volume host path": func(c *containerizer.Config) {
			c.Volumes = []containerizer.Volume{{HostPath: "host", ContainerPath: "data"}}
		},
	}
	for name, mutate := range cases {
		cfg := good()
		mutate(&cfg)
		err := h.c.Launch(ctx(t), cfg)
		require.ErrorIs(t, err, containerizer.ErrInvalidConfig, name)
		require.NotPanics(t, func() { _ = err.Error() })
	}
	ids, err := h.c.Containers(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, ids, "no invalid config left a container")
	// A valid ID may use every allowed byte and the longest length.
	cfg := good()
	cfg.ID = "Aa0_.-" + strings.Repeat("z", containerizer.MaxIDLength-6)
	cfg.Sandbox = filepath.Join(h.dir, "longest")
	h.launch(cfg)
	requireExited(t, h.wait(cfg.ID), 0)
}

func testUsage(t *testing.T, h *harness) {
	cfg := h.config("used", containerizer.ShellCommand("echo ready > ready; sleep 600"))
	cfg.Limits = containerizer.Limits{CPUs: 0.5, MemoryBytes: 64 << 20}
	h.launch(cfg)
	readFile(t, filepath.Join(cfg.Sandbox, "ready"))
	var u containerizer.Usage
	var err error
	require.Eventually(t, func() bool {
		u, err = h.c.Usage(ctx(t), "used")
		return err == nil && u.RSSBytes > 0 && u.Processes >= 1
	}, eventually, tick, "usage never showed a running process: last %+v", &u)
	assert.GreaterOrEqual(t, u.Threads, u.Processes)
	assert.Equal(t, cfg.Limits, u.Limits)
	assert.False(t, u.Timestamp.IsZero())
	assert.GreaterOrEqual(t, u.CPUUserSeconds, 0.0)
	assert.GreaterOrEqual(t, u.CPUSystemSeconds, 0.0)

	// An ended container still has a usage (of what is left of it).
	require.NoError(t, h.c.Signal(ctx(t), "used", syscall.SIGKILL))
	h.wait("used")
	_, err = h.c.Usage(ctx(t), "used")
	require.NoError(t, err)
}

func testContainers(t *testing.T, h *harness) {
	ids, err := h.c.Containers(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, ids)
	h.run("b", "sleep 600")
	h.run("a", "true")
	h.wait("a")
	ids, err = h.c.Containers(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, ids, "running and ended containers, sorted")
	require.NoError(t, h.c.Destroy(ctx(t), "a"))
	ids, err = h.c.Containers(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"b"}, ids)
}

func testConcurrentLaunches(t *testing.T, h *harness) {
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("c%02d", i)
			cfg := h.config(id, containerizer.ShellCommand(fmt.Sprintf("echo %d; exit %d", i, i%7)))
			if !assert.NoError(t, h.c.Launch(ctx(t), cfg)) {
				return
			}
			term, err := h.c.Wait(ctx(t), id)
			if assert.NoError(t, err) {
				assert.Equal(t, i%7, term.ExitCode, "container %s: %+v", id, term)
			}
			out, err := os.ReadFile(filepath.Join(cfg.Sandbox, "stdout"))
			assert.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("%d\n", i), string(out))
			assert.NoError(t, h.c.Destroy(ctx(t), id))
		})
	}
	wg.Wait()
	ids, err := h.c.Containers(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, ids)
}

func testRunAsUser(t *testing.T, h *harness) {
	if os.Geteuid() != 0 {
		t.Skip("running a container as another user needs root; this test runs as uid", os.Geteuid())
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("needs the user nobody:", err)
	}
	// The sandbox's parents must let nobody through: t.TempDir's do not.
	dir, err := os.MkdirTemp("", "apron-containerizertest-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))

	cfg := h.config("nobody", containerizer.ShellCommand("id -u; id -g; echo written > file"))
	cfg.Sandbox = filepath.Join(dir, "sandbox")
	cfg.User = "nobody"
	h.launch(cfg)
	requireExited(t, h.wait("nobody"), 0)
	assert.Equal(t, nobody.Uid+"\n"+nobody.Gid+"\n", readFile(t, filepath.Join(cfg.Sandbox, "stdout")))
	assert.Equal(t, "written\n", readFile(t, filepath.Join(cfg.Sandbox, "file")))
}

func testRecover(t *testing.T, h *harness) {
	running := h.run("running", "echo ready > ready; sleep 600")
	readFile(t, filepath.Join(running.Sandbox, "ready"))
	h.run("ended", "exit 7")
	requireExited(t, h.wait("ended"), 7)
	// The agent goes away; its containers stay.
	require.NoError(t, h.c.Close())

	c2 := h.open()
	ids, err := c2.Recover(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"ended", "running"}, ids)
	listed, err := c2.Containers(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{"ended", "running"}, listed)

	term, err := c2.Wait(ctx(t), "ended")
	require.NoError(t, err)
	if term.StatusKnown() {
		assert.Equal(t, 7, term.ExitCode, "termination %+v", term)
	}
	require.NoError(t, c2.Destroy(ctx(t), "ended"))

	u, err := c2.Usage(ctx(t), "running")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, u.Processes, 1, "usage of the recovered container")
	h2 := *h
	h2.c = c2

	waited := h2.waitInBackground("running")
	require.NoError(t, c2.Destroy(ctx(t), "running"))
	requireDestroyed(t, <-waited)

	// Nothing is recovered twice, and destroyed containers are gone for good.
	ids, err = c2.Recover(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, ids)
	require.NoError(t, c2.Close())
	c3 := h.open()
	ids, err = c3.Recover(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, ids)
}

func testClose(t *testing.T, h *harness) {
	h.run("survivor", "sleep 600")
	errc := make(chan error, 1)
	go func() {
		_, err := h.c.Wait(ctx(t), "survivor")
		errc <- err
	}()
	require.NoError(t, h.c.Close())
	require.ErrorIs(t, <-errc, containerizer.ErrClosed)
	require.NoError(t, h.c.Close(), "Close is idempotent")
	require.ErrorIs(t, h.c.Launch(ctx(t), h.config("late", containerizer.ShellCommand("true"))), containerizer.ErrClosed)
	_, err := h.c.Wait(ctx(t), "survivor")
	require.ErrorIs(t, err, containerizer.ErrClosed)
	_, err = h.c.Containers(ctx(t))
	require.ErrorIs(t, err, containerizer.ErrClosed)

	// The container outlived the closed containerizer.
	c2 := h.open()
	ids, err := c2.Recover(ctx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"survivor"}, ids)
	u, err := c2.Usage(ctx(t), "survivor")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, u.Processes, 1)
}

// process names one process by pid and start time, so a reused pid is not
// mistaken for it.
type process struct {
	pid        int
	startTicks string
}

// readProcess reads a pid a container wrote to a file.
func readProcess(t *testing.T, path string) process {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, path)))
	require.NoError(t, err)
	state, start, err := procState(pid)
	require.NoError(t, err, "pid %d", pid)
	require.NotEqual(t, "Z", state)
	return process{pid: pid, startTicks: start}
}

func (p process) alive() bool {
	state, start, err := procState(p.pid)
	return err == nil && start == p.startTicks && state != "Z"
}

func (p process) requireAlive(t *testing.T) {
	t.Helper()
	require.True(t, p.alive(), "process %d is gone", p.pid)
}

func (p process) requireDead(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return !p.alive() }, eventually, tick, "process %d still runs", p.pid)
}

// procState returns the state and start time (fields 3 and 22) of
// /proc/<pid>/stat.
func procState(pid int) (state, start string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", "", fmt.Errorf("malformed stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", "", fmt.Errorf("short stat %q", b)
	}
	return f[0], f[19], nil
}

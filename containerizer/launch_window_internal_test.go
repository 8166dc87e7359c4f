//go:build linux

package containerizer

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// launchingRecord journals what start writes before the fork.
func launchingRecord(t *testing.T, stateDir, id, sandbox string, reaper bool) {
	t.Helper()
	j, _, err := openJournal(stateDir)
	require.NoError(t, err)
	defer j.close()
	require.NoError(t, j.launched(&checkpoint{Version: checkpointVersion, ID: id, BootID: readBootID(), Sandbox: sandbox, Reaper: reaper, LaunchTicks: bootTicks()}))
}

// An agent that dies after the fork but before it recorded the pid: the
// next containerizer finds the process by its session and sandbox and
// watches it, instead of calling the container lost while it runs on.
func TestRecoverProcessForkedBeforeItsPidWasRecorded(t *testing.T) {
	stateDir, sandbox := t.TempDir(), t.TempDir()
	launchingRecord(t, stateDir, "window", sandbox, false)
	// The fork the dead agent made: a session leader in the sandbox.
	cmd := exec.Command("/bin/sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; exit 5")
	cmd.Dir = sandbox
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())

	p := testProcess(t, stateDir)
	ids, err := p.Recover(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"window"}, ids)
	u, err := p.Usage(testCtx(t), "window")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, u.Processes, 1, "watched as running")
	require.NoError(t, os.WriteFile(filepath.Join(sandbox, "go"), nil, 0o644))
	term, err := p.Wait(testCtx(t), "window")
	require.NoError(t, err)
	// Still this test's child, so its status is known.
	assert.Equal(t, 5, term.ExitCode, "%+v", term)
}

// The same through the reaper, which knows the container's process by ID.
func TestRecoverReapedProcessForkedBeforeItsPidWasRecorded(t *testing.T) {
	stateDir, sandbox := t.TempDir(), t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	argv := []string{exe, "reaper", stateDir}
	launchingRecord(t, stateDir, "window", sandbox, true)
	rc, err := newReaperClient(stateDir, argv, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	devNull, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	pid, pidfd, err := rc.start("window", "/bin/sh", []string{"sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; exit 6"}, nil, sandbox, nil, false, [3]int{devNull, devNull, devNull})
	require.NoError(t, err)
	unix.Close(pidfd)
	unix.Close(devNull)
	rc.close()
	require.Positive(t, pid)

	p := testProcess(t, stateDir, func(o *ProcessOptions) { o.Reaper = argv })
	ids, err := p.Recover(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"window"}, ids)
	require.NoError(t, os.WriteFile(filepath.Join(sandbox, "go"), nil, 0o644))
	term, err := p.Wait(testCtx(t), "window")
	require.NoError(t, err)
	assert.Equal(t, 6, term.ExitCode, "%+v", term)
}

// A launch recorded whose process never started ends at recovery, with a
// message saying so.
func TestRecoverLaunchThatNeverStarted(t *testing.T) {
	stateDir, sandbox := t.TempDir(), t.TempDir()
	launchingRecord(t, stateDir, "never", sandbox, false)
	p := testProcess(t, stateDir)
	ids, err := p.Recover(testCtx(t))
	require.NoError(t, err)
	require.Equal(t, []string{"never"}, ids)
	term, err := p.Wait(testCtx(t), "never")
	require.NoError(t, err)
	assert.False(t, term.StatusKnown())
	assert.Contains(t, term.Message, "while launching")
}

//go:build linux

package containerizer_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/containerizertest"
	"github.com/apronhq/apron/internal/clock"
)

const diskWait = 30 * time.Second

func newDisk(t testing.TB, dir string, clk clock.Clock, enforce bool) *containerizer.Disk {
	t.Helper()
	d, err := containerizer.NewDisk(newProcess(t, filepath.Join(dir, "process")), containerizer.DiskOptions{
		StateDir: filepath.Join(dir, "disk"),
		Interval: time.Second,
		Enforce:  enforce,
		Clock:    clk,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	return d
}

// The wrapper keeps every promise of the interface.
func TestDiskConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the conformance suite runs for the process containerizer itself")
	}
	containerizertest.Run(t, func(t *testing.T, stateDir string) containerizer.Containerizer {
		return newDisk(t, stateDir, nil, true)
	})
}

// writer is a container that writes mb MiB into its sandbox, then waits.
func writer(id, sandbox string, mb int, quota uint64) containerizer.Config {
	return containerizer.Config{
		ID:      id,
		Sandbox: sandbox,
		Command: containerizer.ShellCommand("head -c " + strconv.Itoa(mb<<20) + " /dev/zero > big && sync big 2>/dev/null; touch written; exec sleep 300"),
		Env:     []string{"PATH=/usr/bin:/bin"},
		Limits:  containerizer.Limits{DiskBytes: quota},
	}
}

// tick advances clk by one interval once the watcher waits on it, and
// waits until a measure of id has been taken.
func tickUntilMeasured(t *testing.T, clk *clock.Fake, d *containerizer.Disk, id string, min uint64) containerizer.Usage {
	t.Helper()
	var u containerizer.Usage
	require.Eventually(t, func() bool {
		clk.Advance(time.Second)
		var err error
		u, err = d.Usage(context.Background(), id)
		return err == nil && u.DiskUsedBytes >= min
	}, diskWait, 20*time.Millisecond, "a measure of %s reaching %d bytes", id, min)
	return u
}

func waitDiskFile(t *testing.T, p string) {
	t.Helper()
	require.Eventually(t, func() bool { _, err := os.Stat(p); return err == nil }, diskWait, 10*time.Millisecond, "%s written", p)
}

func TestDiskQuotaEnforced(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Unix(1e9, 0))
	d := newDisk(t, dir, clk, true)
	defer d.Close()
	ctx := context.Background()
	sb := filepath.Join(dir, "sandbox")
	require.NoError(t, d.Launch(ctx, writer("hog", sb, 3, 1<<20)))
	waitDiskFile(t, filepath.Join(sb, "written"))
	tickUntilMeasured(t, clk, d, "hog", 3<<20)

	wctx, cancel := context.WithTimeout(ctx, diskWait)
	defer cancel()
	term, err := d.Wait(wctx, "hog")
	require.NoError(t, err)
	assert.Equal(t, containerizer.ReasonDiskLimit, term.Reason)
	assert.Equal(t, syscall.SIGKILL, term.Signal)
	assert.Regexp(t, `^Disk usage \([0-9]+(B|KB|MB)\) exceeds quota \(1MB\)$`, term.Message)
	require.NoError(t, d.Destroy(ctx, "hog"))
	ents, err := os.ReadDir(filepath.Join(dir, "disk"))
	require.NoError(t, err)
	assert.Empty(t, ents, "the checkpoint goes with the container")
}

func TestDiskQuotaOnlyReportedWithoutEnforcement(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Unix(1e9, 0))
	d := newDisk(t, dir, clk, false)
	defer d.Close()
	ctx := context.Background()
	sb := filepath.Join(dir, "sandbox")
	require.NoError(t, d.Launch(ctx, writer("hog", sb, 3, 1<<20)))
	waitDiskFile(t, filepath.Join(sb, "written"))
	u := tickUntilMeasured(t, clk, d, "hog", 3<<20)
	assert.Equal(t, uint64(1<<20), u.Limits.DiskBytes)
	clk.Advance(5 * time.Second)

	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := d.Wait(wctx, "hog")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the container runs on over its quota")
	require.NoError(t, d.Destroy(ctx, "hog"))
}

// A container without a disk quota is not measured.
func TestDiskNoQuotaNotWatched(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Unix(1e9, 0))
	d := newDisk(t, dir, clk, true)
	defer d.Close()
	ctx := context.Background()
	sb := filepath.Join(dir, "sandbox")
	require.NoError(t, d.Launch(ctx, writer("free", sb, 1, 0)))
	waitDiskFile(t, filepath.Join(sb, "written"))
	clk.Advance(3 * time.Second)
	u, err := d.Usage(ctx, "free")
	require.NoError(t, err)
	assert.Zero(t, u.DiskUsedBytes)
	assert.Zero(t, u.Limits.DiskBytes)
	require.NoError(t, d.Destroy(ctx, "free"))
}

// A wrapper made after a restart watches the recovered containers and
// enforces their quotas.
func TestDiskQuotaAfterRecover(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	sb := filepath.Join(dir, "sandbox")
	cfg := containerizer.Config{
		ID: "late", Sandbox: sb, Env: []string{"PATH=/usr/bin:/bin"},
		Command: containerizer.ShellCommand("while [ ! -e go ]; do sleep 0.05; done; head -c 3145728 /dev/zero > big; touch written; exec sleep 300"),
		Limits:  containerizer.Limits{DiskBytes: 1 << 20},
	}
	first := newDisk(t, dir, clock.NewFake(time.Unix(1e9, 0)), true)
	require.NoError(t, first.Launch(ctx, cfg))
	require.NoError(t, first.Close())

	clk := clock.NewFake(time.Unix(1e9, 0))
	d := newDisk(t, dir, clk, true)
	defer d.Close()
	ids, err := d.Recover(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"late"}, ids)
	require.NoError(t, os.WriteFile(filepath.Join(sb, "go"), nil, 0o644))
	waitDiskFile(t, filepath.Join(sb, "written"))
	tickUntilMeasured(t, clk, d, "late", 3<<20)
	wctx, cancel := context.WithTimeout(ctx, diskWait)
	defer cancel()
	term, err := d.Wait(wctx, "late")
	require.NoError(t, err)
	assert.Equal(t, containerizer.ReasonDiskLimit, term.Reason)
	require.NoError(t, d.Destroy(ctx, "late"))
}

// The same wrapper watches the Linux containerizer's containers: a task
// in its namespaces and cgroups writing past its quota is killed whole.
func TestDiskQuotaLinux(t *testing.T) {
	needLinux(t)
	dir := t.TempDir()
	clk := clock.NewFake(time.Unix(1e9, 0))
	d, err := containerizer.NewDisk(newLinux(t, filepath.Join(dir, "linux")), containerizer.DiskOptions{
		StateDir: filepath.Join(dir, "disk"), Interval: time.Second, Enforce: true, Clock: clk,
	})
	require.NoError(t, err)
	defer d.Close()
	destroyOnCleanup(t, d)
	ctx := linuxCtx(t)
	sb := filepath.Join(dir, "sandbox")
	require.NoError(t, d.Launch(ctx, writer("hog", sb, 3, 1<<20)))
	waitDiskFile(t, filepath.Join(sb, "written"))
	tickUntilMeasured(t, clk, d, "hog", 3<<20)
	term, err := d.Wait(ctx, "hog")
	require.NoError(t, err)
	assert.Equal(t, containerizer.ReasonDiskLimit, term.Reason)
	assert.Contains(t, term.Message, "exceeds quota (1MB)")
	// The cgroup statistics still reach through the wrapper.
	_, err = d.Stats(ctx, "hog")
	require.NoError(t, err)
	require.NoError(t, d.Destroy(ctx, "hog"))
}

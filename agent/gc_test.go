package agent_test

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/recordio"
	"github.com/apronhq/apron/resources"
)

// gcDisk is a DiskUsage whose answer the test sets.
type gcDisk struct{ bits atomic.Uint64 }

func (d *gcDisk) set(usage float64) { d.bits.Store(math.Float64bits(usage)) }
func (d *gcDisk) usage(string) (float64, error) {
	return math.Float64frombits(d.bits.Load()), nil
}

const gcDelay = time.Hour

// gcHarness is a harness whose fake clock starts at the real time, so the
// directories' real mtimes, which a restarted agent schedules by, agree
// with it; its master pings rarely; its disk is empty, and disk checks come every minute.
func gcHarness(t *testing.T, configure ...func(*agent.Config)) (*harness, *gcDisk) {
	t.Helper()
	disk := &gcDisk{}
	h := &harness{t: t, fm: &fakeMaster{autoAck: true}, clk: clock.NewFake(time.Now()), dir: t.TempDir()}
	// The tests advance the clock by days: the master must not seem gone.
	h.fm.setPingInterval(1e7)
	h.start(append([]func(*agent.Config){func(c *agent.Config) {
		c.GCDelay = gcDelay
		c.DiskWatchInterval = time.Minute
		c.DiskUsage = disk.usage
	}}, configure...)...)
	return h, disk
}

// noDiskWatch leaves the disk unwatched, so only GCDelay counts.
func noDiskWatch(c *agent.Config) { c.DiskWatchInterval = 1000 * gcDelay }

// settle lets the agent's loop run the timers the clock has reached: a
// request it answers after the turn that ran them. Removals that start
// then are renames on the loop, so a path still there after settle was not
// scheduled to go.
func (h *harness) gcSettle() {
	h.t.Helper()
	for range 2 {
		_, err := h.a.State(context.Background())
		require.NoError(h.t, err)
	}
}

// advance moves the fake clock and lets the agent act on it.
func (h *harness) gcAdvance(d time.Duration) {
	h.t.Helper()
	h.clk.Advance(d)
	h.gcSettle()
}

func (h *harness) gcFwDir() string {
	return filepath.Join(h.dir, "agents", "agent-1", "frameworks", "fw-1")
}

func (h *harness) gcExecDir(execID string) string {
	return filepath.Join(h.gcFwDir(), "executors", execID)
}

// runDir is the one run of an executor.
func (h *harness) gcRunDir(execID string) string {
	h.t.Helper()
	all, err := filepath.Glob(filepath.Join(h.gcExecDir(execID), "runs", "*"))
	require.NoError(h.t, err)
	var matches []string
	for _, m := range all {
		if !strings.HasPrefix(filepath.Base(m), ".apron-gc-") { // a run being removed
			matches = append(matches, m)
		}
	}
	require.Len(h.t, matches, 1, "one run of executor %s", execID)
	return matches[0]
}

// finish runs a command task to its acknowledged end: its executor run is
// forgotten, and its sandbox scheduled.
func (h *harness) gcFinish(id string) string {
	h.t.Helper()
	h.fm.push(runTask(commandTask(id, "echo hi > out")))
	h.fm.waitUpdate(h.t, id, mesospb.TASK_FINISHED)
	h.gcWaitForgotten(id)
	return h.gcRunDir(id)
}

// waitForgotten waits until the agent has forgotten the executor.
func (h *harness) gcWaitForgotten(execID string) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		for _, fw := range h.state().Frameworks {
			for _, e := range fw.Executors {
				if e.Info.ExecutorID.Value == execID {
					return false
				}
			}
		}
		return true
	}, waitFor, tick, "executor %s forgotten", execID)
}

func gcWaitGone(t *testing.T, path string) {
	t.Helper()
	require.Eventually(t, func() bool { _, err := os.Lstat(path); return os.IsNotExist(err) }, waitFor, tick, "%s removed", path)
}

// noTrash checks that nothing moved aside for removal is left in dir.
func gcNoTrash(t *testing.T, dir string) {
	t.Helper()
	require.Eventually(t, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, ".apron-gc-*"))
		return len(m) == 0
	}, waitFor, tick, "trash left in %s", dir)
}

// A finished task's sandbox is removed GCDelay after its executor was
// forgotten, not before; its executor's directory with it, and its
// framework's too, as the framework has nothing else here.
func TestGCRemovesSandboxAfterDelay(t *testing.T) {
	h, _ := gcHarness(t, noDiskWatch)
	h.waitRegistered()
	sandbox := h.gcFinish("t1")
	require.FileExists(t, filepath.Join(sandbox, "out"))
	_, text := get(t, h, "/metrics")
	assert.Contains(t, text, "apron_agent_gc_paths_pending 3\n", "the run, its executor's and its framework's directories")
	assert.Contains(t, text, "apron_agent_gc_paths_scheduled_total 3\n")

	h.gcAdvance(gcDelay - time.Second)
	assert.DirExists(t, sandbox, "not before GCDelay")
	assert.DirExists(t, h.gcFwDir())

	h.gcAdvance(time.Second)
	gcWaitGone(t, sandbox)
	gcWaitGone(t, h.gcExecDir("t1"))
	gcWaitGone(t, h.gcFwDir())
	assert.DirExists(t, filepath.Join(h.dir, "agents", "agent-1"), "the agent's own directory stays")
	gcNoTrash(t, filepath.Join(h.dir, "agents", "agent-1", "frameworks"))
	require.Eventually(t, func() bool {
		_, text := get(t, h, "/metrics")
		return strings.Contains(text, `apron_agent_gc_path_removals_total{result="succeeded"} 3`+"\n") &&
			strings.Contains(text, "apron_agent_gc_paths_pending 0\n")
	}, waitFor, tick)
	ms := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_METRICS.Enum()}).GetMetrics.Metrics
	names := map[string]float64{}
	for _, m := range ms {
		names[m.Name] = m.GetValue()
	}
	assert.Equal(t, 3.0, names["gc/path_removals_succeeded"])
	assert.Equal(t, 0.0, names["gc/path_removals_failed"])
	assert.Contains(t, names, "gc/path_removals_pending")
	flags := map[string]string{}
	for _, f := range operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_FLAGS.Enum()}).GetFlags.Flags {
		flags[f.Name] = f.GetValue()
	}
	assert.Equal(t, "1hrs", flags["gc_delay"])
	assert.Equal(t, "0.1", flags["gc_disk_headroom"])
	assert.Equal(t, "1000hrs", flags["disk_watch_interval"])
}

// The framework's directory goes GCDelay after its last executor, and a
// framework or executor ID that comes back takes its directory off the
// schedule.
func TestGCFrameworkAfterLastExecutor(t *testing.T) {
	h, _ := gcHarness(t, noDiskWatch)
	h.waitRegistered()
	s1 := h.gcFinish("t1")

	h.gcAdvance(gcDelay / 2)
	s2 := h.gcFinish("t2") // unschedules the framework's directory, then schedules it again

	h.gcAdvance(gcDelay / 2)
	gcWaitGone(t, s1)
	gcWaitGone(t, h.gcExecDir("t1"))
	assert.DirExists(t, s2)
	assert.DirExists(t, h.gcFwDir(), "the framework's directory waits for its last executor's")

	h.gcAdvance(gcDelay/2 - time.Second)
	assert.DirExists(t, s2)
	assert.DirExists(t, h.gcFwDir())
	h.gcAdvance(time.Second)
	gcWaitGone(t, s2)
	gcWaitGone(t, h.gcFwDir())
}

// An executor ID used again: its directory, scheduled when its first run
// was forgotten, stays for the new run; only the old run goes.
func TestGCExecutorReused(t *testing.T) {
	h, _ := gcHarness(t, noDiskWatch)
	h.waitRegistered()
	s1 := h.gcFinish("t1")
	h.gcAdvance(gcDelay / 2)

	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	require.Eventually(t, func() bool { return len(h.fm.updates("t1")) == 5 }, waitFor, tick, "the second run is RUNNING")
	h.gcAdvance(gcDelay / 2)
	gcWaitGone(t, s1)
	s2 := h.gcRunDir("t1")
	h.gcAdvance(10 * gcDelay)
	assert.DirExists(t, s2, "the live run's sandbox stays")

	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	h.gcWaitForgotten("t1")
	h.gcAdvance(gcDelay)
	gcWaitGone(t, s2)
	gcWaitGone(t, h.gcFwDir())
}

// The fuller the disk, the sooner: what was scheduled longer ago than
// GCDelay × (1 − headroom − usage) goes at the next disk check.
func TestGCDiskPressureShortensDelay(t *testing.T) {
	h, disk := gcHarness(t)
	h.waitRegistered()
	disk.set(0.5) // keep for 0.4 × GCDelay = 24 min
	sandbox := h.gcFinish("t1")

	h.gcAdvance(20 * time.Minute)
	h.gcAdvance(time.Minute) // a disk check at 21 min
	assert.DirExists(t, sandbox, "younger than 24 min")
	h.gcAdvance(4 * time.Minute) // a disk check at 25 min
	gcWaitGone(t, sandbox)

	// Past 1 − headroom, nothing is kept.
	disk.set(0.95)
	s2 := h.gcFinish("t2")
	h.gcAdvance(time.Minute)
	gcWaitGone(t, s2)
	gcWaitGone(t, h.gcFwDir())

	// An empty disk keeps paths for 0.9 × GCDelay (the headroom), as
	// Mesos's formula does.
	disk.set(0)
	s3 := h.gcFinish("t3")
	h.gcAdvance(gcDelay*9/10 - time.Minute)
	assert.DirExists(t, s3)
	h.gcAdvance(2 * time.Minute)
	gcWaitGone(t, s3)
}

// However full the disk and however long, the sandbox of a live executor
// stays, and so does that of a terminated one whose tasks' updates are not
// acknowledged; once they are, it goes.
func TestGCNeverRemovesLiveSandbox(t *testing.T) {
	h, disk := gcHarness(t)
	disk.set(1)
	h.fm.setAutoAck(false)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("live", "sleep 1000")))
	h.fm.waitUpdate(t, "live", mesospb.TASK_STARTING)
	h.fm.push(runTask(commandTask("unacked", "echo hi")))
	h.fm.waitUpdate(t, "unacked", mesospb.TASK_STARTING)
	require.Eventually(t, func() bool {
		for _, e := range h.state().Frameworks[0].Executors {
			if e.Info.ExecutorID.Value == "unacked" {
				return e.Tasks[0].GetState() == mesospb.TASK_FINISHED
			}
		}
		return false
	}, waitFor, tick)
	live, unacked := h.gcRunDir("live"), h.gcRunDir("unacked")

	for range 30 {
		h.gcAdvance(gcDelay)
	}
	assert.DirExists(t, live)
	assert.DirExists(t, unacked)

	// The framework acknowledges what it missed: the resent updates are
	// acknowledged as they come, and the finished executor is forgotten.
	h.fm.setAutoAck(true)
	for range 10 {
		h.gcAdvance(10 * time.Minute) // the update retry, at its longest
	}
	h.gcWaitForgotten("unacked")
	h.gcAdvance(time.Minute)
	gcWaitGone(t, unacked)
	assert.DirExists(t, live)
}

// After a restart, the sandboxes the old agent had scheduled are
// scheduled again by their mtimes, as are the directories of an earlier
// agent ID; a live task's sandbox stays; a tree an old agent had moved
// aside for removal goes at once.
func TestGCRecoverySchedulesLeftovers(t *testing.T) {
	h, _ := gcHarness(t, noDiskWatch)
	h.waitRegistered()
	done := h.gcFinish("done")
	h.fm.push(runTask(commandTask("live", "sleep 1000")))
	h.fm.waitUpdate(t, "live", mesospb.TASK_RUNNING)
	live := h.gcRunDir("live")

	// What an agent of another ID left, last touched now; and a half
	// removed tree.
	old := filepath.Join(h.dir, "agents", "old-agent")
	oldRun := filepath.Join(old, "frameworks", "fw-0", "executors", "e", "runs", "r")
	require.NoError(t, os.MkdirAll(oldRun, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(oldRun, "stdout"), []byte("old"), 0o644))
	trash := filepath.Join(h.gcExecDir("done"), "runs", ".apron-gc-x-1")
	require.NoError(t, os.MkdirAll(filepath.Join(trash, "sub"), 0o755))
	now := h.clk.Now()
	for _, p := range []string{oldRun, filepath.Dir(oldRun), filepath.Dir(filepath.Dir(oldRun)), old,
		filepath.Join(old, "frameworks", "fw-0"), filepath.Join(old, "frameworks", "fw-0", "executors")} {
		require.NoError(t, os.Chtimes(p, now, now))
	}

	h.gcAdvance(gcDelay / 2)
	h.stop()
	h.start(func(c *agent.Config) { c.GCDelay = gcDelay; c.DiskWatchInterval = 1000 * gcDelay })
	h.waitRegistered()
	gcWaitGone(t, trash)

	h.gcAdvance(gcDelay/2 - time.Minute)
	assert.DirExists(t, done, "kept for GCDelay from its executor's end, across the restart")
	assert.DirExists(t, oldRun)
	h.gcAdvance(2 * time.Minute)
	gcWaitGone(t, done)
	gcWaitGone(t, h.gcExecDir("done"))
	gcWaitGone(t, old)
	assert.DirExists(t, live, "the live task's sandbox stays")

	h.gcAdvance(10 * gcDelay)
	assert.DirExists(t, live)
	h.fm.push(killTask("live"))
	h.fm.waitUpdate(t, "live", mesospb.TASK_KILLED)
	h.gcWaitForgotten("live")
	h.gcAdvance(gcDelay)
	gcWaitGone(t, live)
	gcWaitGone(t, h.gcFwDir())
}

// A persistent volume is a link in the sandbox: collecting the sandbox
// unlinks it and leaves the volume's data alone.
func TestGCKeepsVolumeData(t *testing.T) {
	h, disk := gcHarness(t)
	h.waitRegistered()
	v := persistentVolume("disk:100", "db", "v1", "data")
	reserved := dynReserved("cpus:1;mem:128", "db")
	h.fm.push(checkpointEvent(reserved.Add(v)))
	vol := filepath.Join(h.dir, "volumes", "roles", "db", "v1")
	require.Eventually(t, func() bool { return exists(vol) }, waitFor, tick)

	task := commandTask("w", "mkdir -p data/sub && echo kept > data/sub/file")
	task.Resources = reserved.Add(v).ToProto()
	h.fm.push(runTask(task))
	h.fm.waitUpdate(t, "w", mesospb.TASK_FINISHED)
	h.gcWaitForgotten("w")
	sandbox := h.gcRunDir("w")
	link, err := os.Readlink(filepath.Join(sandbox, "data"))
	require.NoError(t, err)
	assert.Equal(t, vol, link)

	disk.set(1)
	h.gcAdvance(time.Minute)
	gcWaitGone(t, sandbox)
	gcWaitGone(t, h.gcFwDir())
	gcNoTrash(t, filepath.Dir(h.gcFwDir())) // all removed, not only moved aside
	b, err := os.ReadFile(filepath.Join(vol, "sub", "file"))
	require.NoError(t, err, "the volume's data survives its sandbox")
	assert.Equal(t, "kept\n", string(b))
	rs, err := resources.FromProto(h.a.Info().Resources)
	require.NoError(t, err)
	assert.Len(t, rs.PersistentVolumes(), 1)
}

func TestGCConfigValidation(t *testing.T) {
	for _, c := range []agent.Config{
		{GCDelay: -time.Second},
		{DiskWatchInterval: -time.Second},
		{GCDiskHeadroom: -0.1},
		{GCDiskHeadroom: 1.5},
		{GCDiskHeadroom: math.NaN()},
	} {
		c.Master, c.WorkDir = &fakeMaster{}, t.TempDir()
		_, err := agent.New(c)
		assert.ErrorIs(t, err, agent.ErrInvalidConfig, "%+v", c)
	}
	_, err := agent.New(agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir(), GCDiskHeadroom: 1})
	assert.NoError(t, err)
}

// A task whose end was acknowledged just before the agent stopped (its log
// holds the acknowledgement, but was not removed yet) is forgotten by the
// next agent, so its executor run is too and its sandbox is collected.
func TestGCRecoveryForgetsAcknowledgedTask(t *testing.T) {
	h, _ := gcHarness(t, noDiskWatch)
	h.fm.setAutoAck(false)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "echo hi")))
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].Tasks[0].GetState() == mesospb.TASK_FINISHED
	}, waitFor, tick)
	sandbox := h.gcRunDir("t1")
	h.stop()

	// Acknowledge every update in the task's log, as the agent would have.
	logPath := filepath.Join(h.dir, "meta", "tasks", "fw-1", "t1.log")
	f, err := os.Open(logPath)
	require.NoError(t, err)
	var acks bytes.Buffer
	r, w := recordio.NewReader(f, 0), recordio.NewWriter(&acks)
	for {
		rec, err := r.ReadRecord()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if rec[0] == 'U' {
			var u internalpb.Call_StatusUpdate
			require.NoError(t, u.Unmarshal(rec[1:]))
			require.NoError(t, w.WriteRecord(append([]byte{'A'}, u.Status.UUID...)))
		}
	}
	f.Close()
	f, err = os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(acks.Bytes())
	require.NoError(t, err)
	require.NoError(t, f.Close())

	h.start(func(c *agent.Config) { c.GCDelay = gcDelay; c.DiskWatchInterval = 1000 * gcDelay })
	h.waitRegistered()
	s := h.state()
	assert.Empty(t, s.Frameworks, "the executor run and its framework are forgotten")
	require.Len(t, s.CompletedTasks, 1)
	assert.Equal(t, mesospb.TASK_FINISHED, s.CompletedTasks[0].GetState())
	h.gcAdvance(gcDelay + time.Minute)
	gcWaitGone(t, sandbox)
	gcWaitGone(t, h.gcFwDir())
}

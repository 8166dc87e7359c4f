package agent

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/apronhq/apron/internal/agentcore"
)

// Sandbox garbage collection, as Mesos's agent does it.
//
// An executor run's sandbox stays while the run lives and while any of its
// tasks has a status update the master has not acknowledged: the run is
// then forgotten (by the core's tables; see Agent.forgotten), and its
// sandbox is scheduled for removal Config.GCDelay later (Mesos's
// --gc_delay, a week). The executor's directory (.../executors/<ex>) is
// scheduled with it when no
// other run of that executor ID is known, and the framework's directory
// (.../frameworks/<fw>) when the framework is forgotten, which is after its
// last executor. A path is stamped (its mtime set to the agent clock's now)
// when it is scheduled, so that a restarted agent, which does not know the
// old schedule, finds it again in the directory's mtime. A new executor run
// unschedules every scheduled path on the way to its sandbox (an executor
// ID or a framework that comes back), as Mesos does when it launches an
// executor.
//
// Every Config.DiskWatchInterval (Mesos's --disk_watch_interval, a minute)
// the agent measures how full the work directory's file system is
// (Config.DiskUsage, statfs by default) and removes at once every
// scheduled path older than
//
//	GCDelay × max(0, 1 − GCDiskHeadroom − usage)
//
// so the fuller the disk, the shorter sandboxes are kept; with usage at or
// above 1 − GCDiskHeadroom everything scheduled goes.
//
// After a restart the agent walks <work_dir>/agents: every agent, framework,
// executor and run directory that holds no sandbox of a recovered executor
// run is scheduled again, at its mtime plus GCDelay (the latest mtime
// within, for a directory holding others), so nothing leaks across restarts
// and nothing goes earlier than it would have. Directories of earlier agent
// IDs (after an agent shutdown, or a run whose checkpoints were lost) are
// collected so too, as Mesos collects old agent directories.
//
// Removal is safe against what a sandbox may hold. The path must lie under
// <work_dir>/agents, and no directory between there and it may be a
// symbolic link; the path itself, if a link, is unlinked, not followed.
// Persistent volumes are symbolic links in sandboxes, which os.RemoveAll
// unlinks without following, so a volume's data survives its sandbox; on
// Linux, mount points under the path (a bind-mounted volume) are unmounted
// first, as Mesos does, and the path is left alone when that fails. A path
// that holds the sandbox of an executor run the agent still knows is never
// removed.
//
// The agent's goroutine decides and renames: the path is moved aside in
// its own parent directory (".apron-gc-<name>-<n>", one rename, which is
// cheap, and keeps a new run from creating its sandbox inside a tree being
// deleted), then a goroutine removes the renamed tree, which may be large
// and slow, and reports back. A tree left half removed by a stopping agent
// is removed at once by the next one.
//
// The schedule itself is gcQueue: a pure state machine (paths with due
// times, no clock, no I/O) that the agent drives with one timer for the
// earliest due path and one for the disk watch.

// gcTrashPrefix names trees moved aside for removal.
const gcTrashPrefix = ".apron-gc-"

// gcQueue is the schedule: which paths go when. It does no I/O and reads
// no clock; the agent passes the time in.
type gcQueue struct {
	delay    time.Duration // GCDelay
	headroom float64       // GCDiskHeadroom
	entries  gcHeap
	byPath   map[string]*gcEntry
}

type gcEntry struct {
	path  string
	due   time.Time
	index int
}

func newGCQueue(delay time.Duration, headroom float64) *gcQueue {
	return &gcQueue{delay: delay, headroom: headroom, byPath: map[string]*gcEntry{}}
}

// schedule makes path due at the given time, replacing an earlier
// schedule of the same path.
func (q *gcQueue) schedule(path string, due time.Time) {
	if e, ok := q.byPath[path]; ok {
		e.due = due
		heap.Fix(&q.entries, e.index)
		return
	}
	e := &gcEntry{path: path, due: due}
	q.byPath[path] = e
	heap.Push(&q.entries, e)
}

// unschedule forgets path's schedule; it reports whether there was one.
func (q *gcQueue) unschedule(path string) bool {
	e, ok := q.byPath[path]
	if !ok {
		return false
	}
	delete(q.byPath, path)
	heap.Remove(&q.entries, e.index)
	return true
}

func (q *gcQueue) scheduled(path string) bool { _, ok := q.byPath[path]; return ok }

func (q *gcQueue) len() int { return len(q.entries) }

// next is the earliest due time, if any path is scheduled.
func (q *gcQueue) next() (time.Time, bool) {
	if len(q.entries) == 0 {
		return time.Time{}, false
	}
	return q.entries[0].due, true
}

// popDue takes the paths due by now, earliest first.
func (q *gcQueue) popDue(now time.Time) []string {
	return q.popUntil(now)
}

// maxAge is how long a scheduled path may be kept when the disk is usage
// full (a fraction): GCDelay × max(0, 1 − headroom − usage).
func (q *gcQueue) maxAge(usage float64) time.Duration {
	f := max(0, 1-q.headroom-usage)
	return time.Duration(float64(q.delay) * f)
}

// prune takes the paths older than maxAge(usage): those scheduled more than
// that long ago, that is due within GCDelay − maxAge of now.
func (q *gcQueue) prune(now time.Time, usage float64) []string {
	return q.popUntil(now.Add(q.delay - q.maxAge(usage)))
}

func (q *gcQueue) popUntil(t time.Time) []string {
	var out []string
	for len(q.entries) > 0 && !q.entries[0].due.After(t) {
		e := heap.Pop(&q.entries).(*gcEntry)
		delete(q.byPath, e.path)
		out = append(out, e.path)
	}
	return out
}

type gcHeap []*gcEntry

func (h gcHeap) Len() int { return len(h) }
func (h gcHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	// Deeper paths first at the same time: a run before its executor's
	// directory, so each is counted for itself.
	return len(h[i].path) > len(h[j].path)
}
func (h gcHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *gcHeap) Push(x any) {
	e := x.(*gcEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *gcHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// gcState is the garbage collector's part of the loop's state.
type gcState struct {
	q          *gcQueue
	timer      timerID // fires at the earliest due time
	timerAt    time.Time
	diskTimer  timerID
	recovering bool // schedule by the directories' mtimes, do not stamp them
	seq        uint64
	met        gcMetrics
}

// gcMetrics count the collector's work since Run started.
type gcMetrics struct {
	scheduled uint64 // paths scheduled
	removed   uint64 // paths removed
	failed    uint64 // removals that failed
}

// initGC sets up the collector and starts the disk watch; the loop
// goroutine runs it.
func (a *Agent) initGC() {
	a.gc = &gcState{q: newGCQueue(a.cfg.GCDelay, a.cfg.GCDiskHeadroom)}
	a.watchDisk()
}

// sandboxRoot is <work_dir>/agents: the collector removes nothing outside.
func (a *Agent) sandboxRoot() string { return filepath.Join(a.cfg.WorkDir, "agents") }

// gcScheduleAt schedules path for removal GCDelay after base.
func (a *Agent) gcScheduleAt(path string, base time.Time) {
	if !a.gc.q.scheduled(path) {
		a.gc.met.scheduled++
	}
	a.gc.q.schedule(path, base.Add(a.gc.q.delay))
	a.log.Debug("agent: scheduled for garbage collection", "path", path, "due", base.Add(a.gc.q.delay))
	a.armGC()
}

// gcSchedule schedules path for removal GCDelay from now, stamping its
// mtime with now for a later agent's recovery; during recovery it keeps
// the mtime the path has instead.
func (a *Agent) gcSchedule(path string) {
	now := a.clk.Now()
	if a.gc.recovering {
		if fi, err := os.Lstat(path); err == nil {
			now = fi.ModTime()
		}
	} else if err := os.Chtimes(path, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log.Debug("agent: stamping a path scheduled for garbage collection", "path", path, "err", err)
	}
	// A path that does not exist (yet) is scheduled all the same: a
	// sandbox may still be in the making on an executor's goroutine.
	a.gcScheduleAt(path, now)
}

// gcExecutorForgotten schedules a forgotten executor run's sandbox, and
// its executor's directory when no run of that executor ID is left.
func (a *Agent) gcExecutorForgotten(e *agentcore.Run) {
	if a.gc == nil || e.Sandbox() == "" {
		return
	}
	a.gcSchedule(e.Sandbox())
	if e.Framework().HasRunOf(e.ID()) {
		return
	}
	// <exec dir>/runs/<run>
	a.gcSchedule(filepath.Dir(filepath.Dir(e.Sandbox())))
}

// gcFrameworkForgotten schedules a forgotten framework's directory.
func (a *Agent) gcFrameworkForgotten(fw *frameworkRec) {
	if a.gc == nil || a.id == "" {
		return
	}
	a.gcSchedule(filepath.Join(a.sandboxRoot(), pathSafe(a.id), "frameworks", pathSafe(fw.ID())))
}

// gcUnschedule unschedules sandbox and every directory on the way to it:
// a new run is about to use them.
func (a *Agent) gcUnschedule(sandbox string) {
	if a.gc == nil {
		return
	}
	root := a.sandboxRoot()
	changed := false
	for p := filepath.Clean(sandbox); strings.HasPrefix(p, root+string(filepath.Separator)); p = filepath.Dir(p) {
		if a.gc.q.unschedule(p) {
			changed = true
			a.log.Debug("agent: unscheduled from garbage collection", "path", p)
		}
	}
	if changed {
		a.armGC()
	}
}

// armGC keeps one timer at the earliest due time.
func (a *Agent) armGC() {
	due, ok := a.gc.q.next()
	if a.gc.timer != 0 && ok && a.gc.timerAt.Equal(due) {
		return
	}
	a.tm.cancel(a.gc.timer)
	a.gc.timer = 0
	if !ok {
		return
	}
	a.gc.timerAt = due
	a.gc.timer = a.tm.after(due.Sub(a.clk.Now()), func() {
		a.gc.timer = 0
		a.gcRemove(a.gc.q.popDue(a.clk.Now()))
		a.armGC()
	})
}

// watchDisk checks the disk every DiskWatchInterval and prunes what its
// usage says is too old. The usage function is called on the loop: statfs
// is one system call, as cheap as the stat calls the loop makes anyway.
func (a *Agent) watchDisk() {
	a.gc.diskTimer = a.tm.after(a.cfg.DiskWatchInterval, func() {
		a.gc.diskTimer = 0
		if a.checkDisk() {
			a.watchDisk()
		}
	})
}

// checkDisk prunes by the disk's usage; false when the usage cannot be
// measured on this platform, which ends the watch.
func (a *Agent) checkDisk() bool {
	usage, err := a.cfg.DiskUsage(a.cfg.WorkDir)
	if errors.Is(err, errors.ErrUnsupported) {
		a.log.Info("agent: disk usage is not measured on this platform; sandboxes are kept for GCDelay")
		return false
	}
	if err != nil {
		a.log.Warn("agent: measuring the work directory's disk usage", "err", err)
		return true
	}
	paths := a.gc.q.prune(a.clk.Now(), usage)
	if len(paths) > 0 {
		a.log.Info("agent: pruning sandboxes for disk space", "usage", usage, "max_age", a.gc.q.maxAge(usage), "paths", len(paths))
		a.gcRemove(paths)
		a.armGC()
	}
	return true
}

// gcRemove removes paths whose time has come: checked and moved aside on
// the loop, deleted on a goroutine that reports back.
func (a *Agent) gcRemove(paths []string) {
	if len(paths) == 0 {
		return
	}
	live := a.liveSandboxes()
	var trash []string
	for _, p := range paths {
		t, err := a.moveAside(p, live)
		switch {
		case err != nil:
			a.gc.met.failed++
			a.log.Warn("agent: not garbage collecting a path", "path", p, "err", err)
		case t != "":
			trash = append(trash, t)
		}
		a.detachRemoved(p, err) // files.go
	}
	if len(trash) == 0 {
		return
	}
	ctx := a.runCtx
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		errs := removeTrees(ctx, trash)
		_ = a.post(context.Background(), func() {
			for i, err := range errs {
				if err != nil {
					a.gc.met.failed++
					a.log.Warn("agent: garbage collecting a path", "path", trash[i], "err", err)
				} else {
					a.gc.met.removed++
					a.log.Debug("agent: garbage collected", "path", trash[i])
				}
			}
		})
	}()
}

var errGCUnsafe = errors.New("unsafe to remove")

// liveSandboxes are the sandboxes of every executor run the agent knows
// and the directories above them.
func (a *Agent) liveSandboxes() map[string]bool {
	live := map[string]bool{}
	root := a.sandboxRoot()
	for _, fw := range a.tables.Frameworks() {
		for _, e := range fw.Runs() {
			for p := filepath.Clean(e.Sandbox()); strings.HasPrefix(p, root+string(filepath.Separator)) && !live[p]; p = filepath.Dir(p) {
				live[p] = true
			}
		}
	}
	return live
}

// moveAside checks that path may be removed and renames it aside in its
// parent directory, returning the new name; "" when there is nothing to
// remove (gone already, or a symbolic link, unlinked at once).
func (a *Agent) moveAside(path string, live map[string]bool) (string, error) {
	path = filepath.Clean(path)
	root := a.sandboxRoot()
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: %s is not under %s", errGCUnsafe, path, root)
	}
	if live[path] {
		return "", fmt.Errorf("%w: %s holds the sandbox of a known executor run", errGCUnsafe, path)
	}
	// No link on the way: removing through one would remove elsewhere.
	parts := strings.Split(rel, string(filepath.Separator))
	dir := root
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%w: %s is not a directory", errGCUnsafe, dir)
		}
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
		// A link (never followed) or a file: one unlink.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		a.gc.met.removed++
		return "", nil
	}
	a.gc.seq++
	trash := filepath.Join(filepath.Dir(path), fmt.Sprintf("%s%s-%d", gcTrashPrefix, filepath.Base(path), a.gc.seq))
	if err := os.Rename(path, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		// A mount point cannot be renamed; remove it where it is (it holds
		// no live run, and nothing is created under a path being
		// removed but a new run's, which unscheduled it).
		return path, nil
	}
	return trash, nil
}

// removeTrees removes each tree, unmounting what is mounted in it first;
// it stops early, leaving the rest for the next agent, when ctx ends.
func removeTrees(ctx context.Context, paths []string) []error {
	errs := make([]error, len(paths))
	mounts, err := mountPoints()
	for i, p := range paths {
		if err != nil {
			errs[i] = fmt.Errorf("reading the mount table: %w", err)
			continue
		}
		if errs[i] = unmountUnder(p, mounts); errs[i] != nil {
			continue
		}
		errs[i] = removeTree(ctx, p)
	}
	return errs
}

// removeTree is os.RemoveAll (which unlinks symbolic links, never
// following them) one top-level entry at a time, so a stopping agent is
// not held up by a large tree.
func removeTree(ctx context.Context, path string) error {
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := os.RemoveAll(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.RemoveAll(path)
}

// unmountUnder unmounts the mount points at or under path, deepest first.
func unmountUnder(path string, mounts []string) error {
	prefix := path + string(filepath.Separator)
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if m == path || strings.HasPrefix(m, prefix) {
			if err := unmount(m); err != nil {
				return fmt.Errorf("unmounting %s: %w", m, err)
			}
		}
	}
	return nil
}

// gcRecover schedules again, after a restart, whatever under
// <work_dir>/agents holds no sandbox of a recovered executor run: each
// path at its mtime (the latest within, for a directory) plus GCDelay.
// Trees an earlier agent had moved aside go at once. It runs at the end of
// recovery, on the loop's goroutine.
func (a *Agent) gcRecover() {
	live := a.liveSandboxes()
	root := a.sandboxRoot()
	current := ""
	if a.id != "" {
		current = filepath.Join(root, pathSafe(a.id))
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("agent: reading the sandboxes for garbage collection", "err", err)
		}
		return
	}
	n := a.gc.q.len()
	for _, e := range entries {
		a.gcVisit(filepath.Join(root, e.Name()), e, 0, live, current)
	}
	if scheduled := a.gc.q.len() - n; scheduled > 0 {
		a.log.Info("agent: scheduled leftover sandboxes for garbage collection", "paths", scheduled)
	}
}

// gcLevels are the directories between the levels of the sandbox layout:
// agents/<agent>/frameworks/<fw>/executors/<ex>/runs/<run>.
var gcLevels = []string{"frameworks", "executors", "runs"}

// gcVisit schedules path (at the given depth of the layout: 0 an agent, 3
// a run) unless it holds a live sandbox or is the agent's own directory,
// and its entries below; it returns the latest mtime found.
func (a *Agent) gcVisit(path string, de fs.DirEntry, depth int, live map[string]bool, current string) time.Time {
	if strings.HasPrefix(de.Name(), gcTrashPrefix) {
		a.gcScheduleAt(path, a.clk.Now().Add(-a.gc.q.delay))
		return time.Time{}
	}
	var latest time.Time
	if fi, err := de.Info(); err == nil {
		latest = fi.ModTime()
	}
	if de.IsDir() && depth < len(gcLevels) {
		sub := filepath.Join(path, gcLevels[depth])
		if fi, err := os.Lstat(sub); err == nil && fi.IsDir() {
			entries, err := os.ReadDir(sub)
			if err != nil {
				a.log.Warn("agent: reading sandboxes for garbage collection", "path", sub, "err", err)
			}
			for _, e := range entries {
				if t := a.gcVisit(filepath.Join(sub, e.Name()), e, depth+1, live, current); t.After(latest) {
					latest = t
				}
			}
		}
	}
	if !live[path] && path != current {
		a.gcScheduleAt(path, latest)
	}
	return latest
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space) of
// a mount table field.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

package containerizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apronhq/apron/containerizer/cgroups"
	"github.com/apronhq/apron/internal/clock"
)

// Defaults of DiskOptions.
const (
	// DefaultDiskWatchInterval is Mesos's --container_disk_watch_interval.
	DefaultDiskWatchInterval = 15 * time.Second
	// DefaultDiskMaxEntries bounds the entries one measure of a sandbox
	// visits.
	DefaultDiskMaxEntries = 1 << 20
)

// DiskOptions configure NewDisk.
type DiskOptions struct {
	// StateDir is where the wrapper checkpoints, per container, its
	// sandbox, quota, excluded volumes and any limitation, so that a
	// wrapper made after an agent restart keeps watching the containers
	// the inner containerizer recovers. Required; created if missing; not
	// shared with the inner containerizer's.
	StateDir string
	// Interval is how often each sandbox is measured (Mesos's
	// --container_disk_watch_interval); 0 is DefaultDiskWatchInterval.
	Interval time.Duration
	// Enforce kills a container whose sandbox uses more than its
	// Limits.DiskBytes (Mesos's --enforce_container_disk_quota); it then
	// ends with ReasonDiskLimit. Without it usage is only reported.
	Enforce bool
	// MaxEntries bounds the files and directories one measure visits
	// (and it descends at most 256 directories deep); a sandbox with more
	// is measured in part and the part counted is used as its usage,
	// with a warning. 0 is DefaultDiskMaxEntries.
	MaxEntries int
	// Clock drives the measures; nil is the system clock.
	Clock clock.Clock
	// Logger receives the wrapper's logs; nil discards them.
	Logger *slog.Logger
}

// Disk is Mesos's disk/du isolator as a wrapper around any Containerizer
// (the process one and the Linux one alike): for every container launched
// with Limits.DiskBytes it measures the disk the sandbox uses, every
// Interval, with a walk in this process like `du -s` (allocated blocks,
// each inode once, symbolic links not followed, volumes inside the
// sandbox — persistent volumes — left out, as Mesos excludes them). The
// last measure is Usage.DiskUsedBytes. With Enforce, a container over its
// quota is killed (SIGKILL to all of it) and ends with ReasonDiskLimit
// and Mesos's message "Disk usage (X) exceeds quota (Y)".
//
// The wrapper, not each containerizer, does this because the measure and
// its policy are the same whatever isolates the processes; a wrapper
// composes with any implementation and keeps disk watching off the
// launch path. Sandboxes are measured one after another by one goroutine,
// so a machine with many containers spends one walk at a time on them.
// Only the sandbox is counted: the root filesystem of a container from
// an image (the Linux containerizer's overlay) is not, as Mesos's
// disk/du counts only sandboxes and volumes.
//
// Other capabilities of the inner containerizer reach through the wrapper
// only where it forwards them (Stats); Unwrap returns the inner one.
type Disk struct {
	inner Containerizer
	opts  DiskOptions
	clk   clock.Clock
	log   *slog.Logger

	mu     sync.Mutex
	cs     map[string]*diskContainer
	closed bool

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// diskContainer is what the wrapper knows of one watched container.
type diskContainer struct {
	rec       diskRecord
	launching bool   // Launch has not returned yet
	ended     bool   // a Wait has seen its end: no more measures or kills
	used      uint64 // last measure, 0 before the first
}

// diskRecord is a container's checkpoint, <StateDir>/<id>.json.
type diskRecord struct {
	Sandbox    string   `json:"sandbox"`
	QuotaBytes uint64   `json:"quota_bytes"`
	Excludes   []string `json:"excludes,omitempty"` // slash-separated, relative to Sandbox
	Limitation string   `json:"limitation,omitempty"`
}

var _ Containerizer = (*Disk)(nil)

// NewDisk wraps inner with disk watching. The Disk owns inner: its Close
// closes inner. Call Recover (which recovers inner) before the first
// Launch after a restart.
func NewDisk(inner Containerizer, opts DiskOptions) (*Disk, error) {
	if inner == nil {
		return nil, errors.New("containerizer: NewDisk needs a containerizer to wrap")
	}
	if opts.StateDir == "" {
		return nil, errors.New("containerizer: DiskOptions.StateDir is required")
	}
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("containerizer: disk state dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("containerizer: disk state dir: %w", err)
	}
	opts.StateDir = dir
	if opts.Interval <= 0 {
		opts.Interval = DefaultDiskWatchInterval
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultDiskMaxEntries
	}
	d := &Disk{inner: inner, opts: opts, clk: opts.Clock, log: opts.Logger, cs: make(map[string]*diskContainer)}
	if d.clk == nil {
		d.clk = clock.Real()
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wg.Add(1)
	go d.watch()
	return d, nil
}

// Unwrap returns the wrapped containerizer.
func (d *Disk) Unwrap() Containerizer { return d.inner }

// Launch launches cfg in the inner containerizer and, when it has a disk
// quota, watches its sandbox.
func (d *Disk) Launch(ctx context.Context, cfg Config) error {
	if cfg.Limits.DiskBytes == 0 {
		return d.inner.Launch(ctx, cfg)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	rec := diskRecord{Sandbox: filepath.Clean(cfg.Sandbox), QuotaBytes: cfg.Limits.DiskBytes}
	for _, v := range cfg.Volumes {
		if !filepath.IsAbs(v.ContainerPath) {
			rec.Excludes = append(rec.Excludes, path.Clean(filepath.ToSlash(v.ContainerPath)))
		}
	}
	c := &diskContainer{rec: rec, launching: true}
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		return ErrClosed
	case d.cs[cfg.ID] != nil:
		d.mu.Unlock()
		return fmt.Errorf("container %q: %w", cfg.ID, ErrContainerExists)
	}
	d.cs[cfg.ID] = c
	d.mu.Unlock()
	if err := d.save(cfg.ID, rec); err != nil {
		d.forget(cfg.ID, c)
		return fmt.Errorf("container %q: checkpointing its disk quota: %v: %w", cfg.ID, err, ErrLaunchFailed)
	}
	if err := d.inner.Launch(ctx, cfg); err != nil {
		d.forget(cfg.ID, c)
		d.remove(cfg.ID)
		return err
	}
	d.mu.Lock()
	c.launching = false
	d.mu.Unlock()
	d.follow(cfg.ID, c)
	return nil
}

// follow notes when the container ends, so that it is neither measured
// nor killed afterwards.
func (d *Disk) follow(id string, c *diskContainer) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if _, err := d.inner.Wait(d.ctx, id); err == nil || errors.Is(err, ErrUnknownContainer) {
			d.mu.Lock()
			c.ended = true
			d.mu.Unlock()
		}
	}()
}

// forget drops id's entry if it is still c.
func (d *Disk) forget(id string, c *diskContainer) {
	d.mu.Lock()
	if d.cs[id] == c {
		delete(d.cs, id)
	}
	d.mu.Unlock()
}

// Wait is the inner Wait, with ReasonDiskLimit and its message when the
// wrapper killed the container for its disk.
func (d *Disk) Wait(ctx context.Context, id string) (Termination, error) {
	d.mu.Lock()
	c := d.cs[id]
	d.mu.Unlock()
	t, err := d.inner.Wait(ctx, id)
	if err != nil || c == nil {
		return t, err
	}
	d.mu.Lock()
	c.ended = true
	if c.rec.Limitation != "" {
		t.Reason, t.Message = ReasonDiskLimit, c.rec.Limitation
	}
	d.mu.Unlock()
	return t, nil
}

// Signal is the inner Signal.
func (d *Disk) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	return d.inner.Signal(ctx, id, sig)
}

// Destroy destroys the container in the inner containerizer and stops
// watching it.
func (d *Disk) Destroy(ctx context.Context, id string) error {
	err := d.inner.Destroy(ctx, id)
	if err == nil || errors.Is(err, ErrUnknownContainer) {
		d.mu.Lock()
		c := d.cs[id]
		if c != nil && !c.launching {
			delete(d.cs, id)
		}
		d.mu.Unlock()
		if c != nil && !c.launching {
			d.remove(id)
		}
	}
	return err
}

// Usage is the inner Usage with the disk quota and the last measure.
func (d *Disk) Usage(ctx context.Context, id string) (Usage, error) {
	u, err := d.inner.Usage(ctx, id)
	if err != nil {
		return u, err
	}
	d.mu.Lock()
	if c := d.cs[id]; c != nil {
		u.Limits.DiskBytes, u.DiskUsedBytes = c.rec.QuotaBytes, c.used
	}
	d.mu.Unlock()
	return u, nil
}

// Stats forwards to the inner containerizer's cgroup statistics, where
// it has them (the Linux containerizer).
func (d *Disk) Stats(ctx context.Context, id string) (cgroups.Stats, error) {
	if s, ok := d.inner.(interface {
		Stats(context.Context, string) (cgroups.Stats, error)
	}); ok {
		return s.Stats(ctx, id)
	}
	return cgroups.Stats{}, fmt.Errorf("container %q: no cgroup statistics: %w", id, ErrUnsupported)
}

// Containers is the inner Containers.
func (d *Disk) Containers(ctx context.Context) ([]string, error) {
	return d.inner.Containers(ctx)
}

// Recover recovers the inner containerizer, then watches again the
// recovered containers that had a disk quota (a limitation found in a
// checkpoint still gives their termination its reason), and drops the
// checkpoints of containers that are gone.
func (d *Disk) Recover(ctx context.Context) ([]string, error) {
	ids, err := d.inner.Recover(ctx)
	if err != nil {
		return ids, err
	}
	all, err := d.inner.Containers(ctx)
	if err != nil {
		return ids, err
	}
	known := make(map[string]bool, len(all))
	for _, id := range all {
		known[id] = true
	}
	ents, err := os.ReadDir(d.opts.StateDir)
	if err != nil {
		return ids, fmt.Errorf("containerizer: disk state dir: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(d.opts.StateDir, name))
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || ValidateID(id) != nil {
			continue
		}
		d.mu.Lock()
		_, tracked := d.cs[id]
		d.mu.Unlock()
		if tracked {
			continue
		}
		if !known[id] {
			d.remove(id)
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.opts.StateDir, name))
		var rec diskRecord
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil {
			d.log.Warn("containerizer: unreadable disk quota checkpoint; the container's disk is not watched", "container", id, "err", err)
			continue
		}
		c := &diskContainer{rec: rec}
		d.mu.Lock()
		if d.closed || d.cs[id] != nil {
			d.mu.Unlock()
			continue
		}
		d.cs[id] = c
		d.mu.Unlock()
		d.follow(id, c)
	}
	return ids, nil
}

// Close stops watching and closes the inner containerizer; containers
// keep running.
func (d *Disk) Close() error {
	d.mu.Lock()
	already := d.closed
	d.closed = true
	d.mu.Unlock()
	if already {
		return nil
	}
	d.cancel()
	err := d.inner.Close()
	d.wg.Wait()
	return err
}

// watch measures every watched sandbox at each tick, one at a time.
func (d *Disk) watch() {
	defer d.wg.Done()
	t := d.clk.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C():
		}
		d.mu.Lock()
		ids := make([]string, 0, len(d.cs))
		for id, c := range d.cs {
			if !c.launching && !c.ended {
				ids = append(ids, id)
			}
		}
		d.mu.Unlock()
		sort.Strings(ids)
		for _, id := range ids {
			if d.ctx.Err() != nil {
				return
			}
			d.measure(id)
		}
	}
}

// measure measures one container's sandbox and enforces its quota.
func (d *Disk) measure(id string) {
	d.mu.Lock()
	c := d.cs[id]
	if c == nil || c.ended {
		d.mu.Unlock()
		return
	}
	rec := c.rec
	d.mu.Unlock()
	excludes := make(map[string]bool, len(rec.Excludes))
	for _, e := range rec.Excludes {
		excludes[e] = true
	}
	used, err := du(rec.Sandbox, excludes, d.opts.MaxEntries)
	switch {
	case errors.Is(err, errDuIncomplete):
		d.log.Warn("containerizer: the sandbox was measured in part; counting that part", "container", id, "sandbox", rec.Sandbox, "err", err)
	case err != nil:
		d.log.Warn("containerizer: measuring a sandbox's disk usage", "container", id, "sandbox", rec.Sandbox, "err", err)
		return
	}
	d.mu.Lock()
	if d.cs[id] != c {
		d.mu.Unlock()
		return
	}
	c.used = used
	kill := d.opts.Enforce && used > rec.QuotaBytes && !c.ended && c.rec.Limitation == ""
	if kill {
		c.rec.Limitation = "Disk usage (" + mesosBytes(used) + ") exceeds quota (" + mesosBytes(rec.QuotaBytes) + ")"
		rec = c.rec
	}
	d.mu.Unlock()
	if !kill {
		return
	}
	d.log.Info("containerizer: killing a container over its disk quota", "container", id, "limitation", rec.Limitation)
	if err := d.save(id, rec); err != nil {
		d.log.Warn("containerizer: checkpointing a disk limitation", "container", id, "err", err)
	}
	if err := d.inner.Signal(d.ctx, id, syscall.SIGKILL); err != nil {
		d.log.Warn("containerizer: killing a container over its disk quota", "container", id, "err", err)
	}
}

// save writes id's checkpoint atomically.
func (d *Disk) save(id string, rec diskRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	p := filepath.Join(d.opts.StateDir, id+".json")
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// remove deletes id's checkpoint.
func (d *Disk) remove(id string) {
	if err := os.Remove(filepath.Join(d.opts.StateDir, id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("containerizer: removing a disk quota checkpoint", "container", id, "err", err)
	}
}

// mesosBytes formats n as Mesos's Bytes does: in the largest unit that
// loses nothing ("512B", "3KB", "10MB", "1GB").
func mesosBytes(n uint64) string {
	const k = 1024
	switch {
	case n == 0:
		return "0B"
	case n%k != 0:
		return fmt.Sprintf("%dB", n)
	case n%(k*k) != 0:
		return fmt.Sprintf("%dKB", n/k)
	case n%(k*k*k) != 0:
		return fmt.Sprintf("%dMB", n/(k*k))
	case n%(k*k*k*k) != 0:
		return fmt.Sprintf("%dGB", n/(k*k*k))
	default:
		return fmt.Sprintf("%dTB", n/(k*k*k*k))
	}
}

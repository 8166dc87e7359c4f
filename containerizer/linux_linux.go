package containerizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/apronhq/apron/containerizer/cgroups"
	"github.com/apronhq/apron/containerizer/image"
	"github.com/apronhq/apron/containerizer/launcher"
	"golang.org/x/sys/unix"
)

// Linux is the Linux containerizer (see LinuxOptions): namespaces from
// package launcher, cgroups from package cgroups, root filesystems from
// package image.
type Linux struct {
	opts   LinuxOptions
	cg     cgroups.Manager
	images *image.Store
	log    *slog.Logger
	clock  Clock
	root   bool

	ctx    context.Context // cancelled by Close: stops the OOM watchers
	cancel context.CancelFunc

	mu         sync.Mutex
	closed     bool
	closing    chan struct{}
	containers map[string]*linuxContainer
	nested     map[string]*linuxNested // nested_linux.go
	watchers   sync.WaitGroup          // the OOM watchers
}

// linuxContainer is one container of a Linux containerizer.
type linuxContainer struct {
	id      string
	dir     string // <StateDir>/<id>
	started chan struct{}
	// Set before started is closed.
	launchErr error
	state     linuxState
	proc      *launcher.Process

	done chan struct{} // closed once term is set
	term Termination

	// Guarded by Linux.mu.
	oom        uint64 // OOM kills seen; the container is being killed for it
	destroying bool
	destroyed  chan struct{} // closed when Destroy has finished
	stopOOM    context.CancelFunc
}

// linuxState is a container's checkpoint, <StateDir>/<id>/state.json:
// what Recover needs to find the container again.
type linuxState struct {
	ID      string          `json:"id"`
	Sandbox string          `json:"sandbox"`
	Image   string          `json:"image,omitempty"`
	Rootfs  string          `json:"rootfs,omitempty"`
	Cgroup  string          `json:"cgroup"`
	Limits  Limits          `json:"limits"`
	Handle  launcher.Handle `json:"handle"`
	// Env is the task's environment, for nested containers to inherit;
	// absent (nil) in a state written before it was recorded.
	Env []string `json:"env"`
	// Termination is set once the container has ended and an agent saw
	// how.
	Termination *checkpointTermination `json:"termination,omitempty"`
}

const (
	linuxStateFile = "state.json"
	// DefaultPidsMax is the pids limit of a container when
	// LinuxOptions.PidsMax is 0. Mesos sets none by default; a limit
	// stops a fork bomb taking the whole machine, and 16384 processes and
	// threads is far more than a task needs.
	DefaultPidsMax = 16384
)

// NewLinux returns a Linux containerizer. It makes nothing until Launch
// (the state directory aside) and finds nothing until Recover.
func NewLinux(opts LinuxOptions) (*Linux, error) {
	if opts.StateDir == "" || !filepath.IsAbs(opts.StateDir) {
		return nil, fmt.Errorf("containerizer: linux: the state directory %q is not an absolute path", opts.StateDir)
	}
	if opts.Init != "" && !filepath.IsAbs(opts.Init) {
		return nil, fmt.Errorf("containerizer: linux: the init %q is not an absolute path", opts.Init)
	}
	if opts.PidsMax == 0 {
		opts.PidsMax = DefaultPidsMax
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("containerizer: linux: state directory: %w", err)
	}
	cg := opts.CgroupManager
	if cg == nil {
		var err error
		if cg, err = cgroups.New(opts.Cgroups); err != nil {
			return nil, fmt.Errorf("containerizer: linux: %w", err)
		}
	}
	l := &Linux{
		opts:       opts,
		cg:         cg,
		images:     opts.Images,
		log:        opts.Logger,
		clock:      opts.Clock,
		root:       os.Geteuid() == 0,
		closing:    make(chan struct{}),
		containers: make(map[string]*linuxContainer),
	}
	if l.log == nil {
		l.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if l.clock == nil {
		l.clock = systemClock{}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l, nil
}

// Launch implements Containerizer.
func (l *Linux) Launch(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Image != "" && l.images == nil {
		return fmt.Errorf("container %q: image %q: this containerizer has no image store: %w", cfg.ID, cfg.Image, ErrUnsupported)
	}
	if cfg.Image == "" {
		// On the host's root the launcher makes no mount points outside
		// the sandbox (Mesos's host_path isolator needs them to exist
		// too, without a root filesystem).
		for _, v := range cfg.Volumes {
			if filepath.IsAbs(v.ContainerPath) {
				if _, err := os.Stat(v.ContainerPath); err != nil {
					return fmt.Errorf("container %q: volume at %q: without an image, an absolute container path must exist on the host (%v): %w", cfg.ID, v.ContainerPath, err, ErrUnsupported)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	usr, err := l.user(cfg.ID, cfg.User)
	if err != nil {
		return err
	}
	c := &linuxContainer{
		id:        cfg.ID,
		dir:       filepath.Join(l.opts.StateDir, cfg.ID),
		started:   make(chan struct{}),
		done:      make(chan struct{}),
		destroyed: make(chan struct{}),
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("container %q: %w", cfg.ID, ErrClosed)
	}
	if _, ok := l.containers[cfg.ID]; ok {
		l.mu.Unlock()
		return fmt.Errorf("container %q: %w", cfg.ID, ErrContainerExists)
	}
	l.containers[cfg.ID] = c
	l.mu.Unlock()

	if err := l.start(ctx, c, &cfg, usr); err != nil {
		c.launchErr = err
		l.mu.Lock()
		delete(l.containers, cfg.ID)
		l.mu.Unlock()
		close(c.started)
		l.log.Warn("container launch failed", "container", cfg.ID, "err", err)
		return err
	}
	close(c.started)
	l.log.Debug("container launched", "container", cfg.ID, "pid", c.proc.Pid())
	return nil
}

// start makes everything of a container and starts it; on error it has
// undone it all.
func (l *Linux) start(ctx context.Context, c *linuxContainer, cfg *Config, usr *launcher.User) (err error) {
	failed := func(format string, args ...any) error {
		return fmt.Errorf("container %q: %s: %w", cfg.ID, fmt.Sprintf(format, args...), ErrLaunchFailed)
	}
	// An image's errors stay in the chain (image.ErrNotFound, ...): the
	// agent tells a missing image from a broken registry.
	imageFailed := func(what string, err error) error {
		return fmt.Errorf("container %q: image %q: %s%w: %w", cfg.ID, cfg.Image, what, ErrLaunchFailed, err)
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	// A directory left by a launch that crashed halfway is not ours to
	// keep: Recover would have removed it.
	if err := os.RemoveAll(c.dir); err != nil {
		return failed("state directory: %v", err)
	}
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		return failed("state directory: %v", err)
	}
	undo = append(undo, func() { os.RemoveAll(c.dir) })
	c.state = linuxState{ID: cfg.ID, Sandbox: cfg.Sandbox, Image: cfg.Image, Cgroup: cfg.ID, Limits: cfg.Limits}

	spec := &launcher.Spec{
		Env:      cfg.Env,
		User:     usr,
		Hostname: cfg.Hostname,
		Init:     l.opts.Init,
		// The init records the task's end here: an agent killed while
		// the container runs learns it after its restart.
		StatusFile: filepath.Join(c.dir, "status"),
		// A task of a framework that does not checkpoint dies with the
		// agent, as the process containerizer's do.
		DiesWithParent: cfg.DiesWithAgent,
	}
	if spec.Hostname == "" {
		spec.Hostname = hostnameOf(cfg.ID)
	}
	if l.opts.HostPIDNamespace {
		spec.Namespaces = []launcher.Namespace{launcher.NamespaceMount, launcher.NamespaceUTS, launcher.NamespaceIPC}
	}
	cmd := cfg.Command
	if cfg.Image != "" {
		img, err := l.images.Pull(ctx, cfg.Image)
		if err != nil {
			return imageFailed("", err)
		}
		rootfs, release, err := l.images.Provision(ctx, img, c.dir)
		if err != nil {
			return imageFailed("provisioning the root filesystem: ", err)
		}
		undo = append(undo, func() {
			if err := release(); err != nil {
				l.log.Warn("releasing a root filesystem", "container", cfg.ID, "err", err)
			}
		})
		c.state.Rootfs = rootfs
		merged, err := image.Merge(img.Config, image.Command{Shell: cmd.Shell, Value: cmd.Value, HasValue: cmd.Value != "", Args: cmd.Args})
		if err != nil {
			return imageFailed("", err)
		}
		cmd = Command{Shell: merged.Command.Shell, Value: merged.Command.Value, Args: merged.Command.Args}
		// The image's user is not applied, as in Mesos: the task runs
		// as Config.User.
		spec.Env = image.MergeEnv(merged.Env, cfg.Env)
		spec.Rootfs = rootfs
		// The sandbox at /mnt/mesos/sandbox is the working directory
		// unless the image names one; the launcher sets MESOS_SANDBOX.
		spec.Sandbox = cfg.Sandbox
		spec.SandboxTarget = launcher.DefaultSandboxTarget
		spec.Dir = merged.WorkingDir
		if spec.Dir == "" {
			spec.Dir = launcher.DefaultSandboxTarget
		}
	} else {
		// As Mesos without a root filesystem: the sandbox stays where it
		// is and is the working directory; the environment is the
		// agent's, exactly.
		spec.Dir = cfg.Sandbox
	}
	if cmd.Shell {
		spec.Args = []string{"/bin/sh", "-c", cmd.Value}
	} else {
		spec.Path, spec.Args = cmd.Value, cmd.Args
		if len(spec.Args) == 0 {
			spec.Args = []string{cmd.Value}
		}
		if !strings.Contains(cmd.Value, "/") && cfg.Image == "" {
			// Looked up now, on the host's root, so that a missing
			// program fails the launch with a clear error.
			path, err := lookPath(cmd.Value, cfg.Env, cfg.Sandbox)
			if err != nil {
				return failed("%v", err)
			}
			spec.Path = path
		}
	}
	// As the process containerizer: the sandbox, not its parents, is the
	// user's.
	if err := os.MkdirAll(cfg.Sandbox, 0o755); err != nil {
		return failed("sandbox: %v", err)
	}
	if usr != nil {
		if err := os.Chown(cfg.Sandbox, int(usr.UID), int(usr.GID)); err != nil {
			return failed("sandbox: %v", err)
		}
	}
	target := cfg.Sandbox
	if cfg.Image != "" {
		target = launcher.DefaultSandboxTarget
	}
	for _, v := range cfg.Volumes {
		m := launcher.Mount{Source: v.HostPath, Target: v.ContainerPath, ReadOnly: v.ReadOnly}
		if !filepath.IsAbs(v.ContainerPath) {
			m.Target = filepath.Join(target, v.ContainerPath)
		}
		spec.Mounts = append(spec.Mounts, m)
	}
	if len(spec.Mounts) > 0 && cfg.Image == "" {
		// The launcher makes mount points on the host's root only in the
		// sandbox it mounts; without one, they are made here.
		for _, v := range cfg.Volumes {
			if !filepath.IsAbs(v.ContainerPath) {
				if err := mountPointBeneath(cfg.Sandbox, v, usr); err != nil {
					return failed("volume at %q: %v", v.ContainerPath, err)
				}
			}
		}
	}
	stdout, err := openOutput(filepath.Join(cfg.Sandbox, "stdout"), usr)
	if err != nil {
		return failed("%v", err)
	}
	defer stdout.Close()
	stderr, err := openOutput(filepath.Join(cfg.Sandbox, "stderr"), usr)
	if err != nil {
		return failed("%v", err)
	}
	defer stderr.Close()
	spec.Stdout, spec.Stderr = stdout, stderr

	limits := cgroups.Limits{CPUs: cfg.Limits.CPUs, MemoryBytes: cfg.Limits.MemoryBytes, PidsMax: uint64(max(l.opts.PidsMax, 0))}
	if err := l.cg.Create(c.state.Cgroup, limits); err != nil {
		return failed("cgroups: %v", err)
	}
	undo = append(undo, func() {
		if err := l.cg.Destroy(context.Background(), c.state.Cgroup); err != nil {
			l.log.Warn("destroying the cgroups of a failed launch", "container", cfg.ID, "err", err)
		}
	})
	dirs, err := l.cg.Dirs(c.state.Cgroup)
	if err != nil {
		return failed("cgroups: %v", err)
	}
	for _, d := range dirs {
		spec.CgroupProcs = append(spec.CgroupProcs, filepath.Join(d, "cgroup.procs"))
	}

	proc, err := launcher.Start(ctx, spec)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, launcher.ErrStartFailed) {
			return fmt.Errorf("container %q: %w", cfg.ID, ctxErr)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("container %q: %v: %w", cfg.ID, err, ctxErr)
		}
		return failed("%v", err)
	}
	undo = append(undo, func() {
		proc.Kill()
		proc.Wait()
	})
	c.proc = proc
	c.state.Handle = proc.Handle()
	c.state.Env = knownEnv(spec.TaskEnv())
	if err := writeState(c.dir, &c.state); err != nil {
		return failed("checkpoint: %v", err)
	}
	l.watch(c)
	return nil
}

// hostnameOf makes a container ID a host name: the launcher takes at most
// 64 bytes.
func hostnameOf(id string) string {
	if len(id) > 64 {
		return id[:64]
	}
	return id
}

// watch starts the goroutines that wait for c's end and for an OOM kill
// in it.
func (l *Linux) watch(c *linuxContainer) {
	oomCtx, stop := context.WithCancel(l.ctx)
	l.mu.Lock()
	c.stopOOM = stop
	l.mu.Unlock()
	l.watchers.Add(1)
	go func() {
		defer l.watchers.Done()
		n, err := l.cg.WaitOOM(oomCtx, c.state.Cgroup)
		if err != nil || n == 0 {
			return
		}
		l.mu.Lock()
		if c.oom == 0 && !isClosed(c.done) {
			c.oom = n
		}
		oomed := c.oom != 0
		l.mu.Unlock()
		if !oomed {
			return
		}
		l.log.Info("container went over its memory limit: killing it", "container", c.id, "oom_kills", n)
		if err := l.cg.Kill(oomCtx, c.state.Cgroup); err != nil && oomCtx.Err() == nil {
			l.log.Warn("killing a container over its memory limit", "container", c.id, "err", err)
		}
		c.proc.Kill()
	}()
	// Not counted in watchers: a launcher Wait cannot be interrupted, and
	// Close leaves the containers running. After Close it only reaps.
	go func() {
		ws, err := c.proc.Wait()
		var t Termination
		if err != nil {
			t = lostTermination(err)
		} else {
			t = terminationOf(ws)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return
		}
		l.ended(c, t)
	}()
}

// ended records how c ended; l.mu is held.
func (l *Linux) ended(c *linuxContainer, t Termination) {
	if isClosed(c.done) {
		return
	}
	if c.oom == 0 && c.state.Limits.MemoryBytes > 0 {
		// The kernel's OOM kill of the task may be seen here before the
		// OOM watcher wakes up: the counter tells.
		if st, err := l.cg.Stats(c.state.Cgroup); err == nil && st.OOMKills > 0 {
			c.oom = st.OOMKills
		}
	}
	switch {
	case c.oom != 0:
		t.Reason = ReasonMemoryLimit
		msg := "Memory limit exceeded: "
		if st, err := l.cg.Stats(c.state.Cgroup); err == nil && st.MemoryMaxUsage > 0 {
			msg += fmt.Sprintf("Requested: %dMB Maximum Used: %dMB", c.state.Limits.MemoryBytes>>20, st.MemoryMaxUsage>>20)
		} else {
			msg += fmt.Sprintf("Requested: %dMB", c.state.Limits.MemoryBytes>>20)
		}
		t.Message = msg + " (" + t.Message + ")"
	case c.destroying:
		t.Reason = ReasonDestroyed
		t.ExitCode = -1
		t.Message = "destroyed (" + t.Message + ")"
	}
	c.term = t
	c.state.Termination = toCheckpointTermination(t)
	if err := writeState(c.dir, &c.state); err != nil {
		l.log.Warn("checkpointing a container's end", "container", c.id, "err", err)
	}
	if c.stopOOM != nil {
		c.stopOOM()
	}
	close(c.done)
	l.log.Debug("container ended", "container", c.id, "termination", t.Message)
}

// lostTermination is the end of a container whose exit status is lost.
func lostTermination(err error) Termination {
	return Termination{ExitCode: -1, Message: "the container ended while no agent was its parent; its exit status is lost (" + err.Error() + ")"}
}

// Wait implements Containerizer.
func (l *Linux) Wait(ctx context.Context, id string) (Termination, error) {
	if n, err := l.nestedByID(ctx, id); n != nil || err != nil {
		return l.waitNested(ctx, n, err)
	}
	c, err := l.lookup(ctx, id)
	if err != nil {
		return Termination{}, err
	}
	select {
	case <-c.done:
		return c.term, nil
	default:
	}
	select {
	case <-c.done:
		return c.term, nil
	case <-l.closing:
		return Termination{}, fmt.Errorf("container %q: %w", id, ErrClosed)
	case <-ctx.Done():
		return Termination{}, ctx.Err()
	}
}

// Signal implements Containerizer. Every process in the container's cgroup
// gets sig, but its init: the init forwards most signals to the task,
// which would get them twice. SIGKILL reaches the init too.
func (l *Linux) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	if n, err := l.nestedByID(ctx, id); n != nil || err != nil {
		return l.signalNested(n, err, sig)
	}
	c, err := l.lookup(ctx, id)
	if err != nil {
		return err
	}
	if isClosed(c.done) {
		return nil
	}
	pids, err := l.cg.Pids(c.state.Cgroup)
	if err != nil {
		if errors.Is(err, cgroups.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("container %q: %w", id, err)
	}
	init := c.proc.Pid()
	for _, pid := range pids {
		if pid == init {
			continue
		}
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("container %q: signalling pid %d: %w", id, pid, err)
		}
	}
	if sig == syscall.SIGKILL || !slicesContainsOtherThan(pids, init) {
		// An init alone (its task gone): it gets the signal itself.
		if err := c.proc.Signal(sig); err != nil {
			return fmt.Errorf("container %q: %w", id, err)
		}
	}
	return nil
}

func slicesContainsOtherThan(pids []int, pid int) bool {
	for _, p := range pids {
		if p != pid {
			return true
		}
	}
	return false
}

// Destroy implements Containerizer.
func (l *Linux) Destroy(ctx context.Context, id string) error {
	if n, err := l.nestedByID(ctx, id); n != nil || err != nil {
		return l.destroyNested(ctx, n, err)
	}
	c, err := l.lookup(ctx, id)
	if err != nil {
		return err
	}
	if err := l.destroyNestedOf(ctx, id); err != nil {
		return err
	}
	l.mu.Lock()
	if c.destroying {
		l.mu.Unlock()
		select {
		case <-c.destroyed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.destroying = true
	l.mu.Unlock()
	err = l.destroy(ctx, c)
	l.mu.Lock()
	if err != nil {
		c.destroying = false // another call may try again
		l.mu.Unlock()
		return err
	}
	if l.containers[id] == c {
		delete(l.containers, id)
	}
	close(c.destroyed)
	l.mu.Unlock()
	return nil
}

func (l *Linux) destroy(ctx context.Context, c *linuxContainer) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("container %q: destroy: %s: %w", c.id, what, err)
	}
	if err := l.cg.Kill(ctx, c.state.Cgroup); err != nil && !errors.Is(err, cgroups.ErrNotFound) {
		return fail("killing its processes", err)
	}
	if c.proc != nil {
		c.proc.Kill()
		select {
		case <-c.done:
		case <-l.closing:
			return fail("waiting for its end", ErrClosed)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := l.cg.Destroy(ctx, c.state.Cgroup); err != nil && !errors.Is(err, cgroups.ErrNotFound) {
		return fail("removing its cgroups", err)
	}
	if c.state.Rootfs != "" && l.images != nil {
		// ErrNotFound: released by an earlier Destroy that failed later.
		if err := l.images.Release(c.dir); err != nil && !errors.Is(err, image.ErrNotFound) {
			return fail("releasing its root filesystem", err)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fail("removing its state", err)
	}
	return nil
}

// Usage implements Containerizer.
func (l *Linux) Usage(ctx context.Context, id string) (Usage, error) {
	if n, err := l.nestedByID(ctx, id); n != nil || err != nil {
		return l.usageNested(n, err)
	}
	c, err := l.lookup(ctx, id)
	if err != nil {
		return Usage{}, err
	}
	st, err := l.cg.Stats(c.state.Cgroup)
	if err != nil {
		return Usage{}, fmt.Errorf("container %q: usage: %w", id, err)
	}
	rss := st.MemoryRSS
	if rss == 0 {
		rss = st.MemoryUsage
	}
	return Usage{
		Timestamp:        l.clock.Now(),
		CPUUserSeconds:   st.CPUUser.Seconds(),
		CPUSystemSeconds: st.CPUSystem.Seconds(),
		RSSBytes:         rss,
		Processes:        int(st.Processes),
		Threads:          int(max(st.Threads, st.Processes)),
		Limits:           c.state.Limits,
	}, nil
}

// Stats samples the container's cgroups, for the agent's
// ResourceStatistics (see cgroups.Stats.Fill).
func (l *Linux) Stats(ctx context.Context, id string) (cgroups.Stats, error) {
	c, err := l.lookup(ctx, id)
	if err != nil {
		return cgroups.Stats{}, err
	}
	return l.cg.Stats(c.state.Cgroup)
}

// Containers implements Containerizer.
func (l *Linux) Containers(ctx context.Context) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	ids := make([]string, 0, len(l.containers))
	for id, c := range l.containers {
		if isClosed(c.started) && c.launchErr == nil {
			ids = append(ids, id)
		}
	}
	ids = append(ids, l.nestedIDs()...)
	sort.Strings(ids)
	return ids, nil
}

// Recover implements Containerizer. A container whose launch did not get
// as far as its checkpoint is removed, cgroups, root filesystem and all.
func (l *Linux) Recover(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(l.opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("containerizer: linux: recover: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id := e.Name()
		if !e.IsDir() || ValidateID(id) != nil {
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, ErrClosed
		}
		_, known := l.containers[id]
		l.mu.Unlock()
		if known {
			continue
		}
		dir := filepath.Join(l.opts.StateDir, id)
		var st linuxState
		b, err := os.ReadFile(filepath.Join(dir, linuxStateFile))
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil || st.ID != id {
			l.log.Warn("removing a container whose launch did not finish", "container", id, "err", err)
			l.removeLeftover(ctx, id, dir)
			continue
		}
		c := &linuxContainer{
			id: id, dir: dir, state: st,
			started:   make(chan struct{}),
			done:      make(chan struct{}),
			destroyed: make(chan struct{}),
		}
		close(c.started)
		var attachErr error
		if st.Termination == nil {
			c.proc, attachErr = launcher.Attach(st.Handle)
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, ErrClosed
		}
		if _, ok := l.containers[id]; ok {
			l.mu.Unlock()
			continue // launched meanwhile
		}
		l.containers[id] = c
		switch {
		case st.Termination != nil:
			c.term = st.Termination.termination()
			close(c.done)
		case attachErr != nil:
			// The init is gone: ended while no agent ran. It wrote how
			// the task ended, unless it was killed.
			if ws, ok := launcher.ReadStatus(st.Handle); ok {
				l.ended(c, terminationOf(ws))
			} else {
				l.ended(c, lostTermination(attachErr))
			}
		}
		l.mu.Unlock()
		if c.proc != nil {
			l.watch(c)
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// removeLeftover removes what a launch that did not finish left.
func (l *Linux) removeLeftover(ctx context.Context, id, dir string) {
	if err := l.cg.Destroy(ctx, id); err != nil && !errors.Is(err, cgroups.ErrNotFound) {
		l.log.Warn("removing leftover cgroups", "container", id, "err", err)
	}
	if l.images != nil {
		if err := l.images.Release(dir); err != nil && !errors.Is(err, image.ErrNotFound) {
			l.log.Warn("releasing a leftover root filesystem", "container", id, "err", err)
		}
	}
	os.RemoveAll(dir)
}

// Close implements Containerizer.
func (l *Linux) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.closing)
		l.cancel()
		l.closeNested()
	}
	l.mu.Unlock()
	l.watchers.Wait()
	return nil
}

// lookup finds a container and waits until its launch has finished.
func (l *Linux) lookup(ctx context.Context, id string) (*linuxContainer, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("container %q: %w", id, ErrClosed)
	}
	c, ok := l.containers[id]
	l.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, ErrUnknownContainer)
	}
	select {
	case <-c.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.launchErr != nil {
		return nil, fmt.Errorf("container %q: %w (its launch failed)", id, ErrUnknownContainer)
	}
	return c, nil
}

// user resolves a user name on the host; nil runs the container as the
// agent's own user.
func (l *Linux) user(id, name string) (*launcher.User, error) {
	cred, err := credentialOf(id, name, l.root, os.Geteuid())
	if cred == nil || err != nil {
		return nil, err
	}
	return &launcher.User{UID: cred.Uid, GID: cred.Gid, Groups: append([]uint32{}, cred.Groups...)}, nil
}

// mountPointBeneath makes the mount point of a volume in the sandbox: a
// directory, or an empty file for a file. No symbolic link is followed:
// the sandbox is the task's to write, and a link it left there must not
// make the agent create anything elsewhere on the host.
func mountPointBeneath(sandbox string, v Volume, usr *launcher.User) error {
	fi, err := os.Stat(v.HostPath)
	if err != nil {
		return err
	}
	rel := filepath.Clean(v.ContainerPath)
	if fi.IsDir() {
		fd, err := mkdirBeneath(sandbox, rel, usr)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	parent, name := filepath.Split(rel)
	fd, err := mkdirBeneath(sandbox, parent, usr)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, name, unix.O_CREAT|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(sandbox, rel), Err: err}
	}
	return unix.Close(f)
}

// mkdirBeneath makes the directory rel and its missing parents beneath
// dir, the new ones owned by usr, following no symbolic link, and returns
// a descriptor of it.
func mkdirBeneath(dir, rel string, usr *launcher.User) (int, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	for _, name := range strings.Split(filepath.Clean(rel), "/") {
		if name == "" || name == "." {
			continue
		}
		err := unix.Mkdirat(fd, name, 0o755)
		switch {
		case err == nil && usr != nil:
			err = unix.Fchownat(fd, name, int(usr.UID), int(usr.GID), unix.AT_SYMLINK_NOFOLLOW)
		case err == unix.EEXIST:
			err = nil
		}
		var next int
		if err == nil {
			next, err = unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		}
		unix.Close(fd)
		if err != nil {
			return -1, &os.PathError{Op: "mkdir", Path: filepath.Join(dir, rel), Err: err}
		}
		fd = next
	}
	return fd, nil
}

// openOutput opens a sandbox output file for appending, created owned by
// usr.
func openOutput(path string, usr *launcher.User) (*os.File, error) {
	// 0640, as the process containerizer's: a task's output is for its
	// user and group (and the agent), not for other users' tasks.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, err
	}
	if usr != nil {
		if err := f.Chown(int(usr.UID), int(usr.GID)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// writeState writes a container's checkpoint atomically.
func writeState(dir string, st *linuxState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, linuxStateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, linuxStateFile))
}

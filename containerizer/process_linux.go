package containerizer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is the process containerizer: each container is one fork/exec of
// its command in a new session, so in a process group of its own, which is
// all it isolates (see the package documentation).
//
// Each container's main process is watched through its pidfd, parked in the
// Go runtime's poller: one goroutine per container and no thread, helper
// process or polling loop. Containers are checkpointed to a journal in
// ProcessOptions.StateDir (pid, start time, boot ID, and the termination
// once known: one small append per event, no file per container) and never
// get a parent-death signal, so they survive the agent and a later Process
// on the same StateDir recovers them.
type Process struct {
	log      *slog.Logger
	clock    Clock
	bootID   string
	pageSize uint64
	root     bool
	uid      int
	devNull  int // the containers' stdin, shared; closed by Close
	journal  *journal
	reaper   *reaperClient // the state directory's reaper, if one runs or is configured
	// viaReaper: containers are forked by the reaper (ProcessOptions.Reaper).
	viaReaper bool

	mu         sync.Mutex
	containers map[string]*container
	closed     bool
	closing    chan struct{} // closed by Close
	watchers   sync.WaitGroup
	closeOnce  sync.Once
}

var _ Containerizer = (*Process)(nil)

// container is one container of a Process.
type container struct {
	id      string
	sandbox string
	limits  Limits
	parent  string // the container it is nested in (nested_linux.go), or ""
	// env is the environment the main process was executed with, which
	// nested containers inherit; nil when not known (recovered from a
	// checkpoint that did not record it).
	env []string

	started   chan struct{} // closed when Launch has finished, well or not
	launchErr error         // set before started is closed

	// Set before started is closed, read-only afterwards (pidfd is also read
	// by Close under Process.mu, and closed by the watcher when it ends).
	pid   int      // of the main process; also the process group's ID
	pidfd *os.File // the main process's pidfd, registered with the runtime poller
	child bool     // the main process was forked by this Process, so it can be reaped
	// reaped: the main process is the reaper's child, and the reaper gives
	// its status.
	reaped bool
	cp     *checkpoint // nil when not checkpointed (a failed launch)

	// Guarded by Process.mu.
	destroying bool // Destroy has been called: the end is its doing
	forgotten  bool // Destroy is removing the container

	// Set before done is closed, read-only afterwards.
	term      Termination
	rusage    *syscall.Rusage // of the reaped main process with its waited-for children
	groupGone bool            // the process group may name other processes now: never signal it
	done      chan struct{}
}

// NewProcess returns a process containerizer keeping its checkpoints in
// opts.StateDir. It needs Linux 5.3 or later (pidfds). Call Recover before
// the first Launch when the StateDir may hold containers of an earlier run.
func NewProcess(opts ProcessOptions) (*Process, error) {
	if opts.StateDir == "" {
		return nil, errors.New("containerizer: ProcessOptions.StateDir is required")
	}
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("containerizer: state dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("containerizer: state dir: %w", err)
	}
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return nil, fmt.Errorf("containerizer: the process containerizer needs pidfds (Linux 5.3 or later): %w", err)
	}
	unix.Close(fd)
	j, skipped, err := openJournal(dir)
	if err != nil {
		return nil, fmt.Errorf("containerizer: state dir: %w", err)
	}
	devNull, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		j.close()
		return nil, fmt.Errorf("containerizer: %w", err)
	}
	p := &Process{
		log:        opts.Logger,
		clock:      opts.Clock,
		bootID:     readBootID(),
		pageSize:   uint64(os.Getpagesize()),
		root:       os.Geteuid() == 0,
		uid:        os.Geteuid(),
		devNull:    devNull,
		journal:    j,
		containers: make(map[string]*container),
		closing:    make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.clock == nil {
		p.clock = systemClock{}
	}
	if p.reaper, err = newReaperClient(dir, opts.Reaper, p.log); err != nil {
		j.close()
		unix.Close(devNull)
		return nil, fmt.Errorf("containerizer: state dir: %w", err)
	}
	p.viaReaper = len(opts.Reaper) > 0
	if skipped > 0 {
		p.log.Warn("skipped unreadable records of the state journal", "dir", dir, "records", skipped)
	}
	return p, nil
}

// Launch implements Containerizer.
func (p *Process) Launch(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.hostOnly(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cred, err := p.credential(cfg.ID, cfg.User)
	if err != nil {
		return err
	}
	c := &container{
		id:      cfg.ID,
		sandbox: cfg.Sandbox,
		limits:  cfg.Limits,
		env:     knownEnv(cfg.Env),
		started: make(chan struct{}),
		done:    make(chan struct{}),
		child:   !p.viaReaper,
		reaped:  p.viaReaper,
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.closedErr(cfg.ID)
	}
	if _, ok := p.containers[cfg.ID]; ok {
		p.mu.Unlock()
		return fmt.Errorf("container %q: %w", cfg.ID, ErrContainerExists)
	}
	p.containers[cfg.ID] = c
	// The watcher-to-be is counted now, so Close waits for launches in
	// flight.
	p.watchers.Add(1)
	p.mu.Unlock()

	if err := p.start(c, &cfg, cred); err != nil {
		c.launchErr = err
		p.mu.Lock()
		delete(p.containers, cfg.ID)
		p.mu.Unlock()
		close(c.started)
		p.log.Warn("container launch failed", "container", cfg.ID, "err", err)
		return err
	}
	close(c.started)
	p.log.Debug("container launched", "container", cfg.ID, "pid", c.pid)
	return nil
}

// start forks and execs the container's main process and starts its
// watcher, which takes over the watchers count Launch added; on error it has
// given the count back.
func (p *Process) start(c *container, cfg *Config, cred *syscall.Credential) (err error) {
	watching := false
	defer func() {
		if !watching {
			p.watchers.Done()
		}
	}()
	fail := func(what string, err error) error {
		return fmt.Errorf("container %q: %s: %w: %w", c.id, what, ErrLaunchFailed, err)
	}
	if err := os.MkdirAll(cfg.Sandbox, 0o755); err != nil {
		return fail("creating the sandbox", err)
	}
	if cred != nil {
		if err := os.Chown(cfg.Sandbox, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail("giving the sandbox to user "+cfg.User, err)
		}
	}
	uid, gid := -1, -1
	if cred != nil {
		uid, gid = int(cred.Uid), int(cred.Gid)
	}
	if err := LinkVolumes(cfg.Sandbox, cfg.Volumes, uid, gid); err != nil {
		return fail("exposing the volumes", err)
	}
	argv0, argv, err := resolveCommand(cfg)
	if err != nil {
		return fail("finding the executable", err)
	}
	// Launch counts as a watcher, so Close keeps devNull open until start
	// returns.
	fds := [3]int{p.devNull, -1, -1}
	defer func() {
		for _, fd := range fds[1:] {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for i, name := range []string{1: "stdout", 2: "stderr"} {
		if name == "" {
			continue
		}
		path := filepath.Join(cfg.Sandbox, name)
		// Never through a link: the sandbox is the task's, and a link
		// there (its own, or one an archive it fetched left) would have
		// this root process write to and chown a file of its choosing.
		if fds[i], err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o640); err != nil {
			return fail("opening "+name, &os.PathError{Op: "open", Path: path, Err: err})
		}
		if cred != nil {
			if err := unix.Fchown(fds[i], int(cred.Uid), int(cred.Gid)); err != nil {
				return fail("giving "+name+" to user "+cfg.User, err)
			}
		}
	}

	// Recorded before the fork: an agent that dies right after it still
	// finds the process when it restarts (Recover), where Mesos writes the
	// forked pid before letting the child exec.
	cp := &checkpoint{Version: checkpointVersion, ID: c.id, BootID: p.bootID, Sandbox: cfg.Sandbox, User: cfg.User, Env: c.env, Reaper: c.reaped, LaunchTicks: bootTicks()}
	cp.Limits.CPUs, cp.Limits.MemoryBytes = cfg.Limits.CPUs, cfg.Limits.MemoryBytes
	if err := p.journal.launched(cp); err != nil {
		return fail("checkpointing", err)
	}
	unlaunch := func() {
		if err := p.journal.destroyed(c.id); err != nil {
			p.log.Warn("cannot checkpoint a failed launch", "container", c.id, "err", err)
		}
	}

	pidfd := -1
	var pid int
	if c.reaped {
		// The reaper forks it as below, and sends its pidfd back.
		pid, pidfd, err = p.reaper.start(c.id, argv0, argv, cfg.Env, cfg.Sandbox, cred, cfg.DiesWithAgent, fds)
	} else {
		attr := &syscall.ProcAttr{
			Dir:   cfg.Sandbox,
			Env:   cfg.Env, // exactly: syscall.ForkExec adds nothing, and nil is empty
			Files: []uintptr{uintptr(fds[0]), uintptr(fds[1]), uintptr(fds[2])},
			Sys: &syscall.SysProcAttr{
				// A new session: its own process group to signal, and no
				// controlling terminal whose hang-up could reach it. No
				// Pdeathsig: containers outlive the agent.
				Setsid:     true,
				Credential: cred,
				PidFD:      &pidfd,
			},
		}
		if cfg.DiesWithAgent {
			attr.Sys.Pdeathsig = syscall.SIGKILL
		}
		pid, err = syscall.ForkExec(argv0, argv, attr)
	}
	if err != nil {
		unlaunch()
		return fail("starting "+argv0, err)
	}
	c.pid = pid
	if pidfd < 0 {
		// No CLONE_PIDFD; the child is not reaped yet, so its pid is still
		// its own.
		if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
			unix.Kill(-pid, unix.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
			unlaunch()
			return fail("opening a pidfd", err)
		}
	}
	f, err := pidfdFile(pidfd, c.id)
	if err != nil {
		unix.Kill(-pid, unix.SIGKILL)
		if c.reaped {
			p.reaper.forget(c.id, pid)
		} else {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
		unlaunch()
		return fail("watching the process", err)
	}

	// The child cannot have been reaped yet (the reaper reaps only when
	// asked), so its stat is its own.
	launching := *cp
	cp = &launching
	cp.PID = pid
	st, statErr := readProcStat(pid, nil)
	if statErr == nil {
		cp.StartTicks = st.StartTicks
	}
	cpErr := statErr
	if cpErr == nil {
		cpErr = p.journal.launched(cp)
	}

	p.mu.Lock()
	c.pidfd = f
	if cpErr == nil {
		c.cp = cp
	}
	if p.closed {
		stopWatching(f)
	}
	p.mu.Unlock()
	watching = true
	go p.watch(c)

	if cpErr != nil {
		// Unrecoverable after a restart: do not let it run.
		p.signalMain(c, unix.SIGKILL)
		unix.Kill(-pid, unix.SIGKILL)
		select {
		case <-c.done:
		case <-p.closing:
		}
		if c.reaped {
			p.reaper.forget(c.id, pid)
		}
		unlaunch()
		return fail("checkpointing", cpErr)
	}
	return nil
}

// bootTicks is the time since boot in the clock ticks of /proc's start
// times.
func bootTicks() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return uint64(ts.Sec)*userHZ + uint64(ts.Nsec)*userHZ/1e9
}

// pidfdFile wraps a pidfd in an os.File registered with the runtime's poller:
// a pidfd polls readable once its process has exited.
func pidfdFile(fd int, id string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "pidfd of container "+id), nil
}

// stopWatching makes a watcher blocked on f return at once.
func stopWatching(f *os.File) {
	f.SetReadDeadline(time.Unix(1, 0))
}

// watch waits for the end of c's main process, publishes its termination
// and checkpoints it. It returns without publishing when the Process is
// closed.
func (p *Process) watch(c *container) {
	defer p.watchers.Done()
	defer c.pidfd.Close()

	var (
		ws     syscall.WaitStatus
		ru     syscall.Rusage
		reaped bool
		wErr   error
	)
	reap := func() bool {
		for {
			wpid, err := syscall.Wait4(c.pid, &ws, syscall.WNOHANG, &ru)
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil:
				wErr = err // ECHILD: someone else reaped it
				return true
			case wpid == c.pid:
				reaped = true
				return true
			}
			return false
		}
	}
	rc, err := c.pidfd.SyscallConn()
	if err == nil {
		err = rc.Read(func(fd uintptr) bool {
			if c.child {
				return reap()
			}
			if !pidfdReadable(int(fd)) {
				return false
			}
			if c.reaped {
				return true
			}
			// A recovered process is still this process's child when the
			// agent restarted inside one OS process: reap it for its status.
			var info unix.Siginfo
			if unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil) == nil {
				reap()
			}
			return true
		})
	}
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			p.log.Error("cannot watch container; it is left running", "container", c.id, "pid", c.pid, "err", err)
		}
		return
	}

	if c.reaped {
		// The main process has exited, so the reaper can reap it now.
		var state string
		var ru *syscall.Rusage
		state, ws, ru, wErr = p.reaper.status(c.id, c.pid)
		if state == reaperEnded && ws != 0xffff {
			reaped, c.rusage = true, ru
		} else if wErr == nil {
			wErr = fmt.Errorf("the reaper answered %q", state)
		}
	}
	var term Termination
	switch {
	case reaped && (ws.Exited() || ws.Signaled()):
		term = terminationOf(ws)
	case c.child || c.reaped:
		term = Termination{ExitCode: -1, Message: fmt.Sprintf("ended; exit status unknown: %v", wErr)}
	default:
		term = Termination{ExitCode: -1, Message: "ended; exit status unknown: the process was recovered after an agent restart and is not the agent's child"}
	}
	if reaped && !c.reaped {
		c.rusage = &ru
	}
	// The group's ID may be reused once the group is empty; remember that
	// it was, so it is never signalled again.
	c.groupGone = unix.Kill(-c.pid, 0) == unix.ESRCH

	p.mu.Lock()
	destroying := c.destroying
	p.mu.Unlock()
	if destroying {
		term.Reason = ReasonDestroyed
		term.Message = "destroyed: " + term.Message
	} else if c.cp != nil {
		if err := p.journal.ended(c.id, term); err != nil {
			p.log.Warn("cannot checkpoint the container's termination", "container", c.id, "err", err)
		} else if c.reaped {
			p.reaper.forget(c.id, c.pid)
		}
	}
	c.term = term
	close(c.done)
	p.log.Debug("container ended", "container", c.id, "pid", c.pid, "termination", term.Message)
}

// terminationOf describes the wait status of a process that exited or was
// killed.
func terminationOf(ws syscall.WaitStatus) Termination {
	if ws.Signaled() {
		t := Termination{ExitCode: -1, Signal: ws.Signal(), Message: "killed by signal " + signalName(ws.Signal())}
		if ws.CoreDump() {
			t.Message += " (core dumped)"
		}
		return t
	}
	return Termination{ExitCode: ws.ExitStatus(), Message: fmt.Sprintf("exited with status %d", ws.ExitStatus())}
}

// pidfdReadable reports whether the pidfd's process has exited.
func pidfdReadable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return strconv.Itoa(int(sig))
}

// Wait implements Containerizer.
func (p *Process) Wait(ctx context.Context, id string) (Termination, error) {
	c, err := p.lookup(ctx, id)
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
	case <-ctx.Done():
		return Termination{}, ctx.Err()
	case <-p.closing:
		return Termination{}, p.closedErr(id)
	}
}

// Signal implements Containerizer.
func (p *Process) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	if sig <= 0 || sig > 64 {
		return fmt.Errorf("container %q: signal %d: %w", id, int(sig), unix.EINVAL)
	}
	c, err := p.lookup(ctx, id)
	if err != nil {
		return err
	}
	if err := p.signalGroup(c, sig); err != nil {
		return fmt.Errorf("container %q: signal %s: %w", id, signalName(sig), err)
	}
	return nil
}

// Destroy implements Containerizer.
func (p *Process) Destroy(ctx context.Context, id string) error {
	c, err := p.lookup(ctx, id)
	if err != nil {
		return err
	}
	if err := p.destroyNestedOf(ctx, id); err != nil {
		return err
	}
	p.mu.Lock()
	c.destroying = true
	p.mu.Unlock()
	// The main process by its pidfd, which reaches it even if it left its
	// group; then the group.
	p.signalMain(c, unix.SIGKILL)
	if err := p.signalGroup(c, unix.SIGKILL); err != nil {
		p.log.Warn("cannot kill the container's process group", "container", id, "err", err)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return p.closedErr(id)
	}
	p.mu.Lock()
	first := !c.forgotten
	c.forgotten = true
	p.mu.Unlock()
	if !first {
		return nil
	}
	if c.cp != nil {
		if err := p.journal.destroyed(id); err != nil {
			p.log.Warn("cannot checkpoint the container's destruction", "container", id, "err", err)
		}
		if c.cp.Reaper {
			p.reaper.forget(id, c.pid)
		}
	}
	p.mu.Lock()
	delete(p.containers, id)
	p.mu.Unlock()
	p.log.Debug("container destroyed", "container", id)
	return nil
}

// signalMain sends sig to the main process through its pidfd, if it is still
// watched.
func (p *Process) signalMain(c *container, sig syscall.Signal) {
	if c.pidfd == nil || ended(c) {
		return
	}
	rc, err := c.pidfd.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.PidfdSendSignal(int(fd), sig, nil, 0)
	})
}

// signalGroup sends sig to c's process group, unless the group's ID may now
// name someone else's processes: after the main process has been reaped the
// pid it was is free once the group empties, so the group is signalled only
// if it was not found empty at the end and no other container has its ID.
func (p *Process) signalGroup(c *container, sig syscall.Signal) error {
	if ended(c) {
		if c.groupGone {
			return nil
		}
		p.mu.Lock()
		for _, o := range p.containers {
			// pid and launchErr are safe to read once started is closed.
			if o != c && isClosed(o.started) && o.launchErr == nil && o.pid == c.pid && !ended(o) {
				p.mu.Unlock()
				return nil
			}
		}
		p.mu.Unlock()
	}
	if err := unix.Kill(-c.pid, sig); err != nil && err != unix.ESRCH {
		return err
	}
	return nil
}

// Usage implements Containerizer.
func (p *Process) Usage(ctx context.Context, id string) (Usage, error) {
	c, err := p.lookup(ctx, id)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Timestamp: p.clock.Now(), Limits: c.limits}
	var utime, stime uint64
	if !ended(c) || !c.groupGone {
		procs, threads, ut, st, rss, err := groupUsage(c.pid)
		if err != nil {
			return Usage{}, fmt.Errorf("container %q: usage: %w", id, err)
		}
		u.Processes, u.Threads, u.RSSBytes = procs, threads, rss*p.pageSize
		utime, stime = ut, st
	}
	u.CPUUserSeconds = float64(utime) / userHZ
	u.CPUSystemSeconds = float64(stime) / userHZ
	if ended(c) && c.rusage != nil {
		u.CPUUserSeconds += time.Duration(c.rusage.Utime.Nano()).Seconds()
		u.CPUSystemSeconds += time.Duration(c.rusage.Stime.Nano()).Seconds()
	}
	return u, nil
}

// Containers implements Containerizer.
func (p *Process) Containers(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	ids := make([]string, 0, len(p.containers))
	for id := range p.containers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Recover implements Containerizer. A checkpointed container whose main
// process still runs (same boot, same pid, same start time) is watched
// again; its exit status will be unknown unless it is still this process's
// child. Processes its main process left behind when it ended while the
// agent was down are not found again: the process containerizer knows a
// container only by its main process.
func (p *Process) Recover(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	var recovered []string
	for _, cp := range p.journal.checkpoints() {
		if err := ctx.Err(); err != nil {
			return recovered, err
		}
		id := cp.ID
		p.mu.Lock()
		_, known := p.containers[id]
		p.mu.Unlock()
		if known {
			continue
		}
		c := p.recoverContainer(cp)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			if c.pidfd != nil {
				c.pidfd.Close()
			}
			return recovered, ErrClosed
		}
		if _, known := p.containers[id]; known {
			p.mu.Unlock()
			if c.pidfd != nil {
				c.pidfd.Close()
			}
			continue
		}
		p.containers[id] = c
		if c.pidfd != nil {
			p.watchers.Add(1)
			go p.watch(c)
		}
		p.mu.Unlock()
		recovered = append(recovered, id)
		if ended(c) {
			p.log.Info("recovered an ended container", "container", id, "termination", c.term.Message)
		} else {
			p.log.Info("recovered a running container", "container", id, "pid", c.pid)
		}
	}
	slices.Sort(recovered)
	return recovered, nil
}

// recoverContainer rebuilds a container from its checkpoint, opening a pidfd
// on its main process if that process is still the one checkpointed.
func (p *Process) recoverContainer(cp *checkpoint) *container {
	started := make(chan struct{})
	close(started)
	c := &container{
		id:      cp.ID,
		sandbox: cp.Sandbox,
		limits:  Limits{CPUs: cp.Limits.CPUs, MemoryBytes: cp.Limits.MemoryBytes},
		started: started,
		done:    make(chan struct{}),
		env:     cp.Env,
		pid:     cp.PID,
		cp:      cp,
		reaped:  cp.Reaper,
	}
	endNow := func(t Termination) *container {
		c.term = t
		// Whatever the group's ID names now is not known to be ours.
		c.groupGone = true
		close(c.done)
		return c
	}
	if cp.Termination != nil {
		return endNow(cp.Termination.termination())
	}
	lost := Termination{ExitCode: -1, Message: "ended while the agent was down; exit status unknown"}
	if p.bootID != "" && cp.BootID != "" && p.bootID != cp.BootID {
		return endNow(lost)
	}
	if cp.PID == 0 {
		// The agent died between recording the launch and recording the
		// pid: find the process, if it was forked.
		if !p.findLaunched(cp) {
			return endNow(Termination{ExitCode: -1, Message: "the agent stopped while launching it; it did not start, or ended with its exit status unknown"})
		}
		c.pid = cp.PID
	}
	same := func() bool {
		st, err := readProcStat(cp.PID, nil)
		return err == nil && st.StartTicks == cp.StartTicks
	}
	if !same() {
		return endNow(p.recoverReaped(cp, lost))
	}
	fd, err := unix.PidfdOpen(cp.PID, 0)
	if err != nil {
		return endNow(lost)
	}
	// The pid could have been reused between the check and the open.
	if !same() {
		unix.Close(fd)
		return endNow(p.recoverReaped(cp, lost))
	}
	f, err := pidfdFile(fd, c.id)
	if err != nil {
		p.log.Warn("cannot watch a recovered container", "container", c.id, "err", err)
		return endNow(lost)
	}
	c.pidfd = f
	return c
}

// findLaunched looks for the main process of a container whose launch was
// recorded but not its pid: the reaper's child of that container, or else
// the session leader working in its sandbox that started after the launch
// began. It records the pid it finds.
func (p *Process) findLaunched(cp *checkpoint) bool {
	pid := 0
	if cp.Reaper {
		pid = p.reaper.find(cp.ID)
	} else {
		pid = findSessionIn(cp.Sandbox, cp.LaunchTicks)
	}
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid, nil)
	if err != nil {
		return false
	}
	found := *cp
	found.PID, found.StartTicks = pid, st.StartTicks
	if err := p.journal.launched(&found); err != nil {
		p.log.Warn("cannot checkpoint a recovered container", "container", cp.ID, "err", err)
	}
	*cp = found
	p.log.Info("found the process of a container whose launch the agent did not finish recording", "container", cp.ID, "pid", pid)
	return true
}

// findSessionIn returns the pid of a session leader whose working directory
// is dir and which started at or after ticks since boot, or 0.
func findSessionIn(dir string, ticks uint64) int {
	d, err := os.Open("/proc")
	if err != nil {
		return 0
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	buf := make([]byte, 1024)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 1 {
			continue
		}
		st, err := readProcStat(pid, buf)
		// A tick of slack: the two clocks are read apart.
		if err != nil || st.Session != pid || st.StartTicks+1 < ticks {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + name + "/cwd"); err == nil && cwd == dir {
			return pid
		}
	}
	return 0
}

// recoverReaped returns how a container launched through the reaper ended,
// if the reaper still knows (it reaped the process for a containerizer that
// died before recording the end), or lost.
func (p *Process) recoverReaped(cp *checkpoint, lost Termination) Termination {
	if !cp.Reaper {
		return lost
	}
	state, ws, _, err := p.reaper.status(cp.ID, cp.PID)
	if err != nil || state != reaperEnded || ws == 0xffff {
		return lost
	}
	t := terminationOf(ws)
	if err := p.journal.ended(cp.ID, t); err == nil {
		p.reaper.forget(cp.ID, cp.PID)
	}
	return t
}

// Close implements Containerizer.
func (p *Process) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.closing)
		p.closeNested()
		for _, c := range p.containers {
			if c.pidfd != nil {
				stopWatching(c.pidfd)
			}
		}
	}
	p.mu.Unlock()
	p.watchers.Wait()
	p.closeOnce.Do(func() {
		unix.Close(p.devNull)
		p.journal.close()
		p.reaper.close()
	})
	return nil
}

// lookup finds a container and waits until its launch has finished.
func (p *Process) lookup(ctx context.Context, id string) (*container, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, p.closedErr(id)
	}
	c, ok := p.containers[id]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, ErrUnknownContainer)
	}
	select {
	case <-c.started:
	default:
		select {
		case <-c.started:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.launchErr != nil {
		return nil, fmt.Errorf("container %q: %w (its launch failed)", id, ErrUnknownContainer)
	}
	return c, nil
}

func (p *Process) closedErr(id string) error {
	return fmt.Errorf("container %q: %w", id, ErrClosed)
}

func ended(c *container) bool { return isClosed(c.done) }

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// credential returns the credential a container of user name runs with, or
// nil to run it as the agent's own user.
func (p *Process) credential(id, name string) (*syscall.Credential, error) {
	return credentialOf(id, name, p.root, p.uid)
}

// credentialOf resolves a container's user on the host: its uid, primary
// gid and supplementary groups; nil runs it as the agent's own user (uid
// self). An agent that is not root runs containers only as itself.
func credentialOf(id, name string, root bool, self int) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	bad := func(problem string, err error) error {
		if err != nil {
			return fmt.Errorf("container %q: user %q: %s: %w: %w", id, name, problem, ErrInvalidConfig, err)
		}
		return fmt.Errorf("container %q: user %q: %s: %w", id, name, problem, ErrInvalidConfig)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, bad("cannot look it up", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, bad("bad uid or gid", err)
	}
	if !root {
		if int(uid) == self {
			return nil, nil
		}
		return nil, bad("the agent is not root, so it runs containers only as its own user", nil)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, bad("cannot list its groups", err)
	}
	groups := make([]uint32, 0, len(gids))
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, bad("bad group id", err)
		}
		groups = append(groups, uint32(n))
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}

// defaultPath is searched for a bare executable name when the container's
// environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// resolveCommand returns the path to execute and argv.
func resolveCommand(cfg *Config) (string, []string, error) {
	cmd := cfg.Command
	if cmd.Shell {
		return "/bin/sh", []string{"sh", "-c", cmd.Value}, nil
	}
	argv := cmd.Args
	if len(argv) == 0 {
		argv = []string{cmd.Value}
	}
	if strings.Contains(cmd.Value, "/") {
		// A relative path is resolved by execve in the sandbox, the working
		// directory.
		return cmd.Value, argv, nil
	}
	path, err := lookPath(cmd.Value, cfg.Env, cfg.Sandbox)
	return path, argv, err
}

// lookPath finds name in the PATH of env, as execvp would in the container.
func lookPath(name string, env []string, sandbox string) (string, error) {
	pathVar := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
			break
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(sandbox, dir)
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH %q: %w", name, pathVar, os.ErrNotExist)
}

package containerizer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/apronhq/apron/containerizer/launcher"
)

// This file is the nested containers (NestedLauncher) of both Linux
// containerizers, and what they share: pipes, terminals, and what a
// nested container takes from its parent's processes.

var (
	_ NestedLauncher = (*Linux)(nil)
	_ NestedLauncher = (*Process)(nil)
)

// Resize sets the window size of a terminal's streams; without a
// terminal it fails with ErrUnsupported.
func (s *Stdio) Resize(rows, columns uint16) error {
	if !s.TTY || s.Stdin == nil {
		return fmt.Errorf("the container has no terminal: %w", ErrUnsupported)
	}
	rc, err := s.Stdin.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: columns})
	}); err != nil {
		return err
	}
	return ierr
}

// nestedPipes makes the pipes of a nested container without a terminal:
// the container's ends (stdin, stdout, stderr) and the caller's.
func nestedPipes() (theirs [3]*os.File, ours *Stdio, err error) {
	var files []*os.File
	ours = &Stdio{}
	for i := range 3 {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return theirs, nil, err
		}
		files = append(files, r, w)
		if i == 0 {
			theirs[0], ours.Stdin = r, w
		} else {
			theirs[i] = w
		}
		switch i {
		case 1:
			ours.Stdout = r
		case 2:
			ours.Stderr = r
		}
	}
	return theirs, ours, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// hostPTY makes a pseudo-terminal of the host's /dev/pts, its slave side
// owned by cred.
func hostPTY(cred *syscall.Credential, rows, columns uint16) (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n uint32
	var serr error
	rc, err := m.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			if serr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); serr != nil {
				return
			}
			n, serr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN)
			if serr == nil && (rows != 0 || columns != 0) {
				serr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: columns})
			}
		})
	}
	if err = errors.Join(err, serr); err != nil {
		m.Close()
		return nil, nil, err
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	if cred != nil {
		if err := s.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			m.Close()
			s.Close()
			return nil, nil, err
		}
	}
	return m, s, nil
}

// procCredential is the identity of a live process: its real uid and
// gid and its supplementary groups (/proc/<pid>/status).
func procCredential(pid int) (*syscall.Credential, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	cred := &syscall.Credential{Groups: []uint32{}}
	var seen int
	for _, line := range strings.Split(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		num := func(s string) uint32 {
			v, perr := strconv.ParseUint(s, 10, 32)
			if perr != nil && err == nil {
				err = fmt.Errorf("/proc/%d/status: %s: %v", pid, key, perr)
			}
			return uint32(v)
		}
		switch {
		case key == "Uid" && len(f) > 0:
			cred.Uid = num(f[0])
			seen++
		case key == "Gid" && len(f) > 0:
			cred.Gid = num(f[0])
			seen++
		case key == "Groups":
			for _, g := range f {
				cred.Groups = append(cred.Groups, num(g))
			}
		}
	}
	if err == nil && seen != 2 {
		err = fmt.Errorf("/proc/%d/status: no Uid or Gid", pid)
	}
	return cred, err
}

// procEnviron is the environment a live process was executed with. Only
// for a process whose environment was not recorded at launch: while a
// process execs (as sh -c execs its last command) the kernel shows it
// none.
func procEnviron(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 && bytes.IndexByte(kv, '=') > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// procChild is the oldest child of a live process, 0 when it has none.
func procChild(pid int) int {
	p := strconv.Itoa(pid)
	b, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	return c
}

// --- the Linux containerizer ---

// linuxNested is a container nested in one of a Linux containerizer's.
type linuxNested struct {
	id, parent string
	started    chan struct{} // closed when LaunchNested has finished
	launchErr  error         // set before started is closed
	dirs       []string      // its cgroups, children of its parent's
	proc       *launcher.Process
	done       chan struct{} // closed once term is set
	term       Termination
	// Guarded by Linux.mu.
	destroying bool
	destroyed  chan struct{}
}

// LaunchNested implements NestedLauncher: the command runs in the
// parent's namespaces, started by launcher.Enter, in a child cgroup
// "nested.<name>" of each of the parent's.
func (l *Linux) LaunchNested(ctx context.Context, cfg NestedConfig) (*Stdio, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	usr, err := l.user(cfg.ID, cfg.User)
	if err != nil {
		return nil, err
	}
	n := &linuxNested{id: cfg.ID, parent: cfg.Parent, started: make(chan struct{}), done: make(chan struct{}), destroyed: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("container %q: %w", cfg.ID, ErrClosed)
	}
	parent := l.containers[cfg.Parent]
	_, exists := l.containers[cfg.ID]
	if _, ok := l.nested[cfg.ID]; ok {
		exists = true
	}
	_, parentNested := l.nested[cfg.Parent]
	switch {
	case exists:
		l.mu.Unlock()
		return nil, fmt.Errorf("container %q: %w", cfg.ID, ErrContainerExists)
	case parentNested:
		l.mu.Unlock()
		return nil, fmt.Errorf("container %q: its parent %q is nested itself: %w", cfg.ID, cfg.Parent, ErrUnsupported)
	case parent == nil:
		l.mu.Unlock()
		return nil, fmt.Errorf("container %q: parent %q: %w", cfg.ID, cfg.Parent, ErrUnknownContainer)
	}
	if l.nested == nil {
		l.nested = map[string]*linuxNested{}
	}
	l.nested[cfg.ID] = n
	l.mu.Unlock()

	stdio, err := l.startNested(ctx, n, parent, &cfg, usr)
	if err != nil {
		n.launchErr = err
		l.mu.Lock()
		delete(l.nested, cfg.ID)
		l.mu.Unlock()
		close(n.started)
		return nil, err
	}
	close(n.started)
	l.log.Debug("nested container launched", "container", cfg.ID, "pid", n.proc.Pid())
	return stdio, nil
}

func (l *Linux) startNested(ctx context.Context, n *linuxNested, parent *linuxContainer, cfg *NestedConfig, usr *launcher.User) (_ *Stdio, err error) {
	select {
	case <-parent.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	running := parent.launchErr == nil && parent.proc != nil && !isClosed(parent.done) && !parent.destroying
	l.mu.Unlock()
	if parent.launchErr != nil {
		return nil, fmt.Errorf("container %q: parent %q: %w", cfg.ID, cfg.Parent, ErrUnknownContainer)
	}
	if !running {
		return nil, fmt.Errorf("container %q: parent %q: %w", cfg.ID, cfg.Parent, ErrNotRunning)
	}
	failed := func(format string, args ...any) error {
		return fmt.Errorf("container %q: %s: %w", cfg.ID, fmt.Sprintf(format, args...), ErrLaunchFailed)
	}
	init := parent.proc.Pid()
	// The parent's identity and environment are its task's (the init's
	// child), as Mesos's DEBUG containers inherit their parent's.
	env := parent.state.Env
	if env == nil {
		if task := procChild(init); task > 0 {
			env, _ = procEnviron(task)
		}
	}
	env = mergeEnv(env, cfg.Env)
	if usr == nil {
		cred, err := procCredential(init)
		if err != nil {
			return nil, fmt.Errorf("container %q: parent %q: %v: %w", cfg.ID, cfg.Parent, err, ErrNotRunning)
		}
		usr = &launcher.User{UID: cred.Uid, GID: cred.Gid, Groups: cred.Groups}
	}

	pdirs, err := l.cg.Dirs(parent.state.Cgroup)
	if err != nil {
		return nil, failed("the parent's cgroups: %v", err)
	}
	defer func() {
		if err != nil {
			removeNestedCgroups(n.dirs)
		}
	}()
	var procs []string
	for _, d := range pdirs {
		nd := filepath.Join(d, "nested."+cfg.name())
		if err := os.Mkdir(nd, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, failed("cgroups: %v", err)
		}
		n.dirs = append(n.dirs, nd)
		procs = append(procs, filepath.Join(nd, "cgroup.procs"))
	}

	spec := &launcher.EnterSpec{
		Target:      parent.proc.Handle(),
		Env:         env,
		User:        usr,
		TTY:         cfg.TTY,
		Rows:        cfg.Rows,
		Columns:     cfg.Columns,
		CgroupProcs: procs,
		Init:        l.opts.Init,
	}
	if c := cfg.Command; c.Shell {
		spec.Args = []string{"/bin/sh", "-c", c.Value}
	} else {
		spec.Path, spec.Args = c.Value, c.Args
		if len(spec.Args) == 0 {
			spec.Args = []string{c.Value}
		}
	}
	var theirs [3]*os.File
	var stdio *Stdio
	if !cfg.TTY {
		if theirs, stdio, err = nestedPipes(); err != nil {
			return nil, failed("pipes: %v", err)
		}
		defer closeAll(theirs[:])
		spec.Stdin, spec.Stdout, spec.Stderr = theirs[0], theirs[1], theirs[2]
	}
	proc, master, err := launcher.Enter(ctx, spec)
	if err != nil {
		if stdio != nil {
			stdio.Close()
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("container %q: %v: %w", cfg.ID, err, ctxErr)
		}
		return nil, failed("%v", err)
	}
	if cfg.TTY {
		stdio = &Stdio{Stdin: master, Stdout: master, TTY: true}
	}
	n.proc = proc
	go l.watchNested(n, parent)
	return stdio, nil
}

// watchNested waits for a nested container's end; its parent's end kills
// it (with a pid namespace of its own the kernel does; without, this
// does).
func (l *Linux) watchNested(n *linuxNested, parent *linuxContainer) {
	ended := make(chan struct{})
	go func() {
		select {
		case <-parent.done:
			l.killNested(context.Background(), n)
		case <-ended:
		}
	}()
	ws, err := n.proc.Wait()
	close(ended)
	t := terminationOf(ws)
	if err != nil {
		t = Termination{ExitCode: -1, Message: "ended; exit status unknown: " + err.Error()}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n.destroying {
		t.Reason = ReasonDestroyed
		t.ExitCode = -1
		t.Message = "destroyed (" + t.Message + ")"
	}
	n.term = t
	close(n.done)
}

// nestedByID is the nested container id, nil when id is not one. It
// waits until the container's launch has finished.
func (l *Linux) nestedByID(ctx context.Context, id string) (*linuxNested, error) {
	l.mu.Lock()
	n, closed := l.nested[id], l.closed
	l.mu.Unlock()
	switch {
	case n == nil:
		return nil, nil
	case closed:
		return nil, fmt.Errorf("container %q: %w", id, ErrClosed)
	}
	select {
	case <-n.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if n.launchErr != nil {
		return nil, fmt.Errorf("container %q: %w (its launch failed)", id, ErrUnknownContainer)
	}
	return n, nil
}

// nestedPids are the host pids of a nested container's processes, its
// helper's included.
func (n *linuxNested) pids() []int {
	var pids []int
	for _, d := range n.dirs {
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			if b, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						pids = append(pids, pid)
					}
				}
			}
			return nil
		})
	}
	return sortedUniquePids(pids)
}

func sortedUniquePids(pids []int) []int {
	seen := map[int]bool{}
	out := pids[:0]
	for _, p := range pids {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// waitNested is Wait for a nested container.
func (l *Linux) waitNested(ctx context.Context, n *linuxNested, err error) (Termination, error) {
	if err != nil {
		return Termination{}, err
	}
	select {
	case <-n.done:
		return n.term, nil
	case <-l.closing:
		return Termination{}, fmt.Errorf("container %q: %w", n.id, ErrClosed)
	case <-ctx.Done():
		return Termination{}, ctx.Err()
	}
}

// signalNested is Signal for a nested container: every process of its
// cgroups but its helper, which would forward the signal a second time;
// SIGKILL, or a helper alone, reaches the helper too.
func (l *Linux) signalNested(n *linuxNested, err error, sig syscall.Signal) error {
	if err != nil || isClosed(n.done) {
		return err
	}
	helper := n.proc.Pid()
	others := false
	for _, pid := range n.pids() {
		if pid == helper {
			continue
		}
		others = true
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("container %q: signalling pid %d: %w", n.id, pid, err)
		}
	}
	if sig == syscall.SIGKILL || !others {
		return n.proc.Signal(sig)
	}
	return nil
}

// killNested kills every process of a nested container until none is
// left, and waits for its end.
func (l *Linux) killNested(ctx context.Context, n *linuxNested) error {
	for {
		pids := n.pids()
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		n.proc.Kill()
		if len(pids) == 0 {
			break
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.closing:
		return fmt.Errorf("container %q: %w", n.id, ErrClosed)
	}
}

// destroyNested is Destroy for a nested container.
func (l *Linux) destroyNested(ctx context.Context, n *linuxNested, err error) error {
	if err != nil {
		return err
	}
	l.mu.Lock()
	if n.destroying {
		l.mu.Unlock()
		select {
		case <-n.destroyed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.destroying = true
	l.mu.Unlock()
	err = l.killNested(ctx, n)
	if err == nil {
		err = removeNestedCgroups(n.dirs)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		n.destroying = false
		return fmt.Errorf("container %q: destroy: %w", n.id, err)
	}
	if l.nested[n.id] == n {
		delete(l.nested, n.id)
	}
	close(n.destroyed)
	return nil
}

// removeNestedCgroups removes a nested container's cgroups, once empty.
func removeNestedCgroups(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		for try := 0; ; try++ {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || try == 100 {
				errs = append(errs, fmt.Errorf("removing %s: %w", d, err))
				break
			}
			time.Sleep(10 * time.Millisecond) // a process on its way out
		}
	}
	return errors.Join(errs...)
}

// usageNested is Usage for a nested container, from its processes' /proc
// stats.
func (l *Linux) usageNested(n *linuxNested, err error) (Usage, error) {
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Timestamp: l.clock.Now()}
	var ut, st uint64
	buf := make([]byte, 1024)
	for _, pid := range n.pids() {
		s, err := readProcStat(pid, buf)
		if err != nil || s.State == 'Z' {
			continue
		}
		u.Processes++
		u.Threads += s.Threads
		ut += s.UTime + s.CUTime
		st += s.STime + s.CSTime
		u.RSSBytes += s.RSSPages * uint64(os.Getpagesize())
	}
	u.CPUUserSeconds, u.CPUSystemSeconds = float64(ut)/userHZ, float64(st)/userHZ
	return u, nil
}

// destroyNestedOf destroys the nested containers of parent, for its Destroy.
func (l *Linux) destroyNestedOf(ctx context.Context, parent string) error {
	l.mu.Lock()
	var ns []*linuxNested
	for _, n := range l.nested {
		if n.parent == parent {
			ns = append(ns, n)
		}
	}
	l.mu.Unlock()
	var errs []error
	for _, n := range ns {
		select {
		case <-n.started:
		case <-ctx.Done():
			return ctx.Err()
		}
		if n.launchErr == nil {
			if err := l.destroyNested(ctx, n, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// nestedIDs lists the nested containers; l.mu is held.
func (l *Linux) nestedIDs() []string {
	var ids []string
	for id, n := range l.nested {
		if isClosed(n.started) && n.launchErr == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// closeNested kills the nested containers, which nothing recovers, for
// Close; l.mu is held.
func (l *Linux) closeNested() {
	for _, n := range l.nested {
		if isClosed(n.started) && n.launchErr == nil {
			for _, pid := range n.pids() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			n.proc.Kill()
		}
	}
}

// --- the process containerizer ---

// LaunchNested implements NestedLauncher: the command runs as the parent's
// user, in its sandbox, with its environment, in a session (and process
// group) of its own, forked by the agent and never by the reaper; its
// parent-death signal kills it with the agent.
func (p *Process) LaunchNested(ctx context.Context, cfg NestedConfig) (*Stdio, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cred, err := p.credential(cfg.ID, cfg.User)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, p.closedErr(cfg.ID)
	}
	parent := p.containers[cfg.Parent]
	_, exists := p.containers[cfg.ID]
	switch {
	case exists:
		p.mu.Unlock()
		return nil, fmt.Errorf("container %q: %w", cfg.ID, ErrContainerExists)
	case parent == nil:
		p.mu.Unlock()
		return nil, fmt.Errorf("container %q: parent %q: %w", cfg.ID, cfg.Parent, ErrUnknownContainer)
	case parent.parent != "":
		p.mu.Unlock()
		return nil, fmt.Errorf("container %q: its parent %q is nested itself: %w", cfg.ID, cfg.Parent, ErrUnsupported)
	}
	c := &container{id: cfg.ID, sandbox: parent.sandbox, started: make(chan struct{}), done: make(chan struct{}), child: true, parent: cfg.Parent}
	p.containers[cfg.ID] = c
	p.watchers.Add(1)
	p.mu.Unlock()

	stdio, err := p.startNested(ctx, c, parent, &cfg, cred)
	if err != nil {
		c.launchErr = err
		p.mu.Lock()
		delete(p.containers, cfg.ID)
		p.mu.Unlock()
		close(c.started)
		return nil, err
	}
	close(c.started)
	p.log.Debug("nested container launched", "container", cfg.ID, "pid", c.pid)
	return stdio, nil
}

// startNested forks the nested container's process and starts its
// watcher, which takes over the watchers count LaunchNested added; on
// error it has given the count back.
func (p *Process) startNested(ctx context.Context, c, parent *container, cfg *NestedConfig, cred *syscall.Credential) (_ *Stdio, err error) {
	watching := false
	defer func() {
		if !watching {
			p.watchers.Done()
		}
	}()
	select {
	case <-parent.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if parent.launchErr != nil {
		return nil, fmt.Errorf("container %q: parent %q: %w", cfg.ID, cfg.Parent, ErrUnknownContainer)
	}
	p.mu.Lock()
	running := !ended(parent) && !parent.destroying
	p.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("container %q: parent %q: %w", cfg.ID, cfg.Parent, ErrNotRunning)
	}
	failed := func(what string, err error) error {
		return fmt.Errorf("container %q: %s: %w: %w", c.id, what, ErrLaunchFailed, err)
	}
	env := parent.env
	if env == nil {
		env, _ = procEnviron(parent.pid)
	}
	env = mergeEnv(env, cfg.Env)
	if cred == nil && p.root {
		if cred, err = procCredential(parent.pid); err != nil {
			return nil, fmt.Errorf("container %q: parent %q: %v: %w", cfg.ID, cfg.Parent, err, ErrNotRunning)
		}
	}
	argv0, argv, err := resolveCommand(&Config{Command: cfg.Command, Env: env, Sandbox: parent.sandbox})
	if err != nil {
		return nil, failed("finding the executable", err)
	}
	var theirs [3]*os.File
	var stdio *Stdio
	if cfg.TTY {
		master, slave, err := hostPTY(cred, cfg.Rows, cfg.Columns)
		if err != nil {
			return nil, failed("making a terminal", err)
		}
		theirs = [3]*os.File{slave, nil, nil}
		stdio = &Stdio{Stdin: master, Stdout: master, TTY: true}
	} else if theirs, stdio, err = nestedPipes(); err != nil {
		return nil, failed("making pipes", err)
	}
	defer closeAll(theirs[:])
	defer func() {
		if err != nil {
			stdio.Close()
		}
	}()
	files := []uintptr{theirs[0].Fd(), theirs[0].Fd(), theirs[0].Fd()}
	if !cfg.TTY {
		files[1], files[2] = theirs[1].Fd(), theirs[2].Fd()
	}
	pidfd := -1
	pid, err := syscall.ForkExec(argv0, argv, &syscall.ProcAttr{
		Dir:   parent.sandbox,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Setctty:    cfg.TTY,
			Ctty:       0,
			Credential: cred,
			PidFD:      &pidfd,
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	if err != nil {
		return nil, failed("starting "+argv0, err)
	}
	if pidfd < 0 {
		if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
			unix.Kill(-pid, unix.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
			return nil, failed("opening a pidfd", err)
		}
	}
	f, err := pidfdFile(pidfd, c.id)
	if err != nil {
		unix.Kill(-pid, unix.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		return nil, failed("watching the process", err)
	}
	p.mu.Lock()
	c.pid, c.pidfd = pid, f
	if p.closed {
		stopWatching(f)
	}
	p.mu.Unlock()
	watching = true
	go p.watch(c)
	go func() {
		select {
		case <-parent.done:
			p.signalMain(c, unix.SIGKILL)
			_ = p.signalGroup(c, unix.SIGKILL)
		case <-c.done:
		case <-p.closing:
		}
	}()
	return stdio, nil
}

// destroyNestedOf destroys the nested containers of parent, for its
// Destroy.
func (p *Process) destroyNestedOf(ctx context.Context, parent string) error {
	p.mu.Lock()
	var ids []string
	for id, c := range p.containers {
		if c.parent == parent {
			ids = append(ids, id)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := p.Destroy(ctx, id); err != nil && !errors.Is(err, ErrUnknownContainer) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// closeNested kills the nested containers, which nothing recovers, for
// Close; p.mu is held.
func (p *Process) closeNested() {
	for _, c := range p.containers {
		if c.parent != "" && c.pid > 0 && !ended(c) {
			unix.Kill(-c.pid, unix.SIGKILL)
		}
	}
}

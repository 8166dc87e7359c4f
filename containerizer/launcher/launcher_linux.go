package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initEnv marks the environment of the container's init; its value is the
// number of the descriptor of the control socket.
const initEnv = "APRON_LAUNCHER_INIT"

// initConfig is what the parent sends the init: the Spec without its files
// and hook.
type initConfig struct {
	Args          []string `json:"args"`
	Path          string   `json:"path,omitempty"`
	Env           []string `json:"env,omitempty"`
	Dir           string   `json:"dir,omitempty"`
	User          *User    `json:"user,omitempty"`
	Hostname      string   `json:"hostname,omitempty"`
	Rootfs        string   `json:"rootfs,omitempty"`
	Sandbox       string   `json:"sandbox,omitempty"`
	SandboxTarget string   `json:"sandbox_target,omitempty"`
	Mounts        []Mount  `json:"mounts,omitempty"`
	NewPID        bool     `json:"new_pid,omitempty"`
	NewMount      bool     `json:"new_mount,omitempty"`
	NewUTS        bool     `json:"new_uts,omitempty"`
	NoInit        bool     `json:"no_init,omitempty"`
	// StatusFD, when not 0, is the descriptor of Spec.StatusFile.
	StatusFD int `json:"status_fd,omitempty"`
	// Files is how many descriptors, from 0, the task inherits.
	Files int `json:"files"`
	// Enter, when set, makes the init enter a running container (Enter).
	Enter *enterConfig `json:"enter,omitempty"`
	// DiesWithParent is Spec.DiesWithParent.
	DiesWithParent bool `json:"dies_with_parent,omitempty"`
}

// initMsg is one message from the init: an error before the task ran,
// the task started (pid 1 mode), or the task's raw wait status.
type initMsg struct {
	Err     string  `json:"err,omitempty"`
	Started bool    `json:"started,omitempty"`
	Status  *uint32 `json:"status,omitempty"`
}

// Process is a started container, seen from the host: its init (or, with
// Spec.NoInit, its task) and the way to wait for and signal it.
type Process struct {
	pid    int
	handle Handle
	cmd    *exec.Cmd     // nil for an attached process
	ctl    *net.UnixConn // the control socket; nil for an attached process
	dec    *json.Decoder
	pidfd  *pidfd // an attached process's

	waitOnce sync.Once
	status   syscall.WaitStatus
	waitErr  error
}

// Handle identifies a container's init across a restart of the process
// that started it: checkpoint it, and Attach to it later.
type Handle struct {
	// Pid is the init's pid on the host.
	Pid int `json:"pid"`
	// StartTime is the init's start time, in clock ticks since boot
	// (field 22 of /proc/<pid>/stat).
	StartTime uint64 `json:"start_time"`
	// PidNS is the inode of its pid namespace (/proc/<pid>/ns/pid).
	PidNS uint64 `json:"pid_ns"`
	// StatusFile is Spec.StatusFile, where the init writes the task's
	// wait status.
	StatusFile string `json:"status_file,omitempty"`
}

// Start starts the container that spec describes and returns once its task
// runs (has been executed). The Spec is validated first (errors wrap
// ErrInvalidSpec); anything that fails afterwards, in the container
// included, wraps ErrStartFailed with what failed. ctx bounds the start
// only, not the container's life.
func Start(ctx context.Context, spec *Spec) (*Process, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("launcher: %s: %w", fmt.Sprintf(format, args...), ErrStartFailed)
	}
	cfg := initConfig{
		Args:     spec.Args,
		Path:     spec.Path,
		Env:      spec.Env,
		Dir:      spec.Dir,
		User:     spec.User,
		Hostname: spec.Hostname,
		Sandbox:  spec.Sandbox,
		Mounts:   spec.Mounts,
		NewPID:   spec.has(NamespacePID),
		NewMount: spec.has(NamespaceMount),
		NewUTS:   spec.has(NamespaceUTS),
		NoInit:   spec.NoInit,
		Files:    3 + len(spec.ExtraFiles),

		DiesWithParent: spec.DiesWithParent,
	}
	if spec.Sandbox != "" {
		cfg.SandboxTarget = spec.sandboxTarget()
		cfg.Env = spec.TaskEnv()
		if cfg.Dir == "" {
			cfg.Dir = cfg.SandboxTarget
		}
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	}
	if spec.Rootfs != "" {
		// The init resolves everything beneath the real directory.
		root, err := filepath.EvalSymlinks(spec.Rootfs)
		if err != nil {
			return nil, fmt.Errorf("launcher: root filesystem: %v: %w", err, ErrInvalidSpec)
		}
		cfg.Rootfs = root
	}
	var flags uintptr
	for _, ns := range spec.namespaces() {
		switch ns {
		case NamespacePID:
			flags |= unix.CLONE_NEWPID
		case NamespaceMount:
			flags |= unix.CLONE_NEWNS
		case NamespaceUTS:
			flags |= unix.CLONE_NEWUTS
		case NamespaceIPC:
			flags |= unix.CLONE_NEWIPC
		}
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fail("control socket: %v", err)
	}
	parentEnd := os.NewFile(uintptr(fds[0]), "launcher control")
	childEnd := os.NewFile(uintptr(fds[1]), "launcher control (init)")
	fc, err := net.FileConn(parentEnd)
	parentEnd.Close()
	if err != nil {
		childEnd.Close()
		return nil, fail("control socket: %v", err)
	}
	ctl := fc.(*net.UnixConn)

	initPath, name := spec.Init, spec.Init
	if initPath == "" {
		// Not os.Executable's path: that file may have been replaced
		// since (an agent upgraded in place).
		initPath = "/proc/self/exe"
		if name, err = os.Executable(); err != nil {
			name = "apron"
		}
	}
	extra := append(append([]*os.File(nil), spec.ExtraFiles...), childEnd)
	if spec.StatusFile != "" && !spec.NoInit {
		sf, err := os.OpenFile(spec.StatusFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			childEnd.Close()
			ctl.Close()
			return nil, fail("status file: %v", err)
		}
		defer sf.Close() // the init has its own once started
		extra = append(extra, sf)
		cfg.StatusFD = cfg.Files + 1 // after the control socket
	}
	cmd := &exec.Cmd{
		Path: initPath,
		Args: []string{filepath.Base(name) + " (apron container init)"},
		// Nothing of the parent's environment: the task's comes in the
		// config. One P: the init sets up, then waits; a Go runtime with
		// one starts measurably faster (BenchmarkStart).
		Env:        []string{initEnv + "=" + strconv.Itoa(cfg.Files), "GOMAXPROCS=1"},
		Dir:        "/",
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			// Its own session: signals for the agent's terminal or process
			// group miss it.
			Setsid: true,
		},
	}
	if spec.DiesWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	// Assigned only when set: a nil *os.File in an io.Reader is not nil.
	if spec.Stdin != nil {
		cmd.Stdin = spec.Stdin
	}
	if spec.Stdout != nil {
		cmd.Stdout = spec.Stdout
	}
	if spec.Stderr != nil {
		cmd.Stderr = spec.Stderr
	}
	err = cmd.Start()
	childEnd.Close()
	if err != nil {
		ctl.Close()
		return nil, fail("starting the container's init: %v", err)
	}
	p := &Process{pid: cmd.Process.Pid, cmd: cmd, ctl: ctl, dec: json.NewDecoder(ctl)}
	abort := func(err error) (*Process, error) {
		cmd.Process.Kill()
		cmd.Wait()
		ctl.Close()
		return nil, err
	}
	if p.handle, err = handleOf(p.pid); err != nil {
		return abort(fail("the container's init: %v", err))
	}
	if cfg.StatusFD != 0 {
		p.handle.StatusFile = spec.StatusFile
	}
	for _, procs := range spec.CgroupProcs {
		if err := os.WriteFile(procs, []byte(strconv.Itoa(p.pid)), 0); err != nil {
			return abort(fail("joining the cgroup: %v", err))
		}
	}
	if spec.Hook != nil {
		if err := spec.Hook(p.pid); err != nil {
			return abort(fail("hook: %v", err))
		}
	}
	stop := bindDeadline(ctx, ctl)
	defer stop()
	if err := sendConfig(ctl, &cfg); err != nil {
		if ctx.Err() != nil {
			return abort(fmt.Errorf("launcher: %w", ctx.Err()))
		}
		return abort(fail("sending the spec to the container's init: %v", err))
	}
	var msg initMsg
	err = p.dec.Decode(&msg)
	switch {
	case err == nil && msg.Err != "":
		return abort(fail("%s", msg.Err))
	case err == nil && msg.Started:
	case err == nil:
		return abort(fail("the container's init sent an unexpected message"))
	case ctx.Err() != nil:
		return abort(fmt.Errorf("launcher: %w", ctx.Err()))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return abort(fail("the container's init did not answer in time"))
	case errors.Is(err, io.EOF) && spec.NoInit:
		// The socket closed on exec: the task runs as pid 1.
	case errors.Is(err, io.EOF):
		return abort(fail("the container's init ended before starting the task"))
	default:
		return abort(fail("the container's init: %v", err))
	}
	stop() // before the deadline is cleared: a late cancel must not set it
	ctl.SetDeadline(time.Time{})
	return p, nil
}

// Pid returns the host pid of the container's init (with Spec.NoInit, of
// its task).
func (p *Process) Pid() int { return p.pid }

// Handle returns what identifies the container across a restart.
func (p *Process) Handle() Handle { return p.handle }

// Signal sends sig to the container's init, which forwards it to the task
// (see the package documentation); SIGKILL ends the init and with it every
// process of the pid namespace. Signalling a container that has ended is
// not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	var err error
	if p.cmd != nil {
		err = p.cmd.Process.Signal(sig)
	} else {
		err = p.pidfd.signal(sig)
	}
	if errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Kill kills every process of the container (with the pid namespace; a
// container sharing the host's pid namespace loses only its init).
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL) }

// Wait waits for the container to end and returns the task's wait status
// (the init's own when it died without reporting one, as when it was
// killed). An attached process returns ErrStatusLost once it has ended.
// Wait may be called any number of times.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	p.waitOnce.Do(func() {
		if p.cmd == nil {
			p.status, p.waitErr = p.waitAttached()
			return
		}
		err := p.cmd.Wait()
		ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		p.status = ws
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			p.waitErr = err
		}
		// The init is gone, and the socket's other end with it: what is
		// left to read is there now.
		p.ctl.SetReadDeadline(time.Now().Add(time.Second))
		for {
			var msg initMsg
			if p.dec.Decode(&msg) != nil {
				break
			}
			if msg.Status != nil {
				p.status = syscall.WaitStatus(*msg.Status)
			}
		}
		p.ctl.Close()
	})
	return p.status, p.waitErr
}

func (p *Process) waitAttached() (syscall.WaitStatus, error) {
	defer p.pidfd.close()
	for {
		fds := []unix.PollFd{{Fd: int32(p.pidfd.fd), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if ws, ok := ReadStatus(p.handle); ok {
			return ws, nil
		}
		return 0, fmt.Errorf("launcher: container with init pid %d: %w", p.pid, ErrStatusLost)
	}
}

// ReadStatus reads the task's wait status from the status file of a
// container whose init has ended (see Spec.StatusFile): the way to learn
// how a container ended while no process was attached to it. ok is false
// when the init wrote none (it was killed, or there is no status file).
func ReadStatus(h Handle) (ws syscall.WaitStatus, ok bool) {
	if h.StatusFile == "" {
		return 0, false
	}
	b, err := os.ReadFile(h.StatusFile)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 0, false
	}
	return syscall.WaitStatus(v), true
}

// pidfd is an attached process's pidfd, closed once it has ended or its
// Process is garbage.
type pidfd struct {
	mu     sync.Mutex
	fd     int
	closed bool
}

func (f *pidfd) signal(sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil // ended
	}
	return unix.PidfdSendSignal(f.fd, sig, nil, 0)
}

func (f *pidfd) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		unix.Close(f.fd)
	}
}

// Attach finds a container again by the Handle of its init, after the
// process that started it has been restarted. It fails when that process
// has ended, or the pid now names another process. The returned Process
// can be signalled and waited for; its exit status comes from the status
// file (Spec.StatusFile), and is lost without one.
func Attach(h Handle) (*Process, error) {
	fd, err := unix.PidfdOpen(h.Pid, 0)
	if err != nil {
		return nil, fmt.Errorf("launcher: container with init pid %d: %w", h.Pid, err)
	}
	// Checked after the pidfd is open: from now on the pid cannot be
	// reused under it.
	got, err := handleOf(h.Pid)
	got.StatusFile = h.StatusFile // not the process's to say
	if err != nil || got != h {
		unix.Close(fd)
		if err == nil {
			err = fmt.Errorf("pid %d is another process now (start time %d, pid namespace %d; want %d, %d)", h.Pid, got.StartTime, got.PidNS, h.StartTime, h.PidNS)
		}
		return nil, fmt.Errorf("launcher: container with init pid %d: %w", h.Pid, err)
	}
	p := &Process{pid: h.Pid, handle: h, pidfd: &pidfd{fd: fd}}
	// Not waited for: the descriptor goes with the Process.
	runtime.AddCleanup(p, (*pidfd).close, p.pidfd)
	return p, nil
}

// handleOf reads the Handle of a live process.
func handleOf(pid int) (Handle, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", pid), &st); err != nil {
		return Handle{}, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Handle{}, err
	}
	// The command name, field 2, may hold spaces and parentheses: fields
	// are counted from after its last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return Handle{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return Handle{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		return Handle{}, fmt.Errorf("/proc/%d/stat: %v", pid, err)
	}
	return Handle{Pid: pid, StartTime: start, PidNS: st.Ino}, nil
}

// bindDeadline makes every read and write on ctl end when ctx does (at
// its deadline, or at once when it is cancelled); the returned function
// stops watching ctx.
func bindDeadline(ctx context.Context, ctl *net.UnixConn) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		ctl.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { ctl.SetDeadline(time.Unix(1, 0)) })
}

// sendConfig sends cfg to the process at the other end of ctl, as JSON,
// and closes ctl's writing side: all it will be told.
func sendConfig(ctl *net.UnixConn, cfg any) error {
	if err := json.NewEncoder(ctl).Encode(cfg); err != nil {
		return err
	}
	return ctl.CloseWrite()
}

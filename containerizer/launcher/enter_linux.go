package launcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// enterConfig is what the helper of Enter needs beyond initConfig: the
// namespaces to join, by descriptor, and the terminal to make.
type enterConfig struct {
	Join    []nsJoin `json:"join"`
	CwdFD   int      `json:"cwd_fd,omitempty"`
	TTY     bool     `json:"tty,omitempty"`
	Rows    uint16   `json:"rows,omitempty"`
	Columns uint16   `json:"columns,omitempty"`
}

// nsJoin is one namespace the helper joins with setns.
type nsJoin struct {
	FD   int    `json:"fd"`
	Type int    `json:"type"`
	Name string `json:"name"`
}

// enterNamespaces are joined in this order: the mount namespace last, once
// nothing more is needed from the host's file system.
var enterNamespaces = []struct {
	name string
	flag int
}{{"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS}, {"pid", unix.CLONE_NEWPID}, {"mnt", unix.CLONE_NEWNS}}

// Enter starts a process inside the running container of spec.Target and
// returns once it runs, with the master side of its terminal when
// spec.TTY. Like Start it re-executes the init binary as a helper, which
// is put in spec.CgroupProcs, joins the container's namespaces with setns
// (a fresh process: the agent's own threads never change namespace),
// changes to the working directory, makes the terminal in the container's
// /dev/pts, and forks the process with its identity, in a session of its
// own. The helper stays outside the container (in the host's pid
// namespace; the process it forked is in the container's) as its parent:
// it forwards signals to it, reports its wait status (Process.Wait) and
// exits with it. The helper dies with the process that called Enter
// (parent-death signal); the process it started is then left in the
// container (and in CgroupProcs), for the caller to kill.
//
// The Process returned has no Handle worth checkpointing (it cannot be
// attached to again).
func Enter(ctx context.Context, spec *EnterSpec) (*Process, *os.File, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("launcher: enter: %s: %w", fmt.Sprintf(format, args...), ErrInvalidSpec)
	}
	switch {
	case len(spec.Args) == 0 || spec.Args[0] == "":
		return nil, nil, bad("no command (Args is empty)")
	case spec.Target.Pid <= 0:
		return nil, nil, bad("no target process")
	case spec.Dir != "" && !filepath.IsAbs(spec.Dir):
		return nil, nil, bad("working directory %q is not an absolute path", spec.Dir)
	case spec.Init != "" && !filepath.IsAbs(spec.Init):
		return nil, nil, bad("init %q is not an absolute path", spec.Init)
	}
	for _, s := range append(append([]string{spec.Path, spec.Dir}, spec.Args...), spec.Env...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, nil, bad("a NUL byte in the command, its environment or working directory")
		}
	}
	for _, e := range spec.Env {
		if !strings.Contains(e, "=") {
			return nil, nil, bad("environment entry %q is not KEY=VALUE", e)
		}
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("launcher: enter: %s: %w", fmt.Sprintf(format, args...), ErrStartFailed)
	}

	// The control socket is the helper's descriptor 3, the namespaces
	// (and the working directory) follow.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fail("control socket: %v", err)
	}
	parentEnd := os.NewFile(uintptr(fds[0]), "launcher control")
	childEnd := os.NewFile(uintptr(fds[1]), "launcher control (enter)")
	extra := []*os.File{childEnd}
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	fc, err := net.FileConn(parentEnd)
	parentEnd.Close()
	if err != nil {
		return nil, nil, fail("control socket: %v", err)
	}
	ctl := fc.(*net.UnixConn)
	ec := &enterConfig{TTY: spec.TTY, Rows: spec.Rows, Columns: spec.Columns}
	pid := spec.Target.Pid
	for _, ns := range enterNamespaces {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name))
		if err != nil {
			ctl.Close()
			return nil, nil, fail("the container's %s namespace: %v", ns.name, err)
		}
		ec.Join = append(ec.Join, nsJoin{FD: 3 + len(extra), Type: ns.flag, Name: ns.name})
		extra = append(extra, f)
	}
	if spec.Dir == "" {
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/cwd", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			ctl.Close()
			return nil, nil, fail("the container's working directory: %v", err)
		}
		ec.CwdFD = 3 + len(extra)
		extra = append(extra, os.NewFile(uintptr(fd), "cwd"))
	}
	// Checked once everything is open: what was opened is the target's,
	// not a process that took its pid since.
	got, err := handleOf(pid)
	got.StatusFile = spec.Target.StatusFile
	if err != nil || got != spec.Target {
		ctl.Close()
		return nil, nil, fail("the container's init (pid %d) is gone", pid)
	}

	initPath, name := spec.Init, spec.Init
	if initPath == "" {
		initPath = "/proc/self/exe"
		if name, err = os.Executable(); err != nil {
			name = "apron"
		}
	}
	cfg := initConfig{Args: spec.Args, Path: spec.Path, Env: spec.Env, Dir: spec.Dir, User: spec.User, Files: 3, Enter: ec}
	cmd := &exec.Cmd{
		Path:       initPath,
		Args:       []string{filepath.Base(name) + " (apron container enter)"},
		Env:        []string{initEnv + "=3", "GOMAXPROCS=1"},
		Dir:        "/",
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if !spec.TTY {
		if spec.Stdin != nil {
			cmd.Stdin = spec.Stdin
		}
		if spec.Stdout != nil {
			cmd.Stdout = spec.Stdout
		}
		if spec.Stderr != nil {
			cmd.Stderr = spec.Stderr
		}
	}
	if err := cmd.Start(); err != nil {
		ctl.Close()
		return nil, nil, fail("starting the helper: %v", err)
	}
	for _, f := range extra {
		f.Close()
	}
	extra = nil
	p := &Process{pid: cmd.Process.Pid, cmd: cmd, ctl: ctl}
	var master *os.File
	abort := func(err error) (*Process, *os.File, error) {
		cmd.Process.Kill()
		cmd.Wait()
		ctl.Close()
		if master != nil {
			master.Close()
		}
		return nil, nil, err
	}
	if p.handle, err = handleOf(p.pid); err != nil {
		return abort(fail("the helper: %v", err))
	}
	for _, procs := range spec.CgroupProcs {
		if err := os.WriteFile(procs, []byte(strconv.Itoa(p.pid)), 0); err != nil {
			return abort(fail("joining the cgroup: %v", err))
		}
	}
	stop := bindDeadline(ctx, ctl)
	defer stop()
	if err := sendConfig(ctl, &cfg); err != nil {
		if ctx.Err() != nil {
			return abort(fmt.Errorf("launcher: %w", ctx.Err()))
		}
		return abort(fail("sending the spec to the helper: %v", err))
	}
	var first []byte
	if spec.TTY {
		// The terminal's master comes first, alone; an error instead
		// is JSON, whose first byte is kept for the decoder.
		buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, rerr := ctl.ReadMsgUnix(buf, oob)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			if ctx.Err() != nil {
				return abort(fmt.Errorf("launcher: %w", ctx.Err()))
			}
			return abort(fail("the helper: %v", rerr))
		}
		if oobn > 0 {
			fd, perr := parseRights(oob[:oobn])
			if perr != nil {
				return abort(fail("the terminal from the helper: %v", perr))
			}
			unix.CloseOnExec(fd)
			master = os.NewFile(uintptr(fd), "pty master")
		} else {
			first = buf[:n]
		}
	}
	p.dec = json.NewDecoder(io.MultiReader(bytes.NewReader(first), ctl))
	var msg initMsg
	err = p.dec.Decode(&msg)
	switch {
	case err == nil && msg.Err != "":
		return abort(fail("%s", msg.Err))
	case err == nil && msg.Started && (master != nil || !spec.TTY):
	case err == nil:
		return abort(fail("the helper sent an unexpected message"))
	case ctx.Err() != nil:
		return abort(fmt.Errorf("launcher: %w", ctx.Err()))
	case errors.Is(err, io.EOF):
		return abort(fail("the helper ended before starting the process"))
	default:
		return abort(fail("the helper: %v", err))
	}
	stop()
	ctl.SetDeadline(time.Time{})
	return p, master, nil
}

// parseRights returns the one descriptor of an SCM_RIGHTS message.
func parseRights(oob []byte) (int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1, err
	}
	var fds []int
	for _, m := range msgs {
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			return -1, err
		}
		fds = append(fds, r...)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("%d descriptors, want 1", len(fds))
	}
	return fds[0], nil
}

// runEnter is the main of Enter's helper, once it has read its config.
// One thread does it all: it alone leaves the host's file system
// attributes (unshare CLONE_FS, without which a threaded process cannot
// join a mount namespace), joins the namespaces, and forks the process,
// which inherits that thread's namespaces, root and working directory.
func runEnter(cfg *initConfig, ctlFD int, enc *json.Encoder, failed func(error)) {
	e := cfg.Enter
	runtime.LockOSThread() // never unlocked: the thread is the container's now
	for _, j := range e.Join {
		unix.CloseOnExec(j.FD)
	}
	if e.CwdFD != 0 {
		unix.CloseOnExec(e.CwdFD)
	}
	devNull, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		failed(fmt.Errorf("opening /dev/null: %v", err))
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		failed(fmt.Errorf("unsharing the file system attributes: %v", err))
	}
	for _, j := range e.Join {
		if err := unix.Setns(j.FD, j.Type); err != nil {
			failed(fmt.Errorf("entering the container's %s namespace: %v", j.Name, err))
		}
		unix.Close(j.FD)
	}
	if e.CwdFD != 0 {
		if err := unix.Fchdir(e.CwdFD); err != nil {
			failed(fmt.Errorf("changing to the container's working directory: %v", err))
		}
		unix.Close(e.CwdFD)
	} else if err := unix.Chdir(cfg.Dir); err != nil {
		failed(fmt.Errorf("changing to the working directory %q: %v", cfg.Dir, err))
	}
	files := []uintptr{0, 1, 2}
	master := -1
	if e.TTY {
		var slave int
		master, slave, err = openPTY(cfg.User, e.Rows, e.Columns)
		if err != nil {
			failed(err)
		}
		files = []uintptr{uintptr(slave), uintptr(slave), uintptr(slave)}
	}
	exe := cfg.Args[0]
	if cfg.Path != "" {
		exe = cfg.Path
	}
	argv0, err := lookPath(exe, cfg.Env)
	if err != nil {
		failed(err)
	}
	// No parent-death signal: Go's fork sends it at once to a child whose
	// parent is outside its pid namespace (getppid is 0 there). A process
	// left by a dead helper is in its container's cgroups, which the
	// container's destruction kills.
	sys := &syscall.SysProcAttr{Setsid: true, Setctty: e.TTY, Ctty: 0}
	if u := cfg.User; u != nil {
		sys.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, forwardedSignals...)
	pid, err := syscall.ForkExec(argv0, cfg.Args, &syscall.ProcAttr{Env: cfg.Env, Files: files, Sys: sys})
	if err != nil {
		failed(fmt.Errorf("executing %q: %v", cfg.Args[0], err))
	}
	if e.TTY {
		if err := unix.Sendmsg(ctlFD, []byte{0}, unix.UnixRights(master), nil, 0); err != nil {
			unix.Kill(pid, unix.SIGKILL)
			failed(fmt.Errorf("sending the terminal: %v", err))
		}
		unix.Close(master)
		unix.Close(int(files[0]))
	}
	// The streams are the process's alone: they end when it closes them.
	for fd := 0; fd < 3; fd++ {
		unix.Dup3(devNull, fd, 0)
	}
	enc.Encode(&initMsg{Started: true})
	go func() {
		for s := range sigs {
			unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	ws := reap(pid)
	raw := uint32(ws)
	enc.Encode(&initMsg{Status: &raw})
	switch {
	case ws.Exited():
		os.Exit(ws.ExitStatus())
	case ws.Signaled():
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(255)
}

// openPTY makes a pseudo-terminal in the current mount namespace's
// /dev/pts, of rows x columns when not 0, its slave side owned by user.
func openPTY(user *User, rows, columns uint16) (master, slave int, err error) {
	master, err = unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("opening /dev/ptmx: %v", err)
	}
	fail := func(what string, err error) (int, int, error) {
		unix.Close(master)
		return -1, -1, fmt.Errorf("the terminal: %s: %v", what, err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlocking", err)
	}
	// TIOCGPTPEER (Linux 4.13) opens the slave with no path to race on;
	// the path of its number otherwise.
	s, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	slave = int(s)
	if errno != 0 {
		n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
		if err != nil {
			return fail("its number", err)
		}
		if slave, err = unix.Open("/dev/pts/"+strconv.Itoa(int(n)), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err != nil {
			return fail("opening the slave", err)
		}
	}
	if rows != 0 || columns != 0 {
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: columns}); err != nil {
			unix.Close(slave)
			return fail("setting its size", err)
		}
	}
	if user != nil {
		if err := unix.Fchown(slave, int(user.UID), int(user.GID)); err != nil {
			unix.Close(slave)
			return fail("giving it to the user", err)
		}
	}
	return master, slave, nil
}

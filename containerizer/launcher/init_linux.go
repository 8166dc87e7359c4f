package launcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// IsInit reports whether this process was started by Start as a
// container's init: its main must then call RunInit before doing anything
// else.
func IsInit() bool { return os.Getenv(initEnv) != "" }

// RunInit is the main of a container's init. It sets the container up as
// the Spec says and runs the task; it never returns, exiting with the
// task's exit code (or executing the task in its place). It returns an
// error only when this process was not started as an init.
func RunInit() error {
	if !IsInit() {
		return errors.New("launcher: RunInit: this process was not started as a container init")
	}
	ctlFD, err := strconv.Atoi(os.Getenv(initEnv))
	if err != nil || ctlFD < 3 {
		fmt.Fprintf(os.Stderr, "launcher: container init: bad %s=%q\n", initEnv, os.Getenv(initEnv))
		os.Exit(1)
	}
	// Neither the task nor anything it starts gets the socket.
	unix.CloseOnExec(ctlFD)
	ctl := os.NewFile(uintptr(ctlFD), "launcher control")
	enc := json.NewEncoder(ctl)
	failed := func(err error) {
		enc.Encode(&initMsg{Err: err.Error()})
		os.Exit(1)
	}
	defer func() {
		if r := recover(); r != nil {
			failed(fmt.Errorf("the container's init panicked: %v", r))
		}
	}()
	var cfg initConfig
	if err := json.NewDecoder(ctl).Decode(&cfg); err != nil {
		failed(fmt.Errorf("reading the spec: %v", err))
	}
	if cfg.StatusFD != 0 {
		unix.CloseOnExec(cfg.StatusFD) // the init's alone
	}
	if cfg.Enter != nil {
		runEnter(&cfg, ctlFD, enc, failed) // never returns
	}
	if err := setUp(&cfg); err != nil {
		failed(err)
	}
	if cfg.DiesWithParent {
		armParentDeath(ctlFD)
	}
	exe := cfg.Args[0]
	if cfg.Path != "" {
		exe = cfg.Path
	}
	argv0, err := lookPath(exe, cfg.Env)
	if err != nil {
		failed(err)
	}
	if cfg.NoInit {
		err := unix.Exec(argv0, cfg.Args, cfg.Env)
		failed(fmt.Errorf("executing %q: %v", cfg.Args[0], err))
	}
	if !cfg.NewPID {
		// Not pid 1 of a namespace: orphans come here all the same.
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, forwardedSignals...)
	files := make([]uintptr, cfg.Files)
	for i := range files {
		files[i] = uintptr(i)
	}
	attr := &syscall.ProcAttr{Env: cfg.Env, Files: files}
	if cfg.DiesWithParent {
		// Without a pid namespace the init's death does not end the
		// task: its own parent-death signal does.
		attr.Sys = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	pid, err := syscall.ForkExec(argv0, cfg.Args, attr)
	if err != nil {
		failed(fmt.Errorf("executing %q: %v", cfg.Args[0], err))
	}
	enc.Encode(&initMsg{Started: true})
	go func() {
		for s := range sigs {
			unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	ws := reap(pid)
	raw := uint32(ws)
	if cfg.StatusFD != 0 {
		// Before anything else: the agent that started the container may
		// be gone, and this is all a restarted one will have.
		st := os.NewFile(uintptr(cfg.StatusFD), "status")
		fmt.Fprintf(st, "%d\n", raw)
		st.Close()
	}
	enc.Encode(&initMsg{Status: &raw})
	switch {
	case ws.Exited():
		os.Exit(ws.ExitStatus())
	case ws.Signaled():
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(255)
	return nil
}

// armParentDeath sets the init's parent-death signal again: setUp's
// change to the task's user disarmed the one its parent set. When the
// parent died meanwhile, no signal will come: the control socket, closed
// by the dead parent, says so (POLLHUP), and the init ends the container
// itself.
func armParentDeath(ctlFD int) {
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	fds := []unix.PollFd{{Fd: int32(ctlFD), Events: unix.POLLOUT}}
	if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
		os.Exit(1)
	}
}

// forwardedSignals are passed on from the init to the task.
var forwardedSignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT,
}

// reap waits for every child, orphans included, until the task has ended,
// and returns the task's status.
func reap(task int) syscall.WaitStatus {
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case err == syscall.EINTR:
		case err != nil:
			// ECHILD: cannot happen while the task is unreaped.
			return syscall.WaitStatus(255 << 8)
		case wpid == task:
			return ws
		}
	}
}

// defaultPath is the PATH argv[0] is looked up in when Env has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds name as execve will, in the container, as the task's
// user.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	p := defaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			p = v
		}
	}
	for _, dir := range filepath.SplitList(p) {
		if dir == "" {
			dir = "."
		}
		f := path.Join(dir, name)
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && unix.Access(f, unix.X_OK) == nil {
			return f, nil
		}
	}
	return "", fmt.Errorf("executing %q: executable file not found in PATH %q", name, p)
}

// setUp makes the container's filesystem, host name and credentials, in
// the order of the package documentation.
func setUp(cfg *initConfig) error {
	unix.Umask(0)
	if cfg.NewMount {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return fmt.Errorf("making / a recursive slave: %v", err)
		}
		var err error
		if cfg.Rootfs != "" {
			err = setUpRootfs(cfg)
		} else {
			err = setUpHostRoot(cfg)
		}
		if err != nil {
			return err
		}
	}
	if cfg.NewUTS && cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("setting the hostname: %v", err)
		}
	}
	unix.Umask(0o022)
	if cfg.Rootfs != "" {
		// An image's WORKDIR that its root filesystem lacks: made, owned by
		// root, as Mesos and Docker do.
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return fmt.Errorf("creating the working directory %q: %v", cfg.Dir, err)
		}
	}
	if u := cfg.User; u != nil {
		groups := make([]int, len(u.Groups))
		for i, g := range u.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setting supplementary groups %v: %v", u.Groups, err)
		}
		if err := syscall.Setgid(int(u.GID)); err != nil {
			return fmt.Errorf("setting gid %d: %v", u.GID, err)
		}
		if err := syscall.Setuid(int(u.UID)); err != nil {
			return fmt.Errorf("setting uid %d: %v", u.UID, err)
		}
	}
	if err := unix.Chdir(cfg.Dir); err != nil {
		return fmt.Errorf("changing to the working directory %q: %v", cfg.Dir, err)
	}
	return nil
}

// maskedPaths are hidden from the container (runc's defaults): files
// behind /dev/null, directories behind an empty read-only tmpfs.
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
	"/sys/devices/virtual/powercap",
}

type device struct {
	name         string
	major, minor uint32
}

// devices are made in the container's /dev.
var devices = []device{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

func setUpRootfs(cfg *initConfig) error {
	root := cfg.Rootfs
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the root filesystem %s onto itself: %v", root, err)
	}
	const kernelFS = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	proc, err := kernelMountPoint(root, "/proc")
	if err != nil {
		return err
	}
	if cfg.NewPID {
		err = mountFD(proc, "proc", "proc", kernelFS, "")
	} else {
		err = mountFD(proc, "/proc", "", unix.MS_BIND|unix.MS_REC, "")
	}
	if err == nil {
		err = readOnly(proc.path, false)
	}
	proc.close()
	if err != nil {
		return fmt.Errorf("mounting /proc: %v", err)
	}
	sys, err := kernelMountPoint(root, "/sys")
	if err != nil {
		return err
	}
	err = mountFD(sys, "sysfs", "sysfs", kernelFS, "")
	if err == nil {
		err = readOnly(sys.path, false)
	}
	sys.close()
	if err != nil {
		return fmt.Errorf("mounting /sys: %v", err)
	}
	for _, m := range maskedPaths {
		p := filepath.Join(root, m) // in the new proc and sysfs: no links of the image's
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue
		case fi.IsDir():
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
		default:
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking %s: %v", m, err)
		}
	}
	if err := setUpDev(root); err != nil {
		return err
	}
	tmp, err := mountPoint(root, "/tmp", false, false)
	if err != nil {
		return err
	}
	err = mountFD(tmp, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
	tmp.close()
	if err != nil {
		return fmt.Errorf("mounting /tmp: %v", err)
	}
	if err := mountVolumes(cfg, root); err != nil {
		return err
	}
	// runc's pivot_root without a put_old directory: the old root ends up
	// stacked on the new one, and is detached from there.
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering the root filesystem: %v", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %v", root, err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making the old root a slave: %v", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %v", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering the new root: %v", err)
	}
	return nil
}

func setUpDev(root string) error {
	dev, err := kernelMountPoint(root, "/dev")
	if err != nil {
		return err
	}
	err = mountFD(dev, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k")
	dev.close()
	if err != nil {
		return fmt.Errorf("mounting /dev: %v", err)
	}
	d := dev.path // a fresh tmpfs: nothing of the image's in it
	for _, c := range devices {
		p := filepath.Join(d, c.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(c.major, c.minor))); err != nil {
			// No mknod (a user namespace, a device cgroup): the host's.
			if f, cerr := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o666); cerr == nil {
				f.Close()
			}
			if berr := unix.Mount("/dev/"+c.name, p, "", unix.MS_BIND, ""); berr != nil {
				return fmt.Errorf("making /dev/%s: %v; binding the host's: %v", c.name, err, berr)
			}
		}
	}
	for _, l := range [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
		{"pts/ptmx", "ptmx"},
	} {
		if err := os.Symlink(l[0], filepath.Join(d, l[1])); err != nil {
			return fmt.Errorf("/dev/%s: %v", l[1], err)
		}
	}
	for _, m := range []struct{ dir, fstype, data string }{
		{"pts", "devpts", "newinstance,ptmxmode=0666,mode=0620"},
		{"shm", "tmpfs", "mode=1777,size=65536k"},
	} {
		p := filepath.Join(d, m.dir)
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("/dev/%s: %v", m.dir, err)
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NOEXEC)
		if m.fstype == "tmpfs" {
			flags |= unix.MS_NODEV
		}
		if err := unix.Mount(m.fstype, p, m.fstype, flags, m.data); err != nil {
			return fmt.Errorf("mounting /dev/%s: %v", m.dir, err)
		}
	}
	return nil
}

// setUpHostRoot gives a container that keeps the host's root its own
// /proc, its sandbox and its volumes.
func setUpHostRoot(cfg *initConfig) error {
	if cfg.NewPID {
		// The host's /proc shows the host's pids: a new one for the new
		// pid namespace, over it in this mount namespace only.
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mounting /proc: %v", err)
		}
		if err := readOnly("/proc", false); err != nil {
			return fmt.Errorf("mounting /proc: %v", err)
		}
	}
	return mountVolumes(cfg, "/")
}

// mountVolumes mounts the sandbox and the volumes beneath root.
func mountVolumes(cfg *initConfig, root string) error {
	if cfg.Sandbox != "" {
		m := Mount{Source: cfg.Sandbox, Target: cfg.SandboxTarget}
		if err := mountVolume(cfg, root, m, true); err != nil {
			return fmt.Errorf("mounting the sandbox at %s: %v", cfg.SandboxTarget, err)
		}
	}
	for _, m := range cfg.Mounts {
		if err := mountVolume(cfg, root, m, false); err != nil {
			return fmt.Errorf("mounting %s at %s: %v", m.Source, m.Target, err)
		}
	}
	return nil
}

func mountVolume(cfg *initConfig, root string, m Mount, sandbox bool) error {
	src := m.Source
	if m.SourceInSandbox {
		var err error
		if src, err = secureJoin(cfg.Sandbox, m.Source); err != nil {
			return err
		}
	}
	srcFD, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the source: %v", err)
	}
	defer unix.Close(srcFD)
	srcPath := fdPath(srcFD)
	if m.SourceInSandbox {
		real, err := os.Readlink(srcPath)
		if err != nil {
			return err
		}
		if !within(cfg.Sandbox, real) {
			return fmt.Errorf("the source resolves to %s, outside the sandbox", real)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(srcFD, &st); err != nil {
		return err
	}
	isFile := st.Mode&unix.S_IFMT != unix.S_IFDIR
	// On the host's root the launcher creates mount points in the sandbox
	// only: it does not litter the host's directories (the sandbox's own
	// mount point aside).
	create := root != "/" || sandbox || (cfg.SandboxTarget != "" && within(cfg.SandboxTarget, path.Clean(m.Target)))
	t, err := mountPoint(root, m.Target, isFile, !create)
	if err != nil {
		return err
	}
	defer t.close()
	if !sandbox {
		if f := underForbidden(t.inner); f != "" {
			return fmt.Errorf("the target resolves to %s, in %s", t.inner, f)
		}
	}
	if err := unix.Mount(srcPath, fdPath(t.fd), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if m.ReadOnly {
		return readOnly(t.path, true)
	}
	return nil
}

// kernelMountPoint is mountPoint for /proc, /sys and /dev, which an image
// may not move elsewhere with a symbolic link (runc refuses the same): the
// kernel's files would be mounted where the image chose, and the container's
// /proc a link to them.
func kernelMountPoint(root, p string) (target, error) {
	t, err := mountPoint(root, p, false, false)
	if err == nil && t.inner != p {
		t.close()
		err = fmt.Errorf("the image's %s is a symbolic link (to %s); refused", p, t.inner)
	}
	return t, err
}

// target is an opened mount point.
type target struct {
	fd    int
	path  string // the host path it was resolved to
	inner string // the path in the container
}

func (t target) close() { unix.Close(t.fd) }

// mountPoint resolves the in-container path p beneath root, creates it (a
// directory, or an empty file when file) unless mustExist, and opens it,
// checking that what was opened is beneath root.
func mountPoint(root, p string, file, mustExist bool) (target, error) {
	host, err := secureJoin(root, p)
	if err != nil {
		return target{}, fmt.Errorf("resolving %s: %v", p, err)
	}
	inner := "/" + strings.TrimPrefix(strings.TrimPrefix(host, root), "/")
	if root == "/" {
		inner = host
	}
	if _, err := os.Lstat(host); errors.Is(err, fs.ErrNotExist) {
		if mustExist {
			return target{}, fmt.Errorf("%s does not exist; on the host's root, mount points outside the sandbox are not created", host)
		}
		if file {
			if err = os.MkdirAll(filepath.Dir(host), 0o755); err == nil {
				var f *os.File
				if f, err = os.OpenFile(host, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
					f.Close()
				}
			}
		} else {
			err = os.MkdirAll(host, 0o755)
		}
		if err != nil {
			return target{}, fmt.Errorf("creating the mount point %s: %v", inner, err)
		}
	}
	fd, err := unix.Open(host, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return target{}, fmt.Errorf("opening the mount point %s: %v", inner, err)
	}
	real, err := os.Readlink(fdPath(fd))
	if err == nil && !within(root, real) {
		err = fmt.Errorf("it resolves to %s, outside the root filesystem", real)
	}
	if err != nil {
		unix.Close(fd)
		return target{}, fmt.Errorf("mount point %s: %v", inner, err)
	}
	return target{fd: fd, path: host, inner: inner}, nil
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// mountFD mounts onto an opened mount point.
func mountFD(t target, source, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, fdPath(t.fd), fstype, flags, data)
}

// readOnly makes the mount at p read-only, and the mounts beneath it when
// recursive, without touching the file system's own (possibly shared)
// superblock.
func readOnly(p string, recursive bool) error {
	flags := uint(0)
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(unix.AT_FDCWD, p, flags, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if err == nil || err != unix.ENOSYS {
		return err
	}
	// Before Linux 5.12: this mount only.
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return err
	}
	keep := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	return unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, "")
}

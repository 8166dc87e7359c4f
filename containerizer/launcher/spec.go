package launcher

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Errors of the launcher; test them with errors.Is.
var (
	// ErrInvalidSpec: the Spec breaks one of its rules, or names a root
	// filesystem, sandbox or mount source that is not there.
	ErrInvalidSpec = errors.New("invalid launch spec")
	// ErrStartFailed: a valid Spec could not be started; the error carries
	// what went wrong, also when it went wrong inside the container before
	// the task ran.
	ErrStartFailed = errors.New("container start failed")
	// ErrStatusLost: the container ended while this process was not its
	// parent (see Attach): how it ended is not known.
	ErrStatusLost = errors.New("container exit status lost")
	// ErrNotSupported: the launcher needs Linux.
	ErrNotSupported = errors.New("launcher: containers need Linux")
)

// DefaultSandboxTarget is where the sandbox appears in the container, as in
// Mesos; MESOS_SANDBOX points at it.
const DefaultSandboxTarget = "/mnt/mesos/sandbox"

// Namespace is a Linux namespace the container gets a new one of.
type Namespace string

// The namespaces the launcher can make. The network stays the host's.
const (
	NamespacePID   Namespace = "pid"
	NamespaceMount Namespace = "mount"
	NamespaceUTS   Namespace = "uts"
	NamespaceIPC   Namespace = "ipc"
)

// DefaultNamespaces are the namespaces of a Spec that names none.
var DefaultNamespaces = []Namespace{NamespacePID, NamespaceMount, NamespaceUTS, NamespaceIPC}

// Spec describes one container to start.
type Spec struct {
	// Args is the task's argv. Args[0] is the executable: a path in the
	// container, or a bare name looked up in the PATH of Env (the usual
	// default PATH when Env has none).
	Args []string
	// StatusFile, when set, is a file on the host (an absolute path,
	// created or truncated) where the init writes the task's wait status
	// when the task ends, before it exits: a process that attaches to the
	// container after the one that started it died (an agent killed and
	// restarted) learns from it how the task ended (Process.Wait,
	// ReadStatus). Not with NoInit: there is no init to write it.
	StatusFile string
	// Path is the executable when it is not Args[0] (a task whose argv[0]
	// is a name of its choosing): a path in the container, or a bare name
	// looked up as Args[0] would be. "" means Args[0].
	Path string
	// Env is the task's whole environment. When there is a sandbox,
	// MESOS_SANDBOX is set (replaced) to SandboxTarget.
	Env []string
	// Dir is the working directory in the container, absolute; "" means
	// the sandbox (or "/" without one).
	Dir string
	// User is who the task runs as; nil keeps the launcher's own user
	// (root). The caller resolves names (CommandInfo.user, the framework's
	// user, the image's user) against the right user database.
	User *User
	// Hostname is the container's host name ("" keeps the host's); needs
	// the uts namespace.
	Hostname string
	// Rootfs is the root filesystem directory (an image's), absolute; ""
	// keeps the host's root.
	Rootfs string
	// Sandbox is the host directory bind mounted at SandboxTarget; "" for
	// none.
	Sandbox string
	// SandboxTarget is where the sandbox appears; "" means
	// DefaultSandboxTarget.
	SandboxTarget string
	// Mounts are the volumes, bind mounted in this order after the sandbox.
	Mounts []Mount
	// Namespaces are the new namespaces; nil means DefaultNamespaces. The
	// mount namespace is needed for Rootfs, Sandbox and Mounts, the uts
	// namespace for Hostname.
	Namespaces []Namespace
	// Network is the network the container joins: "" or "host" (the
	// host's). A named network (Mesos's NetworkInfo.name) is refused: that
	// needs CNI, which Apron does not have yet.
	Network string
	// NoInit executes the task as the container's pid 1, with no init to
	// reap orphans or forward signals.
	NoInit bool
	// Stdin, Stdout and Stderr are the task's standard files; nil is
	// /dev/null.
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles are given to the task as file descriptors 3, 4, ...
	ExtraFiles []*os.File
	// CgroupProcs are cgroup.procs files (one per hierarchy) that the
	// container's init is written to before it sets anything up, so the
	// whole container is accounted from its first page.
	CgroupProcs []string
	// Init is the binary started as the container's init: one whose main
	// calls IsInit and RunInit first (see the package documentation). ""
	// is this process's own executable. A small dedicated binary starts
	// faster than a large one whose packages all initialize first.
	Init string
	// Hook, if set, runs with the host pid of the container's init once it
	// is in its cgroups and before it sets anything up; an error stops the
	// start.
	Hook func(pid int) error
	// DiesWithParent kills the container when the process that started
	// it ends, however it ends (kill -9 included): the init gets SIGKILL
	// as its parent-death signal, armed again once it has taken the
	// task's user (a change of credentials disarms it), and the task gets
	// it too, so it dies with the init also without a pid namespace (where
	// the task's own children are then not reached) and with NoInit. The
	// parent-death signal follows the thread that started the init: the
	// caller must not start it from a thread that ends before the process
	// does (one locked with runtime.LockOSThread and left so).
	DiesWithParent bool
}

// User is the identity the task runs as.
type User struct {
	UID, GID uint32
	// Groups are the supplementary groups; empty clears them.
	Groups []uint32
}

// Mount is a volume: a bind mount into the container.
type Mount struct {
	// Source is an absolute host path (a host_path or persistent volume),
	// or with SourceInSandbox a path relative to the sandbox (a
	// SANDBOX_PATH volume), resolved beneath it.
	Source          string
	SourceInSandbox bool
	// Target is where it appears: an absolute path in the container (a
	// Mesos container_path relative to the sandbox is the caller's to join
	// to SandboxTarget). Not "/", not in /proc, /sys or /dev. With a
	// Rootfs it is created (a directory, or a file for a file source)
	// beneath the root; on the host's root it must exist already unless it
	// is in the sandbox.
	Target string
	// ReadOnly makes the mount, and the mounts beneath it, read-only.
	ReadOnly bool
}

// namespaces returns the Spec's namespaces, defaults applied.
func (s *Spec) namespaces() []Namespace {
	if s.Namespaces == nil {
		return DefaultNamespaces
	}
	return s.Namespaces
}

func (s *Spec) has(ns Namespace) bool {
	for _, n := range s.namespaces() {
		if n == ns {
			return true
		}
	}
	return false
}

// TaskEnv is the environment the task is executed with: Env, with
// MESOS_SANDBOX naming the sandbox's place in the container when there is
// a sandbox.
func (s *Spec) TaskEnv() []string {
	if s.Sandbox == "" {
		return s.Env
	}
	return withEnv(s.Env, "MESOS_SANDBOX", s.sandboxTarget())
}

// withEnv returns env with key set to value, replacing every earlier
// setting.
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, key+"=") {
			out = append(out, e)
		}
	}
	return append(out, key+"="+value)
}

func (s *Spec) sandboxTarget() string {
	if s.SandboxTarget == "" {
		return DefaultSandboxTarget
	}
	return s.SandboxTarget
}

// forbiddenTargets are the trees a volume may not cover: the kernel's
// interfaces that the launcher mounts itself.
var forbiddenTargets = []string{"/proc", "/sys", "/dev"}

// underForbidden reports which forbidden tree the absolute, clean path p is
// in, or "".
func underForbidden(p string) string {
	for _, f := range forbiddenTargets {
		if p == f || strings.HasPrefix(p, f+"/") {
			return f
		}
	}
	return ""
}

// checkTarget checks an in-container path: absolute, clean, no "..".
func checkTarget(what, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s is empty", what)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%s %q contains a NUL byte", what, p)
	case !path.IsAbs(p):
		return fmt.Errorf("%s %q is not an absolute path", what, p)
	case hasDotDot(p):
		return fmt.Errorf("%s %q contains \"..\"", what, p)
	case path.Clean(p) == "/":
		return fmt.Errorf("%s %q is the container's root", what, p)
	}
	if f := underForbidden(path.Clean(p)); f != "" {
		return fmt.Errorf("%s %q is in %s, which the launcher mounts itself", what, p, f)
	}
	return nil
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// Validate checks the Spec: its rules, and that its root filesystem,
// sandbox and mount sources exist. Errors wrap ErrInvalidSpec.
func (s *Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("launcher: %s: %w", fmt.Sprintf(format, args...), ErrInvalidSpec)
	}
	if len(s.Args) == 0 || s.Args[0] == "" {
		return bad("no command (Args is empty)")
	}
	if strings.IndexByte(s.Path, 0) >= 0 {
		return bad("the executable path contains a NUL byte")
	}
	if s.StatusFile != "" && (!filepath.IsAbs(s.StatusFile) || strings.IndexByte(s.StatusFile, 0) >= 0) {
		return bad("StatusFile %q is not an absolute path", s.StatusFile)
	}
	for _, a := range s.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return bad("an argument contains a NUL byte")
		}
	}
	for _, e := range s.Env {
		if strings.IndexByte(e, 0) >= 0 || !strings.Contains(e, "=") {
			return bad("environment entry %q is not KEY=VALUE", e)
		}
	}
	switch s.Network {
	case "", "host":
	default:
		return bad("network %q: named networks need CNI, which Apron does not support yet; only the host's network is available", s.Network)
	}
	seen := map[Namespace]bool{}
	for _, ns := range s.namespaces() {
		switch ns {
		case NamespacePID, NamespaceMount, NamespaceUTS, NamespaceIPC:
		case "net", "network":
			return bad("namespace %q: the container keeps the host's network (named networks need CNI, not supported yet)", ns)
		default:
			return bad("unknown namespace %q", ns)
		}
		if seen[ns] {
			return bad("namespace %q given twice", ns)
		}
		seen[ns] = true
	}
	if s.Hostname != "" {
		if !s.has(NamespaceUTS) {
			return bad("a hostname needs the uts namespace")
		}
		if len(s.Hostname) > 64 || strings.ContainsAny(s.Hostname, "\x00/ ") {
			return bad("hostname %q is not a valid host name", s.Hostname)
		}
	}
	if (s.Rootfs != "" || s.Sandbox != "" || len(s.Mounts) > 0) && !s.has(NamespaceMount) {
		return bad("a root filesystem, sandbox or volume needs the mount namespace")
	}
	if s.Init != "" && !filepath.IsAbs(s.Init) {
		return bad("init %q is not an absolute path", s.Init)
	}
	if s.Dir != "" {
		if !path.IsAbs(s.Dir) || strings.IndexByte(s.Dir, 0) >= 0 {
			return bad("working directory %q is not an absolute path", s.Dir)
		}
	}
	if s.Rootfs != "" {
		if !filepath.IsAbs(s.Rootfs) {
			return bad("root filesystem %q is not an absolute path", s.Rootfs)
		}
		if filepath.Clean(s.Rootfs) == "/" {
			return bad("root filesystem %q is the host's root: leave Rootfs empty for that", s.Rootfs)
		}
		if err := isDir(s.Rootfs); err != nil {
			return bad("root filesystem: %v", err)
		}
	}
	if s.Sandbox != "" {
		if !filepath.IsAbs(s.Sandbox) {
			return bad("sandbox %q is not an absolute path", s.Sandbox)
		}
		if err := isDir(s.Sandbox); err != nil {
			return bad("sandbox: %v", err)
		}
		if err := checkTarget("sandbox target", s.sandboxTarget()); err != nil {
			return bad("%v", err)
		}
	} else if s.SandboxTarget != "" {
		return bad("a sandbox target without a sandbox")
	}
	for i, m := range s.Mounts {
		if err := checkTarget("target", m.Target); err != nil {
			return bad("mount %d: %v", i, err)
		}
		if m.Source == "" || strings.IndexByte(m.Source, 0) >= 0 {
			return bad("mount %d: no source", i)
		}
		if m.SourceInSandbox {
			if s.Sandbox == "" {
				return bad("mount %d: source %q is in the sandbox, and there is none", i, m.Source)
			}
			if filepath.IsAbs(m.Source) || hasDotDot(m.Source) {
				return bad("mount %d: sandbox source %q must be relative to the sandbox, without \"..\"", i, m.Source)
			}
			continue // resolved, beneath the sandbox, by the init
		}
		if !filepath.IsAbs(m.Source) {
			return bad("mount %d: host source %q is not an absolute path", i, m.Source)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return bad("mount %d: source: %v", i, err)
		}
	}
	return nil
}

func isDir(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	return nil
}

package containerizer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Errors returned by containerizers, wrapped with the container's ID and the
// problem; test them with errors.Is.
var (
	// ErrUnknownContainer: no container has this ID (never launched, failed
	// to launch, or already destroyed).
	ErrUnknownContainer = errors.New("unknown container")
	// ErrContainerExists: Launch with the ID of a container that has not been
	// destroyed yet.
	ErrContainerExists = errors.New("container already exists")
	// ErrInvalidConfig: the Config breaks a rule of [Config.Validate], or
	// names a user that does not exist or that the agent cannot switch to.
	ErrInvalidConfig = errors.New("invalid container config")
	// ErrLaunchFailed: a valid Config could not be started (the sandbox could
	// not be made, the executable was not found or could not be executed,
	// the checkpoint could not be written). The container does not exist
	// afterwards and its ID may be launched again.
	ErrLaunchFailed = errors.New("container launch failed")
	// ErrClosed: the containerizer has been closed.
	ErrClosed = errors.New("containerizer closed")
	// ErrUnsupported: a valid Config asks for what this containerizer
	// cannot give (an image, a volume at an absolute path, for the process
	// containerizer); another containerizer may run it.
	ErrUnsupported = errors.New("not supported by this containerizer")
)

// Containerizer launches, watches, signals and destroys containers. All
// methods are safe for concurrent use. Methods that block honour ctx and
// return ctx.Err() when it ends first.
type Containerizer interface {
	// Launch starts the container and returns once its main process runs.
	// On error the container does not exist (ErrInvalidConfig,
	// ErrContainerExists, ErrLaunchFailed, ErrClosed).
	Launch(ctx context.Context, cfg Config) error

	// Wait blocks until the container has ended and returns how. Any number
	// of callers may wait, also after the end, until Destroy; callers blocked
	// in Wait when Destroy runs get the termination.
	Wait(ctx context.Context, id string) (Termination, error)

	// Signal sends sig to every process of the container. It is not an error
	// to signal a container that has ended: there may be nothing left to
	// receive it.
	Signal(ctx context.Context, id string, sig syscall.Signal) error

	// Destroy kills every process of the container with SIGKILL, waits until
	// the main process has ended, and forgets the container (its sandbox is
	// left for the agent to collect). It succeeds for a container that has
	// already ended. Concurrent calls for one container are safe: each
	// returns nil once the container is gone, or ErrUnknownContainer if it
	// was gone already when the call began, as any later call does.
	Destroy(ctx context.Context, id string) error

	// Usage samples the resources the container's processes use now.
	Usage(ctx context.Context, id string) (Usage, error)

	// Containers lists, sorted, the IDs of the containers not yet destroyed,
	// running or ended.
	Containers(ctx context.Context) ([]string, error)

	// Recover finds the containers of a previous containerizer on the same
	// state (an agent restart) and returns their IDs, sorted: those still
	// running are watched again, those that ended meanwhile are known as
	// ended, and Wait gives their termination. IDs already known to this
	// containerizer are not reported again. Call it before the first Launch
	// after a restart: a Launch may reuse the ID of a container not yet
	// recovered.
	Recover(ctx context.Context) ([]string, error)

	// Close stops watching the containers and releases the containerizer's
	// goroutines. It leaves the containers running: a containerizer made
	// later on the same state recovers them. Calls after Close return
	// ErrClosed; callers blocked in Wait return ErrClosed. Close is
	// idempotent.
	Close() error
}

// Config describes one container.
type Config struct {
	// ID names the container: 1 to MaxIDLength bytes of [A-Za-z0-9_.-], not
	// "." or "..". It is unique among the containers not yet destroyed.
	ID string
	// Command is what the container's main process runs.
	Command Command
	// Sandbox is the absolute path of the container's directory, created if
	// missing (and, when User is set, owned by that user). It is the working
	// directory of the main process; its stdout and stderr are appended to
	// the files "stdout" and "stderr" in it. Standard input is /dev/null.
	Sandbox string
	// User runs the container as this user: its uid, primary gid and
	// supplementary groups from the user database. "" runs it as the agent's
	// own user. A user other than the agent's own needs an agent running as
	// root.
	User string
	// Env is the main process's whole environment, KEY=VALUE, passed exactly
	// (order and duplicates kept). The agent builds it; nothing is inherited
	// from the agent.
	Env []string
	// Limits are the resources the container may use.
	Limits Limits
	// Volumes are host directories the container sees in its sandbox, such
	// as persistent volumes, or at an absolute path in its own mount
	// namespace.
	Volumes []Volume
	// Image, when set, is the Docker or OCI image the container runs in, as
	// ContainerInfo.mesos.image.docker.name names it ("busybox:1.36",
	// "registry:5000/app@sha256:..."): its root filesystem, and its config
	// (entrypoint, cmd, env, working directory) merged with Command and Env
	// as Mesos's runtime isolator merges them. A containerizer without an
	// image store refuses it with ErrUnsupported.
	Image string
	// Hostname is the container's hostname in a containerizer that gives
	// it a UTS namespace of its own (ContainerInfo.hostname); "" means the
	// container's ID. Others ignore it: the container has the host's.
	Hostname string
	// DiesWithAgent kills the container when the process that launched it
	// ends, by a crash or a stop: a task of a framework that does not
	// checkpoint, which Mesos's executor kills as soon as its agent is
	// gone. The process containerizer with a reaper kills the container's
	// process group when no containerizer is connected to the reaper any
	// more; without a reaper, the main process gets SIGKILL when its
	// parent dies (Linux's parent-death signal; its children are not
	// reached).
	DiesWithAgent bool
}

// Volume exposes a host directory in a container. The process
// containerizer has no mount namespace: as Mesos's posix filesystem
// isolator does, it makes ContainerPath a symbolic link to HostPath (and
// cannot enforce ReadOnly), and refuses an absolute ContainerPath; a
// containerizer with a mount namespace bind mounts it there.
type Volume struct {
	// HostPath is the directory on the host, an absolute path.
	HostPath string
	// ContainerPath is where it appears: relative to the sandbox and
	// inside it (not the sandbox itself, no ".."), or an absolute path in
	// the container's root filesystem (not "/", no "..").
	ContainerPath string
	// ReadOnly asks for a read-only view, where the containerizer can give
	// one.
	ReadOnly bool
}

// MaxIDLength is the longest container ID, so that an ID with a short
// suffix is still a valid file name (255 bytes) on every file system.
const MaxIDLength = 242

// Command is the command of a container's main process, as Mesos's
// CommandInfo has it.
type Command struct {
	// Shell runs Value with "/bin/sh -c Value" (argv "sh", "-c", Value).
	// Otherwise Value is the executable: a path (relative to the sandbox when
	// it does not start with "/"), or a bare name looked up in the PATH of
	// Config.Env (the usual default PATH when Env has none), and Args is argv.
	Shell bool
	Value string
	// Args is the argv of a non-shell command, Args[0] being argv[0]; when
	// empty, argv is just Value. Must be empty when Shell is set.
	Args []string
}

// ShellCommand returns a Command that runs script with /bin/sh -c.
func ShellCommand(script string) Command {
	return Command{Shell: true, Value: script}
}

// ExecCommand returns a Command that executes path with argv
// (path, args...).
func ExecCommand(path string, args ...string) Command {
	return Command{Value: path, Args: append([]string{path}, args...)}
}

// Limits are a container's resource limits; zero means no limit. The process
// containerizer does not enforce them (it records them and reports them in
// Usage); the Linux containerizer enforces them with cgroups.
type Limits struct {
	// CPUs is the CPU share, in cores (0.5 is half a core).
	CPUs float64
	// MemoryBytes is the memory limit.
	MemoryBytes uint64
	// DiskBytes is the sandbox's disk quota (the task's or executor's
	// disk). The containerizers do not watch it themselves: NewDisk wraps
	// one to measure the sandbox against it (Mesos's disk/du isolator).
	DiskBytes uint64
}

// Reason says why a container ended when something other than its own
// doing ended it.
type Reason string

const (
	// ReasonNone: the container ended by itself (or by a signal sent with
	// Signal).
	ReasonNone Reason = ""
	// ReasonDestroyed: Destroy killed the container.
	ReasonDestroyed Reason = "destroyed"
	// ReasonMemoryLimit: the container was killed for going over its memory
	// limit (containerizers that enforce limits).
	ReasonMemoryLimit Reason = "memory-limit"
	// ReasonDiskLimit: the container was killed for using more of its
	// sandbox's disk than Limits.DiskBytes (NewDisk with enforcement).
	ReasonDiskLimit Reason = "disk-limit"
)

// Termination is how a container ended: the status of its main process.
type Termination struct {
	// ExitCode is the exit code of the main process, or -1 when it was killed
	// by a signal or its status is unknown.
	ExitCode int
	// Signal is the signal that killed the main process, or 0.
	Signal syscall.Signal
	// Reason is set when the containerizer, not the container, ended it.
	Reason Reason
	// Message describes the end for people, e.g. "exited with status 3".
	Message string
}

// StatusKnown reports whether ExitCode or Signal tell how the main process
// ended. It is false for a container whose main process ended while the
// agent was not its parent (after an agent restart): its exit status is then
// lost, and Message says so.
func (t Termination) StatusKnown() bool {
	return t.ExitCode >= 0 || t.Signal != 0
}

// Usage is one sample of the resources a container's processes use.
type Usage struct {
	// Timestamp is when the sample was taken, from the containerizer's clock.
	Timestamp time.Time
	// CPUUserSeconds and CPUSystemSeconds are the CPU time the container's
	// processes have used, including their children they have waited for.
	CPUUserSeconds   float64
	CPUSystemSeconds float64
	// RSSBytes is the resident memory of the container's processes.
	RSSBytes uint64
	// Processes and Threads count the container's live processes and their
	// threads.
	Processes int
	Threads   int
	// Limits are the container's limits, as launched.
	Limits Limits
	// DiskUsedBytes is the disk its sandbox used at the last measure
	// (NewDisk, for a container with Limits.DiskBytes), or 0 when not
	// measured.
	DiskUsedBytes uint64
}

// Clock tells the time; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Validate checks the rules of a Config that need no look-up on the machine
// (so not whether User exists). Its errors wrap ErrInvalidConfig.
func (c *Config) Validate() error {
	if err := ValidateID(c.ID); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("container %q: %s: %w", c.ID, fmt.Sprintf(format, args...), ErrInvalidConfig)
	}
	switch {
	case c.Sandbox == "":
		return bad("no sandbox")
	case !filepath.IsAbs(c.Sandbox):
		return bad("sandbox %q is not an absolute path", c.Sandbox)
	case strings.IndexByte(c.Sandbox, 0) >= 0:
		return bad("sandbox path contains a NUL byte")
	}
	cmd := c.Command
	switch {
	case cmd.Value == "" && cmd.Shell:
		return bad("empty shell command")
	case cmd.Value == "" && c.Image == "":
		// With an image, the image's entrypoint and cmd run (Mesos's
		// runtime isolator).
		return bad("no executable")
	case strings.IndexByte(cmd.Value, 0) >= 0:
		return bad("command contains a NUL byte")
	case cmd.Shell && len(cmd.Args) > 0:
		return bad("a shell command takes no arguments")
	}
	for i, a := range cmd.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return bad("argument %d contains a NUL byte", i)
		}
	}
	for i, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return bad("environment entry %d (%.40q) is not KEY=VALUE", i, kv)
		}
		if strings.IndexByte(kv, 0) >= 0 {
			return bad("environment entry %d contains a NUL byte", i)
		}
	}
	if strings.IndexByte(c.User, 0) >= 0 {
		return bad("user name contains a NUL byte")
	}
	if l := c.Limits.CPUs; l < 0 || math.IsNaN(l) || math.IsInf(l, 0) {
		return bad("cpus limit %v is not a non-negative number", l)
	}
	seen := make(map[string]bool, len(c.Volumes))
	for _, v := range c.Volumes {
		cp := v.ContainerPath
		switch {
		case v.HostPath == "" || !filepath.IsAbs(v.HostPath):
			return bad("volume at %q: host path %q is not an absolute path", cp, v.HostPath)
		case strings.IndexByte(v.HostPath, 0) >= 0 || strings.IndexByte(cp, 0) >= 0:
			return bad("volume at %q: a path contains a NUL byte", cp)
		case cp == "":
			return bad("volume of %q: empty container path", v.HostPath)
		case strings.Contains("/"+filepath.ToSlash(cp)+"/", "/../"):
			return bad("volume at %q: the container path has a \"..\"", cp)
		case filepath.IsAbs(cp) && filepath.Clean(cp) == "/":
			return bad("volume at %q: the container path is the root", cp)
		case !filepath.IsAbs(cp) && filepath.Clean(cp) == ".":
			return bad("volume at %q: the container path is not inside the sandbox", cp)
		case seen[filepath.Clean(cp)]:
			return bad("two volumes at %q", cp)
		}
		seen[filepath.Clean(cp)] = true
	}
	return nil
}

// ValidateID checks a container ID against the rules of Config.ID; its
// errors wrap ErrInvalidConfig.
func ValidateID(id string) error {
	bad := func(problem string) error {
		return fmt.Errorf("container ID %.60q: %s: %w", id, problem, ErrInvalidConfig)
	}
	switch {
	case id == "":
		return bad("empty")
	case len(id) > MaxIDLength:
		return bad(fmt.Sprintf("%d bytes long, the most is %d", len(id), MaxIDLength))
	case id == "." || id == "..":
		return bad("not a valid name")
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '.', b == '-':
		default:
			return bad(fmt.Sprintf("byte %q at %d is not one of [A-Za-z0-9_.-]", b, i))
		}
	}
	return nil
}

// hostOnly refuses what a containerizer without a mount namespace or
// images cannot give: an image, a volume at an absolute path. Its errors
// wrap ErrUnsupported.
func (c *Config) hostOnly() error {
	if c.Image != "" {
		return fmt.Errorf("container %q: image %q: containers from images need the Linux containerizer: %w", c.ID, c.Image, ErrUnsupported)
	}
	for _, v := range c.Volumes {
		if filepath.IsAbs(v.ContainerPath) {
			return fmt.Errorf("container %q: volume at %q: an absolute container path needs a mount namespace (the Linux containerizer): %w", c.ID, v.ContainerPath, ErrUnsupported)
		}
	}
	return nil
}

package containerizer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNotRunning: LaunchNested names a parent container that has ended or
// is being destroyed.
var ErrNotRunning = errors.New("container not running")

// NestedLauncher is the optional capability of a containerizer to start a
// container inside a running one: Mesos's nested containers of the DEBUG
// class, which task exec (LAUNCH_NESTED_CONTAINER_SESSION) and
// LAUNCH_NESTED_CONTAINER start. Discover it with a type assertion.
//
// A nested container joins its parent: its namespaces (mount, pid, uts,
// ipc) and so its root filesystem and host name, its working directory,
// its user (unless NestedConfig.User names one) and its environment (with
// NestedConfig.Env over it), as Mesos's DEBUG containers inherit theirs;
// it runs under the parent's cgroups (a child cgroup of each, so its usage
// counts against the parent's limits). Its standard streams are not files
// in the sandbox but pipes, or a terminal, handed to the caller
// ([Stdio]).
//
// Once launched it is one of the containerizer's containers, named
// NestedConfig.ID: Wait, Signal, Destroy, Usage and Containers know it,
// and it must be destroyed like any other. It survives nothing: it is not
// checkpointed (Recover never finds it), Close kills it, and it is killed
// when its parent ends and destroyed with its parent.
//
// The process containerizer has no namespaces: its nested container is a
// process of the parent's user, environment and sandbox, in a process
// group of its own, as Mesos's posix launcher runs one.
type NestedLauncher interface {
	// LaunchNested starts the nested container and returns once its
	// command runs, with its streams. It fails with ErrInvalidConfig,
	// ErrUnknownContainer (no such parent), ErrNotRunning (the parent has
	// ended), ErrContainerExists, ErrUnsupported (a parent that is nested
	// itself), ErrLaunchFailed or ErrClosed; the container does not exist
	// then. The caller closes the Stdio when done with it.
	LaunchNested(ctx context.Context, cfg NestedConfig) (*Stdio, error)
}

// NestedConfig describes a nested container.
type NestedConfig struct {
	// ID names the container: Parent, ".", and a name of
	// [A-Za-z0-9_-] (Mesos's ContainerID with a parent, as it prints it).
	ID string
	// Parent is the running container it is started in.
	Parent string
	// Command is what it runs, looked up in its parent's root filesystem.
	Command Command
	// Env is added to the parent's environment, replacing the variables
	// of the same names.
	Env []string
	// User runs it as this user of the host's user database; "" is the
	// parent's user.
	User string
	// TTY gives it a new terminal (a pseudo-terminal of its parent's
	// devpts) as its controlling terminal and standard streams, of
	// Rows x Columns characters when not 0.
	TTY           bool
	Rows, Columns uint16
}

// Validate checks the rules of a NestedConfig; its errors wrap
// ErrInvalidConfig.
func (c *NestedConfig) Validate() error {
	if err := ValidateID(c.ID); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("container %q: %s: %w", c.ID, fmt.Sprintf(format, args...), ErrInvalidConfig)
	}
	name, ok := strings.CutPrefix(c.ID, c.Parent+".")
	switch {
	case c.Parent == "" || !ok || name == "" || strings.Contains(name, "."):
		return bad("the ID of a container nested in %q must be %q followed by one name", c.Parent, c.Parent+".")
	case c.Command.Value == "":
		return bad("no command")
	case c.Command.Shell && len(c.Command.Args) > 0:
		return bad("a shell command takes no arguments")
	}
	for _, s := range append(append([]string{c.Command.Value, c.User}, c.Command.Args...), c.Env...) {
		if strings.IndexByte(s, 0) >= 0 {
			return bad("a NUL byte in the command, its environment or user")
		}
	}
	for i, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return bad("environment entry %d (%.40q) is not KEY=VALUE", i, kv)
		}
	}
	return nil
}

// name is the nested container's own name, after its parent's ID.
func (c *NestedConfig) name() string { return strings.TrimPrefix(c.ID, c.Parent+".") }

// Stdio are a nested container's standard streams, the caller's ends:
// writing Stdin feeds the container, Stdout and Stderr give what it
// writes. Without a terminal they are pipes: closing Stdin is the
// container's end of input, and Stdout and Stderr read io.EOF once every
// process of the container has closed them. With a terminal Stdin and
// Stdout are the same file, the terminal's master side, and Stderr is nil
// (the terminal merges both); the end of input is a ^D (EOT) written to
// it, as at a terminal. Closing the Stdio does not stop the container.
type Stdio struct {
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
	// TTY is set when the streams are a terminal's.
	TTY bool
}

// Close closes the caller's ends of the streams.
func (s *Stdio) Close() error {
	var errs []error
	for i, f := range []*os.File{s.Stdin, s.Stdout, s.Stderr} {
		if f != nil && (i != 1 || f != s.Stdin) {
			if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// knownEnv is env as a container's recorded environment: a copy, never
// nil, so that an empty environment is told apart from one not known.
func knownEnv(env []string) []string {
	return append([]string{}, env...)
}

// mergeEnv is base with over's variables replacing those of the same
// names, the rest of over appended in order.
func mergeEnv(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	set := make(map[string]bool, len(over))
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}

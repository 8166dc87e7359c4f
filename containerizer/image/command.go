package image

import (
	"errors"
	"fmt"
	"strings"
)

// Command is a container's command as Mesos's CommandInfo has it.
type Command struct {
	// Shell runs Value with /bin/sh -c.
	Shell bool
	// Value is the shell script, or the executable of a non-shell command.
	Value string
	// HasValue tells an empty Value set from none (CommandInfo's
	// has_value); a command without a value runs the image's.
	HasValue bool
	// Args is argv of a non-shell command, Args[0] being argv[0].
	Args []string
}

// Launch is what a container runs: the task's command merged with the
// image's config by [Merge].
type Launch struct {
	// Command is the command to run: Shell and Value as given, or Value
	// and Args from the image's entrypoint and cmd.
	Command Command
	// Env is the image's environment (KEY=VALUE, entries without "="
	// dropped, as Mesos does); the containerizer puts the task's on top
	// with [MergeEnv].
	Env []string
	// WorkingDir is the image's working directory, "" when it has none.
	WorkingDir string
	// User is the image's user, "" when it has none. Mesos does not apply
	// it (it logs a warning and runs the task as the task's user); the
	// containerizer decides.
	User string
}

// ErrNoCommand: neither the task nor the image says what to run.
var ErrNoCommand = errors.New("no command to run")

// Merge merges a task's command with the image's config with the rules of
// Mesos's docker runtime isolator (isolators/docker/runtime.cpp):
//
//   - Shell: the command runs as given (/bin/sh -c Value); the image's
//     entrypoint and cmd are ignored. A shell command needs a value.
//   - Not shell, with a value: the command runs as given (Value, with Args
//     as argv); entrypoint and cmd are ignored.
//   - Not shell, no value, the image has an entrypoint: Value is
//     Entrypoint[0], argv is the entrypoint, then the task's arguments;
//     when the task has none, the image's cmd instead.
//   - Not shell, no value, no entrypoint, a cmd: Value is Cmd[0], argv is
//     Cmd[0], then the task's arguments; when the task has none, the rest
//     of cmd.
//   - Otherwise there is nothing to run: ErrNoCommand.
//
// Env, working directory and user come from the image in every case.
func Merge(cfg ImageConfig, cmd Command) (Launch, error) {
	l := Launch{WorkingDir: cfg.WorkingDir, User: cfg.User}
	for _, e := range cfg.Env {
		if strings.Contains(e, "=") {
			l.Env = append(l.Env, e)
		}
	}
	switch {
	case cmd.Shell:
		if !cmd.HasValue {
			return Launch{}, fmt.Errorf("%w: shell specified but no command value provided", ErrNoCommand)
		}
		l.Command = Command{Shell: true, Value: cmd.Value, HasValue: true, Args: clone(cmd.Args)}
	case cmd.HasValue:
		l.Command = Command{Value: cmd.Value, HasValue: true, Args: clone(cmd.Args)}
	case len(cfg.Entrypoint) > 0:
		args := append(clone(cfg.Entrypoint), cmd.Args...)
		if len(cmd.Args) == 0 {
			args = append(args, cfg.Cmd...)
		}
		l.Command = Command{Value: cfg.Entrypoint[0], HasValue: true, Args: args}
	case len(cfg.Cmd) > 0:
		args := append([]string{cfg.Cmd[0]}, cmd.Args...)
		if len(cmd.Args) == 0 {
			args = append(args, cfg.Cmd[1:]...)
		}
		l.Command = Command{Value: cfg.Cmd[0], HasValue: true, Args: args}
	default:
		return Launch{}, fmt.Errorf("%w: the task has no command value and the image no entrypoint or cmd", ErrNoCommand)
	}
	return l, nil
}

// MergeEnv puts the task's environment over the image's: a variable the
// task sets replaces the image's (as Mesos's containerizer overwrites the
// runtime isolator's variables). The image's variables come first, in
// their order, then the task's.
func MergeEnv(image, task []string) []string {
	set := map[string]bool{}
	for _, e := range task {
		k, _, _ := strings.Cut(e, "=")
		set[k] = true
	}
	var out []string
	for _, e := range image {
		k, _, _ := strings.Cut(e, "=")
		if !set[k] {
			out = append(out, e)
		}
	}
	return append(out, task...)
}

func clone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

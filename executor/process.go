package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apronhq/apron/containerizer"
)

// Environment of a command executor process. An agent whose command
// executor runs as a process of its own (agent.Config.CommandExecutorMode)
// starts a binary with these set on top of the Mesos executor environment;
// the binary hands over to RunCommandExecutor when it sees them.
const (
	// CommandExecutorEnv is "1" in a command executor process.
	CommandExecutorEnv = "APRON_COMMAND_EXECUTOR"
	// ExecutorStateDirEnv names the directory where the process keeps the
	// state of its task's container. The agent destroys what is left there
	// once the executor process has ended, so a task never outlives an
	// executor that was killed.
	ExecutorStateDirEnv = "APRON_EXECUTOR_STATE_DIR"
	// KillGracePeriodEnv is the grace period of kills of tasks without a
	// kill policy (CommandConfig.DefaultGracePeriod), as a duration
	// ParseDuration reads.
	KillGracePeriodEnv = "APRON_KILL_GRACE_PERIOD"
)

// IsCommandExecutorProcess reports whether this process was started by an
// agent as a command executor: a binary that an agent re-executes for that
// (agent.Config.CommandExecutorPath, by default the agent's own binary)
// checks it first thing in main:
//
//	if executor.IsCommandExecutorProcess() {
//		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
//		err := executor.RunCommandExecutor(ctx)
//		stop()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		os.Exit(0)
//	}
func IsCommandExecutorProcess() bool { return os.Getenv(CommandExecutorEnv) == "1" }

// RunCommandExecutor is the main of a command executor process: it reads
// the Mesos executor environment (ConfigFromEnv), subscribes to the agent
// over HTTP at MESOS_AGENT_ENDPOINT, and runs the built-in command
// executor, whose task is a container of a process containerizer of its
// own (state in $APRON_EXECUTOR_STATE_DIR, by default
// $MESOS_DIRECTORY/.apron-executor), in the sandbox (MESOS_DIRECTORY), with
// the process's environment (less the variables above) and the task's
// CommandInfo.environment on top. It logs to stderr, which the agent keeps
// in the sandbox's stderr file.
//
// It returns nil once the task has ended and its terminal update is
// acknowledged (or the agent asked it to shut down), and the driver's error
// otherwise. When ctx ends first, the task's container is left running and
// the agent, which sees the executor end, destroys it.
func RunCommandExecutor(ctx context.Context) error {
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Agent == nil {
		return fmt.Errorf("MESOS_AGENT_ENDPOINT is not set: %w", ErrInvalidConfig)
	}
	sandbox := os.Getenv("MESOS_DIRECTORY")
	if sandbox == "" {
		sandbox = os.Getenv("MESOS_SANDBOX")
	}
	if sandbox == "" {
		if sandbox, err = os.Getwd(); err != nil {
			return fmt.Errorf("no MESOS_DIRECTORY and no working directory: %w", err)
		}
	}
	stateDir := os.Getenv(ExecutorStateDirEnv)
	if stateDir == "" {
		stateDir = filepath.Join(sandbox, ".apron-executor")
	}
	var grace time.Duration
	if s := os.Getenv(KillGracePeriodEnv); s != "" {
		if grace, err = ParseDuration(s); err != nil {
			return fmt.Errorf("%s: %w: %w", KillGracePeriodEnv, err, ErrInvalidConfig)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).
		With("framework_id", cfg.FrameworkID.Value, "executor_id", cfg.ExecutorID.Value)
	cfg.Logger = log

	cont, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: stateDir, Logger: log})
	if err != nil {
		return fmt.Errorf("starting the process containerizer: %w", err)
	}
	defer cont.Close()
	// Containers an earlier run of this executor left have no task now.
	left, err := cont.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recovering containers: %w", err)
	}
	for _, id := range left {
		if err := cont.Destroy(ctx, id); err != nil && !errors.Is(err, containerizer.ErrUnknownContainer) {
			log.Warn("could not destroy a container left by an earlier run", "container", id, "err", err)
		}
	}

	ex := NewCommandExecutor(CommandConfig{
		Containerizer:      cont,
		Sandbox:            sandbox,
		Env:                processEnv(os.Environ()),
		Logger:             log,
		DefaultGracePeriod: grace,
	})
	d, err := NewDriver(ex, cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// processEnv is the process's environment less the variables only the
// executor needs.
func processEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case CommandExecutorEnv, ExecutorStateDirEnv, KillGracePeriodEnv, AuthenticationTokenEnv:
			// The token speaks for the executor: its tasks must not
			// inherit it.
			continue
		}
		out = append(out, kv)
	}
	return out
}

package containerizer

import "log/slog"

// ProcessOptions configure a process containerizer.
type ProcessOptions struct {
	// StateDir is where the containerizer checkpoints its containers (a
	// journal file, containers.jsonl), so that a containerizer made after an
	// agent restart can Recover them. Required; created if missing. One
	// containerizer at a time may use it: a new one takes it over, and the
	// one before must be closed (or gone with its process).
	StateDir string
	// Logger receives the containerizer's logs; nil discards them.
	Logger *slog.Logger
	// Clock stamps Usage samples; nil is the system clock.
	Clock Clock
	// Reaper is the command line (path, then arguments) of a program whose
	// main calls RunReaper when IsReaper reports true — usually the agent's
	// own binary. When set, containers are forked by that reaper process,
	// which outlives the agent, so a containerizer started after an agent
	// restart (SIGTERM or kill -9) learns how a recovered container ended;
	// without it a container that ends while the agent is down ends with
	// its exit status unknown. It costs one process per state directory,
	// not one per container. The reaper exits by itself once no
	// containerizer is connected and none of its containers is left.
	Reaper []string
}

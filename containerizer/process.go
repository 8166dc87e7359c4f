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
}

package agent

import "errors"

// Errors of the agent's links and configuration; test them with errors.Is.
// Handler answers ErrNotSubscribed with 403, ErrInvalidCall with 400 and
// ErrStopped with 503.
var (
	// ErrInvalidConfig: New was given a Config it cannot run with (a
	// missing Master or WorkDir, resources or attributes that do not parse).
	ErrInvalidConfig = errors.New("agent: invalid config")
	// ErrNotSubscribed: an executor call on a stream the agent does not know
	// (never subscribed, superseded or ended), or for another executor.
	ErrNotSubscribed = errors.New("agent: executor not subscribed")
	// ErrInvalidCall: an executor call that is malformed or not allowed now.
	ErrInvalidCall = errors.New("agent: invalid call")
	// ErrStopped: the agent is not running (Run has not started or has
	// returned).
	ErrStopped = errors.New("agent: stopped")
	// ErrRunning: Run was called twice; an Agent runs once.
	ErrRunning = errors.New("agent: already run")
	// ErrRemoved is wrapped by Run's error when the master shut the agent
	// down (it removed the agent from the cluster).
	ErrRemoved = errors.New("agent: shut down by the master")
)

package master

import "errors"

// Errors returned to callers of the master's links. The HTTP API maps them
// to status codes: ErrNotSubscribed to 403, ErrInvalidCall to 400,
// ErrStopped to 503.
var (
	// ErrNotSubscribed: a call of a framework that is not subscribed now,
	// or on an agent stream the master does not know (never registered, or
	// ended), or on behalf of another agent.
	ErrNotSubscribed = errors.New("master: not subscribed")
	// ErrInvalidCall: a call that is malformed or not allowed now.
	ErrInvalidCall = errors.New("master: invalid call")
	// ErrConflict: a valid call the current state cannot satisfy, such as
	// an operator's reservation of resources the agent does not have free
	// even with its offers rescinded.
	ErrConflict = errors.New("master: conflict")
	// ErrStopped: the master is not running.
	ErrStopped = errors.New("master: stopped")
	// ErrRecoveryLimit: Run failed because more of the agents in the
	// recovered registry than Config.RecoveryAgentRemovalLimit allows did
	// not re-register within Config.AgentReregisterTimeout.
	ErrRecoveryLimit = errors.New("master: post-recovery agent removal limit exceeded")
)

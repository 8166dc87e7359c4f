package executor

import (
	"context"
	"errors"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Errors of the driver and the built-in executors; test them with errors.Is.
var (
	// ErrInvalidConfig: a Config or an environment given to ConfigFromEnv
	// misses a required value or holds a malformed one.
	ErrInvalidConfig = errors.New("invalid executor config")
	// ErrInvalidStatus: SendStatusUpdate was given a status without a task
	// ID or state, or with a UUID that is not 16 bytes.
	ErrInvalidStatus = errors.New("invalid status update")
	// ErrNotConnected: the driver has no subscription to its agent now, so
	// a call that is not kept for later (a framework message) was not sent.
	ErrNotConnected = errors.New("executor not subscribed to its agent")
	// ErrStopped: the driver has been stopped.
	ErrStopped = errors.New("executor driver stopped")
	// ErrAlreadyRunning: Run was called a second time.
	ErrAlreadyRunning = errors.New("executor driver already ran")
	// ErrRecoveryTimeout: the driver could not subscribe to its agent for
	// Config.RecoveryTimeout; Run returns it (after the Shutdown callback
	// and Stop).
	ErrRecoveryTimeout = errors.New("agent recovery timed out")
	// ErrDisconnected: the stream to the agent ended and
	// Config.ExitOnDisconnect forbids reconnecting; Run returns it (after
	// the Shutdown callback and Stop).
	ErrDisconnected = errors.New("disconnected from the agent")
	// ErrReattach: a built-in executor cannot take over the container named
	// in Reattach (see CommandExecutor.Reattach).
	ErrReattach = errors.New("cannot reattach task")
)

// Executor is what an executor implements. The driver calls it one callback
// at a time, on the driver's goroutine, in the order of the agent's events;
// a callback that blocks delays the next, so long work goes to goroutines
// started with [Driver.Go]. The ctx of a callback ends when Run returns.
type Executor interface {
	// Registered is called on the driver's first SUBSCRIBED.
	Registered(ctx context.Context, d *Driver, info Info)
	// Reregistered is called on SUBSCRIBED after a reconnection.
	Reregistered(ctx context.Context, d *Driver, info Info)
	// Disconnected is called when the stream to the agent ended; the driver
	// then reconnects (see Config.RecoveryTimeout).
	Disconnected(ctx context.Context, d *Driver)
	// LaunchTask runs one task (LAUNCH); answer with status updates.
	LaunchTask(ctx context.Context, d *Driver, task *mesospb.TaskInfo)
	// LaunchTaskGroup runs a group of tasks as one unit (LAUNCH_GROUP).
	LaunchTaskGroup(ctx context.Context, d *Driver, group *mesospb.TaskGroupInfo)
	// KillTask kills a task (KILL); answer with a terminal update. policy,
	// when not nil, overrides the task's own KillPolicy.
	KillTask(ctx context.Context, d *Driver, taskID mesospb.TaskID, policy *mesospb.KillPolicy)
	// Acknowledged says the agent holds the update with this uuid
	// (ACKNOWLEDGED); the driver has already forgotten it.
	Acknowledged(ctx context.Context, d *Driver, taskID mesospb.TaskID, uuid []byte)
	// FrameworkMessage delivers opaque data from the scheduler (MESSAGE).
	FrameworkMessage(ctx context.Context, d *Driver, data []byte)
	// Shutdown asks the executor to kill every task, send their terminal
	// updates and call d.Stop (SHUTDOWN, or the driver giving up on its
	// agent). Run keeps delivering events until Stop.
	Shutdown(ctx context.Context, d *Driver)
	// Error reports that the agent found a call of this executor invalid
	// (ERROR).
	Error(ctx context.Context, d *Driver, message string)
}

// Info is what SUBSCRIBED tells an executor about itself and its hosts.
type Info struct {
	Executor  mesospb.ExecutorInfo
	Framework mesospb.FrameworkInfo
	Agent     mesospb.AgentInfo
	// ContainerID is the container of this executor run, when the agent
	// runs the executor in one.
	ContainerID *mesospb.ContainerID
}

// Agent is what the driver needs from an agent: the executor link. The
// agent itself (in one process, no encoding) implements it, as does an
// HTTP client of an agent's /api/v1/executor.
//
// SubscribeExecutor opens the event stream for a SUBSCRIBE call. The agent
// makes a bounded channel, sends SUBSCRIBED as its first event, and closes
// the channel when the stream ends on its side (a newer subscription, the
// executor's shutdown, or a subscriber too slow to drain the channel: the
// agent never blocks on it). The driver ends the stream by cancelling ctx.
//
// ExecutorCall sends any other call on behalf of the stream streamID. nil
// means accepted, not done; an ended or unknown stream gives an error (the
// agent's ErrNotSubscribed).
type Agent interface {
	SubscribeExecutor(ctx context.Context, call *executorpb.Call) (streamID string, events <-chan *executorpb.Event, err error)
	ExecutorCall(ctx context.Context, streamID string, call *executorpb.Call) error
}

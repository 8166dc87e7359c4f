package scheduler

import (
	"context"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// Scheduler is what a framework implements. The Driver calls its methods one
// at a time, on the goroutine running Driver.Run, with the context of that
// Run (cancelled when the driver stops) and the Driver itself, so a callback
// can answer right away (d.LaunchTasks in ResourceOffers, ...). Embed Base
// to implement only the callbacks you need.
type Scheduler interface {
	// Registered is called on the driver's first successful subscription,
	// with the framework ID the master assigned (or accepted, for a
	// framework failing over with FrameworkInfo.ID set). Store the ID if
	// another process should be able to take the framework over.
	Registered(ctx context.Context, d *Driver, frameworkID mesospb.FrameworkID, master *mesospb.MasterInfo)
	// Reregistered is called on every later subscription, after a
	// Disconnected: possibly to a new leading master.
	Reregistered(ctx context.Context, d *Driver, master *mesospb.MasterInfo)
	// Disconnected is called when the subscription ended without the
	// framework asking for it (the master closed the stream or stopped
	// sending heartbeats). Calls fail with ErrNotConnected until
	// Reregistered; outstanding offers should be considered rescinded.
	Disconnected(ctx context.Context, d *Driver)
	// ResourceOffers hands the framework new offers. Each stays reserved
	// for it until accepted, declined or rescinded.
	ResourceOffers(ctx context.Context, d *Driver, offers []mesospb.Offer)
	// OfferRescinded says an offer is no longer valid; calls naming it fail.
	OfferRescinded(ctx context.Context, d *Driver, offerID mesospb.OfferID)
	// StatusUpdate reports a task's new status. With implicit
	// acknowledgements (the default) the driver acknowledges it when this
	// returns, if it carries a uuid.
	StatusUpdate(ctx context.Context, d *Driver, status mesospb.TaskStatus)
	// FrameworkMessage delivers opaque data an executor sent. Delivery is
	// best effort.
	FrameworkMessage(ctx context.Context, d *Driver, agentID mesospb.AgentID, executorID mesospb.ExecutorID, data []byte)
	// AgentLost says an agent was removed; its tasks get their own updates.
	AgentLost(ctx context.Context, d *Driver, agentID mesospb.AgentID)
	// ExecutorLost says an executor exited with the given wait status.
	ExecutorLost(ctx context.Context, d *Driver, agentID mesospb.AgentID, executorID mesospb.ExecutorID, status int)
	// Error reports an unrecoverable error from the master (the framework
	// was removed, or its subscription was refused). The driver has already
	// stopped when it is called, and Run returns an error wrapping
	// ErrAborted.
	Error(ctx context.Context, d *Driver, message string)
}

// Master is what the driver needs from a master: the scheduler half of the
// master's API. *master.Master implements it in process (no encoding); an
// HTTP client implements it across processes.
//
// SubscribeScheduler opens the event stream with a SUBSCRIBE call. The master
// answers on the returned bounded channel, SUBSCRIBED first, and closes the
// channel when the stream ends on its side (superseded, teardown, shutdown,
// or the subscriber fell too far behind); the driver ends it by cancelling
// ctx. SchedulerCall sends any other call on behalf of the stream streamID;
// nil means accepted, not done: results arrive as events.
//
// Two errors change what the driver does: a SchedulerCall error wrapping
// ErrNotConnected says the master no longer knows the stream, and the
// driver subscribes again; a SubscribeScheduler error wrapping ErrInvalid
// says the master refuses this SUBSCRIBE and always will, and the driver
// aborts. It retries every other subscription error after its backoff.
type Master interface {
	SubscribeScheduler(ctx context.Context, call *schedulerpb.Call) (streamID string, events <-chan *schedulerpb.Event, err error)
	SchedulerCall(ctx context.Context, streamID string, call *schedulerpb.Call) error
}

// Base implements every Scheduler callback as a no-op. Embed it in a
// framework's type and override what it needs; note that a framework
// ignoring ResourceOffers keeps its offers until they are rescinded, so
// most frameworks implement at least that.
type Base struct{}

var _ Scheduler = Base{}

// Registered does nothing.
func (Base) Registered(context.Context, *Driver, mesospb.FrameworkID, *mesospb.MasterInfo) {}

// Reregistered does nothing.
func (Base) Reregistered(context.Context, *Driver, *mesospb.MasterInfo) {}

// Disconnected does nothing.
func (Base) Disconnected(context.Context, *Driver) {}

// ResourceOffers does nothing.
func (Base) ResourceOffers(context.Context, *Driver, []mesospb.Offer) {}

// OfferRescinded does nothing.
func (Base) OfferRescinded(context.Context, *Driver, mesospb.OfferID) {}

// StatusUpdate does nothing.
func (Base) StatusUpdate(context.Context, *Driver, mesospb.TaskStatus) {}

// FrameworkMessage does nothing.
func (Base) FrameworkMessage(context.Context, *Driver, mesospb.AgentID, mesospb.ExecutorID, []byte) {}

// AgentLost does nothing.
func (Base) AgentLost(context.Context, *Driver, mesospb.AgentID) {}

// ExecutorLost does nothing.
func (Base) ExecutorLost(context.Context, *Driver, mesospb.AgentID, mesospb.ExecutorID, int) {}

// Error does nothing.
func (Base) Error(context.Context, *Driver, string) {}

// Funcs is a Scheduler made of optional functions, for small frameworks and
// tests that would rather not declare a type. A nil field is a no-op.
type Funcs struct {
	OnRegistered       func(ctx context.Context, d *Driver, frameworkID mesospb.FrameworkID, master *mesospb.MasterInfo)
	OnReregistered     func(ctx context.Context, d *Driver, master *mesospb.MasterInfo)
	OnDisconnected     func(ctx context.Context, d *Driver)
	OnResourceOffers   func(ctx context.Context, d *Driver, offers []mesospb.Offer)
	OnOfferRescinded   func(ctx context.Context, d *Driver, offerID mesospb.OfferID)
	OnStatusUpdate     func(ctx context.Context, d *Driver, status mesospb.TaskStatus)
	OnFrameworkMessage func(ctx context.Context, d *Driver, agentID mesospb.AgentID, executorID mesospb.ExecutorID, data []byte)
	OnAgentLost        func(ctx context.Context, d *Driver, agentID mesospb.AgentID)
	OnExecutorLost     func(ctx context.Context, d *Driver, agentID mesospb.AgentID, executorID mesospb.ExecutorID, status int)
	OnError            func(ctx context.Context, d *Driver, message string)

	// Funcs is an InverseOfferHandler too: these get inverse offers.
	OnInverseOffers         func(ctx context.Context, d *Driver, offers []mesospb.InverseOffer)
	OnInverseOfferRescinded func(ctx context.Context, d *Driver, inverseOfferID mesospb.OfferID)
}

var _ Scheduler = Funcs{}

// Registered calls OnRegistered if set.
func (f Funcs) Registered(ctx context.Context, d *Driver, id mesospb.FrameworkID, m *mesospb.MasterInfo) {
	if f.OnRegistered != nil {
		f.OnRegistered(ctx, d, id, m)
	}
}

// Reregistered calls OnReregistered if set.
func (f Funcs) Reregistered(ctx context.Context, d *Driver, m *mesospb.MasterInfo) {
	if f.OnReregistered != nil {
		f.OnReregistered(ctx, d, m)
	}
}

// Disconnected calls OnDisconnected if set.
func (f Funcs) Disconnected(ctx context.Context, d *Driver) {
	if f.OnDisconnected != nil {
		f.OnDisconnected(ctx, d)
	}
}

// ResourceOffers calls OnResourceOffers if set.
func (f Funcs) ResourceOffers(ctx context.Context, d *Driver, offers []mesospb.Offer) {
	if f.OnResourceOffers != nil {
		f.OnResourceOffers(ctx, d, offers)
	}
}

// OfferRescinded calls OnOfferRescinded if set.
func (f Funcs) OfferRescinded(ctx context.Context, d *Driver, id mesospb.OfferID) {
	if f.OnOfferRescinded != nil {
		f.OnOfferRescinded(ctx, d, id)
	}
}

// StatusUpdate calls OnStatusUpdate if set.
func (f Funcs) StatusUpdate(ctx context.Context, d *Driver, status mesospb.TaskStatus) {
	if f.OnStatusUpdate != nil {
		f.OnStatusUpdate(ctx, d, status)
	}
}

// FrameworkMessage calls OnFrameworkMessage if set.
func (f Funcs) FrameworkMessage(ctx context.Context, d *Driver, agentID mesospb.AgentID, executorID mesospb.ExecutorID, data []byte) {
	if f.OnFrameworkMessage != nil {
		f.OnFrameworkMessage(ctx, d, agentID, executorID, data)
	}
}

// AgentLost calls OnAgentLost if set.
func (f Funcs) AgentLost(ctx context.Context, d *Driver, agentID mesospb.AgentID) {
	if f.OnAgentLost != nil {
		f.OnAgentLost(ctx, d, agentID)
	}
}

// ExecutorLost calls OnExecutorLost if set.
func (f Funcs) ExecutorLost(ctx context.Context, d *Driver, agentID mesospb.AgentID, executorID mesospb.ExecutorID, status int) {
	if f.OnExecutorLost != nil {
		f.OnExecutorLost(ctx, d, agentID, executorID, status)
	}
}

// Error calls OnError if set.
func (f Funcs) Error(ctx context.Context, d *Driver, message string) {
	if f.OnError != nil {
		f.OnError(ctx, d, message)
	}
}

package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Driver connects an Executor to its agent: it subscribes, delivers the
// agent's events to the Executor's callbacks, keeps every status update
// until the agent acknowledges it, and reconnects when the stream ends.
// Its methods are safe for concurrent use.
type Driver struct {
	exec Executor
	cfg  Config
	log  *slog.Logger

	// sem (capacity 1) serializes SUBSCRIBE, UPDATE and MESSAGE calls, so
	// the agent gets the updates in the order they were sent and a SUBSCRIBE
	// carries every update not sent on an earlier stream.
	sem chan struct{}

	stopOnce sync.Once
	stopCh   chan struct{}

	mu       sync.Mutex
	started  bool // Run was called
	running  bool // Run has not returned: Go may start goroutines
	runCtx   context.Context
	wg       sync.WaitGroup // goroutines started by Go
	stream   *stream        // the current stream, or nil
	agentID  *mesospb.AgentID
	updates  []executorpb.Call_Update // not acknowledged, in the order sent
	unackedT []mesospb.TaskInfo       // launched, no update acknowledged yet
}

// stream is one subscription.
type stream struct {
	id     string
	events <-chan *executorpb.Event
	ctx    context.Context // ends the stream when cancelled
	cancel context.CancelFunc
}

// NewDriver returns a driver for e. It does nothing until Run.
func NewDriver(e Executor, cfg Config) (*Driver, error) {
	if e == nil {
		return nil, fmt.Errorf("no executor: %w", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Driver{
		exec:   e,
		cfg:    cfg,
		log:    cfg.Logger.With("framework_id", cfg.FrameworkID.Value, "executor_id", cfg.ExecutorID.Value),
		sem:    make(chan struct{}, 1),
		stopCh: make(chan struct{}),
	}, nil
}

// Run subscribes to the agent, with the tasks and updates it has not
// acknowledged, and delivers the agent's events to the Executor until Stop.
// When a stream ends it calls Disconnected and subscribes again, at once
// when the stream had lasted, else after a wait that starts at 100 ms and
// doubles up to Config.SubscriptionBackoffMax; after Config.RecoveryTimeout
// without a stream (or at the first disconnection with
// Config.ExitOnDisconnect) it calls Shutdown and, once the Executor has
// called Stop, returns ErrRecoveryTimeout (ErrDisconnected).
//
// Run returns nil after Stop, ctx.Err() when ctx ends. Before it returns it
// ends the stream, cancels the context of the callbacks and of the
// goroutines started with Go, and waits for those goroutines. Run may be
// called once.
func (d *Driver) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return ErrAlreadyRunning
	}
	d.started = true
	runCtx, cancel := context.WithCancel(ctx)
	d.running = true
	d.runCtx = runCtx
	d.mu.Unlock()

	defer func() {
		cancel()
		d.mu.Lock()
		d.running = false
		if d.stream != nil {
			d.stream.cancel()
			d.stream = nil
		}
		d.mu.Unlock()
		d.wg.Wait()
	}()
	return d.loop(runCtx)
}

// Stop ends Run (which then returns nil). It does not wait for Run to
// return and may be called from a callback, any number of times, also
// before Run. Calls to SendStatusUpdate after Stop fail with ErrStopped.
func (d *Driver) Stop() {
	d.stopOnce.Do(func() { close(d.stopCh) })
}

// Go runs f on a new goroutine owned by the driver: f's ctx ends when Run
// returns, and Run waits for f to return before it returns. It reports
// false, and does not run f, when Run is not running. The built-in
// executors watch their tasks with it.
func (d *Driver) Go(f func(ctx context.Context)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return false
	}
	d.wg.Add(1)
	ctx := d.runCtx
	go func() {
		defer d.wg.Done()
		f(ctx)
	}()
	return true
}

// SendStatusUpdate sends a task's status to the agent. It sets the update's
// source (SOURCE_EXECUTOR) and executor ID, its agent ID when unset and
// known, its timestamp when unset (from Config.Clock), and its uuid when
// unset (16 random bytes; a caller that sets its own, 16 bytes, can match
// the acknowledgement to it).
//
// The driver keeps the update until the agent acknowledges it: it is sent
// now when the driver is subscribed, and with the next SUBSCRIBE otherwise
// (before Run, or while reconnecting). A call that fails ends the stream,
// so the update reaches the agent with the SUBSCRIBE that follows; the
// failure is logged, not returned. Errors: ErrInvalidStatus, ErrStopped,
// ctx.Err() (the update is then not kept).
func (d *Driver) SendStatusUpdate(ctx context.Context, status mesospb.TaskStatus) error {
	switch {
	case status.TaskID.Value == "":
		return fmt.Errorf("no task ID: %w", ErrInvalidStatus)
	case status.State == nil:
		return fmt.Errorf("task %q: no state: %w", status.TaskID.Value, ErrInvalidStatus)
	case status.UUID != nil && len(status.UUID) != 16:
		return fmt.Errorf("task %q: uuid of %d bytes, want 16: %w", status.TaskID.Value, len(status.UUID), ErrInvalidStatus)
	}
	if status.UUID == nil {
		status.UUID = NewUUID()
	}
	if status.Timestamp == nil {
		status.Timestamp = ptr(timestamp(d.cfg.Clock.Now()))
	}
	status.Source = mesospb.TaskStatus_SOURCE_EXECUTOR.Enum()
	status.ExecutorID = &mesospb.ExecutorID{Value: d.cfg.ExecutorID.Value}

	if err := d.acquire(ctx); err != nil {
		return err
	}
	defer d.release()
	d.mu.Lock()
	if d.stopped() {
		d.mu.Unlock()
		return ErrStopped
	}
	if status.AgentID == nil && d.agentID != nil {
		status.AgentID = &mesospb.AgentID{Value: d.agentID.Value}
	}
	update := executorpb.Call_Update{Status: status}
	d.updates = append(d.updates, update)
	s := d.stream
	d.mu.Unlock()
	if s == nil {
		return nil
	}
	call := d.call(executorpb.Call_UPDATE)
	call.Update = &update
	if err := d.cfg.Agent.ExecutorCall(ctx, s.id, call); err != nil {
		d.log.Warn("status update not delivered; resubscribing to resend it",
			"task_id", status.TaskID.Value, "state", status.State.String(), "err", err)
		d.endStream(s)
	}
	return nil
}

// SendFrameworkMessage sends opaque data to the scheduler, without delivery
// guarantees. It fails with ErrNotConnected while the driver has no stream,
// and with the agent's error when the agent refuses the call.
func (d *Driver) SendFrameworkMessage(ctx context.Context, data []byte) error {
	if err := d.acquire(ctx); err != nil {
		return err
	}
	defer d.release()
	d.mu.Lock()
	s := d.stream
	d.mu.Unlock()
	if s == nil {
		return ErrNotConnected
	}
	call := d.call(executorpb.Call_MESSAGE)
	call.Message = &executorpb.Call_Message{Data: data}
	if err := d.cfg.Agent.ExecutorCall(ctx, s.id, call); err != nil {
		return fmt.Errorf("framework message: %w", err)
	}
	return nil
}

// loop is Run's body.
func (d *Driver) loop(ctx context.Context) error {
	clk := d.cfg.Clock
	lostAt := clk.Now() // since when the driver has had no stream
	var wait time.Duration
	registered := false
	for {
		if left := d.cfg.RecoveryTimeout - clk.Now().Sub(lostAt); wait > left {
			// The last attempt is at the recovery deadline.
			wait = left
		}
		if wait > 0 {
			t := clk.NewTimer(wait)
			select {
			case <-t.C():
			case <-d.stopCh:
				t.Stop()
				return nil
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		s, info, err := d.subscribe(ctx)
		if err != nil {
			switch {
			case errors.Is(err, ErrStopped):
				return nil
			case ctx.Err() != nil:
				return ctx.Err()
			}
			gone := clk.Now().Sub(lostAt)
			if gone >= d.cfg.RecoveryTimeout {
				d.log.Error("giving up on the agent", "without_agent", gone, "err", err)
				return d.giveUp(ctx, fmt.Errorf("%w: no subscription for %v: %w", ErrRecoveryTimeout, gone, err))
			}
			wait = d.nextBackoff(wait)
			d.log.Info("subscription failed", "retry_in", wait, "err", err)
			continue
		}
		subscribedAt := clk.Now()
		if registered {
			d.exec.Reregistered(ctx, d, info)
		} else {
			registered = true
			d.exec.Registered(ctx, d, info)
		}
		err = d.serve(ctx, s)
		d.endStream(s)
		switch {
		case errors.Is(err, ErrStopped):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		d.log.Info("stream to the agent ended", "err", err)
		d.exec.Disconnected(ctx, d)
		if d.cfg.ExitOnDisconnect {
			return d.giveUp(ctx, fmt.Errorf("%w: %w", ErrDisconnected, err))
		}
		lostAt = clk.Now()
		// A stream that lasted suggests a passing failure: retry at once.
		// One that ended soon after it began continues the backoff, so an
		// agent that accepts and drops subscriptions is not hammered.
		if lostAt.Sub(subscribedAt) >= d.cfg.SubscriptionBackoffMax {
			wait = 0
		} else {
			wait = d.nextBackoff(wait)
		}
	}
}

func (d *Driver) nextBackoff(b time.Duration) time.Duration {
	if b == 0 {
		return min(initialBackoff, d.cfg.SubscriptionBackoffMax)
	}
	return min(2*b, d.cfg.SubscriptionBackoffMax)
}

// giveUp asks the Executor to shut down and waits for its Stop.
func (d *Driver) giveUp(ctx context.Context, err error) error {
	d.exec.Shutdown(ctx, d)
	select {
	case <-d.stopCh:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscribe opens a stream and waits for its SUBSCRIBED.
func (d *Driver) subscribe(ctx context.Context) (*stream, Info, error) {
	if err := d.acquire(ctx); err != nil {
		return nil, Info{}, err
	}
	d.mu.Lock()
	call := d.call(executorpb.Call_SUBSCRIBE)
	call.Subscribe = &executorpb.Call_Subscribe{
		UnacknowledgedTasks:   append([]mesospb.TaskInfo(nil), d.unackedT...),
		UnacknowledgedUpdates: append([]executorpb.Call_Update(nil), d.updates...),
	}
	d.mu.Unlock()
	sctx, cancel := context.WithCancel(ctx)
	id, events, err := d.cfg.Agent.SubscribeExecutor(sctx, call)
	if err == nil && events == nil {
		err = errors.New("the agent returned no event channel")
	}
	if err != nil {
		cancel()
		d.release()
		return nil, Info{}, fmt.Errorf("subscribe: %w", err)
	}
	s := &stream{id: id, events: events, ctx: sctx, cancel: cancel}
	d.mu.Lock()
	d.stream = s
	d.mu.Unlock()
	d.release()

	select {
	case ev, ok := <-events:
		switch {
		case !ok:
			err = errors.New("stream ended before SUBSCRIBED")
		case ev.GetType() != executorpb.Event_SUBSCRIBED || ev.Subscribed == nil:
			err = fmt.Errorf("first event is %v, not SUBSCRIBED", ev.GetType())
		default:
			sub := ev.Subscribed
			info := Info{Executor: sub.ExecutorInfo, Framework: sub.FrameworkInfo, Agent: sub.AgentInfo, ContainerID: sub.ContainerID}
			if info.Agent.ID != nil {
				d.mu.Lock()
				d.agentID = &mesospb.AgentID{Value: info.Agent.ID.Value}
				d.mu.Unlock()
			}
			return s, info, nil
		}
	case <-sctx.Done():
		err = errors.New("stream ended before SUBSCRIBED")
	case <-d.stopCh:
		err = ErrStopped
	}
	d.endStream(s)
	if ctx.Err() != nil {
		return nil, Info{}, ctx.Err()
	}
	return nil, Info{}, err
}

// serve delivers the events of s until it ends (nil: the agent closed it),
// Stop (ErrStopped) or ctx ends.
func (d *Driver) serve(ctx context.Context, s *stream) error {
	for {
		select {
		case <-d.stopCh:
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return errors.New("a call on the stream failed")
		case ev, ok := <-s.events:
			if !ok {
				return errors.New("the agent closed the stream")
			}
			if d.stopped() {
				return ErrStopped
			}
			d.dispatch(ctx, ev)
		}
	}
}

// dispatch hands one event to the Executor. Events missing their payload
// are logged and dropped: they come from the network.
func (d *Driver) dispatch(ctx context.Context, ev *executorpb.Event) {
	if ev == nil {
		return
	}
	malformed := func() { d.log.Warn("dropping event without its payload", "type", ev.GetType().String()) }
	switch ev.GetType() {
	case executorpb.Event_LAUNCH:
		if ev.Launch == nil {
			malformed()
			return
		}
		d.addUnackedTasks(ev.Launch.Task)
		d.exec.LaunchTask(ctx, d, &ev.Launch.Task)
	case executorpb.Event_LAUNCH_GROUP:
		if ev.LaunchGroup == nil {
			malformed()
			return
		}
		d.addUnackedTasks(ev.LaunchGroup.TaskGroup.Tasks...)
		d.exec.LaunchTaskGroup(ctx, d, &ev.LaunchGroup.TaskGroup)
	case executorpb.Event_KILL:
		if ev.Kill == nil {
			malformed()
			return
		}
		d.exec.KillTask(ctx, d, ev.Kill.TaskID, ev.Kill.KillPolicy)
	case executorpb.Event_ACKNOWLEDGED:
		if ev.Acknowledged == nil {
			malformed()
			return
		}
		d.acknowledge(ev.Acknowledged.TaskID, ev.Acknowledged.UUID)
		d.exec.Acknowledged(ctx, d, ev.Acknowledged.TaskID, ev.Acknowledged.UUID)
	case executorpb.Event_MESSAGE:
		if ev.Message == nil {
			malformed()
			return
		}
		d.exec.FrameworkMessage(ctx, d, ev.Message.Data)
	case executorpb.Event_ERROR:
		if ev.Error == nil {
			malformed()
			return
		}
		d.exec.Error(ctx, d, ev.Error.Message)
	case executorpb.Event_SHUTDOWN:
		d.exec.Shutdown(ctx, d)
	case executorpb.Event_HEARTBEAT:
	case executorpb.Event_SUBSCRIBED:
		d.log.Warn("ignoring a second SUBSCRIBED on one stream")
	default:
		// A newer agent's event this driver does not know.
		d.log.Debug("ignoring unknown event", "type", ev.GetType().String())
	}
}

func (d *Driver) addUnackedTasks(tasks ...mesospb.TaskInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unackedT = append(d.unackedT, tasks...)
}

// acknowledge forgets the acknowledged update, and the task's TaskInfo: an
// agent that acknowledged an update of the task knows the task.
func (d *Driver) acknowledge(taskID mesospb.TaskID, uuid []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.updates {
		if bytes.Equal(d.updates[i].Status.UUID, uuid) {
			d.updates = append(d.updates[:i], d.updates[i+1:]...)
			break
		}
	}
	for i := range d.unackedT {
		if d.unackedT[i].TaskID.Value == taskID.Value {
			d.unackedT = append(d.unackedT[:i], d.unackedT[i+1:]...)
			break
		}
	}
}

// endStream ends s, if it is still the current stream.
func (d *Driver) endStream(s *stream) {
	d.mu.Lock()
	if d.stream == s {
		d.stream = nil
	}
	d.mu.Unlock()
	s.cancel()
}

func (d *Driver) call(t executorpb.Call_Type) *executorpb.Call {
	return &executorpb.Call{
		ExecutorID:  mesospb.ExecutorID{Value: d.cfg.ExecutorID.Value},
		FrameworkID: mesospb.FrameworkID{Value: d.cfg.FrameworkID.Value},
		Type:        t.Enum(),
	}
}

func (d *Driver) acquire(ctx context.Context) error {
	select {
	case d.sem <- struct{}{}:
		return nil
	case <-d.stopCh:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Driver) release() { <-d.sem }

func (d *Driver) stopped() bool {
	select {
	case <-d.stopCh:
		return true
	default:
		return false
	}
}

// NewUUID returns 16 random bytes laid out as a version 4 UUID, the form of
// TaskStatus.uuid.
func NewUUID() []byte {
	u := make([]byte, 16)
	rand.Read(u) // never fails (crypto/rand)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// timestamp is t as TaskStatus.timestamp has it: seconds since the epoch.
func timestamp(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func ptr[T any](v T) *T { return &v }

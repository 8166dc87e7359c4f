package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/clock"
)

// Errors returned by the Driver, wrapped with details; test with errors.Is.
var (
	// ErrNotConnected: the driver is not subscribed right now (before the
	// first SUBSCRIBED, or between a lost stream and the next SUBSCRIBED).
	// Nothing was sent; retry after Registered or Reregistered.
	ErrNotConnected = errors.New("scheduler: not subscribed to a master")
	// ErrStopped: the driver was stopped or aborted, or Run has returned.
	ErrStopped = errors.New("scheduler: driver stopped")
	// ErrAborted is what Run returns after Abort, or wrapped with the
	// master's message after an ERROR event.
	ErrAborted = errors.New("scheduler: driver aborted")
	// ErrInvalid: a bad argument or a misuse of the driver; nothing was sent.
	ErrInvalid = errors.New("scheduler: invalid use")
	// ErrUnauthorized: the master's authorizer refused a call (an
	// UPDATE_FRAMEWORK into a role the framework may not use); the
	// subscription goes on.
	ErrUnauthorized = errors.New("scheduler: not authorized")
)

type runState int

const (
	stateIdle runState = iota
	stateRunning
	stateDone
)

// Driver connects a Scheduler to a master: it subscribes, keeps the
// subscription alive across master failovers and lost streams, delivers
// events to the Scheduler and turns the framework's requests into calls.
// Create it with NewDriver, start it with Run; its methods are safe for
// concurrent use.
type Driver struct {
	sched        Scheduler
	master       Master
	clock        clock.Clock
	log          *slog.Logger
	explicitAcks bool
	backoffMin   time.Duration
	backoffMax   time.Duration

	// stopCh is closed when a stop has finished its last call to the
	// master; Run's goroutine leaves on it.
	stopCh   chan struct{}
	stopOnce sync.Once

	mu          sync.Mutex
	info        mesospb.FrameworkInfo // ID kept in frameworkID, not here
	frameworkID *mesospb.FrameworkID  // nil until assigned or given
	suppressed  map[string]struct{}   // roles to subscribe with suppressed
	state       runState
	cancelRun   context.CancelFunc
	runCtx      context.Context
	stopping    bool  // Stop/Abort/ERROR began: no more calls, callbacks or reconnects
	stopErr     error // what Run returns once stopping
	connected   bool  // SUBSCRIBED received on the current stream
	streamID    string
	registered  bool // Registered was called once

	// streamGone tells the current session that the master refused a
	// call on its stream as not subscribed: the stream is dead even if
	// it has not ended yet. Sent and drained under mu.
	streamGone chan struct{}
	// principal is WithCredential's, put in FrameworkInfo when the
	// framework sets none.
	principal *string
}

// NewDriver returns a driver for the framework s described by info. Set
// info.ID to take over an existing framework (failover); leave it nil to
// register a new one. WithMaster or WithMasterURL is required.
func NewDriver(s Scheduler, info mesospb.FrameworkInfo, opts ...Option) (*Driver, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil Scheduler", ErrInvalid)
	}
	cfg := config{
		clock:      clock.Real(),
		log:        slog.New(slog.DiscardHandler),
		backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax,
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.masterURLs != nil {
		m, err := newHTTPMaster(&cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		cfg.master = m
	}
	switch {
	case cfg.master == nil:
		return nil, fmt.Errorf("%w: a master is required (WithMaster or WithMasterURL)", ErrInvalid)
	case cfg.clock == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalid)
	case cfg.backoffMin <= 0 || cfg.backoffMax < cfg.backoffMin:
		return nil, fmt.Errorf("%w: backoff needs 0 < min <= max, got %v and %v", ErrInvalid, cfg.backoffMin, cfg.backoffMax)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		sched:        s,
		master:       cfg.master,
		clock:        cfg.clock,
		log:          cfg.log,
		explicitAcks: cfg.explicitAcks,
		backoffMin:   cfg.backoffMin,
		backoffMax:   cfg.backoffMax,
		stopCh:       make(chan struct{}),
		streamGone:   make(chan struct{}, 1),
		suppressed:   roleSet(cfg.suppressedRoles),
	}
	d.info = *cloneInfo(&info)
	if cfg.credential != nil && d.info.Principal == nil {
		// The master would set it from the credential at SUBSCRIBE and
		// then refuse an UPDATE_FRAMEWORK without it as a change of
		// principal; the driver sends it from the start.
		d.principal = &cfg.credential.Principal
		d.info.Principal = d.principal
	}
	if d.info.ID != nil {
		id := mesospb.FrameworkID{Value: d.info.ID.Value}
		d.frameworkID = &id
		d.info.ID = nil
	}
	return d, nil
}

// FrameworkID returns the framework's ID: the one the master assigned, or the
// one given in FrameworkInfo.ID; its Value is empty until there is one.
func (d *Driver) FrameworkID() mesospb.FrameworkID {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.frameworkID == nil {
		return mesospb.FrameworkID{}
	}
	return mesospb.FrameworkID{Value: d.frameworkID.Value}
}

// Connected reports whether the driver is subscribed right now, that is
// whether a call made now would be sent.
func (d *Driver) Connected() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connected && !d.stopping
}

// Run subscribes to the master and delivers events to the Scheduler until
// the driver stops, re-subscribing with backoff whenever the stream is lost.
// It returns nil after Stop, ctx.Err() when ctx is cancelled, and an error
// wrapping ErrAborted after Abort or an ERROR event. A Driver runs once.
func (d *Driver) Run(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalid)
	}
	d.mu.Lock()
	switch d.state {
	case stateRunning:
		d.mu.Unlock()
		return fmt.Errorf("%w: Run is already running", ErrInvalid)
	case stateDone:
		d.mu.Unlock()
		return fmt.Errorf("%w: a Driver runs once", ErrStopped)
	}
	if d.stopping { // stopped before it started
		d.state = stateDone
		err := d.stopErr
		d.mu.Unlock()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	d.state, d.runCtx, d.cancelRun = stateRunning, ctx, cancel
	d.mu.Unlock()

	defer func() {
		cancel()
		d.mu.Lock()
		d.state, d.connected, d.streamID = stateDone, false, ""
		d.mu.Unlock()
	}()

	// A new leader detected ends a backoff grown against a master that
	// died: the driver subscribes to the new one at once.
	var changes <-chan struct{}
	if lc, ok := d.master.(leaderChanger); ok {
		changes = lc.LeaderChanges(ctx)
	}
	failures := 0
	for {
		if done, err := d.runResult(ctx); done {
			return err
		}
		if d.session(ctx) {
			failures = 0
		}
		if done, err := d.runResult(ctx); done {
			return err
		}
		delay := backoff(d.backoffMin, d.backoffMax, failures)
		failures++
		d.log.Info("re-subscribing after backoff", "delay", delay)
		d.wait(ctx, delay, &changes, &failures)
	}
}

// wait waits out a backoff of delay, or less when a new leader is
// detected (then failures starts over), the driver stops or ctx ends.
// changes is set to nil once closed (a Master without a detector).
func (d *Driver) wait(ctx context.Context, delay time.Duration, changes *<-chan struct{}, failures *int) {
	t := d.clock.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C():
			return
		case _, ok := <-*changes:
			if !ok {
				*changes = nil
				continue
			}
			*failures = 0
			d.log.Info("a new leading master is detected: subscribing now")
			return
		case <-d.stopCh:
			return
		case <-ctx.Done():
			return
		}
	}
}

// leaderChanger is a Master that tells of newly detected leaders (the
// HTTP link with WithMasterDetector).
type leaderChanger interface {
	LeaderChanges(ctx context.Context) <-chan struct{}
}

// runResult says whether Run should return, and what.
func (d *Driver) runResult(ctx context.Context) (done bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return true, d.stopErr
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	return false, nil
}

// session runs one subscription: subscribe, then deliver events until the
// stream ends or the driver stops. It reports whether the master answered
// SUBSCRIBED, which resets the backoff.
func (d *Driver) session(ctx context.Context) (subscribed bool) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream on the master's side
	defer d.clearStream()

	d.mu.Lock()
	select { // a notice about an earlier stream
	case <-d.streamGone:
	default:
	}
	d.mu.Unlock()

	streamID, events, err := d.master.SubscribeScheduler(sctx, d.subscribeCall())
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ErrInvalid):
			// The master refused the SUBSCRIBE itself (HTTP 400): it would
			// refuse it again, so give up as on an ERROR event.
			d.log.Error("master refused the subscription; aborting", "err", err)
			if d.beginStop(fmt.Errorf("%w: subscription refused: %w", ErrAborted, err)) {
				d.sched.Error(ctx, d, err.Error())
				d.finishStop()
			}
		default:
			d.log.Warn("subscribe failed", "err", err)
		}
		return false
	}
	if events == nil {
		d.log.Warn("master returned no event stream")
		return false
	}
	log := d.log.With("stream_id", streamID)

	// Until SUBSCRIBED names the real interval, assume the default one, so a
	// master that never answers is given up on too.
	live := liveness{clock: d.clock}
	live.reset(missedHeartbeats * defaultHeartbeat)
	defer live.stop()

	for {
		select {
		case <-d.stopCh:
			return subscribed
		case <-ctx.Done():
			return subscribed
		case <-d.streamGone:
			if d.isStopping() {
				// A TEARDOWN may have ended the stream; Stop closes stopCh
				// once its call has returned.
				continue
			}
			log.Warn("master no longer knows the stream; re-subscribing")
			d.lost(ctx, subscribed)
			return subscribed
		case <-live.C():
			if !live.expired() {
				continue
			}
			log.Warn("no event from the master in time; re-subscribing", "timeout", live.timeout)
			d.lost(ctx, subscribed)
			return subscribed
		case ev, ok := <-events:
			if !ok {
				if d.isStopping() {
					// A TEARDOWN ended the stream; Stop closes stopCh once
					// its call has returned.
					events = nil
					continue
				}
				log.Info("master ended the subscription")
				live.stop()
				d.lost(ctx, subscribed)
				return subscribed
			}
			if ev == nil || d.isStopping() {
				continue
			}
			live.touch()
			d.handle(ctx, log, streamID, ev, &subscribed, &live)
		}
	}
}

// handle delivers one event.
func (d *Driver) handle(ctx context.Context, log *slog.Logger, streamID string, ev *schedulerpb.Event, subscribed *bool, live *liveness) {
	typ := ev.GetType()
	if !*subscribed && typ != schedulerpb.Event_SUBSCRIBED && typ != schedulerpb.Event_ERROR {
		log.Warn("event before SUBSCRIBED dropped", "type", typ)
		return
	}
	switch typ {
	case schedulerpb.Event_SUBSCRIBED:
		sub := ev.GetSubscribed()
		if sub == nil {
			log.Warn("SUBSCRIBED without payload dropped")
			return
		}
		id := mesospb.FrameworkID{Value: sub.FrameworkID.Value}
		d.mu.Lock()
		d.frameworkID = &id
		d.streamID, d.connected = streamID, true
		again := d.registered
		d.registered = true
		d.mu.Unlock()
		*subscribed = true
		live.reset(heartbeatTimeout(sub.GetHeartbeatIntervalSeconds()))
		log.Info("subscribed", "framework_id", id.Value, "resubscribed", again)
		if again {
			d.sched.Reregistered(ctx, d, sub.MasterInfo)
		} else {
			d.sched.Registered(ctx, d, id, sub.MasterInfo)
		}

	case schedulerpb.Event_OFFERS:
		if offers := ev.GetOffers().GetOffers(); len(offers) > 0 {
			d.sched.ResourceOffers(ctx, d, offers)
		}

	case schedulerpb.Event_RESCIND:
		if r := ev.GetRescind(); r != nil {
			d.sched.OfferRescinded(ctx, d, r.OfferID)
		}

	case schedulerpb.Event_UPDATE:
		u := ev.GetUpdate()
		if u == nil {
			log.Warn("UPDATE without payload dropped")
			return
		}
		// Built before the callback, which may modify its copy of the status.
		ack := d.implicitAck(u.Status)
		d.sched.StatusUpdate(ctx, d, u.Status)
		if ack == nil || d.isStopping() {
			// Unacknowledged, the agent resends it to whoever takes over.
			return
		}
		if err := d.send(ctx, ack); err != nil {
			log.Warn("implicit acknowledgement failed; the agent will resend the update",
				"task_id", u.Status.TaskID.Value, "err", err)
		}

	case schedulerpb.Event_MESSAGE:
		if m := ev.GetMessage(); m != nil {
			d.sched.FrameworkMessage(ctx, d, m.AgentID, m.ExecutorID, m.Data)
		}

	case schedulerpb.Event_FAILURE:
		f := ev.GetFailure()
		switch {
		case f.GetExecutorID() != nil:
			var agent mesospb.AgentID
			if f.AgentID != nil {
				agent = *f.AgentID
			}
			d.sched.ExecutorLost(ctx, d, agent, *f.ExecutorID, int(f.GetStatus()))
		case f.GetAgentID() != nil:
			d.sched.AgentLost(ctx, d, *f.AgentID)
		default:
			log.Warn("FAILURE without agent or executor dropped")
		}

	case schedulerpb.Event_ERROR:
		msg := ev.GetError().GetMessage()
		log.Error("master reported an error; aborting", "message", msg)
		// As in Mesos, the driver is aborted before the callback runs, so
		// calls made from it fail with ErrStopped.
		if d.beginStop(fmt.Errorf("%w: master error: %s", ErrAborted, msg)) {
			d.sched.Error(ctx, d, msg)
			d.finishStop()
		}

	case schedulerpb.Event_HEARTBEAT:
		// Liveness only, recorded by the caller.

	default:
		if d.handleInverse(ctx, ev) { // inverse_offers.go
			return
		}
		log.Debug("event type not handled by this driver", "type", typ)
	}
}

// implicitAck returns the ACKNOWLEDGE call for status, or nil when the
// driver should not send one.
func (d *Driver) implicitAck(status mesospb.TaskStatus) *schedulerpb.Call {
	if d.explicitAcks || len(status.UUID) == 0 {
		return nil
	}
	if status.AgentID == nil {
		d.log.Warn("status update with uuid but no agent; not acknowledged", "task_id", status.TaskID.Value)
		return nil
	}
	return ackCall(status)
}

// lost ends a stream the framework did not ask to end.
func (d *Driver) lost(ctx context.Context, subscribed bool) {
	d.clearStream()
	if subscribed && !d.isStopping() {
		d.sched.Disconnected(ctx, d)
	}
}

func (d *Driver) clearStream() {
	d.mu.Lock()
	d.connected, d.streamID = false, ""
	d.mu.Unlock()
}

func (d *Driver) isStopping() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopping
}

// Stop stops the driver; Run then returns nil. With failover false it first
// sends TEARDOWN, and the master kills the framework's tasks and forgets it;
// if the driver is not subscribed then, the driver still stops but the
// error (wrapping ErrNotConnected) says the framework was not torn down.
// With failover true it only leaves: the master keeps the framework and its
// tasks for failover_timeout, for a new scheduler to take over. Stopping a
// stopped driver returns ErrStopped.
func (d *Driver) Stop(failover bool) error {
	d.mu.Lock()
	if d.stopping || d.state == stateDone {
		d.mu.Unlock()
		return fmt.Errorf("%w: already stopped", ErrStopped)
	}
	d.stopping, d.stopErr = true, nil
	connected, streamID, runCtx := d.connected, d.streamID, d.runCtx
	var id mesospb.FrameworkID
	if d.frameworkID != nil {
		id = *d.frameworkID
	}
	d.mu.Unlock()
	defer d.finishStop()

	if failover {
		return nil
	}
	if !connected {
		return fmt.Errorf("%w: driver stopped without TEARDOWN; the master keeps the framework until its failover timeout", ErrNotConnected)
	}
	call := &schedulerpb.Call{FrameworkID: &id, Type: schedulerpb.Call_TEARDOWN.Enum()}
	if err := d.master.SchedulerCall(runCtx, streamID, call); err != nil {
		return fmt.Errorf("scheduler: %s: %w", call.GetType(), err)
	}
	return nil
}

// Abort stops the driver without TEARDOWN, like Stop(true), but Run
// returns ErrAborted, telling whoever waits on Run that the framework did not
// finish. Aborting a stopped driver returns ErrStopped.
func (d *Driver) Abort() error {
	if !d.beginStop(ErrAborted) {
		return fmt.Errorf("%w: already stopped", ErrStopped)
	}
	d.finishStop()
	return nil
}

// beginStop marks the driver stopping, with what Run will return; it reports
// false if it already was.
func (d *Driver) beginStop(result error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping || d.state == stateDone {
		return false
	}
	d.stopping, d.stopErr = true, result
	return true
}

// finishStop makes Run's goroutine leave and cancels the callbacks' context.
func (d *Driver) finishStop() {
	d.stopOnce.Do(func() { close(d.stopCh) })
	d.mu.Lock()
	cancel := d.cancelRun
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// subscribeCall builds SUBSCRIBE from the current FrameworkInfo, ID and
// suppressed roles; it shares nothing with the driver's state, as an
// in-process master may keep what it is given.
func (d *Driver) subscribeCall() *schedulerpb.Call {
	d.mu.Lock()
	defer d.mu.Unlock()
	call := &schedulerpb.Call{
		Type: schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{
			FrameworkInfo:   *cloneInfo(&d.info),
			SuppressedRoles: roleList(d.suppressed),
		},
	}
	if d.frameworkID != nil {
		call.FrameworkID = &mesospb.FrameworkID{Value: d.frameworkID.Value}
		call.Subscribe.FrameworkInfo.ID = &mesospb.FrameworkID{Value: d.frameworkID.Value}
	}
	return call
}

// backoff is the wait before re-subscribing after failures failed attempts
// in a row: min, doubling, capped at max.
func backoff(min, max time.Duration, failures int) time.Duration {
	d := min
	for i := 0; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// heartbeatTimeout turns a master's heartbeat interval into how long the
// driver waits for any event; 0 (no check) when the master sends none.
func heartbeatTimeout(seconds float64) time.Duration {
	if !(seconds > 0) { // also NaN
		return 0
	}
	iv := maxHeartbeat
	if seconds < maxHeartbeat.Seconds() {
		iv = time.Duration(seconds * float64(time.Second))
	}
	if iv <= 0 {
		return 0
	}
	return missedHeartbeats * iv
}

// liveness watches a stream for silence. Instead of re-arming a timer on
// every event it records the time of the last one, and when the timer fires
// early re-arms it for the remainder.
type liveness struct {
	clock   clock.Clock
	timeout time.Duration // 0: not watching
	last    time.Time
	timer   clock.Timer
}

func (l *liveness) reset(timeout time.Duration) {
	l.stop()
	l.timeout = timeout
	l.last = l.clock.Now()
	if timeout > 0 {
		l.timer = l.clock.NewTimer(timeout)
	}
}

func (l *liveness) touch() {
	if l.timeout > 0 {
		l.last = l.clock.Now()
	}
}

// C fires when the stream may have been silent too long; nil when not
// watching, which blocks forever in a select.
func (l *liveness) C() <-chan time.Time {
	if l.timer == nil {
		return nil
	}
	return l.timer.C()
}

// expired is called when C fired: it reports whether the stream has been
// silent for the whole timeout, and otherwise re-arms the timer.
func (l *liveness) expired() bool {
	idle := l.clock.Now().Sub(l.last)
	if idle >= l.timeout {
		l.timer = nil
		return true
	}
	l.timer = l.clock.NewTimer(l.timeout - idle)
	return false
}

func (l *liveness) stop() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

func cloneInfo(info *mesospb.FrameworkInfo) *mesospb.FrameworkInfo {
	return proto.Clone(info).(*mesospb.FrameworkInfo)
}

func roleSet(roles []string) map[string]struct{} {
	s := make(map[string]struct{}, len(roles))
	for _, r := range roles {
		s[r] = struct{}{}
	}
	return s
}

func roleList(s map[string]struct{}) []string {
	if len(s) == 0 {
		return nil
	}
	l := make([]string, 0, len(s))
	for r := range s {
		l = append(l, r)
	}
	sort.Strings(l)
	return l
}

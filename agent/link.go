package agent

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/httpapi"
)

// masterConn is one stream to the master: the events the loop reads and a
// sender goroutine that makes the calls, so a slow master never blocks the
// loop.
type masterConn struct {
	gen      uint64
	streamID string
	events   <-chan *internalpb.Event
	cancel   context.CancelFunc
	sender   *sender
}

// sender makes a stream's calls in order on its own goroutine. Its queue
// is unbounded: what the loop hands it is already bounded by what the
// agent runs (one pending update per task, messages from executors).
type sender struct {
	master   Master
	streamID string
	log      interface{ Warn(string, ...any) }

	mu    sync.Mutex
	queue []*internalpb.Call
	busy  bool
	wake  chan struct{}
	idle  chan struct{} // closed and replaced when the queue drains
}

func newSender(m Master, streamID string, a *Agent) *sender {
	return &sender{master: m, streamID: streamID, log: a.log, wake: make(chan struct{}, 1), idle: make(chan struct{})}
}

func (s *sender) enqueue(calls []*internalpb.Call) {
	s.mu.Lock()
	s.queue = append(s.queue, calls...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sender) run(ctx context.Context) {
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.busy = len(batch) > 0
		if !s.busy {
			close(s.idle)
			s.idle = make(chan struct{})
		}
		s.mu.Unlock()
		if !s.send(ctx, batch) {
			return
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
	}
}

// send makes the calls of batch in order, several at a time when the
// master can take them (BatchMaster); a call that fails is logged and the
// next ones are still made, as when they go one by one. The stream's end,
// if that is the cause, comes as the closing of the event channel;
// updates are resent then. It returns false when ctx ended.
func (s *sender) send(ctx context.Context, batch []*internalpb.Call) bool {
	bm, _ := s.master.(BatchMaster)
	for len(batch) > 0 {
		failed := 0
		var err error
		if bm != nil && len(batch) > 1 {
			if err = bm.AgentCalls(ctx, s.streamID, batch); err == nil {
				return true
			}
			var ce *internalpb.CallError
			if errors.As(err, &ce) && ce.Index >= 0 && ce.Index < len(batch) {
				failed, err = ce.Index, ce.Err
			}
		} else {
			err = s.master.AgentCall(ctx, s.streamID, batch[0])
		}
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			s.log.Warn("agent: call to the master failed", "call", batch[failed].GetType().String(), "err", err)
		}
		batch = batch[failed+1:]
	}
	return true
}

// drain waits until every queued call has been made, or ctx ends.
func (s *sender) drain(ctx context.Context) {
	for {
		s.mu.Lock()
		empty := len(s.queue) == 0 && !s.busy
		idle := s.idle
		s.mu.Unlock()
		if empty {
			return
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return
		}
	}
}

// The master link's shell: the decisions are agentcore.Link's;
// here the agent dials, reads and closes the streams, checkpoints the agent
// ID, hands the calls to the stream's sender, and keeps one timer for the
// core's next deadline (a reconnection or the ping timeout).

// followLeader tells the link core of each newly detected leader.
func (a *Agent) followLeader(ctx context.Context, changes <-chan struct{}) {
	defer a.wg.Done()
	for range changes {
		if a.post(ctx, func() {
			a.link.MasterDetected(a.clk.Now())
			a.applyLink()
		}) != nil {
			return
		}
	}
}

// connect dials the master for the first time.
func (a *Agent) connect() {
	a.link.Start(a.clk.Now())
	a.applyLink()
}

// applyLink does what the link core decided, in its order: the agent ID
// is checkpointed first, so that nothing of a registration is acted on
// before an agent restarted after it would re-register with that ID; then
// a stream given up is closed, the calls queued, what waited for a master
// resumed, and a new attempt started; and sets the timer of its next
// deadline.
func (a *Agent) applyLink() {
	r := a.link.Drain()
	if r.WriteID != "" {
		if r.Replaced != "" {
			a.log.Warn("agent: the master gave a new agent ID", "old", r.Replaced, "new", r.WriteID)
		}
		if err := a.meta.writeAgentID(r.WriteID); err != nil {
			a.log.Error("agent: checkpointing the agent ID", "err", err)
		}
		a.setID(r.WriteID)
	}
	if h := r.HangUp; h != nil {
		a.log.Info("agent: disconnected from the master", "why", h.Why)
		if a.conn != nil && a.conn.gen == h.Gen {
			a.conn.cancel()
			a.conn = nil
		}
		a.pauseUpdates()
	}
	a.outbox = append(a.outbox, r.Sends...)
	if r.Registered {
		a.resumeUpdates()
	}
	if r.Dial != nil {
		a.dial(*r.Dial)
	}
	a.armLinkTimer()
}

// armLinkTimer sets the one timer that ticks the link core at its next
// deadline.
func (a *Agent) armLinkTimer() {
	at, ok := a.link.NextDeadline()
	if ok && a.linkTimer != 0 && at.Equal(a.linkTimerAt) {
		return
	}
	a.tm.cancel(a.linkTimer)
	a.linkTimer = 0
	if !ok {
		return
	}
	a.linkTimerAt = at
	a.linkTimer = a.tm.after(at.Sub(a.clk.Now()), func() {
		a.linkTimer = 0
		now := a.clk.Now()
		if now.Before(at) {
			now = at
		}
		a.link.Tick(now)
		a.applyLink()
	})
}

// linkJitter is the link core's randomness: a wait in [0, bound], drawn
// from the agent's Rand.
func (a *Agent) linkJitter(bound time.Duration) time.Duration {
	return time.Duration(a.rng.Int64N(int64(bound) + 1))
}

// isRegistered says the agent has a master to send calls to.
func (a *Agent) isRegistered() bool { return a.link.IsRegistered() && a.conn != nil }

// dial starts a connection attempt on its own goroutine; its outcome
// comes back to the loop as connected.
func (a *Agent) dial(d agentcore.Dial) {
	call := a.registrationCallFor(d)
	ctx, cancel := context.WithCancel(a.runCtx)
	a.connecting = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		id, events, err := a.cfg.Master.ConnectAgent(ctx, call)
		if a.post(ctx, func() { a.connected(d.Gen, ctx, cancel, id, events, err) }) != nil {
			cancel()
		}
	}()
}

func (a *Agent) connected(gen uint64, ctx context.Context, cancel context.CancelFunc, id string, events <-chan *internalpb.Event, err error) {
	if a.done {
		cancel()
		return
	}
	switch a.link.Connected(gen, err == nil, a.clk.Now()) {
	case agentcore.ConnStale:
		cancel()
		return
	case agentcore.ConnFailed:
		a.connecting = nil
		cancel()
		if refusedCredential(err) {
			// Retrying will not help until an operator fixes the
			// credential or the ACLs, but the agent keeps trying (with
			// backoff) so that it registers as soon as they do.
			a.log.Error("agent: the master refused the agent's registration: check its credential (WithCredential, -credential) and the master's register_agents ACL", "err", err)
		} else {
			a.log.Warn("agent: connecting to the master failed", "err", err)
		}
		a.applyLink()
		return
	}
	a.connecting = nil
	c := &masterConn{gen: gen, streamID: id, events: events, cancel: cancel, sender: newSender(a.cfg.Master, id, a)}
	a.conn = c
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		c.sender.run(ctx)
	}()
	a.applyLink()
}

// disconnected ends the current stream (the master closed it, or the
// connection broke) and schedules a new attempt.
func (a *Agent) disconnected(why string) {
	if a.conn == nil {
		return
	}
	if a.link.Disconnected(a.conn.gen, why, a.clk.Now()) {
		a.applyLink()
	}
}

// registrationCall is what the agent's next dial says.
func (a *Agent) registrationCall() *internalpb.Call {
	return a.registrationCallFor(a.link.Registration())
}

// registrationCallFor is REGISTER for an agent without an ID, else
// REREGISTER with everything the agent runs.
func (a *Agent) registrationCallFor(d agentcore.Dial) *internalpb.Call {
	info := a.agentInfo()
	caps := []mesospb.AgentInfo_Capability{
		{Type: mesospb.AgentInfo_Capability_MULTI_ROLE.Enum()},
		{Type: mesospb.AgentInfo_Capability_HIERARCHICAL_ROLE.Enum()},
		{Type: mesospb.AgentInfo_Capability_RESERVATION_REFINEMENT.Enum()},
	}
	if !d.Reregister {
		return &internalpb.Call{
			Type:     internalpb.Call_REGISTER.Enum(),
			Register: &internalpb.Call_Register{AgentInfo: info, Version: ptr(a.cfg.Version), Capabilities: caps},
		}
	}
	rr := &internalpb.Call_Reregister{
		AgentInfo:             info,
		Version:               ptr(a.cfg.Version),
		Capabilities:          caps,
		CheckpointedResources: append([]mesospb.Resource(nil), a.checkpointed...),
	}
	// As Mesos: the master does not track the command executors the
	// agent makes up, and terminated executors hold nothing
	// (agentcore.ReregisterExecutor).
	listed := a.tables.Reregistration()
	rr.Frameworks, rr.Executors, rr.Tasks = listed.Frameworks, listed.Executors, listed.Tasks
	return &internalpb.Call{
		Type:       internalpb.Call_REREGISTER.Enum(),
		AgentID:    &mesospb.AgentID{Value: d.AgentID},
		Reregister: rr,
	}
}

// handleEvent applies one event from the master.
func (a *Agent) handleEvent(ev *internalpb.Event) {
	a.link.Heard(a.clk.Now())
	switch ev.GetType() {
	case internalpb.Event_REGISTERED, internalpb.Event_REREGISTERED:
		if ev.Registered == nil {
			a.log.Warn("agent: registration answer without its body")
			return
		}
		a.registeredWith(ev.Registered, ev.GetType() == internalpb.Event_REREGISTERED)
	case internalpb.Event_RUN_TASK:
		if r := ev.RunTask; r != nil {
			a.runTasks(r.Framework, nil, nil, []mesospb.TaskInfo{r.Task})
		}
	case internalpb.Event_RUN_TASK_GROUP:
		if r := ev.RunTaskGroup; r != nil {
			a.runTasks(r.Framework, &r.Executor, &r.TaskGroup, r.TaskGroup.Tasks)
		}
	case internalpb.Event_KILL_TASK:
		if k := ev.KillTask; k != nil {
			a.killTask(k.FrameworkID.Value, k.TaskID.Value, k.KillPolicy)
		}
	case internalpb.Event_SHUTDOWN_FRAMEWORK:
		if s := ev.ShutdownFramework; s != nil {
			a.shutdownFramework(s.FrameworkID.Value)
		}
	case internalpb.Event_SHUTDOWN_EXECUTOR:
		if s := ev.ShutdownExecutor; s != nil {
			if e := a.executor(s.FrameworkID.Value, s.ExecutorID.Value); e != nil {
				a.shutdownExecutor(e, "the framework asked")
			} else {
				a.log.Warn("agent: shutdown of an unknown executor", "framework", s.FrameworkID.Value, "executor", s.ExecutorID.Value)
			}
		}
	case internalpb.Event_ACKNOWLEDGE:
		if ack := ev.Acknowledge; ack != nil {
			a.acknowledge(ack.FrameworkID.Value, ack.TaskID.Value, ack.UUID)
		}
	case internalpb.Event_PING:
		// A ping that says the master considers the agent gone, while
		// the agent thinks it is registered, makes it register again.
		disowned := ev.Ping != nil && ev.Ping.Connected != nil && !ev.Ping.GetConnected()
		if a.link.Pinged(disowned, a.clk.Now()) {
			a.applyLink()
		}
	case internalpb.Event_FRAMEWORK_MESSAGE:
		if m := ev.FrameworkMessage; m != nil {
			a.frameworkMessage(m.FrameworkID.Value, m.ExecutorID.Value, m.Data)
		}
	case internalpb.Event_UPDATE_FRAMEWORK:
		if u := ev.UpdateFramework; u != nil {
			a.updateFramework(u.FrameworkInfo)
			if u.FrameworkInfo.ID != nil {
				a.resumeFramework(u.FrameworkInfo.ID.Value) // updates.go
			}
		}
	case internalpb.Event_CHECKPOINT_RESOURCES:
		if c := ev.CheckpointResources; c != nil {
			a.checkpointResources(c.Resources)
		}
	case internalpb.Event_RECONCILE_TASKS:
		if r := ev.ReconcileTasks; r != nil {
			a.reconcileTasks(r.FrameworkID.Value, r.TaskIDs)
		}
	case internalpb.Event_SHUTDOWN:
		msg := "the master shut the agent down"
		if ev.Shutdown != nil && ev.Shutdown.GetMessage() != "" {
			msg += ": " + ev.Shutdown.GetMessage()
		}
		a.beginShutdown(true, msg)
	default:
		a.log.Warn("agent: unknown event from the master", "type", ev.GetType().String())
	}
}

// registeredWith takes the master's registration answer: the link core
// has the agent ID checkpointed, then the agent registered (applyLink).
func (a *Agent) registeredWith(r *internalpb.Event_Registered, re bool) {
	id := r.AgentID.Value
	interval := time.Duration(r.GetPingIntervalSeconds() * float64(time.Second))
	switch a.link.Registered(id, interval, int(r.GetMaxMissedPings()), a.clk.Now()) {
	case agentcore.RegNoID:
		a.log.Warn("agent: registration answer without an agent ID")
		return
	case agentcore.RegIgnored:
		return
	}
	a.applyLink()
	a.log.Info("agent: registered", "id", id, "reregistered", re)
	a.registeredWithMaster(r.MasterInfo) // operator_containers.go
}

// send queues a call for the master. Calls made while the agent is not
// registered are dropped, as Mesos drops them, except EXECUTOR_EXITED,
// which waits for the next registration (linkState.send); status updates
// have their own queue (see forwardUpdate).
func (a *Agent) send(c *internalpb.Call) {
	switch a.link.Send(c) {
	case agentcore.SendNow:
		a.outbox = append(a.outbox, c)
	case agentcore.SendDropped:
		a.log.Debug("agent: not registered, dropping a call to the master", "call", c.GetType().String())
	}
}

// flush hands the queued calls to the connection's sender.
func (a *Agent) flush() {
	if len(a.outbox) == 0 {
		return
	}
	if !a.isRegistered() {
		// The link dropped in the turn that queued them: they go through
		// the link again, so an EXECUTOR_EXITED waits for the next
		// registration instead of being lost (status updates have their
		// own queue and are resent after it).
		out := a.outbox
		a.outbox = nil
		for _, c := range out {
			a.send(c)
		}
		return
	}
	for _, c := range a.outbox {
		c.AgentID = &mesospb.AgentID{Value: a.id}
	}
	a.conn.sender.enqueue(a.outbox)
	a.outbox = nil
}

// refusedCredential says err is a master's 401 (no or a wrong credential)
// or 403 (the authorizer refused REGISTER_AGENT) to a registration.
func refusedCredential(err error) bool {
	var he *httpapi.Error
	return errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden)
}

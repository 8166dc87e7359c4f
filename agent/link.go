package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
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

// connect starts a connection attempt on its own goroutine; its outcome
// comes back to the loop as connected.
func (a *Agent) connect() {
	a.reconnectTimer = 0
	if a.shutdown != nil || a.done {
		return
	}
	a.connGen++
	gen := a.connGen
	call := a.registrationCall()
	ctx, cancel := context.WithCancel(a.runCtx)
	a.connecting = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		id, events, err := a.cfg.Master.ConnectAgent(ctx, call)
		if a.post(ctx, func() { a.connected(gen, ctx, cancel, id, events, err) }) != nil {
			cancel()
		}
	}()
}

func (a *Agent) connected(gen uint64, ctx context.Context, cancel context.CancelFunc, id string, events <-chan *internalpb.Event, err error) {
	if gen != a.connGen || a.done {
		cancel()
		return
	}
	a.connecting = nil
	if err != nil {
		cancel()
		a.log.Warn("agent: connecting to the master failed", "err", err)
		a.scheduleReconnect()
		return
	}
	c := &masterConn{gen: gen, streamID: id, events: events, cancel: cancel, sender: newSender(a.cfg.Master, id, a)}
	a.conn = c
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		c.sender.run(ctx)
	}()
}

// disconnected ends the current stream (the master closed it, or the agent
// gave up on it) and schedules a new attempt.
func (a *Agent) disconnected(why string) {
	if a.conn == nil {
		return
	}
	a.log.Info("agent: disconnected from the master", "why", why)
	a.conn.cancel()
	a.conn = nil
	a.registered = false
	a.tm.cancel(a.pingTimer)
	a.pingTimer = 0
	a.pauseUpdates()
	a.scheduleReconnect()
}

// scheduleReconnect waits a random delay up to the current backoff, which
// doubles with every attempt up to RegistrationBackoffMax, so agents that
// lost their master together do not all come back at once.
func (a *Agent) scheduleReconnect() {
	if a.shutdown != nil || a.done {
		return
	}
	b := a.regBackoff
	delay := time.Duration(0)
	if b > 0 {
		delay = time.Duration(a.rng.Int64N(int64(b) + 1))
	}
	a.regBackoff = min(2*b, a.cfg.RegistrationBackoffMax)
	a.tm.cancel(a.reconnectTimer)
	a.reconnectTimer = a.tm.after(delay, a.connect)
}

// registrationCall is REGISTER for an agent without an ID, else REREGISTER
// with everything the agent runs.
func (a *Agent) registrationCall() *internalpb.Call {
	info := a.agentInfo()
	caps := []mesospb.AgentInfo_Capability{
		{Type: mesospb.AgentInfo_Capability_MULTI_ROLE.Enum()},
		{Type: mesospb.AgentInfo_Capability_HIERARCHICAL_ROLE.Enum()},
		{Type: mesospb.AgentInfo_Capability_RESERVATION_REFINEMENT.Enum()},
	}
	if a.id == "" {
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
	for _, fw := range a.sortedFrameworks() {
		rr.Frameworks = append(rr.Frameworks, fw.info)
		for _, e := range fw.sortedExecutors() {
			// As Mesos: the master does not track the command executors
			// the agent makes up, and terminated executors hold nothing.
			if !e.kind.command() && e.state != execTerminated {
				rr.Executors = append(rr.Executors, e.info)
			}
			for _, t := range e.sortedTasks() {
				rr.Tasks = append(rr.Tasks, t.proto())
			}
		}
	}
	return &internalpb.Call{
		Type:       internalpb.Call_REREGISTER.Enum(),
		AgentID:    &mesospb.AgentID{Value: a.id},
		Reregister: rr,
	}
}

// handleEvent applies one event from the master.
func (a *Agent) handleEvent(ev *internalpb.Event) {
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
		a.pinged(ev.Ping)
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

func (a *Agent) registeredWith(r *internalpb.Event_Registered, re bool) {
	id := r.AgentID.Value
	if id == "" {
		a.log.Warn("agent: registration answer without an agent ID")
		return
	}
	if a.id != "" && a.id != id {
		a.log.Warn("agent: the master gave a new agent ID", "old", a.id, "new", id)
	}
	if a.id != id {
		if err := a.meta.writeAgentID(id); err != nil {
			a.log.Error("agent: checkpointing the agent ID", "err", err)
		}
		a.setID(id)
	}
	a.log.Info("agent: registered", "id", id, "reregistered", re)
	a.registeredWithMaster(r.MasterInfo) // operator_containers.go
	a.registered = true
	a.regBackoff = a.cfg.RegistrationBackoff
	interval := time.Duration(r.GetPingIntervalSeconds() * float64(time.Second))
	if interval <= 0 {
		interval = defaultPingInterval
	}
	misses := int(r.GetMaxMissedPings())
	if misses <= 0 {
		misses = defaultMaxMissedPings
	}
	a.pingTimeout = interval * time.Duration(misses)
	a.resetPingTimer()
	a.outbox = append(a.held, a.outbox...)
	a.held = nil
	a.resumeUpdates()
}

func (a *Agent) resetPingTimer() {
	a.tm.cancel(a.pingTimer)
	a.pingTimer = 0
	if a.pingTimeout <= 0 {
		return
	}
	gen := a.connGen
	a.pingTimer = a.tm.after(a.pingTimeout, func() {
		a.pingTimer = 0
		if a.conn != nil && a.conn.gen == gen {
			a.disconnected("no ping from the master in " + a.pingTimeout.String())
		}
	})
}

func (a *Agent) pinged(p *internalpb.Event_Ping) {
	if !a.registered {
		return
	}
	a.resetPingTimer()
	a.send(&internalpb.Call{Type: internalpb.Call_PONG.Enum()})
	if p != nil && p.Connected != nil && !p.GetConnected() {
		// The master thinks the agent is gone while the agent thinks it is
		// registered: register again, as Mesos does.
		a.disconnected("the master considers the agent disconnected")
	}
}

// send queues a call for the master. Calls made while the agent is not
// registered are dropped, as Mesos drops them, except EXECUTOR_EXITED,
// which waits for the next registration; status updates have their own
// queue (see forwardUpdate).
func (a *Agent) send(c *internalpb.Call) {
	if a.registered && a.conn != nil {
		a.outbox = append(a.outbox, c)
		return
	}
	if c.GetType() == internalpb.Call_EXECUTOR_EXITED && len(a.held) < maxHeldCalls {
		a.held = append(a.held, c)
		return
	}
	a.log.Debug("agent: not registered, dropping a call to the master", "call", c.GetType().String())
}

// maxHeldCalls bounds the EXECUTOR_EXITED calls kept while disconnected.
const maxHeldCalls = 10000

// flush hands the queued calls to the connection's sender.
func (a *Agent) flush() {
	if len(a.outbox) == 0 {
		return
	}
	if a.conn == nil || !a.registered {
		a.outbox = nil
		return
	}
	for _, c := range a.outbox {
		c.AgentID = &mesospb.AgentID{Value: a.id}
	}
	a.conn.sender.enqueue(a.outbox)
	a.outbox = nil
}

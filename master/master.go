package master

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/auth"
)

// Master is a running master: the core state machine owned by one goroutine
// (Run), the links schedulers and agents use to reach it, and the streams
// it feeds. Schedulers reach it through SubscribeScheduler and
// SchedulerCall, agents through ConnectAgent and AgentCall: in one process
// directly, across machines through the HTTP API wrapped around the same
// methods.
type Master struct {
	cfg       Config
	reqs      chan request
	ready     chan struct{} // closed once Run owns the core
	done      chan struct{} // closed when Run returns
	recovered atomic.Bool   // the registry is recovered: the master may serve
	files     masterFiles   // the files API: attached files, forwarding to agents; see files.go
	admission *admission    // the scheduler API's rate and request limits (ratelimit.go)

	// Owned by Run's goroutine.
	core       *core
	subs       map[string]*subscriber
	backlogged map[string]*subscriber // the subs with a backlog
	durable    durability             // registry writes and the outputs they hold back
	runCtx     context.Context        // Run's: registry writes end with it
	prom       *promMetrics           // GET /metrics (metrics.go)
}

// request is a function to run on the master's goroutine; done, when not
// nil, is closed once the outputs of its turn are out (durable first).
type request struct {
	f    func(*core)
	done chan struct{}
}

// durability holds back the core's outputs until the registry operations
// they follow are durable (registry_core.go). Writes run one at a time on
// a goroutine of their own, each taking every operation queued since the
// last one began (group commit), while the core goes on taking inputs:
// their outputs wait in held, in order, behind the write they need.
type durability struct {
	queued  []RegistryOp // for the next write
	started uint64       // writes begun
	written uint64       // writes completed
	writing bool
	result  chan error // the write in flight's outcome
	held    []heldOutput
}

// heldOutput is one turn's outputs, waiting for write number needs.
type heldOutput struct {
	out     outbox
	needs   uint64
	waiters []chan struct{}
}

// subscriber is one open stream: the channel the peer reads, and stop,
// closed when the master ends the stream, which also ends the goroutine
// watching the peer's context.
//
// What does not fit in the channel waits in the backlog, in order, and
// moves on as the reader makes room (Master.refill): a slow reader delays
// its own events and loses none, until its backlog holds more than
// Config.StreamBacklog bytes; then it is disconnected, as a peer that is
// not reading at all. The master never waits for a reader.
type subscriber struct {
	scheduler chan *schedulerpb.Event
	agent     chan *internalpb.Event
	operator  chan *masterpb.Event
	stop      chan struct{}

	backlog      []message // owned by Run's goroutine, as the rest
	backlogBytes int
	ending       bool // the master ended the stream: close it once the backlog is out
}

// offer hands msg to the reader's channel without waiting, and reports
// whether it fit.
func (s *subscriber) offer(msg message) bool {
	switch {
	case msg.scheduler != nil && s.scheduler != nil:
		select {
		case s.scheduler <- msg.scheduler:
			return true
		default:
		}
	case msg.agent != nil && s.agent != nil:
		select {
		case s.agent <- msg.agent:
			return true
		default:
		}
	case msg.operator != nil && s.operator != nil:
		select {
		case s.operator <- msg.operator:
			return true
		default:
		}
	default:
		return true // not for this kind of stream: nothing to deliver
	}
	return false
}

// size is what a message holds in a backlog.
func (msg message) size() int {
	switch {
	case msg.scheduler != nil:
		return msg.scheduler.Size()
	case msg.agent != nil:
		return msg.agent.Size()
	case msg.operator != nil:
		return msg.operator.Size()
	}
	return 0
}

func (s *subscriber) close() {
	close(s.stop)
	if s.scheduler != nil {
		close(s.scheduler)
	}
	if s.agent != nil {
		close(s.agent)
	}
	if s.operator != nil {
		close(s.operator)
	}
}

// New returns a master configured by cfg. It does nothing until Run.
func New(cfg Config) (*Master, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Master{
		cfg:       cfg,
		admission: newAdmission(&cfg),
		reqs:      make(chan request),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		subs:      map[string]*subscriber{},
		files:     masterFiles{client: newFilesClient(cfg.AgentTLS)},

		backlogged: map[string]*subscriber{},
		durable:    durability{result: make(chan error, 1)},
	}
	m.core = newCore(cfg, cfg.Clock.Now())
	m.prom = newPromMetrics(m)
	return m, nil
}

// Info returns the master's MasterInfo.
func (m *Master) Info() mesospb.MasterInfo { return m.core.info }

// Run runs the master until ctx ends; then every stream is closed and every
// call returns ErrStopped. With a Config.Registry it first recovers the
// registry (the master answers 503 meanwhile), and it returns an error
// when the registry fails (ErrRegistryFenced: another master recovered it
// since, so this one no longer leads) or too few recovered agents came
// back (ErrRecoveryLimit): the master must not go on, as Mesos's master
// exits. Outputs whose registry write did not complete are never sent.
func (m *Master) Run(ctx context.Context) error {
	select {
	case <-m.ready:
		return fmt.Errorf("master: Run called twice")
	default:
	}
	close(m.ready)
	defer close(m.done)
	defer func() {
		for id, s := range m.subs {
			s.close()
			delete(m.subs, id)
		}
		clear(m.backlogged)
		if m.durable.writing {
			<-m.durable.result // the registry is the embedder's again once Run returns
		}
	}()
	m.runCtx = ctx
	if reg := m.cfg.Registry; reg != nil {
		st, err := reg.Recover(ctx)
		if err != nil {
			return fmt.Errorf("master: recovering the registry: %w", err)
		}
		m.core.recoverRegistry(st, m.cfg.Clock.Now())
		m.flush(nil)
	}
	m.recovered.Store(true)
	ticker := m.cfg.Clock.NewTicker(m.cfg.TickInterval)
	defer ticker.Stop()
	for {
		var done chan struct{}
		select {
		case <-ctx.Done():
			return nil
		case r := <-m.reqs:
			r.f(m.core)
			done = r.done
		case now := <-ticker.C():
			runs := m.core.met.allocationRuns
			start := time.Now()
			m.core.tick(now)
			if m.core.met.allocationRuns != runs {
				m.core.met.allocationTime = time.Since(start)
				m.prom.allocated(m.core.met.allocationTime)
			}
			m.prom.sweep(now)
		case err := <-m.durable.result:
			m.durable.writing = false
			if err != nil {
				m.cfg.Logger.Error("registry write failed; the master stops, its held outputs unsent", "err", err)
				return fmt.Errorf("master: registry: %w", err)
			}
			m.durable.written++
			m.release()
		}
		m.refill()
		m.flush(done)
		if err := m.core.reg.fatal; err != nil {
			return err
		}
	}
}

// release delivers the held outputs whose writes are done, in order.
func (m *Master) release() {
	d := &m.durable
	n := 0
	for n < len(d.held) && d.held[n].needs <= d.written {
		h := d.held[n]
		m.deliverOutbox(h.out)
		for _, w := range h.waiters {
			close(w)
		}
		n++
	}
	clear(d.held[:n])
	d.held = d.held[n:]
}

// startWrite hands the queued registry operations to a writer, unless one
// is busy (then they go in the next write, when it is done).
func (m *Master) startWrite(ctx context.Context) {
	d := &m.durable
	if d.writing || len(d.queued) == 0 {
		return
	}
	ops := d.queued
	d.queued = nil
	d.started++
	d.writing = true
	reg := m.cfg.Registry
	go func() {
		start := time.Now()
		err := reg.Apply(ctx, ops)
		m.prom.wrote(time.Since(start), err)
		d.result <- err
	}()
}

// refill moves backlogs on as far as their readers have made room, and
// closes a stream the master ended once its backlog is out. It runs at
// every turn of Run, ticks included, so a reader that catches up gets the
// rest within a tick.
func (m *Master) refill() {
	for id, s := range m.backlogged {
		n := 0
		for n < len(s.backlog) && s.offer(s.backlog[n]) {
			s.backlogBytes -= s.backlog[n].size()
			n++
		}
		clear(s.backlog[:n])
		s.backlog = s.backlog[n:]
		if len(s.backlog) > 0 {
			continue
		}
		s.backlog, s.backlogBytes = nil, 0
		delete(m.backlogged, id)
		if s.ending {
			s.close()
			delete(m.subs, id)
		}
	}
}

// deliver hands msg to its stream's reader, or to the back of its
// backlog; it reports false when the backlog has grown past its bound.
func (m *Master) deliver(id string, s *subscriber, msg message) bool {
	if len(s.backlog) == 0 && s.offer(msg) {
		return true
	}
	s.backlog = append(s.backlog, msg)
	s.backlogBytes += msg.size()
	m.backlogged[id] = s
	return s.backlogBytes <= m.cfg.StreamBacklog
}

// drop ends a stream at once, its backlog with it.
func (m *Master) drop(id string, s *subscriber) {
	s.close()
	delete(m.subs, id)
	delete(m.backlogged, id)
}

// flush takes the core's outbox: its registry operations are queued for
// the next write, and its messages and closes delivered at once unless
// they must wait for a write (theirs, or one that earlier outputs wait
// for). done, if not nil, is closed once this turn's outputs are out.
func (m *Master) flush(done chan struct{}) {
	d := &m.durable
	for {
		out := m.core.drain()
		if len(out.messages) == 0 && len(out.closes) == 0 && len(out.registry) == 0 {
			break
		}
		d.queued = append(d.queued, out.registry...)
		needs := d.written
		if len(d.queued) > 0 {
			needs = d.started + 1
		}
		if n := len(d.held); n > 0 {
			needs = max(needs, d.held[n-1].needs)
		}
		if needs > d.written {
			d.held = append(d.held, heldOutput{out: out, needs: needs})
			continue
		}
		m.deliverOutbox(out)
	}
	if done != nil {
		if n := len(d.held); n > 0 {
			d.held[n-1].waiters = append(d.held[n-1].waiters, done)
		} else {
			close(done)
		}
	}
	m.startWrite(m.runCtx)
}

// deliverOutbox delivers messages and closes. A subscriber whose backlog
// grows past Config.StreamBacklog is disconnected rather than waited for;
// the core learns of it, which may produce more output for the next flush.
func (m *Master) deliverOutbox(out outbox) {
	{
		var slow []string
		m.prom.sent(out.messages)
		for _, msg := range out.messages {
			s := m.subs[msg.stream]
			if s == nil || s.ending {
				continue
			}
			if !m.deliver(msg.stream, s, msg) {
				m.cfg.Logger.Warn("subscriber too slow: its backlog is over the bound; disconnecting it",
					"stream", msg.stream, "backlog_bytes", s.backlogBytes, "bound", m.cfg.StreamBacklog)
				m.drop(msg.stream, s)
				slow = append(slow, msg.stream)
			}
		}
		for _, id := range out.closes {
			s := m.subs[id]
			switch {
			case s == nil:
			case len(s.backlog) > 0:
				s.ending = true // refill closes it once its last events are out
			default:
				m.drop(id, s)
			}
		}
		for _, id := range slow {
			m.core.streamEnded(id)
		}
	}
}

// running reports whether Run has started (a standby's has not).
func (m *Master) running() bool {
	select {
	case <-m.ready:
		return true
	default:
		return false
	}
}

// do runs f on the master's goroutine and waits for it.
func (m *Master) do(ctx context.Context, f func(*core)) error {
	finished := make(chan struct{})
	select {
	case m.reqs <- request{f: f, done: finished}:
	case <-m.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-finished:
		return nil
	case <-m.done:
		return ErrStopped
	}
}

// post runs f on the master's goroutine without waiting; it gives up when
// the master stops.
func (m *Master) post(f func(*core)) {
	select {
	case m.reqs <- request{f: f}:
	case <-m.done:
	}
}

// watch ends a stream when the peer's context ends.
func (m *Master) watch(ctx context.Context, id string, s *subscriber) {
	go func() {
		select {
		case <-ctx.Done():
			m.post(func(c *core) {
				if m.subs[id] == s {
					m.drop(id, s)
				}
				c.streamEnded(id)
			})
		case <-s.stop:
		}
	}()
}

// SubscribeScheduler subscribes a scheduler (a SUBSCRIBE call). The events
// channel starts with SUBSCRIBED and is closed when the subscription ends:
// the framework was torn down or subscribed again elsewhere, it fell too
// far behind, or the master stopped. Cancelling ctx disconnects the
// scheduler, which starts its failover timeout.
//
// When ctx carries an authenticated principal (auth.PrincipalFrom), the
// FrameworkInfo's principal must be it, or is set to it when empty, as
// Mesos does; with a Config.Authorizer the framework must be allowed to
// register in all its roles (ErrForbidden otherwise), and the approvers
// got for its principal here decide its later calls (auth.go).
func (m *Master) SubscribeScheduler(ctx context.Context, call *schedulerpb.Call) (string, <-chan *schedulerpb.Event, error) {
	call, err := authenticateSubscribe(ctx, call)
	if err != nil {
		return "", nil, err
	}
	var ap approvers
	if call.Subscribe != nil {
		if ap, err = m.approvers(ctx, call.Subscribe.FrameworkInfo.GetPrincipal(), frameworkActions...); err != nil {
			return "", nil, err
		}
	}
	sub := &subscriber{scheduler: make(chan *schedulerpb.Event, m.cfg.StreamBuffer), stop: make(chan struct{})}
	id, err := m.openStream(ctx, sub, func(c *core) (string, error) { return c.subscribe(call, ap) })
	if err != nil {
		return "", nil, err
	}
	return id, sub.scheduler, nil
}

// openStream runs start on the master's goroutine and, when it opens a
// stream, delivers that stream's events to sub until the stream or ctx ends.
func (m *Master) openStream(ctx context.Context, sub *subscriber, start func(*core) (string, error)) (string, error) {
	var (
		id  string
		err error
	)
	if derr := m.do(ctx, func(c *core) {
		if id, err = start(c); err != nil {
			return
		}
		m.subs[id] = sub
		m.watch(ctx, id, sub)
	}); derr != nil {
		return "", derr
	}
	return id, err
}

type peerAddrKey struct{}

// withPeerAddr returns ctx carrying addr, the "host:port" a call came from
// (http.Request.RemoteAddr).
func withPeerAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, peerAddrKey{}, addr)
}

// peerIP is the IP address of the peer withPeerAddr recorded in ctx, or "".
func peerIP(ctx context.Context) string {
	addr, _ := ctx.Value(peerAddrKey{}).(string)
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return ""
	}
	return ap.Addr().Unmap().String()
}

// SchedulerCall sends a call other than SUBSCRIBE on a subscription. nil
// means accepted; results arrive on the stream. When ctx carries an
// authenticated principal, it must be the framework's (ErrInvalidCall, as
// Mesos answers 400).
func (m *Master) SchedulerCall(ctx context.Context, streamID string, call *schedulerpb.Call) error {
	var err error
	principal, authenticated := auth.PrincipalFrom(ctx)
	if derr := m.do(ctx, func(c *core) {
		if authenticated {
			if err = c.checkFrameworkPrincipal(call, principal); err != nil {
				return
			}
		}
		if err = c.schedulerCall(streamID, call); err == nil {
			m.prom.answered(call)
		}
	}); derr != nil {
		return derr
	}
	return err
}

// ConnectAgent registers or re-registers an agent (a REGISTER or
// REREGISTER call) and opens its stream, which starts with REGISTERED or
// REREGISTERED. Cancelling ctx disconnects the agent. When ctx carries the
// address the call came from (the HTTP API puts it there), the agent's IP
// address in offers is taken from it.
//
// With a Config.Authorizer, the principal ctx carries (none for an
// unauthenticated caller) must be allowed to register agents, and to
// reserve the roles of the agent's static reservations, as Mesos
// authorizes REGISTER and REREGISTER alike: a REREGISTER claiming a known
// agent's ID needs the same right (ErrForbidden otherwise).
func (m *Master) ConnectAgent(ctx context.Context, call *internalpb.Call) (string, <-chan *internalpb.Event, error) {
	principal, authenticated := auth.PrincipalFrom(ctx)
	ap, err := m.approvers(ctx, principal, auth.RegisterAgent, auth.ReserveResources)
	if err != nil {
		return "", nil, err
	}
	sub := &subscriber{agent: make(chan *internalpb.Event, m.cfg.StreamBuffer), stop: make(chan struct{})}
	ip := peerIP(ctx)
	id, err := m.openStream(ctx, sub, func(c *core) (string, error) {
		if err := authorizeAgent(call, ap); err != nil {
			c.log.Warn("agent refused", "call", call.GetType(), "principal", principalOf(ctx), "peer", ip, "err", err)
			return "", err
		}
		id, err := c.connectAgentFrom(call, ip)
		if s := c.streams[id]; err == nil && s != nil && authenticated {
			s.principal = &principal
		}
		return id, err
	})
	if err != nil {
		return "", nil, err
	}
	return id, sub.agent, nil
}

// AgentCall sends an agent's call on its stream.
func (m *Master) AgentCall(ctx context.Context, streamID string, call *internalpb.Call) error {
	var err error
	if derr := m.do(ctx, func(c *core) {
		if err = c.checkStreamPrincipal(ctx, streamID); err == nil {
			err = c.agentCall(streamID, call)
		}
	}); derr != nil {
		return derr
	}
	return err
}

// AgentCalls sends several of an agent's calls on its stream at once, in
// order, in one turn of the master's loop: the batch costs one hand-off
// instead of one per call. Each call is checked and applied as AgentCall
// would; the first that fails stops the batch with an
// *internalpb.CallError naming its index (wrapping the call's error, so
// errors.Is(err, ErrNotSubscribed) works). The calls before it stay
// applied, exactly as if they had been sent one by one.
func (m *Master) AgentCalls(ctx context.Context, streamID string, calls []*internalpb.Call) error {
	var err error
	if derr := m.do(ctx, func(c *core) {
		if err = c.checkStreamPrincipal(ctx, streamID); err != nil {
			return
		}
		for i, call := range calls {
			if cerr := c.agentCall(streamID, call); cerr != nil {
				err = &internalpb.CallError{Index: i, Err: cerr}
				return
			}
		}
	}); derr != nil {
		return derr
	}
	return err
}

// State returns the master's state as the operator API's GET_STATE
// reports it: frameworks, agents, tasks and executors.
//
// With a Config.Authorizer, it holds what the principal of ctx may see
// (auth_view.go).
func (m *Master) State(ctx context.Context) (*masterpb.Response_GetState, error) {
	ap, err := m.approvers(ctx, principalOf(ctx), viewActions...)
	if err != nil {
		return nil, err
	}
	var st *masterpb.Response_GetState
	if err := m.do(ctx, func(c *core) {
		st = c.state()
		c.filterState(st, ap)
	}); err != nil {
		return nil, err
	}
	return st, nil
}

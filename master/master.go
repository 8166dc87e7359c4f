package master

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// Master is a running master: the core state machine owned by one goroutine
// (Run), the links schedulers and agents use to reach it, and the streams
// it feeds. Schedulers reach it through SubscribeScheduler and
// SchedulerCall, agents through ConnectAgent and AgentCall: in one process
// directly, across machines through the HTTP API wrapped around the same
// methods.
type Master struct {
	cfg   Config
	reqs  chan func(*core)
	ready chan struct{} // closed once Run owns the core
	done  chan struct{} // closed when Run returns
	files masterFiles   // the files API: attached files, forwarding to agents; see files.go

	// Owned by Run's goroutine.
	core *core
	subs map[string]*subscriber
}

// subscriber is one open stream: the channel the peer reads, and stop,
// closed when the master ends the stream, which also ends the goroutine
// watching the peer's context.
type subscriber struct {
	scheduler chan *schedulerpb.Event
	agent     chan *internalpb.Event
	operator  chan *masterpb.Event
	stop      chan struct{}
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
		cfg:   cfg,
		reqs:  make(chan func(*core)),
		ready: make(chan struct{}),
		done:  make(chan struct{}),
		subs:  map[string]*subscriber{},
		files: masterFiles{client: newFilesClient()},
	}
	m.core = newCore(cfg, cfg.Clock.Now())
	return m, nil
}

// Info returns the master's MasterInfo.
func (m *Master) Info() mesospb.MasterInfo { return m.core.info }

// Run runs the master until ctx ends; then every stream is closed and every
// call returns ErrStopped.
func (m *Master) Run(ctx context.Context) error {
	select {
	case <-m.ready:
		return fmt.Errorf("master: Run called twice")
	default:
	}
	close(m.ready)
	defer close(m.done)
	ticker := m.cfg.Clock.NewTicker(m.cfg.TickInterval)
	defer ticker.Stop()
	defer func() {
		for id, s := range m.subs {
			s.close()
			delete(m.subs, id)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-m.reqs:
			f(m.core)
		case now := <-ticker.C():
			runs := m.core.met.allocationRuns
			start := time.Now()
			m.core.tick(now)
			if m.core.met.allocationRuns != runs {
				m.core.met.allocationTime = time.Since(start)
			}
		}
		m.flush()
	}
}

// flush delivers the core's outbox. A subscriber whose buffer is full is
// disconnected rather than waited for; the core learns of it, which may
// produce more output, hence the loop.
func (m *Master) flush() {
	for {
		out := m.core.drain()
		if len(out.messages) == 0 && len(out.closes) == 0 {
			return
		}
		var slow []string
		for _, msg := range out.messages {
			s := m.subs[msg.stream]
			if s == nil {
				continue
			}
			delivered := true
			switch {
			case msg.scheduler != nil && s.scheduler != nil:
				select {
				case s.scheduler <- msg.scheduler:
				default:
					delivered = false
				}
			case msg.agent != nil && s.agent != nil:
				select {
				case s.agent <- msg.agent:
				default:
					delivered = false
				}
			case msg.operator != nil && s.operator != nil:
				select {
				case s.operator <- msg.operator:
				default:
					delivered = false
				}
			}
			if !delivered {
				m.cfg.Logger.Warn("subscriber too slow; disconnecting it", "stream", msg.stream)
				s.close()
				delete(m.subs, msg.stream)
				slow = append(slow, msg.stream)
			}
		}
		for _, id := range out.closes {
			if s := m.subs[id]; s != nil {
				s.close()
				delete(m.subs, id)
			}
		}
		for _, id := range slow {
			m.core.streamEnded(id)
		}
	}
}

// do runs f on the master's goroutine and waits for it.
func (m *Master) do(ctx context.Context, f func(*core)) error {
	finished := make(chan struct{})
	select {
	case m.reqs <- func(c *core) { f(c); close(finished) }:
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
	case m.reqs <- f:
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
					s.close()
					delete(m.subs, id)
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
func (m *Master) SubscribeScheduler(ctx context.Context, call *schedulerpb.Call) (string, <-chan *schedulerpb.Event, error) {
	sub := &subscriber{scheduler: make(chan *schedulerpb.Event, m.cfg.StreamBuffer), stop: make(chan struct{})}
	id, err := m.openStream(ctx, sub, func(c *core) (string, error) { return c.subscribe(call) })
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
// means accepted; results arrive on the stream.
func (m *Master) SchedulerCall(ctx context.Context, streamID string, call *schedulerpb.Call) error {
	var err error
	if derr := m.do(ctx, func(c *core) { err = c.schedulerCall(streamID, call) }); derr != nil {
		return derr
	}
	return err
}

// ConnectAgent registers or re-registers an agent (a REGISTER or
// REREGISTER call) and opens its stream, which starts with REGISTERED or
// REREGISTERED. Cancelling ctx disconnects the agent. When ctx carries the
// address the call came from (the HTTP API puts it there), the agent's IP
// address in offers is taken from it.
func (m *Master) ConnectAgent(ctx context.Context, call *internalpb.Call) (string, <-chan *internalpb.Event, error) {
	sub := &subscriber{agent: make(chan *internalpb.Event, m.cfg.StreamBuffer), stop: make(chan struct{})}
	ip := peerIP(ctx)
	id, err := m.openStream(ctx, sub, func(c *core) (string, error) { return c.connectAgentFrom(call, ip) })
	if err != nil {
		return "", nil, err
	}
	return id, sub.agent, nil
}

// AgentCall sends an agent's call on its stream.
func (m *Master) AgentCall(ctx context.Context, streamID string, call *internalpb.Call) error {
	var err error
	if derr := m.do(ctx, func(c *core) { err = c.agentCall(streamID, call) }); derr != nil {
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
func (m *Master) State(ctx context.Context) (*masterpb.Response_GetState, error) {
	var st *masterpb.Response_GetState
	if err := m.do(ctx, func(c *core) { st = c.state() }); err != nil {
		return nil, err
	}
	return st, nil
}

package master

import (
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// StateMachine is the master's decision logic without its goroutine,
// network or clock, for simulations and tests that drive a master step by
// step, the way etcd's raft package is driven: feed it inputs, then take
// what it decided with Ready. Master is this state machine owned by one
// goroutine. A StateMachine is not safe for concurrent use. It neither
// authenticates nor authorizes: Config.Authorizer is the shell's, which
// asks it for approvers off the core's goroutine (auth.go); every input
// here is allowed.
type StateMachine struct {
	c *core
}

// Output is one event the state machine decided to send: to the scheduler,
// the agent or the operator subscriber on the named stream.
type Output struct {
	Stream    string
	Scheduler *schedulerpb.Event
	Agent     *internalpb.Event
	Operator  *masterpb.Event
}

// Ready is what the state machine decided since the last Ready: events to
// deliver, in order, then streams to close. Once the state machine has
// recovered a registry (Recover), Registry holds the operations to make
// durable (Registry.Apply) before any of the Outputs and Closes, or any
// later Ready's, take effect.
type Ready struct {
	Outputs  []Output
	Closes   []string
	Registry []RegistryOp
}

// NewStateMachine returns a state machine configured by cfg (Clock is not
// used: time comes from Tick), its clock reading now.
func NewStateMachine(cfg Config, now time.Time) (*StateMachine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &StateMachine{c: newCore(cfg, now)}, nil
}

// SubscribeScheduler handles a SUBSCRIBE call and returns the new stream's ID.
func (s *StateMachine) SubscribeScheduler(call *schedulerpb.Call) (string, error) {
	return s.c.subscribe(call, nil)
}

// SchedulerCall handles any other scheduler call on a stream.
func (s *StateMachine) SchedulerCall(streamID string, call *schedulerpb.Call) error {
	return s.c.schedulerCall(streamID, call)
}

// ConnectAgent handles REGISTER or REREGISTER and returns the new stream's ID.
func (s *StateMachine) ConnectAgent(call *internalpb.Call) (string, error) {
	return s.c.connectAgent(call)
}

// AgentCall handles an agent's call on its stream.
func (s *StateMachine) AgentCall(streamID string, call *internalpb.Call) error {
	return s.c.agentCall(streamID, call)
}

// SubscribeOperator opens an operator API event stream (the operator
// SUBSCRIBE call) and returns its ID; its first event is SUBSCRIBED.
func (s *StateMachine) SubscribeOperator() string { return s.c.subscribeOperator(nil) }

// StreamEnded tells the state machine a stream ended on the peer's side
// (disconnect) or could not be delivered to.
func (s *StateMachine) StreamEnded(streamID string) { s.c.streamEnded(streamID) }

// Recover starts the state machine from a recovered registry, at now,
// before any other input: see Config.Registry. From then on Ready carries
// the registry operations.
func (s *StateMachine) Recover(st *RegistryState, now time.Time) { s.c.recoverRegistry(st, now) }

// Err is the error that must stop the master (ErrRecoveryLimit), once
// there is one.
func (s *StateMachine) Err() error { return s.c.reg.fatal }

// Tick advances the state machine's time to now: heartbeats, timeouts,
// agent health and allocation happen here.
func (s *StateMachine) Tick(now time.Time) { s.c.tick(now) }

// Ready returns and clears what the state machine decided.
func (s *StateMachine) Ready() Ready {
	out := s.c.drain()
	r := Ready{Closes: out.closes, Registry: out.registry, Outputs: make([]Output, len(out.messages))}
	for i, m := range out.messages {
		r.Outputs[i] = Output{Stream: m.stream, Scheduler: m.scheduler, Agent: m.agent, Operator: m.operator}
	}
	return r
}

// State returns the state as the operator API's GET_STATE reports it.
func (s *StateMachine) State() *masterpb.Response_GetState { return s.c.state() }

// Allocator returns the allocator, for invariant checks.
func (s *StateMachine) Allocator() allocator.Allocator { return s.c.alloc }

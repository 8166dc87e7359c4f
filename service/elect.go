package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/scheduler"
)

// Errors of RunElected; test with errors.Is.
var (
	// ErrLostLeadership: the instance's term ended (it lost its session
	// with the coordination service, resigned, or its contender was
	// closed), or another instance wrote the state. The instance stopped
	// at once, and RunElected returns rather than campaign again, as a
	// master does: a supervisor starts the process again as a standby,
	// with nothing of the old term left in memory.
	ErrLostLeadership = errors.New("service: lost the leadership")
	// ErrNotLeader: the instance stands by (RunElected) while another
	// leads, so it has no state to show and takes no command; ask the
	// leader (its HTTP API answers 307 to the leader's API).
	ErrNotLeader = errors.New("service: not the leader")
)

// PayloadKind marks the election payload of a service instance
// (Instance), so that ValidatePayload tells it from anything else under
// the election's path (a Mesos MasterInfo, another framework's payload).
const PayloadKind = "apron-service"

// Instance is the election payload of one instance of a service: enough
// for a standby, or an operator reading ZooKeeper, to find the leader.
type Instance struct {
	Kind     string `json:"kind"`
	Service  string `json:"service"`
	Hostname string `json:"hostname,omitempty"`
	PID      int    `json:"pid,omitempty"`
	// API is the base URL of the instance's HTTP API (Handler), such as
	// "http://10.0.0.5:8080"; empty when it serves none.
	API string `json:"api,omitempty"`
	// Started is when the instance started.
	Started time.Time `json:"started,omitzero"`
}

func (i Instance) String() string {
	s := fmt.Sprintf("%s pid %d", i.Hostname, i.PID)
	if i.API != "" {
		s += " (" + i.API + ")"
	}
	return s
}

// ValidatePayload returns the check of election payloads for the
// instances of the service named name (zookeeper.Options.Validate): only
// they take part in its election.
func ValidatePayload(name string) func(data []byte) error {
	return func(data []byte) error {
		var i Instance
		if err := json.Unmarshal(data, &i); err != nil {
			return fmt.Errorf("not a service instance: %w", err)
		}
		if i.Kind != PayloadKind || i.Service != name {
			return fmt.Errorf("not an instance of service %q: kind %q, service %q", name, i.Kind, i.Service)
		}
		return nil
	}
}

// Election says how RunElected takes part in the election of the
// service's instances.
type Election struct {
	// Contender campaigns for this instance (required): on a path of the
	// service's own, with ValidatePayload(name) as its payload check.
	Contender election.Contender
	// Detector, when set, follows the same election, so that a standby
	// answers with the leader (the HTTP API's 307) instead of a bare 503.
	Detector election.Detector
	// Instance is this instance's payload; Kind and Service are set by
	// RunElected, Hostname and PID default to this process's.
	Instance Instance
}

// electing is a RunElected in progress.
type electing struct {
	Election
	payload []byte
}

// leader is who leads as the detector last saw it, whether it is this
// instance, and whether a leader is known (never without a detector).
func (e *electing) leader() (l Instance, self, ok bool) {
	if e.Detector == nil {
		return Instance{}, false, false
	}
	cur := e.Detector.Leader()
	if !cur.Known() || json.Unmarshal(cur.Payload, &l) != nil {
		return Instance{}, false, false
	}
	return l, bytes.Equal(cur.Payload, e.payload), true
}

// notLeaderError is ErrNotLeader with the leader, when known.
type notLeaderError struct {
	leader *Instance // nil: unknown
	self   bool      // this instance leads, and is taking over
}

func (e *notLeaderError) Error() string {
	switch {
	case e.self:
		return ErrNotLeader.Error() + " yet: elected, taking the service over"
	case e.leader == nil:
		return ErrNotLeader.Error() + ": standing by, no leader known"
	}
	return fmt.Sprintf("%s: standing by; %s leads", ErrNotLeader, e.leader)
}

func (e *notLeaderError) Is(target error) bool { return target == ErrNotLeader }

func (e *electing) notLeader() error {
	l, self, ok := e.leader()
	switch {
	case !ok:
		return &notLeaderError{}
	case self:
		return &notLeaderError{self: true}
	}
	return &notLeaderError{leader: &l}
}

// LeaderAPI returns the base URL of the leading instance's HTTP API while
// this instance stands by in RunElected and its detector knows the
// leader; "" otherwise.
func (s *Service) LeaderAPI() string {
	s.mu.Lock()
	e, live := s.elect, s.live
	s.mu.Unlock()
	if e == nil || live {
		return ""
	}
	l, self, ok := e.leader()
	if !ok || self {
		return ""
	}
	return strings.TrimSuffix(l.API, "/")
}

// resignTimeout bounds the resignation of a RunElected that ends.
const resignTimeout = 5 * time.Second

// RunElected runs the service as one of several instances that elect
// their leader through e.Contender; they must share the Store (ZooKeeper:
// a file serves one instance only). It campaigns; a standby waits, its
// API answering ErrNotLeader (the HTTP API: 307 to the leader's API). Once
// elected, it takes over: it reads the state from the store, checks its
// spec against the stored one (refusing, ErrSpecChange, with nothing
// changed), saves the state back at once, so that any write still in
// flight from the instance that led before fails (the store's
// compare-and-set), and runs as Run does: it subscribes with the stored
// framework ID, reconciles its tasks, and carries on with the plans.
//
// When the term ends it stops at once: nothing is stored or sent after
// (the driver's context is cancelled with the term; the framework is not
// torn down, its tasks keep running for the successor), and RunElected
// returns ErrLostLeadership, as does a save refused because another
// instance wrote the state. It returns nil when ctx ends or an uninstall
// finishes. Whenever it returns it resigns, so that a standby takes over
// at once; the caller still owns, and closes, the contender.
func (s *Service) RunElected(ctx context.Context, e Election, opts ...scheduler.Option) error {
	if e.Contender == nil {
		return errors.New("service: Election.Contender is required")
	}
	s.mu.Lock()
	spec := s.cfg.Spec
	if s.busy || s.elect != nil {
		s.mu.Unlock()
		return errors.New("service: already running")
	}
	e.Instance.Kind, e.Instance.Service = PayloadKind, spec.Name
	if e.Instance.Hostname == "" {
		e.Instance.Hostname, _ = os.Hostname()
	}
	if e.Instance.PID == 0 {
		e.Instance.PID = os.Getpid()
	}
	payload, err := json.Marshal(e.Instance)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	el := &electing{Election: e, payload: payload}
	s.elect = el
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.elect = nil
		s.mu.Unlock()
	}()

	if l, self, ok := el.leader(); ok && !self {
		s.log.Info("standing by", "leader", l.String())
	} else {
		s.log.Info("standing by")
	}
	term, err := e.Contender.Campaign(ctx, payload)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("service: campaigning: %w", err)
	}
	defer func() {
		// Let a standby lead at once, whatever ended this one's run.
		select {
		case <-term.Done():
		default:
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resignTimeout)
			defer cancel()
			if err := e.Contender.Resign(rctx); err != nil {
				s.log.Warn("resigning", "err", err)
			}
		}
	}()
	s.log.Info("elected: taking the service over", "term", term.ID())
	tctx, cancel := term.Context(ctx)
	defer cancel()
	runErr := s.run(tctx, true, opts)
	switch {
	case ctx.Err() != nil:
		return nil
	case term.Err() != nil:
		s.log.Error("lost the leadership: stopped", "cause", term.Err())
		return fmt.Errorf("%w: %w", ErrLostLeadership, term.Err())
	case errors.Is(runErr, ErrConflict):
		s.log.Error("another instance wrote the state: stopped", "err", runErr)
		return fmt.Errorf("%w: %w", ErrLostLeadership, runErr)
	}
	return runErr
}

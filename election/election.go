// Package election elects one leader among several members and tells
// everyone else who it is, as Mesos's masters do through ZooKeeper.
//
// A member that wants to lead holds a Contender; anyone that only needs to
// know the leader (an agent, a scheduler driver, a CLI) holds a Detector.
// Both carry an opaque payload: the leader's address, a Mesos MasterInfo as
// JSON, anything that fits in a znode. Two implementations exist:
//
//   - election/zookeeper, on a ZooKeeper ensemble, wire-compatible with
//     Mesos (ephemeral sequential znodes "json.info_NNNNNNNNNN" under a
//     zk://host:port,.../path URL; the lowest sequence leads), so Mesos tools
//     find an Apron leader and an Apron detector finds a Mesos master;
//   - election/memory, for members in one process (tests, embedding).
//
// Every implementation passes the conformance suite in
// election/electiontest.
//
// # Terms
//
// Contender.Campaign blocks until the member leads and returns a *Term. The
// term's Done channel is closed the moment leadership ends: the member
// resigned, closed the contender, or lost its session with the coordination
// service (Err says which). A leader must stop acting as leader as soon as
// Done is closed, before doing anything else: another member may lead
// already. After a loss the candidacy stays in the election (in a new
// session when the old one was lost), and the next Campaign call waits for
// the next term. Lead wraps that loop.
//
// # High availability for frameworks
//
// The package is not tied to masters. A framework scheduler is made highly
// available the same way; examples/batch -zk does all of this (package
// examples/internal/batch documents its znodes), and ExampleLead shows the
// loop:
//
//  1. Run two or more instances, each with a Contender on a path of the
//     framework's own (zk://zk1:2181,zk2:2181/frameworks/my-batch, not the
//     masters' path) and a payload saying who it is (host, pid, where it
//     serves), with an Options.Validate that accepts only such payloads,
//     so that the framework's and the masters' elections skip each other's
//     znodes should the paths ever meet. The instance whose Campaign
//     returns leads; the others wait in Campaign.
//  2. Keep what a successor needs where every instance can read it, and
//     not in the payload (it vanishes with the leader): for ZooKeeper,
//     persistent znodes under the same path. That is the FrameworkID,
//     stored as soon as the master assigns it and before anything is
//     launched, and the framework's own progress (which tasks finished),
//     each record stored before the status update it records is
//     acknowledged. A znode holds at most 1 MB (jute.maxbuffer), and so
//     does the list of a znode's children: a journal of one znode per
//     record holds tens of thousands of records; more needs compaction.
//  3. Subscribe with a failover_timeout long enough to cover a failover
//     and an operator's reaction (Marathon and examples/batch use a week):
//     the master keeps the framework's tasks running meanwhile.
//  4. When the Term ends, stop calling the master at once (cancel the
//     driver's context; do not tear the framework down: the successor
//     takes it over), then campaign again. Its successor may have
//     subscribed already; a leader that ZooKeeper has cut off steps down
//     after about two thirds of the session timeout, before the server
//     expires its session and anyone else can lead.
//  5. Each term starts from the stored state, not from what the instance
//     remembers of an earlier term: subscribe with the stored FrameworkID
//     (the master hands over the framework and its tasks; a master that
//     answers "Framework has been removed" means it was torn down, or the
//     failover timeout passed), then reconcile, explicitly for the tasks
//     the progress record has outstanding and implicitly for the rest, so
//     that running tasks are adopted rather than launched again. Updates
//     the dead leader left unacknowledged are sent again to the new one.
//  6. When the job is over, record that first, then tear the framework
//     down, so that an instance leading afterwards does not run it again.
//
// A killed leader's successor leads after about the session timeout (see
// election/zookeeper's Timing), and then needs a subscription and a
// reconciliation:
//
//	err := election.Lead(ctx, contender, payload, func(ctx context.Context) {
//		id := loadFrameworkID()      // stored by an earlier term, or ""
//		runScheduler(ctx, id)         // returns when ctx is cancelled
//	})
package election

import (
	"bytes"
	"context"
	"errors"
	"sync"
)

// Errors a Term ends with, and that calls return; test with errors.Is.
var (
	// ErrClosed: the contender or detector was closed.
	ErrClosed = errors.New("election: closed")
	// ErrResigned: the leader resigned (Contender.Resign).
	ErrResigned = errors.New("election: resigned")
	// ErrSessionLost: the member lost (or could no longer be sure of) its
	// session with the coordination service, so another member may lead.
	ErrSessionLost = errors.New("election: session lost")
	// ErrUnavailable: the coordination service cannot be reached; the
	// implementation keeps retrying.
	ErrUnavailable = errors.New("election: coordination service unavailable")
)

// Contender is one member's candidacy. It is safe for concurrent use.
type Contender interface {
	// Campaign enters payload into the election, unless this contender is
	// in it already (then a different payload replaces the old one), and
	// blocks until the contender leads, ctx is done (ctx.Err()) or the
	// contender is closed (ErrClosed). While the coordination service is
	// unreachable it keeps retrying. The candidacy stays in the election
	// after Campaign returns, across lost sessions, until Resign or Close.
	Campaign(ctx context.Context, payload []byte) (*Term, error)
	// Resign withdraws the candidacy: a term in progress ends with
	// ErrResigned before Resign returns, and another member can lead. A
	// later Campaign enters again (at the back of the line).
	Resign(ctx context.Context) error
	// Close resigns and releases the contender's resources; a term in
	// progress ends with ErrClosed.
	Close() error
}

// Detector follows who leads. It is safe for concurrent use.
type Detector interface {
	// Leader returns the current leader as last seen; the zero Leader
	// when none is known.
	Leader() Leader
	// Detect blocks until the leader differs from previous (compared with
	// Leader.Equal) and returns it, or until ctx is done or the detector
	// is closed. Detect(ctx, Leader{}) returns at once when a leader is
	// known. Calling it in a loop gives the stream of changes.
	Detect(ctx context.Context, previous Leader) (Leader, error)
	// Close stops the detector; blocked Detect calls return ErrClosed.
	Close() error
}

// Leader identifies a leader and carries its payload.
type Leader struct {
	// ID names this leadership uniquely within the election (for
	// ZooKeeper, the znode's name such as "json.info_0000000007"), so a
	// member that leads again with the same payload is still a change.
	// Empty when no leader is known.
	ID string
	// Payload is what the leader campaigned with. Callers must not modify it.
	Payload []byte
}

// Known reports whether l names a leader.
func (l Leader) Known() bool { return l.ID != "" }

// Equal reports whether l and o are the same leadership.
func (l Leader) Equal(o Leader) bool {
	return l.ID == o.ID && bytes.Equal(l.Payload, o.Payload)
}

// Term is one span of leadership, from Campaign's return until Done is
// closed.
type Term struct {
	id   string
	done chan struct{}

	mu  sync.Mutex
	err error
}

// NewTerm starts a term for an implementation of Contender; end closes it
// with the cause (only the first call counts).
func NewTerm(id string) (t *Term, end func(cause error)) {
	t = &Term{id: id, done: make(chan struct{})}
	return t, func(cause error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.err != nil {
			return
		}
		if cause == nil {
			cause = ErrClosed
		}
		t.err = cause
		close(t.done)
	}
}

// ID is the Leader.ID detectors report for this term.
func (t *Term) ID() string { return t.id }

// Done is closed when the term ends.
func (t *Term) Done() <-chan struct{} { return t.done }

// Err is nil while the term lasts, then why it ended (ErrResigned,
// ErrClosed, ErrSessionLost, possibly wrapped).
func (t *Term) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Context returns a context cancelled when the term ends or parent is done.
func (t *Term) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-t.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Lead campaigns with payload and runs lead once per term, with a context
// cancelled when the term ends; it returns when ctx is done or the
// contender fails. lead must return promptly once its context is
// cancelled: until it does, this member still acts as leader while another
// may lead already.
func Lead(ctx context.Context, c Contender, payload []byte, lead func(ctx context.Context)) error {
	for {
		term, err := c.Campaign(ctx, payload)
		if err != nil {
			return err
		}
		tctx, cancel := term.Context(ctx)
		lead(tctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// lead may return before the term ends (it gave up); resign so
		// another member can lead, then stand again.
		select {
		case <-term.Done():
		default:
			if err := c.Resign(ctx); err != nil {
				return err
			}
		}
	}
}

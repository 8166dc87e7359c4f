package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/internal/clock"
)

// Detector follows the leader of a ZooKeeper election as Mesos's
// ZooKeeperMasterDetector does: the lowest-sequence json.info_ znode
// leads. It also finds Mesos masters (their payload is MasterInfo JSON).
// Znodes whose data Options.Validate rejects are skipped with a log line.
//
// While disconnected it keeps reporting the last leader, for at most the
// session timeout; after that, or after an expiry, it reports none until
// it has read the election again.
type Detector struct {
	s    *session
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	leader  election.Leader
	closed  bool
	changed chan struct{}

	authed bool // owned by the loop
}

var _ election.Detector = (*Detector)(nil)

// NewDetector starts a detector on u; it connects in the background.
func NewDetector(u URL, opts Options) (*Detector, error) {
	if len(u.Servers) == 0 || u.Path == "" {
		return nil, fmt.Errorf("%w: no servers or path", ErrBadURL)
	}
	opts = opts.withDefaults()
	d := &Detector{quit: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	d.s = newSession(u, opts, nil)
	go d.run()
	return d, nil
}

// Leader implements election.Detector.
func (d *Detector) Leader() election.Leader {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.leader
}

// Detect implements election.Detector.
func (d *Detector) Detect(ctx context.Context, previous election.Leader) (election.Leader, error) {
	d.mu.Lock()
	for {
		if d.closed {
			d.mu.Unlock()
			return election.Leader{}, election.ErrClosed
		}
		if !d.leader.Equal(previous) {
			l := d.leader
			d.mu.Unlock()
			return l, nil
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return election.Leader{}, ctx.Err()
		}
		d.mu.Lock()
	}
}

// Close implements election.Detector.
func (d *Detector) Close() error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.changed)
		d.changed = make(chan struct{})
		close(d.quit)
	}
	d.mu.Unlock()
	<-d.done
	return nil
}

func (d *Detector) set(l election.Leader) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leader.Equal(l) {
		return
	}
	d.leader = l
	close(d.changed)
	d.changed = make(chan struct{})
	if l.Known() {
		d.s.log.Info("detected leader", "znode", d.s.child(l.ID))
	} else {
		d.s.log.Info("no leader")
	}
}

func (d *Detector) run() {
	defer close(d.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-d.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		err := d.s.dial()
		if err == nil {
			break
		}
		d.s.log.Error("cannot connect to zookeeper, retrying", "err", err)
		sleep(ctx, d.s.opts.Clock, d.s.opts.RetryInterval, nil)
		if ctx.Err() != nil {
			return
		}
	}
	defer d.s.conn.Close()
	var lostAt time.Time // when the session was last seen lost
	var deadline clock.Timer
	for {
		var w1, w2 <-chan zk.Event
		retry := false
		state, _ := d.s.current()
		switch {
		case state == zk.StateHasSession:
			lostAt = time.Time{}
			w1, w2, retry = d.step()
		case state == zk.StateExpired:
			d.set(election.Leader{})
		case lostAt.IsZero():
			lostAt = d.s.opts.Clock.Now()
		case d.s.opts.Clock.Now().Sub(lostAt) >= d.s.opts.SessionTimeout:
			d.set(election.Leader{})
		}
		var expire <-chan time.Time
		if !lostAt.IsZero() && d.Leader().Known() {
			if deadline != nil {
				deadline.Stop()
			}
			deadline = d.s.opts.Clock.NewTimer(d.s.opts.SessionTimeout - d.s.opts.Clock.Now().Sub(lostAt))
			expire = deadline.C()
		}
		if !wait(ctx, d.s, w1, w2, retry, expire) {
			return
		}
	}
}

// step reads the election and returns the watches that report its next
// change.
func (d *Detector) step() (children, data <-chan zk.Event, retry bool) {
	s := d.s
	fail := func(err error) (<-chan zk.Event, <-chan zk.Event, bool) {
		if transient(err) {
			return nil, nil, false
		}
		s.log.Warn("zookeeper detector: retrying", "url", s.url.String(), "err", err)
		return nil, nil, true
	}
	if err := s.ready(&d.authed); err != nil {
		return fail(err)
	}
	names, _, cw, err := s.conn.ChildrenW(s.url.Path)
	if err != nil {
		return fail(err)
	}
	for _, m := range members(names) {
		b, _, dw, err := s.conn.GetW(s.child(m.name))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return fail(err)
		}
		if !s.valid(m.name, b) {
			continue
		}
		if b == nil {
			b = []byte{}
		}
		d.set(election.Leader{ID: m.name, Payload: b})
		return cw, dw, false
	}
	d.set(election.Leader{})
	return cw, nil, false
}

// Package memory is an election among members of one process: for tests,
// and for embedders that run several masters (or framework instances) in
// one process. The oldest candidacy leads, as with ZooKeeper.
//
// Cut and Restore stand in for a member losing and regaining its session
// with a coordination service, so code that uses election can be tested
// for failover without one.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/apronhq/apron/election"
)

// Group is one election. The zero value is not usable; call NewGroup.
type Group struct {
	mu      sync.Mutex
	seq     uint64
	members []*Contender  // candidacies in the election, oldest first
	changed chan struct{} // closed and replaced at every change
}

// NewGroup returns an empty election.
func NewGroup() *Group {
	return &Group{changed: make(chan struct{})}
}

// NewContender adds a member that does not campaign yet.
func (g *Group) NewContender() *Contender {
	return &Contender{g: g}
}

// NewDetector returns a detector of g's leader.
func (g *Group) NewDetector() *Detector {
	return &Detector{g: g, closed: make(chan struct{})}
}

// Cut makes c lose its session: a term in progress ends with
// election.ErrSessionLost, its candidacy leaves the election, and it
// cannot enter again until Restore.
func (g *Group) Cut(c *Contender) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.cut = true
	g.removeLocked(c, election.ErrSessionLost)
}

// Restore ends a Cut: a contender still campaigning enters the election
// again, at the back of the line, as after a new session.
func (g *Group) Restore(c *Contender) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.cut = false
	if c.wants && !c.closed {
		g.addLocked(c)
	}
}

// Expire is Cut then Restore: a session expiry followed by a new session.
func (g *Group) Expire(c *Contender) {
	g.Cut(c)
	g.Restore(c)
}

func (g *Group) addLocked(c *Contender) {
	if c.in {
		return
	}
	g.seq++
	c.in = true
	c.id = fmt.Sprintf("member_%010d", g.seq)
	g.members = append(g.members, c)
	g.updateLocked()
}

func (g *Group) removeLocked(c *Contender, cause error) {
	if c.end != nil {
		c.end(cause)
		c.term, c.end = nil, nil
	}
	if !c.in {
		return
	}
	c.in = false
	for i, m := range g.members {
		if m == c {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	g.updateLocked()
}

// updateLocked starts the term of the oldest member if it has none, and
// wakes everyone waiting.
func (g *Group) updateLocked() {
	if len(g.members) > 0 {
		if l := g.members[0]; l.term == nil {
			l.term, l.end = election.NewTerm(l.id)
		}
	}
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *Group) leaderLocked() election.Leader {
	if len(g.members) == 0 {
		return election.Leader{}
	}
	l := g.members[0]
	return election.Leader{ID: l.id, Payload: l.payload}
}

// Contender is a member of a Group.
type Contender struct {
	g *Group
	// guarded by g.mu
	wants   bool // campaigning: enter on Restore
	in      bool // in g.members
	cut     bool
	closed  bool
	id      string
	payload []byte
	term    *election.Term
	end     func(error)
}

var _ election.Contender = (*Contender)(nil)

// Campaign implements election.Contender.
func (c *Contender) Campaign(ctx context.Context, payload []byte) (*election.Term, error) {
	g := c.g
	g.mu.Lock()
	if c.closed {
		g.mu.Unlock()
		return nil, election.ErrClosed
	}
	c.wants = true
	if !bytes.Equal(c.payload, payload) || c.payload == nil {
		c.payload = bytes.Clone(payload)
		if c.payload == nil {
			c.payload = []byte{}
		}
		if c.in {
			g.updateLocked() // detectors see the new payload
		}
	}
	if !c.cut {
		g.addLocked(c)
	}
	for {
		if c.closed {
			g.mu.Unlock()
			return nil, election.ErrClosed
		}
		if c.term != nil {
			t := c.term
			g.mu.Unlock()
			return t, nil
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		g.mu.Lock()
	}
}

// Resign implements election.Contender.
func (c *Contender) Resign(context.Context) error {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	if c.closed {
		return election.ErrClosed
	}
	c.wants = false
	c.g.removeLocked(c, election.ErrResigned)
	return nil
}

// Close implements election.Contender.
func (c *Contender) Close() error {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed, c.wants = true, false
	c.g.removeLocked(c, election.ErrClosed)
	close(c.g.changed) // wake a Campaign blocked on this contender
	c.g.changed = make(chan struct{})
	return nil
}

// Detector follows a Group's leader.
type Detector struct {
	g         *Group
	closeOnce sync.Once
	closed    chan struct{}
}

var _ election.Detector = (*Detector)(nil)

// Leader implements election.Detector.
func (d *Detector) Leader() election.Leader {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	return d.g.leaderLocked()
}

// Detect implements election.Detector.
func (d *Detector) Detect(ctx context.Context, previous election.Leader) (election.Leader, error) {
	for {
		d.g.mu.Lock()
		l, changed := d.g.leaderLocked(), d.g.changed
		d.g.mu.Unlock()
		select {
		case <-d.closed:
			return election.Leader{}, election.ErrClosed
		default:
		}
		if !l.Equal(previous) {
			return l, nil
		}
		select {
		case <-changed:
		case <-d.closed:
			return election.Leader{}, election.ErrClosed
		case <-ctx.Done():
			return election.Leader{}, ctx.Err()
		}
	}
}

// Close implements election.Detector.
func (d *Detector) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}

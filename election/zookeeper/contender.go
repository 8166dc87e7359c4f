package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/apronhq/apron/election"
)

// Contender campaigns in a ZooKeeper election the way a Mesos master does:
// an ephemeral sequential znode <path>/json.info_NNNNNNNNNN holding the
// payload; the lowest sequence leads; each contender watches only the
// znode just ahead of it, so a leader's departure wakes one contender, not
// all of them.
//
// go-zookeeper's create-with-protection recipe cannot be used: it prefixes
// the znode's name with a GUID, which Mesos's detectors would not
// recognise. A create whose reply is lost is resolved instead by looking
// for znodes this session owns (Stat.EphemeralOwner).
//
// The leader steps down the moment its client leaves the connected state
// (a disconnection or an expiry), before the loop does anything else,
// since it can no longer be sure ZooKeeper still holds its znode; once
// reconnected it leads again (a new Term) if its znode survived, and
// after an expiry it enters again with a new znode in the new session.
type Contender struct {
	s    *session
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	want    bool
	payload []byte
	dirty   bool // payload changed since the znode was written
	closed  bool
	node    string // our znode's name, "" when none
	term    *election.Term
	end     func(error)
	changed chan struct{} // closed and replaced when term or node changes

	// owned by the loop
	nodeSession int64
	authed      bool
}

var _ election.Contender = (*Contender)(nil)

// NewContender starts a contender on u that does not campaign yet. It
// connects in the background: an unreachable ZooKeeper is logged and
// retried, and Campaign waits.
func NewContender(u URL, opts Options) (*Contender, error) {
	if len(u.Servers) == 0 || u.Path == "" {
		return nil, fmt.Errorf("%w: no servers or path", ErrBadURL)
	}
	opts = opts.withDefaults()
	c := &Contender{quit: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{})}
	c.s = newSession(u, opts, c.sessionLost)
	go c.run()
	return c, nil
}

// sessionLost runs from go-zookeeper's callback: step down first.
func (c *Contender) sessionLost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(election.ErrSessionLost)
}

func (c *Contender) endLocked(cause error) {
	if c.end != nil {
		c.end(cause)
		c.term, c.end = nil, nil
		c.notifyLocked()
	}
}

func (c *Contender) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Campaign implements election.Contender.
func (c *Contender) Campaign(ctx context.Context, payload []byte) (*election.Term, error) {
	if v := c.s.opts.Validate; v != nil {
		if err := v(payload); err != nil {
			return nil, fmt.Errorf("zookeeper: payload rejected by Options.Validate: %w", err)
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, election.ErrClosed
	}
	if !c.want || !bytes.Equal(c.payload, payload) {
		if c.payload != nil && !bytes.Equal(c.payload, payload) {
			c.dirty = true
		}
		c.want, c.payload = true, bytes.Clone(payload)
		c.s.poke()
	}
	for {
		if c.closed {
			c.mu.Unlock()
			return nil, election.ErrClosed
		}
		if c.term != nil {
			t := c.term
			c.mu.Unlock()
			return t, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
}

// Resign implements election.Contender. It ends the term at once, then
// waits (bounded by ctx) until the znode is deleted, so the next member
// can take over without waiting for a session to expire.
func (c *Contender) Resign(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return election.ErrClosed
	}
	c.want = false
	c.endLocked(election.ErrResigned)
	c.s.poke()
	for c.node != "" {
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	return nil
}

// Close implements election.Contender: closing the session deletes the
// znode at once.
func (c *Contender) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed, c.want = true, false
	c.endLocked(election.ErrClosed)
	c.notifyLocked()
	c.mu.Unlock()
	close(c.quit)
	<-c.done
	return nil
}

func (c *Contender) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		err := c.s.dial()
		if err == nil {
			break
		}
		c.s.log.Error("cannot connect to zookeeper, retrying", "err", err)
		sleep(ctx, c.s.opts.Clock, c.s.opts.RetryInterval, nil)
		if ctx.Err() != nil {
			return
		}
	}
	defer c.s.conn.Close()
	for {
		watch, retry := c.step()
		if !wait(ctx, c.s, watch, nil, retry) {
			return
		}
	}
}

func (c *Contender) setNode(name string, session int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node != name {
		c.node = name
		c.notifyLocked()
	}
	c.nodeSession = session
	if name == "" {
		c.endLocked(election.ErrSessionLost)
	}
}

// fail logs err and says whether to retry on a timer (errors reconnecting
// does not cure) or wait for the next session event.
func (c *Contender) fail(err error) (<-chan zk.Event, bool) {
	if transient(err) {
		c.s.log.Debug("zookeeper request failed, waiting for the session", "err", err)
		return nil, false
	}
	c.s.log.Warn("zookeeper election: retrying", "url", c.s.url.String(), "err", err)
	return nil, true
}

// step brings the candidacy in line with what the caller wants and
// returns what to watch for the next change.
func (c *Contender) step() (<-chan zk.Event, bool) {
	s := c.s
	state, epoch := s.current()
	if state != zk.StateHasSession {
		return nil, false // the callback stepped down; wait for a session event
	}
	sess := s.conn.SessionID()
	c.mu.Lock()
	want, payload, dirty, node := c.want, c.payload, c.dirty, c.node
	c.mu.Unlock()
	if node != "" && c.nodeSession != sess {
		c.setNode("", 0) // ephemeral: gone with the old session
		node = ""
	}
	if err := s.ready(&c.authed); err != nil {
		return c.fail(err)
	}
	if !want {
		if node != "" {
			if err := s.conn.Delete(s.child(node), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return c.fail(err)
			}
			c.setNode("", 0)
		}
		return nil, false
	}
	if node == "" {
		own, err := c.findOwn(sess)
		if err != nil {
			return c.fail(err)
		}
		if own == "" {
			p, err := s.conn.Create(s.child(prefix), payload, zk.FlagEphemeral|zk.FlagSequence, s.acl())
			if err != nil {
				return c.fail(err) // if it was made after all, findOwn finds it next time
			}
			own = path.Base(p)
			dirty = false
			c.mu.Lock()
			if bytes.Equal(c.payload, payload) {
				c.dirty = false
			}
			c.mu.Unlock()
		}
		node = own
		c.setNode(node, sess)
		s.log.Info("entered zookeeper election", "znode", s.child(node))
	}
	if dirty {
		if _, err := s.conn.Set(s.child(node), payload, -1); err != nil {
			return c.fail(err)
		}
		c.mu.Lock()
		if bytes.Equal(c.payload, payload) {
			c.dirty = false
		}
		c.mu.Unlock()
	}
	children, _, err := s.conn.Children(s.url.Path)
	if err != nil {
		return c.fail(err)
	}
	ms := members(children)
	me := -1
	for i, m := range ms {
		if m.name == node {
			me = i
		}
	}
	if me < 0 {
		s.log.Warn("our znode was deleted; entering again", "znode", s.child(node))
		c.setNode("", 0)
		s.poke()
		return nil, false
	}
	for i := me - 1; i >= 0; i-- {
		data, _, w, err := s.conn.GetW(s.child(ms[i].name))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return c.fail(err)
		}
		if s.valid(ms[i].name, data) {
			c.mu.Lock()
			c.endLocked(fmt.Errorf("%w: %s precedes us", election.ErrSessionLost, ms[i].name))
			c.mu.Unlock()
			return w, false // wait for the predecessor only
		}
	}
	ok, _, w, err := s.conn.ExistsW(s.child(node))
	if err != nil {
		return c.fail(err)
	}
	if !ok {
		s.poke()
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, now := s.current(); now == epoch && c.want && c.node == node && c.term == nil && !c.closed {
		c.term, c.end = election.NewTerm(node)
		c.notifyLocked()
		s.log.Info("leading", "znode", s.child(node))
	}
	return w, false
}

// findOwn returns the election znode this session owns, if a create
// whose reply was lost made one; it deletes any extra.
func (c *Contender) findOwn(sess int64) (string, error) {
	s := c.s
	children, _, err := s.conn.Children(s.url.Path)
	if err != nil {
		return "", err
	}
	own := ""
	for _, m := range members(children) {
		ok, st, err := s.conn.Exists(s.child(m.name))
		if err != nil {
			return "", err
		}
		if !ok || st.EphemeralOwner != sess {
			continue
		}
		if own == "" {
			own = m.name
			continue
		}
		if err := s.conn.Delete(s.child(m.name), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return "", err
		}
	}
	return own, nil
}

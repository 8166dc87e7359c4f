package master

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/election"
)

// ElectedLeadership is the Leadership of a master in an election: it leads
// while SetLeading(true) holds, and otherwise names the leader its
// Detector reports, whose payload is a MasterInfo as JSON (as the masters
// of RunElected, and Mesos's, campaign with). It is safe for concurrent
// use.
type ElectedLeadership struct {
	det     election.Detector
	leading atomic.Bool
}

// NewElectedLeadership returns a Leadership that follows d.
func NewElectedLeadership(d election.Detector) *ElectedLeadership {
	return &ElectedLeadership{det: d}
}

// SetLeading says whether this master leads now.
func (l *ElectedLeadership) SetLeading(leading bool) { l.leading.Store(leading) }

// Leader implements Leadership.
func (l *ElectedLeadership) Leader() (bool, string) {
	if l.leading.Load() {
		return true, ""
	}
	leader := l.det.Leader()
	if !leader.Known() {
		return false, ""
	}
	info, err := codec.ParseMasterInfo(leader.Payload)
	if err != nil {
		return false, ""
	}
	url, err := codec.MasterURL(info)
	if err != nil {
		return false, ""
	}
	return false, url
}

// ErrLostLeadership: RunElected's master stopped because its term ended
// (its session with the coordination service was lost, or it resigned):
// another master may lead already.
var ErrLostLeadership = errors.New("master: lost leadership")

// RunElected campaigns for m with its MasterInfo as JSON (Mesos's
// payload, so Mesos's tools and detectors find it), runs it once elected
// (Run recovers the registry first) and stops it the moment its term
// ends. A Master leads for one term only, as a Mesos master, which exits
// when it loses leadership: RunElected returns ErrLostLeadership (wrapping
// why the term ended), and the embedder builds a new Master, or the
// process exits and its supervisor starts it again. It returns nil when
// ctx ends, and Run's error when the master fails as leader (a fenced
// registry, ErrRecoveryLimit). leadership, when not nil, is told when m
// leads (give the same one to m's Config.Leadership).
func RunElected(ctx context.Context, m *Master, c election.Contender, leadership *ElectedLeadership) error {
	info := m.Info()
	payload, err := codec.MarshalJSON(&info)
	if err != nil {
		return fmt.Errorf("master: encoding MasterInfo: %w", err)
	}
	term, err := c.Campaign(ctx, payload)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("master: campaigning: %w", err)
	}
	m.cfg.Logger.Info("elected leading master", "id", info.ID, "term", term.ID())
	if leadership != nil {
		leadership.SetLeading(true)
		defer leadership.SetLeading(false)
	}
	tctx, cancel := term.Context(ctx)
	defer cancel()
	if leadership != nil {
		// A standby again the moment the term ends, before Run returns.
		go func() { <-tctx.Done(); leadership.SetLeading(false) }()
	}
	runErr := m.Run(tctx)
	switch {
	case ctx.Err() != nil && runErr == nil:
		return nil
	case runErr != nil:
		return runErr
	}
	return fmt.Errorf("%w: %w", ErrLostLeadership, term.Err())
}

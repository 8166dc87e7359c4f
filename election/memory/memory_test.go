package memory_test

import (
	"testing"

	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/electiontest"
	"github.com/apronhq/apron/election/memory"
)

type cluster struct{ g *memory.Group }

func (c cluster) NewContender(t *testing.T) election.Contender {
	ct := c.g.NewContender()
	t.Cleanup(func() { _ = ct.Close() })
	return ct
}

func (c cluster) NewDetector(t *testing.T) election.Detector {
	d := c.g.NewDetector()
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func (c cluster) Cut(_ *testing.T, ct election.Contender)     { c.g.Cut(ct.(*memory.Contender)) }
func (c cluster) Restore(_ *testing.T, ct election.Contender) { c.g.Restore(ct.(*memory.Contender)) }

func TestConformance(t *testing.T) {
	electiontest.Run(t, func(*testing.T) electiontest.Cluster { return cluster{memory.NewGroup()} })
}

package containerizer

import (
	"context"
	"fmt"
)

// The optional capabilities of the inner containerizer, forwarded.

// LaunchNested forwards to the inner containerizer's NestedLauncher, so
// that wrapping a containerizer with NewDisk keeps task exec working.
// Nested containers are not measured: they share their parent's sandbox,
// which is.
func (d *Disk) LaunchNested(ctx context.Context, cfg NestedConfig) (*Stdio, error) {
	n, ok := d.inner.(NestedLauncher)
	if !ok {
		return nil, fmt.Errorf("container %q: nested containers: %w", cfg.ID, ErrUnsupported)
	}
	return n.LaunchNested(ctx, cfg)
}

var _ NestedLauncher = (*Disk)(nil)

// PruneImages forwards to the inner containerizer's ImagePruner; without
// one there is nothing to prune.
func (d *Disk) PruneImages(ctx context.Context, excluded []string) ([]string, int, error) {
	if p, ok := d.inner.(ImagePruner); ok {
		return p.PruneImages(ctx, excluded)
	}
	return nil, 0, nil
}

var _ ImagePruner = (*Disk)(nil)

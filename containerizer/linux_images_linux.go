package containerizer

import (
	"context"
	"fmt"
)

var _ ImagePruner = (*Linux)(nil)

// PruneImages prunes the image store (image.Store.Prune); without one it
// has nothing to remove.
func (l *Linux) PruneImages(ctx context.Context, excluded []string) ([]string, int, error) {
	if l.images == nil {
		return nil, 0, nil
	}
	p, err := l.images.Prune(ctx, excluded)
	if err != nil {
		err = fmt.Errorf("containerizer: pruning images: %w", err)
	}
	return p.Images, len(p.Layers), err
}

package image

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Pruned is what Prune removed.
type Pruned struct {
	// Images are the names of the image records removed, sorted.
	Images []string
	// Layers are the diff IDs of the layers deleted, sorted.
	Layers []string
}

// Prune is Mesos's image garbage collection (the agent's PRUNE_IMAGES):
// it removes every image record but those named in excluded (resolved as
// Pull resolves names), then deletes the layers nothing uses any more.
// Layers of running containers' root filesystems stay, as those of pulls
// under way do: only the records of their images go, so their next
// launch pulls again (a stored layer is not fetched again).
func (s *Store) Prune(ctx context.Context, excluded []string) (Pruned, error) {
	keep := make(map[string]bool, len(excluded))
	for _, e := range excluded {
		r, err := s.ParseReference(e)
		if err != nil {
			return Pruned{}, fmt.Errorf("image store: prune: excluded %w", err)
		}
		keep[r.Name()] = true
	}
	var p Pruned
	var errs []error
	for _, img := range s.Images() {
		if keep[img.Name] || ctx.Err() != nil {
			continue
		}
		if err := s.Remove(img.Name); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		p.Images = append(p.Images, img.Name)
	}
	sort.Strings(p.Images)
	if err := ctx.Err(); err != nil {
		return p, err
	}
	layers, err := s.GC(ctx)
	p.Layers = layers
	if err != nil {
		errs = append(errs, err)
	}
	if len(p.Images) > 0 {
		s.log.Info("pruned images", "images", p.Images, "layers", len(p.Layers))
	}
	return p, errors.Join(errs...)
}

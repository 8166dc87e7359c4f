package containerizer

import "context"

// ImagePruner is the optional capability of a containerizer with an image
// store to remove the images and layers no container uses (the agent's
// PRUNE_IMAGES, Mesos's image garbage collection). Discover it with a
// type assertion.
type ImagePruner interface {
	// PruneImages removes every stored image but those named in excluded
	// (as ContainerInfo.mesos.image.docker.name names them), then the
	// layers that neither a remaining image nor a container's root
	// filesystem uses; running containers keep theirs. It returns the
	// names of the images removed and how many layers were deleted.
	PruneImages(ctx context.Context, excluded []string) (images []string, layers int, err error)
}

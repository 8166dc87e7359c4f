package agent

import (
	"context"
	"fmt"
	"net/http"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/httpapi"
)

// pruneImagesCall answers PRUNE_IMAGES as Mesos's agent does
// (src/slave/http.cpp pruneImages): every cached image but the excluded
// ones is removed from the containerizer's image store, with the layers
// no container's root filesystem uses, and the answer is 200 OK with no
// body. A containerizer without an image store (the process one) has
// nothing to prune and answers the same. Only Docker images can be
// excluded: Apron's store holds no other kind.
func (a *Agent) pruneImagesCall(ctx context.Context, call *agentpb.Call) (*agentpb.Response, error) {
	var excluded []string
	for i, im := range call.GetPruneImages().GetExcludedImages() {
		if im.GetType() != mesospb.Image_DOCKER || im.GetDocker().GetName() == "" {
			return nil, httpapi.Errorf(http.StatusBadRequest, "'prune_images.excluded_images[%d]' is invalid: only DOCKER images with a name are in the image store", i)
		}
		excluded = append(excluded, im.GetDocker().GetName())
	}
	// The containerizer is set when Run starts: read it on the loop.
	cont, err := request(a, ctx, func() containerizer.Containerizer { return a.cont })
	if err != nil {
		return nil, err
	}
	p, ok := cont.(containerizer.ImagePruner)
	if !ok {
		return nil, nil
	}
	images, layers, err := p.PruneImages(ctx, excluded)
	if err != nil {
		return nil, fmt.Errorf("pruning images: %w", err)
	}
	a.log.Info("agent: PRUNE_IMAGES", "images", images, "layers", layers, "excluded", excluded)
	return nil, nil
}

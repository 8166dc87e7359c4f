//go:build linux

package image

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Prune removes every image but the excluded ones, and the layers that
// neither those nor a provisioned root filesystem use.
func TestPrune(t *testing.T) {
	r := newRegistry(t)
	a, b, c := markerImage(t, "a"), markerImage(t, "b"), markerImage(t, "c")
	r.push(t, "a:1", a)
	r.push(t, "b:1", b)
	r.push(t, "c:1", c)
	s := openStore(t, t.TempDir(), r, func(o *Options) { o.Backend = BackendCopy })
	imgA, err := s.Pull(ctxT(t), "a:1")
	require.NoError(t, err)
	imgB, err := s.Pull(ctxT(t), "b:1")
	require.NoError(t, err)
	_, err = s.Pull(ctxT(t), "c:1")
	require.NoError(t, err)
	// A running container on a.
	_, release, err := s.Provision(ctxT(t), imgA, filepath.Join(t.TempDir(), "task"))
	require.NoError(t, err)

	p, err := s.Prune(ctxT(t), []string{"c:1"})
	require.NoError(t, err)
	assert.Len(t, p.Images, 2, "a and b: %v", p.Images)
	assert.Equal(t, []string{imgB.LayerIDs[1]}, p.Layers, "only b's own layer is unused")
	names := []string{}
	for _, img := range s.Images() {
		names = append(names, img.Name)
	}
	assert.Len(t, names, 1)
	assert.Contains(t, names[0], "c:1")
	assert.Contains(t, storedLayers(t, s), imgA.LayerIDs[1], "the running container keeps its layers")

	// Once the container is gone, its layers go with the next prune.
	require.NoError(t, release())
	p, err = s.Prune(ctxT(t), []string{"c:1"})
	require.NoError(t, err)
	assert.Empty(t, p.Images)
	assert.Equal(t, []string{imgA.LayerIDs[1]}, p.Layers)

	_, err = s.Prune(ctxT(t), []string{"Not A Name"})
	require.ErrorIs(t, err, ErrInvalidName)
}

package executor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// A task's ContainerInfo names the image it runs in as Mesos's universal
// containerizer takes it (type MESOS, a DOCKER image by name) and its
// hostname; the Docker engine's type and APPC images are refused with a
// message saying what to give instead.
func TestContainerImage(t *testing.T) {
	name, host, err := containerImage(nil)
	require.NoError(t, err)
	assert.Empty(t, name)
	assert.Empty(t, host)

	mesos := mesospb.ContainerInfo_MESOS
	docker := mesospb.Image_DOCKER
	name, host, err = containerImage(&mesospb.ContainerInfo{Type: &mesos, Hostname: ptrTo("web-1"),
		Mesos: &mesospb.ContainerInfo_MesosInfo{Image: &mesospb.Image{Type: &docker, Docker: &mesospb.Image_Docker{Name: "busybox:1.36"}}}})
	require.NoError(t, err)
	assert.Equal(t, "busybox:1.36", name)
	assert.Equal(t, "web-1", host)

	dockerType := mesospb.ContainerInfo_DOCKER
	_, _, err = containerImage(&mesospb.ContainerInfo{Type: &dockerType})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "type MESOS")

	appc := mesospb.Image_APPC
	_, _, err = containerImage(&mesospb.ContainerInfo{Type: &mesos, Mesos: &mesospb.ContainerInfo_MesosInfo{Image: &mesospb.Image{Type: &appc}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DOCKER image")
}

func ptrTo[T any](v T) *T { return &v }

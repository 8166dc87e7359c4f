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

// ContainerInfo.volumes become the container's volumes as Mesos's
// filesystem isolators read them; what Apron cannot mount is refused with
// a message naming the volume.
func TestContainerVolumes(t *testing.T) {
	ro, rw := mesospb.Volume_RO, mesospb.Volume_RW
	hostType, sandboxType, secretType := mesospb.Volume_Source_HOST_PATH, mesospb.Volume_Source_SANDBOX_PATH, mesospb.Volume_Source_SECRET
	self, parent := mesospb.Volume_Source_SandboxPath_SELF, mesospb.Volume_Source_SandboxPath_PARENT
	vols, err := containerVolumes(&mesospb.ContainerInfo{Volumes: []mesospb.Volume{
		{ContainerPath: "/etc/app", HostPath: ptrTo("/srv/app-config"), Mode: &ro},
		{ContainerPath: "cache", HostPath: ptrTo("shared/cache"), Mode: &rw},
		{ContainerPath: "/data", Mode: &rw, Source: &mesospb.Volume_Source{Type: &hostType, HostPath: &mesospb.Volume_Source_HostPath{Path: "/srv/data"}}},
		{ContainerPath: "/scratch", Mode: &rw, Source: &mesospb.Volume_Source{Type: &sandboxType, SandboxPath: &mesospb.Volume_Source_SandboxPath{Type: &self, Path: "tmp/scratch"}}},
	}}, "/sandbox")
	require.NoError(t, err)
	require.Len(t, vols, 4)
	assert.Equal(t, "/srv/app-config", vols[0].HostPath)
	assert.True(t, vols[0].ReadOnly)
	assert.Equal(t, "/sandbox/shared/cache", vols[1].HostPath, "a relative host_path is in the sandbox")
	assert.False(t, vols[1].ReadOnly)
	assert.Equal(t, "/srv/data", vols[2].HostPath)
	assert.Equal(t, "/sandbox/tmp/scratch", vols[3].HostPath)
	assert.Equal(t, "/scratch", vols[3].ContainerPath)

	for name, v := range map[string]mesospb.Volume{
		"parent sandbox": {ContainerPath: "/p", Mode: &rw, Source: &mesospb.Volume_Source{Type: &sandboxType, SandboxPath: &mesospb.Volume_Source_SandboxPath{Type: &parent, Path: "x"}}},
		"escaping":       {ContainerPath: "/p", Mode: &rw, Source: &mesospb.Volume_Source{Type: &sandboxType, SandboxPath: &mesospb.Volume_Source_SandboxPath{Type: &self, Path: "../x"}}},
		"secret":         {ContainerPath: "/p", Mode: &ro, Source: &mesospb.Volume_Source{Type: &secretType}},
		"image":          {ContainerPath: "/p", Mode: &ro, Image: &mesospb.Image{}},
		"nothing":        {ContainerPath: "/p", Mode: &ro},
	} {
		_, err := containerVolumes(&mesospb.ContainerInfo{Volumes: []mesospb.Volume{v}}, "/sandbox")
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), `container.volumes[0] (at "/p")`, name)
	}
}

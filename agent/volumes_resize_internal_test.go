package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/resources"
)

// A volume the master grew or shrank (GROW_VOLUME, SHRINK_VOLUME) comes
// as a checkpoint of the same volume with another size: the agent keeps
// its directory and data, and its total follows.
func TestCheckpointResizedVolumeKeepsData(t *testing.T) {
	a := loopAgent(t)
	reserved := func(text string) resources.Resources {
		return resources.MustParse(text).PushReservation(resources.Reservation{Type: resources.Dynamic, Role: "db", Principal: "p"})
	}
	volume := func(text string) resources.Resources {
		rs := reserved(text)
		rs[0].Disk = &resources.DiskInfo{
			Persistence: &resources.Persistence{ID: "v1"},
			Volume:      &resources.Volume{ContainerPath: "data", Mode: resources.RW},
		}
		return rs
	}
	checkpoint := func(rs resources.Resources) {
		a.handleEvent(&internalpb.Event{
			Type:                internalpb.Event_CHECKPOINT_RESOURCES.Enum(),
			CheckpointResources: &internalpb.Event_CheckpointResources{Resources: rs.ToProto()},
		})
	}
	checkpoint(volume("disk:10").Add(reserved("disk:30")))
	dir, err := a.volumePath("db", "v1")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("kept"), 0o644))

	checkpoint(volume("disk:35").Add(reserved("disk:5"))) // grown by 25
	b, err := os.ReadFile(filepath.Join(dir, "f"))
	require.NoError(t, err)
	assert.Equal(t, "kept", string(b))
	want := resources.MustParse("cpus:1;mem:100;disk:60;ports:[1-2]").Add(volume("disk:35")).Add(reserved("disk:5"))
	assert.True(t, want.Equal(a.totalResources()), "total %s", a.totalResources())

	checkpoint(volume("disk:20").Add(reserved("disk:20"))) // shrunk by 15
	_, err = os.Stat(filepath.Join(dir, "f"))
	require.NoError(t, err)
	want = resources.MustParse("cpus:1;mem:100;disk:60;ports:[1-2]").Add(volume("disk:20")).Add(reserved("disk:20"))
	assert.True(t, want.Equal(a.totalResources()), "total %s", a.totalResources())
}

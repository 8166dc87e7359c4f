package agent_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

func dynReserved(text, role string) resources.Resources {
	return resources.MustParse(text).PushReservation(resources.Reservation{Type: resources.Dynamic, Role: role, Principal: "p"})
}

func persistentVolume(text, role, id, containerPath string) resources.Resources {
	rs := dynReserved(text, role)
	for i := range rs {
		rs[i].Disk = &resources.DiskInfo{
			Persistence: &resources.Persistence{ID: id},
			Volume:      &resources.Volume{ContainerPath: containerPath, Mode: resources.RW},
		}
	}
	return rs
}

func checkpointEvent(rs resources.Resources) *internalpb.Event {
	return &internalpb.Event{
		Type:                internalpb.Event_CHECKPOINT_RESOURCES.Enum(),
		CheckpointResources: &internalpb.Event_CheckpointResources{Resources: rs.ToProto()},
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestPersistentVolumes(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	v1 := persistentVolume("disk:100", "db", "v1", "data")
	v2 := persistentVolume("disk:10", "eng/backend", "v2", "d")
	reserved := dynReserved("cpus:1;mem:128", "db")
	h.fm.push(checkpointEvent(reserved.Add(v1).Add(v2)))

	dir1 := filepath.Join(h.dir, "volumes", "roles", "db", "v1")
	dir2 := filepath.Join(h.dir, "volumes", "roles", "eng backend", "v2")
	require.Eventually(t, func() bool { return exists(dir1) && exists(dir2) }, waitFor, tick, "volume directories made")

	// A task writes in the volume; the data outlives it.
	write := commandTask("w", "echo world > data/hello")
	write.Resources = reserved.Add(v1).ToProto()
	h.fm.push(runTask(write))
	h.fm.waitUpdate(t, "w", mesospb.TASK_FINISHED)
	b, err := os.ReadFile(filepath.Join(dir1, "hello"))
	require.NoError(t, err)
	assert.Equal(t, "world\n", string(b))

	// A second task reads it.
	read := commandTask("r", `test "$(cat data/hello)" = world`)
	read.Resources = reserved.Add(v1).ToProto()
	h.fm.push(runTask(read))
	h.fm.waitUpdate(t, "r", mesospb.TASK_FINISHED)

	// A restarted agent re-registers with the reservations and volumes in
	// its total, and sends them separately too.
	h.stop()
	h.start()
	conns := h.waitConnects(2)
	rr := conns[1].Reregister
	require.NotNil(t, rr)
	total, err := resources.FromProto(rr.AgentInfo.Resources)
	require.NoError(t, err)
	want, err := resources.MustParse("cpus:2;mem:1024;disk:1024;ports:[31000-31009]").ApplyCheckpointed(reserved.Add(v1).Add(v2))
	require.NoError(t, err)
	assert.True(t, want.Equal(total), "total %s, want %s", total, want)
	ckpt, err := resources.FromProto(rr.CheckpointedResources)
	require.NoError(t, err)
	assert.True(t, reserved.Add(v1).Add(v2).Equal(ckpt))
	h.waitRegistered()
	assert.True(t, exists(filepath.Join(dir1, "hello")), "the volume's data survives the restart")

	// DESTROY of v1: its directory goes, v2's stays.
	h.fm.push(checkpointEvent(reserved.Add(v2)))
	require.Eventually(t, func() bool { return !exists(dir1) }, waitFor, tick, "destroyed volume removed")
	assert.True(t, exists(dir2))
	require.Eventually(t, func() bool {
		rs, err := resources.FromProto(h.a.Info().Resources)
		return err == nil && len(rs.PersistentVolumes()) == 1
	}, waitFor, tick, "the agent's info follows")
}

func TestPersistentVolumeInTaskGroup(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	v := persistentVolume("disk:100", "db", "v1", "vol/data")
	h.fm.push(checkpointEvent(v))
	dir := filepath.Join(h.dir, "volumes", "roles", "db", "v1")
	require.Eventually(t, func() bool { return exists(dir) }, waitFor, tick)

	task := commandTask("g1", "echo grouped > vol/data/out")
	task.Resources = resources.MustParse("cpus:0.1").Add(v).ToProto()
	h.fm.push(&internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: framework,
			Executor: mesospb.ExecutorInfo{
				ExecutorID: mesospb.ExecutorID{Value: "default"},
				Type:       mesospb.ExecutorInfo_DEFAULT.Enum(),
			},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{task}},
		},
	})
	h.fm.waitUpdate(t, "g1", mesospb.TASK_FINISHED)
	b, err := os.ReadFile(filepath.Join(dir, "out"))
	require.NoError(t, err)
	assert.Equal(t, "grouped\n", string(b))
}

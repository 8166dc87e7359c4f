package agent_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/executor"
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

// volumeLink reads the link at a container path of a sandbox.
func volumeLink(t *testing.T, sandbox, containerPath string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(sandbox, containerPath))
	require.NoError(t, err)
	return target
}

// An in-process Go executor gets each task's volumes linked in its sandbox
// before the task reaches it; a container path taken by something else
// fails the task alone.
func TestVolumesForGoExecutor(t *testing.T) {
	ex := &testExecutor{finishUUID: make(chan []byte, 1)}
	h := newHarness(t, func(c *agent.Config) { c.Executors = map[string]executor.Executor{"go-exec": ex} })
	h.waitRegistered()
	v1 := persistentVolume("disk:100", "db", "v1", "data")
	v2 := persistentVolume("disk:100", "db", "v2", "sub/logs")
	v3 := persistentVolume("disk:100", "db", "v3", "data")
	v4 := persistentVolume("disk:100", "db", "v4", "plain")
	h.fm.push(checkpointEvent(v1.Add(v2).Add(v3).Add(v4)))
	dir := func(id string) string { return filepath.Join(h.dir, "volumes", "roles", "db", id) }
	require.Eventually(t, func() bool { return exists(dir("v1")) && exists(dir("v4")) }, waitFor, tick)

	g1 := goTask("g1", "ex1", "go-exec")
	g1.Resources = v1.ToProto()
	h.fm.push(runTask(g1))
	h.fm.waitUpdate(t, "g1", mesospb.TASK_RUNNING)
	sandbox := h.state().Frameworks[0].Executors[0].Directory
	assert.Equal(t, dir("v1"), volumeLink(t, sandbox, "data"))

	// A task for the executor that runs: its volume is linked too.
	g2 := goTask("g2", "ex1", "go-exec")
	g2.Resources = v2.ToProto()
	h.fm.push(runTask(g2))
	h.fm.waitUpdate(t, "g2", mesospb.TASK_RUNNING)
	assert.Equal(t, dir("v2"), volumeLink(t, sandbox, "sub/logs"))

	// "data" links to v1, "plain" is a file: tasks wanting another volume
	// there fail, and never reach the executor.
	require.NoError(t, os.WriteFile(filepath.Join(sandbox, "plain"), []byte("x"), 0o644))
	for id, v := range map[string]resources.Resources{"g3": v3, "g4": v4} {
		g := goTask(id, "ex1", "go-exec")
		g.Resources = v.ToProto()
		h.fm.push(runTask(g))
		u := h.fm.waitUpdate(t, id, mesospb.TASK_FAILED)
		assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
		assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_UPDATE_FAILED, u.Status.GetReason())
		assert.Contains(t, u.Status.GetMessage(), "persistent volumes")
		assert.Contains(t, u.Status.GetMessage(), v[0].Disk.Volume.ContainerPath)
	}
	assert.Equal(t, dir("v1"), volumeLink(t, sandbox, "data"), "the existing link stays")
	b, err := os.ReadFile(filepath.Join(sandbox, "plain"))
	require.NoError(t, err)
	assert.Equal(t, "x", string(b))

	// The executor and its other tasks go on.
	states := map[string]mesospb.TaskState{}
	for _, task := range h.state().Frameworks[0].Executors[0].Tasks {
		states[task.TaskID.Value] = task.GetState()
	}
	assert.Equal(t, mesospb.TASK_RUNNING, states["g1"])
	assert.Equal(t, mesospb.TASK_RUNNING, states["g2"])
}

// A custom executor process gets the volumes of the tasks it starts with
// from the containerizer, and those of later tasks from the agent.
func TestVolumesForRunningExecutorProcess(t *testing.T) {
	bin := customExecutorBinary(t)
	h := newHTTPHarness(t)
	v1 := persistentVolume("disk:100", "db", "v1", "data")
	v2 := persistentVolume("disk:100", "db", "v2", "more")
	v3 := persistentVolume("disk:100", "db", "v3", "data")
	h.fm.push(checkpointEvent(v1.Add(v2).Add(v3)))
	dir := func(id string) string { return filepath.Join(h.dir, "volumes", "roles", "db", id) }
	require.Eventually(t, func() bool { return exists(dir("v1")) && exists(dir("v3")) }, waitFor, tick)

	p1 := processTask("p1", "ex1", bin, "wait")
	p1.Resources = v1.ToProto()
	h.fm.push(runTask(p1))
	h.fm.waitUpdate(t, "p1", mesospb.TASK_RUNNING)
	sandbox := h.state().Frameworks[0].Executors[0].Directory
	assert.Equal(t, dir("v1"), volumeLink(t, sandbox, "data"))

	p2 := processTask("p2", "ex1", bin, "wait")
	p2.Resources = v2.ToProto()
	h.fm.push(runTask(p2))
	h.fm.waitUpdate(t, "p2", mesospb.TASK_RUNNING)
	assert.Equal(t, dir("v2"), volumeLink(t, sandbox, "more"))

	p3 := processTask("p3", "ex1", bin, "wait")
	p3.Resources = v3.ToProto()
	h.fm.push(runTask(p3))
	u := h.fm.waitUpdate(t, "p3", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_REASON_CONTAINER_UPDATE_FAILED, u.Status.GetReason())

	h.fm.push(frameworkMessage("ex1", "finish"))
	h.fm.waitUpdate(t, "p1", mesospb.TASK_FINISHED)
	h.fm.waitUpdate(t, "p2", mesospb.TASK_FINISHED)
	h.fm.waitExited(t, "ex1")
}

// A destroyed volume's data is moved aside at once, so the same
// persistence ID can come back empty, and deleted off the agent's loop;
// what a stopped agent left to delete, the next one deletes.
func TestDestroyedVolumeRemovedAside(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	v1 := persistentVolume("disk:100", "db", "v1", "data")
	dir := filepath.Join(h.dir, "volumes", "roles", "db", "v1")
	trash := filepath.Join(h.dir, "volumes", ".removing")
	trashEmpty := func() bool { entries, err := os.ReadDir(trash); return err == nil && len(entries) == 0 }
	h.fm.push(checkpointEvent(v1))
	require.Eventually(t, func() bool { return exists(dir) }, waitFor, tick)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "old"), []byte("x"), 0o644))

	// DESTROY, then CREATE of the same ID: a new, empty directory.
	h.fm.push(checkpointEvent(nil))
	h.fm.push(checkpointEvent(v1))
	require.Eventually(t, func() bool {
		entries, err := os.ReadDir(dir)
		return err == nil && len(entries) == 0
	}, waitFor, tick, "the volume made again is empty")
	require.Eventually(t, trashEmpty, waitFor, tick, "the old data is deleted")

	// What an earlier agent left in the trash goes when the next starts.
	h.stop()
	left := filepath.Join(trash, "volume-1", "data", "sub")
	require.NoError(t, os.MkdirAll(left, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(left, "f"), []byte("x"), 0o644))
	h.start()
	h.waitRegistered()
	require.Eventually(t, trashEmpty, waitFor, tick, "the leftovers are deleted")
	assert.True(t, exists(dir), "the live volume stays")
}

package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// The volumes noted for the task containers of a built-in executor are
// dropped when the executor terminates, launched or not: a task group
// killed while queued leaves nothing in the book.
func TestVolumeBookForgetsUnlaunchedTasks(t *testing.T) {
	a := loopAgent(t)
	vol := resources.MustParse("disk:10").PushReservation(resources.Reservation{Type: resources.Dynamic, Role: "db", Principal: "p"})
	vol[0].Disk = &resources.DiskInfo{
		Persistence: &resources.Persistence{ID: "v1"},
		Volume:      &resources.Volume{ContainerPath: "data", Mode: resources.RW},
	}
	fw := mesospb.FrameworkInfo{Name: "fw", ID: &mesospb.FrameworkID{Value: "fw-1"}}
	group := mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{
		{Name: "a", TaskID: mesospb.TaskID{Value: "a"}, Command: &mesospb.CommandInfo{Value: ptr("sleep 1000")}, Resources: vol.ToProto()},
	}}
	a.handleEvent(&internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: fw,
			Executor:  mesospb.ExecutorInfo{Type: mesospb.ExecutorInfo_DEFAULT.Enum(), ExecutorID: mesospb.ExecutorID{Value: "ex"}},
			TaskGroup: group,
		},
	})
	e := a.executor("fw-1", "ex")
	require.NotNil(t, e)
	a.vols.mu.Lock()
	require.Len(t, a.vols.byID, 1, "the queued task's volume is noted")
	a.vols.mu.Unlock()

	a.handleEvent(&internalpb.Event{
		Type:     internalpb.Event_KILL_TASK.Enum(),
		KillTask: &internalpb.Event_KillTask{FrameworkID: *fw.ID, TaskID: mesospb.TaskID{Value: "a"}},
	})
	runPosted(t, a, func() bool { return e.State() == execTerminated })
	a.vols.mu.Lock()
	defer a.vols.mu.Unlock()
	assert.Empty(t, a.vols.byID, "nothing left for a container never launched")
}

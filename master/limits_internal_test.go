package master

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// The master keeps a task's info without its data and command (but the
// command's user), as Mesos's protobuf::createTask; the TaskInfo itself,
// sent on to the agent, is untouched.
func TestKeptTaskDropsDataAndCommand(t *testing.T) {
	ti := &mesospb.TaskInfo{
		Name: "t", TaskID: mesospb.TaskID{Value: "t"}, Data: []byte("payload"),
		Command: &mesospb.CommandInfo{Value: ptr("sleep 1"), User: ptr("nobody")},
		Labels:  &mesospb.Labels{Labels: []mesospb.Label{{Key: "k"}}},
	}
	kept := keptTask(ti)
	assert.Nil(t, kept.Data)
	assert.Nil(t, kept.Command.Value)
	assert.Equal(t, "nobody", kept.Command.GetUser())
	assert.Equal(t, ti.Labels, kept.Labels)
	assert.Equal(t, "payload", string(ti.Data))
	assert.Equal(t, "sleep 1", ti.Command.GetValue())
	ti.Command.User = nil
	assert.Nil(t, keptTask(ti).Command)
}

func TestIDErrorAsMesos(t *testing.T) {
	for id, want := range map[string]string{
		"":         "ID must not be empty",
		"..":       "'..' is disallowed",
		"a/b":      "'a/b' contains invalid characters",
		"a b":      "",
		"\xff\xfe": "",
	} {
		assert.Equal(t, want, idError(id), "%q", id)
	}
}

// A kept status drops its data (MESOS-1746); the caller's copy, which goes
// to the framework, keeps it.
func TestKeptStatusDropsData(t *testing.T) {
	st := mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t"}, State: mesospb.TASK_RUNNING.Enum(), Data: []byte("big")}
	kept := appendStatus(nil, st)
	assert.Nil(t, kept[0].Data)
	assert.Equal(t, "big", string(st.Data))
}

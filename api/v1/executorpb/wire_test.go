package executorpb_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// These tests pin the wire format to Mesos's field numbers: the expected
// bytes are written by hand from mesos.v1 / mesos.v1.executor numbers, never
// produced by the code under test. Fields appear in field-number order,
// which is the order Marshal writes them in.

// wire builds protobuf bytes one field at a time.
type wire []byte

func (w wire) key(num, wireType int) wire {
	return binary.AppendUvarint(w, uint64(num)<<3|uint64(wireType))
}

// varint appends a varint field (int32/uint64/bool/enum).
func (w wire) varint(num int, v uint64) wire {
	return binary.AppendUvarint(w.key(num, 0), v)
}

// double appends a 64-bit little-endian field.
func (w wire) double(num int, v float64) wire {
	return binary.LittleEndian.AppendUint64(w.key(num, 1), math.Float64bits(v))
}

// bytes appends a length-delimited field.
func (w wire) bytes(num int, b []byte) wire {
	w = binary.AppendUvarint(w.key(num, 2), uint64(len(b)))
	return append(w, b...)
}

func (w wire) str(num int, s string) wire { return w.bytes(num, []byte(s)) }

func (w wire) msg(num int, m wire) wire { return w.bytes(num, m) }

// wireMessage is what the generated types offer for the round trip.
type wireMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// roundTrip decodes in into got, compares with want, and checks that
// encoding got again reproduces in byte for byte.
func roundTrip(t *testing.T, in wire, got, want wireMessage) {
	t.Helper()
	require.NoError(t, got.Unmarshal(in))
	assert.Equal(t, want, got)
	out, err := got.Marshal()
	require.NoError(t, err)
	assert.Equal(t, []byte(in), out)
}

func TestWireLaunchEvent(t *testing.T) {
	cpus := wire{}.
		str(1, "cpus").
		varint(2, 0). // type: SCALAR
		msg(3, wire{}.double(1, 0.5))
	command := wire{}.
		str(3, "/bin/echo"). // value
		str(7, "echo").      // arguments
		str(7, "hello")
	task := wire{}.
		str(1, "echo-task").                // name
		msg(2, wire{}.str(1, "task-1")).    // task_id
		msg(3, wire{}.str(1, "agent-1")).   // agent_id
		msg(4, cpus).                       // resources
		bytes(6, []byte{0x00, 0xff, 0x10}). // data
		msg(7, command)                     // command
	in := wire{}.
		varint(1, 2). // type: LAUNCH
		msg(4, wire{}.msg(1, task))

	want := &executorpb.Event{
		Type: executorpb.Event_LAUNCH.Enum(),
		Launch: &executorpb.Event_Launch{
			Task: mesospb.TaskInfo{
				Name:    "echo-task",
				TaskID:  mesospb.TaskID{Value: "task-1"},
				AgentID: mesospb.AgentID{Value: "agent-1"},
				Resources: []mesospb.Resource{{
					Name:   "cpus",
					Type:   mesospb.Value_SCALAR,
					Scalar: &mesospb.Value_Scalar{Value: 0.5},
				}},
				Data: []byte{0x00, 0xff, 0x10},
				Command: &mesospb.CommandInfo{
					Value:     protoString("/bin/echo"),
					Arguments: []string{"echo", "hello"},
				},
			},
		},
	}
	got := &executorpb.Event{}
	roundTrip(t, in, got, want)
	// shell was not sent: the declared default (true) applies.
	assert.True(t, got.Launch.Task.Command.GetShell())
}

func TestWireUpdateCall(t *testing.T) {
	uuid := []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}
	status := wire{}.
		msg(1, wire{}.str(1, "task-1")). // task_id
		varint(2, 2).                    // state: TASK_FINISHED
		double(6, 1700000001.5).         // timestamp
		varint(9, 2).                    // source: SOURCE_EXECUTOR
		bytes(11, uuid)                  // uuid
	in := wire{}.
		msg(1, wire{}.str(1, "exec-1")). // executor_id
		msg(2, wire{}.str(1, "fw-1")).   // framework_id
		varint(3, 2).                    // type: UPDATE
		msg(5, wire{}.msg(1, status))

	want := &executorpb.Call{
		ExecutorID:  mesospb.ExecutorID{Value: "exec-1"},
		FrameworkID: mesospb.FrameworkID{Value: "fw-1"},
		Type:        executorpb.Call_UPDATE.Enum(),
		Update: &executorpb.Call_Update{Status: mesospb.TaskStatus{
			TaskID:    mesospb.TaskID{Value: "task-1"},
			State:     mesospb.TASK_FINISHED.Enum(),
			Timestamp: proto64(1700000001.5),
			Source:    mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(),
			UUID:      uuid,
		}},
	}
	roundTrip(t, in, &executorpb.Call{}, want)
}

func TestWireSubscribeCallWithUnacknowledged(t *testing.T) {
	task := wire{}.
		str(1, "t").
		msg(2, wire{}.str(1, "task-1")).
		msg(3, wire{}.str(1, "agent-1"))
	update := wire{}.msg(1, wire{}.
		msg(1, wire{}.str(1, "task-1")).
		varint(2, 1)) // TASK_RUNNING
	in := wire{}.
		msg(1, wire{}.str(1, "exec-1")).
		msg(2, wire{}.str(1, "fw-1")).
		varint(3, 1). // type: SUBSCRIBE
		msg(4, wire{}.msg(1, task).msg(2, update))

	want := &executorpb.Call{
		ExecutorID:  mesospb.ExecutorID{Value: "exec-1"},
		FrameworkID: mesospb.FrameworkID{Value: "fw-1"},
		Type:        executorpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &executorpb.Call_Subscribe{
			UnacknowledgedTasks: []mesospb.TaskInfo{{
				Name:    "t",
				TaskID:  mesospb.TaskID{Value: "task-1"},
				AgentID: mesospb.AgentID{Value: "agent-1"},
			}},
			UnacknowledgedUpdates: []executorpb.Call_Update{{Status: mesospb.TaskStatus{
				TaskID: mesospb.TaskID{Value: "task-1"},
				State:  mesospb.TASK_RUNNING.Enum(),
			}}},
		},
	}
	roundTrip(t, in, &executorpb.Call{}, want)
}

// Mesos numbers Call.Message.data 2 (not 1); an executor that follows the
// Mesos proto must be understood.
func TestWireMessageCallDataIsFieldTwo(t *testing.T) {
	in := wire{}.
		msg(1, wire{}.str(1, "exec-1")).
		msg(2, wire{}.str(1, "fw-1")).
		varint(3, 3). // type: MESSAGE
		msg(6, wire{}.bytes(2, []byte("ping")))

	want := &executorpb.Call{
		ExecutorID:  mesospb.ExecutorID{Value: "exec-1"},
		FrameworkID: mesospb.FrameworkID{Value: "fw-1"},
		Type:        executorpb.Call_MESSAGE.Enum(),
		Message:     &executorpb.Call_Message{Data: []byte("ping")},
	}
	roundTrip(t, in, &executorpb.Call{}, want)
}

// Fields Apron does not declare must survive decode and re-encode.
func TestWireUnknownFieldsSurvive(t *testing.T) {
	kill := wire{}.
		msg(1, wire{}.str(1, "task-1")).
		double(77, 1.5) // unknown to Apron's Event.Kill
	in := wire{}.
		varint(1, 3). // type: KILL
		msg(5, kill).
		varint(500, 42) // unknown to Apron's Event

	ev := &executorpb.Event{}
	require.NoError(t, ev.Unmarshal(in))
	assert.Equal(t, "task-1", ev.GetKill().GetTaskID().Value)

	out, err := ev.Marshal()
	require.NoError(t, err)
	assert.Equal(t, []byte(in), out)
}

func TestWireEnumValues(t *testing.T) {
	assert.EqualValues(t, 8, executorpb.Event_LAUNCH_GROUP)
	assert.EqualValues(t, 7, executorpb.Event_SHUTDOWN)
	assert.EqualValues(t, 9, executorpb.Event_HEARTBEAT)
	assert.EqualValues(t, 4, executorpb.Call_HEARTBEAT)
}

func proto64(v float64) *float64 { return &v }

func protoString(v string) *string { return &v }

package masterpb_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The expected bytes below are assembled by hand from the field numbers of
// Mesos's mesos.v1 and mesos.v1.master protos, not produced by the code under
// test, so a renumbered field fails here. Within each message the fields are
// written in field-number order, as Mesos (and Marshal) write them.

// pb is a protobuf encoding under construction.
type pb []byte

func (b pb) tag(field, wireType int) pb {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wireType))
}

// varint appends an int, uint, bool or enum field.
func (b pb) varint(field int, v uint64) pb {
	return binary.AppendUvarint(b.tag(field, 0), v)
}

// fixed64 appends a double field.
func (b pb) fixed64(field int, v float64) pb {
	return binary.LittleEndian.AppendUint64(b.tag(field, 1), math.Float64bits(v))
}

// bytes appends a length-delimited field: bytes, a string or a message.
func (b pb) bytes(field int, v []byte) pb {
	b = binary.AppendUvarint(b.tag(field, 2), uint64(len(v)))
	return append(b, v...)
}

func (b pb) str(field int, s string) pb { return b.bytes(field, []byte(s)) }

func (b pb) msg(field int, m pb) pb { return b.bytes(field, m) }

// id is an AgentID, FrameworkID, TaskID...: required string value = 1.
func id(value string) pb { return pb{}.str(1, value) }

// scalarResource is a mesos.v1.Resource of type SCALAR.
func scalarResource(name string, value float64) pb {
	return pb{}.
		str(1, name).                  // name
		varint(2, 0).                  // type: SCALAR
		msg(3, pb{}.fixed64(1, value)) // scalar.value
}

// message is what the generated types provide for the round trip.
type message interface {
	proto.Message
	Marshal() ([]byte, error)
}

// checkRoundTrip decodes in into got, compares it with want, and checks that
// encoding it again gives back exactly in.
func checkRoundTrip(t *testing.T, in pb, got, want message) {
	t.Helper()
	require.NoError(t, proto.Unmarshal(in, got))
	assert.Equal(t, want, got)
	out, err := got.Marshal()
	require.NoError(t, err)
	assert.Equal(t, []byte(in), out)
}

func TestWireGetStateResponse(t *testing.T) {
	status := pb{}.
		msg(1, id("web-1")).       // task_id
		varint(2, 1).              // state: TASK_RUNNING
		msg(5, id("agent-7")).     // agent_id
		fixed64(6, 1700000000.25). // timestamp
		varint(9, 2)               // source: SOURCE_EXECUTOR
	task := pb{}.
		str(1, "web").                       // name
		msg(2, id("web-1")).                 // task_id
		msg(3, id("fw-1")).                  // framework_id
		msg(5, id("agent-7")).               // agent_id
		varint(6, 1).                        // state: TASK_RUNNING
		msg(7, scalarResource("cpus", 0.5)). // resources
		msg(8, status)                       // statuses
	agentInfo := pb{}.
		str(1, "node7.example.org").         // hostname
		msg(3, scalarResource("mem", 4096)). // resources
		msg(6, id("agent-7")).               // id
		varint(8, 5051)                      // port
	agent := pb{}.
		msg(1, agentInfo).                    // agent_info
		varint(2, 1).                         // active
		str(3, "1.11.0").                     // version
		str(4, "slave(1)@10.0.0.7:5051").     // pid
		msg(5, pb{}.varint(1, 1700000000e9)). // registered_time.nanoseconds
		msg(7, scalarResource("mem", 4096)).  // total_resources
		msg(10, pb{}.varint(1, 1)).           // capabilities: MULTI_ROLE
		varint(12, 0)                         // deactivated: false
	getState := pb{}.
		msg(1, pb{}.msg(2, task)). // get_tasks.tasks
		msg(4, pb{}.msg(1, agent)) // get_agents.agents
	in := pb{}.
		varint(1, 8).    // type: GET_STATE
		msg(9, getState) // get_state

	running := mesospb.TASK_RUNNING
	resource := func(name string, value float64) mesospb.Resource {
		return mesospb.Resource{
			Name:   name,
			Type:   mesospb.Value_SCALAR,
			Scalar: &mesospb.Value_Scalar{Value: value},
		}
	}
	want := &masterpb.Response{
		Type: masterpb.Response_GET_STATE.Enum(),
		GetState: &masterpb.Response_GetState{
			GetTasks: &masterpb.Response_GetTasks{
				Tasks: []mesospb.Task{{
					Name:        "web",
					TaskID:      mesospb.TaskID{Value: "web-1"},
					FrameworkID: mesospb.FrameworkID{Value: "fw-1"},
					AgentID:     mesospb.AgentID{Value: "agent-7"},
					State:       &running,
					Resources:   []mesospb.Resource{resource("cpus", 0.5)},
					Statuses: []mesospb.TaskStatus{{
						TaskID:    mesospb.TaskID{Value: "web-1"},
						State:     &running,
						AgentID:   &mesospb.AgentID{Value: "agent-7"},
						Timestamp: proto.Float64(1700000000.25),
						Source:    mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(),
					}},
				}},
			},
			GetAgents: &masterpb.Response_GetAgents{
				Agents: []masterpb.Response_GetAgents_Agent{{
					AgentInfo: mesospb.AgentInfo{
						Hostname:  "node7.example.org",
						Port:      proto.Int32(5051),
						Resources: []mesospb.Resource{resource("mem", 4096)},
						ID:        &mesospb.AgentID{Value: "agent-7"},
					},
					Active:         true,
					Deactivated:    proto.Bool(false),
					Version:        "1.11.0",
					Pid:            proto.String("slave(1)@10.0.0.7:5051"),
					RegisteredTime: &mesospb.TimeInfo{Nanoseconds: 1700000000e9},
					TotalResources: []mesospb.Resource{resource("mem", 4096)},
					Capabilities: []mesospb.AgentInfo_Capability{{
						Type: mesospb.AgentInfo_Capability_MULTI_ROLE.Enum(),
					}},
				}},
			},
		},
	}
	checkRoundTrip(t, in, &masterpb.Response{}, want)
}

func TestWireTaskUpdatedEvent(t *testing.T) {
	status := pb{}.
		msg(1, id("batch-42")).             // task_id
		varint(2, 2).                       // state: TASK_FINISHED
		str(4, "exit 0").                   // message
		msg(5, id("agent-3")).              // agent_id
		fixed64(6, 1700000123.5).           // timestamp
		varint(9, 2).                       // source: SOURCE_EXECUTOR
		str(11, "\x01\x02\x03\x04\x05\x06") // uuid
	taskUpdated := pb{}.
		msg(1, id("fw-9")). // framework_id
		msg(2, status).     // status
		varint(3, 2)        // state: TASK_FINISHED
	in := pb{}.
		varint(1, 3).       // type: TASK_UPDATED
		msg(4, taskUpdated) // task_updated

	finished := mesospb.TASK_FINISHED
	want := &masterpb.Event{
		Type: masterpb.Event_TASK_UPDATED.Enum(),
		TaskUpdated: &masterpb.Event_TaskUpdated{
			FrameworkID: mesospb.FrameworkID{Value: "fw-9"},
			Status: mesospb.TaskStatus{
				TaskID:    mesospb.TaskID{Value: "batch-42"},
				State:     &finished,
				Message:   proto.String("exit 0"),
				AgentID:   &mesospb.AgentID{Value: "agent-3"},
				Timestamp: proto.Float64(1700000123.5),
				Source:    mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(),
				UUID:      []byte{1, 2, 3, 4, 5, 6},
			},
			State: &finished,
		},
	}
	checkRoundTrip(t, in, &masterpb.Event{}, want)
}

// DrainAgent.max_grace_period is google.protobuf.Duration in Mesos; Apron's
// Duration must read and write the same bytes.
func TestWireDrainAgentCall(t *testing.T) {
	drainAgent := pb{}.
		msg(1, id("agent-3")).                           // agent_id
		msg(2, pb{}.varint(1, 90).varint(2, 500000000)). // max_grace_period: 90.5s
		varint(3, 1)                                     // mark_gone
	in := pb{}.
		varint(1, 37).      // type: DRAIN_AGENT
		msg(21, drainAgent) // drain_agent

	want := &masterpb.Call{
		Type: masterpb.Call_DRAIN_AGENT.Enum(),
		DrainAgent: &masterpb.Call_DrainAgent{
			AgentID:        mesospb.AgentID{Value: "agent-3"},
			MaxGracePeriod: &masterpb.Duration{Seconds: proto.Int64(90), Nanos: proto.Int32(500000000)},
			MarkGone:       proto.Bool(true),
		},
	}
	checkRoundTrip(t, in, &masterpb.Call{}, want)
}

// QuotaConfig keeps Mesos's map fields; a map entry is a nested message with
// key = 1 and value = 2.
func TestWireUpdateQuotaCall(t *testing.T) {
	entry := pb{}.
		str(1, "cpus").            // key
		msg(2, pb{}.fixed64(1, 8)) // value: Value.Scalar
	config := pb{}.
		str(1, "analytics"). // role
		msg(2, entry)        // guarantees
	in := pb{}.
		varint(1, 36).               // type: UPDATE_QUOTA
		msg(20, pb{}.msg(2, config)) // update_quota.quota_configs

	want := &masterpb.Call{
		Type: masterpb.Call_UPDATE_QUOTA.Enum(),
		UpdateQuota: &masterpb.Call_UpdateQuota{
			QuotaConfigs: []masterpb.QuotaConfig{{
				Role:       "analytics",
				Guarantees: map[string]mesospb.Value_Scalar{"cpus": {Value: 8}},
			}},
		},
	}
	checkRoundTrip(t, in, &masterpb.Call{}, want)
}

// A type this build does not know still decodes, as its number, so a newer
// client's call can be answered with a clean error instead of a parse error.
func TestWireUnknownCallType(t *testing.T) {
	var call masterpb.Call
	require.NoError(t, proto.Unmarshal(pb{}.varint(1, 999), &call))
	assert.Equal(t, masterpb.Call_Type(999), call.GetType())
}

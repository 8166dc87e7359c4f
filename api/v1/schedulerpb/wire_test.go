package schedulerpb_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// These tests pin the wire format to Mesos's field numbers: the expected
// bytes are written by hand from mesos.v1 / mesos.v1.scheduler numbers, never
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

func TestWireSubscribeCall(t *testing.T) {
	frameworkInfo := wire{}.
		str(1, "root").                     // user
		str(2, "kafka").                    // name
		double(4, 604800).                  // failover_timeout
		msg(10, wire{}.varint(1, 6)).       // capabilities: MULTI_ROLE
		msg(10, wire{}.varint(1, 5)).       // capabilities: PARTITION_AWARE
		str(12, "streaming").str(12, "ops") // roles
	in := wire{}.
		varint(2, 1). // type: SUBSCRIBE
		msg(3, wire{}.msg(1, frameworkInfo))

	want := &schedulerpb.Call{
		Type: schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{
			FrameworkInfo: mesospb.FrameworkInfo{
				User:            "root",
				Name:            "kafka",
				FailoverTimeout: proto64(604800),
				Capabilities: []mesospb.FrameworkInfo_Capability{
					{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()},
					{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()},
				},
				Roles: []string{"streaming", "ops"},
			},
		},
	}
	roundTrip(t, in, &schedulerpb.Call{}, want)
}

func TestWireOffersEvent(t *testing.T) {
	ranges := wire{}.
		msg(1, wire{}.varint(1, 31000).varint(2, 32000)). // begin, end
		msg(1, wire{}.varint(1, 33000).varint(2, 33010))
	reservation := wire{}.
		str(1, "kafka-principal"). // principal
		str(3, "streaming").       // role
		varint(4, 2)               // type: DYNAMIC
	ports := wire{}.
		str(1, "ports").
		varint(2, 1). // type: RANGES
		msg(4, ranges).
		msg(13, reservation) // reservations
	cpus := wire{}.
		str(1, "cpus").
		varint(2, 0). // type: SCALAR
		msg(3, wire{}.double(1, 2.5))
	offer := wire{}.
		msg(1, wire{}.str(1, "offer-1")).
		msg(2, wire{}.str(1, "fw-1")).
		msg(3, wire{}.str(1, "agent-1")).
		str(4, "host-1").
		msg(5, ports).
		msg(5, cpus)
	in := wire{}.
		varint(1, 2). // type: OFFERS
		msg(3, wire{}.msg(1, offer))

	want := &schedulerpb.Event{
		Type: schedulerpb.Event_OFFERS.Enum(),
		Offers: &schedulerpb.Event_Offers{
			Offers: []mesospb.Offer{{
				ID:          mesospb.OfferID{Value: "offer-1"},
				FrameworkID: mesospb.FrameworkID{Value: "fw-1"},
				AgentID:     mesospb.AgentID{Value: "agent-1"},
				Hostname:    "host-1",
				Resources: []mesospb.Resource{
					{
						Name: "ports",
						Type: mesospb.Value_RANGES,
						Ranges: &mesospb.Value_Ranges{Range: []mesospb.Value_Range{
							{Begin: 31000, End: 32000},
							{Begin: 33000, End: 33010},
						}},
						Reservations: []mesospb.Resource_ReservationInfo{{
							Type:      mesospb.Resource_ReservationInfo_DYNAMIC.Enum(),
							Role:      protoString("streaming"),
							Principal: protoString("kafka-principal"),
						}},
					},
					{
						Name:   "cpus",
						Type:   mesospb.Value_SCALAR,
						Scalar: &mesospb.Value_Scalar{Value: 2.5},
					},
				},
			}},
		},
	}
	got := &schedulerpb.Event{}
	roundTrip(t, in, got, want)
	// The deprecated single-role field was not sent, so it reads as its
	// declared default.
	assert.Equal(t, "*", got.Offers.Offers[0].Resources[0].GetRole())
}

func TestWireUpdateEvent(t *testing.T) {
	uuid := []byte{0x9b, 0x1d, 0xeb, 0x4d, 0x3b, 0x7d, 0x4b, 0xad, 0x9b, 0xdd, 0x2b, 0x0d, 0x7b, 0x3d, 0xcb, 0x6d}
	status := wire{}.
		msg(1, wire{}.str(1, "task-7")). // task_id
		varint(2, 1).                    // state: TASK_RUNNING
		double(6, 1700000000.25).        // timestamp
		varint(9, 1).                    // source: SOURCE_AGENT
		varint(10, 9).                   // reason: REASON_RECONCILIATION
		bytes(11, uuid)                  // uuid
	in := wire{}.
		varint(1, 4). // type: UPDATE
		msg(5, wire{}.msg(1, status))

	want := &schedulerpb.Event{
		Type: schedulerpb.Event_UPDATE.Enum(),
		Update: &schedulerpb.Event_Update{
			Status: mesospb.TaskStatus{
				TaskID:    mesospb.TaskID{Value: "task-7"},
				State:     mesospb.TASK_RUNNING.Enum(),
				Timestamp: proto64(1700000000.25),
				Source:    mesospb.TaskStatus_SOURCE_AGENT.Enum(),
				Reason:    mesospb.TaskStatus_REASON_RECONCILIATION.Enum(),
				UUID:      uuid,
			},
		},
	}
	roundTrip(t, in, &schedulerpb.Event{}, want)
}

// A newer Mesos client may send fields Apron does not declare (Mesos 1.11's
// Subscribe.offer_constraints is field 3). They must survive a decode and
// re-encode untouched, so a proxy or a registry write loses nothing.
func TestWireUnknownFieldsSurvive(t *testing.T) {
	constraints := wire{}.msg(1, wire{}.str(1, "dev")) // opaque to Apron
	frameworkInfo := wire{}.
		str(1, "root").
		str(2, "picky").
		varint(4000, 1) // unknown to Apron's FrameworkInfo
	subscribe := wire{}.
		msg(1, frameworkInfo).
		str(2, "dev").      // suppressed_roles
		msg(3, constraints) // unknown to Apron's Call.Subscribe
	in := wire{}.
		varint(2, 1).
		msg(3, subscribe).
		str(999, "trailing") // unknown to Apron's Call

	call := &schedulerpb.Call{}
	require.NoError(t, call.Unmarshal(in))
	assert.Equal(t, "picky", call.GetSubscribe().GetFrameworkInfo().Name)
	assert.Equal(t, []string{"dev"}, call.GetSubscribe().GetSuppressedRoles())

	out, err := call.Marshal()
	require.NoError(t, err)
	assert.Equal(t, []byte(in), out)
}

func TestWireDeclineFiltersDefault(t *testing.T) {
	in := wire{}.
		msg(1, wire{}.str(1, "fw-1")). // framework_id
		varint(2, 4).                  // type: DECLINE
		msg(5, wire{}.
			msg(1, wire{}.str(1, "offer-1")).
			msg(2, wire{})) // filters present, refuse_seconds absent

	want := &schedulerpb.Call{
		FrameworkID: &mesospb.FrameworkID{Value: "fw-1"},
		Type:        schedulerpb.Call_DECLINE.Enum(),
		Decline: &schedulerpb.Call_Decline{
			OfferIDs: []mesospb.OfferID{{Value: "offer-1"}},
			Filters:  &mesospb.Filters{},
		},
	}
	got := &schedulerpb.Call{}
	roundTrip(t, in, got, want)

	filters := got.GetDecline().GetFilters()
	require.NotNil(t, filters)
	assert.Nil(t, filters.RefuseSeconds, "absence must stay visible")
	assert.Equal(t, 5.0, filters.GetRefuseSeconds())
}

func TestWireEnumValues(t *testing.T) {
	// Spot checks of numbers that are easy to get wrong because Mesos
	// appended them out of order.
	assert.EqualValues(t, 9, schedulerpb.Event_INVERSE_OFFERS)
	assert.EqualValues(t, 11, schedulerpb.Event_UPDATE_OPERATION_STATUS)
	assert.EqualValues(t, 8, schedulerpb.Event_HEARTBEAT)
	assert.EqualValues(t, 13, schedulerpb.Call_ACCEPT_INVERSE_OFFERS)
	assert.EqualValues(t, 15, schedulerpb.Call_ACKNOWLEDGE_OPERATION_STATUS)
	assert.EqualValues(t, 16, schedulerpb.Call_RECONCILE_OPERATIONS)
	assert.EqualValues(t, 12, schedulerpb.Call_SUPPRESS)
	assert.EqualValues(t, 17, schedulerpb.Call_UPDATE_FRAMEWORK)
	assert.EqualValues(t, 1, schedulerpb.Response_RECONCILE_OPERATIONS)
}

func TestWireUpdateFrameworkCall(t *testing.T) {
	in := wire{}.
		msg(1, wire{}.str(1, "fw-1")).
		varint(2, 17). // type: UPDATE_FRAMEWORK
		msg(19, wire{}.
			msg(1, wire{}.str(1, "root").str(2, "kafka").str(12, "a")).
			str(2, "a"))

	want := &schedulerpb.Call{
		FrameworkID: &mesospb.FrameworkID{Value: "fw-1"},
		Type:        schedulerpb.Call_UPDATE_FRAMEWORK.Enum(),
		UpdateFramework: &schedulerpb.Call_UpdateFramework{
			FrameworkInfo:   mesospb.FrameworkInfo{User: "root", Name: "kafka", Roles: []string{"a"}},
			SuppressedRoles: []string{"a"},
		},
	}
	roundTrip(t, in, &schedulerpb.Call{}, want)
}

func proto64(v float64) *float64 { return &v }

func protoString(v string) *string { return &v }

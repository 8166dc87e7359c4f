package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

func ptr[T any](v T) *T { return &v }

// The calls of the Mesos scheduler HTTP API document, as a client sends them.
var schedulerDocCalls = map[string]string{
	"SUBSCRIBE": `{"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "foo", "name": "Example HTTP Framework"}}}`,
	"TEARDOWN":  `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "TEARDOWN"}`,
	"ACCEPT": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "ACCEPT", "accept": {
		"offer_ids": [{"value": "12220-3440-12532-O12"}, {"value": "12220-3440-12532-O12"}],
		"operations": [{"type": "LAUNCH", "launch": {"task_infos": [{"name": "t", "task_id": {"value": "t1"},
			"agent_id": {"value": "S1"}, "command": {"value": "sleep 10"},
			"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}]}]}}],
		"filters": {"refuse_seconds": 10}}}`,
	"DECLINE": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "DECLINE", "decline": {
		"offer_ids": [{"value": "12220-3440-12532-O12"}, {"value": "12220-3440-12532-O13"}], "filters": {"refuse_seconds": 5}}}`,
	"REVIVE": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "REVIVE"}`,
	"KILL": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "KILL", "kill": {
		"task_id": {"value": "12220-3440-12532-my-task"}, "agent_id": {"value": "12220-3440-12532-S1233"}}}`,
	"SHUTDOWN": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "SHUTDOWN", "shutdown": {
		"executor_id": {"value": "123450-2340-1232-my-executor"}, "agent_id": {"value": "12220-3440-12532-S1233"}}}`,
	"ACKNOWLEDGE": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "ACKNOWLEDGE", "acknowledge": {
		"agent_id": {"value": "12220-3440-12532-S1233"}, "task_id": {"value": "12220-3440-12532-my-task"},
		"uuid": "jhadf73jhakdlfha723adf"}}`,
	"RECONCILE": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "RECONCILE", "reconcile": {
		"tasks": [{"task_id": {"value": "312325"}, "agent_id": {"value": "123535"}}]}}`,
	"MESSAGE": `{"framework_id": {"value": "12220-3440-12532-2345"}, "type": "MESSAGE", "message": {
		"agent_id": {"value": "12220-3440-12532-S1233"}, "executor_id": {"value": "my-framework-executor"},
		"data": "adaf838jahd748jnaldf"}}`,
}

// TestSchedulerDocCalls decodes each call of the Mesos scheduler HTTP API
// document and checks that encoding it again gives the same JSON document
// (same fields, same values), and that decoding that gives the same message.
func TestSchedulerDocCalls(t *testing.T) {
	for name, doc := range schedulerDocCalls {
		t.Run(name, func(t *testing.T) {
			var call schedulerpb.Call
			require.NoError(t, codec.UnmarshalJSON([]byte(doc), &call))
			assert.Equal(t, name, call.GetType().String())

			out, err := codec.MarshalJSON(&call)
			require.NoError(t, err)
			assert.JSONEq(t, normalizeBase64(t, doc), string(out))

			var again schedulerpb.Call
			require.NoError(t, codec.UnmarshalJSON(out, &again))
			assert.Equal(t, call, again)

			// And through protobuf: nothing is lost between the encodings.
			bin, err := codec.Protobuf.Marshal(&call)
			require.NoError(t, err)
			var fromBin schedulerpb.Call
			require.NoError(t, codec.Protobuf.Unmarshal(bin, &fromBin))
			fromBinJSON, err := codec.MarshalJSON(&fromBin)
			require.NoError(t, err)
			assert.JSONEq(t, string(out), string(fromBinJSON))
		})
	}
}

// normalizeBase64 rewrites the document's base64 values as the padded
// standard form an encoder writes, so the documents compare equal. (The
// document's uuid is unpadded and its last character carries stray low bits,
// which decoding drops, as every base64 decoder does.)
func normalizeBase64(t *testing.T, doc string) string {
	var v any
	require.NoError(t, json.Unmarshal([]byte(doc), &v))
	fix := map[string]string{
		"jhadf73jhakdlfha723adf": "jhadf73jhakdlfha723adQ==",
		"adaf838jahd748jnaldf":   "adaf838jahd748jnaldf",
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case string:
			if f, ok := fix[x]; ok {
				return f
			}
		}
		return v
	}
	out, err := json.Marshal(walk(v))
	require.NoError(t, err)
	return string(out)
}

func TestSubscribedEventJSON(t *testing.T) {
	ev := schedulerpb.Event{
		Type: schedulerpb.Event_SUBSCRIBED.Enum(),
		Subscribed: &schedulerpb.Event_Subscribed{
			FrameworkID:              mesospb.FrameworkID{Value: "12220-3440-12532-2345"},
			HeartbeatIntervalSeconds: ptr(15.0),
		},
	}
	out, err := codec.MarshalJSON(&ev)
	require.NoError(t, err)
	assert.Equal(t, `{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"12220-3440-12532-2345"},"heartbeat_interval_seconds":15}}`, string(out))
}

func TestJSONScalarForms(t *testing.T) {
	st := mesospb.TaskStatus{
		TaskID:    mesospb.TaskID{Value: "t"},
		State:     mesospb.TASK_RUNNING.Enum(),
		Timestamp: ptr(1700000000.25),
		UUID:      []byte{0, 1, 2, 250},
		Healthy:   ptr(true),
		Reason:    mesospb.TaskStatus_REASON_RECONCILIATION.Enum(),
	}
	out, err := codec.MarshalJSON(&st)
	require.NoError(t, err)
	assert.JSONEq(t, `{"task_id":{"value":"t"},"state":"TASK_RUNNING","timestamp":1700000000.25,
		"uuid":"AAEC+g==","healthy":true,"reason":"REASON_RECONCILIATION"}`, string(out))

	// 64-bit integers: numbers on output, numbers or strings on input.
	ti := mesospb.TimeInfo{Nanoseconds: 1 << 62}
	out, err = codec.MarshalJSON(&ti)
	require.NoError(t, err)
	assert.Equal(t, `{"nanoseconds":4611686018427387904}`, string(out))
	for _, in := range []string{`{"nanoseconds":4611686018427387904}`, `{"nanoseconds":"4611686018427387904"}`} {
		var got mesospb.TimeInfo
		require.NoError(t, codec.UnmarshalJSON([]byte(in), &got), in)
		assert.Equal(t, ti, got)
	}

	// Enums by number are accepted too.
	var st2 mesospb.TaskStatus
	require.NoError(t, codec.UnmarshalJSON([]byte(`{"task_id":{"value":"t"},"state":1}`), &st2))
	assert.Equal(t, mesospb.TASK_RUNNING, st2.GetState())

	// Strings that need escaping survive.
	fi := mesospb.FrameworkInfo{User: "a\"b\\c\n\x01é", Name: "n"}
	out, err = codec.MarshalJSON(&fi)
	require.NoError(t, err)
	var back mesospb.FrameworkInfo
	require.NoError(t, codec.UnmarshalJSON(out, &back))
	assert.Equal(t, fi.User, back.User)
}

func TestJSONDefaultsAndPresence(t *testing.T) {
	var f mesospb.Filters
	require.NoError(t, codec.UnmarshalJSON([]byte(`{}`), &f))
	assert.Nil(t, f.RefuseSeconds, "absent stays absent")
	assert.Equal(t, 5.0, f.GetRefuseSeconds(), "the declared default holds")
	out, err := codec.MarshalJSON(&f)
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(out))

	require.NoError(t, codec.UnmarshalJSON([]byte(`{"refuse_seconds":0}`), &f))
	require.NotNil(t, f.RefuseSeconds, "an explicit zero is kept")
	assert.Equal(t, 0.0, f.GetRefuseSeconds())
}

// TestJSONSkipsWhatItDoesNotKnow: Mesos's parser (stout's protobuf::parse)
// skips keys a message does not have and drops enum names an optional or
// repeated field does not know, so a client built against newer protos
// still talks to it; Apron does the same, and says what it skipped.
func TestJSONSkipsWhatItDoesNotKnow(t *testing.T) {
	in := `{"type":"SUBSCRIBE","colour":1,"subscribe":{"framework_info":{"user":"u","name":"n","colour":{"r":1},` +
		`"capabilities":[{"type":"TELEPATHY"},{"type":"MULTI_ROLE"}],"roles":["a"]},"future_field":[1,2]}}`
	var call schedulerpb.Call
	var skipped []string
	require.NoError(t, codec.UnmarshalJSONReporting([]byte(in), &call, func(p string) { skipped = append(skipped, p) }))
	fi := call.GetSubscribe().FrameworkInfo
	assert.Equal(t, "n", fi.Name)
	assert.Equal(t, []string{"a"}, fi.Roles)
	require.Len(t, fi.Capabilities, 2, "the unknown capability type is dropped, the element kept as proto2 does")
	assert.Nil(t, fi.Capabilities[0].Type)
	assert.Equal(t, mesospb.FrameworkInfo_Capability_MULTI_ROLE, fi.Capabilities[1].GetType())
	assert.ElementsMatch(t, []string{"colour", "subscribe.future_field", "subscribe.framework_info.colour",
		`subscribe.framework_info.capabilities[0].type="TELEPATHY"`}, skipped)

	// An unknown call type leaves the type unset, which handlers refuse
	// as "expecting 'type' to be present", as Mesos does.
	require.NoError(t, codec.UnmarshalJSON([]byte(`{"type":"SUBSCRIBEX"}`), &call))
	assert.Nil(t, call.Type)
	// Nor does the codec interface refuse them.
	require.NoError(t, codec.JSON.Unmarshal([]byte(`{"type":"SUBSCRIBE","colour":1}`), &call))
	assert.Equal(t, schedulerpb.Call_SUBSCRIBE, call.GetType())
}

func TestJSONErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u"}}}`, `missing required field "name" in mesos.v1.FrameworkInfo`},
		{`{"type":"SUBSCRIBE","subscribe":{}}`, `missing required field "framework_info"`},
		{`{"type":"ACCEPT","accept":{"offer_ids":[],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t"},"agent_id":{"value":"a"},"resources":[{"name":"cpus","type":"SCALARX"}]}]}}]}}`,
			`field "accept.operations[0].launch.task_infos[0].resources[0].type": unknown enum value "SCALARX"`},
		{`{"type":"DECLINE","decline":{"offer_ids":[{"value":"o"}],"filters":{"refuse_seconds":"soon"}}}`, `field "decline.filters.refuse_seconds": want a number`},
		{`{"type":"DECLINE","decline":{"offer_ids":{"value":"o"}}}`, `field "decline.offer_ids": want a JSON array`},
		{`{"type":"DECLINE","decline":{"offer_ids":[{"value":7}]}}`, `field "decline.offer_ids[0].value": want a string`},
		{`{"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"!!"}}`, `field "acknowledge.uuid": bad base64`},
		{`[1,2]`, `want a JSON object for mesos.v1.scheduler.Call`},
		{`{"type":"SUBSCRIBE"`, `unexpected end of JSON input`},
	} {
		var call schedulerpb.Call
		err := codec.UnmarshalJSON([]byte(tc.in), &call)
		require.Error(t, err, tc.in)
		assert.ErrorIs(t, err, codec.ErrInvalid, tc.in)
		assert.Contains(t, err.Error(), tc.want, tc.in)
	}

	var ti mesospb.TimeInfo
	for _, in := range []string{`{"nanoseconds":1.5}`, `{"nanoseconds":9223372036854775808}`, `{"nanoseconds":true}`} {
		assert.ErrorIs(t, codec.UnmarshalJSON([]byte(in), &ti), codec.ErrInvalid, in)
	}
	var r mesospb.Value_Range
	assert.ErrorIs(t, codec.UnmarshalJSON([]byte(`{"begin":-1,"end":2}`), &r), codec.ErrInvalid, "negative into uint64")
}

func TestForMediaType(t *testing.T) {
	for in, want := range map[string]codec.Codec{
		"":                                  codec.JSON,
		"application/json":                  codec.JSON,
		"application/json; charset=utf-8":   codec.JSON,
		"application/x-protobuf":            codec.Protobuf,
		"*/*":                               codec.JSON,
		"text/html, application/x-protobuf": codec.Protobuf,
	} {
		got, err := codec.ForMediaType(in)
		require.NoError(t, err, in)
		assert.Equal(t, want.MediaType(), got.MediaType(), in)
	}
	_, err := codec.ForMediaType("text/plain")
	assert.ErrorIs(t, err, codec.ErrUnsupportedMediaType)
}

func TestProtobufErrors(t *testing.T) {
	var call schedulerpb.Call
	assert.ErrorIs(t, codec.Protobuf.Unmarshal([]byte{0xff, 0xff}, &call), codec.ErrInvalid)
	// A SUBSCRIBE whose framework_info lacks its required fields.
	assert.ErrorIs(t, codec.Protobuf.Unmarshal([]byte{0x1a, 0x02, 0x0a, 0x00}, &call), codec.ErrInvalid)
}

func TestJSONMapsAndOneofs(t *testing.T) {
	// FrameworkInfo.offer_filters is a map of messages.
	in := `{"user":"u","name":"n","offer_filters":{"web":{"min_allocatable_resources":{"quantities":[{"quantities":{"cpus":{"value":1.5}}}]}}}}`
	var fi mesospb.FrameworkInfo
	require.NoError(t, codec.UnmarshalJSON([]byte(in), &fi))
	require.Contains(t, fi.OfferFilters, "web")
	out, err := codec.MarshalJSON(&fi)
	require.NoError(t, err)
	assert.JSONEq(t, in, string(out))

	// A oneof: a CSI volume capability is either block or mount.
	var vc mesospb.Volume_Source_CSIVolume_VolumeCapability
	in = `{"mount":{"fs_type":"ext4"},"access_mode":{"mode":"SINGLE_NODE_WRITER"}}`
	require.NoError(t, codec.UnmarshalJSON([]byte(in), &vc))
	require.NotNil(t, vc.GetMount())
	assert.Equal(t, "ext4", vc.GetMount().GetFsType())
	out, err = codec.MarshalJSON(&vc)
	require.NoError(t, err)
	assert.JSONEq(t, in, string(out))

	err = codec.UnmarshalJSON([]byte(`{"mount":{},"block":{},"access_mode":{"mode":"SINGLE_NODE_WRITER"}}`), &vc)
	assert.ErrorIs(t, err, codec.ErrInvalid)
	assert.Contains(t, err.Error(), "another member of its oneof")

	// Map keys are checked like any value.
	err = codec.UnmarshalJSON([]byte(`{"user":"u","name":"n","offer_filters":{"web":7}}`), &fi)
	assert.ErrorIs(t, err, codec.ErrInvalid)
	assert.Contains(t, err.Error(), `field "offer_filters[web]"`)
}

func TestJSONNonFiniteFloats(t *testing.T) {
	f := mesospb.Filters{RefuseSeconds: ptr(math.Inf(1))}
	out, err := codec.MarshalJSON(&f)
	require.NoError(t, err)
	assert.Equal(t, `{"refuse_seconds":"Infinity"}`, string(out))
	var back mesospb.Filters
	require.NoError(t, codec.UnmarshalJSON(out, &back))
	assert.True(t, math.IsInf(back.GetRefuseSeconds(), 1))
}

// WriteJSON writes what MarshalJSON returns, in chunks for a large
// message, and stops at the writer's first error.
func TestWriteJSON(t *testing.T) {
	big := &schedulerpb.Call{Type: schedulerpb.Call_ACKNOWLEDGE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{}}
	for i := range 5000 {
		big.Reconcile.Tasks = append(big.Reconcile.Tasks, schedulerpb.Call_Reconcile_Task{
			TaskID:  mesospb.TaskID{Value: fmt.Sprintf("task-%d \"quoted\" \u00e9", i)},
			AgentID: &mesospb.AgentID{Value: "agent"},
		})
	}
	small := &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}
	for _, m := range []*schedulerpb.Call{small, big} {
		want, err := codec.MarshalJSON(m)
		require.NoError(t, err)
		var w chunks
		require.NoError(t, codec.WriteJSON(&w, m))
		assert.Equal(t, string(want), string(bytes.Join(w, nil)))
		if m == big {
			assert.Greater(t, len(w), 1, "a large message is written in pieces")
			for _, c := range w {
				assert.Less(t, len(c), 80<<10, "each piece is bounded")
			}
		}
	}

	boom := errors.New("boom")
	w := failing{err: boom}
	assert.ErrorIs(t, codec.WriteJSON(&w, big), boom)
	assert.Equal(t, 1, w.calls, "nothing is written after the first error")
	assert.Error(t, codec.WriteJSON(&w, nil))
}

// chunks records each Write.
type chunks [][]byte

func (c *chunks) Write(b []byte) (int, error) {
	*c = append(*c, bytes.Clone(b))
	return len(b), nil
}

// failing fails every Write.
type failing struct {
	err   error
	calls int
}

func (f *failing) Write([]byte) (int, error) { f.calls++; return 0, f.err }

package codec_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// FuzzJSONCall feeds arbitrary JSON to the scheduler Call decoder, the first
// thing every byte from a framework meets. It must never panic; a Call it
// accepts must encode and decode again to the same Call.
func FuzzJSONCall(f *testing.F) {
	for _, doc := range schedulerDocCalls {
		f.Add([]byte(doc))
	}
	f.Add([]byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","offer_filters":{"a":{}}}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var call schedulerpb.Call
		if codec.UnmarshalJSON(in, &call) != nil {
			return
		}
		out, err := codec.MarshalJSON(&call)
		require.NoError(t, err)
		var again schedulerpb.Call
		require.NoError(t, codec.UnmarshalJSON(out, &again), "re-decoding %s", out)
		out2, err := codec.MarshalJSON(&again)
		require.NoError(t, err)
		require.Equal(t, string(out), string(out2))
	})
}

// FuzzProtobufCall does the same for protobuf bodies.
func FuzzProtobufCall(f *testing.F) {
	for _, doc := range schedulerDocCalls {
		var call schedulerpb.Call
		if codec.UnmarshalJSON([]byte(doc), &call) == nil {
			b, _ := codec.Protobuf.Marshal(&call)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var call schedulerpb.Call
		if codec.Protobuf.Unmarshal(in, &call) != nil {
			return
		}
		out, err := codec.Protobuf.Marshal(&call)
		require.NoError(t, err)
		var again schedulerpb.Call
		require.NoError(t, codec.Protobuf.Unmarshal(out, &again))
		out2, err := codec.Protobuf.Marshal(&again)
		require.NoError(t, err)
		require.Equal(t, out, out2)
		// Whatever protobuf accepts, JSON must be able to carry.
		js, err := codec.MarshalJSON(&call)
		require.NoError(t, err)
		var fromJSON schedulerpb.Call
		require.NoError(t, codec.UnmarshalJSON(js, &fromJSON), "JSON %s", js)
	})
}

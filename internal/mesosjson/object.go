package mesosjson

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
)

// Object is a JSON object whose fields keep the order they were set in, as
// Mesos's ObjectWriter writes them: for documents written field by field
// and for objects whose keys are data (attributes, resources).
type Object []Field

// Field is one field of an Object.
type Field struct {
	Key   string
	Value any
}

// Set appends the field key.
func (o *Object) Set(key string, v any) { *o = append(*o, Field{key, v}) }

// MarshalJSON writes the fields in order.
func (o Object) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// Double is a JSON number Mesos writes from a C++ double: rapidjson keeps
// a ".0" on whole numbers ("cpus": 1.0), which a reader decoding into an
// integer would refuse, so it matters which fields are doubles.
type Double float64

// MarshalJSON writes d as rapidjson writes a double. NaN and infinities,
// which JSON cannot hold, are written as null.
func (d Double) MarshalJSON() ([]byte, error) {
	f := float64(d)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(nil, f, 'e', -1, 64), nil
	}
	b := strconv.AppendFloat(nil, f, 'f', -1, 64)
	if !bytes.ContainsRune(b, '.') {
		b = append(b, ".0"...)
	}
	return b, nil
}

// Doubles is m with its values as Doubles.
func Doubles[V ~float64](m map[string]V) map[string]Double {
	out := make(map[string]Double, len(m))
	for k, v := range m {
		out[k] = Double(v)
	}
	return out
}

// Proto is a message as stout's JSON::Protobuf writes it, which Mesos
// embeds in its model for the parts it does not write by hand (labels,
// container, discovery, ...): nil (the field left out) for a nil message.
func Proto[T any, PT interface {
	*T
	proto.Message
}](m *T) json.RawMessage {
	if m == nil {
		return nil
	}
	b, err := codec.MarshalJSON(PT(m))
	if err != nil {
		return json.RawMessage("{}") // cannot happen for a generated message
	}
	return b
}

// Protos is Proto of each message of a repeated field.
func Protos[T any, PT interface {
	*T
	proto.Message
}](ms []T) []json.RawMessage {
	out := make([]json.RawMessage, len(ms))
	for i := range ms {
		out[i] = Proto[T, PT](&ms[i])
	}
	return out
}

// Package codec encodes and decodes Apron's wire messages the way an Apache
// Mesos master does, in the two media types of the Mesos v1 HTTP APIs:
// application/x-protobuf (the generated marshalers) and application/json
// (proto field names, enums as their names, bytes as base64, 64-bit integers
// as JSON numbers; on input integers may also be strings, fields and enum
// names the message does not know are skipped as Mesos skips them, and
// missing required fields are errors that name the field).
//
// HTTP handlers pick a codec from a Content-Type or Accept header with
// ForMediaType; everything else can call MarshalJSON and UnmarshalJSON.
package codec

import (
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/gogo/protobuf/proto"
)

// Media types of the Mesos v1 HTTP APIs.
const (
	MediaTypeProtobuf = "application/x-protobuf"
	MediaTypeJSON     = "application/json"
)

var (
	// ErrUnsupportedMediaType is returned by ForMediaType for a media type
	// that is neither protobuf nor JSON.
	ErrUnsupportedMediaType = errors.New("codec: unsupported media type")
	// ErrInvalid is wrapped by every decoding error caused by the input.
	ErrInvalid = errors.New("codec: invalid message")
)

// A Codec encodes and decodes messages in one media type.
type Codec interface {
	// MediaType is the Content-Type this codec writes.
	MediaType() string
	// Marshal encodes m.
	Marshal(m proto.Message) ([]byte, error)
	// Unmarshal decodes data into m, which it resets first. Errors caused by
	// data wrap ErrInvalid.
	Unmarshal(data []byte, m proto.Message) error
}

// The two codecs.
var (
	Protobuf Codec = protobufCodec{}
	JSON     Codec = jsonCodec{}
)

// ForMediaType returns the codec for a Content-Type or Accept value such as
// "application/json; charset=utf-8". An empty value or "*/*" means JSON, the
// Mesos default. An Accept header listing several types picks the first
// supported one.
func ForMediaType(value string) (Codec, error) {
	if strings.TrimSpace(value) == "" {
		return JSON, nil
	}
	for _, part := range strings.Split(value, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case MediaTypeProtobuf:
			return Protobuf, nil
		case MediaTypeJSON, "*/*", "application/*":
			return JSON, nil
		}
	}
	return nil, fmt.Errorf("%w: %q (want %s or %s)", ErrUnsupportedMediaType, value, MediaTypeProtobuf, MediaTypeJSON)
}

type protobufCodec struct{}

func (protobufCodec) MediaType() string { return MediaTypeProtobuf }

func (protobufCodec) Marshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

func (protobufCodec) Unmarshal(data []byte, m proto.Message) error {
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, proto.MessageName(m), err)
	}
	return nil
}

type jsonCodec struct{}

func (jsonCodec) MediaType() string { return MediaTypeJSON }

func (jsonCodec) Marshal(m proto.Message) ([]byte, error) { return MarshalJSON(m) }

func (jsonCodec) Unmarshal(data []byte, m proto.Message) error { return UnmarshalJSON(data, m) }

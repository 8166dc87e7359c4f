// Command protoc-gen-apron is the protoc plugin that generates Apron's wire
// types in api/v1. It is gogo/protobuf's generator with one policy applied to
// every file, so the .proto files stay free of Go annotations and read like
// the Mesos protos they are compatible with:
//
//   - fast generated Marshal, Unmarshal and Size methods (as protoc-gen-gogofast);
//   - proto2 presence is kept: optional scalars stay pointers and unknown
//     fields are kept in XXX_unrecognized, so a message decoded from a Mesos
//     client's bytes re-encodes to the same bytes;
//   - required fields and repeated messages are plain values where Go's zero
//     value can be one of the field's values (see plainValue);
//   - top-level enum values carry no prefix (mesospb.TASK_RUNNING);
//   - Go initialisms in field names: framework_id becomes FrameworkID.
//
// Run it through `go generate ./api/...` (see api/v1/doc.go).
package main

import (
	"strings"
	"unicode"

	"github.com/gogo/protobuf/gogoproto"
	"github.com/gogo/protobuf/proto"
	"github.com/gogo/protobuf/protoc-gen-gogo/descriptor"
	"github.com/gogo/protobuf/protoc-gen-gogo/generator"
	"github.com/gogo/protobuf/vanity"
	"github.com/gogo/protobuf/vanity/command"
)

func main() {
	req := command.Read()
	files := vanity.FilterFiles(req.GetProtoFile(), vanity.NotGoogleProtobufDescriptorProto)

	vanity.ForEachFile(files, vanity.TurnOnMarshalerAll)
	vanity.ForEachFile(files, vanity.TurnOnSizerAll)
	vanity.ForEachFile(files, vanity.TurnOnUnmarshalerAll)
	vanity.ForEachFile(files, vanity.TurnOffGoUnkeyedAll)
	vanity.ForEachFile(files, vanity.TurnOffGoSizecacheAll)

	// Top-level enum values are unique in their proto package (protoc
	// enforces it), so they need no prefix: mesospb.TASK_RUNNING.
	for _, file := range files {
		for _, e := range file.EnumType {
			vanity.TurnOffGoEnumPrefix(e)
		}
	}

	zeroEnums := enumsWithZero(req.GetProtoFile())
	vanity.ForEachFieldInFilesExcludingExtensions(files, func(f *descriptor.FieldDescriptorProto) {
		if plainValue(f, zeroEnums) {
			vanity.TurnOffNullable(f)
		}
		if name := goName(f.GetName()); name != generator.CamelCase(f.GetName()) {
			if f.Options == nil {
				f.Options = &descriptor.FieldOptions{}
			}
			if err := proto.SetExtension(f.Options, gogoproto.E_Customname, &name); err != nil {
				panic(err) // only a broken gogoproto descriptor can fail here
			}
		}
	})

	command.Write(command.Generate(req))
}

// plainValue reports whether a field can be a plain Go value rather than a
// pointer without losing anything: a repeated message, or a required field
// whose Go zero value is one of its values. A required field with a declared
// default stays a pointer (gogo allows no default on a plain value), and so
// does a required enum without a zero value (TaskState starts at 6); so do
// bytes, whose nil slice already tells absence.
func plainValue(f *descriptor.FieldDescriptorProto, zeroEnums map[string]bool) bool {
	switch f.GetLabel() {
	case descriptor.FieldDescriptorProto_LABEL_REPEATED:
		return f.IsMessage()
	case descriptor.FieldDescriptorProto_LABEL_REQUIRED:
		if f.IsBytes() || f.DefaultValue != nil {
			return false
		}
		return !f.IsEnum() || zeroEnums[f.GetTypeName()]
	}
	return false
}

// enumsWithZero returns the fully qualified names (".mesos.v1.Value.Type")
// of the enums, in every file of the request, whose first value is 0.
func enumsWithZero(files []*descriptor.FileDescriptorProto) map[string]bool {
	zero := map[string]bool{}
	var walk func(prefix string, enums []*descriptor.EnumDescriptorProto, msgs []*descriptor.DescriptorProto)
	walk = func(prefix string, enums []*descriptor.EnumDescriptorProto, msgs []*descriptor.DescriptorProto) {
		for _, e := range enums {
			if len(e.Value) > 0 && e.Value[0].GetNumber() == 0 {
				zero[prefix+"."+e.GetName()] = true
			}
		}
		for _, m := range msgs {
			walk(prefix+"."+m.GetName(), m.EnumType, m.NestedType)
		}
	}
	for _, f := range files {
		walk("."+f.GetPackage(), f.EnumType, f.MessageType)
	}
	return zero
}

// initialisms are the words Go spells in capitals (Effective Go, golint).
var initialisms = map[string]string{
	"id": "ID", "ids": "IDs", "url": "URL", "uri": "URI", "uris": "URIs",
	"ip": "IP", "http": "HTTP", "https": "HTTPS", "tcp": "TCP", "udp": "UDP",
	"cpu": "CPU", "ttl": "TTL", "io": "IO", "tty": "TTY", "uuid": "UUID", "json": "JSON", "tls": "TLS",
}

// goName is the name gogo would give a snake_case field, with Go initialisms.
func goName(proto string) string {
	var b strings.Builder
	for _, w := range strings.Split(proto, "_") {
		if up, ok := initialisms[strings.ToLower(w)]; ok {
			b.WriteString(up)
			continue
		}
		b.WriteString(capitalize(w))
	}
	return b.String()
}

func capitalize(w string) string {
	if w == "" {
		return ""
	}
	r := []rune(w)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

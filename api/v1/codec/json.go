package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gogo/protobuf/proto"
)

// MarshalJSON encodes m as a Mesos master writes JSON: fields in field-number
// order under their proto names, unset optional fields left out, enums by
// name, bytes in standard base64, 64-bit integers as numbers.
func MarshalJSON(m proto.Message) ([]byte, error) {
	p, v, err := encodePlan(m)
	if err != nil {
		return nil, err
	}
	return p.appendJSON(make([]byte, 0, 256), v, nil)
}

// encodePlan returns the plan of m's message type and the message.
func encodePlan(m proto.Message) (*plan, reflect.Value, error) {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, reflect.Value{}, fmt.Errorf("codec: cannot encode %T as JSON", m)
	}
	p, err := planOf(v.Elem().Type())
	return p, v.Elem(), err
}

// jsonChunk is about how much WriteJSON holds before it writes.
const jsonChunk = 64 << 10

// WriteJSON writes m to w as MarshalJSON encodes it, in pieces of about
// 64 KB, so that a large answer (GET_STATE of 100,000 tasks is over
// 100 MB of JSON) is never held whole in memory, nor copied as a buffer
// grows. It returns w's first error; an encoding error comes before
// anything is written, as it can only come from a type the codec cannot
// encode.
func WriteJSON(w io.Writer, m proto.Message) error {
	p, v, err := encodePlan(m)
	if err != nil {
		return err
	}
	o := &jsonOut{w: w}
	b, err := p.appendJSON(make([]byte, 0, jsonChunk+jsonChunk/4), v, o)
	if err != nil {
		return err
	}
	_, err = o.flush(b)
	return err
}

// jsonOut is where WriteJSON's encoding goes, a chunk at a time.
type jsonOut struct {
	w   io.Writer
	err error
}

// flush writes b out and returns it emptied, to append the next chunk
// to; after a failed write it keeps failing.
func (o *jsonOut) flush(b []byte) ([]byte, error) {
	if o.err == nil {
		_, o.err = o.w.Write(b)
	}
	return b[:0], o.err
}

// UnmarshalJSON decodes JSON into m, which it resets first, as a Mesos
// master parses JSON (stout's protobuf::parse): field names are the proto
// names (lowerCamelCase aliases are accepted too); a field the message does
// not have is skipped, and so is an enum name it does not know unless the
// field is required, so a client built against newer protos still talks to
// it. A value of the wrong type, an unknown name in a required enum or a
// missing required field is an error wrapping ErrInvalid that names the
// field.
func UnmarshalJSON(data []byte, m proto.Message) error {
	return UnmarshalJSONReporting(data, m, nil)
}

// UnmarshalJSONReporting is UnmarshalJSON that calls ignored with the path
// of each field or enum value it skipped (for a debug log); ignored may be
// nil.
func UnmarshalJSONReporting(data []byte, m proto.Message, ignored func(path string)) error {
	if ignored == nil {
		ignored = func(string) {}
	}
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("codec: cannot decode JSON into %T", m)
	}
	p, err := planOf(v.Elem().Type())
	if err != nil {
		return err
	}
	m.Reset()
	return p.decode(data, v.Elem(), "", ignored)
}

// kind is what a field holds, after its pointer or slice is taken off.
type kind uint8

const (
	kindBool kind = iota
	kindInt32
	kindInt64
	kindUint32
	kindUint64
	kindFloat32
	kindFloat64
	kindString
	kindBytes
	kindEnum
	kindMessage
	kindMap
)

type field struct {
	name     string // proto field name
	index    int    // index in the Go struct
	kind     kind
	required bool
	repeated bool
	pointer  bool                  // *T, or []*T for a repeated message
	enum     map[int32]string      // kindEnum: value -> name
	enumVals map[string]int32      // kindEnum: name -> value
	elem     reflect.Type          // the Go type after the pointer or slice
	msg      func() (*plan, error) // kindMessage
	key, val *field                // kindMap
	// A member of a oneof lives in a wrapper struct held by an interface
	// field: index is that interface field, wrapper the wrapper's type.
	wrapper reflect.Type
}

type plan struct {
	name     string // full proto name, for errors
	fields   []field
	byName   map[string]int
	required []int
}

var plans sync.Map // reflect.Type -> *plan or error

func planOf(t reflect.Type) (*plan, error) {
	if p, ok := plans.Load(t); ok {
		if err, ok := p.(error); ok {
			return nil, err
		}
		return p.(*plan), nil
	}
	p, err := buildPlan(t)
	if err != nil {
		plans.Store(t, err)
		return nil, err
	}
	actual, _ := plans.LoadOrStore(t, p)
	return actual.(*plan), nil
}

func buildPlan(t reflect.Type) (*plan, error) {
	p := &plan{byName: map[string]int{}}
	if m, ok := reflect.New(t).Interface().(proto.Message); ok {
		p.name = proto.MessageName(m)
	}
	if p.name == "" {
		p.name = t.String()
	}
	add := func(f field, camel string) {
		p.byName[f.name] = len(p.fields)
		if camel != "" && camel != f.name {
			p.byName[camel] = len(p.fields)
		}
		if f.required {
			p.required = append(p.required, len(p.fields))
		}
		p.fields = append(p.fields, f)
	}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if _, ok := sf.Tag.Lookup("protobuf_oneof"); ok {
			members, err := oneofMembers(t, i)
			if err != nil {
				return nil, fmt.Errorf("codec: %s.%s: %w", p.name, sf.Name, err)
			}
			for _, m := range members {
				add(m.field, m.camel)
			}
			continue
		}
		tag, ok := sf.Tag.Lookup("protobuf")
		if !ok {
			continue // XXX_unrecognized and friends
		}
		f, camel, err := parseField(sf.Type, tag, sf.Tag)
		if err != nil {
			return nil, fmt.Errorf("codec: %s.%s: %w", p.name, sf.Name, err)
		}
		f.index = i
		add(f, camel)
	}
	return p, nil
}

type oneofMember struct {
	field field
	camel string
}

// oneofMembers lists the fields of the oneof held by interface field i of
// message type t, from the wrapper types gogo generates for it.
func oneofMembers(t reflect.Type, i int) ([]oneofMember, error) {
	w, ok := reflect.New(t).Interface().(interface{ XXX_OneofWrappers() []interface{} })
	if !ok {
		return nil, fmt.Errorf("oneof without wrappers")
	}
	iface := t.Field(i).Type
	var members []oneofMember
	for _, wrapper := range w.XXX_OneofWrappers() {
		wt := reflect.TypeOf(wrapper)
		if !wt.Implements(iface) {
			continue // a member of another oneof of the same message
		}
		inner := wt.Elem().Field(0)
		f, camel, err := parseField(inner.Type, inner.Tag.Get("protobuf"), inner.Tag)
		if err != nil {
			return nil, err
		}
		f.index, f.wrapper = i, wt.Elem()
		members = append(members, oneofMember{f, camel})
	}
	return members, nil
}

func parseField(t reflect.Type, tag string, tags reflect.StructTag) (field, string, error) {
	var f field
	var camel, enumName string
	for i, part := range strings.Split(tag, ",") {
		switch {
		case i == 2:
			f.required = part == "req"
			f.repeated = part == "rep"
		case strings.HasPrefix(part, "name="):
			f.name = strings.TrimPrefix(part, "name=")
		case strings.HasPrefix(part, "json="):
			camel = strings.TrimPrefix(part, "json=")
		case strings.HasPrefix(part, "enum="):
			enumName = strings.TrimPrefix(part, "enum=")
		}
	}
	if t.Kind() == reflect.Map {
		key, _, err := parseField(t.Key(), tags.Get("protobuf_key"), "")
		if err != nil {
			return f, "", fmt.Errorf("map key: %w", err)
		}
		val, _, err := parseField(t.Elem(), tags.Get("protobuf_val"), "")
		if err != nil {
			return f, "", fmt.Errorf("map value: %w", err)
		}
		if key.kind == kindFloat32 || key.kind == kindFloat64 || key.kind >= kindBytes {
			return f, "", fmt.Errorf("unsupported map key type %s", t.Key())
		}
		f.kind, f.key, f.val, f.repeated, f.elem = kindMap, &key, &val, false, t
		return f, camel, nil
	}
	if f.repeated {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		f.pointer = true
		t = t.Elem()
	}
	f.elem = t
	switch {
	case enumName != "":
		f.kind = kindEnum
		f.enumVals = proto.EnumValueMap(enumName)
		if f.enumVals == nil {
			return f, "", fmt.Errorf("enum %s is not registered", enumName)
		}
		f.enum = make(map[int32]string, len(f.enumVals))
		for name, v := range f.enumVals {
			f.enum[v] = name
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		f.kind = kindBytes
	case t.Kind() == reflect.Struct:
		f.kind = kindMessage
		f.msg = func() (*plan, error) { return planOf(t) }
	default:
		k, ok := scalarKinds[t.Kind()]
		if !ok {
			return f, "", fmt.Errorf("unsupported Go type %s", t)
		}
		f.kind = k
	}
	return f, camel, nil
}

var scalarKinds = map[reflect.Kind]kind{
	reflect.Bool: kindBool, reflect.Int32: kindInt32, reflect.Int64: kindInt64,
	reflect.Uint32: kindUint32, reflect.Uint64: kindUint64, reflect.Float32: kindFloat32,
	reflect.Float64: kindFloat64, reflect.String: kindString,
}

// --- encoding ---

// appendJSON appends v's encoding to b; with o, it writes b out to o
// whenever a repeated field's element leaves it over jsonChunk long.
func (p *plan) appendJSON(b []byte, v reflect.Value, o *jsonOut) ([]byte, error) {
	b = append(b, '{')
	first := true
	for i := range p.fields {
		f := &p.fields[i]
		fv, ok := f.get(v)
		if !ok || !f.present(fv) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, f.name)
		b = append(b, ':')
		var err error
		if f.repeated {
			b = append(b, '[')
			for j := 0; j < fv.Len(); j++ {
				if j > 0 {
					b = append(b, ',')
				}
				if b, err = f.appendValue(b, fv.Index(j), o); err != nil {
					return nil, err
				}
				if o != nil && len(b) >= jsonChunk {
					if b, err = o.flush(b); err != nil {
						return nil, err
					}
				}
			}
			b = append(b, ']')
		} else if b, err = f.appendValue(b, fv, o); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// get returns the field's value in message v; for a oneof member, false
// when another member (or none) is set.
func (f *field) get(v reflect.Value) (reflect.Value, bool) {
	fv := v.Field(f.index)
	if f.wrapper == nil {
		return fv, true
	}
	if fv.IsNil() || fv.Elem().Type().Elem() != f.wrapper {
		return reflect.Value{}, false
	}
	return fv.Elem().Elem().Field(0), true
}

// set returns where to decode the field's value in message v, setting the
// oneof wrapper that holds it.
func (f *field) set(v reflect.Value) reflect.Value {
	fv := v.Field(f.index)
	if f.wrapper == nil {
		return fv
	}
	w := reflect.New(f.wrapper)
	fv.Set(w)
	return w.Elem().Field(0)
}

// present reports whether a field is written: set optionals, non-empty
// repeated fields, and required fields always.
func (f *field) present(fv reflect.Value) bool {
	switch {
	case f.repeated || f.kind == kindMap:
		return fv.Len() > 0
	case f.wrapper != nil:
		return true // the member that is set, even with a zero value
	case f.pointer:
		return !fv.IsNil()
	case f.kind == kindBytes && !f.required:
		return !fv.IsNil() // optional bytes are nil when unset
	}
	return true
}

func (f *field) appendValue(b []byte, v reflect.Value, o *jsonOut) ([]byte, error) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		v = v.Elem()
	}
	switch f.kind {
	case kindBool:
		return strconv.AppendBool(b, v.Bool()), nil
	case kindInt32, kindInt64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case kindUint32, kindUint64:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case kindFloat32:
		return appendFloat(b, v.Float(), 32)
	case kindFloat64:
		return appendFloat(b, v.Float(), 64)
	case kindString:
		return appendString(b, v.String()), nil
	case kindBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes())
		return append(b, '"'), nil
	case kindEnum:
		if name, ok := f.enum[int32(v.Int())]; ok {
			return appendString(b, name), nil
		}
		return strconv.AppendInt(b, v.Int(), 10), nil // a value this build does not know
	case kindMessage:
		p, err := f.msg()
		if err != nil {
			return nil, err
		}
		return p.appendJSON(b, v, o)
	case kindMap:
		return f.appendMap(b, v, o)
	}
	return nil, fmt.Errorf("codec: field %s: unknown kind", f.name)
}

// appendMap writes a map as a JSON object with its keys sorted, so equal
// messages always encode to equal bytes.
func (f *field) appendMap(b []byte, v reflect.Value, o *jsonOut) ([]byte, error) {
	type entry struct {
		key string
		val reflect.Value
	}
	entries := make([]entry, 0, v.Len())
	for it := v.MapRange(); it.Next(); {
		k := it.Key()
		var key string
		switch f.key.kind {
		case kindString:
			key = k.String()
		case kindBool:
			key = strconv.FormatBool(k.Bool())
		case kindInt32, kindInt64, kindEnum:
			key = strconv.FormatInt(k.Int(), 10)
		default:
			key = strconv.FormatUint(k.Uint(), 10)
		}
		entries = append(entries, entry{key, it.Value()})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	b = append(b, '{')
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.key)
		b = append(b, ':')
		var err error
		if b, err = f.val.appendValue(b, e.val, o); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendFloat(b []byte, x float64, bits int) ([]byte, error) {
	// JSON has no NaN or infinities; write them as the strings the
	// protobuf JSON mapping uses, which UnmarshalJSON reads back, rather
	// than fail a whole stream over one odd value.
	switch {
	case math.IsNaN(x):
		return append(b, `"NaN"`...), nil
	case math.IsInf(x, 1):
		return append(b, `"Infinity"`...), nil
	case math.IsInf(x, -1):
		return append(b, `"-Infinity"`...), nil
	}
	// As encoding/json: plain notation unless the exponent is extreme.
	format := byte('f')
	if abs := math.Abs(x); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, x, format, -1, bits), nil
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// --- decoding ---

func invalid(path, format string, args ...any) error {
	if path == "" {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%w: field %q: %s", ErrInvalid, path, fmt.Sprintf(format, args...))
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

// errSkip is what decodeValue returns for an enum name an optional or
// repeated field does not know: proto2 drops such a value, and so does
// Mesos's parser, so the caller leaves the field (or element) out.
var errSkip = errors.New("codec: value skipped")

func (p *plan) decode(data []byte, v reflect.Value, path string, ignored func(string)) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return invalid(path, "want a JSON object for %s", p.name)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return invalid(path, "%v", err)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same input always gives the same error
	seen := make([]bool, len(p.fields))
	for _, k := range keys {
		i, ok := p.byName[k]
		if !ok {
			ignored(join(path, k))
			continue
		}
		raw := obj[k]
		if isNull(raw) {
			continue
		}
		f := &p.fields[i]
		if f.wrapper != nil && oneofSet(v.Field(f.index)) {
			return invalid(path, "field %q: another member of its oneof is already set", f.name)
		}
		fv := v.Field(f.index)
		saved := reflect.New(fv.Type()).Elem()
		saved.Set(fv)
		err := f.decode(raw, f.set(v), join(path, f.name), ignored)
		if errors.Is(err, errSkip) {
			fv.Set(saved) // a oneof wrapper set for nothing is taken back
			continue
		}
		if err != nil {
			return err
		}
		seen[i] = true
	}
	for _, i := range p.required {
		if !seen[i] {
			return invalid(path, "missing required field %q in %s", p.fields[i].name, p.name)
		}
	}
	return nil
}

func oneofSet(iface reflect.Value) bool { return !iface.IsNil() }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (f *field) decode(raw json.RawMessage, fv reflect.Value, path string, ignored func(string)) error {
	if f.kind == kindMap {
		return f.decodeMap(raw, fv, path, ignored)
	}
	if !f.repeated {
		return f.decodeOne(raw, fv, path, ignored)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return invalid(path, "want a JSON array")
	}
	out := reflect.MakeSlice(fv.Type(), len(items), len(items))
	n := 0
	for i, item := range items {
		if isNull(item) {
			return invalid(fmt.Sprintf("%s[%d]", path, i), "null in a repeated field")
		}
		err := f.decodeOne(item, out.Index(n), fmt.Sprintf("%s[%d]", path, i), ignored)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return errSkip
	}
	fv.Set(out.Slice(0, n))
	return nil
}

func (f *field) decodeMap(raw json.RawMessage, fv reflect.Value, path string, ignored func(string)) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return invalid(path, "want a JSON object")
	}
	m := reflect.MakeMapWithSize(fv.Type(), len(obj))
	for k, item := range obj {
		at := fmt.Sprintf("%s[%s]", path, k)
		key := reflect.New(f.elem.Key()).Elem()
		quoted := strconv.Quote(k)
		if f.key.kind == kindBool {
			quoted = k // true and false are not strings to decodeValue
		}
		if err := f.key.decodeValue(json.RawMessage(quoted), key, at, ignored); err != nil {
			return err
		}
		if isNull(item) {
			return invalid(at, "null map value")
		}
		val := reflect.New(f.elem.Elem()).Elem()
		err := f.val.decodeOne(item, val, at, ignored)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return err
		}
		m.SetMapIndex(key, val)
	}
	fv.Set(m)
	return nil
}

// decodeOne decodes one value into fv, allocating it when fv is a pointer.
func (f *field) decodeOne(raw json.RawMessage, fv reflect.Value, path string, ignored func(string)) error {
	if f.pointer {
		ptr := reflect.New(f.elem)
		if err := f.decodeValue(raw, ptr.Elem(), path, ignored); err != nil {
			return err
		}
		fv.Set(ptr)
		return nil
	}
	return f.decodeValue(raw, fv, path, ignored)
}

func (f *field) decodeValue(raw json.RawMessage, v reflect.Value, path string, ignored func(string)) error {
	raw = bytes.TrimSpace(raw)
	switch f.kind {
	case kindBool:
		switch string(raw) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return invalid(path, "want true or false, got %s", clip(raw))
		}
	case kindInt32, kindInt64:
		n, err := parseInt(raw, bitsOf(f.kind))
		if err != nil {
			return invalid(path, "%v", err)
		}
		v.SetInt(n)
	case kindUint32, kindUint64:
		n, err := parseUint(raw, bitsOf(f.kind))
		if err != nil {
			return invalid(path, "%v", err)
		}
		v.SetUint(n)
	case kindFloat32, kindFloat64:
		x, err := parseFloat(raw, bitsOf(f.kind))
		if err != nil {
			return invalid(path, "%v", err)
		}
		v.SetFloat(x)
	case kindString:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid(path, "want a string, got %s", clip(raw))
		}
		v.SetString(s)
	case kindBytes:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid(path, "want a base64 string, got %s", clip(raw))
		}
		b, err := decodeBase64(s)
		if err != nil {
			return invalid(path, "bad base64: %v", err)
		}
		v.SetBytes(b)
	case kindEnum:
		var name string
		if err := json.Unmarshal(raw, &name); err == nil {
			n, ok := f.enumVals[name]
			if !ok && f.required {
				return invalid(path, "unknown enum value %q", name)
			}
			if !ok {
				ignored(path + "=" + strconv.Quote(name))
				return errSkip
			}
			v.SetInt(int64(n))
			return nil
		}
		n, err := parseInt(raw, 32)
		if err != nil {
			return invalid(path, "want an enum name or number, got %s", clip(raw))
		}
		v.SetInt(n)
	case kindMessage:
		p, err := f.msg()
		if err != nil {
			return err
		}
		return p.decode(raw, v, path, ignored)
	}
	return nil
}

func bitsOf(k kind) int {
	switch k {
	case kindInt32, kindUint32, kindFloat32:
		return 32
	}
	return 64
}

// number returns the text of a JSON number, unquoting a string if needed:
// Mesos writes 64-bit integers as numbers, proto3-style clients as strings.
func number(raw []byte) (string, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("want a number, got %s", clip(raw))
		}
		return strings.TrimSpace(s), nil
	}
	if !json.Valid(raw) {
		return "", fmt.Errorf("want a number, got %s", clip(raw))
	}
	return string(raw), nil
}

func parseInt(raw []byte, bits int) (int64, error) {
	s, err := number(raw)
	if err != nil {
		return 0, err
	}
	if n, err := strconv.ParseInt(s, 10, bits); err == nil {
		return n, nil
	}
	// 1e3 and 5.0 are integers too.
	x, err := strconv.ParseFloat(s, 64)
	limit := math.Ldexp(1, bits-1)
	if err != nil || x != math.Trunc(x) || x < -limit || x >= limit {
		return 0, fmt.Errorf("want an integer of %d bits, got %s", bits, clip(raw))
	}
	return int64(x), nil
}

func parseUint(raw []byte, bits int) (uint64, error) {
	s, err := number(raw)
	if err != nil {
		return 0, err
	}
	if n, err := strconv.ParseUint(s, 10, bits); err == nil {
		return n, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x != math.Trunc(x) || x < 0 || x >= math.Ldexp(1, bits) {
		return 0, fmt.Errorf("want an unsigned integer of %d bits, got %s", bits, clip(raw))
	}
	return uint64(x), nil
}

func parseFloat(raw []byte, bits int) (float64, error) {
	s, err := number(raw)
	if err != nil {
		return 0, err
	}
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	x, err := strconv.ParseFloat(s, bits)
	if err != nil {
		return 0, fmt.Errorf("want a number, got %s", clip(raw))
	}
	return x, nil
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return nil, err
}

// clip shortens a value quoted in an error message.
func clip(raw []byte) string {
	const max = 40
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}

package resources

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Parse reads resources as a Mesos agent's --resources flag gives them, in
// either of Mesos's two forms.
//
// The text form is a ';'-separated list of name:value or name(role):value:
//
//	cpus:4;mem:4096;disk:10000;ports:[31000-32000,35000-36000];cpus(analytics):2;zones:{a,b}
//
// A value is a scalar (a number, rounded to three decimals), ranges in
// brackets or a set in braces. name(role) is a static reservation to role
// ("eng" or a hierarchical "eng/backend"); name(*) and a bare name are
// unreserved. Blank entries are skipped, whitespace around names and roles
// and inside values is ignored, and overlapping ranges are merged, as Mesos
// does.
//
// The JSON form, used when text is a JSON array, is a list of mesos.v1
// Resource messages as Mesos reads them:
//
//	[{"name":"cpus","type":"SCALAR","scalar":{"value":4}},{"name":"mem","type":"SCALAR","scalar":{"value":4096}}]
//
// It can say more than the text form (disk sources, reservation labels),
// but as in Mesos, a flag may not declare persistent volumes, revocable
// resources or dynamic reservations.
//
// Entries of the same kind are added up (cpus:1;cpus:2 is cpus:3), zero
// amounts are dropped, and the result is validated: see Resource.Validate
// and Resources.Validate. Errors wrap ErrInvalid.
func Parse(text string) (Resources, error) {
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "[") && json.Valid([]byte(t)) {
		return parseJSON([]byte(t))
	}
	return parseText(text)
}

// MustParse is Parse for resources known at compile time, as in tests and
// examples; it panics on an error.
func MustParse(text string) Resources {
	rs, err := Parse(text)
	if err != nil {
		panic(err)
	}
	return rs
}

func parseText(text string) (Resources, error) {
	b := newBuilder(0, strings.Count(text, ";")+1)
	for token := range strings.SplitSeq(text, ";") {
		if strings.TrimSpace(token) == "" {
			continue
		}
		head, value, ok := strings.Cut(token, ":")
		if !ok {
			return nil, fmt.Errorf("%w: %q: missing ':' between name and value", ErrInvalid, token)
		}
		if strings.Contains(value, ":") {
			return nil, fmt.Errorf("%w: %q: more than one ':'", ErrInvalid, token)
		}
		name, role, err := parseHead(head)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %s", ErrInvalid, token, err)
		}
		r, err := parseValue(name, value)
		if err != nil {
			return nil, err
		}
		if role != "*" {
			r.Reservations = []Reservation{{Type: Static, Role: role}}
		}
		if err := r.Validate(); err != nil {
			return nil, err
		}
		b.add(&r)
	}
	if err := b.out.validateNameTypes(); err != nil {
		return nil, err
	}
	return b.out, nil
}

// parseHead splits "name" or "name(role)".
func parseHead(head string) (name, role string, err error) {
	open := strings.IndexByte(head, '(')
	if open < 0 {
		if strings.IndexByte(head, ')') >= 0 {
			return "", "", fmt.Errorf("unbalanced parentheses")
		}
		name, role = strings.TrimSpace(head), "*"
	} else {
		rest := strings.TrimSpace(head[open+1:])
		if !strings.HasSuffix(rest, ")") {
			return "", "", fmt.Errorf("expected name(role)")
		}
		role = strings.TrimSpace(rest[:len(rest)-1])
		name = strings.TrimSpace(head[:open])
		if strings.ContainsAny(role, "()") || strings.IndexByte(name, ')') >= 0 {
			return "", "", fmt.Errorf("unbalanced parentheses")
		}
		if role == "" {
			return "", "", fmt.Errorf("empty role in parentheses (use * or leave them out for unreserved)")
		}
	}
	if name == "" {
		return "", "", fmt.Errorf("empty resource name")
	}
	return name, role, nil
}

// parseValue reads a scalar, [ranges] or {set}.
func parseValue(name, text string) (Resource, error) {
	v := stripSpace(text)
	bad := func(format string, args ...any) (Resource, error) {
		return Resource{}, invalidf(name, "value %q: %s", strings.TrimSpace(text), fmt.Sprintf(format, args...))
	}
	if v == "" {
		return bad("empty value")
	}
	switch v[0] {
	case '[':
		if v[len(v)-1] != ']' || len(v) < 2 {
			return bad("ranges must end with ']'")
		}
		inner := v[1 : len(v)-1]
		var rs []Range
		if inner != "" {
			for part := range strings.SplitSeq(inner, ",") {
				b, e, ok := strings.Cut(part, "-")
				if !ok {
					return bad("range %q is not begin-end", part)
				}
				begin, err1 := strconv.ParseUint(b, 10, 64)
				end, err2 := strconv.ParseUint(e, 10, 64)
				if err1 != nil || err2 != nil {
					return bad("range %q is not begin-end with unsigned integers", part)
				}
				if begin > end {
					return bad("inverted range %q", part)
				}
				rs = append(rs, Range{begin, end})
			}
		}
		return Resource{Name: name, Type: TypeRanges, Ranges: RangesOf(rs...)}, nil
	case '{':
		if v[len(v)-1] != '}' || len(v) < 2 {
			return bad("set must end with '}'")
		}
		inner := v[1 : len(v)-1]
		if strings.ContainsAny(inner, "{}") {
			return bad("nested braces")
		}
		var items []string
		for item := range strings.SplitSeq(inner, ",") {
			if item != "" {
				items = append(items, item)
			}
		}
		s := SetOf(items...)
		if len(s) != len(items) {
			return bad("duplicate set items")
		}
		return Resource{Name: name, Type: TypeSet, Set: s}, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && !math.IsInf(f, 0) {
		return bad("not a number, [ranges] or {set}")
	}
	s, err := scalarFromFloat(f)
	if err != nil {
		return Resource{}, invalidf(name, "%s", err)
	}
	return Resource{Name: name, Type: TypeScalar, Scalar: s}, nil
}

// scalarFromFloat converts a scalar read from input, rejecting what no
// resource may hold.
func scalarFromFloat(f float64) (Scalar, error) {
	switch {
	case math.IsNaN(f):
		return 0, fmt.Errorf("scalar is NaN")
	case math.IsInf(f, 0):
		return 0, fmt.Errorf("scalar is infinite")
	case f < 0:
		return 0, fmt.Errorf("negative scalar %g", f)
	case f > MaxScalar.Float64():
		return 0, fmt.Errorf("scalar %g is larger than %s", f, MaxScalar)
	}
	return ScalarOf(f), nil
}

// stripSpace removes ASCII whitespace, which Mesos ignores inside values.
func stripSpace(s string) string {
	if strings.IndexAny(s, " \t\n\r\v\f") < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

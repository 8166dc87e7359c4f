package resources

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseText(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", ""},
		{" ; ;", ""},
		{"cpus:4", "cpus:4"},
		{"cpus:4;mem:4096;disk:10000;ports:[31000-32000,35000-36000];gpus:0;cpus(analytics):2;zones:{a,b}",
			"cpus:4;mem:4096;disk:10000;ports:[31000-32000,35000-36000];cpus(analytics):2;zones:{a,b}"},
		{"cpus(*):1;cpus:2", "cpus:3"},
		{"cpus:1;cpus:2;", "cpus:3"},
		{" cpus ( eng/backend ) : 0.5 ; mem : 1 024 ", "cpus(eng/backend):0.5;mem:1024"},
		{"cpus:0.0001", ""},
		{"cpus:0.0005", "cpus:0.001"},
		{"cpus:1e3", "cpus:1000"},
		{"cpus:.5", "cpus:0.5"},
		{"cpus:0.1;cpus:0.2", "cpus:0.3"},
		{"ports:[1-2,3-4]", "ports:[1-4]"},
		{"ports:[5-10,1-6]", "ports:[1-10]"}, // overlaps merge, as in Mesos
		{"ports:[ 1 - 2 , 7-7 ]", "ports:[1-2,7-7]"},
		{"ports:[]", ""},
		{"zones:{b,a,,c}", "zones:{a,b,c}"},
		{"zones:{}", ""},
		{"zones:{a};zones:{b}", "zones:{a,b}"},
		{"my res:1", "my res:1"},
		{"[x:1", "[x:1"}, // not JSON: a text name
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got.String())
			again, err := Parse(got.String())
			require.NoError(t, err)
			assert.True(t, got.Equal(again), "round trip %q", got)
		})
	}
}

func TestParseStructure(t *testing.T) {
	got := MustParse("cpus(eng):2;ports:[1-3]")
	require.Len(t, got, 2)
	assert.Equal(t, Resource{Name: "cpus", Type: TypeScalar, Scalar: 2000,
		Reservations: []Reservation{{Type: Static, Role: "eng"}}}, got[0])
	assert.Equal(t, Resource{Name: "ports", Type: TypeRanges, Ranges: Ranges{{1, 3}}}, got[1])
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, msg string
	}{
		{"cpus", "missing ':'"},
		{"cpus:1:2", "more than one ':'"},
		{":1", "empty resource name"},
		{"(eng):1", "empty resource name"},
		{"cpus(eng:1", "expected name(role)"},
		{"cpus)eng(:1", "expected name(role)"},
		{"cp)us:1", "unbalanced parentheses"},
		{"cpus(eng)x:1", "expected name(role)"},
		{"cpus((eng)):1", "unbalanced parentheses"},
		{"cpus():1", "empty role"},
		{"cpus(-eng):1", "starting with '-'"},
		{"cpus(eng/):1", "empty path component"},
		{"cpus(a/../b):1", `".." as a path component`},
		{"cpus(eng/*):1", `"*" as a path component`},
		{"cpus(e\tng):1", "whitespace or a control character"},
		{"cpus(.):1", `"." as a path component`},
		{"cpus:", "empty value"},
		{"cpus:-1", "negative scalar"},
		{"cpus:-0.0001", "negative scalar"},
		{"cpus:nan", "NaN"},
		{"cpus:inf", "infinite"},
		{"cpus:1e400", "infinite"},
		{"cpus:1e16", "larger than"},
		{"cpus:abc", "not a number"},
		{"cpus:0x", "not a number"},
		{"ports:[1-2", "must end with ']'"},
		{"ports:[1-2,]", "not begin-end"},
		{"ports:[1]", "not begin-end"},
		{"ports:[a-b]", "unsigned integers"},
		{"ports:[-1-2]", "unsigned integers"},
		{"ports:[5-1]", "inverted range"},
		{"ports:[1-18446744073709551616]", "unsigned integers"},
		{"zones:{a", "must end with '}'"},
		{"zones:{a{b}}", "nested braces"},
		{"zones:{a,a}", "duplicate set items"},
		{"cpus:1;cpus:[1-2]", "used as both SCALAR and RANGES"},
		{"cpus:{a};cpus(eng):1", "used as both SET and SCALAR"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid), "%v wraps ErrInvalid", err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := Parse("cpus(eng/):1")
	assert.True(t, errors.Is(err, ErrInvalidRole))
	assert.Panics(t, func() { MustParse("cpus") })
}

func TestParseJSON(t *testing.T) {
	got, err := Parse(`[
		{"name":"cpus","type":"SCALAR","scalar":{"value":4}},
		{"name":"mem","type":"SCALAR","scalar":{"value":4096.0004},"role":"eng"},
		{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}},
		{"name":"zones","type":"SET","set":{"item":["b","a"]}},
		{"name":"cpus","type":"SCALAR","scalar":{"value":2},
		 "reservations":[{"type":"STATIC","role":"analytics"}]},
		{"name":"disk","type":"SCALAR","scalar":{"value":100},
		 "disk":{"source":{"type":"MOUNT","mount":{"root":"/mnt/a"}}}}
	]`)
	require.NoError(t, err)
	assert.Equal(t, "cpus:4;mem(eng):4096;ports:[31000-32000];zones:{a,b};cpus(analytics):2;disk[MOUNT:/mnt/a]:100", got.String())
	assert.Equal(t, &DiskInfo{Source: &DiskSource{Type: SourceMount, Root: "/mnt/a"}}, got[5].Disk)

	empty, err := Parse(" [] ")
	require.NoError(t, err)
	assert.Empty(t, empty)

	for _, tc := range []struct{ in, msg string }{
		{`[{"name":"cpus","type":"TEXT"}]`, "unsupported type TEXT"},
		{`[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}]`, "negative scalar"},
		{`[{"name":"cpus","type":"SCALAR"}]`, "must have a scalar value"},
		{`[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"ranges":{"range":[]}}]`, "must have a scalar value"},
		{`[{"name":"cpus","type":"BOGUS","scalar":{"value":1}}]`, "JSON resource 0"},
		{`[{"type":"SCALAR","scalar":{"value":1}}]`, "JSON resource 0"},
		{`[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"eng","reservation":{"principal":"p"}}]`,
			"dynamic reservations cannot be declared"},
		{`[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"revocable":{}}]`, "revocable resources cannot"},
		{`[{"name":"disk","type":"SCALAR","scalar":{"value":1},"role":"eng","disk":{"persistence":{"id":"v"}}}]`,
			"persistent volumes cannot"},
		{`[{"name":"cpus","type":"SCALAR","scalar":{"value":1}},{"name":"cpus","type":"SET","set":{"item":["a"]}}]`,
			"used as both"},
		{`[1]`, "JSON resource 0"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid), "%v wraps ErrInvalid", err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

package resources

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateRole(t *testing.T) {
	for _, role := range []string{"*", "eng", "eng/backend", "a/b/c", "a.b", "a-b", "_x", "ünï", "a*b", "..a"} {
		assert.NoError(t, ValidateRole(role), role)
	}
	for _, role := range []string{
		"", ".", "..", "-eng", "eng/-x", "/eng", "eng/", "a//b", "a/./b", "a/../b", "a/*", "*/a",
		"a b", "a\tb", "a\nb", "a\x00b", "a\x7fb", "a\u00a0b", "a\u2028b", "\xff",
	} {
		err := ValidateRole(role)
		require.Error(t, err, "%q", role)
		assert.True(t, errors.Is(err, ErrInvalidRole), "%q", role)
	}
}

func TestResourceValidate(t *testing.T) {
	ok := []Resource{
		NewScalar("cpus", 1),
		NewScalar("cpus", 0),
		{Name: "ports", Type: TypeRanges, Ranges: Ranges{{5, 6}, {1, 2}}}, // unsorted is fine
		{Name: "ports", Type: TypeRanges, Ranges: Ranges{{1, 2}, {3, 4}}}, // adjacent is fine
		reserved(NewScalar("cpus", 1), static("eng"), dynamic("eng/a"), dynamic("eng/a/b")),
		volume("v", 1, true),
		mountDisk("/m", 1),
		{Name: "cpus", Scalar: 1, AllocationRole: "*"},
	}
	for _, r := range ok {
		assert.NoError(t, r.Validate(), "%v", r)
	}

	bad := []struct {
		r   Resource
		msg string
	}{
		{Resource{Type: TypeScalar, Scalar: 1}, "empty name"},
		{Resource{Name: "cpus", Scalar: -1}, "negative scalar -0.001"},
		{Resource{Name: "cpus", Scalar: MaxScalar + 1}, "larger than"},
		{Resource{Name: "x", Type: 3}, "unsupported type Type(3)"},
		{Resource{Name: "x", Type: TypeRanges, Ranges: Ranges{{5, 4}}}, "inverted range [5-4]"},
		{Resource{Name: "x", Type: TypeRanges, Ranges: Ranges{{1, 5}, {5, 6}}}, "overlapping ranges [1-5] and [5-6]"},
		{Resource{Name: "x", Type: TypeRanges, Ranges: Ranges{{10, 20}, {1, 10}}}, "overlapping ranges"},
		{Resource{Name: "x", Type: TypeSet, Set: Set{"b", "a", "b"}}, `duplicate set item "b"`},
		{Resource{Name: "x", Type: TypeSet, Set: Set{"a"}, Scalar: 1}, "SET resource with a scalar"},
		{Resource{Name: "x", Type: TypeScalar, Set: Set{"a"}}, "SCALAR resource with set items"},
		{Resource{Name: "x", Type: TypeScalar, Ranges: Ranges{{1, 1}}}, "SCALAR resource with ranges"},
		{reserved(NewScalar("cpus", 1), Reservation{Role: "eng"}), "unknown type UNKNOWN"},
		{reserved(NewScalar("cpus", 1), static("*")), `role "*" cannot be reserved`},
		{reserved(NewScalar("cpus", 1), static("")), "empty role name"},
		{reserved(NewScalar("cpus", 1), static("eng"), static("eng/a")), "refinements must be DYNAMIC"},
		{reserved(NewScalar("cpus", 1), static("eng"), dynamic("ops")), `"ops" does not refine "eng"`},
		{reserved(NewScalar("cpus", 1), static("eng"), dynamic("eng")), "does not refine"},
		{reserved(NewScalar("cpus", 1), static("eng"), dynamic("engineering")), "does not refine"},
		{Resource{Name: "cpus", Scalar: 1, Disk: &DiskInfo{}}, `not "disk"`},
		{Resource{Name: "disk", Scalar: 1, Disk: &DiskInfo{Source: &DiskSource{}}}, "unknown disk source type 0"},
		{Resource{Name: "disk", Scalar: 1, Disk: &DiskInfo{Persistence: &Persistence{}}}, "empty ID"},
		{Resource{Name: "disk", Scalar: 1, Disk: &DiskInfo{Volume: &Volume{Mode: 7}}}, "unknown volume mode"},
		{Resource{Name: "disk", Scalar: 1, Shared: true}, "only persistent volumes can be shared"},
		{Resource{Name: "cpus", Scalar: 1, AllocationRole: "a b"}, "allocation"},
	}
	for _, tc := range bad {
		err := tc.r.Validate()
		require.Error(t, err, "%v", tc.r)
		assert.True(t, errors.Is(err, ErrInvalid), "%v", err)
		assert.Contains(t, err.Error(), tc.msg)
		if tc.r.Name != "" {
			assert.Contains(t, err.Error(), `"`+tc.r.Name+`"`, "the message names the resource")
		}
	}

	err := reserved(NewScalar("cpus", 1), static("a b")).Validate()
	assert.True(t, errors.Is(err, ErrInvalid))
	assert.True(t, errors.Is(err, ErrInvalidRole))

	many := make(Resources, 0, 40)
	for i := range 20 {
		many = append(many, NewScalar(string(rune('a'+i)), 1))
	}
	require.NoError(t, many.Validate())
	many = append(many, NewSet("c", "x"))
	assert.ErrorContains(t, many.Validate(), "used as both SCALAR and SET")
	assert.ErrorContains(t, Resources{many[2], many[20]}.Validate(), "used as both SCALAR and SET")
	assert.ErrorContains(t, Resources{NewScalar("", 1)}.Validate(), "empty name")
}

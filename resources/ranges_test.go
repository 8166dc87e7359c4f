package resources

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func rs(pairs ...uint64) Ranges {
	var out Ranges
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Range{pairs[i], pairs[i+1]})
	}
	return out
}

func TestRangesOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Ranges
		want Ranges
	}{
		{"empty", nil, nil},
		{"one", rs(1, 2), rs(1, 2)},
		{"adjacent merge", rs(1, 2, 3, 4), rs(1, 4)},
		{"overlap merge", rs(1, 5, 3, 8), rs(1, 8)},
		{"contained", rs(1, 10, 3, 4), rs(1, 10)},
		{"unsorted", rs(10, 12, 1, 2, 5, 6), rs(1, 2, 5, 6, 10, 12)},
		{"gap kept", rs(1, 2, 4, 5), rs(1, 2, 4, 5)},
		{"inverted dropped", rs(5, 4, 1, 1), rs(1, 1)},
		{"max", rs(math.MaxUint64-1, math.MaxUint64, 0, math.MaxUint64-2), rs(0, math.MaxUint64)},
		{"max twice", rs(math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64), rs(math.MaxUint64, math.MaxUint64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RangesOf(tc.in...)
			assert.Equal(t, tc.want, got)
			assert.True(t, got.IsNormalized())
		})
	}
}

func TestRangesArithmetic(t *testing.T) {
	for _, tc := range []struct {
		name            string
		a, b            Ranges
		sum, diff, meet Ranges
		contains        bool
	}{
		{"disjoint", rs(1, 2), rs(5, 6), rs(1, 2, 5, 6), rs(1, 2), nil, false},
		{"adjacent", rs(1, 2), rs(3, 4), rs(1, 4), rs(1, 2), nil, false},
		{"split", rs(1, 10), rs(4, 6), rs(1, 10), rs(1, 3, 7, 10), rs(4, 6), true},
		{"trim left", rs(1, 10), rs(0, 3), rs(0, 10), rs(4, 10), rs(1, 3), false},
		{"trim right", rs(1, 10), rs(8, 20), rs(1, 20), rs(1, 7), rs(8, 10), false},
		{"all", rs(1, 10), rs(1, 10), rs(1, 10), nil, rs(1, 10), true},
		{"over many", rs(1, 2, 4, 5, 7, 8), rs(2, 7), rs(1, 8), rs(1, 1, 8, 8), rs(2, 2, 4, 5, 7, 7), false},
		{"many holes", rs(0, 100), rs(10, 10, 20, 29, 50, 50), rs(0, 100), rs(0, 9, 11, 19, 30, 49, 51, 100), rs(10, 10, 20, 29, 50, 50), true},
		{"empty b", rs(1, 2), nil, rs(1, 2), rs(1, 2), nil, true},
		{"empty a", nil, rs(1, 2), rs(1, 2), nil, nil, false},
		{"edges", rs(0, math.MaxUint64), rs(0, 0, math.MaxUint64, math.MaxUint64), rs(0, math.MaxUint64), rs(1, math.MaxUint64-1), rs(0, 0, math.MaxUint64, math.MaxUint64), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.sum, tc.a.Add(tc.b), "add")
			assert.Equal(t, tc.sum, tc.b.Add(tc.a), "add commutes")
			assert.Equal(t, tc.diff, tc.a.Subtract(tc.b), "subtract")
			assert.Equal(t, tc.meet, tc.a.Intersect(tc.b), "intersect")
			assert.Equal(t, tc.contains, tc.a.Contains(tc.b), "contains")
		})
	}
}

func TestRangesSize(t *testing.T) {
	assert.Equal(t, uint64(0), Ranges(nil).Size())
	assert.Equal(t, uint64(1001), rs(31000, 32000).Size())
	assert.Equal(t, uint64(1002), rs(1, 1, 31000, 32000).Size())
	assert.Equal(t, uint64(math.MaxUint64), rs(0, math.MaxUint64).Size())
	assert.Equal(t, uint64(math.MaxUint64), rs(0, 5, 7, math.MaxUint64).Size())
	assert.Equal(t, uint64(0), Range{5, 4}.Size())
	assert.Equal(t, "[1-2,5-10]", rs(1, 2, 5, 10).String())
	assert.Equal(t, "[]", Ranges(nil).String())
	assert.True(t, rs(1, 2, 5, 10).ContainsValue(7))
	assert.False(t, rs(1, 2, 5, 10).ContainsValue(3))
}

func TestRangesDoNotAlias(t *testing.T) {
	a, b := rs(1, 10, 20, 30), rs(5, 6)
	sum := a.Add(b)
	diff := a.Subtract(b)
	diff[0].Begin = 99
	sum[0].Begin = 99
	assert.Equal(t, rs(1, 10, 20, 30), a)
	assert.Equal(t, rs(5, 6), b)
}

// TestRangesModel checks the range operations against a bitmap on a small
// universe.
func TestRangesModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	random := func() (Ranges, uint64) {
		var bits uint64
		var in []Range
		for range rng.Intn(5) {
			b := uint64(rng.Intn(64))
			e := b + uint64(rng.Intn(8))
			if e > 63 {
				e = 63
			}
			in = append(in, Range{b, e})
			for v := b; v <= e; v++ {
				bits |= 1 << v
			}
		}
		return RangesOf(in...), bits
	}
	toBits := func(r Ranges) uint64 {
		var bits uint64
		for _, x := range r {
			for v := x.Begin; v <= x.End; v++ {
				bits |= 1 << v
			}
		}
		return bits
	}
	for range 5000 {
		a, ab := random()
		b, bb := random()
		require.Equal(t, ab, toBits(a))
		for _, r := range []Ranges{a.Add(b), a.Subtract(b), a.Intersect(b)} {
			require.True(t, r.IsNormalized(), "%v", r)
		}
		require.Equal(t, ab|bb, toBits(a.Add(b)))
		require.Equal(t, ab&^bb, toBits(a.Subtract(b)))
		require.Equal(t, ab&bb, toBits(a.Intersect(b)))
		require.Equal(t, ab&bb == bb, a.Contains(b), "%v contains %v", a, b)
	}
}

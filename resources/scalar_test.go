package resources

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestScalarOf(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want Scalar
	}{
		{0, 0},
		{1, 1000},
		{0.5, 500},
		{0.1 + 0.2, 300},
		{1.0004, 1000},
		{1.0005, 1001}, // 1000.5000000000001 after scaling
		{0.0015, 2},    // halves round away from zero
		{-0.0015, -2},
		{4096, 4096000},
		{math.NaN(), 0},
		{math.Inf(1), math.MaxInt64},
		{math.Inf(-1), math.MinInt64},
		{1e300, math.MaxInt64},
	} {
		assert.Equal(t, tc.want, ScalarOf(tc.in), "ScalarOf(%v)", tc.in)
	}
	assert.Equal(t, Scalar(0), ScalarOf(0.1)+ScalarOf(0.2)-ScalarOf(0.3), "fixed point is exact")
}

func TestScalarString(t *testing.T) {
	for _, tc := range []struct {
		in   Scalar
		want string
	}{
		{0, "0"},
		{500, "0.5"},
		{4000, "4"},
		{1125, "1.125"},
		{1, "0.001"},
		{10, "0.01"},
		{1010, "1.01"},
		{-1, "-0.001"},
		{-2500, "-2.5"},
		{math.MaxInt64, "9223372036854775.807"},
		{math.MinInt64, "-9223372036854775.808"},
	} {
		assert.Equal(t, tc.want, tc.in.String(), "Scalar(%d)", int64(tc.in))
	}
	assert.Equal(t, 0.5, Scalar(500).Float64())
	assert.Equal(t, 0.1, Scalar(100).Float64())
}

func TestScalarSaturates(t *testing.T) {
	assert.Equal(t, Scalar(3), Scalar(1).Add(2))
	assert.Equal(t, Scalar(-1), Scalar(1).Sub(2))
	assert.Equal(t, Scalar(math.MaxInt64), Scalar(math.MaxInt64-1).Add(5))
	assert.Equal(t, Scalar(math.MinInt64), Scalar(math.MinInt64+1).Add(-5))
	assert.Equal(t, Scalar(math.MinInt64), Scalar(math.MinInt64+1).Sub(5))
	assert.Equal(t, Scalar(math.MaxInt64), Scalar(math.MaxInt64-1).Sub(-5))
	assert.Equal(t, Scalar(math.MaxInt64), Scalar(0).Sub(math.MinInt64))
}

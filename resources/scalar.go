package resources

import (
	"math"
	"strconv"
)

// Scalar is a scalar resource quantity in fixed point: it counts thousandths,
// so Scalar(1500) is 1.5. Mesos keeps exactly three decimal digits of every
// scalar resource (it rounds each value it receives to the nearest
// thousandth); holding that fixed-point number as an integer makes sums and
// differences exact, so 0.1+0.2-0.3 is 0 and repeated allocation and
// recovery never drifts.
//
// Add and Sub saturate at the int64 limits instead of wrapping. A single
// valid resource is at most MaxScalar, so saturation can only happen when
// summing absurd amounts over many agents; it keeps such sums ordered.
type Scalar int64

// MaxScalar is the largest scalar value a valid resource may carry: 10^15
// units (a zettabyte of mem or disk in MB). It leaves room to add thousands
// of such values without overflow.
const MaxScalar Scalar = 1_000_000_000_000_000 * 1000

// ScalarOf converts f to fixed point, rounding to the nearest thousandth
// (halves away from zero), as Mesos does. NaN converts to 0 and values
// beyond the int64 range saturate; validation rejects those before any
// conversion of input.
func ScalarOf(f float64) Scalar {
	if math.IsNaN(f) {
		return 0
	}
	v := math.Round(f * 1000)
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	if v <= math.MinInt64 {
		return math.MinInt64
	}
	return Scalar(v)
}

// Float64 returns s as a float64 (the nearest double to s/1000).
func (s Scalar) Float64() float64 { return float64(s) / 1000 }

// Add returns s+o, saturating at the int64 limits.
func (s Scalar) Add(o Scalar) Scalar {
	r := s + o
	if (r > s) != (o > 0) {
		if o > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return r
}

// Sub returns s-o, saturating at the int64 limits.
func (s Scalar) Sub(o Scalar) Scalar {
	r := s - o
	if (r < s) != (o > 0) {
		if o > 0 {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return r
}

// String formats s as an exact decimal with no trailing zeros: "4", "0.5",
// "1.125", "-0.001".
func (s Scalar) String() string {
	var buf [32]byte
	return string(s.appendTo(buf[:0]))
}

func (s Scalar) appendTo(b []byte) []byte {
	u := uint64(s)
	if s < 0 {
		b = append(b, '-')
		u = -u // two's complement: correct for MinInt64 too
	}
	b = strconv.AppendUint(b, u/1000, 10)
	frac := u % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

package resources

import (
	"math"
	"slices"
	"strconv"
)

// Range is the inclusive interval [Begin, End] of unsigned integers, such as
// a span of ports. A range with Begin > End is empty.
type Range struct {
	Begin, End uint64
}

// Size is the number of values in r; it saturates at math.MaxUint64 for the
// full range [0, MaxUint64].
func (r Range) Size() uint64 {
	if r.Begin > r.End {
		return 0
	}
	if n := r.End - r.Begin; n != math.MaxUint64 {
		return n + 1
	}
	return math.MaxUint64
}

// Ranges is a set of integers written as ranges. A normalized Ranges, which
// is what every function of this package returns and expects, is sorted by
// Begin and merged: ranges neither overlap nor touch ([1-2] and [3-4] become
// [1-4]), so equal sets have equal Ranges and a range of another Ranges is
// contained in it only if it lies inside one of its ranges.
//
// Methods never modify their receiver or arguments. A result may be one of
// the arguments itself when it equals it (a+nothing is a), so treat Ranges
// as immutable: build new ones rather than assigning to elements.
type Ranges []Range

// RangesOf returns the normalized union of rs: it sorts, merges overlapping
// and adjacent ranges, and drops empty (inverted) ranges.
func RangesOf(rs ...Range) Ranges {
	out := make(Ranges, 0, len(rs))
	for _, r := range rs {
		if r.Begin <= r.End {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	if !slices.IsSortedFunc(out, cmpRange) {
		slices.SortFunc(out, cmpRange)
	}
	return coalesce(out)
}

func cmpRange(a, b Range) int {
	switch {
	case a.Begin < b.Begin:
		return -1
	case a.Begin > b.Begin:
		return 1
	case a.End < b.End:
		return -1
	case a.End > b.End:
		return 1
	}
	return 0
}

// touches reports whether b, which does not begin before a, overlaps a or
// starts right after it.
func touches(a, b Range) bool {
	return a.End == math.MaxUint64 || b.Begin <= a.End+1
}

// coalesce merges a sorted slice in place.
func coalesce(rs Ranges) Ranges {
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if touches(*last, r) {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// IsNormalized reports whether rs is sorted, merged and free of empty ranges.
func (rs Ranges) IsNormalized() bool {
	for i, r := range rs {
		if r.Begin > r.End {
			return false
		}
		if i > 0 && (rs[i-1].End >= r.Begin || touches(rs[i-1], r)) {
			return false
		}
	}
	return true
}

// Size is the number of values in rs, saturating at math.MaxUint64.
func (rs Ranges) Size() uint64 {
	var n uint64
	for _, r := range rs {
		s := r.Size()
		if n+s < n {
			return math.MaxUint64
		}
		n += s
	}
	return n
}

// Empty reports whether rs holds no value.
func (rs Ranges) Empty() bool { return len(rs) == 0 }

// Equal reports whether rs and o hold the same values (both normalized).
func (rs Ranges) Equal(o Ranges) bool { return slices.Equal(rs, o) }

// Add returns the union of rs and o.
func (rs Ranges) Add(o Ranges) Ranges {
	if len(o) == 0 {
		return rs
	}
	if len(rs) == 0 {
		return o
	}
	out := make(Ranges, 0, len(rs)+len(o))
	i, j := 0, 0
	for i < len(rs) || j < len(o) {
		var next Range
		if j >= len(o) || (i < len(rs) && rs[i].Begin <= o[j].Begin) {
			next = rs[i]
			i++
		} else {
			next = o[j]
			j++
		}
		if n := len(out); n > 0 && touches(out[n-1], next) {
			if next.End > out[n-1].End {
				out[n-1].End = next.End
			}
			continue
		}
		out = append(out, next)
	}
	return out
}

// Subtract returns the values of rs that are not in o.
func (rs Ranges) Subtract(o Ranges) Ranges {
	if len(rs) == 0 || len(o) == 0 {
		return rs
	}
	var out Ranges
	changed := false
	j := 0
	for _, r := range rs {
		// Skip the ranges of o wholly before r.
		for j < len(o) && o[j].End < r.Begin {
			j++
		}
		cur := r
		k := j
		for k < len(o) && o[k].Begin <= cur.End {
			changed = true
			if o[k].Begin > cur.Begin {
				if out == nil {
					out = make(Ranges, 0, len(rs)+len(o))
				}
				out = append(out, Range{cur.Begin, o[k].Begin - 1})
			}
			if o[k].End >= cur.End {
				cur.Begin, cur.End = 1, 0 // emptied
				break
			}
			cur.Begin = o[k].End + 1
			k++
		}
		if cur.Begin <= cur.End {
			if out == nil {
				out = make(Ranges, 0, len(rs)+len(o))
			}
			out = append(out, cur)
		}
	}
	if !changed {
		return rs
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Intersect returns the values in both rs and o.
func (rs Ranges) Intersect(o Ranges) Ranges {
	var out Ranges
	i, j := 0, 0
	for i < len(rs) && j < len(o) {
		b := max(rs[i].Begin, o[j].Begin)
		e := min(rs[i].End, o[j].End)
		if b <= e {
			out = append(out, Range{b, e})
		}
		if rs[i].End < o[j].End {
			i++
		} else {
			j++
		}
	}
	return out
}

// Contains reports whether every value of o is in rs.
func (rs Ranges) Contains(o Ranges) bool {
	i := 0
	for _, r := range o {
		for i < len(rs) && rs[i].End < r.Begin {
			i++
		}
		if i == len(rs) || rs[i].Begin > r.Begin || rs[i].End < r.End {
			return false
		}
	}
	return true
}

// ContainsValue reports whether v is in rs.
func (rs Ranges) ContainsValue(v uint64) bool {
	_, found := slices.BinarySearchFunc(rs, v, func(r Range, v uint64) int {
		switch {
		case r.End < v:
			return -1
		case r.Begin > v:
			return 1
		}
		return 0
	})
	return found
}

// String formats rs as Mesos does in its text form: "[31000-32000,35000-35000]".
func (rs Ranges) String() string {
	return string(rs.appendTo(make([]byte, 0, 2+len(rs)*12)))
}

func (rs Ranges) appendTo(b []byte) []byte {
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.Begin, 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, r.End, 10)
	}
	return append(b, ']')
}

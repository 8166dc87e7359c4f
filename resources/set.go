package resources

import (
	"slices"
	"strings"
)

// Set is the value of a set resource: a set of strings. A normalized Set,
// which every function of this package returns and expects, is sorted and
// free of duplicates.
//
// Methods never modify their receiver or arguments; as with Ranges, a
// result may be an argument itself, so treat a Set as immutable.
type Set []string

// SetOf returns the normalized set of items (sorted, duplicates removed).
func SetOf(items ...string) Set {
	if len(items) == 0 {
		return nil
	}
	out := slices.Clone(items)
	slices.Sort(out)
	return Set(slices.Compact(out))
}

// IsNormalized reports whether s is sorted and free of duplicates.
func (s Set) IsNormalized() bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// Empty reports whether s has no item.
func (s Set) Empty() bool { return len(s) == 0 }

// Equal reports whether s and o have the same items (both normalized).
func (s Set) Equal(o Set) bool { return slices.Equal(s, o) }

// Has reports whether item is in s.
func (s Set) Has(item string) bool {
	_, found := slices.BinarySearch(s, item)
	return found
}

// Add returns the union of s and o.
func (s Set) Add(o Set) Set {
	if len(o) == 0 {
		return s
	}
	if len(s) == 0 {
		return o
	}
	out := make(Set, 0, len(s)+len(o))
	i, j := 0, 0
	for i < len(s) && j < len(o) {
		switch c := strings.Compare(s[i], o[j]); {
		case c < 0:
			out = append(out, s[i])
			i++
		case c > 0:
			out = append(out, o[j])
			j++
		default:
			out = append(out, s[i])
			i++
			j++
		}
	}
	out = append(out, s[i:]...)
	return append(out, o[j:]...)
}

// Subtract returns the items of s that are not in o.
func (s Set) Subtract(o Set) Set {
	if len(s) == 0 || len(o) == 0 {
		return s
	}
	var out Set
	j := 0
	for i, item := range s {
		for j < len(o) && o[j] < item {
			j++
		}
		if j < len(o) && o[j] == item {
			if out == nil {
				out = make(Set, i, len(s)-1)
				copy(out, s[:i])
			}
			continue
		}
		if out != nil {
			out = append(out, item)
		}
	}
	if out == nil {
		return s // nothing removed
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Contains reports whether every item of o is in s.
func (s Set) Contains(o Set) bool {
	if len(o) > len(s) {
		return false
	}
	i := 0
	for _, item := range o {
		for i < len(s) && s[i] < item {
			i++
		}
		if i == len(s) || s[i] != item {
			return false
		}
		i++
	}
	return true
}

// String formats s as Mesos does in its text form: "{a,b}".
func (s Set) String() string {
	return string(s.appendTo(nil))
}

func (s Set) appendTo(b []byte) []byte {
	b = append(b, '{')
	for i, item := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	return append(b, '}')
}

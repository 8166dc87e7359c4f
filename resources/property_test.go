package resources

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// gen makes random resources from a small vocabulary, so that random
// values often share names, roles and disks and so exercise merging.
type gen struct {
	r *rand.Rand
	// textOnly restricts it to what the text form can express.
	textOnly bool
}

func (g gen) pick(xs ...string) string { return xs[g.r.Intn(len(xs))] }

func (g gen) resource() Resource {
	var r Resource
	switch name := g.pick("cpus", "mem", "disk", "gpus", "ports", "zones"); name {
	case "ports":
		var in []Range
		for range 1 + g.r.Intn(4) {
			b := uint64(g.r.Intn(200))
			in = append(in, Range{b, b + uint64(g.r.Intn(20))})
		}
		r = NewRanges(name, in...)
	case "zones":
		var items []string
		for range 1 + g.r.Intn(3) {
			items = append(items, g.pick("a", "b", "c", "d", "e"))
		}
		r = NewSet(name, items...)
	default:
		r = Resource{Name: name, Scalar: Scalar(1 + g.r.Intn(100000))}
	}

	switch g.r.Intn(6) {
	case 0, 1, 2: // unreserved
	case 3:
		r.Reservations = []Reservation{static(g.pick("eng", "ops", "eng/web"))}
	case 4:
		if !g.textOnly {
			r.Reservations = []Reservation{{Type: Dynamic, Role: g.pick("eng", "ops"), Principal: g.pick("", "p"),
				Labels: [][]Label{nil, {{"k", "v"}}, {{"a", ""}, {"k", "v"}}}[g.r.Intn(3)]}}
		}
	case 5:
		if !g.textOnly {
			r.Reservations = []Reservation{static("eng"), dynamic(g.pick("eng/web", "eng/db"))}
		}
	}
	if g.textOnly {
		return r
	}
	if g.r.Intn(5) == 0 {
		r.AllocationRole = g.pick("eng", "ops")
	}
	if g.r.Intn(10) == 0 {
		r.ProviderID = "rp1"
	}
	if r.Name == "disk" && g.r.Intn(2) == 0 {
		r.Disk = &DiskInfo{}
		switch g.r.Intn(4) {
		case 0:
			r.Disk.Source = &DiskSource{Type: SourcePath, Root: g.pick("/a", "/b")}
		case 1:
			r.Disk.Source = &DiskSource{Type: SourceMount, Root: g.pick("/m1", "/m2")}
			r.Scalar = 1000 * Scalar(1+g.r.Intn(2))
		default:
			if len(r.Reservations) == 0 {
				r.Reservations = []Reservation{dynamic("eng")}
			}
			r.Disk.Persistence = &Persistence{ID: g.pick("v1", "v2"), Principal: g.pick("", "p")}
			r.Scalar = 1000 * Scalar(1+g.r.Intn(2))
			r.Shared = g.r.Intn(2) == 0
		}
		if g.r.Intn(2) == 0 {
			r.Disk.Volume = &Volume{ContainerPath: g.pick("data", "logs"), Mode: RW}
		}
	} else if g.r.Intn(10) == 0 {
		r.Revocable = true
	}
	return r
}

func (g gen) resources() Resources {
	rs := make([]Resource, g.r.Intn(8))
	for i := range rs {
		rs[i] = g.resource()
	}
	return New(rs...)
}

// subsetOf returns random resources contained in rs.
func (g gen) subsetOf(rs Resources) Resources {
	var out []Resource
	for _, r := range rs {
		if g.r.Intn(3) == 0 {
			continue
		}
		if !r.exclusive() {
			switch r.Type {
			case TypeScalar:
				r.Scalar = Scalar(g.r.Int63n(int64(r.Scalar) + 1))
			case TypeRanges:
				r.Ranges = r.Ranges[:g.r.Intn(len(r.Ranges)+1)]
			case TypeSet:
				r.Set = r.Set[g.r.Intn(len(r.Set)+1):]
			}
		}
		out = append(out, r)
	}
	return New(out...)
}

// disjoint returns b without the range values and set items that any
// resource of a with the same name has, so that a+b-b == a holds.
func disjoint(b, a Resources) Resources {
	out := make([]Resource, 0, len(b))
	for _, r := range b {
		for _, x := range a {
			if x.Name == r.Name {
				r.Ranges = r.Ranges.Subtract(x.Ranges)
				r.Set = r.Set.Subtract(x.Set)
			}
		}
		out = append(out, r)
	}
	return New(out...)
}

func shuffled(g gen, rs Resources) Resources {
	out := rs.Clone()
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func checkNormalized(t *testing.T, rs Resources) {
	t.Helper()
	require.NoError(t, rs.Validate(), "%v", rs)
	for i := range rs {
		r := &rs[i]
		require.False(t, r.IsEmpty(), "empty entry in %v", rs)
		require.True(t, r.Ranges.IsNormalized(), "%v", r)
		require.True(t, r.Set.IsNormalized(), "%v", r)
		for j := range i {
			require.False(t, rs[j].mergeable(r), "unmerged entries in %v", rs)
		}
	}
}

const propertyRuns = 3000

func TestProperties(t *testing.T) {
	g := gen{r: rand.New(rand.NewSource(20240601))}
	for i := range propertyRuns {
		a, b, c := g.resources(), g.resources(), g.resources()
		aCopy, bCopy := a.Clone(), b.Clone()

		sum := a.Add(b)
		checkNormalized(t, sum)
		require.True(t, sum.Contains(a), "run %d: %v + %v contains a", i, a, b)
		require.True(t, sum.Contains(b), "run %d: %v + %v contains b", i, a, b)
		require.True(t, sum.Equal(b.Add(a)), "run %d: add commutes: %v, %v", i, a, b)
		require.True(t, sum.Add(c).Equal(a.Add(b.Add(c))), "run %d: add associates", i)
		require.True(t, sum.Flatten().Equal(a.Flatten().Add(b.Flatten())), "run %d: flatten distributes: %v, %v", i, a, b)
		require.True(t, a.Equal(shuffled(g, a)), "run %d: equal ignores order", i)
		require.True(t, a.Contains(a) && a.Equal(a.Clone()), "run %d", i)

		// a + b - b == a when b brings no range value or set item a has.
		d := disjoint(b, a)
		require.True(t, a.Add(d).Subtract(d).Equal(a), "run %d: %v + %v - b", i, a, d)
		sub, err := a.Add(d).TrySubtract(d)
		require.NoError(t, err)
		require.True(t, sub.Equal(a))
		q, qa, qd := a.Add(d).Quantities(), a.Quantities(), d.Quantities()
		for name, v := range q {
			require.Equal(t, qa[name]+qd[name], v, "run %d: quantities of %s add up", i, name)
		}

		// Subtraction stays within a and never goes negative.
		diff := a.Subtract(b)
		checkNormalized(t, diff)
		require.True(t, a.Contains(diff), "run %d: %v - %v within a", i, a, b)

		// Taking away something a contains, then putting it back.
		s := g.subsetOf(a)
		require.True(t, a.Contains(s), "run %d: %v contains %v", i, a, s)
		rest, err := a.TrySubtract(s)
		require.NoError(t, err)
		checkNormalized(t, rest)
		require.True(t, rest.Add(s).Equal(a), "run %d: %v - %v + s", i, a, s)
		if !s.Empty() && !b.Empty() && !a.Contains(b) {
			_, err := a.TrySubtract(b)
			require.ErrorIs(t, err, ErrInsufficient)
		}

		// The in-place forms agree, and only touch their receiver (ip
		// shares a's Ranges, Sets and Reservations).
		ip := append(Resources(nil), a...)
		ip.AddInPlace(b)
		checkNormalized(t, ip)
		require.True(t, ip.Equal(sum), "run %d: AddInPlace", i)
		ip.SubtractInPlace(c)
		checkNormalized(t, ip)
		require.True(t, ip.Equal(sum.Subtract(c)), "run %d: SubtractInPlace", i)

		// Allocation round trip.
		require.True(t, a.Allocate("eng").Unallocated().Equal(a.Unallocated()), "run %d", i)
		checkNormalized(t, a.Allocate("eng"))

		// Proto round trip.
		back, err := FromProto(a.ToProto())
		require.NoError(t, err, "run %d: %v", i, a)
		require.Equal(t, a, back, "run %d", i)

		require.Equal(t, aCopy, a, "run %d: inputs untouched", i)
		require.Equal(t, bCopy, b, "run %d: inputs untouched", i)
	}
}

func TestTextRoundTripProperty(t *testing.T) {
	g := gen{r: rand.New(rand.NewSource(7)), textOnly: true}
	for i := range propertyRuns {
		a := g.resources()
		back, err := Parse(a.String())
		require.NoError(t, err, "run %d: %q", i, a)
		require.True(t, a.Equal(back), "run %d: %q != %q", i, a, back)
	}
}

// TestLargeResourcesIndexed checks that the indexed merging used for large
// Resources gives what the linear merging gives.
func TestLargeResourcesIndexed(t *testing.T) {
	g := gen{r: rand.New(rand.NewSource(99))}
	linear := func(rs ...Resource) Resources {
		var out Resources
		for i := range rs {
			out = out.insertPtr(&rs[i])
		}
		return out
	}
	for run := range 50 {
		var rs []Resource
		for range 50 + g.r.Intn(400) {
			r := g.resource()
			if r.Disk == nil {
				r.Name += string(rune('a' + g.r.Intn(20))) // more distinct kinds
			}
			rs = append(rs, r)
		}
		want := linear(rs...)
		got := New(rs...)
		require.Greater(t, len(got), indexThreshold, "run %d exercises the index", run)
		require.Equal(t, want, got, "run %d", run)
		checkNormalized(t, got)

		half := len(rs) / 2
		a, b := New(rs[:half]...), New(rs[half:]...)
		require.Equal(t, want, a.Add(b), "run %d", run)
		ip := append(Resources(nil), a...)
		ip.AddInPlace(b)
		require.Equal(t, want, ip, "run %d", run)
		require.True(t, got.Flatten().Equal(a.Flatten().Add(b.Flatten())), "run %d", run)
		back, err := FromProto(got.ToProto())
		require.NoError(t, err)
		require.Equal(t, got, back)
	}
}

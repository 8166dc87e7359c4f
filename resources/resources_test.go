package resources

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func reserved(r Resource, stack ...Reservation) Resource {
	r.Reservations = stack
	return r
}

func static(role string) Reservation { return Reservation{Type: Static, Role: role} }
func dynamic(role string) Reservation {
	return Reservation{Type: Dynamic, Role: role, Principal: "ops"}
}

func volume(id string, mb float64, shared bool) Resource {
	r := NewScalar("disk", mb)
	r.Reservations = []Reservation{dynamic("eng")}
	r.Disk = &DiskInfo{Persistence: &Persistence{ID: id}, Volume: &Volume{ContainerPath: "data", Mode: RW}}
	r.Shared = shared
	return r
}

func mountDisk(root string, mb float64) Resource {
	r := NewScalar("disk", mb)
	r.Disk = &DiskInfo{Source: &DiskSource{Type: SourceMount, Root: root}}
	return r
}

func TestNewNormalizes(t *testing.T) {
	got := New(
		NewScalar("cpus", 1),
		NewScalar("mem", 0), // dropped
		NewScalar("cpus", 2),
		reserved(NewScalar("cpus", 1), static("eng")),
		Resource{Name: "ports", Type: TypeRanges, Ranges: Ranges{{5, 6}, {1, 4}}},
		NewRanges("ports", Range{8, 9}),
		Resource{Name: "zones", Type: TypeSet, Set: Set{"b", "a", "b"}},
		volume("v1", 10, true),
		volume("v1", 10, true), // a second copy
		mountDisk("/m", 100),
		mountDisk("/m", 100),
	)
	require.Len(t, got, 8)
	assert.Equal(t, "cpus:3;cpus(eng):1;ports:[1-6,8-9];zones:{a,b}", got[:4].String())
	assert.Equal(t, 2, got.Count(volume("v1", 10, true)))
	assert.Equal(t, 1, got.Count(NewScalar("cpus", 3)))
	assertNormalized(t, got)
}

func TestAddMerges(t *testing.T) {
	a := MustParse("cpus:1;mem:512;ports:[1-10];zones:{a}")
	b := MustParse("cpus:0.5;mem:512;ports:[11-20,30-40];zones:{b}")
	assert.Equal(t, "cpus:1.5;mem:1024;ports:[1-20,30-40];zones:{a,b}", a.Add(b).String())

	// Different kinds stay apart.
	c := New(
		reserved(NewScalar("cpus", 1), static("eng")),
		reserved(NewScalar("cpus", 1), dynamic("eng")),
		reserved(NewScalar("cpus", 1), static("eng"), dynamic("eng/web")),
		Resource{Name: "cpus", Scalar: 1000, Revocable: true},
		Resource{Name: "cpus", Scalar: 1000, AllocationRole: "eng"},
		Resource{Name: "cpus", Scalar: 1000, ProviderID: "rp"},
	)
	assert.Len(t, c.AddResource(NewScalar("cpus", 1)), 7)
	assert.Len(t, c.AddResource(NewScalar("cpus", 1)).Add(New(NewScalar("mem", 1))), 8)
	assert.Len(t, c.Add(c), 6)
	assert.Equal(t, 12.0, c.Add(c).CPUs())

	// PATH disks merge; mounts, volumes and shared copies do not.
	path := func(mb float64) Resource {
		r := NewScalar("disk", mb)
		r.Disk = &DiskInfo{Source: &DiskSource{Type: SourcePath, Root: "/p"}}
		return r
	}
	assert.Len(t, New(path(1), path(2)), 1)
	assert.Len(t, New(mountDisk("/m", 1), mountDisk("/m", 1)), 2)
	assert.Len(t, New(volume("v", 1, false), volume("v", 1, false)), 2)
	assert.Len(t, New(volume("v", 1, true), volume("v", 1, true)), 2)
	raw := func(id string) Resource {
		r := NewScalar("disk", 5)
		r.Disk = &DiskInfo{Source: &DiskSource{Type: SourceRaw, ID: id, Profile: "fast"}}
		return r
	}
	assert.Len(t, New(raw(""), raw("")), 1)
	assert.Len(t, New(raw("x"), raw("x")), 2)
}

func TestSubtract(t *testing.T) {
	a := MustParse("cpus:4;mem:1024;ports:[1-100];zones:{a,b,c}")
	for _, tc := range []struct{ sub, want string }{
		{"cpus:1", "cpus:3;mem:1024;ports:[1-100];zones:{a,b,c}"},
		{"cpus:4;mem:1024", "ports:[1-100];zones:{a,b,c}"},
		{"cpus:5", "mem:1024;ports:[1-100];zones:{a,b,c}"}, // clamps: removed, never negative
		{"ports:[10-19,50-50]", "cpus:4;mem:1024;ports:[1-9,20-49,51-100];zones:{a,b,c}"},
		{"ports:[90-200]", "cpus:4;mem:1024;ports:[1-89];zones:{a,b,c}"},
		{"zones:{b,x}", "cpus:4;mem:1024;ports:[1-100];zones:{a,c}"},
		{"cpus(eng):1;gpus:1", "cpus:4;mem:1024;ports:[1-100];zones:{a,b,c}"}, // not there: no effect
		{"cpus:4;mem:1024;ports:[1-100];zones:{a,b,c}", ""},
	} {
		got := a.Subtract(MustParse(tc.sub))
		assert.Equal(t, tc.want, got.String(), "minus %s", tc.sub)
		assertNormalized(t, got)
	}

	// Exclusive resources are removed only by an equal one, one copy at a time.
	vols := New(volume("v", 10, true), volume("v", 10, true), mountDisk("/m", 100))
	assert.Len(t, vols.Subtract(New(volume("v", 10, true))), 2)
	assert.Len(t, vols.Subtract(New(volume("v", 10, true), volume("v", 10, true))), 1)
	assert.Len(t, vols.Subtract(New(mountDisk("/m", 50))), 3, "half a mount is not removed")
	assert.Len(t, vols.Subtract(New(mountDisk("/m", 100))), 2)
	assert.Len(t, vols.SubtractResource(volume("v", 10, true)), 2)
}

func TestTrySubtract(t *testing.T) {
	a := MustParse("cpus:4;mem:1024")
	got, err := a.TrySubtract(MustParse("cpus:1"))
	require.NoError(t, err)
	assert.Equal(t, "cpus:3;mem:1024", got.String())

	_, err = a.TrySubtract(MustParse("cpus:4.5;mem:10;gpus:1"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrInsufficient))
	assert.Contains(t, err.Error(), "cpus:0.5;gpus:1")
}

func TestContains(t *testing.T) {
	a := MustParse("cpus:4;mem:1024;ports:[1-10,20-30];zones:{a,b};cpus(eng):2")
	for _, tc := range []struct {
		b    string
		want bool
	}{
		{"", true},
		{"cpus:4", true},
		{"cpus:4.001", false},
		{"cpus(eng):2", true},
		{"cpus(eng):3", false},
		{"cpus(ops):1", false},
		{"ports:[1-5,25-30]", true},
		{"ports:[5-15]", false},
		{"zones:{b}", true},
		{"zones:{c}", false},
		{"gpus:1", false},
		{"cpus:4;mem:1024;ports:[1-10,20-30];zones:{a,b};cpus(eng):2", true},
	} {
		assert.Equal(t, tc.want, a.Contains(MustParse(tc.b)), "contains %q", tc.b)
	}

	// Each copy of a shared volume needs its own copy.
	one := New(volume("v", 10, true))
	two := one.Add(one)
	assert.True(t, two.Contains(two))
	assert.True(t, two.Contains(one))
	assert.False(t, one.Contains(two))
	assert.False(t, one.Contains(New(volume("v", 5, true))))
	assert.True(t, one.ContainsResource(volume("v", 10, true)))
	// The volume's mount point does not matter.
	other := volume("v", 10, true)
	other.Disk = &DiskInfo{Persistence: &Persistence{ID: "v", Principal: "x"}, Volume: &Volume{ContainerPath: "elsewhere"}}
	assert.True(t, one.ContainsResource(other))
	// Mount disks are taken whole.
	m := New(mountDisk("/m", 100))
	assert.False(t, m.Contains(New(mountDisk("/m", 50))))
	assert.True(t, m.Contains(New(mountDisk("/m", 100))))
}

func TestEqualIgnoresOrder(t *testing.T) {
	a := MustParse("cpus:1;mem:2;ports:[1-2]")
	b := MustParse("ports:[1-2];mem:2;cpus:1")
	assert.True(t, a.Equal(b))
	assert.False(t, a.Equal(MustParse("cpus:1;mem:2")))
	assert.False(t, a.Equal(MustParse("cpus:1;mem:3;ports:[1-2]")))
	assert.True(t, Resources(nil).Equal(Resources{}))

	// Label order does not matter.
	r1 := reserved(NewScalar("cpus", 1), Reservation{Type: Dynamic, Role: "eng", Labels: []Label{{"a", "1"}, {"b", "2"}}})
	r2 := reserved(NewScalar("cpus", 1), Reservation{Type: Dynamic, Role: "eng", Labels: []Label{{"b", "2"}, {"a", "1"}}})
	assert.True(t, New(r1).Equal(New(r2)))
	assert.Len(t, New(r1, r2), 1)
}

func TestFiltersAndRoles(t *testing.T) {
	a := New(
		NewScalar("cpus", 1),
		reserved(NewScalar("cpus", 2), static("eng")),
		reserved(NewScalar("cpus", 4), static("eng"), dynamic("eng/web")),
		reserved(NewScalar("cpus", 8), dynamic("engineering")),
		Resource{Name: "mem", Scalar: 16000, Revocable: true},
		volume("v", 10, true),
	)
	assert.Equal(t, 1.0, a.Unreserved().CPUs())
	assert.Equal(t, 14.0, a.Reserved().CPUs())
	assert.Equal(t, 6.0, a.ReservedTo("eng").CPUs())
	assert.Equal(t, 2.0, a.ReservedExactly("eng").CPUs())
	assert.Equal(t, 4.0, a.ReservedTo("eng/web").CPUs())
	assert.Equal(t, 7.0, a.AllocatableTo("eng/web").CPUs())
	assert.Equal(t, 3.0, a.AllocatableTo("eng").CPUs())
	assert.Equal(t, 9.0, a.AllocatableTo("engineering").CPUs())
	assert.Equal(t, 16.0, a.Revocable().Mem())
	assert.Equal(t, 0.0, a.NonRevocable().Mem())
	assert.Len(t, a.PersistentVolumes(), 1)
	assert.Len(t, a.Shared(), 1)
	assert.Len(t, a.NonShared(), 5)
	assert.Len(t, a.Named("cpus"), 4)
	assert.Equal(t, []string{"cpus", "disk", "mem"}, a.Names())
	res := a.Reservations()
	assert.Equal(t, 2.0, res["eng"].CPUs())
	assert.Equal(t, 4.0, res["eng/web"].CPUs())
	assert.Equal(t, 10.0, res["eng"].Disk())

	r := reserved(NewScalar("cpus", 1), static("eng"), dynamic("eng/web"))
	assert.Equal(t, "eng/web", r.Role())
	assert.True(t, r.IsDynamicallyReserved())
	assert.True(t, r.HasRefinedReservations())
	assert.Equal(t, "eng", r.PopReservation().Role())
	assert.True(t, r.PopReservation().IsStaticallyReserved())
	assert.Equal(t, "*", r.PopReservation().PopReservation().Role())
	assert.True(t, r.PopReservation().PopReservation().IsUnreserved())
	assert.Len(t, r.Reservations, 2, "pop does not modify")
	assert.Equal(t, "eng/web/x", r.PushReservation(dynamic("eng/web/x")).Role())
	assert.Len(t, r.Reservations, 2, "push does not modify")

	pushed := MustParse("cpus:1;mem:2").PushReservation(dynamic("eng"))
	assert.Equal(t, "cpus(reservations: [(DYNAMIC,eng,ops)]):1;mem(reservations: [(DYNAMIC,eng,ops)]):2", pushed.String())
	assert.True(t, pushed.PopReservation().Equal(MustParse("cpus:1;mem:2")))
}

func TestAllocateAndFlatten(t *testing.T) {
	a := MustParse("cpus:1;cpus(eng):2;mem(eng):10")
	alloc := a.Allocate("eng")
	assert.Equal(t, "cpus(allocated: eng):1;cpus(allocated: eng)(eng):2;mem(allocated: eng)(eng):10", alloc.String())
	assert.Equal(t, map[string]Scalar{"cpus": 3000, "mem": 10000}, alloc.Allocations()["eng"].Quantities())
	assert.Empty(t, a.Allocations())
	assert.True(t, alloc.Unallocated().Equal(a))
	assert.Equal(t, "cpus:3;mem:10", a.Flatten().String())
	assert.Equal(t, "cpus:3;mem:10", alloc.Flatten().String())
}

func TestTotals(t *testing.T) {
	a := MustParse("cpus:4;cpus(eng):0.5;mem:4096;disk:10000;gpus:2;ports:[31000-32000];ports(eng):[35000-35009];zones:{a,b}")
	assert.Equal(t, 4.5, a.CPUs())
	assert.Equal(t, 4096.0, a.Mem())
	assert.Equal(t, 10000.0, a.Disk())
	assert.Equal(t, 2.0, a.GPUs())
	assert.Equal(t, rs(31000, 32000, 35000, 35009), a.Ports())
	assert.Equal(t, Scalar(4500), a.ScalarOf("cpus"))
	assert.Equal(t, map[string]Scalar{
		"cpus": 4500, "mem": 4096000, "disk": 10000000, "gpus": 2000, "ports": 1011000, "zones": 2000,
	}, a.Quantities())
	assert.True(t, Resources(nil).Empty())
	assert.False(t, a.Empty())
}

func TestOperationsDoNotModifyInputs(t *testing.T) {
	a := New(
		NewScalar("cpus", 4),
		NewRanges("ports", Range{1, 100}),
		NewSet("zones", "a", "b"),
		reserved(NewScalar("mem", 100), dynamic("eng")),
		volume("v", 10, true),
	)
	b := New(
		NewScalar("cpus", 1),
		NewRanges("ports", Range{10, 20}),
		NewSet("zones", "b"),
		reserved(NewScalar("mem", 100), dynamic("eng")),
		volume("v", 10, true),
	)
	aCopy, bCopy := a.Clone(), b.Clone()
	results := []Resources{
		a.Add(b), a.Subtract(b), a.Flatten(), a.Allocate("x"), a.Unallocated(),
		a.PushReservation(dynamic("eng")), a.PopReservation(), a.Filter(Resource.IsReserved),
	}
	sub, err := a.TrySubtract(b)
	require.NoError(t, err)
	results = append(results, sub, a.AddResource(b[0]), a.SubtractResource(b[1]))
	assert.Equal(t, aCopy, a)
	assert.Equal(t, bCopy, b)
	// Appending to or assigning entries of a result never shows in the inputs.
	for _, r := range results {
		if len(r) > 0 {
			r[0] = Resource{Name: "scribble"}
			_ = append(r, Resource{Name: "scribble"})
		}
	}
	assert.Equal(t, aCopy, a)
	assert.Equal(t, bCopy, b)
}

// assertNormalized checks the invariants every Resources result keeps.
func assertNormalized(t *testing.T, rs Resources) {
	t.Helper()
	for i := range rs {
		r := &rs[i]
		assert.False(t, r.IsEmpty(), "empty entry %d in %v", i, rs)
		assert.True(t, r.Ranges.IsNormalized(), "ranges of %v", r)
		assert.True(t, r.Set.IsNormalized(), "set of %v", r)
		for j := range i {
			assert.False(t, rs[j].mergeable(r), "entries %d and %d of %v should be merged", j, i, rs)
		}
	}
}

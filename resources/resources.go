package resources

import (
	"fmt"
	"math"
	"slices"
)

// Resources is a collection of resources, such as an agent's total, an
// offer or a task's needs. It is kept normalized, as Mesos keeps its
// Resources:
//
//   - no entry is empty (zero scalar, no ranges, empty set);
//   - entries that differ only in amount (same name, type, reservation
//     stack, disk, revocability, provider and allocation role) are merged
//     into one: cpus:1 + cpus:2 is cpus:3;
//   - exclusive resources are never merged: each copy of a shared resource
//     is its own entry (so copies are counted), and so is every persistent
//     volume and every MOUNT, BLOCK or identified RAW disk.
//
// Every function of this package returns normalized Resources; entries keep
// the order in which they were first added. A Resources assembled by hand
// (a slice literal, append) should go through New before it is compared or
// used in arithmetic: Contains and Equal assume normalized operands.
//
// Operations return new values: they never modify their receiver or
// arguments, and a result never shares its top-level slice with an input.
// (AddInPlace and SubtractInPlace, for accumulators with one owner, are the
// only exceptions, and say so in their names.)
// Entries of a result may share their Ranges, Set, Reservations and Disk
// with entries of the inputs, which is safe because nothing in this package
// modifies them in place; use Clone for a fully independent copy.
type Resources []Resource

// New returns the normalized Resources holding rs: each Ranges and Set is
// normalized, empty entries are dropped and entries of the same kind are
// merged. It does not validate; see Validate.
func New(rs ...Resource) Resources {
	b := newBuilder(len(rs), len(rs))
	for _, r := range rs {
		switch r.Type {
		case TypeRanges:
			if !r.Ranges.IsNormalized() {
				r.Ranges = RangesOf(r.Ranges...)
			}
		case TypeSet:
			if !r.Set.IsNormalized() {
				r.Set = SetOf(r.Set...)
			}
		}
		b.add(&r)
	}
	return b.out
}

// builder accumulates normalized Resources. To merge a resource it looks
// for an entry of the same kind: by a linear scan while the result is
// small, and through a map keyed by kindKey once it is large, so that
// building from many distinct resources (a hostile message, say) takes
// linear rather than quadratic time.
type builder struct {
	out    Resources // owned: entries may be replaced in place
	index  map[string]int
	linear bool // never build the index: few resources will be added
}

// indexThreshold is the size from which a builder indexes its entries.
const indexThreshold = 32

// newBuilder returns a builder for about pending resources.
func newBuilder(capacity, pending int) builder {
	return builder{out: make(Resources, 0, capacity), linear: pending <= indexThreshold}
}

// copyBuilder returns a builder holding a normalized copy of rs, with
// room for extra more entries and pending more additions.
func copyBuilder(rs Resources, extra, pending int) builder {
	b := newBuilder(len(rs)+extra, len(rs)+pending)
	for i := range rs {
		b.add(&rs[i])
	}
	return b
}

func (b *builder) add(r *Resource) {
	if b.index == nil {
		if b.linear || len(b.out) < indexThreshold || r.IsEmpty() || r.exclusive() {
			b.out = b.out.insertPtr(r)
			return
		}
		b.index = make(map[string]int, 2*len(b.out))
		for i := range b.out {
			if !b.out[i].exclusive() {
				b.index[b.out[i].kindKey()] = i
			}
		}
	}
	if r.IsEmpty() {
		return
	}
	if r.exclusive() {
		b.out = append(b.out, *r)
		return
	}
	key := r.kindKey()
	if i, ok := b.index[key]; ok {
		b.out[i] = b.out[i].plus(r)
		return
	}
	b.index[key] = len(b.out)
	b.out = append(b.out, *r)
}

// insertPtr adds r to the normalized rs in place (rs must be owned by the
// caller), merging it into an entry of the same kind when it can. It
// replaces entries rather than modifying their slices, which other
// Resources may share.
func (rs Resources) insertPtr(r *Resource) Resources {
	if r.IsEmpty() {
		return rs
	}
	if !r.exclusive() {
		for i := range rs {
			if rs[i].sameKind(r) {
				if r.Type == TypeScalar {
					rs[i].Scalar = rs[i].Scalar.Add(r.Scalar)
				} else {
					rs[i] = rs[i].plus(r)
				}
				return rs
			}
		}
	}
	return append(rs, *r)
}

// newEntries is how many entries of o would not merge into rs: an upper
// bound on how much adding o grows rs, used to allocate just enough.
func (rs Resources) newEntries(o Resources) int {
	if len(rs)*len(o) > indexThreshold*indexThreshold {
		return len(o) // not worth a quadratic count
	}
	n := 0
outer:
	for i := range o {
		r := &o[i]
		if r.IsEmpty() {
			continue
		}
		if !r.exclusive() {
			for j := range rs {
				if rs[j].sameKind(r) {
					continue outer
				}
			}
		}
		n++
	}
	return n
}

// Add returns the sum of rs and o: scalars add, ranges and sets unite.
func (rs Resources) Add(o Resources) Resources {
	b := copyBuilder(rs, rs.newEntries(o), len(o))
	for i := range o {
		b.add(&o[i])
	}
	return b.out
}

// AddResource returns rs with r added.
func (rs Resources) AddResource(r Resource) Resources {
	b := copyBuilder(rs, 1, 1)
	b.add(&r)
	return b.out
}

// AddInPlace adds o to *rs, reusing its memory: unlike Add it modifies its
// receiver, and so allocates only when ranges or sets change or an entry is
// added. It is meant for accumulators a single owner keeps, such as an
// allocator's per-agent totals: *rs must not share its backing array with
// Resources still in use elsewhere (as a copy made by assignment does).
// Entries are replaced, never modified in place, so Resources that share
// their Ranges, Set or Reservations are not affected.
func (rs *Resources) AddInPlace(o Resources) {
	b := builder{out: *rs, linear: len(o) <= indexThreshold}
	for i := range o {
		b.add(&o[i])
	}
	*rs = b.out
}

// SubtractInPlace takes o away from *rs as Subtract does, reusing its
// memory; the same caution as for AddInPlace applies.
func (rs *Resources) SubtractInPlace(o Resources) {
	out := *rs
	for i := range o {
		out = out.remove(&o[i])
	}
	*rs = out
}

// Subtract returns what remains of rs after taking o away. It never goes
// below zero, as Mesos's Resources::subtract: a scalar that would go
// negative is removed, ranges and set items that are not there are
// ignored, and an exclusive resource (shared copy, persistent volume,
// MOUNT disk...) is removed only by an equal one. Use TrySubtract to learn
// whether o was all there.
func (rs Resources) Subtract(o Resources) Resources {
	out := copyBuilder(rs, 0, 0).out
	for i := range o {
		out = out.remove(&o[i])
	}
	return out
}

// SubtractResource returns rs with r taken away, as Subtract.
func (rs Resources) SubtractResource(r Resource) Resources {
	return copyBuilder(rs, 0, 0).out.remove(&r)
}

// remove takes r out of the normalized rs in place.
func (rs Resources) remove(r *Resource) Resources {
	if r.IsEmpty() {
		return rs
	}
	for i := range rs {
		e := &rs[i]
		if !e.sameKind(r) {
			continue
		}
		if e.exclusive() {
			if !e.valueEqual(r) {
				continue
			}
			return slices.Delete(rs, i, i+1)
		}
		if r.Type == TypeScalar {
			if e.Scalar <= r.Scalar {
				return slices.Delete(rs, i, i+1)
			}
			e.Scalar = e.Scalar.Sub(r.Scalar)
			return rs
		}
		v := e.minus(r)
		if v.IsEmpty() {
			return slices.Delete(rs, i, i+1)
		}
		rs[i] = v
		return rs
	}
	return rs
}

// TrySubtract returns rs minus o if rs contains o, and otherwise an error
// wrapping ErrInsufficient that names what is missing.
func (rs Resources) TrySubtract(o Resources) (Resources, error) {
	if !rs.Contains(o) {
		return nil, fmt.Errorf("%w: missing %s", ErrInsufficient, o.Subtract(rs))
	}
	return rs.Subtract(o), nil
}

// marks is a set of indexes; it avoids allocating for small Resources.
type marks struct {
	small uint64
	big   []bool
}

func newMarks(n int) marks {
	if n > 64 {
		return marks{big: make([]bool, n)}
	}
	return marks{}
}

func (m *marks) has(i int) bool {
	if m.big != nil {
		return m.big[i]
	}
	return m.small&(1<<uint(i)) != 0
}

func (m *marks) set(i int) {
	if m.big != nil {
		m.big[i] = true
		return
	}
	m.small |= 1 << uint(i)
}

// Contains reports whether o fits in rs, as Mesos's Resources::contains:
// each entry of o is within an entry of rs of the same kind, and each
// exclusive entry of o (a shared copy, a persistent volume...) matches its
// own equal entry of rs.
func (rs Resources) Contains(o Resources) bool {
	var used marks
	usedInit := false
	for i := range o {
		r := &o[i]
		if r.IsEmpty() {
			continue
		}
		found := false
		if r.exclusive() {
			if !usedInit {
				used, usedInit = newMarks(len(rs)), true
			}
			for j := range rs {
				if !used.has(j) && rs[j].sameKind(r) && rs[j].valueEqual(r) {
					used.set(j)
					found = true
					break
				}
			}
		} else {
			for j := range rs {
				if rs[j].contains(r) {
					found = true
					break
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ContainsResource reports whether r fits in rs.
func (rs Resources) ContainsResource(r Resource) bool {
	if r.IsEmpty() {
		return true
	}
	for j := range rs {
		if rs[j].contains(&r) {
			return true
		}
	}
	return false
}

// Equal reports whether rs and o hold the same resources, in any order.
func (rs Resources) Equal(o Resources) bool {
	if len(rs) != len(o) {
		return false
	}
	used := newMarks(len(o))
outer:
	for i := range rs {
		// Normalized Resources usually list entries in the same order.
		if !used.has(i) && rs[i].Equal(o[i]) {
			used.set(i)
			continue
		}
		for j := range o {
			if !used.has(j) && rs[i].Equal(o[j]) {
				used.set(j)
				continue outer
			}
		}
		return false
	}
	return true
}

// Empty reports whether rs holds nothing.
func (rs Resources) Empty() bool {
	for i := range rs {
		if !rs[i].IsEmpty() {
			return false
		}
	}
	return true
}

// Count is the number of copies of r in rs: for a shared resource, how many
// equal entries there are; otherwise 1 if rs has an entry equal to r.
func (rs Resources) Count(r Resource) int {
	n := 0
	for i := range rs {
		if rs[i].Equal(r) {
			n++
			if !r.Shared {
				break
			}
		}
	}
	return n
}

// Filter returns the entries of rs for which keep returns true.
func (rs Resources) Filter(keep func(Resource) bool) Resources {
	var out Resources
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// Named returns the entries called name.
func (rs Resources) Named(name string) Resources {
	return rs.Filter(func(r Resource) bool { return r.Name == name })
}

// Reserved returns the reserved entries, whatever their role.
func (rs Resources) Reserved() Resources {
	return rs.Filter(Resource.IsReserved)
}

// ReservedTo returns the entries whose current reservation is to role or
// to one of its sub-roles ("eng" takes in "eng/backend"): what counts
// toward role's reservations in a role tree.
func (rs Resources) ReservedTo(role string) Resources {
	return rs.Filter(func(r Resource) bool {
		return r.IsReserved() && IsSubroleOrSelf(r.Role(), role)
	})
}

// ReservedExactly returns the entries whose current reservation is to role
// itself, not a sub-role.
func (rs Resources) ReservedExactly(role string) Resources {
	return rs.Filter(func(r Resource) bool { return r.IsReserved() && r.Role() == role })
}

// Unreserved returns the unreserved entries.
func (rs Resources) Unreserved() Resources {
	return rs.Filter(Resource.IsUnreserved)
}

// AllocatableTo returns the entries that may be allocated to role: the
// unreserved ones and those reserved to role or an ancestor of it.
func (rs Resources) AllocatableTo(role string) Resources {
	return rs.Filter(func(r Resource) bool { return r.IsAllocatableTo(role) })
}

// Revocable returns the revocable entries.
func (rs Resources) Revocable() Resources {
	return rs.Filter(func(r Resource) bool { return r.Revocable })
}

// NonRevocable returns the entries that are not revocable.
func (rs Resources) NonRevocable() Resources {
	return rs.Filter(func(r Resource) bool { return !r.Revocable })
}

// Shared returns the shared entries.
func (rs Resources) Shared() Resources {
	return rs.Filter(func(r Resource) bool { return r.Shared })
}

// NonShared returns the entries that are not shared.
func (rs Resources) NonShared() Resources {
	return rs.Filter(func(r Resource) bool { return !r.Shared })
}

// PersistentVolumes returns the persistent volumes.
func (rs Resources) PersistentVolumes() Resources {
	return rs.Filter(Resource.IsPersistentVolume)
}

// Reservations groups the reserved entries by the role of their current
// reservation.
func (rs Resources) Reservations() map[string]Resources {
	out := make(map[string]Resources)
	for _, r := range rs {
		if r.IsReserved() {
			out[r.Role()] = append(out[r.Role()], r)
		}
	}
	return out
}

// Allocations groups the allocated entries by allocation role; unallocated
// entries are left out.
func (rs Resources) Allocations() map[string]Resources {
	out := make(map[string]Resources)
	for _, r := range rs {
		if r.AllocationRole != "" {
			out[r.AllocationRole] = append(out[r.AllocationRole], r)
		}
	}
	return out
}

// mapNormalize applies f to each entry and normalizes the result.
func (rs Resources) mapNormalize(f func(*Resource)) Resources {
	b := newBuilder(len(rs), len(rs))
	for _, r := range rs {
		f(&r)
		b.add(&r)
	}
	return b.out
}

// Allocate returns rs with every entry allocated to role.
func (rs Resources) Allocate(role string) Resources {
	return rs.mapNormalize(func(r *Resource) { r.AllocationRole = role })
}

// Unallocated returns rs with the allocation role of every entry cleared.
func (rs Resources) Unallocated() Resources {
	return rs.mapNormalize(func(r *Resource) { r.AllocationRole = "" })
}

// Flatten returns the same amounts with reservations and allocation
// removed: everything unreserved and unallocated. Disk, revocability,
// sharing and provider are kept.
func (rs Resources) Flatten() Resources {
	return rs.mapNormalize(func(r *Resource) {
		r.Reservations = nil
		r.AllocationRole = ""
	})
}

// PushReservation returns rs with res pushed on every entry's reservation
// stack (a RESERVE operation applied to rs).
func (rs Resources) PushReservation(res Reservation) Resources {
	return rs.mapNormalize(func(r *Resource) { *r = r.PushReservation(res) })
}

// PopReservation returns rs with every entry's current reservation removed
// (an UNRESERVE operation applied to rs).
func (rs Resources) PopReservation() Resources {
	return rs.mapNormalize(func(r *Resource) { *r = r.PopReservation() })
}

// Clone returns a deep copy of rs that shares no memory with it.
func (rs Resources) Clone() Resources {
	if rs == nil {
		return nil
	}
	out := make(Resources, len(rs))
	for i, r := range rs {
		out[i] = r.Clone()
	}
	return out
}

// The names Mesos gives to the standard resources.
const (
	NameCPUs  = "cpus"
	NameMem   = "mem"
	NameDisk  = "disk"
	NameGPUs  = "gpus"
	NamePorts = "ports"
)

// ScalarOf is the total of the scalar entries called name, whatever their
// reservation, allocation or other attributes.
func (rs Resources) ScalarOf(name string) Scalar {
	var sum Scalar
	for i := range rs {
		if rs[i].Type == TypeScalar && rs[i].Name == name {
			sum = sum.Add(rs[i].Scalar)
		}
	}
	return sum
}

// CPUs is the total number of CPUs.
func (rs Resources) CPUs() float64 { return rs.ScalarOf(NameCPUs).Float64() }

// Mem is the total memory in MB.
func (rs Resources) Mem() float64 { return rs.ScalarOf(NameMem).Float64() }

// Disk is the total disk in MB.
func (rs Resources) Disk() float64 { return rs.ScalarOf(NameDisk).Float64() }

// GPUs is the total number of GPUs.
func (rs Resources) GPUs() float64 { return rs.ScalarOf(NameGPUs).Float64() }

// Ports is the union of all port ranges.
func (rs Resources) Ports() Ranges {
	var out Ranges
	for i := range rs {
		if rs[i].Type == TypeRanges && rs[i].Name == NamePorts {
			out = out.Add(rs[i].Ranges)
		}
	}
	return out
}

// Names returns the distinct resource names in rs, sorted.
func (rs Resources) Names() []string {
	names := make([]string, 0, len(rs))
	for i := range rs {
		names = append(names, rs[i].Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Quantity is how much of something r is, as a Scalar: its scalar value,
// or the number of values of its ranges or items of its set (1 counts as
// Scalar 1000, saturating). It is what fair-share allocation counts.
func (r Resource) Quantity() Scalar {
	var n uint64
	switch r.Type {
	case TypeScalar:
		return r.Scalar
	case TypeRanges:
		n = r.Ranges.Size()
	case TypeSet:
		n = uint64(len(r.Set))
	}
	if n > math.MaxInt64/1000 {
		return math.MaxInt64
	}
	return Scalar(n * 1000)
}

// Quantities sums the Quantity of every entry by name, across
// reservations, allocation and all other attributes; each copy of a shared
// resource counts.
func (rs Resources) Quantities() map[string]Scalar {
	out := make(map[string]Scalar, len(rs))
	for i := range rs {
		out[rs[i].Name] = out[rs[i].Name].Add(rs[i].Quantity())
	}
	return out
}

package resources

import (
	"encoding/binary"
	"slices"
	"strings"
)

// Type is the type of a resource's value. The numbers are Mesos's
// Value.Type numbers; TEXT (3) is not a resource type.
type Type uint8

// The resource value types.
const (
	TypeScalar Type = 0 // a Scalar quantity: cpus, mem, disk, gpus
	TypeRanges Type = 1 // Ranges of integers: ports
	TypeSet    Type = 2 // a Set of strings
)

// String returns Mesos's name for t: "SCALAR", "RANGES" or "SET".
func (t Type) String() string {
	switch t {
	case TypeScalar:
		return "SCALAR"
	case TypeRanges:
		return "RANGES"
	case TypeSet:
		return "SET"
	}
	return "Type(" + itoa(uint64(t)) + ")"
}

// ReservationType says how a reservation was made; the numbers are Mesos's.
type ReservationType uint8

// The reservation types. The zero value is not a valid type.
const (
	// Static reservations come from the agent's configured resources
	// (`cpus(role):4`) and change only when the agent restarts.
	Static ReservationType = 1
	// Dynamic reservations are made and undone at run time by operators and
	// frameworks (RESERVE and UNRESERVE operations).
	Dynamic ReservationType = 2
)

// String returns Mesos's name for t: "STATIC" or "DYNAMIC".
func (t ReservationType) String() string {
	switch t {
	case Static:
		return "STATIC"
	case Dynamic:
		return "DYNAMIC"
	case 0:
		return "UNKNOWN"
	}
	return "ReservationType(" + itoa(uint64(t)) + ")"
}

// Label is a free-form key/value pair that frameworks attach to
// reservations and disk sources.
type Label struct {
	Key, Value string
}

// Reservation is one level of a resource's reservation stack.
type Reservation struct {
	Type      ReservationType
	Role      string
	Principal string  // who made a dynamic reservation; checked by UNRESERVE ACLs
	Labels    []Label // order does not matter when comparing
}

// Equal reports whether r and o are the same reservation; labels are
// compared as multisets, as Mesos does.
func (r Reservation) Equal(o Reservation) bool {
	return r.Type == o.Type && r.Role == o.Role && r.Principal == o.Principal &&
		labelsEqual(r.Labels, o.Labels)
}

func labelsEqual(a, b []Label) bool {
	if len(a) != len(b) {
		return false
	}
	if slices.Equal(a, b) {
		return true
	}
	used := make([]bool, len(b))
outer:
	for _, l := range a {
		for j, m := range b {
			if !used[j] && l == m {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

// VolumeMode is the access mode of a disk volume; the numbers are Mesos's.
type VolumeMode uint8

// The volume modes.
const (
	RW VolumeMode = 1
	RO VolumeMode = 2
)

// String returns "RW" or "RO".
func (m VolumeMode) String() string {
	switch m {
	case RW:
		return "RW"
	case RO:
		return "RO"
	}
	return "VolumeMode(" + itoa(uint64(m)) + ")"
}

// DiskSourceType is where a disk resource comes from; the numbers are
// Mesos's.
type DiskSourceType uint8

// The disk source types.
const (
	// SourcePath is a directory, possibly on its own device, that can be
	// shared and split between tasks like the agent's default disk.
	SourcePath DiskSourceType = 1
	// SourceMount is a whole mounted file system, used exclusively: a task
	// takes all of it or none.
	SourceMount DiskSourceType = 2
	// SourceBlock is a raw block device, used exclusively.
	SourceBlock DiskSourceType = 3
	// SourceRaw is storage a resource provider has not yet turned into a
	// volume or block device.
	SourceRaw DiskSourceType = 4
)

// String returns Mesos's name for t: "PATH", "MOUNT", "BLOCK" or "RAW".
func (t DiskSourceType) String() string {
	switch t {
	case SourcePath:
		return "PATH"
	case SourceMount:
		return "MOUNT"
	case SourceBlock:
		return "BLOCK"
	case SourceRaw:
		return "RAW"
	}
	return "UNKNOWN"
}

// DiskInfo describes a disk resource beyond its size: a persistent volume,
// how it is mounted into a container, and the device it lives on. Only
// resources named "disk" have one.
type DiskInfo struct {
	// Persistence is set for a persistent volume, which outlives the tasks
	// using it and is offered again to its role.
	Persistence *Persistence
	// Volume says where and how the disk appears in a container. It is
	// ignored when comparing resources: it describes one use, not the disk.
	Volume *Volume
	// Source is the device; nil means the agent's default disk.
	Source *DiskSource
}

// Persistence identifies a persistent volume.
type Persistence struct {
	ID        string // unique per role on an agent
	Principal string // who created it; checked by DESTROY ACLs, not compared
}

// Volume is how a disk resource is mounted into a container.
type Volume struct {
	ContainerPath string
	HostPath      string
	Mode          VolumeMode
}

// DiskSource is the device a disk resource comes from.
type DiskSource struct {
	Type     DiskSourceType
	Root     string // mount point or directory, for SourcePath and SourceMount
	Vendor   string // the storage vendor (CSI plugin) the ID belongs to
	ID       string // the provider's volume ID (CSI)
	Profile  string // the operator's storage profile name
	Metadata []Label
}

// exclusive reports whether resources on this source are used whole: two
// such disks never merge, and one is subtracted from another only if they
// are equal. RAW sources are exclusive once they have an identity.
func (s *DiskSource) exclusive() bool {
	if s == nil {
		return false
	}
	switch s.Type {
	case SourceMount, SourceBlock:
		return true
	case SourceRaw:
		return s.ID != ""
	}
	return false
}

func (s *DiskSource) equal(o *DiskSource) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Type == o.Type && s.Root == o.Root && s.Vendor == o.Vendor && s.ID == o.ID &&
		s.Profile == o.Profile && labelsEqual(s.Metadata, o.Metadata)
}

// Equal reports whether d and o describe the same disk, with Mesos's rules:
// the source and the persistence ID must match; the volume and the
// persistence principal are ignored.
func (d *DiskInfo) Equal(o *DiskInfo) bool {
	if d == nil || o == nil {
		return d == o
	}
	if d == o {
		return true
	}
	if !d.Source.equal(o.Source) {
		return false
	}
	if (d.Persistence == nil) != (o.Persistence == nil) {
		return false
	}
	return d.Persistence == nil || d.Persistence.ID == o.Persistence.ID
}

// clone returns a deep copy of d.
func (d *DiskInfo) clone() *DiskInfo {
	if d == nil {
		return nil
	}
	c := &DiskInfo{}
	if d.Persistence != nil {
		p := *d.Persistence
		c.Persistence = &p
	}
	if d.Volume != nil {
		v := *d.Volume
		c.Volume = &v
	}
	if d.Source != nil {
		s := *d.Source
		s.Metadata = slices.Clone(s.Metadata)
		c.Source = &s
	}
	return c
}

// Resource is one kind of resource and its amount: "4 cpus reserved for
// role eng", "ports 31000-32000", "a 10 GB persistent volume". It is a value:
// copy it freely. Its slices and DiskInfo are treated as immutable by this
// package and may be shared between Resource values and Resources results;
// build new ones instead of modifying them in place (or use Clone).
//
// Exactly one of Scalar, Ranges and Set is meaningful, chosen by Type.
type Resource struct {
	Name   string
	Type   Type
	Scalar Scalar
	Ranges Ranges
	Set    Set

	// Reservations is the reservation stack: empty means unreserved (role
	// "*"); each entry refines the one before it to a sub-role
	// (eng, then eng/backend), and the last one is the current reservation.
	Reservations []Reservation

	Disk      *DiskInfo // only for "disk"
	Revocable bool      // may be taken back at any time (oversubscription)
	Shared    bool      // usable by many tasks at once; only persistent volumes

	// AllocationRole is the role the resource is allocated to (Mesos's
	// allocation_info.role); empty when it is not allocated.
	AllocationRole string
	// ProviderID is the resource provider the resource comes from; empty for
	// the agent's own resources.
	ProviderID string
}

// NewScalar returns an unreserved scalar resource; v is rounded to the
// nearest thousandth.
func NewScalar(name string, v float64) Resource {
	return Resource{Name: name, Type: TypeScalar, Scalar: ScalarOf(v)}
}

// NewRanges returns an unreserved ranges resource holding the union of rs.
func NewRanges(name string, rs ...Range) Resource {
	return Resource{Name: name, Type: TypeRanges, Ranges: RangesOf(rs...)}
}

// NewSet returns an unreserved set resource holding items.
func NewSet(name string, items ...string) Resource {
	return Resource{Name: name, Type: TypeSet, Set: SetOf(items...)}
}

// Role is the role of the current (innermost) reservation, or "*" when r is
// unreserved.
func (r Resource) Role() string {
	if n := len(r.Reservations); n > 0 {
		return r.Reservations[n-1].Role
	}
	return "*"
}

// IsReserved reports whether r is reserved to some role.
func (r Resource) IsReserved() bool { return len(r.Reservations) > 0 }

// IsUnreserved reports whether r is unreserved.
func (r Resource) IsUnreserved() bool { return len(r.Reservations) == 0 }

// IsStaticallyReserved reports whether r's current reservation is static.
func (r Resource) IsStaticallyReserved() bool {
	n := len(r.Reservations)
	return n > 0 && r.Reservations[n-1].Type == Static
}

// IsDynamicallyReserved reports whether r's current reservation is dynamic.
func (r Resource) IsDynamicallyReserved() bool {
	n := len(r.Reservations)
	return n > 0 && r.Reservations[n-1].Type == Dynamic
}

// HasRefinedReservations reports whether r's reservation refines another
// (its stack has more than one level). Frameworks without Mesos's
// RESERVATION_REFINEMENT capability cannot be offered such resources.
func (r Resource) HasRefinedReservations() bool { return len(r.Reservations) > 1 }

// IsPersistentVolume reports whether r is a persistent volume.
func (r Resource) IsPersistentVolume() bool {
	return r.Disk != nil && r.Disk.Persistence != nil
}

// IsAllocated reports whether r carries an allocation role.
func (r Resource) IsAllocated() bool { return r.AllocationRole != "" }

// IsAllocatableTo reports whether r may be allocated to role: it is
// unreserved, or reserved to role or to one of role's ancestors.
func (r Resource) IsAllocatableTo(role string) bool {
	if len(r.Reservations) == 0 {
		return true
	}
	return IsSubroleOrSelf(role, r.Role())
}

// IsEmpty reports whether r has a zero amount: a zero scalar, no ranges or
// no set items. Resources never holds empty entries.
func (r Resource) IsEmpty() bool {
	switch r.Type {
	case TypeScalar:
		return r.Scalar == 0
	case TypeRanges:
		return len(r.Ranges) == 0
	case TypeSet:
		return len(r.Set) == 0
	}
	return true
}

// exclusive reports whether r is used whole: a shared resource (each copy
// counted on its own), a persistent volume, or a disk from an exclusive
// source. Such a resource never merges with another, and subtracting or
// containing it requires an equal resource.
func (r *Resource) exclusive() bool {
	return r.Shared || (r.Disk != nil && (r.Disk.Persistence != nil || r.Disk.Source.exclusive()))
}

// sameKind reports whether r and o differ at most in amount: Mesos's
// "addable" test for non-exclusive resources.
func (r *Resource) sameKind(o *Resource) bool {
	if r.Type != o.Type || r.Revocable != o.Revocable || r.Shared != o.Shared ||
		len(r.Reservations) != len(o.Reservations) || (r.Disk == nil) != (o.Disk == nil) ||
		r.Name != o.Name || r.AllocationRole != o.AllocationRole || r.ProviderID != o.ProviderID {
		return false
	}
	for i := range r.Reservations {
		if !r.Reservations[i].Equal(o.Reservations[i]) {
			return false
		}
	}
	return r.Disk.Equal(o.Disk)
}

// mergeable reports whether r and o combine into one entry of a Resources.
func (r *Resource) mergeable(o *Resource) bool {
	return !r.exclusive() && !o.exclusive() && r.sameKind(o)
}

// Equal reports whether r and o are the same resource with the same amount.
// As in Mesos, the disk volume and persistence principal are not compared,
// and labels are compared as multisets.
func (r Resource) Equal(o Resource) bool {
	return r.sameKind(&o) && r.valueEqual(&o)
}

func (r *Resource) valueEqual(o *Resource) bool {
	switch r.Type {
	case TypeScalar:
		return r.Scalar == o.Scalar
	case TypeRanges:
		return r.Ranges.Equal(o.Ranges)
	case TypeSet:
		return r.Set.Equal(o.Set)
	}
	return false
}

// Contains reports whether o fits in r: the same kind of resource with no
// more of it. An exclusive resource (shared, persistent volume, MOUNT or
// BLOCK disk) contains only an equal one.
func (r Resource) Contains(o Resource) bool {
	return r.contains(&o)
}

func (r *Resource) contains(o *Resource) bool {
	if !r.sameKind(o) {
		return false
	}
	if r.exclusive() {
		return r.valueEqual(o)
	}
	switch r.Type {
	case TypeScalar:
		return o.Scalar <= r.Scalar
	case TypeRanges:
		return r.Ranges.Contains(o.Ranges)
	case TypeSet:
		return r.Set.Contains(o.Set)
	}
	return false
}

// plus returns r with o's amount added; they must be the same kind.
func (r Resource) plus(o *Resource) Resource {
	switch r.Type {
	case TypeScalar:
		r.Scalar = r.Scalar.Add(o.Scalar)
	case TypeRanges:
		r.Ranges = r.Ranges.Add(o.Ranges)
	case TypeSet:
		r.Set = r.Set.Add(o.Set)
	}
	return r
}

// minus returns r with o's amount removed, clamped at zero; they must be
// the same kind.
func (r Resource) minus(o *Resource) Resource {
	switch r.Type {
	case TypeScalar:
		r.Scalar = max(r.Scalar.Sub(o.Scalar), 0)
	case TypeRanges:
		r.Ranges = r.Ranges.Subtract(o.Ranges)
	case TypeSet:
		r.Set = r.Set.Subtract(o.Set)
	}
	return r
}

// PushReservation returns r with res added on top of its reservation stack.
func (r Resource) PushReservation(res Reservation) Resource {
	stack := make([]Reservation, len(r.Reservations)+1)
	copy(stack, r.Reservations)
	stack[len(r.Reservations)] = res
	r.Reservations = stack
	return r
}

// PopReservation returns r with its current reservation removed: reserved
// to the parent reservation's role, or unreserved.
func (r Resource) PopReservation() Resource {
	if n := len(r.Reservations); n > 0 {
		r.Reservations = r.Reservations[: n-1 : n-1]
		if n == 1 {
			r.Reservations = nil
		}
	}
	return r
}

// Clone returns a deep copy of r that shares no memory with it.
func (r Resource) Clone() Resource {
	r.Ranges = slices.Clone(r.Ranges)
	r.Set = slices.Clone(r.Set)
	if r.Reservations != nil {
		stack := make([]Reservation, len(r.Reservations))
		for i, res := range r.Reservations {
			res.Labels = slices.Clone(res.Labels)
			stack[i] = res
		}
		r.Reservations = stack
	}
	r.Disk = r.Disk.clone()
	return r
}

// IsSubroleOrSelf reports whether role is ancestor or a sub-role of it
// (ancestor "eng" covers "eng" and "eng/backend" but not "engineering").
func IsSubroleOrSelf(role, ancestor string) bool {
	return role == ancestor || IsStrictSubrole(role, ancestor)
}

// IsStrictSubrole reports whether role is a descendant of ancestor, not
// ancestor itself: "eng/backend" of "eng".
func IsStrictSubrole(role, ancestor string) bool {
	return len(role) > len(ancestor) && role[len(ancestor)] == '/' &&
		strings.HasPrefix(role, ancestor)
}

// kindKey encodes what sameKind compares, so that two non-exclusive
// resources have the same key exactly when they are of the same kind.
// Strings are length-prefixed and labels sorted, making it unambiguous and
// order independent where the comparison is.
func (r *Resource) kindKey() string {
	b := make([]byte, 0, 64)
	b = appendKeyString(b, r.Name)
	b = append(b, byte(r.Type), boolByte(r.Revocable), boolByte(r.Shared))
	b = appendKeyString(b, r.AllocationRole)
	b = appendKeyString(b, r.ProviderID)
	b = binary.AppendUvarint(b, uint64(len(r.Reservations)))
	for _, res := range r.Reservations {
		b = append(b, byte(res.Type))
		b = appendKeyString(b, res.Role)
		b = appendKeyString(b, res.Principal)
		b = appendKeyLabels(b, res.Labels)
	}
	if d := r.Disk; d != nil {
		b = append(b, 1)
		if s := d.Source; s != nil {
			b = append(b, 1, byte(s.Type))
			b = appendKeyString(b, s.Root)
			b = appendKeyString(b, s.Vendor)
			b = appendKeyString(b, s.ID)
			b = appendKeyString(b, s.Profile)
			b = appendKeyLabels(b, s.Metadata)
		} else {
			b = append(b, 0)
		}
		if p := d.Persistence; p != nil {
			b = append(b, 1)
			b = appendKeyString(b, p.ID)
		} else {
			b = append(b, 0)
		}
	} else {
		b = append(b, 0)
	}
	return string(b)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendKeyString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendKeyLabels(b []byte, labels []Label) []byte {
	if len(labels) > 1 {
		labels = slices.Clone(labels)
		slices.SortFunc(labels, func(x, y Label) int {
			if c := strings.Compare(x.Key, y.Key); c != 0 {
				return c
			}
			return strings.Compare(x.Value, y.Value)
		})
	}
	b = binary.AppendUvarint(b, uint64(len(labels)))
	for _, l := range labels {
		b = appendKeyString(b, l.Key)
		b = appendKeyString(b, l.Value)
	}
	return b
}

package resources

import (
	"fmt"
	"math"
	"slices"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// FromProto converts and validates mesos.v1 Resource messages, as a master
// reads them from schedulers, agents and operators. It accepts both of
// Mesos's reservation formats: the post-refinement `reservations` stack,
// and the older `role` and `reservation` fields, which it converts as Mesos
// does (role "*" is unreserved, another role without `reservation` is a
// static reservation, with it a dynamic one). A message using both formats
// must have them agree, and only for a single reservation.
//
// Scalars are rounded to three decimals; zero amounts are dropped and
// entries of the same kind are merged. Errors wrap ErrInvalid and name the
// offending resource. What Resource does not model is not kept: the
// XXX_unrecognized bytes, a volume's image or source, and the difference
// between an unset and an empty label value or allocation role.
func FromProto(ps []mesospb.Resource) (Resources, error) {
	b := newBuilder(len(ps), len(ps))
	for i := range ps {
		r, err := resourceFromProto(&ps[i])
		if err != nil {
			return nil, err
		}
		if err := r.Validate(); err != nil {
			return nil, err
		}
		b.add(&r)
	}
	if err := b.out.validateNameTypes(); err != nil {
		return nil, err
	}
	return b.out, nil
}

// ResourceFromProto converts and validates one mesos.v1 Resource, as
// FromProto does. The result is not normalized into a Resources, so a zero
// amount is returned as is.
func ResourceFromProto(p *mesospb.Resource) (Resource, error) {
	r, err := resourceFromProto(p)
	if err != nil {
		return Resource{}, err
	}
	if err := r.Validate(); err != nil {
		return Resource{}, err
	}
	return r, nil
}

func resourceFromProto(p *mesospb.Resource) (Resource, error) {
	r := Resource{Name: p.Name}
	if p.Name == "" {
		return r, fmt.Errorf("%w: resource with an empty name", ErrInvalid)
	}
	switch p.Type {
	case mesospb.Value_SCALAR:
		if p.Scalar == nil || p.Ranges != nil || p.Set != nil {
			return r, invalidf(p.Name, "a SCALAR resource must have a scalar value and only that")
		}
		s, err := scalarFromFloat(p.Scalar.Value)
		if err != nil {
			return r, invalidf(p.Name, "%s", err)
		}
		r.Type, r.Scalar = TypeScalar, s
	case mesospb.Value_RANGES:
		if p.Scalar != nil || p.Ranges == nil || p.Set != nil {
			return r, invalidf(p.Name, "a RANGES resource must have ranges and only those")
		}
		rs := make(Ranges, len(p.Ranges.Range))
		for i, pr := range p.Ranges.Range {
			rs[i] = Range{pr.Begin, pr.End}
		}
		if err := validateRanges(rs); err != nil {
			return r, invalidf(p.Name, "%s", err)
		}
		r.Type, r.Ranges = TypeRanges, RangesOf(rs...)
	case mesospb.Value_SET:
		if p.Scalar != nil || p.Ranges != nil || p.Set == nil {
			return r, invalidf(p.Name, "a SET resource must have a set and only that")
		}
		if err := validateSet(p.Set.Item); err != nil {
			return r, invalidf(p.Name, "%s", err)
		}
		r.Type, r.Set = TypeSet, SetOf(p.Set.Item...)
	default:
		return r, invalidf(p.Name, "unsupported type %s", p.Type)
	}

	stack, err := reservationsFromProto(p)
	if err != nil {
		return r, err
	}
	r.Reservations = stack

	if p.AllocationInfo != nil && p.AllocationInfo.Role != nil {
		r.AllocationRole = *p.AllocationInfo.Role
	}
	if p.Disk != nil {
		r.Disk = diskFromProto(p.Disk)
	}
	r.Revocable = p.Revocable != nil
	r.Shared = p.Shared != nil
	if p.ProviderID != nil {
		r.ProviderID = p.ProviderID.Value
	}
	return r, nil
}

// reservationsFromProto reads the reservation stack from either format,
// with the consistency rules of Mesos's Resources::validate.
func reservationsFromProto(p *mesospb.Resource) ([]Reservation, error) {
	bad := func(format string, args ...any) ([]Reservation, error) {
		return nil, invalidf(p.Name, format, args...)
	}
	if len(p.Reservations) == 0 {
		// Pre-refinement format.
		role := p.GetRole()
		if err := ValidateRole(role); err != nil {
			return nil, fmt.Errorf("%w: resource %q: %w", ErrInvalid, p.Name, err)
		}
		if res := p.Reservation; res != nil {
			if res.Type != nil || res.Role != nil {
				return bad("'reservation' must not set type or role (they belong to 'reservations')")
			}
			if role == "*" {
				return bad("role \"*\" cannot be dynamically reserved")
			}
			return []Reservation{{
				Type:      Dynamic,
				Role:      role,
				Principal: res.GetPrincipal(),
				Labels:    labelsFromProto(res.Labels),
			}}, nil
		}
		if role == "*" {
			return nil, nil
		}
		return []Reservation{{Type: Static, Role: role}}, nil
	}

	stack := make([]Reservation, len(p.Reservations))
	for i := range p.Reservations {
		pr := &p.Reservations[i]
		if pr.Type == nil {
			return bad("reservation %d has no type", i)
		}
		if pr.Role == nil {
			return bad("reservation %d has no role", i)
		}
		t := *pr.Type
		if t != mesospb.Resource_ReservationInfo_STATIC && t != mesospb.Resource_ReservationInfo_DYNAMIC {
			return bad("reservation %d has unsupported type %s", i, t)
		}
		stack[i] = Reservation{
			Type:      ReservationType(t),
			Role:      *pr.Role,
			Principal: pr.GetPrincipal(),
			Labels:    labelsFromProto(pr.Labels),
		}
	}
	// Mesos tolerates the old fields next to a single reservation if they
	// say the same thing (the "endpoint" format); never next to a refinement.
	if len(stack) > 1 {
		if p.Role != nil || p.Reservation != nil {
			return bad("'role' and 'reservation' must not be set with refined 'reservations'")
		}
		return stack, nil
	}
	if p.Role != nil && *p.Role != stack[0].Role {
		return bad("'role' %q does not match the reservation to %q", *p.Role, stack[0].Role)
	}
	switch stack[0].Type {
	case Static:
		if p.Reservation != nil {
			return bad("'reservation' must not be set for a STATIC reservation")
		}
	case Dynamic:
		if (p.Role == nil) != (p.Reservation == nil) {
			return bad("'role' and 'reservation' must be both set or both unset for a DYNAMIC reservation")
		}
		if res := p.Reservation; res != nil {
			if res.GetPrincipal() != stack[0].Principal {
				return bad("'reservation' principal %q does not match %q in 'reservations'",
					res.GetPrincipal(), stack[0].Principal)
			}
			if !labelsEqual(labelsFromProto(res.Labels), stack[0].Labels) {
				return bad("'reservation' labels do not match those in 'reservations'")
			}
		}
	}
	return stack, nil
}

func labelsFromProto(p *mesospb.Labels) []Label {
	if p == nil || len(p.Labels) == 0 {
		return nil
	}
	out := make([]Label, len(p.Labels))
	for i, l := range p.Labels {
		out[i] = Label{Key: l.Key, Value: l.GetValue()}
	}
	return out
}

func diskFromProto(p *mesospb.Resource_DiskInfo) *DiskInfo {
	d := &DiskInfo{}
	if pp := p.Persistence; pp != nil {
		d.Persistence = &Persistence{ID: pp.ID, Principal: pp.GetPrincipal()}
	}
	if pv := p.Volume; pv != nil {
		d.Volume = &Volume{ContainerPath: pv.ContainerPath, HostPath: pv.GetHostPath()}
		if pv.Mode != nil {
			d.Volume.Mode = VolumeMode(enum8(int32(*pv.Mode)))
		}
	}
	if ps := p.Source; ps != nil {
		s := &DiskSource{
			Type:     DiskSourceType(enum8(int32(ps.Type))),
			Vendor:   ps.GetVendor(),
			ID:       ps.GetID(),
			Profile:  ps.GetProfile(),
			Metadata: labelsFromProto(ps.Metadata),
		}
		switch {
		case ps.Path != nil && ps.Path.Root != nil:
			s.Root = *ps.Path.Root
		case ps.Mount != nil && ps.Mount.Root != nil:
			s.Root = *ps.Mount.Root
		}
		d.Source = s
	}
	return d
}

// Format selects how reservations are written to mesos.v1 messages. Mesos
// has two formats and an "endpoint" blend of both for its HTTP endpoints;
// which one a peer needs depends on its RESERVATION_REFINEMENT capability.
type Format uint8

const (
	// PostRefinement writes only the `reservations` stack: what frameworks
	// with the RESERVATION_REFINEMENT capability and current agents read.
	PostRefinement Format = iota
	// PreRefinement writes only the deprecated `role` and `reservation`
	// fields, for frameworks without RESERVATION_REFINEMENT. It cannot
	// express refined reservations.
	PreRefinement
	// Endpoint writes the `reservations` stack and, where there is no
	// refinement, also `role` and `reservation`, so that old and new
	// readers of the operator endpoints both understand it.
	Endpoint
)

// ToProto converts rs to mesos.v1 Resource messages in the post-refinement
// format; each copy of a shared resource is its own message. The messages
// share no memory with rs.
func (rs Resources) ToProto() []mesospb.Resource {
	out, _ := rs.ToProtoFormat(PostRefinement) // cannot fail
	return out
}

// ToProtoFormat converts rs to mesos.v1 Resource messages in format. Only
// PreRefinement can fail: with an error wrapping ErrInvalid when a resource
// has refined reservations.
func (rs Resources) ToProtoFormat(format Format) ([]mesospb.Resource, error) {
	if rs == nil {
		return nil, nil
	}
	out := make([]mesospb.Resource, len(rs))
	for i := range rs {
		if err := rs[i].toProto(&out[i], format); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ToProto converts r to a mesos.v1 Resource in the post-refinement format.
func (r Resource) ToProto() mesospb.Resource {
	var p mesospb.Resource
	_ = r.toProto(&p, PostRefinement) // cannot fail
	return p
}

func ptr[T any](v T) *T { return &v }

// enum8 narrows a wire enum value; values out of range become 255, which
// no enum of this package uses, so validation rejects them.
func enum8(v int32) uint8 {
	if v < 0 || v > math.MaxUint8 {
		return math.MaxUint8
	}
	return uint8(v)
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (r *Resource) toProto(p *mesospb.Resource, format Format) error {
	p.Name = r.Name
	p.Type = mesospb.Value_Type(r.Type)
	switch r.Type {
	case TypeScalar:
		p.Scalar = &mesospb.Value_Scalar{Value: r.Scalar.Float64()}
	case TypeRanges:
		rs := make([]mesospb.Value_Range, len(r.Ranges))
		for i, rg := range r.Ranges {
			rs[i] = mesospb.Value_Range{Begin: rg.Begin, End: rg.End}
		}
		p.Ranges = &mesospb.Value_Ranges{Range: rs}
	case TypeSet:
		p.Set = &mesospb.Value_Set{Item: slices.Clone([]string(r.Set))}
	}

	refined := len(r.Reservations) > 1
	if format == PreRefinement && refined {
		return invalidf(r.Name, "refined reservations cannot be written in the pre-refinement format")
	}
	if format != PreRefinement && len(r.Reservations) > 0 {
		p.Reservations = make([]mesospb.Resource_ReservationInfo, len(r.Reservations))
		for i, res := range r.Reservations {
			p.Reservations[i] = mesospb.Resource_ReservationInfo{
				Type:      ptr(mesospb.Resource_ReservationInfo_Type(res.Type)),
				Role:      ptr(res.Role),
				Principal: optString(res.Principal),
				Labels:    labelsToProto(res.Labels),
			}
		}
	}
	if format != PostRefinement && !refined {
		p.Role = ptr(r.Role())
		if r.IsDynamicallyReserved() {
			res := r.Reservations[0]
			p.Reservation = &mesospb.Resource_ReservationInfo{
				Principal: optString(res.Principal),
				Labels:    labelsToProto(res.Labels),
			}
		}
	}

	if r.AllocationRole != "" {
		p.AllocationInfo = &mesospb.Resource_AllocationInfo{Role: ptr(r.AllocationRole)}
	}
	if r.Disk != nil {
		p.Disk = diskToProto(r.Disk)
	}
	if r.Revocable {
		p.Revocable = &mesospb.Resource_RevocableInfo{}
	}
	if r.Shared {
		p.Shared = &mesospb.Resource_SharedInfo{}
	}
	if r.ProviderID != "" {
		p.ProviderID = &mesospb.ResourceProviderID{Value: r.ProviderID}
	}
	return nil
}

func labelsToProto(ls []Label) *mesospb.Labels {
	if len(ls) == 0 {
		return nil
	}
	out := &mesospb.Labels{Labels: make([]mesospb.Label, len(ls))}
	for i, l := range ls {
		out.Labels[i] = mesospb.Label{Key: l.Key, Value: optString(l.Value)}
	}
	return out
}

func diskToProto(d *DiskInfo) *mesospb.Resource_DiskInfo {
	p := &mesospb.Resource_DiskInfo{}
	if d.Persistence != nil {
		p.Persistence = &mesospb.Resource_DiskInfo_Persistence{
			ID:        d.Persistence.ID,
			Principal: optString(d.Persistence.Principal),
		}
	}
	if v := d.Volume; v != nil {
		p.Volume = &mesospb.Volume{ContainerPath: v.ContainerPath, HostPath: optString(v.HostPath)}
		if v.Mode != 0 {
			p.Volume.Mode = ptr(mesospb.Volume_Mode(v.Mode))
		}
	}
	if s := d.Source; s != nil {
		ps := &mesospb.Resource_DiskInfo_Source{
			Type:     mesospb.Resource_DiskInfo_Source_Type(s.Type),
			Vendor:   optString(s.Vendor),
			ID:       optString(s.ID),
			Profile:  optString(s.Profile),
			Metadata: labelsToProto(s.Metadata),
		}
		switch s.Type {
		case SourcePath:
			ps.Path = &mesospb.Resource_DiskInfo_Source_Path{Root: optString(s.Root)}
		case SourceMount:
			ps.Mount = &mesospb.Resource_DiskInfo_Source_Mount{Root: optString(s.Root)}
		}
		p.Source = ps
	}
	return p
}

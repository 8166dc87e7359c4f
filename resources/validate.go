package resources

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors returned by this package; test them with errors.Is. The message
// of a wrapping error names the resource and what is wrong with it.
var (
	// ErrInvalid marks a resource or resource text that is malformed or
	// breaks Mesos's rules (negative amount, bad role, unknown type...).
	ErrInvalid = errors.New("invalid resources")
	// ErrInvalidRole marks a role name that breaks Mesos's rules. Errors
	// about a resource's role wrap both ErrInvalid and ErrInvalidRole.
	ErrInvalidRole = errors.New("invalid role")
	// ErrInsufficient is returned by TrySubtract when the resources to take
	// away are not all there.
	ErrInsufficient = errors.New("insufficient resources")
)

// ValidateRole checks a role name with Mesos's rules. "*" (the default
// role of unreserved resources) is valid. Otherwise a role is one or more
// '/'-separated path components, as in "eng/backend", and no component may
// be empty, ".", "..", "*", begin with '-', or contain whitespace or control
// characters.
func ValidateRole(role string) error {
	if role == "*" {
		return nil
	}
	if role == "" {
		return fmt.Errorf("%w: empty role name", ErrInvalidRole)
	}
	for rest := role; ; {
		comp, tail, more := strings.Cut(rest, "/")
		switch {
		case comp == "":
			return fmt.Errorf("%w: role %q has an empty path component", ErrInvalidRole, role)
		case comp == "." || comp == ".." || comp == "*":
			return fmt.Errorf("%w: role %q has %q as a path component", ErrInvalidRole, role, comp)
		case comp[0] == '-':
			return fmt.Errorf("%w: role %q has a component starting with '-'", ErrInvalidRole, role)
		}
		for _, c := range comp {
			if c == utf8.RuneError || unicode.IsSpace(c) || unicode.IsControl(c) {
				return fmt.Errorf("%w: role %q contains whitespace or a control character", ErrInvalidRole, role)
			}
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// invalidf returns an ErrInvalid error about the resource called name.
func invalidf(name, format string, args ...any) error {
	return fmt.Errorf("%w: resource %q: %s", ErrInvalid, name, fmt.Sprintf(format, args...))
}

// Validate checks r against Mesos's rules for a resource: a non-empty name;
// a SCALAR, RANGES or SET type with only the matching value; a scalar
// between 0 and MaxScalar; no inverted or overlapping ranges; no duplicate
// set items; valid roles in a reservation stack where each refinement is
// dynamic and to a sub-role of the reservation before it; disk information
// only on "disk"; sharing only for persistent volumes. Validate does not
// require Ranges and Set to be normalized (New normalizes them).
func (r Resource) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("%w: resource with an empty name", ErrInvalid)
	}
	switch r.Type {
	case TypeScalar:
		if r.Scalar < 0 {
			return invalidf(r.Name, "negative scalar %s", r.Scalar)
		}
		if r.Scalar > MaxScalar {
			return invalidf(r.Name, "scalar %s is larger than %s", r.Scalar, MaxScalar)
		}
	case TypeRanges:
		if err := validateRanges(r.Ranges); err != nil {
			return invalidf(r.Name, "%s", err)
		}
	case TypeSet:
		if err := validateSet(r.Set); err != nil {
			return invalidf(r.Name, "%s", err)
		}
	default:
		return invalidf(r.Name, "unsupported type %s", r.Type)
	}
	if r.Type != TypeScalar && r.Scalar != 0 {
		return invalidf(r.Name, "a %s resource with a scalar value", r.Type)
	}
	if r.Type != TypeRanges && len(r.Ranges) > 0 {
		return invalidf(r.Name, "a %s resource with ranges", r.Type)
	}
	if r.Type != TypeSet && len(r.Set) > 0 {
		return invalidf(r.Name, "a %s resource with set items", r.Type)
	}
	if err := validateReservations(r.Reservations); err != nil {
		return fmt.Errorf("%w: resource %q: %w", ErrInvalid, r.Name, err)
	}
	if r.Disk != nil {
		if r.Name != NameDisk {
			return invalidf(r.Name, "disk information on a resource that is not %q", NameDisk)
		}
		if err := validateDisk(r.Disk); err != nil {
			return invalidf(r.Name, "%s", err)
		}
	}
	if r.Shared && !r.IsPersistentVolume() {
		return invalidf(r.Name, "only persistent volumes can be shared")
	}
	if r.AllocationRole != "" {
		if err := ValidateRole(r.AllocationRole); err != nil {
			return fmt.Errorf("%w: resource %q: allocation: %w", ErrInvalid, r.Name, err)
		}
	}
	return nil
}

func validateRanges(rs Ranges) error {
	for _, r := range rs {
		if r.Begin > r.End {
			return fmt.Errorf("inverted range [%d-%d]", r.Begin, r.End)
		}
	}
	if !slices.IsSortedFunc(rs, cmpRange) {
		rs = slices.Clone(rs)
		slices.SortFunc(rs, cmpRange)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Begin <= rs[i-1].End {
			return fmt.Errorf("overlapping ranges [%d-%d] and [%d-%d]",
				rs[i-1].Begin, rs[i-1].End, rs[i].Begin, rs[i].End)
		}
	}
	return nil
}

func validateSet(s Set) error {
	if !slices.IsSorted(s) {
		s = slices.Clone(s)
		slices.Sort(s)
	}
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return fmt.Errorf("duplicate set item %q", s[i])
		}
	}
	return nil
}

func validateReservations(stack []Reservation) error {
	for i, res := range stack {
		switch res.Type {
		case Static:
			if i > 0 {
				return fmt.Errorf("refined reservation to %q is STATIC; refinements must be DYNAMIC", res.Role)
			}
		case Dynamic:
		default:
			return fmt.Errorf("reservation to %q has unknown type %s", res.Role, res.Type)
		}
		if res.Role == "*" {
			return fmt.Errorf("%w: role \"*\" cannot be reserved", ErrInvalidRole)
		}
		if err := ValidateRole(res.Role); err != nil {
			return fmt.Errorf("reservation: %w", err)
		}
		if i > 0 && !IsStrictSubrole(res.Role, stack[i-1].Role) {
			return fmt.Errorf("reservation to %q does not refine %q (it must be a sub-role)",
				res.Role, stack[i-1].Role)
		}
	}
	return nil
}

func validateDisk(d *DiskInfo) error {
	if d.Persistence != nil && d.Persistence.ID == "" {
		return errors.New("persistent volume with an empty ID")
	}
	if d.Volume != nil && d.Volume.Mode > RO {
		return fmt.Errorf("unknown volume mode %d", d.Volume.Mode)
	}
	if d.Source != nil {
		switch d.Source.Type {
		case SourcePath, SourceMount, SourceBlock, SourceRaw:
		default:
			return fmt.Errorf("unknown disk source type %d", d.Source.Type)
		}
	}
	return nil
}

// Validate checks every entry with Resource.Validate and that no name is
// used with two types.
func (rs Resources) Validate() error {
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			return err
		}
	}
	return rs.validateNameTypes()
}

// validateNameTypes reports a name used with two types.
func (rs Resources) validateNameTypes() error {
	if len(rs) > 16 {
		types := make(map[string]Type, len(rs))
		for i := range rs {
			r := &rs[i]
			if t, ok := types[r.Name]; ok && t != r.Type {
				return invalidf(r.Name, "used as both %s and %s", t, r.Type)
			}
			types[r.Name] = r.Type
		}
		return nil
	}
	for i := range rs {
		for j := range i {
			if rs[j].Name == rs[i].Name && rs[j].Type != rs[i].Type {
				return invalidf(rs[i].Name, "used as both %s and %s", rs[j].Type, rs[i].Type)
			}
		}
	}
	return nil
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

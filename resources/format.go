package resources

import "strings"

// String formats r in Mesos's text form, name(role):value, as Parse reads
// it: "cpus:4", "cpus(eng):0.5", "ports:[31000-32000]", "zones:{a,b}".
//
// What the text form cannot say is written as Mesos writes it in its logs,
// which Parse rejects rather than misreads: "(allocated: role)", a
// reservation stack "(reservations: [(DYNAMIC,eng,alice),...])", disk
// information in brackets "[MOUNT:/mnt/a,vol1:/data:RW]", "{REV}" for
// revocable, "<SHARED>" for shared and "(provider: id)".
func (r Resource) String() string {
	var b strings.Builder
	r.format(&b)
	return b.String()
}

func (r *Resource) format(b *strings.Builder) {
	b.WriteString(r.Name)
	if r.AllocationRole != "" {
		b.WriteString("(allocated: ")
		b.WriteString(r.AllocationRole)
		b.WriteByte(')')
	}
	if len(r.Reservations) == 1 && r.Reservations[0].Type == Static &&
		r.Reservations[0].Principal == "" && len(r.Reservations[0].Labels) == 0 {
		b.WriteByte('(')
		b.WriteString(r.Reservations[0].Role)
		b.WriteByte(')')
	} else if len(r.Reservations) > 0 {
		b.WriteString("(reservations: [")
		for i, res := range r.Reservations {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			b.WriteString(res.Type.String())
			b.WriteByte(',')
			b.WriteString(res.Role)
			if res.Principal != "" {
				b.WriteByte(',')
				b.WriteString(res.Principal)
			}
			if len(res.Labels) > 0 {
				b.WriteByte(',')
				formatLabels(b, res.Labels)
			}
			b.WriteByte(')')
		}
		b.WriteString("])")
	}
	if r.Disk != nil {
		r.Disk.format(b)
	}
	if r.Revocable {
		b.WriteString("{REV}")
	}
	if r.Shared {
		b.WriteString("<SHARED>")
	}
	if r.ProviderID != "" {
		b.WriteString("(provider: ")
		b.WriteString(r.ProviderID)
		b.WriteByte(')')
	}
	b.WriteByte(':')
	var buf [64]byte
	switch r.Type {
	case TypeScalar:
		b.Write(r.Scalar.appendTo(buf[:0]))
	case TypeRanges:
		b.Write(r.Ranges.appendTo(buf[:0]))
	case TypeSet:
		b.Write(r.Set.appendTo(buf[:0]))
	default:
		b.WriteString(r.Type.String())
	}
}

func formatLabels(b *strings.Builder, labels []Label) {
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Key)
		if l.Value != "" {
			b.WriteByte(':')
			b.WriteString(l.Value)
		}
	}
	b.WriteByte('}')
}

func (d *DiskInfo) format(b *strings.Builder) {
	b.WriteByte('[')
	sep := false
	if s := d.Source; s != nil {
		b.WriteString(s.Type.String())
		if s.Root != "" {
			b.WriteByte(':')
			b.WriteString(s.Root)
		}
		if s.ID != "" {
			b.WriteString("(id: ")
			b.WriteString(s.ID)
			b.WriteByte(')')
		}
		if s.Profile != "" {
			b.WriteString("(profile: ")
			b.WriteString(s.Profile)
			b.WriteByte(')')
		}
		sep = true
	}
	if p := d.Persistence; p != nil {
		if sep {
			b.WriteByte(',')
		}
		b.WriteString(p.ID)
	}
	if v := d.Volume; v != nil {
		b.WriteByte(':')
		b.WriteString(v.ContainerPath)
		if v.Mode != 0 {
			b.WriteByte(':')
			b.WriteString(v.Mode.String())
		}
	}
	b.WriteByte(']')
}

// String formats rs in Mesos's text form, the entries separated by ';', as
// Parse reads it: Parse(rs.String()) equals rs whenever every entry is
// unreserved or statically reserved and has no other attributes (as
// resources from the text form are). Empty Resources format as "".
func (rs Resources) String() string {
	var b strings.Builder
	for i := range rs {
		if i > 0 {
			b.WriteByte(';')
		}
		rs[i].format(&b)
	}
	return b.String()
}

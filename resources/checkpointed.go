package resources

import "fmt"

// Checkpointed resources are those that exist only because an operation
// made them: dynamic reservations (RESERVE) and persistent volumes
// (CREATE). An agent keeps them on disk, as Mesos's agent does, and its
// total is its configured resources with them applied: each replaces the
// plain resource it was made from.

// NeedsCheckpoint reports whether r was made by an operation: it is
// dynamically reserved or a persistent volume.
func (r Resource) NeedsCheckpoint() bool {
	return r.IsDynamicallyReserved() || r.IsPersistentVolume()
}

// Checkpointed returns the entries that need checkpointing, without
// allocation roles.
func (rs Resources) Checkpointed() Resources {
	return rs.Filter(Resource.NeedsCheckpoint).Unallocated()
}

// StripVolume returns r without its persistence and volume: the disk a
// persistent volume was created on, which DESTROY gives back. Its
// reservations and allocation stay.
func (r Resource) StripVolume() Resource {
	if r.Disk != nil && (r.Disk.Persistence != nil || r.Disk.Volume != nil) {
		if r.Disk.Source == nil {
			r.Disk = nil
		} else {
			r.Disk = &DiskInfo{Source: r.Disk.Source}
		}
		r.Shared = false
	}
	return r
}

// StripCheckpointed returns the resource r was made from: r without its
// persistence and volume and without its dynamic reservations (a static
// reservation at the bottom of the stack stays), unallocated.
func (r Resource) StripCheckpointed() Resource {
	r.AllocationRole = ""
	r = r.StripVolume()
	for len(r.Reservations) > 0 && r.Reservations[len(r.Reservations)-1].Type == Dynamic {
		r = r.PopReservation()
	}
	return r
}

// ApplyCheckpointed returns rs (an agent's configured resources) with each
// checkpointed resource of ckpt replacing the resource it was made from.
// An entry of ckpt that needs no checkpointing, or whose origin rs does not
// hold (the agent's resources changed), is an error wrapping ErrInvalid or
// ErrInsufficient; rs is not changed.
func (rs Resources) ApplyCheckpointed(ckpt Resources) (Resources, error) {
	out := rs.Unallocated()
	for _, r := range ckpt {
		if !r.NeedsCheckpoint() {
			return nil, fmt.Errorf("%w: checkpointed resource %s is neither dynamically reserved nor a persistent volume", ErrInvalid, r)
		}
		r.AllocationRole = ""
		from := New(r.StripCheckpointed())
		if !out.Contains(from) {
			return nil, fmt.Errorf("%w: checkpointed resource %s was made from %s, which the agent does not have", ErrInsufficient, r, from)
		}
		out = out.Subtract(from).AddResource(r)
	}
	return out, nil
}

// UnapplyCheckpointed returns rs with every checkpointed entry replaced by
// the resource it was made from: the inverse of ApplyCheckpointed.
func (rs Resources) UnapplyCheckpointed() Resources {
	var out Resources
	for _, r := range rs {
		r.AllocationRole = ""
		if r.NeedsCheckpoint() {
			r = r.StripCheckpointed()
		}
		out = out.AddResource(r)
	}
	return out
}

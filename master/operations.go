package master

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// Offer operations that change the shape of resources without using them:
// RESERVE and UNRESERVE (dynamic reservations) and CREATE and DESTROY
// (persistent volumes). An ACCEPT applies its operations in order to the
// pool of its offers, so a LAUNCH after a RESERVE and a CREATE uses the
// reserved disk and the volume. As in Mesos, an invalid operation is
// dropped with a warning and the ACCEPT goes on: its resources stay in the
// pool and return to the allocator with whatever else is left unused (a
// LAUNCH that needed its result fails with TASK_ERROR).
//
// An operation applied changes the allocation (allocator.UpdateAllocation),
// the master's view of the agent's total, and the agent's checkpointed
// resources: the master sends the agent CHECKPOINT_RESOURCES with all of
// them (every dynamic reservation and persistent volume of its total), and
// the agent persists them and creates or removes volume directories.

// errOperation marks an offer operation the master drops.
var errOperation = errors.New("invalid operation")

// operate validates a RESERVE, UNRESERVE, CREATE, DESTROY, GROW_VOLUME or
// SHRINK_VOLUME against the pool and applies it. What a resize gives back
// goes to the allocator at once, without the ACCEPT's filter, as Mesos
// does; the others' results stay in the pool for the operations after
// them.
func (l *launcher) operate(op *mesospb.Offer_Operation) {
	if err := checkOperation(l.fw.approvers, op); err != nil {
		// Dropped as an invalid operation is, as Mesos drops it.
		l.c.log.Warn("offer operation not authorized; dropped", "framework", l.fw.id, "agent", l.a.id,
			"principal", l.fw.info.GetPrincipal(), "operation", op.GetType(), "err", err)
		return
	}
	from, to, err := conversion(l.a, op, l)
	if err == nil && !l.pool.Contains(from) {
		err = fmt.Errorf("%w: %s needs %s but the offers have %s left", errOperation, op.GetType(), from, l.pool)
	}
	if err == nil {
		err = l.c.alloc.UpdateAllocation(l.fw.id, l.a.id, from, to)
	}
	if err != nil {
		l.c.log.Warn("offer operation dropped", "framework", l.fw.id, "agent", l.a.id, "operation", op.GetType(), "err", err)
		return
	}
	l.pool = l.pool.Subtract(from)
	if t := op.GetType(); t == mesospb.Offer_Operation_GROW_VOLUME || t == mesospb.Offer_Operation_SHRINK_VOLUME {
		l.c.recover(l.fw.id, l.a.id, to, 0)
	} else {
		l.pool = l.pool.Add(to)
	}
	l.c.convertAgent(l.a, from.Unallocated(), to.Unallocated())
	l.c.log.Info("offer operation applied", "framework", l.fw.id, "agent", l.a.id, "operation", op.GetType(), "resources", to.String())
}

// convertAgent applies a conversion to the master's view of an agent's
// total and sends the agent its checkpointed resources.
func (c *core) convertAgent(a *agent, from, to resources.Resources) {
	a.total = a.total.Subtract(from).Add(to)
	a.info.Resources = a.total.ToProto()
	c.sendCheckpoint(a)
}

// sendCheckpoint sends the agent every resource of its total that needs
// checkpointing.
func (c *core) sendCheckpoint(a *agent) {
	c.sendAgent(a, &internalpb.Event{
		Type:                internalpb.Event_CHECKPOINT_RESOURCES.Enum(),
		CheckpointResources: &internalpb.Event_CheckpointResources{Resources: a.total.Checkpointed().ToProto()},
	})
}

// requester is who asks for an operation: a framework accepting offers
// (the launcher) or the operator. Mesos checks both with the same rules
// but for how the resources are read and whose principal they must name.
type requester interface {
	// operationResources parses an operation's resources and returns the
	// role they are allocated to ("" for the operator, whose resources
	// are unallocated).
	operationResources(ps []mesospb.Resource) (resources.Resources, string, error)
	// principal returns the principal a reservation or volume must name,
	// when it names one, and whether there is one to check.
	principal() (string, bool)
}

// conversion returns what an operation on agent a takes and what it puts
// back in its place, after checking it with Mesos's rules.
func conversion(a *agent, op *mesospb.Offer_Operation, by requester) (from, to resources.Resources, err error) {
	switch op.GetType() {
	case mesospb.Offer_Operation_RESERVE:
		if op.Reserve == nil {
			return nil, nil, fmt.Errorf("%w: RESERVE without reserve", errOperation)
		}
		rs, role, err := by.operationResources(op.Reserve.Resources)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rs {
			if err := validateReserve(r, role, by); err != nil {
				return nil, nil, err
			}
		}
		if len(op.Reserve.Source) == 0 {
			return rs.PopReservation(), rs, nil
		}
		source, _, err := by.operationResources(op.Reserve.Source)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: RESERVE source: %s", errOperation, strings.TrimPrefix(err.Error(), errOperation.Error()+": "))
		}
		if err := validateReserveSource(source, rs); err != nil {
			return nil, nil, err
		}
		return source, rs, nil

	case mesospb.Offer_Operation_UNRESERVE:
		if op.Unreserve == nil {
			return nil, nil, fmt.Errorf("%w: UNRESERVE without unreserve", errOperation)
		}
		rs, _, err := by.operationResources(op.Unreserve.Resources)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rs {
			switch {
			case !r.IsDynamicallyReserved():
				return nil, nil, fmt.Errorf("%w: UNRESERVE: %s is not dynamically reserved", errOperation, r)
			case r.IsPersistentVolume():
				return nil, nil, fmt.Errorf("%w: UNRESERVE: %s is a persistent volume; destroy it first", errOperation, r)
			}
		}
		return rs, rs.PopReservation(), nil

	case mesospb.Offer_Operation_CREATE:
		if op.Create == nil {
			return nil, nil, fmt.Errorf("%w: CREATE without create", errOperation)
		}
		rs, _, err := by.operationResources(op.Create.Volumes)
		if err != nil {
			return nil, nil, err
		}
		ids := map[string]bool{}
		for _, v := range a.total.PersistentVolumes() {
			ids[v.Role()+"\x00"+v.Disk.Persistence.ID] = true
		}
		from := make(resources.Resources, 0, len(rs))
		for _, r := range rs {
			if err := validateVolume(r); err != nil {
				return nil, nil, err
			}
			switch {
			case r.IsUnreserved():
				return nil, nil, fmt.Errorf("%w: CREATE: volume %s is not on reserved disk", errOperation, r.Disk.Persistence.ID)
			case r.Revocable:
				return nil, nil, fmt.Errorf("%w: CREATE: volume %s is on revocable disk", errOperation, r.Disk.Persistence.ID)
			case r.Shared:
				return nil, nil, fmt.Errorf("%w: CREATE: shared persistent volumes are not supported", errOperation)
			}
			if p, check := by.principal(); check && r.Disk.Persistence.Principal != "" && r.Disk.Persistence.Principal != p {
				return nil, nil, fmt.Errorf("%w: CREATE: volume principal %q is not the framework's principal %q", errOperation, r.Disk.Persistence.Principal, p)
			}
			key := r.Role() + "\x00" + r.Disk.Persistence.ID
			if ids[key] {
				return nil, nil, fmt.Errorf("%w: CREATE: persistence ID %q is not unique for role %q on the agent", errOperation, r.Disk.Persistence.ID, r.Role())
			}
			ids[key] = true
			from = append(from, r.StripVolume())
		}
		return resources.New(from...), rs, nil

	case mesospb.Offer_Operation_DESTROY:
		if op.Destroy == nil {
			return nil, nil, fmt.Errorf("%w: DESTROY without destroy", errOperation)
		}
		rs, _, err := by.operationResources(op.Destroy.Volumes)
		if err != nil {
			return nil, nil, err
		}
		to := make(resources.Resources, 0, len(rs))
		for _, r := range rs {
			if !r.IsPersistentVolume() {
				return nil, nil, fmt.Errorf("%w: DESTROY: %s is not a persistent volume", errOperation, r)
			}
			if !a.total.ContainsResource(withoutAllocation(r)) {
				return nil, nil, fmt.Errorf("%w: DESTROY: persistent volume %s not found on the agent", errOperation, r.Disk.Persistence.ID)
			}
			to = append(to, r.StripVolume())
		}
		return rs, resources.New(to...), nil

	case mesospb.Offer_Operation_GROW_VOLUME, mesospb.Offer_Operation_SHRINK_VOLUME:
		return resizeConversion(op, by) // operator_volumes.go
	}
	return nil, nil, fmt.Errorf("%w: operation %v is not supported", errOperation, op.GetType())
}

func withoutAllocation(r resources.Resource) resources.Resource {
	r.AllocationRole = ""
	return r
}

// operationResources parses an operation's resources, giving those without
// an allocation role the offers' role; they must all be allocated to one
// role, as Mesos requires of framework operations.
func (l *launcher) operationResources(ps []mesospb.Resource) (resources.Resources, string, error) {
	rs, err := l.taskResources(ps)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", errOperation, err)
	}
	if rs.Empty() {
		return nil, "", fmt.Errorf("%w: no resources", errOperation)
	}
	role := rs[0].AllocationRole
	for _, r := range rs[1:] {
		if r.AllocationRole != role {
			return nil, "", fmt.Errorf("%w: resources allocated to several roles (%q and %q)", errOperation, role, r.AllocationRole)
		}
	}
	if !l.roles[role] {
		return nil, "", fmt.Errorf("%w: resources allocated to role %q, which none of the offers is for", errOperation, role)
	}
	return rs, role, nil
}

// principal is the framework's principal; as in Mesos, a framework that
// sets none may name any principal in its reservations and volumes.
func (l *launcher) principal() (string, bool) {
	return l.fw.info.GetPrincipal(), l.fw.info.Principal != nil
}

// validateReserve checks one resource of a RESERVE: its last reservation is
// the new, dynamic one, to the role it is allocated to (if it is), made by
// the requester's principal if it names one.
func validateReserve(r resources.Resource, role string, by requester) error {
	switch {
	case !r.IsDynamicallyReserved():
		return fmt.Errorf("%w: RESERVE: %s is not dynamically reserved", errOperation, r)
	case r.IsPersistentVolume():
		return fmt.Errorf("%w: RESERVE: %s is a persistent volume; reserve the disk, then create the volume", errOperation, r)
	case r.Revocable:
		return fmt.Errorf("%w: RESERVE: %s is revocable", errOperation, r)
	case role != "" && r.Role() != role:
		return fmt.Errorf("%w: RESERVE: a reservation to role %q of resources allocated to role %q", errOperation, r.Role(), role)
	}
	res := r.Reservations[len(r.Reservations)-1]
	if p, check := by.principal(); check && res.Principal != "" && res.Principal != p {
		return fmt.Errorf("%w: RESERVE: reservation principal %q is not the framework's principal %q", errOperation, res.Principal, p)
	}
	return nil
}

// validateReserveSource checks a RESERVE that names its source (a change
// of reservation, as Mesos 1.10 allows): source and target each carry one
// reservation stack throughout, and the same amounts.
func validateReserveSource(source, target resources.Resources) error {
	for _, part := range []struct {
		what string
		rs   resources.Resources
	}{{"source", source}, {"resources", target}} {
		for _, r := range part.rs[1:] {
			if !slices.EqualFunc(r.Reservations, part.rs[0].Reservations, resources.Reservation.Equal) {
				return fmt.Errorf("%w: RESERVE: the %s mix reservations (%s)", errOperation, part.what, part.rs)
			}
		}
	}
	if !source.Flatten().Equal(target.Flatten()) {
		return fmt.Errorf("%w: RESERVE: source %s and resources %s are not the same amounts", errOperation, source.Flatten(), target.Flatten())
	}
	return nil
}

// validateVolume checks the DiskInfo of a volume to create: a persistence
// ID that is a valid path component, and a read-write volume at a relative
// path inside the sandbox.
func validateVolume(r resources.Resource) error {
	if !r.IsPersistentVolume() {
		return fmt.Errorf("%w: CREATE: %s is not a persistent volume", errOperation, r)
	}
	id := r.Disk.Persistence.ID
	if id == "." || id == ".." || strings.ContainsFunc(id, func(c rune) bool { return c < ' ' || c == 0x7f || c == '/' || c == '\\' }) {
		return fmt.Errorf("%w: CREATE: persistence ID %q is not valid", errOperation, id)
	}
	v := r.Disk.Volume
	switch {
	case v == nil:
		return fmt.Errorf("%w: CREATE: volume %s has no volume (container path and mode)", errOperation, id)
	case v.HostPath != "":
		return fmt.Errorf("%w: CREATE: volume %s sets a host path; the agent chooses it", errOperation, id)
	case v.Mode == resources.RO:
		return fmt.Errorf("%w: CREATE: volume %s is read-only; persistent volumes are read-write", errOperation, id)
	}
	return validateContainerPath(v.ContainerPath)
}

// validateContainerPath accepts a relative path that stays inside the
// sandbox.
func validateContainerPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: the volume's container path is empty", errOperation)
	case path.IsAbs(p):
		return fmt.Errorf("%w: the volume's container path %q is absolute; it must be relative to the sandbox", errOperation, p)
	case path.Clean(p) == "." || strings.Contains("/"+p+"/", "/../"):
		return fmt.Errorf("%w: the volume's container path %q leaves the sandbox", errOperation, p)
	}
	return nil
}

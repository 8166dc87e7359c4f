package allocatortest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/resources"
)

// reserved returns rs dynamically reserved to role.
func reserved(rs resources.Resources, role string) resources.Resources {
	return rs.PushReservation(resources.Reservation{Type: resources.Dynamic, Role: role, Principal: "ops"})
}

// volume returns the disk entries of rs turned into the persistent volume id.
func volume(rs resources.Resources, id string) resources.Resources {
	out := make(resources.Resources, 0, len(rs))
	for _, r := range rs {
		if r.Name == resources.NameDisk {
			r.Disk = &resources.DiskInfo{
				Persistence: &resources.Persistence{ID: id},
				Volume:      &resources.Volume{ContainerPath: "data", Mode: resources.RW},
			}
		}
		out = append(out, r)
	}
	return resources.New(out...)
}

// consumed is what counts toward the quota of role.
func consumed(a allocator.Allocator, role string) allocator.Quantities {
	return roleInfos(a)[role].Consumed
}

func testUpdateAllocation(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024;disk:1000")
	addFramework(t, a, "db", "db")
	o := one(t, allocate(t, a, t0))
	sharesBefore := roleInfos(a)["db"].Share

	// RESERVE part of the offer: the allocation and the agent's total
	// change shape, the share does not, and the reservation counts toward
	// the role's consumption whole.
	plain := res("cpus:2;mem:512;disk:500")
	from := plain.Allocate("db")
	to := reserved(plain, "db").Allocate("db")
	require.NoError(t, a.UpdateAllocation("db", "a1", from, to))
	require.NoError(t, a.Check())
	requireRes(t, res("cpus:2;mem:512;disk:500").Allocate("db").Add(to), a.Allocation("db")["a1"], "allocation after RESERVE")
	require.InDelta(t, sharesBefore, roleInfos(a)["db"].Share, 1e-9)
	require.Equal(t, resources.ScalarOf(4), consumed(a, "db")["cpus"])

	// CREATE a volume on the reserved disk, in the same allocation.
	disk := reserved(res("disk:500"), "db")
	vol := volume(disk, "v1")
	require.NoError(t, a.UpdateAllocation("db", "a1", disk.Allocate("db"), vol.Allocate("db")))
	require.NoError(t, a.Check())

	// Everything goes back: the reserved part and the volume are offered
	// to db alone, the rest to anyone.
	require.NoError(t, a.Recover("db", "a1", a.Allocation("db")["a1"], 0, t0))
	require.NoError(t, a.Check())
	addFramework(t, a, "other", "other")
	require.NoError(t, a.Suppress("db"))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "other", o.FrameworkID)
	requireRes(t, res("cpus:2;mem:512;disk:500").Allocate("other"), o.Resources, "offer to another role")
	kept := reserved(res("cpus:2;mem:512"), "db").Add(vol)
	requireRes(t, kept, a.Available("a1"), "the reservations and the volume stay for db")
	require.NoError(t, a.Revive("db"))
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "db", o.FrameworkID)
	requireRes(t, kept.Allocate("db"), o.Resources, "offer to the role")

	// DESTROY and UNRESERVE: the resources are plain again.
	require.NoError(t, a.UpdateAllocation("db", "a1", vol.Allocate("db"), disk.Allocate("db")))
	require.NoError(t, a.UpdateAllocation("db", "a1", reserved(plain, "db").Allocate("db"), plain.Allocate("db")))
	require.NoError(t, a.Check())
	requireRes(t, plain.Allocate("db"), a.Allocation("db")["a1"], "allocation after DESTROY and UNRESERVE")
	require.Equal(t, resources.ScalarOf(2), consumed(a, "db")["cpus"], "unreserved and held by db")
}

func testUpdateAllocationUnallocated(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024;disk:1000")
	plain := res("cpus:1;disk:100")
	require.NoError(t, a.UpdateAllocation("", "a1", plain, reserved(plain, "db")))
	require.NoError(t, a.Check())
	requireRes(t, res("cpus:3;mem:1024;disk:900").Add(reserved(plain, "db")), a.Available("a1"), "available after an operator RESERVE")

	addFramework(t, a, "other", "other")
	o := one(t, allocate(t, a, t0))
	requireRes(t, res("cpus:3;mem:1024;disk:900").Allocate("other"), o.Resources, "offer to another role")
	addFramework(t, a, "db", "db")
	require.Equal(t, resources.ScalarOf(1), consumed(a, "db")["cpus"], "an unallocated reservation counts toward its role")
	o = one(t, allocate(t, a, t0))
	require.Equal(t, "db", o.FrameworkID)
	requireRes(t, reserved(plain, "db").Allocate("db"), o.Resources, "the reservation goes to its role")

	// Reserved resources allocated are not free for the operator.
	require.ErrorIs(t, a.UpdateAllocation("", "a1", reserved(plain, "db"), plain), allocator.ErrOverAllocation)
	require.NoError(t, a.Recover("db", "a1", o.Resources, 0, t0))
	require.NoError(t, a.UpdateAllocation("", "a1", reserved(plain, "db"), plain))
	require.NoError(t, a.Check())
	requireRes(t, res("cpus:1;mem:0;disk:100"), a.Available("a1"), "unreserved again")
}

func testUpdateAllocationErrors(t *testing.T, a allocator.Allocator) {
	addAgent(t, a, "a1", "cpus:4;mem:1024;disk:1000")
	addFramework(t, a, "db", "db")
	addFramework(t, a, "x", "x")
	require.NoError(t, a.Suppress("x"))
	one(t, allocate(t, a, t0))
	frameworks, agents := []string{"db", "x"}, []string{"a1"}
	before := snapshot(a, frameworks, agents)
	infos := roleInfos(a)

	plain := res("cpus:1").Allocate("db")
	for name, tc := range map[string]struct {
		fw, agent string
		from, to  resources.Resources
		err       error
	}{
		"unknown framework":    {"nope", "a1", plain, reserved(plain, "db"), allocator.ErrUnknownFramework},
		"unknown agent":        {"db", "nope", plain, reserved(plain, "db"), allocator.ErrUnknownAgent},
		"not held":             {"db", "a1", res("cpus:5").Allocate("db"), reserved(res("cpus:5"), "db").Allocate("db"), allocator.ErrOverAllocation},
		"held by another":      {"x", "a1", res("cpus:1").Allocate("x"), reserved(res("cpus:1"), "x").Allocate("x"), allocator.ErrOverAllocation},
		"quantities differ":    {"db", "a1", plain, reserved(res("cpus:2"), "db").Allocate("db"), allocator.ErrInvalid},
		"names differ":         {"db", "a1", plain, reserved(res("mem:1"), "db").Allocate("db"), allocator.ErrInvalid},
		"another role":         {"db", "a1", plain, reserved(res("cpus:1"), "other").Allocate("db"), allocator.ErrInvalid},
		"role changes":         {"db", "a1", plain, res("cpus:1").Allocate("other"), allocator.ErrInvalid},
		"allocated, operator":  {"", "a1", plain, reserved(plain, "db"), allocator.ErrInvalid},
		"not free, operator":   {"", "a1", res("cpus:1"), reserved(res("cpus:1"), "db"), allocator.ErrOverAllocation},
		"unknown agent, oper.": {"", "nope", res("cpus:1"), reserved(res("cpus:1"), "db"), allocator.ErrUnknownAgent},
	} {
		err := a.UpdateAllocation(tc.fw, tc.agent, tc.from, tc.to)
		require.ErrorIs(t, err, tc.err, name)
		require.Equal(t, before, snapshot(a, frameworks, agents), "%s changed something", name)
		require.Equal(t, infos, roleInfos(a), "%s changed the roles", name)
		require.NoError(t, a.Check(), name)
	}
}

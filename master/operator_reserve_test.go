package master_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// opReserved returns rs reserved to role by the operator, with a label.
func opReserved(text, role string) resources.Resources {
	return resources.MustParse(text).PushReservation(resources.Reservation{
		Type: resources.Dynamic, Role: role, Principal: "ops", Labels: []resources.Label{{Key: "owner", Value: "dba"}},
	})
}

func reserveCall(agentID string, rs resources.Resources) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(),
		ReserveResources: &masterpb.Call_ReserveResources{AgentID: mesospb.AgentID{Value: agentID}, Resources: rs.ToProto()}}
}

func unreserveCall(agentID string, rs resources.Resources) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_UNRESERVE_RESOURCES.Enum(),
		UnreserveResources: &masterpb.Call_UnreserveResources{AgentID: mesospb.AgentID{Value: agentID}, Resources: rs.ToProto()}}
}

func createVolumesCall(agentID string, rs resources.Resources) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_CREATE_VOLUMES.Enum(),
		CreateVolumes: &masterpb.Call_CreateVolumes{AgentID: mesospb.AgentID{Value: agentID}, Volumes: rs.ToProto()}}
}

func destroyVolumesCall(agentID string, rs resources.Resources) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_DESTROY_VOLUMES.Enum(),
		DestroyVolumes: &masterpb.Call_DestroyVolumes{AgentID: mesospb.AgentID{Value: agentID}, Volumes: rs.ToProto()}}
}

// apply makes an operator call that must be applied.
func (h *harness) apply(call *masterpb.Call) {
	h.t.Helper()
	resp, err := h.operator(call)
	require.NoError(h.t, err)
	require.Nil(h.t, resp)
}

// rescinded returns the offers the stream saw rescinded since the last
// look.
func (h *harness) rescinded(stream string) []string {
	var out []string
	rest := h.sched[stream][:0]
	for _, ev := range h.sched[stream] {
		if ev.GetType() == schedulerpb.Event_RESCIND {
			out = append(out, ev.Rescind.OfferID.Value)
		} else {
			rest = append(rest, ev)
		}
	}
	h.sched[stream] = rest
	return out
}

// outstanding sums the offers the master holds out, to every framework.
func (h *harness) outstanding() resources.Resources {
	var total resources.Resources
	for _, f := range h.sm.State().GetFrameworks.Frameworks {
		total = total.Add(sumOffers(f.Offers))
	}
	return total
}

func TestOperatorReserveUnreserve(t *testing.T) {
	h := newHarness(t, master.Config{})
	os, osID := h.subscribe(roleFramework("other", "other", ""))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	offers := h.offers(os)
	require.Len(t, offers, 1)

	// The agent's whole is offered to other: the offer is rescinded to
	// make room for the reservation.
	reserved := opReserved("cpus:2;mem:512", "db")
	h.apply(reserveCall(aid, reserved))
	assert.Equal(t, []string{offers[0].ID.Value}, h.rescinded(os))
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	requireSame(t, reserved, ckpt, "checkpointed resources")
	plain := resources.MustParse("cpus:2;mem:512;disk:1000")
	requireSame(t, plain.Add(reserved), agentTotal(t, h, aid), "agent total")

	// other is offered what is left; db, once there, the reservation with
	// the operator's principal and labels.
	h.advance(40 * time.Millisecond)
	requireSame(t, plain.Allocate("other"), sumOffers(h.offers(os)), "offer to other")
	dbs, _ := h.subscribe(roleFramework("db", "db", ""))
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	requireSame(t, reserved.Allocate("db"), sumOffers(offers), "offer to db")
	// db is not RESERVATION_REFINEMENT: its offers hold the reservations
	// in the pre-refinement format (role and reservation), as Mesos's.
	for _, r := range offers[0].Resources {
		require.Empty(t, r.Reservations)
		assert.Equal(t, "db", r.GetRole())
		require.NotNil(t, r.Reservation)
		assert.Equal(t, "ops", r.Reservation.GetPrincipal())
		require.NotNil(t, r.Reservation.Labels)
		assert.Equal(t, "owner", r.Reservation.Labels.Labels[0].Key)
	}

	// UNRESERVE: db's offer holds them and is rescinded; then they are
	// anyone's.
	h.apply(unreserveCall(aid, reserved))
	assert.Equal(t, []string{offers[0].ID.Value}, h.rescinded(dbs))
	ckpt, n = h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	require.Empty(t, ckpt)
	all := resources.MustParse("cpus:4;mem:1024;disk:1000")
	requireSame(t, all, agentTotal(t, h, aid), "agent total")
	h.advance(40 * time.Millisecond)
	requireSame(t, all, h.outstanding().Unallocated(), "everything offered, unreserved")
	require.Empty(t, h.outstanding().Reserved())
	require.Empty(t, h.rescinded(os))
	_ = osID
}

func TestOperatorReserveRescindsOnlyWhatItNeeds(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(roleFramework("web", "web", ""))
	_, a1 := h.registerAgent("cpus:4;mem:1024")
	_, a2 := h.registerAgent("cpus:8;mem:2048")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 2)
	byAgent := map[string]mesospb.Offer{}
	for _, o := range offers {
		byAgent[o.AgentID.Value] = o
	}

	// The offer on agent 1 goes; the one on agent 2 stays.
	h.apply(reserveCall(a1, opReserved("cpus:1", "db")))
	assert.Equal(t, []string{byAgent[a1].ID.Value}, h.rescinded(fs))

	// Free resources enough: nothing is rescinded. web declines agent 2's
	// offer for an hour, so what it held is free.
	require.NoError(t, h.call(fs, fid, declineCall([]mesospb.Offer{byAgent[a2]}, 3600)))
	h.apply(reserveCall(a2, opReserved("cpus:2;mem:100", "db")))
	require.Empty(t, h.rescinded(fs))
	requireSame(t, resources.MustParse("cpus:6;mem:1948").Add(opReserved("cpus:2;mem:100", "db")), agentTotal(t, h, a2), "agent 2 total")
}

func TestOperatorInvalidCallsChangeNothing(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", ""))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)

	// A reservation and a volume to aim at, and a task using 2 cpus.
	h.apply(reserveCall(aid, opReserved("disk:200", "db")))
	v1 := vol(opReserved("disk:100", "db"), "v1", "data")
	h.apply(createVolumesCall(aid, v1))
	h.rescinded(dbs)
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, launchOp(commandTask("t1", offers[0], "cpus:2;mem:256")))))
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	_, _ = h.lastCheckpoint(as)
	total := agentTotal(t, h, aid)
	offered := h.outstanding()

	withAllocation := opReserved("cpus:1", "db").Allocate("db")
	for _, tc := range []struct {
		name     string
		call     *masterpb.Call
		conflict bool
	}{
		{"unknown agent", reserveCall("nope", opReserved("cpus:1", "db")), false},
		{"no reserve_resources", &masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum()}, false},
		{"no resources", reserveCall(aid, nil), false},
		{"allocated resources", reserveCall(aid, withAllocation), false},
		{"not dynamically reserved", reserveCall(aid, resources.MustParse("cpus:1")), false},
		{"reserved to *", reserveCall(aid, resources.MustParse("cpus:1").PushReservation(resources.Reservation{Type: resources.Dynamic, Role: "*"})), false},
		{"a persistent volume", reserveCall(aid, vol(opReserved("disk:10", "db"), "v9", "x")), false},
		{"a source of other amounts", &masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(),
			ReserveResources: &masterpb.Call_ReserveResources{AgentID: mesospb.AgentID{Value: aid},
				Source: resources.MustParse("cpus:2").ToProto(), Resources: opReserved("cpus:1", "db").ToProto()}}, false},
		{"more than is free, tasks aside", reserveCall(aid, opReserved("cpus:3", "db")), true},
		{"more than the agent has", reserveCall(aid, opReserved("mem:2000", "db")), true},
		{"unreserve unreserved", unreserveCall(aid, resources.MustParse("cpus:1")), false},
		{"unreserve a volume", unreserveCall(aid, v1), false},
		{"unreserve what is not reserved", unreserveCall(aid, opReserved("cpus:1", "db")), true},
		{"volume on unreserved disk", createVolumesCall(aid, vol(resources.MustParse("disk:10"), "v2", "data")), false},
		{"duplicate persistence ID", createVolumesCall(aid, vol(opReserved("disk:100", "db"), "v1", "other")), false},
		{"absolute container path", createVolumesCall(aid, vol(opReserved("disk:100", "db"), "v2", "/data")), false},
		{"no create_volumes", &masterpb.Call{Type: masterpb.Call_CREATE_VOLUMES.Enum()}, false},
		{"destroy an unknown volume", destroyVolumesCall(aid, vol(opReserved("disk:100", "db"), "nope", "data")), false},
		{"destroy plain disk", destroyVolumesCall(aid, opReserved("disk:100", "db")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.operator(tc.call)
			require.Nil(t, resp)
			if tc.conflict {
				require.ErrorIs(t, err, master.ErrConflict)
			} else {
				require.ErrorIs(t, err, master.ErrInvalidCall)
			}
			t.Log(err)
			_, n := h.lastCheckpoint(as)
			require.Zero(t, n, "nothing checkpointed")
			require.Empty(t, h.rescinded(dbs), "no offer rescinded")
			requireSame(t, total, agentTotal(t, h, aid), "agent total")
			requireSame(t, offered, h.outstanding(), "offers")
		})
	}
}

func TestOperatorVolumes(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", ""))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	require.Len(t, h.offers(dbs), 1)

	disk := opReserved("disk:500", "db")
	h.apply(reserveCall(aid, disk))
	volume := vol(opReserved("disk:500", "db"), "v1", "data")
	volume[0].Disk.Persistence.Principal = "ops"
	h.apply(createVolumesCall(aid, volume))
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 2, n)
	requireSame(t, volume, ckpt, "the volume is checkpointed")
	requireSame(t, resources.MustParse("cpus:4;mem:1024;disk:500").Add(volume), agentTotal(t, h, aid), "agent total")

	// db is offered the volume and runs a task on it: the volume cannot
	// be destroyed under it.
	h.rescinded(dbs)
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)
	require.Len(t, sumOffers(offers).PersistentVolumes(), 1)
	task := commandTask("t1", offers[0], "cpus:1")
	task.Resources = resources.MustParse("cpus:1").Add(volume).ToProto()
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, launchOp(task))))
	require.Empty(t, h.updates(dbs), "task accepted")
	_, err := h.operator(destroyVolumesCall(aid, volume))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	assert.Contains(t, err.Error(), "in use")

	// Once the task ended, DESTROY takes it back from db's offer.
	h.sendStatus(as, aid, dbID, "t1", mesospb.TASK_FINISHED)
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	require.Len(t, sumOffers(offers).PersistentVolumes(), 1)
	h.apply(destroyVolumesCall(aid, volume))
	assert.Equal(t, []string{offers[0].ID.Value}, h.rescinded(dbs))
	ckpt, n = h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	requireSame(t, disk, ckpt, "the reserved disk stays")
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Empty(t, sumOffers(offers).PersistentVolumes())
	requireSame(t, resources.MustParse("cpus:4;mem:1024;disk:500").Add(disk).Allocate("db"), sumOffers(offers), "offer after DESTROY")
}

// A RESERVE that names its source moves a reservation from one role to
// another in one step.
func TestOperatorReserveFromSource(t *testing.T) {
	h := newHarness(t, master.Config{})
	as, aid := h.registerAgent("cpus:4;mem:1024")
	h.apply(reserveCall(aid, opReserved("cpus:1;mem:100", "db")))
	moved := opReserved("cpus:1;mem:100", "analytics")
	h.apply(&masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(),
		ReserveResources: &masterpb.Call_ReserveResources{AgentID: mesospb.AgentID{Value: aid},
			Source: opReserved("cpus:1;mem:100", "db").ToProto(), Resources: moved.ToProto()}})
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 2, n)
	requireSame(t, moved, ckpt, "checkpointed resources")
	requireSame(t, resources.MustParse("cpus:3;mem:924").Add(moved), agentTotal(t, h, aid), "agent total")
}

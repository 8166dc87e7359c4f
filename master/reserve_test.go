package master_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

func roleFramework(name, role, principal string) mesospb.FrameworkInfo {
	info := frameworkInfo(name)
	info.Role = ptr(role)
	if principal != "" {
		info.Principal = ptr(principal)
	}
	return info
}

// dyn returns rs dynamically reserved to role by principal.
func dyn(text, role, principal string) resources.Resources {
	return resources.MustParse(text).PushReservation(resources.Reservation{Type: resources.Dynamic, Role: role, Principal: principal})
}

// vol returns the disk of rs as the persistent volume id at containerPath.
func vol(rs resources.Resources, id, containerPath string) resources.Resources {
	out := make(resources.Resources, 0, len(rs))
	for _, r := range rs {
		if r.Name == resources.NameDisk {
			r.Disk = &resources.DiskInfo{
				Persistence: &resources.Persistence{ID: id},
				Volume:      &resources.Volume{ContainerPath: containerPath, Mode: resources.RW},
			}
		}
		out = append(out, r)
	}
	return resources.New(out...)
}

func reserveOp(rs resources.Resources) mesospb.Offer_Operation {
	return mesospb.Offer_Operation{Type: mesospb.Offer_Operation_RESERVE.Enum(),
		Reserve: &mesospb.Offer_Operation_Reserve{Resources: rs.ToProto()}}
}

func unreserveOp(rs resources.Resources) mesospb.Offer_Operation {
	return mesospb.Offer_Operation{Type: mesospb.Offer_Operation_UNRESERVE.Enum(),
		Unreserve: &mesospb.Offer_Operation_Unreserve{Resources: rs.ToProto()}}
}

func createOp(rs resources.Resources) mesospb.Offer_Operation {
	return mesospb.Offer_Operation{Type: mesospb.Offer_Operation_CREATE.Enum(),
		Create: &mesospb.Offer_Operation_Create{Volumes: rs.ToProto()}}
}

func destroyOp(rs resources.Resources) mesospb.Offer_Operation {
	return mesospb.Offer_Operation{Type: mesospb.Offer_Operation_DESTROY.Enum(),
		Destroy: &mesospb.Offer_Operation_Destroy{Volumes: rs.ToProto()}}
}

func launchOp(tasks ...mesospb.TaskInfo) mesospb.Offer_Operation {
	return mesospb.Offer_Operation{Type: mesospb.Offer_Operation_LAUNCH.Enum(),
		Launch: &mesospb.Offer_Operation_Launch{TaskInfos: tasks}}
}

func acceptOps(offers []mesospb.Offer, refuse float64, ops ...mesospb.Offer_Operation) *schedulerpb.Call {
	return &schedulerpb.Call{
		Type: schedulerpb.Call_ACCEPT.Enum(),
		Accept: &schedulerpb.Call_Accept{
			OfferIDs:   offerIDs(offers...),
			Operations: ops,
			Filters:    &mesospb.Filters{RefuseSeconds: ptr(refuse)},
		},
	}
}

func declineCall(offers []mesospb.Offer, refuse float64) *schedulerpb.Call {
	return &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(),
		Decline: &schedulerpb.Call_Decline{OfferIDs: offerIDs(offers...), Filters: &mesospb.Filters{RefuseSeconds: ptr(refuse)}}}
}

// lastCheckpoint returns the resources of the agent's latest
// CHECKPOINT_RESOURCES and how many it got since the last look.
func (h *harness) lastCheckpoint(stream string) (resources.Resources, int) {
	h.t.Helper()
	evs := h.agentEventsOf(stream, internalpb.Event_CHECKPOINT_RESOURCES)
	if len(evs) == 0 {
		return nil, 0
	}
	rs, err := resources.FromProto(evs[len(evs)-1].CheckpointResources.Resources)
	require.NoError(h.t, err)
	return rs, len(evs)
}

// requireSame compares resources. Offers to a framework that is not
// MULTI_ROLE carry no allocation_info (as in Mesos), so when got has none,
// want's allocation roles are not compared.
func requireSame(t *testing.T, want, got resources.Resources, what string) {
	t.Helper()
	if !slices.ContainsFunc(got, resources.Resource.IsAllocated) {
		want = want.Unallocated()
	}
	require.Truef(t, resources.New(want...).Equal(resources.New(got...)), "%s: want %s, got %s", what, want, got)
}

func agentTotal(t *testing.T, h *harness, agentID string) resources.Resources {
	t.Helper()
	for _, a := range h.sm.State().GetAgents.Agents {
		if a.AgentInfo.ID.Value == agentID {
			total, err := resources.FromProto(a.TotalResources)
			require.NoError(t, err)
			info, err := resources.FromProto(a.AgentInfo.Resources)
			require.NoError(t, err)
			requireSame(t, total, info, "AgentInfo resources and total")
			return total
		}
	}
	t.Fatalf("agent %s not in GET_STATE", agentID)
	return nil
}

func TestReserveOffersOnlyToTheRole(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", "p"))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)

	reserved := dyn("cpus:2;mem:512;disk:500", "db", "p")
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, reserveOp(reserved))))
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	requireSame(t, reserved, ckpt, "checkpointed resources")
	requireSame(t, resources.MustParse("cpus:2;mem:512;disk:500").Add(reserved), agentTotal(t, h, aid), "agent total")

	// db gets everything back, reservation included.
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	requireSame(t, resources.MustParse("cpus:2;mem:512;disk:500").Add(reserved).Allocate("db"), sumOffers(offers), "offer to db")

	// A framework of another role never sees the reservation.
	os, osID := h.subscribe(roleFramework("other", "other", ""))
	require.NoError(t, h.call(dbs, dbID, &schedulerpb.Call{Type: schedulerpb.Call_SUPPRESS.Enum()}))
	require.NoError(t, h.call(dbs, dbID, declineCall(offers, 0)))
	for range 5 {
		h.advance(40 * time.Millisecond)
		for _, o := range h.offers(os) {
			rs, err := resources.FromProto(o.Resources)
			require.NoError(t, err)
			require.Empty(t, rs.Reserved(), "offer to another role holds reserved resources")
			require.NoError(t, h.call(os, osID, declineCall([]mesospb.Offer{o}, 3600)))
		}
	}
	require.Empty(t, h.offers(dbs), "db suppressed")

	// db revives and gets the reserved resources alone.
	require.NoError(t, h.call(dbs, dbID, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}))
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	requireSame(t, reserved.Allocate("db"), sumOffers(offers).Reserved(), "reserved resources offered to db")

	// UNRESERVE: they go back to everyone.
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 3600, unreserveOp(reserved))))
	ckpt, n = h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	require.Empty(t, ckpt)
	requireSame(t, resources.MustParse("cpus:4;mem:1024;disk:1000"), agentTotal(t, h, aid), "agent total")
	require.NoError(t, h.call(os, osID, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}))
	h.advance(40 * time.Millisecond)
	requireSame(t, resources.MustParse("cpus:4;mem:1024;disk:1000").Allocate("other"), sumOffers(h.offers(os)), "everything to other")
}

func TestVolumeLifecycle(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", "p"))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)

	// RESERVE, CREATE and LAUNCH in one ACCEPT: the task uses the volume
	// the CREATE made from the disk the RESERVE made.
	reserved := dyn("cpus:1;mem:128;disk:100", "db", "p")
	disk := dyn("disk:100", "db", "p")
	volume := vol(disk, "v1", "data")
	task := commandTask("t1", offers[0], "")
	task.Resources = dyn("cpus:1;mem:128", "db", "p").Add(volume).ToProto()
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, reserveOp(reserved), createOp(volume), launchOp(task))))
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 2, n, "one CHECKPOINT_RESOURCES per operation")
	requireSame(t, dyn("cpus:1;mem:128", "db", "p").Add(volume), ckpt, "checkpointed resources")
	runs := h.agentEventsOf(as, internalpb.Event_RUN_TASK)
	require.Len(t, runs, 1)
	rs, err := resources.FromProto(runs[0].RunTask.Task.Resources)
	require.NoError(t, err)
	require.Len(t, rs.PersistentVolumes(), 1)
	assert.Equal(t, "data", rs.PersistentVolumes()[0].Disk.Volume.ContainerPath)
	require.Empty(t, h.updates(dbs), "no task refused")

	// While the task runs, the volume is not offered.
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	require.Empty(t, sumOffers(offers).PersistentVolumes())
	require.NoError(t, h.call(dbs, dbID, declineCall(offers, 0)))

	// The task ends: the volume and the reservation come back to db.
	h.sendStatus(as, aid, dbID, "t1", mesospb.TASK_FINISHED)
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	got := sumOffers(offers)
	require.Len(t, got.PersistentVolumes(), 1)
	assert.Equal(t, "v1", got.PersistentVolumes()[0].Disk.Persistence.ID)
	requireSame(t, resources.MustParse("cpus:3;mem:896;disk:900").Add(dyn("cpus:1;mem:128", "db", "p")).Add(volume).Allocate("db"), got, "offer after the task")

	// DESTROY then UNRESERVE in one ACCEPT: plain resources again.
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, destroyOp(volume), unreserveOp(reserved))))
	ckpt, n = h.lastCheckpoint(as)
	require.Equal(t, 2, n)
	require.Empty(t, ckpt)
	h.advance(40 * time.Millisecond)
	requireSame(t, resources.MustParse("cpus:4;mem:1024;disk:1000").Allocate("db"), sumOffers(h.offers(dbs)), "offer after DESTROY and UNRESERVE")
	requireSame(t, resources.MustParse("cpus:4;mem:1024;disk:1000"), agentTotal(t, h, aid), "agent total")
}

func TestInvalidOperationsAreDropped(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", "p"))
	as, _ := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)

	// Set up a reservation and a volume to aim invalid operations at.
	disk := dyn("disk:200", "db", "p")
	v1 := vol(dyn("disk:100", "db", "p"), "v1", "data")
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, reserveOp(disk), createOp(v1))))
	_, n := h.lastCheckpoint(as)
	require.Equal(t, 2, n)
	all := resources.MustParse("cpus:4;mem:1024;disk:800").Add(dyn("disk:100", "db", "p")).Add(v1).Allocate("db")

	for _, tc := range []struct {
		name string
		ops  []mesospb.Offer_Operation
	}{
		{"wrong principal", []mesospb.Offer_Operation{reserveOp(dyn("cpus:1", "db", "q"))}},
		{"reservation to another role", []mesospb.Offer_Operation{reserveOp(dyn("cpus:1", "other", "p"))}},
		{"not dynamically reserved", []mesospb.Offer_Operation{reserveOp(resources.MustParse("cpus:1"))}},
		{"more than offered", []mesospb.Offer_Operation{reserveOp(dyn("cpus:5", "db", "p"))}},
		{"unknown volume", []mesospb.Offer_Operation{destroyOp(vol(dyn("disk:100", "db", "p"), "nope", "data"))}},
		{"duplicate persistence id", []mesospb.Offer_Operation{createOp(vol(dyn("disk:100", "db", "p"), "v1", "other"))}},
		{"absolute container path", []mesospb.Offer_Operation{createOp(vol(dyn("disk:100", "db", "p"), "v2", "/data"))}},
		{"container path outside the sandbox", []mesospb.Offer_Operation{createOp(vol(dyn("disk:100", "db", "p"), "v2", "a/../../x"))}},
		{"volume on unreserved disk", []mesospb.Offer_Operation{createOp(vol(resources.MustParse("disk:100"), "v2", "data"))}},
		{"unreserve a volume", []mesospb.Offer_Operation{unreserveOp(v1)}},
		{"unreserve unreserved", []mesospb.Offer_Operation{unreserveOp(resources.MustParse("cpus:1"))}},
		{"a task needing a dropped operation", []mesospb.Offer_Operation{
			createOp(vol(dyn("disk:100", "db", "p"), "v3", "/abs")),
			launchOp(func() mesospb.TaskInfo {
				ti := commandTask("t", offers[0], "")
				ti.Resources = resources.MustParse("cpus:1").Add(vol(dyn("disk:100", "db", "p"), "v3", "/abs")).ToProto()
				return ti
			}()),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offers := h.offers(dbs)
			if len(offers) == 0 {
				h.advance(40 * time.Millisecond)
				offers = h.offers(dbs)
			}
			require.Len(t, offers, 1)
			requireSame(t, all, sumOffers(offers), "offer before")
			require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, tc.ops...)))
			_, n := h.lastCheckpoint(as)
			require.Zero(t, n, "nothing checkpointed")
			ups := h.updates(dbs)
			for _, st := range ups {
				require.Equal(t, mesospb.TASK_ERROR, st.GetState())
			}
			require.Len(t, ups, len(tc.ops)-1, "the task is refused")
			h.advance(40 * time.Millisecond)
			offers = h.offers(dbs)
			require.Len(t, offers, 1)
			requireSame(t, all, sumOffers(offers), "nothing lost")
			h.sched[dbs] = append(h.sched[dbs], &schedulerpb.Event{Type: schedulerpb.Event_OFFERS.Enum(),
				Offers: &schedulerpb.Event_Offers{Offers: offers}})
		})
	}
}

func TestReregisterWithCheckpointedResources(t *testing.T) {
	reserved := dyn("cpus:1;disk:100", "db", "p")
	volume := vol(dyn("disk:50", "db", "p"), "v1", "data")
	ckpt := reserved.Add(volume)
	static := resources.MustParse("cpus:4;mem:1024;disk:1000")
	applied, err := static.ApplyCheckpointed(ckpt)
	require.NoError(t, err)

	for name, reported := range map[string]resources.Resources{
		"static resources, as Mesos agents report": static,
		"resources with the checkpoints applied":   applied,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, master.Config{})
			dbs, _ := h.subscribe(roleFramework("db", "db", "p"))
			stream, err := h.sm.ConnectAgent(&internalpb.Call{
				Type:    internalpb.Call_REREGISTER.Enum(),
				AgentID: &mesospb.AgentID{Value: "agent-1"},
				Reregister: &internalpb.Call_Reregister{
					AgentInfo:             mesospb.AgentInfo{ID: &mesospb.AgentID{Value: "agent-1"}, Hostname: "h", Resources: reported.ToProto()},
					CheckpointedResources: ckpt.ToProto(),
				},
			})
			require.NoError(t, err)
			h.collect()
			require.NotEmpty(t, h.takeAgent(stream))
			requireSame(t, applied, agentTotal(t, h, "agent-1"), "agent total after failover")
			h.advance(40 * time.Millisecond)
			requireSame(t, applied.Allocate("db"), sumOffers(h.offers(dbs)), "offer")
		})
	}
}

func TestReregisterGetsMissedCheckpoint(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", "p"))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	reserved := dyn("cpus:1", "db", "p")
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, reserveOp(reserved))))
	// The agent missed the CHECKPOINT_RESOURCES and comes back without it.
	h.sm.StreamEnded(as)
	h.collect()
	static := resources.MustParse("cpus:4;mem:1024;disk:1000")
	stream, err := h.sm.ConnectAgent(&internalpb.Call{
		Type:    internalpb.Call_REREGISTER.Enum(),
		AgentID: &mesospb.AgentID{Value: aid},
		Reregister: &internalpb.Call_Reregister{
			AgentInfo: mesospb.AgentInfo{ID: &mesospb.AgentID{Value: aid}, Hostname: "h", Resources: static.ToProto()},
		},
	})
	require.NoError(t, err)
	h.collect()
	ckpt, n := h.lastCheckpoint(stream)
	require.Equal(t, 1, n, "the master sends its view again")
	requireSame(t, reserved, ckpt, "checkpointed resources")
	requireSame(t, resources.MustParse("cpus:3;mem:1024;disk:1000").Add(reserved), agentTotal(t, h, aid), "agent total")
}

func TestReserveRefinesAParentReservation(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(roleFramework("ml", "eng/ml", ""))
	as, aid := h.registerAgent("cpus:1;mem:256;cpus(eng):2")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	requireSame(t, resources.MustParse("cpus:1;mem:256;cpus(eng):2").Allocate("eng/ml"), sumOffers(offers), "eng's reservation serves eng/ml")

	refined := resources.MustParse("cpus(eng):1").PushReservation(resources.Reservation{Type: resources.Dynamic, Role: "eng/ml"})
	require.NoError(t, h.call(fs, fid, acceptOps(offers, 0, reserveOp(refined))))
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	requireSame(t, refined, ckpt, "the refinement is checkpointed")
	requireSame(t, resources.MustParse("cpus:1;mem:256;cpus(eng):1").Add(refined), agentTotal(t, h, aid), "agent total")

	// Unreserving the refinement gives the resources back to eng.
	h.advance(40 * time.Millisecond)
	offers = h.offers(fs)
	require.Len(t, offers, 1)
	require.NoError(t, h.call(fs, fid, acceptOps(offers, 0, unreserveOp(refined))))
	ckpt, n = h.lastCheckpoint(as)
	require.Equal(t, 1, n)
	require.Empty(t, ckpt)
	requireSame(t, resources.MustParse("cpus:1;mem:256;cpus(eng):2"), agentTotal(t, h, aid), "agent total")
}

// A framework that sets no principal may name one in its reservations and
// volumes, as in Mesos, where only a framework's own principal is checked.
func TestReserveWithoutFrameworkPrincipal(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", ""))
	as, _ := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)

	disk := dyn("disk:100", "db", "ops")
	v := vol(disk, "v1", "data")
	v[0].Disk.Persistence.Principal = "ops"
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, reserveOp(disk), createOp(v))))
	ckpt, n := h.lastCheckpoint(as)
	require.Equal(t, 2, n)
	requireSame(t, v, ckpt, "checkpointed resources")
}

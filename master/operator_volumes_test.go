package master_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

func growCall(agentID string, volume resources.Resources, addition resources.Resources) *masterpb.Call {
	g := &masterpb.Call_GrowVolume{Volume: volume.ToProto()[0], Addition: addition.ToProto()[0]}
	if agentID != "" {
		g.AgentID = &mesospb.AgentID{Value: agentID}
	}
	return &masterpb.Call{Type: masterpb.Call_GROW_VOLUME.Enum(), GrowVolume: g}
}

func zeroAddition(c *masterpb.Call) *masterpb.Call {
	c.GrowVolume.Addition.Scalar.Value = 0
	return c
}

func shrinkCall(agentID string, volume resources.Resources, subtract float64) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_SHRINK_VOLUME.Enum(), ShrinkVolume: &masterpb.Call_ShrinkVolume{
		AgentID: &mesospb.AgentID{Value: agentID}, Volume: volume.ToProto()[0], Subtract: mesospb.Value_Scalar{Value: subtract},
	}}
}

// GROW_VOLUME and SHRINK_VOLUME from the operator: the volume takes or
// gives back reserved disk, in the master's view of the agent and in what
// the agent checkpoints; Mesos's refusals answer 400, a volume in use 409.
func TestOperatorGrowShrinkVolume(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", ""))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.apply(reserveCall(aid, opReserved("disk:500", "db")))
	v200 := vol(opReserved("disk:200", "db"), "v1", "data")
	h.apply(createVolumesCall(aid, v200))

	h.apply(growCall(aid, v200, opReserved("disk:100", "db")))
	v300 := vol(opReserved("disk:300", "db"), "v1", "data")
	ckpt, _ := h.lastCheckpoint(as)
	requireSame(t, v300.Add(opReserved("disk:200", "db")), ckpt, "checkpointed after GROW_VOLUME")
	requireSame(t, resources.MustParse("cpus:4;mem:1024;disk:500").Add(v300).Add(opReserved("disk:200", "db")), agentTotal(t, h, aid), "total after GROW_VOLUME")

	h.apply(shrinkCall(aid, v300, 50))
	v250 := vol(opReserved("disk:250", "db"), "v1", "data")
	ckpt, _ = h.lastCheckpoint(as)
	requireSame(t, v250.Add(opReserved("disk:250", "db")), ckpt, "checkpointed after SHRINK_VOLUME")

	for name, call := range map[string]*masterpb.Call{
		"no grow_volume":      {Type: masterpb.Call_GROW_VOLUME.Enum()},
		"no agent_id":         growCall("", v250, opReserved("disk:10", "db")),
		"unknown agent":       growCall("nope", v250, opReserved("disk:10", "db")),
		"zero addition":       zeroAddition(growCall(aid, v250, opReserved("disk:10", "db"))),
		"not a volume":        growCall(aid, opReserved("disk:250", "db"), opReserved("disk:10", "db")),
		"other reservation":   growCall(aid, v250, resources.MustParse("disk:10")),
		"zero subtract":       shrinkCall(aid, v250, 0),
		"subtract everything": shrinkCall(aid, v250, 250),
		"shrink not a volume": shrinkCall(aid, opReserved("disk:250", "db"), 10),
	} {
		_, err := h.operator(call)
		require.ErrorIs(t, err, master.ErrInvalidCall, name)
		t.Logf("%s: %v", name, err)
	}
	_, err := h.operator(growCall(aid, v250, opReserved("disk:1000", "db")))
	require.ErrorIs(t, err, master.ErrConflict, "more disk than the agent has")

	// A volume a task uses cannot be resized under it.
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)
	task := commandTask("t1", offers[0], "cpus:1")
	task.Resources = resources.MustParse("cpus:1").Add(v250).ToProto()
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, launchOp(task))))
	require.Empty(t, h.updates(dbs))
	_, err = h.operator(shrinkCall(aid, v250, 10))
	require.ErrorIs(t, err, master.ErrConflict, "in use")
}

// GROW_VOLUME and SHRINK_VOLUME as offer operations in ACCEPT.
func TestAcceptGrowShrinkVolume(t *testing.T) {
	h := newHarness(t, master.Config{})
	dbs, dbID := h.subscribe(roleFramework("db", "db", ""))
	as, aid := h.registerAgent("cpus:4;mem:1024;disk:1000")
	h.apply(reserveCall(aid, opReserved("disk:500", "db")))
	v200 := vol(opReserved("disk:200", "db"), "v1", "data")
	h.apply(createVolumesCall(aid, v200))
	h.rescinded(dbs)
	h.advance(40 * time.Millisecond)
	offers := h.offers(dbs)
	require.Len(t, offers, 1)

	grow := mesospb.Offer_Operation{Type: mesospb.Offer_Operation_GROW_VOLUME.Enum(), GrowVolume: &mesospb.Offer_Operation_GrowVolume{
		Volume: v200.Allocate("db").ToProto()[0], Addition: opReserved("disk:100", "db").Allocate("db").ToProto()[0]}}
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 60, grow)))
	v300 := vol(opReserved("disk:300", "db"), "v1", "data")
	ckpt, _ := h.lastCheckpoint(as)
	requireSame(t, v300.Add(opReserved("disk:200", "db")), ckpt, "checkpointed after GROW_VOLUME")

	// The grown volume comes back at once, without the ACCEPT's filter,
	// as Mesos's master recovers resized resources.
	h.advance(40 * time.Millisecond)
	offers = h.offers(dbs)
	require.Len(t, offers, 1)
	requireSame(t, v300.Allocate("db"), sumOffers(offers).PersistentVolumes(), "the grown volume offered")

	shrink := mesospb.Offer_Operation{Type: mesospb.Offer_Operation_SHRINK_VOLUME.Enum(), ShrinkVolume: &mesospb.Offer_Operation_ShrinkVolume{
		Volume: v300.Allocate("db").ToProto()[0], Subtract: mesospb.Value_Scalar{Value: 100}}}
	bad := mesospb.Offer_Operation{Type: mesospb.Offer_Operation_SHRINK_VOLUME.Enum(), ShrinkVolume: &mesospb.Offer_Operation_ShrinkVolume{
		Volume: v300.Allocate("db").ToProto()[0], Subtract: mesospb.Value_Scalar{Value: 300}}}
	require.NoError(t, h.call(dbs, dbID, acceptOps(offers, 0, bad, shrink)))
	ckpt, _ = h.lastCheckpoint(as)
	requireSame(t, v200.Add(opReserved("disk:300", "db")), ckpt, "the invalid shrink dropped, the valid one applied")
}

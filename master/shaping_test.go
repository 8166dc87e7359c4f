package master_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

func multiRole(name string, roles ...string) mesospb.FrameworkInfo {
	info := frameworkInfo(name)
	info.Roles = roles
	info.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}
	return info
}

// minOffer builds offer_filters asking, for each role, for offers holding
// at least one of the alternatives ("cpus:2;mem:64").
func minOffer(t *testing.T, byRole map[string][]string) map[string]mesospb.OfferFilters {
	out := map[string]mesospb.OfferFilters{}
	for role, alts := range byRole {
		minimum := &mesospb.OfferFilters_MinAllocatableResources{}
		for _, alt := range alts {
			minimum.Quantities = append(minimum.Quantities, mesospb.OfferFilters_ResourceQuantities{Quantities: quantities(t, alt)})
		}
		out[role] = mesospb.OfferFilters{MinAllocatableResources: minimum}
	}
	return out
}

func declineAll(t *testing.T, h *harness, stream, fid string, offers []mesospb.Offer) {
	t.Helper()
	if len(offers) == 0 {
		return
	}
	require.NoError(t, h.call(stream, fid, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(),
		Decline: &schedulerpb.Call_Decline{OfferIDs: offerIDs(offers...), Filters: &mesospb.Filters{RefuseSeconds: ptr(0.0)}}}))
}

func offerRoles(offers []mesospb.Offer) map[string]int {
	out := map[string]int{}
	for _, o := range offers {
		out[o.AllocationInfo.GetRole()]++
		for _, r := range o.Resources {
			if r.AllocationInfo.GetRole() != o.AllocationInfo.GetRole() {
				out["mismatch"]++
			}
		}
	}
	return out
}

// Config.MinAllocatable: no offer smaller than one of the alternatives.
func TestConfigMinAllocatable(t *testing.T) {
	h := newHarness(t, master.Config{MinAllocatable: []resources.Resources{
		resources.MustParse("cpus:2;mem:64"), resources.MustParse("gpus:1"),
	}})
	fs, _ := h.subscribe(frameworkInfo("fw"))
	h.registerAgent("cpus:1;mem:4096")
	h.advance(2 * time.Second)
	assert.Empty(t, h.offers(fs), "1 cpu is less than any alternative")

	_, big := h.registerAgent("cpus:2;mem:128")
	_, gpu := h.registerAgent("cpus:0.5;mem:32;gpus:1")
	h.advance(100 * time.Millisecond)
	got := map[string]bool{}
	for _, o := range h.offers(fs) {
		got[o.AgentID.Value] = true
	}
	assert.Equal(t, map[string]bool{big: true, gpu: true}, got)

	resp, err := h.operator(opCall(masterpb.Call_GET_FLAGS))
	require.NoError(t, err)
	flags := map[string]string{}
	for _, f := range resp.GetFlags.Flags {
		flags[f.Name] = f.GetValue()
	}
	assert.Equal(t, "cpus:2;mem:64|gpus:1", flags["min_allocatable_resources"])
	assert.Equal(t, "drf", flags["role_sorter"])

	for _, bad := range []master.Config{
		{MinAllocatable: []resources.Resources{{resources.NewScalar("cpus", -1)}}},
		{MinAllocatable: []resources.Resources{{resources.NewScalar("cpus", 1), resources.NewScalar("cpus", 2)}}},
		{Sorter: allocator.Sorter(7)},
		{Allocator: allocator.NewDRF(allocator.Options{}), Sorter: allocator.SorterRandom},
	} {
		_, err := master.NewStateMachine(bad, h.now)
		assert.Error(t, err, "%+v", bad)
	}
}

// FrameworkInfo.offer_filters replace the master's minimum for the
// framework's offers of a role, from SUBSCRIBE and from UPDATE_FRAMEWORK.
func TestOfferFiltersMinAllocatable(t *testing.T) {
	h := newHarness(t, master.Config{})
	info := multiRole("picky", "big", "small")
	info.OfferFilters = minOffer(t, map[string][]string{"big": {"cpus:4"}, "small": {"cpus:1"}})
	fs, fid := h.subscribe(info)
	h.registerAgent("cpus:2;mem:1024")
	h.advance(100 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	assert.Equal(t, map[string]int{"small": 1}, offerRoles(offers), "2 cpus are too few for role big")

	// Suppressing small leaves nobody wanting the agent.
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_SUPPRESS.Enum(),
		Suppress: &schedulerpb.Call_Suppress{Roles: []string{"small"}}}))
	declineAll(t, h, fs, fid, offers)
	h.advance(2 * time.Second)
	assert.Empty(t, h.offers(fs))

	// UPDATE_FRAMEWORK lowers role big's minimum: offered now.
	info.ID = &mesospb.FrameworkID{Value: fid}
	info.OfferFilters = minOffer(t, map[string][]string{"big": {"cpus:1"}})
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_UPDATE_FRAMEWORK.Enum(),
		UpdateFramework: &schedulerpb.Call_UpdateFramework{FrameworkInfo: info, SuppressedRoles: []string{"small"}}}))
	h.advance(100 * time.Millisecond)
	assert.Equal(t, map[string]int{"big": 1}, offerRoles(h.offers(fs)))

	// Invalid filters are refused, on SUBSCRIBE and UPDATE_FRAMEWORK alike,
	// and change nothing.
	neg := minOffer(t, map[string][]string{"big": {"cpus:1"}})
	neg["big"].MinAllocatableResources.Quantities[0].Quantities["cpus"] = mesospb.Value_Scalar{Value: -1}
	empty := minOffer(t, map[string][]string{"big": {"cpus:1"}})
	empty["big"].MinAllocatableResources.Quantities[0].Quantities = nil
	for name, filters := range map[string]map[string]mesospb.OfferFilters{
		"role not subscribed": minOffer(t, map[string][]string{"other": {"cpus:1"}}),
		"negative":            neg,
		"empty alternative":   empty,
	} {
		bad := info
		bad.OfferFilters = filters
		err := h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_UPDATE_FRAMEWORK.Enum(),
			UpdateFramework: &schedulerpb.Call_UpdateFramework{FrameworkInfo: bad}})
		assert.ErrorIs(t, err, master.ErrInvalidCall, name)
		bad.ID = nil
		_, err = h.sm.SubscribeScheduler(subscribeCall(bad))
		assert.ErrorIs(t, err, master.ErrInvalidCall, name)
	}

	// A re-subscription brings new filters too.
	rs := newHarness(t, master.Config{})
	again := frameworkInfo("again")
	s1, id := rs.subscribe(again)
	rs.registerAgent("cpus:2;mem:1024")
	rs.advance(100 * time.Millisecond)
	held := rs.offers(s1)
	require.Len(t, held, 1)
	again.ID = &mesospb.FrameworkID{Value: id}
	again.OfferFilters = minOffer(t, map[string][]string{"*": {"cpus:4"}})
	s2, _ := rs.subscribe(again)
	declineAll(t, rs, s2, id, held)
	rs.advance(2 * time.Second)
	assert.Empty(t, rs.offers(s2), "2 cpus are below the framework's new minimum")

	// A role whose filters set an empty min_allocatable_resources takes
	// any offer, below the master's minimum too.
	tiny := newHarness(t, master.Config{})
	anyOffer := frameworkInfo("any")
	anyOffer.OfferFilters = map[string]mesospb.OfferFilters{"*": {MinAllocatableResources: &mesospb.OfferFilters_MinAllocatableResources{}}}
	ts, _ := tiny.subscribe(anyOffer)
	tiny.registerAgent("cpus:0.005;mem:16")
	tiny.advance(100 * time.Millisecond)
	assert.Len(t, tiny.offers(ts), 1)
}

// SUPPRESS and REVIVE name roles of a MULTI_ROLE framework.
func TestSuppressReviveByRole(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(multiRole("multi", "a", "b"))
	h.registerAgent("cpus:2;mem:1024")
	h.registerAgent("cpus:2;mem:1024")
	h.advance(100 * time.Millisecond)
	offers := h.offers(fs)
	assert.Equal(t, map[string]int{"a": 1, "b": 1}, offerRoles(offers), "DRF between the framework's roles")

	roleCall := func(typ schedulerpb.Call_Type, roles ...string) error {
		call := &schedulerpb.Call{Type: typ.Enum()}
		if typ == schedulerpb.Call_SUPPRESS {
			call.Suppress = &schedulerpb.Call_Suppress{Roles: roles}
		} else {
			call.Revive = &schedulerpb.Call_Revive{Roles: roles}
		}
		return h.call(fs, fid, call)
	}
	require.NoError(t, roleCall(schedulerpb.Call_SUPPRESS, "a"))
	declineAll(t, h, fs, fid, offers)
	h.advance(100 * time.Millisecond)
	offers = h.offers(fs)
	assert.Equal(t, map[string]int{"b": 2}, offerRoles(offers))

	require.NoError(t, roleCall(schedulerpb.Call_SUPPRESS, "b"))
	declineAll(t, h, fs, fid, offers)
	h.advance(2 * time.Second)
	assert.Empty(t, h.offers(fs), "both roles suppressed")

	require.NoError(t, roleCall(schedulerpb.Call_REVIVE, "a"))
	h.advance(100 * time.Millisecond)
	assert.Equal(t, map[string]int{"a": 2}, offerRoles(h.offers(fs)))

	assert.ErrorIs(t, roleCall(schedulerpb.Call_REVIVE, "c"), master.ErrInvalidCall, "not a role of the framework")
	assert.ErrorIs(t, roleCall(schedulerpb.Call_SUPPRESS, "c"), master.ErrInvalidCall)
}

// Weights apply at every level of the role tree, through the master:
// eng/backend weighing 3 and eng/frontend 1 share 40 agents 30:10.
func TestHierarchicalWeights(t *testing.T) {
	h := newHarness(t, master.Config{Weights: map[string]float64{"eng/backend": 3}})
	back := frameworkInfo("backend")
	back.Role = ptr("eng/backend")
	bs, _ := h.subscribe(back)
	front := frameworkInfo("frontend")
	front.Role = ptr("eng/frontend")
	fs, _ := h.subscribe(front)
	// A sibling of eng at the top, weighing 1 too, gets no more than eng
	// as a whole.
	ops := frameworkInfo("ops")
	ops.Role = ptr("ops")
	ss, _ := h.subscribe(ops)
	for range 80 {
		h.registerAgent("cpus:1;mem:128")
	}
	h.advance(100 * time.Millisecond)
	b, f, o := len(h.offers(bs)), len(h.offers(fs)), len(h.offers(ss))
	assert.Equal(t, 80, b+f+o)
	assert.Equal(t, 40, o, "eng and ops share the cluster equally")
	assert.InDelta(t, 30, b, 1, "backend %d, frontend %d", b, f)
	assert.InDelta(t, 10, f, 1, "backend %d, frontend %d", b, f)

	// UPDATE_WEIGHTS changes the split of what comes free next.
	_, err := h.operator(&masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(), UpdateWeights: &masterpb.Call_UpdateWeights{
		WeightInfos: []mesospb.WeightInfo{{Role: ptr("eng"), Weight: 3}}}})
	require.NoError(t, err)
	for range 80 {
		h.registerAgent("cpus:1;mem:128")
	}
	h.advance(100 * time.Millisecond)
	b2, f2, o2 := len(h.offers(bs)), len(h.offers(fs)), len(h.offers(ss))
	// 160 agents: eng 120 (30+10 before), ops 40 (40 before).
	assert.Equal(t, 0, o2, "ops already holds its quarter")
	assert.InDelta(t, 60, b2, 1)
	assert.InDelta(t, 20, f2, 1)
}

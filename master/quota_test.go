package master_test

import (
	"errors"
	"fmt"
	"math"
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

// operator makes an operator call on the state machine.
func (h *harness) operator(call *masterpb.Call) (*masterpb.Response, error) {
	resp, err := h.sm.OperatorCall(call)
	h.collect()
	return resp, err
}

// quantities reads "cpus:2;mem:128" into a QuotaConfig map.
func quantities(t *testing.T, text string) map[string]mesospb.Value_Scalar {
	if text == "" {
		return nil
	}
	out := map[string]mesospb.Value_Scalar{}
	for name, v := range resources.MustParse(text).Quantities() {
		out[name] = mesospb.Value_Scalar{Value: v.Float64()}
	}
	return out
}

func quotaConfig(t *testing.T, role, guarantees, limits string) masterpb.QuotaConfig {
	return masterpb.QuotaConfig{Role: role, Guarantees: quantities(t, guarantees), Limits: quantities(t, limits)}
}

func (h *harness) updateQuota(force bool, configs ...masterpb.QuotaConfig) error {
	resp, err := h.operator(&masterpb.Call{
		Type:        masterpb.Call_UPDATE_QUOTA.Enum(),
		UpdateQuota: &masterpb.Call_UpdateQuota{Force: ptr(force), QuotaConfigs: configs},
	})
	assert.Nil(h.t, resp)
	return err
}

func (h *harness) quotaStatus() masterpb.QuotaStatus {
	h.t.Helper()
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_QUOTA.Enum()})
	require.NoError(h.t, err)
	require.Equal(h.t, masterpb.Response_GET_QUOTA, resp.GetType())
	require.NotNil(h.t, resp.GetQuota)
	return resp.GetQuota.Status
}

func TestQuotaUpdateAndGet(t *testing.T) {
	h := newHarness(t, master.Config{})
	h.registerAgent("cpus:8;mem:4096")
	assert.Empty(t, h.quotaStatus().Configs)

	require.NoError(t, h.updateQuota(false,
		quotaConfig(t, "dev", "cpus:2", "cpus:4;mem:1024"),
		quotaConfig(t, "test", "", "cpus:1"),
		quotaConfig(t, "eng/backend", "cpus:1;mem:256", "")))
	st := h.quotaStatus()
	assert.Equal(t, []masterpb.QuotaConfig{
		quotaConfig(t, "dev", "cpus:2", "cpus:4;mem:1024"),
		quotaConfig(t, "eng/backend", "cpus:1;mem:256", ""),
		quotaConfig(t, "test", "", "cpus:1"),
	}, st.Configs)
	// The legacy infos carry the guarantees alone, one per role with quota.
	require.Len(t, st.Infos, 3)
	info := st.Infos[0]
	assert.Equal(t, "dev", info.GetRole())
	require.Len(t, info.Guarantee, 1)
	assert.Equal(t, "cpus", info.Guarantee[0].Name)
	assert.Equal(t, mesospb.Value_SCALAR, info.Guarantee[0].Type)
	assert.Equal(t, 2.0, info.Guarantee[0].Scalar.Value)
	assert.Empty(t, st.Infos[2].Guarantee)

	// An update replaces a role's quota whole; a config with neither
	// guarantees nor limits removes it.
	require.NoError(t, h.updateQuota(false,
		quotaConfig(t, "dev", "", "cpus:3"),
		quotaConfig(t, "test", "", "")))
	assert.Equal(t, []masterpb.QuotaConfig{
		quotaConfig(t, "dev", "", "cpus:3"),
		quotaConfig(t, "eng/backend", "cpus:1;mem:256", ""),
	}, h.quotaStatus().Configs)
	assert.Equal(t, map[string]allocator.Quota{
		"dev":         {Guarantee: allocator.Quantities{}, Limit: allocator.Quantities{"cpus": resources.ScalarOf(3)}},
		"eng/backend": {Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(1), "mem": resources.ScalarOf(256)}, Limit: allocator.Quantities{}},
	}, h.sm.Allocator().Quotas(), "the allocator enforces what GET_QUOTA shows")
}

func TestQuotaInvalidChangesNothing(t *testing.T) {
	h := newHarness(t, master.Config{})
	h.registerAgent("cpus:8;mem:4096;gpus:1;ports:[31000-32000];zones:{a,b}")
	h.registerAgent("cpus:8;mem:4096")
	require.NoError(t, h.updateQuota(false, quotaConfig(t, "dev", "cpus:2", "cpus:4")))
	want := h.quotaStatus()

	valid := quotaConfig(t, "ok", "cpus:1", "cpus:2")
	nan := quotaConfig(t, "bad", "", "")
	nan.Limits = map[string]mesospb.Value_Scalar{"cpus": {Value: math.NaN()}}
	inf := quotaConfig(t, "bad", "", "")
	inf.Guarantees = map[string]mesospb.Value_Scalar{"cpus": {Value: math.Inf(1)}}
	neg := quotaConfig(t, "bad", "", "")
	neg.Limits = map[string]mesospb.Value_Scalar{"mem": {Value: -1}}
	huge := quotaConfig(t, "bad", "", "")
	huge.Limits = map[string]mesospb.Value_Scalar{"cpus": {Value: 2e12}}
	noName := quotaConfig(t, "bad", "", "")
	noName.Limits = map[string]mesospb.Value_Scalar{"": {Value: 1}}
	for _, tc := range []struct {
		name    string
		configs []masterpb.QuotaConfig
		msg     string
	}{
		{"default role", []masterpb.QuotaConfig{valid, quotaConfig(t, "*", "", "cpus:1")}, `"*"`},
		{"invalid role", []masterpb.QuotaConfig{valid, quotaConfig(t, "a//b", "", "cpus:1")}, "QuotaConfig.role"},
		{"guarantee above limit", []masterpb.QuotaConfig{valid, quotaConfig(t, "bad", "cpus:3", "cpus:2")}, "is not contained within"},
		{"NaN", []masterpb.QuotaConfig{valid, nan}, "NaN"},
		{"infinite", []masterpb.QuotaConfig{valid, inf}, "Infinite"},
		{"negative", []masterpb.QuotaConfig{valid, neg}, "Negative"},
		{"too large", []masterpb.QuotaConfig{valid, huge}, "1 trillion"},
		{"no name", []masterpb.QuotaConfig{valid, noName}, "without a name"},
		{"ports", []masterpb.QuotaConfig{valid, quotaConfig(t, "bad", "", "ports:10")}, "scalar resources only"},
		{"a set on an agent", []masterpb.QuotaConfig{valid, quotaConfig(t, "bad", "", "zones:2")}, "scalar resources only"},
		{"role twice", []masterpb.QuotaConfig{valid, valid}, "listed twice"},
		{"overcommit", []masterpb.QuotaConfig{valid, quotaConfig(t, "big", "cpus:14", "")}, "exceed cluster capacity"},
		{"overcommit of a resource no agent has", []masterpb.QuotaConfig{quotaConfig(t, "big", "gpus:1;disk:1", "")}, "exceed cluster capacity"},
		{"sub-roles needing more than their parent", []masterpb.QuotaConfig{
			quotaConfig(t, "eng", "cpus:6", ""), quotaConfig(t, "eng/a", "cpus:8", ""), quotaConfig(t, "eng/b", "cpus:8", ""),
		}, "exceed cluster capacity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.updateQuota(false, tc.configs...)
			require.Error(t, err)
			assert.True(t, errors.Is(err, master.ErrInvalidCall), "%v", err)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Equal(t, want, h.quotaStatus(), "nothing half-applied")
		})
	}

	// The capacity heuristic counts the guarantees of a role and its
	// sub-roles once: eng's 10 cpus cover eng/a's 9, so 10 + dev's 2 fit
	// in 16.
	require.NoError(t, h.updateQuota(false, quotaConfig(t, "eng", "cpus:10", ""), quotaConfig(t, "eng/a", "cpus:9", "")))
	// force skips it; validation still holds.
	require.NoError(t, h.updateQuota(true, quotaConfig(t, "big", "cpus:100", "")))
	require.Error(t, h.updateQuota(true, quotaConfig(t, "bad", "cpus:3", "cpus:2")))
	roles := map[string]bool{}
	for _, c := range h.quotaStatus().Configs {
		roles[c.Role] = true
	}
	assert.Equal(t, map[string]bool{"dev": true, "eng": true, "eng/a": true, "big": true}, roles)

	// A missing update_quota is a bad call too.
	_, err := h.operator(&masterpb.Call{Type: masterpb.Call_UPDATE_QUOTA.Enum()})
	assert.ErrorIs(t, err, master.ErrInvalidCall)
}

func TestLegacySetAndRemoveQuota(t *testing.T) {
	h := newHarness(t, master.Config{})
	h.registerAgent("cpus:4;mem:4096;ports:[1-10]")
	set := func(force bool, role string, res string) error {
		rs := resources.MustParse(res).ToProto()
		_, err := h.operator(&masterpb.Call{
			Type:     masterpb.Call_SET_QUOTA.Enum(),
			SetQuota: &masterpb.Call_SetQuota{QuotaRequest: masterpb.QuotaRequest{Force: ptr(force), Role: ptr(role), Guarantee: rs}},
		})
		return err
	}
	remove := func(role string) error {
		_, err := h.operator(&masterpb.Call{Type: masterpb.Call_REMOVE_QUOTA.Enum(), RemoveQuota: &masterpb.Call_RemoveQuota{Role: role}})
		return err
	}

	require.NoError(t, set(false, "dev", "cpus:2;mem:1024"))
	// Mesos 1.9 reads a legacy guarantee as the limit too.
	assert.Equal(t, []masterpb.QuotaConfig{quotaConfig(t, "dev", "cpus:2;mem:1024", "cpus:2;mem:1024")}, h.quotaStatus().Configs)

	for _, tc := range []struct {
		role, res, msg string
	}{
		{"dev", "cpus:1", "already has quota"},
		{"other", "ports:[1-2]", "non-scalar"},
		{"other", "cpus(eng):1", "ReservationInfo"},
		{"other", "", "empty 'guarantee'"},
		{"", "cpus:1", "invalid role"},
		{"other", "cpus:3", "overcommit"},
	} {
		err := set(false, tc.role, tc.res)
		require.Error(t, err, "%+v", tc)
		assert.ErrorIs(t, err, master.ErrInvalidCall)
		assert.Contains(t, err.Error(), tc.msg)
	}
	require.Len(t, h.quotaStatus().Configs, 1)
	require.NoError(t, set(true, "other", "cpus:3"), "force skips the capacity check")

	require.NoError(t, remove("dev"))
	err := remove("dev")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has no quota set")
	assert.Equal(t, []masterpb.QuotaConfig{quotaConfig(t, "other", "cpus:3", "cpus:3")}, h.quotaStatus().Configs)
}

// Config.Quotas sets quotas from the start, checked like UPDATE_QUOTA's
// but for the capacity (no agent is known yet).
func TestConfigQuotas(t *testing.T) {
	h := newHarness(t, master.Config{Quotas: map[string]allocator.Quota{
		"dev": {Guarantee: allocator.Quantities{"cpus": resources.ScalarOf(100)}},
	}})
	assert.Equal(t, []masterpb.QuotaConfig{quotaConfig(t, "dev", "cpus:100", "")}, h.quotaStatus().Configs)
	for _, bad := range []map[string]allocator.Quota{
		{"*": {Limit: allocator.Quantities{"cpus": 1000}}},
		{"dev": {Guarantee: allocator.Quantities{"cpus": 2000}, Limit: allocator.Quantities{"cpus": 1000}}},
		{"dev": {Limit: allocator.Quantities{"cpus": -1}}},
	} {
		_, err := master.NewStateMachine(master.Config{Quotas: bad}, h.now)
		assert.Error(t, err, "%v", bad)
	}
}

// A role with a limit of 2 cpus never holds more than 2 cpus, offered or
// used, however many agents have them, and offers it held beyond a new
// limit are rescinded.
func TestQuotaLimitCapsOffers(t *testing.T) {
	h := newHarness(t, master.Config{})
	for range 6 {
		h.registerAgent("cpus:2;mem:1024")
	}
	info := frameworkInfo("capped")
	info.Role = ptr("capped")
	fs, fid := h.subscribe(info)
	h.advance(40 * time.Millisecond)
	before := h.offers(fs)
	require.Equal(t, 12.0, sumOffers(before).CPUs(), "no limit yet: everything is offered")

	require.NoError(t, h.updateQuota(false, quotaConfig(t, "capped", "", "cpus:2")))
	rescinded := 0
	for _, ev := range h.take(fs) {
		if ev.GetType() == schedulerpb.Event_RESCIND {
			rescinded++
		}
	}
	assert.Equal(t, len(before), rescinded, "every offer of the role is rescinded")

	held := resources.Resources{} // launched and still running
	launched := 0
	for round := range 20 {
		h.advance(100 * time.Millisecond)
		offers := h.offers(fs)
		total := held.Add(sumOffers(offers))
		require.LessOrEqual(t, total.CPUs(), 2.0, "round %d: the role holds %s", round, total)
		// Launch what the offers allow, one task of 0.5 cpus per offer.
		for _, o := range offers {
			if sumOffers([]mesospb.Offer{o}).CPUs() >= 0.5 {
				launched++
				task := commandTask(fmt.Sprintf("t%d", launched), o, "cpus:0.5;mem:32")
				require.NoError(t, h.call(fs, fid, launchCall(offerIDs(o), task)))
				held = held.Add(resources.MustParse("cpus:0.5;mem:32"))
			} else {
				require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE.Enum(),
					Decline: &schedulerpb.Call_Decline{OfferIDs: offerIDs(o), Filters: &mesospb.Filters{RefuseSeconds: ptr(0.0)}}}))
			}
		}
	}
	assert.Equal(t, 4, launched, "exactly the limit was used")
	assert.Equal(t, 2.0, held.CPUs())

	// Raising the limit lets the role grow.
	require.NoError(t, h.updateQuota(false, quotaConfig(t, "capped", "", "cpus:5")))
	h.advance(100 * time.Millisecond)
	assert.Equal(t, 3.0, sumOffers(h.offers(fs)).CPUs())

	// The same limit again rescinds nothing; a lower one rescinds.
	rescinds := func() int {
		n := 0
		for _, ev := range h.take(fs) {
			if ev.GetType() == schedulerpb.Event_RESCIND {
				n++
			}
		}
		return n
	}
	require.NoError(t, h.updateQuota(false, quotaConfig(t, "capped", "", "cpus:5")))
	assert.Zero(t, rescinds())
	require.NoError(t, h.updateQuota(false, quotaConfig(t, "capped", "", "cpus:4")))
	assert.Positive(t, rescinds())
}

// A guarantee holds resources back from other roles: with 8 cpus and 4
// guaranteed to a role nobody uses yet, another role is offered 4; the
// guaranteed role's framework then gets its 4.
func TestQuotaGuaranteeHoldsBack(t *testing.T) {
	h := newHarness(t, master.Config{})
	for range 4 {
		h.registerAgent("cpus:2;mem:1024")
	}
	require.NoError(t, h.updateQuota(false, quotaConfig(t, "prod", "cpus:4", "")))

	other := frameworkInfo("other")
	other.Role = ptr("batch")
	bs, _ := h.subscribe(other)
	h.advance(100 * time.Millisecond)
	assert.Equal(t, 4.0, sumOffers(h.offers(bs)).CPUs(), "4 cpus are held for prod")
	h.advance(2 * time.Second)
	assert.Empty(t, h.offers(bs), "and stay held")

	prod := frameworkInfo("prod")
	prod.Role = ptr("prod")
	ps, _ := h.subscribe(prod)
	h.advance(time.Second) // the next full cycle
	assert.Equal(t, 4.0, sumOffers(h.offers(ps)).CPUs())
}

// Setting a guarantee rescinds outstanding offers, so that the guaranteed
// role can be offered what other frameworks sat on.
func TestQuotaGuaranteeRescindsOffers(t *testing.T) {
	h := newHarness(t, master.Config{})
	for range 4 {
		h.registerAgent("cpus:2;mem:1024")
	}
	other := frameworkInfo("other")
	other.Role = ptr("batch")
	bs, _ := h.subscribe(other)
	prod := frameworkInfo("prod")
	prod.Role = ptr("prod")
	ps, _ := h.subscribe(prod)
	h.advance(100 * time.Millisecond)
	// Each framework sits on the offers it got.
	b, p := sumOffers(h.offers(bs)).CPUs(), sumOffers(h.offers(ps)).CPUs()
	require.Equal(t, 8.0, b+p)

	require.NoError(t, h.updateQuota(false, quotaConfig(t, "prod", "cpus:6", "")))
	h.advance(100 * time.Millisecond)
	var rescinds int
	for _, ev := range h.take(bs) {
		if ev.GetType() == schedulerpb.Event_RESCIND {
			rescinds++
		}
	}
	assert.Positive(t, rescinds, "offers were rescinded for the guarantee")
	assert.Positive(t, sumOffers(h.offers(ps)).CPUs(), "prod was offered what came back")
	var prodCPUs float64
	for _, ri := range h.sm.Allocator().Roles() {
		if ri.Name == "prod" {
			prodCPUs = ri.Allocated["cpus"].Float64()
		}
	}
	assert.GreaterOrEqual(t, prodCPUs, 6.0, "prod holds its guarantee")
}

// As in Mesos, UPDATE_QUOTA refuses a limit below what the role's tasks
// and reservations already hold, unless forced; what is merely offered does
// not count (the lower limit rescinds it).
func TestQuotaLimitBelowConsumption(t *testing.T) {
	h := newHarness(t, master.Config{})
	_, aid := h.registerAgent("cpus:4;mem:1024")
	info := frameworkInfo("dev")
	info.Role = ptr("dev")
	fs, fid := h.subscribe(info)
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	require.NoError(t, h.call(fs, fid, launchCall(offerIDs(offers...), commandTask("t1", offers[0], "cpus:2;mem:128"))))
	h.apply(reserveCall(aid, opReserved("cpus:1", "dev/sub")))
	h.advance(40 * time.Millisecond)
	require.NotEmpty(t, h.offers(fs), "the rest is offered again")

	err := h.updateQuota(false, quotaConfig(t, "dev", "", "cpus:2.5"))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	assert.Contains(t, err.Error(), "already consuming 'cpus:3;mem:128'")
	assert.Empty(t, h.quotaStatus().Configs, "nothing applied")

	require.NoError(t, h.updateQuota(false, quotaConfig(t, "dev", "", "cpus:3")), "offers do not count")
	require.NoError(t, h.updateQuota(true, quotaConfig(t, "dev", "", "cpus:1")), "forced")
	require.Len(t, h.quotaStatus().Configs, 1)
}

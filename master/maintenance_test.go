package master_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// The maintenance tests follow Mesos's docs/maintenance.md and
// src/master/{maintenance,http,master}.cpp, and the inverse offers of
// src/master/allocator/mesos/hierarchical.cpp.

func maintHost(hostname string) mesospb.MachineID { return mesospb.MachineID{Hostname: ptr(hostname)} }

func maintWindow(start time.Time, d time.Duration, machines ...mesospb.MachineID) masterpb.Window {
	return masterpb.Window{
		MachineIDs: machines,
		Unavailability: mesospb.Unavailability{
			Start:    mesospb.TimeInfo{Nanoseconds: start.UnixNano()},
			Duration: &mesospb.DurationInfo{Nanoseconds: int64(d)},
		},
	}
}

func maintSchedule(windows ...masterpb.Window) *masterpb.Call {
	return &masterpb.Call{
		Type:                      masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE.Enum(),
		UpdateMaintenanceSchedule: &masterpb.Call_UpdateMaintenanceSchedule{Schedule: masterpb.Schedule{Windows: windows}},
	}
}

func maintStart(machines ...mesospb.MachineID) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_START_MAINTENANCE.Enum(), StartMaintenance: &masterpb.Call_StartMaintenance{Machines: machines}}
}

func maintStop(machines ...mesospb.MachineID) *masterpb.Call {
	return &masterpb.Call{Type: masterpb.Call_STOP_MAINTENANCE.Enum(), StopMaintenance: &masterpb.Call_StopMaintenance{Machines: machines}}
}

func (h *harness) maintStatus() masterpb.ClusterStatus {
	h.t.Helper()
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_MAINTENANCE_STATUS.Enum()})
	require.NoError(h.t, err)
	require.Equal(h.t, masterpb.Response_GET_MAINTENANCE_STATUS, resp.GetType())
	return resp.GetMaintenanceStatus.Status
}

func (h *harness) maintScheduleNow() masterpb.Schedule {
	h.t.Helper()
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_MAINTENANCE_SCHEDULE.Enum()})
	require.NoError(h.t, err)
	require.Equal(h.t, masterpb.Response_GET_MAINTENANCE_SCHEDULE, resp.GetType())
	return resp.GetMaintenanceSchedule.Schedule
}

// registerOnHost registers an agent with the given hostname.
func (h *harness) registerOnHost(hostname, res string) (stream, agentID string) {
	h.t.Helper()
	stream, err := h.sm.ConnectAgent(&internalpb.Call{
		Type: internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
			Hostname: hostname, Resources: resources.MustParse(res).ToProto(),
		}},
	})
	require.NoError(h.t, err)
	h.collect()
	evs := h.takeAgent(stream)
	require.NotEmpty(h.t, evs)
	require.Equal(h.t, internalpb.Event_REGISTERED, evs[0].GetType())
	return stream, evs[0].Registered.AgentID.Value
}

// schedEventsOf returns the stream's events of type t since the last look.
func (h *harness) schedEventsOf(stream string, t schedulerpb.Event_Type) []*schedulerpb.Event {
	return takeOfType(h.sched, stream, t)
}

// inverseOffers returns the inverse offers the stream received since the
// last look.
func (h *harness) inverseOffers(stream string) []mesospb.InverseOffer {
	var out []mesospb.InverseOffer
	for _, ev := range h.schedEventsOf(stream, schedulerpb.Event_INVERSE_OFFERS) {
		out = append(out, ev.InverseOffers.InverseOffers...)
	}
	return out
}

func (h *harness) inverseRescinds(stream string) []string {
	var out []string
	for _, ev := range h.schedEventsOf(stream, schedulerpb.Event_RESCIND_INVERSE_OFFER) {
		out = append(out, ev.RescindInverseOffer.InverseOfferID.Value)
	}
	return out
}

func answerInverse(accept bool, refuse float64, ids ...mesospb.OfferID) *schedulerpb.Call {
	filters := &mesospb.Filters{RefuseSeconds: ptr(refuse)}
	if accept {
		return &schedulerpb.Call{Type: schedulerpb.Call_ACCEPT_INVERSE_OFFERS.Enum(),
			AcceptInverseOffers: &schedulerpb.Call_AcceptInverseOffers{InverseOfferIDs: ids, Filters: filters}}
	}
	return &schedulerpb.Call{Type: schedulerpb.Call_DECLINE_INVERSE_OFFERS.Enum(),
		DeclineInverseOffers: &schedulerpb.Call_DeclineInverseOffers{InverseOfferIDs: ids, Filters: filters}}
}

// maintCluster is a framework running one task (of taskRes) on an agent of
// host "draining-1", having declined the rest for an hour, and an agent on
// host "up-1".
type maintCluster struct {
	*harness
	fs, fid  string
	as, aid  string
	upStream string
}

func newMaintCluster(t *testing.T, cfg master.Config, info mesospb.FrameworkInfo, taskRes string) *maintCluster {
	t.Helper()
	h := newHarness(t, cfg)
	c := &maintCluster{harness: h}
	c.fs, c.fid = h.subscribe(info)
	c.as, c.aid = h.registerOnHost("draining-1", "cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	offers := h.offers(c.fs)
	require.Len(t, offers, 1)
	require.NoError(t, h.call(c.fs, c.fid, launchCall(offerIDs(offers...), commandTask("t1", offers[0], taskRes))))
	h.sendStatus(c.as, c.aid, c.fid, "t1", mesospb.TASK_RUNNING)
	h.advance(40 * time.Millisecond)
	if rest := h.offers(c.fs); len(rest) > 0 {
		require.NoError(t, h.call(c.fs, c.fid, declineCall(rest, 3600)))
	}
	c.upStream, _ = h.registerOnHost("up-1", "cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	h.take(c.fs)
	return c
}

const wholeAgent = "cpus:2;mem:512"

func TestMaintenanceScheduleValidation(t *testing.T) {
	h := newHarness(t, master.Config{})
	start := h.now.Add(time.Hour)
	good := maintWindow(start, time.Hour, maintHost("a"))
	h.apply(maintSchedule(good))

	cases := map[string]*masterpb.Call{
		"no schedule field":         {Type: masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE.Enum()},
		"window without machine":    maintSchedule(maintWindow(start, time.Hour)),
		"negative duration":         maintSchedule(maintWindow(start, -time.Second, maintHost("b"))),
		"empty machine id":          maintSchedule(maintWindow(start, time.Hour, mesospb.MachineID{})),
		"empty hostname and ip":     maintSchedule(maintWindow(start, time.Hour, mesospb.MachineID{Hostname: ptr(""), IP: ptr("")})),
		"bad ip":                    maintSchedule(maintWindow(start, time.Hour, mesospb.MachineID{Hostname: ptr("b"), IP: ptr("1.2.3")})),
		"ipv6":                      maintSchedule(maintWindow(start, time.Hour, mesospb.MachineID{IP: ptr("::1")})),
		"machine twice, one window": maintSchedule(maintWindow(start, time.Hour, maintHost("b"), maintHost("b"))),
		"machine twice, hostname case": maintSchedule(
			maintWindow(start, time.Hour, maintHost("b")), maintWindow(start, time.Hour, maintHost("B"))),
	}
	for name, call := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := h.operator(call)
			require.ErrorIs(t, err, master.ErrInvalidCall)
			// Nothing changed.
			assert.Equal(t, masterpb.Schedule{Windows: []masterpb.Window{good}}, h.maintScheduleNow())
		})
	}

	// A machine with a hostname and an IP is distinct from one with the
	// hostname alone; a zero duration is allowed.
	h.apply(maintSchedule(maintWindow(start, 0, maintHost("a"), mesospb.MachineID{Hostname: ptr("a"), IP: ptr("10.0.0.1")})))
	assert.Len(t, h.maintStatus().DrainingMachines, 2)
}

func TestMaintenanceScheduleAndStatus(t *testing.T) {
	h := newHarness(t, master.Config{})
	assert.Equal(t, masterpb.Schedule{}, h.maintScheduleNow())
	assert.Equal(t, masterpb.ClusterStatus{}, h.maintStatus())

	start := h.now.Add(time.Hour)
	w1 := maintWindow(start, time.Hour, maintHost("b"), mesospb.MachineID{Hostname: ptr("a"), IP: ptr("10.0.0.1")})
	w2 := maintWindow(start.Add(time.Hour), time.Hour, mesospb.MachineID{IP: ptr("10.0.0.3")})
	call := maintSchedule(w1, w2)
	h.apply(call)
	// The caller's call is not kept: changing it changes nothing.
	call.UpdateMaintenanceSchedule.Schedule.Windows[0].MachineIDs[0].Hostname = ptr("changed")

	got := h.maintScheduleNow()
	require.Len(t, got.Windows, 2)
	assert.Equal(t, "b", got.Windows[0].MachineIDs[0].GetHostname(), "the schedule as posted")
	assert.Equal(t, w2, got.Windows[1])

	status := h.maintStatus()
	assert.Empty(t, status.DownMachines)
	var draining []mesospb.MachineID
	for _, m := range status.DrainingMachines {
		draining = append(draining, m.ID)
		assert.Empty(t, m.Statuses, "nobody answered")
	}
	assert.ElementsMatch(t, []mesospb.MachineID{
		maintHost("b"), {Hostname: ptr("a"), IP: ptr("10.0.0.1")}, {IP: ptr("10.0.0.3")},
	}, draining)

	// An empty schedule cancels maintenance: every machine is UP again.
	h.apply(maintSchedule())
	assert.Equal(t, masterpb.Schedule{}, h.maintScheduleNow())
	assert.Equal(t, masterpb.ClusterStatus{}, h.maintStatus())
}

func TestMaintenanceOffersCarryUnavailability(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, _ := h.subscribe(frameworkInfo("fw"))
	_, drainingID := h.registerOnHost("Draining-1", "cpus:2;mem:512")
	_, upID := h.registerOnHost("up-1", "cpus:2;mem:512")
	h.advance(40 * time.Millisecond)
	before := h.offers(fs)
	require.Len(t, before, 2)
	for _, o := range before {
		assert.Nil(t, o.Unavailability)
	}

	// Scheduling the machine (hostnames compare without case) rescinds its
	// agent's offer; it comes back with the unavailability.
	start := h.now.Add(time.Hour)
	h.apply(maintSchedule(maintWindow(start, 2*time.Hour, maintHost("draining-1"))))
	rescinded := h.rescinded(fs)
	require.Len(t, rescinded, 1)
	for _, o := range before {
		if o.AgentID.Value == drainingID {
			assert.Equal(t, o.ID.Value, rescinded[0])
		}
	}
	h.advance(40 * time.Millisecond)
	after := h.offers(fs)
	require.Len(t, after, 1)
	assert.Equal(t, drainingID, after[0].AgentID.Value)
	require.NotNil(t, after[0].Unavailability)
	assert.Equal(t, start.UnixNano(), after[0].Unavailability.Start.Nanoseconds)
	assert.Equal(t, int64(2*time.Hour), after[0].Unavailability.Duration.Nanoseconds)

	// GET_FRAMEWORKS shows the same.
	var seen int
	for _, f := range h.sm.State().GetFrameworks.Frameworks {
		for _, o := range f.Offers {
			if o.AgentID.Value == drainingID {
				seen++
				require.NotNil(t, o.Unavailability)
			} else {
				assert.Equal(t, upID, o.AgentID.Value)
				assert.Nil(t, o.Unavailability)
			}
		}
	}
	assert.Equal(t, 1, seen)

	// Cancelling the schedule rescinds it again; the next one has none.
	h.apply(maintSchedule())
	assert.Equal(t, []string{after[0].ID.Value}, h.rescinded(fs))
	h.advance(40 * time.Millisecond)
	again := h.offers(fs)
	require.Len(t, again, 1)
	assert.Nil(t, again[0].Unavailability)
}

func TestInverseOffersAcceptAndDecline(t *testing.T) {
	c := newMaintCluster(t, master.Config{}, frameworkInfo("fw"), wholeAgent)
	other, _ := c.subscribe(frameworkInfo("idle")) // holds nothing on the machine
	c.advance(40 * time.Millisecond)
	c.take(other)
	c.take(c.fs)

	start := c.now.Add(time.Hour)
	c.apply(maintSchedule(maintWindow(start, time.Hour, maintHost("draining-1"))))
	c.advance(40 * time.Millisecond)
	inv := c.inverseOffers(c.fs)
	require.Len(t, inv, 1)
	assert.Equal(t, c.aid, inv[0].AgentID.Value)
	assert.Equal(t, c.fid, inv[0].FrameworkID.Value)
	assert.Equal(t, start.UnixNano(), inv[0].Unavailability.Start.Nanoseconds)
	assert.Empty(t, inv[0].Resources, "the whole agent")
	require.NotNil(t, inv[0].URL, "the agent's URL, as Mesos sets it")
	assert.Equal(t, "draining-1", inv[0].URL.Address.GetHostname())
	// The idle framework (on the up agent only, if anywhere) gets none.
	assert.Empty(t, c.inverseOffers(other))

	// One outstanding per framework and agent: allocation runs make no more.
	c.advance(3 * time.Second)
	assert.Empty(t, c.inverseOffers(c.fs))

	// GET_FRAMEWORKS lists it while it is outstanding.
	var listed []mesospb.InverseOffer
	for _, f := range c.sm.State().GetFrameworks.Frameworks {
		listed = append(listed, f.InverseOffers...)
	}
	require.Len(t, listed, 1)
	assert.Equal(t, inv[0].ID, listed[0].ID)

	// Accept with no filter: the answer is recorded with its time, and a
	// new inverse offer follows at the next allocation run.
	require.NoError(t, c.call(c.fs, c.fid, answerInverse(true, 0, inv[0].ID)))
	status := c.maintStatus()
	require.Len(t, status.DrainingMachines, 1)
	require.Len(t, status.DrainingMachines[0].Statuses, 1)
	st := status.DrainingMachines[0].Statuses[0]
	assert.Equal(t, masterpb.InverseOfferStatus_ACCEPT, st.GetStatus())
	assert.Equal(t, c.fid, st.FrameworkID.Value)
	assert.Equal(t, c.now.UnixNano(), st.Timestamp.Nanoseconds)
	c.advance(1100 * time.Millisecond)
	inv2 := c.inverseOffers(c.fs)
	require.Len(t, inv2, 1)
	assert.NotEqual(t, inv[0].ID, inv2[0].ID)

	// Answering the old one again changes nothing.
	require.NoError(t, c.call(c.fs, c.fid, answerInverse(false, 0, inv[0].ID)))
	assert.Equal(t, masterpb.InverseOfferStatus_ACCEPT, c.maintStatus().DrainingMachines[0].Statuses[0].GetStatus())

	// Decline with a 10 s filter: no inverse offer for 10 s, then one.
	require.NoError(t, c.call(c.fs, c.fid, answerInverse(false, 10, inv2[0].ID)))
	assert.Equal(t, masterpb.InverseOfferStatus_DECLINE, c.maintStatus().DrainingMachines[0].Statuses[0].GetStatus())
	c.advance(9 * time.Second)
	assert.Empty(t, c.inverseOffers(c.fs))
	c.advance(2 * time.Second)
	require.Len(t, c.inverseOffers(c.fs), 1)
	assert.Empty(t, c.inverseOffers(other))
}

func TestInverseOffersDefaultFilterIsFiveSeconds(t *testing.T) {
	c := newMaintCluster(t, master.Config{}, frameworkInfo("fw"), wholeAgent)
	c.apply(maintSchedule(maintWindow(c.now, time.Hour, maintHost("draining-1"))))
	c.advance(40 * time.Millisecond)
	inv := c.inverseOffers(c.fs)
	require.Len(t, inv, 1)
	require.NoError(t, c.call(c.fs, c.fid, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE_INVERSE_OFFERS.Enum(),
		DeclineInverseOffers: &schedulerpb.Call_DeclineInverseOffers{InverseOfferIDs: offerIDsOf(inv)}}))
	c.advance(4900 * time.Millisecond)
	assert.Empty(t, c.inverseOffers(c.fs))
	c.advance(1100 * time.Millisecond)
	assert.Len(t, c.inverseOffers(c.fs), 1)
}

func offerIDsOf(inv []mesospb.InverseOffer) []mesospb.OfferID {
	ids := make([]mesospb.OfferID, len(inv))
	for i, io := range inv {
		ids[i] = io.ID
	}
	return ids
}

func TestInverseOfferCallsAreValidated(t *testing.T) {
	c := newMaintCluster(t, master.Config{}, frameworkInfo("fw"), wholeAgent)
	err := c.call(c.fs, c.fid, &schedulerpb.Call{Type: schedulerpb.Call_ACCEPT_INVERSE_OFFERS.Enum()})
	assert.ErrorIs(t, err, master.ErrInvalidCall)
	err = c.call(c.fs, c.fid, &schedulerpb.Call{Type: schedulerpb.Call_DECLINE_INVERSE_OFFERS.Enum()})
	assert.ErrorIs(t, err, master.ErrInvalidCall)
	// Unknown IDs are ignored, as Mesos ignores them.
	require.NoError(t, c.call(c.fs, c.fid, answerInverse(true, 0, mesospb.OfferID{Value: "nope"})))

	// Another framework cannot answer for this one.
	c.apply(maintSchedule(maintWindow(c.now, time.Hour, maintHost("draining-1"))))
	c.advance(40 * time.Millisecond)
	inv := c.inverseOffers(c.fs)
	require.Len(t, inv, 1)
	os, oid := c.subscribe(frameworkInfo("other"))
	require.NoError(t, c.call(os, oid, answerInverse(false, 0, inv[0].ID)))
	assert.Empty(t, c.maintStatus().DrainingMachines[0].Statuses)
}

func TestInverseOffersRescinded(t *testing.T) {
	t.Run("schedule change", func(t *testing.T) {
		c := newMaintCluster(t, master.Config{}, frameworkInfo("fw"), wholeAgent)
		start := c.now.Add(time.Hour)
		c.apply(maintSchedule(maintWindow(start, time.Hour, maintHost("draining-1"))))
		c.advance(40 * time.Millisecond)
		inv := c.inverseOffers(c.fs)
		require.Len(t, inv, 1)
		require.NoError(t, c.call(c.fs, c.fid, answerInverse(false, 3600, inv[0].ID)))
		c.advance(40 * time.Millisecond)
		assert.Empty(t, c.inverseOffers(c.fs), "filtered")

		// A new unavailability clears answers and filters: a new inverse
		// offer carries it at once.
		later := start.Add(time.Hour)
		c.apply(maintSchedule(maintWindow(later, time.Hour, maintHost("draining-1"))))
		assert.Empty(t, c.maintStatus().DrainingMachines[0].Statuses)
		c.advance(40 * time.Millisecond)
		inv = c.inverseOffers(c.fs)
		require.Len(t, inv, 1)
		assert.Equal(t, later.UnixNano(), inv[0].Unavailability.Start.Nanoseconds)

		// An outstanding one is rescinded by the next change.
		c.apply(maintSchedule(maintWindow(start, time.Hour, maintHost("draining-1"))))
		assert.Equal(t, []string{inv[0].ID.Value}, c.inverseRescinds(c.fs))
		// And by cancelling the schedule, after which none come.
		c.advance(40 * time.Millisecond)
		inv = c.inverseOffers(c.fs)
		require.Len(t, inv, 1)
		c.apply(maintSchedule())
		assert.Equal(t, []string{inv[0].ID.Value}, c.inverseRescinds(c.fs))
		c.advance(2 * time.Second)
		assert.Empty(t, c.inverseOffers(c.fs))
	})

	t.Run("agent disconnects", func(t *testing.T) {
		c := newMaintCluster(t, master.Config{}, frameworkInfo("fw"), wholeAgent)
		c.apply(maintSchedule(maintWindow(c.now, time.Hour, maintHost("draining-1"))))
		c.advance(40 * time.Millisecond)
		inv := c.inverseOffers(c.fs)
		require.Len(t, inv, 1)
		c.sm.StreamEnded(c.as)
		c.advance(40 * time.Millisecond)
		assert.Equal(t, []string{inv[0].ID.Value}, c.inverseRescinds(c.fs))
		c.advance(2 * time.Second)
		assert.Empty(t, c.inverseOffers(c.fs), "none while it is away")
	})

	t.Run("agent deactivated", func(t *testing.T) {
		c := newMaintCluster(t, master.Config{}, frameworkInfo("fw"), wholeAgent)
		c.apply(maintSchedule(maintWindow(c.now, time.Hour, maintHost("draining-1"))))
		c.advance(40 * time.Millisecond)
		inv := c.inverseOffers(c.fs)
		require.Len(t, inv, 1)
		_, err := c.operator(&masterpb.Call{Type: masterpb.Call_DEACTIVATE_AGENT.Enum(),
			DeactivateAgent: &masterpb.Call_DeactivateAgent{AgentID: mesospb.AgentID{Value: c.aid}}})
		require.NoError(t, err)
		c.advance(40 * time.Millisecond)
		assert.Equal(t, []string{inv[0].ID.Value}, c.inverseRescinds(c.fs))
		c.advance(2 * time.Second)
		assert.Empty(t, c.inverseOffers(c.fs), "none while it is deactivated")
	})

	t.Run("offer timeout", func(t *testing.T) {
		c := newMaintCluster(t, master.Config{OfferTimeout: 10 * time.Second}, frameworkInfo("fw"), wholeAgent)
		c.apply(maintSchedule(maintWindow(c.now, time.Hour, maintHost("draining-1"))))
		c.advance(40 * time.Millisecond)
		inv := c.inverseOffers(c.fs)
		require.Len(t, inv, 1)
		c.advance(9 * time.Second)
		assert.Empty(t, c.inverseRescinds(c.fs))
		c.advance(1100 * time.Millisecond)
		assert.Equal(t, []string{inv[0].ID.Value}, c.inverseRescinds(c.fs))
		assert.Empty(t, c.maintStatus().DrainingMachines[0].Statuses, "no answer recorded")
		c.advance(1100 * time.Millisecond)
		assert.Len(t, c.inverseOffers(c.fs), 1, "a new one follows")
	})

	t.Run("framework re-subscribes", func(t *testing.T) {
		info := frameworkInfo("fw")
		info.FailoverTimeout = ptr(60.0)
		c := newMaintCluster(t, master.Config{}, info, wholeAgent)
		c.apply(maintSchedule(maintWindow(c.now, time.Hour, maintHost("draining-1"))))
		c.advance(40 * time.Millisecond)
		inv := c.inverseOffers(c.fs)
		require.Len(t, inv, 1)
		c.sm.StreamEnded(c.fs)
		c.advance(40 * time.Millisecond)
		info.ID = &mesospb.FrameworkID{Value: c.fid}
		fs, _ := c.subscribe(info)
		c.advance(40 * time.Millisecond)
		again := c.inverseOffers(fs)
		require.Len(t, again, 1, "the new stream gets a new inverse offer")
		assert.NotEqual(t, inv[0].ID, again[0].ID)
		// The old ID is no longer valid.
		require.NoError(t, c.call(fs, c.fid, answerInverse(true, 0, inv[0].ID)))
		assert.Empty(t, c.maintStatus().DrainingMachines[0].Statuses)
	})
}

func TestStartAndStopMaintenance(t *testing.T) {
	c := newMaintCluster(t, master.Config{}, frameworkInfo("fw"), "cpus:1;mem:128")
	pa := frameworkInfo("pa")
	pa.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_PARTITION_AWARE.Enum()}}
	ps, pid := c.subscribe(pa)
	c.advance(40 * time.Millisecond)
	var onDraining []mesospb.Offer
	for _, o := range c.offers(ps) {
		if o.AgentID.Value == c.aid {
			onDraining = append(onDraining, o)
		}
	}
	require.Len(t, onDraining, 1)
	require.NoError(t, c.call(ps, pid, launchCall(offerIDs(onDraining...), commandTask("p1", onDraining[0], "cpus:0.5;mem:64"))))
	c.take(ps)
	c.take(c.fs)

	machine := maintHost("draining-1")
	start := c.now.Add(time.Hour)

	// Not scheduled: START_MAINTENANCE and STOP_MAINTENANCE refuse.
	_, err := c.operator(maintStart(machine))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	assert.Contains(t, err.Error(), "not part of a maintenance schedule")
	_, err = c.operator(maintStop(machine))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	for name, call := range map[string]*masterpb.Call{
		"no field":      {Type: masterpb.Call_START_MAINTENANCE.Enum()},
		"no machines":   maintStart(),
		"twice":         maintStart(machine, machine),
		"empty machine": maintStart(mesospb.MachineID{}),
	} {
		_, err := c.operator(call)
		require.ErrorIs(t, err, master.ErrInvalidCall, name)
	}

	c.apply(maintSchedule(maintWindow(start, time.Hour, machine, maintHost("elsewhere"))))
	// A DRAINING machine cannot be brought up, only down.
	_, err = c.operator(maintStop(machine))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	assert.Contains(t, err.Error(), "not in DOWN mode")
	// All or nothing: one bad machine refuses the call.
	_, err = c.operator(maintStart(machine, maintHost("unscheduled")))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	assert.Len(t, c.maintStatus().DrainingMachines, 2)

	// Down: the agent is told to shut down and removed; its tasks are lost
	// (gone, for a partition-aware framework), every framework hears the
	// agent is gone.
	c.apply(maintStart(machine))
	shutdown := c.agentEventsOf(c.as, internalpb.Event_SHUTDOWN)
	require.Len(t, shutdown, 1)
	assert.Equal(t, "Operator initiated 'Machine DOWN'", shutdown[0].Shutdown.GetMessage())
	assert.True(t, c.closed[c.as])
	ups := c.updates(c.fs)
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_LOST, ups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_AGENT_REMOVED, ups[0].GetReason())
	pups := c.updates(ps)
	require.Len(t, pups, 1)
	assert.Equal(t, mesospb.TASK_GONE_BY_OPERATOR, pups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_AGENT_REMOVED_BY_OPERATOR, pups[0].GetReason())
	assert.Len(t, c.schedEventsOf(c.fs, schedulerpb.Event_FAILURE), 1)
	for _, a := range c.sm.State().GetAgents.Agents {
		assert.NotEqual(t, c.aid, a.AgentInfo.ID.Value)
	}

	status := c.maintStatus()
	assert.Equal(t, []mesospb.MachineID{machine}, status.DownMachines)
	require.Len(t, status.DrainingMachines, 1)
	assert.Equal(t, maintHost("elsewhere"), status.DrainingMachines[0].ID)
	_, err = c.operator(maintStart(machine))
	require.ErrorIs(t, err, master.ErrInvalidCall, "already DOWN")
	assert.Contains(t, err.Error(), "not in DRAINING mode")

	// A DOWN machine cannot leave the schedule by an update.
	_, err = c.operator(maintSchedule(maintWindow(start, time.Hour, maintHost("elsewhere"))))
	require.ErrorIs(t, err, master.ErrInvalidCall)
	assert.Contains(t, err.Error(), "cannot be removed from the schedule")
	// It may stay with another unavailability, and stays DOWN.
	later := start.Add(time.Hour)
	c.apply(maintSchedule(maintWindow(later, time.Hour, machine, maintHost("elsewhere"))))
	assert.Equal(t, []mesospb.MachineID{machine}, c.maintStatus().DownMachines)

	// Its agents are refused while it is DOWN: a stream that says SHUTDOWN
	// and ends, as Mesos's ShutdownMessage.
	for _, typ := range []internalpb.Call_Type{internalpb.Call_REGISTER, internalpb.Call_REREGISTER} {
		call := &internalpb.Call{Type: typ.Enum()}
		ai := mesospb.AgentInfo{Hostname: "DRAINING-1", Resources: resources.MustParse("cpus:1").ToProto()}
		if typ == internalpb.Call_REGISTER {
			call.Register = &internalpb.Call_Register{AgentInfo: ai}
		} else {
			ai.ID = &mesospb.AgentID{Value: c.aid}
			call.Reregister = &internalpb.Call_Reregister{AgentInfo: ai}
		}
		s, err := c.sm.ConnectAgent(call)
		require.NoError(t, err, typ)
		c.collect()
		evs := c.takeAgent(s)
		require.Len(t, evs, 1, typ)
		assert.Equal(t, internalpb.Event_SHUTDOWN, evs[0].GetType())
		assert.Equal(t, "Machine is `DOWN`", evs[0].Shutdown.GetMessage())
		assert.True(t, c.closed[s])
	}
	assert.Len(t, c.sm.State().GetAgents.Agents, 1, "only the agent on up-1")

	// Up: the machine leaves the schedule (its window stays for the other
	// machine), and its agents may register again, with offers that carry
	// no unavailability.
	c.apply(maintStop(machine))
	assert.Equal(t, masterpb.Schedule{Windows: []masterpb.Window{maintWindow(later, time.Hour, maintHost("elsewhere"))}}, c.maintScheduleNow())
	assert.Empty(t, c.maintStatus().DownMachines)
	_, err = c.operator(maintStop(machine))
	require.ErrorIs(t, err, master.ErrInvalidCall, "no longer scheduled")
	_, back := c.registerOnHost("draining-1", "cpus:2;mem:512")
	c.advance(40 * time.Millisecond)
	var found bool
	for _, o := range append(c.offers(c.fs), c.offers(ps)...) {
		if o.AgentID.Value == back {
			found = true
			assert.Nil(t, o.Unavailability)
		}
	}
	assert.True(t, found)
}

func TestMaintenanceAgentJoiningDrainingMachine(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, _ := h.subscribe(frameworkInfo("fw"))
	start := h.now.Add(time.Hour)
	// Scheduled before any agent is there, by IP: an agent whose hostname
	// is that IP is on the machine.
	h.apply(maintSchedule(maintWindow(start, time.Hour, mesospb.MachineID{IP: ptr("10.0.0.7")})))
	_, id := h.registerOnHost("10.0.0.7", "cpus:1;mem:128")
	h.registerOnHost("10.0.0.8", "cpus:1;mem:128")
	h.advance(40 * time.Millisecond)
	offers := h.offers(fs)
	require.Len(t, offers, 2)
	for _, o := range offers {
		if o.AgentID.Value == id {
			require.NotNil(t, o.Unavailability)
			assert.Equal(t, start.UnixNano(), o.Unavailability.Start.Nanoseconds)
		} else {
			assert.Nil(t, o.Unavailability)
		}
	}
	// Offered resources count: the framework holding the offer gets an
	// inverse offer for the agent.
	inv := h.inverseOffers(fs)
	require.Len(t, inv, 1)
	assert.Equal(t, id, inv[0].AgentID.Value)
}

// TestMaintenanceOverHTTP posts the schedule of Mesos's docs/maintenance.md
// in Mesos's v1 JSON and reads it back, with the status.
func TestMaintenanceOverHTTP(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	schedule := `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[` +
		`{"machine_ids":[{"hostname":"machine1","ip":"10.0.0.1"},{"hostname":"machine2","ip":"10.0.0.2"}],` +
		`"unavailability":{"start":{"nanoseconds":1443830400000000000},"duration":{"nanoseconds":3600000000000}}},` +
		`{"machine_ids":[{"hostname":"machine3","ip":"10.0.0.3"}],` +
		`"unavailability":{"start":{"nanoseconds":1443834000000000000},"duration":{"nanoseconds":3600000000000}}}]}}}`
	resp := h.post("/api/v1", "application/json", "", []byte(schedule))
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))

	resp = h.post("/api/v1", "application/json", "", []byte(`{"type":"GET_MAINTENANCE_SCHEDULE"}`))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got := body(t, resp)
	assert.Contains(t, got, `"type":"GET_MAINTENANCE_SCHEDULE"`)
	assert.Contains(t, got, `{"hostname":"machine3","ip":"10.0.0.3"}`)
	assert.Contains(t, got, `"start":{"nanoseconds":1443834000000000000}`)

	resp = h.post("/api/v1", "application/json", "", []byte(`{"type":"START_MAINTENANCE","start_maintenance":{"machines":[{"hostname":"machine3","ip":"10.0.0.3"}]}}`))
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	resp = h.post("/api/v1", "application/json", "", []byte(`{"type":"GET_MAINTENANCE_STATUS"}`))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got = body(t, resp)
	assert.Contains(t, got, `"type":"GET_MAINTENANCE_STATUS"`)
	assert.Contains(t, got, `"down_machines":[{"hostname":"machine3","ip":"10.0.0.3"}]`)
	assert.Contains(t, got, `"draining_machines":[{"id":{"hostname":"machine1","ip":"10.0.0.1"}}`)

	// Refusals are 400, as Mesos's BadRequest.
	resp = h.post("/api/v1", "application/json", "", []byte(`{"type":"STOP_MAINTENANCE","stop_maintenance":{"machines":[{"hostname":"machine1","ip":"10.0.0.1"}]}}`))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp = h.post("/api/v1", "application/json", "", []byte(`{"type":"START_MAINTENANCE"}`))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// TestMaintenanceEndpoints drives Mesos's older endpoints with the bodies of
// docs/maintenance.md.
func TestMaintenanceEndpoints(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	schedule := `{"windows":[{"machine_ids":[{"hostname":"machine1","ip":"10.0.0.1"},{"hostname":"machine2","ip":"10.0.0.2"}],` +
		`"unavailability":{"start":{"nanoseconds":1443830400000000000},"duration":{"nanoseconds":3600000000000}}}]}`
	for _, prefix := range []string{"", "/master"} {
		resp := h.post(prefix+"/maintenance/schedule", "application/json", "", []byte(schedule))
		require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
		resp, got := h.get(prefix + "/maintenance/schedule")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, schedule, got)
	}

	resp := h.post("/machine/down", "application/json", "", []byte(`[{"hostname":"machine1","ip":"10.0.0.1"}]`))
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	_, got := h.get("/maintenance/status")
	assert.JSONEq(t, `{"draining_machines":[{"id":{"hostname":"machine2","ip":"10.0.0.2"}}],"down_machines":[{"hostname":"machine1","ip":"10.0.0.1"}]}`, got)

	// Refusals: 400 with the reason; bad JSON 400; wrong method 405.
	resp = h.post("/machine/down", "application/json", "", []byte(`[{"hostname":"machine1","ip":"10.0.0.1"}]`))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body(t, resp), "not in DRAINING mode")
	resp = h.post("/machine/up", "application/json", "", []byte(`{"hostname":"machine1"}`))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp = h.post("/maintenance/schedule", "application/json", "", []byte(`{"windows":[]}`))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "machine1 is DOWN")
	resp = h.post("/maintenance/status", "application/json", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp, _ = h.get("/machine/up")
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	resp = h.post("/master/machine/up", "application/json", "", []byte(`[{"hostname":"machine1","ip":"10.0.0.1"}]`))
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	_, got = h.get("/maintenance/status")
	assert.JSONEq(t, `{"draining_machines":[{"id":{"hostname":"machine2","ip":"10.0.0.2"}}]}`, got)
}

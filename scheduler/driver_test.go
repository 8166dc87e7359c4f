package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

func TestNewDriverValidates(t *testing.T) {
	m := &fakeMaster{}
	_, err := NewDriver(nil, testInfo(), WithMaster(m))
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = NewDriver(Base{}, testInfo())
	assert.ErrorIs(t, err, ErrInvalid, "no master")
	_, err = NewDriver(Base{}, testInfo(), WithMaster(m), WithClock(nil))
	assert.ErrorIs(t, err, ErrInvalid, "nil clock")
	_, err = NewDriver(Base{}, testInfo(), WithMaster(m), WithBackoff(0, time.Second))
	assert.ErrorIs(t, err, ErrInvalid, "zero min backoff")
	_, err = NewDriver(Base{}, testInfo(), WithMaster(m), WithBackoff(2*time.Second, time.Second))
	assert.ErrorIs(t, err, ErrInvalid, "max below min")
	d, err := NewDriver(Funcs{}, testInfo(), WithMaster(m), WithLogger(nil), nil)
	require.NoError(t, err)
	assert.Empty(t, d.FrameworkID().Value)
	assert.False(t, d.Connected())
}

func TestSubscribeGivesRegistered(t *testing.T) {
	h := startRegistered(t)

	subs := h.m.subscribes()
	require.Len(t, subs, 1)
	want := &schedulerpb.Call{
		Type:      schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: testInfo()},
	}
	assert.Equal(t, want, subs[0], "a first SUBSCRIBE carries no framework ID")

	assert.Equal(t, "fw-1", h.d.FrameworkID().Value)
	assert.True(t, h.d.Connected())
	h.rec.mu.Lock()
	assert.Equal(t, "fw-1", h.rec.fwID.Value)
	assert.Equal(t, &testMasterInfo, h.rec.master)
	h.rec.mu.Unlock()
	assert.Equal(t, []string{"registered fw-1"}, h.rec.entries())
}

func TestResubscribeAfterStreamEndKeepsFrameworkID(t *testing.T) {
	h := startRegistered(t)
	h.m.endStream(t)
	h.waitEntry("disconnected")

	// Between streams nothing is sent, and nothing is queued either.
	err := h.d.ReviveOffers(context.Background())
	require.ErrorIs(t, err, ErrNotConnected)
	assert.False(t, h.d.Connected())

	h.passBackoff()
	h.waitEntry("reregistered")
	assert.Equal(t, []string{"registered fw-1", "disconnected", "reregistered"}, h.rec.entries())

	subs := h.m.subscribes()
	require.Len(t, subs, 2)
	require.NotNil(t, subs[1].FrameworkID)
	assert.Equal(t, "fw-1", subs[1].FrameworkID.Value)
	require.NotNil(t, subs[1].Subscribe.FrameworkInfo.ID)
	assert.Equal(t, "fw-1", subs[1].Subscribe.FrameworkInfo.ID.Value)

	// Calls go on the new stream.
	require.NoError(t, h.d.ReviveOffers(context.Background()))
	revives := h.m.sent(schedulerpb.Call_REVIVE)
	require.Len(t, revives, 1)
	assert.Equal(t, "stream-2", revives[0].streamID)
}

func TestFailoverWithGivenFrameworkID(t *testing.T) {
	info := testInfo()
	info.ID = &mesospb.FrameworkID{Value: "fw-old"}
	h := newHarnessInfo(t, info)
	assert.Equal(t, "fw-old", h.d.FrameworkID().Value)
	h.start()

	// The driver's first subscription is Registered, even when taking over.
	h.waitEntry("registered fw-old")
	subs := h.m.subscribes()
	require.Len(t, subs, 1)
	assert.Equal(t, "fw-old", subs[0].FrameworkID.Value)
	assert.Equal(t, "fw-old", subs[0].Subscribe.FrameworkInfo.ID.Value)
}

func TestImplicitAcknowledgements(t *testing.T) {
	h := newHarness(t)
	var acksDuringCallback []int
	h.rec.hooks.OnStatusUpdate = func(ctx context.Context, d *Driver, st mesospb.TaskStatus) {
		acksDuringCallback = append(acksDuringCallback, len(h.m.sent(schedulerpb.Call_ACKNOWLEDGE)))
	}
	h.start()
	h.waitEntry("registered fw-1")

	uuid := []byte("0123456789abcdef")
	h.m.push(t, updateEvent("no-uuid", nil))
	h.m.push(t, updateEvent("with-uuid", uuid))
	require.Eventually(t, func() bool { return len(h.m.sent(schedulerpb.Call_ACKNOWLEDGE)) == 1 }, waitFor, tick)

	acks := h.m.sent(schedulerpb.Call_ACKNOWLEDGE)
	want := &schedulerpb.Call{
		FrameworkID: &mesospb.FrameworkID{Value: "fw-1"},
		Type:        schedulerpb.Call_ACKNOWLEDGE.Enum(),
		Acknowledge: &schedulerpb.Call_Acknowledge{
			AgentID: mesospb.AgentID{Value: "agent-1"},
			TaskID:  mesospb.TaskID{Value: "with-uuid"},
			UUID:    uuid,
		},
	}
	assert.Equal(t, want, acks[0].call)
	assert.Equal(t, "stream-1", acks[0].streamID)
	assert.Equal(t, []string{"registered fw-1", "update no-uuid", "update with-uuid"}, h.rec.entries())
	assert.Equal(t, []int{0, 0}, acksDuringCallback, "the ack is sent after StatusUpdate returns")

	// Updates without uuid are never acknowledged: a later event has been
	// handled and still only one ACKNOWLEDGE went out.
	h.m.push(t, offersEvent("o1"))
	h.waitEntry("offers 1")
	assert.Len(t, h.m.sent(schedulerpb.Call_ACKNOWLEDGE), 1)

	err := h.d.AcknowledgeStatusUpdate(context.Background(), updateEvent("x", uuid).Update.Status)
	assert.ErrorIs(t, err, ErrInvalid, "explicit acks are refused in implicit mode")
}

func TestExplicitAcknowledgements(t *testing.T) {
	h := startRegistered(t, WithExplicitAcknowledgements())
	uuid := []byte("fedcba9876543210")
	h.m.push(t, updateEvent("t1", uuid))
	h.m.push(t, offersEvent("o1"))
	h.waitEntry("offers 1") // so the update has been handled completely
	assert.Empty(t, h.m.sent(schedulerpb.Call_ACKNOWLEDGE))

	h.rec.mu.Lock()
	st := h.rec.updates[0]
	h.rec.mu.Unlock()
	require.NoError(t, h.d.AcknowledgeStatusUpdate(context.Background(), st))
	acks := h.m.sent(schedulerpb.Call_ACKNOWLEDGE)
	require.Len(t, acks, 1)
	assert.Equal(t, &schedulerpb.Call_Acknowledge{
		AgentID: mesospb.AgentID{Value: "agent-1"},
		TaskID:  mesospb.TaskID{Value: "t1"},
		UUID:    uuid,
	}, acks[0].call.Acknowledge)
	assert.Equal(t, "fw-1", acks[0].call.FrameworkID.Value)

	noUUID := updateEvent("t2", nil).Update.Status
	assert.ErrorIs(t, h.d.AcknowledgeStatusUpdate(context.Background(), noUUID), ErrInvalid)
	noAgent := updateEvent("t3", uuid).Update.Status
	noAgent.AgentID = nil
	assert.ErrorIs(t, h.d.AcknowledgeStatusUpdate(context.Background(), noAgent), ErrInvalid)
	assert.Len(t, h.m.sent(schedulerpb.Call_ACKNOWLEDGE), 1)
}

func TestHeartbeatLossResubscribes(t *testing.T) {
	h := startRegistered(t) // the fake master announces 15 s heartbeats
	h.waitTimers(1)

	h.clk.Advance(74 * time.Second) // not yet five intervals
	h.clk.Advance(time.Second)
	h.waitEntry("disconnected")
	require.Eventually(t, func() bool { return h.m.stream(0).isClosed() }, waitFor, tick,
		"the dead stream is given up on the driver's side")

	h.passBackoff()
	h.waitEntry("reregistered")
	subs := h.m.subscribes()
	require.Len(t, subs, 2)
	assert.Equal(t, "fw-1", subs[1].FrameworkID.Value)
}

func TestHeartbeatsKeepStreamAlive(t *testing.T) {
	h := startRegistered(t)
	h.waitTimers(1)

	h.clk.Advance(60 * time.Second)
	h.m.push(t, event(schedulerpb.Event_HEARTBEAT))
	h.m.push(t, offersEvent("o1"))
	h.waitEntry("offers 1") // the heartbeat has been seen

	// The timer set at SUBSCRIBED fires at 75 s, but the stream was heard
	// from 15 s ago: the driver only re-arms it.
	h.clk.Advance(15 * time.Second)
	h.waitTimers(1)
	assert.False(t, h.rec.has("disconnected"))
	assert.Len(t, h.m.subscribes(), 1)

	// 75 s after the heartbeat, the stream is given up.
	h.clk.Advance(60 * time.Second)
	h.waitEntry("disconnected")
}

func TestNoHeartbeatIntervalMeansNoTimeout(t *testing.T) {
	h := newHarness(t)
	h.m.heartbeat = 0
	h.start()
	h.waitEntry("registered fw-1")
	h.waitTimers(0)
	h.clk.Advance(time.Hour)
	h.m.push(t, offersEvent("o1"))
	h.waitEntry("offers 1")
	assert.False(t, h.rec.has("disconnected"))
}

func TestSubscribeFailureBacksOffAndRetries(t *testing.T) {
	h := newHarness(t)
	h.m.subscribeErrs = []error{errors.New("no leader"), errors.New("no leader")}
	h.start()
	h.passBackoff()
	h.passBackoff()
	h.waitEntry("registered fw-1")
	assert.False(t, h.rec.has("disconnected"), "never connected, so never disconnected")
}

func TestBackoff(t *testing.T) {
	min, max := 250*time.Millisecond, 2*time.Second
	for failures, want := range []time.Duration{
		250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second,
	} {
		assert.Equal(t, want, backoff(min, max, failures), "after %d failures", failures)
	}
	assert.Equal(t, max, backoff(min, max, 1000))
	assert.Equal(t, 3*time.Second, backoff(3*time.Second, 3*time.Second, 5))
}

func TestHeartbeatTimeout(t *testing.T) {
	assert.Equal(t, 75*time.Second, heartbeatTimeout(15))
	assert.Equal(t, 2500*time.Millisecond, heartbeatTimeout(0.5))
	assert.Zero(t, heartbeatTimeout(0))
	assert.Zero(t, heartbeatTimeout(-1))
	assert.Zero(t, heartbeatTimeout(math.NaN()))
	assert.Zero(t, heartbeatTimeout(1e-12))
	assert.Equal(t, missedHeartbeats*maxHeartbeat, heartbeatTimeout(math.Inf(1)))
	assert.Equal(t, missedHeartbeats*maxHeartbeat, heartbeatTimeout(1e300))
}

func TestErrorEventStopsDriver(t *testing.T) {
	h := newHarness(t)
	var errInCallback error
	h.rec.hooks.OnError = func(ctx context.Context, d *Driver, msg string) {
		errInCallback = d.ReviveOffers(ctx)
	}
	h.start()
	h.waitEntry("registered fw-1")

	ev := event(schedulerpb.Event_ERROR)
	ev.Error = &schedulerpb.Event_Error{Message: "framework removed"}
	h.m.push(t, ev)

	err := h.result()
	require.ErrorIs(t, err, ErrAborted)
	assert.Contains(t, err.Error(), "framework removed")
	assert.ErrorIs(t, errInCallback, ErrStopped, "the driver is stopped before Error runs")
	assert.Equal(t, []string{"registered fw-1", "error framework removed"}, h.rec.entries())
	assert.Len(t, h.m.subscribes(), 1)
	require.Eventually(t, func() bool { return h.m.stream(0).isClosed() }, waitFor, tick)

	assert.ErrorIs(t, h.d.DeclineOffer(context.Background(), nil, nil), ErrStopped)
	assert.ErrorIs(t, h.d.Stop(false), ErrStopped)
	assert.ErrorIs(t, h.d.Abort(), ErrStopped)
	assert.ErrorIs(t, h.d.Run(context.Background()), ErrStopped)
}

func TestStopWithoutFailoverTearsDown(t *testing.T) {
	h := startRegistered(t)
	require.NoError(t, h.d.Stop(false))
	require.NoError(t, h.result())

	teardowns := h.m.sent(schedulerpb.Call_TEARDOWN)
	require.Len(t, teardowns, 1)
	assert.Equal(t, &schedulerpb.Call{
		FrameworkID: &mesospb.FrameworkID{Value: "fw-1"},
		Type:        schedulerpb.Call_TEARDOWN.Enum(),
	}, teardowns[0].call)
	assert.Equal(t, "stream-1", teardowns[0].streamID)
	assert.False(t, h.rec.has("disconnected"), "a stop is not a disconnection")
	assert.Len(t, h.m.subscribes(), 1)
	assert.ErrorIs(t, h.d.Stop(false), ErrStopped)
	assert.ErrorIs(t, h.d.KillTask(context.Background(), mesospb.TaskID{Value: "t"}, nil), ErrStopped)
}

func TestStopWithFailoverJustLeaves(t *testing.T) {
	h := startRegistered(t)
	require.NoError(t, h.d.Stop(true))
	require.NoError(t, h.result())
	assert.Empty(t, h.m.sent(schedulerpb.Call_TEARDOWN))
	assert.False(t, h.rec.has("disconnected"))
	require.Eventually(t, func() bool { return h.m.stream(0).isClosed() }, waitFor, tick,
		"the driver ends its stream")
}

func TestStopFromCallback(t *testing.T) {
	h := newHarness(t)
	h.rec.hooks.OnStatusUpdate = func(ctx context.Context, d *Driver, st mesospb.TaskStatus) {
		assert.NoError(t, d.Stop(false))
		assert.Error(t, ctx.Err(), "the callbacks' context ends with the driver")
	}
	h.start()
	h.waitEntry("registered fw-1")
	h.m.push(t, updateEvent("t1", []byte("0123456789abcdef")))
	require.NoError(t, h.result())
	assert.Len(t, h.m.sent(schedulerpb.Call_TEARDOWN), 1)
	assert.Empty(t, h.m.sent(schedulerpb.Call_ACKNOWLEDGE), "a stopped driver leaves the update to whoever takes over")
}

func TestStopWhileDisconnected(t *testing.T) {
	h := startRegistered(t)
	h.m.endStream(t)
	h.waitEntry("disconnected")
	err := h.d.Stop(false)
	require.ErrorIs(t, err, ErrNotConnected, "the caller learns the framework was not torn down")
	require.NoError(t, h.result())
	assert.Empty(t, h.m.sent(schedulerpb.Call_TEARDOWN))
}

func TestAbort(t *testing.T) {
	h := startRegistered(t)
	require.NoError(t, h.d.Abort())
	assert.ErrorIs(t, h.result(), ErrAborted)
	assert.Empty(t, h.m.sent(schedulerpb.Call_TEARDOWN))
	assert.ErrorIs(t, h.d.Abort(), ErrStopped)
}

func TestStopBeforeRun(t *testing.T) {
	h := newHarness(t)
	require.ErrorIs(t, h.d.Stop(false), ErrNotConnected)
	require.NoError(t, h.d.Run(context.Background()))
	assert.Empty(t, h.m.subscribes())
	assert.ErrorIs(t, h.d.Run(context.Background()), ErrStopped)
}

func TestRunContextCancelled(t *testing.T) {
	h := startRegistered(t)
	assert.ErrorIs(t, h.d.Run(context.Background()), ErrInvalid, "Run twice at once")
	h.cancel()
	assert.ErrorIs(t, h.result(), context.Canceled)
	assert.False(t, h.rec.has("disconnected"))
	assert.ErrorIs(t, h.d.ReviveOffers(context.Background()), ErrStopped)
	assert.ErrorIs(t, h.d.Stop(true), ErrStopped)
	require.Eventually(t, func() bool { return h.m.stream(0).isClosed() }, waitFor, tick)
}

func TestEventsDispatch(t *testing.T) {
	h := startRegistered(t)

	h.m.push(t, offersEvent("o1", "o2"))
	empty := event(schedulerpb.Event_OFFERS) // no offers: no callback
	h.m.push(t, empty)

	rescind := event(schedulerpb.Event_RESCIND)
	rescind.Rescind = &schedulerpb.Event_Rescind{OfferID: mesospb.OfferID{Value: "o1"}}
	h.m.push(t, rescind)

	msg := event(schedulerpb.Event_MESSAGE)
	msg.Message = &schedulerpb.Event_Message{
		AgentID: mesospb.AgentID{Value: "a1"}, ExecutorID: mesospb.ExecutorID{Value: "e1"}, Data: []byte("hi"),
	}
	h.m.push(t, msg)

	execLost := event(schedulerpb.Event_FAILURE)
	execLost.Failure = &schedulerpb.Event_Failure{
		AgentID: &mesospb.AgentID{Value: "a1"}, ExecutorID: &mesospb.ExecutorID{Value: "e1"}, Status: ptr(int32(9)),
	}
	h.m.push(t, execLost)

	agentLost := event(schedulerpb.Event_FAILURE)
	agentLost.Failure = &schedulerpb.Event_Failure{AgentID: &mesospb.AgentID{Value: "a2"}}
	h.m.push(t, agentLost)

	// Malformed or unknown events are dropped without harm.
	h.m.push(t, event(schedulerpb.Event_FAILURE))
	h.m.push(t, event(schedulerpb.Event_UPDATE))
	h.m.push(t, event(schedulerpb.Event_RESCIND))
	h.m.push(t, event(schedulerpb.Event_SUBSCRIBED))
	h.m.push(t, event(schedulerpb.Event_INVERSE_OFFERS))
	h.m.push(t, event(schedulerpb.Event_UNKNOWN))
	h.m.push(t, event(schedulerpb.Event_Type(99)))
	h.m.push(t, event(schedulerpb.Event_HEARTBEAT))
	h.m.push(t, nil)
	h.m.push(t, offersEvent("o3"))

	h.waitEntry("offers 1")
	assert.Equal(t, []string{
		"registered fw-1",
		"offers 2",
		"rescind o1",
		"message a1 e1 hi",
		"executor lost a1 e1 9",
		"agent lost a2",
		"offers 1",
	}, h.rec.entries())
	assert.True(t, h.d.Connected())
}

func TestSlowSubscriberStreamClosedByMaster(t *testing.T) {
	h := newHarness(t)
	block := make(chan struct{})
	h.rec.hooks.OnResourceOffers = func(ctx context.Context, d *Driver, offers []mesospb.Offer) {
		if offers[0].ID.Value == "first" {
			<-block
		}
	}
	h.start()
	h.waitEntry("registered fw-1")
	h.m.push(t, offersEvent("first"))
	h.waitEntry("offers 1")
	// The driver is stuck in the callback; the master overflows the
	// channel and closes the stream rather than block.
	for h.m.current(t).send(offersEvent("more")) {
	}
	close(block)
	h.waitEntry("disconnected")
	h.passBackoff()
	h.waitEntry("reregistered")
}

func TestSuppressedRolesSurviveResubscription(t *testing.T) {
	ctx := context.Background()
	h := startRegistered(t, WithSuppressedRoles("batch"))
	assert.Equal(t, []string{"batch"}, h.m.subscribes()[0].Subscribe.SuppressedRoles)

	require.NoError(t, h.d.SuppressOffers(ctx, "web"))
	require.NoError(t, h.d.ReviveOffers(ctx, "batch"))
	h.m.endStream(t)
	h.waitEntry("disconnected")
	h.passBackoff()
	h.waitEntry("reregistered")
	assert.Equal(t, []string{"web"}, h.m.subscribes()[1].Subscribe.SuppressedRoles)

	// No roles means all the framework's roles.
	require.NoError(t, h.d.SuppressOffers(ctx))
	h.m.endStream(t)
	h.waitCount("disconnected", 2)
	h.passBackoff()
	h.waitCount("reregistered", 2)
	assert.Equal(t, []string{"batch", "web"}, h.m.subscribes()[2].Subscribe.SuppressedRoles)

	require.NoError(t, h.d.ReviveOffers(ctx))
	h.m.endStream(t)
	h.waitCount("disconnected", 3)
	h.passBackoff()
	h.waitCount("reregistered", 3)
	assert.Empty(t, h.m.subscribes()[3].Subscribe.SuppressedRoles)
}

func TestUpdateFrameworkIsUsedOnResubscription(t *testing.T) {
	ctx := context.Background()
	h := startRegistered(t)
	info := testInfo()
	info.Roles = []string{"analytics"}
	info.FailoverTimeout = ptr(3600.0)

	wrong := info
	wrong.ID = &mesospb.FrameworkID{Value: "someone-else"}
	require.ErrorIs(t, h.d.UpdateFramework(ctx, wrong, nil), ErrInvalid)
	assert.Empty(t, h.m.sent(schedulerpb.Call_UPDATE_FRAMEWORK))

	require.NoError(t, h.d.UpdateFramework(ctx, info, []string{"analytics"}))
	h.m.endStream(t)
	h.waitEntry("disconnected")
	h.passBackoff()
	h.waitEntry("reregistered")

	sub := h.m.subscribes()[1].Subscribe
	want := info
	want.ID = &mesospb.FrameworkID{Value: "fw-1"}
	assert.Equal(t, want, sub.FrameworkInfo)
	assert.Equal(t, []string{"analytics"}, sub.SuppressedRoles)
}

func TestMasterRejectionIsWrapped(t *testing.T) {
	h := startRegistered(t)
	invalid := errors.New("fake master: invalid call")
	h.m.mu.Lock()
	h.m.callErr = invalid
	h.m.mu.Unlock()
	err := h.d.DeclineOffer(context.Background(), []mesospb.OfferID{{Value: "o1"}}, nil)
	require.ErrorIs(t, err, invalid)
	assert.Contains(t, err.Error(), "DECLINE")
}

func TestFrameworkInfoIsCopied(t *testing.T) {
	info := testInfo()
	h := newHarnessInfo(t, info)
	info.Roles[0] = "changed" // the caller's slice, after NewDriver
	h.start()
	h.waitEntry("registered fw-1")
	assert.Equal(t, testInfo().Roles, h.m.subscribes()[0].Subscribe.FrameworkInfo.Roles)
}

func TestInvalidSubscriptionAborts(t *testing.T) {
	h := newHarness(t)
	h.m.subscribeErrs = []error{fmt.Errorf("%w: 400 Bad Request: framework_info.user is empty", ErrInvalid)}
	h.start()
	err := h.result()
	require.ErrorIs(t, err, ErrAborted, "the master would refuse it every time")
	assert.Contains(t, err.Error(), "user is empty")
	h.rec.mu.Lock()
	require.Len(t, h.rec.errors, 1)
	assert.Contains(t, h.rec.errors[0], "user is empty")
	h.rec.mu.Unlock()
	assert.Empty(t, h.m.subscribes())
}

func TestCallRefusedAsNotSubscribedResubscribes(t *testing.T) {
	h := startRegistered(t)
	h.m.mu.Lock()
	h.m.callErr = fmt.Errorf("%w: 403 Forbidden: unknown stream", ErrNotConnected)
	h.m.mu.Unlock()
	err := h.d.ReviveOffers(context.Background())
	require.ErrorIs(t, err, ErrNotConnected)
	h.waitEntry("disconnected")
	require.Eventually(t, h.m.stream(0).isClosed, waitFor, tick, "the dead stream is let go")

	h.m.mu.Lock()
	h.m.callErr = nil
	h.m.mu.Unlock()
	h.passBackoff()
	h.waitEntry("reregistered")
	require.NoError(t, h.d.ReviveOffers(context.Background()))
	assert.Equal(t, []string{"registered fw-1", "disconnected", "reregistered"}, h.rec.entries())
}

func TestOtherCallErrorsKeepTheStream(t *testing.T) {
	h := startRegistered(t)
	h.m.mu.Lock()
	h.m.callErr = errors.New("500 Internal Server Error")
	h.m.mu.Unlock()
	require.Error(t, h.d.ReviveOffers(context.Background()))
	h.m.mu.Lock()
	h.m.callErr = nil
	h.m.mu.Unlock()
	require.NoError(t, h.d.ReviveOffers(context.Background()))
	assert.False(t, h.rec.has("disconnected"))
}

func TestWithMasterURLValidates(t *testing.T) {
	for _, urls := range [][]string{nil, {"ftp://m:21"}, {"http://m:5050", "http://"}} {
		_, err := NewDriver(Base{}, testInfo(), WithMasterURL(urls...))
		assert.ErrorIs(t, err, ErrInvalid, "%q", urls)
	}
	_, err := NewDriver(Base{}, testInfo(), WithMasterURL("10.0.0.1:5050", "http://10.0.0.2:5050"), WithJSON())
	assert.NoError(t, err)
	// The last of WithMaster and WithMasterURL counts.
	d, err := NewDriver(Base{}, testInfo(), WithMasterURL("ftp://bad"), WithMaster(&fakeMaster{}))
	require.NoError(t, err)
	assert.IsType(t, &fakeMaster{}, d.master)
	d, err = NewDriver(Base{}, testInfo(), WithMaster(&fakeMaster{}), WithMasterURL("http://m:5050"))
	require.NoError(t, err)
	assert.IsType(t, &httpMaster{}, d.master)
}

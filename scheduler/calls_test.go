package scheduler

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

type callCase struct {
	name string
	do   func(ctx context.Context, d *Driver) error
	want *schedulerpb.Call // framework_id is checked separately
}

func callCases() []callCase {
	offers := []mesospb.OfferID{{Value: "o1"}, {Value: "o2"}}
	filters := &mesospb.Filters{RefuseSeconds: ptr(30.0)}
	agent := mesospb.AgentID{Value: "agent-1"}
	executor := mesospb.ExecutorID{Value: "exec-1"}
	task := mesospb.TaskInfo{
		Name:    "t1",
		TaskID:  mesospb.TaskID{Value: "t1"},
		AgentID: agent,
		Command: &mesospb.CommandInfo{Value: ptr("true")},
	}
	reserve := mesospb.Offer_Operation{
		Type:    mesospb.Offer_Operation_RESERVE.Enum(),
		Reserve: &mesospb.Offer_Operation_Reserve{},
	}
	launch := mesospb.Offer_Operation{
		Type:   mesospb.Offer_Operation_LAUNCH.Enum(),
		Launch: &mesospb.Offer_Operation_Launch{TaskInfos: []mesospb.TaskInfo{task}},
	}
	status := mesospb.TaskStatus{
		TaskID:  mesospb.TaskID{Value: "t1"},
		State:   mesospb.TASK_RUNNING.Enum(),
		AgentID: &agent,
	}
	newInfo := testInfo()
	newInfo.Name = "renamed"
	sentInfo := newInfo
	sentInfo.ID = &mesospb.FrameworkID{Value: "fw-1"}
	requests := []mesospb.Request{{AgentID: &agent}}

	typ := func(t schedulerpb.Call_Type) *schedulerpb.Call_Type { return t.Enum() }
	return []callCase{
		{
			name: "AcceptOffers",
			do: func(ctx context.Context, d *Driver) error {
				return d.AcceptOffers(ctx, offers, []mesospb.Offer_Operation{reserve, launch}, filters)
			},
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_ACCEPT), Accept: &schedulerpb.Call_Accept{
				OfferIDs: offers, Operations: []mesospb.Offer_Operation{reserve, launch}, Filters: filters,
			}},
		},
		{
			name: "LaunchTasks",
			do: func(ctx context.Context, d *Driver) error {
				return d.LaunchTasks(ctx, offers, []mesospb.TaskInfo{task}, nil)
			},
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_ACCEPT), Accept: &schedulerpb.Call_Accept{
				OfferIDs: offers, Operations: []mesospb.Offer_Operation{launch},
			}},
		},
		{
			name: "DeclineOffer",
			do:   func(ctx context.Context, d *Driver) error { return d.DeclineOffer(ctx, offers, filters) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_DECLINE), Decline: &schedulerpb.Call_Decline{
				OfferIDs: offers, Filters: filters,
			}},
		},
		{
			name: "KillTask",
			do: func(ctx context.Context, d *Driver) error {
				return d.KillTask(ctx, mesospb.TaskID{Value: "t1"}, &agent)
			},
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_KILL), Kill: &schedulerpb.Call_Kill{
				TaskID: mesospb.TaskID{Value: "t1"}, AgentID: &agent,
			}},
		},
		{
			name: "KillTask without agent",
			do:   func(ctx context.Context, d *Driver) error { return d.KillTask(ctx, mesospb.TaskID{Value: "t1"}, nil) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_KILL), Kill: &schedulerpb.Call_Kill{
				TaskID: mesospb.TaskID{Value: "t1"},
			}},
		},
		{
			name: "ShutdownExecutor",
			do:   func(ctx context.Context, d *Driver) error { return d.ShutdownExecutor(ctx, agent, executor) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_SHUTDOWN), Shutdown: &schedulerpb.Call_Shutdown{
				ExecutorID: executor, AgentID: agent,
			}},
		},
		{
			name: "ReviveOffers all roles",
			do:   func(ctx context.Context, d *Driver) error { return d.ReviveOffers(ctx) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_REVIVE), Revive: &schedulerpb.Call_Revive{}},
		},
		{
			name: "ReviveOffers some roles",
			do:   func(ctx context.Context, d *Driver) error { return d.ReviveOffers(ctx, "web") },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_REVIVE), Revive: &schedulerpb.Call_Revive{Roles: []string{"web"}}},
		},
		{
			name: "SuppressOffers all roles",
			do:   func(ctx context.Context, d *Driver) error { return d.SuppressOffers(ctx) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_SUPPRESS), Suppress: &schedulerpb.Call_Suppress{}},
		},
		{
			name: "SuppressOffers some roles",
			do:   func(ctx context.Context, d *Driver) error { return d.SuppressOffers(ctx, "web", "batch") },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_SUPPRESS), Suppress: &schedulerpb.Call_Suppress{
				Roles: []string{"web", "batch"},
			}},
		},
		{
			name: "ReconcileTasks explicit",
			do: func(ctx context.Context, d *Driver) error {
				return d.ReconcileTasks(ctx, []mesospb.TaskStatus{status, {TaskID: mesospb.TaskID{Value: "t2"}}})
			},
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_RECONCILE), Reconcile: &schedulerpb.Call_Reconcile{
				Tasks: []schedulerpb.Call_Reconcile_Task{
					{TaskID: mesospb.TaskID{Value: "t1"}, AgentID: &agent},
					{TaskID: mesospb.TaskID{Value: "t2"}},
				},
			}},
		},
		{
			name: "ReconcileTasks implicit",
			do:   func(ctx context.Context, d *Driver) error { return d.ReconcileTasks(ctx, nil) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_RECONCILE), Reconcile: &schedulerpb.Call_Reconcile{}},
		},
		{
			name: "SendFrameworkMessage",
			do: func(ctx context.Context, d *Driver) error {
				return d.SendFrameworkMessage(ctx, agent, executor, []byte("hello"))
			},
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_MESSAGE), Message: &schedulerpb.Call_Message{
				AgentID: agent, ExecutorID: executor, Data: []byte("hello"),
			}},
		},
		{
			name: "RequestResources",
			do:   func(ctx context.Context, d *Driver) error { return d.RequestResources(ctx, requests) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_REQUEST), Request: &schedulerpb.Call_Request{
				Requests: requests,
			}},
		},
		{
			name: "UpdateFramework",
			do: func(ctx context.Context, d *Driver) error {
				return d.UpdateFramework(ctx, newInfo, []string{"batch"})
			},
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_UPDATE_FRAMEWORK), UpdateFramework: &schedulerpb.Call_UpdateFramework{
				FrameworkInfo: sentInfo, SuppressedRoles: []string{"batch"},
			}},
		},
		{
			name: "AcceptInverseOffers",
			do:   func(ctx context.Context, d *Driver) error { return d.AcceptInverseOffers(ctx, offers, filters) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_ACCEPT_INVERSE_OFFERS), AcceptInverseOffers: &schedulerpb.Call_AcceptInverseOffers{
				InverseOfferIDs: offers, Filters: filters,
			}},
		},
		{
			name: "DeclineInverseOffers",
			do:   func(ctx context.Context, d *Driver) error { return d.DeclineInverseOffers(ctx, offers, nil) },
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_DECLINE_INVERSE_OFFERS), DeclineInverseOffers: &schedulerpb.Call_DeclineInverseOffers{
				InverseOfferIDs: offers,
			}},
		},
		{
			name: "Send",
			do: func(ctx context.Context, d *Driver) error {
				return d.Send(ctx, &schedulerpb.Call{
					Type: typ(schedulerpb.Call_DECLINE_INVERSE_OFFERS),
					DeclineInverseOffers: &schedulerpb.Call_DeclineInverseOffers{
						InverseOfferIDs: offers,
					},
				})
			},
			want: &schedulerpb.Call{Type: typ(schedulerpb.Call_DECLINE_INVERSE_OFFERS), DeclineInverseOffers: &schedulerpb.Call_DeclineInverseOffers{
				InverseOfferIDs: offers,
			}},
		},
	}
}

func TestCallsBuildTheRightCall(t *testing.T) {
	h := startRegistered(t, WithExplicitAcknowledgements())
	cases := callCases()
	uuid := []byte("0123456789abcdef")
	cases = append(cases, callCase{
		name: "AcknowledgeStatusUpdate",
		do: func(ctx context.Context, d *Driver) error {
			return d.AcknowledgeStatusUpdate(ctx, updateEvent("t1", uuid).Update.Status)
		},
		want: &schedulerpb.Call{Type: schedulerpb.Call_ACKNOWLEDGE.Enum(), Acknowledge: &schedulerpb.Call_Acknowledge{
			AgentID: mesospb.AgentID{Value: "agent-1"}, TaskID: mesospb.TaskID{Value: "t1"}, UUID: uuid,
		}},
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.m.sent())
			require.NoError(t, tc.do(context.Background(), h.d))
			sent := h.m.sent()
			require.Len(t, sent, before+1, "exactly one call")
			got := sent[before]
			assert.Equal(t, "stream-1", got.streamID)
			require.NotNil(t, got.call.FrameworkID)
			assert.Equal(t, "fw-1", got.call.FrameworkID.Value)
			want := *tc.want
			want.FrameworkID = &mesospb.FrameworkID{Value: "fw-1"}
			assert.Equal(t, &want, got.call)
		})
	}
}

func TestCallsWhileNotConnected(t *testing.T) {
	ctx := context.Background()
	cases := callCases()

	// Before Run, and between streams.
	h := newHarness(t)
	for _, tc := range cases {
		assert.ErrorIs(t, tc.do(ctx, h.d), ErrNotConnected, "before Run: %s", tc.name)
	}
	h.start()
	h.waitEntry("registered fw-1")
	h.m.endStream(t)
	h.waitEntry("disconnected")
	for _, tc := range cases {
		assert.ErrorIs(t, tc.do(ctx, h.d), ErrNotConnected, "between streams: %s", tc.name)
	}
	assert.Empty(t, h.m.sent(), "nothing sent, nothing queued")

	// After the reconnection, nothing queued shows up either.
	h.passBackoff()
	h.waitEntry("reregistered")
	assert.Empty(t, h.m.sent())

	// After a stop.
	require.NoError(t, h.d.Stop(true))
	require.NoError(t, h.result())
	for _, tc := range cases {
		assert.ErrorIs(t, tc.do(ctx, h.d), ErrStopped, "after Stop: %s", tc.name)
	}
	assert.Empty(t, h.m.sent())
}

func TestSendRefusesDriverCalls(t *testing.T) {
	h := startRegistered(t)
	ctx := context.Background()
	assert.ErrorIs(t, h.d.Send(ctx, nil), ErrInvalid)
	for _, typ := range []schedulerpb.Call_Type{
		schedulerpb.Call_SUBSCRIBE, schedulerpb.Call_TEARDOWN, schedulerpb.Call_UPDATE_FRAMEWORK,
	} {
		assert.ErrorIs(t, h.d.Send(ctx, &schedulerpb.Call{Type: typ.Enum()}), ErrInvalid, "%s", typ)
	}
	assert.Empty(t, h.m.sent())

	// Send does not modify the caller's call.
	call := &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()}
	require.NoError(t, h.d.Send(ctx, call))
	assert.Nil(t, call.FrameworkID)
}

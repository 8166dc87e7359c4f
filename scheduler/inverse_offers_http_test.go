package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// maintEvents is events that also handles inverse offers.
type maintEvents struct {
	*events
	inverse chan []mesospb.InverseOffer
}

func (e maintEvents) InverseOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.InverseOffer) {
	e.inverse <- offers
}

func (e maintEvents) InverseOfferRescinded(context.Context, *scheduler.Driver, mesospb.OfferID) {}

// TestInverseOffersOverHTTP schedules maintenance for the machine of an
// agent whose resources the framework holds: its offers come back with the
// unavailability and an inverse offer follows, which the framework accepts
// and the operator sees, over both encodings.
func TestInverseOffersOverHTTP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sched []scheduler.Option
		agent []agent.HTTPOption
	}{
		{"protobuf", nil, nil},
		{"json", []scheduler.Option{scheduler.WithJSON()}, []agent.HTTPOption{agent.WithJSON()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := runMaster(t, master.Config{})
			srv := serve(t, m.Handler())
			a := runAgent(t, tc.agent, srv.URL)

			ev := maintEvents{events: newEvents(), inverse: make(chan []mesospb.InverseOffer, 16)}
			d, err := scheduler.NewDriver(ev, frameworkInfo("maint-"+tc.name),
				append([]scheduler.Option{scheduler.WithMasterURL(srv.URL)}, tc.sched...)...)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			receive(t, ev.registered, "Registered")
			receive(t, ev.offers, "offers") // held, not declined

			start := time.Now().Add(time.Hour).Truncate(time.Second)
			_, err = m.OperatorCall(ctx, &masterpb.Call{
				Type: masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE.Enum(),
				UpdateMaintenanceSchedule: &masterpb.Call_UpdateMaintenanceSchedule{Schedule: masterpb.Schedule{
					Windows: []masterpb.Window{{
						MachineIDs:     []mesospb.MachineID{{Hostname: ptr("agent-1")}},
						Unavailability: mesospb.Unavailability{Start: mesospb.TimeInfo{Nanoseconds: start.UnixNano()}},
					}},
				}},
			})
			require.NoError(t, err)

			offers := receive(t, ev.offers, "offers with the unavailability")
			require.NotNil(t, offers[0].Unavailability)
			assert.Equal(t, start.UnixNano(), offers[0].Unavailability.Start.Nanoseconds)
			inv := receive(t, ev.inverse, "inverse offers")
			require.Len(t, inv, 1)
			assert.Equal(t, a.ID(), inv[0].AgentID.GetValue())
			assert.Equal(t, start.UnixNano(), inv[0].Unavailability.Start.Nanoseconds)

			require.NoError(t, d.AcceptInverseOffers(ctx, []mesospb.OfferID{inv[0].ID}, nil))
			require.Eventually(t, func() bool {
				resp, err := m.OperatorCall(ctx, &masterpb.Call{Type: masterpb.Call_GET_MAINTENANCE_STATUS.Enum()})
				if err != nil || len(resp.GetMaintenanceStatus.Status.DrainingMachines) != 1 {
					return false
				}
				st := resp.GetMaintenanceStatus.Status.DrainingMachines[0].Statuses
				return len(st) == 1 && st[0].GetStatus() == masterpb.InverseOfferStatus_ACCEPT
			}, httpWait, 5*time.Millisecond, "the operator sees the answer")
		})
	}
}

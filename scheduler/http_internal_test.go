package scheduler

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/httplink"
	"github.com/apronhq/apron/master"
)

func TestHTTPErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{httpapi.Errorf(http.StatusForbidden, "unknown stream"), ErrNotConnected},
		{&httpapi.RedirectError{Location: "http://leader:5050/api/v1/scheduler"}, ErrNotConnected},
		{httplink.ErrNoStream, ErrNotConnected},
		{httpapi.Errorf(http.StatusBadRequest, "bad call"), ErrInvalid},
	} {
		got := httpError(tc.err)
		assert.ErrorIs(t, got, tc.want, "%v", tc.err)
		assert.ErrorIs(t, got, tc.err, "the cause is kept")
	}
	unavailable := httpapi.Errorf(http.StatusServiceUnavailable, "stopped")
	got := httpError(unavailable)
	assert.False(t, errors.Is(got, ErrNotConnected) || errors.Is(got, ErrInvalid))
	assert.Contains(t, got.Error(), "503")
	assert.NoError(t, httpError(nil))
}

// The master's own refusals, through the HTTP link.
func TestHTTPMasterRefusals(t *testing.T) {
	m, err := master.New(master.Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	defer srv.CloseClientConnections()

	hm, err := newHTTPMaster(&config{masterURLs: []string{srv.URL}})
	require.NoError(t, err)
	id, events, err := hm.SubscribeScheduler(ctx, &schedulerpb.Call{
		Type:      schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: mesospb.FrameworkInfo{User: "u", Name: "n"}},
	})
	require.NoError(t, err)
	var ev *schedulerpb.Event
	select {
	case ev = <-events:
	case <-time.After(10 * time.Second):
		t.Fatal("no SUBSCRIBED")
	}
	fw := ev.GetSubscribed().FrameworkID

	err = hm.SchedulerCall(ctx, id, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum(), FrameworkID: &mesospb.FrameworkID{Value: "someone-else"}})
	assert.ErrorIs(t, err, ErrInvalid, "400 for an unknown framework's call, as Mesos answers: %v", err)
	err = hm.SchedulerCall(ctx, id, &schedulerpb.Call{Type: schedulerpb.Call_ACCEPT.Enum(), FrameworkID: &fw})
	assert.ErrorIs(t, err, ErrInvalid, "400 for an ACCEPT without accept: %v", err)
	require.NoError(t, hm.SchedulerCall(ctx, id, &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum(), FrameworkID: &fw}))
	assert.ErrorIs(t, hm.SchedulerCall(ctx, "no-such-stream", &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum(), FrameworkID: &fw}), ErrNotConnected,
		"the link knows no such stream of its own")
}

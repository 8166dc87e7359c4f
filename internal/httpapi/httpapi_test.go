package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/httpapi"
)

// server subscribes on SUBSCRIBE and answers 202 to anything else.
func server(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var call schedulerpb.Call
		c, err := httpapi.DecodeCall(r, &call, 1024)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if call.GetType() != schedulerpb.Call_SUBSCRIBE {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		events := make(chan *schedulerpb.Event, 2)
		events <- &schedulerpb.Event{Type: schedulerpb.Event_SUBSCRIBED.Enum(),
			Subscribed: &schedulerpb.Event_Subscribed{FrameworkID: mesospb.FrameworkID{Value: "f1"}}}
		hb := func() *schedulerpb.Event { return &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()} }
		httpapi.ServeStream(w, r, c, "stream-1", events, hb, 10*time.Millisecond)
	}))
}

func subscribeCall() *schedulerpb.Call {
	return &schedulerpb.Call{Type: schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: mesospb.FrameworkInfo{User: "u", Name: "n"}}}
}

func TestSubscribeBothEncodings(t *testing.T) {
	srv := server(t)
	defer srv.Close()
	for _, c := range []codec.Codec{codec.Protobuf, codec.JSON} {
		cl := &httpapi.Client{Codec: c}
		ctx, cancel := context.WithCancel(context.Background())
		s, err := cl.Subscribe(ctx, srv.URL, subscribeCall())
		require.NoError(t, err, c.MediaType())
		assert.Equal(t, "stream-1", s.ID)
		var ev schedulerpb.Event
		require.NoError(t, s.Next(&ev))
		assert.Equal(t, schedulerpb.Event_SUBSCRIBED, ev.GetType())
		require.NoError(t, s.Next(&ev))
		assert.Equal(t, schedulerpb.Event_HEARTBEAT, ev.GetType(), "heartbeats fill the silence")
		require.NoError(t, s.Close())
		cancel()

		_, err = cl.Call(context.Background(), srv.URL, "stream-1", &schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum()})
		require.NoError(t, err)
	}
}

func TestRequestErrors(t *testing.T) {
	srv := server(t)
	defer srv.Close()
	for _, tc := range []struct {
		method, ctype, body string
		want                int
	}{
		{http.MethodGet, "application/json", "", http.StatusMethodNotAllowed},
		{http.MethodPost, "text/plain", "{}", http.StatusUnsupportedMediaType},
		{http.MethodPost, "", "{}", http.StatusBadRequest},
		{http.MethodPost, "application/json", `{"type":`, http.StatusBadRequest},
		{http.MethodPost, "application/json", `{"type":[1]}`, http.StatusBadRequest},
		{http.MethodPost, "application/json", `{"type":"REVIVE","framework_id":{"value":"` + strings.Repeat("x", 2000) + `"}}`, http.StatusRequestEntityTooLarge},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL, strings.NewReader(tc.body))
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, tc.want, resp.StatusCode, "%s %s %q: %s", tc.method, tc.ctype, tc.body, b)
		assert.NotEmpty(t, strings.TrimSpace(string(b)), "errors carry a message")
	}
}

func TestRedirect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "//leader:5050/api/v1/scheduler")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := (&httpapi.Client{}).Subscribe(context.Background(), srv.URL+"/api/v1/scheduler", subscribeCall())
	var re *httpapi.RedirectError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.ErrorIs(t, err, httpapi.ErrRedirect)
	assert.Equal(t, "http://leader:5050/api/v1/scheduler", re.Location)
}

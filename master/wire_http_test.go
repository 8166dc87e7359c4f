package master_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
)

// Over HTTP, the master learns an agent's IP address from its connection:
// offers carry it in Offer.url, GET_AGENTS in the agent's pid, though the
// agent's hostname is a name.
func TestHTTPAgentAddressInOffers(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	resp := h.postCall("/apron/v1/agent", codec.JSON, "", &internalpb.Call{
		Type: internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
			Hostname: "agent.example", Port: ptr(int32(5053)), Resources: mustProto("cpus:2;mem:1024"),
		}},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var ev internalpb.Event
	newRecordStream(t, resp).event(&ev)
	require.Equal(t, internalpb.Event_REGISTERED, ev.GetType())

	s, _, _ := h.subscribe(codec.JSON, frameworkInfo("f"))
	offers := s.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	require.Len(t, offers, 1)
	u := offers[0].URL
	require.NotNil(t, u)
	assert.Equal(t, "http", u.Scheme)
	assert.Equal(t, "agent.example", u.Address.GetHostname())
	assert.Equal(t, "127.0.0.1", u.Address.GetIP())
	assert.Equal(t, int32(5053), u.Address.Port)
	assert.Equal(t, "/slave(1)", u.GetPath())

	st, err := h.m.State(context.Background())
	require.NoError(t, err)
	require.Len(t, st.GetAgents.Agents, 1)
	assert.Equal(t, "slave(1)@127.0.0.1:5053", st.GetAgents.Agents[0].GetPid())
}

// Over HTTP, the SUBSCRIBE of a removed framework answers 200 with a
// stream holding one ERROR event, then the stream ends, as Mesos's.
func TestHTTPRemovedFrameworkSubscription(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	_, streamID, fid := h.subscribe(codec.JSON, frameworkInfo("f"))
	resp := h.postCall("/api/v1/scheduler", codec.JSON, streamID, &schedulerpb.Call{
		Type: schedulerpb.Call_TEARDOWN.Enum(), FrameworkID: &mesospb.FrameworkID{Value: fid}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	info := frameworkInfo("f")
	info.ID = &mesospb.FrameworkID{Value: fid}
	resp = h.postCall("/api/v1/scheduler", codec.JSON, "", subscribeCall(info))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := newRecordStream(t, resp)
	var ev schedulerpb.Event
	s.event(&ev)
	assert.Equal(t, schedulerpb.Event_ERROR, ev.GetType())
	assert.Equal(t, "Framework has been removed", ev.Error.GetMessage())
	_, err := s.next()
	assert.ErrorIs(t, err, io.EOF, "the stream ends")
}

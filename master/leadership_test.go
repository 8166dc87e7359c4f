package master_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/memory"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master"
)

// electedMaster is one master of an in-process highly available group.
type electedMaster struct {
	m      *master.Master
	c      election.Contender
	lead   *master.ElectedLeadership
	srv    *httptest.Server
	result chan error
}

// Three masters, one in-memory election, one registry store: what an
// embedder runs in one process. The leader's registry survives it; the
// standbys redirect to whoever leads.
func TestElectedMastersFailOver(t *testing.T) {
	group := memory.NewGroup()
	store := master.NewMemoryRegistryStore()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var ms []*electedMaster
	for i := 0; i < 3; i++ {
		det := group.NewDetector()
		t.Cleanup(func() { det.Close() })
		lead := master.NewElectedLeadership(det)
		var em electedMaster
		em.srv = httptest.NewUnstartedServer(nil)
		host, port := splitHostPort(t, em.srv.Listener.Addr().String())
		m, err := master.New(master.Config{Hostname: host, Port: port, Registry: store.Open(), Leadership: lead,
			TickInterval: 5 * time.Millisecond, AgentReregisterTimeout: time.Hour})
		require.NoError(t, err)
		em.m, em.c, em.lead, em.result = m, group.NewContender(), lead, make(chan error, 1)
		em.srv.Config.Handler = m.Handler()
		em.srv.Start()
		t.Cleanup(em.srv.Close)
		go func() { em.result <- master.RunElected(ctx, m, em.c, lead) }()
		ms = append(ms, &em)
	}

	leader := func() *electedMaster {
		for {
			for _, em := range ms {
				if ok, _ := em.lead.Leader(); ok && em.c != nil {
					return em
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	first := leader()
	_, events, err := first.m.ConnectAgent(ctx, registerCall("a1"))
	require.NoError(t, err)
	agentID := (<-events).Registered.AgentID.Value

	// A standby redirects to the leader.
	for _, em := range ms {
		if em == first {
			continue
		}
		require.Eventually(t, func() bool {
			resp, err := httpapi.NoRedirects.Get(em.srv.URL + "/state")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusTemporaryRedirect && resp.Header.Get("Location") == strings.TrimPrefix(first.srv.URL, "http:")+"/state"
		}, 10*time.Second, 10*time.Millisecond)
	}

	// The leader dies: its candidacy ends, its master stops.
	require.NoError(t, first.c.Close())
	require.ErrorIs(t, <-first.result, master.ErrLostLeadership)
	first.c = nil
	second := leader()
	require.NotSame(t, first, second)
	require.Eventually(t, func() bool {
		resp, err := second.m.OperatorCall(ctx, &masterpb.Call{Type: masterpb.Call_GET_AGENTS.Enum()})
		return err == nil && len(resp.GetAgents.RecoveredAgents) == 1 && resp.GetAgents.RecoveredAgents[0].ID.Value == agentID
	}, 10*time.Second, 10*time.Millisecond, "the new leader recovered the admitted agent")

	// The agent comes back to the new leader with its ID.
	_, back, err := second.m.ConnectAgent(ctx, &internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
		AgentInfo: mesospb.AgentInfo{Hostname: "a1", ID: &mesospb.AgentID{Value: agentID}, Resources: mustProto("cpus:4;mem:1024")}}})
	require.NoError(t, err)
	require.Equal(t, internalpb.Event_REREGISTERED, (<-back).GetType())
}

func splitHostPort(t *testing.T, addr string) (string, uint32) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	require.NoError(t, err)
	return ap.Addr().String(), uint32(ap.Port())
}

package agent_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master"
)

const httpWait = 30 * time.Second

// runHTTPMaster runs a master until the test ends.
func runHTTPMaster(t *testing.T, cfg master.Config) *master.Master {
	t.Helper()
	m, err := master.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// runHTTPAgent runs an agent on link until the test ends.
func runHTTPAgent(t *testing.T, link agent.Master) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Config{
		Master:                 link,
		WorkDir:                t.TempDir(),
		Resources:              "cpus:1;mem:256;disk:256;ports:[31000-31009]",
		Hostname:               "agent-1",
		RegistrationBackoff:    10 * time.Millisecond,
		RegistrationBackoffMax: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// agentActive reports whether the master has agent id connected.
func agentActive(t *testing.T, m *master.Master, id string) bool {
	st, err := m.State(context.Background())
	if !assert.NoError(t, err) {
		return false
	}
	for _, a := range st.GetAgents.Agents {
		if a.AgentInfo.ID != nil && a.AgentInfo.ID.Value == id {
			return a.Active
		}
	}
	return false
}

// registrations counts the REGISTER and REREGISTER calls the handler h
// gets.
type registrations struct {
	h                  http.Handler
	register, reregist atomic.Int32
}

func (r *registrations) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	var call internalpb.Call
	if codec.Protobuf.Unmarshal(body, &call) == nil {
		switch call.GetType() {
		case internalpb.Call_REGISTER:
			r.register.Add(1)
		case internalpb.Call_REREGISTER:
			r.reregist.Add(1)
		}
	}
	r.h.ServeHTTP(w, req)
}

// failures counts the requests that found no server.
type failures struct{ n atomic.Int32 }

func (f *failures) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		f.n.Add(1)
	}
	return resp, err
}

func TestHTTPMasterReconnectsWhenServerReturns(t *testing.T) {
	m := runHTTPMaster(t, master.Config{})
	regs := &registrations{h: m.Handler()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	var wg sync.WaitGroup
	serve := func(l net.Listener) *http.Server {
		srv := &http.Server{Handler: regs}
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Serve(l) }()
		return srv
	}
	srv := serve(l)
	t.Cleanup(wg.Wait)

	down := &failures{}
	link, err := agent.NewHTTPMaster([]string{"http://" + addr}, agent.WithHTTPClient(&http.Client{Transport: down}))
	require.NoError(t, err)
	a := runHTTPAgent(t, link)
	require.Eventually(t, func() bool { return a.ID() != "" && agentActive(t, m, a.ID()) }, httpWait, 5*time.Millisecond)
	assert.Equal(t, int32(1), regs.register.Load())

	// The server dies with its connections: the agent's stream ends, and
	// it keeps trying, with backoff, to reach the master.
	require.NoError(t, srv.Close())
	require.Eventually(t, func() bool { return !agentActive(t, m, a.ID()) }, httpWait, 5*time.Millisecond,
		"the master sees the agent's stream end")
	require.Eventually(t, func() bool { return down.n.Load() >= 3 }, httpWait, 5*time.Millisecond,
		"the agent retries while the master is unreachable")

	// It comes back at the same address: the agent re-registers.
	l, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	srv = serve(l)
	t.Cleanup(func() { _ = srv.Close() })
	require.Eventually(t, func() bool { return agentActive(t, m, a.ID()) }, httpWait, 5*time.Millisecond)
	assert.Equal(t, int32(1), regs.register.Load())
	assert.GreaterOrEqual(t, regs.reregist.Load(), int32(1), "with its ID")
}

// standby is a master's Leadership when another one leads.
type standby string

func (s standby) Leader() (bool, string) { return false, string(s) }

func TestHTTPMasterFindsLeader(t *testing.T) {
	leader := runHTTPMaster(t, master.Config{})
	leaderSrv := httptest.NewServer(leader.Handler())
	t.Cleanup(leaderSrv.Close)
	t.Cleanup(leaderSrv.CloseClientConnections)
	other := runHTTPMaster(t, master.Config{Leadership: standby(leaderSrv.URL)})
	var standbyRequests atomic.Int32
	standbySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		standbyRequests.Add(1)
		other.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(standbySrv.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	link, err := agent.NewHTTPMaster([]string{dead, standbySrv.URL}, agent.WithJSON())
	require.NoError(t, err)
	a := runHTTPAgent(t, link)
	require.Eventually(t, func() bool { return a.ID() != "" && agentActive(t, leader, a.ID()) }, httpWait, 5*time.Millisecond)
	// PONGs and the like go to the leader directly.
	assert.Equal(t, int32(1), standbyRequests.Load())
}

func TestNewHTTPMasterValidates(t *testing.T) {
	for _, urls := range [][]string{nil, {"ftp://m:21"}, {"http://m:5050", "http://"}} {
		_, err := agent.NewHTTPMaster(urls)
		assert.ErrorIs(t, err, agent.ErrInvalidConfig, "%q", urls)
	}
	_, err := agent.NewHTTPMaster([]string{"10.0.0.1:5050", "https://10.0.0.2:5050/mesos"})
	assert.NoError(t, err)
}

func TestHTTPMasterAgentCallsBatch(t *testing.T) {
	for _, json := range []bool{false, true} {
		m := runHTTPMaster(t, master.Config{})
		srv := httptest.NewServer(m.Handler())
		t.Cleanup(srv.Close)
		var opts []agent.HTTPOption
		if json {
			opts = append(opts, agent.WithJSON())
		}
		hm, err := agent.NewHTTPMaster([]string{srv.URL}, opts...)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), httpWait)
		defer cancel()
		stream, events, err := hm.ConnectAgent(ctx, &internalpb.Call{
			Type:     internalpb.Call_REGISTER.Enum(),
			Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{Hostname: "a1"}},
		})
		require.NoError(t, err)
		ev := <-events
		require.Equal(t, internalpb.Event_REGISTERED, ev.GetType())
		id := ev.Registered.AgentID
		pong := func(agentID string) *internalpb.Call {
			return &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: agentID}}
		}

		require.NoError(t, hm.AgentCalls(ctx, stream, []*internalpb.Call{pong(id.Value), pong(id.Value), pong(id.Value)}))
		require.NoError(t, hm.AgentCalls(ctx, stream, []*internalpb.Call{pong(id.Value)}))

		// The master refuses the second call: the error names it and
		// keeps the master's answer.
		err = hm.AgentCalls(ctx, stream, []*internalpb.Call{pong(id.Value), pong("other"), pong(id.Value)})
		var ce *internalpb.CallError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, 1, ce.Index)
		var he *httpapi.Error
		require.ErrorAs(t, err, &he)
		assert.Equal(t, http.StatusForbidden, he.Status)
		assert.Contains(t, he.Message, "call 1:")
	}
}

func TestAgentCallsInProcess(t *testing.T) {
	m := runHTTPMaster(t, master.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	defer cancel()
	stream, events, err := m.ConnectAgent(ctx, &internalpb.Call{
		Type:     internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{Hostname: "a1"}},
	})
	require.NoError(t, err)
	ev := <-events
	id := ev.Registered.AgentID.Value
	var bm agent.BatchMaster = m
	pong := func(agentID string) *internalpb.Call {
		return &internalpb.Call{Type: internalpb.Call_PONG.Enum(), AgentID: &mesospb.AgentID{Value: agentID}}
	}
	require.NoError(t, bm.AgentCalls(ctx, stream, []*internalpb.Call{pong(id), pong(id)}))
	err = bm.AgentCalls(ctx, stream, []*internalpb.Call{pong(id), pong(id), pong("other")})
	var ce *internalpb.CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 2, ce.Index)
	assert.ErrorIs(t, err, master.ErrNotSubscribed)
}

package scheduler_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// TestHTTPCredential: WithCredential authenticates every request of the
// driver, to a standby (which redirects it only once it is authenticated)
// and to the leader, SUBSCRIBE and calls alike; a wrong credential aborts
// the driver.
func TestHTTPCredential(t *testing.T) {
	creds := []auth.Credential{{Principal: "fw", Secret: "fw-secret"}}
	secured := master.Config{Authenticator: auth.NewBasic(creds), AuthenticateFrameworks: true}
	leader, _ := runMaster(t, secured)
	leaderSrv := serve(t, leader.Handler())
	cfg := secured
	cfg.Leadership = standby(leaderSrv.URL)
	other, err := master.New(cfg)
	require.NoError(t, err)
	standbySrv := serve(t, other.Handler())

	ev := newEvents()
	d, _ := runDriver(t, ev, frameworkInfo("cred"), scheduler.WithMasterURL(standbySrv.URL), scheduler.WithCredential(creds[0]))
	receive(t, ev.registered, "registration")
	st, err := leader.State(context.Background())
	require.NoError(t, err)
	require.Len(t, st.GetFrameworks.Frameworks, 1)
	assert.Equal(t, "fw", st.GetFrameworks.Frameworks[0].FrameworkInfo.GetPrincipal(),
		"the master took the principal from the credential")
	require.NoError(t, d.ReviveOffers(context.Background()), "calls are authenticated too")

	for name, opts := range map[string][]scheduler.Option{
		"no credential":     nil,
		"a wrong secret":    {scheduler.WithCredential(auth.Credential{Principal: "fw", Secret: "nope"})},
		"another principal": {scheduler.WithCredential(auth.Credential{Principal: "intruder", Secret: "fw-secret"})},
	} {
		t.Run(name, func(t *testing.T) {
			ev := newEvents()
			_, done := runDriver(t, ev, frameworkInfo("refused"), append([]scheduler.Option{scheduler.WithMasterURL(leaderSrv.URL)}, opts...)...)
			err := receive(t, done, "Run to return")
			assert.True(t, errors.Is(err, scheduler.ErrAborted), "%v", err)
			assert.Contains(t, receive(t, ev.errors, "the error"), "401")
		})
	}
}

// TestHTTPUpdateFrameworkUnauthorized: an UPDATE_FRAMEWORK the master's
// authorizer refuses fails with ErrUnauthorized, and the subscription
// goes on.
func TestHTTPUpdateFrameworkUnauthorized(t *testing.T) {
	creds := []auth.Credential{{Principal: "fw", Secret: "fw-secret"}}
	acls, err := auth.ParseACLs([]byte(`{"permissive": false,
		"register_frameworks": [{"principals": {"values": ["fw"]}, "roles": {"values": ["*"]}}]}`))
	require.NoError(t, err)
	m, _ := runMaster(t, master.Config{Authenticator: auth.NewBasic(creds), AuthenticateFrameworks: true, Authorizer: auth.NewLocal(acls)})
	srv := serve(t, m.Handler())
	ev := newEvents()
	info := frameworkInfo("update")
	d, _ := runDriver(t, ev, info, scheduler.WithMasterURL(srv.URL), scheduler.WithCredential(creds[0]))
	receive(t, ev.registered, "registration")

	info.Role = ptr("prod")
	err = d.UpdateFramework(context.Background(), info, nil)
	assert.True(t, errors.Is(err, scheduler.ErrUnauthorized), "%v", err)
	assert.Contains(t, err.Error(), "REGISTER_FRAMEWORK")
	require.NoError(t, d.ReviveOffers(context.Background()), "still subscribed on the same stream")
	select {
	case <-ev.disconnected:
		t.Fatal("the refused update disconnected the driver")
	default:
	}
}

// TestHTTPSecuredCluster: an agent given its credential through its HTTP
// client registers with a master that authenticates agents and
// frameworks, and a framework with its own credential is offered its
// resources.
func TestHTTPSecuredCluster(t *testing.T) {
	creds := []auth.Credential{{Principal: "fw", Secret: "fw-secret"}, {Principal: "agent", Secret: "agent-secret"}}
	acls, err := auth.ParseACLs([]byte(`{"permissive": true,
		"register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}},
		                    {"principals": {"type": "ANY"}, "agents": {"type": "NONE"}}]}`))
	require.NoError(t, err)
	m, _ := runMaster(t, master.Config{Authenticator: auth.NewBasic(creds),
		AuthenticateFrameworks: true, AuthenticateAgents: true, Authorizer: auth.NewLocal(acls)})
	srv := serve(t, m.Handler())
	runAgent(t, []agent.HTTPOption{agent.WithHTTPClient(auth.WithBasic(nil, creds[1]))}, srv.URL)

	ev := newEvents()
	runDriver(t, ev, frameworkInfo("secured"), scheduler.WithMasterURL(srv.URL), scheduler.WithCredential(creds[0]))
	receive(t, ev.registered, "registration")
	offers := receive(t, ev.offers, "offers")
	require.NotEmpty(t, offers)
}

package master_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// The secured cluster of these tests: every endpoint family asks for a
// credential, and ACLs that allow nothing they do not name.
var testCreds = []auth.Credential{
	{Principal: "ops", Secret: "ops-secret"},
	{Principal: "viewer", Secret: "viewer-secret"},
	{Principal: "fw", Secret: "fw-secret"},
	{Principal: "other", Secret: "other-secret"},
	{Principal: "agent", Secret: "agent-secret"},
}

const testACLs = `{
  "permissive": false,
  "register_frameworks": [{"principals": {"values": ["fw"]}, "roles": {"values": ["web"]}},
                          {"principals": {"values": ["other"]}, "roles": {"values": ["batch"]}}],
  "run_tasks": [{"principals": {"values": ["fw", "other"]}, "users": {"values": ["nobody"]}}],
  "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
  "update_quotas": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "get_quotas": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "view_roles": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "reserve_resources": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "unreserve_resources": [{"principals": {"values": ["ops"]}, "reserver_principals": {"type": "ANY"}}],
  "mark_agents_gone": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
  "deactivate_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
  "update_maintenance_schedules": [{"principals": {"values": ["ops"]}, "machines": {"type": "ANY"}}],
  "get_maintenance_schedules": [{"principals": {"values": ["ops"]}, "machines": {"type": "ANY"}}],
  "view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}}],
  "view_frameworks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                      {"principals": {"values": ["viewer"]}, "users": {"values": ["nobody"]}}],
  "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                 {"principals": {"values": ["viewer"]}, "users": {"values": ["nobody"]}}],
  "view_executors": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "access_sandboxes": [{"principals": {"values": ["viewer"]}, "users": {"values": ["nobody"]}}],
  "get_endpoints": [{"principals": {"values": ["ops", "viewer"]}, "paths": {"values": ["/metrics/snapshot", "/files/debug"]}}],
  "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}]
}`

func cred(principal string) *auth.Credential {
	for _, c := range testCreds {
		if c.Principal == principal {
			return &c
		}
	}
	panic("no credential for " + principal)
}

// wrongSecret is a known principal with a wrong secret.
var wrongSecret = &auth.Credential{Principal: "ops", Secret: "not-the-secret"}

func startSecureMaster(t *testing.T) *httpMaster {
	t.Helper()
	acls, err := auth.ParseACLs([]byte(testACLs))
	require.NoError(t, err)
	return startHTTPMaster(t, master.Config{
		Authenticator:             auth.NewBasic(testCreds),
		AuthenticateFrameworks:    true,
		AuthenticateAgents:        true,
		AuthenticateHTTPReadOnly:  true,
		AuthenticateHTTPReadWrite: true,
		Authorizer:                auth.NewLocal(acls),
	})
}

// as is a context carrying principal, for in-process calls.
func as(principal string) context.Context {
	return auth.WithPrincipal(context.Background(), principal)
}

// request sends method path with body as c (nil: no credential) and
// returns the answer, whose body stays open until the test ends (a
// stream's does too).
func (h *httpMaster) request(method, path string, c *auth.Credential, streamID string, body []byte) *http.Response {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	h.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, h.url(path), bytes.NewReader(body))
	require.NoError(h.t, err)
	if body != nil {
		req.Header.Set("Content-Type", codec.MediaTypeJSON)
		req.Header.Set("Accept", codec.MediaTypeJSON)
	}
	if streamID != "" {
		req.Header.Set(httpapi.StreamIDHeader, streamID)
	}
	if c != nil {
		req.SetBasicAuth(c.Principal, c.Secret)
	}
	resp, err := httpapi.NoRedirects.Do(req)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func jsonOf(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := codec.JSON.Marshal(m)
	require.NoError(t, err)
	return b
}

// opState is what an operator call reads, in process, as ops.
func opState(t *testing.T, m *master.Master, typ masterpb.Call_Type) *masterpb.Response {
	t.Helper()
	resp, err := m.OperatorCall(as("ops"), &masterpb.Call{Type: typ.Enum()})
	require.NoError(t, err)
	return resp
}

// TestAuthEndpoints runs every endpoint family with no credential, a
// wrong one, a right one without the permission and a right one with it,
// and checks that a refused call changed nothing.
func TestAuthEndpoints(t *testing.T) {
	h := startSecureMaster(t)
	m := h.m
	agentID, _ := fakeAgentCtx(t, as("agent"), m, "agent-1", "cpus:4;mem:4096")
	goneID, _ := fakeAgentCtx(t, as("agent"), m, "agent-2", "cpus:1;mem:128")
	// A framework of principal fw, subscribed in process, to tear down.
	fwCtx, cancelFW := context.WithCancel(as("fw"))
	t.Cleanup(cancelFW)
	subscribe := func(name string) string {
		info := mesospb.FrameworkInfo{User: "nobody", Name: name, Role: ptr("web")}
		_, events, err := m.SubscribeScheduler(fwCtx, subscribeCall(info))
		require.NoError(t, err)
		id := (<-events).Subscribed.FrameworkID.Value
		go func() {
			for range events {
			}
		}()
		return id
	}
	victim, victim2 := subscribe("victim"), subscribe("victim2")

	frameworks := func() string {
		var names []string
		for _, f := range opState(t, m, masterpb.Call_GET_FRAMEWORKS).GetFrameworks.Frameworks {
			names = append(names, f.FrameworkInfo.Name+"/"+f.FrameworkInfo.GetPrincipal())
		}
		return strings.Join(names, ",")
	}
	agents := func() string {
		var out []string
		for _, a := range opState(t, m, masterpb.Call_GET_AGENTS).GetAgents.Agents {
			total, err := resources.FromProto(a.TotalResources)
			require.NoError(t, err)
			out = append(out, fmt.Sprintf("%s %v %s", a.AgentInfo.Hostname, a.GetDeactivated(), total))
		}
		return strings.Join(out, ";")
	}
	op := func(call *masterpb.Call) []byte { return jsonOf(t, call) }

	for _, tc := range []struct {
		name, method, path string
		body               []byte
		denied, allowed    string // principals; denied "" when every valid principal may
		want               int    // the allowed principal's answer
		probe              func() string
	}{
		{name: "UPDATE_QUOTA", method: "POST", path: "/api/v1", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body: op(&masterpb.Call{Type: masterpb.Call_UPDATE_QUOTA.Enum(), UpdateQuota: &masterpb.Call_UpdateQuota{
				Force: ptr(true), QuotaConfigs: []masterpb.QuotaConfig{{Role: "web", Guarantees: map[string]mesospb.Value_Scalar{"cpus": {Value: 1}}}}}}),
			probe: func() string { return opState(t, m, masterpb.Call_GET_QUOTA).GetQuota.Status.String() }},
		{name: "UPDATE_WEIGHTS", method: "POST", path: "/master/api/v1", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body: op(&masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(), UpdateWeights: &masterpb.Call_UpdateWeights{
				WeightInfos: []mesospb.WeightInfo{{Role: ptr("web"), Weight: 3}}}}),
			probe: func() string { return opState(t, m, masterpb.Call_GET_WEIGHTS).GetWeights.String() }},
		{name: "RESERVE_RESOURCES", method: "POST", path: "/api/v1", denied: "viewer", allowed: "ops", want: http.StatusAccepted,
			body: op(&masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(), ReserveResources: &masterpb.Call_ReserveResources{
				AgentID: mesospb.AgentID{Value: agentID}, Resources: []mesospb.Resource{{
					Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
					Reservations: []mesospb.Resource_ReservationInfo{{Type: mesospb.Resource_ReservationInfo_DYNAMIC.Enum(), Role: ptr("web"), Principal: ptr("ops")}},
				}}}}),
			probe: agents},
		{name: "DEACTIVATE_AGENT", method: "POST", path: "/api/v1", denied: "fw", allowed: "ops", want: http.StatusOK,
			body: op(&masterpb.Call{Type: masterpb.Call_DEACTIVATE_AGENT.Enum(), DeactivateAgent: &masterpb.Call_DeactivateAgent{
				AgentID: mesospb.AgentID{Value: agentID}}}),
			probe: agents},
		{name: "MARK_AGENT_GONE", method: "POST", path: "/api/v1", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body: op(&masterpb.Call{Type: masterpb.Call_MARK_AGENT_GONE.Enum(), MarkAgentGone: &masterpb.Call_MarkAgentGone{
				AgentID: mesospb.AgentID{Value: goneID}}}),
			probe: agents},
		{name: "TEARDOWN", method: "POST", path: "/api/v1", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body: op(&masterpb.Call{Type: masterpb.Call_TEARDOWN.Enum(), Teardown: &masterpb.Call_Teardown{
				FrameworkID: mesospb.FrameworkID{Value: victim}}}),
			probe: frameworks},
		{name: "POST /teardown", method: "POST", path: "/teardown", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body: []byte("frameworkId=" + victim2), probe: frameworks},
		{name: "POST /master/reserve", method: "POST", path: "/master/reserve", denied: "viewer", allowed: "ops", want: http.StatusAccepted,
			body: []byte("slaveId=" + agentID + "&resources=" + url.QueryEscape(
				`[{"name": "mem", "type": "SCALAR", "scalar": {"value": 64}, "reservations": [{"type": "DYNAMIC", "role": "web", "principal": "ops"}]}]`)),
			probe: agents},
		{name: "POST /quota", method: "POST", path: "/quota", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body:  []byte(`{"role": "batch", "force": true, "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}`),
			probe: func() string { return opState(t, m, masterpb.Call_GET_QUOTA).GetQuota.Status.String() }},
		{name: "DELETE /master/quota/web", method: "DELETE", path: "/master/quota/web", denied: "viewer", allowed: "ops", want: http.StatusOK,
			probe: func() string { return opState(t, m, masterpb.Call_GET_QUOTA).GetQuota.Status.String() }},
		{name: "PUT /weights", method: "PUT", path: "/weights", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body:  []byte(`[{"role": "batch", "weight": 2}]`),
			probe: func() string { return opState(t, m, masterpb.Call_GET_WEIGHTS).GetWeights.String() }},
		{name: "GET /weights", method: "GET", path: "/weights", allowed: "viewer", want: http.StatusOK},
		{name: "POST /maintenance/schedule", method: "POST", path: "/maintenance/schedule", denied: "viewer", allowed: "ops", want: http.StatusOK,
			body:  []byte(`{"windows": [{"machine_ids": [{"hostname": "agent-9"}], "unavailability": {"start": {"nanoseconds": 1}}}]}`),
			probe: func() string { return opState(t, m, masterpb.Call_GET_MAINTENANCE_SCHEDULE).String() }},
		{name: "GET /master/maintenance/schedule", method: "GET", path: "/master/maintenance/schedule", denied: "viewer", allowed: "ops", want: http.StatusOK},
		{name: "GET /flags", method: "GET", path: "/flags", denied: "viewer", allowed: "ops", want: http.StatusOK},
		{name: "GET /master/state", method: "GET", path: "/master/state", allowed: "viewer", want: http.StatusOK},
		{name: "GET /state", method: "GET", path: "/state", allowed: "viewer", want: http.StatusOK},
		{name: "GET /tasks", method: "GET", path: "/tasks", allowed: "viewer", want: http.StatusOK},
		{name: "GET /metrics/snapshot", method: "GET", path: "/metrics/snapshot", denied: "fw", allowed: "viewer", want: http.StatusOK},
		{name: "GET /files/debug", method: "GET", path: "/files/debug", denied: "fw", allowed: "viewer", want: http.StatusOK},
		{name: "SUBSCRIBE", method: "POST", path: "/api/v1/scheduler", denied: "other", allowed: "fw", want: http.StatusOK,
			body:  jsonOf(t, subscribeCall(mesospb.FrameworkInfo{User: "nobody", Name: "table", Role: ptr("web")})),
			probe: frameworks},
		{name: "REGISTER agent", method: "POST", path: "/apron/v1/agent", denied: "fw", allowed: "agent", want: http.StatusOK,
			body:  []byte(`{"type": "REGISTER", "register": {"agent_info": {"hostname": "agent-3", "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}}}`),
			probe: agents},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ""
			if tc.probe != nil {
				before = tc.probe()
			}
			unchanged := func(who string) {
				if tc.probe != nil {
					assert.Equal(t, before, tc.probe(), "a call refused to %s changed nothing", who)
				}
			}
			for who, c := range map[string]*auth.Credential{"no credential": nil, "a wrong secret": wrongSecret} {
				resp := h.request(tc.method, tc.path, c, "", tc.body)
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, who)
				assert.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="`), who)
				unchanged(who)
			}
			if tc.denied != "" {
				resp := h.request(tc.method, tc.path, cred(tc.denied), "", tc.body)
				msg := body(t, resp)
				assert.Equal(t, http.StatusForbidden, resp.StatusCode, msg)
				assert.Contains(t, msg, "Not authorized", "the refusal names the action")
				unchanged(tc.denied)
			}
			resp := h.request(tc.method, tc.path, cred(tc.allowed), "", tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: %s", resp.Status, body(t, resp))
			}
			if tc.probe != nil {
				assert.NotEqual(t, before, tc.probe(), "the allowed call changed something")
			}
		})
	}
}

// subscribeAs subscribes a framework over HTTP as c and returns its
// stream, past SUBSCRIBED.
func (h *httpMaster) subscribeAs(c *auth.Credential, info mesospb.FrameworkInfo) (s *recordStream, streamID, frameworkID string) {
	h.t.Helper()
	resp := h.request("POST", "/api/v1/scheduler", c, "", jsonOf(h.t, subscribeCall(info)))
	if resp.StatusCode != http.StatusOK {
		require.FailNow(h.t, "SUBSCRIBE failed", "%s: %s", resp.Status, body(h.t, resp))
	}
	streamID = resp.Header.Get(httpapi.StreamIDHeader)
	s = newRecordStream(h.t, resp)
	ev := s.schedulerEvent(schedulerpb.Event_SUBSCRIBED)
	return s, streamID, ev.Subscribed.FrameworkID.Value
}

// TestAuthRunTasks: a framework may launch as the users run_tasks allows
// it, and gets TASK_ERROR (REASON_TASK_UNAUTHORIZED) for any other.
func TestAuthRunTasks(t *testing.T) {
	h := startSecureMaster(t)
	fakeAgentCtx(t, as("agent"), h.m, "agent-1", "cpus:4;mem:1024")
	s, streamID, fwID := h.subscribeAs(cred("fw"), mesospb.FrameworkInfo{User: "nobody", Name: "web", Role: ptr("web")})

	st := opState(t, h.m, masterpb.Call_GET_FRAMEWORKS).GetFrameworks.Frameworks[0]
	assert.Equal(t, "fw", st.FrameworkInfo.GetPrincipal(), "the principal is the authenticated one when the framework sets none")

	offers := s.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	root := commandTask("as-root", offers[0], "cpus:1;mem:128")
	root.Command.User = ptr("root")
	group := commandTask("group-root", offers[0], "cpus:1;mem:128")
	group.Command.User = ptr("root")
	plain := commandTask("as-nobody", offers[0], "cpus:1;mem:128")
	call := launchCall(offerIDs(offers...), root, plain)
	call.Accept.Operations = append(call.Accept.Operations, mesospb.Offer_Operation{
		Type: mesospb.Offer_Operation_LAUNCH_GROUP.Enum(),
		LaunchGroup: &mesospb.Offer_Operation_LaunchGroup{
			Executor: mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "e"}, Type: mesospb.ExecutorInfo_DEFAULT.Enum(),
				Resources: resources.MustParse("cpus:0.1;mem:32").ToProto()},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{group}},
		},
	})
	call.FrameworkID = &mesospb.FrameworkID{Value: fwID}
	resp := h.request("POST", "/api/v1/scheduler", cred("fw"), streamID, jsonOf(t, call))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body(t, resp))

	got := map[string]*mesospb.TaskStatus{}
	for len(got) < 3 {
		ev := s.schedulerEvent(schedulerpb.Event_UPDATE)
		got[ev.Update.Status.TaskID.Value] = &ev.Update.Status
	}
	assert.Equal(t, mesospb.TASK_ERROR, got["as-root"].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_UNAUTHORIZED, got["as-root"].GetReason())
	assert.Contains(t, got["as-root"].GetMessage(), "not authorized to launch task as-root of framework "+fwID+" under user 'root'")
	assert.Equal(t, mesospb.TASK_ERROR, got["group-root"].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_GROUP_UNAUTHORIZED, got["group-root"].GetReason())
	assert.Equal(t, mesospb.TASK_RUNNING, got["as-nobody"].GetState(), got["as-nobody"].GetMessage())
}

// TestAuthFrameworkRoles: a framework may not register, nor move by
// UPDATE_FRAMEWORK, into a role it is not allowed.
func TestAuthFrameworkRoles(t *testing.T) {
	h := startSecureMaster(t)
	resp := h.request("POST", "/api/v1/scheduler", cred("fw"), "",
		jsonOf(t, subscribeCall(mesospb.FrameworkInfo{User: "nobody", Name: "b", Role: ptr("batch")})))
	msg := body(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, msg)
	assert.Contains(t, msg, "Not authorized to register framework  with roles { batch } (REGISTER_FRAMEWORK)")
	assert.Empty(t, opState(t, h.m, masterpb.Call_GET_FRAMEWORKS).GetFrameworks.Frameworks)

	info := mesospb.FrameworkInfo{User: "nobody", Name: "w", Roles: []string{"web"},
		Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}}
	_, streamID, fwID := h.subscribeAs(cred("fw"), info)
	info.ID = &mesospb.FrameworkID{Value: fwID}
	info.Principal = ptr("fw")
	info.Roles = []string{"web", "batch"}
	resp = h.request("POST", "/api/v1/scheduler", cred("fw"), streamID, jsonOf(t, &schedulerpb.Call{
		FrameworkID: info.ID, Type: schedulerpb.Call_UPDATE_FRAMEWORK.Enum(),
		UpdateFramework: &schedulerpb.Call_UpdateFramework{FrameworkInfo: info},
	}))
	msg = body(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, msg)
	assert.Contains(t, msg, "REGISTER_FRAMEWORK")
	fws := opState(t, h.m, masterpb.Call_GET_FRAMEWORKS).GetFrameworks.Frameworks
	require.Len(t, fws, 1)
	assert.Equal(t, []string{"web"}, fws[0].FrameworkInfo.Roles, "the refused update changed nothing")
}

// TestAuthOtherPrincipal: a framework's calls need its own principal's
// credential; another valid one is refused, and changes nothing.
func TestAuthOtherPrincipal(t *testing.T) {
	h := startSecureMaster(t)
	info := mesospb.FrameworkInfo{User: "nobody", Name: "w", Role: ptr("web")}
	_, streamID, fwID := h.subscribeAs(cred("fw"), info)

	teardown := jsonOf(t, &schedulerpb.Call{FrameworkID: &mesospb.FrameworkID{Value: fwID}, Type: schedulerpb.Call_TEARDOWN.Enum()})
	resp := h.request("POST", "/api/v1/scheduler", cred("other"), streamID, teardown)
	msg := body(t, resp)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, msg)
	assert.Contains(t, msg, "Authenticated principal 'other' does not match principal 'fw' set in `FrameworkInfo`")

	// Claiming fw's principal, or fw's framework, as other.
	claim := info
	claim.Principal = ptr("fw")
	resp = h.request("POST", "/api/v1/scheduler", cred("other"), "", jsonOf(t, subscribeCall(claim)))
	msg = body(t, resp)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, msg)
	assert.Contains(t, msg, "Authenticated principal 'other' does not match principal 'fw' set in `FrameworkInfo`")
	takeover := info
	takeover.ID = &mesospb.FrameworkID{Value: fwID}
	resp = h.request("POST", "/api/v1/scheduler", cred("other"), "", jsonOf(t, subscribeCall(takeover)))
	assert.NotEqual(t, http.StatusOK, resp.StatusCode, body(t, resp))

	fws := opState(t, h.m, masterpb.Call_GET_FRAMEWORKS).GetFrameworks.Frameworks
	require.Len(t, fws, 1)
	assert.True(t, fws[0].Active && fws[0].Connected, "the framework still runs on its stream")

	resp = h.request("POST", "/api/v1/scheduler", cred("fw"), streamID, teardown)
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, "a framework tears itself down with its own credential")
	assert.Empty(t, opState(t, h.m, masterpb.Call_GET_FRAMEWORKS).GetFrameworks.Frameworks)
}

// TestAuthFakeAgent: nobody without an agent's credential can register an
// agent, or take over a real agent's ID with REREGISTER.
func TestAuthFakeAgent(t *testing.T) {
	h := startSecureMaster(t)
	agentID, _ := fakeAgentCtx(t, as("agent"), h.m, "agent-1", "cpus:4;mem:1024")
	reregister := []byte(fmt.Sprintf(`{"type": "REREGISTER", "reregister": {"agent_info": {"id": {"value": %q}, "hostname": "agent-1",
		"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 64}}]}}}`, agentID))
	register := []byte(`{"type": "REGISTER", "register": {"agent_info": {"hostname": "evil",
		"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 64}}]}}}`)
	for _, b := range [][]byte{reregister, register} {
		resp := h.request("POST", "/apron/v1/agent", nil, "", b)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, `Basic realm="apron-master-agent"`, resp.Header.Get("WWW-Authenticate"))
		resp = h.request("POST", "/apron/v1/agent", cred("fw"), "", b)
		msg := body(t, resp)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, msg)
		assert.Contains(t, msg, "REGISTER_AGENT")
	}
	// Static reservations need the agent's principal to be allowed them.
	resp := h.request("POST", "/apron/v1/agent", cred("agent"), "", []byte(`{"type": "REGISTER", "register": {"agent_info": {"hostname": "reserved",
		"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"type": "STATIC", "role": "prod"}]}]}}}`))
	msg := body(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, msg)
	assert.Contains(t, msg, "RESERVE_RESOURCES")

	agents := opState(t, h.m, masterpb.Call_GET_AGENTS).GetAgents.Agents
	require.Len(t, agents, 1)
	assert.Equal(t, agentID, agents[0].AgentInfo.ID.Value)
	total, err := resources.FromProto(agents[0].TotalResources)
	require.NoError(t, err)
	assert.Equal(t, "cpus:4;mem:1024", total.String(), "the real agent is untouched")
}

// TestAuthOpenEndpoints: the endpoints Mesos leaves open stay open.
func TestAuthOpenEndpoints(t *testing.T) {
	h := startSecureMaster(t)
	for _, path := range []string{"/health", "/master/health", "/version", "/redirect", "/master/redirect"} {
		resp := h.request("GET", path, nil, "", nil)
		assert.NotEqual(t, http.StatusUnauthorized, resp.StatusCode, path)
	}
}

// TestAuthFiltersRoles: GET_QUOTA, GET_WEIGHTS and GET_ROLES show a
// principal only the roles it may see.
func TestAuthFiltersRoles(t *testing.T) {
	h := startSecureMaster(t)
	_, err := h.m.OperatorCall(as("ops"), &masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(), UpdateWeights: &masterpb.Call_UpdateWeights{
		WeightInfos: []mesospb.WeightInfo{{Role: ptr("web"), Weight: 2}}}})
	require.NoError(t, err)
	_, err = h.m.OperatorCall(as("ops"), &masterpb.Call{Type: masterpb.Call_UPDATE_QUOTA.Enum(), UpdateQuota: &masterpb.Call_UpdateQuota{
		Force: ptr(true), QuotaConfigs: []masterpb.QuotaConfig{{Role: "web", Guarantees: map[string]mesospb.Value_Scalar{"cpus": {Value: 1}}}}}})
	require.NoError(t, err)
	for _, who := range []string{"ops", "viewer"} {
		roles := h.request("GET", "/roles", cred(who), "", nil)
		assert.Equal(t, who == "ops", strings.Contains(body(t, roles), `"web"`), "/roles as %s", who)
		resp, err := h.m.OperatorCall(as(who), &masterpb.Call{Type: masterpb.Call_GET_WEIGHTS.Enum()})
		require.NoError(t, err)
		assert.Equal(t, who == "ops", len(resp.GetWeights.WeightInfos) == 1, who)
		resp, err = h.m.OperatorCall(as(who), &masterpb.Call{Type: masterpb.Call_GET_QUOTA.Enum()})
		require.NoError(t, err)
		assert.Equal(t, who == "ops", len(resp.GetQuota.Status.Configs) == 1, who)
	}
}

// TestAuthCurl speaks to the secured master from outside Go: curl with
// -u, as an operator's script would.
func TestAuthCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	h := startSecureMaster(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code} %header{www-authenticate}"}, args...)...).Output()
		require.NoError(t, err, "curl %v", args)
		return strings.TrimSpace(string(out))
	}
	weights := []string{"-X", "POST", "-H", "Content-Type: application/json",
		"-d", `{"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "web", "weight": 2.5}]}}`, h.url("/api/v1")}
	assert.Equal(t, `401 Basic realm="mesos-master-readwrite"`, run(weights...))
	assert.Equal(t, `401 Basic realm="mesos-master-readwrite"`, run(append([]string{"-u", "ops:wrong"}, weights...)...))
	assert.Equal(t, "403", run(append([]string{"-u", "viewer:viewer-secret"}, weights...)...))
	assert.Equal(t, "200", run(append([]string{"-u", "ops:ops-secret"}, weights...)...))
	assert.Equal(t, "200", run("-u", "viewer:viewer-secret", h.url("/master/state")))
	assert.Equal(t, `401 Basic realm="mesos-master-readonly"`, run(h.url("/master/state")))
	w := opState(t, h.m, masterpb.Call_GET_WEIGHTS).GetWeights.WeightInfos
	require.Len(t, w, 1)
	assert.Equal(t, 2.5, w[0].Weight)
}

// TestAuthOperatorReservationPrincipal: an authenticated operator's
// reservations must name its principal, as Mesos requires.
func TestAuthOperatorReservationPrincipal(t *testing.T) {
	h := startSecureMaster(t)
	agentID, _ := fakeAgentCtx(t, as("agent"), h.m, "agent-1", "cpus:4;mem:1024")
	reserve := func(principal *string) *masterpb.Call {
		return &masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(), ReserveResources: &masterpb.Call_ReserveResources{
			AgentID: mesospb.AgentID{Value: agentID}, Resources: []mesospb.Resource{{
				Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
				Reservations: []mesospb.Resource_ReservationInfo{{Type: mesospb.Resource_ReservationInfo_DYNAMIC.Enum(), Role: ptr("web"), Principal: principal}},
			}}}}
	}
	for _, p := range []*string{nil, ptr("viewer")} {
		resp := h.request("POST", "/api/v1", cred("ops"), "", jsonOf(t, reserve(p)))
		msg := body(t, resp)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, msg)
		assert.Contains(t, msg, "principal")
	}
	resp := h.request("POST", "/api/v1", cred("ops"), "", jsonOf(t, reserve(ptr("ops"))))
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, body(t, resp))
}

// TestAuthFiltersState: GET_STATE, GET_FRAMEWORKS, GET_TASKS and the
// state endpoints show a principal only the frameworks and tasks its
// view ACLs let it see.
func TestAuthFiltersState(t *testing.T) {
	h := startSecureMaster(t)
	fakeAgentCtx(t, as("agent"), h.m, "agent-1", "cpus:4;mem:1024")
	s, streamID, fwID := h.subscribeAs(cred("fw"), mesospb.FrameworkInfo{User: "nobody", Name: "seen", Role: ptr("web")})
	offers := s.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	h.subscribeAs(cred("other"), mesospb.FrameworkInfo{User: "svc", Name: "hidden", Role: ptr("batch")})
	call := launchCall(offerIDs(offers...), commandTask("t1", offers[0], "cpus:1;mem:64"))
	call.FrameworkID = &mesospb.FrameworkID{Value: fwID}
	require.Equal(t, http.StatusAccepted, h.request("POST", "/api/v1/scheduler", cred("fw"), streamID, jsonOf(t, call)).StatusCode)
	s.schedulerEvent(schedulerpb.Event_UPDATE)

	names := func(fws []masterpb.Response_GetFrameworks_Framework) (out []string) {
		for _, f := range fws {
			out = append(out, f.FrameworkInfo.Name)
		}
		return out
	}
	st := opState(t, h.m, masterpb.Call_GET_STATE).GetState
	assert.ElementsMatch(t, []string{"seen", "hidden"}, names(st.GetFrameworks.Frameworks))
	assert.Len(t, st.GetTasks.Tasks, 1)

	resp, err := h.m.OperatorCall(as("viewer"), &masterpb.Call{Type: masterpb.Call_GET_STATE.Enum()})
	require.NoError(t, err)
	assert.Equal(t, []string{"seen"}, names(resp.GetState.GetFrameworks.Frameworks))
	assert.Len(t, resp.GetState.GetTasks.Tasks, 1, "the task runs as the framework's user, nobody")
	resp, err = h.m.OperatorCall(as("fw"), &masterpb.Call{Type: masterpb.Call_GET_FRAMEWORKS.Enum()})
	require.NoError(t, err)
	assert.Empty(t, resp.GetFrameworks.Frameworks, "fw may view no framework")

	for _, path := range []string{"/master/state", "/master/frameworks", "/state"} {
		resp := h.request("GET", path, cred("viewer"), "", nil)
		msg := body(t, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Contains(t, msg, `"seen"`, path)
		assert.NotContains(t, msg, `"hidden"`, path)
	}
}

// TestAuthFiltersOperatorEvents: the operator event stream shows a
// principal only the frameworks and tasks it may see.
func TestAuthFiltersOperatorEvents(t *testing.T) {
	h := startSecureMaster(t)
	resp := h.request("POST", "/api/v1", cred("viewer"), "", []byte(`{"type": "SUBSCRIBE"}`))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	events := newRecordStream(t, resp)
	var ev masterpb.Event
	events.event(&ev)
	require.Equal(t, masterpb.Event_SUBSCRIBED, ev.GetType())

	h.subscribeAs(cred("other"), mesospb.FrameworkInfo{User: "svc", Name: "hidden", Role: ptr("batch")})
	h.subscribeAs(cred("fw"), mesospb.FrameworkInfo{User: "nobody", Name: "seen", Role: ptr("web")})
	for {
		var ev masterpb.Event
		events.event(&ev)
		if ev.GetType() == masterpb.Event_FRAMEWORK_ADDED {
			assert.Equal(t, "seen", ev.FrameworkAdded.Framework.FrameworkInfo.Name, "the first framework the viewer sees is its own user's")
			break
		}
	}
}

// TestAuthAgentStreamPrincipal: only the principal that opened an agent's
// stream may call on it, whatever other credential is valid on the link.
func TestAuthAgentStreamPrincipal(t *testing.T) {
	h := startSecureMaster(t)
	resp := h.request("POST", "/apron/v1/agent", cred("agent"), "", []byte(`{"type": "REGISTER", "register": {"agent_info": {"hostname": "a",
		"resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}}}`))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	streamID := resp.Header.Get(httpapi.StreamIDHeader)
	var ev struct {
		Registered struct {
			AgentID struct{ Value string } `json:"agent_id"`
		}
	}
	rec, err := newRecordStream(t, resp).next()
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(rec, &ev))
	pong := []byte(fmt.Sprintf(`{"type": "PONG", "agent_id": {"value": %q}}`, ev.Registered.AgentID.Value))

	resp = h.request("POST", "/apron/v1/agent", cred("fw"), streamID, pong)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, body(t, resp))
	resp = h.request("POST", "/apron/v1/agent", cred("agent"), streamID, pong)
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, body(t, resp))
}

// TestAuthSandboxes: the master forwards a sandbox read to the agent
// only for a principal access_sandboxes lets read it.
func TestAuthSandboxes(t *testing.T) {
	h := startSecureMaster(t)
	agentID, _ := fakeAgentCtx(t, as("agent"), h.m, "localhost", "cpus:1;mem:128")
	_, _, seen := h.subscribeAs(cred("fw"), mesospb.FrameworkInfo{User: "nobody", Name: "seen", Role: ptr("web")})
	_, _, hidden := h.subscribeAs(cred("other"), mesospb.FrameworkInfo{User: "svc", Name: "hidden", Role: ptr("batch")})
	sandbox := func(fw string) string {
		return "/var/lib/apron/slaves/" + agentID + "/frameworks/" + fw + "/executors/e/runs/latest/stdout"
	}
	for _, tc := range []struct {
		path   string
		who    string
		denied bool
	}{
		{sandbox(hidden), "viewer", true},
		{sandbox(seen), "fw", true},
		{"/var/lib/apron/slaves/" + agentID, "viewer", true}, // not a sandbox: access_mesos_logs
		{sandbox(seen), "viewer", false},
	} {
		resp := h.request("GET", "/files/read?offset=0&path="+url.QueryEscape(tc.path), cred(tc.who), "", nil)
		msg := body(t, resp)
		if tc.denied {
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s as %s: %s", tc.path, tc.who, msg)
		} else {
			assert.NotEqual(t, http.StatusForbidden, resp.StatusCode, "%s as %s: %s", tc.path, tc.who, msg)
		}
		_, err := h.m.OperatorCall(as(tc.who), &masterpb.Call{Type: masterpb.Call_READ_FILE.Enum(),
			ReadFile: &masterpb.Call_ReadFile{Path: tc.path, Length: ptr(uint64(10))}})
		assert.Equal(t, tc.denied, errors.Is(err, master.ErrForbidden), "READ_FILE %s as %s: %v", tc.path, tc.who, err)
	}
}

// slowAuthorizer is a remote policy service as the master sees one: its
// answers for principal "slow" wait until release is closed, and for
// "broken" it fails.
type slowAuthorizer struct {
	auth.Authorizer
	release chan struct{}
}

func (a slowAuthorizer) Approver(ctx context.Context, s auth.Subject, action auth.Action) (auth.Approver, error) {
	switch s.Principal {
	case "slow":
		select {
		case <-a.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "broken":
		return nil, errors.New("policy service unreachable")
	}
	return a.Authorizer.Approver(ctx, s, action)
}

// TestAuthSlowAuthorizer: the master goes on serving while the
// authorizer makes one caller wait, and an authorizer that fails is a
// 503, not a refusal.
func TestAuthSlowAuthorizer(t *testing.T) {
	acls, err := auth.ParseACLs([]byte(`{"update_weights": [{"principals": {"values": ["slow"]}, "roles": {"type": "NONE"}}]}`))
	require.NoError(t, err)
	az := slowAuthorizer{Authorizer: auth.NewLocal(acls), release: make(chan struct{})}
	broken := auth.Credential{Principal: "broken", Secret: "b"}
	h := startHTTPMaster(t, master.Config{Authorizer: az, Authenticator: auth.NewBasic([]auth.Credential{broken}), AuthenticateHTTPReadWrite: true})
	update := &masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(), UpdateWeights: &masterpb.Call_UpdateWeights{
		WeightInfos: []mesospb.WeightInfo{{Role: ptr("web"), Weight: 2}}}}

	slow := make(chan error, 1)
	go func() {
		_, err := h.m.OperatorCall(as("slow"), update)
		slow <- err
	}()
	_, err = h.m.OperatorCall(as("ops"), update)
	require.NoError(t, err, "another caller is served while the slow one waits for the authorizer")
	select {
	case err := <-slow:
		t.Fatalf("the slow call returned before its authorizer answered: %v", err)
	default:
	}
	close(az.release)
	assert.ErrorIs(t, <-slow, master.ErrForbidden)

	_, err = h.m.OperatorCall(as("broken"), update)
	assert.ErrorIs(t, err, master.ErrAuthorizer)
	resp := h.request("POST", "/api/v1", &broken, "", jsonOf(t, update))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body(t, resp))
}

// TestAuthFiltersAgentReservations: GET_AGENTS hides the resources
// reserved to roles a principal may not view.
func TestAuthFiltersAgentReservations(t *testing.T) {
	h := startSecureMaster(t)
	agentID, _ := fakeAgentCtx(t, as("agent"), h.m, "agent-1", "cpus:4;mem:1024")
	_, err := h.m.OperatorCall(as("ops"), &masterpb.Call{Type: masterpb.Call_RESERVE_RESOURCES.Enum(), ReserveResources: &masterpb.Call_ReserveResources{
		AgentID: mesospb.AgentID{Value: agentID}, Resources: []mesospb.Resource{{
			Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
			Reservations: []mesospb.Resource_ReservationInfo{{Type: mesospb.Resource_ReservationInfo_DYNAMIC.Enum(), Role: ptr("web"), Principal: ptr("ops")}},
		}}}})
	require.NoError(t, err)
	for who, sees := range map[string]bool{"ops": true, "viewer": false} {
		resp, err := h.m.OperatorCall(as(who), &masterpb.Call{Type: masterpb.Call_GET_AGENTS.Enum()})
		require.NoError(t, err)
		total, err := resources.FromProto(resp.GetAgents.Agents[0].TotalResources)
		require.NoError(t, err)
		assert.Equal(t, "cpus:3;mem:1024", total.Unreserved().String(), who)
		assert.Equal(t, sees, !total.Reserved().Empty(), "%s sees the reservation of web: %s", who, total)
	}
}

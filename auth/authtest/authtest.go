// Package authtest is the conformance suite of auth.Authorizer: Mesos's
// local authorizer's decisions, as a table, for any implementation that
// takes its policy as Mesos ACLs (an external policy service configured
// from the same file, say). Run it from the implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		authtest.Run(t, func(t *testing.T, acls *auth.ACLs) auth.Authorizer { return auth.NewLocal(acls) })
//	}
package authtest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
)

// Case is one authorization request under one policy and its answer.
type Case struct {
	Name    string
	ACLs    string // Mesos's ACL JSON
	Subject string // "" is an unauthenticated request
	Action  auth.Action
	Object  *auth.Object // nil is "any object"
	Want    bool
}

func str(s string) *string { return &s }

func framework(user, principal string, roles ...string) *mesospb.FrameworkInfo {
	fi := &mesospb.FrameworkInfo{User: user, Name: "fw", Principal: &principal}
	if len(roles) == 1 {
		fi.Role = &roles[0]
		return fi
	}
	fi.Roles = roles
	fi.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}
	return fi
}

func reserved(role, principal string) *mesospb.Resource {
	return &mesospb.Resource{Name: "cpus", Reservations: []mesospb.Resource_ReservationInfo{
		{Type: mesospb.Resource_ReservationInfo_DYNAMIC.Enum(), Role: &role, Principal: &principal},
	}}
}

// Cases are the suite's requests.
var Cases = []Case{
	{Name: "no ACLs, permissive by default", ACLs: `{}`, Subject: "a", Action: auth.RegisterFramework,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "r")}, Want: true},
	{Name: "no rule matches, not permissive", ACLs: `{"permissive": false}`, Subject: "a", Action: auth.RunTask,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "r")}, Want: false},
	{Name: "principal allowed its role", Subject: "a", Action: auth.RegisterFramework,
		ACLs:   `{"permissive": false, "register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"values": ["r"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "r")}, Want: true},
	{Name: "principal not allowed another role", Subject: "a", Action: auth.RegisterFramework,
		ACLs:   `{"permissive": false, "register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"values": ["r"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "other")}, Want: false},
	{Name: "a multi-role framework needs every role", Subject: "a", Action: auth.RegisterFramework,
		ACLs:   `{"permissive": false, "register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"values": ["r1"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "r1", "r2")}, Want: false},
	{Name: "a multi-role framework with every role allowed", Subject: "a", Action: auth.RegisterFramework,
		ACLs:   `{"permissive": false, "register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"values": ["r1", "r2"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "r1", "r2")}, Want: true},
	{Name: "NONE objects forbid", Subject: "a", Action: auth.RegisterFramework,
		ACLs:   `{"register_frameworks": [{"principals": {"values": ["a"]}, "roles": {"type": "NONE"}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "r")}, Want: false},
	{Name: "the first matching rule decides", Subject: "a", Action: auth.RunTask,
		ACLs: `{"run_tasks": [{"principals": {"values": ["a"]}, "users": {"values": ["root"]}},
			{"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("root", "a", "r")}, Want: true},
	{Name: "a later NONE rule catches the rest", Subject: "b", Action: auth.RunTask,
		ACLs: `{"run_tasks": [{"principals": {"values": ["a"]}, "users": {"values": ["root"]}},
			{"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("root", "b", "r")}, Want: false},
	{Name: "run_tasks: the task's command user counts before the framework's", Subject: "a", Action: auth.RunTask,
		ACLs: `{"permissive": false, "run_tasks": [{"principals": {"values": ["a"]}, "users": {"values": ["nobody"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("nobody", "a", "r"),
			TaskInfo: &mesospb.TaskInfo{Command: &mesospb.CommandInfo{User: str("root")}}}, Want: false},
	{Name: "run_tasks: the executor's user", Subject: "a", Action: auth.RunTask,
		ACLs: `{"permissive": false, "run_tasks": [{"principals": {"values": ["a"]}, "users": {"values": ["svc"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("root", "a", "r"),
			TaskInfo: &mesospb.TaskInfo{Executor: &mesospb.ExecutorInfo{Command: &mesospb.CommandInfo{User: str("svc")}}}}, Want: true},
	{Name: "an unauthenticated subject is matched only by ANY principals", Subject: "", Action: auth.RunTask,
		ACLs:   `{"permissive": false, "run_tasks": [{"principals": {"values": ["a"]}, "users": {"type": "ANY"}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "", "r")}, Want: false},
	{Name: "an unauthenticated subject allowed by ANY", Subject: "", Action: auth.RunTask,
		ACLs:   `{"permissive": false, "run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "", "r")}, Want: true},
	{Name: "teardown of a framework by its principal", Subject: "ops", Action: auth.TeardownFramework,
		ACLs:   `{"permissive": false, "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"values": ["a"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "a", "r")}, Want: true},
	{Name: "teardown of another principal's framework", Subject: "ops", Action: auth.TeardownFramework,
		ACLs:   `{"permissive": false, "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"values": ["a"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "b", "r")}, Want: false},
	{Name: "reserve in an allowed role", Subject: "a", Action: auth.ReserveResources,
		ACLs:   `{"permissive": false, "reserve_resources": [{"principals": {"values": ["a"]}, "roles": {"values": ["r"]}}]}`,
		Object: &auth.Object{Resource: reserved("r", "a")}, Want: true},
	{Name: "unreserve another principal's reservation", Subject: "a", Action: auth.UnreserveResources,
		ACLs:   `{"permissive": false, "unreserve_resources": [{"principals": {"values": ["a"]}, "reserver_principals": {"values": ["a"]}}]}`,
		Object: &auth.Object{Resource: reserved("r", "b")}, Want: false},
	{Name: "a recursive role ACL covers nested roles", Subject: "a", Action: auth.UpdateQuota,
		ACLs:   `{"permissive": false, "update_quotas": [{"principals": {"values": ["a"]}, "roles": {"values": ["eng/%"]}}]}`,
		Object: &auth.Object{Value: "eng/web"}, Want: true},
	{Name: "a recursive role ACL does not cover its prefix", Subject: "a", Action: auth.UpdateQuota,
		ACLs:   `{"permissive": false, "update_quotas": [{"principals": {"values": ["a"]}, "roles": {"values": ["eng/%"]}}]}`,
		Object: &auth.Object{Value: "eng"}, Want: false},
	{Name: "view_roles of a role not listed", Subject: "a", Action: auth.ViewRole,
		ACLs:   `{"permissive": false, "view_roles": [{"principals": {"values": ["a"]}, "roles": {"values": ["r"]}}]}`,
		Object: &auth.Object{Value: "s"}, Want: false},
	{Name: "view_frameworks by the framework's user", Subject: "a", Action: auth.ViewFramework,
		ACLs:   `{"permissive": false, "view_frameworks": [{"principals": {"values": ["a"]}, "users": {"values": ["u"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "x", "r")}, Want: true},
	{Name: "view_tasks by the task's user first", Subject: "a", Action: auth.ViewTask,
		ACLs: `{"permissive": false, "view_tasks": [{"principals": {"values": ["a"]}, "users": {"values": ["u"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "x", "r"),
			Task: &mesospb.Task{User: str("other")}}, Want: false},
	{Name: "access_sandboxes falls back to the framework's user", Subject: "a", Action: auth.AccessSandbox,
		ACLs:   `{"permissive": false, "access_sandboxes": [{"principals": {"values": ["a"]}, "users": {"values": ["u"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "x", "r"), ExecutorInfo: &mesospb.ExecutorInfo{}}, Want: true},
	{Name: "register_agents with ANY agents", Subject: "agent", Action: auth.RegisterAgent,
		ACLs: `{"permissive": false, "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}]}`, Want: true},
	{Name: "register_agents by another principal", Subject: "intruder", Action: auth.RegisterAgent,
		ACLs: `{"permissive": false, "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}]}`, Want: false},
	{Name: "get_endpoints with a path", Subject: "a", Action: auth.GetEndpoint,
		ACLs:   `{"permissive": false, "get_endpoints": [{"principals": {"values": ["a"]}, "paths": {"values": ["/metrics/snapshot"]}}]}`,
		Object: &auth.Object{Value: "/metrics/snapshot"}, Want: true},
	{Name: "a nested session needs the parent's and the command's user", Subject: "a", Action: auth.LaunchNestedContainerSession,
		ACLs: `{"permissive": false,
			"launch_nested_container_sessions_under_parent_with_user": [{"principals": {"values": ["a"]}, "users": {"values": ["u"]}}],
			"launch_nested_container_sessions_as_user": [{"principals": {"values": ["a"]}, "users": {"values": ["u"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "x", "r"), CommandInfo: &mesospb.CommandInfo{User: str("root")}}, Want: false},
	{Name: "a nested session as the parent's user", Subject: "a", Action: auth.LaunchNestedContainerSession,
		ACLs: `{"permissive": false,
			"launch_nested_container_sessions_under_parent_with_user": [{"principals": {"values": ["a"]}, "users": {"values": ["u"]}}],
			"launch_nested_container_sessions_as_user": [{"principals": {"values": ["a"]}, "users": {"values": ["u"]}}]}`,
		Object: &auth.Object{FrameworkInfo: framework("u", "x", "r"), CommandInfo: &mesospb.CommandInfo{User: str("u")}}, Want: true},
	{Name: "any object, no rule about every role: permissive decides", Subject: "a", Action: auth.GetQuota,
		ACLs: `{"permissive": true, "get_quotas": [{"principals": {"values": ["a"]}, "roles": {"values": ["r"]}}]}`, Want: true},
}

// Run runs Cases against the authorizers newAuthorizer makes.
func Run(t *testing.T, newAuthorizer func(t *testing.T, acls *auth.ACLs) auth.Authorizer) {
	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) {
			acls, err := auth.ParseACLs([]byte(c.ACLs))
			require.NoError(t, err)
			az := newAuthorizer(t, acls)
			got, err := auth.Authorized(context.Background(), az, auth.Subject{Principal: c.Subject}, c.Action, c.Object)
			require.NoError(t, err)
			assert.Equal(t, c.Want, got)
		})
	}
}

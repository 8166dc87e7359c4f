package master

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// These tests feed Mesos's model writers a state built by hand, for the
// cases a running master reaches only slowly: completed frameworks,
// MULTI_ROLE frameworks, executors, unreachable tasks, revocable
// resources, tasks without a status.

func decode(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	return out
}

// handState is a cluster of one agent, a MULTI_ROLE framework with a
// custom executor, a task without a status and an unreachable task, and a
// completed framework with a completed task.
func handState() *mesosView {
	ts := func(x float64) []mesospb.TaskStatus {
		return []mesospb.TaskStatus{{State: mesospb.TASK_RUNNING.Enum(), Timestamp: &x}}
	}
	alloc := func(res, role string) []mesospb.Resource {
		return resources.MustParse(res).Allocate(role).ToProto()
	}
	multi := mesospb.FrameworkInfo{
		User: "u", Name: "multi", ID: &mesospb.FrameworkID{Value: "fw-multi"}, Roles: []string{"a", "b"},
		Capabilities:    []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}},
		FailoverTimeout: ptr(60.0), Checkpoint: ptr(true), Principal: ptr("p"),
	}
	done := mesospb.FrameworkInfo{User: "u", Name: "done", ID: &mesospb.FrameworkID{Value: "fw-done"}, Role: ptr("c")}
	task := func(id, fw, state string, statuses []mesospb.TaskStatus, rs []mesospb.Resource) mesospb.Task {
		return mesospb.Task{
			Name: id, TaskID: mesospb.TaskID{Value: id}, FrameworkID: mesospb.FrameworkID{Value: fw},
			AgentID: mesospb.AgentID{Value: "agent-1"}, State: mesospb.TaskState(mesospb.TaskState_value[state]).Enum(),
			Resources: rs, Statuses: statuses, ExecutorID: &mesospb.ExecutorID{Value: "exec"},
		}
	}
	return &mesosView{
		elected: true,
		master:  &masterpb.Response_GetMaster{MasterInfo: &mesospb.MasterInfo{ID: "m", Pid: ptr("master@10.0.0.1:5050"), Hostname: ptr("h"), Port: ptr(uint32(5050))}, StartTime: ptr(100.0)},
		state: &masterpb.Response_GetState{
			GetAgents: &masterpb.Response_GetAgents{Agents: []masterpb.Response_GetAgents_Agent{{
				AgentInfo:      mesospb.AgentInfo{Hostname: "a1", ID: &mesospb.AgentID{Value: "agent-1"}, Port: ptr(int32(5051))},
				Active:         true,
				Pid:            ptr("slave(1)@10.0.0.2:5051"),
				TotalResources: resources.MustParse("cpus:8;mem:1024").ToProto(),
			}}},
			GetFrameworks: &masterpb.Response_GetFrameworks{
				Frameworks:          []masterpb.Response_GetFrameworks_Framework{{FrameworkInfo: multi, Active: true, Connected: true}},
				CompletedFrameworks: []masterpb.Response_GetFrameworks_Framework{{FrameworkInfo: done, UnregisteredTime: &mesospb.TimeInfo{Nanoseconds: 5e9}}},
			},
			GetTasks: &masterpb.Response_GetTasks{
				Tasks: []mesospb.Task{
					task("t-old", "fw-multi", "TASK_RUNNING", ts(10), alloc("cpus:1", "a")),
					task("t-new", "fw-multi", "TASK_RUNNING", ts(20), alloc("cpus:2", "b")),
					task("t-none", "fw-multi", "TASK_STAGING", nil, alloc("cpus:0.5", "a")),
				},
				UnreachableTasks: []mesospb.Task{task("t-lost", "fw-multi", "TASK_UNREACHABLE", ts(5), alloc("cpus:1", "a"))},
				CompletedTasks:   []mesospb.Task{task("t-done", "fw-done", "TASK_FINISHED", ts(1), resources.MustParse("cpus:1").ToProto())},
			},
			GetExecutors: &masterpb.Response_GetExecutors{Executors: []masterpb.Response_GetExecutors_Executor{{
				ExecutorInfo: mesospb.ExecutorInfo{
					ExecutorID: mesospb.ExecutorID{Value: "exec"}, FrameworkID: &mesospb.FrameworkID{Value: "fw-multi"},
					Resources: alloc("cpus:0.1;mem:32", "a"), Type: mesospb.ExecutorInfo_CUSTOM.Enum(),
					Command: &mesospb.CommandInfo{Value: ptr("./exec"), URIs: []mesospb.CommandInfo_URI{{Value: "http://x/exec", Executable: ptr(true)}}},
				},
				AgentID: mesospb.AgentID{Value: "agent-1"},
			}}},
		},
	}
}

func TestEndpointModelCompletedAndMultiRole(t *testing.T) {
	x := newStateIndex(handState())
	st := decode(t, x.state())
	assert.Equal(t, "master@10.0.0.1:5050", st["leader"])
	assert.Equal(t, 100.0, st["start_time"])

	fws := st["frameworks"].([]any)
	require.Len(t, fws, 1)
	fw := fws[0].(map[string]any)
	assert.Equal(t, []any{"a", "b"}, fw["roles"], "roles, not role, for a MULTI_ROLE framework")
	assert.NotContains(t, fw, "role")
	assert.Equal(t, []any{"MULTI_ROLE"}, fw["capabilities"])
	assert.Equal(t, 60.0, fw["failover_timeout"])
	assert.Equal(t, true, fw["checkpoint"])
	assert.Equal(t, "p", fw["principal"])
	assert.Equal(t, 3.6, fw["used_resources"].(map[string]any)["cpus"], "running and staging tasks and the executor; not the unreachable task")
	assert.Len(t, fw["tasks"], 3)
	lost := fw["unreachable_tasks"].([]any)[0].(map[string]any)
	assert.Equal(t, "TASK_UNREACHABLE", lost["state"])
	assert.Equal(t, "a", lost["role"], "a task's role is its resources' allocation role")
	exec := fw["executors"].([]any)[0].(map[string]any)
	assert.Equal(t, map[string]any{
		"executor_id": "exec", "name": "", "framework_id": "fw-multi", "slave_id": "agent-1", "role": "a", "type": "CUSTOM",
		"command":   map[string]any{"value": "./exec", "argv": []any{}, "uris": []any{map[string]any{"value": "http://x/exec", "executable": true}}},
		"resources": map[string]any{"cpus": 0.1, "gpus": 0.0, "mem": 32.0, "disk": 0.0},
	}, exec)

	done := st["completed_frameworks"].([]any)[0].(map[string]any)
	assert.Equal(t, "fw-done", done["id"])
	assert.Equal(t, "c", done["role"])
	assert.Equal(t, 5.0, done["unregistered_time"])
	assert.Equal(t, false, done["active"])
	ct := done["completed_tasks"].([]any)[0].(map[string]any)
	assert.Equal(t, "TASK_FINISHED", ct["state"])
	assert.Equal(t, "c", ct["role"], "without an allocation role, the framework's role")

	slave := st["slaves"].([]any)[0].(map[string]any)
	assert.Equal(t, "slave(1)@10.0.0.2:5051", slave["pid"])
	assert.Equal(t, 3.6, slave["used_resources"].(map[string]any)["cpus"])

	summary := decode(t, x.stateSummary())
	sf := summary["frameworks"].([]any)[0].(map[string]any)
	assert.Equal(t, 2.0, sf["TASK_RUNNING"])
	assert.Equal(t, 1.0, sf["TASK_STAGING"])
	assert.Equal(t, 1.0, sf["TASK_UNREACHABLE"])
	assert.Len(t, summary["frameworks"], 1, "registered frameworks only")

	v := handState()
	v.state.GetAgents.Agents[0].Pid, v.agentIPs = nil, map[string]string{"agent-1": "10.0.0.9"}
	slave = decode(t, newStateIndex(v).state())["slaves"].([]any)[0].(map[string]any)
	assert.Equal(t, "slave(1)@10.0.0.9:5051", slave["pid"], "the agent's IP address, for mesos-dns")

	frameworks := decode(t, x.frameworksDoc(ptr("fw-done")))
	assert.Empty(t, frameworks["frameworks"])
	assert.Len(t, frameworks["completed_frameworks"], 1)
}

func TestEndpointTasksOrderAsMesos(t *testing.T) {
	x := newStateIndex(handState())
	ids := func(q tasksQuery) []string {
		var out []string
		for _, tj := range x.tasksDoc(q).Tasks {
			out = append(out, tj.ID)
		}
		return out
	}
	all := tasksQuery{limit: defaultTaskLimit}
	assert.Equal(t, []string{"t-new", "t-old", "t-lost", "t-done", "t-none"}, ids(all),
		"descending by first status time, tasks without a status last; completed frameworks' tasks too")
	all.ascending = true
	assert.Equal(t, []string{"t-none", "t-done", "t-lost", "t-old", "t-new"}, ids(all), "ascending: without a status first")
	assert.Equal(t, []string{"t-new", "t-old", "t-lost", "t-done", "t-none"}, ids(tasksQuery{limit: -1}), "a negative limit is no limit")
	assert.Empty(t, ids(tasksQuery{limit: 10, offset: -1}))
}

func TestEndpointRolesBreakdown(t *testing.T) {
	v := handState()
	v.state.GetFrameworks.Frameworks[0].Offers = []mesospb.Offer{{
		ID: mesospb.OfferID{Value: "o"}, FrameworkID: mesospb.FrameworkID{Value: "fw-multi"}, AgentID: mesospb.AgentID{Value: "agent-1"},
		AllocationInfo: &mesospb.Resource_AllocationInfo{Role: ptr("b")}, Resources: resources.MustParse("mem:100").Allocate("b").ToProto(),
	}}
	v.state.GetAgents.Agents[0].TotalResources = resources.MustParse("cpus:8;mem:1024;disk(a):10").ToProto()
	v.roles = rolesView{Roles: []roleView{{Name: "a", Weight: 2}, {Name: "b", Weight: 1}}}
	roles := decode(t, newStateIndex(v).roles())["roles"].([]any)
	a, b := roles[0].(map[string]any), roles[1].(map[string]any)
	assert.Equal(t, map[string]any{"cpus": 1.6, "mem": 32.0}, a["allocated"], "tasks and the executor of role a")
	assert.Equal(t, map[string]any{"disk": 10.0}, a["reserved"])
	assert.Equal(t, []any{}, a["frameworks"])
	assert.Equal(t, map[string]any{"mem": 100.0}, b["offered"])
	assert.Equal(t, map[string]any{"cpus": 2.0, "mem": 100.0}, b["resources"], "allocated and offered")
	assert.Equal(t, 2.0, a["weight"])
}

func TestEndpointMetricsCounts(t *testing.T) {
	v := handState()
	v.metrics.agentsConnected = 1
	m := v.metricsMap()
	assert.Equal(t, 2.0, m["master/tasks_running"])
	assert.Equal(t, 1.0, m["master/tasks_staging"])
	assert.Equal(t, 1.0, m["master/tasks_unreachable"])
	assert.Equal(t, 3.6, m["master/cpus_used"])
	assert.Equal(t, 8.0, m["master/cpus_total"])
	assert.InDelta(t, 0.45, m["master/cpus_percent"], 1e-9)
	assert.NotContains(t, m, "allocator/mesos/allocation_run_ms", "no allocation yet: no last value")

	v.drf = true
	v.allocatorRoles = []allocator.RoleInfo{
		{Name: "dev", Share: 0.25, Frameworks: []string{"f"}, Allocated: map[string]resources.Scalar{"mem": resources.ScalarOf(100)},
			Quota: allocator.Quota{Guarantee: allocator.Quantities{"mem": resources.ScalarOf(512)}, Limit: allocator.Quantities{"cpus": resources.ScalarOf(1)}}},
		{Name: "idle", Weight: 3},
	}
	m = v.metricsMap()
	assert.Equal(t, 0.25, m["allocator/mesos/roles/dev/shares/dominant"])
	assert.NotContains(t, m, "allocator/mesos/roles/idle/shares/dominant", "not a client of the sorter")
	assert.Equal(t, 512.0, m["allocator/mesos/quota/roles/dev/resources/mem/guarantee"])
	assert.Equal(t, 100.0, m["allocator/mesos/quota/roles/dev/resources/mem/offered_or_allocated"])
	assert.Equal(t, 1.0, m["allocator/mesos/quota/roles/dev/resources/cpus/limit"])
	assert.Equal(t, 0.0, m["allocator/mesos/quota/roles/dev/resources/cpus/offered_or_allocated"])
	assert.NotContains(t, m, "allocator/mesos/quota/roles/idle/resources/cpus/limit")
}

func TestEndpointEmptyViewDoesNotPanic(t *testing.T) {
	v := &mesosView{}
	x := newStateIndex(v)
	st := decode(t, x.state())
	assert.Equal(t, []any{}, st["slaves"])
	assert.NotContains(t, st, "elected_time")
	decode(t, x.stateSummary())
	decode(t, x.slavesDoc(nil))
	decode(t, x.tasksDoc(tasksQuery{limit: 1}))
	assert.Equal(t, 0.0, v.metricsMap()["master/tasks_running"])
}

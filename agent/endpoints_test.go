package agent_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	apiv1 "github.com/apronhq/apron/api/v1"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Mesos's agent endpoints, checked against the field names and JSON types
// of Mesos's model (src/slave/http.cpp, src/common/http.cpp).

// getJSON GETs path and decodes its JSON.
func getJSON(t *testing.T, h *harness, path string, into any) {
	t.Helper()
	code, body := get(t, h, path)
	require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	require.NoError(t, json.Unmarshal([]byte(body), into), "%s: %s", path, body)
}

// obj and arr take a JSON value apart, failing on the wrong type.
func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "want an object, got %T %v", v, v)
	return m
}

func arr(t *testing.T, v any) []any {
	t.Helper()
	a, ok := v.([]any)
	require.True(t, ok, "want an array, got %T %v", v, v)
	return a
}

// runningTask starts command task id with resources and waits until it
// runs; it returns the executor run's container ID.
func runningTask(t *testing.T, h *harness, id string) string {
	t.Helper()
	task := commandTask(id, "sleep 1000")
	task.Resources = []mesospb.Resource{
		{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
		{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 32}},
		{Name: "ports", Type: mesospb.Value_RANGES, Ranges: &mesospb.Value_Ranges{Range: []mesospb.Value_Range{{Begin: 31000, End: 31001}}}},
	}
	task.Labels = &mesospb.Labels{Labels: []mesospb.Label{{Key: "k", Value: ptr("v")}}}
	h.fm.push(runTask(task))
	h.fm.waitUpdate(t, id, mesospb.TASK_RUNNING)
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && len(s.Frameworks[0].Executors) == 1 &&
			s.Frameworks[0].Executors[0].Tasks[0].GetState() == mesospb.TASK_RUNNING
	}, waitFor, tick)
	return h.state().Frameworks[0].Executors[0].ContainerID
}

func TestEndpointState(t *testing.T) {
	h := newHarness(t, withAttributes("rack:r1;level:3"))
	h.waitRegistered()
	run := runningTask(t, h, "t1")

	var st map[string]any
	getJSON(t, h, "/state", &st)
	assert.Equal(t, apiv1.MesosVersion, st["version"])
	assert.IsType(t, float64(0), st["start_time"])
	assert.Equal(t, "agent-1", st["id"])
	assert.True(t, strings.HasPrefix(st["pid"].(string), "slave(1)@"), st["pid"])
	assert.Equal(t, "host-1", st["hostname"])
	assert.Equal(t, []any{"MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"}, st["capabilities"])
	assert.Equal(t, map[string]any{"cpus": 2.0, "gpus": 0.0, "mem": 1024.0, "disk": 1024.0, "ports": "[31000-31009]"}, st["resources"])
	assert.Equal(t, st["resources"], st["unreserved_resources"])
	assert.Equal(t, map[string]any{}, st["reserved_resources"])
	full := arr(t, st["unreserved_resources_full"])
	require.Len(t, full, 4)
	assert.Contains(t, obj(t, full[0]), "name") // protobuf JSON
	alloc := obj(t, st["unreserved_resources_allocated"])
	assert.Equal(t, 0.5, alloc["cpus"])
	assert.Equal(t, "[31000-31001]", alloc["ports"])
	assert.Equal(t, []any{}, st["resource_providers"])
	assert.Equal(t, map[string]any{"rack": "r1", "level": 3.0}, st["attributes"])
	assert.NotContains(t, st, "master_hostname") // the fake master sends no MasterInfo
	assert.Equal(t, h.dir, obj(t, st["flags"])["work_dir"])
	assert.Equal(t, []any{}, st["completed_frameworks"])

	fws := arr(t, st["frameworks"])
	require.Len(t, fws, 1)
	fw := obj(t, fws[0])
	assert.Equal(t, "fw-1", fw["id"])
	assert.Equal(t, "test", fw["name"])
	assert.Equal(t, "*", fw["role"])
	assert.NotContains(t, fw, "roles")
	assert.Equal(t, 0.0, fw["failover_timeout"])
	assert.Equal(t, true, fw["checkpoint"]) // the harness framework checkpoints
	assert.Equal(t, []any{}, fw["completed_executors"])
	execs := arr(t, fw["executors"])
	require.Len(t, execs, 1)
	ex := obj(t, execs[0])
	assert.Equal(t, "t1", ex["id"])
	assert.Contains(t, ex["name"], "Command Executor (Task: t1)")
	assert.Equal(t, "t1", ex["source"]) // Mesos's command executor's
	assert.Equal(t, run, ex["container"])
	assert.Contains(t, ex["directory"], "/executors/t1/runs/"+run)
	assert.Equal(t, 0.5, obj(t, ex["resources"])["cpus"])
	assert.Equal(t, []any{}, ex["queued_tasks"])
	assert.Equal(t, []any{}, ex["completed_tasks"])
	tasks := arr(t, ex["tasks"])
	require.Len(t, tasks, 1)
	task := obj(t, tasks[0])
	assert.Equal(t, "t1", task["id"])
	assert.Equal(t, "task t1", task["name"])
	assert.Equal(t, "fw-1", task["framework_id"])
	assert.Equal(t, "", task["executor_id"]) // a command task names no executor
	assert.Equal(t, "agent-1", task["slave_id"])
	assert.Equal(t, "TASK_RUNNING", task["state"])
	assert.Equal(t, "*", task["role"])
	assert.Equal(t, map[string]any{"cpus": 0.5, "gpus": 0.0, "mem": 32.0, "disk": 0.0, "ports": "[31000-31001]"}, task["resources"])
	assert.Equal(t, []any{map[string]any{"key": "k", "value": "v"}}, task["labels"])
	statuses := arr(t, task["statuses"])
	require.NotEmpty(t, statuses)
	last := obj(t, statuses[len(statuses)-1])
	assert.Equal(t, "TASK_RUNNING", last["state"])
	assert.IsType(t, float64(0), last["timestamp"])

	// The same document under the agent's process name and with .json;
	// jsonp wraps it.
	for _, path := range []string{"/slave(1)/state", "/state.json", "/slave(1)/state.json"} {
		var again map[string]any
		getJSON(t, h, path, &again)
		assert.Equal(t, "agent-1", again["id"], path)
	}
	// Doubles are written as Mesos's rapidjson writes them.
	_, raw := get(t, h, "/state")
	assert.Contains(t, raw, `"cpus":2.0`)
	assert.Contains(t, raw, `"level":3.0`)
	code, body := get(t, h, "/state?jsonp=cb")
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, strings.HasPrefix(body, "cb({") && strings.HasSuffix(body, "})"), body)
	code, _ = get(t, h, "/state?jsonp=alert(1)")
	assert.Equal(t, http.StatusBadRequest, code)
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/state", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	// Once killed and acknowledged, the task is a completed task of its
	// framework's (completed) executor.
	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	require.Eventually(t, func() bool {
		var st map[string]any
		getJSON(t, h, "/state", &st)
		return completedTask(t, st, "t1") != nil
	}, waitFor, tick)
	var after map[string]any
	getJSON(t, h, "/state", &after)
	assert.Equal(t, "TASK_KILLED", completedTask(t, after, "t1")["state"])
}

// completedTask finds a task among the completed tasks of every executor
// of every framework, nil when none.
func completedTask(t *testing.T, st map[string]any, id string) map[string]any {
	for _, list := range []string{"frameworks", "completed_frameworks"} {
		for _, fw := range arr(t, st[list]) {
			for _, execs := range []string{"executors", "completed_executors"} {
				for _, ex := range arr(t, obj(t, fw)[execs]) {
					for _, task := range arr(t, obj(t, ex)["completed_tasks"]) {
						if obj(t, task)["id"] == id {
							return obj(t, task)
						}
					}
				}
			}
		}
	}
	return nil
}

func withAttributes(attrs string) func(*agent.Config) {
	return func(c *agent.Config) { c.Attributes = attrs }
}

func TestEndpointFlagsAndVersion(t *testing.T) {
	h := newHarness(t)
	var f map[string]any
	getJSON(t, h, "/flags", &f)
	assert.Equal(t, h.dir, obj(t, f["flags"])["work_dir"])
	getJSON(t, h, "/slave(1)/flags", &f)
	assert.Equal(t, "1mins", obj(t, f["flags"])["executor_registration_timeout"])
	var v map[string]any
	getJSON(t, h, "/version", &v)
	assert.Equal(t, apiv1.MesosVersion, v["version"])
}

func TestEndpointMetricsSnapshot(t *testing.T) {
	h := newHarness(t, func(c *agent.Config) {
		c.DiskUsage = func(string) (float64, error) { return 0.4, nil }
	})
	h.waitRegistered()
	runningTask(t, h, "t1")

	var m map[string]float64
	getJSON(t, h, "/metrics/snapshot", &m)
	for name, want := range map[string]float64{
		"slave/registered":             1,
		"slave/frameworks_active":      1,
		"slave/tasks_running":          1,
		"slave/tasks_staging":          0,
		"slave/executors_running":      1,
		"slave/executors_terminated":   0,
		"slave/cpus_total":             2,
		"slave/cpus_used":              0.5,
		"slave/cpus_percent":           0.25,
		"slave/mem_used":               32,
		"slave/gpus_total":             0,
		"slave/gpus_percent":           0,
		"slave/cpus_revocable_total":   0,
		"slave/valid_status_updates":   m["slave/valid_status_updates"],
		"gc/path_removals_pending":     0,
		"slave/executors_preempted":    0,
		"slave/disk_revocable_percent": 0,
		// Mesos's default gc_delay of a week × (1 − 0.1 headroom − 0.4 used).
		"slave/executor_directory_max_allowed_age_secs": 7 * 24 * 3600 * 0.5,
	} {
		assert.Contains(t, m, name)
		assert.Equal(t, want, m[name], name)
	}
	assert.Greater(t, m["slave/uptime_secs"], -1.0)
	_, raw := get(t, h, "/metrics/snapshot")
	assert.Contains(t, raw, `"slave/registered":1.0`)

	// executors_terminated counts the runs that ended.
	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	require.Eventually(t, func() bool {
		var m map[string]float64
		getJSON(t, h, "/metrics/snapshot", &m)
		return m["slave/executors_terminated"] == 1 && m["slave/tasks_killed"] == 1 && m["slave/cpus_used"] == 0
	}, waitFor, tick)
}

func TestEndpointContainers(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")

	for _, path := range []string{"/containers", "/slave(1)/containers", "/containers?framework_id=fw-1",
		"/containers?framework_id=fw-1&executor_id=t1", "/containers?container_id=" + run} {
		var cs []any
		getJSON(t, h, path, &cs)
		require.Len(t, cs, 1, path)
		c := obj(t, cs[0])
		assert.Equal(t, "fw-1", c["framework_id"], path)
		assert.Equal(t, "t1", c["executor_id"])
		assert.Contains(t, c["executor_name"], "Command Executor")
		assert.Equal(t, "t1", c["source"])
		assert.Equal(t, run, c["container_id"]) // a string, not a ContainerID
		assert.Equal(t, map[string]any{"value": run}, obj(t, c["status"])["container_id"])
		stats := obj(t, c["statistics"])
		assert.IsType(t, float64(0), stats["timestamp"])
		assert.IsType(t, float64(0), stats["mem_rss_bytes"]) // a number, as Mesos writes uint64
		assert.IsType(t, float64(0), stats["cpus_user_time_secs"])
	}
	for _, path := range []string{"/containers?framework_id=fw-2", "/containers?container_id=other"} {
		var cs []any
		getJSON(t, h, path, &cs)
		assert.Empty(t, cs, path)
	}
	for _, path := range []string{"/containers?executor_id=t1", "/containers?container_id=x&framework_id=fw-1"} {
		code, body := get(t, h, path)
		assert.Equal(t, http.StatusBadRequest, code, path)
		assert.Contains(t, body, "Supported query parameters")
	}

	for _, path := range []string{"/monitor/statistics", "/monitor/statistics.json", "/slave(1)/monitor/statistics"} {
		var ss []any
		getJSON(t, h, path, &ss)
		require.Len(t, ss, 1, path)
		s := obj(t, ss[0])
		assert.Equal(t, "fw-1", s["framework_id"])
		assert.Equal(t, "t1", s["executor_id"])
		assert.Equal(t, "t1", s["source"])
		assert.NotContains(t, s, "container_id")
		assert.IsType(t, float64(0), obj(t, s["statistics"])["processes"])
	}
}

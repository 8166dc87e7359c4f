package master_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// These tests read Mesos's endpoints as a tool would: into map[string]any,
// checking Mesos's field names, nesting and JSON types
// (src/master/readonly_handler.cpp, src/common/http.cpp), not Apron's
// types.

// endpointAgent registers an agent in process at agent-1.example:5052
// with attributes, answers pings, and reports each task it is asked to run
// TASK_RUNNING, stamped 1000 + the number ending its ID (so tests know the
// order), with a container status as a Mesos agent adds. report sends a
// status update of the test's.
func endpointAgent(t *testing.T, m *master.Master, res string) (agentID string, report func(frameworkID, taskID string, state mesospb.TaskState)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rs, err := resources.Parse(res)
	require.NoError(t, err)
	info := mesospb.AgentInfo{
		Hostname:  "agent-1.example",
		Port:      ptr(int32(5052)),
		Resources: rs.ToProto(),
		Attributes: []mesospb.Attribute{
			{Name: "rack", Type: mesospb.Value_TEXT, Text: &mesospb.Value_Text{Value: "r1"}},
			{Name: "weight", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 2}},
		},
	}
	stream, events, err := m.ConnectAgent(ctx, &internalpb.Call{
		Type:     internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: info, Version: ptr("1.11.0")},
	})
	require.NoError(t, err)
	ev := <-events
	require.Equal(t, internalpb.Event_REGISTERED, ev.GetType())
	agentID = ev.Registered.AgentID.Value
	call := func(c *internalpb.Call) {
		c.AgentID = &mesospb.AgentID{Value: agentID}
		_ = m.AgentCall(ctx, stream, c)
	}
	go func() {
		for ev := range events {
			switch ev.GetType() {
			case internalpb.Event_PING:
				call(&internalpb.Call{Type: internalpb.Call_PONG.Enum()})
			case internalpb.Event_RUN_TASK:
				id := ev.RunTask.Task.TaskID.Value
				n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
				call(&internalpb.Call{
					Type: internalpb.Call_STATUS_UPDATE.Enum(),
					StatusUpdate: &internalpb.Call_StatusUpdate{
						FrameworkID: *ev.RunTask.Framework.ID,
						Status: mesospb.TaskStatus{
							TaskID: ev.RunTask.Task.TaskID, State: mesospb.TASK_RUNNING.Enum(),
							Source:    mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(),
							UUID:      []byte("uuid-" + id),
							Timestamp: ptr(1000 + float64(n)),
							ContainerStatus: &mesospb.ContainerStatus{
								ContainerID:  &mesospb.ContainerID{Value: "ctr-" + id},
								NetworkInfos: []mesospb.NetworkInfo{{IPAddresses: []mesospb.NetworkInfo_IPAddress{{IPAddress: ptr("10.1.2.3")}}}},
							},
						},
					},
				})
			}
		}
	}()
	return agentID, func(frameworkID, taskID string, state mesospb.TaskState) {
		call(&internalpb.Call{
			Type: internalpb.Call_STATUS_UPDATE.Enum(),
			StatusUpdate: &internalpb.Call_StatusUpdate{
				FrameworkID: mesospb.FrameworkID{Value: frameworkID},
				Status: mesospb.TaskStatus{
					TaskID: mesospb.TaskID{Value: taskID}, State: state.Enum(), Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(),
					UUID: []byte("uuid-" + taskID + state.String()), Timestamp: ptr(2000.0),
				},
			},
		})
	}
}

// endpointTask is a command task using res, with a label.
func endpointTask(id string, offer mesospb.Offer, res string) mesospb.TaskInfo {
	task := commandTask(id, offer, res)
	task.Labels = &mesospb.Labels{Labels: []mesospb.Label{{Key: "k", Value: ptr("v")}}}
	return task
}

// launchAndRefuse accepts offers with tasks and refuses what is left for
// an hour, so that no other offer comes while the test reads the state.
func (h *httpMaster) launchAndRefuse(streamID, frameworkID string, offers []mesospb.Offer, tasks ...mesospb.TaskInfo) {
	h.t.Helper()
	call := launchCall(offerIDs(offers...), tasks...)
	call.Accept.Filters = &mesospb.Filters{RefuseSeconds: ptr(3600.0)}
	call.FrameworkID = &mesospb.FrameworkID{Value: frameworkID}
	resp := h.postCall("/api/v1/scheduler", codec.JSON, streamID, call)
	require.Equal(h.t, http.StatusAccepted, resp.StatusCode, body(h.t, resp))
}

// getJSON GETs path and decodes Mesos's JSON answer.
func (h *httpMaster) getJSON(path string) (map[string]any, string) {
	h.t.Helper()
	resp, text := h.get(path)
	require.Equal(h.t, http.StatusOK, resp.StatusCode, "%s: %s", path, text)
	require.Equal(h.t, "application/json", resp.Header.Get("Content-Type"), path)
	var doc map[string]any
	require.NoError(h.t, json.Unmarshal([]byte(text), &doc), text)
	return doc, text
}

// dig walks a decoded JSON document by object keys and array indexes.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			obj, ok := v.(map[string]any)
			require.True(t, ok, "at %q: not an object: %v", k, v)
			v, ok = obj[k]
			require.True(t, ok, "no field %q in %v", k, obj)
		case int:
			arr, ok := v.([]any)
			require.True(t, ok, "at [%d]: not an array: %v", k, v)
			require.Greater(t, len(arr), k, "at [%d]: %v", k, arr)
			v = arr[k]
		}
	}
	return v
}

func obj(t *testing.T, v any, path ...any) map[string]any {
	t.Helper()
	o, ok := dig(t, v, path...).(map[string]any)
	require.True(t, ok, "%v is not an object", path)
	return o
}

func arr(t *testing.T, v any, path ...any) []any {
	t.Helper()
	a, ok := dig(t, v, path...).([]any)
	require.True(t, ok, "%v is not an array", path)
	return a
}

// assertResources checks a resources model: Mesos's scalars are numbers,
// always with cpus, gpus, mem and disk; ranges are text.
func assertResources(t *testing.T, want map[string]any, got any) {
	t.Helper()
	o, ok := got.(map[string]any)
	require.True(t, ok, "resources are an object: %v", got)
	for _, name := range []string{"cpus", "gpus", "mem", "disk"} {
		assert.IsType(t, float64(0), o[name], "%s in %v", name, o)
	}
	for k, v := range want {
		assert.Equal(t, v, o[k], "%s in %v", k, o)
	}
}

func TestEndpointStateFrameworksSlaves(t *testing.T) {
	h := startHTTPMaster(t, master.Config{Hostname: "master.example"})
	agentID, _ := endpointAgent(t, h.m, "cpus:4;mem:1024;disk:2048;ports:[31000-32000];cpus(dev):1")
	info := frameworkInfo("web")
	info.Hostname = ptr("sched.example")
	sched, streamID, fwID := h.subscribe(codec.JSON, info)
	offers := sched.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	require.Len(t, offers, 1)

	// An outstanding offer, as /master/frameworks writes it.
	doc, _ := h.getJSON("/master/frameworks")
	require.Len(t, arr(t, doc, "frameworks"), 1)
	assert.Empty(t, arr(t, doc, "completed_frameworks"))
	assert.Empty(t, arr(t, doc, "unregistered_frameworks"))
	offer := obj(t, doc, "frameworks", 0, "offers", 0)
	assert.Equal(t, offers[0].ID.Value, offer["id"])
	assert.Equal(t, fwID, offer["framework_id"])
	assert.Equal(t, agentID, offer["slave_id"], "slave_id, not agent_id")
	assert.Equal(t, map[string]any{"role": "*"}, offer["allocation_info"])
	assertResources(t, map[string]any{"cpus": 4.0, "mem": 1024.0, "disk": 2048.0, "ports": "[31000-32000]"}, offer["resources"])
	assertResources(t, map[string]any{"cpus": 4.0}, dig(t, doc, "frameworks", 0, "offered_resources"))
	assertResources(t, map[string]any{"cpus": 0.0}, dig(t, doc, "frameworks", 0, "used_resources"))

	h.launchAndRefuse(streamID, fwID, offers, endpointTask("web-1", offers[0], "cpus:1;mem:128;ports:[31000-31000]"))
	require.Equal(t, mesospb.TASK_RUNNING, sched.schedulerEvent(schedulerpb.Event_UPDATE).Update.Status.GetState())

	state, text := h.getJSON("/master/state")
	assert.Contains(t, text, `"activated_slaves":1.0`, "doubles keep their .0, as rapidjson writes them")
	assert.Equal(t, master.MesosVersion, state["version"])
	for _, k := range []string{"build_date", "build_user"} {
		assert.IsType(t, "", state[k], k)
	}
	for _, k := range []string{"build_time", "start_time", "elected_time", "activated_slaves", "deactivated_slaves", "unreachable_slaves"} {
		assert.IsType(t, float64(0), state[k], k)
	}
	assert.Positive(t, state["start_time"])
	mi := h.m.Info()
	assert.Equal(t, mi.ID, state["id"])
	assert.Equal(t, mi.GetPid(), state["pid"])
	assert.True(t, strings.HasPrefix(mi.GetPid(), "master@"), mi.GetPid())
	assert.Equal(t, "master.example", state["hostname"])
	assert.Equal(t, mi.GetPid(), state["leader"], "the master that answers leads")
	assert.Equal(t, map[string]any{"id": mi.ID, "pid": mi.GetPid(), "port": 5050.0, "hostname": "master.example"}, state["leader_info"])
	assert.IsType(t, []any{}, state["capabilities"])
	assert.Equal(t, "master.example", dig(t, state, "flags", "hostname"))
	for _, k := range []string{"recovered_slaves", "completed_frameworks", "orphan_tasks", "unregistered_frameworks"} {
		assert.Empty(t, arr(t, state, k), k)
	}

	slave := obj(t, state, "slaves", 0)
	assert.Equal(t, agentID, slave["id"])
	assert.Equal(t, "agent-1.example", slave["hostname"])
	assert.Equal(t, 5052.0, slave["port"])
	assert.Regexp(t, `^slave\(1\)@.+:5052$`, slave["pid"])
	assert.Equal(t, map[string]any{"rack": "r1", "weight": 2.0}, slave["attributes"])
	assert.IsType(t, float64(0), slave["registered_time"])
	assertResources(t, map[string]any{"cpus": 5.0, "mem": 1024.0, "gpus": 0.0, "ports": "[31000-32000]"}, slave["resources"])
	assertResources(t, map[string]any{"cpus": 1.0, "mem": 128.0, "ports": "[31000-31000]"}, slave["used_resources"])
	assertResources(t, map[string]any{"cpus": 0.0}, slave["offered_resources"])
	assertResources(t, map[string]any{"cpus": 1.0, "mem": 0.0}, dig(t, slave, "reserved_resources", "dev"))
	assertResources(t, map[string]any{"cpus": 4.0}, slave["unreserved_resources"])
	assert.Equal(t, true, slave["active"])
	assert.Equal(t, false, slave["deactivated"])
	assert.Equal(t, "1.11.0", slave["version"])
	assert.IsType(t, []any{}, slave["capabilities"])

	fw := obj(t, state, "frameworks", 0)
	assert.Equal(t, fwID, fw["id"])
	assert.Equal(t, "web", fw["name"])
	assert.Equal(t, "root", fw["user"])
	assert.Equal(t, "sched.example", fw["hostname"])
	assert.Equal(t, "", fw["webui_url"])
	assert.Equal(t, "*", fw["role"], "role, not roles, for a framework that is not MULTI_ROLE")
	assert.NotContains(t, fw, "roles")
	assert.NotContains(t, fw, "pid", "no pid for an HTTP framework")
	for k, want := range map[string]any{"active": true, "connected": true, "recovered": false, "checkpoint": false, "failover_timeout": 0.0, "unregistered_time": 0.0} {
		assert.Equal(t, want, fw[k], k)
	}
	assert.Positive(t, fw["registered_time"])
	assert.IsType(t, []any{}, fw["capabilities"])
	assertResources(t, map[string]any{"cpus": 1.0, "mem": 128.0}, fw["used_resources"])
	assertResources(t, map[string]any{"cpus": 0.0}, fw["offered_resources"])
	assertResources(t, map[string]any{"cpus": 1.0}, fw["resources"])
	assert.Empty(t, arr(t, fw, "offers"))
	assert.Empty(t, arr(t, fw, "executors"), "a command task has no executor of its own in the master")
	assert.Empty(t, arr(t, fw, "completed_tasks"))
	assert.Empty(t, arr(t, fw, "unreachable_tasks"))
	assert.Equal(t, map[string]any{}, fw["offer_constraints"])

	task := obj(t, fw, "tasks", 0)
	for k, want := range map[string]any{
		"id": "web-1", "name": "web-1", "framework_id": fwID, "executor_id": "", "slave_id": agentID,
		"state": "TASK_RUNNING", "role": "*",
	} {
		assert.Equal(t, want, task[k], k)
	}
	assertResources(t, map[string]any{"cpus": 1.0, "mem": 128.0, "ports": "[31000-31000]"}, task["resources"])
	assert.Equal(t, []any{map[string]any{"key": "k", "value": "v"}}, task["labels"])
	status := obj(t, task, "statuses", 0)
	assert.Equal(t, "TASK_RUNNING", status["state"])
	assert.Equal(t, 1001.0, status["timestamp"])
	assert.Equal(t, map[string]any{"value": "ctr-web-1"}, dig(t, status, "container_status", "container_id"))
	assert.Equal(t, "10.1.2.3", dig(t, status, "container_status", "network_infos", 0, "ip_addresses", 0, "ip_address"))

	// The same document under the paths Mesos used before 1.7.
	for _, path := range []string{"/master/state.json", "/state.json"} {
		doc, _ := h.getJSON(path)
		assert.Equal(t, state["id"], doc["id"], path)
		assert.Len(t, arr(t, doc, "frameworks"), 1, path)
	}

	// /master/slaves adds the resources in full protobuf form.
	doc, _ = h.getJSON("/master/slaves?slave_id=" + agentID)
	full := obj(t, doc, "slaves", 0)
	assert.Equal(t, agentID, full["id"])
	dev := obj(t, full, "reserved_resources_full", "dev", 0)
	assert.Equal(t, "cpus", dev["name"])
	assert.Equal(t, "dev", dev["role"], "ENDPOINT format: role beside reservations")
	assert.Equal(t, "dev", dig(t, dev, "reservations", 0, "role"))
	assert.NotEmpty(t, arr(t, full, "unreserved_resources_full"))
	assert.NotEmpty(t, arr(t, full, "used_resources_full"))
	assert.IsType(t, []any{}, full["offered_resources_full"])
	assert.Empty(t, arr(t, doc, "recovered_slaves"))
	doc, _ = h.getJSON("/master/slaves?slave_id=nope")
	assert.Empty(t, arr(t, doc, "slaves"))
	doc, _ = h.getJSON("/slaves")
	assert.Len(t, arr(t, doc, "slaves"), 1, "Mesos answers at the root too")

	doc, _ = h.getJSON("/master/frameworks?framework_id=" + fwID)
	assert.Len(t, arr(t, doc, "frameworks"), 1)
	doc, _ = h.getJSON("/master/frameworks?framework_id=nope")
	assert.Empty(t, arr(t, doc, "frameworks"))

	summary, _ := h.getJSON("/master/state-summary")
	assert.Equal(t, "master.example", summary["hostname"])
	s := obj(t, summary, "slaves", 0)
	assert.Equal(t, 1.0, s["TASK_RUNNING"])
	assert.Equal(t, 0.0, s["TASK_FINISHED"])
	assert.Equal(t, []any{fwID}, s["framework_ids"])
	f := obj(t, summary, "frameworks", 0)
	assert.Equal(t, 1.0, f["TASK_RUNNING"])
	assert.Equal(t, []any{agentID}, f["slave_ids"])
	assert.NotContains(t, f, "tasks", "a summary")
	assertResources(t, map[string]any{"cpus": 1.0}, f["used_resources"])

	roles, _ := h.getJSON("/master/roles")
	var star map[string]any
	for _, r := range arr(t, roles, "roles") {
		if r.(map[string]any)["name"] == "*" {
			star = r.(map[string]any)
		}
	}
	require.NotNil(t, star, "%v", roles)
	assert.Equal(t, 1.0, star["weight"])
	assert.Equal(t, map[string]any{"cpus": 1.0, "mem": 128.0, "ports": 1.0}, star["allocated"])
	assert.Equal(t, map[string]any{}, star["offered"])
	assert.Equal(t, star["allocated"], star["resources"])
	assert.Equal(t, []any{fwID}, star["frameworks"])
	assert.Equal(t, "*", dig(t, star, "quota", "role"))
	rootRoles, _ := h.getJSON("/roles")
	assert.Equal(t, roles, rootRoles, "/roles is /master/roles")
}

func TestEndpointTasksPagination(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	_, _ = endpointAgent(t, h.m, "cpus:4;mem:1024")
	sched, streamID, fwID := h.subscribe(codec.JSON, frameworkInfo("batch"))
	offers := sched.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	h.launchAndRefuse(streamID, fwID, offers,
		endpointTask("task-1", offers[0], "cpus:1;mem:32"),
		endpointTask("task-2", offers[0], "cpus:1;mem:32"),
		endpointTask("task-3", offers[0], "cpus:1;mem:32"))
	for range 3 {
		sched.schedulerEvent(schedulerpb.Event_UPDATE)
	}

	ids := func(query string) []string {
		t.Helper()
		doc, _ := h.getJSON("/master/tasks" + query)
		var out []string
		for _, task := range arr(t, doc, "tasks") {
			out = append(out, task.(map[string]any)["id"].(string))
		}
		return out
	}
	assert.Equal(t, []string{"task-3", "task-2", "task-1"}, ids(""), "newest first status first")
	assert.Equal(t, []string{"task-3", "task-2"}, ids("?limit=2"))
	assert.Equal(t, []string{"task-1"}, ids("?limit=2&offset=2"))
	assert.Equal(t, []string{"task-1", "task-2"}, ids("?order=asc&limit=2"))
	assert.Equal(t, []string{"task-2", "task-3"}, ids("?order=asc&offset=1"))
	assert.Empty(t, ids("?offset=3"))
	assert.Equal(t, []string{"task-3", "task-2", "task-1"}, ids("?limit=abc"), "an unreadable limit is ignored")
	assert.Equal(t, []string{"task-2"}, ids("?task_id=task-2"))
	assert.Equal(t, []string{"task-1"}, ids("?framework_id="+fwID+"&task_id=task-1"))
	assert.Empty(t, ids("?framework_id=nope"))
	root, _ := h.getJSON("/tasks")
	assert.Len(t, arr(t, root, "tasks"), 3, "Mesos answers /tasks at the root too")

	doc, _ := h.getJSON("/master/tasks?limit=1")
	task := obj(t, doc, "tasks", 0)
	assert.Equal(t, "TASK_RUNNING", task["state"])
	assert.Equal(t, 1003.0, dig(t, task, "statuses", 0, "timestamp"))
}

func TestEndpointMetricsSnapshot(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	_, report := endpointAgent(t, h.m, "cpus:4;mem:1024;disk:100")
	sched, streamID, fwID := h.subscribe(codec.JSON, frameworkInfo("web"))
	offers := sched.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	// A task the master refuses is counted too (Mesos's tasks_error).
	bad := launchCall(offerIDs(offers...), endpointTask("too-big", offers[0], "cpus:100"))
	bad.FrameworkID = &mesospb.FrameworkID{Value: fwID}
	require.Equal(t, http.StatusAccepted, h.postCall("/api/v1/scheduler", codec.JSON, streamID, bad).StatusCode)
	require.Equal(t, mesospb.TASK_ERROR, sched.schedulerEvent(schedulerpb.Event_UPDATE).Update.Status.GetState())
	offers = sched.schedulerEvent(schedulerpb.Event_OFFERS).Offers.Offers
	h.launchAndRefuse(streamID, fwID, offers, endpointTask("web-1", offers[0], "cpus:1;mem:256"))
	sched.schedulerEvent(schedulerpb.Event_UPDATE)

	m, text := h.getJSON("/metrics/snapshot")
	assert.Contains(t, text, `"master/elected":1.0`)
	for name, want := range map[string]float64{
		"master/elected":                                      1,
		"master/tasks_running":                                1,
		"master/tasks_staging":                                0,
		"master/slaves_active":                                1,
		"master/slaves_inactive":                              0,
		"master/slaves_connected":                             1,
		"master/frameworks_active":                            1,
		"master/frameworks_connected":                         1,
		"master/outstanding_offers":                           0,
		"master/cpus_total":                                   4,
		"master/cpus_used":                                    1,
		"master/cpus_percent":                                 0.25,
		"master/mem_total":                                    1024,
		"master/mem_used":                                     256,
		"master/mem_percent":                                  0.25,
		"master/disk_used":                                    0,
		"master/gpus_total":                                   0,
		"master/gpus_percent":                                 0,
		"master/cpus_revocable_total":                         0,
		"allocator/mesos/resources/cpus/total":                4,
		"allocator/mesos/resources/cpus/offered_or_allocated": 1,
	} {
		assert.Equal(t, want, m[name], name)
	}
	assert.IsType(t, float64(0), m["master/uptime_secs"])
	assert.GreaterOrEqual(t, m["master/uptime_secs"], 0.0)
	assert.Positive(t, m["allocator/mesos/allocation_runs"])
	assert.Equal(t, 0.0, m["master/tasks_finished"])
	assert.Equal(t, 1.0, m["master/tasks_error"])
	assert.NotContains(t, m, "master/messages_launch_tasks", "a metric Apron cannot compute is left out, not zero")
	for name, v := range m {
		assert.IsType(t, float64(0), v, name)
	}

	// A task that finishes is counted once.
	report(fwID, "web-1", mesospb.TASK_FINISHED)
	require.Equal(t, mesospb.TASK_FINISHED, sched.schedulerEvent(schedulerpb.Event_UPDATE).Update.Status.GetState())
	m, _ = h.getJSON("/metrics/snapshot")
	assert.Equal(t, 1.0, m["master/tasks_finished"])
	assert.Equal(t, 0.0, m["master/tasks_running"])
	assert.Equal(t, 0.0, m["master/cpus_used"], "a terminal task holds nothing, acknowledged or not")
	assert.Equal(t, 0.0, m["master/tasks_failed"])
}

func TestEndpointSmallOnes(t *testing.T) {
	h := startHTTPMaster(t, master.Config{Hostname: "master.example", Port: 5055})

	flags, _ := h.getJSON("/flags")
	assert.Equal(t, "master.example", dig(t, flags, "flags", "hostname"))
	assert.Equal(t, "5055", dig(t, flags, "flags", "port"), "flag values are text")
	masterFlags, _ := h.getJSON("/master/flags")
	assert.Equal(t, flags, masterFlags)

	version, _ := h.getJSON("/version")
	assert.Equal(t, master.MesosVersion, version["version"])
	assert.Equal(t, master.Version, version["apron_version"])
	assert.IsType(t, "", version["build_date"])
	assert.IsType(t, float64(0), version["build_time"])
	assert.IsType(t, "", version["build_user"])

	resp, text := h.get("/master/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, text)

	for _, path := range []string{"/master/redirect", "/redirect"} {
		resp, _ = h.get(path)
		assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, path)
		assert.Equal(t, "//master.example:5055", resp.Header.Get("Location"), "a leader redirects to itself, protocol-relative")
	}

	// JSONP, as libprocess's OK(json, jsonp) writes it.
	resp, text = h.get("/master/state-summary?jsonp=angular.callbacks._0")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/javascript", resp.Header.Get("Content-Type"))
	assert.True(t, strings.HasPrefix(text, "angular.callbacks._0({") && strings.HasSuffix(text, "})"), text)
	resp, _ = h.get("/master/state?jsonp=alert(1)//")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "only a function name is echoed")

	// GET and HEAD only.
	req, err := http.NewRequest(http.MethodHead, h.url("/master/state"), nil)
	require.NoError(t, err)
	resp, err = httpapi.NoRedirects.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	r, err := http.Post(h.url("/master/tasks"), "application/json", nil)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)

	// Apron's /state is still GET_STATE's protobuf JSON.
	state, _ := h.getJSON("/state")
	assert.Contains(t, state, "get_agents")
}

func TestEndpointStandby(t *testing.T) {
	h := startHTTPMaster(t, master.Config{Leadership: fakeLeadership{leader: "http://leader.example:5050"}})
	for _, path := range []string{"/master/state", "/state.json", "/master/state-summary", "/master/frameworks", "/master/slaves", "/master/tasks?limit=1", "/master/roles", "/roles"} {
		resp, _ := h.get(path)
		assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, path)
		assert.Equal(t, "//leader.example:5050"+path, resp.Header.Get("Location"), path)
	}
	resp, _ := h.get("/master/redirect")
	assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
	assert.Equal(t, "//leader.example:5050", resp.Header.Get("Location"))

	// What every master answers itself, as Mesos's do.
	resp, _ = h.get("/master/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	m, _ := h.getJSON("/metrics/snapshot")
	assert.Equal(t, 0.0, m["master/elected"])
	h.getJSON("/flags")
	h.getJSON("/version")

	h2 := startHTTPMaster(t, master.Config{Leadership: fakeLeadership{}})
	resp, _ = h2.get("/master/redirect")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "no leader known")
	resp, _ = h2.get("/master/state")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

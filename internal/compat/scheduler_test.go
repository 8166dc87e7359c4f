package compat_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSchedulerAPI checks the scheduler API (/api/v1/scheduler) as Mesos
// documents it: the SUBSCRIBE stream, its events and their shapes, the
// status codes of calls, a command task's life, its executor's
// environment, and what the master keeps after a teardown.
func TestSchedulerAPI(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	f := subscribe(t, c, `{"user":"root","name":"compat-scheduler","checkpoint":true,"failover_timeout":60}`)
	events, _ := f.s.snapshot()
	subscribed := events[0]

	t.Run("SubscribeResponse", func(t *testing.T) {
		// docs/scheduler-http-api.md, SUBSCRIBE: "200 OK", Content-Type
		// of the Accept asked for, Transfer-Encoding: chunked, and
		// Mesos-Stream-Id, "at most 128 bytes"; src/master/http.cpp,
		// Master::Http::scheduler sets Content-Type and Mesos-Stream-Id.
		assert.Equal(t, http.StatusOK, f.s.status)
		assert.Equal(t, "application/json", f.s.header.Get("Content-Type"))
		assert.Equal(t, "chunked", strings.ToLower(f.s.header.Get("Transfer-Encoding")))
		assert.Empty(t, f.s.header.Get("Content-Length"), "a stream has no Content-Length (docs/scheduler-http-api.md, \"Events\")")
		assert.NotEmpty(t, f.streamID, "Mesos-Stream-Id header")
		assert.LessOrEqual(t, len(f.streamID), 128, "Mesos-Stream-Id is at most 128 bytes")
	})

	t.Run("SubscribedFirst", func(t *testing.T) {
		// docs/scheduler-http-api.md: "the event stream begins with either
		// a SUBSCRIBED event or an ERROR event"; src/internal/evolve.cpp,
		// evolve(FrameworkRegisteredMessage) fills framework_id,
		// heartbeat_interval_seconds and master_info.
		require.Equal(t, "SUBSCRIBED", subscribed.typ(), "first event: %s", subscribed.raw)
		assert.NotEmpty(t, str(subscribed.obj, "subscribed", "framework_id", "value"))
		assert.Greater(t, num(subscribed.obj, "subscribed", "heartbeat_interval_seconds"), 0.0,
			"SUBSCRIBED.heartbeat_interval_seconds: %s", subscribed.raw)
		assert.NotNil(t, dig(subscribed.obj, "subscribed", "master_info"), "SUBSCRIBED.master_info")
	})

	t.Run("MasterInfo", func(t *testing.T) {
		checkMasterInfo(t, c, dig(subscribed.obj, "subscribed", "master_info"))
	})

	t.Run("Heartbeat", func(t *testing.T) {
		// src/common/heartbeater.hpp: the first HEARTBEAT goes at once,
		// then one every interval (src/master/framework.cpp,
		// Framework::heartbeat); allow the interval and some slack.
		interval := num(subscribed.obj, "subscribed", "heartbeat_interval_seconds")
		require.Greater(t, interval, 0.0)
		d := time.Duration(interval*float64(time.Second)) + 3*time.Second
		i, _ := f.s.waitFor(t, 1, d, "a HEARTBEAT", func(e event) bool { return e.typ() == "HEARTBEAT" })
		f.s.waitFor(t, i+1, d, "a second HEARTBEAT", func(e event) bool { return e.typ() == "HEARTBEAT" })
	})

	_, offer := f.waitOffer(t, 1)
	agentID := str(offer, "agent_id", "value")

	t.Run("Offer", func(t *testing.T) {
		checkOffer(t, c, offer, f.id)
		// src/master/master.cpp, Master::offer: "Strip the allocation
		// info ... for pre-MULTI_ROLE schedulers" (offer and resources).
		assert.Nil(t, dig(offer, "allocation_info"), "Offer.allocation_info sent to a framework without MULTI_ROLE")
		for _, r := range list(offer, "resources") {
			assert.Nil(t, dig(r, "allocation_info"), "Resource.allocation_info sent to a framework without MULTI_ROLE: %v", r)
		}
	})

	t.Run("CallStatusCodes", func(t *testing.T) {
		master := "http://" + c.master.Addr + "/api/v1/scheduler"
		reconcile := `{"framework_id":` + f.fid() + `,"type":"RECONCILE","reconcile":{"tasks":[]}}`
		withID := map[string]string{"Mesos-Stream-Id": f.streamID}
		facts := []struct {
			name    string
			body    string
			headers map[string]string
			method  string
			want    int
			source  string
		}{
			{"accepted call", reconcile, withID, "", http.StatusAccepted,
				"src/master/http.cpp, Master::Http::scheduler: Accepted() for RECONCILE"},
			{"no Mesos-Stream-Id", reconcile, nil, "", http.StatusBadRequest,
				"src/master/http.cpp: \"All non-subscribe calls should include the 'Mesos-Stream-Id' header\""},
			{"wrong Mesos-Stream-Id", reconcile, map[string]string{"Mesos-Stream-Id": "0b4f33b8-1b5f-4a4f-8d31-6c0a3a86a000"}, "", http.StatusBadRequest,
				"src/master/http.cpp: \"The stream ID ... didn't match\""},
			{"SUBSCRIBE with Mesos-Stream-Id", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x"}}}`, withID, "", http.StatusBadRequest,
				"src/master/http.cpp: \"Subscribe calls should not include the 'Mesos-Stream-Id' header\""},
			{"unknown framework", `{"framework_id":{"value":"no-such-framework"},"type":"RECONCILE","reconcile":{}}`, withID, "", http.StatusBadRequest,
				"src/master/http.cpp: \"Framework cannot be found\""},
			{"body not JSON", `{"type":`, withID, "", http.StatusBadRequest,
				"src/master/http.cpp: \"Failed to parse body into JSON\""},
			{"JSON of the wrong shape", `{"type":"RECONCILE","framework_id":"not-an-object"}`, withID, "", http.StatusBadRequest,
				"src/master/http.cpp: \"Failed to convert JSON into Call protobuf\""},
			{"no type", `{"framework_id":` + f.fid() + `}`, withID, "", http.StatusBadRequest,
				"src/master/validation.cpp, scheduler::call::validate: \"Expecting 'type' to be present\""},
			{"no Content-Type", reconcile, map[string]string{"Mesos-Stream-Id": f.streamID, "Content-Type": ""}, "", http.StatusBadRequest,
				"src/master/http.cpp: \"Expecting 'Content-Type' to be present\""},
			{"unsupported Content-Type", reconcile, map[string]string{"Mesos-Stream-Id": f.streamID, "Content-Type": "text/plain"}, "", http.StatusUnsupportedMediaType,
				"src/master/http.cpp: UnsupportedMediaType"},
			{"GET", "", nil, http.MethodGet, http.StatusMethodNotAllowed,
				"src/master/http.cpp: MethodNotAllowed({\"POST\"})"},
			// stout's protobuf::parse looks fields up by name and skips
			// the keys it does not find (3rdparty/stout/include/stout/
			// protobuf.hpp, internal::parse), so a client built against
			// newer protos works.
			{"unknown fields ignored", `{"framework_id":{"value":` + quote(f.id) + `,"x_unknown":1},"type":"RECONCILE",` +
				`"reconcile":{"tasks":[],"x_future":{"a":[1,2]}},"x_top_level":"ignored"}`, withID, "", http.StatusAccepted,
				"3rdparty/stout/include/stout/protobuf.hpp: unknown keys are skipped"},
			// "We treat 'null' as an unset field" (stout protobuf.hpp,
			// Parser::operator()(const JSON::Null&)): clients built on
			// protobuf.js write every unset field as null.
			{"null fields are unset", `{"framework_id":{"value":` + quote(f.id) + `},"type":"RECONCILE","reconcile":{"tasks":null},"kill":null,"accept":null}`,
				withID, "", http.StatusAccepted, "3rdparty/stout/include/stout/protobuf.hpp: JSON null is an unset field"},
		}
		for _, fact := range facts {
			t.Run(strings.ReplaceAll(fact.name, " ", "_"), func(t *testing.T) {
				var code int
				var body []byte
				if fact.method == http.MethodGet {
					resp, b := get(t, master)
					code, body = resp.StatusCode, b
				} else {
					code, body = postJSON(master, fact.body, fact.headers)
				}
				assert.Equal(t, fact.want, code, "%s (%s); body: %.300s", fact.name, fact.source, body)
			})
		}
	})

	taskID := uniqueID("compat-env")
	from := len(mustSnapshot(f.s))
	f.launch(t, offer, commandTask(taskID, agentID, "env"))

	var running event
	t.Run("TaskRunningContainerStatus", func(t *testing.T) {
		// src/slave/slave.cpp, Slave::_statusUpdate: the agent merges the
		// container's status into every executor update: container_id,
		// and network_infos with the agent's IP when the container has
		// none of its own.
		_, running = f.waitTask(t, from, taskID, "TASK_RUNNING")
		st := dig(running.obj, "update", "status")
		assert.NotEmpty(t, str(st, "container_status", "container_id", "value"),
			"TASK_RUNNING's container_status.container_id: %s", running.raw)
		assert.Equal(t, "127.0.0.1", str(st, "container_status", "network_infos", 0, "ip_addresses", 0, "ip_address"),
			"TASK_RUNNING's container_status.network_infos[0].ip_addresses[0].ip_address: %s", running.raw)
		assert.Equal(t, agentID, str(st, "agent_id", "value"))
		assert.NotEmpty(t, str(st, "uuid"), "an executor's update carries a uuid to acknowledge")
	})
	finishedAt, finished := f.waitTask(t, from, taskID, "TASK_FINISHED")
	t.Logf("task %s finished: %s", taskID, finished.raw)

	t.Run("ExecutorEnvironment", func(t *testing.T) {
		// A command task's executor ID is its task ID (src/common/
		// protobuf_utils.cpp / src/slave/slave.cpp,
		// getExecutorInfo: "executor.mutable_executor_id()->set_value(
		// task.task_id().value())").
		sandbox, out := sandboxFile(t, c, taskID, "stdout")
		checkExecutorEnv(t, c, parseEnv(out), f.id, taskID, agentID, sandbox)
	})

	t.Run("NoFailureForCommandExecutor", func(t *testing.T) {
		// src/slave/slave.cpp, Slave::executorTerminated: "if
		// (!executor->isGeneratedForCommandTask())" is the only way to
		// ExitedExecutorMessage, which becomes the FAILURE event. Two
		// HEARTBEATs after TASK_FINISHED leave time for one to come.
		i, _ := f.s.waitType(t, finishedAt+1, "HEARTBEAT")
		f.s.waitType(t, i+1, "HEARTBEAT")
		for _, e := range mustSnapshot(f.s) {
			assert.NotEqual(t, "FAILURE", e.typ(), "FAILURE after a command task ended: %s", e.raw)
		}
	})

	t.Run("OneRecordPerChunk", func(t *testing.T) {
		// src/common/http.hpp, StreamingHttpConnection::send writes each
		// event, RecordIO-encoded, with one Pipe write, and libprocess
		// sends each write as one HTTP chunk (3rdparty/libprocess/src/
		// http.cpp, "out << std::hex << data.size() << \"\\r\\n\"").
		require.Positive(t, f.s.chunkCount())
		assert.Empty(t, f.s.chunkViolations(), "every chunk of the scheduler stream holds exactly one RecordIO record")
	})

	t.Run("TeardownClosesStream", func(t *testing.T) {
		// src/master/http.cpp: TEARDOWN → Accepted(); src/master/master.cpp,
		// Master::removeFramework closes the framework's HTTP stream.
		f.mustCall(t, `{"framework_id":`+f.fid()+`,"type":"TEARDOWN"}`)
		require.Eventually(t, func() bool { _, err := f.s.snapshot(); return err != nil }, wait, 20*time.Millisecond,
			"the master ends the stream of a torn-down framework")
	})

	t.Run("CompletedFrameworkInGetState", func(t *testing.T) {
		// docs/operator-http-api.md, GET_STATE / GET_FRAMEWORKS:
		// completed_frameworks; src/master/master.cpp keeps removed
		// frameworks (--max_completed_frameworks, default 50) with their
		// tasks as completed_tasks.
		code, body := postJSON("http://"+c.master.Addr+"/api/v1", `{"type":"GET_STATE"}`, nil)
		require.Equal(t, http.StatusOK, code, "%s", body)
		st, err := decodeObject(body)
		require.NoError(t, err)
		var ids []string
		for _, fw := range list(st, "get_state", "get_frameworks", "completed_frameworks") {
			ids = append(ids, str(fw, "framework_info", "id", "value"))
		}
		assert.Contains(t, ids, f.id, "GET_STATE.get_frameworks.completed_frameworks: %.500s", body)
		var done []string
		for _, task := range list(st, "get_state", "get_tasks", "completed_tasks") {
			done = append(done, str(task, "task_id", "value")+"="+str(task, "state"))
		}
		assert.Contains(t, done, taskID+"=TASK_FINISHED", "GET_STATE.get_tasks.completed_tasks")
	})

	t.Run("MultiRole", func(t *testing.T) {
		// src/master/master.cpp, Master::offer: offer.allocation_info.role
		// is set, and kept for MULTI_ROLE frameworks with each resource's
		// allocation_info.
		g := subscribe(t, c, `{"user":"root","name":"compat-multi-role","roles":["compat"],"failover_timeout":60,`+
			`"capabilities":[{"type":"MULTI_ROLE"}]}`)
		_, o := g.waitOffer(t, 1)
		assert.Equal(t, "compat", str(o, "allocation_info", "role"), "Offer.allocation_info.role: %v", o)
		require.NotEmpty(t, list(o, "resources"))
		for _, r := range list(o, "resources") {
			assert.Equal(t, "compat", str(r, "allocation_info", "role"), "Resource.allocation_info.role: %v", r)
		}

		// docs/scheduler-http-api.md, "Disconnections": once the master
		// sees the subscription connection broken it "rejects subsequent
		// non-subscribe HTTP requests to /scheduler with 403 Forbidden"
		// (src/master/http.cpp: Forbidden("Framework is not subscribed")).
		g.s.conn.Close()
		body := `{"framework_id":` + g.fid() + `,"type":"RECONCILE","reconcile":{"tasks":[]}}`
		require.Eventually(t, func() bool { code, _ := g.call(body); return code == http.StatusForbidden }, 20*time.Second,
			50*time.Millisecond, "a call of a disconnected framework answers 403")
	})
}

// checkMasterInfo checks a MasterInfo as Mesos fills it (src/master/
// master.cpp, Master::initialize: "info_.set_ip(self().address.ip.in()->
// s_addr)" — the IPv4 address in network byte order read as a
// little-endian uint32 on x86 (MESOS-1201), port, pid "master@ip:port",
// version MESOS_VERSION, hostname, address {ip, port, hostname}).
func checkMasterInfo(t *testing.T, c *cluster, mi any) {
	t.Helper()
	require.NotNil(t, mi, "MasterInfo")
	port := float64(c.masterPort)
	assert.NotEmpty(t, str(mi, "id"), "MasterInfo.id")
	assert.Equal(t, float64(0x0100007f), num(mi, "ip"), "MasterInfo.ip: 127.0.0.1 in network order (16777343)")
	assert.Equal(t, port, num(mi, "port"), "MasterInfo.port")
	assert.Equal(t, "master@"+c.master.Addr, str(mi, "pid"), "MasterInfo.pid")
	assert.NotEmpty(t, str(mi, "hostname"), "MasterInfo.hostname")
	assert.Equal(t, "127.0.0.1", str(mi, "address", "ip"), "MasterInfo.address.ip")
	assert.Equal(t, port, num(mi, "address", "port"), "MasterInfo.address.port")
	assert.NotEmpty(t, str(mi, "address", "hostname"), "MasterInfo.address.hostname")
	checkVersion(t, str(mi, "version"), "MasterInfo.version")
}

// checkVersion requires a Mesos version (configure.ac AC_INIT: "1.12.0")
// of at least 1.0: clients gate v1 API use on it.
func checkVersion(t *testing.T, v, what string) {
	t.Helper()
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(v)
	require.NotNil(t, m, "%s %q is not a Mesos version (major.minor.patch)", what, v)
	major, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, major, 1, "%s %q is at least 1.0", what, v)
}

// checkOffer checks an Offer's shape (include/mesos/v1/mesos.proto, Offer;
// src/master/master.cpp, Master::offer: url = {scheme "http", address
// {hostname, ip, port} of the agent, path "/" + the agent PID's ID, i.e.
// "/slave(1)"}).
func checkOffer(t *testing.T, c *cluster, o map[string]any, frameworkID string) {
	t.Helper()
	assert.NotEmpty(t, str(o, "id", "value"), "Offer.id")
	assert.Equal(t, frameworkID, str(o, "framework_id", "value"), "Offer.framework_id")
	assert.NotEmpty(t, str(o, "agent_id", "value"), "Offer.agent_id")
	assert.Equal(t, "localhost", str(o, "hostname"), "Offer.hostname")
	assert.Equal(t, "http", str(o, "url", "scheme"), "Offer.url.scheme: %v", o["url"])
	assert.Equal(t, "127.0.0.1", str(o, "url", "address", "ip"), "Offer.url.address.ip")
	assert.Equal(t, float64(c.agentPort), num(o, "url", "address", "port"), "Offer.url.address.port")
	assert.Equal(t, "localhost", str(o, "url", "address", "hostname"), "Offer.url.address.hostname")
	assert.Equal(t, "/slave(1)", str(o, "url", "path"), "Offer.url.path")
	names := map[string]bool{}
	for _, r := range list(o, "resources") {
		names[str(r, "name")] = true
		switch str(r, "name") {
		case "cpus", "mem", "disk":
			assert.Equal(t, "SCALAR", str(r, "type"), "%v", r)
			assert.Greater(t, num(r, "scalar", "value"), 0.0, "%v", r)
		case "ports":
			assert.Equal(t, "RANGES", str(r, "type"), "%v", r)
			assert.NotEmpty(t, list(r, "ranges", "range"), "%v", r)
		}
	}
	for _, n := range []string{"cpus", "mem", "disk", "ports"} {
		assert.True(t, names[n], "the offer has %s: %v", n, o["resources"])
	}
}

func mustSnapshot(s *stream) []event {
	evs, _ := s.snapshot()
	return evs
}

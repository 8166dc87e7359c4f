package compat_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExecutorAPI plays a custom executor over raw HTTP: the agent starts
// the executor's command (which prints its environment and sleeps), and
// the test, reading that environment from the sandbox, subscribes in its
// place at MESOS_AGENT_ENDPOINT as MESOS_FRAMEWORK_ID / MESOS_EXECUTOR_ID,
// as any executor library does, and checks the executor API
// (/api/v1/executor) as docs/executor-http-api.md and src/slave/http.cpp
// describe it.
func TestExecutorAPI(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	f := subscribe(t, c, `{"user":"root","name":"compat-executor-api","checkpoint":true,"failover_timeout":60}`)
	_, offer := f.waitOffer(t, 1)
	agentID := str(offer, "agent_id", "value")
	executorID, taskID := uniqueID("compat-fake-executor"), uniqueID("compat-fake-task")
	from := len(mustSnapshot(f.s))
	f.launch(t, offer, `{"name":"fake","task_id":{"value":`+quote(taskID)+`},"agent_id":{"value":`+quote(agentID)+`},`+
		`"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":16}}],`+
		`"executor":{"executor_id":{"value":`+quote(executorID)+`},"name":"compat fake executor",`+
		`"command":{"value":"env; exec sleep 120","shell":true},`+
		`"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}]}}`)

	// The executor's environment, as its process saw it.
	var env map[string]string
	var sandbox string
	require.Eventually(t, func() bool {
		dir, out, err := findSandboxFile(c, executorID, "stdout")
		if err != nil || !bytes.Contains(out, []byte("MESOS_EXECUTOR_ID=")) {
			return false
		}
		sandbox, env = dir, parseEnv(out)
		return true
	}, wait, 50*time.Millisecond, "the executor process starts and prints its environment")

	t.Run("Environment", func(t *testing.T) {
		checkExecutorEnv(t, c, env, f.id, executorID, agentID, sandbox)
	})

	endpoint := env["MESOS_AGENT_ENDPOINT"]
	require.NotEmpty(t, endpoint, "MESOS_AGENT_ENDPOINT")
	ids := `"framework_id":{"value":` + quote(env["MESOS_FRAMEWORK_ID"]) + `},"executor_id":{"value":` + quote(env["MESOS_EXECUTOR_ID"]) + `}`
	ex := openStream(t, endpoint, "/api/v1/executor", `{"type":"SUBSCRIBE",`+ids+`,"subscribe":{}}`, nil)

	t.Run("SubscribeResponse", func(t *testing.T) {
		// docs/executor-http-api.md, SUBSCRIBE: "200 OK",
		// Content-Type: application/json, Transfer-Encoding: chunked.
		require.Equal(t, http.StatusOK, ex.status, "%s", mustSnapshot(ex))
		assert.Equal(t, "application/json", ex.header.Get("Content-Type"))
		assert.Equal(t, "chunked", strings.ToLower(ex.header.Get("Transfer-Encoding")))
		assert.Empty(t, ex.header.Get("Content-Length"))
	})
	require.Equal(t, http.StatusOK, ex.status)

	var containerID string
	t.Run("SubscribedFirst", func(t *testing.T) {
		// docs/executor-http-api.md, SUBSCRIBED: executor_info,
		// framework_info, agent_info, container_id (include/mesos/v1/
		// executor/executor.proto, Event.Subscribed).
		_, first := ex.waitFor(t, 0, wait, "the first event", func(event) bool { return true })
		require.Equal(t, "SUBSCRIBED", first.typ(), "%s", first.raw)
		sub := dig(first.obj, "subscribed")
		assert.Equal(t, executorID, str(sub, "executor_info", "executor_id", "value"))
		assert.Equal(t, f.id, str(sub, "framework_info", "id", "value"))
		assert.Equal(t, agentID, str(sub, "agent_info", "id", "value"))
		// AgentInfo.port is the agent's real port (include/mesos/v1/
		// mesos.proto: "optional int32 port = 8 [default = 5051]"; the
		// agent sets it from its PID, src/slave/slave.cpp,
		// Slave::initialize "info.set_port(self().address.port)").
		assert.Equal(t, float64(c.agentPort), num(sub, "agent_info", "port"), "AgentInfo.port")
		assert.Equal(t, "localhost", str(sub, "agent_info", "hostname"))
		containerID = str(sub, "container_id", "value")
		assert.NotEmpty(t, containerID, "SUBSCRIBED.container_id")
	})

	_, launch := ex.waitType(t, 0, "LAUNCH")
	t.Run("Launch", func(t *testing.T) {
		// docs/executor-http-api.md, LAUNCH: "Sent by the agent whenever it
		// needs to assign a new task to the executor".
		assert.Equal(t, taskID, str(launch.obj, "launch", "task", "task_id", "value"))
	})

	agent := "http://" + endpoint + "/api/v1/executor"
	update := func(state, uuid string) string {
		u := ""
		if uuid != "" {
			u = `,"uuid":` + quote(uuid)
		}
		return `{"type":"UPDATE",` + ids + `,"update":{"status":{"task_id":{"value":` + quote(taskID) + `},"state":"` + state +
			`","source":"SOURCE_EXECUTOR"` + u + `}}}`
	}
	const runningUUID = "AAECAwQFBgcICQoLDA0ODw==" // 16 bytes, base64

	t.Run("CallStatusCodes", func(t *testing.T) {
		facts := []struct {
			name, body string
			headers    map[string]string
			want       int
			source     string
		}{
			{"UPDATE accepted", update("TASK_RUNNING", runningUUID), nil, http.StatusAccepted,
				"src/slave/http.cpp, Http::executor: Accepted() for UPDATE"},
			{"UPDATE without uuid", update("TASK_RUNNING", ""), nil, http.StatusBadRequest,
				"src/common/validation.cpp, executor::call::validate: \"Expecting 'uuid' to be present\""},
			{"UPDATE with a uuid of the wrong size", update("TASK_RUNNING", "AAEC"), nil, http.StatusBadRequest,
				"src/common/validation.cpp: id::UUID::fromBytes fails"},
			{"UPDATE from another source", strings.Replace(update("TASK_RUNNING", runningUUID), "SOURCE_EXECUTOR", "SOURCE_MASTER", 1), nil,
				http.StatusBadRequest, "src/common/validation.cpp: \"with invalid source, expecting 'SOURCE_EXECUTOR'\""},
			{"no executor_id", `{"type":"MESSAGE","framework_id":{"value":` + quote(f.id) + `},"message":{"data":"aGk="}}`, nil,
				http.StatusBadRequest, "src/common/validation.cpp: \"Expecting 'executor_id' to be present\""},
			{"unknown framework", `{"type":"MESSAGE","framework_id":{"value":"no-such-framework"},"executor_id":{"value":` +
				quote(executorID) + `},"message":{"data":"aGk="}}`, nil, http.StatusBadRequest,
				"src/slave/http.cpp: \"Framework cannot be found\""},
			{"unknown executor", `{"type":"MESSAGE","framework_id":{"value":` + quote(f.id) + `},"executor_id":{"value":"no-such-executor"},` +
				`"message":{"data":"aGk="}}`, nil, http.StatusBadRequest, "src/slave/http.cpp: \"Executor cannot be found\""},
			{"body not JSON", `{"type":`, nil, http.StatusBadRequest, "src/slave/http.cpp: \"Failed to parse body into JSON\""},
			{"no Content-Type", update("TASK_RUNNING", runningUUID), map[string]string{"Content-Type": ""}, http.StatusBadRequest,
				"src/slave/http.cpp: \"Expecting 'Content-Type' to be present\""},
			{"unknown fields ignored", `{"type":"MESSAGE",` + ids + `,"message":{"data":"aGk=","x_new":true},"x_top":[1]}`, nil,
				http.StatusAccepted, "3rdparty/stout/include/stout/protobuf.hpp: unknown keys are skipped"},
		}
		for _, fact := range facts {
			t.Run(strings.ReplaceAll(fact.name, " ", "_"), func(t *testing.T) {
				code, body := postJSON(agent, fact.body, fact.headers)
				assert.Equal(t, fact.want, code, "%s (%s); body: %.300s", fact.name, fact.source, body)
			})
		}
	})

	t.Run("UpdateReachesScheduler", func(t *testing.T) {
		// The executor's TASK_RUNNING reaches the scheduler with the
		// executor's container in container_status (src/slave/slave.cpp,
		// Slave::_statusUpdate) and the executor's uuid.
		_, e := f.waitTask(t, from, taskID, "TASK_RUNNING")
		st := dig(e.obj, "update", "status")
		assert.Equal(t, "SOURCE_EXECUTOR", str(st, "source"))
		assert.Equal(t, runningUUID, str(st, "uuid"))
		assert.Equal(t, containerID, str(st, "container_status", "container_id", "value"),
			"TASK_RUNNING's container_status.container_id is the executor's container")
	})

	t.Run("Acknowledged", func(t *testing.T) {
		// docs/executor-http-api.md, ACKNOWLEDGED: "Sent to signal the
		// executor that a status update was received as part of the
		// reliable message passing mechanism" — after the scheduler's
		// ACKNOWLEDGE (waitTask acknowledged it).
		_, e := ex.waitType(t, 0, "ACKNOWLEDGED")
		assert.Equal(t, taskID, str(e.obj, "acknowledged", "task_id", "value"))
		assert.Equal(t, runningUUID, str(e.obj, "acknowledged", "uuid"))
	})

	t.Run("Finished", func(t *testing.T) {
		code, body := postJSON(agent, update("TASK_FINISHED", "EBESExQVFhcYGRobHB0eHw=="), nil)
		require.Equal(t, http.StatusAccepted, code, "%s", body)
		f.waitTask(t, from, taskID, "TASK_FINISHED")
	})

	t.Run("ShutdownOnTeardown", func(t *testing.T) {
		// src/slave/slave.cpp, Slave::shutdownExecutor sends an HTTP
		// executor the SHUTDOWN event (docs/executor-http-api.md,
		// SHUTDOWN) when its framework is torn down.
		f.mustCall(t, `{"framework_id":`+f.fid()+`,"type":"TEARDOWN"}`)
		ex.waitType(t, 0, "SHUTDOWN")
	})

	t.Run("OneRecordPerChunk", func(t *testing.T) {
		// SUBSCRIBED and LAUNCH each in a chunk of its own (src/common/
		// http.hpp, StreamingHttpConnection::send: one write per event).
		require.GreaterOrEqual(t, ex.chunkCount(), 3)
		assert.Empty(t, ex.chunkViolations(), "every chunk of the executor stream holds exactly one RecordIO record")
	})
}

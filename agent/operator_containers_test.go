package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// waitCall runs a WAIT_CONTAINER in the background; its answer comes on
// the returned channel.
type httpAnswer struct {
	code int
	body string
}

func waitCall(t *testing.T, h *harness, ctx context.Context, containerID string) <-chan httpAnswer {
	return waitCallNamed(t, h, ctx, "WAIT_CONTAINER", containerID)
}

// waitCallNamed is waitCall with the call's type: WAIT_CONTAINER or the
// deprecated WAIT_NESTED_CONTAINER.
func waitCallNamed(t *testing.T, h *harness, ctx context.Context, typ, containerID string) <-chan httpAnswer {
	t.Helper()
	out := make(chan httpAnswer, 1)
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, agent.OperatorAPIPath,
		strings.NewReader(`{"type":"`+typ+`","`+strings.ToLower(typ)+`":{"container_id":`+containerID+`}}`))
	req.Header.Set("Content-Type", "application/json")
	go func() {
		rec := httptest.NewRecorder()
		h.a.Handler().ServeHTTP(rec, req)
		out <- httpAnswer{rec.Code, rec.Body.String()}
	}()
	return out
}

func answer(t *testing.T, ch <-chan httpAnswer) httpAnswer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(waitFor):
		t.Fatal("WAIT_CONTAINER did not answer")
		return httpAnswer{}
	}
}

// waitContainerAnswer decodes WAIT_CONTAINER's answer.
func waitContainerAnswer(t *testing.T, a httpAnswer) map[string]any {
	return waitAnswerNamed(t, a, "WAIT_CONTAINER")
}

// waitAnswerNamed decodes the answer to the wait call typ.
func waitAnswerNamed(t *testing.T, a httpAnswer, typ string) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, a.code, a.body)
	var resp map[string]any
	require.NoError(t, json.Unmarshal([]byte(a.body), &resp))
	assert.Equal(t, typ, resp["type"])
	return obj(t, resp[strings.ToLower(typ)])
}

// killAndWait launches a task (launch returns its ID and the container to
// kill, as JSON), runs WAIT_CONTAINER on that container in the background,
// kills it with KILL_CONTAINER (killFields adds to its body, e.g. a
// signal), waits for the task's TASK_FAILED, and returns the WAIT's
// answer. Nothing shows when the background WAIT has reached the
// container, and one that reaches it only after its clean-up finds it
// gone (Apron keeps no terminations of destroyed containers): such a try
// is started again, with another task.
func killAndWait(t *testing.T, h *harness, launch func(try int) (task, container string), killFields string) (task, container string, w map[string]any, failed *mesospb.TaskStatus) {
	t.Helper()
	return killAndWaitNamed(t, h, launch, killFields, "KILL_CONTAINER", "WAIT_CONTAINER")
}

// killAndWaitNamed is killAndWait with the calls' types.
func killAndWaitNamed(t *testing.T, h *harness, launch func(try int) (task, container string), killFields, kill, wait string) (task, container string, w map[string]any, failed *mesospb.TaskStatus) {
	t.Helper()
	for try := 1; w == nil; try++ {
		require.LessOrEqual(t, try, 5, "WAIT_CONTAINER never saw the kill")
		task, container = launch(try)
		waiting := waitCallNamed(t, h, context.Background(), wait, container)
		select {
		case a := <-waiting:
			t.Fatalf("WAIT_CONTAINER answered before the container ended: %v", a)
		default:
		}
		code, body := postOperator(t, h, `{"type":"`+kill+`","`+strings.ToLower(kill)+`":{"container_id":`+container+killFields+`}}`)
		require.Equal(t, http.StatusOK, code, body)
		assert.Empty(t, body)
		up := h.fm.waitUpdate(t, task, mesospb.TASK_FAILED)
		failed = &up.Status
		if a := answer(t, waiting); a.code != http.StatusNotFound {
			w = waitAnswerNamed(t, a, wait)
		}
	}
	return task, container, w, failed
}

// runningCommandTask launches the try's command task and waits until it
// runs, the last try's executor gone first; it returns the task's ID and
// its executor's container ID.
func runningCommandTask(t *testing.T, h *harness, try int) (task, run string) {
	t.Helper()
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 0 || len(s.Frameworks[0].Executors) == 0
	}, waitFor, tick)
	task = "t" + strconv.Itoa(try)
	return task, runningTask(t, h, task)
}

// A task container is nested in its executor's run: KILL_CONTAINER sends
// it the signal, WAIT_CONTAINER answers its wait status.
func TestKillAndWaitNestedContainer(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	var run string
	task, nested, w, _ := killAndWait(t, h, func(try int) (string, string) {
		var task string
		task, run = runningCommandTask(t, h, try)
		return task, `{"value":"` + task + `","parent":{"value":"` + run + `"}}`
	}, `,"signal":15`) // the executor did not kill it: the task failed
	assert.Equal(t, 15.0, w["exit_status"]) // wait(2) status of a SIGTERM death
	assert.NotContains(t, w, "state")

	// Once the run is cleaned up, the container is unknown.
	require.Eventually(t, func() bool {
		code, _ := postOperator(t, h, `{"type":"KILL_CONTAINER","kill_container":{"container_id":`+nested+`}}`)
		return code == http.StatusNotFound
	}, waitFor, tick)
	code, body := postOperator(t, h, `{"type":"WAIT_CONTAINER","wait_container":{"container_id":`+nested+`}}`)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, body, "Container "+run+"."+task+" cannot be found")
}

// The deprecated KILL_NESTED_CONTAINER and WAIT_NESTED_CONTAINER are
// KILL_CONTAINER and WAIT_CONTAINER for a container with a parent, the
// wait answered under its old name, as Mesos answers them.
func TestDeprecatedNestedContainerCalls(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	for _, typ := range []string{"KILL_NESTED_CONTAINER", "WAIT_NESTED_CONTAINER"} {
		code, body := postOperator(t, h, `{"type":"`+typ+`"}`)
		assert.Equal(t, http.StatusBadRequest, code, body)
		code, body = postOperator(t, h, `{"type":"`+typ+`","`+strings.ToLower(typ)+`":{"container_id":{"value":"top"}}}`)
		assert.Equal(t, http.StatusBadRequest, code, body)
		assert.Contains(t, body, "container_id.parent' to be present")
	}
	_, _, w, _ := killAndWaitNamed(t, h, func(try int) (string, string) {
		task, run := runningCommandTask(t, h, try)
		return task, `{"value":"` + task + `","parent":{"value":"` + run + `"}}`
	}, `,"signal":15`, "KILL_NESTED_CONTAINER", "WAIT_NESTED_CONTAINER")
	assert.Equal(t, 15.0, w["exit_status"])
}

// An in-process executor's run has no process of its own: KILL_CONTAINER
// destroys it, and WAIT_CONTAINER answers when it has terminated.
func TestKillAndWaitInProcessExecutorContainer(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	_, top, w, up := killAndWait(t, h, func(try int) (string, string) {
		task, run := runningCommandTask(t, h, try)
		return task, `{"value":"` + run + `"}`
	}, "")
	assert.Contains(t, w["message"], "KILL_CONTAINER")
	assert.NotContains(t, w, "exit_status")
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, up.GetReason())

	code, body := postOperator(t, h, `{"type":"KILL_CONTAINER","kill_container":{"container_id":`+top+`}}`)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, body, "cannot be found (or is already killed)")
}

// WAIT_CONTAINER ends with its request.
func TestWaitContainerEndsWithTheRequest(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	run := runningTask(t, h, "t1")
	for _, id := range []string{`{"value":"` + run + `"}`, `{"value":"t1","parent":{"value":"` + run + `"}}`} {
		ctx, cancel := context.WithCancel(context.Background())
		waiting := waitCall(t, h, ctx, id)
		cancel()
		a := answer(t, waiting)
		assert.NotEqual(t, http.StatusOK, a.code, id)
	}
	// The task still runs.
	assert.Equal(t, mesospb.TASK_RUNNING, h.state().Frameworks[0].Executors[0].Tasks[0].GetState())
}

func TestContainerCallsRefusals(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	for body, want := range map[string]string{
		`{"type":"KILL_CONTAINER"}`: "Expecting 'kill_container' to be present",
		`{"type":"WAIT_CONTAINER"}`: "Expecting 'wait_container' to be present",
		`{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":""}}}`:                          "'kill_container.container_id' is invalid",
		`{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"a.b"}}}`:                       "contains invalid characters",
		`{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"a","parent":{"value":".."}}}}`: "'ContainerID.parent' is invalid",
		`{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"a b"}}}`:                       "'wait_container.container_id' is invalid",
	} {
		code, text := postOperator(t, h, body)
		assert.Equal(t, http.StatusBadRequest, code, body)
		assert.Contains(t, text, want, body)
	}
	for _, body := range []string{
		`{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"nope"}}}`,
		`{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"nope"}}}`,
		`{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"x","parent":{"value":"nope"}}}}`,
		`{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"caf\u00e9"}}}`,
	} {
		code, text := postOperator(t, h, body)
		assert.Equal(t, http.StatusNotFound, code, "%s: %s", body, text)
	}
}

// Apron has no resource providers: GET_OPERATIONS and
// GET_RESOURCE_PROVIDERS answer what Mesos does for an agent with none.
func TestOperationsAndResourceProviders(t *testing.T) {
	h := newHarness(t)
	for call, field := range map[string]string{"GET_OPERATIONS": "get_operations", "GET_RESOURCE_PROVIDERS": "get_resource_providers"} {
		code, body := postOperator(t, h, `{"type":"`+call+`"}`)
		require.Equal(t, http.StatusOK, code, body)
		var resp map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &resp))
		assert.Equal(t, map[string]any{"type": call, field: map[string]any{}}, resp, call)
	}
	// The operator API is also under the agent's process name.
	req := httptest.NewRequest(http.MethodPost, "/slave(1)/api/v1", strings.NewReader(`{"type":"GET_OPERATIONS"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// An executor process is one top-level container of the containerizer:
// KILL_CONTAINER signals it and WAIT_CONTAINER answers its wait status.
func TestKillAndWaitExecutorProcessContainer(t *testing.T) {
	bin := customExecutorBinary(t)
	h := newHTTPHarness(t)
	_, _, w, up := killAndWait(t, h.harness, func(try int) (string, string) {
		task, ex := "p"+strconv.Itoa(try), "ex"+strconv.Itoa(try)
		h.fm.push(runTask(processTask(task, ex, bin, "wait")))
		h.fm.waitUpdate(t, task, mesospb.TASK_RUNNING)
		for _, f := range h.state().Frameworks {
			for _, e := range f.Executors {
				if e.Info.ExecutorID.Value == ex {
					return task, `{"value":"` + e.ContainerID + `"}`
				}
			}
		}
		t.Fatalf("no executor %s", ex)
		return "", ""
	}, "")
	assert.Equal(t, 9.0, w["exit_status"]) // SIGKILL, the default signal
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, up.GetReason())
}

package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	apiv1 "github.com/apronhq/apron/api/v1"
	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/recordio"
)

// TestMain lets the test binary be the agent's command executor process
// (CommandExecutorProcess mode re-executes it), as an agent binary would.
func TestMain(m *testing.M) {
	if executor.IsCommandExecutorProcess() {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := executor.RunCommandExecutor(ctx)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "command executor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if testExecutorDir != "" {
		os.RemoveAll(testExecutorDir)
	}
	os.Exit(code)
}

var (
	buildOnce       sync.Once
	testExecutorDir string
	testExecutorBin string
	testExecutorErr string
)

// customExecutorBinary is the path of the custom executor of testdata/executor,
// built once per test binary; the test is skipped without a go tool.
func customExecutorBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			testExecutorErr = "no go tool to build the test executor (testdata/executor): " + err.Error()
			return
		}
		dir, err := os.MkdirTemp("", "apron-agent-test-executor-")
		if err != nil {
			testExecutorErr = err.Error()
			return
		}
		testExecutorDir = dir
		bin := filepath.Join(dir, "executor")
		out, err := exec.Command(goTool, "build", "-o", bin, "./testdata/executor").CombinedOutput()
		if err != nil {
			testExecutorErr = fmt.Sprintf("building testdata/executor: %v\n%s", err, out)
			return
		}
		testExecutorBin = bin
	})
	if testExecutorBin == "" {
		if strings.HasPrefix(testExecutorErr, "no go tool") {
			t.Skip(testExecutorErr)
		}
		t.Fatal(testExecutorErr)
	}
	return testExecutorBin
}

// httpHarness is a harness whose agent's HTTP API is served on loopback at
// Config.Endpoint, so executor processes reach it; the server outlives
// agent restarts.
type httpHarness struct {
	*harness
	srv       *httptest.Server
	cur       atomic.Pointer[agent.Agent]
	configure []func(*agent.Config)
}

func newHTTPHarness(t *testing.T, configure ...func(*agent.Config)) *httpHarness {
	t.Helper()
	h := &httpHarness{harness: &harness{t: t, fm: &fakeMaster{autoAck: true}, clk: h0clock(), dir: t.TempDir()}}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.cur.Load().Handler().ServeHTTP(w, r)
	}))
	// Registered before the agent's clean-up, so it runs after it: the
	// executors are shut down over their streams first.
	t.Cleanup(func() {
		h.srv.CloseClientConnections()
		h.srv.Close()
	})
	endpoint := func(c *agent.Config) { c.Endpoint = h.srv.Listener.Addr().String() }
	h.configure = append([]func(*agent.Config){endpoint}, configure...)
	h.start(h.configure...)
	h.cur.Store(h.a)
	h.srv.Start()
	h.waitRegistered()
	return h
}

// restart stops the agent and starts a new one on its work directory and
// endpoint.
func (h *httpHarness) restart() {
	h.stop()
	h.startAgain()
}

// startAgain starts a new agent on the stopped agent's work directory and
// endpoint.
func (h *httpHarness) startAgain() {
	h.start(h.configure...)
	h.cur.Store(h.a)
	h.waitRegistered()
}

func processTask(id, execID, command, data string) mesospb.TaskInfo {
	t := goTask(id, execID, command)
	t.Executor.Name = ptr("test executor " + execID)
	t.Executor.Command.Shell = ptr(false)
	t.Executor.Resources = []mesospb.Resource{{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.1}}}
	t.Data = []byte(data)
	return t
}

func frameworkMessage(execID, data string) *internalpb.Event {
	return &internalpb.Event{
		Type: internalpb.Event_FRAMEWORK_MESSAGE.Enum(),
		FrameworkMessage: &internalpb.Event_FrameworkMessage{
			FrameworkID: *framework.ID, ExecutorID: mesospb.ExecutorID{Value: execID}, Data: []byte(data),
		},
	}
}

func (m *fakeMaster) waitExited(t *testing.T, execID string) *internalpb.Call_ExecutorExited {
	t.Helper()
	var found *internalpb.Call_ExecutorExited
	require.Eventually(t, func() bool {
		for _, c := range m.callsOf(internalpb.Call_EXECUTOR_EXITED) {
			if c.ExecutorExited.ExecutorID.Value == execID {
				found = c.ExecutorExited
				return true
			}
		}
		return false
	}, waitFor, tick, "no EXECUTOR_EXITED for %s", execID)
	return found
}

// A custom executor is a process of its own: it subscribes over HTTP, gets
// its task, and its updates and messages reach the master.
func TestExecutorProcessOverHTTP(t *testing.T) {
	bin := customExecutorBinary(t)
	h := newHTTPHarness(t)
	h.fm.push(runTask(processTask("p1", "ex1", bin, "wait")))
	u := h.fm.waitUpdate(t, "p1", mesospb.TASK_RUNNING)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
	assert.Equal(t, "ex1", u.ExecutorID.Value)
	assert.Equal(t, "agent-1", u.Status.AgentID.Value)
	assert.Equal(t, "from the test executor", u.Status.GetMessage())

	// A second task goes to the same process.
	h.fm.push(runTask(processTask("p2", "ex1", bin, "wait")))
	h.fm.waitUpdate(t, "p2", mesospb.TASK_RUNNING)
	s := h.state()
	require.Len(t, s.Frameworks, 1)
	require.Len(t, s.Frameworks[0].Executors, 1)
	es := s.Frameworks[0].Executors[0]
	assert.Equal(t, "RUNNING", es.State)
	assert.Len(t, es.Tasks, 2)

	// Messages both ways.
	h.fm.push(frameworkMessage("ex1", "ping"))
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_MESSAGE)) == 1 }, waitFor, tick)
	msg := h.fm.callsOf(internalpb.Call_EXECUTOR_MESSAGE)[0].ExecutorMessage
	assert.Equal(t, "pong", string(msg.Data))
	assert.Equal(t, "ex1", msg.ExecutorID.Value)

	// It finishes both tasks, stops, and its process exits 0.
	h.fm.push(frameworkMessage("ex1", "finish"))
	h.fm.waitUpdate(t, "p1", mesospb.TASK_FINISHED)
	h.fm.waitUpdate(t, "p2", mesospb.TASK_FINISHED)
	exited := h.fm.waitExited(t, "ex1")
	require.NotNil(t, exited.Status)
	assert.Equal(t, int32(0), *exited.Status)
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
	assert.Len(t, h.state().CompletedTasks, 2)

	// The process had the Mesos environment and ran in its sandbox.
	assert.FileExists(t, filepath.Join(es.Directory, "stderr"))
}

// An executor process outlives the agent: it subscribes again to the
// agent restarted on the same work directory and endpoint, and its task
// goes on. One that does not come back in time is destroyed.
func TestExecutorProcessSurvivesAgentRestart(t *testing.T) {
	bin := customExecutorBinary(t)
	h := newHTTPHarness(t)
	h.fm.push(runTask(processTask("s1", "ex1", bin, "wait")))
	h.fm.waitUpdate(t, "s1", mesospb.TASK_RUNNING)
	h.fm.push(runTask(goTask("s2", "ex2", "sleep 1000")))
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 2 }, waitFor, tick)

	h.restart()
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && len(s.Frameworks[0].Executors) == 2
	}, waitFor, tick)
	// ex1 subscribes again (its driver retries with backoff meanwhile).
	require.Eventually(t, func() bool {
		h.fm.push(frameworkMessage("ex1", "ping"))
		return len(h.fm.callsOf(internalpb.Call_EXECUTOR_MESSAGE)) > 0
	}, waitFor, 50*time.Millisecond, "the executor is back")
	// ex2, a plain command, never does: it is destroyed after the timeout.
	h.clk.Advance(2 * agent.DefaultExecutorSubscriptionBackoffMax) // the re-registration window (recover.go)
	u := h.fm.waitUpdate(t, "s2", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_REREGISTRATION_TIMEOUT, u.Status.GetReason())
	h.fm.waitExited(t, "ex2")

	h.fm.push(frameworkMessage("ex1", "finish"))
	h.fm.waitUpdate(t, "s1", mesospb.TASK_FINISHED)
	exited := h.fm.waitExited(t, "ex1")
	require.NotNil(t, exited.Status)
	assert.Equal(t, int32(0), *exited.Status)
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 0 }, waitFor, tick)
}

// An executor process that exits leaves its tasks to the agent:
// TASK_FAILED, and EXECUTOR_EXITED with its wait status.
func TestExecutorProcessExit(t *testing.T) {
	bin := customExecutorBinary(t)
	h := newHTTPHarness(t)
	h.fm.push(runTask(processTask("x1", "ex1", bin, "exit")))
	h.fm.waitUpdate(t, "x1", mesospb.TASK_RUNNING)
	u := h.fm.waitUpdate(t, "x1", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, u.Status.GetReason())
	assert.Equal(t, "Executor exited with status 3", u.Status.GetMessage())
	exited := h.fm.waitExited(t, "ex1")
	require.NotNil(t, exited.Status)
	assert.Equal(t, int32(3<<8), *exited.Status, "a wait status, as Mesos's")
	assert.Equal(t, "Executor exited with status 3", exited.GetMessage())
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
	assert.Empty(t, containers(t, h.harness, true))
}

// An executor that never subscribes is destroyed after the registration
// timeout; its task fails.
func TestExecutorRegistrationTimeout(t *testing.T) {
	h := newHTTPHarness(t)
	task := goTask("r1", "silent", "sleep 1000") // a shell command: never subscribes
	h.fm.push(runTask(task))
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 1 }, waitFor, tick, "the executor's process runs")
	s := h.state()
	require.Len(t, s.Frameworks, 1)
	assert.Equal(t, "REGISTERING", s.Frameworks[0].Executors[0].State)
	assert.Equal(t, mesospb.TASK_STAGING, s.Frameworks[0].Executors[0].Tasks[0].GetState())

	h.clk.Advance(agent.DefaultExecutorRegistrationTimeout - time.Second)
	assert.Empty(t, h.fm.updates("r1"))
	h.clk.Advance(time.Second)
	u := h.fm.waitUpdate(t, "r1", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_REGISTRATION_TIMEOUT, u.Status.GetReason())
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	h.fm.waitExited(t, "silent")
	assert.Empty(t, containers(t, h.harness, true), "the container is destroyed")
}

// In CommandExecutorProcess mode the command executor is a process (here
// the test binary, re-executed) that subscribes over HTTP and runs the
// task itself.
func TestCommandExecutorProcess(t *testing.T) {
	h := newHTTPHarness(t, func(c *agent.Config) { c.CommandExecutorMode = agent.CommandExecutorProcess })
	h.fm.push(runTask(commandTask("c1", "echo hi; echo $MESOS_EXECUTOR_ID $FOO")))
	h.fm.waitUpdate(t, "c1", mesospb.TASK_FINISHED)
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_FINISHED}, h.fm.states("c1"))
	for _, u := range h.fm.updates("c1") {
		assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
		assert.Equal(t, "c1", u.ExecutorID.Value)
	}
	assert.Equal(t, "hi\nc1\n", h.sandboxFile("c1", "stdout"))
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
	assert.Empty(t, h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED), "the master hears nothing of a command executor")
	done := h.state().CompletedTasks
	require.Len(t, done, 1)
	assert.Nil(t, done[0].ExecutorID, "a command task, as in process")

	// A long task: the agent's only container is the executor's process;
	// the task is the executor's own container. A kill goes through it.
	h.fm.push(runTask(commandTask("c2", "sleep 1000")))
	h.fm.waitUpdate(t, "c2", mesospb.TASK_RUNNING)
	cs := containers(t, h.harness, true)
	require.Len(t, cs, 1)
	s := h.state()
	require.Len(t, s.Frameworks, 1)
	assert.Equal(t, s.Frameworks[0].Executors[0].ContainerID, cs[0].ContainerID.Value)
	assert.Nil(t, cs[0].ContainerID.Parent)
	h.fm.push(killTask("c2"))
	u := h.fm.waitUpdate(t, "c2", mesospb.TASK_KILLED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 0 }, waitFor, tick)
}

// A command executor process killed while the agent was away leaves its
// task's container behind; the restarted agent destroys it, and fails the
// task.
func TestCommandExecutorProcessKilledWhileAgentAway(t *testing.T) {
	h := newHTTPHarness(t, func(c *agent.Config) { c.CommandExecutorMode = agent.CommandExecutorProcess })
	h.fm.push(runTask(commandTask("k1", "echo $$ > pid; exec sleep 1000")))
	h.fm.waitUpdate(t, "k1", mesospb.TASK_RUNNING)
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(h.state().Frameworks[0].Executors[0].Directory, "pid"))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	}, waitFor, tick)
	h.stop()

	// The executor's process dies; its task, in a session of its own, does
	// not.
	c, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: filepath.Join(h.dir, "containers")})
	require.NoError(t, err)
	ids, err := c.Recover(context.Background())
	require.NoError(t, err)
	require.Len(t, ids, 1, "the executor's container")
	require.NoError(t, c.Destroy(context.Background(), ids[0]))
	require.NoError(t, c.Close())
	require.NoError(t, syscall.Kill(pid, 0), "the task outlived its executor")

	h.startAgain()
	u := h.fm.waitUpdate(t, "k1", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.Equal(t, mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, u.Status.GetReason())
	require.Eventually(t, func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH }, waitFor, tick, "the task is destroyed")
	require.Eventually(t, func() bool { return len(h.state().Frameworks) == 0 }, waitFor, tick)
}

// operator posts a call to the agent's operator API and decodes the
// answer.
func operator(t *testing.T, h *harness, call *agentpb.Call) *agentpb.Response {
	t.Helper()
	body, err := codec.JSON.Marshal(call)
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, agent.OperatorAPIPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", codec.MediaTypeJSON)
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, "%s: %s", call.GetType(), rec.Body)
	var resp agentpb.Response
	require.NoError(t, codec.JSON.Unmarshal(rec.Body.Bytes(), &resp))
	return &resp
}

func containers(t *testing.T, h *harness, standalone bool) []agentpb.Response_GetContainers_Container {
	t.Helper()
	resp := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_CONTAINERS.Enum(),
		GetContainers: &agentpb.Call_GetContainers{ShowStandalone: ptr(standalone)}})
	require.NotNil(t, resp.GetContainers)
	return resp.GetContainers.Containers
}

func get(t *testing.T, h *harness, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestOperatorAPI(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.fm.push(runTask(commandTask("t1", "sleep 1000")))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_RUNNING)
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].Tasks[0].GetState() == mesospb.TASK_RUNNING
	}, waitFor, tick)
	run := h.state().Frameworks[0].Executors[0].ContainerID

	health := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_HEALTH.Enum()})
	assert.Equal(t, agentpb.Response_GET_HEALTH, health.GetType())
	assert.True(t, health.GetHealth.Healthy)

	version := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_VERSION.Enum()})
	assert.Equal(t, apiv1.MesosVersion, version.GetVersion.VersionInfo.Version)

	flags := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_FLAGS.Enum()}).GetFlags.Flags
	byName := map[string]string{}
	for _, f := range flags {
		byName[f.Name] = f.GetValue()
	}
	assert.Equal(t, h.dir, byName["work_dir"])
	assert.Equal(t, "1mins", byName["executor_registration_timeout"])

	state := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_STATE.Enum()}).GetState
	require.Len(t, state.GetTasks.LaunchedTasks, 1)
	assert.Equal(t, "t1", state.GetTasks.LaunchedTasks[0].TaskID.Value)
	assert.Equal(t, mesospb.TASK_RUNNING, state.GetTasks.LaunchedTasks[0].GetState())
	require.Len(t, state.GetExecutors.Executors, 1)
	assert.Equal(t, "t1", state.GetExecutors.Executors[0].ExecutorInfo.ExecutorID.Value)
	require.Len(t, state.GetFrameworks.Frameworks, 1)
	assert.Equal(t, "fw-1", state.GetFrameworks.Frameworks[0].FrameworkInfo.ID.Value)

	tasks := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_TASKS.Enum()}).GetTasks
	assert.Len(t, tasks.LaunchedTasks, 1)
	assert.Len(t, operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_EXECUTORS.Enum()}).GetExecutors.Executors, 1)
	assert.Len(t, operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_FRAMEWORKS.Enum()}).GetFrameworks.Frameworks, 1)
	info := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_AGENT.Enum()}).GetAgent.AgentInfo
	assert.Equal(t, "host-1", info.Hostname)
	assert.Equal(t, "agent-1", info.ID.Value)

	// The task's container, under its executor run, with its usage.
	cs := containers(t, h, false)
	require.Len(t, cs, 1)
	c := cs[0]
	assert.Equal(t, run, c.ContainerID.Value)
	assert.Equal(t, "t1", c.ExecutorID.Value)
	assert.Equal(t, "fw-1", c.FrameworkID.Value)
	require.NotNil(t, c.ResourceStatistics)
	assert.GreaterOrEqual(t, c.ResourceStatistics.GetProcesses(), uint32(1))
	nested := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_CONTAINERS.Enum(),
		GetContainers: &agentpb.Call_GetContainers{ShowNested: ptr(true)}}).GetContainers.Containers
	require.Len(t, nested, 2)
	assert.Equal(t, "t1", nested[1].ContainerID.Value)
	assert.Equal(t, run, nested[1].ContainerID.Parent.Value)

	metrics := operator(t, h, &agentpb.Call{Type: agentpb.Call_GET_METRICS.Enum()}).GetMetrics.Metrics
	values := map[string]float64{}
	for _, m := range metrics {
		values[m.Name] = m.GetValue()
	}
	assert.Equal(t, 1.0, values["slave/tasks_running"])
	assert.Equal(t, 1.0, values["slave/executors_running"])
	assert.Equal(t, 1.0, values["slave/registered"])
	assert.Equal(t, 1.0, values["slave/containers"])
	assert.Equal(t, 2.0, values["slave/cpus_total"])

	// Calls the agent does not implement are named.
	body, _ := codec.JSON.Marshal(&agentpb.Call{Type: agentpb.Call_LAUNCH_CONTAINER.Enum()})
	req := httptest.NewRequest(http.MethodPost, agent.OperatorAPIPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", codec.MediaTypeJSON)
	rec := httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNotImplemented, rec.Code)
	assert.Contains(t, rec.Body.String(), "LAUNCH_CONTAINER")
	req = httptest.NewRequest(http.MethodPost, agent.OperatorAPIPath, strings.NewReader(`{"type":"UNKNOWN"}`))
	req.Header.Set("Content-Type", codec.MediaTypeJSON)
	rec = httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, req)
	assert.Equal(t, http.StatusBadRequest, rec.Code)

	// The plain endpoints.
	code, text := get(t, h, "/health")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "OK\n", text)
	code, text = get(t, h, "/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, text, `apron_agent_tasks{state="TASK_RUNNING"} 1`)
	assert.Contains(t, text, `apron_agent_executors{state="RUNNING"} 1`)
	assert.Contains(t, text, "apron_agent_containers 1\n")
	assert.Contains(t, text, "apron_agent_status_updates_pending 0\n")
	code, text = get(t, h, "/state")
	assert.Equal(t, http.StatusOK, code)
	// Mesos's /state model (endpoints.go; endpoints_test.go has more).
	var st struct {
		Frameworks []struct {
			Executors []struct{ Tasks []struct{ ID string } }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(text), &st))
	assert.Equal(t, "t1", st.Frameworks[0].Executors[0].Tasks[0].ID)
	rec = httptest.NewRecorder()
	h.a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/state", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	h.fm.push(killTask("t1"))
	h.fm.waitUpdate(t, "t1", mesospb.TASK_KILLED)
	require.Eventually(t, func() bool {
		_, text := get(t, h, "/metrics")
		return strings.Contains(text, `apron_agent_tasks_terminated_total{state="TASK_KILLED"} 1`)
	}, waitFor, tick)
}

// A stopped agent is unhealthy.
func TestHealthWhenStopped(t *testing.T) {
	h := newHarness(t)
	h.waitRegistered()
	h.stop()
	code, _ := get(t, h, "/health")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// postExecutor posts a raw call to the executor API.
func postExecutor(t *testing.T, url, ctype, streamID, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+agent.ExecutorAPIPath, strings.NewReader(body))
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if streamID != "" {
		req.Header.Set(httpapi.StreamIDHeader, streamID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rawStream is a subscription read by hand, as a Mesos executor library
// reads it.
type rawStream struct {
	resp *http.Response
	r    *recordio.Reader
}

func (s *rawStream) next(t *testing.T) *executorpb.Event {
	t.Helper()
	rec, err := s.r.ReadRecord()
	require.NoError(t, err)
	var ev executorpb.Event
	require.NoError(t, codec.JSON.Unmarshal(rec, &ev), "%s", rec)
	return &ev
}

// The test speaks the executor API itself, in JSON and without stream IDs,
// as a Mesos executor does, for an executor whose process never
// subscribes by itself.
func TestExecutorAPIAsMesosExecutor(t *testing.T) {
	h := newHTTPHarness(t, func(c *agent.Config) { c.ExecutorHeartbeatInterval = 50 * time.Millisecond })
	h.fm.push(runTask(goTask("m1", "mesos-exec", "sleep 1000")))
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 1 }, waitFor, tick)

	const ids = `"framework_id":{"value":"fw-1"},"executor_id":{"value":"mesos-exec"}`
	// Before SUBSCRIBE, calls are forbidden.
	code, _ := postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", `{"type":"MESSAGE",`+ids+`,"message":{"data":"aGk="}}`)
	assert.Equal(t, http.StatusForbidden, code)

	req, err := http.NewRequest(http.MethodPost, h.srv.URL+agent.ExecutorAPIPath, strings.NewReader(`{"type":"SUBSCRIBE",`+ids+`,"subscribe":{}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", codec.MediaTypeJSON)
	req.Header.Set("Accept", codec.MediaTypeJSON)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, codec.MediaTypeJSON, resp.Header.Get("Content-Type"))
	streamID := resp.Header.Get(httpapi.StreamIDHeader)
	assert.NotEmpty(t, streamID)
	s := &rawStream{resp: resp, r: recordio.NewReader(bufio.NewReader(resp.Body), 0)}
	ev := s.next(t)
	require.Equal(t, executorpb.Event_SUBSCRIBED, ev.GetType())
	assert.Equal(t, "mesos-exec", ev.Subscribed.ExecutorInfo.ExecutorID.Value)
	assert.Equal(t, "agent-1", ev.Subscribed.AgentInfo.ID.Value)
	assert.Equal(t, "fw-1", ev.Subscribed.FrameworkInfo.ID.Value)
	ev = s.next(t)
	require.Equal(t, executorpb.Event_LAUNCH, ev.GetType())
	assert.Equal(t, "m1", ev.Launch.Task.TaskID.Value)

	// An update without a stream ID goes to the executor's subscription.
	update := func(state, uuid string) string {
		return `{"type":"UPDATE",` + ids + `,"update":{"status":{"task_id":{"value":"m1"},"state":"` + state +
			`","source":"SOURCE_EXECUTOR","uuid":"` + uuid + `"}}}`
	}
	code, body := postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", update("TASK_RUNNING", "AAECAwQFBgcICQoLDA0ODw=="))
	require.Equal(t, http.StatusAccepted, code, body)
	h.fm.waitUpdate(t, "m1", mesospb.TASK_RUNNING)
	// The agent acknowledges it on the stream once the master has; a
	// heartbeat may come first.
	for {
		ev = s.next(t)
		if ev.GetType() != executorpb.Event_HEARTBEAT {
			break
		}
	}
	require.Equal(t, executorpb.Event_ACKNOWLEDGED, ev.GetType())
	assert.Equal(t, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, ev.Acknowledged.UUID)
	// Silence brings heartbeats.
	assert.Equal(t, executorpb.Event_HEARTBEAT, s.next(t).GetType())

	// With a stream ID, it must be the subscription's.
	code, _ = postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "not-the-stream", update("TASK_FINISHED", "EAECAwQFBgcICQoLDA0ODw=="))
	assert.Equal(t, http.StatusForbidden, code)
	code, body = postExecutor(t, h.srv.URL, codec.MediaTypeJSON, streamID, update("TASK_FINISHED", "EAECAwQFBgcICQoLDA0ODw=="))
	require.Equal(t, http.StatusAccepted, code, body)
	h.fm.waitUpdate(t, "m1", mesospb.TASK_FINISHED)

	// Invalid calls are 400, with the reason.
	code, body = postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", update("TASK_STAGING", "IAECAwQFBgcICQoLDA0ODw=="))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "TASK_STAGING")
	code, _ = postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", `{"type":"UPDATE",`+ids+`}`)
	assert.Equal(t, http.StatusBadRequest, code)

	// Protobuf works too, and HEARTBEAT calls are accepted.
	b, err := (&executorpb.Call{Type: executorpb.Call_HEARTBEAT.Enum(),
		FrameworkID: *framework.ID, ExecutorID: mesospb.ExecutorID{Value: "mesos-exec"}}).Marshal()
	require.NoError(t, err)
	code, _ = postExecutor(t, h.srv.URL, codec.MediaTypeProtobuf, "", string(b))
	assert.Equal(t, http.StatusAccepted, code)

	// The executor's process ignores SHUTDOWN: it is destroyed after its
	// grace period.
	cancel()
	h.fm.push(&internalpb.Event{
		Type:             internalpb.Event_SHUTDOWN_EXECUTOR.Enum(),
		ShutdownExecutor: &internalpb.Event_ShutdownExecutor{FrameworkID: *framework.ID, ExecutorID: mesospb.ExecutorID{Value: "mesos-exec"}},
	})
	require.Eventually(t, func() bool {
		h.clk.Advance(agent.DefaultExecutorShutdownGracePeriod)
		return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) == 1
	}, waitFor, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 0 }, waitFor, tick)
}

func TestExecutorAPIErrors(t *testing.T) {
	h := newHTTPHarness(t)
	const ids = `"framework_id":{"value":"fw-1"},"executor_id":{"value":"nobody"}`
	for _, tc := range []struct {
		name, method, ctype, body string
		want                      int
	}{
		{"GET", http.MethodGet, codec.MediaTypeJSON, "", http.StatusMethodNotAllowed},
		{"PUT", http.MethodPut, codec.MediaTypeJSON, `{"type":"SUBSCRIBE",` + ids + `}`, http.StatusMethodNotAllowed},
		{"text", http.MethodPost, "text/plain", `{"type":"SUBSCRIBE",` + ids + `}`, http.StatusUnsupportedMediaType},
		{"no content type", http.MethodPost, "", `{"type":"SUBSCRIBE",` + ids + `}`, http.StatusBadRequest},
		{"malformed", http.MethodPost, codec.MediaTypeJSON, `{"type":`, http.StatusBadRequest},
		{"wrong field type", http.MethodPost, codec.MediaTypeJSON, `{"type":"SUBSCRIBE","subscribe":[],` + ids + `}`, http.StatusBadRequest},
		{"no ids", http.MethodPost, codec.MediaTypeJSON, `{"type":"SUBSCRIBE","framework_id":{"value":""},"executor_id":{"value":""}}`, http.StatusBadRequest},
		{"unknown type", http.MethodPost, codec.MediaTypeJSON, `{"type":"UNKNOWN",` + ids + `}`, http.StatusBadRequest},
		// As Mesos: "Framework cannot be found", "Executor cannot be found".
		{"subscribe unknown executor", http.MethodPost, codec.MediaTypeJSON, `{"type":"SUBSCRIBE",` + ids + `}`, http.StatusBadRequest},
		{"message unknown executor", http.MethodPost, codec.MediaTypeJSON, `{"type":"MESSAGE",` + ids + `,"message":{"data":""}}`, http.StatusBadRequest},
	} {
		req, err := http.NewRequest(tc.method, h.srv.URL+agent.ExecutorAPIPath, strings.NewReader(tc.body))
		require.NoError(t, err)
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, tc.want, resp.StatusCode, "%s: %s", tc.name, b)
		assert.NotEmpty(t, strings.TrimSpace(string(b)), "%s: errors say why", tc.name)
	}

	// A stopped agent answers 503.
	h.stop()
	code, _ := postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", `{"type":"MESSAGE",`+ids+`,"message":{"data":""}}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// FuzzExecutorHTTPJSON posts arbitrary bodies to the executor API of a
// running agent with an in-process executor: whatever comes, the agent
// answers, never with 500, and does not panic.
func FuzzExecutorHTTPJSON(f *testing.F) {
	const ids = `"framework_id":{"value":"fw-1"},"executor_id":{"value":"ex1"}`
	for _, seed := range []string{
		`{"type":"SUBSCRIBE",` + ids + `,"subscribe":{"unacknowledged_tasks":[{"name":"t","task_id":{"value":"f1"},"agent_id":{"value":"agent-1"}}],"unacknowledged_updates":[{"status":{"task_id":{"value":"f1"},"state":"TASK_RUNNING","uuid":"AAECAwQFBgcICQoLDA0ODw=="}}]}}`,
		`{"type":"UPDATE",` + ids + `,"update":{"status":{"task_id":{"value":"f1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"AAECAwQFBgcICQoLDA0ODw=="}}}`,
		`{"type":"UPDATE",` + ids + `,"update":{"status":{"task_id":{"value":"f1"},"state":"TASK_FINISHED","uuid":"AAECAwQFBgcICQoLDA0ODx=="}}}`,
		`{"type":"MESSAGE",` + ids + `,"message":{"data":"aGk="}}`,
		`{"type":"HEARTBEAT",` + ids + `}`,
		`{"type":"UPDATE","framework_id":{"value":"fw-1"},"executor_id":{"value":"ghost"},"update":{"status":{"task_id":{"value":"x"},"state":"TASK_LOST"}}}`,
		`{"type":7,` + ids + `}`,
		`{}`, `[]`, `null`, ``, `{"type":"SUBSCRIBE"}`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, true)

	dir, err := os.MkdirTemp("", "apron-fuzz-agent-")
	require.NoError(f, err)
	fm := &fakeMaster{autoAck: true}
	// The real clock: the executor's driver reconnects when a fuzzed
	// SUBSCRIBE took its stream, and shuts down quickly at the end.
	a, err := agent.New(agent.Config{
		Master:                      fm,
		WorkDir:                     dir,
		Resources:                   "cpus:2;mem:1024;disk:1024;ports:[31000-31009]",
		Hostname:                    "host-1",
		Executors:                   map[string]executor.Executor{"go": &testExecutor{finishUUID: make(chan []byte, 1)}},
		ExecutorShutdownGracePeriod: 100 * time.Millisecond,
	})
	require.NoError(f, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	f.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = a.Shutdown(sctx)
		cancel()
		<-done
		os.RemoveAll(dir)
	})
	require.Eventually(f, func() bool { return a.ID() != "" }, waitFor, tick)
	fm.push(runTask(goTask("f1", "ex1", "go")))
	require.Eventually(f, func() bool {
		s, err := a.State(context.Background())
		return err == nil && len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].State == "RUNNING"
	}, waitFor, tick)
	handler := a.Handler()

	f.Fuzz(func(t *testing.T, body []byte, protobuf bool) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req := httptest.NewRequest(http.MethodPost, agent.ExecutorAPIPath, bytes.NewReader(body)).WithContext(ctx)
		req.Header.Set("Content-Type", codec.MediaTypeJSON)
		if protobuf {
			req.Header.Set("Content-Type", codec.MediaTypeProtobuf)
		}
		rec := &hangUp{ResponseRecorder: httptest.NewRecorder(), cancel: cancel}
		handler.ServeHTTP(rec, req) // a subscription is served until its first event
		switch {
		case rec.Code == http.StatusInternalServerError:
			t.Fatalf("500 for %q: %s", body, rec.Body)
		case rec.Code == http.StatusOK && rec.Header().Get(httpapi.StreamIDHeader) == "":
			t.Fatalf("a subscription without a stream ID for %q", body)
		}
	})
}

// hangUp is a client that goes away once it has read something: a
// subscription ends after its first event.
type hangUp struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (h *hangUp) Write(b []byte) (int, error) {
	defer h.cancel()
	return h.ResponseRecorder.Write(b)
}

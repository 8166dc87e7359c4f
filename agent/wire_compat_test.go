package agent_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/recordio"
)

// Tests of what Mesos clients and executors see of the agent on the wire:
// its advertised address, the executors' environment, the container
// status in updates, and the executor API's answers.

// AgentInfo.port and the PID carry the agent's real address, taken from
// its Endpoint, so clients do not fall back to 5051.
func TestAgentInfoAdvertisesAddress(t *testing.T) {
	h := newHarness(t, func(c *agent.Config) { c.Endpoint = "10.1.2.3:45051" })
	reg := h.waitConnects(1)[0]
	info := reg.Register.AgentInfo
	assert.Equal(t, "host-1", info.Hostname)
	require.NotNil(t, info.Port)
	assert.Equal(t, int32(45051), *info.Port)
	assert.Equal(t, "slave(1)@10.1.2.3:45051", h.a.PID())
	info = h.a.Info()
	assert.Equal(t, int32(45051), info.GetPort())
}

func TestAdvertisedAddressDefaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      agent.Config
		wantPID  string
		wantPort int32
	}{
		{"explicit", agent.Config{IP: "192.0.2.7", Port: 5999, Endpoint: "10.0.0.1:1234"}, "slave(1)@192.0.2.7:5999", 5999},
		{"url", agent.Config{Endpoint: "http://10.0.0.9:8080"}, "slave(1)@10.0.0.9:8080", 8080},
		{"url without port", agent.Config{Endpoint: "http://10.0.0.9"}, "slave(1)@10.0.0.9:80", 80},
		{"host without port", agent.Config{Endpoint: "10.0.0.8"}, "slave(1)@10.0.0.8:80", 80},
		{"ip hostname, no endpoint", agent.Config{Hostname: "10.0.0.4"}, "slave(1)@10.0.0.4:5051", agent.DefaultPort},
		{"ipv6", agent.Config{Endpoint: "[fd00::1]:5052"}, "slave(1)@[fd00::1]:5052", 5052},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Master, cfg.WorkDir = &fakeMaster{}, t.TempDir()
			cfg.Resources = "cpus:1;mem:64;disk:64"
			a, err := agent.New(cfg)
			require.NoError(t, err)
			assert.Equal(t, tc.wantPID, a.PID())
			info := a.Info()
			assert.Equal(t, tc.wantPort, info.GetPort())
		})
	}
	// Without an IP anywhere the agent picks one of the machine's.
	a, err := agent.New(agent.Config{Master: &fakeMaster{}, WorkDir: t.TempDir(), Resources: "cpus:1;mem:64;disk:64", Hostname: "not-an-ip"})
	require.NoError(t, err)
	assert.Regexp(t, `^slave\(1\)@.+:5051$`, a.PID())

	for _, bad := range []agent.Config{{IP: "not-an-ip"}, {IP: "0.0.0.0"}, {Port: 70000}, {Endpoint: "host:port"}} {
		bad.Master, bad.WorkDir = &fakeMaster{}, t.TempDir()
		_, err := agent.New(bad)
		assert.ErrorIs(t, err, agent.ErrInvalidConfig, "%+v", bad)
	}
}

// Executors and their tasks get the environment Mesos's agent gives
// (slave.cpp executorEnvironment), with Mesos's duration format.
func TestExecutorEnvironmentAsMesos(t *testing.T) {
	h := newHarness(t, func(c *agent.Config) { c.Endpoint = "http://127.0.0.1:45051/" })
	h.waitRegistered()
	vars := []string{
		"MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID", "MESOS_SLAVE_ID", "MESOS_SLAVE_PID", "MESOS_AGENT_ENDPOINT",
		"MESOS_CHECKPOINT", "MESOS_HTTP_COMMAND_EXECUTOR", "MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "LIBPROCESS_PORT", "LIBPROCESS_IP",
	}
	var cmd strings.Builder
	for _, v := range vars {
		cmd.WriteString("echo " + v + "=$" + v + "; ")
	}
	h.fm.push(runTask(commandTask("env", cmd.String())))
	h.fm.waitUpdate(t, "env", mesospb.TASK_FINISHED)
	got := strings.Split(strings.TrimSpace(h.sandboxFile("env", "stdout")), "\n")
	assert.Equal(t, []string{
		"MESOS_FRAMEWORK_ID=fw-1",
		"MESOS_EXECUTOR_ID=env",
		"MESOS_SLAVE_ID=agent-1",
		"MESOS_SLAVE_PID=slave(1)@127.0.0.1:45051",
		"MESOS_AGENT_ENDPOINT=127.0.0.1:45051", // ip:port, as Mesos gives it
		"MESOS_CHECKPOINT=1",                   // the harness framework checkpoints
		"MESOS_HTTP_COMMAND_EXECUTOR=1",
		"MESOS_RECOVERY_TIMEOUT=15mins",
		"MESOS_SUBSCRIPTION_BACKOFF_MAX=2secs",
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs",
		"LIBPROCESS_PORT=0",
		"LIBPROCESS_IP=127.0.0.1", // the agent's, one of this machine's
	}, got)

	// The executor library reads it back.
	env := map[string]string{}
	for _, kv := range got {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg, err := executor.ConfigFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:45051", cfg.AgentEndpoint)
	assert.Equal(t, agent.DefaultExecutorRecoveryTimeout, cfg.RecoveryTimeout)
	assert.False(t, cfg.ExitOnDisconnect)

	// An advertised IP of another machine is not one to bind to.
	h = newHarness(t, func(c *agent.Config) { c.IP = "192.0.2.30" })
	h.waitRegistered()
	h.fm.push(runTask(commandTask("nat", `echo "[$LIBPROCESS_IP] $MESOS_SLAVE_PID"`)))
	h.fm.waitUpdate(t, "nat", mesospb.TASK_FINISHED)
	assert.Equal(t, "[] slave(1)@192.0.2.30:5051\n", h.sandboxFile("nat", "stdout"))
}

// containerStatus checks an update's container status: the container, the
// host's IP as the task's, and the executor's PID when in process.
func containerStatus(t *testing.T, st mesospb.TaskStatus, container *mesospb.ContainerID, ip string) {
	t.Helper()
	cs := st.ContainerStatus
	require.NotNil(t, cs, "%s has a container status", st.GetState())
	assert.Equal(t, container, cs.ContainerID)
	require.Len(t, cs.NetworkInfos, 1)
	require.Len(t, cs.NetworkInfos[0].IPAddresses, 1)
	assert.Equal(t, ip, cs.NetworkInfos[0].IPAddresses[0].GetIPAddress())
	assert.Equal(t, mesospb.NetworkInfo_IPv4, cs.NetworkInfos[0].IPAddresses[0].GetProtocol())
}

// Every update of a task that reached its executor carries the status of
// its container, as Mesos's agent adds it (Slave::_statusUpdate); the
// agent's own update of a task whose executor is gone does not.
func TestUpdatesCarryContainerStatus(t *testing.T) {
	h := newHarness(t, func(c *agent.Config) { c.IP = "192.0.2.10" })
	h.waitRegistered()
	h.fm.push(runTask(commandTask("c1", "sleep 1000")))
	h.fm.waitUpdate(t, "c1", mesospb.TASK_RUNNING)
	run := &mesospb.ContainerID{Value: h.state().Frameworks[0].Executors[0].ContainerID}
	h.fm.push(killTask("c1"))
	h.fm.waitUpdate(t, "c1", mesospb.TASK_KILLED)
	for _, u := range h.fm.updates("c1") {
		containerStatus(t, u.Status, run, "192.0.2.10")
		assert.Equal(t, uint32(os.Getpid()), u.Status.ContainerStatus.GetExecutorPid(), "the in-process executor is the agent")
	}

	// A task group's tasks run in containers nested in the executor's.
	h.fm.push(&internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: framework,
			Executor:  mesospb.ExecutorInfo{Type: mesospb.ExecutorInfo_DEFAULT.Enum(), ExecutorID: mesospb.ExecutorID{Value: "default-1"}},
			TaskGroup: mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{commandTask("g1", "true")}},
		},
	})
	u := h.fm.waitUpdate(t, "g1", mesospb.TASK_FINISHED)
	require.NotNil(t, u.Status.ContainerStatus)
	cid := u.Status.ContainerStatus.ContainerID
	require.NotNil(t, cid)
	require.NotNil(t, cid.Parent, "nested in the executor's container")
	assert.Equal(t, "g1", cid.Value)
	for _, u := range h.fm.updates("g1") {
		containerStatus(t, u.Status, cid, "192.0.2.10")
	}

	// The agent fails the task of an executor that ended: no container.
	ex := &stoppingExecutor{}
	h2 := newHarness(t, func(c *agent.Config) { c.Executors = map[string]executor.Executor{"quitter": ex} })
	h2.waitRegistered()
	h2.fm.push(runTask(goTask("q1", "ex1", "quitter")))
	u = h2.fm.waitUpdate(t, "q1", mesospb.TASK_FAILED)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_AGENT, u.Status.GetSource())
	assert.Nil(t, u.Status.ContainerStatus)
}

// A container status the executor sets is kept, and completed.
func TestExecutorContainerStatusKept(t *testing.T) {
	ex := &statusExecutor{}
	h := newHarness(t, func(c *agent.Config) {
		c.IP = "192.0.2.11"
		c.Executors = map[string]executor.Executor{"status": ex}
	})
	h.waitRegistered()
	h.fm.push(runTask(goTask("s1", "ex1", "status")))
	u := h.fm.waitUpdate(t, "s1", mesospb.TASK_RUNNING)
	containerStatus(t, u.Status, &mesospb.ContainerID{Value: "mine"}, "192.0.2.11")
}

type statusExecutor struct{ testExecutor }

func (e *statusExecutor) LaunchTask(ctx context.Context, d *executor.Driver, task *mesospb.TaskInfo) {
	_ = d.SendStatusUpdate(ctx, mesospb.TaskStatus{
		TaskID: task.TaskID, State: mesospb.TASK_RUNNING.Enum(),
		ContainerStatus: &mesospb.ContainerStatus{ContainerID: &mesospb.ContainerID{Value: "mine"}},
	})
}

// The master hears no EXECUTOR_EXITED for a command executor, which it
// does not know (Mesos: Slave::executorTerminated), so the scheduler gets
// no FAILURE; it does for other executors.
func TestNoExecutorExitedForCommandExecutor(t *testing.T) {
	ex := &testExecutor{finishUUID: make(chan []byte, 1)}
	h := newHarness(t, func(c *agent.Config) { c.Executors = map[string]executor.Executor{"go-exec": ex} })
	h.waitRegistered()
	h.fm.push(runTask(commandTask("c1", "true")))
	h.fm.waitUpdate(t, "c1", mesospb.TASK_FINISHED)
	h.fm.push(runTask(goTask("g1", "ex1", "go-exec")))
	h.fm.waitUpdate(t, "g1", mesospb.TASK_RUNNING)
	h.fm.push(frameworkMessage("ex1", "finish"))
	h.fm.waitUpdate(t, "g1", mesospb.TASK_FINISHED)
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 0 && len(s.CompletedTasks) == 2
	}, waitFor, tick)
	// The agent's state changes before its calls reach the master.
	require.Eventually(t, func() bool { return len(h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)) > 0 }, waitFor, tick)
	exited := h.fm.callsOf(internalpb.Call_EXECUTOR_EXITED)
	require.Len(t, exited, 1)
	assert.Equal(t, "ex1", exited[0].ExecutorExited.ExecutorID.Value)
}

// The executor API answers as Mesos's (Http::executor): HEARTBEAT is
// accepted from anyone, an unknown executor is a bad request, a
// subscribed executor's calls are accepted without a stream ID even while
// it reconnects, and the API is also where Mesos's executor library looks
// for it, under the agent's PID.
func TestExecutorAPIAnswersAsMesos(t *testing.T) {
	h := newHTTPHarness(t)
	h.fm.push(runTask(goTask("m1", "mesos-exec", "sleep 1000")))
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 1 }, waitFor, tick)
	const ids = `"framework_id":{"value":"fw-1"},"executor_id":{"value":"mesos-exec"}`
	const ghost = `"framework_id":{"value":"fw-1"},"executor_id":{"value":"ghost"}`
	const noFramework = `"framework_id":{"value":"fw-9"},"executor_id":{"value":"mesos-exec"}`

	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"heartbeat before subscribing", `{"type":"HEARTBEAT",` + ids + `}`, http.StatusAccepted},
		{"heartbeat of an unknown executor", `{"type":"HEARTBEAT",` + ghost + `}`, http.StatusAccepted},
		{"message before subscribing", `{"type":"MESSAGE",` + ids + `,"message":{"data":"aGk="}}`, http.StatusForbidden},
		{"message of an unknown executor", `{"type":"MESSAGE",` + ghost + `,"message":{"data":"aGk="}}`, http.StatusBadRequest},
		{"message of an unknown framework", `{"type":"MESSAGE",` + noFramework + `,"message":{"data":"aGk="}}`, http.StatusBadRequest},
		{"subscribe of an unknown executor", `{"type":"SUBSCRIBE",` + ghost + `,"subscribe":{}}`, http.StatusBadRequest},
	} {
		code, body := postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", tc.body)
		assert.Equal(t, tc.want, code, "%s: %s", tc.name, body)
	}

	// Subscribe where Mesos's executor library does: /slave(1)/api/v1/executor.
	subscribe := func() (*rawStream, context.CancelFunc) {
		req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/slave(1)"+agent.ExecutorAPIPath, strings.NewReader(`{"type":"SUBSCRIBE",`+ids+`}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", codec.MediaTypeJSON)
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		t.Cleanup(func() { resp.Body.Close() })
		return &rawStream{resp: resp, r: recordio.NewReader(bufio.NewReader(resp.Body), 0)}, cancel
	}
	s, cancel := subscribe()
	ev := s.next(t)
	require.Equal(t, executorpb.Event_SUBSCRIBED, ev.GetType())
	require.NotNil(t, ev.Subscribed.ContainerID)
	assert.Equal(t, h.state().Frameworks[0].Executors[0].ContainerID, ev.Subscribed.ContainerID.Value)
	info := h.a.Info()
	assert.Equal(t, info.GetPort(), ev.Subscribed.AgentInfo.GetPort())
	require.Equal(t, executorpb.Event_LAUNCH, s.next(t).GetType())

	// The executor loses its stream: its update is still taken.
	cancel()
	require.Eventually(t, func() bool {
		code, _ := postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", `{"type":"UPDATE",`+ids+
			`,"update":{"status":{"task_id":{"value":"m1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"AAECAwQFBgcICQoLDA0ODw=="}}}`)
		return code == http.StatusAccepted
	}, waitFor, tick)
	u := h.fm.waitUpdate(t, "m1", mesospb.TASK_RUNNING)
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, u.Status.GetSource())
	// ...but not with the stream ID of a subscription that ended.
	code, _ := postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "gone", `{"type":"MESSAGE",`+ids+`,"message":{"data":"aGk="}}`)
	assert.Equal(t, http.StatusForbidden, code)
}

// The agent's update of a task that never reached its executor has no
// container status, as in Mesos (its queued tasks).
func TestQueuedTaskUpdateHasNoContainerStatus(t *testing.T) {
	h := newHTTPHarness(t)
	h.fm.push(runTask(goTask("q1", "silent", "sleep 1000"))) // never subscribes
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 1 }, waitFor, tick)
	h.fm.push(killTask("q1"))
	u := h.fm.waitUpdate(t, "q1", mesospb.TASK_KILLED)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, u.Status.GetReason())
	assert.Nil(t, u.Status.ContainerStatus)
}

// An executor that subscribes once it has terminated is told to shut
// down, as Mesos's agent tells it, on a stream that then ends.
func TestTerminatedExecutorSubscribeGetsShutdown(t *testing.T) {
	h := newHTTPHarness(t)
	h.fm.setAutoAck(false) // the task's last update keeps the executor known
	h.fm.push(runTask(goTask("z1", "late", "sleep 1000")))
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 1 }, waitFor, tick)
	h.clk.Advance(agent.DefaultExecutorRegistrationTimeout)
	h.fm.waitUpdate(t, "z1", mesospb.TASK_FAILED)
	require.Eventually(t, func() bool {
		s := h.state()
		return len(s.Frameworks) == 1 && s.Frameworks[0].Executors[0].State == "TERMINATED"
	}, waitFor, tick)

	req, err := http.NewRequest(http.MethodPost, h.srv.URL+agent.ExecutorAPIPath,
		strings.NewReader(`{"type":"SUBSCRIBE","framework_id":{"value":"fw-1"},"executor_id":{"value":"late"}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", codec.MediaTypeJSON)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := recordio.NewReader(bufio.NewReader(resp.Body), 0)
	rec, err := r.ReadRecord()
	require.NoError(t, err)
	var ev executorpb.Event
	require.NoError(t, codec.JSON.Unmarshal(rec, &ev))
	assert.Equal(t, executorpb.Event_SHUTDOWN, ev.GetType())
	_, err = r.ReadRecord()
	assert.Error(t, err, "the stream ends")
}

// The executor gets ACKNOWLEDGED once the agent has its update, before the
// framework acknowledges it (Mesos: Slave::___statusUpdate); an update it
// resends when subscribing again is acknowledged again, after SUBSCRIBED.
func TestExecutorAcknowledgedWhenAgentHasUpdate(t *testing.T) {
	// Heartbeats bound the waits: an event that does not come fails the
	// test instead of hanging it.
	h := newHTTPHarness(t, func(c *agent.Config) { c.ExecutorHeartbeatInterval = 100 * time.Millisecond })
	h.fm.setAutoAck(false)
	h.fm.push(runTask(goTask("a1", "acks", "sleep 1000")))
	require.Eventually(t, func() bool { return len(containers(t, h.harness, true)) == 1 }, waitFor, tick)
	const ids = `"framework_id":{"value":"fw-1"},"executor_id":{"value":"acks"}`
	const status = `{"task_id":{"value":"a1"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR","uuid":"AAECAwQFBgcICQoLDA0ODw=="}`
	subscribe := func(body string) (*rawStream, context.CancelFunc) {
		req, err := http.NewRequest(http.MethodPost, h.srv.URL+agent.ExecutorAPIPath, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", codec.MediaTypeJSON)
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		t.Cleanup(func() { cancel(); resp.Body.Close() })
		return &rawStream{resp: resp, r: recordio.NewReader(bufio.NewReader(resp.Body), 0)}, cancel
	}
	s, cancel := subscribe(`{"type":"SUBSCRIBE",` + ids + `,"subscribe":{}}`)
	require.Equal(t, executorpb.Event_SUBSCRIBED, nextEvent(t, s).GetType())
	require.Equal(t, executorpb.Event_LAUNCH, nextEvent(t, s).GetType())
	code, body := postExecutor(t, h.srv.URL, codec.MediaTypeJSON, "", `{"type":"UPDATE",`+ids+`,"update":{"status":`+status+`}}`)
	require.Equal(t, http.StatusAccepted, code, body)
	ev := nextEvent(t, s)
	require.Equal(t, executorpb.Event_ACKNOWLEDGED, ev.GetType())
	assert.Equal(t, "a1", ev.Acknowledged.TaskID.Value)
	h.fm.waitUpdate(t, "a1", mesospb.TASK_RUNNING) // not acknowledged by the master

	// Say it missed the acknowledgement: it resends the update with its
	// new subscription, and is answered on it.
	cancel()
	s, _ = subscribe(`{"type":"SUBSCRIBE",` + ids + `,"subscribe":{"unacknowledged_updates":[{"status":` + status + `}]}}`)
	require.Equal(t, executorpb.Event_SUBSCRIBED, nextEvent(t, s).GetType())
	ev = nextEvent(t, s)
	require.Equal(t, executorpb.Event_ACKNOWLEDGED, ev.GetType())
	assert.Equal(t, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, ev.Acknowledged.UUID)
	assert.Len(t, h.fm.updates("a1"), 1, "the duplicate is not forwarded")
}

// nextEvent is the stream's next event other than HEARTBEAT; it fails
// after 50 heartbeats.
func nextEvent(t *testing.T, s *rawStream) *executorpb.Event {
	t.Helper()
	for range 50 {
		if ev := s.next(t); ev.GetType() != executorpb.Event_HEARTBEAT {
			return ev
		}
	}
	t.Fatal("only heartbeats")
	return nil
}

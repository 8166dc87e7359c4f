package executor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/httpapi"
)

// serveFakeAgent serves a fake agent's link over the executor HTTP API, as
// an agent's handler does, with heartbeats every few milliseconds, counted
// in beats.
func serveFakeAgent(t *testing.T, a *fakeAgent, beats *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ExecutorAPIPath {
			http.NotFound(w, r)
			return
		}
		var call executorpb.Call
		c, err := httpapi.DecodeCall(r, &call, 0)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if call.GetType() == executorpb.Call_SUBSCRIBE {
			id, events, err := a.SubscribeExecutor(r.Context(), &call)
			if err != nil {
				httpapi.WriteError(w, httpapi.Errorf(http.StatusForbidden, "%v", err))
				return
			}
			hb := func() *executorpb.Event {
				beats.Add(1)
				return event(executorpb.Event_HEARTBEAT)
			}
			httpapi.ServeStream(w, r, c, id, events, hb, 5*time.Millisecond)
			return
		}
		if err := a.ExecutorCall(r.Context(), r.Header.Get(httpapi.StreamIDHeader), &call); err != nil {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusForbidden, "%v", err))
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5051":                     "http://127.0.0.1:5051/api/v1/executor",
		"http://agent:5051/":                 "http://agent:5051/api/v1/executor",
		"https://agent:5051":                 "https://agent:5051/api/v1/executor",
		"http://agent:5051/api/v1/executor":  "http://agent:5051/api/v1/executor",
		" agent.example.com:5051 ":           "http://agent.example.com:5051/api/v1/executor",
		"http://proxy/agents/a1":             "http://proxy/agents/a1/api/v1/executor",
		"http://proxy/agents/a1/api/v1/exec": "http://proxy/agents/a1/api/v1/exec/api/v1/executor",
	} {
		assert.Equal(t, want, endpointURL(in), in)
	}
}

// The driver works the same over HTTP: events (with heartbeats mixed in)
// reach the executor, updates and messages reach the agent with the
// stream's ID, and a stream the agent ends is subscribed again with what
// is unacknowledged.
func TestDriverOverHTTP(t *testing.T) {
	a := newFakeAgent()
	var beats atomic.Int32
	srv := serveFakeAgent(t, a, &beats)
	rec := &recExec{}
	clk := clock.NewFake(epoch)
	cfg, err := ConfigFromEnv(func(k string) string {
		return map[string]string{
			"MESOS_FRAMEWORK_ID":   "f1",
			"MESOS_EXECUTOR_ID":    "e1",
			"MESOS_AGENT_ENDPOINT": strings.TrimPrefix(srv.URL, "http://"),
			"MESOS_CHECKPOINT":     "1",
		}[k]
	})
	require.NoError(t, err)
	cfg.Clock = clk
	d, err := NewDriver(rec, cfg)
	require.NoError(t, err)
	done := runDriver(t, d)
	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)
	rec.mu.Lock()
	info := rec.infos[0]
	rec.mu.Unlock()
	assert.Equal(t, "c1", info.ContainerID.Value)
	assert.Equal(t, "a1", info.Agent.ID.Value)

	a.push(t, launchEvent(taskInfo("t1")))
	msg := event(executorpb.Event_MESSAGE)
	msg.Message = &executorpb.Event_Message{Data: []byte("hello")}
	a.push(t, msg)
	require.Eventually(t, func() bool { return rec.has("message hello") }, waitFor, tick)
	n := beats.Load()
	require.Eventually(t, func() bool { return beats.Load() >= n+2 }, waitFor, tick, "heartbeats go by, unseen by the executor")

	ctx := context.Background()
	require.NoError(t, d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t1"}, State: mesospb.TASK_RUNNING.Enum()}))
	require.NoError(t, d.SendFrameworkMessage(ctx, []byte("hi")))
	require.Equal(t, []mesospb.TaskState{mesospb.TASK_RUNNING}, a.taskStates("t1"))
	calls := a.otherCalls()
	require.Len(t, calls, 2)
	assert.Equal(t, "hi", string(calls[1].Message.Data))

	// The agent ends the stream: the connection ends, and the driver
	// subscribes again with the unacknowledged update and task.
	a.drop()
	require.Eventually(t, func() bool { return rec.has("disconnected") && clk.Waiters() == 1 }, waitFor, tick)
	clk.Advance(initialBackoff)
	require.Eventually(t, func() bool { return rec.has("reregistered") }, waitFor, tick)
	subs := a.subscribeCalls()
	require.Len(t, subs, 2)
	require.Len(t, subs[1].Subscribe.UnacknowledgedUpdates, 1)
	assert.Equal(t, "t1", subs[1].Subscribe.UnacknowledgedTasks[0].TaskID.Value)

	a.push(t, event(executorpb.Event_SHUTDOWN))
	require.NoError(t, runResult(t, done))
	assert.Equal(t, []string{"registered", "launch t1", "message hello", "disconnected", "reregistered", "shutdown"}, rec.log())
	require.Eventually(t, func() bool { return !a.connected() }, waitFor, tick, "the connection ended with Run")
}

func TestHTTPAgentErrors(t *testing.T) {
	a := newFakeAgent()
	srv := serveFakeAgent(t, a, new(atomic.Int32))
	link := HTTPAgent(srv.URL)
	call := func(t executorpb.Call_Type) *executorpb.Call {
		return &executorpb.Call{Type: t.Enum(), FrameworkID: mesospb.FrameworkID{Value: "f1"}, ExecutorID: mesospb.ExecutorID{Value: "e1"}}
	}

	ctx, cancel := context.WithCancel(context.Background())
	id, events, err := link.SubscribeExecutor(ctx, call(executorpb.Call_SUBSCRIBE))
	require.NoError(t, err)
	assert.Equal(t, "stream-1", id, "the Mesos-Stream-Id header")
	ev := <-events
	require.Equal(t, executorpb.Event_SUBSCRIBED, ev.GetType())

	// A call on a stream that is not the current one is refused, with the
	// agent's status.
	m := call(executorpb.Call_MESSAGE)
	m.Message = &executorpb.Call_Message{Data: []byte("x")}
	require.NoError(t, link.ExecutorCall(context.Background(), id, m))
	err = link.ExecutorCall(context.Background(), "stream-0", m)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")

	// Cancelling the subscription's context closes the channel and the
	// connection.
	cancel()
	for range events {
	}
	require.Eventually(t, func() bool { return !a.connected() }, waitFor, tick)

	// A refused subscription is an error.
	a.setRefuse(fmt.Errorf("no such executor"))
	_, _, err = link.SubscribeExecutor(context.Background(), call(executorpb.Call_SUBSCRIBE))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no such executor")

	// So is an agent that is not there.
	srv.Close()
	_, _, err = HTTPAgent(srv.URL).SubscribeExecutor(context.Background(), call(executorpb.Call_SUBSCRIBE))
	require.Error(t, err)
}

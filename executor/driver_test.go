package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
)

// recExec records the callbacks it gets. Shutdown stops the driver.
type recExec struct {
	mu    sync.Mutex
	calls []string
	infos []Info
}

func (r *recExec) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recExec) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *recExec) has(call string) bool {
	for _, c := range r.log() {
		if c == call {
			return true
		}
	}
	return false
}

func (r *recExec) Registered(ctx context.Context, d *Driver, info Info) {
	r.mu.Lock()
	r.infos = append(r.infos, info)
	r.mu.Unlock()
	r.add("registered")
}

func (r *recExec) Reregistered(ctx context.Context, d *Driver, info Info) {
	r.mu.Lock()
	r.infos = append(r.infos, info)
	r.mu.Unlock()
	r.add("reregistered")
}

func (r *recExec) Disconnected(ctx context.Context, d *Driver) { r.add("disconnected") }

func (r *recExec) LaunchTask(ctx context.Context, d *Driver, task *mesospb.TaskInfo) {
	r.add("launch %s", task.TaskID.Value)
}

func (r *recExec) LaunchTaskGroup(ctx context.Context, d *Driver, g *mesospb.TaskGroupInfo) {
	var ids []string
	for _, t := range g.Tasks {
		ids = append(ids, t.TaskID.Value)
	}
	r.add("group %s", strings.Join(ids, ","))
}

func (r *recExec) KillTask(ctx context.Context, d *Driver, id mesospb.TaskID, p *mesospb.KillPolicy) {
	r.add("kill %s %v", id.Value, time.Duration(p.GetGracePeriod().GetNanoseconds()))
}

func (r *recExec) Acknowledged(ctx context.Context, d *Driver, id mesospb.TaskID, uuid []byte) {
	r.add("ack %s %x", id.Value, uuid)
}

func (r *recExec) FrameworkMessage(ctx context.Context, d *Driver, data []byte) {
	r.add("message %s", data)
}

func (r *recExec) Shutdown(ctx context.Context, d *Driver) {
	r.add("shutdown")
	d.Stop()
}

func (r *recExec) Error(ctx context.Context, d *Driver, msg string) { r.add("error %s", msg) }

var epoch = time.Unix(1_700_000_000, 0)

// runDriver starts d.Run and returns its result channel; the test ends by
// cancelling Run's context, if it is still running.
func runDriver(t *testing.T, d *Driver) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(waitFor):
			t.Error("Run did not return")
		}
	})
	return done
}

func runResult(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
		return nil
	}
}

func newTestDriver(t *testing.T, e Executor, a *fakeAgent, clk clock.Clock, mutate ...func(*Config)) *Driver {
	t.Helper()
	cfg := Config{
		Agent:       a,
		FrameworkID: mesospb.FrameworkID{Value: "f1"},
		ExecutorID:  mesospb.ExecutorID{Value: "e1"},
		Clock:       clk,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	d, err := NewDriver(e, cfg)
	require.NoError(t, err)
	return d
}

func taskInfo(id string) mesospb.TaskInfo {
	return mesospb.TaskInfo{Name: id, TaskID: mesospb.TaskID{Value: id}, AgentID: mesospb.AgentID{Value: "a1"}}
}

func TestDriverSubscribesAndDispatches(t *testing.T) {
	a := newFakeAgent()
	rec := &recExec{}
	d := newTestDriver(t, rec, a, clock.NewFake(epoch))
	done := runDriver(t, d)

	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)
	subs := a.subscribeCalls()
	require.Len(t, subs, 1)
	sub := subs[0]
	assert.Equal(t, executorpb.Call_SUBSCRIBE, sub.GetType())
	assert.Equal(t, "e1", sub.ExecutorID.Value)
	assert.Equal(t, "f1", sub.FrameworkID.Value)
	require.NotNil(t, sub.Subscribe)
	assert.Empty(t, sub.Subscribe.UnacknowledgedTasks)
	assert.Empty(t, sub.Subscribe.UnacknowledgedUpdates)
	rec.mu.Lock()
	info := rec.infos[0]
	rec.mu.Unlock()
	assert.Equal(t, "e1", info.Executor.ExecutorID.Value)
	assert.Equal(t, "f1", info.Framework.ID.Value)
	assert.Equal(t, "a1", info.Agent.ID.Value)
	assert.Equal(t, "c1", info.ContainerID.Value)

	msg := event(executorpb.Event_MESSAGE)
	msg.Message = &executorpb.Event_Message{Data: []byte("hello")}
	errEv := event(executorpb.Event_ERROR)
	errEv.Error = &executorpb.Event_Error{Message: "bad call"}
	ack := event(executorpb.Event_ACKNOWLEDGED)
	ack.Acknowledged = &executorpb.Event_Acknowledged{TaskID: mesospb.TaskID{Value: "t1"}, UUID: []byte{1, 2}}
	for _, ev := range []*executorpb.Event{
		launchEvent(taskInfo("t1")),
		event(executorpb.Event_HEARTBEAT),
		event(executorpb.Event_LAUNCH), // no payload: dropped
		launchGroupEvent(taskInfo("t2"), taskInfo("t3")),
		killEvent("t1", 5*time.Second),
		msg,
		event(executorpb.Event_Type(99)), // from a newer agent: ignored
		errEv,
		ack,
		event(executorpb.Event_SUBSCRIBED), // a second one: ignored
		event(executorpb.Event_SHUTDOWN),
	} {
		a.push(t, ev)
	}
	require.NoError(t, runResult(t, done), "Shutdown called Stop")
	assert.Equal(t, []string{
		"registered",
		"launch t1",
		"group t2,t3",
		"kill t1 5s",
		"message hello",
		"error bad call",
		"ack t1 0102",
		"shutdown",
	}, rec.log())
	require.Eventually(t, func() bool { return !a.connected() }, waitFor, tick, "Run ended the stream")
}

func TestDriverStatusUpdatesAndResubscription(t *testing.T) {
	a := newFakeAgent()
	rec := &recExec{}
	clk := clock.NewFake(epoch)
	d := newTestDriver(t, rec, a, clk)
	done := runDriver(t, d)
	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)

	a.push(t, launchEvent(taskInfo("t1")))
	a.push(t, launchEvent(taskInfo("t2")))
	require.Eventually(t, func() bool { return rec.has("launch t2") }, waitFor, tick)

	ctx := context.Background()
	send := func(id string, state mesospb.TaskState) {
		t.Helper()
		require.NoError(t, d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: id}, State: state.Enum()}))
	}
	send("t1", mesospb.TASK_RUNNING)
	send("t2", mesospb.TASK_RUNNING)
	send("t1", mesospb.TASK_FINISHED)
	sent := a.updates()
	require.Len(t, sent, 3)
	seen := map[string]bool{}
	for _, st := range sent {
		assert.Len(t, st.UUID, 16)
		assert.False(t, seen[string(st.UUID)], "uuids differ")
		seen[string(st.UUID)] = true
		assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, st.GetSource())
		assert.Equal(t, "e1", st.GetExecutorID().GetValue())
		assert.Equal(t, "a1", st.GetAgentID().GetValue(), "agent ID from SUBSCRIBED")
		assert.Equal(t, float64(epoch.Unix()), st.GetTimestamp())
	}
	assert.Equal(t, []mesospb.TaskState{mesospb.TASK_RUNNING, mesospb.TASK_FINISHED}, a.taskStates("t1"))

	// The agent acknowledges t2's update only.
	ack := ackEvent(sent[1])
	a.push(t, ack)
	require.Eventually(t, func() bool { return rec.has(fmt.Sprintf("ack t2 %x", sent[1].UUID)) }, waitFor, tick)

	// The stream ends. The driver reconnects after a backoff (the stream was
	// short); meanwhile an update is kept and a message refused.
	a.drop()
	require.Eventually(t, func() bool { return rec.has("disconnected") && clk.Waiters() == 1 }, waitFor, tick)
	send("t2", mesospb.TASK_FINISHED)
	require.ErrorIs(t, d.SendFrameworkMessage(ctx, []byte("x")), ErrNotConnected)
	assert.Len(t, a.updates(), 3, "no UPDATE call without a stream")
	clk.Advance(initialBackoff)
	require.Eventually(t, func() bool { return rec.has("reregistered") }, waitFor, tick)

	subs := a.subscribeCalls()
	require.Len(t, subs, 2)
	resub := subs[1].Subscribe
	require.NotNil(t, resub)
	var unacked []string
	for _, u := range resub.UnacknowledgedUpdates {
		unacked = append(unacked, fmt.Sprintf("%s %v %x", u.Status.TaskID.Value, u.Status.GetState(), u.Status.UUID))
	}
	require.Len(t, unacked, 3)
	assert.Equal(t, fmt.Sprintf("t1 TASK_RUNNING %x", sent[0].UUID), unacked[0])
	assert.Equal(t, fmt.Sprintf("t1 TASK_FINISHED %x", sent[2].UUID), unacked[1])
	assert.True(t, strings.HasPrefix(unacked[2], "t2 TASK_FINISHED "), unacked[2])
	require.Len(t, resub.UnacknowledgedTasks, 1, "t2 had an update acknowledged")
	assert.Equal(t, "t1", resub.UnacknowledgedTasks[0].TaskID.Value)

	// Connected again: messages go through.
	require.NoError(t, d.SendFrameworkMessage(ctx, []byte("hi")))
	calls := a.otherCalls()
	last := calls[len(calls)-1]
	assert.Equal(t, executorpb.Call_MESSAGE, last.GetType())
	assert.Equal(t, "hi", string(last.Message.Data))

	d.Stop()
	require.NoError(t, runResult(t, done))
	require.ErrorIs(t, d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t1"}, State: mesospb.TASK_RUNNING.Enum()}), ErrStopped)
}

func TestDriverUpdateBeforeRunGoesWithSubscribe(t *testing.T) {
	a := newFakeAgent()
	rec := &recExec{}
	d := newTestDriver(t, rec, a, clock.NewFake(epoch))
	uuid := NewUUID()
	require.NoError(t, d.SendStatusUpdate(context.Background(), mesospb.TaskStatus{
		TaskID: mesospb.TaskID{Value: "t1"}, State: mesospb.TASK_FAILED.Enum(), UUID: uuid,
	}))
	runDriver(t, d)
	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)
	ups := a.subscribeCalls()[0].Subscribe.UnacknowledgedUpdates
	require.Len(t, ups, 1)
	assert.Equal(t, uuid, ups[0].Status.UUID, "a caller's uuid is kept")
	assert.Equal(t, mesospb.TaskStatus_SOURCE_EXECUTOR, ups[0].Status.GetSource())
}

func TestDriverFailedUpdateIsResentBySubscribe(t *testing.T) {
	a := newFakeAgent()
	rec := &recExec{}
	clk := clock.NewFake(epoch)
	d := newTestDriver(t, rec, a, clk)
	runDriver(t, d)
	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)

	a.mu.Lock()
	a.failCalls = 1
	a.mu.Unlock()
	require.NoError(t, d.SendStatusUpdate(context.Background(), mesospb.TaskStatus{
		TaskID: mesospb.TaskID{Value: "t1"}, State: mesospb.TASK_RUNNING.Enum(),
	}), "a failed call is not the caller's problem")
	require.Eventually(t, func() bool { return rec.has("disconnected") && clk.Waiters() == 1 }, waitFor, tick)
	clk.Advance(initialBackoff)
	require.Eventually(t, func() bool { return rec.has("reregistered") }, waitFor, tick)
	ups := a.subscribeCalls()[1].Subscribe.UnacknowledgedUpdates
	require.Len(t, ups, 1)
	assert.Equal(t, "t1", ups[0].Status.TaskID.Value)
}

func TestDriverInvalidStatus(t *testing.T) {
	d := newTestDriver(t, &recExec{}, newFakeAgent(), clock.NewFake(epoch))
	ctx := context.Background()
	for name, st := range map[string]mesospb.TaskStatus{
		"no task ID": {State: mesospb.TASK_RUNNING.Enum()},
		"no state":   {TaskID: mesospb.TaskID{Value: "t"}},
		"short uuid": {TaskID: mesospb.TaskID{Value: "t"}, State: mesospb.TASK_RUNNING.Enum(), UUID: []byte{1}},
	} {
		require.ErrorIs(t, d.SendStatusUpdate(ctx, st), ErrInvalidStatus, name)
	}
}

// TestDriverBackoffAndRecoveryTimeout drives the reconnection backoff with
// the fake clock: waits double from 100 ms up to the cap, the last attempt
// is at the recovery deadline, then the executor is shut down and Run
// returns ErrRecoveryTimeout.
func TestDriverBackoffAndRecoveryTimeout(t *testing.T) {
	a := newFakeAgent()
	a.setRefuse(errors.New("agent down"))
	rec := &recExec{}
	clk := clock.NewFake(epoch)
	d := newTestDriver(t, rec, a, clk, func(c *Config) {
		c.RecoveryTimeout = 2 * time.Second
		c.SubscriptionBackoffMax = 500 * time.Millisecond
	})
	done := runDriver(t, d)

	waits := []time.Duration{100, 200, 400, 500, 500, 300} // ms; the last one cut by the deadline
	attempts := 1
	for _, w := range waits {
		w *= time.Millisecond
		require.Eventually(t, func() bool { return a.numSubscribes() == attempts && clk.Waiters() == 1 }, waitFor, tick)
		clk.Advance(w - time.Nanosecond)
		require.Equal(t, 1, clk.Waiters(), "the backoff timer has not fired before %v", w)
		require.Equal(t, attempts, a.numSubscribes())
		clk.Advance(time.Nanosecond)
		attempts++
	}
	err := runResult(t, done)
	require.ErrorIs(t, err, ErrRecoveryTimeout)
	assert.Equal(t, attempts, a.numSubscribes())
	assert.Equal(t, epoch.Add(2*time.Second), clk.Now())
	assert.Equal(t, []string{"shutdown"}, rec.log())
}

// TestDriverRecoveryAfterAgentRestart: the agent goes away, refuses for a
// while, and comes back within the recovery timeout.
func TestDriverRecoveryAfterAgentRestart(t *testing.T) {
	a := newFakeAgent()
	rec := &recExec{}
	clk := clock.NewFake(epoch)
	d := newTestDriver(t, rec, a, clk, func(c *Config) { c.RecoveryTimeout = time.Minute })
	done := runDriver(t, d)
	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)

	// A stream that lasted longer than the backoff cap: retried at once.
	clk.Advance(DefaultSubscriptionBackoffMax)
	a.setRefuse(errors.New("restarting"))
	a.drop()
	require.Eventually(t, func() bool { return a.numSubscribes() == 2 && clk.Waiters() == 1 }, waitFor, tick)
	clk.Advance(initialBackoff)
	require.Eventually(t, func() bool { return a.numSubscribes() == 3 && clk.Waiters() == 1 }, waitFor, tick)
	a.setRefuse(nil)
	clk.Advance(2 * initialBackoff)
	require.Eventually(t, func() bool { return rec.has("reregistered") }, waitFor, tick)
	assert.Equal(t, []string{"registered", "disconnected", "reregistered"}, rec.log())
	d.Stop()
	require.NoError(t, runResult(t, done))
}

func TestDriverExitOnDisconnect(t *testing.T) {
	a := newFakeAgent()
	rec := &recExec{}
	d := newTestDriver(t, rec, a, clock.NewFake(epoch), func(c *Config) { c.ExitOnDisconnect = true })
	done := runDriver(t, d)
	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)
	a.drop()
	require.ErrorIs(t, runResult(t, done), ErrDisconnected)
	assert.Equal(t, []string{"registered", "disconnected", "shutdown"}, rec.log())
	assert.Equal(t, 1, a.numSubscribes(), "no reconnection")
}

func TestDriverContextEndsRunAndItsGoroutines(t *testing.T) {
	a := newFakeAgent()
	rec := &recExec{}
	d := newTestDriver(t, rec, a, clock.NewFake(epoch))
	assert.False(t, d.Go(func(context.Context) {}), "Go before Run")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	require.Eventually(t, func() bool { return rec.has("registered") }, waitFor, tick)

	var finished atomic.Bool
	require.True(t, d.Go(func(ctx context.Context) {
		<-ctx.Done()
		finished.Store(true)
	}))
	cancel()
	require.ErrorIs(t, runResult(t, done), context.Canceled)
	assert.True(t, finished.Load(), "Run waited for the goroutine")
	assert.False(t, d.Go(func(context.Context) {}), "Go after Run")
	require.ErrorIs(t, d.Run(context.Background()), ErrAlreadyRunning)
}

func TestDriverStopBeforeRun(t *testing.T) {
	d := newTestDriver(t, &recExec{}, newFakeAgent(), clock.NewFake(epoch))
	d.Stop()
	d.Stop()
	require.NoError(t, d.Run(context.Background()))
}

func TestNewDriverValidates(t *testing.T) {
	good := Config{Agent: newFakeAgent(), FrameworkID: mesospb.FrameworkID{Value: "f"}, ExecutorID: mesospb.ExecutorID{Value: "e"}}
	_, err := NewDriver(&recExec{}, good)
	require.NoError(t, err)
	for name, mutate := range map[string]func(*Config){
		"no agent":        func(c *Config) { c.Agent = nil },
		"no framework":    func(c *Config) { c.FrameworkID.Value = "" },
		"no executor":     func(c *Config) { c.ExecutorID.Value = "" },
		"negative backup": func(c *Config) { c.SubscriptionBackoffMax = -1 },
		"negative timout": func(c *Config) { c.RecoveryTimeout = -1 },
	} {
		cfg := good
		mutate(&cfg)
		_, err := NewDriver(&recExec{}, cfg)
		require.ErrorIs(t, err, ErrInvalidConfig, name)
	}
	_, err = NewDriver(nil, good)
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"MESOS_FRAMEWORK_ID":             "fw-1",
		"MESOS_EXECUTOR_ID":              "ex-1",
		"MESOS_AGENT_ENDPOINT":           "127.0.0.1:5051",
		"MESOS_CHECKPOINT":               "1",
		"MESOS_RECOVERY_TIMEOUT":         "15mins",
		"MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs",
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := ConfigFromEnv(getenv)
	require.NoError(t, err)
	assert.Equal(t, "fw-1", cfg.FrameworkID.Value)
	assert.Equal(t, "ex-1", cfg.ExecutorID.Value)
	assert.Equal(t, "127.0.0.1:5051", cfg.AgentEndpoint)
	assert.False(t, cfg.ExitOnDisconnect)
	assert.Equal(t, 15*time.Minute, cfg.RecoveryTimeout)
	assert.Equal(t, 2*time.Second, cfg.SubscriptionBackoffMax)
	require.NotNil(t, cfg.Agent, "the HTTP link to MESOS_AGENT_ENDPOINT")
	assert.Equal(t, "http://127.0.0.1:5051/api/v1/executor", cfg.Agent.(*httpAgent).url)

	env["MESOS_CHECKPOINT"] = "0"
	delete(env, "MESOS_AGENT_ENDPOINT")
	cfg, err = ConfigFromEnv(getenv)
	require.NoError(t, err)
	assert.True(t, cfg.ExitOnDisconnect)
	assert.Nil(t, cfg.Agent, "no endpoint, no link")

	env["MESOS_RECOVERY_TIMEOUT"] = "soon"
	_, err = ConfigFromEnv(getenv)
	require.ErrorIs(t, err, ErrInvalidConfig)
	delete(env, "MESOS_RECOVERY_TIMEOUT")
	delete(env, "MESOS_EXECUTOR_ID")
	_, err = ConfigFromEnv(getenv)
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"15mins":  15 * time.Minute,
		"2secs":   2 * time.Second,
		"1.5secs": 1500 * time.Millisecond,
		"100ms":   100 * time.Millisecond,
		"3us":     3 * time.Microsecond,
		"1hrs":    time.Hour,
		"2days":   48 * time.Hour,
		"1weeks":  7 * 24 * time.Hour,
		"7ns":     7,
		"1m30s":   90 * time.Second,
		" 5secs ": 5 * time.Second,
	} {
		got, err := ParseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "secs", "5 parsecs", "-1s", "1e400secs"} {
		_, err := ParseDuration(in)
		assert.Error(t, err, in)
	}
}

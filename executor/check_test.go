package executor

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
)

// checkWatch counts, per task and kind of check, the times a check loop
// has armed its delay or interval timer (once after each result), so that
// a test advances the fake clock only when the loop waits on it.
type checkWatch struct {
	mu      sync.Mutex
	waiting map[string]int // task + "/health" or "/check"
	probing map[string]int
}

func watchChecks(b *builtin) *checkWatch {
	w := &checkWatch{waiting: map[string]int{}, probing: map[string]int{}}
	b.checkHook = func(taskID string, health bool, p checkPhase) {
		key := taskID + "/check"
		if health {
			key = taskID + "/health"
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if p == phaseWaiting {
			w.waiting[key]++
		} else {
			w.probing[key]++
		}
	}
	return w
}

func (w *checkWatch) count(m map[string]int, key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return m[key]
}

// waitArmed waits until the loop of key has armed its timer n times (a
// zero delay or interval arms none).
func (w *checkWatch) waitArmed(t *testing.T, key string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return w.count(w.waiting, key) >= n }, waitFor, tick, "%s armed %d times", key, n)
	require.Equal(t, n, w.count(w.waiting, key), key)
}

// waitProbing waits until the loop of key has started its n-th run.
func (w *checkWatch) waitProbing(t *testing.T, key string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return w.count(w.probing, key) >= n }, waitFor, tick, "%s run %d", key, n)
}

// checkUpdates are the task's updates with the reason.
func checkUpdates(ups []mesospb.TaskStatus, reason mesospb.TaskStatus_Reason) []mesospb.TaskStatus {
	var out []mesospb.TaskStatus
	for _, u := range ups {
		if u.GetReason() == reason {
			out = append(out, u)
		}
	}
	return out
}

func healthValues(ups []mesospb.TaskStatus) []bool {
	var out []bool
	for _, u := range checkUpdates(ups, mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED) {
		out = append(out, u.GetHealthy())
	}
	return out
}

func commandHealthCheck(script string) *mesospb.HealthCheck {
	return &mesospb.HealthCheck{
		Type:                mesospb.HealthCheck_COMMAND.Enum(),
		Command:             &mesospb.CommandInfo{Value: ptr(script)},
		DelaySeconds:        ptr(5.0),
		IntervalSeconds:     ptr(10.0),
		TimeoutSeconds:      ptr(20.0),
		ConsecutiveFailures: ptr(uint32(3)),
		GracePeriodSeconds:  ptr(0.0),
	}
}

// TestCommandExecutorHealthCheckCommand: a COMMAND health check, run in
// the task's sandbox with the task's environment, first after its delay,
// then every interval; an update on the first success, on every failure
// and on a success after failures, each TASK_RUNNING with reason
// REASON_TASK_HEALTH_CHECK_STATUS_UPDATED; after consecutive_failures
// failures the task is killed (SIGTERM, then SIGKILL after its kill
// policy's grace period) and its TASK_KILLED says healthy=false.
func TestCommandExecutorHealthCheckCommand(t *testing.T) {
	h := newCmdHarness(t)
	e := NewCommandExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	ti := withGrace(shellTask("t1", "trap 'echo term > term' TERM; echo ready > ready; while :; do sleep 0.05; done"), 30*time.Second)
	ti.HealthCheck = commandHealthCheck(`test -f healthy && test "$BASE" = base && test "$CHECK_ENV" = yes`)
	ti.HealthCheck.Command.Environment = &mesospb.Environment{Variables: []mesospb.Environment_Variable{{Name: "CHECK_ENV", Value: ptr("yes")}}}
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", started...)
	h.readFile(filepath.Join(h.cfg.Sandbox, "ready"))
	healthy := filepath.Join(h.cfg.Sandbox, "healthy")
	require.NoError(t, os.WriteFile(healthy, nil, 0o644))

	const key = "t1/health"
	w.waitArmed(t, key, 1) // the delay
	h.clk.Advance(4 * time.Second)
	assert.Equal(t, 0, w.count(w.probing, key), "no run before the delay")
	step := func(d time.Duration, n int, want ...bool) {
		t.Helper()
		h.clk.Advance(d)
		w.waitArmed(t, key, n)
		assert.Equal(t, want, healthValues(h.agent.taskUpdates("t1")))
	}
	step(time.Second, 2, true)    // the first run, at the delay: healthy
	step(10*time.Second, 3, true) // healthy again: no update
	require.NoError(t, os.Remove(healthy))
	step(10*time.Second, 4, true, false)        // a failure
	step(10*time.Second, 5, true, false, false) // and another: every failure is reported
	require.NoError(t, os.WriteFile(healthy, nil, 0o644))
	step(10*time.Second, 6, true, false, false, true) // healthy again
	require.NoError(t, os.Remove(healthy))
	step(10*time.Second, 7, true, false, false, true, false)
	step(10*time.Second, 8, true, false, false, true, false, false)

	// The third failure in a row: the task is killed with SIGTERM, and
	// destroyed when its grace period is over.
	h.clk.Advance(10 * time.Second)
	h.readFile(filepath.Join(h.cfg.Sandbox, "term"))
	assert.Equal(t, started, h.agent.taskStates("t1")[:2])
	require.Eventually(t, func() bool { return h.clk.Waiters() == 1 }, waitFor, tick, "only the kill's timer: the checks stopped")
	h.clk.Advance(30 * time.Second)
	require.Eventually(t, func() bool {
		ups := h.agent.taskUpdates("t1")
		return len(ups) > 0 && isTerminal(ups[len(ups)-1].GetState())
	}, waitFor, tick)

	ups := h.agent.taskUpdates("t1")
	health := checkUpdates(ups, mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)
	assert.Equal(t, []bool{true, false, false, true, false, false, false}, healthValues(ups))
	for _, u := range health {
		assert.Equal(t, mesospb.TASK_RUNNING, u.GetState())
		assert.Len(t, u.UUID, 16)
		assert.Nil(t, u.CheckStatus, "no check, no check_status")
	}
	last := ups[len(ups)-1]
	assert.Equal(t, mesospb.TASK_KILLED, last.GetState())
	assert.Equal(t, "Command terminated with signal SIGKILL", last.GetMessage())
	require.NotNil(t, last.Healthy)
	assert.False(t, last.GetHealthy(), "the terminal update says the task was unhealthy")
	assert.Nil(t, last.Reason, "Mesos gives no reason for a kill by health check")
	assert.Len(t, ups, 2+7+1)
	h.requireStopped()
}

// TestCommandExecutorHealthCheckTimeout: a run longer than timeout_seconds
// is stopped (its container destroyed) and fails; with
// consecutive_failures 1 the task is then killed.
func TestCommandExecutorHealthCheckTimeout(t *testing.T) {
	h := newCmdHarness(t)
	e := NewCommandExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	ti := shellTask("t1", "sleep 100")
	ti.HealthCheck = commandHealthCheck("echo checking > checking; sleep 1000")
	ti.HealthCheck.DelaySeconds = ptr(0.0)
	ti.HealthCheck.ConsecutiveFailures = ptr(uint32(1))
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", started...)

	w.waitProbing(t, "t1/health", 1)
	h.readFile(filepath.Join(h.cfg.Sandbox, "checking"))
	ids, err := h.c.Containers(context.Background())
	require.NoError(t, err)
	assert.Len(t, ids, 2, "the check runs as a container of its own")
	h.clk.Advance(19 * time.Second)
	assert.Equal(t, started, h.agent.taskStates("t1"), "still running its check")
	h.clk.Advance(time.Second)
	ups := h.waitStates("t1", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	assert.False(t, ups[2].GetHealthy())
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, ups[2].GetReason())
	assert.Equal(t, "Command terminated with signal SIGTERM", ups[3].GetMessage())
	assert.False(t, ups[3].GetHealthy())
	h.requireStopped()
}

// TestCommandExecutorHealthGracePeriod: failures within
// grace_period_seconds of the launch are ignored until the first success;
// with a TCP health check against a port the test opens and closes.
func TestCommandExecutorHealthGracePeriod(t *testing.T) {
	h := newCmdHarness(t)
	e := NewCommandExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	port := freePort(t)
	ti := shellTask("t1", "sleep 100")
	ti.HealthCheck = &mesospb.HealthCheck{
		Type:                mesospb.HealthCheck_TCP.Enum(),
		TCP:                 &mesospb.HealthCheck_TCPCheckInfo{Port: uint32(port)},
		DelaySeconds:        ptr(0.0),
		IntervalSeconds:     ptr(10.0),
		GracePeriodSeconds:  ptr(25.0),
		ConsecutiveFailures: ptr(uint32(2)),
	}
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", started...)
	const key = "t1/health"
	w.waitArmed(t, key, 1) // after the first run (no delay), refused
	h.clk.Advance(10 * time.Second)
	w.waitArmed(t, key, 2)
	h.clk.Advance(10 * time.Second)
	w.waitArmed(t, key, 3) // at 20 s: still in the grace period
	assert.Empty(t, healthValues(h.agent.taskUpdates("t1")), "failures in the grace period are not reported")
	h.clk.Advance(10 * time.Second)
	w.waitArmed(t, key, 4) // at 30 s: past it
	assert.Equal(t, []bool{false}, healthValues(h.agent.taskUpdates("t1")))

	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Skipf("port %d was taken meanwhile: %v", port, err)
	}
	h.clk.Advance(10 * time.Second)
	w.waitArmed(t, key, 5)
	assert.Equal(t, []bool{false, true}, healthValues(h.agent.taskUpdates("t1")))
	require.NoError(t, ln.Close())
	h.clk.Advance(10 * time.Second)
	w.waitArmed(t, key, 6)
	h.clk.Advance(10 * time.Second)
	h.waitStates("t1", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	assert.Equal(t, []bool{false, true, false, false}, healthValues(h.agent.taskUpdates("t1")))
	h.requireStopped()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// TestCommandExecutorCheckCommand: a COMMAND check: every update of the
// task carries a check_status, empty (of type COMMAND) until a result;
// an update with REASON_TASK_CHECK_STATUS_UPDATED when the exit code
// changes; a failed run (timed out) reports the empty status.
func TestCommandExecutorCheckCommand(t *testing.T) {
	h := newCmdHarness(t)
	e := NewCommandExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	ti := shellTask("t1", "sleep 100")
	ti.Check = &mesospb.CheckInfo{
		Type: mesospb.CheckInfo_COMMAND.Enum(),
		Command: &mesospb.CheckInfo_Command{Command: mesospb.CommandInfo{
			Shell: ptr(false), Value: ptr("/bin/sh"), Arguments: []string{"sh", "-c", `test -f hang && sleep 1000; exit "$(cat code)"`},
		}},
		DelaySeconds: ptr(1.0), IntervalSeconds: ptr(2.0), TimeoutSeconds: ptr(3.0),
	}
	require.NoError(t, os.WriteFile(filepath.Join(h.cfg.Sandbox, "code"), []byte("3"), 0o644))
	h.agent.push(t, launchEvent(ti))
	ups := h.waitStates("t1", started...)
	empty := emptyCheckStatus(mesospb.CheckInfo_COMMAND)
	for _, u := range ups {
		assert.Equal(t, empty, u.CheckStatus, "%v has an empty check status", u.GetState())
	}
	const key = "t1/check"
	codes := func() []string {
		var out []string
		for _, u := range checkUpdates(h.agent.taskUpdates("t1"), mesospb.TaskStatus_REASON_TASK_CHECK_STATUS_UPDATED) {
			assert.Equal(t, mesospb.TASK_RUNNING, u.GetState())
			assert.Equal(t, mesospb.CheckInfo_COMMAND, u.CheckStatus.GetType())
			assert.Nil(t, u.Healthy)
			if c := u.CheckStatus.GetCommand(); c.ExitCode != nil {
				out = append(out, strconv.Itoa(int(c.GetExitCode())))
			} else {
				out = append(out, "none")
			}
		}
		return out
	}
	w.waitArmed(t, key, 1)
	h.clk.Advance(time.Second)
	w.waitArmed(t, key, 2)
	assert.Equal(t, []string{"3"}, codes())
	h.clk.Advance(2 * time.Second)
	w.waitArmed(t, key, 3)
	assert.Equal(t, []string{"3"}, codes(), "unchanged: no update")
	require.NoError(t, os.WriteFile(filepath.Join(h.cfg.Sandbox, "code"), []byte("0"), 0o644))
	h.clk.Advance(2 * time.Second)
	w.waitArmed(t, key, 4)
	assert.Equal(t, []string{"3", "0"}, codes())
	require.NoError(t, os.WriteFile(filepath.Join(h.cfg.Sandbox, "hang"), nil, 0o644))
	h.clk.Advance(2 * time.Second)
	w.waitProbing(t, key, 4)
	h.clk.Advance(3 * time.Second) // its timeout
	w.waitArmed(t, key, 5)
	assert.Equal(t, []string{"3", "0", "none"}, codes(), "a run that timed out: the empty status")

	h.agent.push(t, killEvent("t1", -1))
	ups = h.waitStates("t1", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	assert.Equal(t, empty, ups[5].CheckStatus, "a terminal update is made afresh: empty check status")
	h.requireStopped()
}

// TestCommandExecutorHTTPChecks: an HTTP check and an HTTP health check of
// one task against a server the test runs on 127.0.0.1: the status code
// (after redirects) is the check's status; 200-399 is healthy; each
// update is the last one with the change, so a check update keeps the
// task's health and a health update its check status.
func TestCommandExecutorHTTPChecks(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	var paths sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path, true)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/health", http.StatusFound)
			return
		}
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	port := uint32(srv.Listener.Addr().(*net.TCPAddr).Port)

	h := newCmdHarness(t)
	e := NewCommandExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	ti := shellTask("t1", "sleep 100")
	ti.Check = &mesospb.CheckInfo{
		Type: mesospb.CheckInfo_HTTP.Enum(), HTTP: &mesospb.CheckInfo_Http{Port: port, Path: ptr("/check")},
		DelaySeconds: ptr(0.0), IntervalSeconds: ptr(10.0),
	}
	ti.HealthCheck = &mesospb.HealthCheck{
		Type: mesospb.HealthCheck_HTTP.Enum(), HTTP: &mesospb.HealthCheck_HTTPCheckInfo{Port: port, Path: ptr("/redirect")},
		DelaySeconds: ptr(5.0), IntervalSeconds: ptr(10.0), GracePeriodSeconds: ptr(0.0), ConsecutiveFailures: ptr(uint32(10)),
	}
	h.agent.push(t, launchEvent(ti))
	w.waitArmed(t, "t1/check", 1) // its first run, at once, done
	w.waitArmed(t, "t1/health", 1)
	// The check at 0 s, the health check at 5 s.
	h.clk.Advance(5 * time.Second)
	w.waitArmed(t, "t1/health", 2)
	ups := h.agent.taskUpdates("t1")
	require.Len(t, ups, 4)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_CHECK_STATUS_UPDATED, ups[2].GetReason())
	assert.Equal(t, uint32(200), ups[2].CheckStatus.GetHTTP().GetStatusCode())
	assert.Nil(t, ups[2].Healthy)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, ups[3].GetReason())
	assert.True(t, ups[3].GetHealthy())
	assert.Equal(t, uint32(200), ups[3].CheckStatus.GetHTTP().GetStatusCode(), "the health update keeps the check status")
	_, redirected := paths.Load("/health")
	assert.True(t, redirected, "the redirect was followed")

	code.Store(503)
	h.clk.Advance(5 * time.Second) // the check at 10 s
	w.waitArmed(t, "t1/check", 2)
	h.clk.Advance(5 * time.Second) // the health check at 15 s
	w.waitArmed(t, "t1/health", 3)
	ups = h.agent.taskUpdates("t1")
	require.Len(t, ups, 6)
	assert.Equal(t, uint32(503), ups[4].CheckStatus.GetHTTP().GetStatusCode())
	assert.True(t, ups[4].GetHealthy(), "the check update keeps the health")
	assert.False(t, ups[5].GetHealthy())
	assert.Equal(t, uint32(503), ups[5].CheckStatus.GetHTTP().GetStatusCode())

	srv.Close() // refused: the check has no status code, the health check fails
	h.clk.Advance(5 * time.Second)
	w.waitArmed(t, "t1/check", 3)
	ups = h.agent.taskUpdates("t1")
	require.Len(t, ups, 7)
	assert.Equal(t, emptyCheckStatus(mesospb.CheckInfo_HTTP), ups[6].CheckStatus)

	h.agent.push(t, killEvent("t1", -1))
	ups = h.waitStates("t1", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	assert.Nil(t, ups[7].Healthy, "killed by the framework, not for its health")
	h.requireStopped()
}

// TestCommandExecutorInvalidHealthCheck: refused with TASK_ERROR and
// Mesos's master's message.
func TestCommandExecutorInvalidHealthCheck(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewCommandExecutor(h.cfg))
	ti := shellTask("t1", "true")
	ti.HealthCheck = &mesospb.HealthCheck{Type: mesospb.HealthCheck_HTTP.Enum()}
	h.agent.push(t, launchEvent(ti))
	ups := h.waitStates("t1", mesospb.TASK_ERROR)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_INVALID, ups[0].GetReason())
	assert.Equal(t, "Task uses invalid health check: Expecting 'http' to be set for HTTP health check", ups[0].GetMessage())
	h.requireStopped()
}

// TestDefaultExecutorInvalidCheck: a group with an invalid check is
// refused whole, as Mesos's master refuses it.
func TestDefaultExecutorInvalidCheck(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewDefaultExecutor(h.cfg))
	bad := shellTask("bad", "true")
	bad.Check = &mesospb.CheckInfo{Type: mesospb.CheckInfo_TCP.Enum(), TCP: &mesospb.CheckInfo_Tcp{Port: 1}, IntervalSeconds: ptr(-1.0)}
	h.agent.push(t, launchGroupEvent(shellTask("good", "true"), bad))
	for _, id := range []string{"good", "bad"} {
		ups := h.waitStates(id, mesospb.TASK_ERROR)
		assert.Equal(t, mesospb.TaskStatus_REASON_TASK_GROUP_INVALID, ups[0].GetReason())
		assert.Equal(t, "Task 'bad' is invalid: Task uses invalid check: Expecting 'interval_seconds' to be non-negative", ups[0].GetMessage())
		assert.Nil(t, ups[0].CheckStatus)
	}
	h.requireStopped()
}

// TestDefaultExecutorHealthCheckOwnNetwork: a task of a group with a
// network of its own may not have an HTTP or TCP health check.
func TestDefaultExecutorHealthCheckOwnNetwork(t *testing.T) {
	h := newCmdHarness(t)
	h.start(NewDefaultExecutor(h.cfg))
	ti := shellTask("t1", "true")
	ti.Container = &mesospb.ContainerInfo{Type: mesospb.ContainerInfo_MESOS.Enum(), NetworkInfos: []mesospb.NetworkInfo{{Name: ptr("net")}}}
	ti.HealthCheck = &mesospb.HealthCheck{Type: mesospb.HealthCheck_TCP.Enum(), TCP: &mesospb.HealthCheck_TCPCheckInfo{Port: 1}}
	h.agent.push(t, launchGroupEvent(ti))
	ups := h.waitStates("t1", mesospb.TASK_ERROR)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_GROUP_INVALID, ups[0].GetReason())
	assert.Equal(t, "Task 't1' is invalid: HTTP and TCP health checks are not supported for nested containers not joining parent's network", ups[0].GetMessage())
	h.requireStopped()
}

// TestDefaultExecutorHealthKill: a task of a group killed for failing its
// health check is TASK_KILLED with healthy=false; the group's other task
// is killed with it, and (Mesos's default executor's flag is the
// executor's) its update says healthy=false too.
func TestDefaultExecutorHealthKill(t *testing.T) {
	h := newCmdHarness(t)
	e := NewDefaultExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	sick := shellTask("sick", "sleep 100")
	sick.HealthCheck = commandHealthCheck("exit 1")
	sick.HealthCheck.ConsecutiveFailures = ptr(uint32(1))
	h.agent.push(t, launchGroupEvent(sick, shellTask("other", "sleep 100")))
	h.waitStates("sick", started...)
	h.waitStates("other", started...)
	w.waitArmed(t, "sick/health", 1)
	h.clk.Advance(5 * time.Second)
	ups := h.waitStates("sick", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	assert.False(t, ups[2].GetHealthy())
	require.NotNil(t, ups[3].Healthy)
	assert.False(t, ups[3].GetHealthy())
	ups = h.waitStates("other", killed...)
	require.NotNil(t, ups[2].Healthy)
	assert.False(t, ups[2].GetHealthy())
	h.requireStopped()
}

// TestDefaultExecutorPausesChecksWhileDisconnected: the default executor
// runs no check while its stream to the agent is down, and checks at once
// when it is back, as Mesos's pauses and resumes its checkers.
func TestDefaultExecutorPausesChecksWhileDisconnected(t *testing.T) {
	h := newCmdHarness(t)
	e := NewDefaultExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	ti := shellTask("t1", "sleep 100")
	ti.HealthCheck = commandHealthCheck("true")
	h.agent.push(t, launchGroupEvent(ti))
	h.waitStates("t1", started...)
	w.waitArmed(t, "t1/health", 1)
	h.agent.setRefuse(errNotSubscribed)
	h.agent.drop()
	require.Eventually(t, func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		select {
		case <-e.online:
			return false
		default:
			return true
		}
	}, waitFor, tick, "disconnected")
	h.clk.Advance(5 * time.Second) // the delay's end, and the driver's backoff
	assert.Equal(t, 0, w.count(w.probing, "t1/health"), "no check while disconnected")
	h.agent.setRefuse(nil)
	require.Eventually(t, func() bool {
		h.clk.Advance(time.Second) // the driver's backoff
		return h.agent.connected()
	}, waitFor, tick)
	require.Eventually(t, func() bool { return len(healthValues(h.agent.taskUpdates("t1"))) == 1 }, waitFor, tick,
		"the check runs once reconnected")
	h.agent.push(t, killEvent("t1", -1))
	h.waitStates("t1", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	h.requireStopped()
}

// fakeRunner is a CheckRunner that records the commands it is given.
type fakeRunner struct {
	mu   sync.Mutex
	runs []CheckCommand
}

func (r *fakeRunner) RunCheck(ctx context.Context, c CheckCommand) (containerizer.Termination, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, c)
	return containerizer.Termination{ExitCode: 0}, nil
}

// TestCheckRunnerSeam: a CheckRunner given in CommandConfig.Checks runs
// the check commands, told the task's container and a container config
// made from the task's.
func TestCheckRunnerSeam(t *testing.T) {
	h := newCmdHarness(t)
	r := &fakeRunner{}
	h.cfg.Checks = r
	h.cfg.User = ""
	e := NewCommandExecutor(h.cfg)
	w := watchChecks(e.builtin)
	h.start(e)
	ti := shellTask("t1", "sleep 100")
	ti.Command.Environment = &mesospb.Environment{Variables: []mesospb.Environment_Variable{{Name: "TASK_ENV", Value: ptr("t")}}}
	ti.HealthCheck = commandHealthCheck("check me")
	ti.HealthCheck.Command.Environment = &mesospb.Environment{Variables: []mesospb.Environment_Variable{{Name: "BASE", Value: ptr("check")}}}
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", started...)
	w.waitArmed(t, "t1/health", 1)
	h.clk.Advance(5 * time.Second)
	w.waitArmed(t, "t1/health", 2)
	r.mu.Lock()
	require.Len(t, r.runs, 1)
	c := r.runs[0]
	r.mu.Unlock()
	cid := TaskContainerID("run1", ti.TaskID)
	assert.Equal(t, cid, c.TaskContainer)
	assert.Equal(t, cid+".check-1", c.Config.ID)
	assert.Equal(t, containerizer.ShellCommand("check me"), c.Config.Command)
	assert.Equal(t, h.cfg.Sandbox, c.Config.Sandbox)
	assert.Equal(t, []string{"PATH=/usr/local/bin:/usr/bin:/bin", "BASE=check", "KEEP=kept", "TASK_ENV=t"}, c.Config.Env)
	assert.Equal(t, []string{"BASE=check"}, c.Env)
	assert.Equal(t, []bool{true}, healthValues(h.agent.taskUpdates("t1")))
	h.agent.push(t, killEvent("t1", -1))
	h.waitStates("t1", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	h.requireStopped()
}

// TestCommandExecutorReattachedHealthCheck: a task reattached after an
// agent restart is health checked again, its updates made from a
// TASK_RUNNING.
func TestCommandExecutorReattachedHealthCheck(t *testing.T) {
	h := newCmdHarness(t)
	h.startStoppable(NewCommandExecutor(h.cfg))
	ti := shellTask("t1", "sleep 100")
	ti.HealthCheck = &mesospb.HealthCheck{
		Type:                mesospb.HealthCheck_TCP.Enum(),
		TCP:                 &mesospb.HealthCheck_TCPCheckInfo{Port: uint32(freePort(t))},
		DelaySeconds:        ptr(60.0), // not before the restart
		GracePeriodSeconds:  ptr(0.0),
		ConsecutiveFailures: ptr(uint32(1)),
	}
	h.agent.push(t, launchEvent(ti))
	h.waitStates("t1", started...)
	h.agentRestarts()

	e := NewCommandExecutor(h.cfg)
	w := watchChecks(e.builtin)
	require.NoError(t, e.Reattach(context.Background(), ti))
	h.start(e)
	w.waitArmed(t, "t1/health", 1)
	h.clk.Advance(60 * time.Second)
	ups := h.waitStates("t1", append(started[:2:2], mesospb.TASK_RUNNING, mesospb.TASK_KILLED)...)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, ups[2].GetReason())
	assert.False(t, ups[2].GetHealthy())
	assert.False(t, ups[3].GetHealthy())
	h.requireStopped()
}

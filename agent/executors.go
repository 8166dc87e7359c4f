package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/environ"
	"github.com/apronhq/apron/internal/fetch"
)

// The agent's frameworks, executor runs and tasks are the core's tables
// (agentcore.Tables): their states change only through the core's
// methods, which apply an event and say what to do. The shell keeps, by
// run ID, what a run has of I/O: executorRec.

// frameworkRec is a framework with executors or tasks on this agent.
type frameworkRec = agentcore.Framework

// taskRec is a task the agent knows: queued for its executor, launched, or
// terminal with an update not yet acknowledged.
type taskRec = agentcore.Task

// executorKind says what runs an executor: agentcore.ExecutorKind.
type executorKind = agentcore.ExecutorKind

const (
	kindCommand        = agentcore.KindCommand
	kindDefault        = agentcore.KindDefault
	kindGo             = agentcore.KindGo
	kindProcess        = agentcore.KindProcess
	kindCommandProcess = agentcore.KindCommandProcess
)

func parseKind(s string) (executorKind, bool) { return agentcore.ParseExecutorKind(s) }

// execState is an executor's lifecycle, as Mesos's (agentcore).
type execState = agentcore.ExecutorState

const (
	execRegistering = agentcore.ExecutorRegistering // started, has not subscribed yet: its tasks are queued
	execRunning     = agentcore.ExecutorRunning     // subscribed at least once
	execTerminating = agentcore.ExecutorTerminating // told to shut down, or being cleaned up
	execTerminated  = agentcore.ExecutorTerminated  // gone; kept until its tasks' last updates are acknowledged
)

// executorRec is one run of an executor: the core's record of it
// (agentcore.Run), and its I/O, which is the shell's. The agent keeps
// them by run ID (Agent.execs) from the run's start until the core
// forgets it.
type executorRec struct {
	*agentcore.Run

	stream  *execStream         // the current subscription, nil when none
	pending []*executorpb.Event // KILL and SHUTDOWN waiting for a subscription

	cancel        context.CancelFunc // ends an in-process executor's driver
	cleaning      bool               // its containers are being destroyed
	shutdownTimer timerID

	// Executor processes.
	regTimer   timerID // the (re-)registration timeout: it must subscribe by then
	exitStatus *int32  // the wait status of its process, once it has exited
}

// execOf is the shell's record of a run, nil for nil.
func (a *Agent) execOf(r *agentcore.Run) *executorRec {
	if r == nil {
		return nil
	}
	return a.execs[r.ContainerID()]
}

// addExec starts the shell's record of a run.
func (a *Agent) addExec(r *agentcore.Run) *executorRec {
	e := &executorRec{Run: r}
	a.execs[r.ContainerID()] = e
	return e
}

// launchItem is a task or a task group waiting for its executor
// (agentcore.LaunchItem).
type launchItem = agentcore.LaunchItem

// execStream is an executor's subscription. The loop sends on it without
// ever blocking: what does not fit the channel (Config.ExecutorStreamBuffer
// events) waits in a backlog, in order, which a goroutine feeds into the
// channel as the executor reads. Mesos's agent writes an executor's events
// to an unbounded pipe; the backlog is bounded by execBacklogMax bytes,
// past which the stream is closed and the executor subscribes again (its
// unacknowledged tasks and updates are sent again then).
type execStream struct {
	id   string
	ch   chan *executorpb.Event // the subscriber's
	stop func() bool            // stops the watch on the subscriber's context

	mu      sync.Mutex // guards the rest: the loop and the feeding goroutine
	backlog []*executorpb.Event
	bytes   int           // the backlog's encoded size
	feeding bool          // a goroutine feeds the backlog into ch
	closed  bool          // nothing more is sent; ch is closed once the backlog is out
	gone    chan struct{} // closed when the subscriber has gone: drop the backlog
}

// execBacklogMax bounds the bytes of events waiting for one executor.
const execBacklogMax = 64 << 20

func newExecStream(id string, buffer int) *execStream {
	return &execStream{id: id, ch: make(chan *executorpb.Event, buffer), gone: make(chan struct{})}
}

// send queues ev; false if the stream is closed, or is closed now because
// its backlog is over execBacklogMax.
func (s *execStream) send(ev *executorpb.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if !s.feeding {
		select {
		case s.ch <- ev:
			return true
		default:
		}
	}
	n := ev.Size()
	if s.bytes+n > execBacklogMax {
		s.closeLocked()
		return false
	}
	s.backlog = append(s.backlog, ev)
	s.bytes += n
	if !s.feeding {
		s.feeding = true
		go s.feed()
	}
	return true
}

// feed moves the backlog into ch, in order, until it is empty or the
// subscriber has gone.
func (s *execStream) feed() {
	for {
		s.mu.Lock()
		if len(s.backlog) == 0 {
			s.feeding = false
			if s.closed {
				close(s.ch)
			}
			s.mu.Unlock()
			return
		}
		ev := s.backlog[0]
		s.backlog[0] = nil
		s.backlog = s.backlog[1:]
		s.bytes -= ev.Size()
		s.mu.Unlock()
		select {
		case s.ch <- ev:
		case <-s.gone:
			s.mu.Lock()
			s.backlog, s.bytes = nil, 0
			s.mu.Unlock()
		}
	}
}

// isClosed reports whether nothing more can be sent.
func (s *execStream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// close ends the stream: the subscriber reads what is queued, then the end.
func (s *execStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
}

func (s *execStream) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	if !s.feeding {
		close(s.ch)
	}
	s.stop()
}

// abandon ends the stream whose subscriber has gone, dropping its backlog.
func (s *execStream) abandon() {
	s.mu.Lock()
	select {
	case <-s.gone:
	default:
		close(s.gone)
	}
	s.mu.Unlock()
	s.close()
}

func (a *Agent) executor(fwID, execID string) *executorRec {
	return a.execOf(a.tables.Run(fwID, execID))
}

// sendExecutor delivers ev to the executor, or keeps KILL and SHUTDOWN for
// its next subscription; other events for an executor without a stream are
// dropped, as Mesos drops them.
func (a *Agent) sendExecutor(e *executorRec, ev *executorpb.Event) {
	if e.stream != nil && e.stream.send(ev) {
		return
	}
	if e.stream != nil && e.stream.isClosed() {
		a.log.Warn("agent: executor fell behind, closing its stream", "framework", e.FrameworkID(), "executor", e.ID())
		e.stream = nil
	}
	switch ev.GetType() {
	case executorpb.Event_KILL, executorpb.Event_SHUTDOWN:
		e.pending = append(e.pending, ev)
	case executorpb.Event_LAUNCH, executorpb.Event_LAUNCH_GROUP:
		// Launches go through the queue; see subscribeExecutor.
	default:
		a.log.Debug("agent: executor not subscribed, dropping an event", "executor", e.ID(), "event", ev.GetType().String())
	}
}

// frameworkTaken checkpoints the new info of a framework the master
// sends tasks for.
func (a *Agent) frameworkTaken(fw *frameworkRec, changed bool) {
	if changed {
		if err := a.meta.writeFramework(fw.Info()); err != nil {
			a.log.Error("agent: checkpointing a framework", "framework", fw.ID(), "err", err)
		}
	}
}

// updateFramework takes UPDATE_FRAMEWORK's info for a framework on the
// agent.
func (a *Agent) updateFramework(info mesospb.FrameworkInfo) {
	if a.tables.UpdateFramework(info) {
		a.frameworkTaken(a.tables.Framework(info.ID.Value), true)
	}
}

// newRun names a new executor run: a fresh container ID, and the sandbox
// it names.
func (a *Agent) newRun(fwID, execID string) (containerID, sandbox string) {
	containerID = uuidString(a.newUUID())
	return containerID, a.sandboxDir(fwID, execID, containerID)
}

// newExecutor starts the shell's record of a new executor run (the
// core's tables have it). It does not start it.
func (a *Agent) newExecutor(r *agentcore.Run) *executorRec {
	e := a.addExec(r)
	// The framework's and the executor's directories may be scheduled for
	// garbage collection: they are in use again.
	a.gcUnschedule(e.Sandbox())
	a.attachSandbox(e) // files.go
	return e
}

// sandboxDir is Mesos's sandbox layout:
// <work_dir>/agents/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>.
func (a *Agent) sandboxDir(fwID, execID, containerID string) string {
	return filepath.Join(a.cfg.WorkDir, "agents", pathSafe(a.id), "frameworks", pathSafe(fwID),
		"executors", pathSafe(execID), "runs", containerID)
}

// executorEnv is the environment Mesos gives executors (its slave.cpp
// executorEnvironment, and MESOS_SANDBOX from its containerizer); tasks
// get it too, with their CommandInfo's environment on top.
// MESOS_CHECKPOINT is "1" only for a framework with
// FrameworkInfo.checkpoint: the agent recovers no other framework's
// executors after a restart, so theirs exit when their agent goes away
// (executor.Config.ExitOnDisconnect), as Mesos's do. Differences:
// MESOS_HTTP_COMMAND_EXECUTOR is
// "1", since Apron's command executor only speaks HTTP; LIBPROCESS_IP,
// which Mesos passes on from its own environment, is the agent's IP when
// it is one of this machine's (see libprocessIP); and
// MESOS_NATIVE_(JAVA_)LIBRARY, which Mesos sets only when its install has
// libmesos, is not set: Apron has none.
func (a *Agent) executorEnv(e *executorRec) []string {
	grace := a.gracePeriod(e.Run)
	env := []string{
		"PATH=" + defaultPath,
		// A libprocess-based executor binds a free port, not the agent's.
		"LIBPROCESS_PORT=0",
		"MESOS_FRAMEWORK_ID=" + e.FrameworkID(),
		"MESOS_EXECUTOR_ID=" + e.ID(),
		"MESOS_SLAVE_ID=" + a.id,
		"MESOS_SLAVE_PID=" + a.PID(),
		"MESOS_AGENT_ENDPOINT=" + a.agentEndpointEnv(),
		"MESOS_SANDBOX=" + e.Sandbox(),
		"MESOS_DIRECTORY=" + e.Sandbox(),
		"MESOS_CHECKPOINT=" + checkpointEnv(e.Framework().Info().GetCheckpoint()),
		"MESOS_HTTP_COMMAND_EXECUTOR=1",
		"MESOS_RECOVERY_TIMEOUT=" + mesosDuration(a.cfg.ExecutorRecoveryTimeout),
		"MESOS_SUBSCRIPTION_BACKOFF_MAX=" + mesosDuration(a.cfg.ExecutorSubscriptionBackoffMax),
		"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=" + mesosDuration(grace),
	}
	if ip := a.libprocessIP(); ip != "" {
		env = append(env, "LIBPROCESS_IP="+ip)
	}
	env, _ = environ.Merge(env, a.cfg.ExecutorEnvironment, nil) // nil Environment: no error
	return env
}

// checkpointEnv is MESOS_CHECKPOINT's value: "1" or "0", as Mesos's.
func checkpointEnv(checkpoint bool) string {
	if checkpoint {
		return "1"
	}
	return "0"
}

// defaultPath is the PATH containers get, as Mesos gives them the host's
// default path.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mesosDuration formats d as Mesos's Duration does ("15mins", "2secs"),
// in the largest unit that divides it, so both Mesos's parser and Go
// executors read it back exactly.
func mesosDuration(d time.Duration) string {
	units := []struct {
		name string
		d    time.Duration
	}{
		{"weeks", 7 * 24 * time.Hour}, {"days", 24 * time.Hour}, {"hrs", time.Hour}, {"mins", time.Minute},
		{"secs", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond},
	}
	for _, u := range units {
		if d != 0 && d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// taskUser is the user the executor's task containers run as: the
// framework's (Mesos's --switch_user), or the agent's own when the
// framework names none.
func (e *executorRec) taskUser() string {
	if e.Info().Command != nil && e.Info().Command.User != nil {
		return e.Info().Command.GetUser()
	}
	return e.Framework().Info().User
}

// startExecutor fetches the executor's URIs into its sandbox first, when
// it has any (see fetcher.go), then launches it.
func (a *Agent) startExecutor(e *executorRec) {
	if uris := e.fetchURIs(); len(uris) > 0 {
		a.fetchThenStart(e, uris)
		return
	}
	a.launchExecutor(e)
}

// launchExecutor creates the executor's sandbox and starts it: a goroutine
// running an executor.Driver linked to the agent, or, for an executor
// process, its container. A failure terminates the executor at once,
// failing its tasks.
func (a *Agent) launchExecutor(e *executorRec) {
	if e.Kind().Process() {
		a.startProcessExecutor(e)
		return
	}
	fail := func(err error) { a.terminateExecutor(e, endingOf(agentcore.EndingLaunchFailed(err))) }
	var ex executor.Executor
	switch e.Kind() {
	case kindCommand:
		ex = executor.NewCommandExecutor(a.commandConfig(e))
	case kindDefault:
		ex = executor.NewDefaultExecutor(a.commandConfig(e))
	case kindGo:
		ex = a.cfg.Executors[e.Info().GetCommand().GetValue()]
	}
	sandbox, user := e.Sandbox(), e.TaskUser()
	a.runDriver(e, ex, fail, func() error { return a.makeSandbox(sandbox, user) })
}

// makeSandbox makes a sandbox directory for user. Executors start on
// goroutines of their own, and hundreds making directories in one parent
// at once spin on the kernel's lock of that directory, burning CPU that
// serving them one at a time does not: a profile under load had the
// agent's mkdirs cost ten times what they cost alone.
//
// The sandbox is 0750 and its owner the task's user, with that user's
// primary group (fetch.MakeSandbox), as Mesos's createSandboxDirectory
// makes it: the tasks of one framework's user cannot read another's
// stdout, and the agent (root) reads them all.
func (a *Agent) makeSandbox(sandbox, user string) error {
	a.sandboxMu.Lock()
	defer a.sandboxMu.Unlock()
	if err := fetch.MakeSandbox(sandbox, user); err != nil {
		return err
	}
	if err := os.Chmod(sandbox, sandboxMode); err != nil {
		return fmt.Errorf("restricting the sandbox: %w", err)
	}
	return nil
}

// sandboxMode is the permissions of a sandbox directory, Mesos's.
const sandboxMode = 0o750

// runDriver runs ex for e on its own goroutine, after prepare (when not
// nil) succeeds there; fail runs on the loop when either cannot start.
func (a *Agent) runDriver(e *executorRec, ex executor.Executor, fail func(error), prepare func() error) {
	d, err := executor.NewDriver(ex, executor.Config{
		Agent:                  a,
		FrameworkID:            mesospb.FrameworkID{Value: e.FrameworkID()},
		ExecutorID:             mesospb.ExecutorID{Value: e.ID()},
		Clock:                  a.clk,
		Logger:                 a.log.With("framework", e.FrameworkID(), "executor", e.ID()),
		RecoveryTimeout:        a.cfg.ExecutorRecoveryTimeout,
		SubscriptionBackoffMax: a.cfg.ExecutorSubscriptionBackoffMax,
	})
	if err != nil {
		fail(err)
		return
	}
	ctx, cancel := context.WithCancel(a.execCtx)
	e.cancel = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		if prepare != nil {
			if err := prepare(); err != nil {
				_ = a.post(context.Background(), func() { fail(err) })
				return
			}
		}
		err := runRecovered(ctx, d)
		if ctx.Err() != nil && a.isStopped() {
			return // the agent is stopping: the executor goes with it
		}
		_ = a.post(context.Background(), func() { a.executorExited(e, err) })
	}()
}

// runRecovered runs the driver, turning a panic of an in-process executor
// into an error so it ends the executor, not the agent.
func runRecovered(ctx context.Context, d *executor.Driver) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("executor panicked: %v", r)
		}
	}()
	return d.Run(ctx)
}

func (a *Agent) isStopped() bool {
	select {
	case <-a.stopped:
		return true
	default:
		return false
	}
}

func (a *Agent) commandConfig(e *executorRec) executor.CommandConfig {
	return executor.CommandConfig{
		Containerizer:     withVolumes{a.cont, &a.vols},
		Sandbox:           e.Sandbox(),
		Env:               a.executorEnv(e),
		ContainerIP:       a.cfg.IP,
		User:              e.TaskUser(),
		ContainerIDPrefix: e.ContainerID(),
		// In the agent, the executor dies with it; Mesos's executor of a
		// framework that does not checkpoint kills its tasks then.
		DiesWithAgent:      !e.Framework().Info().GetCheckpoint(),
		Clock:              a.clk,
		Logger:             a.log.With("framework", e.FrameworkID(), "executor", e.ID()),
		DefaultGracePeriod: a.cfg.DefaultKillGracePeriod,
		Fetcher:            a.fetcher,
	}
}

// subscribeExecutor handles SUBSCRIBE: a new stream replaces the old one,
// and the executor gets SUBSCRIBED; the updates it has not seen
// acknowledged go through the status update manager again (duplicates
// are dropped there, and acknowledged again); then it gets its queued
// tasks, and any KILL or SHUTDOWN it missed.
func (a *Agent) subscribeExecutor(ctx context.Context, call *executorpb.Call) (string, <-chan *executorpb.Event, error) {
	e, err := a.callingExecutor(call)
	if err != nil {
		return "", nil, err
	}
	if e.State() == execTerminated || e.cleaning {
		// As Mesos (Slave::subscribe): an executor that is being
		// destroyed is told to shut down, on a stream that ends at once.
		a.log.Warn("agent: an executor subscribed while terminating; shutting it down", "framework", e.FrameworkID(), "executor", e.ID())
		ch := make(chan *executorpb.Event, 1)
		ch <- &executorpb.Event{Type: executorpb.Event_SHUTDOWN.Enum()}
		close(ch)
		return uuidString(a.newUUID()), ch, nil
	}
	sub := call.Subscribe
	if sub == nil {
		sub = &executorpb.Call_Subscribe{}
	}
	if e.stream != nil {
		e.stream.close()
	}
	s := newExecStream(uuidString(a.newUUID()), a.cfg.ExecutorStreamBuffer)
	s.stop = context.AfterFunc(ctx, func() {
		_ = a.post(context.Background(), func() { a.executorStreamEnded(e, s) })
	})
	e.stream = s
	a.tm.cancel(e.regTimer)
	e.regTimer = 0
	first := e.Subscribed()
	cid := &mesospb.ContainerID{Value: e.ContainerID()}
	s.send(&executorpb.Event{
		Type: executorpb.Event_SUBSCRIBED.Enum(),
		Subscribed: &executorpb.Event_Subscribed{
			ExecutorInfo:  *e.Info(),
			FrameworkInfo: *e.Framework().Info(),
			AgentInfo:     a.agentInfo(),
			ContainerID:   cid,
		},
	})
	// The updates it has no acknowledgement of, after SUBSCRIBED: their
	// ACKNOWLEDGED go on the new stream.
	for i := range sub.UnacknowledgedUpdates {
		st := sub.UnacknowledgedUpdates[i].Status
		if why := agentcore.ValidateExecutorUpdate(e.ID(), "", &st); why != "" {
			a.log.Warn("agent: dropping an invalid unacknowledged update", "executor", e.ID(), "err", why)
			continue
		}
		a.statusUpdate(e.FrameworkID(), e.ID(), st)
	}
	// Then its queue, after what it never received
	// (agentcore.RelaunchLost) when it subscribed again.
	for _, item := range e.Launches(!first, sub.UnacknowledgedTasks) {
		a.launch(e, item)
	}
	pending := e.pending
	e.pending = nil
	for _, ev := range pending {
		a.sendExecutor(e, ev)
	}
	if s.closed {
		// The executor could not even take its first events.
		if e.stream == s {
			e.stream = nil
		}
		return "", nil, fmt.Errorf("%w: executor %q fell behind at once", ErrNotSubscribed, e.ID())
	}
	return s.id, s.ch, nil
}

// launch sends a queued task or group to the subscribed executor.
func (a *Agent) launch(e *executorRec, item launchItem) {
	if e.stream == nil {
		e.Requeue(item)
		return
	}
	if err := a.linkTaskVolumes(e, item); err != nil {
		a.failLaunch(e, item, mesospb.TaskStatus_REASON_CONTAINER_UPDATE_FAILED, "Failed to expose the task's persistent volumes: "+err.Error())
		return
	}
	if !e.stream.send(item.Event()) {
		e.stream = nil
		a.log.Warn("agent: executor fell behind, closing its stream", "framework", e.FrameworkID(), "executor", e.ID())
		e.Requeue(item)
		return
	}
	e.Launched(item)
}

func (a *Agent) executorStreamEnded(e *executorRec, s *execStream) {
	if e.stream == s {
		e.stream = nil
		s.abandon()
	}
}

// executorCall handles an executor's UPDATE, MESSAGE or HEARTBEAT.
//
// A call with a stream ID must come from the executor's current
// subscription. One without, as Mesos executors send them, is taken as
// Mesos's agent takes it (Http::executor), from an executor that has
// subscribed, even while it has no stream (it is reconnecting); an
// executor that never subscribed, or has terminated, is refused.
func (a *Agent) executorCall(streamID string, call *executorpb.Call) error {
	e, err := a.callingExecutor(call)
	if err != nil {
		return err
	}
	current := ""
	if e.stream != nil {
		current = e.stream.id
	}
	switch agentcore.CheckExecutorCall(streamID, current, e.State(), e.cleaning) {
	case agentcore.CallNoStream:
		return fmt.Errorf("%w: executor %q of framework %q has no stream %q", ErrNotSubscribed, call.ExecutorID.Value, call.FrameworkID.Value, streamID)
	case agentcore.CallNotSubbed:
		return fmt.Errorf("%w: executor %q of framework %q is not subscribed", ErrNotSubscribed, call.ExecutorID.Value, call.FrameworkID.Value)
	}
	switch call.GetType() {
	case executorpb.Call_UPDATE:
		if call.Update == nil {
			return fmt.Errorf("%w: UPDATE without update", ErrInvalidCall)
		}
		st := call.Update.Status
		owner := ""
		if t := e.Framework().Task(st.TaskID.Value); t != nil && t.Run() != e.Run {
			owner = t.Run().ID()
		}
		if why := agentcore.ValidateExecutorUpdate(e.ID(), owner, &st); why != "" {
			a.met.invalidUpdates++
			return fmt.Errorf("%w: %s", ErrInvalidCall, why)
		}
		a.met.validUpdates++
		a.statusUpdate(e.FrameworkID(), e.ID(), st)
		return nil
	case executorpb.Call_MESSAGE:
		if call.Message == nil {
			return fmt.Errorf("%w: MESSAGE without message", ErrInvalidCall)
		}
		a.send(&internalpb.Call{
			Type: internalpb.Call_EXECUTOR_MESSAGE.Enum(),
			ExecutorMessage: &internalpb.Call_ExecutorMessage{
				FrameworkID: mesospb.FrameworkID{Value: e.FrameworkID()},
				ExecutorID:  mesospb.ExecutorID{Value: e.ID()},
				Data:        call.Message.Data,
			},
		})
		return nil
	case executorpb.Call_HEARTBEAT:
		return nil
	default:
		return fmt.Errorf("%w: unexpected call %s", ErrInvalidCall, call.GetType())
	}
}

// callingExecutor is the executor a call names. One the agent does not
// know is a bad request (400), as in Mesos ("Framework cannot be found",
// "Executor cannot be found").
func (a *Agent) callingExecutor(call *executorpb.Call) (*executorRec, error) {
	fw := a.tables.Framework(call.FrameworkID.Value)
	if fw == nil {
		return nil, fmt.Errorf("%w: framework %q cannot be found", ErrInvalidCall, call.FrameworkID.Value)
	}
	e := a.execOf(fw.Run(call.ExecutorID.Value))
	if e == nil {
		return nil, fmt.Errorf("%w: executor %q of framework %q cannot be found", ErrInvalidCall, call.ExecutorID.Value, call.FrameworkID.Value)
	}
	return e, nil
}

func (a *Agent) frameworkMessage(fwID, execID string, data []byte) {
	e := a.executor(fwID, execID)
	if e == nil || e.State() != execRunning || e.stream == nil {
		a.met.invalidMessages++
		a.log.Warn("agent: dropping a framework message for an executor that is not running", "framework", fwID, "executor", execID)
		return
	}
	a.met.validMessages++
	a.sendExecutor(e, &executorpb.Event{Type: executorpb.Event_MESSAGE.Enum(), Message: &executorpb.Event_Message{Data: data}})
}

func (a *Agent) shutdownFramework(fwID string) {
	fw := a.tables.Framework(fwID)
	if fw == nil {
		return
	}
	for _, r := range a.tables.ShutdownFramework(fwID) {
		a.shutdownExecutor(a.execOf(r), "the framework is shutting down")
	}
	a.forgotten(a.tables.ForgetFramework(fw))
}

// shutdownExecutor asks an executor to shut down and destroys it after its
// grace period. An executor that has not subscribed yet has nothing to
// shut down gracefully and is destroyed at once.
func (a *Agent) shutdownExecutor(e *executorRec, why string) {
	switch e.Shutdown(why) { // agentcore.DecideShutdown
	case agentcore.ShutdownNone:
		return
	case agentcore.ShutdownDestroy:
		a.killExecutor(e)
		return
	}
	a.sendExecutor(e, &executorpb.Event{Type: executorpb.Event_SHUTDOWN.Enum()})
	grace := a.gracePeriod(e.Run)
	e.shutdownTimer = a.tm.after(grace, func() {
		e.shutdownTimer = 0
		if e.State() != execTerminated {
			a.log.Warn("agent: executor did not shut down within its grace period; destroying it", "framework", e.FrameworkID(), "executor", e.ID(), "grace", grace)
			a.killExecutor(e)
		}
	})
}

// gracePeriod is the time an executor has to shut down: its own, or the
// agent's default.
func (a *Agent) gracePeriod(e *agentcore.Run) time.Duration {
	return agentcore.GracePeriod(e.Info(), a.cfg.ExecutorShutdownGracePeriod)
}

// killExecutor ends an executor now: its driver's context is cancelled and
// its containers destroyed. It does not wait for an in-process executor
// that ignores its context.
func (a *Agent) killExecutor(e *executorRec) {
	if e.Destroy() {
		a.cleanupExecutor(e)
	}
}

// executorExited handles the end of an executor's driver.
func (a *Agent) executorExited(e *executorRec, err error) {
	if e.State() == execTerminated || e.cleaning {
		return
	}
	e.Exited(agentcore.EndingExited(err))
	a.cleanupExecutor(e)
}

// cleanupExecutor destroys, on another goroutine, every container of the
// executor's run (its task containers are named <container ID>.<task>),
// then terminates it on the loop.
func (a *Agent) cleanupExecutor(e *executorRec) {
	if e.cleaning {
		return
	}
	e.cleaning = true
	if e.cancel != nil {
		e.cancel()
	}
	a.tm.cancel(e.shutdownTimer)
	e.shutdownTimer = 0
	a.tm.cancel(e.regTimer)
	e.regTimer = 0
	// The run's containers are known by name: its own (an executor
	// process) and its tasks' (the built-in executors). Only an in-process
	// Go executor may have named others, found by listing them all.
	var ids []string
	if e.Kind().Process() {
		// The executor's own container first: what it ran is released
		// once it can no longer launch more.
		ids = append(ids, e.ContainerID())
	}
	if e.Kind() == kindCommand || e.Kind() == kindDefault {
		for _, id := range e.TaskIDs() {
			ids = append(ids, executor.TaskContainerID(e.ContainerID(), id))
		}
	}
	prefix, listAll := e.ContainerID()+".", e.Kind() == kindGo
	stateDir := ""
	if e.Kind() == kindCommandProcess {
		stateDir = executorStateDir(e.Sandbox())
	}
	cont := a.cont
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for _, id := range ids {
			destroyContainer(a.runCtx, cont, id, a.log)
		}
		if listAll {
			destroyContainers(a.runCtx, cont, func(id string) bool { return strings.HasPrefix(id, prefix) }, a.log)
		}
		if stateDir != "" {
			a.destroyExecutorContainers(a.runCtx, stateDir)
		}
		_ = a.post(context.Background(), func() { a.terminateExecutor(e, nil) })
	}()
}

// destroyContainer destroys a container, if it exists.
func destroyContainer(ctx context.Context, cont containerizer.Containerizer, id string, log interface{ Warn(string, ...any) }) {
	if err := cont.Destroy(ctx, id); err != nil && !errors.Is(err, containerizer.ErrUnknownContainer) {
		log.Warn("agent: destroying a container", "container", id, "err", err)
	}
}

// destroyContainers destroys the containers whose IDs match. It lists
// them all: for recovery, and what is not known by name.
func destroyContainers(ctx context.Context, cont containerizer.Containerizer, match func(string) bool, log interface{ Warn(string, ...any) }) {
	ids, err := cont.Containers(ctx)
	if err != nil {
		log.Warn("agent: listing containers", "err", err)
		return
	}
	for _, id := range ids {
		if match(id) {
			destroyContainer(ctx, cont, id, log)
		}
	}
}

// terminateExecutor marks the executor gone (the core's Terminate): its
// queued and non-terminal tasks get a terminal update from the agent, the
// master gets EXECUTOR_EXITED (unless it is a command executor), and the
// executor is forgotten once nothing of it waits for an acknowledgement.
// end, when not nil, overrules how its tasks end.
func (a *Agent) terminateExecutor(e *executorRec, end *agentcore.Ending) {
	if e.State() == execTerminated {
		return
	}
	if end != nil {
		e.Overrule(*end)
	}
	term, _ := e.Terminate()
	if e.cancel != nil {
		e.cancel()
	}
	a.tm.cancel(e.shutdownTimer)
	e.shutdownTimer = 0
	a.tm.cancel(e.regTimer)
	e.regTimer = 0
	if e.stream != nil {
		e.stream.close()
		e.stream = nil
	}
	e.pending = nil
	a.forgetTaskVolumes(e)
	for _, u := range term.Updates {
		a.statusUpdate(e.FrameworkID(), e.ID(), a.agentEnd(u.TaskID, u.Ending))
	}
	a.log.Info("agent: executor terminated", "framework", e.FrameworkID(), "executor", e.ID(), "why", term.Ending.Message)
	a.runTerminated(e) // operator_containers.go
	// As Mesos's agent (Slave::executorTerminated): the master does not
	// know the command executors the agent makes up, so it hears nothing
	// of their end, and the scheduler gets no FAILURE; the task's own
	// update says it all (agentcore.ReportExit).
	if term.ReportExit {
		a.send(&internalpb.Call{
			Type: internalpb.Call_EXECUTOR_EXITED.Enum(),
			ExecutorExited: &internalpb.Call_ExecutorExited{
				FrameworkID: mesospb.FrameworkID{Value: e.FrameworkID()},
				ExecutorID:  mesospb.ExecutorID{Value: e.ID()},
				Status:      e.exitStatus,
				Message:     ptr(term.Ending.Message),
			},
		})
	}
	// The tasks of a framework the master shut down are forgotten: their
	// updates will never be acknowledged (the framework's streams go with
	// it); then the run, and its framework, when nothing is left.
	a.forgotten(a.tables.Terminated(e.Run))
	a.checkShutdown()
	a.checkStopped()
}

// endingOf is a pointer to a copy of e.
func endingOf(e agentcore.Ending) *agentcore.Ending { return &e }

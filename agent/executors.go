package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/environ"
	"github.com/apronhq/apron/internal/fetch"
)

// frameworkRec is a framework with executors or tasks on this agent.
type frameworkRec struct {
	id        string
	info      mesospb.FrameworkInfo
	executors map[string]*executorRec
	// detached counts the runs in executors under a private key (a newer
	// run took their ID), so forgetting a run need not scan the table.
	detached    int
	tasks       map[string]*taskRec // every task not yet forgotten, by ID
	terminating bool                // SHUTDOWN_FRAMEWORK: no new tasks
	completed   []completedExecutor // forgotten runs, oldest first (history.go)
}

func (fw *frameworkRec) sortedExecutors() []*executorRec {
	out := make([]*executorRec, 0, len(fw.executors))
	for _, e := range fw.executors {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (fw *frameworkRec) partitionAware() bool { return agentcore.PartitionAware(&fw.info) }

// executorKind says what runs an executor: agentcore.ExecutorKind, with
// the agent's short names.
type executorKind agentcore.ExecutorKind

const (
	kindCommand        = executorKind(agentcore.KindCommand)
	kindDefault        = executorKind(agentcore.KindDefault)
	kindGo             = executorKind(agentcore.KindGo)
	kindProcess        = executorKind(agentcore.KindProcess)
	kindCommandProcess = executorKind(agentcore.KindCommandProcess)
)

func (k executorKind) String() string { return agentcore.ExecutorKind(k).String() }

func parseKind(s string) (executorKind, bool) {
	k, ok := agentcore.ParseExecutorKind(s)
	return executorKind(k), ok
}

// command reports whether the executor is the command executor, which
// Mesos makes up for a command task and does not show as the task's.
func (k executorKind) command() bool { return agentcore.ExecutorKind(k).Command() }

// process reports whether the executor is a process of its own, one
// container of the agent's containerizer named by its run's ID.
func (k executorKind) process() bool { return agentcore.ExecutorKind(k).Process() }

// execState is an executor's lifecycle, as Mesos's (agentcore).
type execState = agentcore.ExecutorState

const (
	execRegistering = agentcore.ExecutorRegistering // started, has not subscribed yet: its tasks are queued
	execRunning     = agentcore.ExecutorRunning     // subscribed at least once
	execTerminating = agentcore.ExecutorTerminating // told to shut down, or being cleaned up
	execTerminated  = agentcore.ExecutorTerminated  // gone; kept until its tasks' last updates are acknowledged
)

// executorRec is one run of an executor.
type executorRec struct {
	fw          *frameworkRec
	id          string
	key         string // in fw.executors: the ID, or a private key once a newer run took the ID
	info        mesospb.ExecutorInfo
	kind        executorKind
	containerID string // the run's ID: names the sandbox, prefixes its task containers
	sandbox     string
	state       execState

	queue []launchItem        // waiting for the executor to subscribe, in order
	tasks map[string]*taskRec // queued, launched and terminal-unacknowledged tasks
	// Every task ever given to the run, forgotten or not: the built-in
	// executors run each in container TaskContainerID(containerID, task),
	// which the clean-up destroys by name.
	taskIDs []mesospb.TaskID
	stream  *execStream         // the current subscription, nil when none
	pending []*executorpb.Event // KILL and SHUTDOWN waiting for a subscription

	cancel        context.CancelFunc // ends an in-process executor's driver
	cleaning      bool               // its containers are being destroyed
	shutdownTimer timerID
	ending        *ending // how its non-terminal tasks end when it terminates

	// Executor processes.
	regTimer   timerID // the (re-)registration timeout: it must subscribe by then
	exitStatus *int32  // the wait status of its process, once it has exited
}

// ending is the state the agent gives the tasks an executor leaves behind
// (agentcore.Ending).
type ending struct {
	state   mesospb.TaskState
	reason  mesospb.TaskStatus_Reason
	message string
}

func endingOf(e agentcore.Ending) *ending {
	return &ending{state: e.State, reason: e.Reason, message: e.Message}
}

func (e *ending) core() agentcore.Ending {
	return agentcore.Ending{State: e.state, Reason: e.reason, Message: e.message}
}

func (e *executorRec) sortedTasks() []*taskRec {
	out := make([]*taskRec, 0, len(e.tasks))
	for _, t := range e.tasks {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].info.TaskID.Value < out[j].info.TaskID.Value })
	return out
}

// live reports whether the executor still has work: queued or non-terminal
// tasks.
func (e *executorRec) live() bool {
	if len(e.queue) > 0 {
		return true
	}
	for _, t := range e.tasks {
		if !terminal(t.state) {
			return true
		}
	}
	return false
}

// launchItem is a task or a task group waiting for its executor.
type launchItem struct {
	task  *mesospb.TaskInfo
	group *mesospb.TaskGroupInfo
}

// taskIDs lists the IDs of the item's task or tasks.
func (l launchItem) taskIDs() []string {
	if l.group == nil {
		return []string{l.task.TaskID.Value}
	}
	ids := make([]string, len(l.group.Tasks))
	for i := range l.group.Tasks {
		ids[i] = l.group.Tasks[i].TaskID.Value
	}
	return ids
}

// Holds reports whether the item launches the task (agentcore.QueueItem).
func (l launchItem) Holds(taskID string) bool {
	if l.group == nil {
		return l.task.TaskID.Value == taskID
	}
	for i := range l.group.Tasks {
		if l.group.Tasks[i].TaskID.Value == taskID {
			return true
		}
	}
	return false
}

// TaskIDs lists the item's tasks, and says whether it is a group
// (agentcore.QueueItem).
func (l launchItem) TaskIDs() ([]string, bool) { return l.taskIDs(), l.group != nil }

func (l launchItem) event() *executorpb.Event {
	if l.group != nil {
		return &executorpb.Event{Type: executorpb.Event_LAUNCH_GROUP.Enum(), LaunchGroup: &executorpb.Event_LaunchGroup{TaskGroup: *l.group}}
	}
	return &executorpb.Event{Type: executorpb.Event_LAUNCH.Enum(), Launch: &executorpb.Event_Launch{Task: *l.task}}
}

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
	if fw := a.frameworks[fwID]; fw != nil {
		return fw.executors[execID]
	}
	return nil
}

// sendExecutor delivers ev to the executor, or keeps KILL and SHUTDOWN for
// its next subscription; other events for an executor without a stream are
// dropped, as Mesos drops them.
func (a *Agent) sendExecutor(e *executorRec, ev *executorpb.Event) {
	if e.stream != nil && e.stream.send(ev) {
		return
	}
	if e.stream != nil && e.stream.isClosed() {
		a.log.Warn("agent: executor fell behind, closing its stream", "framework", e.fw.id, "executor", e.id)
		e.stream = nil
	}
	switch ev.GetType() {
	case executorpb.Event_KILL, executorpb.Event_SHUTDOWN:
		e.pending = append(e.pending, ev)
	case executorpb.Event_LAUNCH, executorpb.Event_LAUNCH_GROUP:
		// Launches go through the queue; see subscribeExecutor.
	default:
		a.log.Debug("agent: executor not subscribed, dropping an event", "executor", e.id, "event", ev.GetType().String())
	}
}

// ensureFramework records (or updates) a framework the master sends tasks
// for.
func (a *Agent) ensureFramework(info mesospb.FrameworkInfo) *frameworkRec {
	id := info.ID.Value
	fw := a.frameworks[id]
	if fw == nil {
		fw = &frameworkRec{id: id, executors: map[string]*executorRec{}, tasks: map[string]*taskRec{}}
		a.frameworks[id] = fw
		a.frameworkReturned(fw)
	}
	if !proto.Equal(&fw.info, &info) {
		fw.info = info
		if err := a.meta.writeFramework(&info); err != nil {
			a.log.Error("agent: checkpointing a framework", "framework", id, "err", err)
		}
	}
	return fw
}

func (a *Agent) updateFramework(info mesospb.FrameworkInfo) {
	if info.ID == nil {
		return
	}
	if fw := a.frameworks[info.ID.Value]; fw != nil {
		a.ensureFramework(info)
	}
}

// forgetFramework drops a framework with no executors left.
func (a *Agent) maybeForgetFramework(fw *frameworkRec) {
	if !agentcore.ForgetFramework(len(fw.executors), len(fw.tasks)) || a.frameworks[fw.id] != fw {
		return
	}
	delete(a.frameworks, fw.id)
	// Updates of a framework the master removed, never to be
	// acknowledged, go with it (Mesos's removeFramework).
	if n := a.updates.Cleanup(fw.id); n > 0 {
		a.log.Info("agent: dropping the updates of a removed framework", "framework", fw.id, "updates", n)
	}
	a.applyUpdates()
	a.frameworkForgotten(fw)
	if err := a.meta.removeFramework(fw.id); err != nil {
		a.log.Warn("agent: removing a framework's checkpoint", "framework", fw.id, "err", err)
	}
	a.gcFrameworkForgotten(fw)
}

// newExecutor records an executor run, with a fresh container ID naming
// its sandbox. It does not start it.
func (a *Agent) newExecutor(fw *frameworkRec, info mesospb.ExecutorInfo, kind executorKind) *executorRec {
	e := &executorRec{
		fw:          fw,
		id:          info.ExecutorID.Value,
		key:         info.ExecutorID.Value,
		info:        info,
		kind:        kind,
		containerID: uuidString(a.newUUID()),
		tasks:       map[string]*taskRec{},
	}
	e.sandbox = a.sandboxDir(fw.id, e.id, e.containerID)
	fw.executors[e.id] = e
	// The framework's and the executor's directories may be scheduled for
	// garbage collection: they are in use again.
	a.gcUnschedule(e.sandbox)
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
	grace := a.gracePeriod(e)
	env := []string{
		"PATH=" + defaultPath,
		// A libprocess-based executor binds a free port, not the agent's.
		"LIBPROCESS_PORT=0",
		"MESOS_FRAMEWORK_ID=" + e.fw.id,
		"MESOS_EXECUTOR_ID=" + e.id,
		"MESOS_SLAVE_ID=" + a.id,
		"MESOS_SLAVE_PID=" + a.PID(),
		"MESOS_AGENT_ENDPOINT=" + a.agentEndpointEnv(),
		"MESOS_SANDBOX=" + e.sandbox,
		"MESOS_DIRECTORY=" + e.sandbox,
		"MESOS_CHECKPOINT=" + checkpointEnv(e.fw.info.GetCheckpoint()),
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
	if e.info.Command != nil && e.info.Command.User != nil {
		return e.info.Command.GetUser()
	}
	return e.fw.info.User
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
	if e.kind.process() {
		a.startProcessExecutor(e)
		return
	}
	fail := func(err error) { a.terminateExecutor(e, endingOf(agentcore.EndingLaunchFailed(err))) }
	var ex executor.Executor
	switch e.kind {
	case kindCommand:
		ex = executor.NewCommandExecutor(a.commandConfig(e))
	case kindDefault:
		ex = executor.NewDefaultExecutor(a.commandConfig(e))
	case kindGo:
		ex = a.cfg.Executors[e.info.GetCommand().GetValue()]
	}
	sandbox, user := e.sandbox, e.taskUser()
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
		FrameworkID:            mesospb.FrameworkID{Value: e.fw.id},
		ExecutorID:             mesospb.ExecutorID{Value: e.id},
		Clock:                  a.clk,
		Logger:                 a.log.With("framework", e.fw.id, "executor", e.id),
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
		Sandbox:           e.sandbox,
		Env:               a.executorEnv(e),
		ContainerIP:       a.cfg.IP,
		User:              e.taskUser(),
		ContainerIDPrefix: e.containerID,
		// In the agent, the executor dies with it; Mesos's executor of a
		// framework that does not checkpoint kills its tasks then.
		DiesWithAgent:      !e.fw.info.GetCheckpoint(),
		Clock:              a.clk,
		Logger:             a.log.With("framework", e.fw.id, "executor", e.id),
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
	if e.state == execTerminated || e.cleaning {
		// As Mesos (Slave::subscribe): an executor that is being
		// destroyed is told to shut down, on a stream that ends at once.
		a.log.Warn("agent: an executor subscribed while terminating; shutting it down", "framework", e.fw.id, "executor", e.id)
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
	first := e.state == execRegistering
	if first {
		e.state = execRunning
	}
	cid := &mesospb.ContainerID{Value: e.containerID}
	s.send(&executorpb.Event{
		Type: executorpb.Event_SUBSCRIBED.Enum(),
		Subscribed: &executorpb.Event_Subscribed{
			ExecutorInfo:  e.info,
			FrameworkInfo: e.fw.info,
			AgentInfo:     a.agentInfo(),
			ContainerID:   cid,
		},
	})
	// The updates it has no acknowledgement of, after SUBSCRIBED: their
	// ACKNOWLEDGED go on the new stream.
	for i := range sub.UnacknowledgedUpdates {
		st := sub.UnacknowledgedUpdates[i].Status
		if err := validateExecutorUpdate(call, &st); err != nil {
			a.log.Warn("agent: dropping an invalid unacknowledged update", "executor", e.id, "err", err)
			continue
		}
		a.statusUpdate(e.fw.id, e.id, st)
	}
	if !first {
		a.relaunchLost(e, sub.UnacknowledgedTasks)
	}
	queue := e.queue
	e.queue = nil
	for _, item := range queue {
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
		return "", nil, fmt.Errorf("%w: executor %q fell behind at once", ErrNotSubscribed, e.id)
	}
	return s.id, s.ch, nil
}

// relaunchLost sends LAUNCH again for tasks the executor never received:
// launched by the agent but in no update from the executor and not among
// the tasks it reports as launched and unacknowledged. This happens when
// the stream that carried the LAUNCH was closed for falling behind.
func (a *Agent) relaunchLost(e *executorRec, unacked []mesospb.TaskInfo) {
	known := map[string]bool{}
	for _, t := range unacked {
		known[t.TaskID.Value] = true
	}
	groups := map[*mesospb.TaskGroupInfo][]mesospb.TaskInfo{}
	var order []*mesospb.TaskGroupInfo
	for _, t := range e.sortedTasks() {
		if t.queued || t.state != mesospb.TASK_STAGING || len(t.statuses) > 0 || known[t.info.TaskID.Value] {
			continue
		}
		if t.group == nil {
			info := t.info
			e.queue = append(e.queue, launchItem{task: &info})
			continue
		}
		if _, ok := groups[t.group]; !ok {
			order = append(order, t.group)
		}
		groups[t.group] = append(groups[t.group], t.info)
	}
	for _, g := range order {
		e.queue = append(e.queue, launchItem{group: &mesospb.TaskGroupInfo{Tasks: groups[g]}})
	}
}

// launch sends a queued task or group to the subscribed executor.
func (a *Agent) launch(e *executorRec, item launchItem) {
	if e.stream == nil {
		e.queue = append(e.queue, item)
		return
	}
	if err := a.linkTaskVolumes(e, item); err != nil {
		a.failLaunch(e, item, mesospb.TaskStatus_REASON_CONTAINER_UPDATE_FAILED, "Failed to expose the task's persistent volumes: "+err.Error())
		return
	}
	if !e.stream.send(item.event()) {
		e.stream = nil
		a.log.Warn("agent: executor fell behind, closing its stream", "framework", e.fw.id, "executor", e.id)
		e.queue = append(e.queue, item)
		return
	}
	for _, id := range item.taskIDs() {
		if t := e.tasks[id]; t != nil {
			t.queued = false
		}
	}
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
	switch {
	case streamID != "" && (e.stream == nil || e.stream.id != streamID):
		return fmt.Errorf("%w: executor %q of framework %q has no stream %q", ErrNotSubscribed, call.ExecutorID.Value, call.FrameworkID.Value, streamID)
	case streamID == "" && (e.state == execRegistering || e.state == execTerminated || e.cleaning):
		return fmt.Errorf("%w: executor %q of framework %q is not subscribed", ErrNotSubscribed, call.ExecutorID.Value, call.FrameworkID.Value)
	}
	switch call.GetType() {
	case executorpb.Call_UPDATE:
		if call.Update == nil {
			return fmt.Errorf("%w: UPDATE without update", ErrInvalidCall)
		}
		st := call.Update.Status
		if err := validateExecutorUpdate(call, &st); err != nil {
			a.met.invalidUpdates++
			return err
		}
		if t := e.fw.tasks[st.TaskID.Value]; t != nil && t.exec != e {
			a.met.invalidUpdates++
			return fmt.Errorf("%w: task %q belongs to executor %q", ErrInvalidCall, st.TaskID.Value, t.exec.id)
		}
		a.met.validUpdates++
		a.statusUpdate(e.fw.id, e.id, st)
		return nil
	case executorpb.Call_MESSAGE:
		if call.Message == nil {
			return fmt.Errorf("%w: MESSAGE without message", ErrInvalidCall)
		}
		a.send(&internalpb.Call{
			Type: internalpb.Call_EXECUTOR_MESSAGE.Enum(),
			ExecutorMessage: &internalpb.Call_ExecutorMessage{
				FrameworkID: mesospb.FrameworkID{Value: e.fw.id},
				ExecutorID:  mesospb.ExecutorID{Value: e.id},
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
	fw := a.frameworks[call.FrameworkID.Value]
	if fw == nil {
		return nil, fmt.Errorf("%w: framework %q cannot be found", ErrInvalidCall, call.FrameworkID.Value)
	}
	e := fw.executors[call.ExecutorID.Value]
	if e == nil {
		return nil, fmt.Errorf("%w: executor %q of framework %q cannot be found", ErrInvalidCall, call.ExecutorID.Value, call.FrameworkID.Value)
	}
	return e, nil
}

// validateExecutorUpdate applies Mesos's rules to an executor's status
// update.
func validateExecutorUpdate(call *executorpb.Call, st *mesospb.TaskStatus) error {
	switch {
	case st.State == nil:
		return fmt.Errorf("%w: status update without a state", ErrInvalidCall)
	case st.TaskID.Value == "":
		return fmt.Errorf("%w: status update without a task ID", ErrInvalidCall)
	case len(st.UUID) != 16:
		return fmt.Errorf("%w: status update needs a 16-byte uuid", ErrInvalidCall)
	case st.GetState() == mesospb.TASK_STAGING:
		return fmt.Errorf("%w: an executor may not send TASK_STAGING", ErrInvalidCall)
	case st.Source != nil && st.GetSource() != mesospb.TaskStatus_SOURCE_EXECUTOR:
		return fmt.Errorf("%w: status update from an executor with source %s", ErrInvalidCall, st.GetSource())
	case st.ExecutorID != nil && st.ExecutorID.Value != call.ExecutorID.Value:
		return fmt.Errorf("%w: status update names executor %q", ErrInvalidCall, st.ExecutorID.Value)
	}
	st.Source = mesospb.TaskStatus_SOURCE_EXECUTOR.Enum()
	return nil
}

func (a *Agent) frameworkMessage(fwID, execID string, data []byte) {
	e := a.executor(fwID, execID)
	if e == nil || e.state != execRunning || e.stream == nil {
		a.met.invalidMessages++
		a.log.Warn("agent: dropping a framework message for an executor that is not running", "framework", fwID, "executor", execID)
		return
	}
	a.met.validMessages++
	a.sendExecutor(e, &executorpb.Event{Type: executorpb.Event_MESSAGE.Enum(), Message: &executorpb.Event_Message{Data: data}})
}

func (a *Agent) shutdownFramework(fwID string) {
	fw := a.frameworks[fwID]
	if fw == nil {
		return
	}
	fw.terminating = true
	for _, e := range fw.sortedExecutors() {
		a.shutdownExecutor(e, "the framework is shutting down")
	}
	a.maybeForgetFramework(fw)
}

// shutdownExecutor asks an executor to shut down and destroys it after its
// grace period. An executor that has not subscribed yet has nothing to
// shut down gracefully and is destroyed at once.
func (a *Agent) shutdownExecutor(e *executorRec, why string) {
	verdict := agentcore.DecideShutdown(e.state)
	if verdict == agentcore.ShutdownNone {
		return
	}
	if e.ending == nil {
		e.ending = endingOf(agentcore.EndingShutdown(why))
	}
	if verdict == agentcore.ShutdownDestroy {
		a.killExecutor(e)
		return
	}
	e.state = execTerminating
	a.sendExecutor(e, &executorpb.Event{Type: executorpb.Event_SHUTDOWN.Enum()})
	grace := a.gracePeriod(e)
	e.shutdownTimer = a.tm.after(grace, func() {
		e.shutdownTimer = 0
		if e.state != execTerminated {
			a.log.Warn("agent: executor did not shut down within its grace period; destroying it", "framework", e.fw.id, "executor", e.id, "grace", grace)
			a.killExecutor(e)
		}
	})
}

// gracePeriod is the time an executor has to shut down: its own, or the
// agent's default.
func (a *Agent) gracePeriod(e *executorRec) time.Duration {
	return agentcore.GracePeriod(&e.info, a.cfg.ExecutorShutdownGracePeriod)
}

// killExecutor ends an executor now: its driver's context is cancelled and
// its containers destroyed. It does not wait for an in-process executor
// that ignores its context.
func (a *Agent) killExecutor(e *executorRec) {
	if e.state == execTerminated {
		return
	}
	e.state = execTerminating
	if e.ending == nil {
		e.ending = endingOf(agentcore.EndingDestroyed())
	}
	a.cleanupExecutor(e)
}

// executorExited handles the end of an executor's driver.
func (a *Agent) executorExited(e *executorRec, err error) {
	if e.state == execTerminated || e.cleaning {
		return
	}
	if e.ending == nil {
		e.ending = endingOf(agentcore.EndingExited(err))
	}
	if e.state != execTerminating {
		e.state = execTerminating
	}
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
	if e.kind.process() {
		// The executor's own container first: what it ran is released
		// once it can no longer launch more.
		ids = append(ids, e.containerID)
	}
	if e.kind == kindCommand || e.kind == kindDefault {
		for _, id := range e.taskIDs {
			ids = append(ids, executor.TaskContainerID(e.containerID, id))
		}
	}
	prefix, listAll := e.containerID+".", e.kind == kindGo
	stateDir := ""
	if e.kind == kindCommandProcess {
		stateDir = executorStateDir(e.sandbox)
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

// terminateExecutor marks the executor gone: its queued and non-terminal
// tasks get a terminal update from the agent, the master gets
// EXECUTOR_EXITED (unless it is a command executor), and the executor is
// forgotten once nothing of it waits for an acknowledgement.
func (a *Agent) terminateExecutor(e *executorRec, end *ending) {
	if e.state == execTerminated {
		return
	}
	if end != nil {
		e.ending = end
	}
	if e.ending == nil {
		e.ending = endingOf(agentcore.EndingTerminated())
	}
	e.state = execTerminated
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
	e.queue, e.pending = nil, nil
	a.forgetTaskVolumes(e)
	ends := e.ending.core()
	for _, t := range e.sortedTasks() {
		switch agentcore.EndTask(t.state, e.fw.terminating) {
		case agentcore.TaskEndSilent:
			t.state = ends.State
		case agentcore.TaskEndUpdate:
			a.statusUpdate(e.fw.id, e.id, a.agentEnd(t.info.TaskID.Value, ends))
		}
	}
	a.log.Info("agent: executor terminated", "framework", e.fw.id, "executor", e.id, "why", e.ending.message)
	a.runTerminated(e) // operator_containers.go
	if !agentcore.ReportExit(agentcore.ExecutorKind(e.kind)) {
		// As Mesos's agent (Slave::executorTerminated): the master does
		// not know the command executors the agent makes up, so it hears
		// nothing of their end, and the scheduler gets no FAILURE; the
		// task's own update says it all.
		a.forgetTerminatingTasks(e)
		a.maybeForgetExecutor(e)
		a.checkShutdown()
		a.checkStopped()
		return
	}
	a.send(&internalpb.Call{
		Type: internalpb.Call_EXECUTOR_EXITED.Enum(),
		ExecutorExited: &internalpb.Call_ExecutorExited{
			FrameworkID: mesospb.FrameworkID{Value: e.fw.id},
			ExecutorID:  mesospb.ExecutorID{Value: e.id},
			Status:      e.exitStatus,
			Message:     ptr(e.ending.message),
		},
	})
	a.forgetTerminatingTasks(e)
	a.maybeForgetExecutor(e)
	a.checkShutdown()
	a.checkStopped()
}

// forgetTerminatingTasks forgets the tasks of a terminated executor of a
// framework the master shut down: their updates will never be
// acknowledged (the framework's streams go with it, maybeForgetFramework).
func (a *Agent) forgetTerminatingTasks(e *executorRec) {
	if !e.fw.terminating {
		return
	}
	for _, t := range e.sortedTasks() {
		a.forgetTask(t)
	}
}

// maybeForgetExecutor drops a terminated executor whose tasks are all
// forgotten.
func (a *Agent) maybeForgetExecutor(e *executorRec) {
	if !agentcore.ForgetExecutor(e.state, len(e.tasks)) || e.fw.executors[e.key] != e {
		return
	}
	delete(e.fw.executors, e.key)
	if e.key != e.id {
		e.fw.detached--
	}
	a.executorForgotten(e)
	// Its sandbox goes after Config.GCDelay; see gc.go.
	a.gcExecutorForgotten(e)
	a.maybeForgetFramework(e.fw)
}

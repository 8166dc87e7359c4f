package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/checks"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/fetch"
)

// DefaultGracePeriod is the time between SIGTERM and SIGKILL when a task is
// killed without a kill policy, as Mesos's.
const DefaultGracePeriod = 3 * time.Second

// CommandConfig configures the built-in executors.
type CommandConfig struct {
	// Containerizer runs each task's command as a container. Required.
	Containerizer containerizer.Containerizer
	// Sandbox is the executor's sandbox, an absolute path. The command
	// executor's task runs in it; each task of the default executor runs in
	// Sandbox/tasks/<task> (and gets MESOS_SANDBOX set to it). The task's
	// stdout and stderr are files there.
	Sandbox string
	// Env is the base environment of every task (the agent's MESOS_*
	// variables, PATH, ...); CommandInfo.environment is added on top,
	// replacing variables of the same name.
	Env []string
	// ContainerIP is what the default executor's tasks get as
	// MESOS_CONTAINER_IP, as Mesos's default executor gives it: the IP of
	// their network, the agent's when they share the host's. "" sets none.
	ContainerIP string
	// User runs tasks whose CommandInfo.user is unset; "" is the agent's
	// user.
	User string
	// DiesWithAgent makes the tasks' containers die with the agent
	// (containerizer.Config.DiesWithAgent): set for the tasks of a
	// framework that does not checkpoint when this executor runs inside
	// the agent, as Mesos's executor of such a framework kills its tasks
	// when its agent is gone.
	DiesWithAgent bool
	// ContainerIDPrefix names the tasks' containers: see TaskContainerID.
	// Unique per executor run, so that the agent can tell whose they are.
	ContainerIDPrefix string
	// Clock times kill grace periods and checks; nil is clock.Real().
	Clock clock.Clock
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger
	// DefaultGracePeriod is the kill grace period of tasks without a kill
	// policy; 0 is DefaultGracePeriod.
	DefaultGracePeriod time.Duration
	// Fetcher fetches the CommandInfo.uris of the default executor's tasks
	// into their sandboxes before they start; nil is Apron's fetcher with
	// Mesos's defaults (a 1 min stall timeout, no size limit). An agent
	// passes its own, configured as it fetches for executors. The command
	// executor fetches nothing: its agent fetched its task's URIs into the
	// executor's sandbox before starting it.
	Fetcher Fetcher
	// Checks runs the commands of the tasks' COMMAND checks and health
	// checks, and may connect their HTTP and TCP checks (CheckDialer);
	// nil is ContainerCheckRunner on Containerizer. The package doc says
	// how checks behave.
	Checks CheckRunner
}

// Fetcher fetches URIs into a sandbox, which it creates (owned by user,
// when the process runs as root), as Mesos's fetcher does; the agent's
// fetcher is one. An error fails the task with
// REASON_CONTAINER_LAUNCH_FAILED. It must stop when ctx ends.
type Fetcher interface {
	Fetch(ctx context.Context, sandbox, user string, uris []mesospb.CommandInfo_URI) error
}

// CommandExecutor is the built-in command executor: it runs one task's
// CommandInfo as one container. Create it with NewCommandExecutor.
type CommandExecutor struct{ *builtin }

// DefaultExecutor is the built-in default executor: it runs task groups,
// each task as a command in its own container, and kills a group's other
// tasks when one fails or is killed. Create it with NewDefaultExecutor.
type DefaultExecutor struct{ *builtin }

var (
	_ Executor = (*CommandExecutor)(nil)
	_ Executor = (*DefaultExecutor)(nil)
)

// NewCommandExecutor returns the command executor. It runs the one task of
// its LAUNCH (a second LAUNCH, or a LAUNCH_GROUP, gets TASK_ERROR):
// TASK_STARTING, then TASK_RUNNING once the container runs, then
// TASK_FINISHED (exit status 0), TASK_FAILED ("Command exited with status
// N", "Command terminated with signal SIGNAME", or the launch error) or
// TASK_KILLED after a kill. It stops the driver once its task's terminal
// update is acknowledged (or, after SHUTDOWN, sent).
func NewCommandExecutor(cfg CommandConfig) *CommandExecutor {
	return &CommandExecutor{newBuiltin(cfg, false)}
}

// NewDefaultExecutor returns the default executor. Each task of a
// LAUNCH_GROUP (or a LAUNCH, taken as a group of one) runs as the command
// executor's task does; when a task ends other than TASK_FINISHED, the
// other tasks of its group are killed. It stops the driver once it has run
// tasks and every one of them is terminal with its update acknowledged (or,
// after SHUTDOWN, sent).
func NewDefaultExecutor(cfg CommandConfig) *DefaultExecutor {
	return &DefaultExecutor{newBuiltin(cfg, true)}
}

// Reattach gives the command executor, before its driver runs, a task whose
// container outlived an agent restart: the agent, having found the
// container TaskContainerID(cfg.ContainerIDPrefix, task.TaskID) with
// containerizer.Recover, makes a new executor with the same CommandConfig,
// reattaches the task and runs a new driver. Once subscribed the executor
// waits on the container and reports its end (TASK_FINISHED, TASK_FAILED,
// or TASK_KILLED after a kill) as for a task it launched; it sends no
// TASK_STARTING or TASK_RUNNING, which the agent already has or may send
// itself. A container that ended while nobody watched usually has lost its
// exit status: the task is then TASK_FAILED, "Command ended with an unknown
// status".
//
// Errors wrap ErrReattach: the executor already has a task or has
// subscribed, or the containerizer does not know the container (then also
// containerizer.ErrUnknownContainer: the agent reports the task itself).
func (e *CommandExecutor) Reattach(ctx context.Context, task mesospb.TaskInfo) error {
	return e.reattach(ctx, []mesospb.TaskInfo{task})
}

// Reattach gives the default executor, before its driver runs, a task group
// whose containers outlived an agent restart; call it once per group. See
// CommandExecutor.Reattach: every task's container must be known to the
// containerizer, or nothing is reattached.
func (e *DefaultExecutor) Reattach(ctx context.Context, group mesospb.TaskGroupInfo) error {
	return e.reattach(ctx, group.Tasks)
}

// builtin is the command executor and the default executor: the same
// machinery, with one task or with groups.
type builtin struct {
	cfg   CommandConfig
	group bool // the default executor
	log   *slog.Logger
	clk   clock.Clock

	mu           sync.Mutex
	tasks        map[string]*task // by task ID; kept once terminal
	pending      [][]*task        // reattached, not yet watched
	registered   bool
	shuttingDown bool
	shutdownCap  time.Duration // the executor's shutdown grace period, or 0
	killingState bool          // the framework takes TASK_KILLING
	// The default executor: a task was killed for failing its health
	// check, after which every terminal update says healthy=false, as
	// Mesos's default executor's (its flag is the executor's, not the
	// task's: MESOS-8543).
	unhealthy bool
	// The default executor pauses checks while disconnected from the
	// agent: online is closed while connected.
	online chan struct{}

	checks CheckRunner
	// checkHook, when set (by tests), is told what each check loop does.
	checkHook func(taskID string, health bool, p checkPhase)
}

// task is one task of a built-in executor.
type task struct {
	info       mesospb.TaskInfo
	cid        string // container ID
	sandbox    string
	peers      []*task // its group, itself included
	reattached bool

	endOnce sync.Once
	ended   chan struct{} // closed once the container has ended (or was never launched)
	rearm   chan struct{} // (cap 1) the kill deadline moved earlier

	cfg      containerizer.Config // its container's, once validated: check commands run as it
	checkSeq atomic.Uint64        // numbers its check commands' containers
	// sendMu orders the task's updates: a check's update, made from the
	// last one sent, cannot overtake a TASK_KILLING or terminal update.
	sendMu sync.Mutex

	// Guarded by builtin.mu.
	launched    bool // the container runs and TASK_RUNNING is sent: a kill may start
	killing     bool
	cancelFetch context.CancelCauseFunc // while its group's URIs are fetched
	deadline    time.Time               // of the kill's grace period
	terminal    bool
	uuid        []byte // of the terminal update
	acked       bool   // the terminal update is acknowledged
	released    bool   // its ended container was destroyed (releaseEnded)
	// Checks.
	checked        bool                // its check and health check are valid: run them, put check_status on updates
	last           *mesospb.TaskStatus // the last update sent, from which check updates are made
	stopChecks     context.CancelFunc  // while they run
	killedByHealth bool
	launchedAt     time.Time // the start of the health check's grace period
}

func (t *task) end() { t.endOnce.Do(func() { close(t.ended) }) }

func newBuiltin(cfg CommandConfig, group bool) *builtin {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultGracePeriod <= 0 {
		cfg.DefaultGracePeriod = DefaultGracePeriod
	}
	if cfg.Fetcher == nil {
		cfg.Fetcher = &fetch.Fetcher{Client: fetch.DefaultClient(fetch.DefaultStallTimeout), StallTimeout: fetch.DefaultStallTimeout}
	}
	kind := "command"
	if group {
		kind = "default"
	}
	checks := cfg.Checks
	if checks == nil {
		checks = ContainerCheckRunner{Containerizer: cfg.Containerizer}
	}
	return &builtin{
		cfg:    cfg,
		group:  group,
		log:    cfg.Logger.With("executor", kind),
		clk:    cfg.Clock,
		tasks:  make(map[string]*task),
		online: make(chan struct{}),
		checks: checks,
	}
}

func (b *builtin) newTask(info mesospb.TaskInfo) *task {
	t := &task{
		info:    info,
		cid:     TaskContainerID(b.cfg.ContainerIDPrefix, info.TaskID),
		sandbox: b.cfg.Sandbox,
		ended:   make(chan struct{}),
		rearm:   make(chan struct{}, 1),
	}
	if b.group {
		t.sandbox = filepath.Join(b.cfg.Sandbox, "tasks", containerIDPart(info.TaskID.Value, containerizer.MaxIDLength))
	}
	return t
}

// Registered starts watching the reattached tasks.
func (b *builtin) Registered(ctx context.Context, d *Driver, info Info) {
	b.noteInfo(info)
	b.setOnline(true)
	b.startReattached(d)
}

// Reregistered notes the new Info; the tasks run on.
func (b *builtin) Reregistered(ctx context.Context, d *Driver, info Info) {
	b.noteInfo(info)
	b.setOnline(true)
}

// Disconnected pauses the default executor's checks, as Mesos's; the
// tasks run on while the driver reconnects.
func (b *builtin) Disconnected(ctx context.Context, d *Driver) { b.setOnline(false) }

// setOnline notes whether the driver is subscribed.
func (b *builtin) setOnline(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.online:
		if !on {
			b.online = make(chan struct{})
		}
	default:
		if on {
			close(b.online)
		}
	}
}

func (b *builtin) noteInfo(info Info) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := info.Executor.ShutdownGracePeriod; g != nil && g.Nanoseconds > 0 {
		b.shutdownCap = time.Duration(g.Nanoseconds)
	}
	b.killingState = slices.ContainsFunc(info.Framework.Capabilities, func(c mesospb.FrameworkInfo_Capability) bool {
		return c.GetType() == mesospb.FrameworkInfo_Capability_TASK_KILLING_STATE
	})
}

func (b *builtin) startReattached(d *Driver) {
	b.mu.Lock()
	b.registered = true
	pending := b.pending
	b.pending = nil
	b.mu.Unlock()
	for _, g := range pending {
		for _, t := range g {
			b.prepareReattachedChecks(t)
			d.Go(func(ctx context.Context) {
				defer t.end()
				b.started(d, t)
				b.wait(ctx, d, t)
			})
		}
	}
}

// LaunchTask runs the task (the default executor: as a group of one).
func (b *builtin) LaunchTask(ctx context.Context, d *Driver, ti *mesospb.TaskInfo) {
	b.launch(ctx, d, []mesospb.TaskInfo{*ti}, false)
}

// LaunchTaskGroup runs the group's tasks (the command executor refuses).
func (b *builtin) LaunchTaskGroup(ctx context.Context, d *Driver, g *mesospb.TaskGroupInfo) {
	b.launch(ctx, d, g.Tasks, true)
}

func (b *builtin) launch(ctx context.Context, d *Driver, infos []mesospb.TaskInfo, asGroup bool) {
	if len(infos) == 0 {
		return
	}
	b.mu.Lock()
	// Tasks whose ID is empty, repeated, or already known get no update at
	// all: one would be taken for the update of another task.
	var tasks []*task
	seen := make(map[string]bool)
	for _, info := range infos {
		id := info.TaskID.Value
		if id == "" || seen[id] || b.tasks[id] != nil {
			b.log.Warn("ignoring a task whose ID is empty or in use", "task_id", id)
			continue
		}
		seen[id] = true
		tasks = append(tasks, b.newTask(info))
	}
	rejectState := mesospb.TASK_ERROR
	var reject string
	var reason *mesospb.TaskStatus_Reason
	switch {
	case b.shuttingDown:
		rejectState, reject = mesospb.TASK_KILLED, "The executor is shutting down"
	case !b.group && asGroup:
		reject = "The command executor does not run task groups"
		reason = mesospb.TaskStatus_REASON_TASK_GROUP_INVALID.Enum()
	case !b.group && len(b.tasks) > 0:
		reject = "The command executor runs one task and already has one"
		reason = mesospb.TaskStatus_REASON_TASK_INVALID.Enum()
	case len(tasks) < len(infos):
		reject = "The task group has tasks with empty or repeated IDs"
		reason = mesospb.TaskStatus_REASON_TASK_GROUP_INVALID.Enum()
	default:
		// Mesos's master refuses such tasks (TASK_ERROR, from the
		// master); an executor given one does the same.
		for _, t := range tasks {
			err := checks.Task(&t.info)
			if err == nil && asGroup {
				err = checks.GroupTask(&t.info)
			}
			if err == nil {
				continue
			}
			reject, reason = err.Error(), mesospb.TaskStatus_REASON_TASK_INVALID.Enum()
			if asGroup {
				reject = fmt.Sprintf("Task '%s' is invalid: %v", t.info.TaskID.Value, err)
				reason = mesospb.TaskStatus_REASON_TASK_GROUP_INVALID.Enum()
			}
			break
		}
	}
	for _, t := range tasks {
		t.peers = tasks
		t.checked = reject == ""
		b.tasks[t.info.TaskID.Value] = t
	}
	b.mu.Unlock()

	if reject != "" {
		for _, t := range tasks {
			t.end()
			b.finish(ctx, d, t, rejectState, reject, reason)
		}
		return
	}
	cfgs := make([]containerizer.Config, len(tasks))
	for i, t := range tasks {
		c, err := b.containerConfig(t)
		if err != nil {
			// A group starts whole or not at all.
			for j, u := range tasks {
				msg := "Invalid task: " + err.Error()
				if j != i {
					msg = fmt.Sprintf("Task %q of the group is invalid: %v", t.info.TaskID.Value, err)
				}
				u.end()
				b.finish(ctx, d, u, mesospb.TASK_FAILED, msg, nil)
			}
			return
		}
		cfgs[i] = c
		t.cfg = c
	}
	if b.group && slices.ContainsFunc(tasks, func(t *task) bool { return len(t.info.Command.GetURIs()) > 0 }) {
		d.Go(func(ctx context.Context) { b.fetchGroup(ctx, d, tasks, cfgs) })
		return
	}
	for i, t := range tasks {
		d.Go(func(ctx context.Context) { b.run(ctx, d, t, cfgs[i], true) })
	}
}

// Causes of the end of a group's fetch.
var (
	errFetchFailed = errors.New("a fetch of the group failed")
	errFetchKilled = errors.New("a task of the group was killed")
)

// fetchGroup fetches each task's CommandInfo.uris into the task's sandbox,
// all tasks at once, and then runs the group. A group starts whole or not
// at all: when a fetch fails the others are cancelled and every task of
// the group gets TASK_FAILED (REASON_CONTAINER_LAUNCH_FAILED), the task
// whose fetch failed with Mesos's message; a kill (or SHUTDOWN) during
// the fetch cancels it and kills the whole group. Every task gets
// TASK_STARTING first, as Mesos's default executor sends it before asking
// for the task's container, whose launch fetches.
func (b *builtin) fetchGroup(ctx context.Context, d *Driver, tasks []*task, cfgs []containerizer.Config) {
	for _, t := range tasks {
		b.send(ctx, d, t, mesospb.TASK_STARTING, "", nil, nil)
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b.mu.Lock()
	for _, t := range tasks {
		t.cancelFetch = cancel
		if t.killing {
			cancel(errFetchKilled)
		}
	}
	b.mu.Unlock()

	// The first fetch to fail cancels the others; their errors are
	// that cancellation's.
	var (
		mu     sync.Mutex
		failed = -1
		cause  error
	)
	var wg sync.WaitGroup
	for i, t := range tasks {
		uris := t.info.Command.GetURIs()
		if len(uris) == 0 {
			continue
		}
		wg.Go(func() {
			err := b.cfg.Fetcher.Fetch(fctx, t.sandbox, cfgs[i].User, uris)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && fctx.Err() == nil {
				failed, cause = i, err
				cancel(errFetchFailed)
			}
		})
	}
	wg.Wait()
	b.mu.Lock()
	for _, t := range tasks {
		t.cancelFetch = nil
	}
	b.mu.Unlock()

	switch {
	case ctx.Err() != nil:
		// The driver is ending (the agent going away): nothing ran, and
		// nothing is reported.
		for _, t := range tasks {
			t.end()
		}
		return
	case failed >= 0:
		b.fetchFailed(ctx, d, tasks, failed, cause)
		return
	case errors.Is(context.Cause(fctx), errFetchKilled):
		b.killedDuringFetch(ctx, d, tasks)
		return
	}
	b.log.Info("fetched the task group's URIs", "tasks", len(tasks))
	for i, t := range tasks {
		wg.Go(func() { b.run(ctx, d, t, cfgs[i], false) })
	}
	wg.Wait()
}

// fetchFailed fails every task of a group whose fetch failed: the task
// whose fetch failed with Mesos's message, the others naming it.
func (b *builtin) fetchFailed(ctx context.Context, d *Driver, tasks []*task, failed int, err error) {
	id := tasks[failed].info.TaskID.Value
	msg := fmt.Sprintf("Failed to fetch all URIs for container '%s': %v", tasks[failed].cid, err)
	b.log.Warn("fetching the task group's URIs failed", "task_id", id, "err", err)
	for i, t := range tasks {
		m := msg
		if i != failed {
			m = fmt.Sprintf("Task %q of the group failed to launch: %s", id, msg)
		}
		t.end()
		b.finish(ctx, d, t, mesospb.TASK_FAILED, m, mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED.Enum())
	}
}

// killedDuringFetch reports a group of which a task was killed while the
// group's URIs were fetched: the group is killed, none of it ran.
func (b *builtin) killedDuringFetch(ctx context.Context, d *Driver, tasks []*task) {
	b.mu.Lock()
	killed := ""
	direct := make([]bool, len(tasks)) // killed themselves, not as the group
	for i, t := range tasks {
		direct[i] = t.killing
		if t.killing && killed == "" {
			killed = t.info.TaskID.Value
		}
	}
	b.mu.Unlock()
	for i, t := range tasks {
		m := "Task killed before it was launched"
		if !direct[i] {
			m = fmt.Sprintf("Task %q of the group was killed before it was launched", killed)
		}
		t.end()
		b.finish(ctx, d, t, mesospb.TASK_KILLED, m, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH.Enum())
	}
}

// run launches t's container, then watches it. starting is whether to send
// TASK_STARTING first (fetchGroup has sent it otherwise).
func (b *builtin) run(ctx context.Context, d *Driver, t *task, cfg containerizer.Config, starting bool) {
	defer t.end()
	if starting {
		b.send(ctx, d, t, mesospb.TASK_STARTING, "", nil, nil)
	}
	b.mu.Lock()
	killed := t.killing
	b.mu.Unlock()
	if killed {
		b.finish(ctx, d, t, mesospb.TASK_KILLED, "Task killed before it was launched",
			mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH.Enum())
		return
	}
	if err := b.cfg.Containerizer.Launch(ctx, cfg); err != nil {
		if ctx.Err() != nil {
			return
		}
		// An image that cannot be had or run here fails the same way:
		// Mesos reports a provisioning failure so (its TaskStatus has no
		// reason of its own for it).
		b.finish(ctx, d, t, mesospb.TASK_FAILED, "Failed to launch the command: "+err.Error(),
			mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED.Enum())
		return
	}
	b.mu.Lock()
	t.launchedAt = b.clk.Now()
	b.mu.Unlock()
	b.send(ctx, d, t, mesospb.TASK_RUNNING, "", nil, nil)
	b.started(d, t)
	b.wait(ctx, d, t)
}

// started marks t launched, and starts a kill requested before, or else
// its checks.
func (b *builtin) started(d *Driver, t *task) {
	b.mu.Lock()
	t.launched = true
	killing := t.killing
	b.mu.Unlock()
	if killing {
		d.Go(func(ctx context.Context) { b.killer(ctx, d, t) })
		return
	}
	b.startChecks(d, t)
}

// wait waits for t's container to end and reports the end; the container
// is released once the agent has acknowledged that (Acknowledged). When
// the driver ends first (ctx) or the containerizer is closed, it leaves
// the container running and reports nothing: the agent is going away,
// and a new one recovers the container (see Reattach).
func (b *builtin) wait(ctx context.Context, d *Driver, t *task) {
	term, err := b.cfg.Containerizer.Wait(ctx, t.cid)
	t.end()
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, containerizer.ErrClosed) {
			b.log.Info("no longer watching the task", "task_id", t.info.TaskID.Value, "err", err)
			return
		}
		b.finish(ctx, d, t, mesospb.TASK_FAILED, "Lost the command's container: "+err.Error(), nil)
		return
	}
	b.mu.Lock()
	killed := t.killing
	b.mu.Unlock()
	msg := describe(term)
	switch {
	case killed:
		b.finish(ctx, d, t, mesospb.TASK_KILLED, msg, nil)
	case term.Reason == containerizer.ReasonMemoryLimit:
		b.finish(ctx, d, t, mesospb.TASK_FAILED, "Memory limit exceeded: "+msg,
			mesospb.TaskStatus_REASON_CONTAINER_LIMITATION_MEMORY.Enum())
	case term.Reason == containerizer.ReasonDiskLimit: // Mesos's message: "Disk usage (X) exceeds quota (Y)"
		b.finish(ctx, d, t, mesospb.TASK_FAILED, term.Message, mesospb.TaskStatus_REASON_CONTAINER_LIMITATION_DISK.Enum())
	case term.ExitCode == 0 && term.Signal == 0:
		b.finish(ctx, d, t, mesospb.TASK_FINISHED, msg, nil)
	default:
		b.finish(ctx, d, t, mesospb.TASK_FAILED, msg, nil)
	}
}

// releaseEnded releases t's container, once, when it has ended and its
// terminal update is acknowledged (the agent checkpoints an update before
// acknowledging it), or the executor is shutting down. Not before: an
// agent stopped in between finds the container and its recorded end when
// it restarts, and the reattached executor reports that end, where a
// released container would leave the task lost though its work was done.
func (b *builtin) releaseEnded(ctx context.Context, t *task) {
	select {
	case <-t.ended:
	default:
		return // its wait, or its killer after the grace period, ends it
	}
	b.mu.Lock()
	release := t.terminal && (t.acked || b.shuttingDown) && !t.released
	if release {
		t.released = true
	}
	b.mu.Unlock()
	if release {
		b.release(ctx, t)
	}
}

// release destroys t's ended container, so the containerizer forgets it.
func (b *builtin) release(ctx context.Context, t *task) {
	err := b.cfg.Containerizer.Destroy(ctx, t.cid)
	if err != nil && !errors.Is(err, containerizer.ErrUnknownContainer) {
		b.log.Warn("could not release the task's container", "task_id", t.info.TaskID.Value, "container", t.cid, "err", err)
	}
}

// finish sends t's terminal update (once), kills the rest of a failed
// group, and stops the driver when nothing is left to do.
func (b *builtin) finish(ctx context.Context, d *Driver, t *task, state mesospb.TaskState, msg string, reason *mesospb.TaskStatus_Reason) {
	uuid := NewUUID()
	b.mu.Lock()
	if t.terminal {
		b.mu.Unlock()
		return
	}
	t.terminal = true
	t.uuid = uuid // before sending: the acknowledgement may come first
	if t.stopChecks != nil {
		t.stopChecks()
	}
	var kill []*task
	if state != mesospb.TASK_FINISHED {
		for _, p := range t.peers {
			if p != t && !p.terminal {
				kill = append(kill, p)
			}
		}
	}
	b.mu.Unlock()
	b.send(ctx, d, t, state, msg, reason, uuid)
	b.releaseEnded(ctx, t) // before maybeStop ends ctx
	for _, p := range kill {
		b.log.Info("killing a task of a failed group", "task_id", p.info.TaskID.Value, "failed", t.info.TaskID.Value)
		b.kill(d, p, nil, 0)
	}
	b.maybeStop(d)
}

// send sends an update of t made from scratch, as Mesos's executors
// make them: with an empty check_status of its check's type when it has a
// check, and healthy=false on a terminal update after a kill for failing
// health checks.
func (b *builtin) send(ctx context.Context, d *Driver, t *task, state mesospb.TaskState, msg string, reason *mesospb.TaskStatus_Reason, uuid []byte) {
	st := mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: t.info.TaskID.Value}, State: state.Enum(), Reason: reason, UUID: uuid}
	if msg != "" {
		st.Message = &msg
	}
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	b.mu.Lock()
	if t.checked && t.info.Check != nil {
		st.CheckStatus = emptyCheckStatus(t.info.Check.GetType())
	}
	if isTerminal(state) && (t.killedByHealth || b.group && b.unhealthy) {
		st.Healthy = proto.Bool(false)
	}
	last := st
	t.last = &last
	b.mu.Unlock()
	if err := d.SendStatusUpdate(ctx, st); err != nil {
		b.log.Warn("could not send a status update", "task_id", t.info.TaskID.Value, "state", state.String(), "err", err)
	}
}

// isTerminal reports whether a task in state s is done.
func isTerminal(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_ERROR,
		mesospb.TASK_LOST, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// KillTask kills the task: SIGTERM, the grace period, then Destroy.
func (b *builtin) KillTask(ctx context.Context, d *Driver, taskID mesospb.TaskID, policy *mesospb.KillPolicy) {
	b.mu.Lock()
	t := b.tasks[taskID.Value]
	b.mu.Unlock()
	if t == nil {
		b.log.Warn("ignoring a kill of an unknown task", "task_id", taskID.Value)
		return
	}
	b.kill(d, t, policy, 0)
}

// kill starts killing t, with the grace period of policy, else of the
// task's kill policy, else the default, at most limit (when > 0). A kill of
// a task being killed does not restart its grace period; it may shorten it.
func (b *builtin) kill(d *Driver, t *task, policy *mesospb.KillPolicy, limit time.Duration) {
	grace := b.cfg.DefaultGracePeriod
	if g := t.info.KillPolicy.GetGracePeriod(); g != nil {
		grace = time.Duration(max(g.Nanoseconds, 0))
	}
	if g := policy.GetGracePeriod(); g != nil {
		grace = time.Duration(max(g.Nanoseconds, 0))
	}
	if limit > 0 {
		grace = min(grace, limit)
	}
	b.mu.Lock()
	if t.terminal {
		b.mu.Unlock()
		return
	}
	if t.cancelFetch != nil {
		t.cancelFetch(errFetchKilled)
	}
	deadline := b.clk.Now().Add(grace)
	if t.killing {
		if deadline.Before(t.deadline) {
			t.deadline = deadline
			select {
			case t.rearm <- struct{}{}:
			default:
			}
		}
		b.mu.Unlock()
		return
	}
	t.killing = true
	t.deadline = deadline
	if t.stopChecks != nil {
		// Mesos's executors stop checking a task they kill.
		t.stopChecks()
	}
	launched := t.launched
	b.mu.Unlock()
	if launched {
		d.Go(func(ctx context.Context) { b.killer(ctx, d, t) })
	}
	// Otherwise run or started sees t.killing.
}

// killer sends SIGTERM to t's container, waits out the grace period and
// destroys the container, unless it ends first.
func (b *builtin) killer(ctx context.Context, d *Driver, t *task) {
	b.mu.Lock()
	graceful := t.deadline.After(b.clk.Now())
	killingState := b.killingState
	b.mu.Unlock()
	if killingState {
		b.send(ctx, d, t, mesospb.TASK_KILLING, "", nil, nil)
	}
	if graceful {
		if err := b.cfg.Containerizer.Signal(ctx, t.cid, syscall.SIGTERM); err != nil {
			b.log.Warn("could not signal the task", "task_id", t.info.TaskID.Value, "err", err)
		}
	}
	for {
		b.mu.Lock()
		left := t.deadline.Sub(b.clk.Now())
		b.mu.Unlock()
		if left <= 0 {
			break
		}
		timer := b.clk.NewTimer(left)
		select {
		case <-timer.C():
		case <-t.rearm:
			timer.Stop()
		case <-t.ended:
			timer.Stop()
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
	select {
	case <-t.ended:
		return
	default:
	}
	b.log.Info("grace period over; destroying the task's container", "task_id", t.info.TaskID.Value)
	if err := b.cfg.Containerizer.Destroy(ctx, t.cid); err != nil && !errors.Is(err, containerizer.ErrUnknownContainer) {
		b.log.Warn("could not destroy the task's container", "task_id", t.info.TaskID.Value, "err", err)
	}
}

// Acknowledged releases a task's ended container once its terminal update
// is acknowledged, and stops the driver once every one is.
func (b *builtin) Acknowledged(ctx context.Context, d *Driver, taskID mesospb.TaskID, uuid []byte) {
	b.mu.Lock()
	t := b.tasks[taskID.Value]
	acked := t != nil && t.terminal && bytes.Equal(t.uuid, uuid)
	if acked {
		t.acked = true
	}
	b.mu.Unlock()
	if acked {
		b.releaseEnded(ctx, t)
	}
	b.maybeStop(d)
}

// maybeStop stops the driver when the executor has run tasks and all are
// terminal and acknowledged, or it is shutting down and all are terminal.
func (b *builtin) maybeStop(d *Driver) {
	b.mu.Lock()
	stop := b.shuttingDown || len(b.tasks) > 0
	for _, t := range b.tasks {
		if !t.terminal || !t.acked && !b.shuttingDown {
			stop = false
			break
		}
	}
	b.mu.Unlock()
	if stop {
		d.Stop()
	}
}

// FrameworkMessage ignores the data: commands take no messages.
func (b *builtin) FrameworkMessage(ctx context.Context, d *Driver, data []byte) {
	b.log.Debug("ignoring a framework message", "bytes", len(data))
}

// Shutdown kills every task, within the executor's shutdown grace period,
// and stops the driver once all are terminal.
func (b *builtin) Shutdown(ctx context.Context, d *Driver) {
	b.startReattached(d)
	b.mu.Lock()
	b.shuttingDown = true
	limit := b.shutdownCap
	var live []*task
	for _, t := range b.tasks {
		if !t.terminal {
			live = append(live, t)
		}
	}
	b.mu.Unlock()
	for _, t := range live {
		b.kill(d, t, nil, limit)
	}
	b.maybeStop(d)
}

// Error logs the agent's complaint.
func (b *builtin) Error(ctx context.Context, d *Driver, message string) {
	b.log.Warn("the agent reports an error", "message", message)
}

func (b *builtin) reattach(ctx context.Context, infos []mesospb.TaskInfo) error {
	if len(infos) == 0 {
		return fmt.Errorf("%w: no task", ErrReattach)
	}
	if b.cfg.Containerizer == nil {
		return fmt.Errorf("%w: no containerizer", ErrReattach)
	}
	known, err := b.cfg.Containerizer.Containers(ctx)
	if err != nil {
		return fmt.Errorf("%w: listing containers: %w", ErrReattach, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.registered:
		return fmt.Errorf("%w: the executor has subscribed already", ErrReattach)
	case !b.group && (len(b.tasks) > 0 || len(infos) > 1):
		return fmt.Errorf("%w: the command executor runs one task", ErrReattach)
	}
	tasks := make([]*task, 0, len(infos))
	seen := make(map[string]bool)
	for _, info := range infos {
		id := info.TaskID.Value
		if id == "" || seen[id] || b.tasks[id] != nil {
			return fmt.Errorf("%w: task ID %q is empty or in use", ErrReattach, id)
		}
		seen[id] = true
		t := b.newTask(info)
		if !slices.Contains(known, t.cid) {
			return fmt.Errorf("%w: task %q: container %q: %w", ErrReattach, id, t.cid, containerizer.ErrUnknownContainer)
		}
		t.reattached = true
		tasks = append(tasks, t)
	}
	for _, t := range tasks {
		t.peers = tasks
		b.tasks[t.info.TaskID.Value] = t
	}
	b.pending = append(b.pending, tasks)
	return nil
}

// describe says how a command ended, as Mesos's command executor does.
func describe(t containerizer.Termination) string {
	switch {
	case t.Signal != 0:
		return "Command terminated with signal " + signalName(t.Signal)
	case t.ExitCode >= 0:
		return fmt.Sprintf("Command exited with status %d", t.ExitCode)
	case t.Message != "":
		return "Command ended with an unknown status: " + t.Message
	default:
		return "Command ended with an unknown status"
	}
}

package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/fetch"
	"github.com/apronhq/apron/internal/files"
	"github.com/apronhq/apron/resources"
)

// Master is what an agent needs from a master: *master.Master implements
// it in process, and an HTTP client of the master can implement it across
// machines.
//
// ConnectAgent opens the agent's stream with a REGISTER or REREGISTER call;
// the first event on the returned channel is the master's answer
// (REGISTERED or REREGISTERED). The master closes the channel when the
// stream ends on its side; the agent ends it by cancelling ctx. AgentCall
// sends every other call on behalf of that stream; nil means accepted.
type Master interface {
	ConnectAgent(ctx context.Context, call *internalpb.Call) (streamID string, events <-chan *internalpb.Event, err error)
	AgentCall(ctx context.Context, streamID string, call *internalpb.Call) error
}

// DetectingMaster is an optional capability of a Master: telling when
// another master comes to lead (HTTPMaster with WithMasterDetector). The
// agent then starts its registration backoff over, as Mesos's agent does
// when its detector reports a new master, instead of waiting out a backoff
// grown while the old master was gone.
type DetectingMaster interface {
	Master
	// LeaderChanges returns a channel that receives a value each time
	// another master is detected as leader, until ctx ends.
	LeaderChanges(ctx context.Context) <-chan struct{}
}

// BatchMaster is an optional capability of a Master: taking several calls
// on a stream at once, in order, which costs the master one hand-off (one
// HTTP request, one turn of its loop) instead of one per call. The agent
// uses it, when its Master has it, to send what queued up while the
// previous calls were in flight. A call that fails stops the batch with an
// *internalpb.CallError naming its index: the calls before it were
// applied, the ones after it were not tried, so the agent goes on with
// the next one as it would have sent them one by one. An error without an
// index is taken to be about the first call. *master.Master and
// *HTTPMaster implement it.
type BatchMaster interface {
	AgentCalls(ctx context.Context, streamID string, calls []*internalpb.Call) error
}

// Agent runs the tasks a master sends it; see the package documentation.
// Its methods are safe for concurrent use.
type Agent struct {
	// sandboxMu makes sandboxes one at a time; see makeSandbox.
	sandboxMu  sync.Mutex
	cfg        Config
	log        *slog.Logger
	clk        clock.Clock
	rng        *rand.Rand // loop goroutine only
	meta       metaStore  // the checkpoint store (checkpoint.go)
	resources  resources.Resources
	attributes []mesospb.Attribute

	inbox    chan func()
	started  atomic.Bool
	stopped  chan struct{} // closed when the loop has returned
	finished chan struct{} // closed when Run has returned

	mu   sync.Mutex // guards id and info, read by ID and Info
	id   string
	info mesospb.AgentInfo

	wg sync.WaitGroup // goroutines Run owns: executors, connections, clean-ups

	vols    volumeBook     // volumes of task containers the built-in executors launch
	fetcher *fetch.Fetcher // the agent's and its default executors'
	files   files.Table    // what the files API serves: sandboxes; see files.go

	// Everything below is owned by the loop goroutine.
	loopState
	// stopping is set when Run's context has ended and the executors of
	// the frameworks that do not checkpoint are being shut down
	// (stopUncheckpointed).
	stopping bool
}

// New checks cfg, detects what the configuration leaves out, and reads the
// agent's ID from an earlier run on the same WorkDir, if any. It starts
// nothing: Run does.
func New(cfg Config) (*Agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: WorkDir: %w", ErrInvalidConfig, err)
	}
	rs, err := agentResources(cfg.Resources, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	attrs, err := ParseAttributes(cfg.Attributes)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:        cfg,
		log:        cfg.Logger,
		clk:        cfg.Clock,
		rng:        cfg.Rand,
		meta:       metaStore{cfg.CheckpointStore},
		resources:  rs,
		attributes: attrs,
		inbox:      make(chan func()),
		stopped:    make(chan struct{}),
		finished:   make(chan struct{}),
	}
	a.fetcher = newFetcher(cfg)
	a.id, err = a.meta.readAgentID()
	if err != nil {
		return nil, fmt.Errorf("agent: reading the checkpointed agent ID: %w", err)
	}
	if a.id != "" {
		// The reservations and volumes of the earlier run are part of the
		// total the agent re-registers with.
		if a.checkpointed, err = a.meta.readResources(); err != nil {
			a.log.Warn("agent: unreadable checkpointed resources", "err", err)
		}
	}
	a.info = a.agentInfo()
	return a, nil
}

// ID is the agent's ID, "" until the master first registers it (or the ID
// recovered from WorkDir).
func (a *Agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// Info is the AgentInfo the agent registers with.
func (a *Agent) Info() mesospb.AgentInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	info := a.info
	info.Resources = append([]mesospb.Resource(nil), info.Resources...)
	info.Attributes = append([]mesospb.Attribute(nil), info.Attributes...)
	return info
}

func (a *Agent) agentInfo() mesospb.AgentInfo {
	info := mesospb.AgentInfo{
		Hostname:   a.cfg.Hostname,
		Port:       ptr(int32(a.cfg.Port)),
		Resources:  a.totalResources().ToProto(),
		Attributes: append([]mesospb.Attribute(nil), a.attributes...),
	}
	if a.id != "" {
		info.ID = &mesospb.AgentID{Value: a.id}
	}
	return info
}

func (a *Agent) setID(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.id = id
	a.info = a.agentInfo()
}

// Run recovers what an earlier run on the same WorkDir left (its ID, its
// tasks and their unacknowledged status updates, the containers still
// running), registers with the master (or re-registers with the recovered
// ID and tasks), then keeps the link: it runs what the master sends,
// reconnects with backoff when the master's stream ends, and resends status
// updates until they are acknowledged.
//
// Run returns ctx.Err() when ctx ends. The agent then stops without killing
// the tasks of the frameworks that checkpoint (FrameworkInfo.checkpoint):
// their containers keep running, and an agent started later on the same
// WorkDir recovers them (in-process executors stop with the agent;
// command and default executors are re-created to watch their containers
// again). The executors of the other frameworks are shut down first, their
// tasks killed, as Mesos's agent does when it terminates (Slave::finalize);
// a later agent would not recover them. Run returns nil after Shutdown,
// and an error wrapping ErrRemoved when the master shut the agent down.
// An Agent runs once.
func (a *Agent) Run(ctx context.Context) (err error) {
	if !a.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(a.finished)
	// Last, once nothing else runs: close the task logs kept open.
	defer a.meta.close()
	// runCtx outlives ctx until the agent has stopped: the containers of
	// the executors stopUncheckpointed shuts down are destroyed with it.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	execCtx, cancelExecutors := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelExecutors()
	a.initLoop(runCtx, execCtx)

	if err := a.openContainerizer(); err != nil {
		close(a.stopped)
		return err
	}
	if err := a.recover(runCtx); err != nil {
		close(a.stopped)
		cancelExecutors()
		cancelRun()
		a.wg.Wait()
		a.closeContainerizer()
		return err
	}
	a.connect()
	if dm, ok := a.cfg.Master.(DetectingMaster); ok {
		a.wg.Add(1)
		go a.followLeader(runCtx, dm.LeaderChanges(runCtx))
	}
	err = a.loop(ctx)
	if a.shutdown == nil && ctx.Err() != nil {
		a.stopUncheckpointed(ctx)
	}

	// Stop: refuse new inputs, end the master link and the executors'
	// goroutines, and wait for every goroutine Run started.
	close(a.stopped)
	if a.shutdown != nil {
		a.finishShutdown(ctx)
	}
	if a.conn != nil {
		a.conn.cancel()
	}
	if a.connecting != nil {
		a.connecting()
	}
	cancelExecutors()
	a.closeExecutorStreams()
	cancelRun()
	a.wg.Wait()
	a.closeContainerizer()
	if a.shutdown != nil {
		if err := a.meta.wipe(); err != nil {
			a.log.Error("agent: removing the checkpoints after shutdown", "err", err)
		}
		if a.shutdown.removed {
			return fmt.Errorf("%w: %s", ErrRemoved, a.shutdown.message)
		}
		return nil
	}
	return err
}

// stopUncheckpointed runs on Run's goroutine when ctx has ended, before
// the agent stops: as Mesos's agent when it terminates (Slave::finalize),
// it shuts down the executors of the frameworks that do not checkpoint,
// and runs the loop again until they have terminated, their tasks killed;
// those of the other frameworks run on. The agent first hangs up on the
// master, as Mesos's agent is gone by then: the master stops offering its
// resources (the kills free them) and learns of the tasks when the agent
// re-registers without them, or is removed. The updates of the kills are
// not sent: the next run does not recover these frameworks, nor their
// updates, as Mesos's agent never wrote them down. New tasks are refused
// meanwhile (runTasks).
func (a *Agent) stopUncheckpointed(ctx context.Context) {
	var grace time.Duration
	var fws []*frameworkRec
	for _, fw := range a.tables.Frameworks() {
		if fw.Info().GetCheckpoint() {
			continue
		}
		fws = append(fws, fw)
		for _, e := range fw.Runs() {
			grace = max(grace, a.gracePeriod(e))
		}
	}
	if len(fws) == 0 {
		return
	}
	a.stopping = true
	a.log.Info("agent: stopping; shutting down the executors of the frameworks that do not checkpoint", "frameworks", len(fws))
	a.link.Stop()
	a.disconnected("the agent is stopping")
	if a.connecting != nil {
		a.connecting()
	}
	a.armLinkTimer()
	for _, fw := range fws {
		a.shutdownFramework(fw.ID())
	}
	a.checkStopped()
	if a.done {
		return
	}
	// A safety net in real time, as unregisterTimeout: the grace periods
	// run on the agent's clock, and an executor that ignores its end
	// must not keep the agent from stopping.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace+stopTimeout)
	defer cancel()
	if err := a.loop(sctx); err != nil {
		a.log.Warn("agent: executors of frameworks that do not checkpoint did not terminate; stopping anyway", "err", err)
	}
}

// stopTimeout bounds, past the executors' grace periods, the time
// stopUncheckpointed waits for them; see there.
const stopTimeout = 10 * time.Second

// checkStopped ends the loop once stopUncheckpointed has seen every
// executor of the frameworks that do not checkpoint terminate.
func (a *Agent) checkStopped() {
	if !a.stopping || a.shutdown != nil {
		return
	}
	if a.tables.AllTerminated(uncheckpointed) {
		a.done = true
	}
}

// uncheckpointed says a framework does not checkpoint: the agent does not
// recover it.
func uncheckpointed(fw *frameworkRec) bool { return !fw.Info().GetCheckpoint() }

// Shutdown kills every executor and task of the agent, tells the master the
// agent is leaving (UNREGISTER), forgets the agent's checkpoints (a later
// agent on the same WorkDir registers as a new agent) and ends Run. Each
// executor is told to shut down and has its grace period before its
// containers are destroyed; when ctx ends first, every container is
// destroyed at once. Called when Run is not running, it destroys the
// containers the checkpoints name and removes the checkpoints.
func (a *Agent) Shutdown(ctx context.Context) error {
	if a.started.CompareAndSwap(false, true) {
		// Never run, and now it never will.
		close(a.stopped)
		defer close(a.finished)
		return a.offlineShutdown(ctx)
	}
	err := a.post(ctx, func() { a.beginShutdown(false, "the agent is shutting down") })
	switch {
	case errors.Is(err, ErrStopped):
		<-a.finished
		return a.offlineShutdown(ctx)
	case err != nil:
		return err
	}
	select {
	case <-a.finished:
		return nil
	case <-ctx.Done():
	}
	// Out of time: destroy everything now, then wait for Run to end, which
	// is bounded by the containers' destruction.
	_ = a.post(context.Background(), func() { a.hurryShutdown() })
	<-a.finished
	return ctx.Err()
}

// SubscribeExecutor implements the executor link (executor.Agent), for the
// agent's in-process executors and, through Handler, for executor
// processes: it answers SUBSCRIBE with SUBSCRIBED, then launches the tasks
// queued for the executor. The stream ends when ctx
// ends, when the executor subscribes again, when the executor falls so far
// behind that 64 MiB of events wait for it, or when the executor
// terminates.
func (a *Agent) SubscribeExecutor(ctx context.Context, call *executorpb.Call) (string, <-chan *executorpb.Event, error) {
	return a.subscribeExecutorAs(ctx, nil, call)
}

// subscribeExecutorAs is SubscribeExecutor from a caller whose token made
// claims (nil: none; see checkClaims).
func (a *Agent) subscribeExecutorAs(ctx context.Context, claims *executorClaims, call *executorpb.Call) (string, <-chan *executorpb.Event, error) {
	if call == nil || call.GetType() != executorpb.Call_SUBSCRIBE {
		return "", nil, fmt.Errorf("%w: expected a SUBSCRIBE call", ErrInvalidCall)
	}
	type result struct {
		id     string
		events <-chan *executorpb.Event
		err    error
	}
	r, err := request(a, ctx, func() result {
		if claims != nil {
			e, err := a.callingExecutor(call)
			if err == nil {
				err = checkClaims(claims, e)
			}
			if err != nil {
				return result{err: err}
			}
		}
		id, events, err := a.subscribeExecutor(ctx, call)
		return result{id, events, err}
	})
	if err != nil {
		return "", nil, err
	}
	return r.id, r.events, r.err
}

// ExecutorCall implements the executor link for calls other than
// SUBSCRIBE: UPDATE (a task status update, passed to the status update
// manager), MESSAGE (forwarded to the framework) and HEARTBEAT.
func (a *Agent) ExecutorCall(ctx context.Context, streamID string, call *executorpb.Call) error {
	if call == nil {
		return fmt.Errorf("%w: no call", ErrInvalidCall)
	}
	r, err := request(a, ctx, func() error { return a.executorCall(streamID, call) })
	if err != nil {
		return err
	}
	return r
}

// post runs f on the loop goroutine; it returns ErrStopped before Run and
// once the loop has returned.
func (a *Agent) post(ctx context.Context, f func()) error {
	if !a.started.Load() {
		return ErrStopped
	}
	select {
	case <-a.stopped:
		return ErrStopped
	default:
	}
	select {
	case a.inbox <- f:
		return nil
	case <-a.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request runs f on the loop and returns its result.
func request[T any](a *Agent, ctx context.Context, f func() T) (T, error) {
	var zero T
	reply := make(chan T, 1)
	if err := a.post(ctx, func() { reply <- f() }); err != nil {
		return zero, err
	}
	// The loop runs f before it could stop, so the reply always comes.
	return <-reply, nil
}

// newUUID returns a random (version 4) UUID.
func (a *Agent) newUUID() []byte {
	b := make([]byte, 16)
	for i := 0; i < 16; i += 8 {
		v := a.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// uuidString formats a 16-byte UUID as 8-4-4-4-12 hex digits; other byte
// strings are formatted as plain hex.
func uuidString(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (a *Agent) openContainerizer() error {
	if a.cfg.Containerizer != nil {
		a.cont = a.cfg.Containerizer
		return nil
	}
	c, err := containerizer.NewProcess(containerizer.ProcessOptions{
		StateDir: filepath.Join(a.cfg.WorkDir, "containers"),
		Reaper:   a.cfg.Reaper,
		Logger:   a.log,
		Clock:    a.clk,
	})
	if err != nil {
		return fmt.Errorf("agent: starting the process containerizer: %w", err)
	}
	a.cont, a.ownCont = c, true
	return nil
}

func (a *Agent) closeContainerizer() {
	if a.ownCont {
		if err := a.cont.Close(); err != nil {
			a.log.Warn("agent: closing the containerizer", "err", err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// The agent is its in-process executors' link.
var _ executor.Agent = (*Agent)(nil)

package agent

import (
	"context"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/agentcore"
)

// loopState is the agent's state, owned by the loop goroutine (Run's).
// Nothing here is touched by another goroutine: they post closures to the
// loop instead.
type loopState struct {
	runCtx  context.Context // ends when Run stops
	execCtx context.Context // parent of the in-process executors' contexts

	cont    containerizer.Containerizer
	ownCont bool
	tm      *timers

	// tables are the frameworks, executor runs and tasks
	// (internal/agentcore); execs the I/O of each run, by run ID.
	tables *agentcore.Tables
	execs  map[string]*executorRec
	// goExecutorFn and newRunFn are a.goExecutor and a.newRun, made once:
	// the core calls them for each RUN_TASK.
	goExecutorFn func(string) bool
	newRunFn     func(fwID, execID string) (string, string)
	// updates is the status update manager (internal/agentcore);
	// updateTimer ticks it at updateTimerAt.
	updates       *agentcore.UpdateManager
	updateTimer   timerID
	updateTimerAt time.Time

	// The master link: link is its decisions (internal/agentcore); conn the
	// stream, connecting the attempt in flight, outbox the calls for the
	// sender, flushed each turn; linkTimer ticks link at linkTimerAt.
	link        *agentcore.Link
	conn        *masterConn
	connecting  context.CancelFunc
	outbox      []*internalpb.Call
	linkTimer   timerID
	linkTimerAt time.Time

	checkpointed []mesospb.Resource // from CHECKPOINT_RESOURCES
	met          agentMetrics
	gc           *gcState // the sandbox garbage collector (gc.go)
	ops          opsState // the operator API's own state (operator_state.go)

	shutdown *shutdownState // set once the agent is shutting down
	done     bool           // the loop returns at the end of this turn
}

type shutdownState struct {
	removed bool // by the master: no UNREGISTER
	message string
}

func (a *Agent) initLoop(runCtx, execCtx context.Context) {
	a.runCtx, a.execCtx = runCtx, execCtx
	a.tm = newTimers(a.clk)
	a.tables = agentcore.NewTables()
	a.tables.SetHistoryLimits(agentcore.HistoryLimits{
		Tasks:            a.cfg.MaxCompletedTasks,
		RunsPerFramework: a.cfg.MaxCompletedExecutorsPerFramework,
		Frameworks:       a.cfg.MaxCompletedFrameworks,
	})
	a.execs = map[string]*executorRec{}
	a.goExecutorFn, a.newRunFn = a.goExecutor, a.newRun
	a.updates = agentcore.NewUpdateManager(a.cfg.StatusUpdateRetry, a.cfg.StatusUpdateRetryMax)
	a.link = agentcore.NewLink(a.cfg.RegistrationBackoff, a.cfg.RegistrationBackoffMax, a.linkJitter, a.id)
	a.met = agentMetrics{startedAt: a.clk.Now(), terminal: map[mesospb.TaskState]uint64{}}
	a.initGC()
}

// closeExecutorStreams ends every executor's stream once the loop has
// returned, so HTTP subscriptions end with Run. It runs on Run's goroutine,
// which owned the loop.
func (a *Agent) closeExecutorStreams() {
	for _, e := range a.execs {
		if e.stream != nil {
			e.stream.close()
			e.stream = nil
		}
	}
}

// loop is the agent's single owner goroutine: each turn runs the timers
// that are due, hands the calls it produced to the master's sender, then
// waits for one input: a closure posted by another goroutine (executor
// calls, container and executor ends, connection outcomes), an event from
// the master, or the timer.
func (a *Agent) loop(ctx context.Context) error {
	for {
		a.tm.runDue()
		// Arm the clock timer before the sender can make the calls that a
		// test waits for, so a test that then advances a fake clock always
		// finds the timer set.
		a.tm.arm()
		a.flush()
		if a.done {
			a.tm.disarm()
			return nil
		}
		var events <-chan *internalpb.Event
		if a.conn != nil {
			events = a.conn.events
		}
		select {
		case <-ctx.Done():
			a.tm.disarm()
			return ctx.Err()
		case f := <-a.inbox:
			f()
		case ev, ok := <-events:
			if !ok {
				a.disconnected("the master ended the stream")
			} else {
				a.handleEvent(ev)
			}
		case <-a.tm.C():
			a.tm.fired()
		}
	}
}

// beginShutdown tells every executor to shut down; the loop ends once all
// have terminated.
func (a *Agent) beginShutdown(removed bool, message string) {
	if a.shutdown != nil {
		if removed {
			a.shutdown.removed, a.shutdown.message = true, message
		}
		return
	}
	a.log.Info("agent: shutting down", "why", message)
	a.shutdown = &shutdownState{removed: removed, message: message}
	a.link.Stop()
	a.armLinkTimer()
	for _, fw := range a.tables.Frameworks() {
		for _, e := range fw.Runs() {
			a.shutdownExecutor(a.execOf(e), message)
		}
	}
	a.checkShutdown()
}

// hurryShutdown destroys every executor now instead of waiting for grace
// periods.
func (a *Agent) hurryShutdown() {
	for _, fw := range a.tables.Frameworks() {
		for _, e := range fw.Runs() {
			if e.State() != execTerminated {
				a.killExecutor(a.execOf(e))
			}
		}
	}
}

// checkShutdown ends the loop once a shutdown has terminated every
// executor.
func (a *Agent) checkShutdown() {
	if a.shutdown == nil {
		return
	}
	if a.tables.AllTerminated(nil) {
		a.done = true
	}
}

// finishShutdown runs on Run's goroutine after the loop: it gives the
// sender a moment to deliver the last updates, then unregisters.
func (a *Agent) finishShutdown(ctx context.Context) {
	s := a.shutdown
	if s.removed || !a.isRegistered() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unregisterTimeout)
	defer cancel()
	a.conn.sender.drain(ctx)
	err := a.cfg.Master.AgentCall(ctx, a.conn.streamID, &internalpb.Call{
		Type:    internalpb.Call_UNREGISTER.Enum(),
		AgentID: &mesospb.AgentID{Value: a.id},
	})
	if err != nil {
		a.log.Warn("agent: unregistering from the master", "err", err)
	}
}

// unregisterTimeout bounds the last calls of a shutdown, in real time: it
// is a safety net against a master that does not answer, not a behaviour.
const unregisterTimeout = 10 * time.Second

package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/fetch"
)

// Before an executor (or a command task) starts, the agent fetches its
// CommandInfo.uris into its sandbox with the fetcher of internal/fetch,
// which the built-in default executor shares for the tasks of a group
// (see that package for what it fetches and how). The agent's fetcher is
// configured by Config.FetcherHTTPClient, FetcherMaxSize and
// FetcherStallTimeout.
//
// The fetch runs on a goroutine of its own, never the loop; the executor
// starts once it has succeeded. A failure fails the executor's tasks with
// REASON_CONTAINER_LAUNCH_FAILED; a kill during the fetch cancels it.

// DefaultFetcherStallTimeout is Mesos's --fetcher_stall_timeout.
const DefaultFetcherStallTimeout = fetch.DefaultStallTimeout

// newFetcher is the fetcher of the agent's configuration, for itself and
// for its default executors.
func newFetcher(cfg Config) *fetch.Fetcher {
	return &fetch.Fetcher{Client: cfg.FetcherHTTPClient, MaxSize: cfg.FetcherMaxSize, StallTimeout: cfg.FetcherStallTimeout}
}

// fetchURIs lists the URIs to fetch into an executor's sandbox before it
// starts: for the command executor its task's, as Mesos copies the task's
// CommandInfo into the executor it makes up; for other executors their
// own. (The default executor fetches each task's own into the task's
// sandbox.)
func (e *executorRec) fetchURIs() []mesospb.CommandInfo_URI {
	if !e.Kind().Command() {
		return e.Info().GetCommand().GetURIs()
	}
	for _, item := range e.Queue() {
		if item.Task != nil {
			return item.Task.GetCommand().GetURIs()
		}
	}
	return nil
}

// fetchThenStart makes the executor's sandbox and fetches its URIs on a
// goroutine, then starts it on the loop. A kill meanwhile cancels the
// fetch (through e.cancel, as it would the executor's driver).
func (a *Agent) fetchThenStart(e *executorRec, uris []mesospb.CommandInfo_URI) {
	uris = slices.Clone(uris) // the goroutine's own: TaskInfos stay the loop's
	ctx, cancel := context.WithCancel(a.execCtx)
	e.cancel = cancel
	f, sandbox, user, cid := a.fetcher, e.Sandbox(), e.TaskUser(), e.ContainerID()
	log := a.log.With("framework", e.FrameworkID(), "executor", e.ID(), "container", cid)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		err := f.Fetch(ctx, sandbox, user, uris)
		if err != nil {
			log.Warn("agent: fetching the executor's URIs failed", "err", err)
		} else {
			log.Info("agent: fetched the executor's URIs", "uris", len(uris))
		}
		_ = a.post(context.Background(), func() { a.fetched(e, err) })
	}()
}

// fetched starts the executor whose URIs are in its sandbox, or fails its
// tasks when the fetch failed; an executor killed meanwhile is already on
// its way out.
func (a *Agent) fetched(e *executorRec, err error) {
	if e.cleaning || e.State() != execRegistering {
		return
	}
	e.cancel = nil
	if err != nil {
		a.terminateExecutor(e, &agentcore.Ending{
			State:   mesospb.TASK_FAILED,
			Reason:  mesospb.TaskStatus_REASON_CONTAINER_LAUNCH_FAILED,
			Message: fmt.Sprintf("Failed to fetch all URIs for container '%s': %v", e.ContainerID(), err),
		})
		return
	}
	a.launchExecutor(e)
}

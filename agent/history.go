package agent

import (
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The agent's history: executor runs and frameworks it has forgotten,
// kept (bounded) so that the operator API and /state can still list them,
// with the sandbox each run had, as Mesos's agent keeps its completed
// executors (--max_completed_executors_per_framework, 150) and completed
// frameworks (MAX_COMPLETED_FRAMEWORKS, 50): tools find a finished task's
// sandbox there and read its stdout through the files API until the
// sandbox is garbage collected. The history is in memory only: a
// restarted agent starts a new one, as its completed tasks do.

// completedExecutor is an executor run the agent has forgotten.
type completedExecutor struct {
	info        mesospb.ExecutorInfo
	containerID string
	sandbox     string
	command     bool // a command executor the agent made up
}

// completedFramework is a framework the agent has forgotten, with the runs
// it had forgotten before.
type completedFramework struct {
	info      mesospb.FrameworkInfo
	executors []completedExecutor
}

// Mesos's bounds on the history.
const (
	DefaultMaxCompletedExecutorsPerFramework = 150
	DefaultMaxCompletedFrameworks            = 50
)

// executorForgotten files a run the agent forgets under its framework.
func (a *Agent) executorForgotten(e *executorRec) {
	e.fw.completed = appendBounded(e.fw.completed, completedExecutor{
		info: e.info, containerID: e.containerID, sandbox: e.sandbox, command: e.kind.command(),
	}, a.cfg.MaxCompletedExecutorsPerFramework)
}

// frameworkForgotten files a framework the agent forgets.
func (a *Agent) frameworkForgotten(fw *frameworkRec) {
	a.completedFrameworks = appendBounded(a.completedFrameworks,
		&completedFramework{info: fw.info, executors: fw.completed}, a.cfg.MaxCompletedFrameworks)
}

// frameworkReturned takes a framework the master sends tasks for again
// out of the completed ones, with the runs it had, as Mesos's agent does.
func (a *Agent) frameworkReturned(fw *frameworkRec) {
	for i, c := range a.completedFrameworks {
		if c.info.ID != nil && c.info.ID.Value == fw.id {
			fw.completed = c.executors
			a.completedFrameworks = append(a.completedFrameworks[:i], a.completedFrameworks[i+1:]...)
			return
		}
	}
}

// newestCompleted is the newest limit entries of a bounded list (which
// may hold up to twice as many; see appendBounded).
func newestCompleted[T any](list []T, limit int) []T {
	return list[max(0, len(list)-limit):]
}

// appendBounded appends v to list and, once the list holds twice limit,
// keeps the newest limit: O(1) amortized, where trimming at every append
// would copy the list each time. Readers take newestCompleted.
func appendBounded[T any](list []T, v T, limit int) []T {
	list = append(list, v)
	if len(list) > 2*limit {
		n := copy(list, list[len(list)-limit:])
		clear(list[n:])
		list = list[:n]
	}
	return list
}

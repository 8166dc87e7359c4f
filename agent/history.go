package agent

import "github.com/apronhq/apron/internal/agentcore"

// The agent's history: the tasks, executor runs and frameworks it has
// forgotten, kept (bounded: Config.MaxCompletedTasks,
// MaxCompletedExecutorsPerFramework, MaxCompletedFrameworks) by the
// core's tables (agentcore.Tables.CompletedTasks, CompletedRuns,
// CompletedFrameworks), so that the operator API and /state can still
// list them, with the sandbox each run had, as Mesos's agent keeps its
// completed executors (--max_completed_executors_per_framework, 150) and
// completed frameworks (MAX_COMPLETED_FRAMEWORKS, 50): tools find a
// finished task's sandbox there and read its stdout through the files API
// until the sandbox is garbage collected. The history is in memory only:
// a restarted agent starts a new one.

// completedExecutor is an executor run the agent has forgotten.
type completedExecutor = agentcore.CompletedRun

// Mesos's bounds on the history.
const (
	DefaultMaxCompletedExecutorsPerFramework = 150
	DefaultMaxCompletedFrameworks            = 50
)

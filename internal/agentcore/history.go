package agentcore

import "github.com/apronhq/apron/api/v1/mesospb"

// The agent's history: the tasks, executor runs and frameworks its tables
// have forgotten, kept (bounded) so that the operator API and /state can
// still list them, with the sandbox each run had, as Mesos's agent keeps
// its completed tasks, completed executors
// (--max_completed_executors_per_framework) and completed frameworks
// (MAX_COMPLETED_FRAMEWORKS): tools find a finished task's sandbox there
// and read its stdout until the sandbox is garbage collected. The history
// is in memory only: a restarted agent starts a new one.

// HistoryLimits bound the history; zero keeps none.
type HistoryLimits struct {
	Tasks            int // completed tasks
	RunsPerFramework int // completed executor runs of each framework
	Frameworks       int // completed frameworks
}

// CompletedRun is an executor run the tables have forgotten.
type CompletedRun struct {
	Info        mesospb.ExecutorInfo
	ContainerID string
	Sandbox     string
	Command     bool // a command executor the agent made up
}

// CompletedFramework is a framework the tables have forgotten, with the
// newest runs it had forgotten before.
type CompletedFramework struct {
	Info mesospb.FrameworkInfo
	Runs []CompletedRun
}

// history is what Tables keep of what they forgot. Each list holds up to
// twice its limit (appendBounded); readers take the newest.
type history struct {
	limits     HistoryLimits
	tasks      []mesospb.Task            // oldest first
	runs       map[string][]CompletedRun // by framework ID, oldest first
	frameworks []*CompletedFramework     // oldest first
}

// SetHistoryLimits sets how much of what they forget the tables keep.
func (t *Tables) SetHistoryLimits(l HistoryLimits) { t.history.limits = l }

// CompletedTasks are the newest tasks forgotten, oldest first; the caller
// does not change them.
func (t *Tables) CompletedTasks() []mesospb.Task {
	return newest(t.history.tasks, t.history.limits.Tasks)
}

// CompletedRuns are the newest runs of a framework the tables forgot
// (while they have the framework, or after it came back), oldest first;
// the caller does not change them.
func (t *Tables) CompletedRuns(fwID string) []CompletedRun {
	return newest(t.history.runs[fwID], t.history.limits.RunsPerFramework)
}

// CompletedFrameworks are the newest frameworks forgotten, oldest first;
// the caller does not change them.
func (t *Tables) CompletedFrameworks() []*CompletedFramework {
	return newest(t.history.frameworks, t.history.limits.Frameworks)
}

func (h *history) taskForgotten(task *Task) {
	if h.limits.Tasks > 0 {
		h.tasks = appendBounded(h.tasks, task.Proto(), h.limits.Tasks)
	}
}

func (h *history) runForgotten(r *Run) {
	if h.limits.RunsPerFramework <= 0 {
		return
	}
	if h.runs == nil {
		h.runs = map[string][]CompletedRun{}
	}
	id := r.fw.id
	h.runs[id] = appendBounded(h.runs[id], CompletedRun{
		Info: r.info, ContainerID: r.containerID, Sandbox: r.sandbox, Command: r.kind.Command(),
	}, h.limits.RunsPerFramework)
}

func (h *history) frameworkForgotten(fw *Framework) {
	runs := h.runs[fw.id]
	delete(h.runs, fw.id)
	if h.limits.Frameworks <= 0 {
		return
	}
	h.frameworks = appendBounded(h.frameworks, &CompletedFramework{
		Info: fw.info, Runs: append([]CompletedRun(nil), newest(runs, h.limits.RunsPerFramework)...),
	}, h.limits.Frameworks)
}

// frameworkReturned takes a framework the master sends tasks for again
// out of the completed ones, with the runs it had, as Mesos's agent does.
func (h *history) frameworkReturned(id string) {
	for i, c := range h.frameworks {
		if c.Info.ID != nil && c.Info.ID.Value == id {
			if len(c.Runs) > 0 {
				if h.runs == nil {
					h.runs = map[string][]CompletedRun{}
				}
				h.runs[id] = c.Runs
			}
			h.frameworks = append(h.frameworks[:i], h.frameworks[i+1:]...)
			return
		}
	}
}

// newest is the newest limit entries of a bounded list.
func newest[T any](list []T, limit int) []T {
	return list[max(0, len(list)-max(limit, 0)):]
}

// appendBounded appends v to list and, once the list holds twice limit,
// keeps the newest limit: O(1) amortized, where trimming at every append
// would copy the list each time. Readers take newest.
func appendBounded[T any](list []T, v T, limit int) []T {
	list = append(list, v)
	if len(list) > 2*limit {
		n := copy(list, list[len(list)-limit:])
		clear(list[n:])
		list = list[:n]
	}
	return list
}

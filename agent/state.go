package agent

import (
	"context"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// State is a snapshot of what the agent runs, for the operator API, tools
// and tests.
type State struct {
	Info       mesospb.AgentInfo
	Registered bool // registered with the master now
	Frameworks []FrameworkState
	// CompletedTasks are the latest terminal tasks whose last update was
	// acknowledged, oldest first, at most Config.MaxCompletedTasks.
	CompletedTasks []mesospb.Task
}

// FrameworkState is a framework with executors on the agent.
type FrameworkState struct {
	Info      mesospb.FrameworkInfo
	Executors []ExecutorState
}

// ExecutorState is one executor run.
type ExecutorState struct {
	Info        mesospb.ExecutorInfo
	ContainerID string
	// Directory is the run's sandbox,
	// <work_dir>/agents/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>.
	Directory string
	// State is REGISTERING, RUNNING, TERMINATING or TERMINATED.
	State string
	// Tasks are its queued (TASK_STAGING), launched and terminal but
	// unacknowledged tasks.
	Tasks []mesospb.Task
}

// State returns a snapshot of the agent's frameworks, executors and tasks.
// It fails with ErrStopped when Run is not running; while Run recovers an
// earlier run's state it waits.
func (a *Agent) State(ctx context.Context) (State, error) {
	return request(a, ctx, func() State {
		s := State{Info: a.agentInfo(), Registered: a.isRegistered()}
		for _, fw := range a.tables.Frameworks() {
			fs := FrameworkState{Info: *fw.Info()}
			for _, e := range fw.Runs() {
				es := ExecutorState{Info: *e.Info(), ContainerID: e.ContainerID(), Directory: e.Sandbox(), State: e.State().String()}
				for _, t := range e.Tasks() {
					es.Tasks = append(es.Tasks, t.Proto())
				}
				fs.Executors = append(fs.Executors, es)
			}
			s.Frameworks = append(s.Frameworks, fs)
		}
		s.CompletedTasks = append([]mesospb.Task(nil), a.tables.CompletedTasks()...)
		return s
	})
}

// Package agentcore holds the agent's pure decision cores, as the master's
// StateMachine is one: Mesos's status update manager (UpdateManager: per
// task, in order, checkpoint before forward, retry with backoff), the
// agent's link to its master (Link: when to register, with what backoff,
// when to give a master up), and its frameworks, executor runs and tasks
// (Tables, tables.go: the records and their states, changed only by
// methods that apply one event and return what to do) with the decisions
// they are changed by (tasks.go: admission and the executor kind that
// runs a task, what a KILL_TASK does, how the tasks of an executor that
// ends end, reconciliation answers, the forget rules; executor.go: what
// goes to an executor and what the agent takes from one; recovery.go:
// what becomes of a recovered executor run). None starts a goroutine,
// does I/O or reads a clock: inputs are method calls or function
// arguments with the time in them; the managers' outputs accumulate until
// Drain, the tables' and the decisions' are returned as verdicts the
// caller carries out. The agent package owns them on its loop and does
// their I/O (it keeps each run's executor stream, driver and timers by
// run ID); the simulation (internal/sim) drives the same code for its
// simulated agents, so fault injection exercises what runs in
// production.
package agentcore

import "github.com/apronhq/apron/api/v1/mesospb"

// Terminal reports whether a task state is final (Mesos's
// protobuf::isTerminalState).
func Terminal(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_ERROR,
		mesospb.TASK_LOST, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// Package checkpoint is the agent's checkpoint store: the seam between the
// agent's decisions and the disk they must survive on. An agent writes
// through a [Store] what a restarted agent on the same machine needs to
// take up where it stopped: its ID, the resources the master checkpointed
// on it, the frameworks, the tasks it runs with the executor runs they
// belong to, and each task's status update stream (every update taken and
// every acknowledgement), so that no update is lost or sent twice out of
// order across a restart.
//
// The agent's own implementation keeps its files under <work_dir>/meta
// (package agent's checkpoint.go): one append-only log per task, crash
// safe; [Memory] keeps everything in memory, for tests and simulations.
// Every implementation passes the conformance suite in package
// checkpointtest; what is particular to one (torn records of a file) is
// tested with it.
//
// # Lifecycle
//
// A store is opened over a backing (a directory, a Memory) and written by
// one goroutine, the agent's loop; it need not be safe for concurrent
// writes, but Close may come from the goroutine that ran the loop once it
// has stopped. Writes are durable when they return: a store opened later
// over the same backing loads them. What a write returns an error for may
// or may not have been stored. Close releases what the store holds open and
// leaves it usable; Wipe forgets everything and leaves it usable and empty.
package checkpoint

import (
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Store is where an agent checkpoints. Removing what is not there is not
// an error.
type Store interface {
	// AgentID is the checkpointed agent ID, "" when there is none.
	AgentID() (string, error)
	// SetAgentID replaces the agent ID.
	SetAgentID(id string) error

	// Resources are the checkpointed resources (the master's
	// CHECKPOINT_RESOURCES: reservations and persistent volumes), nil
	// when there are none.
	Resources() ([]mesospb.Resource, error)
	// SetResources replaces the checkpointed resources.
	SetResources(rs []mesospb.Resource) error

	// PutFramework stores or replaces a framework, by info.ID.
	PutFramework(info *mesospb.FrameworkInfo) error
	// RemoveFramework forgets a framework; its tasks, if any are left,
	// stay, and Load returns them.
	RemoveFramework(id string) error

	// PutTask stores or replaces a task with the executor run it belongs
	// to, by its framework and task ID.
	PutTask(t *Task) error
	// AppendUpdate adds a status update to the end of a task's stream.
	// The task need not have been put: the agent makes updates for tasks
	// it does not know.
	AppendUpdate(framework, task string, u *internalpb.Call_StatusUpdate) error
	// AppendAck records the acknowledgement of the update with uuid in a
	// task's stream.
	AppendAck(framework, task string, uuid []byte) error
	// RemoveTask forgets a task and its status update stream together.
	RemoveTask(framework, task string) error

	// Load reads everything stored but the agent ID and resources. A
	// damaged entry (a framework, a task and its stream) is reported to
	// warn, when not nil, and left out: one damaged entry must not keep
	// an agent from starting. The result is the caller's.
	Load(warn func(msg string, args ...any)) (*State, error)

	// Wipe forgets everything; the store stays usable, and empty.
	Wipe() error
	// Close releases what the store keeps open; it stays usable.
	Close() error
}

// Task is a checkpointed task and the executor run it belongs to.
type Task struct {
	// FrameworkID and Info.TaskID name the task.
	FrameworkID string
	Info        mesospb.TaskInfo
	// Group holds the IDs of the tasks of the task group it came in, in
	// the group's order; nil for a task launched alone.
	Group []string
	// Executor is the run's ExecutorInfo; its FrameworkID is FrameworkID.
	Executor mesospb.ExecutorInfo
	// Kind is the agent's name for the kind of executor (command,
	// default, process, ...); the store keeps it as it is.
	Kind string
	// ContainerID names the executor run; Sandbox is its directory.
	ContainerID string
	Sandbox     string
}

// Stream is a task's status update stream as stored: every update
// appended and every acknowledgement appended, each in the order appended.
type Stream struct {
	FrameworkID string
	TaskID      string
	Updates     []*internalpb.Call_StatusUpdate
	Acked       [][]byte
}

// State is what Load reads. Each list is sorted by framework ID, then task
// ID, so that what an agent recovers does not depend on the store.
type State struct {
	Frameworks []mesospb.FrameworkInfo
	Tasks      []Task
	// Streams holds the streams with at least one update; a task's
	// acknowledgements without updates say nothing and are left out.
	Streams []Stream
}

// Package master is Apron's master: it pools the resources of the agents
// that register with it, has its allocator divide them among frameworks,
// makes offers, launches the tasks frameworks put on them, and keeps every
// task's latest state so it can answer reconciliation.
//
// The decision logic is a state machine (core) that takes one input at a
// time — a scheduler call, an agent call, a stream that ended, a tick with
// the time in it — and leaves events to send in an outbox. It does no I/O
// and reads no clock, so tests and the simulation harness drive it
// deterministically. A Master owns a core on one goroutine (Run) and
// connects it to the world: schedulers subscribe through
// SubscribeScheduler and call through SchedulerCall (the scheduler
// package's Driver uses them in one process; the HTTP API wraps the same
// methods), agents through ConnectAgent and AgentCall. Each stream is a
// bounded channel; a subscriber that falls behind is disconnected rather
// than waited for, so one slow client never slows the master.
//
// Behaviour follows Mesos: offers are batched (a full allocation cycle every
// AllocationInterval, and resources that become free are offered at the
// next tick); a declined offer's resources are filtered for the framework
// for refuse_seconds (5 s by default); a framework that disconnects keeps
// its tasks for its failover_timeout (0 by default, so they are killed at
// once); agents are pinged and removed after MaxAgentPingTimeouts
// unanswered pings, their tasks reported TASK_LOST (TASK_UNREACHABLE for
// partition-aware frameworks); invalid tasks get TASK_ERROR with a message
// saying what is wrong, tasks on invalid offers TASK_LOST (TASK_DROPPED),
// and nothing of a refused ACCEPT is lost: unused resources return to the
// allocator.
package master

// Package containerizer runs the processes of an agent's tasks and executors
// as containers and tells the agent when they end.
//
// # The model
//
// A container is one command started in a sandbox directory, with an exact
// environment, as some user, under resource limits. The agent turns a
// TaskInfo or ExecutorInfo into a [Config]; the containerizer knows nothing
// of frameworks, tasks or protobufs. A container goes through these states:
//
//	Launch ──▶ running ──(its main process exits, or is killed)──▶ ended ──Destroy──▶ forgotten
//
// [Containerizer.Launch] returns once the main process has started (or with
// an error, after which the container does not exist). [Containerizer.Wait]
// blocks until the container has ended and returns its [Termination]; any
// number of callers may wait, before or after the end. An ended container
// stays known, with its termination, until [Containerizer.Destroy], which
// kills whatever is left of it, waits for its main process to be reaped and
// forgets it: every launched container must be destroyed once, or its state
// is kept for ever. [Containerizer.Signal] sends a signal to every process
// of a running container; the agent's kill policy is Signal(SIGTERM), a
// grace period spent in Wait, then Destroy.
//
// Containers outlive the agent. When the agent restarts, a new containerizer
// on the same state directory finds them again with [Containerizer.Recover]:
// those whose main process still runs are watched again, those that ended
// while nobody watched are reported as ended. Only a process's parent learns
// its exit status, so a containerizer whose containers are the agent's own
// children loses the status of those that end while the agent is down (see
// [Termination.StatusKnown]); the process containerizer with a reaper
// ([ProcessOptions.Reaper]) keeps it. The agent destroys the recovered
// containers it has no task for.
//
// # Implementations
//
// Every implementation passes the conformance suite in
// [github.com/apronhq/apron/containerizer/containerizertest].
//
// [Process], the process containerizer, isolates nothing but a process group:
// each container is one fork/exec of its command in a new session (so in its
// own process group), with its own working directory, environment, user,
// groups and stdout/stderr files. It does not enforce [Limits] (it records
// and reports them), does not confine the filesystem, network, PIDs or
// devices, and cannot follow a process that leaves the container's process
// group (with setsid or setpgid): Signal and Destroy do not reach it. It is
// the right choice for trusted workloads and for machines without root; it
// costs one fork/exec per container. With [ProcessOptions.Reaper] the
// fork/exec is done by the reaper, one helper process per state directory
// (not per container) that outlives the agent as the containers' parent,
// so a container that ends while the agent is down keeps its exit status;
// a program that uses it calls [RunReaper] when [IsReaper] says so.
//
// A Linux containerizer (namespaces, cgroups, images) implements the same
// interface for untrusted workloads and enforced limits.
//
// [Noop] runs nothing: its containers end with exit status 0 after a
// configured run time. It is for load tests of the agent and master
// (examples/loadgen), which should measure Apron rather than fork/exec; it
// keeps the lifecycle of the interface but, running no process, not the
// conformance suite's cases about processes.
package containerizer

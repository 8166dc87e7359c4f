// Package executor is the executor side of Apron: the Executor interface a
// framework's executor implements, the Driver that connects it to its
// agent, and the two executors built in (the command executor and the
// default executor).
//
// # Lifecycle
//
// An agent starts an executor for a framework (in its own process, or in
// the agent's). The executor's Driver subscribes to the agent over an
// [Agent] link and gets SUBSCRIBED ([Executor.Registered]); then the agent
// sends LAUNCH or LAUNCH_GROUP for tasks, KILL, MESSAGE from the scheduler,
// ACKNOWLEDGED, and at last SHUTDOWN. The executor answers with status
// updates ([Driver.SendStatusUpdate]): TASK_STARTING, TASK_RUNNING, then one
// terminal state per task. The agent acknowledges each update once it holds
// it; until then the driver keeps it, with the TaskInfo of every task none
// of whose updates was acknowledged yet. When the stream ends (the agent
// restarted, or dropped a slow subscriber) the driver calls
// [Executor.Disconnected] and subscribes again, carrying those tasks and
// updates in SUBSCRIBE so nothing is lost, with capped exponential backoff
// on the injected clock, for up to Config.RecoveryTimeout; then
// [Executor.Reregistered]. The executor ends by calling [Driver.Stop],
// usually after its last terminal update is acknowledged or when asked to
// shut down.
//
// # The driver
//
// The driver has one goroutine, Run's, which calls the Executor's callbacks
// one at a time in the order of the events; callbacks must not block for
// long. Work that waits (a task's process) goes on goroutines started with
// [Driver.Go], which Run cancels and waits for when it returns, so every
// goroutine has an owner. SendStatusUpdate and SendFrameworkMessage may be
// called from any goroutine; updates reach the agent in the order they were
// sent. The link is the [Agent] interface, whose implementations are the
// agent itself (in one process, events over a Go channel) and [HTTPAgent],
// the client of an agent's /api/v1/executor (Apron's or Apache Mesos's).
//
// # Executor processes
//
// An agent starts a custom executor as a process with the Mesos executor
// environment; its main is
//
//	cfg, err := executor.ConfigFromEnv(os.Getenv) // Agent: HTTPAgent(MESOS_AGENT_ENDPOINT)
//	d, err := executor.NewDriver(myExecutor, cfg)
//	err = d.Run(ctx)
//
// as with Mesos's executor libraries. The built-in command executor can run
// so too: an agent in its process mode re-executes a binary (its own, by
// default) with [CommandExecutorEnv] set, and the binary calls
// [RunCommandExecutor] when [IsCommandExecutorProcess] says so.
//
// # The built-in executors
//
// [NewCommandExecutor] runs one task's CommandInfo; [NewDefaultExecutor]
// runs task groups, and kills a group's remaining tasks when one of them
// fails or is killed. Both run each task as one container of a
// [containerizer.Containerizer]: one fork/exec of the task's command, with
// no helper process in between. The default executor first fetches each
// task's CommandInfo.uris into the task's sandbox with
// CommandConfig.Fetcher, all of a group's at once; a failed fetch fails
// every task of the group (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED,
// "Failed to fetch all URIs for container ..." for the task whose fetch
// failed), and none of them runs. (The command executor's task was
// fetched by its agent before the executor started.) CommandInfo.shell (the default) runs
// "/bin/sh -c value"; otherwise value is executed with arguments as argv.
// The environment is CommandConfig.Env with CommandInfo.environment on top
// (VALUE variables; SECRET variables fail the task); the user is
// CommandInfo.user, else CommandConfig.User. A kill sends SIGTERM, waits the
// grace period (the KILL's kill policy, else the task's, else
// CommandConfig.DefaultGracePeriod, 3 s) on the injected clock, then
// destroys the container; a second kill does not restart the grace period,
// though a shorter one may cut it. Every container is destroyed (released)
// when its task ends.
//
// Containers outlive the executor's driver: when Run ends because its
// context ended (the agent going away), the built-in executors leave their
// tasks' containers running and report nothing, so that an agent restarted
// on the same state can recover the containers and hand each to a new
// executor with Reattach ([CommandExecutor.Reattach],
// [DefaultExecutor.Reattach]); the new executor then waits on the container
// and reports the task's end. Containers are named with [TaskContainerID].
//
// # Checks and health checks
//
// The built-in executors run a task's TaskInfo.check and
// TaskInfo.health_check (COMMAND, HTTP, TCP) as Mesos's do (its
// src/checks and launcher/executor.cpp, default_executor.cpp), timed by
// CommandConfig.Clock: the first run delay_seconds after the task runs,
// each next one interval_seconds after the previous one ended; a run
// longer than timeout_seconds (0: no limit) is stopped and fails. COMMAND
// runs the command with CommandConfig.Checks (a [CheckRunner]: by default
// a container nested in the task's, so in its namespaces, root filesystem
// and cgroups, as the task's user, with the task's environment and the
// check's on top); HTTP GETs
// scheme://127.0.0.1:port/path (redirects followed, certificates not
// verified, as curl -L -k), 200 to 399 being healthy; TCP connects to
// 127.0.0.1:port (::1 for IPv6 health checks).
//
// A check sends an update (the last one sent, with reason
// REASON_TASK_CHECK_STATUS_UPDATED) whenever its check_status changes (a
// run that fails counts as the empty status); every update made from
// scratch carries the empty check_status of the check's type. A health
// check sends healthy=true (reason REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
// the last update otherwise) on its first success and on a success after
// failures, and healthy=false on every failure, except those within
// grace_period_seconds of the launch before the first success; after
// consecutive_failures failures in a row it kills the task as a KILL does
// (TASK_KILLING for frameworks that take it, SIGTERM, the task's kill
// policy's grace period, SIGKILL), and the task's TASK_KILLED says
// healthy=false (with the default executor, as Mesos's, every terminal
// update after such a kill does). Checks stop when the task is killed or
// ends; the default executor's pause while it is disconnected from its
// agent. A task whose check or health check is invalid is refused with
// TASK_ERROR and the message of Mesos's master (REASON_TASK_INVALID;
// REASON_TASK_GROUP_INVALID and "Task '<id>' is invalid: ..." for each task
// of a group).
package executor

// Package agent is Apron's agent: it offers one machine's resources to a
// master, runs the tasks the master sends it, and reports their states
// reliably, as Apache Mesos's agent does.
//
// # The model
//
// An Agent holds one link to the master ([Master]: the in-process
// *master.Master, or an HTTP client of it). [Agent.Run] registers with the
// agent's AgentInfo (hostname, resources, attributes) and checkpoints the ID
// the master assigns; a restarted agent, or one whose stream to the master
// ended, re-registers with that ID and everything it runs. The master's
// events come on the stream: RUN_TASK and RUN_TASK_GROUP, KILL_TASK,
// SHUTDOWN_FRAMEWORK and SHUTDOWN_EXECUTOR, ACKNOWLEDGE, PING (answered with
// PONG), FRAMEWORK_MESSAGE, UPDATE_FRAMEWORK, CHECKPOINT_RESOURCES,
// RECONCILE_TASKS and SHUTDOWN. When the stream ends the agent reconnects
// after a random delay whose bound doubles from Config.RegistrationBackoff
// up to RegistrationBackoffMax; it also does when the master has not pinged
// for the interval × misses its REGISTERED announced.
//
// Tasks run under executors, each in a sandbox directory laid out as
// Mesos's: <work_dir>/agents/<agent>/frameworks/<fw>/executors/<ex>/runs/<run>,
// where <run> is a fresh UUID naming the executor run (its "container ID").
// A task with a command runs under the built-in command executor
// (executor.NewCommandExecutor), whose executor ID is the task's ID; a task
// group runs under the built-in default executor; a task with an
// ExecutorInfo runs under a Go executor registered in Config.Executors under
// the name in its command.value, or else under that command as an executor
// process.
//
// In-process executors (the built-in ones, and Config.Executors) run on a
// goroutine of the agent each, with an executor.Driver linked to the agent
// through [Agent.SubscribeExecutor] and [Agent.ExecutorCall]; only the
// tasks' own commands are processes, each one container of
// Config.Containerizer (named <run>.<task>): a command task costs one
// fork/exec. Executor processes are what Mesos runs: a custom executor
// (ExecutorInfo.command, in its sandbox, as the task's user, with
// CommandInfo.environment), or the command executor itself when
// Config.CommandExecutorMode is CommandExecutorProcess (the binary
// Config.CommandExecutorPath, by default the agent's own, which hands over
// to executor.RunCommandExecutor). Each is one container of
// Config.Containerizer named <run>; it subscribes over HTTP to
// Config.Endpoint, where the embedder serves [Agent.Handler], within
// Config.ExecutorRegistrationTimeout (1 min), or it is destroyed and its
// tasks get TASK_FAILED (REASON_EXECUTOR_REGISTRATION_TIMEOUT). The end of
// its process ends the executor, and the master gets EXECUTOR_EXITED with
// the process's wait status (not for the command executor, which the
// master does not know, as in Mesos). Before an executor starts, the agent fetches
// its CommandInfo.uris (a command task's own) into its sandbox, as Mesos's
// fetcher does: http, https, file:// and absolute paths, extracting
// archives and honouring executable and output_file (see Config.Fetcher*);
// a failed fetch fails the tasks with REASON_CONTAINER_LAUNCH_FAILED. The
// default executor, given the agent's fetcher (CommandConfig.Fetcher),
// fetches each task's own URIs into the task's sandbox,
// <run>/tasks/<task>, before any task of the group starts; one failed
// fetch fails the whole group the same way, as a group launches whole or
// not at all. Executor processes see the
// Mesos executor environment (MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID,
// MESOS_SLAVE_ID, MESOS_SLAVE_PID, MESOS_AGENT_ENDPOINT, MESOS_SANDBOX,
// MESOS_DIRECTORY, MESOS_CHECKPOINT (1 for a framework with
// FrameworkInfo.checkpoint, else 0), MESOS_HTTP_COMMAND_EXECUTOR=1,
// MESOS_RECOVERY_TIMEOUT, MESOS_SUBSCRIPTION_BACKOFF_MAX,
// MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD, LIBPROCESS_PORT=0, LIBPROCESS_IP
// when Config.IP is one of the machine's; durations as
// Mesos writes them, "15mins") and a default PATH, as do tasks,
// with their CommandInfo's environment on top; nothing of the agent's own
// environment.
//
// Tasks for an executor that has not subscribed yet wait in its queue; a
// kill of a queued task is answered by the agent with TASK_KILLED.
//
// Every status update, from an executor or made by the agent (source
// SOURCE_AGENT: kills of queued tasks, tasks an executor left behind,
// unknown tasks), goes through the status update manager: one FIFO per
// task, whose head is sent to the master with the task's latest state and
// resent with backoff (Config.StatusUpdateRetry, 10 s, doubling to 10 min)
// on the injected clock until the master forwards the framework's
// ACKNOWLEDGE of its uuid, then the next update goes out. The executor
// gets ACKNOWLEDGED as soon as the agent has checkpointed its update, as
// from Mesos's agent: the agent retries it from then on. Updates wait across master disconnections and are resent
// after re-registration. A task whose terminal update is acknowledged is
// forgotten (the last Config.MaxCompletedTasks stay visible in
// [Agent.State]); an executor is forgotten when it has terminated and all
// its tasks are; when one ends, the tasks it left non-terminal get
// TASK_FAILED (REASON_EXECUTOR_TERMINATED) and the master gets
// EXECUTOR_EXITED (but for a command executor). Updates of tasks that
// reached their executor carry a container_status, as Mesos's agent adds
// it: the container's ID (nested in the executor's for a task group's
// task), the agent's IP (Config.IP) as the task's, and the executor's pid
// when it runs in the agent. A shut-down executor gets SHUTDOWN, then, after its
// grace period (ExecutorInfo.shutdown_grace_period, else
// Config.ExecutorShutdownGracePeriod, 5 s), its driver is cancelled and its
// containers destroyed; its leftover tasks get TASK_KILLED.
//
// # HTTP
//
// [Agent.Handler] is the agent's HTTP API, wire-compatible with a Mesos
// agent's: the executor API (POST /api/v1/executor), through which
// executor processes, Apron's (executor.HTTPAgent) or any Mesos v1
// executor library's, subscribe and call, with HEARTBEAT events every
// Config.ExecutorHeartbeatInterval (30 min, as Mesos) on their streams; the
// operator API (POST /api/v1: GET_HEALTH, GET_FLAGS, GET_VERSION,
// GET_METRICS, GET_STATE, GET_CONTAINERS, GET_FRAMEWORKS, GET_EXECUTORS,
// GET_TASKS, GET_AGENT, GET_LOGGING_LEVEL, SET_LOGGING_LEVEL,
// GET_OPERATIONS, GET_RESOURCE_PROVIDERS, KILL_CONTAINER, WAIT_CONTAINER);
// GET /health and /metrics (Prometheus); and the Mesos agent's endpoints in
// Mesos's own JSON shapes, which tools read: /state, /flags, /containers,
// /monitor/statistics, /metrics/snapshot and /logging/toggle, also under
// /slave(1)/ (see endpoints.go). Its metrics use the Mesos agent's names
// (slave/tasks_running, ...) in GET_METRICS and /metrics/snapshot, and
// apron_agent_* in /metrics.
//
// # Security
//
// As Mesos's agent (see auth.go for the details): each endpoint family
// asks for an HTTP credential when its Config switch is on
// (AuthenticateHTTPReadOnly, AuthenticateHTTPReadWrite, with
// Config.Authenticator); executor processes get a token (a JWT signed
// with Config.ExecutorSecretKey, naming their framework, executor and
// container) in MESOS_EXECUTOR_AUTHENTICATION_TOKEN, which the executor
// API requires with AuthenticateHTTPExecutors, so that no one speaks for
// an executor but itself; Config.Authorizer (Mesos's ACLs) authorizes the
// operator calls that act and filters those that read, and the files
// API. The agent authenticates to its master with [WithCredential].
// Sandboxes are 0750, owned by the task's user, and their stdout and
// stderr 0640, so that one user's tasks do not read another's output.
//
// One goroutine, Run's, owns all of this state: an event loop fed by the
// master's stream, executor calls, timers (one clock timer multiplexes all
// deadlines) and the ends of executors and containers. Calls to the master
// go out on a sender goroutine and events to executors on channels the
// loop never blocks on (what does not fit waits in a backlog, in order;
// only an executor 64 MiB behind has its stream closed, and its driver
// subscribes again); containerizer work runs on goroutines that report
// back to the loop. The status update manager, the master link and the
// tables of frameworks, executor runs and tasks are pure cores
// (internal/agentcore: inputs with the time in them, outputs drained or
// returned as verdicts, as the master's StateMachine): the loop feeds
// them, keeps only each run's I/O (its executor stream, driver and
// timers), and makes their checkpoint writes before it forwards anything
// of the same batch.
//
// # Checkpoints and recovery
//
// Under <work_dir>/meta the agent checkpoints its ID, the frameworks,
// executor runs and tasks it runs, checkpointed resources, and each task's
// status update stream (an append-only log of updates and
// acknowledgements; a record torn by a crash is cut off when read, as
// Mesos does). The store is a seam: Config.CheckpointStore takes any
// checkpoint.Store (checkpoint.Memory for tests and simulations); every
// implementation passes checkpointtest.Run. Command tasks keep their exit
// status across a restart when the default containerizer has a reaper
// (Config.Reaper). When Run's context ends the agent stops without killing
// the tasks of the frameworks that checkpoint (FrameworkInfo.checkpoint):
// their containers keep running, and a new Agent on the same WorkDir
// recovers them. As Mesos's agent, it recovers no other framework: before
// Run returns it shuts down their executors, killing their tasks
// (Slave::finalize), and after a crash the next agent destroys their
// containers, removes their checkpoints (which Apron writes for every
// framework) and leaves them out of REREGISTER; the master then reports
// their tasks TASK_LOST (TASK_DROPPED to a PARTITION_AWARE framework),
// REASON_RECONCILIATION. Their executors get MESOS_CHECKPOINT=0 and exit
// when their agent goes away. It recovers its ID, calls Containerizer.Recover,
// hands each surviving container of a command or default executor to a new
// built-in executor (Reattach), which reports the task's end; watches the
// executor processes that survived, which reconnect over HTTP (they must
// within Config.ExecutorReregistrationTimeout of the end of recovery, but
// at least two of their retry intervals, 2 × 2 s, or are destroyed); it
// gives TASK_FAILED (REASON_EXECUTOR_TERMINATED) to tasks whose containers
// or executor processes are gone and to tasks of in-process Go executors,
// which died with the old agent; destroys containers nobody claims;
// re-registers with the tasks; and resends the updates not yet
// acknowledged. [Agent.Shutdown] (and the master's SHUTDOWN) is the other
// way to stop: it kills every executor and task, unregisters, and removes
// the checkpoints, so a later agent on the same WorkDir is a new agent.
//
// # Sandbox garbage collection
//
// Sandboxes stay while their executor run lives or has updates not yet
// acknowledged; then, as in Mesos, the run's sandbox is scheduled for
// removal after Config.GCDelay (1 week), with its executor's and its
// framework's directories once nothing of them is left, and removed sooner
// as the disk fills: every Config.DiskWatchInterval (1 min) what was
// scheduled longer ago than GCDelay × max(0, 1 − Config.GCDiskHeadroom −
// disk usage) goes. A restarted agent schedules the leftovers it finds by
// their mtimes. Removal never follows a symbolic link (a persistent
// volume's data survives its sandbox) and unmounts what is mounted inside
// first; the trees are deleted off the loop. See gc.go.
//
// # Reservations and persistent volumes
//
// CHECKPOINT_RESOURCES from the master carries every dynamic reservation
// and persistent volume of the agent; the agent's total, as it registers
// and re-registers (after its own restart too), is its configured
// resources with them applied. Each volume's data is kept in
// <work_dir>/volumes/roles/<role>/<persistence id> ('/' of a hierarchical
// role written as a space) and removed when the volume is destroyed; a
// task using a volume sees it at its container_path in the sandbox,
// whatever its executor: the built-in ones, an executor process, or an
// in-process Go executor (for a task handed to an executor already
// running, the agent makes the link itself before delivering the task).
package agent

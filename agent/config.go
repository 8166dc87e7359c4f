package agent

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apronhq/apron/agent/checkpoint"
	apiv1 "github.com/apronhq/apron/api/v1"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/fetch"
)

// Config configures an agent. Every field but Master and WorkDir has a
// working default, Mesos's where Mesos has one.
type Config struct {
	// Master is the link to the master (the in-process *master.Master, or a
	// client of its HTTP API). Required.
	Master Master
	// WorkDir holds the sandboxes (<WorkDir>/agents/...), the checkpoints
	// (<WorkDir>/meta) and, by default, the containerizer's state
	// (<WorkDir>/containers). Required; created if missing. Two agents must
	// not share one.
	WorkDir string

	// Resources are what the agent offers, in Mesos's text form
	// ("cpus:4;mem:4096;disk:10000;ports:[31000-32000]") or its JSON form.
	// As with Mesos's --resources flag, each of cpus, mem, disk and ports
	// that the text does not name is detected: cpus are the online CPUs,
	// mem the machine's memory less 1 GiB (half of it under 2 GiB), disk the
	// size of WorkDir's file system less 5 GiB (half of it under 10 GiB),
	// both in MB, and ports [31000-32000].
	Resources string
	// Attributes describe the agent to schedulers, as Mesos's --attributes
	// flag: "rack:r1;zone:a;level:3;slots:[1-4]". A value is a scalar when
	// it is a number, ranges in brackets, else text.
	Attributes string
	// Hostname goes in AgentInfo; default os.Hostname().
	Hostname string
	// IP and Port are the agent's advertised address (Mesos's --ip or
	// --advertise_ip, and --port or --advertise_port): Port goes in
	// AgentInfo.port, both in the agent's PID "slave(1)@IP:Port"
	// (MESOS_SLAVE_PID, from which Mesos's executor library builds the
	// executor API's URL), and IP in the TaskStatus.container_status of
	// tasks, which share the host's network. Defaults: the host and port
	// of Endpoint when it names them (an IP, for IP); else, for IP, the
	// first non-loopback address of the machine's interfaces (Mesos
	// resolves its hostname instead; Apron does no DNS lookup at start),
	// or 127.0.0.1; for Port, Mesos's 5051.
	IP   string
	Port int

	// Containerizer runs task processes. Default: the process
	// containerizer (containerizer.NewProcess) with its state in
	// <WorkDir>/containers, which the agent then owns and closes when Run
	// returns (leaving the containers running for a restarted agent).
	Containerizer containerizer.Containerizer
	// Reaper is the command line of the default process containerizer's
	// reaper (containerizer.ProcessOptions.Reaper): a program whose main
	// calls containerizer.RunReaper when containerizer.IsReaper reports
	// true, usually the agent's own binary. With it, a command task (and
	// any container) that ends while the agent is stopped or restarting
	// ends with its real exit status; without it, its status is unknown
	// and the task is reported TASK_FAILED. examples/agent sets it to
	// itself; an embedder whose binary handles IsReaper should too.
	Reaper []string
	// CheckpointStore is where the agent checkpoints its ID, resources,
	// frameworks, tasks and status update streams. Default: its files
	// under <WorkDir>/meta. checkpoint.Memory keeps them in memory, for
	// tests and simulations (a restart then recovers only within the
	// process).
	CheckpointStore checkpoint.Store
	// Executors are in-process Go executors by name: a task whose
	// ExecutorInfo.command.value equals a key runs under that Executor, on a
	// goroutine of the agent with an executor.Driver linked to the agent, no
	// process. The same value serves every executor ID that names it, each
	// with its own Driver; an Executor with per-executor state keys it by
	// Driver or by Info.Executor.ExecutorID. A task group whose executor
	// names a key runs under it instead of the default executor.
	Executors map[string]executor.Executor

	// Endpoint is the agent's HTTP address as executors reach it, host:port
	// (or a URL), where the embedder serves Handler. Executor processes get
	// it as MESOS_AGENT_ENDPOINT and subscribe to
	// <Endpoint>/api/v1/executor; tasks see it too. Custom executors
	// (an ExecutorInfo whose command names no in-process executor) and
	// CommandExecutorProcess need it: without it their tasks fail.
	Endpoint string
	// CommandExecutorMode says how command tasks run:
	// CommandExecutorInProcess (the default: the command executor is a
	// goroutine of the agent, and the task one fork/exec) or
	// CommandExecutorProcess (the command executor is a process of its own,
	// CommandExecutorPath, which subscribes over HTTP as Mesos's
	// mesos-executor does, and runs the task itself).
	CommandExecutorMode CommandExecutorMode
	// CommandExecutorPath is the binary started as the command executor in
	// CommandExecutorProcess mode, with CommandExecutorArgs as its
	// arguments and executor.CommandExecutorEnv set; it must call
	// executor.RunCommandExecutor when it sees that (see
	// executor.IsCommandExecutorProcess). Default: the agent's own binary
	// (os.Executable), with the argument "executor".
	CommandExecutorPath string
	CommandExecutorArgs []string

	// Clock, Rand and Logger are injected for tests; defaults are the
	// system clock, a randomly seeded source and a discarding logger. Rand
	// makes status update UUIDs, container IDs and backoff jitter.
	Clock  clock.Clock
	Rand   *rand.Rand
	Logger *slog.Logger
	// LogLevel is the level of Logger's handler when the embedder made
	// it with one (slog.HandlerOptions{Level: LogLevel}): the operator
	// calls GET_LOGGING_LEVEL and SET_LOGGING_LEVEL read and change it
	// (see logging.go). Default: a LevelVar of the agent's own at Info,
	// which those calls change to no effect on Logger.
	LogLevel *slog.LevelVar

	// ExecutorShutdownGracePeriod is how long an executor told to shut down
	// has before the agent destroys its containers; an executor's own
	// ExecutorInfo.shutdown_grace_period overrides it (Mesos: 5 s).
	ExecutorShutdownGracePeriod time.Duration
	// RegistrationBackoff is the initial bound of the random delay before
	// the agent reconnects to the master after its stream ends; it doubles
	// with every failed attempt up to RegistrationBackoffMax (Mesos: 1 s
	// and 1 min). The first connection is made at once.
	RegistrationBackoff    time.Duration
	RegistrationBackoffMax time.Duration
	// StatusUpdateRetry is how long the agent waits for the acknowledgement
	// of a status update before resending it; it doubles with each resend up
	// to StatusUpdateRetryMax (Mesos: 10 s and 10 min).
	StatusUpdateRetry    time.Duration
	StatusUpdateRetryMax time.Duration
	// ExecutorRecoveryTimeout and ExecutorSubscriptionBackoffMax are passed
	// to executors (MESOS_RECOVERY_TIMEOUT, MESOS_SUBSCRIPTION_BACKOFF_MAX):
	// how long an executor keeps trying to reconnect to a restarting agent,
	// and its largest delay between tries (Mesos: 15 min and 2 s).
	ExecutorRecoveryTimeout        time.Duration
	ExecutorSubscriptionBackoffMax time.Duration
	// ExecutorEnvironment is added, as KEY=VALUE, to the environment of
	// every executor process, over the agent's own MESOS_* variables
	// (Mesos's --executor_environment_variables): PATH, proxies, and
	// LIBPROCESS_SSL_* so that executors speak TLS to a TLS agent.
	ExecutorEnvironment []string
	// ExecutorRegistrationTimeout is how long a launched executor process
	// has to subscribe; one that has not is destroyed and its tasks fail
	// (TASK_FAILED, REASON_EXECUTOR_REGISTRATION_TIMEOUT) (Mesos: 1 min).
	ExecutorRegistrationTimeout time.Duration
	// ExecutorReregistrationTimeout is how long the executor processes
	// that survived an agent restart have to subscribe again to the new
	// agent, from the end of its recovery, before they are destroyed
	// (Mesos: 2 s). The agent waits at least two of their retry intervals
	// (2 × ExecutorSubscriptionBackoffMax), so that an executor retrying
	// at that interval cannot just miss it.
	ExecutorReregistrationTimeout time.Duration
	// ExecutorHeartbeatInterval is the interval of the HEARTBEAT events on
	// executors' HTTP streams, which keep intermediaries from closing an
	// idle connection (Mesos: 30 min). Heartbeats are timed by the real
	// clock, not Clock: they are for the network.
	ExecutorHeartbeatInterval time.Duration
	// DefaultKillGracePeriod is the grace period between SIGTERM and SIGKILL
	// when a task's kill policy sets none (Mesos: 3 s).
	DefaultKillGracePeriod time.Duration
	// MaxCompletedTasks bounds the terminal, acknowledged tasks kept for
	// State (default 1000).
	MaxCompletedTasks int
	// MaxCompletedExecutorsPerFramework bounds the ended executor runs
	// kept per framework for the operator API and /state, with their
	// sandboxes' paths (Mesos's --max_completed_executors_per_framework,
	// default 150); MaxCompletedFrameworks bounds the frameworks kept
	// once the agent forgets them (default 50, as Mesos's agent).
	MaxCompletedExecutorsPerFramework int
	MaxCompletedFrameworks            int
	// ExecutorStreamBuffer is the number of events an executor stream's
	// channel holds (default 16: there is a channel per executor, so per
	// task, and its slots are allocated up front); more wait in a backlog,
	// in order, so a slow executor never slows the agent and loses
	// nothing. Only an executor 64 MiB of events behind has its stream
	// closed (its driver subscribes again).
	ExecutorStreamBuffer int
	// GCDelay is how long the sandbox of an executor run is kept after
	// the run ended and its tasks' last updates were acknowledged, before
	// the agent removes it (Mesos's --gc_delay: 1 week); a framework's
	// directory goes GCDelay after its last executor. The fuller the
	// disk, the shorter: every DiskWatchInterval (Mesos's
	// --disk_watch_interval: 1 min) the agent removes what was scheduled
	// longer ago than GCDelay × max(0, 1 − GCDiskHeadroom − disk usage).
	// GCDiskHeadroom is in [0, 1]; 0 means Mesos's default, 0.1 (a
	// headroom of nothing is any tiny value, as 1e-9). See gc.go.
	GCDelay           time.Duration
	GCDiskHeadroom    float64
	DiskWatchInterval time.Duration
	// DiskUsage is the used fraction, in [0, 1], of the file system
	// holding path (the WorkDir); default: statfs's (blocks − free) /
	// blocks, as Mesos measures it. It is called on the agent's goroutine,
	// so it must be quick; tests fake a full disk with it.
	DiskUsage func(path string) (float64, error)
	// Version is reported to the master at registration and in /state and
	// GET_VERSION (default v1.MesosVersion, the Mesos release whose API
	// Apron speaks, since Mesos tools parse it as a Mesos version).
	Version string

	// The fetcher downloads CommandInfo.uris into sandboxes before
	// executors start (see fetcher.go for what it supports).
	// FetcherHTTPClient downloads http and https URIs (for TLS, proxies...);
	// default: a client whose transport waits FetcherStallTimeout at most
	// for a server's answer. FetcherMaxSize bounds, in bytes, each fetched
	// file and each archive's extracted content; 0, the default, is no
	// bound, as in Mesos. FetcherStallTimeout fails a download that brings
	// no data for that long (Mesos's --fetcher_stall_timeout: 1 min); it is
	// timed by the real clock, not Clock: it is for the network.
	FetcherHTTPClient   *http.Client
	FetcherMaxSize      int64
	FetcherStallTimeout time.Duration

	// Authenticator authenticates the HTTP API's requests (Mesos's
	// --http_authenticators; auth.NewBasic over a --http_credentials file
	// is Mesos's "basic"). Each endpoint family asks for a credential when
	// its switch below is on, and a request without a valid one is
	// answered 401 before anything else happens. Required when
	// AuthenticateHTTPReadOnly or AuthenticateHTTPReadWrite is on. See
	// auth.go for which endpoint is in which family.
	Authenticator auth.Authenticator
	// AuthenticateHTTPReadOnly: the endpoints that only read (/state,
	// /flags, /containers, /monitor/statistics, /metrics, /files/*...:
	// realm mesos-agent-readonly) need a credential (Mesos's
	// --authenticate_http_readonly).
	AuthenticateHTTPReadOnly bool
	// AuthenticateHTTPReadWrite: the operator API (/api/v1) and
	// /logging/toggle (realm mesos-agent-readwrite) need a credential
	// (Mesos's --authenticate_http_readwrite).
	AuthenticateHTTPReadWrite bool
	// AuthenticateHTTPExecutors: the executor API (realm
	// mesos-agent-executor) needs the token the agent gave the executor
	// (Authorization: Bearer), and the token must name the executor,
	// framework and container a call is about (Mesos's
	// --authenticate_http_executors). Needs ExecutorSecretKey.
	AuthenticateHTTPExecutors bool
	// ExecutorSecretKey signs the tokens (JWT, HMAC-SHA256) the agent
	// gives the executor processes it starts in
	// MESOS_EXECUTOR_AUTHENTICATION_TOKEN (Mesos's --executor_secret_key:
	// the file's content). With it and without AuthenticateHTTPExecutors,
	// executors get tokens the agent does not ask for, as in Mesos. Keep
	// it secret: whoever holds it can speak for any executor.
	ExecutorSecretKey []byte
	// Authorizer decides what each principal may do with the operator API
	// and the files API (Mesos's --acls with its local authorizer:
	// auth.NewLocal); see auth.go. nil allows everything, as Mesos without
	// ACLs. It is asked outside the agent's loop, so it may be remote.
	Authorizer auth.Authorizer
}

// CommandExecutorMode says where the command executor runs; see
// Config.CommandExecutorMode.
type CommandExecutorMode int

const (
	// CommandExecutorInProcess runs the command executor on a goroutine of
	// the agent: a command task costs one fork/exec.
	CommandExecutorInProcess CommandExecutorMode = iota
	// CommandExecutorProcess runs the command executor as a process of its
	// own, as Mesos does: it survives the agent's restarts with its task,
	// and talks to the agent over HTTP (Config.Endpoint).
	CommandExecutorProcess
)

func (m CommandExecutorMode) String() string {
	switch m {
	case CommandExecutorInProcess:
		return "in-process"
	case CommandExecutorProcess:
		return "process"
	}
	return fmt.Sprintf("CommandExecutorMode(%d)", int(m))
}

// Defaults, Mesos's where Mesos has one.
const (
	DefaultExecutorShutdownGracePeriod    = 5 * time.Second
	DefaultRegistrationBackoff            = time.Second
	DefaultRegistrationBackoffMax         = time.Minute
	DefaultStatusUpdateRetry              = 10 * time.Second
	DefaultStatusUpdateRetryMax           = 10 * time.Minute
	DefaultExecutorRecoveryTimeout        = 15 * time.Minute
	DefaultExecutorSubscriptionBackoffMax = 2 * time.Second
	DefaultExecutorRegistrationTimeout    = time.Minute
	DefaultExecutorReregistrationTimeout  = 2 * time.Second
	DefaultExecutorHeartbeatInterval      = 30 * time.Minute
	DefaultKillGracePeriod                = 3 * time.Second
	DefaultMaxCompletedTasks              = 1000
	DefaultExecutorStreamBuffer           = 16
	DefaultGCDelay                        = 7 * 24 * time.Hour
	DefaultGCDiskHeadroom                 = 0.1
	DefaultDiskWatchInterval              = time.Minute
)

func (c Config) withDefaults() (Config, error) {
	for i, kv := range c.ExecutorEnvironment {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return c, fmt.Errorf("agent: ExecutorEnvironment[%d] (%.40q) is not KEY=VALUE", i, kv)
		}
	}
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.Master == nil {
		return bad("no Master")
	}
	if c.WorkDir == "" {
		return bad("no WorkDir")
	}
	abs, err := filepath.Abs(c.WorkDir)
	if err != nil {
		return bad("WorkDir %q: %v", c.WorkDir, err)
	}
	c.WorkDir = abs
	if c.Authenticator == nil && (c.AuthenticateHTTPReadOnly || c.AuthenticateHTTPReadWrite) {
		return bad("authentication is switched on but Authenticator is nil")
	}
	if c.AuthenticateHTTPExecutors && len(c.ExecutorSecretKey) == 0 {
		return bad("AuthenticateHTTPExecutors needs an ExecutorSecretKey")
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Hostname = h
	}
	if err := c.advertisedAddress(); err != nil {
		return bad("%v", err)
	}
	if c.CheckpointStore == nil {
		c.CheckpointStore = newFileStore(filepath.Join(c.WorkDir, "meta"))
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.LogLevel == nil {
		c.LogLevel = new(slog.LevelVar)
	}
	if c.Version == "" {
		c.Version = apiv1.MesosVersion
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ExecutorShutdownGracePeriod", &c.ExecutorShutdownGracePeriod, DefaultExecutorShutdownGracePeriod},
		{"RegistrationBackoff", &c.RegistrationBackoff, DefaultRegistrationBackoff},
		{"RegistrationBackoffMax", &c.RegistrationBackoffMax, DefaultRegistrationBackoffMax},
		{"StatusUpdateRetry", &c.StatusUpdateRetry, DefaultStatusUpdateRetry},
		{"StatusUpdateRetryMax", &c.StatusUpdateRetryMax, DefaultStatusUpdateRetryMax},
		{"ExecutorRecoveryTimeout", &c.ExecutorRecoveryTimeout, DefaultExecutorRecoveryTimeout},
		{"ExecutorSubscriptionBackoffMax", &c.ExecutorSubscriptionBackoffMax, DefaultExecutorSubscriptionBackoffMax},
		{"DefaultKillGracePeriod", &c.DefaultKillGracePeriod, DefaultKillGracePeriod},
		{"ExecutorRegistrationTimeout", &c.ExecutorRegistrationTimeout, DefaultExecutorRegistrationTimeout},
		{"ExecutorReregistrationTimeout", &c.ExecutorReregistrationTimeout, DefaultExecutorReregistrationTimeout},
		{"ExecutorHeartbeatInterval", &c.ExecutorHeartbeatInterval, DefaultExecutorHeartbeatInterval},
		{"GCDelay", &c.GCDelay, DefaultGCDelay},
		{"DiskWatchInterval", &c.DiskWatchInterval, DefaultDiskWatchInterval},
	} {
		switch {
		case *d.v < 0:
			return bad("%s is negative (%v)", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.RegistrationBackoffMax < c.RegistrationBackoff {
		c.RegistrationBackoffMax = c.RegistrationBackoff
	}
	if c.StatusUpdateRetryMax < c.StatusUpdateRetry {
		c.StatusUpdateRetryMax = c.StatusUpdateRetry
	}
	if c.MaxCompletedTasks < 0 || c.ExecutorStreamBuffer < 0 || c.MaxCompletedExecutorsPerFramework < 0 || c.MaxCompletedFrameworks < 0 {
		return bad("negative MaxCompletedTasks, MaxCompletedExecutorsPerFramework, MaxCompletedFrameworks or ExecutorStreamBuffer")
	}
	switch {
	case c.FetcherMaxSize < 0:
		return bad("FetcherMaxSize is negative (%d)", c.FetcherMaxSize)
	case c.FetcherStallTimeout < 0:
		return bad("FetcherStallTimeout is negative (%v)", c.FetcherStallTimeout)
	case c.FetcherStallTimeout == 0:
		c.FetcherStallTimeout = DefaultFetcherStallTimeout
	}
	if c.FetcherHTTPClient == nil {
		c.FetcherHTTPClient = fetch.DefaultClient(c.FetcherStallTimeout)
	}
	switch c.CommandExecutorMode {
	case CommandExecutorInProcess:
	case CommandExecutorProcess:
		if c.CommandExecutorPath == "" {
			path, err := os.Executable()
			if err != nil {
				return bad("CommandExecutorPath: finding the agent's binary: %v", err)
			}
			c.CommandExecutorPath = path
			if c.CommandExecutorArgs == nil {
				c.CommandExecutorArgs = []string{"executor"}
			}
		}
	default:
		return bad("unknown CommandExecutorMode %d", int(c.CommandExecutorMode))
	}
	if c.MaxCompletedExecutorsPerFramework == 0 {
		c.MaxCompletedExecutorsPerFramework = DefaultMaxCompletedExecutorsPerFramework
	}
	if c.MaxCompletedFrameworks == 0 {
		c.MaxCompletedFrameworks = DefaultMaxCompletedFrameworks
	}
	if c.MaxCompletedTasks == 0 {
		c.MaxCompletedTasks = DefaultMaxCompletedTasks
	}
	if c.ExecutorStreamBuffer == 0 {
		c.ExecutorStreamBuffer = DefaultExecutorStreamBuffer
	}
	switch h := c.GCDiskHeadroom; {
	case !(h >= 0 && h <= 1): // NaN too
		return bad("GCDiskHeadroom %v is not in [0, 1]", h)
	case h == 0:
		c.GCDiskHeadroom = DefaultGCDiskHeadroom
	}
	if c.DiskUsage == nil {
		c.DiskUsage = statfsUsage
	}
	return c, nil
}

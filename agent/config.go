package agent

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/clock"
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

	// Containerizer runs task processes. Default: the process
	// containerizer (containerizer.NewProcess) with its state in
	// <WorkDir>/containers, which the agent then owns and closes when Run
	// returns (leaving the containers running for a restarted agent).
	Containerizer containerizer.Containerizer
	// Executors are in-process Go executors by name: a task whose
	// ExecutorInfo.command.value equals a key runs under that Executor, on a
	// goroutine of the agent with an executor.Driver linked to the agent, no
	// process. The same value serves every executor ID that names it, each
	// with its own Driver; an Executor with per-executor state keys it by
	// Driver or by Info.Executor.ExecutorID. A task group whose executor
	// names a key runs under it instead of the default executor.
	Executors map[string]executor.Executor

	// Clock, Rand and Logger are injected for tests; defaults are the
	// system clock, a randomly seeded source and a discarding logger. Rand
	// makes status update UUIDs, container IDs and backoff jitter.
	Clock  clock.Clock
	Rand   *rand.Rand
	Logger *slog.Logger

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
	// DefaultKillGracePeriod is the grace period between SIGTERM and SIGKILL
	// when a task's kill policy sets none (Mesos: 3 s).
	DefaultKillGracePeriod time.Duration
	// MaxCompletedTasks bounds the terminal, acknowledged tasks kept for
	// State (default 1000).
	MaxCompletedTasks int
	// ExecutorStreamBuffer is the number of events queued for one executor
	// stream; an executor that falls this far behind has its stream closed
	// (its driver reconnects), so a slow executor never slows the agent
	// (default 1024).
	ExecutorStreamBuffer int
	// Version is reported to the master at registration (default
	// "apron").
	Version string
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
	DefaultKillGracePeriod                = 3 * time.Second
	DefaultMaxCompletedTasks              = 1000
	DefaultExecutorStreamBuffer           = 1024

	// defaultPingInterval and defaultMaxMissedPings apply when the master's
	// REGISTERED does not say (Mesos: 15 s × 5).
	defaultPingInterval   = 15 * time.Second
	defaultMaxMissedPings = 5
)

func (c Config) withDefaults() (Config, error) {
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
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Hostname = h
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
	if c.Version == "" {
		c.Version = "apron"
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
	if c.MaxCompletedTasks < 0 || c.ExecutorStreamBuffer < 0 {
		return bad("negative MaxCompletedTasks or ExecutorStreamBuffer")
	}
	if c.MaxCompletedTasks == 0 {
		c.MaxCompletedTasks = DefaultMaxCompletedTasks
	}
	if c.ExecutorStreamBuffer == 0 {
		c.ExecutorStreamBuffer = DefaultExecutorStreamBuffer
	}
	return c, nil
}

package executor

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
)

// Defaults of Config, as Mesos's.
const (
	DefaultRecoveryTimeout        = 15 * time.Minute
	DefaultSubscriptionBackoffMax = 2 * time.Second
)

// initialBackoff is the first wait between failed subscription attempts; it
// doubles up to Config.SubscriptionBackoffMax.
const initialBackoff = 100 * time.Millisecond

// Config configures a Driver.
type Config struct {
	// Agent is the link to the agent. Required.
	Agent Agent
	// FrameworkID and ExecutorID name this executor in every call.
	// Required.
	FrameworkID mesospb.FrameworkID
	ExecutorID  mesospb.ExecutorID
	// Clock times reconnection backoff and stamps updates; nil is
	// clock.Real().
	Clock clock.Clock
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
	// RecoveryTimeout is how long the driver keeps trying to subscribe,
	// counted from Run's start or from the end of the last stream, before it
	// gives up (the Shutdown callback, then ErrRecoveryTimeout from Run).
	// 0 is DefaultRecoveryTimeout (MESOS_RECOVERY_TIMEOUT).
	RecoveryTimeout time.Duration
	// SubscriptionBackoffMax caps the wait between subscription attempts,
	// which starts at 100 ms and doubles. 0 is DefaultSubscriptionBackoffMax
	// (MESOS_SUBSCRIPTION_BACKOFF_MAX).
	SubscriptionBackoffMax time.Duration
	// ExitOnDisconnect makes the end of a stream final: no reconnection,
	// the Shutdown callback, then ErrDisconnected from Run. Mesos executors
	// of frameworks that do not checkpoint behave so (MESOS_CHECKPOINT not
	// "1"), since their agent does not recover them after a restart.
	ExitOnDisconnect bool
	// AgentEndpoint is the agent's host:port (MESOS_AGENT_ENDPOINT), from
	// which ConfigFromEnv builds Agent (HTTPAgent); the driver does not use
	// it.
	AgentEndpoint string
}

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidConfig)
	}
	switch {
	case cfg.Agent == nil:
		return bad("no agent link")
	case cfg.FrameworkID.Value == "":
		return bad("no framework ID")
	case cfg.ExecutorID.Value == "":
		return bad("no executor ID")
	case cfg.RecoveryTimeout < 0:
		return bad("negative recovery timeout %v", cfg.RecoveryTimeout)
	case cfg.SubscriptionBackoffMax < 0:
		return bad("negative subscription backoff %v", cfg.SubscriptionBackoffMax)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RecoveryTimeout == 0 {
		cfg.RecoveryTimeout = DefaultRecoveryTimeout
	}
	if cfg.SubscriptionBackoffMax == 0 {
		cfg.SubscriptionBackoffMax = DefaultSubscriptionBackoffMax
	}
	return cfg, nil
}

// ConfigFromEnv builds a Config from the environment an agent gives an
// executor process: MESOS_FRAMEWORK_ID and MESOS_EXECUTOR_ID (required),
// MESOS_AGENT_ENDPOINT (or, without it, MESOS_SLAVE_PID, from which
// Mesos's own executor library builds the agent's URL), MESOS_CHECKPOINT ("1": reconnect after an agent
// restart; anything else sets ExitOnDisconnect, as Mesos does),
// MESOS_RECOVERY_TIMEOUT and MESOS_SUBSCRIPTION_BACKOFF_MAX. Durations take
// Mesos's form ("15mins", "2secs", "100ms", "1.5hrs") or Go's ("15m").
// getenv is usually os.Getenv. Agent is the HTTP link to
// MESOS_AGENT_ENDPOINT (HTTPAgent), so that
//
//	cfg, err := executor.ConfigFromEnv(os.Getenv)
//	d, err := executor.NewDriver(myExecutor, cfg)
//	err = d.Run(ctx)
//
// is the whole main of an executor process an agent starts; without
// MESOS_AGENT_ENDPOINT, Agent is left nil for the caller to set.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	cfg.FrameworkID.Value = getenv("MESOS_FRAMEWORK_ID")
	cfg.ExecutorID.Value = getenv("MESOS_EXECUTOR_ID")
	if cfg.FrameworkID.Value == "" {
		return Config{}, fmt.Errorf("MESOS_FRAMEWORK_ID is not set: %w", ErrInvalidConfig)
	}
	if cfg.ExecutorID.Value == "" {
		return Config{}, fmt.Errorf("MESOS_EXECUTOR_ID is not set: %w", ErrInvalidConfig)
	}
	cfg.AgentEndpoint = getenv("MESOS_AGENT_ENDPOINT")
	if cfg.AgentEndpoint == "" {
		if pid := getenv("MESOS_SLAVE_PID"); pid != "" {
			ep, err := pidEndpoint(pid)
			if err != nil {
				return Config{}, fmt.Errorf("MESOS_SLAVE_PID: %w: %w", err, ErrInvalidConfig)
			}
			cfg.AgentEndpoint = ep
		}
	}
	if cfg.AgentEndpoint != "" {
		cfg.Agent = HTTPAgent(cfg.AgentEndpoint)
	}
	cfg.ExitOnDisconnect = getenv("MESOS_CHECKPOINT") != "1"
	for _, v := range []struct {
		name string
		dst  *time.Duration
	}{
		{"MESOS_RECOVERY_TIMEOUT", &cfg.RecoveryTimeout},
		{"MESOS_SUBSCRIPTION_BACKOFF_MAX", &cfg.SubscriptionBackoffMax},
	} {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		d, err := ParseDuration(s)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w: %w", v.name, err, ErrInvalidConfig)
		}
		*v.dst = d
	}
	return cfg, nil
}

// pidEndpoint is the HTTP endpoint of the agent whose libprocess PID is
// pid ("slave(1)@10.0.0.1:5051"): http://10.0.0.1:5051/slave(1), under
// which Mesos's executor library finds the executor API.
func pidEndpoint(pid string) (string, error) {
	id, addr, ok := strings.Cut(pid, "@")
	if !ok || id == "" || strings.ContainsAny(id, "/?#") {
		return "", fmt.Errorf("%q is not a PID such as slave(1)@10.0.0.1:5051", pid)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", fmt.Errorf("%q is not a PID such as slave(1)@10.0.0.1:5051", pid)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("PID %q: port %q is not a TCP port", pid, port)
	}
	return "http://" + net.JoinHostPort(host, port) + "/" + id, nil
}

// mesosUnits are the duration units of Mesos's flags and environment.
var mesosUnits = map[string]time.Duration{
	"ns":    time.Nanosecond,
	"us":    time.Microsecond,
	"ms":    time.Millisecond,
	"secs":  time.Second,
	"mins":  time.Minute,
	"hrs":   time.Hour,
	"days":  24 * time.Hour,
	"weeks": 7 * 24 * time.Hour,
}

// ParseDuration parses a non-negative duration written as Mesos writes
// them, a decimal number and one of ns, us, ms, secs, mins, hrs, days,
// weeks ("15mins", "2.5secs"), or as Go's time.ParseDuration does.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i > 0 {
		if unit, ok := mesosUnits[s[i:]]; ok {
			n, err := strconv.ParseFloat(s[:i], 64)
			if err == nil {
				f := n * float64(unit)
				if f > math.MaxInt64 {
					return 0, fmt.Errorf("duration %q is too long", s)
				}
				return time.Duration(f), nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a number and a unit (ns, us, ms, secs, mins, hrs, days, weeks)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}

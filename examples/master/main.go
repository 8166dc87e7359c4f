// Command master runs an Apron master: it serves the Mesos v1 scheduler
// API (/api/v1/scheduler), Apron's agent link (/apron/v1/agent), the
// operator API (/api/v1), /health, /metrics, /state and /version on one
// HTTP address.
//
//	go run ./examples/master -listen 127.0.0.1:5050 -work-dir /var/lib/apron/master
//
// SIGINT or SIGTERM stops it: it ends every stream (agents and frameworks
// reconnect to whichever master comes up), then the HTTP server.
//
// The registry (admitted, unreachable and gone agents, weights, quotas,
// maintenance) survives the master: in -work-dir's registry/ directory,
// or, with -zk, in ZooKeeper, where several masters elect their leader:
//
//	go run ./examples/master -listen 127.0.0.1:5050 -zk zk://127.0.0.1:2181/apron -quorum 2
//
// Standbys redirect clients to the leader (307). A leader that loses its
// ZooKeeper session, or finds its registry taken over by another master,
// exits with an error, as Mesos's master does; run it under a supervisor
// that starts it again. Frameworks re-subscribe with their IDs and agents
// re-register with their tasks; agents that do not come back within
// -agent-reregister-timeout are marked unreachable.
//
// With -tls-cert, -tls-key and -tls-ca (or Mesos's LIBPROCESS_SSL_*
// environment) the master serves HTTPS only, takes its agents to serve
// HTTPS too (Offer.url says https), and with -tls-require-client-cert
// refuses clients without a certificate the CA signed. Renewed
// certificate files are picked up without a restart.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

const description = `Runs an Apron master serving the Mesos v1 scheduler and operator HTTP APIs
and Apron's agent link on -listen. Stop it with SIGINT or SIGTERM.`

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "master:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	var (
		listen        = fs.String("listen", "127.0.0.1:5050", "`host:port` to serve the HTTP API on")
		hostname      = fs.String("hostname", "", "hostname in the master's MasterInfo (default: the host of -listen, or this machine's hostname when -listen has no host or 0.0.0.0)")
		advertiseIP   = fs.String("advertise-ip", "", "IP `address` clients reach the master on, in its MasterInfo (ip, pid, address), as Mesos's --advertise_ip (default: the host of -listen; when that is 0.0.0.0 or empty, the address -hostname resolves to, else 127.0.0.1)")
		maxCompFws    = fs.Int("max-completed-frameworks", 50, "torn-down frameworks kept for the operator API's completed_frameworks (Mesos's --max_completed_frameworks)")
		maxCompTasks  = fs.Int("max-completed-tasks-per-framework", 1000, "finished tasks kept per framework for the operator API (Mesos's --max_completed_tasks_per_framework)")
		workDir       = fs.String("work-dir", "", "`directory` for the master's persistent state, created if missing: the registry (-registry file) is kept in its registry/ directory")
		zkURL         = fs.String("zk", "", "elect the leader among several masters in ZooKeeper and keep the registry there, as Mesos's --zk: `zk://[user:pass@]host:port[,host:port...]/path` (agents and frameworks then use -master with the same URL)")
		zkSession     = fs.Duration("zk-session-timeout", 10*time.Second, "ZooKeeper session timeout (Mesos's --zk_session_timeout): a leader cut off from ZooKeeper steps down within it, and a standby takes over once ZooKeeper expires the session")
		quorum        = fs.Int("quorum", 0, "with -zk: the size of a majority of the group's masters (2 for 3 masters), as Mesos's --quorum; every master of one -zk path must give the same number, and one that does not is refused")
		registryKind  = fs.String("registry", "", "where the registry (admitted, unreachable and gone agents, weights, quotas, maintenance) is kept, as Mesos's --registry: in_memory, file (under -work-dir) or zk (under -zk's path); default zk with -zk, file with -work-dir, else in_memory")
		reregTimeout  = fs.Duration("agent-reregister-timeout", 10*time.Minute, "after a failover, how long agents in the registry have to re-register before they are marked unreachable (Mesos's --agent_reregister_timeout)")
		removalLimit  = fs.String("recovery-agent-removal-limit", "100%", "the largest share of the recovered agents that may be marked unreachable after -agent-reregister-timeout; more stops the master instead (Mesos's --recovery_agent_removal_limit)")
		allocInterval = fs.Duration("allocation-interval", time.Second, "how often a full allocation cycle runs; freed resources are offered sooner, at the next tick")
		offerTimeout  = fs.Duration("offer-timeout", 0, "rescind offers not answered within this long (0: never)")
		heartbeat     = fs.Duration("heartbeat-interval", 15*time.Second, "interval of HEARTBEAT events to schedulers")
		pingTimeout   = fs.Duration("agent-ping-timeout", 15*time.Second, "interval of the master's pings to agents")
		maxPings      = fs.Int("max-agent-ping-timeouts", 5, "pings an agent may miss in a row before it is unreachable")
		weights       = fs.String("weights", "", "initial `role=weight,...` list, e.g. \"analytics=2,batch=1\"; roles not named weigh 1")
		minAlloc      = fs.String("min-allocatable-resources", "", "minimum offer size, as Mesos's --min_allocatable_resources: `alternatives` separated by '|', each resources separated by ';' that an offer must all reach, e.g. \"cpus:1;mem:32|disk:64\" (default: cpus:0.01|mem:32)")
		roleSorter    = fs.String("role-sorter", "drf", "how roles are ordered for offers: drf or random (Mesos's --role_sorter); Apron's allocator sorts roles and frameworks alike, so this also sets -framework-sorter")
		fwSorter      = fs.String("framework-sorter", "drf", "how the frameworks of a role are ordered: drf or random (Mesos's --framework_sorter); must equal -role-sorter when both are given")
		webUI         = fs.Bool("webui", true, "serve the web UI at / (-webui=false: the APIs only)")
		common        cli.Common
		security      securityFlags
		tlsFlags      cli.TLS
	)
	security.register(fs)
	tlsFlags.RegisterServer(fs)
	common.Register(fs, "info")
	common.RegisterPprof(fs)
	fs.Usage = cli.Usage(fs, "master [flags]", description)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := common.Logger()
	if err != nil {
		return err
	}
	w, err := parseWeights(*weights)
	if err != nil {
		return err
	}
	mins, err := parseMinAllocatable(*minAlloc)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sorter, err := parseSorters(*roleSorter, *fwSorter, set["role-sorter"], set["framework-sorter"])
	if err != nil {
		return err
	}
	if *maxCompFws < 0 || *maxCompTasks < 0 {
		return fmt.Errorf("-max-completed-frameworks and -max-completed-tasks-per-framework must not be negative")
	}
	if *advertiseIP != "" && net.ParseIP(*advertiseIP) == nil {
		return fmt.Errorf("-advertise-ip: %q is not an IP address", *advertiseIP)
	}
	if *workDir != "" {
		if err := os.MkdirAll(*workDir, 0o755); err != nil {
			return fmt.Errorf("-work-dir: %w", err)
		}
	}
	ha := haFlags{zk: *zkURL, sessionTimeout: *zkSession, quorum: *quorum, registry: *registryKind, workDir: *workDir}
	kind, err := ha.registryKind()
	if err != nil {
		return err
	}
	limit, err := parsePercent(*removalLimit)
	if err != nil {
		return fmt.Errorf("-recovery-agent-removal-limit: %w", err)
	}
	if limit == 0 {
		limit = math.SmallestNonzeroFloat64 // 0%: no agent may be missing (Config's 0 means the default)
	}
	if *reregTimeout <= 0 || *zkSession <= 0 {
		return fmt.Errorf("-agent-reregister-timeout and -zk-session-timeout must be positive")
	}
	var zkURLParsed zookeeper.URL
	if ha.zk != "" {
		if zkURLParsed, err = zookeeper.ParseURL(ha.zk); err != nil {
			return fmt.Errorf("-zk: %w", err)
		}
		if zkURLParsed.Path == "/" {
			return fmt.Errorf("-zk %s: give the group a path of its own, like zk://host:2181/apron", zkURLParsed)
		}
	}
	tlsSource, err := tlsFlags.Source(log.With("component", "tls"))
	if err != nil {
		return err
	}
	registry, err := openRegistry(kind, ha, zkURLParsed, log)
	if err != nil {
		return err
	}
	defer registry.Close()

	ln, err := cli.Listen(*listen)
	if err != nil {
		return err
	}
	host, ip, port := advertised(ln.Addr(), *hostname, *advertiseIP)
	addr := ln.Addr()
	tlsLn, err := cli.Listener(ln, tlsSource)
	if err != nil {
		ln.Close()
		return err
	}
	ln = tlsLn

	var (
		contender  *zookeeper.Contender
		detector   *zookeeper.Detector
		leadership *master.ElectedLeadership
	)
	if ha.zk != "" {
		zopts := zookeeper.Options{SessionTimeout: ha.sessionTimeout, Validate: masterInfoValid, Logger: log.With("component", "election")}
		if contender, err = zookeeper.NewContender(zkURLParsed, zopts); err != nil {
			ln.Close()
			return err
		}
		defer contender.Close()
		if detector, err = zookeeper.NewDetector(zkURLParsed, zopts); err != nil {
			ln.Close()
			return err
		}
		defer detector.Close()
		leadership = master.NewElectedLeadership(detector)
	}
	cfg := master.Config{
		Hostname:                      host,
		IP:                            ip,
		Port:                          port,
		MaxCompletedFrameworks:        keep(*maxCompFws),
		MaxCompletedTasksPerFramework: keep(*maxCompTasks),
		AllocationInterval:            *allocInterval,
		OfferTimeout:                  *offerTimeout,
		HeartbeatInterval:             *heartbeat,
		AgentPingTimeout:              *pingTimeout,
		MaxAgentPingTimeouts:          *maxPings,
		Weights:                       w,
		MinAllocatable:                mins,
		Sorter:                        sorter,
		Logger:                        log,
		LogLevel:                      &common.Level, // SET_LOGGING_LEVEL changes it
		Registry:                      registry,
		AgentReregisterTimeout:        *reregTimeout,
		RecoveryAgentRemovalLimit:     limit,
		DisableWebUI:                  !*webUI,
	}
	if leadership != nil {
		cfg.Leadership = leadership
	}
	if tlsSource != nil {
		// The cluster speaks TLS: agents serve HTTPS too.
		cfg.AgentTLS = tlsSource.ClientConfig()
	}
	if err := security.apply(&cfg); err != nil {
		return err
	}
	m, err := master.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}

	stopProfiles, err := common.StartProfiles()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopProfiles()

	sigCtx, stop := cli.SignalContext()
	defer stop()
	// A master that fails as leader (its registry fenced, its term over)
	// ends the process, as Mesos's does: its supervisor starts it again,
	// as a standby.
	ctx, fail := context.WithCancelCause(sigCtx)
	runCtx, stopMaster := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		if contender != nil {
			if zr, ok := registry.(*zkRegistry); ok {
				// Before campaigning: a master of another group
				// (another -quorum) must not enter this election.
				if _, err = zr.open(runCtx); err != nil {
					fail(err)
					return
				}
			}
			err = master.RunElected(runCtx, m, contender, leadership)
		} else {
			err = m.Run(runCtx)
		}
		if err != nil {
			log.Error("master stopped", "err", err)
			fail(err)
		}
	}()
	fmt.Printf("master %s listening on %s://%s\n", m.Info().ID, cli.Scheme(tlsSource), addr)
	if contender != nil {
		fmt.Printf("master %s is a candidate in %s\n", m.Info().ID, zkURLParsed)
	}
	err = cli.Serve(ctx, ln, common.WithPprof(m.Handler()), func() {
		// Ending the master ends its streams, so the server's shutdown
		// does not wait for them.
		stopMaster()
		wg.Wait()
	}, 5*time.Second, log)
	stopMaster()
	wg.Wait()
	fmt.Println("master stopped")
	if cause := context.Cause(ctx); err == nil && cause != nil && sigCtx.Err() == nil {
		err = cause
	}
	return err
}

// parsePercent reads "100%" (or "0.5") as a fraction in [0, 1].
func parsePercent(s string) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err == nil && strings.HasSuffix(s, "%") {
		v /= 100
	}
	if err != nil || v < 0 || v > 1 || v != v {
		return 0, fmt.Errorf("%q is not a percentage between 0%% and 100%%", s)
	}
	return v, nil
}

// keep maps a -max-completed-* flag to its master.Config field, where 0
// means the default and a negative number none.
func keep(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// advertised is how the master describes itself in MasterInfo: its
// hostname, IP address and port. As Mesos, a master listening on every
// address (0.0.0.0) advertises its hostname's address, or the loopback
// address when the hostname resolves to none.
func advertised(addr net.Addr, hostname, ip string) (string, string, uint32) {
	host, portText, _ := net.SplitHostPort(addr.String())
	port, _ := strconv.ParseUint(portText, 10, 32)
	listenIP := net.ParseIP(host)
	unspecified := listenIP == nil || listenIP.IsUnspecified()
	if hostname == "" {
		hostname = host
		if unspecified {
			hostname, _ = os.Hostname()
		}
	}
	if ip == "" {
		ip = host
		if unspecified {
			ip = hostAddress(hostname)
		}
	}
	return hostname, ip, uint32(port)
}

// hostAddress is the first IPv4 address hostname resolves to that is not
// unspecified, or 127.0.0.1.
func hostAddress(hostname string) string {
	ips, _ := net.LookupIP(hostname)
	for _, a := range ips {
		if a4 := a.To4(); a4 != nil && !a4.IsUnspecified() {
			return a4.String()
		}
	}
	return "127.0.0.1"
}

// parseWeights reads "role=2,other=1".
func parseWeights(s string) (map[string]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, kv := range strings.Split(s, ",") {
		role, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		role = strings.TrimSpace(role)
		if !ok || role == "" {
			return nil, fmt.Errorf("-weights: %q is not role=weight", kv)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || w <= 0 || w != w || w > 1e12 {
			return nil, fmt.Errorf("-weights: weight of %q is not a positive number: %q", role, v)
		}
		out[role] = w
	}
	return out, nil
}

// parseMinAllocatable reads Mesos's --min_allocatable_resources form,
// "cpus:0.01|mem:32": alternatives separated by '|', each a resource text.
// "" means the master's default.
func parseMinAllocatable(s string) ([]resources.Resources, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []resources.Resources
	for _, alt := range strings.Split(s, "|") {
		rs, err := resources.Parse(strings.TrimSpace(alt))
		if err != nil {
			return nil, fmt.Errorf("-min-allocatable-resources: %q: %w", alt, err)
		}
		if len(rs) == 0 {
			return nil, fmt.Errorf("-min-allocatable-resources: %q: an alternative names no resource", alt)
		}
		out = append(out, rs)
	}
	return out, nil
}

// parseSorters reads -role-sorter and -framework-sorter. Apron's allocator
// has one sorter for both levels (allocator.Options.Sorter): a flag given
// alone sets both, and two given must agree.
func parseSorters(role, framework string, roleSet, frameworkSet bool) (allocator.Sorter, error) {
	parse := func(flagName, v string) (allocator.Sorter, error) {
		switch v {
		case "drf":
			return allocator.SorterDRF, nil
		case "random":
			return allocator.SorterRandom, nil
		}
		return 0, fmt.Errorf("-%s: %q is neither drf nor random", flagName, v)
	}
	r, err := parse("role-sorter", role)
	if err != nil {
		return 0, err
	}
	f, err := parse("framework-sorter", framework)
	if err != nil {
		return 0, err
	}
	switch {
	case roleSet && frameworkSet && r != f:
		return 0, fmt.Errorf("-role-sorter %s and -framework-sorter %s differ; Apron's allocator uses one sorter for both", role, framework)
	case frameworkSet && !roleSet:
		return f, nil
	}
	return r, nil
}

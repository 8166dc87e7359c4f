// Command agent runs an Apron agent: it registers this machine's resources
// with a master over HTTP (Apron's agent link, /apron/v1/agent), runs the
// tasks the master sends it, and serves the executor API
// (/api/v1/executor) and the agent operator API (/api/v1) on -listen.
//
//	go run ./examples/agent -master 127.0.0.1:5050 -listen 127.0.0.1:5051 \
//		-work-dir /var/lib/apron/agent -resources "cpus:4;mem:4096;disk:10000;ports:[31000-32000]"
//
// Resources the -resources text leaves out (any of cpus, mem, disk,
// ports) are detected, as Mesos does. With -containerizer noop the agent
// runs no process at all (every task "runs" for -noop-run-time and exits
// 0), which is what a load test of the master wants.
//
// SIGINT or SIGTERM stops the agent and leaves its tasks running: an agent
// started again on the same -work-dir recovers them. SIGUSR1 shuts the
// agent down for good instead: it kills its tasks, unregisters from the
// master and removes its checkpoints.
//
// The binary is also the command executor when the agent runs it as a
// process of its own (-command-executor process): the agent re-executes
// it with the argument "executor". And it is the process containerizer's
// reaper (containerizer.RunReaper): one process per agent work dir, the
// parent of the tasks, which outlives the agent so that a task that ends
// while the agent is stopped or restarting keeps its exit status.
//
// With -tls-cert, -tls-key and -tls-ca (or Mesos's LIBPROCESS_SSL_*
// environment) the agent serves HTTPS, advertises an https endpoint to
// its executors, and speaks TLS to the master (detected ones too),
// presenting its certificate to a master started with
// -tls-require-client-cert.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/containerizer/launcher"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/tlsconfig"
)

const description = `Runs an Apron agent that registers with the master(s) given by -master,
runs their tasks, and serves the executor and agent operator HTTP APIs on
-listen. SIGINT/SIGTERM stop it leaving its tasks running (a restarted agent
on the same -work-dir recovers them); SIGUSR1 shuts it down, killing its
tasks.

"agent executor" runs the command executor, as the agent itself does when
-command-executor is "process".`

func main() {
	if launcher.IsInit() {
		launcher.RunInit() // a container's init (the Linux containerizer); never returns
	}
	if containerizer.IsReaper() {
		if err := containerizer.RunReaper(); err != nil {
			fmt.Fprintln(os.Stderr, "reaper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if executor.IsCommandExecutorProcess() || (len(os.Args) > 1 && os.Args[1] == "executor") {
		os.Exit(runExecutor())
	}
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// runExecutor is the command executor process's main.
func runExecutor() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := executor.RunCommandExecutor(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "command executor:", err)
		return 1
	}
	return 0
}

func run(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var (
		masters     = fs.String("master", "127.0.0.1:5050", cli.MasterFlagHelp)
		listen      = fs.String("listen", "127.0.0.1:5051", "`host:port` to serve the executor and operator APIs on")
		advertise   = fs.String("advertise", "", "`host:port` at which executors reach this agent (default: the -listen address, or -hostname with its port when listening on all interfaces)")
		workDir     = fs.String("work-dir", "", "`directory` for sandboxes, checkpoints and container state (required; one per agent)")
		resourcesF  = fs.String("resources", "", "resources to offer, Mesos `text` (\"cpus:4;mem:4096;disk:10000;ports:[31000-32000]\") or JSON; cpus, mem, disk and ports left out are detected")
		attributes  = fs.String("attributes", "", "attributes, `text` like \"rack:r1;zone:a\"")
		execEnv     = fs.String("executor-environment-variables", "", "a JSON `object` of variables added to every executor process's environment (Mesos's --executor_environment_variables), e.g. {\"PATH\": \"/bin:/usr/bin\"}; with TLS, LIBPROCESS_SSL_* are added too")
		hostname    = fs.String("hostname", "", "hostname to register with (default: the machine's)")
		advertiseIP = fs.String("ip", "", "`IP` address to advertise (Mesos's --advertise_ip): in the agent's PID (MESOS_SLAVE_PID) and its tasks' container status (default: the IP of -advertise or -listen, else the machine's first non-loopback one)")
		contKind    = fs.String("containerizer", "process", "what runs tasks: \"process\" (one fork/exec per task), \"linux\" (namespaces, cgroups and images, as -isolation asks; needs root) or \"noop\" (runs nothing; for load tests)")
		noopRun     = fs.Duration("noop-run-time", 0, "with -containerizer noop: how long each task runs before it exits 0 (0: at once); a task's "+containerizer.NoopRunTimeEnv+" environment variable overrides it")
		cmdExecutor = fs.String("command-executor", "in-process", "where command executors run: \"in-process\" (a goroutine of the agent) or \"process\" (this binary re-executed, one per task, talking to the agent over HTTP)")
		useJSON     = fs.Bool("json", false, "speak JSON to the master instead of protobuf")
		gcDelay     = fs.Duration("gc-delay", agent.DefaultGCDelay, "how long the sandbox of a finished executor run is kept (Mesos's --gc_delay); less as the disk fills")
		gcHeadroom  = fs.Float64("gc-disk-headroom", agent.DefaultGCDiskHeadroom, "fraction of the disk kept free: sandboxes older than gc-delay × (1 − this − disk usage) are removed at each disk check (Mesos's --gc_disk_headroom)")
		diskWatch   = fs.Duration("disk-watch-interval", agent.DefaultDiskWatchInterval, "how often the work directory's disk usage is checked (Mesos's --disk_watch_interval)")
		maxExecs    = fs.Int("max-completed-executors-per-framework", agent.DefaultMaxCompletedExecutorsPerFramework, "ended executor runs kept per framework, with their sandboxes, for /state and the operator API (Mesos's --max_completed_executors_per_framework)")
		common      cli.Common
		credential  cli.Credential
		security    securityFlags
		tlsFlags    cli.TLS
		lf          linuxFlags
	)
	lf.register(fs)
	credential.Register(fs)
	security.register(fs)
	tlsFlags.RegisterServer(fs)
	common.Register(fs, "info")
	common.RegisterPprof(fs)
	fs.Usage = cli.Usage(fs, "agent -work-dir DIR [flags]\n       agent executor", description)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *workDir == "" {
		return errors.New("-work-dir is required")
	}
	// Made here, not by whichever containerizer comes first with a state
	// directory of its own inside (0700, and with it every parent it
	// makes): tasks of other users reach their sandboxes through it.
	if err := os.MkdirAll(*workDir, 0o755); err != nil {
		return fmt.Errorf("-work-dir: %w", err)
	}
	log, err := common.Logger()
	if err != nil {
		return err
	}

	if *gcHeadroom == 0 {
		// Config takes 0 as "the default"; a headroom of nothing is any
		// tiny one.
		*gcHeadroom = 1e-9
	}
	var mode agent.CommandExecutorMode
	switch *cmdExecutor {
	case "in-process":
		mode = agent.CommandExecutorInProcess
	case "process":
		mode = agent.CommandExecutorProcess
	default:
		return fmt.Errorf("-command-executor %q: want in-process or process", *cmdExecutor)
	}
	var cont containerizer.Containerizer
	var reaper []string
	linux, err := lf.linux()
	if err != nil {
		return err
	}
	kindSet := false
	fs.Visit(func(f *flag.Flag) { kindSet = kindSet || f.Name == "containerizer" })
	if linux {
		if kindSet && *contKind != "linux" {
			return fmt.Errorf("-isolation %q asks for the Linux containerizer, -containerizer %q for another", lf.isolation, *contKind)
		}
		*contKind = "linux"
	}
	switch *contKind {
	case "linux":
		if mode == agent.CommandExecutorProcess {
			return errors.New("the Linux containerizer runs tasks for the in-process command executor: give -command-executor in-process")
		}
		if !linux {
			lf.isolation = "filesystem/linux,cgroups/cpu,cgroups/mem,cgroups/pids,namespaces/pid"
		}
		c, closeStore, err := lf.open(*workDir, log)
		if err != nil {
			return err
		}
		defer closeStore()
		if lf.diskDu() {
			if c, err = lf.withDisk(c, *workDir, log); err != nil {
				return err
			}
		}
		defer c.Close() // after the agent has stopped; the containers run on
		cont = c
	case "process":
		// The agent's default: a process containerizer in
		// <work-dir>/containers, its tasks forked by this binary as their
		// reaper.
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this binary for the containerizer's reaper: %w", err)
		}
		reaper = []string{self, "reaper", "-work-dir", *workDir}
		if lf.diskDu() {
			// The agent's default containerizer, made here to wrap it.
			p, err := containerizer.NewProcess(containerizer.ProcessOptions{
				StateDir: filepath.Join(*workDir, "containers"),
				Reaper:   reaper,
				Logger:   log,
			})
			if err != nil {
				return fmt.Errorf("starting the process containerizer: %w", err)
			}
			if cont, err = lf.withDisk(p, *workDir, log); err != nil {
				p.Close()
				return err
			}
		}
	case "noop":
		if lf.diskDu() {
			return errors.New("-containerizer noop makes no sandbox to measure: the disk/du isolator (-enforce-container-disk-quota) needs process or linux")
		}
		if mode == agent.CommandExecutorProcess {
			return errors.New("-containerizer noop runs no process, so it needs -command-executor in-process")
		}
		cont = containerizer.NewNoop(containerizer.NoopOptions{RunTime: *noopRun, Logger: log.With("component", "containerizer")})
	default:
		return fmt.Errorf("-containerizer %q: want process, linux or noop", *contKind)
	}

	var opts []agent.HTTPOption
	if *useJSON {
		opts = append(opts, agent.WithJSON())
	}
	tlsSource, err := tlsFlags.Source(log.With("component", "tls"))
	if err != nil {
		return err
	}
	// With TLS, the link speaks https to every master, detected ones
	// included, and presents the agent's certificate.
	hc := cli.HTTPClient(tlsSource)
	if cred, err := credential.Read(); err != nil {
		return err
	} else if cred != nil {
		opts = append(opts, agent.WithCredential(*cred))
	}
	if hc != nil {
		opts = append(opts, agent.WithHTTPClient(hc))
	}
	ms, err := cli.ParseMasters(*masters, log)
	if err != nil {
		return err
	}
	defer ms.Close() // after the agent has stopped
	link, err := ms.AgentLink(append(opts, agent.WithHTTPLogger(log.With("component", "link")))...)
	if err != nil {
		return fmt.Errorf("-master: %w", err)
	}

	ln, err := cli.Listen(*listen)
	if err != nil {
		return err
	}
	addr := ln.Addr()
	tlsLn, err := cli.Listener(ln, tlsSource)
	if err != nil {
		ln.Close()
		return err
	}
	ln = tlsLn
	endpoint := *advertise
	if endpoint == "" {
		endpoint = advertised(addr.(*net.TCPAddr), *hostname)
	}
	if tlsSource != nil && !strings.Contains(endpoint, "://") {
		// Executors reach the agent over https: MESOS_AGENT_ENDPOINT
		// carries the URL.
		endpoint = "https://" + endpoint
	}
	cfg := agent.Config{
		Master:                            link,
		WorkDir:                           *workDir,
		Resources:                         *resourcesF,
		Attributes:                        *attributes,
		Hostname:                          *hostname,
		IP:                                *advertiseIP,
		Containerizer:                     cont,
		Reaper:                            reaper,
		Endpoint:                          endpoint,
		CommandExecutorMode:               mode,
		GCDelay:                           *gcDelay,
		MaxCompletedExecutorsPerFramework: *maxExecs,
		GCDiskHeadroom:                    *gcHeadroom,
		DiskWatchInterval:                 *diskWatch,
		Logger:                            log,
		LogLevel:                          &common.Level, // SET_LOGGING_LEVEL changes it
	}
	if cfg.ExecutorEnvironment, err = executorEnvironment(*execEnv, tlsSource); err != nil {
		ln.Close()
		return err
	}
	if err := security.apply(&cfg); err != nil { // security.go
		ln.Close()
		return err
	}
	a, err := agent.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	if cont != nil {
		defer cont.Close()
	}

	stopProfiles, err := common.StartProfiles()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopProfiles()

	ctx, stop := cli.SignalContext()
	defer stop()
	// SIGUSR1: shut down for good.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	runCtx, stopAgent := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr <- a.Run(runCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-usr1:
			fmt.Fprintln(os.Stderr, "user defined signal 1: shutting down, killing every task")
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := a.Shutdown(sctx); err != nil {
				log.Error("shutdown", "err", err)
			}
			stop()
		case <-runCtx.Done():
		}
	}()
	fmt.Printf("agent %s listening on %s://%s (executors reach it at %s), master %s, work dir %s\n", a.PID(), cli.Scheme(tlsSource), addr, endpoint, ms, *workDir)

	srvCtx, stopServing := context.WithCancel(ctx)
	go func() {
		// The agent may stop by itself (the master told it to shut
		// down): then stop serving too.
		select {
		case err := <-runErr:
			runErr <- err
			stopServing()
		case <-srvCtx.Done():
		}
	}()
	err = cli.Serve(srvCtx, ln, common.WithPprof(a.Handler()), func() {
		stopAgent()
		wg.Wait()
	}, 5*time.Second, log)
	stopServing()
	stopAgent()
	wg.Wait()
	var agentErr error
	select {
	case agentErr = <-runErr:
	default:
	}
	fmt.Println("agent stopped")
	if err != nil {
		return err
	}
	if agentErr != nil && !errors.Is(agentErr, context.Canceled) {
		return agentErr
	}
	return nil
}

// advertised is the endpoint executors use: the listening address, with
// the hostname instead of an unspecified IP.
func advertised(addr *net.TCPAddr, hostname string) string {
	if addr.IP.IsUnspecified() {
		h := hostname
		if h == "" {
			h, _ = os.Hostname()
		}
		if h == "" {
			h = "localhost"
		}
		return net.JoinHostPort(h, fmt.Sprint(addr.Port))
	}
	return addr.String()
}

// executorEnvironment is -executor-environment-variables as KEY=VALUE, and,
// with TLS, Mesos's LIBPROCESS_SSL_* naming the agent's files: executor
// processes then speak TLS to the agent, as Mesos's inherit the agent's
// environment.
func executorEnvironment(flagValue string, tlsSource *tlsconfig.Source) ([]string, error) {
	var out []string
	if flagValue != "" {
		var vars map[string]string
		if err := json.Unmarshal([]byte(flagValue), &vars); err != nil {
			return nil, fmt.Errorf("-executor-environment-variables: want a JSON object of strings: %w", err)
		}
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			out = append(out, k+"="+vars[k])
		}
	}
	if tlsSource != nil {
		out = append(out, tlsconfig.Env(tlsSource.Files())...)
	}
	return out, nil
}

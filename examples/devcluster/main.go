// Command devcluster runs a whole Apron cluster in one process — a master,
// a few agents and a demo batch framework — on embedded defaults, and exits
// 0 once the framework's job succeeded:
//
//	go run ./examples/devcluster
//	go run ./examples/devcluster -agents 5 -tasks 100 -fail-every 4
//
// The agents run real processes (the process containerizer) in sandboxes
// under a temporary work directory, removed at exit unless -work-dir is
// given. The job is a mix of shell tasks of different sizes; every
// -fail-every'th task fails on its first attempt on purpose and succeeds
// when the framework retries it.
//
// With -ui the master also serves its HTTP APIs and web UI on that
// address, and each agent its own on a loopback port (so the UI's
// sandbox browser reaches the task's files); -hold keeps the cluster up
// after the job, until interrupted, to look at it:
//
//	go run ./examples/devcluster -ui 127.0.0.1:5050 -hold
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/examples/internal/batch"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

func main() {
	var (
		agents    = flag.Int("agents", 3, "number of agents")
		tasks     = flag.Int("tasks", 30, "number of tasks in the demo job")
		failEvery = flag.Int("fail-every", 7, "every Nth task fails on its first attempt (0: none)")
		resources = flag.String("agent-resources", "cpus:2;mem:2048;disk:10000;ports:[31000-32000]", "each agent's resources, Mesos text form")
		workDir   = flag.String("work-dir", "", "where agents keep sandboxes (default: a temporary directory, removed at exit)")
		timeout   = flag.Duration("timeout", 5*time.Minute, "give up after this long")
		verbose   = flag.Bool("v", false, "log the master's and agents' decisions")
		ui        = flag.String("ui", "", "serve the master's HTTP API and web UI on `host:port` (agents serve theirs on loopback ports)")
		hold      = flag.Bool("hold", false, "keep the cluster up after the job, until interrupted")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: devcluster [flags]\n\nRuns a master, agents and a demo batch framework in one process.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	o := options{agents: *agents, tasks: *tasks, failEvery: *failEvery, resources: *resources, workDir: *workDir,
		timeout: *timeout, verbose: *verbose, ui: *ui, hold: *hold}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

// options are devcluster's flags.
type options struct {
	agents, tasks, failEvery int
	resources, workDir       string
	timeout                  time.Duration
	verbose                  bool
	ui                       string // "": no HTTP
	hold                     bool
}

func run(o options) error {
	nAgents, nTasks, failEvery, agentResources, workDir := o.agents, o.tasks, o.failEvery, o.resources, o.workDir
	if nAgents < 1 || nTasks < 0 {
		return errors.New("-agents must be at least 1 and -tasks not negative")
	}
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if workDir == "" {
		dir, err := os.MkdirTemp("", "apron-devcluster-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		workDir = dir
	}

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, o.timeout)
	defer cancel()

	m, err := master.New(master.Config{Logger: logger.With("component", "master")})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	clusterCtx, stopCluster := context.WithCancel(context.Background())
	defer func() { stopCluster(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(clusterCtx) }()
	// serve serves h on ln until the cluster stops.
	serve := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() { defer wg.Done(); _ = srv.Serve(ln) }()
		go func() { defer wg.Done(); <-clusterCtx.Done(); _ = srv.Close() }()
	}
	uiURL := ""
	if o.ui != "" {
		ln, err := net.Listen("tcp", o.ui)
		if err != nil {
			return fmt.Errorf("-ui: %w", err)
		}
		serve(ln, m.Handler())
		uiURL = "http://" + ln.Addr().String() + "/"
	}

	var started []*agent.Agent
	for i := 0; i < nAgents; i++ {
		cfg := agent.Config{
			Master:    m,
			WorkDir:   filepath.Join(workDir, fmt.Sprintf("agent-%d", i+1)),
			Resources: agentResources,
			Hostname:  fmt.Sprintf("agent-%d", i+1),
			Logger:    logger.With("component", fmt.Sprintf("agent-%d", i+1)),
		}
		var ln net.Listener
		if o.ui != "" {
			// The master reaches an agent's files by its hostname and port.
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return err
			}
			cfg.Hostname, cfg.IP, cfg.Port, cfg.Endpoint = "127.0.0.1", "127.0.0.1", ln.Addr().(*net.TCPAddr).Port, ln.Addr().String()
		}
		a, err := agent.New(cfg)
		if err != nil {
			return err
		}
		if ln != nil {
			serve(ln, a.Handler())
		}
		started = append(started, a)
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(clusterCtx) }()
	}
	defer func() {
		// Leave nothing running: kill every task still alive.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, a := range started {
			_ = a.Shutdown(sctx)
		}
	}()
	fmt.Printf("cluster: 1 master, %d agents with %s each; work dir %s\n", nAgents, agentResources, workDir)
	if uiURL != "" {
		fmt.Printf("web UI: %s\n", uiURL)
	}

	fw := batch.New(demoJob(nTasks, failEvery), os.Stdout)
	d, err := scheduler.NewDriver(fw, mesospb.FrameworkInfo{User: currentUser(), Name: "devcluster-demo"},
		scheduler.WithMaster(m), scheduler.WithLogger(logger.With("component", "scheduler")))
	if err != nil {
		return err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()

	select {
	case <-fw.Done():
		_ = d.Stop(false)
		<-runErr
	case err := <-runErr:
		return fmt.Errorf("framework stopped before the job ended: %v", err)
	case <-ctx.Done():
		_ = d.Abort()
		fmt.Println()
		fw.Summary(os.Stdout)
		return fmt.Errorf("job not done: %w", ctx.Err())
	}
	fmt.Println()
	fw.Summary(os.Stdout)
	if !fw.Succeeded() {
		return errors.New("some tasks failed for good")
	}
	if o.hold {
		fmt.Println("\nthe cluster stays up (-hold); interrupt to stop")
		<-sigCtx.Done()
	}
	return nil
}

// demoJob is a mix of small shell tasks: some compute, some sleep, some
// write to their sandbox; every failEvery'th fails on its first attempt.
func demoJob(n, failEvery int) []batch.Task {
	sizes := []struct{ cpus, mem float64 }{{0.1, 32}, {0.25, 64}, {0.5, 128}, {0.2, 96}}
	cmds := []string{
		`echo "hello from $MESOS_SANDBOX" > greeting.txt && cat greeting.txt`,
		`sleep 0.2 && echo rested`,
		`i=0; s=0; while [ $i -lt 20000 ]; do s=$((s+i)); i=$((i+1)); done; echo $s`,
		`ls -la . && date`,
	}
	var tasks []batch.Task
	for i := 0; i < n; i++ {
		size := sizes[i%len(sizes)]
		cmd := cmds[i%len(cmds)]
		if failEvery > 0 && i%failEvery == failEvery-1 {
			cmd = `if [ "$ATTEMPT" -lt 2 ]; then echo "failing on purpose (attempt $ATTEMPT)" >&2; exit 3; fi; ` + cmd
		}
		tasks = append(tasks, batch.Task{Name: fmt.Sprintf("task-%02d", i+1), Command: cmd, CPUs: size.cpus, Mem: size.mem})
	}
	return tasks
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

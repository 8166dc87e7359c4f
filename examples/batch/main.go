// Command batch is a framework in its own process: it runs -tasks copies
// of a shell command on a cluster whose master it reaches over HTTP (the
// Mesos v1 scheduler API), prints their progress and a summary, and exits
// 0 once every task has finished.
//
//	go run ./examples/batch -master 127.0.0.1:5050 -tasks 20 -cmd 'echo "task $TASK_INDEX"; sleep 1'
//
// With -events FILE it appends every task it launches and every status
// update it receives to FILE, one JSON line each (batch.Event), an update
// before it is acknowledged: what a test or an operator reads to see what
// reached the framework, across restarts. -checkpoint
// (the default) sets FrameworkInfo.checkpoint, which Mesos requires for a
// framework's tasks to survive a restart of their agent.
//
// Each task sees TASK_INDEX (1 to -tasks) and ATTEMPT in its environment; a
// task that fails is retried up to -max-attempts times in all.
//
// # Failover
//
// The framework's ID is printed as soon as the master registers it
// ("framework-id: ..."), and its progress is journaled in -journal-dir.
// With a -failover-timeout, the master keeps the framework's tasks running
// for that long after the process dies; starting the binary again with
// -framework-id and the same job flags takes the framework over: it
// re-subscribes with that ID, replays the journal, reconciles its tasks
// with the master and carries on with what is left. SIGINT or SIGTERM
// leaves the same way when there is a failover timeout (the framework can
// be resumed), and tears the framework down (killing its tasks) when there
// is none.
//
// # High availability
//
// With -zk zk://host:port[,...]/path, start the same command (same job
// flags) on two or more machines: each campaigns for leadership at path;
// one leads and runs the job, the others print "standing by" and wait.
// The framework ID and the journal are kept in ZooKeeper under path
// (-framework-id and -journal-dir do not apply), so when the leader dies
// the next instance takes over, once ZooKeeper has expired the dead one's
// session (-zk-session-timeout, 10 s by default as Mesos's), with the
// same framework ID: it adopts the running tasks and finishes the job. A
// leader cut off from ZooKeeper stops talking to the master at once and
// stands by again. -failover-timeout defaults to a week with -zk (0 is
// refused: it is what keeps the tasks while a standby takes over); SIGINT
// or SIGTERM leaves the framework to the standbys. Once the job is over,
// the instances still standing by find it done and exit. See package
// examples/internal/batch for the znodes and their limits.
//
//	batch -master m:5050 -zk zk://zk1:2181,zk2:2181/apron/batch-fw -tasks 100 -cmd 'sleep 5'   # on host A
//	batch -master m:5050 -zk zk://zk1:2181,zk2:2181/apron/batch-fw -tasks 100 -cmd 'sleep 5'   # on host B
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/examples/internal/batch"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/scheduler"
)

const description = `Runs -tasks copies of the shell command -cmd as a framework of the master
given by -master, printing progress and a summary; exits 0 when every task
finished, 1 when some failed for good, 2 when interrupted. With
-failover-timeout, a killed run can be resumed with -framework-id. With
-zk, several instances run the job highly available: one leads, the others
stand by and take over, with the same framework, when it dies.`

func main() {
	code, err := run(os.Args[1:], os.Stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "batch:", err)
	}
	os.Exit(code)
}

func run(args []string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	var (
		masters     = fs.String("master", "127.0.0.1:5050", cli.MasterFlagHelp)
		nTasks      = fs.Int("tasks", 10, "number of tasks")
		cmd         = fs.String("cmd", `echo "task $TASK_INDEX on $(hostname)"; sleep 1`, "shell `command` each task runs")
		cpus        = fs.Float64("cpus", 0.1, "cpus of each task")
		mem         = fs.Float64("mem", 32, "memory of each task, MB")
		attempts    = fs.Int("max-attempts", 3, "times a task may run before it has failed for good")
		name        = fs.String("name", "batch", "the framework's name")
		role        = fs.String("role", "*", "the `role` the framework subscribes with")
		userName    = fs.String("user", "", "the user tasks run as (default: the current user)")
		frameworkID = fs.String("framework-id", "", "take over the framework with this `ID` (printed by an earlier run) and resume its job")
		failover    = fs.Duration("failover-timeout", 0, "how long the master keeps the framework's tasks after this process is gone (0: they are killed at once)")
		journalDir  = fs.String("journal-dir", os.TempDir(), "`directory` of the job's journal, apron-batch-<framework ID>.journal, which a resumed run reads")
		timeout     = fs.Duration("timeout", 0, "give up after this long (0: never)")
		useJSON     = fs.Bool("json", false, "speak JSON to the master instead of protobuf")
		checkpoint  = fs.Bool("checkpoint", true, "ask agents to checkpoint the framework's tasks (FrameworkInfo.checkpoint), so that they survive an agent restart; without it Mesos kills them when their agent stops or restarts")
		eventsPath  = fs.String("events", "", "append every task launched and every status update received to this `file`, one JSON line each (type, task_id, state, reason, source, message, uuid, agent_id), an update before it is acknowledged")
		imageName   = fs.String("image", "", "run each task's command in this Docker/OCI `image` (\"busybox:1.36\", \"registry:5000/app\"): the agents need the Linux containerizer with -image-providers docker")
		zkURL       = fs.String("zk", "", "run highly available: campaign for leadership at this `zk://[user:pass@]host:port[,...]/path`; the leader runs the job, the others stand by, and the framework ID and journal are kept under the path (-framework-id and -journal-dir do not apply)")
		zkTimeout   = fs.Duration("zk-session-timeout", 10*time.Second, "ZooKeeper session timeout with -zk: a dead leader is replaced after about this long")
		common      cli.Common
		credential  cli.Credential
		tlsFlags    cli.TLS
	)
	credential.Register(fs)
	tlsFlags.RegisterClient(fs)
	common.Register(fs, "error")
	fs.Usage = cli.Usage(fs, "batch [flags]", description)
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	switch {
	case fs.NArg() > 0:
		return 2, fmt.Errorf("unexpected arguments %q", fs.Args())
	case *nTasks < 0:
		return 2, errors.New("-tasks must not be negative")
	case *cpus <= 0 || *mem <= 0:
		return 2, errors.New("-cpus and -mem must be positive")
	case *failover < 0:
		return 2, errors.New("-failover-timeout must not be negative")
	case *zkURL != "" && *frameworkID != "":
		return 2, errors.New("-framework-id does not apply with -zk: the framework ID is kept in ZooKeeper")
	case *zkTimeout <= 0:
		return 2, errors.New("-zk-session-timeout must be positive")
	}
	log, err := common.Logger()
	if err != nil {
		return 2, err
	}
	if *userName == "" {
		*userName = currentUser()
	}
	stopProfiles, err := common.StartProfiles()
	if err != nil {
		return 2, err
	}
	defer stopProfiles()

	tasks := make([]batch.Task, *nTasks)
	width := len(fmt.Sprint(*nTasks))
	for i := range tasks {
		tasks[i] = batch.Task{
			Name:        fmt.Sprintf("task-%0*d", width, i+1),
			Command:     fmt.Sprintf("TASK_INDEX=%d; export TASK_INDEX; %s", i+1, *cmd),
			CPUs:        *cpus,
			Mem:         *mem,
			MaxAttempts: *attempts,
			Image:       *imageName,
		}
	}
	fw := batch.New(tasks, out)
	var events io.Writer // the -events file
	if *eventsPath != "" {
		f, err := os.OpenFile(*eventsPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return 2, err
		}
		defer f.Close()
		fw.SetEvents(f)
		events = f
	}

	var (
		journalMu   sync.Mutex
		journal     *os.File
		journalPath string
	)
	openJournal := func(id string) error {
		journalMu.Lock()
		defer journalMu.Unlock()
		if journal != nil {
			return nil
		}
		journalPath = filepath.Join(*journalDir, "apron-batch-"+safeName(id)+".journal")
		f, err := os.OpenFile(journalPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		journal = f
		fw.SetJournal(f)
		return nil
	}
	defer func() {
		journalMu.Lock()
		defer journalMu.Unlock()
		if journal != nil {
			journal.Close()
		}
	}()

	info := mesospb.FrameworkInfo{
		User:       *userName,
		Name:       *name,
		Roles:      []string{*role},
		Hostname:   hostname(),
		Checkpoint: checkpoint,
		Capabilities: []mesospb.FrameworkInfo_Capability{
			{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()},
		},
	}
	if *failover > 0 {
		secs := failover.Seconds()
		info.FailoverTimeout = &secs
	}
	if *frameworkID != "" {
		info.ID = &mesospb.FrameworkID{Value: *frameworkID}
		path := filepath.Join(*journalDir, "apron-batch-"+safeName(*frameworkID)+".journal")
		switch f, err := os.Open(path); {
		case err == nil:
			err = fw.Restore(f)
			f.Close()
			if err != nil {
				return 2, fmt.Errorf("reading the journal %s: %w", path, err)
			}
			fmt.Fprintf(out, "resuming framework %s from the journal %s\n", *frameworkID, path)
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(out, "resuming framework %s without a journal (%s): tasks the master no longer knows run again\n", *frameworkID, path)
		default:
			return 2, err
		}
	}
	fw.OnRegistered(func(id string) {
		fmt.Fprintf(out, "framework-id: %s\n", id)
		if err := openJournal(id); err != nil {
			fmt.Fprintf(out, "journal: %v (a resumed run will not know what this one did)\n", err)
		}
	})

	ms, err := cli.ParseMasters(*masters, log)
	if err != nil {
		return 2, err
	}
	defer ms.Close() // after the driver has stopped
	opts := []scheduler.Option{
		ms.SchedulerOption(),
		scheduler.WithLogger(log),
	}
	if *useJSON {
		opts = append(opts, scheduler.WithJSON())
	}
	if cred, err := credential.Read(); err != nil {
		return 2, err
	} else if cred != nil {
		opts = append(opts, scheduler.WithCredential(*cred))
	}
	tlsOpts, err := tlsFlags.SchedulerOptions(log.With("component", "tls"))
	if err != nil {
		return 2, err
	}
	opts = append(opts, tlsOpts...)
	if *zkURL != "" {
		return runHA(haFlags{
			url: *zkURL, sessionTimeout: *zkTimeout, failover: *failover, timeout: *timeout,
			failoverSet: flagSet(fs, "failover-timeout"), journalSet: flagSet(fs, "journal-dir"),
		}, tasks, info, opts, events, log, out)
	}
	d, err := scheduler.NewDriver(fw, info, opts...)
	if err != nil {
		return 2, err
	}

	ctx, stop := cli.SignalContext()
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	fmt.Fprintf(out, "running %d tasks (%q, cpus %g, mem %g MB) on the master at %s\n", *nTasks, *cmd, *cpus, *mem, ms)
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(context.WithoutCancel(ctx)) }()

	code := 0
	select {
	case <-fw.Done():
		// The job is over: tear the framework down.
		_ = d.Stop(false)
		<-runErr
		if !fw.Succeeded() {
			code = 1
		}
	case err := <-runErr:
		fmt.Fprintln(out)
		fw.Summary(out)
		return 1, fmt.Errorf("the framework stopped before the job ended: %w", err)
	case <-ctx.Done():
		if *failover > 0 {
			_ = d.Stop(true)
			fmt.Fprintf(out, "\nleaving; the master keeps the framework for %v: resume it with -framework-id %s\n", *failover, d.FrameworkID().Value)
		} else {
			_ = d.Stop(false)
			fmt.Fprintln(out, "\nleaving; the framework is torn down and its tasks killed")
		}
		<-runErr
		fw.Summary(out)
		return 2, fmt.Errorf("job not done: %w", context.Cause(ctx))
	}
	fmt.Fprintln(out)
	fw.Summary(out)
	if code == 0 {
		// The framework is gone: nobody can resume it.
		journalMu.Lock()
		if journal != nil {
			journal.Close()
			journal = nil
			os.Remove(journalPath)
		}
		journalMu.Unlock()
	}
	if code != 0 {
		return code, errors.New("some tasks failed for good")
	}
	return 0, nil
}

// safeName keeps a framework ID usable as part of a file name.
func safeName(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, id)
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

func hostname() *string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return nil
	}
	return &h
}

// defaultHAFailover is -failover-timeout's default with -zk: a week, as
// Marathon and other long-running Mesos frameworks use, so that a job
// survives the loss of every instance for as long as an operator may need
// to notice.
const defaultHAFailover = 7 * 24 * time.Hour

// haFlags are the flags of a -zk run.
type haFlags struct {
	url                     string
	sessionTimeout          time.Duration
	failover, timeout       time.Duration
	failoverSet, journalSet bool
}

// runHA runs the job as one instance of several campaigning at -zk.
func runHA(f haFlags, tasks []batch.Task, info mesospb.FrameworkInfo, opts []scheduler.Option, events io.Writer, log *slog.Logger, out io.Writer) (int, error) {
	u, err := zookeeper.ParseURL(f.url)
	if err != nil {
		return 2, fmt.Errorf("-zk: %w", err)
	}
	if u.Path == "/" {
		return 2, fmt.Errorf("-zk: %s: the job needs a path of its own (zk://host:port/path), where its instances campaign and its state is kept", u)
	}
	switch {
	case f.failoverSet && f.failover == 0:
		return 2, errors.New("-zk needs a non-zero -failover-timeout: it is what keeps the tasks running while a standby takes over")
	case !f.failoverSet:
		f.failover = defaultHAFailover
	}
	if f.journalSet {
		fmt.Fprintln(out, "-journal-dir does not apply with -zk: the journal is kept in ZooKeeper")
	}
	secs := f.failover.Seconds()
	info.FailoverTimeout = &secs

	ctx, stop := cli.SignalContext()
	defer stop()
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	fmt.Fprintf(out, "running %d tasks highly available at %s (session timeout %v, failover timeout %v)\n", len(tasks), u, f.sessionTimeout, f.failover)
	return batch.RunHA(ctx, batch.HAConfig{
		URL:            u,
		SessionTimeout: f.sessionTimeout,
		Tasks:          tasks,
		Info:           info,
		NewDriver: func(s scheduler.Scheduler, info mesospb.FrameworkInfo) (*scheduler.Driver, error) {
			return scheduler.NewDriver(s, info, opts...)
		},
		Out:    out,
		Events: events,
		Logger: log,
	})
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// Command loadgen measures how fast a master launches tasks over HTTP: a
// framework that launches -tasks tiny tasks as fast as offers allow (as
// many per offer as fit, at most -concurrency unfinished at a time),
// acknowledges their updates, and prints
//
//   - launches/s: tasks that reached TASK_RUNNING per second of wall time,
//     from the first offer to the last TASK_RUNNING;
//   - the offer→RUNNING latency percentiles (p50, p90, p99): from the
//     moment the offer a task was launched on arrived to the moment its
//     TASK_RUNNING arrived;
//   - the total time, from the start to the last task's end.
//
// It is meant for agents started with -containerizer noop, so the figure
// measures Apron, not fork/exec:
//
//	master -listen 127.0.0.1:5050 -log-level warn
//	agent -master 127.0.0.1:5050 -listen 127.0.0.1:5051 -work-dir /tmp/a1 -containerizer noop -resources "cpus:64;mem:65536"
//	agent -master 127.0.0.1:5050 -listen 127.0.0.1:5052 -work-dir /tmp/a2 -containerizer noop -resources "cpus:64;mem:65536"
//	loadgen -master 127.0.0.1:5050 -tasks 20000 -concurrency 4000
//
// Tasks run "true" (or "sleep <-task-time>"), and carry -task-time in
// their environment as APRON_NOOP_RUN_TIME, which the no-op containerizer
// takes as their run time.
//
// With -hold it measures a master that knows many tasks at once: it keeps
// every task running (give them a long -task-time), reports the time until
// all -tasks are RUNNING, holds them -hold-for (to read the operator API
// at that size), and with -failover takes the framework over as a
// restarted scheduler would (a new connection, the same framework ID) and
// reconciles every task, implicitly and then explicitly in one call,
// printing how long until every task answered, repeated or missing
// answers, and disconnections:
//
//	loadgen -tasks 50000 -concurrency 50000 -task-time 10h -per-offer 2500 -hold -failover -teardown=false
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/examples/internal/cli"
	"github.com/apronhq/apron/resources"
	"github.com/apronhq/apron/scheduler"
)

const description = `Launches -tasks tiny tasks through the master at -master as fast as its
offers allow, and prints launches/s (tasks reaching TASK_RUNNING per second),
offer→RUNNING latency percentiles and the total time. Run it against agents
started with -containerizer noop.`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	tasks       int
	concurrency int
	cpus, mem   float64
	taskTime    time.Duration
	ackWorkers  int
	callWorkers int
	name        string
	role        string
	json        bool
	timeout     time.Duration
	quiet       bool
	credential  *auth.Credential // -credential

	// -hold and what follows it (hold.go).
	hold             bool
	holdFor          time.Duration
	failover         bool
	failoverTimeout  time.Duration
	reconcileTimeout time.Duration
	implicit         bool
	explicit         bool
	teardown         bool
	perOffer         int
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var (
		o          options
		masters    string
		common     cli.Common
		credential cli.Credential
		tlsFlags   cli.TLS
	)
	fs.StringVar(&masters, "master", "127.0.0.1:5050", cli.MasterFlagHelp)
	fs.IntVar(&o.tasks, "tasks", 10000, "number of tasks to launch")
	fs.IntVar(&o.concurrency, "concurrency", 4000, "most tasks launched and not yet ended at any time")
	fs.Float64Var(&o.cpus, "cpus", 0.01, "cpus of each task")
	fs.Float64Var(&o.mem, "mem", 1, "memory of each task, MB")
	fs.DurationVar(&o.taskTime, "task-time", 0, "how long each task runs (the no-op containerizer reads it from the task's environment)")
	fs.IntVar(&o.ackWorkers, "ack-workers", 16, "goroutines sending acknowledgements")
	fs.IntVar(&o.callWorkers, "launch-workers", 4, "goroutines sending ACCEPT and DECLINE calls")
	fs.StringVar(&o.name, "name", "loadgen", "the framework's name")
	fs.StringVar(&o.role, "role", "*", "the `role` the framework subscribes with")
	fs.BoolVar(&o.json, "json", false, "speak JSON to the master instead of protobuf")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.BoolVar(&o.quiet, "q", false, "print only the results, no progress")
	fs.BoolVar(&o.hold, "hold", false, "keep every task running instead of waiting for them to end: report the time until all -tasks are RUNNING at once (give them a long -task-time and -concurrency ≥ -tasks)")
	fs.DurationVar(&o.holdFor, "hold-for", 0, "with -hold: how long to keep them all running before going on (to measure the master's operator API at that size)")
	fs.BoolVar(&o.failover, "failover", false, "with -hold: then fail the framework over (a new connection with the same framework ID) and reconcile every task, timing until each reply arrived")
	fs.DurationVar(&o.failoverTimeout, "failover-timeout", time.Hour, "the framework's failover_timeout (with -failover)")
	fs.DurationVar(&o.reconcileTimeout, "reconcile-timeout", 5*time.Minute, "with -failover: give up waiting for a reconciliation's replies after this long")
	fs.BoolVar(&o.implicit, "implicit", true, "with -failover: reconcile implicitly (no task named)")
	fs.BoolVar(&o.explicit, "explicit", true, "with -failover: reconcile explicitly, every task named in one call")
	fs.IntVar(&o.perOffer, "per-offer", 0, "launch at most this many tasks on one offer, to spread them over the agents (0: as many as fit)")
	fs.BoolVar(&o.teardown, "teardown", true, "with -hold: tear the framework down at the end (false: leave it, its tasks running, for its failover timeout)")
	credential.Register(fs)
	tlsFlags.RegisterClient(fs)
	common.Register(fs, "warn")
	fs.Usage = cli.Usage(fs, "loadgen [flags]", description)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.tasks <= 0 || o.concurrency <= 0:
		return errors.New("-tasks and -concurrency must be positive")
	case o.cpus <= 0 || o.mem <= 0:
		return errors.New("-cpus and -mem must be positive")
	case o.ackWorkers <= 0 || o.callWorkers <= 0:
		return errors.New("-ack-workers and -launch-workers must be positive")
	case o.perOffer < 0:
		return errors.New("-per-offer must not be negative")
	case o.taskTime < 0:
		return errors.New("-task-time must not be negative")
	case (o.holdFor != 0 || o.failover) && !o.hold:
		return errors.New("-hold-for and -failover need -hold")
	case o.hold && o.concurrency < o.tasks:
		return errors.New("-hold needs -concurrency ≥ -tasks: every task stays unfinished")
	}
	cred, err := credential.Read()
	if err != nil {
		return err
	}
	o.credential = cred
	log, err := common.Logger()
	if err != nil {
		return err
	}
	ms, err := cli.ParseMasters(masters, log)
	if err != nil {
		return err
	}
	defer ms.Close() // after the driver has stopped
	stopProfiles, err := common.StartProfiles()
	if err != nil {
		return err
	}
	defer stopProfiles()

	ctx, stop := cli.SignalContext()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	g := newLoad(o, out)
	// Calls are made from several goroutines: keep a connection per
	// goroutine alive instead of the default two.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = o.ackWorkers + o.callWorkers + 4
	transport.MaxIdleConns = transport.MaxIdleConnsPerHost * 2
	transport.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	opts := []scheduler.Option{
		ms.SchedulerOption(),
		scheduler.WithHTTPClient(&http.Client{Transport: transport}),
		scheduler.WithExplicitAcknowledgements(),
		scheduler.WithLogger(log),
	}
	if o.json {
		opts = append(opts, scheduler.WithJSON())
	}
	if o.credential != nil {
		opts = append(opts, scheduler.WithCredential(*o.credential))
	}
	tlsOpts, err := tlsFlags.SchedulerOptions(log.With("component", "tls"))
	if err != nil {
		return err
	}
	opts = append(opts, tlsOpts...)
	info := mesospb.FrameworkInfo{
		User:         currentUser(),
		Name:         o.name,
		Roles:        []string{o.role},
		Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}},
	}
	if o.failover {
		info.FailoverTimeout = ptr(o.failoverTimeout.Seconds())
	}
	d, err := scheduler.NewDriver(g, info, opts...)
	if err != nil {
		return err
	}
	g.driver.Store(d)

	fmt.Fprintf(out, "loadgen: %d tasks (cpus %g, mem %g MB, run time %v), at most %d unfinished, master %s\n",
		o.tasks, o.cpus, o.mem, o.taskTime, o.concurrency, ms)
	g.start = time.Now()
	var wg sync.WaitGroup
	workCtx, stopWork := context.WithCancel(context.Background())
	g.startWorkers(workCtx, &wg)
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(context.WithoutCancel(ctx)) }()
	if !o.quiet {
		wg.Add(1)
		go func() { defer wg.Done(); g.progress(workCtx) }()
	}

	var result error
	select {
	case <-g.done:
	case <-g.allRunning:
		end := time.Now()
		g.report(out, end)
		running := g.runningNow()
		var ended error
		if running == o.tasks {
			fmt.Fprintf(out, "all %d tasks RUNNING at once after %v\n", o.tasks, end.Sub(g.start).Round(time.Millisecond))
		} else {
			fmt.Fprintf(out, "NOT ALL RUNNING: %d of %d tasks RUNNING at once after %v, the others ended\n", running, o.tasks, end.Sub(g.start).Round(time.Millisecond))
			ended = fmt.Errorf("%d of %d tasks ended while held", o.tasks-running, o.tasks)
		}
		return errors.Join(g.afterHold(ctx, d, runErr, info, opts, stopWork, &wg), ended)
	case err := <-runErr:
		runErr <- err
		result = fmt.Errorf("the framework stopped: %w", err)
	case <-ctx.Done():
		result = fmt.Errorf("not done: %w", context.Cause(ctx))
	}
	end := time.Now()
	_ = d.Stop(false) // tear down: kill what is left
	<-runErr
	stopWork()
	wg.Wait()
	g.report(out, end)
	return result
}

// load is the framework.
type load struct {
	scheduler.Base
	o     options
	out   io.Writer
	start time.Time

	acks  chan mesospb.TaskStatus
	calls chan func(context.Context, *scheduler.Driver)
	// driver is the driver the workers call through: a failover replaces it.
	driver atomic.Pointer[scheduler.Driver]

	mu         sync.Mutex
	next       int         // tasks launched so far
	offerAt    []time.Time // by task number: when its offer arrived
	ran        []bool      // by task number: TASK_RUNNING seen
	ended      []bool
	inflight   int
	running    int
	finished   int
	failed     int
	firstFail  string
	latencies  []time.Duration
	firstOffer time.Time
	lastRun    time.Time
	offers     int
	accepts    int
	declines   int
	suppressed bool
	resources  map[string][]mesospb.Resource // a task's resources, by role
	command    *mesospb.CommandInfo
	done       chan struct{}
	closed     bool
	// With -hold: closed when every task has been heard of as RUNNING
	// or ended (lost, failed), so a lost task does not stall the run.
	allRunning chan struct{}
	settled    int                // tasks heard of as RUNNING or ended
	agentOf    []*mesospb.AgentID // by task number: where it runs (shared pointers)
	agentIDs   map[string]*mesospb.AgentID
	// The reconciliation under way, if any (-failover).
	round *round
	// subscribed, when not nil, is closed at the next subscription.
	subscribed   chan struct{}
	disconnects  int
	resubscribes int
}

func newLoad(o options, out io.Writer) *load {
	return &load{
		o:          o,
		out:        out,
		acks:       make(chan mesospb.TaskStatus, 1<<16),
		calls:      make(chan func(context.Context, *scheduler.Driver), 1<<12),
		offerAt:    make([]time.Time, o.tasks),
		ran:        make([]bool, o.tasks),
		ended:      make([]bool, o.tasks),
		latencies:  make([]time.Duration, 0, o.tasks),
		resources:  map[string][]mesospb.Resource{},
		command:    taskCommand(o.taskTime),
		done:       make(chan struct{}),
		allRunning: make(chan struct{}),
		agentOf:    make([]*mesospb.AgentID, o.tasks),
		agentIDs:   map[string]*mesospb.AgentID{},
	}
}

// startWorkers starts the goroutines that make the framework's calls, so
// the driver's event loop never waits for an HTTP round trip.
func (g *load) startWorkers(ctx context.Context, wg *sync.WaitGroup) {
	for range g.o.ackWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case st := <-g.acks:
					// A failed acknowledgement is resent by the agent's
					// retry; nothing to do here.
					_ = g.driver.Load().AcknowledgeStatusUpdate(ctx, st)
				}
			}
		}()
	}
	for range g.o.callWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case call := <-g.calls:
					call(ctx, g.driver.Load())
				}
			}
		}()
	}
}

// taskResources is what each task takes, allocated to role.
func (g *load) taskResources(role string) []mesospb.Resource {
	if rs, ok := g.resources[role]; ok {
		return rs
	}
	rs := resources.New(resources.NewScalar(resources.NameCPUs, g.o.cpus), resources.NewScalar(resources.NameMem, g.o.mem)).Allocate(role).ToProto()
	g.resources[role] = rs
	return rs
}

// ResourceOffers packs as many tasks into each offer as fit.
func (g *load) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	now := time.Now()
	g.mu.Lock()
	if g.firstOffer.IsZero() {
		g.firstOffer = now
	}
	g.offers += len(offers)
	var decline []mesospb.OfferID
	for _, o := range offers {
		cpus, mem := scalars(o.Resources)
		n := min(int(math.Floor(cpus/g.o.cpus+1e-9)), int(math.Floor(mem/g.o.mem+1e-9)),
			g.o.tasks-g.next, g.o.concurrency-g.inflight)
		if g.o.perOffer > 0 {
			n = min(n, g.o.perOffer)
		}
		if n <= 0 {
			decline = append(decline, o.ID)
			continue
		}
		rs := g.taskResources(o.AllocationInfo.GetRole())
		tasks := make([]mesospb.TaskInfo, n)
		for i := range tasks {
			k := g.next
			g.next++
			g.offerAt[k] = now
			id := "lg-" + strconv.Itoa(k)
			tasks[i] = mesospb.TaskInfo{
				Name:      id,
				TaskID:    mesospb.TaskID{Value: id},
				AgentID:   o.AgentID,
				Resources: rs,
				Command:   g.command,
			}
		}
		g.inflight += n
		g.accepts++
		offer := o.ID
		g.enqueue(func(ctx context.Context, d *scheduler.Driver) {
			// Leftovers come back at once: refuse_seconds 0.
			if err := d.LaunchTasks(ctx, []mesospb.OfferID{offer}, tasks, &mesospb.Filters{RefuseSeconds: ptr(0.0)}); err != nil && ctx.Err() == nil {
				fmt.Fprintf(g.out, "launch of %d tasks failed: %v\n", len(tasks), err)
			}
		})
	}
	all := g.next == g.o.tasks
	suppress := all && !g.suppressed
	if suppress {
		g.suppressed = true
	}
	g.declines += len(decline)
	g.mu.Unlock()

	if len(decline) > 0 {
		refuse := 0.0
		if all {
			refuse = 3600
		}
		g.enqueue(func(ctx context.Context, d *scheduler.Driver) {
			_ = d.DeclineOffer(ctx, decline, &mesospb.Filters{RefuseSeconds: &refuse})
		})
	}
	if suppress {
		g.enqueue(func(ctx context.Context, d *scheduler.Driver) { _ = d.SuppressOffers(ctx) })
	}
}

func (g *load) enqueue(call func(context.Context, *scheduler.Driver)) {
	g.calls <- call
}

// taskCommand is every task's command (shared: it is only marshalled).
func taskCommand(taskTime time.Duration) *mesospb.CommandInfo {
	value := "true"
	if taskTime > 0 {
		value = fmt.Sprintf("sleep %g", taskTime.Seconds())
	}
	return &mesospb.CommandInfo{
		Value: &value,
		Environment: &mesospb.Environment{Variables: []mesospb.Environment_Variable{
			{Name: containerizer.NoopRunTimeEnv, Value: ptr(taskTime.String())},
		}},
	}
}

// scalars sums an offer's cpus and mem.
func scalars(rs []mesospb.Resource) (cpus, mem float64) {
	for _, r := range rs {
		if r.Scalar == nil {
			continue
		}
		switch r.Name {
		case resources.NameCPUs:
			cpus += r.Scalar.Value
		case resources.NameMem:
			mem += r.Scalar.Value
		}
	}
	return cpus, mem
}

// StatusUpdate counts the update and queues its acknowledgement.
func (g *load) StatusUpdate(ctx context.Context, d *scheduler.Driver, st mesospb.TaskStatus) {
	now := time.Now()
	if len(st.UUID) > 0 && st.AgentID != nil {
		select {
		case g.acks <- st:
		case <-ctx.Done():
			return
		}
	}
	k, err := strconv.Atoi(strings.TrimPrefix(st.TaskID.Value, "lg-"))
	if err != nil || k < 0 || k >= g.o.tasks {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st.AgentID != nil && g.agentOf[k] == nil {
		g.agentOf[k] = g.agentID(*st.AgentID)
	}
	if st.GetReason() == mesospb.TaskStatus_REASON_RECONCILIATION && g.round != nil {
		g.round.reply(k, st.GetState(), now)
		return
	}
	if g.ended[k] {
		return
	}
	switch s := st.GetState(); s {
	case mesospb.TASK_STAGING, mesospb.TASK_STARTING:
	case mesospb.TASK_RUNNING:
		g.sawRunning(k, now)
	default:
		g.ended[k] = true
		g.inflight--
		if s == mesospb.TASK_FINISHED {
			// A task that ended before its RUNNING was seen still ran.
			g.sawRunning(k, now)
			g.finished++
		} else {
			g.failed++
			if g.firstFail == "" {
				g.firstFail = fmt.Sprintf("%s %s: %s", st.TaskID.Value, s, st.GetMessage())
			}
		}
		if !g.ran[k] {
			g.settle()
		}
		if g.finished+g.failed == g.o.tasks && !g.closed {
			g.closed = true
			close(g.done)
		}
	}
}

func (g *load) sawRunning(k int, now time.Time) {
	if g.ran[k] {
		return
	}
	g.ran[k] = true
	g.running++
	g.latencies = append(g.latencies, now.Sub(g.offerAt[k]))
	g.lastRun = now
	g.settle()
}

// runningNow is the number of tasks RUNNING and not ended.
func (g *load) runningNow() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for k, ran := range g.ran {
		if ran && !g.ended[k] {
			n++
		}
	}
	return n
}

// settle counts a task heard of for the first time as RUNNING or ended.
func (g *load) settle() {
	g.settled++
	if g.o.hold && g.settled == g.o.tasks {
		close(g.allRunning)
	}
}

// agentID interns agent IDs: 100,000 tasks share a few agents.
func (g *load) agentID(id mesospb.AgentID) *mesospb.AgentID {
	p, ok := g.agentIDs[id.Value]
	if !ok {
		p = &id
		g.agentIDs[id.Value] = p
	}
	return p
}

// progress prints a line a second.
func (g *load) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.mu.Lock()
			running, finished, failed, inflight := g.running, g.finished, g.failed, g.inflight
			g.mu.Unlock()
			fmt.Fprintf(g.out, "%6.1fs  running %d/%d (%d/s)  finished %d  failed %d  unfinished %d\n",
				now.Sub(g.start).Seconds(), running, g.o.tasks, running-last, finished, failed, inflight)
			last = running
		}
	}
}

// report prints the results.
func (g *load) report(w io.Writer, end time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fmt.Fprintf(w, "\n%d tasks launched: %d reached TASK_RUNNING, %d finished, %d failed\n", g.next, g.running, g.finished, g.failed)
	if g.firstFail != "" {
		fmt.Fprintf(w, "first failure: %s\n", g.firstFail)
	}
	fmt.Fprintf(w, "offers: %d received, %d used, %d declined (%.1f tasks per used offer)\n",
		g.offers, g.accepts, g.declines, float64(g.next)/math.Max(1, float64(g.accepts)))
	if g.running > 0 {
		wall := g.lastRun.Sub(g.firstOffer)
		fmt.Fprintf(w, "launches/s: %.0f (%d tasks reached TASK_RUNNING in %v, first offer to last TASK_RUNNING)\n",
			float64(g.running)/wall.Seconds(), g.running, wall.Round(time.Millisecond))
		lat := slices.Clone(g.latencies)
		slices.Sort(lat)
		fmt.Fprintf(w, "offer→RUNNING latency: p50 %v  p90 %v  p99 %v  max %v\n",
			pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1].Round(time.Microsecond*100))
	}
	fmt.Fprintf(w, "total time: %v (start to the last task's end)\n", end.Sub(g.start).Round(time.Millisecond))
}

// pct is the p-th percentile of sorted durations (nearest rank).
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i].Round(100 * time.Microsecond)
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "root"
}

func ptr[T any](v T) *T { return &v }

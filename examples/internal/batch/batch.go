// Package batch is the demo framework of Apron's examples: it runs a list of
// shell commands as tasks, each with its own cpus and mem, retries the ones
// that fail up to a limit, reports progress as it goes and a summary at the
// end. devcluster runs it in the same process as the cluster; the batch
// binary runs it against a master elsewhere.
package batch

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
	"github.com/apronhq/apron/scheduler"
)

// Task is one command to run.
type Task struct {
	Name    string
	Command string
	CPUs    float64
	Mem     float64 // MB
	// MaxAttempts is how many times the task may run (default 3).
	MaxAttempts int
}

// Framework runs a job of tasks. Its Scheduler methods are called by the
// driver's goroutine; Done and Summary may be called from any goroutine.
type Framework struct {
	scheduler.Base

	out   io.Writer
	start time.Time
	now   func() time.Time

	mu       sync.Mutex
	tasks    []*taskState
	byID     map[string]*taskState // current attempt's task ID -> task
	pending  []*taskState
	finished int
	failed   int // tasks that used all their attempts
	done     chan struct{}
	closed   bool
	agents   map[string]string // agent ID -> hostname
}

type taskState struct {
	Task
	attempt  int
	id       string
	agent    string
	state    mesospb.TaskState
	message  string
	launched time.Time
	ended    time.Time
	attempts []string // how each attempt ended
}

// New returns a framework that will run tasks, writing progress to out.
func New(tasks []Task, out io.Writer) *Framework {
	f := &Framework{out: out, now: time.Now, byID: map[string]*taskState{}, done: make(chan struct{}), agents: map[string]string{}}
	f.start = f.now()
	for _, t := range tasks {
		if t.MaxAttempts <= 0 {
			t.MaxAttempts = 3
		}
		ts := &taskState{Task: t}
		f.tasks = append(f.tasks, ts)
		f.pending = append(f.pending, ts)
	}
	if len(tasks) == 0 {
		close(f.done)
		f.closed = true
	}
	return f
}

// Done is closed once every task has finished or used all its attempts.
func (f *Framework) Done() <-chan struct{} { return f.done }

// Succeeded reports whether every task finished.
func (f *Framework) Succeeded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed && f.failed == 0
}

// Registered is called once the framework is subscribed.
func (f *Framework) Registered(ctx context.Context, d *scheduler.Driver, id mesospb.FrameworkID, _ *mesospb.MasterInfo) {
	fmt.Fprintf(f.out, "framework %s registered; %d tasks to run\n", id.Value, len(f.tasks))
}

// ResourceOffers launches pending tasks on the offers, first fit, and
// declines what is left.
func (f *Framework) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	f.mu.Lock()
	type launch struct {
		offer mesospb.OfferID
		tasks []mesospb.TaskInfo
	}
	var launches []launch
	var decline []mesospb.OfferID
	for _, o := range offers {
		f.agents[o.AgentID.Value] = o.Hostname
		left, err := resources.FromProto(o.Resources)
		if err != nil {
			decline = append(decline, o.ID)
			continue
		}
		role := o.AllocationInfo.GetRole()
		var infos []mesospb.TaskInfo
		rest := f.pending[:0]
		for _, t := range f.pending {
			need := resources.New(resources.NewScalar("cpus", t.CPUs), resources.NewScalar("mem", t.Mem)).Allocate(role)
			if !left.Contains(need) {
				rest = append(rest, t)
				continue
			}
			left = left.Subtract(need)
			t.attempt++
			t.id = fmt.Sprintf("%s-%d", t.Name, t.attempt)
			t.agent = o.AgentID.Value
			t.state = mesospb.TASK_STAGING
			t.launched = f.now()
			f.byID[t.id] = t
			infos = append(infos, mesospb.TaskInfo{
				Name:      t.Name,
				TaskID:    mesospb.TaskID{Value: t.id},
				AgentID:   o.AgentID,
				Resources: need.ToProto(),
				Command: &mesospb.CommandInfo{
					Value: &t.Command,
					Environment: &mesospb.Environment{Variables: []mesospb.Environment_Variable{
						{Name: "ATTEMPT", Value: ptr(fmt.Sprint(t.attempt))},
					}},
				},
			})
		}
		f.pending = rest
		if len(infos) == 0 {
			decline = append(decline, o.ID)
			continue
		}
		launches = append(launches, launch{o.ID, infos})
	}
	nothingLeft := len(f.pending) == 0
	f.mu.Unlock()

	for _, l := range launches {
		if err := d.LaunchTasks(ctx, []mesospb.OfferID{l.offer}, l.tasks, &mesospb.Filters{RefuseSeconds: ptr(1.0)}); err != nil {
			fmt.Fprintf(f.out, "launch failed: %v\n", err)
		}
	}
	if len(decline) > 0 {
		refuse := 1.0
		if nothingLeft {
			refuse = 60 // nothing to run: do not bother us for a while
		}
		_ = d.DeclineOffer(ctx, decline, &mesospb.Filters{RefuseSeconds: &refuse})
	}
	if nothingLeft {
		_ = d.SuppressOffers(ctx)
	}
}

// StatusUpdate follows each task; a failed attempt is retried while
// attempts remain.
func (f *Framework) StatusUpdate(ctx context.Context, d *scheduler.Driver, st mesospb.TaskStatus) {
	f.mu.Lock()
	t := f.byID[st.TaskID.Value]
	if t == nil || t.id != st.TaskID.Value {
		f.mu.Unlock()
		return // an earlier attempt, or not ours
	}
	t.state, t.message = st.GetState(), st.GetMessage()
	var line string
	retry := false
	switch st.GetState() {
	case mesospb.TASK_FINISHED:
		t.ended = f.now()
		t.attempts = append(t.attempts, "finished")
		f.finished++
		line = fmt.Sprintf("%-14s finished on %s after %s", t.id, f.host(t.agent), t.ended.Sub(t.launched).Round(time.Millisecond))
	case mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST, mesospb.TASK_ERROR, mesospb.TASK_DROPPED, mesospb.TASK_GONE:
		t.ended = f.now()
		t.attempts = append(t.attempts, strings.ToLower(strings.TrimPrefix(st.GetState().String(), "TASK_")))
		if t.attempt < t.MaxAttempts {
			retry = true
			f.pending = append(f.pending, t)
			line = fmt.Sprintf("%-14s %s (%s); retrying", t.id, st.GetState(), st.GetMessage())
		} else {
			f.failed++
			line = fmt.Sprintf("%-14s %s (%s); giving up after %d attempts", t.id, st.GetState(), st.GetMessage(), t.attempt)
		}
	case mesospb.TASK_RUNNING:
		line = fmt.Sprintf("%-14s running on %s", t.id, f.host(t.agent))
	}
	complete := f.finished+f.failed == len(f.tasks) && !f.closed
	if complete {
		f.closed = true
	}
	progress := fmt.Sprintf("[%d/%d done, %d running, %d waiting]", f.finished+f.failed, len(f.tasks), f.runningLocked(), len(f.pending))
	f.mu.Unlock()

	if line != "" {
		fmt.Fprintf(f.out, "%-30s %s\n", progress, line)
	}
	if retry {
		_ = d.ReviveOffers(ctx)
	}
	if complete {
		close(f.done)
	}
}

func (f *Framework) runningLocked() int {
	n := 0
	for _, t := range f.tasks {
		if t.state == mesospb.TASK_RUNNING || t.state == mesospb.TASK_STARTING {
			n++
		}
	}
	return n
}

func (f *Framework) host(agentID string) string {
	if h := f.agents[agentID]; h != "" {
		return h
	}
	return agentID
}

// Error reports a framework error from the master.
func (f *Framework) Error(ctx context.Context, d *scheduler.Driver, message string) {
	fmt.Fprintf(f.out, "framework error: %s\n", message)
}

// Summary writes a table of the job: tasks per agent and state, the
// resources they used, and how the tasks' attempts went.
func (f *Framework) Summary(w io.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	elapsed := f.now().Sub(f.start)
	type perAgent struct {
		host                   string
		finished, failed, runs int
		cpus, mem              float64
		busy                   time.Duration
	}
	agents := map[string]*perAgent{}
	for _, t := range f.tasks {
		if t.agent == "" {
			continue
		}
		a := agents[t.agent]
		if a == nil {
			a = &perAgent{host: f.host(t.agent)}
			agents[t.agent] = a
		}
		a.runs += len(t.attempts)
		if t.state == mesospb.TASK_FINISHED {
			a.finished++
		} else {
			a.failed++
		}
		a.cpus += t.CPUs
		a.mem += t.Mem
		if !t.ended.IsZero() {
			a.busy += t.ended.Sub(t.launched)
		}
	}
	ids := make([]string, 0, len(agents))
	for id := range agents {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return agents[ids[i]].host < agents[ids[j]].host })

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tFINISHED\tFAILED\tATTEMPTS\tCPUS\tMEM (MB)\tTASK TIME")
	for _, id := range ids {
		a := agents[id]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.0f\t%s\n", a.host, a.finished, a.failed, a.runs, a.cpus, a.mem, a.busy.Round(time.Millisecond))
	}
	tw.Flush()

	retried := 0
	for _, t := range f.tasks {
		if len(t.attempts) > 1 {
			retried++
		}
	}
	fmt.Fprintf(w, "\n%d tasks: %d finished, %d failed for good, %d needed a retry; %s in all (%.1f tasks/s)\n",
		len(f.tasks), f.finished, f.failed, retried, elapsed.Round(time.Millisecond), float64(f.finished)/elapsed.Seconds())
}

func ptr[T any](v T) *T { return &v }

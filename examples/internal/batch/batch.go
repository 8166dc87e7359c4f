// Package batch is the demo framework of Apron's examples: it runs a list of
// shell commands as tasks, each with its own cpus and mem, retries the ones
// that fail up to a limit, reports progress as it goes and a summary at the
// end. devcluster runs it in the same process as the cluster; the batch
// binary runs it against a master elsewhere.
//
// # Failover
//
// A framework process can die and another take over its framework (same
// framework ID, within its failover_timeout): its tasks keep running on the
// agents meanwhile. To carry on without running finished work again, the
// framework writes a journal (SetJournal: a line per task launched and per
// attempt ended, written before the update is acknowledged), which the new
// process replays (Restore). On every (re-)registration the framework
// reconciles before it launches anything: it asks the master for the
// tasks the journal has outstanding (explicit reconciliation: a task the
// master does not know comes back TASK_LOST and is retried), then for
// every task the master knows (implicit reconciliation: a task of this job
// the journal missed is adopted rather than launched twice), then for a
// task ID nobody uses, whose answer comes last on the stream and ends the
// reconciliation. Offers that arrive meanwhile are held, and used then. A
// master may leave a reconciliation unanswered (a master that has just
// failed over, while the agents it recovered from its registry have not
// re-registered): as Mesos asks of frameworks, the reconciliation is sent
// again, with backoff (250 ms, doubling to 30 s), until its marker's answer
// comes.
//
// # High availability
//
// RunHA runs the same job as one of several instances, on as many
// machines, that campaign for leadership at a ZooKeeper path
// (election/zookeeper; the payload is an Instance, as JSON, which
// ValidatePayload checks, so a Mesos master's znodes on a mistaken path
// are skipped rather than followed). The leader runs the job; the others
// wait in Campaign. Everything a successor needs is under the same path,
// in persistent znodes any instance can read:
//
//	<path>/json.info_NNNNNNNNNN   ephemeral: the candidacies, the lowest leads
//	<path>/framework              JobState as JSON: framework ID, job fingerprint, done
//	<path>/journal/journal-NNNNNNNNNN   the journal, one record per znode, in order
//
// The leader stores the framework ID the moment the master registers it,
// before launching anything, and writes each journal record to ZooKeeper
// before the update it records is acknowledged. Its term ends when its
// ZooKeeper session is lost (or it cannot be sure of it): it cancels its
// driver at once, without a TEARDOWN, and campaigns again; the master keeps
// the framework for its failover_timeout. The instance that leads next
// reads the state, subscribes with the stored framework ID, replays the
// journal and reconciles as a restarted process does (above): a task that
// runs is adopted, one that finished is not run again, and updates the
// dead leader left unacknowledged come again and are acknowledged. When
// the job ends the leader marks it done first, then tears the framework
// down: an instance that leads afterwards finds it done and exits.
//
// Limits: ZooKeeper answers a znode's children in one response bounded by
// jute.maxbuffer (1 MB by default), so the journal holds at most about
// MaxZKJournalRecords records, and RunHA takes jobs of up to MaxZKTasks
// tasks (a compacting journal would lift this). Records are small (a
// line each) and every one is a ZooKeeper write, synchronous, so a leader
// launches and acknowledges at the rate ZooKeeper commits (thousands a
// second). A leader that dies between registering and storing the
// framework ID leaves a framework without tasks behind, which the master
// removes after its failover timeout; one that dies between marking the
// job done and tearing the framework down leaves it the same way.
package batch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
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
	// Image, when set, is the Docker/OCI image the command runs in
	// (ContainerInfo type MESOS with a DOCKER image, as Mesos's universal
	// containerizer takes it): the agent needs the Linux containerizer
	// with images (-isolation ... -image-providers docker).
	Image string
}

// Framework runs a job of tasks. Its Scheduler methods are called by the
// driver's goroutine; Done and Summary may be called from any goroutine.
type Framework struct {
	scheduler.Base

	out   io.Writer
	start time.Time
	now   func() time.Time
	// after runs fn after d (time.AfterFunc; tests inject their own).
	after func(d time.Duration, fn func())

	mu       sync.Mutex
	tasks    []*taskState
	byID     map[string]*taskState // current attempt's task ID -> task
	pending  []*taskState
	finished int
	failed   int // tasks that used all their attempts
	done     chan struct{}
	closed   bool
	agents   map[string]string // agent ID -> hostname

	journal      io.Writer // nil: no journal
	events       io.Writer // nil: no event log
	onRegistered func(frameworkID string)
	// reconciling is the task ID of the marker whose answer ends the
	// current reconciliation ("" when none runs); held are the offers
	// received meanwhile.
	reconciling string
	rounds      int
	held        []mesospb.Offer
	adopted     int // tasks taken over from an earlier process
	asked       int // outstanding tasks the current reconciliation asked for
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
	f := &Framework{out: out, now: time.Now, after: func(d time.Duration, fn func()) { time.AfterFunc(d, fn) }, byID: map[string]*taskState{}, done: make(chan struct{}), agents: map[string]string{}}
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

// OnRegistered sets a function called with the framework ID when the
// framework registers, before it reconciles or launches anything: where a
// program opens its journal, named after the ID, and tells the user the ID
// to restart with.
func (f *Framework) OnRegistered(fn func(frameworkID string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onRegistered = fn
}

// SetJournal makes the framework record its progress in w, one line per
// launch and per attempt's end, so that Restore can replay it in another
// process. Each record is one Write; a file opened with O_APPEND survives
// the death of the process that writes it.
func (f *Framework) SetJournal(w io.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.journal = w
}

// Event is one line of the event log (SetEvents): a task the framework
// launched (Type "LAUNCH", before the launch is sent), or a status update
// as it received it (Type "UPDATE", before it acted on it or acknowledged
// it).
type Event struct {
	Type string `json:"type"`
	// Time is when the framework launched or received it, Unix nanoseconds.
	Time    int64  `json:"time"`
	TaskID  string `json:"task_id"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	Source  string `json:"source,omitempty"`
	Message string `json:"message,omitempty"`
	AgentID string `json:"agent_id,omitempty"`
	// UUID is the update's uuid, hex; empty for the updates that are not
	// acknowledged (the master's: reconciliation answers, TASK_LOST of a
	// removed agent, ...).
	UUID string `json:"uuid,omitempty"`
}

// SetEvents makes the framework log every task it launches and every
// status update it receives to w,
// one JSON Event per line, each line one Write: a test (or an operator)
// can follow what reached the framework, in order, across its restarts
// when each process appends to the same file. An update is logged before
// the driver acknowledges it, so an acknowledged update is never missing
// from the log.
func (f *Framework) SetEvents(w io.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = w
}

// logEvent appends st to the event log; f.mu is held.
func (f *Framework) logEvent(st mesospb.TaskStatus) {
	if f.events == nil {
		return
	}
	ev := Event{
		Type:    "UPDATE",
		Time:    f.now().UnixNano(),
		TaskID:  st.TaskID.Value,
		State:   st.GetState().String(),
		Message: st.GetMessage(),
		UUID:    fmt.Sprintf("%x", st.UUID),
	}
	if st.Reason != nil {
		ev.Reason = st.Reason.String()
	}
	if st.Source != nil {
		ev.Source = st.Source.String()
	}
	if st.AgentID != nil {
		ev.AgentID = st.AgentID.Value
	}
	f.writeEvent(ev)
}

// logLaunch appends the launch of t's current attempt to the event log;
// f.mu is held.
func (f *Framework) logLaunch(t *taskState) {
	if f.events == nil {
		return
	}
	f.writeEvent(Event{Type: "LAUNCH", Time: t.launched.UnixNano(), TaskID: t.id, AgentID: t.agent})
}

func (f *Framework) writeEvent(ev Event) {
	b, err := json.Marshal(ev)
	if err == nil {
		_, err = f.events.Write(append(b, '\n'))
	}
	if err != nil {
		fmt.Fprintf(f.out, "event log: %v\n", err)
	}
}

// ErrBadJournal: a journal line Restore cannot read.
var ErrBadJournal = errors.New("batch: bad journal")

// Restore replays the journal of an earlier process running the same job
// (the same task names): tasks that finished, or failed for good, are
// done; tasks launched and not ended are outstanding, to be reconciled;
// the others are pending. Call it before the driver runs. Records of
// tasks the job does not have are skipped; a torn last line (the writer
// died mid-write) is ignored.
func (f *Framework) Restore(r io.Reader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	var bad error
	for sc.Scan() {
		line++
		if bad != nil {
			return bad // a bad line that was not the last one
		}
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if err := f.replay(fields); err != nil {
			bad = fmt.Errorf("%w: line %d: %v", ErrBadJournal, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadJournal, err)
	}
	// Everything not outstanding or done is pending again, in job order.
	f.pending = f.pending[:0]
	for _, t := range f.tasks {
		if t.id == "" || (isTerminal(t.state) && !t.done()) {
			f.pending = append(f.pending, t)
		}
	}
	f.checkDoneLocked()
	return nil
}

// replay applies one journal record:
//
//	launch <task ID> <agent ID> <hostname> <unix ns>
//	end <task ID> <state> <unix ns>
func (f *Framework) replay(fields []string) error {
	if len(fields) < 4 {
		return fmt.Errorf("short record %q", strings.Join(fields, " "))
	}
	t, attempt := f.lookup(fields[1])
	if t == nil {
		return nil
	}
	at, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		return fmt.Errorf("bad time in %q", strings.Join(fields, " "))
	}
	switch fields[0] {
	case "launch":
		if len(fields) != 5 {
			return fmt.Errorf("bad launch record %q", strings.Join(fields, " "))
		}
		if attempt < t.attempt {
			return nil
		}
		t.attempt, t.id, t.agent, t.state = attempt, fields[1], fields[2], mesospb.TASK_STAGING
		t.launched, t.ended = time.Unix(0, at), time.Time{}
		f.byID[t.id] = t
		if fields[3] != "-" {
			f.agents[t.agent] = fields[3]
		}
	case "end":
		v, ok := mesospb.TaskState_value[fields[2]]
		if !ok || len(fields) != 4 {
			return fmt.Errorf("bad end record %q", strings.Join(fields, " "))
		}
		if t.id != fields[1] || isTerminal(t.state) {
			return nil
		}
		t.state, t.ended = mesospb.TaskState(v), time.Unix(0, at)
		t.attempts = append(t.attempts, strings.ToLower(strings.TrimPrefix(t.state.String(), "TASK_")))
		switch {
		case t.state == mesospb.TASK_FINISHED:
			f.finished++
		case t.attempt >= t.MaxAttempts:
			f.failed++
		}
	default:
		return fmt.Errorf("unknown record %q", fields[0])
	}
	return nil
}

// lookup finds the task of a task ID, <name>-<attempt>.
func (f *Framework) lookup(id string) (*taskState, int) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return nil, 0
	}
	attempt, err := strconv.Atoi(id[i+1:])
	if err != nil || attempt < 1 {
		return nil, 0
	}
	for _, t := range f.tasks {
		if t.Name == id[:i] {
			return t, attempt
		}
	}
	return nil, 0
}

// done reports whether the task needs nothing more: it finished, or it
// failed with no attempt left.
func (t *taskState) done() bool {
	return t.state == mesospb.TASK_FINISHED || (isTerminal(t.state) && t.attempt >= t.MaxAttempts)
}

func isTerminal(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST,
		mesospb.TASK_ERROR, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR, mesospb.TASK_UNKNOWN:
		return true
	}
	return false
}

// record appends a journal line; f.mu is held.
func (f *Framework) record(format string, args ...any) {
	if f.journal == nil {
		return
	}
	if _, err := fmt.Fprintf(f.journal, format+"\n", args...); err != nil {
		fmt.Fprintf(f.out, "journal: %v\n", err)
	}
}

// Registered is called once the framework is subscribed.
func (f *Framework) Registered(ctx context.Context, d *scheduler.Driver, id mesospb.FrameworkID, _ *mesospb.MasterInfo) {
	f.mu.Lock()
	fn := f.onRegistered
	left := len(f.tasks) - f.finished - f.failed
	f.mu.Unlock()
	fmt.Fprintf(f.out, "framework %s registered; %d tasks to run\n", id.Value, left)
	if fn != nil {
		fn(id.Value)
	}
	f.reconcile(ctx, d)
}

// Reregistered is called when the driver subscribed again after losing
// its stream: offers held are gone, and the tasks may have moved on.
func (f *Framework) Reregistered(ctx context.Context, d *scheduler.Driver, _ *mesospb.MasterInfo) {
	fmt.Fprintln(f.out, "framework re-registered")
	f.reconcile(ctx, d)
}

// Disconnected forgets the offers held: they are no longer valid.
func (f *Framework) Disconnected(ctx context.Context, d *scheduler.Driver) {
	f.mu.Lock()
	f.held = nil
	f.mu.Unlock()
	fmt.Fprintln(f.out, "framework disconnected; re-subscribing")
}

// OfferRescinded drops a held offer the master took back.
func (f *Framework) OfferRescinded(ctx context.Context, d *scheduler.Driver, id mesospb.OfferID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, o := range f.held {
		if o.ID.Value == id.Value {
			f.held = append(f.held[:i], f.held[i+1:]...)
			return
		}
	}
}

// reconcile asks for the outstanding tasks, then every task, then the
// marker (see the package documentation).
func (f *Framework) reconcile(ctx context.Context, d *scheduler.Driver) {
	f.mu.Lock()
	f.held = nil // a new subscription: earlier offers are void
	f.mu.Unlock()
	f.reconcileAfter(ctx, d, 250*time.Millisecond)
}

// reconcileAfter reconciles, and again after backoff (doubled each time,
// up to 30 s) while the answer to this round's marker has not come.
func (f *Framework) reconcileAfter(ctx context.Context, d *scheduler.Driver, backoff time.Duration) {
	f.mu.Lock()
	f.rounds++
	marker := fmt.Sprintf("apron-batch-reconciled-%d-%d", f.now().UnixNano(), f.rounds)
	f.reconciling = marker
	var outstanding []mesospb.TaskStatus
	for _, t := range f.tasks {
		if t.id != "" && !isTerminal(t.state) {
			st := mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: t.id}}
			if t.agent != "" {
				st.AgentID = &mesospb.AgentID{Value: t.agent}
			}
			outstanding = append(outstanding, st)
		}
	}
	f.asked = len(outstanding)
	f.mu.Unlock()
	f.after(backoff, func() {
		f.mu.Lock()
		again := f.reconciling == marker && ctx.Err() == nil
		f.mu.Unlock()
		if again {
			fmt.Fprintf(f.out, "reconciliation unanswered after %v; asking again\n", backoff)
			f.reconcileAfter(ctx, d, min(2*backoff, 30*time.Second))
		}
	})
	if len(outstanding) > 0 {
		fmt.Fprintf(f.out, "reconciling %d outstanding tasks\n", len(outstanding))
		if err := d.ReconcileTasks(ctx, outstanding); err != nil {
			fmt.Fprintf(f.out, "reconciliation failed: %v\n", err)
		}
	}
	if err := d.ReconcileTasks(ctx, nil); err != nil {
		fmt.Fprintf(f.out, "reconciliation failed: %v\n", err)
	}
	if err := d.ReconcileTasks(ctx, []mesospb.TaskStatus{{TaskID: mesospb.TaskID{Value: marker}}}); err != nil {
		// Calls fail only when the stream is gone: the next subscription
		// reconciles again.
		fmt.Fprintf(f.out, "reconciliation failed: %v\n", err)
	}
}

// ResourceOffers launches pending tasks on the offers, first fit, and
// declines what is left. During a reconciliation it holds them.
func (f *Framework) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	f.mu.Lock()
	if f.reconciling != "" {
		f.held = append(f.held, offers...)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	f.useOffers(ctx, d, offers)
}

// useOffers launches pending tasks on offers, first fit, and declines what
// is left.
func (f *Framework) useOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
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
			f.record("launch %s %s %s %d", t.id, t.agent, hostField(o.Hostname), t.launched.UnixNano())
			f.logLaunch(t)
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
				Container: imageContainer(t.Image),
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
	f.logEvent(st)
	if f.reconciling != "" && st.TaskID.Value == f.reconciling {
		// The last answer of the reconciliation: launch on what was held.
		f.reconciling = ""
		held := f.held
		f.held = nil
		adopted, asked, pending := f.adopted, f.asked, len(f.pending)
		f.mu.Unlock()
		if adopted > 0 || asked > 0 {
			fmt.Fprintf(f.out, "reconciled (%d tasks taken over from an earlier process without a journal record)\n", adopted)
		}
		if len(held) > 0 {
			f.useOffers(ctx, d, held)
		}
		if pending > 0 {
			// An earlier process may have left filters or suppression.
			_ = d.ReviveOffers(ctx)
		}
		return
	}
	t := f.byID[st.TaskID.Value]
	if t == nil {
		t = f.adopt(st)
	}
	if t == nil || t.id != st.TaskID.Value || isTerminal(t.state) {
		f.mu.Unlock()
		return // an earlier attempt, not ours, or a repeat of its end
	}
	if st.GetReason() == mesospb.TaskStatus_REASON_RECONCILIATION && !isTerminal(st.GetState()) && st.GetState() == t.state {
		f.mu.Unlock()
		return // nothing new
	}
	t.state, t.message = st.GetState(), st.GetMessage()
	if st.AgentID != nil && st.AgentID.Value != "" {
		t.agent = st.AgentID.Value
	}
	var line string
	retry := false
	switch st.GetState() {
	case mesospb.TASK_FINISHED:
		t.ended = f.now()
		t.attempts = append(t.attempts, "finished")
		f.finished++
		f.record("end %s %s %d", t.id, st.GetState(), t.ended.UnixNano())
		line = fmt.Sprintf("%-14s finished on %s after %s", t.id, f.host(t.agent), t.ended.Sub(t.launched).Round(time.Millisecond))
	case mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST, mesospb.TASK_ERROR, mesospb.TASK_DROPPED,
		mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR, mesospb.TASK_UNKNOWN:
		t.ended = f.now()
		t.attempts = append(t.attempts, strings.ToLower(strings.TrimPrefix(st.GetState().String(), "TASK_")))
		f.record("end %s %s %d", t.id, st.GetState(), t.ended.UnixNano())
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
	retry = retry && f.reconciling == "" // else the held offers serve it
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

// adopt takes over a task of this job that an earlier process launched
// and the journal does not name (the master reported it); f.mu is held.
func (f *Framework) adopt(st mesospb.TaskStatus) *taskState {
	t, attempt := f.lookup(st.TaskID.Value)
	if t == nil || t.done() || attempt < t.attempt {
		return nil
	}
	if t.id != "" && !isTerminal(t.state) {
		return nil // it runs another attempt: leave that one be
	}
	for i, p := range f.pending {
		if p == t {
			f.pending = append(f.pending[:i], f.pending[i+1:]...)
			break
		}
	}
	t.attempt, t.id, t.state, t.launched = attempt, st.TaskID.Value, mesospb.TASK_STAGING, f.now()
	if st.AgentID != nil {
		t.agent = st.AgentID.Value
	}
	f.byID[t.id] = t
	f.adopted++
	agent := "-"
	if t.agent != "" {
		agent = t.agent
	}
	f.record("launch %s %s %s %d", t.id, agent, hostField(f.agents[t.agent]), t.launched.UnixNano())
	f.logLaunch(t)
	return t
}

// checkDoneLocked closes Done when every task is done; f.mu is held.
func (f *Framework) checkDoneLocked() {
	if !f.closed && f.finished+f.failed == len(f.tasks) {
		f.closed = true
		close(f.done)
	}
}

func hostField(h string) string {
	if h == "" || strings.ContainsAny(h, " \t\n") {
		return "-"
	}
	return h
}

func (f *Framework) runningLocked() int {
	n := 0
	for _, t := range f.tasks {
		// TaskState's zero value is TASK_STARTING: look at launched tasks only.
		if t.id != "" && (t.state == mesospb.TASK_RUNNING || t.state == mesospb.TASK_STARTING) {
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
		switch {
		case t.state == mesospb.TASK_FINISHED:
			a.finished++
		case isTerminal(t.state):
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

// imageContainer is the ContainerInfo that runs a task in image; nil for
// none.
func imageContainer(image string) *mesospb.ContainerInfo {
	if image == "" {
		return nil
	}
	return &mesospb.ContainerInfo{
		Type: mesospb.ContainerInfo_MESOS.Enum(),
		Mesos: &mesospb.ContainerInfo_MesosInfo{Image: &mesospb.Image{
			Type:   mesospb.Image_DOCKER.Enum(),
			Docker: &mesospb.Image_Docker{Name: image},
		}},
	}
}

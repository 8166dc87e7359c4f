package batch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/zookeeper"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/scheduler"
)

// PayloadKind marks the election payload of a batch instance
// (InstancePayload), so that Options.Validate tells it from anything else
// under the path, such as a Mesos MasterInfo when -zk names the masters'
// path by mistake: both elections then skip each other's znodes.
const PayloadKind = "apron-batch"

// Instance is the election payload of a batch instance: enough for an
// operator, or the standby's log line, to find the leader.
type Instance struct {
	Kind     string    `json:"kind"`
	Hostname string    `json:"hostname"`
	PID      int       `json:"pid"`
	Name     string    `json:"framework_name"`
	Started  time.Time `json:"started"`
}

func (i Instance) String() string { return fmt.Sprintf("%s pid %d", i.Hostname, i.PID) }

// InstancePayload returns this process's payload.
func InstancePayload(frameworkName string, now time.Time) []byte {
	h, _ := os.Hostname()
	b, _ := json.Marshal(Instance{Kind: PayloadKind, Hostname: h, PID: os.Getpid(), Name: frameworkName, Started: now.UTC()})
	return b
}

// ValidatePayload is the election's zookeeper.Options.Validate: only
// batch instances take part.
func ValidatePayload(data []byte) error {
	var i Instance
	if err := json.Unmarshal(data, &i); err != nil {
		return fmt.Errorf("not a batch instance: %w", err)
	}
	if i.Kind != PayloadKind {
		return fmt.Errorf("not a batch instance: kind %q", i.Kind)
	}
	return nil
}

// JobFingerprint identifies a job by its tasks (names, commands,
// resources, attempts).
func JobFingerprint(tasks []Task) string {
	h := sha256.New()
	for _, t := range tasks {
		fmt.Fprintf(h, "%s\x00%s\x00%g\x00%g\x00%d\x00", t.Name, t.Command, t.CPUs, t.Mem, t.MaxAttempts)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// HAConfig configures RunHA.
type HAConfig struct {
	// URL is the election's path; the job's state lives under it too.
	URL zookeeper.URL
	// SessionTimeout is the ZooKeeper session timeout: a dead leader is
	// replaced after about that long.
	SessionTimeout time.Duration
	Tasks          []Task
	// Info is the framework to subscribe as, without an ID (RunHA sets the
	// stored one). Its FailoverTimeout must be positive: it is what keeps
	// the tasks running while the standby takes over.
	Info mesospb.FrameworkInfo
	// NewDriver makes the driver of one term.
	NewDriver func(s scheduler.Scheduler, info mesospb.FrameworkInfo) (*scheduler.Driver, error)
	// Out gets progress; Events, when set, is the event log (SetEvents).
	Out    io.Writer
	Events io.Writer
	Logger *slog.Logger
	Clock  clock.Clock
	// Payload is this instance's election payload (default
	// InstancePayload); it must pass ValidatePayload.
	Payload []byte
}

// ErrFrameworkRemoved: the framework named in ZooKeeper is one the master
// refuses: it was torn down, or its failover timeout passed.
var ErrFrameworkRemoved = errors.New("batch: the master refuses the framework stored in ZooKeeper")

// ErrOtherJob: the path holds the state of another job.
var ErrOtherJob = errors.New("batch: the ZooKeeper path holds another job")

// RunHA runs the job as one of several instances campaigning on
// cfg.URL (see the package documentation, "High availability"). It
// returns when the job is over (0: every task finished, 1: some failed for
// good), ctx is done (2), or on an error that taking over again would not
// cure (ErrFrameworkRemoved, ErrOtherJob: 1 or 2).
func RunHA(ctx context.Context, cfg HAConfig) (int, error) {
	switch {
	case cfg.Info.GetFailoverTimeout() <= 0:
		return 2, errors.New("batch: a highly available job needs a failover timeout")
	case len(cfg.Tasks) > MaxZKTasks:
		return 2, fmt.Errorf("batch: a highly available job keeps its journal in ZooKeeper, which holds at most %d tasks (%d given)", MaxZKTasks, len(cfg.Tasks))
	case cfg.NewDriver == nil || cfg.Out == nil:
		return 2, errors.New("batch: HAConfig needs NewDriver and Out")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Payload == nil {
		cfg.Payload = InstancePayload(cfg.Info.Name, cfg.Clock.Now())
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if err := ValidatePayload(cfg.Payload); err != nil {
		return 2, err
	}
	out := cfg.Out

	store, err := dialStore(cfg.URL, cfg.SessionTimeout, cfg.Clock, out)
	if err != nil {
		return 2, err
	}
	defer store.close()
	if err := store.waitConnected(ctx); err != nil {
		return 2, fmt.Errorf("waiting for ZooKeeper at %s: %w", cfg.URL, err)
	}
	contender, err := zookeeper.NewContender(cfg.URL, zookeeper.Options{
		SessionTimeout: cfg.SessionTimeout, Validate: ValidatePayload, Logger: cfg.Logger, Clock: cfg.Clock,
	})
	if err != nil {
		return 2, err
	}
	// Closing resigns: a standby takes over at once rather than after the
	// session timeout, whether the job is over or this instance was
	// interrupted.
	defer contender.Close()

	h := &haRun{cfg: cfg, store: store, job: JobFingerprint(cfg.Tasks)}
	for {
		if ms, err := store.members(); err == nil && len(ms) > 0 && !bytes.Equal(ms[0], cfg.Payload) {
			var leader Instance
			_ = json.Unmarshal(ms[0], &leader)
			fmt.Fprintf(out, "standing by: %s leads the job at %s\n", leader, cfg.URL)
		}
		term, err := contender.Campaign(ctx, cfg.Payload)
		if err != nil {
			if ctx.Err() != nil {
				return 2, fmt.Errorf("interrupted while standing by: %w", context.Cause(ctx))
			}
			return 1, err
		}
		fmt.Fprintf(out, "leading the job at %s\n", cfg.URL)
		code, over, err := h.lead(ctx, term)
		if over {
			return code, err
		}
		fmt.Fprintf(out, "lost the leadership (%v): stopped talking to the master; campaigning again\n", term.Err())
	}
}

// haRun is RunHA's state across terms.
type haRun struct {
	cfg   HAConfig
	store *zkStore
	job   string
}

// lead runs one term: load the job's state, run the framework until the
// job is over (over), the term ends (not over), or ctx is done (over).
func (h *haRun) lead(ctx context.Context, term *election.Term) (code int, over bool, err error) {
	out, s := h.cfg.Out, h.store
	tctx, cancelTerm := term.Context(ctx)
	defer cancelTerm()
	// lost tells how a failed ZooKeeper operation ended the term.
	lost := func(err error) (int, bool, error) {
		if ctx.Err() != nil {
			return 2, true, fmt.Errorf("job not done: %w", context.Cause(ctx))
		}
		if tctx.Err() != nil {
			return 0, false, nil
		}
		return 1, true, err
	}

	if err := s.ensure(tctx, s.child(JournalZnode)); err != nil {
		return lost(err)
	}
	st, version, err := s.load(tctx)
	if err != nil {
		return lost(err)
	}
	if st.Job != "" && st.Job != h.job {
		return 2, true, fmt.Errorf("%w: %s holds job %s of %d tasks (framework %s), these flags make job %s of %d tasks: use another path, or the same job flags",
			ErrOtherJob, h.cfg.URL, st.Job, st.Tasks, st.FrameworkID, h.job, len(h.cfg.Tasks))
	}
	if st.Done {
		fmt.Fprintf(out, "the job at %s is over already (framework %s, %s): nothing to do\n", h.cfg.URL, st.FrameworkID, map[bool]string{true: "every task finished", false: "some tasks failed for good"}[st.Succeeded])
		if !st.Succeeded {
			return 1, true, errors.New("some tasks failed for good")
		}
		return 0, true, nil
	}

	fw := New(h.cfg.Tasks, out)
	if h.cfg.Events != nil {
		fw.SetEvents(h.cfg.Events)
	}
	info := h.cfg.Info
	info.ID = nil
	if st.FrameworkID != "" {
		journal, n, err := s.readJournal(tctx)
		if err != nil {
			return lost(err)
		}
		if err := fw.Restore(bytes.NewReader(journal)); err != nil {
			return 1, true, fmt.Errorf("reading the journal in ZooKeeper at %s: %w", h.cfg.URL, err)
		}
		info.ID = &mesospb.FrameworkID{Value: st.FrameworkID}
		fmt.Fprintf(out, "resuming framework %s from the journal in ZooKeeper (%d records)\n", st.FrameworkID, n)
	}

	// The driver runs until the term ends (at once: its successor may
	// have subscribed already), ctx is done, or the ID or a journal record
	// could not be stored.
	dctx, cancelDriver := context.WithCancel(tctx)
	defer cancelDriver()
	// Set by the driver's goroutine (in callbacks), read once Run has
	// returned.
	var saveErr, journalErr error
	fw.SetJournal(zkJournal{s: s, ctx: tctx, fail: func(err error) {
		// The update being recorded must not be acknowledged: the
		// driver's context is cancelled before Write returns.
		if journalErr == nil {
			journalErr = err
		}
		cancelDriver()
	}})
	registered := make(chan struct{})
	fw.OnRegistered(func(id string) {
		fmt.Fprintf(out, "framework-id: %s\n", id)
		defer func() {
			select {
			case <-registered:
			default:
				close(registered)
			}
		}()
		if st.FrameworkID == id {
			return
		}
		// Stored before anything is launched: a successor must find the
		// framework whose tasks run.
		next := JobState{FrameworkID: id, Job: h.job, Tasks: len(h.cfg.Tasks)}
		v, err := s.save(tctx, next, version)
		if err != nil {
			saveErr = fmt.Errorf("storing the framework ID in ZooKeeper at %s: %w", h.cfg.URL, err)
			cancelDriver()
			return
		}
		st, version = next, v
	})
	d, err := h.cfg.NewDriver(fw, info)
	if err != nil {
		return 2, true, err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(dctx) }()

	select {
	case <-fw.Done():
	case err := <-runErr:
		switch {
		case ctx.Err() != nil:
			fmt.Fprintf(out, "\nleaving; the master keeps the framework for %v, and a standby takes it over\n",
				time.Duration(info.GetFailoverTimeout()*float64(time.Second)))
			fw.Summary(out)
			return 2, true, fmt.Errorf("job not done: %w", context.Cause(ctx))
		case tctx.Err() != nil:
			return 0, false, nil
		case saveErr != nil:
			return 1, true, saveErr
		case journalErr != nil:
			fw.Summary(out)
			return 1, true, fmt.Errorf("writing the journal in ZooKeeper at %s: %w", h.cfg.URL, journalErr)
		case errors.Is(err, scheduler.ErrAborted) && info.ID != nil:
			return 1, true, fmt.Errorf("%w: framework %s, stored at %s: %v. It was torn down, or its failover timeout passed: its tasks are gone. Delete %s (zkCli.sh deleteall %s) to run the job again as a new framework",
				ErrFrameworkRemoved, info.ID.Value, s.child(FrameworkZnode), err, s.child(FrameworkZnode), h.cfg.URL.Path)
		default:
			fw.Summary(out)
			return 1, true, fmt.Errorf("the framework stopped before the job ended: %w", err)
		}
	}

	// The job is over. Say so in ZooKeeper first: a standby that takes
	// over from here on must not run it again; then tear the framework
	// down.
	done := st
	done.Done, done.Succeeded = true, fw.Succeeded()
	if _, err := s.save(tctx, done, version); err != nil {
		cancelDriver()
		<-runErr
		return lost(fmt.Errorf("marking the job done in ZooKeeper at %s: %w", h.cfg.URL, err))
	}
	// The journal may have said the job was over (its leader died before
	// marking it): the driver tears down only once subscribed.
	select {
	case <-registered:
		_ = d.Stop(false)
	case <-runErr:
		runErr <- nil
	case <-tctx.Done():
	}
	cancelDriver()
	<-runErr
	if err := s.clearJournal(tctx); err != nil {
		fmt.Fprintf(out, "cleaning the journal up in ZooKeeper: %v\n", err)
	}
	fmt.Fprintln(out)
	fw.Summary(out)
	if !done.Succeeded {
		return 1, true, errors.New("some tasks failed for good")
	}
	return 0, true, nil
}

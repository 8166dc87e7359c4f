package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"sync"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/scheduler"
)

// ErrNotRunning: the service is not running (before Run, or after it
// returned), so it cannot answer.
var ErrNotRunning = errors.New("service: not running")

// Config configures a Service.
type Config struct {
	Spec  *Spec
	Store Store // required: where the state lives across restarts
	// Logger (default: discard).
	Logger *slog.Logger
	// Clock times Tick (default: the real clock).
	Clock clock.Clock
	// NewID returns fresh unique IDs (default: 16 random hex digits).
	NewID func() string
	// TickInterval is how often the core is told the time (default 1 s).
	TickInterval time.Duration
	// DeclineFor and IdleDeclineFor are the refuse filters of declined
	// offers, with and without work to do (CoreConfig's).
	DeclineFor, IdleDeclineFor time.Duration
	// FailoverTimeout is how long the master keeps the service's tasks
	// running while no scheduler is connected (default one week).
	FailoverTimeout time.Duration
	// Decommission, when set, runs before a pod removed by a scale down is
	// killed, while it still runs (if it was running), so the operator
	// can deregister it from its peers (etcd's `member remove`). It runs
	// on a goroutine of its own, not the service's loop (it may call the
	// Service's methods); an error is logged and the hook run again
	// TickInterval later; the pod is killed and its resources freed only
	// once it returns nil. It may run more than once for a pod (a
	// scheduler restarted before recording its success runs it again), so
	// it must be idempotent. Uninstall runs no hook.
	Decommission func(ctx context.Context, pod PodStatus) error
}

// Service runs a Spec on a cluster: it is the scheduler.Scheduler the
// driver calls, the goroutine that owns the Core, and the operator's Go
// API (the HTTP API calls the same methods). Build it with New, start it
// with Run.
type Service struct {
	cfg   Config
	log   *slog.Logger
	state *State
	ver   int64

	mu    sync.Mutex
	queue []func(*Core)
	wake  chan struct{}
	// busy: a Run is under way; live: its loop takes commands.
	busy, live bool
	// elect is set while RunElected runs: a Service not live then
	// stands by, and says who leads.
	elect *electing
}

// refusedSpec says that a spec refused at start changed nothing.
func refusedSpec(err error) error {
	return fmt.Errorf("%w (refused before anything ran: the deployed service and its stored state are unchanged)", err)
}

// New loads the service's state from cfg.Store and returns the service,
// not yet running.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Spec == nil || cfg.Store == nil {
		return nil, errors.New("service: Config.Spec and Config.Store are required")
	}
	if err := cfg.Spec.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = time.Second
	}
	if cfg.FailoverTimeout <= 0 {
		cfg.FailoverTimeout = 7 * 24 * time.Hour
	}
	data, ver, err := cfg.Store.Load(ctx)
	if err != nil {
		return nil, err
	}
	st, err := UnmarshalState(data)
	if err != nil {
		return nil, err
	}
	if err := st.CheckSpec(cfg.Spec); err != nil {
		return nil, refusedSpec(err)
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", cfg.Spec.Name), state: st, ver: ver, wake: make(chan struct{}, 1)}, nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// FrameworkInfo is how the service registers: its name, role and
// principal, its framework ID once it has one (so a restarted scheduler
// takes its tasks over), checkpointing, and a failover timeout.
func (s *Service) FrameworkInfo() mesospb.FrameworkInfo {
	s.mu.Lock()
	spec, frameworkID := s.cfg.Spec, s.state.FrameworkID
	s.mu.Unlock()
	u := spec.User
	if u == "" {
		if cur, err := user.Current(); err == nil {
			u = cur.Username
		}
	}
	info := mesospb.FrameworkInfo{
		User:            u,
		Name:            spec.Name,
		Role:            ptr(spec.Role),
		Principal:       ptr(spec.Principal),
		Checkpoint:      ptr(true),
		FailoverTimeout: ptr(s.cfg.FailoverTimeout.Seconds()),
		Capabilities:    []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_RESERVATION_REFINEMENT.Enum()}},
	}
	if frameworkID != "" {
		info.ID = &mesospb.FrameworkID{Value: frameworkID}
	}
	return info
}

// Run registers the service with a master through a scheduler.Driver
// built with opts (WithMaster or WithMasterURL...) and runs it until ctx
// ends, an uninstall finishes (the framework is then torn down and Run
// returns nil), or the state can no longer be saved (ErrConflict: another
// instance took over). It starts from the state in the store, and refuses
// (ErrSpecChange) a spec the stored one cannot move to, changing nothing.
// A Service runs once at a time; Run may be called again after it
// returns. Several instances of one service use RunElected instead.
func (s *Service) Run(ctx context.Context, opts ...scheduler.Option) error {
	return s.run(ctx, false, opts)
}

// claimAttempts bounds the retries of a takeover's first save, each
// after another instance's write.
const claimAttempts = 5

// load reads the state from the store and checks the spec against it;
// with claim, it saves it back at once (a new version), so that any
// write the instance that led before still has in flight fails with
// ErrConflict rather than overwrite what this one decides.
func (s *Service) load(ctx context.Context, spec *Spec, claim bool) error {
	for attempt := 1; ; attempt++ {
		data, ver, err := s.cfg.Store.Load(ctx)
		if err != nil {
			return err
		}
		st, err := UnmarshalState(data)
		if err != nil {
			return err
		}
		if err := st.CheckSpec(spec); err != nil {
			return refusedSpec(err)
		}
		if claim {
			b, err := st.Marshal()
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			ver, err = s.cfg.Store.Save(ctx, b, ver)
			if errors.Is(err, ErrConflict) && attempt < claimAttempts {
				s.log.Warn("the state changed while taking over; reading it again", "err", err)
				continue
			}
			if err != nil {
				return fmt.Errorf("service: taking the state over: %w", err)
			}
		}
		s.mu.Lock()
		s.state, s.ver = st, ver
		s.mu.Unlock()
		return nil
	}
}

func (s *Service) run(ctx context.Context, claim bool, opts []scheduler.Option) error {
	s.mu.Lock()
	if s.busy || (!claim && s.elect != nil) {
		s.mu.Unlock()
		return errors.New("service: already running")
	}
	s.busy = true
	spec := s.cfg.Spec
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy, s.live = false, false
		s.queue = nil
		s.mu.Unlock()
	}()
	if err := s.load(ctx, spec, claim); err != nil {
		return err
	}
	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	core, err := NewCore(CoreConfig{Spec: spec, State: state, NewID: s.cfg.NewID, DeclineFor: s.cfg.DeclineFor, IdleDeclineFor: s.cfg.IdleDeclineFor,
		DecommissionHook: s.cfg.Decommission != nil})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.live = true
	s.mu.Unlock()

	d, err := scheduler.NewDriver(s, s.FrameworkInfo(), append([]scheduler.Option{scheduler.WithLogger(s.log)}, opts...)...)
	if err != nil {
		return err
	}
	var hooks sync.WaitGroup
	defer hooks.Wait() // after cancel: hooks end with the context
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	driverDone := make(chan error, 1)
	go func() { driverDone <- d.Run(ctx) }()

	ticker := s.cfg.Clock.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	core.Tick(s.cfg.Clock.Now())
	var loopErr error
	for loopErr == nil {
		if err := s.flush(ctx, core, d, &hooks); err != nil {
			loopErr = err
			break
		}
		if core.Done() {
			s.log.Info("uninstalled; tearing the framework down")
			_ = d.Stop(false)
			<-driverDone
			return nil
		}
		select {
		case <-ctx.Done():
			loopErr = ctx.Err()
		case err := <-driverDone:
			return err
		case <-ticker.C():
			core.Tick(s.cfg.Clock.Now())
		case <-s.wake:
			s.mu.Lock()
			q := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, f := range q {
				f(core)
			}
		}
	}
	cancel()
	<-driverDone
	if errors.Is(loopErr, context.Canceled) {
		return nil
	}
	return loopErr
}

// flush stores the core's new state, then sends its calls: the Ready
// ordering rule. A failed save ends Run; the next Run starts from the
// last saved state. Once ctx ends (for RunElected, the term) nothing is
// stored or sent any more, whatever the core decided.
func (s *Service) flush(ctx context.Context, core *Core, d *scheduler.Driver, hooks *sync.WaitGroup) error {
	r := core.Ready()
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.State != nil {
		data, err := r.State.Marshal()
		if err != nil {
			return err
		}
		ver, err := s.cfg.Store.Save(ctx, data, s.ver)
		if err != nil {
			return fmt.Errorf("service: saving state: %w", err)
		}
		s.mu.Lock()
		s.ver, s.state = ver, r.State
		s.mu.Unlock()
	}
	for _, call := range r.Calls {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := d.Send(ctx, call); err != nil {
			// Lost calls are recovered from: offers come back, kills
			// are repeated by reconciliation's answers.
			s.log.Debug("call not sent", "call", call.GetType().String(), "err", err)
		}
	}
	for _, pod := range r.Hooks {
		hooks.Add(1)
		go func() {
			defer hooks.Done()
			s.runHook(ctx, pod)
		}()
	}
	return nil
}

// runHook runs the decommission hook of a pod and reports it to the core,
// a failure only TickInterval later, so retries are paced.
func (s *Service) runHook(ctx context.Context, pod PodStatus) {
	err := s.cfg.Decommission(ctx, pod)
	if err != nil {
		s.log.Warn("decommission hook failed; retrying", "pod", pod.Name, "err", err)
		t := s.cfg.Clock.NewTimer(s.cfg.TickInterval)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	} else {
		s.log.Info("decommission hook done", "pod", pod.Name)
	}
	s.enqueue(func(c *Core) { c.HookDone(pod.Name, err) })
}

// enqueue hands f to the loop, reporting false when it is not running.
func (s *Service) enqueue(f func(*Core)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.busy {
		return false
	}
	s.queue = append(s.queue, f)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// do runs f on the loop and waits for it.
func (s *Service) do(ctx context.Context, f func(*Core) error) error {
	done := make(chan error, 1)
	s.mu.Lock()
	live, elect := s.live, s.elect
	s.mu.Unlock()
	if !live && elect != nil {
		return elect.notLeader()
	}
	if !s.enqueue(func(c *Core) { done <- f(c) }) {
		return ErrNotRunning
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Plans returns every plan's status.
func (s *Service) Plans(ctx context.Context) (out []PlanStatus, err error) {
	err = s.do(ctx, func(c *Core) error { out = c.Plans(); return nil })
	return out, err
}

// Plan returns one plan's status.
func (s *Service) Plan(ctx context.Context, name string) (out PlanStatus, err error) {
	err = s.do(ctx, func(c *Core) error { out, err = c.Plan(name); return err })
	return out, err
}

// Pods returns every pod's status.
func (s *Service) Pods(ctx context.Context) (out []PodStatus, err error) {
	err = s.do(ctx, func(c *Core) error { out = c.Pods(); return nil })
	return out, err
}

// Pod returns one pod's status.
func (s *Service) Pod(ctx context.Context, name string) (out PodStatus, err error) {
	err = s.do(ctx, func(c *Core) error { out, err = c.Pod(name); return err })
	return out, err
}

// PausePlan pauses a plan (Core.PausePlan).
func (s *Service) PausePlan(ctx context.Context, name string) error {
	return s.do(ctx, func(c *Core) error { return c.PausePlan(name) })
}

// ResumePlan resumes a plan.
func (s *Service) ResumePlan(ctx context.Context, name string) error {
	return s.do(ctx, func(c *Core) error { return c.ResumePlan(name) })
}

// RestartPod restarts a pod in place (Core.RestartPod).
func (s *Service) RestartPod(ctx context.Context, name string) error {
	return s.do(ctx, func(c *Core) error { return c.RestartPod(name) })
}

// ReplacePod moves a pod to a new agent with new volumes
// (Core.ReplacePod).
func (s *Service) ReplacePod(ctx context.Context, name string) error {
	return s.do(ctx, func(c *Core) error { return c.ReplacePod(name) })
}

// UpdateSpec rolls out a new spec (Core.UpdateSpec).
func (s *Service) UpdateSpec(ctx context.Context, spec *Spec) error {
	return s.do(ctx, func(c *Core) error {
		if err := c.UpdateSpec(spec); err != nil {
			return err
		}
		s.mu.Lock()
		s.cfg.Spec = spec // a later Run starts from it
		s.mu.Unlock()
		return nil
	})
}

// Uninstall starts the uninstall; Run returns once it is done.
func (s *Service) Uninstall(ctx context.Context) error {
	return s.do(ctx, func(c *Core) error { c.Uninstall(); return nil })
}

// The scheduler.Scheduler callbacks queue their input for the loop and
// return at once, so the driver never waits on the core.

var _ scheduler.Scheduler = (*Service)(nil)

// Registered implements scheduler.Scheduler.
func (s *Service) Registered(_ context.Context, _ *scheduler.Driver, id mesospb.FrameworkID, _ *mesospb.MasterInfo) {
	s.enqueue(func(c *Core) { c.Subscribed(id.Value) })
}

// Reregistered implements scheduler.Scheduler.
func (s *Service) Reregistered(_ context.Context, d *scheduler.Driver, _ *mesospb.MasterInfo) {
	id := d.FrameworkID()
	s.enqueue(func(c *Core) { c.Subscribed(id.Value) })
}

// Disconnected implements scheduler.Scheduler; the core holds no offers,
// so there is nothing to forget.
func (s *Service) Disconnected(context.Context, *scheduler.Driver) {}

// ResourceOffers implements scheduler.Scheduler.
func (s *Service) ResourceOffers(_ context.Context, _ *scheduler.Driver, offers []mesospb.Offer) {
	s.enqueue(func(c *Core) { c.Offers(offers) })
}

// OfferRescinded implements scheduler.Scheduler.
func (s *Service) OfferRescinded(_ context.Context, _ *scheduler.Driver, id mesospb.OfferID) {
	s.enqueue(func(c *Core) { c.Rescinded(id) })
}

// StatusUpdate implements scheduler.Scheduler.
func (s *Service) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	s.enqueue(func(c *Core) { c.Update(st) })
}

// FrameworkMessage implements scheduler.Scheduler; the SDK sends none.
func (s *Service) FrameworkMessage(context.Context, *scheduler.Driver, mesospb.AgentID, mesospb.ExecutorID, []byte) {
}

// AgentLost implements scheduler.Scheduler.
func (s *Service) AgentLost(_ context.Context, _ *scheduler.Driver, id mesospb.AgentID) {
	s.enqueue(func(c *Core) { c.AgentLost(id.Value) })
}

// ExecutorLost implements scheduler.Scheduler; the tasks' own updates
// say what happened to them.
func (s *Service) ExecutorLost(context.Context, *scheduler.Driver, mesospb.AgentID, mesospb.ExecutorID, int) {
}

// Error implements scheduler.Scheduler: the framework was removed.
func (s *Service) Error(_ context.Context, _ *scheduler.Driver, message string) {
	s.log.Error("master removed the framework", "message", message)
}

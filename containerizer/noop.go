package containerizer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apronhq/apron/internal/clock"
)

// NoopRunTimeEnv, when a container's Env sets it to a duration ("250ms",
// "2s"), is how long that container of a [Noop] containerizer runs,
// instead of NoopOptions.RunTime. A load driver sets it in a task's
// CommandInfo.environment to give tasks a run time without a process.
const NoopRunTimeEnv = "APRON_NOOP_RUN_TIME"

// NoopOptions configure a no-op containerizer.
type NoopOptions struct {
	// RunTime is how long each container runs before it ends by itself
	// with exit status 0; 0 ends it during Launch. A container whose Env
	// sets NoopRunTimeEnv runs that long instead.
	RunTime time.Duration
	// Clock times the run and stamps Usage samples; nil is the system
	// clock.
	Clock clock.Clock
	// Logger receives the containerizer's logs; nil discards them.
	Logger *slog.Logger
}

// Noop is a containerizer that runs nothing. Launch validates the Config
// and records the container, which then "runs" for its run time (see
// NoopOptions.RunTime) and ends with exit status 0; Signal ends it as if
// its process had died of the signal, Destroy as if it had been killed.
// Usage reports zeros. It touches no file: the sandbox is neither created
// nor written (the agent makes sandboxes itself), and volumes are recorded
// (see Volumes), not linked.
//
// It exists so that a load driver measures the agent, the master and the
// network, not fork/exec: with it an agent turns a task into a few status
// updates at memory speed.
//
// It is not a real containerizer and does not pass the real-process cases
// of the conformance suite (containerizertest): nothing is executed, so a
// command's exit code, output, environment, working directory, children
// and user have no effect and no trace; a launch never fails for a missing
// executable; a container ignoring SIGTERM cannot be expressed; Usage shows
// no process; and containers do not outlive the containerizer, so Recover
// finds nothing after a restart. What it keeps of the contract is the
// lifecycle: Config validation, duplicate IDs, Wait by any number of
// callers before and after the end and honouring ctx, Destroy's
// forgetting and its concurrency rule, sorted Containers, Close.
type Noop struct {
	opts   NoopOptions
	clock  clock.Clock
	log    *slog.Logger
	closed chan struct{}

	mu         sync.Mutex
	containers map[string]*noopContainer
	isClosed   bool
}

type noopContainer struct {
	limits  Limits
	volumes []Volume
	ended   chan struct{} // closed once term is set
	term    Termination
	stop    chan struct{} // closed (by halt) to end the run timer's goroutine
	halted  bool
}

var _ Containerizer = (*Noop)(nil)

// NewNoop returns a no-op containerizer.
func NewNoop(opts NoopOptions) *Noop {
	n := &Noop{
		opts:       opts,
		clock:      opts.Clock,
		log:        opts.Logger,
		closed:     make(chan struct{}),
		containers: map[string]*noopContainer{},
	}
	if n.clock == nil {
		n.clock = clock.Real()
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	return n
}

// Launch records the container; it ends at once when its run time is 0.
func (n *Noop) Launch(ctx context.Context, cfg Config) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	run := n.opts.RunTime
	if v, ok := lookupEnv(cfg.Env, NoopRunTimeEnv); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("container %q: %s=%q is not a non-negative duration: %w", cfg.ID, NoopRunTimeEnv, v, ErrInvalidConfig)
		}
		run = d
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed {
		return fmt.Errorf("container %q: %w", cfg.ID, ErrClosed)
	}
	if _, ok := n.containers[cfg.ID]; ok {
		return fmt.Errorf("container %q: %w", cfg.ID, ErrContainerExists)
	}
	c := &noopContainer{limits: cfg.Limits, volumes: slices.Clone(cfg.Volumes), ended: make(chan struct{})}
	n.containers[cfg.ID] = c
	if run <= 0 {
		c.end(Termination{ExitCode: 0, Message: "exited with status 0 (no-op container)"})
		return nil
	}
	c.stop = make(chan struct{})
	t := n.clock.NewTimer(run)
	go func() {
		defer t.Stop()
		select {
		case <-t.C():
			n.mu.Lock()
			c.end(Termination{ExitCode: 0, Message: fmt.Sprintf("exited with status 0 after %v (no-op container)", run)})
			n.mu.Unlock()
		case <-c.stop:
		}
	}()
	return nil
}

// end sets the termination of a running container; n.mu is held.
func (c *noopContainer) end(t Termination) {
	select {
	case <-c.ended:
		return
	default:
	}
	c.term = t
	close(c.ended)
	c.halt()
}

// halt ends the run timer's goroutine, if any; n.mu is held.
func (c *noopContainer) halt() {
	if c.stop != nil && !c.halted {
		c.halted = true
		close(c.stop)
	}
}

func (n *Noop) get(id string) (*noopContainer, error) {
	if n.isClosed {
		return nil, fmt.Errorf("container %q: %w", id, ErrClosed)
	}
	c := n.containers[id]
	if c == nil {
		return nil, fmt.Errorf("container %q: %w", id, ErrUnknownContainer)
	}
	return c, nil
}

// Wait blocks until the container has ended (its run time passed, a
// signal or Destroy), ctx ends, or the containerizer is closed.
func (n *Noop) Wait(ctx context.Context, id string) (Termination, error) {
	n.mu.Lock()
	c, err := n.get(id)
	n.mu.Unlock()
	if err != nil {
		return Termination{}, err
	}
	select {
	case <-c.ended:
		return c.term, nil
	default:
	}
	select {
	case <-c.ended:
		return c.term, nil
	case <-ctx.Done():
		return Termination{}, ctx.Err()
	case <-n.closed:
		return Termination{}, fmt.Errorf("container %q: %w", id, ErrClosed)
	}
}

// Signal ends a running container as if its process had died of sig,
// except for signal 0 and those whose default action is to ignore them.
func (n *Noop) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.get(id)
	if err != nil {
		return err
	}
	if sig == 0 || ignoredByDefault(sig) {
		return nil
	}
	c.end(Termination{ExitCode: -1, Signal: sig, Message: fmt.Sprintf("killed by signal %d (%v) (no-op container)", int(sig), sig)})
	return nil
}

// ignoredByDefault reports whether a process that does not handle sig
// keeps running when it gets it.
func ignoredByDefault(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGCHLD, syscall.SIGURG, syscall.SIGWINCH, syscall.SIGCONT:
		return true
	}
	return false
}

// Destroy ends the container as killed with SIGKILL, if it still runs,
// and forgets it.
func (n *Noop) Destroy(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.get(id)
	if err != nil {
		return err
	}
	c.end(Termination{ExitCode: -1, Signal: syscall.SIGKILL, Reason: ReasonDestroyed, Message: "destroyed (no-op container)"})
	delete(n.containers, id)
	return nil
}

// Usage reports a sample of zeros, with the container's limits.
func (n *Noop) Usage(ctx context.Context, id string) (Usage, error) {
	if err := ctx.Err(); err != nil {
		return Usage{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.get(id)
	if err != nil {
		return Usage{}, err
	}
	return Usage{Timestamp: n.clock.Now(), Limits: c.limits}, nil
}

// Containers lists the containers not yet destroyed, sorted.
func (n *Noop) Containers(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed {
		return nil, ErrClosed
	}
	ids := make([]string, 0, len(n.containers))
	for id := range n.containers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Recover finds nothing: no-op containers do not outlive their
// containerizer.
func (n *Noop) Recover(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed {
		return nil, ErrClosed
	}
	return nil, nil
}

// Close stops the run timers and forgets every container; callers blocked
// in Wait get ErrClosed. It is idempotent.
func (n *Noop) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed {
		return nil
	}
	n.isClosed = true
	close(n.closed)
	for id, c := range n.containers {
		c.halt()
		delete(n.containers, id)
	}
	return nil
}

// lookupEnv returns the last value of key in env, as a process's getenv
// would see it.
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Volumes returns the volumes a container not yet destroyed was launched
// with, for tests of what an agent asks of its containerizer.
func (n *Noop) Volumes(id string) ([]Volume, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, ErrUnknownContainer)
	}
	return slices.Clone(c.volumes), nil
}

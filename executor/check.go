package executor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/checks"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/environ"
)

// CheckRunner runs the command of a task's COMMAND check or COMMAND health
// check (TaskInfo.check, TaskInfo.health_check) for the built-in
// executors: CommandConfig.Checks. Mesos runs such a command inside the
// task's container (the command executor enters the task's mount
// namespace; the default executor launches a nested container of the
// task's). The default, ContainerCheckRunner, runs it as a separate
// short-lived container of the task's containerizer, in the task's
// sandbox, with the task's user, environment, image and volumes; a
// containerizer that can run a command inside a running container (a
// nested container) plugs in here, using CheckCommand.TaskContainer.
type CheckRunner interface {
	// RunCheck runs c and returns how its command ended once it has
	// ended. When ctx ends first (the check's timeout, or the task
	// ending) it must stop the command and return ctx.Err() promptly.
	// An error wrapping ErrCheckUnavailable skips this check: the task is
	// not at fault (the containerizer is closing, say), as Mesos skips a
	// check whose nested container it could not launch. Any other error
	// is a failed check. It is called from several goroutines at once.
	RunCheck(ctx context.Context, c CheckCommand) (containerizer.Termination, error)
}

// CheckDialer is an optional capability of a CheckRunner, discovered by
// type assertion: it connects the HTTP and TCP checks of a task from
// inside the task's network, as Mesos runs curl and mesos-tcp-connect
// there. Without it the executor connects from its own network (the
// host's, which the process containerizer's tasks share).
type CheckDialer interface {
	// DialCheck connects to address ("127.0.0.1:port" or "[::1]:port")
	// as seen from the network of the task whose container is
	// taskContainer; network is "tcp".
	DialCheck(ctx context.Context, taskContainer, network, address string) (net.Conn, error)
}

// ErrCheckUnavailable marks a check a CheckRunner could not run for a
// reason that is not the task's: the check is skipped, neither a success
// nor a failure.
var ErrCheckUnavailable = errors.New("check unavailable")

// CheckCommand is one run of a check's command.
type CheckCommand struct {
	// TaskID is the checked task.
	TaskID mesospb.TaskID
	// TaskContainer is the ID of the task's container. A runner that can
	// run a command inside it runs Config.Command there, as Config.User
	// with Config.Env, in Config.Sandbox.
	TaskContainer string
	// Config is a container of its own that runs the check as the task
	// runs: an ID unique to this run (the task's container ID, ".check-"
	// and a number); the check's command; the task's sandbox, as working
	// directory (its stdout and stderr files get the command's output, as
	// Mesos's command executor writes a check's output to its own
	// stderr); the task's user unless the check's CommandInfo names one;
	// the task's environment with the check's CommandInfo.environment on
	// top; the task's image, hostname, volumes, and CPU and memory limits
	// (no disk quota: the task's container has the sandbox's).
	Config containerizer.Config
	// Env is the check's own variables (its CommandInfo.environment), as
	// KEY=VALUE: what a runner that enters the task's container adds to
	// the environment of the task's (Config.Env has them over the
	// task's).
	Env []string
}

// ContainerCheckRunner is the default CheckRunner: it runs each check's
// command in a container of Containerizer, nested in the task's when the
// containerizer is a containerizer.NestedLauncher (the process and Linux
// ones are), waits for it and destroys it.
type ContainerCheckRunner struct {
	Containerizer containerizer.Containerizer
}

// RunCheck runs the check's command inside the task's container (a
// nested container, as Mesos runs it) when the containerizer can start
// one, else as a container of its own made from c.Config; it waits for
// it to end and destroys it, at once when ctx ends first.
func (r ContainerCheckRunner) RunCheck(ctx context.Context, c CheckCommand) (containerizer.Termination, error) {
	if nl, ok := r.Containerizer.(containerizer.NestedLauncher); ok && strings.HasPrefix(c.Config.ID, c.TaskContainer+".") {
		return r.runNested(ctx, nl, c)
	}
	return r.finish(ctx, c.Config.ID, r.Containerizer.Launch(ctx, c.Config))
}

// runNested runs the check's command in a container nested in the
// task's: in its namespaces, root filesystem and cgroups. Its output is
// read and dropped (Mesos's command executor writes it to its own log).
func (r ContainerCheckRunner) runNested(ctx context.Context, nl containerizer.NestedLauncher, c CheckCommand) (containerizer.Termination, error) {
	stdio, err := nl.LaunchNested(ctx, containerizer.NestedConfig{
		ID:      c.Config.ID,
		Parent:  c.TaskContainer,
		Command: c.Config.Command,
		Env:     c.Env,
		User:    c.Config.User,
	})
	if err == nil {
		_ = stdio.Stdin.Close()
		for _, f := range []*os.File{stdio.Stdout, stdio.Stderr} {
			if f != nil {
				go func() { _, _ = io.Copy(io.Discard, f) }()
			}
		}
		defer stdio.Close()
	}
	if errors.Is(err, containerizer.ErrNotRunning) || errors.Is(err, containerizer.ErrUnknownContainer) {
		// The task's container is ending: the task is not at fault.
		err = fmt.Errorf("%w: %w", ErrCheckUnavailable, err)
	}
	return r.finish(ctx, c.Config.ID, err)
}

// finish waits for the check's container id, launched with launchErr,
// and destroys it.
func (r ContainerCheckRunner) finish(ctx context.Context, id string, launchErr error) (containerizer.Termination, error) {
	if err := launchErr; err != nil {
		if ctx.Err() != nil {
			return containerizer.Termination{}, ctx.Err()
		}
		if errors.Is(err, containerizer.ErrClosed) {
			return containerizer.Termination{}, fmt.Errorf("%w: %w", ErrCheckUnavailable, err)
		}
		return containerizer.Termination{}, err
	}
	term, err := r.Containerizer.Wait(ctx, id)
	// Destroy even when ctx has ended: the command must not outlive its
	// check.
	if derr := r.Containerizer.Destroy(context.WithoutCancel(ctx), id); derr != nil && !errors.Is(derr, containerizer.ErrUnknownContainer) && err == nil {
		err = derr
	}
	if ctx.Err() != nil {
		return containerizer.Termination{}, ctx.Err()
	}
	if errors.Is(err, containerizer.ErrClosed) {
		return containerizer.Termination{}, fmt.Errorf("%w: %w", ErrCheckUnavailable, err)
	}
	return term, err
}

// checkContainerID names the container of the n-th check command of the
// task whose container is taskCID.
func checkContainerID(taskCID string, n uint64) string {
	suffix := ".check-" + strconv.FormatUint(n, 10)
	if len(taskCID)+len(suffix) > containerizer.MaxIDLength {
		taskCID = taskCID[:containerizer.MaxIDLength-len(suffix)]
	}
	return taskCID + suffix
}

// checkSpec is a check or health check of a task, as Mesos's checker
// process takes either (a health check is turned into a CheckInfo).
type checkSpec struct {
	typ                      mesospb.CheckInfo_Type
	command                  *mesospb.CommandInfo
	port                     uint32
	path                     string
	scheme                   string // "http" or "https", HTTP only
	ipv6                     bool
	delay, interval, timeout time.Duration // timeout 0: none
}

// seconds turns a validated (non-negative) number of seconds into a
// Duration, saturating.
func seconds(s float64) time.Duration {
	if f := s * float64(time.Second); f < float64(1<<63-1) {
		return time.Duration(f)
	}
	return 1<<63 - 1
}

func checkSpecOf(c *mesospb.CheckInfo) checkSpec {
	s := checkSpec{
		typ:      c.GetType(),
		scheme:   "http",
		delay:    seconds(c.GetDelaySeconds()),
		interval: seconds(c.GetIntervalSeconds()),
		timeout:  seconds(c.GetTimeoutSeconds()),
	}
	switch s.typ {
	case mesospb.CheckInfo_COMMAND:
		s.command = &c.Command.Command
	case mesospb.CheckInfo_HTTP:
		s.port, s.path = c.HTTP.Port, c.HTTP.GetPath()
	case mesospb.CheckInfo_TCP:
		s.port = c.TCP.Port
	}
	return s
}

func healthSpecOf(h *mesospb.HealthCheck) checkSpec {
	s := checkSpec{
		scheme:   "http",
		delay:    seconds(h.GetDelaySeconds()),
		interval: seconds(h.GetIntervalSeconds()),
		timeout:  seconds(h.GetTimeoutSeconds()),
	}
	switch h.GetType() {
	case mesospb.HealthCheck_COMMAND:
		s.typ, s.command = mesospb.CheckInfo_COMMAND, h.Command
	case mesospb.HealthCheck_HTTP:
		s.typ, s.port, s.path = mesospb.CheckInfo_HTTP, h.HTTP.Port, h.HTTP.GetPath()
		if h.HTTP.Scheme != nil {
			s.scheme = h.HTTP.GetScheme()
		}
		s.ipv6 = h.HTTP.GetProtocol() == mesospb.NetworkInfo_IPv6
	case mesospb.HealthCheck_TCP:
		s.typ, s.port = mesospb.CheckInfo_TCP, h.TCP.Port
		s.ipv6 = h.TCP.GetProtocol() == mesospb.NetworkInfo_IPv6
	}
	return s
}

// emptyCheckStatus is the CheckStatusInfo of a check with no result yet
// (or whose last run failed), as Mesos sends it: the type and an empty
// message of that type.
func emptyCheckStatus(typ mesospb.CheckInfo_Type) *mesospb.CheckStatusInfo {
	st := &mesospb.CheckStatusInfo{Type: typ.Enum()}
	switch typ {
	case mesospb.CheckInfo_COMMAND:
		st.Command = &mesospb.CheckStatusInfo_Command{}
	case mesospb.CheckInfo_HTTP:
		st.HTTP = &mesospb.CheckStatusInfo_Http{}
	case mesospb.CheckInfo_TCP:
		st.TCP = &mesospb.CheckStatusInfo_Tcp{}
	}
	return st
}

// mesosDuration writes d as Mesos's stringify(Duration) does ("20secs").
func mesosDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0 && d >= time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "hrs"
	case d%time.Minute == 0 && d >= time.Minute:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "mins"
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'g', -1, 64) + "secs"
	default:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', -1, 64) + "ms"
	}
}

// prober performs one run of a check: the CheckStatusInfo it got, or an
// error (the check could not be performed: a failure; or
// ErrCheckUnavailable: skipped).
type prober func(ctx context.Context) (*mesospb.CheckStatusInfo, error)

// newProber builds the prober of spec for task t.
func (b *builtin) newProber(t *task, spec checkSpec) prober {
	switch spec.typ {
	case mesospb.CheckInfo_COMMAND:
		return func(ctx context.Context) (*mesospb.CheckStatusInfo, error) { return b.commandProbe(ctx, t, spec) }
	case mesospb.CheckInfo_HTTP:
		return func(ctx context.Context) (*mesospb.CheckStatusInfo, error) { return b.httpProbe(ctx, t, spec) }
	default:
		return func(ctx context.Context) (*mesospb.CheckStatusInfo, error) { return b.tcpProbe(ctx, t, spec) }
	}
}

func (b *builtin) commandProbe(ctx context.Context, t *task, spec checkSpec) (*mesospb.CheckStatusInfo, error) {
	cmd := spec.command
	cfg := t.cfg // the task's container
	cfg.ID = checkContainerID(t.cid, t.checkSeq.Add(1))
	// The sandbox's disk quota is the task container's to enforce: the
	// check's container, in the same sandbox, would be charged the
	// task's files.
	cfg.Limits.DiskBytes = 0
	if cmd.GetShell() {
		cfg.Command = containerizer.Command{Shell: true, Value: cmd.GetValue()}
	} else {
		cfg.Command = containerizer.Command{Value: cmd.GetValue(), Args: cmd.Arguments}
	}
	own, err := environ.Merge(nil, nil, cmd.Environment)
	if err != nil {
		return nil, err
	}
	env, err := environ.Merge(t.cfg.Env, nil, cmd.Environment)
	if err != nil {
		return nil, err
	}
	cfg.Env = env
	if u := cmd.GetUser(); u != "" {
		cfg.User = u
	}
	term, err := b.checks.RunCheck(ctx, CheckCommand{TaskID: t.info.TaskID, TaskContainer: t.cid, Config: cfg, Env: own})
	switch {
	case err != nil:
		return nil, err
	case term.Signal != 0:
		return nil, errors.New("Command terminated with signal " + signalName(term.Signal))
	case term.ExitCode < 0:
		return nil, errors.New("Command ended with an unknown status")
	}
	code := int32(term.ExitCode)
	return &mesospb.CheckStatusInfo{
		Type:    mesospb.CheckInfo_COMMAND.Enum(),
		Command: &mesospb.CheckStatusInfo_Command{ExitCode: &code},
	}, nil
}

// checkAddress is where an HTTP or TCP check connects: the loopback
// address, as Mesos's (127.0.0.1, or ::1), and the port.
func checkAddress(spec checkSpec) string {
	host := "127.0.0.1"
	if spec.ipv6 {
		host = "::1"
	}
	return net.JoinHostPort(host, strconv.FormatUint(uint64(spec.port), 10))
}

func (b *builtin) dial(ctx context.Context, t *task, address string) (net.Conn, error) {
	if cd, ok := b.checks.(CheckDialer); ok {
		return cd.DialCheck(ctx, t.cid, "tcp", address)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", address)
}

// httpProbe GETs scheme://127.0.0.1:port/path as Mesos's curl does (-L:
// following redirects; -k: not verifying certificates) and reports the
// final status code. A request that fails is an error.
func (b *builtin) httpProbe(ctx context.Context, t *task, spec checkSpec) (*mesospb.CheckStatusInfo, error) {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return b.dial(ctx, t, addr)
		},
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as curl -k
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	url := spec.scheme + "://" + checkAddress(spec) + spec.path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("reading the response of %s: %w", url, err)
	}
	code := uint32(resp.StatusCode)
	return &mesospb.CheckStatusInfo{
		Type: mesospb.CheckInfo_HTTP.Enum(),
		HTTP: &mesospb.CheckStatusInfo_Http{StatusCode: &code},
	}, nil
}

// tcpProbe connects to 127.0.0.1:port: whether it could is the result, as
// mesos-tcp-connect's exit status is.
func (b *builtin) tcpProbe(ctx context.Context, t *task, spec checkSpec) (*mesospb.CheckStatusInfo, error) {
	conn, err := b.dial(ctx, t, checkAddress(spec))
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if conn != nil {
		conn.Close()
	}
	ok := err == nil
	return &mesospb.CheckStatusInfo{
		Type: mesospb.CheckInfo_TCP.Enum(),
		TCP:  &mesospb.CheckStatusInfo_Tcp{Succeeded: &ok},
	}, nil
}

// checkPhase is what a check loop is doing, told to tests through
// builtin.checkHook.
type checkPhase int

const (
	phaseWaiting checkPhase = iota // its delay or interval timer is set
	phaseProbing                   // a run has started, its timeout timer set
)

// checkLoop runs a check as Mesos's checker process does: the first run
// after delay, each next run interval after the previous one ended; a
// run longer than timeout (when > 0) is stopped and fails. Each result is
// handed to report, on the loop's goroutine; skipped runs are not.
type checkLoop struct {
	spec   checkSpec
	probe  prober
	clk    clock.Clock
	report func(ctx context.Context, st *mesospb.CheckStatusInfo, err error)
	// gate, when set, blocks a run until it returns true: the default
	// executor pauses checks while disconnected from the agent.
	gate func(ctx context.Context) bool
	// paused, when set, tells whether to drop a result.
	paused func() bool
	hook   func(checkPhase)
}

func (l *checkLoop) run(ctx context.Context) {
	if !l.sleep(ctx, l.spec.delay) {
		return
	}
	for {
		if l.gate != nil && !l.gate(ctx) {
			return
		}
		st, err := l.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, ErrCheckUnavailable) && (l.paused == nil || !l.paused()) {
			l.report(ctx, st, err)
		}
		if !l.sleep(ctx, l.spec.interval) {
			return
		}
	}
}

// sleep waits d of the clock; false when ctx ended first.
func (l *checkLoop) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := l.clk.NewTimer(d)
	defer timer.Stop()
	l.hook(phaseWaiting)
	select {
	case <-timer.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// once runs the check once, within its timeout.
func (l *checkLoop) once(ctx context.Context) (*mesospb.CheckStatusInfo, error) {
	type result struct {
		st  *mesospb.CheckStatusInfo
		err error
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		st, err := l.probe(pctx)
		ch <- result{st, err}
	}()
	var timeout <-chan time.Time
	if l.spec.timeout > 0 {
		timer := l.clk.NewTimer(l.spec.timeout)
		defer timer.Stop()
		timeout = timer.C()
	}
	l.hook(phaseProbing)
	select {
	case r := <-ch:
		return r.st, r.err
	case <-timeout:
		cancel()
		<-ch
		what := "Command"
		switch l.spec.typ {
		case mesospb.CheckInfo_HTTP:
			what = "HTTP request"
		case mesospb.CheckInfo_TCP:
			what = "TCP connection"
		}
		return nil, fmt.Errorf("%s timed out after %s", what, mesosDuration(l.spec.timeout))
	case <-ctx.Done():
		cancel()
		<-ch
		return nil, ctx.Err()
	}
}

// startChecks starts t's check and health check, when it has them, on
// goroutines of the driver; they stop when t is killed or ends.
func (b *builtin) startChecks(d *Driver, t *task) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !t.checked || t.killing || t.terminal || t.stopChecks != nil ||
		t.info.Check == nil && t.info.HealthCheck == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stopChecks = cancel
	hook := func(health bool) func(checkPhase) {
		return func(p checkPhase) {
			if b.checkHook != nil {
				b.checkHook(t.info.TaskID.Value, health, p)
			}
		}
	}
	if c := t.info.Check; c != nil {
		spec := checkSpecOf(c)
		tracker := newCheckTracker(spec.typ)
		l := b.newCheckLoop(t, spec, hook(false), func(ctx context.Context, st *mesospb.CheckStatusInfo, err error) {
			if err != nil {
				b.log.Warn("check failed", "task_id", t.info.TaskID.Value, "type", spec.typ.String(), "err", err)
			}
			if st := tracker.observe(st, err); st != nil {
				b.sendDerived(ctx, d, t, func(u *mesospb.TaskStatus) {
					u.Reason = mesospb.TaskStatus_REASON_TASK_CHECK_STATUS_UPDATED.Enum()
					u.CheckStatus = st
				})
			}
		})
		d.Go(func(dctx context.Context) { runUntil(dctx, ctx, l.run) })
	}
	if h := t.info.HealthCheck; h != nil {
		spec := healthSpecOf(h)
		tracker := newHealthTracker(h, t.launchedAt)
		l := b.newCheckLoop(t, spec, hook(true), func(ctx context.Context, st *mesospb.CheckStatusInfo, err error) {
			ok := healthy(st, err)
			if !ok {
				b.log.Warn("health check failed", "task_id", t.info.TaskID.Value, "type", spec.typ.String(), "status", st.String(), "err", err)
			}
			report, kill := tracker.observe(b.clk.Now(), ok)
			if !report {
				return
			}
			sent := b.sendDerived(ctx, d, t, func(u *mesospb.TaskStatus) {
				u.Reason = mesospb.TaskStatus_REASON_TASK_HEALTH_CHECK_STATUS_UPDATED.Enum()
				u.Healthy = &ok
			})
			if sent && kill {
				b.log.Warn("killing a task that failed its health check", "task_id", t.info.TaskID.Value, "failures", tracker.failures)
				b.mu.Lock()
				t.killedByHealth = true
				if b.group {
					b.unhealthy = true
				}
				b.mu.Unlock()
				b.kill(d, t, nil, 0)
			}
		})
		d.Go(func(dctx context.Context) { runUntil(dctx, ctx, l.run) })
	}
}

// runUntil runs f with a context that ends when either a or b does.
func runUntil(a, b context.Context, f func(context.Context)) {
	ctx, cancel := context.WithCancel(a)
	defer cancel()
	stop := context.AfterFunc(b, cancel)
	defer stop()
	f(ctx)
}

func (b *builtin) newCheckLoop(t *task, spec checkSpec, hook func(checkPhase), report func(context.Context, *mesospb.CheckStatusInfo, error)) *checkLoop {
	l := &checkLoop{spec: spec, probe: b.newProber(t, spec), clk: b.clk, report: report, hook: hook}
	if b.group {
		l.gate = b.waitOnline
		l.paused = func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			select {
			case <-b.online:
				return false
			default:
				return true
			}
		}
	}
	return l
}

// waitOnline waits until the driver is subscribed; false when ctx ends
// first.
func (b *builtin) waitOnline(ctx context.Context) bool {
	b.mu.Lock()
	online := b.online
	b.mu.Unlock()
	select {
	case <-online:
		return true
	case <-ctx.Done():
		return false
	}
}

// sendDerived sends a check's or health check's update of t, made as
// Mesos's executors make them: the last update sent (its state, message,
// data, health, check status...) with a new UUID and time and what edit
// changes. It sends nothing, and returns false, once t is being killed or
// has ended, as Mesos's executors stop then.
func (b *builtin) sendDerived(ctx context.Context, d *Driver, t *task, edit func(*mesospb.TaskStatus)) bool {
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	b.mu.Lock()
	if t.killing || t.terminal || t.last == nil {
		b.mu.Unlock()
		return false
	}
	st := *proto.Clone(t.last).(*mesospb.TaskStatus)
	st.UUID, st.Timestamp = nil, nil
	edit(&st)
	last := st
	t.last = &last
	b.mu.Unlock()
	if err := d.SendStatusUpdate(ctx, st); err != nil {
		b.log.Warn("could not send a status update", "task_id", t.info.TaskID.Value, "reason", st.GetReason().String(), "err", err)
	}
	return true
}

// prepareReattachedChecks readies the checks of a task reattached after
// an agent restart: its container's config (for check commands), its
// last update (TASK_RUNNING, which the previous executor sent) and the
// start of its health check's grace period (now).
func (b *builtin) prepareReattachedChecks(t *task) {
	if checks.Task(&t.info) != nil {
		b.log.Warn("not checking a reattached task whose checks are invalid", "task_id", t.info.TaskID.Value)
		return
	}
	cfg, err := b.containerConfig(t)
	if err != nil {
		b.log.Warn("not checking a reattached task", "task_id", t.info.TaskID.Value, "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t.cfg = cfg
	t.checked = true
	t.launchedAt = b.clk.Now()
	st := &mesospb.TaskStatus{TaskID: t.info.TaskID, State: mesospb.TASK_RUNNING.Enum()}
	if c := t.info.Check; c != nil {
		st.CheckStatus = emptyCheckStatus(c.GetType())
	}
	t.last = st
}

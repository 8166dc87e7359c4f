package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/executor"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/environ"
)

// Executor processes: a custom executor (an ExecutorInfo whose command
// names no in-process executor) and the command executor in
// CommandExecutorProcess mode run as one container of the agent's
// containerizer, named by the executor run's ID, in the run's sandbox. They
// talk to the agent over HTTP (Handler's /api/v1/executor) like any Mesos
// executor, and must subscribe within ExecutorRegistrationTimeout. The end
// of the container's main process is the end of the executor.

// startProcessExecutor launches the executor's container on another
// goroutine; processLaunched takes the outcome on the loop.
func (a *Agent) startProcessExecutor(e *executorRec) {
	fail := func(err error) { a.terminateExecutor(e, endingOf(agentcore.EndingLaunchFailed(err))) }
	if a.cfg.Endpoint == "" {
		fail(errors.New("the agent has no HTTP endpoint (Config.Endpoint) for executor processes to subscribe to"))
		return
	}
	cfg, err := a.executorContainer(e)
	if err != nil {
		fail(err)
		return
	}
	cont, ctx := a.cont, a.execCtx
	sandbox, user := e.Sandbox(), e.TaskUser()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.makeSandbox(sandbox, user)
		if err == nil {
			err = cont.Launch(ctx, cfg)
		}
		_ = a.post(context.Background(), func() { a.processLaunched(e, err) })
	}()
}

// processLaunched starts watching a launched executor process and the
// clock of its registration.
func (a *Agent) processLaunched(e *executorRec, err error) {
	if e.cleaning || e.State() == execTerminated {
		// Killed while it launched: the clean-up may have missed it.
		if err == nil {
			a.destroyLater(e.ContainerID())
		}
		return
	}
	if err != nil {
		a.terminateExecutor(e, endingOf(agentcore.EndingLaunchFailed(err)))
		return
	}
	a.log.Info("agent: executor process launched", "framework", e.FrameworkID(), "executor", e.ID(), "container", e.ContainerID())
	a.watchProcess(e)
	if e.State() == execRegistering {
		a.awaitSubscription(e, a.cfg.ExecutorRegistrationTimeout, mesospb.TaskStatus_REASON_EXECUTOR_REGISTRATION_TIMEOUT,
			"Executor did not subscribe within "+a.cfg.ExecutorRegistrationTimeout.String())
	}
}

// awaitSubscription destroys the executor unless it subscribes within d.
func (a *Agent) awaitSubscription(e *executorRec, d time.Duration, reason mesospb.TaskStatus_Reason, msg string) {
	a.tm.cancel(e.regTimer)
	e.regTimer = a.tm.after(d, func() {
		e.regTimer = 0
		if e.State() == execTerminated || e.cleaning {
			return
		}
		a.log.Warn("agent: executor did not subscribe in time; destroying it", "framework", e.FrameworkID(), "executor", e.ID(), "timeout", d)
		e.Overrule(agentcore.Ending{State: mesospb.TASK_FAILED, Reason: reason, Message: msg})
		a.killExecutor(e)
	})
}

// watchProcess waits, on another goroutine, for the executor's process to
// end. When the agent stops first it stops watching: the process lives on
// for the next agent.
func (a *Agent) watchProcess(e *executorRec) {
	cont, ctx, id := a.cont, a.execCtx, e.ContainerID()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		term, err := cont.Wait(ctx, id)
		if err != nil && (ctx.Err() != nil || errors.Is(err, containerizer.ErrClosed)) {
			return
		}
		_ = a.post(context.Background(), func() { a.processExited(e, term, err) })
	}()
}

// processExited ends an executor whose process has ended: its tasks that
// are not terminal fail, and the master hears EXECUTOR_EXITED with the
// process's wait status (unless it is the command executor; see
// terminateExecutor).
func (a *Agent) processExited(e *executorRec, term containerizer.Termination, err error) {
	if e.State() == execTerminated || e.cleaning {
		return // its end is already under way
	}
	var msg string
	switch {
	case err != nil:
		msg = "Lost the executor's container: " + err.Error()
	case term.Signal != 0:
		msg = fmt.Sprintf("Executor terminated with signal %s", signalName(term.Signal))
		e.exitStatus = ptr(int32(term.Signal))
	case term.ExitCode >= 0:
		msg = fmt.Sprintf("Executor exited with status %d", term.ExitCode)
		e.exitStatus = ptr(int32(term.ExitCode&0xff) << 8)
	default:
		msg = "Executor ended with an unknown status"
		if term.Message != "" {
			msg += ": " + term.Message
		}
	}
	a.log.Info("agent: executor process ended", "framework", e.FrameworkID(), "executor", e.ID(), "how", msg)
	e.Exited(agentcore.Ending{State: mesospb.TASK_FAILED, Reason: mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, Message: msg})
	a.cleanupExecutor(e)
}

// destroyLater destroys a container on another goroutine.
func (a *Agent) destroyLater(id string) {
	cont := a.cont
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		destroyContainer(a.runCtx, cont, id, a.log)
	}()
}

// executorContainer is the container of an executor process.
func (a *Agent) executorContainer(e *executorRec) (containerizer.Config, error) {
	if c := e.Info().Container; c != nil && (c.Docker != nil || c.GetType() == mesospb.ContainerInfo_DOCKER || c.Mesos.GetImage() != nil) {
		return containerizer.Config{}, errors.New("the executor asks for a container image, which this agent does not support")
	}
	env := a.executorEnv(e)
	// The executor's token for the executor API (auth.go), as Mesos's
	// agent gives it; its task containers do not get it.
	token, err := a.executorToken(e)
	if err != nil {
		return containerizer.Config{}, fmt.Errorf("making the executor's authentication token: %w", err)
	}
	if token != "" {
		env = append(env, executor.AuthenticationTokenEnv+"="+token)
	}
	var cmd containerizer.Command
	if e.Kind() == kindCommandProcess {
		env = append(env,
			executor.CommandExecutorEnv+"=1",
			executor.ExecutorStateDirEnv+"="+executorStateDir(e.Sandbox()),
			executor.KillGracePeriodEnv+"="+mesosDuration(a.cfg.DefaultKillGracePeriod))
		cmd = containerizer.ExecCommand(a.cfg.CommandExecutorPath, a.cfg.CommandExecutorArgs...)
	} else {
		ci := e.Info().Command
		if ci == nil || ci.GetValue() == "" {
			return containerizer.Config{}, errors.New("the executor has no command")
		}
		if ci.Shell == nil || ci.GetShell() {
			cmd = containerizer.ShellCommand(ci.GetValue())
		} else {
			// CommandInfo.arguments is the whole argv, argv[0] included.
			cmd = containerizer.Command{Value: ci.GetValue(), Args: ci.Arguments}
		}
		var err error
		if env, err = environ.Merge(env, nil, ci.Environment); err != nil {
			return containerizer.Config{}, err
		}
	}
	rs := append([]mesospb.Resource(nil), e.Info().Resources...)
	for _, item := range e.Queue() {
		if item.Task != nil {
			rs = append(rs, item.Task.Resources...)
		}
		if item.Group != nil {
			for _, t := range item.Group.Tasks {
				rs = append(rs, t.Resources...)
			}
		}
	}
	return containerizer.Config{
		ID:      e.ContainerID(),
		Command: cmd,
		Sandbox: e.Sandbox(),
		User:    e.TaskUser(),
		Env:     env,
		Limits:  limitsOf(rs),
		Volumes: a.volumesOf(rs),
	}, nil
}

// executorStateDir is where a command executor process keeps its task's
// container state; the agent clears it after the executor ends.
func executorStateDir(sandbox string) string { return filepath.Join(sandbox, ".apron-executor") }

// destroyExecutorContainers destroys the containers a command executor
// process left in its state directory (it was killed before it could),
// then removes the directory. The executor process has ended: nobody else
// uses the state.
func (a *Agent) destroyExecutorContainers(ctx context.Context, dir string) {
	if _, err := os.Stat(dir); err != nil {
		return
	}
	c, err := containerizer.NewProcess(containerizer.ProcessOptions{StateDir: dir, Logger: a.log, Clock: a.clk})
	if err != nil {
		a.log.Warn("agent: opening an executor's container state", "dir", dir, "err", err)
		return
	}
	if _, err := c.Recover(ctx); err != nil {
		a.log.Warn("agent: recovering an executor's containers", "dir", dir, "err", err)
	}
	destroyContainers(ctx, c, func(id string) bool {
		a.log.Info("agent: destroying a container its executor left", "dir", dir, "container", id)
		return true
	}, a.log)
	if err := c.Close(); err != nil {
		a.log.Warn("agent: closing an executor's container state", "dir", dir, "err", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		a.log.Warn("agent: removing an executor's container state", "dir", dir, "err", err)
	}
}

// limitsOf is what a container may use: the sum of the cpus and mem (MB)
// of rs, and of its disk (MB) outside volumes, the sandbox's quota.
func limitsOf(rs []mesospb.Resource) containerizer.Limits {
	var cpus, mem, disk float64
	for _, r := range rs {
		if r.Scalar == nil || !(r.Scalar.Value > 0) || math.IsInf(r.Scalar.Value, 0) {
			continue
		}
		switch r.Name {
		case "cpus":
			cpus += r.Scalar.Value
		case "mem":
			mem += r.Scalar.Value
		case "disk":
			if r.Disk == nil || r.Disk.Volume == nil { // a volume is not in the sandbox
				disk += r.Scalar.Value
			}
		}
	}
	var l containerizer.Limits
	if cpus > 0 && !math.IsInf(cpus, 0) {
		l.CPUs = cpus
	}
	if b := mem * (1 << 20); b >= 1 && b < math.MaxUint64 {
		l.MemoryBytes = uint64(b)
	}
	if b := disk * (1 << 20); b >= 1 && b < math.MaxUint64 {
		l.DiskBytes = uint64(b)
	}
	return l
}

// signalName names a signal as C does ("SIGKILL").
func signalName(sig syscall.Signal) string {
	if n := unixSignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

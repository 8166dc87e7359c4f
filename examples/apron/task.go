package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

func (a *app) task(args []string) error {
	const use = "usage: apron task log [-f] [-stderr] [-tail N] [-framework ID] ID | kill [-signal SIG] [-no-wait] [-framework ID] ID"
	if len(args) == 0 {
		return usagef(use)
	}
	switch args[0] {
	case "log":
		return a.taskLog(args[1:])
	case "kill":
		return a.taskKill(args[1:])
	}
	return usagef("task: unknown subcommand %q\n%s", args[0], use)
}

// terminal reports whether a task in state s has ended.
func terminal(s mesospb.TaskState) bool {
	switch s {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_ERROR,
		mesospb.TASK_LOST, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// findTask finds the task with the ID (of the framework fwID, when given)
// in the master's state: an active one before one that has ended. None
// is an error (exit status 1).
func findTask(ctx context.Context, c *client, id, fwID string) (*mesospb.Task, error) {
	r, err := c.get(ctx, masterpb.Call_GET_TASKS)
	if err != nil {
		return nil, err
	}
	gt := r.GetGetTasks()
	for _, list := range [][]mesospb.Task{gt.GetTasks(), gt.GetPendingTasks(), gt.GetUnreachableTasks(), gt.GetCompletedTasks()} {
		var found []*mesospb.Task
		for i := range list {
			if list[i].TaskID.Value == id && (fwID == "" || list[i].FrameworkID.Value == fwID) {
				found = append(found, &list[i])
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		}
		fws := make([]string, len(found))
		for i, t := range found {
			fws[i] = t.FrameworkID.Value
		}
		return nil, fmt.Errorf("task %q is in %d frameworks (%s): choose one with -framework", id, len(found), strings.Join(fws, ", "))
	}
	return nil, fmt.Errorf("unknown task %q (see apron tasks -all)", id)
}

// sandboxPath is the task's file in its executor's newest run, by the
// virtual path the agent attaches (/frameworks/<fw>/executors/<ex>/runs/latest);
// a command task's executor has the task's ID.
func sandboxPath(t *mesospb.Task, file string) string {
	ex := t.TaskID.Value
	if t.ExecutorID != nil && t.ExecutorID.Value != "" {
		ex = t.ExecutorID.Value
	}
	return "/frameworks/" + pathSafe(t.FrameworkID.Value) + "/executors/" + pathSafe(ex) + "/runs/latest/" + file
}

// pathSafe is the agent's naming of an ID in a sandbox's path.
func pathSafe(id string) string {
	switch id {
	case "":
		return "%00"
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	if strings.ContainsAny(id, "/\x00%") {
		return url.PathEscape(id)
	}
	return id
}

func (a *app) taskLog(args []string) error {
	fs := a.flagSet("task log")
	follow := fs.Bool("f", false, "follow: keep printing what the task writes, until it has ended and all is printed (or interrupted)")
	stderr := fs.Bool("stderr", false, "the task's stderr instead of its stdout")
	tail := fs.Int64("tail", -1, "start this many `bytes` before the end (default: from the start)")
	fwID := fs.String("framework", "", "the task's framework `ID`, when several have a task of that ID")
	pos, err := a.parse(fs, args, 1, 1, "[-f] [-stderr] [-tail N] [-framework ID] ID")
	if err != nil {
		return err
	}
	c, err := a.master()
	if err != nil {
		return err
	}
	ctx, cancel := a.callCtx()
	t, err := findTask(ctx, c, pos[0], *fwID)
	cancel()
	if err != nil {
		return err
	}
	file := "stdout"
	if *stderr {
		file = "stderr"
	}
	path := sandboxPath(t, file)
	agentID := t.AgentID.Value
	offset := int64(0)
	if *tail >= 0 {
		offset = -*tail
	}
	ended := terminal(t.GetState())
	for {
		next, err := c.download(a.ctx, a.opts.timeout, agentID, path, offset, a.stdout)
		if err != nil && a.ctx.Err() != nil {
			return nil // interrupted: what was asked for is printed
		}
		if err != nil {
			return fmt.Errorf("task %s's %s: %w", t.TaskID.Value, file, err)
		}
		offset = next
		if !*follow || ended {
			return nil
		}
		if err := a.wait(a.opts.interval); err != nil {
			return nil
		}
		ctx, cancel := a.callCtx()
		now, err := findTask(ctx, c, t.TaskID.Value, t.FrameworkID.Value)
		cancel()
		if err != nil && a.ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		// Read once more after the task has ended: what it wrote last.
		ended = terminal(now.GetState())
	}
}

// parseSignal reads -signal: a number or a name (TERM, SIGTERM).
func parseSignal(v string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return syscall.Signal(n), nil
	}
	names := map[string]syscall.Signal{
		"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT,
		"HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	}
	if s, ok := names[strings.TrimPrefix(strings.ToUpper(v), "SIG")]; ok {
		return s, nil
	}
	return 0, usagef("-signal %q: want a number or KILL, TERM, INT, HUP, QUIT, USR1, USR2", v)
}

// taskKill kills a task by signalling its container through the agent's
// operator API (KILL_CONTAINER): the master's operator API has no call
// that kills one task (a framework kills its own tasks), and an operator
// who must stop one has only the container. The agent then reports the
// task ended to its framework (for a command task, TASK_FAILED or
// TASK_KILLED, as its executor sees the signal).
func (a *app) taskKill(args []string) error {
	fs := a.flagSet("task kill")
	sigName := fs.String("signal", "KILL", "the `signal` to send the task's container")
	noWait := fs.Bool("no-wait", false, "do not wait for the task to end")
	fwID := fs.String("framework", "", "the task's framework `ID`, when several have a task of that ID")
	pos, err := a.parse(fs, args, 1, 1, "[-signal SIG] [-no-wait] [-framework ID] ID")
	if err != nil {
		return err
	}
	sig, err := parseSignal(*sigName)
	if err != nil {
		return err
	}
	c, err := a.master()
	if err != nil {
		return err
	}
	ctx, cancel := a.callCtx()
	defer cancel()
	t, err := findTask(ctx, c, pos[0], *fwID)
	if err != nil {
		return err
	}
	if terminal(t.GetState()) {
		return fmt.Errorf("task %s has already ended: %s", t.TaskID.Value, t.GetState())
	}
	var cid *mesospb.ContainerID
	for i := len(t.Statuses) - 1; i >= 0 && cid == nil; i-- {
		if cs := t.Statuses[i].ContainerStatus; cs != nil && cs.ContainerID != nil {
			cid = cs.ContainerID
		}
	}
	if cid == nil {
		return fmt.Errorf("task %s (%s) has no container yet: try again once it runs", t.TaskID.Value, t.GetState())
	}
	ag, err := a.findAgent(ctx, c, t.AgentID.Value)
	if err != nil {
		return err
	}
	s := int32(sig)
	if err := c.agentCall(ctx, &ag.AgentInfo, &agentpb.Call{
		Type:          agentpb.Call_KILL_CONTAINER.Enum(),
		KillContainer: &agentpb.Call_KillContainer{ContainerID: *cid, Signal: &s},
	}); err != nil {
		return err
	}
	state := t.GetState()
	for !*noWait && !terminal(state) {
		if err := a.wait(a.opts.interval); err != nil {
			return fmt.Errorf("task %s was signalled; it had not ended yet: %w", t.TaskID.Value, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("task %s was signalled and has not ended within -timeout %s (see apron tasks; -signal KILL ends any process)", t.TaskID.Value, a.opts.timeout)
		}
		now, err := findTask(ctx, c, t.TaskID.Value, t.FrameworkID.Value)
		if err != nil {
			return err
		}
		state = now.GetState()
	}
	if !a.opts.json {
		if *noWait {
			fmt.Fprintf(a.stdout, "task %s: sent %s\n", t.TaskID.Value, sig)
		} else {
			fmt.Fprintf(a.stdout, "task %s: %s\n", t.TaskID.Value, state)
		}
	}
	return nil
}

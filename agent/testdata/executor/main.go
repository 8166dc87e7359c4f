// Command executor is the custom executor of the agent's tests: a process
// an agent starts, which subscribes over HTTP with executor.ConfigFromEnv
// and executor.NewDriver as any Go executor would. What it does with a task
// depends on the task's data:
//
//	""      TASK_RUNNING, then TASK_FINISHED; it stops once that is acknowledged
//	"exit"  TASK_RUNNING, then the process exits with status 3
//	"wait"  TASK_RUNNING, then TASK_FINISHED on the framework message "finish"
//
// It answers the framework message "ping" with "pong", kills with
// TASK_KILLED, and stops on SHUTDOWN after killing its tasks.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/executor"
)

type testExecutor struct {
	mu      sync.Mutex
	live    map[string]bool // tasks not terminal
	waiting []mesospb.TaskID
	last    []byte // uuid of the update whose acknowledgement stops the driver
}

func (e *testExecutor) Registered(ctx context.Context, d *executor.Driver, info executor.Info)   {}
func (e *testExecutor) Reregistered(ctx context.Context, d *executor.Driver, info executor.Info) {}
func (e *testExecutor) Disconnected(ctx context.Context, d *executor.Driver)                     {}
func (e *testExecutor) LaunchTaskGroup(ctx context.Context, d *executor.Driver, g *mesospb.TaskGroupInfo) {
}
func (e *testExecutor) Error(ctx context.Context, d *executor.Driver, message string) {}

func (e *testExecutor) LaunchTask(ctx context.Context, d *executor.Driver, task *mesospb.TaskInfo) {
	e.mu.Lock()
	e.live[task.TaskID.Value] = true
	e.mu.Unlock()
	update(ctx, d, task.TaskID, mesospb.TASK_RUNNING, nil)
	switch string(task.Data) {
	case "exit":
		os.Exit(3)
	case "wait":
		e.mu.Lock()
		e.waiting = append(e.waiting, task.TaskID)
		e.mu.Unlock()
	default:
		e.finish(ctx, d, task.TaskID, mesospb.TASK_FINISHED)
	}
}

// finish sends a task's terminal update; the driver stops once the last
// task's is acknowledged.
func (e *testExecutor) finish(ctx context.Context, d *executor.Driver, id mesospb.TaskID, state mesospb.TaskState) {
	uuid := executor.NewUUID()
	e.mu.Lock()
	if !e.live[id.Value] {
		e.mu.Unlock()
		return
	}
	delete(e.live, id.Value)
	if len(e.live) == 0 {
		e.last = uuid
	}
	e.mu.Unlock()
	update(ctx, d, id, state, uuid)
}

func update(ctx context.Context, d *executor.Driver, id mesospb.TaskID, state mesospb.TaskState, uuid []byte) {
	msg := "from the test executor"
	if err := d.SendStatusUpdate(ctx, mesospb.TaskStatus{TaskID: id, State: state.Enum(), UUID: uuid, Message: &msg}); err != nil {
		fmt.Fprintln(os.Stderr, "status update:", err)
	}
}

func (e *testExecutor) KillTask(ctx context.Context, d *executor.Driver, id mesospb.TaskID, p *mesospb.KillPolicy) {
	e.finish(ctx, d, id, mesospb.TASK_KILLED)
}

func (e *testExecutor) Acknowledged(ctx context.Context, d *executor.Driver, id mesospb.TaskID, uuid []byte) {
	e.mu.Lock()
	done := e.last != nil && bytes.Equal(e.last, uuid) && len(e.live) == 0
	e.mu.Unlock()
	if done {
		d.Stop()
	}
}

func (e *testExecutor) FrameworkMessage(ctx context.Context, d *executor.Driver, data []byte) {
	switch string(data) {
	case "ping":
		if err := d.SendFrameworkMessage(ctx, []byte("pong")); err != nil {
			fmt.Fprintln(os.Stderr, "framework message:", err)
		}
	case "finish":
		e.mu.Lock()
		waiting := e.waiting
		e.waiting = nil
		e.mu.Unlock()
		for _, id := range waiting {
			e.finish(ctx, d, id, mesospb.TASK_FINISHED)
		}
	}
}

func (e *testExecutor) Shutdown(ctx context.Context, d *executor.Driver) {
	e.mu.Lock()
	var live []mesospb.TaskID
	for id := range e.live {
		live = append(live, mesospb.TaskID{Value: id})
	}
	e.mu.Unlock()
	for _, id := range live {
		e.finish(ctx, d, id, mesospb.TASK_KILLED)
	}
	d.Stop()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := executor.ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	d, err := executor.NewDriver(&testExecutor{live: map[string]bool{}}, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
		os.Exit(1)
	}
}

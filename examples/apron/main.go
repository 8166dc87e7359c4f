// Command apron is the operator's command-line tool for an Apron (or
// Apache Mesos) cluster: it lists agents, frameworks, tasks and roles,
// reads and follows a task's output, kills a task, sets quota and
// weights, reserves resources, drains agents and schedules maintenance.
//
// It speaks the Mesos v1 operator API (POST /api/v1) to the leading
// master, following a standby's 307 redirect, or the leader a ZooKeeper
// election names (-master zk://...); a task's output comes through the
// master's files API, which forwards to the agent holding the sandbox.
// Killing a task uses the agent's operator API (KILL_CONTAINER), since
// the master's has no call for it.
//
// Output is a table for people, or JSON with -json for scripts (the
// Mesos v1 JSON of the answers, proto field names: an array for a list,
// an object for state and the maintenance schedule and status). Commands
// that change the cluster say what they did in a line, and print nothing
// with -json. task log prints the bytes the task wrote, as written (byte
// ranges of /files/download, so offsets stay exact whatever the
// encoding); with -f it polls every -interval and ends once the task has
// ended and its last output is printed, or at an interrupt. The exit status is 0
// when the command did what it was asked, 1 when a call failed (the
// master is down, refused the call, or the task is unknown) and 2 for a
// usage error. Run `apron help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// An interrupt ends task log -f (and any call in progress).
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	cancel()
	os.Exit(code)
}

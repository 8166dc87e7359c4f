package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/scheduler"
)

// This file is -hold: keep -tasks tasks running at once, so a master knows
// them all, and then, with -failover, take the framework over with a new
// connection and reconcile every task, as a scheduler that restarted would.
// What it measures is whether a master answers a reconciliation of that
// size in full, without dropping the framework, and how long it takes.

// round is one reconciliation: which tasks have answered, and how.
type round struct {
	name     string
	want     int
	start    time.Time
	sent     time.Time // when the RECONCILE call was accepted
	last     time.Time // when the last task not heard of yet answered
	seen     []bool    // by task number
	replies  int
	distinct int
	dups     int
	states   map[mesospb.TaskState]int
	complete chan struct{}
}

// newRound waits for want of tasks tasks to answer.
func newRound(name string, tasks, want int, start time.Time) *round {
	r := &round{
		name:     name,
		want:     want,
		start:    start,
		seen:     make([]bool, tasks),
		states:   map[mesospb.TaskState]int{},
		complete: make(chan struct{}),
	}
	if want == 0 {
		close(r.complete)
	}
	return r
}

// reply counts an answer about task k.
func (r *round) reply(k int, s mesospb.TaskState, now time.Time) {
	r.replies++
	r.states[s]++
	if r.seen[k] {
		r.dups++
		return
	}
	r.seen[k] = true
	r.distinct++
	r.last = now
	if r.distinct == r.want {
		close(r.complete)
	}
}

// summary is the round's result line.
func (r *round) summary() string {
	took := "not complete"
	switch {
	case r.want == 0:
		took = "nothing to wait for"
	case r.distinct >= r.want:
		took = fmt.Sprintf("every task answered %v after the call", r.last.Sub(r.start).Round(time.Millisecond))
	}
	states := make([]string, 0, len(r.states))
	for s, n := range r.states {
		states = append(states, fmt.Sprintf("%s %d", s, n))
	}
	slices.Sort(states)
	return fmt.Sprintf("reconcile %s: %d/%d tasks answered, %s (call accepted in %v); %d replies, %d repeated; states: %v",
		r.name, r.distinct, r.want, took, r.sent.Sub(r.start).Round(time.Millisecond), r.replies, r.dups, states)
}

// Registered tells afterHold the (new) driver is subscribed.
func (g *load) Registered(_ context.Context, _ *scheduler.Driver, id mesospb.FrameworkID, _ *mesospb.MasterInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.subscribed != nil {
		close(g.subscribed)
		g.subscribed = nil
	}
}

// Reregistered counts subscriptions after a disconnection.
func (g *load) Reregistered(context.Context, *scheduler.Driver, *mesospb.MasterInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.resubscribes++
}

// Disconnected counts the times the master ended the stream.
func (g *load) Disconnected(context.Context, *scheduler.Driver) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.disconnects++
	fmt.Fprintf(g.out, "%6.1fs  disconnected from the master\n", time.Since(g.start).Seconds())
}

// afterHold runs once every task is RUNNING: it holds them -hold-for,
// then with -failover fails the framework over and reconciles, and at the
// end tears the framework down unless -teardown=false.
func (g *load) afterHold(ctx context.Context, d *scheduler.Driver, runErr chan error, info mesospb.FrameworkInfo,
	opts []scheduler.Option, stopWork context.CancelFunc, wg *sync.WaitGroup,
) (result error) {
	defer func() {
		g.mu.Lock()
		fmt.Fprintf(g.out, "disconnects: %d, subscriptions after one: %d\n", g.disconnects, g.resubscribes)
		g.mu.Unlock()
	}()
	leave := func(d *scheduler.Driver) {
		if g.o.teardown {
			_ = d.Stop(false)
		} else {
			_ = d.Stop(true)
		}
		<-runErr
		stopWork()
		wg.Wait()
	}
	if g.o.holdFor > 0 {
		fmt.Fprintf(g.out, "holding them for %v\n", g.o.holdFor)
		select {
		case <-time.After(g.o.holdFor):
		case <-ctx.Done():
			leave(d)
			return fmt.Errorf("not done: %w", context.Cause(ctx))
		}
	}
	if !g.o.failover {
		leave(d)
		return nil
	}

	// Fail over: the old scheduler leaves without TEARDOWN, a new one
	// subscribes with the same framework ID on a new connection.
	id := d.FrameworkID()
	start := time.Now()
	_ = d.Stop(true)
	<-runErr
	info.ID = &id
	nd, err := scheduler.NewDriver(g, info, opts...)
	if err != nil {
		return err
	}
	subscribed := make(chan struct{})
	g.mu.Lock()
	g.subscribed = subscribed
	g.suppressed = false // the new subscription is not suppressed
	g.mu.Unlock()
	g.driver.Store(nd)
	go func() { runErr <- nd.Run(context.WithoutCancel(ctx)) }()
	select {
	case <-subscribed:
	case err := <-runErr:
		runErr <- err
		leave(nd)
		return fmt.Errorf("the new scheduler stopped: %w", err)
	case <-ctx.Done():
		leave(nd)
		return fmt.Errorf("not subscribed again: %w", context.Cause(ctx))
	}
	fmt.Fprintf(g.out, "failed over: framework %s subscribed again on a new connection %v after the old one left\n",
		id.Value, time.Since(start).Round(time.Millisecond))

	if g.o.implicit {
		if err := g.reconcile(ctx, nd, "implicit", nil); err != nil {
			result = err
		}
	}
	if g.o.explicit {
		if err := g.reconcile(ctx, nd, "explicit", g.everyTask()); err != nil && result == nil {
			result = err
		}
	}
	leave(nd)
	return result
}

// everyTask names every task, with its agent when known, for an explicit
// reconciliation.
func (g *load) everyTask() []mesospb.TaskStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	sts := make([]mesospb.TaskStatus, g.o.tasks)
	for k := range sts {
		sts[k] = mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "lg-" + strconv.Itoa(k)}, AgentID: g.agentOf[k]}
	}
	return sts
}

// reconcile sends one RECONCILE (statuses nil: implicit) and waits until
// every task answered or -reconcile-timeout passed, printing the result.
// An implicit one is answered for the tasks the master knows, so it waits
// for those the framework has not seen end; an explicit one for each
// task named.
func (g *load) reconcile(ctx context.Context, d *scheduler.Driver, name string, statuses []mesospb.TaskStatus) error {
	want := len(statuses)
	if statuses == nil {
		want = g.runningNow()
	}
	r := newRound(name, g.o.tasks, want, time.Now())
	g.mu.Lock()
	g.round = r
	g.mu.Unlock()
	err := d.ReconcileTasks(ctx, statuses)
	g.mu.Lock()
	r.sent = time.Now()
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", name, err)
	}
	timeout := time.NewTimer(g.o.reconcileTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var result error
wait:
	for {
		select {
		case <-r.complete:
			break wait
		case <-tick.C:
			if !g.o.quiet {
				g.mu.Lock()
				fmt.Fprintf(g.out, "%6.1fs  reconcile %s: %d/%d answered\n", time.Since(g.start).Seconds(), name, r.distinct, r.want)
				g.mu.Unlock()
			}
		case <-timeout.C:
			result = fmt.Errorf("reconcile %s: not every task answered within %v", name, g.o.reconcileTimeout)
			break wait
		case <-ctx.Done():
			result = fmt.Errorf("reconcile %s: %w", name, context.Cause(ctx))
			break wait
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.round = nil
	fmt.Fprintln(g.out, r.summary())
	return result
}

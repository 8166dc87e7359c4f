package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/master"
)

func TestRoundCountsEachTaskOnce(t *testing.T) {
	now := time.Now()
	r := newRound("implicit", 3, 3, now)
	r.reply(0, mesospb.TASK_RUNNING, now.Add(time.Millisecond))
	r.reply(0, mesospb.TASK_RUNNING, now.Add(2*time.Millisecond))
	r.reply(2, mesospb.TASK_LOST, now.Add(3*time.Millisecond))
	select {
	case <-r.complete:
		t.Fatal("task 1 has not answered")
	default:
	}
	r.reply(1, mesospb.TASK_RUNNING, now.Add(4*time.Millisecond))
	select {
	case <-r.complete:
	default:
		t.Fatal("every task answered")
	}
	assert.Equal(t, 4, r.replies)
	assert.Equal(t, 3, r.distinct)
	assert.Equal(t, 1, r.dups)
	assert.Equal(t, map[mesospb.TaskState]int{mesospb.TASK_RUNNING: 3, mesospb.TASK_LOST: 1}, r.states)
	assert.Contains(t, r.summary(), "3/3 tasks answered")
}

func TestHoldCountsReconciliationApart(t *testing.T) {
	g := newLoad(options{tasks: 2, concurrency: 2, cpus: 0.01, mem: 1, hold: true}, &bytes.Buffer{})
	g.inflight = 2
	agentID := &mesospb.AgentID{Value: "a1"}
	up := func(id string, s mesospb.TaskState, reason *mesospb.TaskStatus_Reason) {
		g.StatusUpdate(t.Context(), nil, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: id}, State: s.Enum(), AgentID: agentID, Reason: reason})
	}
	up("lg-0", mesospb.TASK_RUNNING, nil)
	up("lg-1", mesospb.TASK_RUNNING, nil)
	select {
	case <-g.allRunning:
	default:
		t.Fatal("both tasks are RUNNING")
	}
	assert.Equal(t, "a1", g.everyTask()[1].AgentID.GetValue())

	g.round = newRound("explicit", 2, 2, time.Now())
	up("lg-1", mesospb.TASK_LOST, mesospb.TaskStatus_REASON_RECONCILIATION.Enum())
	assert.Equal(t, 1, g.round.distinct)
	assert.Equal(t, 0, g.failed, "a reconciliation's answer is not a new status")
}

func TestHoldSettlesOnLostTask(t *testing.T) {
	g := newLoad(options{tasks: 2, concurrency: 2, cpus: 0.01, mem: 1, hold: true}, &bytes.Buffer{})
	g.inflight = 2
	g.StatusUpdate(t.Context(), nil, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "lg-0"}, State: mesospb.TASK_RUNNING.Enum()})
	g.StatusUpdate(t.Context(), nil, mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "lg-1"}, State: mesospb.TASK_LOST.Enum()})
	select {
	case <-g.allRunning:
	default:
		t.Fatal("every task is RUNNING or ended: the hold goes on without the lost one")
	}
	assert.Equal(t, 1, g.runningNow())
	assert.Equal(t, 1, g.failed)
}

// TestHoldFailoverReconcile runs -hold -failover end to end against a
// master and a no-op agent in this process, over HTTP on loopback.
func TestHoldFailoverReconcile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a master and an agent")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var msrv *httptest.Server
	noop := containerizer.NewNoop(containerizer.NoopOptions{})
	// The agent and the master stop first: the server's Close waits for
	// the agent's stream.
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if msrv != nil {
			msrv.Close()
		}
		_ = noop.Close()
	})

	m, err := master.New(master.Config{Hostname: "localhost", AllocationInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	msrv = httptest.NewServer(m.Handler())

	link, err := agent.NewHTTPMaster([]string{msrv.URL})
	require.NoError(t, err)
	a, err := agent.New(agent.Config{
		Master:        link,
		WorkDir:       t.TempDir(),
		Resources:     "cpus:8;mem:8192;disk:1000",
		Hostname:      "localhost",
		IP:            "127.0.0.1",
		Containerizer: noop,
		Endpoint:      "127.0.0.1:1",
	})
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()

	var out bytes.Buffer
	err = run([]string{"-master", msrv.URL, "-tasks", "300", "-concurrency", "300", "-per-offer", "100",
		"-task-time", "1h", "-hold", "-failover", "-q", "-timeout", "2m", "-log-level", "off"}, &out)
	t.Log(out.String())
	require.NoError(t, err, out.String())
	assert.Contains(t, out.String(), "all 300 tasks RUNNING at once")
	assert.Contains(t, out.String(), "reconcile implicit: 300/300 tasks answered")
	assert.Contains(t, out.String(), "reconcile explicit: 300/300 tasks answered")
	assert.Contains(t, out.String(), "disconnects: 0")
}

package agentcore

import (
	"fmt"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent/checkpoint"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The status update manager's core, driven step by step with no agent, no
// clock and no disk: each step is one input, and the step's want is the
// Ready it must produce, rendered one line per output in the order the
// shell does them: W(rite), E(xecutor acknowledgement), F(orward).

var sumT0 = time.Unix(1e9, 0)

const (
	sumRetry    = 10 * time.Second
	sumRetryMax = 10 * time.Minute
)

// sumStep is one input. op is update (task, state, uuid; exec: from the
// executor), ack (task, uuid), tick, pause, resume, resumeFramework (fw).
// at is the time of the input, after t0. want is the Ready; verdict and
// outcome, when set, what update and ack return.
type sumStep struct {
	op      string
	fw      string // "fw" when empty
	task    string
	state   mesospb.TaskState
	uuid    string
	exec    bool
	at      time.Duration
	want    []string
	verdict UpdateVerdict
	outcome AckOutcome
}

func sumUpdate(fw, task string, state mesospb.TaskState, uuid string, exec bool) *internalpb.Call_StatusUpdate {
	u := &internalpb.Call_StatusUpdate{
		FrameworkID: mesospb.FrameworkID{Value: fw},
		Status: mesospb.TaskStatus{
			TaskID: mesospb.TaskID{Value: task},
			State:  state.Enum(),
			UUID:   []byte(uuid),
			Source: mesospb.TaskStatus_SOURCE_AGENT.Enum(),
		},
	}
	if exec {
		u.Status.Source = mesospb.TaskStatus_SOURCE_EXECUTOR.Enum()
		u.Status.ExecutorID = &mesospb.ExecutorID{Value: "ex-" + task}
	}
	return u
}

// render writes a Ready the way the steps' wants read.
func render(r UpdateReady) []string {
	var out []string
	for _, w := range r.Writes {
		k := w.Key.Framework + "/" + w.Key.Task
		switch w.Op {
		case WriteUpdate:
			out = append(out, "W update "+k+" "+string(w.Update.Status.UUID))
		case WriteAck:
			out = append(out, "W ack "+k+" "+string(w.UUID))
		case WriteRemove:
			out = append(out, strings.TrimSpace("W remove "+k+" "+string(w.UUID)))
		}
	}
	for _, a := range r.ExecutorAcks {
		out = append(out, "E "+a.Framework+"/"+a.TaskID.Value+" "+string(a.UUID)+" to "+a.Executor)
	}
	for _, f := range r.Forwards {
		line := "F " + f.Update.FrameworkID.Value + "/" + f.Update.Status.TaskID.Value + " " + string(f.Update.Status.UUID)
		if f.Retry {
			line += " retry, next " + f.Next.String()
		}
		out = append(out, line)
	}
	return out
}

func runSteps(t *testing.T, m *UpdateManager, steps []sumStep) {
	t.Helper()
	for i, s := range steps {
		fw := s.fw
		if fw == "" {
			fw = "fw"
		}
		now := sumT0.Add(s.at)
		name := fmt.Sprintf("step %d (%s %s %s)", i, s.op, s.task, s.uuid)
		switch s.op {
		case "update":
			v := m.Update(sumUpdate(fw, s.task, s.state, s.uuid, s.exec), now)
			if s.verdict != 0 {
				assert.Equal(t, s.verdict, v, name)
			}
		case "ack":
			res := m.Ack(StreamKey{fw, s.task}, []byte(s.uuid), now)
			if s.outcome != 0 {
				assert.Equal(t, s.outcome, res.Outcome, name)
			}
		case "tick":
			m.Tick(now)
		case "pause":
			m.Pause()
		case "resume":
			m.Resume(now)
		case "resumeFramework":
			m.ResumeFramework(fw, now)
		default:
			t.Fatalf("%s: unknown op", name)
		}
		got := render(m.Drain())
		if len(s.want) == 0 {
			assert.Empty(t, got, name)
		} else {
			assert.Equal(t, s.want, got, name)
		}
	}
}

func TestUpdateManagerSteps(t *testing.T) {
	const (
		staging  = mesospb.TASK_STAGING
		starting = mesospb.TASK_STARTING
		running  = mesospb.TASK_RUNNING
		finished = mesospb.TASK_FINISHED
		failed   = mesospb.TASK_FAILED
		killed   = mesospb.TASK_KILLED
	)
	cases := []struct {
		name  string
		steps []sumStep
	}{{
		name: "one update in flight per task, the next after the ack, in order",
		steps: []sumStep{
			{op: "update", task: "t1", state: starting, uuid: "u1", exec: true, verdict: UpdateTaken,
				want: []string{"W update fw/t1 u1", "E fw/t1 u1 to ex-t1", "F fw/t1 u1"}},
			{op: "update", task: "t1", state: running, uuid: "u2", exec: true, verdict: UpdateTaken,
				want: []string{"W update fw/t1 u2", "E fw/t1 u2 to ex-t1"}},
			{op: "update", task: "t1", state: finished, uuid: "u3", exec: true,
				want: []string{"W update fw/t1 u3", "E fw/t1 u3 to ex-t1"}},
			{op: "ack", task: "t1", uuid: "u1", outcome: AckTaken, want: []string{"W ack fw/t1 u1", "F fw/t1 u2"}},
			{op: "ack", task: "t1", uuid: "u2", outcome: AckTaken, want: []string{"W ack fw/t1 u2", "F fw/t1 u3"}},
			{op: "ack", task: "t1", uuid: "u3", outcome: AckClosed, want: []string{"W remove fw/t1 u3"}},
		},
	}, {
		name: "tasks' streams are independent",
		steps: []sumStep{
			{op: "update", task: "t1", state: running, uuid: "a1", want: []string{"W update fw/t1 a1", "F fw/t1 a1"}},
			{op: "update", task: "t2", state: running, uuid: "b1", want: []string{"W update fw/t2 b1", "F fw/t2 b1"}},
			{op: "update", task: "t1", state: finished, uuid: "a2", want: []string{"W update fw/t1 a2"}},
			{op: "ack", task: "t2", uuid: "b1", want: []string{"W ack fw/t2 b1"}},
			{op: "ack", task: "t1", uuid: "a1", want: []string{"W ack fw/t1 a1", "F fw/t1 a2"}},
		},
	}, {
		name: "the agent's own updates are not acknowledged to an executor",
		steps: []sumStep{
			{op: "update", task: "t1", state: killed, uuid: "u1", want: []string{"W update fw/t1 u1", "F fw/t1 u1"}},
			{op: "update", task: "t1", state: killed, uuid: "u1", verdict: UpdateDuplicate},
		},
	}, {
		name: "a duplicate update is acknowledged to its executor again, and nothing else",
		steps: []sumStep{
			{op: "update", task: "t1", state: running, uuid: "u1", exec: true,
				want: []string{"W update fw/t1 u1", "E fw/t1 u1 to ex-t1", "F fw/t1 u1"}},
			{op: "update", task: "t1", state: running, uuid: "u1", exec: true, verdict: UpdateDuplicate,
				want: []string{"E fw/t1 u1 to ex-t1"}},
			{op: "ack", task: "t1", uuid: "u1", want: []string{"W ack fw/t1 u1"}},
			{op: "update", task: "t1", state: running, uuid: "u1", exec: true, verdict: UpdateDuplicate,
				want: []string{"E fw/t1 u1 to ex-t1"}},
		},
	}, {
		name: "unknown, duplicate and out-of-order acknowledgements are ignored",
		steps: []sumStep{
			{op: "ack", task: "nope", uuid: "x", outcome: AckNoStream},
			{op: "update", task: "t1", state: running, uuid: "u1", want: []string{"W update fw/t1 u1", "F fw/t1 u1"}},
			{op: "update", task: "t1", state: finished, uuid: "u2", want: []string{"W update fw/t1 u2"}},
			{op: "ack", task: "t1", uuid: "u2", outcome: AckUnexpected},
			{op: "ack", fw: "other", task: "t1", uuid: "u1", outcome: AckNoStream},
			{op: "ack", task: "t1", uuid: "u1", outcome: AckTaken, want: []string{"W ack fw/t1 u1", "F fw/t1 u2"}},
			{op: "ack", task: "t1", uuid: "u1", outcome: AckDuplicate},
			{op: "ack", task: "t1", uuid: "u2", outcome: AckClosed, want: []string{"W remove fw/t1 u2"}},
			{op: "ack", task: "t1", uuid: "u2", outcome: AckNoStream},
		},
	}, {
		name: "a terminal update's ack ends the stream and drops what came after it",
		steps: []sumStep{
			{op: "update", task: "t1", state: failed, uuid: "u1", want: []string{"W update fw/t1 u1", "F fw/t1 u1"}},
			{op: "update", task: "t1", state: running, uuid: "u2", want: []string{"W update fw/t1 u2"}},
			{op: "ack", task: "t1", uuid: "u1", outcome: AckClosed, want: []string{"W remove fw/t1 u1"}},
			// Nothing is retried for a closed stream.
			{op: "tick", at: time.Hour},
			// A later update of the task starts a new stream, as Mesos's.
			{op: "update", task: "t1", state: running, uuid: "u3", at: time.Hour, verdict: UpdateTaken,
				want: []string{"W update fw/t1 u3", "F fw/t1 u3"}},
		},
	}, {
		name: "retries back off from 10s, doubling, up to 10 min",
		steps: []sumStep{
			{op: "update", task: "t1", state: running, uuid: "u1", want: []string{"W update fw/t1 u1", "F fw/t1 u1"}},
			{op: "tick", at: 9 * time.Second},
			{op: "tick", at: 10 * time.Second, want: []string{"F fw/t1 u1 retry, next 20s"}},
			{op: "tick", at: 29 * time.Second},
			{op: "tick", at: 30 * time.Second, want: []string{"F fw/t1 u1 retry, next 40s"}},
			{op: "tick", at: 70 * time.Second, want: []string{"F fw/t1 u1 retry, next 1m20s"}},
			{op: "tick", at: 150 * time.Second, want: []string{"F fw/t1 u1 retry, next 2m40s"}},
			{op: "tick", at: 310 * time.Second, want: []string{"F fw/t1 u1 retry, next 5m20s"}},
			{op: "tick", at: 630 * time.Second, want: []string{"F fw/t1 u1 retry, next 10m0s"}},
			{op: "tick", at: 1229 * time.Second},
			{op: "tick", at: 1230 * time.Second, want: []string{"F fw/t1 u1 retry, next 10m0s"}},
			// A late tick resends once, and counts from itself.
			{op: "tick", at: 5000 * time.Second, want: []string{"F fw/t1 u1 retry, next 10m0s"}},
			{op: "tick", at: 5599 * time.Second},
			// The ack of the head sends the next with a fresh backoff.
			{op: "update", task: "t1", state: finished, uuid: "u2", at: 5599 * time.Second, want: []string{"W update fw/t1 u2"}},
			{op: "ack", task: "t1", uuid: "u1", at: 5599 * time.Second, want: []string{"W ack fw/t1 u1", "F fw/t1 u2"}},
			{op: "tick", at: 5609 * time.Second, want: []string{"F fw/t1 u2 retry, next 20s"}},
		},
	}, {
		name: "retries of several streams come due together, in a stable order",
		steps: []sumStep{
			{op: "update", task: "t2", state: running, uuid: "b", want: []string{"W update fw/t2 b", "F fw/t2 b"}},
			{op: "update", task: "t1", state: running, uuid: "a", want: []string{"W update fw/t1 a", "F fw/t1 a"}},
			{op: "update", task: "t3", state: running, uuid: "c", at: time.Second, want: []string{"W update fw/t3 c", "F fw/t3 c"}},
			{op: "tick", at: time.Minute, want: []string{"F fw/t1 a retry, next 20s", "F fw/t2 b retry, next 20s", "F fw/t3 c retry, next 20s"}},
		},
	}, {
		name: "nothing goes out without a master; everything pending at once when it is back",
		steps: []sumStep{
			{op: "update", task: "t1", state: running, uuid: "a1", want: []string{"W update fw/t1 a1", "F fw/t1 a1"}},
			{op: "tick", at: 10 * time.Second, want: []string{"F fw/t1 a1 retry, next 20s"}},
			{op: "pause", at: 11 * time.Second},
			// Checkpointed and acknowledged to the executor, not sent.
			{op: "update", fw: "fw2", task: "t2", state: running, uuid: "b1", exec: true, at: 12 * time.Second,
				want: []string{"W update fw2/t2 b1", "E fw2/t2 b1 to ex-t2"}},
			{op: "tick", at: time.Hour},
			{op: "resumeFramework", at: time.Hour},
			{op: "resume", at: time.Hour, want: []string{"F fw/t1 a1", "F fw2/t2 b1"}},
			// Fresh backoffs.
			{op: "tick", at: time.Hour + 10*time.Second, want: []string{"F fw/t1 a1 retry, next 20s", "F fw2/t2 b1 retry, next 20s"}},
		},
	}, {
		name: "a framework that is back gets its heads at once, with fresh backoffs",
		steps: []sumStep{
			{op: "update", task: "t1", state: running, uuid: "a1", want: []string{"W update fw/t1 a1", "F fw/t1 a1"}},
			{op: "update", fw: "fw2", task: "t2", state: running, uuid: "b1", want: []string{"W update fw2/t2 b1", "F fw2/t2 b1"}},
			{op: "tick", at: 10 * time.Second, want: []string{"F fw/t1 a1 retry, next 20s", "F fw2/t2 b1 retry, next 20s"}},
			{op: "resumeFramework", at: 15 * time.Second, want: []string{"F fw/t1 a1"}},
			{op: "tick", at: 25 * time.Second, want: []string{"F fw/t1 a1 retry, next 20s"}},
			{op: "tick", at: 30 * time.Second, want: []string{"F fw2/t2 b1 retry, next 40s"}},
			{op: "resumeFramework", fw: "gone", at: 31 * time.Second},
		},
	}, {
		name: "an acknowledged update is not resent",
		steps: []sumStep{
			{op: "update", task: "t1", state: running, uuid: "u1", want: []string{"W update fw/t1 u1", "F fw/t1 u1"}},
			{op: "ack", task: "t1", uuid: "u1", at: 5 * time.Second, want: []string{"W ack fw/t1 u1"}},
			{op: "tick", at: time.Hour},
			{op: "resume", at: time.Hour},
		},
	}, {
		name: "staging and duplicates of a queued update",
		steps: []sumStep{
			{op: "update", task: "t1", state: staging, uuid: "u1", exec: true,
				want: []string{"W update fw/t1 u1", "E fw/t1 u1 to ex-t1", "F fw/t1 u1"}},
			{op: "update", task: "t1", state: running, uuid: "u2", exec: true,
				want: []string{"W update fw/t1 u2", "E fw/t1 u2 to ex-t1"}},
			{op: "update", task: "t1", state: running, uuid: "u2", exec: true, verdict: UpdateDuplicate,
				want: []string{"E fw/t1 u2 to ex-t1"}},
			{op: "ack", task: "t1", uuid: "u1", want: []string{"W ack fw/t1 u1", "F fw/t1 u2"}},
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runSteps(t, NewUpdateManager(sumRetry, sumRetryMax), c.steps)
		})
	}
}

func TestUpdateManagerHeadAndStreams(t *testing.T) {
	m := NewUpdateManager(sumRetry, sumRetryMax)
	key := StreamKey{"fw", "t1"}
	assert.Nil(t, m.Head(key))
	assert.False(t, m.Has(key))
	_, ok := m.NextDeadline()
	assert.False(t, ok)

	m.Update(sumUpdate("fw", "t1", mesospb.TASK_RUNNING, "u1", false), sumT0)
	m.Update(sumUpdate("fw", "t1", mesospb.TASK_FINISHED, "u2", false), sumT0)
	require.NotNil(t, m.Head(key))
	assert.Equal(t, "u1", string(m.Head(key).Status.UUID))
	at, ok := m.NextDeadline()
	require.True(t, ok)
	assert.Equal(t, sumT0.Add(sumRetry), at)
	assert.Len(t, m.streams[key].pending, 2)

	m.Pause()
	_, ok = m.NextDeadline()
	assert.False(t, ok, "no retry is due while paused")
	m.Resume(sumT0.Add(time.Minute))
	at, _ = m.NextDeadline()
	assert.Equal(t, sumT0.Add(time.Minute+sumRetry), at)

	m.Ack(key, []byte("u1"), sumT0)
	assert.Equal(t, "u2", string(m.Head(key).Status.UUID))
	res := m.Ack(key, []byte("u2"), sumT0)
	assert.Equal(t, AckResult{Outcome: AckClosed}, res)
	assert.Nil(t, m.Head(key))
	assert.False(t, m.Has(key))
	assert.Empty(t, m.streams)
	_, ok = m.NextDeadline()
	assert.False(t, ok)
}

// Cleanup drops one framework's streams and their checkpoints, nothing
// of the others.
func TestUpdateManagerCleanup(t *testing.T) {
	m := NewUpdateManager(sumRetry, sumRetryMax)
	m.Update(sumUpdate("gone", "t1", mesospb.TASK_KILLED, "u1", false), sumT0)
	m.Update(sumUpdate("gone", "t2", mesospb.TASK_RUNNING, "u2", false), sumT0)
	m.Update(sumUpdate("gone", "t2", mesospb.TASK_KILLED, "u3", false), sumT0)
	m.Update(sumUpdate("live", "t1", mesospb.TASK_RUNNING, "u4", false), sumT0)
	m.Drain()
	assert.Equal(t, 3, m.Cleanup("gone"))
	assert.Equal(t, []string{"W remove gone/t1", "W remove gone/t2"}, render(m.Drain()))
	assert.Equal(t, 1, m.Len())
	assert.Equal(t, 1, m.Pending())
	at, ok := m.NextDeadline()
	require.True(t, ok, "the live framework's retry is still due")
	assert.Equal(t, sumT0.Add(sumRetry), at)
	m.Tick(at)
	assert.Equal(t, []string{"F live/t1 u4 retry, next 20s"}, render(m.Drain()))
}

func TestUpdateManagerRecover(t *testing.T) {
	u := func(task string, state mesospb.TaskState, uuid string) *internalpb.Call_StatusUpdate {
		return sumUpdate("fw", task, state, uuid, true)
	}
	stored := []checkpoint.Stream{
		// Part acknowledged: the rest is pending, in order.
		{FrameworkID: "fw", TaskID: "a", Updates: []*internalpb.Call_StatusUpdate{
			u("a", mesospb.TASK_STARTING, "a1"), u("a", mesospb.TASK_RUNNING, "a2"), u("a", mesospb.TASK_FINISHED, "a3"),
		}, Acked: [][]byte{[]byte("a1")}},
		// Over: its terminal update was acknowledged.
		{FrameworkID: "fw", TaskID: "b", Updates: []*internalpb.Call_StatusUpdate{
			u("b", mesospb.TASK_RUNNING, "b1"), u("b", mesospb.TASK_KILLED, "b2"),
		}, Acked: [][]byte{[]byte("b1"), []byte("b2")}},
		// Terminal acknowledged, but an update was queued behind it.
		{FrameworkID: "fw", TaskID: "c", Updates: []*internalpb.Call_StatusUpdate{
			u("c", mesospb.TASK_FAILED, "c1"), u("c", mesospb.TASK_RUNNING, "c2"),
		}, Acked: [][]byte{[]byte("c1")}},
		// Nothing acknowledged.
		{FrameworkID: "fw", TaskID: "d", Updates: []*internalpb.Call_StatusUpdate{u("d", mesospb.TASK_LOST, "d1")}},
	}
	m := NewUpdateManager(sumRetry, sumRetryMax)
	m.Pause() // as the agent is until it registers
	m.Recover(stored)
	assert.Equal(t, []string{"W remove fw/b"}, render(m.Drain()), "a stream that was over goes")
	assert.False(t, m.Has(StreamKey{"fw", "b"}))
	assert.Equal(t, "a2", string(m.Head(StreamKey{"fw", "a"}).Status.UUID))
	_, ok := m.NextDeadline()
	assert.False(t, ok, "nothing is sent before the agent registers")

	runSteps(t, m, []sumStep{
		{op: "resume", want: []string{"F fw/a a2", "F fw/c c2", "F fw/d d1"}},
		// What was taken before the restart is a duplicate after it.
		{op: "update", task: "a", state: mesospb.TASK_STARTING, uuid: "a1", exec: true, verdict: UpdateDuplicate,
			want: []string{"E fw/a a1 to ex-a"}},
		{op: "update", task: "a", state: mesospb.TASK_FINISHED, uuid: "a3", exec: true, verdict: UpdateDuplicate,
			want: []string{"E fw/a a3 to ex-a"}},
		// A task whose end was acknowledged takes no more.
		{op: "update", task: "c", state: mesospb.TASK_RUNNING, uuid: "c3", exec: true, verdict: UpdateAfterTerminal,
			want: []string{"E fw/c c3 to ex-c"}},
		{op: "ack", task: "a", uuid: "a1", outcome: AckDuplicate},
		{op: "ack", task: "c", uuid: "c2", outcome: AckClosed, want: []string{"W remove fw/c c2"}},
		{op: "ack", task: "a", uuid: "a2", outcome: AckTaken, want: []string{"W ack fw/a a2", "F fw/a a3"}},
		{op: "ack", task: "a", uuid: "a3", outcome: AckClosed, want: []string{"W remove fw/a a3"}},
		{op: "tick", at: 10 * time.Second, want: []string{"F fw/d d1 retry, next 20s"}},
	})
}

// A long random run of inputs, against the invariants every Ready must
// keep: an update is forwarded only once checkpointed (in an earlier
// Ready, or earlier in the same one), and only the head of its stream;
// an executor is acknowledged only for an update checkpointed; per task,
// the updates first forwarded come in the order taken; nothing goes out
// while paused. The seed is printed on failure.
func TestUpdateManagerRandomRunKeepsInvariants(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("APRON_SUM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = v
	}
	steps := 5000
	if testing.Short() {
		steps = 1000
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	m := NewUpdateManager(sumRetry, sumRetryMax)
	now := sumT0
	written := map[string]bool{}          // uuids checkpointed
	taken := map[StreamKey][]string{}     // uuids taken, per stream, in order
	live := map[StreamKey][]string{}      // uuids taken by the streams open
	firstSent := map[StreamKey][]string{} // uuids forwarded for the first time, in order
	sent := map[string]bool{}
	acked := map[string]bool{}
	paused := false
	seq := 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (APRON_SUM_SEED=%d): "+format, append([]any{seed, seed}, args...)...)
	}
	states := []mesospb.TaskState{mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_RUNNING, mesospb.TASK_FINISHED, mesospb.TASK_FAILED}
	for i := 0; i < steps; i++ {
		fw := fmt.Sprintf("fw%d", rng.IntN(2))
		task := fmt.Sprintf("t%d", rng.IntN(6))
		key := StreamKey{fw, task}
		switch r := rng.IntN(100); {
		case r < 40:
			var uuid string
			if ids := live[key]; len(ids) > 0 && rng.IntN(5) == 0 {
				uuid = ids[rng.IntN(len(ids))] // a duplicate
			} else {
				seq++
				uuid = fmt.Sprintf("u%d", seq)
			}
			if m.Update(sumUpdate(fw, task, states[rng.IntN(len(states))], uuid, rng.IntN(2) == 0), now) == UpdateTaken {
				taken[key] = append(taken[key], uuid)
				live[key] = append(live[key], uuid)
			}
		case r < 70:
			var res AckResult
			if h := m.Head(key); h != nil && rng.IntN(4) != 0 {
				res = m.Ack(key, h.Status.UUID, now)
				acked[string(h.Status.UUID)] = true
			} else if ids := live[key]; len(ids) > 0 {
				res = m.Ack(key, []byte(ids[rng.IntN(len(ids))]), now) // duplicate or out of order
			}
			if res.Outcome == AckClosed {
				// A new stream of the task may take the old uuids again,
				// as Mesos's: the agent forgets a task with its stream.
				delete(live, key)
			}
		case r < 90:
			now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
			m.Tick(now)
		case r < 94:
			m.Pause()
			paused = true
		case r < 98:
			m.Resume(now)
			paused = false
		default:
			m.ResumeFramework(fw, now)
		}
		r := m.Drain()
		for _, w := range r.Writes {
			if w.Op == WriteUpdate {
				written[string(w.Update.Status.UUID)] = true
			}
		}
		for _, a := range r.ExecutorAcks {
			if !written[string(a.UUID)] {
				fail("step %d: executor acknowledged for %s, never checkpointed", i, a.UUID)
			}
		}
		for _, f := range r.Forwards {
			id := string(f.Update.Status.UUID)
			k := StreamKey{f.Update.FrameworkID.Value, f.Update.Status.TaskID.Value}
			switch {
			case paused:
				fail("step %d: %s forwarded while paused", i, id)
			case !written[id]:
				fail("step %d: %s forwarded before it was checkpointed", i, id)
			case acked[id]:
				fail("step %d: %s forwarded after its acknowledgement", i, id)
			case m.Head(k) == nil && !acked[id]:
				fail("step %d: %s forwarded for a stream with no head", i, id)
			}
			if !sent[id] {
				sent[id] = true
				firstSent[k] = append(firstSent[k], id)
			}
		}
		if at, ok := m.NextDeadline(); ok && paused {
			fail("step %d: a retry due at %v while paused", i, at)
		}
	}
	// Per task, first sends follow the order taken (a stream closed and
	// started again keeps going in the same order).
	for k, ids := range firstSent {
		pos := map[string]int{}
		for i, id := range taken[k] {
			pos[id] = i
		}
		for i := 1; i < len(ids); i++ {
			if pos[ids[i]] < pos[ids[i-1]] {
				fail("%v: %s sent before %s, taken in the other order", k, ids[i], ids[i-1])
			}
		}
	}
}

// The core stays pure: nothing in updates.go may reach the disk,
// the network, a clock or another goroutine.
func TestUpdateManagerIsPure(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "updates.go", nil, parser.ImportsOnly)
	require.NoError(t, err)
	allowed := map[string]bool{
		`"bytes"`: true, `"container/heap"`: true, `"sort"`: true, `"time"`: true,
		`"github.com/apronhq/apron/agent/checkpoint"`:  true,
		`"github.com/apronhq/apron/api/v1/internalpb"`: true,
		`"github.com/apronhq/apron/api/v1/mesospb"`:    true,
	}
	for _, imp := range f.Imports {
		assert.True(t, allowed[imp.Path.Value], "updates.go imports %s", imp.Path.Value)
	}
	src, err := os.ReadFile("updates.go")
	require.NoError(t, err)
	for _, bad := range []string{"time.Now", "time.Since", "time.After", "go func", "a *Agent", "chan "} {
		assert.NotContains(t, string(src), bad)
	}
}

package examples

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/examples/internal/batch"
	"github.com/apronhq/apron/internal/proctest"
)

// TestFaults is the fault suite of the example binaries (issue 9): each
// subtest runs a cluster of processes on loopback (a master; agent-1,
// whose command executors run in process, and agent-2, whose command
// executors are processes; the batch framework, with a failover timeout
// and a journal) and a job of real tasks, and hurts one kind of process
// at random points of the job, several times: kill -9 or SIGTERM, then a
// restart on the same address, work directory and arguments. After the
// job it checks what Apron promises, as Mesos does (checkJob):
//
//   - the job completes: every task reached TASK_FINISHED, and the
//     framework received a terminal update for every task ID it launched;
//   - no task ran twice: no task ID started twice, and no task whose
//     command ran to its end was run again (each task appends its start
//     and its end to a shared file);
//   - per task ID, the updates arrived in order (see checkOrder).
//
// The random points come from a seed, printed; APRON_FAULT_SEED=<seed>
// runs the same faults at the same points of the job again (the timing of
// processes still varies). Skipped with -short, and off Linux.
//
// The subtests are what README's "What survives what" table cites:
//
//	AgentKill9/{InProcess,Process}     agent kill -9, restarted on its work dir: its tasks run on, finish, are reported once
//	AgentSIGTERM/{InProcess,Process}   the same after a graceful stop
//	Agent*/NoCheckpoint/*              a framework without FrameworkInfo.checkpoint: Mesos kills its tasks on that agent
//	                                   (the agent neither checkpoints nor recovers them); the job retries them
//	Master/{Kill9,SIGTERM}             master restarted on its address and its registry (-work-dir): agents
//	                                   re-register with their tasks, the framework re-subscribes; nothing lost or
//	                                   run twice (reconciliation of a task on an agent not yet back waits for it)
//	Scheduler/{Kill9,SIGTERM}          the framework's process restarted with -framework-id within its failover timeout
//	Executor/Kill9                     a command executor process killed: its task ends TASK_FAILED
//	                                   (REASON_EXECUTOR_TERMINATED), its container destroyed, the job retries it
//	Mixed/Checkpoint                   4 to 6 faults of any of the kinds above in one job
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: runs clusters of processes and kills them; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("fault suite: the agents' process containerizer and /proc are Linux's")
	}
	seed := faultSeed(t)
	t.Logf("fault seed %d: APRON_FAULT_SEED=%d reproduces this run", seed, seed)
	bin := proctest.BuildT(t, "examples/master", "examples/agent", "examples/batch")

	groups := []struct {
		name   string
		leaves []faultCase
	}{
		{"AgentKill9", []faultCase{
			{name: "InProcess", target: agentInProcess, sig: syscall.SIGKILL, checkpoint: true},
			{name: "Process", target: agentProcess, sig: syscall.SIGKILL, checkpoint: true},
			{name: "NoCheckpoint/InProcess", target: agentInProcess, sig: syscall.SIGKILL},
			{name: "NoCheckpoint/Process", target: agentProcess, sig: syscall.SIGKILL},
		}},
		{"AgentSIGTERM", []faultCase{
			{name: "InProcess", target: agentInProcess, sig: syscall.SIGTERM, checkpoint: true},
			{name: "Process", target: agentProcess, sig: syscall.SIGTERM, checkpoint: true},
			{name: "NoCheckpoint/InProcess", target: agentInProcess, sig: syscall.SIGTERM},
			{name: "NoCheckpoint/Process", target: agentProcess, sig: syscall.SIGTERM},
		}},
		{"Master", []faultCase{
			{name: "Kill9", target: masterProc, sig: syscall.SIGKILL, checkpoint: true},
			{name: "SIGTERM", target: masterProc, sig: syscall.SIGTERM, checkpoint: true},
		}},
		{"Scheduler", []faultCase{
			{name: "Kill9", target: schedulerProc, sig: syscall.SIGKILL, checkpoint: true},
			{name: "SIGTERM", target: schedulerProc, sig: syscall.SIGTERM, checkpoint: true},
		}},
		{"Executor", []faultCase{
			{name: "Kill9", target: executorProc, sig: syscall.SIGKILL, checkpoint: true},
		}},
		{"Mixed", []faultCase{
			{name: "Checkpoint", target: mixed, checkpoint: true},
		}},
	}
	for gi, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for li, c := range g.leaves {
				stream := uint64(gi*10 + li + 1) // each subtest its own random stream of the seed
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.tag = fmt.Sprintf("[APRON_FAULT_SEED=%d %s]", seed, t.Name())
					t.Logf("%s: fault seed %d", t.Name(), seed)
					runFaultCase(t, bin, c, rand.New(rand.NewPCG(uint64(seed), stream)))
				})
			}
		})
	}
}

// faultSeed is APRON_FAULT_SEED, or the time.
func faultSeed(t *testing.T) int64 {
	if s := os.Getenv("APRON_FAULT_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err, "APRON_FAULT_SEED must be an integer")
		return seed
	}
	return time.Now().UnixNano()
}

type faultTarget int

const (
	agentInProcess faultTarget = iota // agent-1
	agentProcess                      // agent-2
	masterProc
	schedulerProc
	executorProc // a command executor process of agent-2
	mixed        // any of the above, at random, at each fault
)

// faultCase is one subtest: which process is hurt, how, and whether the
// framework asks for checkpointing.
type faultCase struct {
	name       string
	target     faultTarget
	sig        syscall.Signal
	checkpoint bool

	tag string // in every failure message: the seed and the subtest
}

const (
	faultTasks      = 30
	faultTaskCPUs   = 0.25
	faultAgentCPUs  = 1 // 4 tasks at a time per agent: both always busy
	longTask        = 3 * time.Second
	maxFaultsPerRun = 4
)

// faultCluster is one subtest's cluster and job.
type faultCluster struct {
	t   *testing.T
	c   faultCase
	rng *rand.Rand
	bin map[string]string
	dir string

	master *proctest.Proc
	agents [2]*proctest.Proc
	batch  *proctest.Proc
	// batchOut is the output of every batch process so far, the current one
	// last.
	batchOut    []*proctest.Proc
	batchArgs   []string
	frameworkID string

	runs, events string
	durations    []time.Duration
	// expectKilled are task IDs the agent must have killed (Mesos's
	// behaviour for a non-checkpointing framework's tasks across an
	// agent restart), and expectFailed those whose executor was killed.
	expectKilled map[string]string
	expectFailed map[string]bool
	faults       []string
}

func runFaultCase(t *testing.T, bin map[string]string, c faultCase, rng *rand.Rand) {
	fc := &faultCluster{t: t, c: c, rng: rng, bin: bin, dir: t.TempDir(),
		expectKilled: map[string]string{}, expectFailed: map[string]bool{}}
	// Registered first, so it runs last, once proctest has stopped the
	// processes it started and their process groups.
	t.Cleanup(func() { killLeftovers(t, fc.dir) })
	fc.runs = filepath.Join(fc.dir, "runs")
	fc.events = filepath.Join(fc.dir, "events.jsonl")
	fc.start()

	// Fault points: after how many task ends each fault comes, spread
	// over the first two thirds of the job (half, for executor kills),
	// then a random delay.
	n := 2 + rng.IntN(maxFaultsPerRun-1)
	if c.target == mixed {
		n = maxFaultsPerRun + rng.IntN(3)
	}
	span := faultTasks * 2 / 3
	if c.target == executorProc {
		span = faultTasks / 2 // long tasks still to start, to kill
	}
	points := make([]int, n)
	for i := range points {
		points[i] = 1 + rng.IntN(span)
	}
	sort.Ints(points)
	for i, p := range points {
		if !fc.waitEnds(p) {
			t.Logf("%s the job ended before fault %d of %d", c.tag, i+1, n)
			break
		}
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond) // a random point, not a wait for readiness
		if fc.batch.Exited() {
			t.Logf("%s the job ended before fault %d of %d", c.tag, i+1, n)
			break
		}
		fc.inject(i + 1)
	}
	t.Logf("%s faults: %s", c.tag, strings.Join(fc.faults, "; "))
	require.NotEmpty(t, fc.faults, "%s no fault was injected during the job", c.tag)

	code := fc.batch.Wait(t, wait)
	fc.checkJob(code)
}

// start starts the master, the agents and the first batch process, and
// writes the tasks' durations.
func (fc *faultCluster) start() {
	t := fc.t
	fc.master = proctest.StartServer(t, "master", "/health", wait, func(addr string) *exec.Cmd {
		// Its registry (-work-dir) survives its restarts.
		return exec.Command(fc.bin["master"], "-listen", addr, "-allocation-interval", "100ms", "-log-level", "info",
			"-work-dir", filepath.Join(fc.dir, "master"))
	})
	modes := []string{"in-process", "process"}
	if fc.c.target == executorProc {
		// Executor processes to kill on both agents, so a long task to
		// kill is running somewhere at any point of the job.
		modes[0] = "process"
	}
	for i, mode := range modes {
		name := fmt.Sprintf("agent-%d", i+1)
		fc.agents[i] = proctest.StartServer(t, name, "/health", wait, func(addr string) *exec.Cmd {
			return exec.Command(fc.bin["agent"], "-master", fc.master.Addr, "-listen", addr,
				"-work-dir", filepath.Join(fc.dir, name), "-hostname", name,
				"-resources", fmt.Sprintf("cpus:%d;mem:1024;disk:1000;ports:[31000-32000]", faultAgentCPUs),
				"-command-executor", mode, "-log-level", "info")
		})
	}
	require.Eventually(t, func() bool { return agentsRegistered(fc.master.Addr) == 2 }, wait, 50*time.Millisecond,
		"%s both agents register with the master", fc.c.tag)

	// Short tasks of random lengths, and every fourth a long one, which
	// runs across a fault (and is the executor's target).
	var secs []string
	for i := 0; i < faultTasks; i++ {
		d := time.Duration(200+fc.rng.IntN(1300)) * time.Millisecond
		if i%4 == 3 {
			d = longTask
		}
		fc.durations = append(fc.durations, d)
		secs = append(secs, strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
	}
	// Each run appends "start <task ID> <pid> <sandbox> <unix ns>" and
	// "end <task ID> <pid>" to the runs file: one short O_APPEND write each.
	cmd := fmt.Sprintf(`set -- %s; eval "d=\${$TASK_INDEX}"; `+
		`echo "start $MESOS_EXECUTOR_ID $$ $MESOS_SANDBOX $(date +%%s%%N)" >> %[2]s; sleep "$d"; echo "end $MESOS_EXECUTOR_ID $$" >> %[2]s`,
		strings.Join(secs, " "), fc.runs)
	fc.batchArgs = []string{"-master", fc.master.Addr, "-tasks", strconv.Itoa(faultTasks), "-cmd", cmd,
		"-cpus", strconv.FormatFloat(faultTaskCPUs, 'f', -1, 64), "-mem", "16", "-name", "faults",
		"-max-attempts", "5", "-failover-timeout", "10m", "-journal-dir", filepath.Join(fc.dir, "journal"),
		"-events", fc.events, "-checkpoint=" + strconv.FormatBool(fc.c.checkpoint), "-log-level", "info"}
	require.NoError(t, os.MkdirAll(filepath.Join(fc.dir, "journal"), 0o755))
	fc.batch = proctest.Start(t, "batch", exec.Command(fc.bin["batch"], fc.batchArgs...))
	fc.batchOut = append(fc.batchOut, fc.batch)
	fc.frameworkID = fc.batch.WaitFor(t, regexp.MustCompile(`(?m)^framework-id: (\S+)$`), wait)[1]
}

// waitEnds waits until n task runs have ended; false when the batch
// process exits first (the job is over, or it was killed).
func (fc *faultCluster) waitEnds(n int) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if countRuns(fc.runs, "end") >= n {
			return true
		}
		if fc.batch.Exited() {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	fc.t.Fatalf("%s fewer than %d task runs ended within %v", fc.c.tag, n, wait)
	return false
}

// inject hurts the case's target once and restarts it.
func (fc *faultCluster) inject(i int) {
	t, c := fc.t, fc.c
	down := time.Duration(fc.rng.IntN(800)) * time.Millisecond
	target, sig := c.target, c.sig
	if target == mixed {
		target = faultTarget(fc.rng.IntN(int(mixed)))
		sig = []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM}[fc.rng.IntN(2)]
		if target == executorProc {
			sig = syscall.SIGKILL
		}
	}
	sigName := map[syscall.Signal]string{syscall.SIGKILL: "kill -9", syscall.SIGTERM: "SIGTERM"}[sig]
	switch target {
	case agentInProcess, agentProcess:
		a := fc.agents[target]
		require.NoError(t, a.Signal(sig), "%s %s %s", c.tag, sigName, a.Name)
		a.Wait(t, wait)
		fc.faults = append(fc.faults, fmt.Sprintf("%d: %s %s, down %v", i, sigName, a.Name, down))
		time.Sleep(down)
		fc.agents[target] = a.Restart(t, wait)
		if !c.checkpoint {
			// Mesos: the agent does not recover a non-checkpointing
			// framework's executors (slave.cpp: only checkpointing
			// frameworks are checkpointed and recovered; Slave::finalize
			// shuts them down on a graceful stop; orphan containers are
			// destroyed on recovery). What runs there now must not
			// finish.
			workDir := filepath.Join(fc.dir, a.Name)
			var ids []string
			for id := range runningRuns(fc.runs, workDir) {
				fc.expectKilled[id] = fmt.Sprintf("fault %d", i)
				ids = append(ids, id)
			}
			sort.Strings(ids)
			fc.faults[len(fc.faults)-1] += fmt.Sprintf(" (running there after the restart: %v)", ids)
		}
	case masterProc:
		m := fc.master
		require.NoError(t, m.Signal(sig), "%s %s the master", c.tag, sigName)
		m.Wait(t, wait)
		fc.faults = append(fc.faults, fmt.Sprintf("%d: %s master, down %v", i, sigName, down))
		time.Sleep(down)
		fc.master = m.Restart(t, wait)
	case schedulerProc:
		b := fc.batch
		if !b.Exited() {
			require.NoError(t, b.Signal(sig), "%s %s the scheduler", c.tag, sigName)
		}
		code := b.Wait(t, wait)
		if code == 0 {
			return // it had finished the job
		}
		fc.faults = append(fc.faults, fmt.Sprintf("%d: %s scheduler (exit %d), down %v", i, sigName, code, down))
		time.Sleep(down)
		args := append(append([]string(nil), fc.batchArgs...), "-framework-id", fc.frameworkID)
		fc.batch = proctest.Start(t, "batch", exec.Command(fc.bin["batch"], args...))
		fc.batchOut = append(fc.batchOut, fc.batch)
		fc.batch.WaitFor(t, regexp.MustCompile(`(?m)^framework \S+ registered`), wait)
	case executorProc:
		// A command executor process whose long task started at most
		// freshTask ago, so that it is still far from its end (which
		// would race with the kill): on agent-2, whose command executors
		// are processes, or on agent-1 too in the Executor case, where
		// its are processes as well.
		dirs := []string{filepath.Join(fc.dir, "agent-2")}
		if c.target == executorProc {
			dirs = append(dirs, filepath.Join(fc.dir, "agent-1"))
		}
		const freshTask = time.Second
		var victim string
		var pid int
		require.Eventually(t, func() bool {
			for _, workDir := range dirs {
				for id, started := range runningRuns(fc.runs, workDir) {
					if time.Since(started) > freshTask || fc.durations[taskIndex(id)-1] != longTask || fc.expectFailed[id] {
						continue
					}
					if p := executorPid(fc.bin["agent"], workDir, id); p > 0 {
						victim, pid = id, p
						return true
					}
				}
			}
			return fc.batch.Exited()
		}, wait, 20*time.Millisecond, "%s a long task starts in an executor process", c.tag)
		if victim == "" {
			return
		}
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL), "%s kill -9 the executor of %s", c.tag, victim)
		fc.expectFailed[victim] = true
		fc.faults = append(fc.faults, fmt.Sprintf("%d: kill -9 executor of %s (pid %d)", i, victim, pid))
	}
}

// checkJob checks the invariants after the job (see TestFaults).
func (fc *faultCluster) checkJob(code int) {
	t, tag := fc.t, fc.c.tag
	var out strings.Builder
	for _, b := range fc.batchOut {
		out.WriteString(b.Output())
	}
	assert.Equal(t, 0, code, "%s the batch job succeeds", tag)
	assert.Contains(t, fc.batch.Output(), fmt.Sprintf("%d tasks: %d finished, 0 failed for good", faultTasks, faultTasks),
		"%s every task finished", tag)

	runs := readRuns(t, fc.runs)
	events := readEvents(t, fc.events)
	byTask := map[string][]batch.Event{} // the updates received, per task ID
	launched := map[string]bool{}
	for _, e := range events {
		switch {
		case strings.HasPrefix(e.TaskID, "apron-batch-reconciled-"):
			// The framework's reconciliation marker.
		case e.Type == "LAUNCH":
			launched[e.TaskID] = true
		default:
			byTask[e.TaskID] = append(byTask[e.TaskID], e)
		}
	}

	// No task ID ran twice.
	for id, r := range runs {
		assert.LessOrEqual(t, r.starts, 1, "%s task %s started %d times", tag, id, r.starts)
	}

	// Per task: finished once, by the attempt whose command ran to its
	// end; no other attempt's command ran to its end.
	for i := 1; i <= faultTasks; i++ {
		name := fmt.Sprintf("task-%02d", i)
		var finished []string
		for id, evs := range byTask {
			if taskName(id) == name && slicesContainState(evs, "TASK_FINISHED") {
				finished = append(finished, id)
			}
		}
		sort.Strings(finished)
		if len(finished) != 1 {
			var how []string
			for _, id := range finished {
				how = append(how, id+": "+describe(byTask[id]))
			}
			t.Errorf("%s %s: the framework received TASK_FINISHED for %d attempts, want 1 (a task ran again after it was reported lost or failed, and both finished):\n\t%s",
				tag, name, len(finished), strings.Join(how, "\n\t"))
		}
		for _, id := range finished {
			if runs[id] == nil || runs[id].ends == 0 {
				t.Errorf("%s %s was reported TASK_FINISHED, and its command did not run to its end", tag, id)
			}
		}
	}
	for id, r := range runs {
		if r.ends == 0 || slicesContainState(byTask[id], "TASK_FINISHED") {
			continue
		}
		if !fc.c.checkpoint && slicesContainState(byTask[id], "TASK_LOST") {
			// Without checkpointing Mesos promises no more: a task that
			// ended just before its agent stopped may have its update
			// still in the agent's memory, which a restarted agent does
			// not recover, and the master reports the task lost, so the
			// framework runs it again (at least once, not exactly once).
			continue
		}
		hint := ""
		if strings.Contains(describe(byTask[id]), "exit status unknown") {
			hint = " [the known defect of issue 9 item 1: a task of the in-process command executor across an agent restart]"
		}
		t.Errorf("%s %s: its command ran to its end (exit 0), and the framework was told %s, so the job ran finished work again%s",
			tag, id, describe(byTask[id]), hint)
	}

	// Every task ID launched got a terminal update, last; in order.
	for id := range runs {
		if !launched[id] {
			t.Errorf("%s task %s ran, and its framework never launched it", tag, id)
		}
	}
	for id := range byTask {
		launched[id] = true
	}
	for id := range launched {
		evs := byTask[id]
		if len(evs) == 0 {
			t.Errorf("%s task %s was launched, and its framework received no update for it", tag, id)
			continue
		}
		if last := evs[len(evs)-1]; !terminalState(last.State) {
			t.Errorf("%s task %s: the framework's last update is %s, not terminal: %s", tag, id, last.State, describe(evs))
		}
		for _, v := range checkOrder(evs) {
			t.Errorf("%s task %s: %s: %s", tag, id, v, describe(evs))
		}
	}

	// Faults with a known outcome.
	for id := range fc.expectFailed {
		evs := byTask[id]
		if len(evs) == 0 {
			continue // reported above
		}
		t.Logf("%s task %s, whose executor was killed: %s", tag, id, describe(evs))
		if last := evs[len(evs)-1]; last.State != "TASK_FAILED" && last.State != "TASK_LOST" {
			t.Errorf("%s task %s: its command executor was killed, so it ends TASK_FAILED (Mesos: REASON_EXECUTOR_TERMINATED); got %s", tag, id, describe(evs))
		}
		if runs[id] != nil && runs[id].ends > 0 {
			t.Errorf("%s task %s: its executor was killed, and its command still ran to its end: its container was not destroyed", tag, id)
		}
	}
	for id, fault := range fc.expectKilled {
		evs := byTask[id]
		if len(evs) > 0 && evs[len(evs)-1].State == "TASK_FINISHED" {
			t.Errorf("%s task %s of a non-checkpointing framework was running on the agent restarted by %s, and finished: "+
				"Mesos does not recover such tasks (they are killed, and reported TASK_LOST by reconciliation), Apron's agent did: %s",
				tag, id, fault, describe(evs))
		}
	}
	if t.Failed() {
		t.Logf("%s faults: %s\nevents:\n%s\nruns:\n%s\nbatch output:\n%s", tag, strings.Join(fc.faults, "; "),
			readFile(fc.events), readFile(fc.runs), out.String())
	}
}

// checkOrder checks the updates a framework received for one task ID, in
// the order received, against Mesos's ordering rules, and returns the
// violations:
//
//  1. The status update manager's stream: the updates with a uuid (the
//     agent's and executors', which the framework acknowledges) are sent
//     one at a time, each after the previous one was acknowledged, so they
//     arrive in the order they were made: their states never go back
//     (STAGING, STARTING, RUNNING, then one terminal state), and the
//     terminal one is the last. Duplicates of an update already received
//     are no violation: delivery is at least once, and an update not yet
//     acknowledged is resent after a failover.
//  2. No resurrection: after a terminal update with a uuid (the task's end,
//     as its agent reported it), no update has a non-terminal state,
//     except REASON_RECONCILIATION and REASON_AGENT_REREGISTERED ones
//     (Mesos's two kinds of "the master's current view").
//
// What is not checked, because Mesos does it too: the master's own
// updates, without a uuid, may run ahead of the stream (an agent that
// re-registers with a new master reports its tasks' latest state, which
// the master forwards with REASON_AGENT_REREGISTERED before the agent has
// resent its unacknowledged updates: TASK_FINISHED, then TASK_STARTING,
// TASK_RUNNING, TASK_FINISHED), or report a terminal state the stream
// does not end with (TASK_LOST from reconciliation, for a task the master
// does not know). Whether such a TASK_LOST made the job run a task twice,
// the caller checks from the runs.
func checkOrder(evs []batch.Event) []string {
	var out []string
	seen := map[string]bool{}
	rank, reliableTerminal := -1, ""
	for i, e := range evs {
		if e.UUID != "" && !seen[e.UUID] {
			seen[e.UUID] = true
			r := stateRank(e.State)
			switch {
			case reliableTerminal != "":
				out = append(out, fmt.Sprintf("update %d (%s, uuid %s) after the terminal %s of the same stream", i, e.State, e.UUID, reliableTerminal))
			case r < rank:
				out = append(out, fmt.Sprintf("update %d (%s, uuid %s) goes back in the stream", i, e.State, e.UUID))
			}
			rank = max(rank, r)
			if terminalState(e.State) && reliableTerminal == "" {
				reliableTerminal = e.State
				continue
			}
		}
		if reliableTerminal != "" && !terminalState(e.State) &&
			e.Reason != "REASON_AGENT_REREGISTERED" && e.Reason != "REASON_RECONCILIATION" {
			out = append(out, fmt.Sprintf("update %d (%s, %s, %s) after the terminal %s", i, e.State, e.Source, e.Reason, reliableTerminal))
		}
	}
	return out
}

// stateRank orders the states of one status update stream.
func stateRank(s string) int {
	switch s {
	case "TASK_STAGING":
		return 0
	case "TASK_STARTING":
		return 1
	case "TASK_RUNNING":
		return 2
	}
	if terminalState(s) {
		return 3
	}
	return 2 // TASK_KILLING, TASK_UNREACHABLE, ...: alongside RUNNING
}

func slicesContainState(evs []batch.Event, state string) bool {
	for _, e := range evs {
		if e.State == state {
			return true
		}
	}
	return false
}

func terminalState(s string) bool {
	switch s {
	case "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
		"TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN":
		return true
	}
	return false
}

func describe(evs []batch.Event) string {
	var parts []string
	for _, e := range evs {
		s := e.State
		if e.Reason != "" {
			s += " " + e.Reason
		}
		if e.Source != "" {
			s += " " + strings.TrimPrefix(e.Source, "SOURCE_")
		}
		if e.UUID == "" {
			s += " (no uuid)"
		}
		if e.Message != "" {
			s += fmt.Sprintf(" %q", e.Message)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " → ")
}

// taskName is the batch task of a task ID: task-07 of task-07-2.
func taskName(id string) string {
	if i := strings.LastIndexByte(id, '-'); i > 0 {
		return id[:i]
	}
	return id
}

// taskIndex is TASK_INDEX of a task ID: 7 of task-07-2.
func taskIndex(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(taskName(id), "task-"))
	return n
}

type runRecord struct {
	starts, ends int
	sandbox      string
}

// readRuns reads the runs file: per task ID, its starts and ends.
func readRuns(t *testing.T, path string) map[string]*runRecord {
	runs := map[string]*runRecord{}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		r := runs[f[1]]
		if r == nil {
			r = &runRecord{}
			runs[f[1]] = r
		}
		switch f[0] {
		case "start":
			r.starts++
			if len(f) > 3 {
				r.sandbox = f[3]
			}
		case "end":
			r.ends++
		}
	}
	return runs
}

// countRuns counts the lines of the runs file starting with what.
func countRuns(path, what string) int {
	data, _ := os.ReadFile(path)
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, what+" ") {
			n++
		}
	}
	return n
}

// runningRuns returns the task IDs started in a sandbox under workDir and
// not ended, with when each started.
func runningRuns(path, workDir string) map[string]time.Time {
	data, _ := os.ReadFile(path)
	running := map[string]time.Time{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && f[0] == "start" && strings.HasPrefix(f[3], workDir+string(filepath.Separator)):
			ns, _ := strconv.ParseInt(f[4], 10, 64)
			running[f[1]] = time.Unix(0, ns)
		case len(f) >= 2 && f[0] == "end":
			delete(running, f[1])
		}
	}
	return running
}

// readEvents reads the batch framework's event log.
func readEvents(t *testing.T, path string) []batch.Event {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var evs []batch.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e batch.Event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // a line torn by a kill -9
		}
		evs = append(evs, e)
	}
	require.NoError(t, sc.Err())
	return evs
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// killLeftovers kills what the cluster in dir left running outside the
// process groups proctest stops: processes that made sessions of their
// own (a containerizer's reaper, tasks) or outlived the agent that
// started them (executor processes of a killed agent), found by dir in
// their arguments or environment.
func killLeftovers(t *testing.T, dir string) {
	mentions := func(ss []string) bool {
		return slices.ContainsFunc(ss, func(s string) bool { return strings.Contains(s, dir+string(filepath.Separator)) })
	}
	for _, p := range proctest.Processes() {
		if mentions(p.Args) || mentions(p.Env) {
			t.Logf("killing pid %d, left behind: %s", p.Pid, strings.Join(p.Args, " "))
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	}
}

// executorPid finds the command executor process (the agent binary run
// as "agent executor") of a task of the agent on workDir, by its
// MESOS_EXECUTOR_ID and MESOS_DIRECTORY (the subtests running in parallel
// have the same task IDs); 0 when there is none.
func executorPid(agentBin, workDir, taskID string) int {
	return proctest.Find(func(p proctest.Process) bool {
		id, _ := p.Getenv("MESOS_EXECUTOR_ID")
		return slices.Equal(p.Args, []string{agentBin, "executor"}) && id == taskID && p.InSandboxUnder(workDir)
	})
}

// TestCheckOrder pins the ordering rules the fault suite enforces.
func TestCheckOrder(t *testing.T) {
	ev := func(state, uuid, reason string) batch.Event {
		return batch.Event{Type: "UPDATE", TaskID: "task-01-1", State: state, UUID: uuid, Reason: reason}
	}
	for _, tc := range []struct {
		name string
		evs  []batch.Event
		bad  int
	}{
		{"in order", []batch.Event{ev("TASK_STARTING", "01", ""), ev("TASK_RUNNING", "02", ""), ev("TASK_FINISHED", "03", "")}, 0},
		{"resent after a failover", []batch.Event{ev("TASK_STARTING", "01", ""), ev("TASK_RUNNING", "02", ""), ev("TASK_STARTING", "01", ""),
			ev("TASK_RUNNING", "02", ""), ev("TASK_FINISHED", "03", ""), ev("TASK_FINISHED", "03", "")}, 0},
		{"the master's view runs ahead of the stream", []batch.Event{ev("TASK_FINISHED", "", "REASON_AGENT_REREGISTERED"),
			ev("TASK_STARTING", "01", ""), ev("TASK_RUNNING", "02", ""), ev("TASK_FINISHED", "03", "")}, 0},
		{"reconciliation after the end", []batch.Event{ev("TASK_FINISHED", "03", ""), ev("TASK_RUNNING", "", "REASON_RECONCILIATION"),
			ev("TASK_LOST", "", "REASON_RECONCILIATION")}, 0},
		{"the stream goes back", []batch.Event{ev("TASK_RUNNING", "02", ""), ev("TASK_STARTING", "01", "")}, 1},
		{"an update after the stream's end", []batch.Event{ev("TASK_FAILED", "03", ""), ev("TASK_FINISHED", "04", "")}, 1},
		{"resurrection", []batch.Event{ev("TASK_FINISHED", "03", ""), ev("TASK_RUNNING", "", "")}, 1},
	} {
		assert.Len(t, checkOrder(tc.evs), tc.bad, tc.name)
	}
}

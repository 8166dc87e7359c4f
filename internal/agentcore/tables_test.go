package agentcore

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

var testNow = time.Unix(1e9, 0)

func idOf(id string) *mesospb.TaskID { return &mesospb.TaskID{Value: id} }

// namer names runs run-1, run-2, ...
func namer() func(fwID, execID string) (string, string) {
	n := 0
	return func(fwID, execID string) (string, string) {
		n++
		id := fmt.Sprintf("run-%d", n)
		return id, "/sandbox/" + fwID + "/" + execID + "/" + id
	}
}

func fwInfo(id string) mesospb.FrameworkInfo {
	return mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: id}, Name: "fw"}
}

func runOne(tb *Tables, name func(string, string) (string, string), task mesospb.TaskInfo) RunResult {
	return tb.RunTasks(RunTasks{Framework: fwInfo("fw"), Tasks: []mesospb.TaskInfo{task}, AgentID: "agent", NewRun: name})
}

func TestTablesRunTasks(t *testing.T) {
	tb, name := NewTables(), namer()
	res := runOne(tb, name, commandTask("a"))
	require.Equal(t, AdmitStart, res.Verdict)
	assert.True(t, res.FrameworkAdded)
	assert.True(t, res.FrameworkChanged)
	r := res.Run
	require.NotNil(t, r)
	assert.Equal(t, KindCommand, r.Kind())
	assert.Equal(t, "run-1", r.ContainerID())
	assert.Equal(t, "/sandbox/fw/a/run-1", r.Sandbox())
	assert.Equal(t, ExecutorRegistering, r.State())
	assert.True(t, r.Holder())
	task := r.Task("a")
	require.NotNil(t, task)
	assert.Same(t, task, tb.Task("fw", "a"))
	assert.True(t, task.Queued())
	assert.Equal(t, mesospb.TASK_STAGING, task.State())
	assert.Equal(t, "agent", task.Info().AgentID.Value, "the agent's ID is filled in")
	assert.Len(t, r.Queue(), 1)
	assert.Same(t, task.Info(), r.Queue()[0].Task)
	assert.True(t, r.Live())

	again := runOne(tb, name, commandTask("a"))
	assert.Equal(t, AdmitIgnore, again.Verdict, "a task ID in use")
	assert.False(t, again.FrameworkAdded)
	assert.False(t, again.FrameworkChanged)

	// Tasks for a registering run of a custom executor queue; for a
	// subscribed one they go at once.
	res = runOne(tb, name, executorTask("x1", "ex", "/bin/ex"))
	require.Equal(t, AdmitStart, res.Verdict)
	ex := res.Run
	res = runOne(tb, name, executorTask("x2", "ex", "/bin/ex"))
	require.Equal(t, AdmitQueue, res.Verdict)
	assert.Same(t, ex, res.Run)
	assert.Len(t, ex.Queue(), 2)
	assert.True(t, ex.Subscribed())
	launches := ex.Launches(false, nil)
	require.Len(t, launches, 2)
	assert.Empty(t, ex.Queue())
	for _, item := range launches {
		ex.Launched(item)
	}
	assert.False(t, ex.Task("x1").Queued())
	res = runOne(tb, name, executorTask("x3", "ex", "/bin/ex"))
	require.Equal(t, AdmitLaunch, res.Verdict)
	assert.Empty(t, ex.Queue(), "a launch is the caller's to send")
	assert.Equal(t, []string{"x3"}, res.Item.IDs())
	ex.Requeue(res.Item)
	assert.Len(t, ex.Queue(), 1)

	// A framework shutting down takes no task; the refused task is not
	// recorded.
	assert.Len(t, tb.ShutdownFramework("fw"), 2)
	res = runOne(tb, name, commandTask("b"))
	require.Equal(t, AdmitRefuse, res.Verdict)
	assert.Equal(t, mesospb.TaskStatus_REASON_FRAMEWORK_REMOVED, res.Refusal.Reason)
	assert.Nil(t, tb.Task("fw", "b"))
}

func TestTablesKill(t *testing.T) {
	tb, name := NewTables(), namer()
	group := &mesospb.TaskGroupInfo{Tasks: []mesospb.TaskInfo{*taskInfo("g1"), *taskInfo("g2")}}
	res := tb.RunTasks(RunTasks{
		Framework: fwInfo("fw"),
		Executor:  &mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "ex"}, Type: mesospb.ExecutorInfo_DEFAULT.Enum()},
		Group:     group, Tasks: group.Tasks, NewRun: name,
	})
	require.Equal(t, AdmitStart, res.Verdict)
	r := res.Run

	k := tb.Kill("fw", "nope")
	assert.Equal(t, KillUnknown, k.Verdict)
	assert.Equal(t, mesospb.TASK_LOST, k.Refusal.State)

	// A queued task dies with its group, by the agent's updates; the run,
	// with nothing left to do, is destroyed.
	k = tb.Kill("fw", "g1")
	require.Equal(t, KillQueued, k.Verdict)
	assert.Equal(t, []string{"g1", "g2"}, k.Victims)
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_KILLED_DURING_LAUNCH, k.Ending.Reason)
	assert.Empty(t, r.Queue())
	for _, id := range k.Victims {
		r.Task(id).Apply(AgentStatus(id, k.Ending, nil, testNow))
	}
	assert.False(t, r.Task("g1").Queued(), "a terminal update dequeues the task")
	require.True(t, r.AfterQueuedKill())
	assert.Equal(t, EndingKilledDuringLaunch(), *r.Ending())
	require.True(t, r.Destroy())
	assert.Equal(t, ExecutorTerminating, r.State())
	assert.False(t, tb.Kill("fw", "g1").Verdict == KillQueued, "ended")

	// A launched task's kill goes to its executor.
	res = runOne(tb, name, executorTask("x", "ex2", "/bin/ex"))
	res.Run.Subscribed()
	for _, item := range res.Run.Launches(false, nil) {
		res.Run.Launched(item)
	}
	assert.Equal(t, KillForward, tb.Kill("fw", "x").Verdict)
	assert.Equal(t, ShutdownGraceful, res.Run.Shutdown("bye"))
	assert.Equal(t, KillIgnored, tb.Kill("fw", "x").Verdict)
}

func TestTablesTerminateAndForget(t *testing.T) {
	tb, name := NewTables(), namer()
	r := runOne(tb, name, executorTask("a", "ex", "/bin/ex")).Run
	runOne(tb, name, executorTask("b", "ex", "/bin/ex"))
	r.Subscribed()
	for _, item := range r.Launches(false, nil) {
		r.Launched(item)
	}
	r.Task("a").Apply(mesospb.TaskStatus{TaskID: *idOf("a"), State: mesospb.TASK_FINISHED.Enum()})
	r.Exited(EndingExited(nil))
	r.Exited(EndingShutdown("later")) // the first ending decided stands
	term, ok := r.Terminate()
	require.True(t, ok)
	assert.Equal(t, EndingTerminated(), term.Ending)
	assert.True(t, term.ReportExit)
	assert.Equal(t, []TaskEnding{{TaskID: "b", Ending: EndingTerminated()}}, term.Updates, "only the task that was not terminal")
	_, ok = r.Terminate()
	assert.False(t, ok)
	assert.Empty(t, tb.Terminated(r).Runs, "its tasks wait for their acknowledgements")

	// A new run of the ID detaches the old one, which keeps its tasks.
	next := runOne(tb, name, executorTask("c", "ex", "/bin/ex"))
	require.Equal(t, AdmitRefuse, next.Verdict, "a terminated run takes no task")
	r.Task("b").Apply(AgentStatus("b", term.Updates[0].Ending, nil, testNow))

	f := tb.ForgetTask(r.Task("a"))
	assert.Len(t, f.Tasks, 1)
	assert.Empty(t, f.Runs)
	b := r.Task("b")
	f = tb.ForgetTask(b)
	assert.Len(t, f.Tasks, 1)
	assert.Equal(t, []*Run{r}, f.Runs)
	require.Len(t, f.Frameworks, 1)
	assert.Equal(t, "fw", f.Frameworks[0].ID())
	assert.Zero(t, tb.Len())
	assert.Empty(t, tb.ForgetTask(b).Tasks, "forgotten once")
}

func TestTablesTerminateSilentlyForARemovedFramework(t *testing.T) {
	tb, name := NewTables(), namer()
	r := runOne(tb, name, commandTask("a")).Run
	r.Subscribed()
	tb.ShutdownFramework("fw")
	assert.Equal(t, ShutdownGraceful, r.Shutdown("the framework is shutting down"))
	term, ok := r.Terminate()
	require.True(t, ok)
	assert.Empty(t, term.Updates)
	assert.False(t, term.ReportExit, "a command executor")
	assert.Equal(t, mesospb.TASK_KILLED, r.Task("a").State())
	f := tb.Terminated(r)
	assert.Len(t, f.Tasks, 1)
	assert.Len(t, f.Runs, 1)
	assert.Len(t, f.Frameworks, 1)
	assert.Zero(t, tb.Len())
}

func TestTablesSubscribedAgainRelaunchesLost(t *testing.T) {
	tb, name := NewTables(), namer()
	r := runOne(tb, name, executorTask("a", "ex", "/bin/ex")).Run
	runOne(tb, name, executorTask("b", "ex", "/bin/ex"))
	assert.True(t, r.Subscribed())
	for _, item := range r.Launches(false, nil) {
		r.Launched(item)
	}
	assert.False(t, r.Subscribed(), "again")
	launches := r.Launches(true, []mesospb.TaskInfo{*taskInfo("b")})
	require.Len(t, launches, 1)
	assert.Equal(t, []string{"a"}, launches[0].IDs())
}

func TestTablesReconcileAndReregistration(t *testing.T) {
	tb, name := NewTables(), namer()
	runOne(tb, name, commandTask("b"))
	r := runOne(tb, name, executorTask("a", "ex", "/bin/ex")).Run
	r.Task("a").Apply(mesospb.TaskStatus{TaskID: *idOf("a"), State: mesospb.TASK_RUNNING.Enum(), Message: str("up")})
	ids, known := tb.Reconcile("fw", nil)
	require.Equal(t, []mesospb.TaskID{*idOf("b"), *idOf("a")}, ids, "by executor ID, then task ID")
	require.NotNil(t, known[1])
	assert.Equal(t, mesospb.TASK_RUNNING, known[1].State)
	assert.Equal(t, "up", known[1].Last.GetMessage())
	ids, known = tb.Reconcile("fw", []mesospb.TaskID{*idOf("nope")})
	assert.Len(t, ids, 1)
	assert.Nil(t, known[0])
	_, known = tb.Reconcile("other", []mesospb.TaskID{*idOf("a")})
	assert.Nil(t, known[0])

	rr := tb.Reregistration()
	assert.Len(t, rr.Frameworks, 1)
	require.Len(t, rr.Executors, 1, "not the command executor")
	assert.Equal(t, "ex", rr.Executors[0].ExecutorID.Value)
	require.Len(t, rr.Tasks, 2)
	assert.Nil(t, rr.Tasks[0].ExecutorID, "a command task shows no executor")
	assert.Equal(t, "ex", rr.Tasks[1].ExecutorID.GetValue())
}

func TestTablesRecover(t *testing.T) {
	tb := NewTables()
	fw, _, _ := tb.EnsureFramework(fwInfo("fw"))
	exec := mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "ex"}}
	finished := &mesospb.TaskStatus{TaskID: *idOf("done"), State: mesospb.TASK_FINISHED.Enum()}
	running := &mesospb.TaskStatus{TaskID: *idOf("g1"), State: mesospb.TASK_RUNNING.Enum()}
	old, forgotten, dups := tb.Recover(fw, exec, KindDefault, "run-old", "/old", []RecoveredTask{
		{Info: *taskInfo("done"), Statuses: []*mesospb.TaskStatus{finished}}, // acknowledged before the restart
	})
	assert.Len(t, forgotten, 1)
	assert.Empty(t, dups)
	assert.False(t, old.Live())
	assert.Equal(t, []mesospb.TaskID{*idOf("done")}, old.TaskIDs())

	r, forgotten, dups := tb.Recover(fw, exec, KindDefault, "run-new", "/new", []RecoveredTask{
		{Info: *taskInfo("g1"), GroupKey: "g1", Statuses: []*mesospb.TaskStatus{running}, Head: running, Stream: true},
		{Info: *taskInfo("g2"), GroupKey: "g1"},
		{Info: *taskInfo("g1")}, // the same ID again
	})
	assert.Empty(t, forgotten)
	assert.Equal(t, []string{"g1"}, dups)
	assert.True(t, r.Holder(), "the live run takes the ID")
	assert.False(t, old.Holder())
	assert.True(t, fw.HasRunOf("ex"))
	assert.Equal(t, mesospb.TASK_RUNNING, r.Task("g1").State())
	p := r.Task("g1").Proto()
	assert.Equal(t, mesospb.TASK_RUNNING, p.GetStatusUpdateState())
	require.NotNil(t, r.Task("g1").Group())
	assert.Same(t, r.Task("g1").Group(), r.Task("g2").Group())
	assert.Len(t, r.Task("g1").Group().Tasks, 2)
	r.Resubscribing()
	assert.Equal(t, ExecutorRunning, r.State())

	// The old run, terminated with nothing left, goes.
	_, ok := old.Terminate()
	require.True(t, ok)
	f := tb.Terminated(old)
	assert.Equal(t, []*Run{old}, f.Runs)
	assert.Empty(t, f.Frameworks)
	assert.True(t, fw.HasRunOf("ex"))
}

func TestTablesArePure(t *testing.T) {
	for _, file := range []string{"tables.go", "executor.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		require.NoError(t, err)
		allowed := map[string]bool{
			`"slices"`: true, `"strings"`: true,
			`"github.com/gogo/protobuf/proto"`:             true,
			`"github.com/apronhq/apron/api/v1/executorpb"`: true,
			`"github.com/apronhq/apron/api/v1/mesospb"`:    true,
		}
		for _, imp := range f.Imports {
			assert.True(t, allowed[imp.Path.Value], "%s imports %s", file, imp.Path.Value)
		}
		src, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, bad := range []string{"time.Now", "go func", "chan ", "sync."} {
			assert.NotContains(t, string(src), bad, file)
		}
	}
}

func TestTablesAllTerminated(t *testing.T) {
	tb, name := NewTables(), namer()
	assert.True(t, tb.AllTerminated(nil), "nothing runs")
	a := runOne(tb, name, commandTask("a")).Run
	other := tb.RunTasks(RunTasks{Framework: fwInfo("other"), Tasks: []mesospb.TaskInfo{commandTask("b")}, NewRun: name}).Run
	onlyFw := func(fw *Framework) bool { return fw.ID() == "fw" }
	assert.False(t, tb.AllTerminated(nil))
	assert.False(t, tb.AllTerminated(onlyFw))
	a.Terminate()
	assert.True(t, tb.AllTerminated(onlyFw))
	assert.False(t, tb.AllTerminated(nil), "the other framework's run lives")
	other.Terminate()
	assert.True(t, tb.AllTerminated(nil))
}

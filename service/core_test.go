package service

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

func TestSpecValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Spec)
	}{
		{"bad name", func(s *Spec) { s.Name = "Bad_Name" }},
		{"star role", func(s *Spec) { s.Role = "*" }},
		{"no principal", func(s *Spec) { s.Principal = "" }},
		{"no pods", func(s *Spec) { s.Pods = nil }},
		{"twice", func(s *Spec) { s.Pods = append(s.Pods, s.Pods[0]) }},
		{"no cpus", func(s *Spec) { s.Pods[0].CPUs = 0 }},
		{"negative count", func(s *Spec) { s.Pods[0].Count = -1 }},
		{"absolute volume", func(s *Spec) { s.Pods[0].Volumes[0].Path = "/data" }},
		{"bad template", func(s *Spec) { s.Pods[0].Command = "{{.Index" }},
		{"no command", func(s *Spec) { s.Pods[0].Command = "" }},
		{"check on unknown port", func(s *Spec) { s.Pods[0].Readiness = &CheckSpec{TCPPort: "nope"} }},
		{"check of two kinds", func(s *Spec) { s.Pods[0].Readiness = &CheckSpec{TCPPort: "client", Command: "true"} }},
		{"bad predicate", func(s *Spec) { s.Pods[0].Placement.Require = []Predicate{{Attribute: "zone", Matches: "("}} }},
		{"bad strategy", func(s *Spec) { s.Pods[0].Strategy = "random" }},
		{"duplicate port", func(s *Spec) { s.Pods[0].Ports = append(s.Pods[0].Ports, s.Pods[0].Ports[0]) }},
		{"negative backoff", func(s *Spec) { s.RelaunchBackoff.Initial = -time.Second }},
		{"backoff above its max", func(s *Spec) { s.RelaunchBackoff = Backoff{Initial: time.Minute, Max: time.Second} }},
	}
	require.NoError(t, testSpec().Validate())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testSpec()
			tc.change(s)
			assert.ErrorIs(t, s.Validate(), ErrInvalidSpec)
		})
	}
	// Volumes cannot change in an update.
	next := testSpec()
	next.Pods[0].Volumes[0].Size = 200
	assert.ErrorIs(t, testSpec().validateUpdate(next), ErrInvalidSpec)
}

// The first deployment is serial: a pod is placed (RESERVE with its
// labels, CREATE, LAUNCH in one ACCEPT) only when the one before it runs.
func TestDeploySerial(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	calls := s.offer()
	require.Equal(t, []string{"node-0"}, launched(calls))
	assert.Equal(t, map[string]int{"RESERVE": 1, "CREATE": 1, "LAUNCH": 1, "DECLINE": 2}, ops(calls))
	var acc *schedulerpb.Call_Accept
	for _, c := range calls {
		if c.GetType() == schedulerpb.Call_ACCEPT {
			acc = c.Accept
		}
	}
	r := acc.Operations[0].Reserve.Resources[0]
	require.Len(t, r.Reservations, 1)
	assert.Equal(t, "db-role", r.Reservations[0].GetRole())
	assert.Equal(t, "db-principal", r.Reservations[0].GetPrincipal())
	labels := map[string]string{}
	for _, l := range r.Reservations[0].Labels.Labels {
		labels[l.Key] = l.GetValue()
	}
	assert.Equal(t, "db", labels[LabelService])
	assert.Equal(t, "node-0", labels[LabelPod])
	assert.NotEmpty(t, labels[LabelResourceID])

	assert.Empty(t, launched(s.offer()), "node-1 waits for node-0")
	s.run("node-0")
	assert.Equal(t, []string{"node-1"}, launched(s.offer()))
	assert.Equal(t, StatusInProgress, s.planStatus(PlanDeploy))
	s.run("node-1")
	assert.Equal(t, []string{"node-2"}, launched(s.offer()))
	s.run("node-2")
	assert.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
	assert.Empty(t, launched(s.offer()))
	// Each on its own port; the task's command is rendered.
	task := s.tasks[s.podTask("node-2")]
	assert.Contains(t, task.info.Command.GetValue(), "echo 2 > data/index")
}

func TestParallelDeploy(t *testing.T) {
	spec := testSpec()
	spec.Pods[0].Strategy, spec.Pods[0].Quorum = Parallel, false
	s := newSim(t, spec, 3)
	assert.Equal(t, []string{"node-0", "node-1", "node-2"}, launched(s.offer()))
}

// With a readiness check, RUNNING is not enough: the check must pass.
func TestReadinessGatesSteps(t *testing.T) {
	spec := testSpec()
	spec.Pods[0].Readiness = &CheckSpec{Command: "test -f data/index"}
	s := newSim(t, spec, 3)
	require.Equal(t, []string{"node-0"}, launched(s.offer()))
	assert.Equal(t, mesospb.CheckInfo_COMMAND, s.tasks[s.podTask("node-0")].info.Check.GetType())
	s.run("node-0")
	assert.Empty(t, launched(s.offer()), "running but not ready")
	s.status(s.podTask("node-0"), mesospb.TASK_RUNNING, func(st *mesospb.TaskStatus) {
		st.CheckStatus = &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_COMMAND.Enum(), Command: &mesospb.CheckStatusInfo_Command{ExitCode: ptr(int32(1))}}
	})
	assert.Empty(t, launched(s.offer()), "check failing")
	s.status(s.podTask("node-0"), mesospb.TASK_RUNNING, func(st *mesospb.TaskStatus) {
		st.CheckStatus = &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_COMMAND.Enum(), Command: &mesospb.CheckStatusInfo_Command{ExitCode: ptr(int32(0))}}
	})
	assert.Equal(t, []string{"node-1"}, launched(s.offer()))
}

// A failed task is relaunched in place: only on its agent, on its own
// reservation and volume, with no new RESERVE or CREATE.
func TestRecoveryInPlace(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	before, _ := s.core.Pod("node-1")
	s.status(before.TaskID, mesospb.TASK_FAILED)
	assert.Equal(t, StatusInProgress, s.planStatus(PlanRecovery))
	var others []string
	for _, id := range s.order {
		if id != before.AgentID {
			others = append(others, id)
		}
	}
	assert.Empty(t, launched(s.offer(others...)), "not relaunched elsewhere")
	s.tick(DefaultBackoffInitial) // its first failure's wait
	calls := s.offer(before.AgentID)
	require.Equal(t, []string{"node-1"}, launched(calls))
	assert.Equal(t, map[string]int{"LAUNCH": 1}, ops(calls))
	after, _ := s.core.Pod("node-1")
	assert.Equal(t, before.PersistenceIDs, after.PersistenceIDs)
	assert.Equal(t, before.Ports, after.Ports)
	assert.NotEqual(t, before.TaskID, after.TaskID)
	task := s.tasks[after.TaskID]
	var volumeID string
	for _, r := range task.info.Resources {
		if r.Disk != nil && r.Disk.Persistence != nil {
			volumeID = r.Disk.Persistence.ID
		}
	}
	assert.Equal(t, before.PersistenceIDs[0], volumeID)
	s.run("node-1")
	assert.Equal(t, StatusComplete, s.planStatus(PlanRecovery))
	assert.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
}

// The scheduler crashed after saving the state of a first launch and
// sending its ACCEPT, before seeing the reservation: the restarted core
// reconciles the task and adopts the labelled reservation it is offered,
// reserving nothing twice.
func TestCrashAfterReserveAdoptsReservation(t *testing.T) {
	s := newSim(t, testSpec(), 1)
	require.Equal(t, []string{"node-0"}, launched(s.offer()))
	taskID := s.podTask("node-0")
	// The ACCEPT was applied, then the task died while nobody listened.
	delete(s.agents["agent-0"].used, taskID)
	s.restart()
	var reconciled []string
	for _, c := range s.calls {
		if c.GetType() == schedulerpb.Call_RECONCILE {
			for _, task := range c.Reconcile.Tasks {
				reconciled = append(reconciled, task.TaskID.Value)
			}
		}
	}
	assert.Equal(t, []string{taskID}, reconciled)
	s.core.Update(mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: taskID}, State: mesospb.TASK_LOST.Enum(),
		Source: mesospb.TaskStatus_SOURCE_MASTER.Enum(), Reason: mesospb.TaskStatus_REASON_RECONCILIATION.Enum()})
	s.drain()
	calls := s.offer()
	assert.Equal(t, []string{"node-0"}, launched(calls))
	assert.Equal(t, map[string]int{"LAUNCH": 1}, ops(calls), "adopted, not reserved twice")
	assert.Len(t, s.agents["agent-0"].reservedFor("node-0").PersistentVolumes(), 1)
}

// The ACCEPT was lost in the crash: offers carry no reservation, and the
// pod is placed again with fresh IDs.
func TestCrashBeforeReserveReplaces(t *testing.T) {
	s := newSim(t, testSpec(), 1)
	require.Equal(t, []string{"node-0"}, launched(s.drainLostOffer()))
	first, _ := s.core.Pod("node-0")
	s.restart()
	s.core.Update(mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: first.TaskID}, State: mesospb.TASK_LOST.Enum(),
		Source: mesospb.TaskStatus_SOURCE_MASTER.Enum(), Reason: mesospb.TaskStatus_REASON_RECONCILIATION.Enum()})
	s.drain()
	calls := s.offer() // no reservation in the offer: the pod is placed anew
	assert.Equal(t, []string{"node-0"}, launched(calls))
	assert.Equal(t, 1, ops(calls)["RESERVE"])
	second, _ := s.core.Pod("node-0")
	assert.NotEqual(t, first.ResourceID, second.ResourceID)
}

// drainLostOffer offers every agent and loses the resulting calls.
func (s *sim) drainLostOffer() []*schedulerpb.Call {
	var offers []mesospb.Offer
	for _, id := range s.order {
		offers = append(offers, s.offerOf(s.agents[id]))
	}
	s.core.Offers(offers)
	return s.drainLost()
}

// Reservations labelled with the service but no current pod (a removed
// pod's, an earlier scheduler's) are destroyed and unreserved.
func TestStaleReservationsAreCleanedUp(t *testing.T) {
	s := newSim(t, testSpec(), 1)
	s.deployAllOn1()
	p, _ := s.core.Pod("node-0")
	// Forget the pod, as if it had been decommissioned by a state that
	// was then lost.
	s.status(p.TaskID, mesospb.TASK_KILLED)
	delete(s.core.state.Pods, "node-0")
	s.core.state.Paused[PlanDeploy] = true
	calls := s.offer()
	assert.Equal(t, map[string]int{"DESTROY": 1, "UNRESERVE": 1}, ops(calls))
	assert.True(t, s.agents["agent-0"].total.Reserved().Empty())
}

// deployAllOn1 deploys node-0, on a one-agent cluster.
func (s *sim) deployAllOn1() {
	require.Equal(s.t, []string{"node-0"}, launched(s.offer()))
	s.run("node-0")
}

// Replace moves a pod to another agent with a new volume, and cleans up
// its old reservation when its old agent offers it.
func TestReplace(t *testing.T) {
	s := newSim(t, testSpec(), 4)
	s.deployAll()
	old, _ := s.core.Pod("node-0")
	require.NoError(t, s.core.ReplacePod("node-0"))
	calls := s.drain()
	assert.Equal(t, []string{old.TaskID}, killed(calls))
	s.kills(calls)
	calls = s.offer(old.AgentID)
	assert.Empty(t, launched(calls), "not on its old agent")
	assert.Equal(t, map[string]int{"DESTROY": 1, "UNRESERVE": 1}, ops(calls))
	assert.True(t, s.agents[old.AgentID].reservedFor("node-0").Empty())
	calls = s.offer()
	assert.Equal(t, []string{"node-0"}, launched(calls))
	now, _ := s.core.Pod("node-0")
	assert.NotEqual(t, old.AgentID, now.AgentID)
	assert.NotEqual(t, old.PersistenceIDs, now.PersistenceIDs)
	assert.Equal(t, 1, ops(calls)["CREATE"])
}

// A pod whose agent is lost is replaced after ReplaceAfter, not before.
func TestReplaceAfterAgentLost(t *testing.T) {
	spec := testSpec()
	spec.ReplaceAfter = time.Minute
	s := newSim(t, spec, 4)
	s.deployAll()
	old, _ := s.core.Pod("node-1")
	s.core.AgentLost(old.AgentID)
	s.status(old.TaskID, mesospb.TASK_LOST)
	lost := s.agents[old.AgentID]
	delete(s.agents, old.AgentID)
	s.order = without(s.order, old.AgentID)
	s.now = s.now.Add(59 * time.Second)
	s.core.Tick(s.now)
	s.drain()
	assert.Empty(t, launched(s.offer()), "too early")
	s.now = s.now.Add(time.Second)
	s.core.Tick(s.now)
	s.drain()
	assert.Equal(t, []string{"node-1"}, launched(s.offer()))
	now, _ := s.core.Pod("node-1")
	assert.NotEqual(t, old.AgentID, now.AgentID)
	// The old agent comes back: its reservation is cleaned up, and the
	// task it still runs is killed.
	s.agents[lost.id] = lost
	s.order = append(s.order, lost.id)
	s.core.Update(mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: old.TaskID}, State: mesospb.TASK_RUNNING.Enum(), AgentID: &mesospb.AgentID{Value: lost.id}})
	calls := s.drain()
	assert.Equal(t, []string{old.TaskID}, killed(calls))
	s.kills(calls)
	calls = s.offer(lost.id)
	assert.Equal(t, map[string]int{"DESTROY": 1, "UNRESERVE": 1}, ops(calls))
}

func without(list []string, x string) []string {
	var out []string
	for _, v := range list {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

// A changed configuration rolls out one pod at a time, in place, never
// two pods of the quorum type down at once.
func TestRollingUpdate(t *testing.T) {
	for _, strategy := range []Strategy{Serial, Parallel} {
		t.Run(string(strategy), func(t *testing.T) { testRollingUpdate(t, strategy) })
	}
}

func testRollingUpdate(t *testing.T, strategy Strategy) {
	spec := testSpec()
	spec.Pods[0].Strategy = strategy // quorum: one at a time either way
	s := newSim(t, spec, 3)
	s.deployAll()
	before := map[string]PodStatus{}
	for _, p := range s.core.Pods() {
		before[p.Name] = p
	}
	next := testSpec()
	next.Pods[0].Strategy = strategy
	next.Pods[0].Env = map[string]string{"MODE": "v2"}
	require.NoError(t, s.core.UpdateSpec(next))
	calls := s.drain()
	for i, name := range []string{"node-0", "node-1", "node-2"} {
		require.Equal(t, []string{before[name].TaskID}, killed(calls), "step %d kills only %s", i, name)
		s.kills(calls)
		down := 0
		for _, p := range s.core.Pods() {
			if terminalState(p.TaskState) {
				down++
			}
		}
		assert.Equal(t, 1, down)
		calls = s.offer()
		require.Equal(t, []string{name}, launched(calls))
		assert.Equal(t, map[string]int{"LAUNCH": 1, "DECLINE": 2}, ops(calls), "in place")
		now, _ := s.core.Pod(name)
		assert.Equal(t, before[name].AgentID, now.AgentID)
		assert.Contains(t, envOf(s.tasks[now.TaskID].info), "MODE=v2")
		assert.Empty(t, killed(s.offer()), "nothing else killed before %s runs", name)
		calls = s.run(name)
	}
	assert.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
}

func envOf(ti mesospb.TaskInfo) []string {
	var out []string
	for _, v := range ti.Command.Environment.Variables {
		out = append(out, v.Name+"="+v.GetValue())
	}
	return out
}

// A resource change re-reserves in place: unreserve the old, reserve the
// new, same volume.
func TestResourceUpdateInPlace(t *testing.T) {
	s := newSim(t, testSpec(), 1)
	s.spec.Pods[0].Count = 1
	s.deployAllOn1()
	next := testSpec()
	next.Pods[0].Count = 1
	next.Pods[0].CPUs = 2
	require.NoError(t, s.core.UpdateSpec(next))
	s.kills(s.drain())
	calls := s.offer()
	require.Equal(t, []string{"node-0"}, launched(calls))
	assert.Equal(t, map[string]int{"RESERVE": 1, "LAUNCH": 1}, ops(calls))
	assert.Equal(t, 2.0, s.agents["agent-0"].reservedFor("node-0").CPUs())
}

// Scale up adds pods at the end; scale down removes the highest first:
// kill, destroy, unreserve.
func TestScaleUpAndDown(t *testing.T) {
	s := newSim(t, testSpec(), 4)
	s.deployAll()
	up := testSpec()
	up.Pods[0].Count = 4
	require.NoError(t, s.core.UpdateSpec(up))
	s.drain()
	assert.Equal(t, []string{"node-3"}, launched(s.offer()))
	s.run("node-3")
	assert.Equal(t, StatusComplete, s.planStatus(PlanDeploy))

	down := testSpec()
	down.Pods[0].Count = 2
	require.NoError(t, s.core.UpdateSpec(down))
	calls := s.drain()
	require.Equal(t, []string{s.podTask("node-3")}, killed(calls), "highest first, one at a time")
	p3, _ := s.core.Pod("node-3")
	s.kills(calls)
	n2 := s.podTask("node-2")
	calls = s.offer()
	assert.Equal(t, 1, ops(calls)["DESTROY"])
	assert.True(t, s.agents[p3.AgentID].reservedFor("node-3").Empty())
	_, err := s.core.Pod("node-3")
	assert.ErrorIs(t, err, ErrUnknownPod)
	require.Equal(t, []string{n2}, killed(calls))
	s.kills(calls)
	s.offer()
	assert.Len(t, s.core.Pods(), 2)
	assert.Equal(t, StatusComplete, s.planStatus(PlanDecommission))
}

// Uninstall kills everything, destroys and unreserves everything, then
// reports Done.
func TestUninstall(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	s.core.Uninstall()
	calls := s.drain()
	assert.Len(t, killed(calls), 3)
	assert.False(t, s.core.Done())
	s.kills(calls)
	s.offer()
	assert.True(t, s.core.Done())
	for _, a := range s.agents {
		assert.True(t, a.total.Reserved().Empty(), "agent %s: %s", a.id, a.total)
	}
	assert.ErrorIs(t, s.core.RestartPod("node-0"), ErrUninstalling)
}

// A restarted scheduler finishes an unfinished deploy plan without
// launching any pod twice.
func TestRestartMidDeploy(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.offer()
	s.run("node-0")
	s.offer()
	p1 := s.podTask("node-1")
	s.restart()
	assert.Empty(t, launched(s.offer()), "node-1 is not launched again")
	s.status(p1, mesospb.TASK_RUNNING)
	assert.Equal(t, []string{"node-2"}, launched(s.offer()))
	s.run("node-2")
	assert.Equal(t, StatusComplete, s.planStatus(PlanDeploy))
	assert.Len(t, s.tasks, 3)
}

func TestRestartAndPause(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	p, _ := s.core.Pod("node-2")
	require.NoError(t, s.core.PausePlan(PlanRecovery))
	require.NoError(t, s.core.RestartPod("node-2"))
	calls := s.drain()
	assert.Equal(t, []string{p.TaskID}, killed(calls))
	s.kills(calls)
	assert.Empty(t, launched(s.offer()), "recovery paused")
	assert.Equal(t, StatusPaused, s.planStatus(PlanRecovery))
	require.NoError(t, s.core.ResumePlan(PlanRecovery))
	assert.Equal(t, map[string]int{"REVIVE": 1}, ops(s.drain()), "work again: offers revived")
	calls = s.offer(p.AgentID)
	assert.Equal(t, []string{"node-2"}, launched(calls))
	assert.Equal(t, map[string]int{"LAUNCH": 1}, ops(calls))
	assert.ErrorIs(t, s.core.PausePlan("nope"), ErrUnknownPlan)
	assert.ErrorIs(t, s.core.RestartPod("nope"), ErrUnknownPod)

	require.NoError(t, s.core.PausePlan(PlanDeploy))
	next := testSpec()
	next.Pods[0].Command = "sleep 2000"
	require.NoError(t, s.core.UpdateSpec(next))
	assert.Empty(t, killed(s.drain()), "deploy paused")
}

func TestPlacement(t *testing.T) {
	t.Run("max per host", func(t *testing.T) {
		spec := testSpec()
		spec.Pods[0].Strategy, spec.Pods[0].Quorum = Parallel, false
		spec.Pods[0].Placement.MaxPerHost = 1
		s := newSim(t, spec, 2)
		assert.Len(t, launched(s.offer()), 2)
		assert.Empty(t, launched(s.offer()), "no third host")
		s.addAgent("zone-0")
		assert.Len(t, launched(s.offer()), 1)
	})
	t.Run("spread", func(t *testing.T) {
		spec := testSpec()
		spec.Pods[0].Strategy, spec.Pods[0].Quorum, spec.Pods[0].Count = Parallel, false, 4
		spec.Pods[0].Placement.SpreadBy = "zone"
		s := newSim(t, spec, 2) // agent-0 in zone-0, agent-1 in zone-1
		s.offer()
		s.offer()
		zones := map[string]int{}
		for _, p := range s.core.Pods() {
			if p.AgentID != "" {
				zones[s.agents[p.AgentID].attrs["zone"]]++
			}
		}
		assert.Equal(t, map[string]int{"zone-0": 2, "zone-1": 2}, zones)
	})
	t.Run("predicate", func(t *testing.T) {
		spec := testSpec()
		spec.Pods[0].Strategy, spec.Pods[0].Quorum = Parallel, false
		spec.Pods[0].Placement.Require = []Predicate{{Attribute: "zone", Matches: "zone-1"}}
		s := newSim(t, spec, 4)
		s.offer()
		for _, p := range s.core.Pods() {
			if p.AgentID != "" {
				assert.Equal(t, "zone-1", s.agents[p.AgentID].attrs["zone"])
			}
		}
	})
}

func TestStateRoundTrip(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	b, err := s.saved.Marshal()
	require.NoError(t, err)
	back, err := UnmarshalState(b)
	require.NoError(t, err)
	assert.Equal(t, s.saved, back)
	assert.Equal(t, "fw-1", back.FrameworkID)
}

// The task carries the pod's rendered command (config files first),
// environment, ports, URIs, image, checks and kill policy.
func TestTaskInfo(t *testing.T) {
	spec := testSpec()
	ps := &spec.Pods[0]
	ps.Strategy, ps.Quorum = Parallel, false
	ps.Env = map[string]string{"SELF": "{{.Pod}}@{{.Host}}:{{.Ports.client}}"}
	ps.Configs = []ConfigSpec{{Path: "conf/peers.txt", Template: "{{range .Peers}}{{.Pod}}={{.Addr \"client\"}} {{end}}it's"}}
	ps.URIs = []string{"http://127.0.0.1/dist.tgz"}
	ps.Image = "busybox:latest"
	ps.Health = &HealthSpec{CheckSpec: CheckSpec{TCPPort: "client"}, ConsecutiveFailures: 2, GracePeriod: 5 * time.Second}
	ps.Readiness = &CheckSpec{HTTPPort: "client", HTTPPath: "/ready"}
	ps.KillGracePeriod = 3 * time.Second
	s := newSim(t, spec, 3)
	s.offer()
	p, _ := s.core.Pod("node-0")
	ti := s.tasks[p.TaskID].info
	port := p.Ports["client"]
	require.NotZero(t, port)
	assert.Contains(t, envOf(ti), "PORT_CLIENT="+itoa(port))
	assert.Contains(t, envOf(ti), "SELF=node-0@"+p.Hostname+":"+itoa(port))
	assert.Contains(t, envOf(ti), "POD_INDEX=0")
	cmd := ti.Command.GetValue()
	assert.Contains(t, cmd, "mkdir -p 'conf' && printf '%s' 'node-0="+p.Hostname+":"+itoa(port))
	assert.Contains(t, cmd, `it'\''s' > 'conf/peers.txt'`)
	assert.Equal(t, "http://127.0.0.1/dist.tgz", ti.Command.URIs[0].Value)
	assert.Equal(t, "busybox:latest", ti.Container.Mesos.Image.Docker.Name)
	assert.Equal(t, mesospb.HealthCheck_TCP, ti.HealthCheck.GetType())
	assert.Equal(t, uint32(port), ti.HealthCheck.TCP.Port)
	assert.Equal(t, uint32(2), ti.HealthCheck.GetConsecutiveFailures())
	assert.Equal(t, mesospb.CheckInfo_HTTP, ti.Check.GetType())
	assert.Equal(t, "/ready", ti.Check.HTTP.GetPath())
	assert.Equal(t, int64(3*time.Second), ti.KillPolicy.GracePeriod.Nanoseconds)
	// Ready on a 2xx check status, not before.
	s.run("node-0")
	assert.False(t, s.core.state.Pods["node-0"].Ready)
	s.status(p.TaskID, mesospb.TASK_RUNNING, func(st *mesospb.TaskStatus) {
		st.CheckStatus = &mesospb.CheckStatusInfo{Type: mesospb.CheckInfo_HTTP.Enum(), HTTP: &mesospb.CheckStatusInfo_Http{StatusCode: ptr(uint32(200))}}
	})
	assert.True(t, s.core.state.Pods["node-0"].Ready)
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// An idle service declines offers for long, and revives them when work
// appears.
func TestIdleDeclineAndRevive(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	refuse := func(calls []*schedulerpb.Call) []float64 {
		var out []float64
		for _, c := range calls {
			if c.GetType() == schedulerpb.Call_DECLINE {
				out = append(out, c.Decline.Filters.GetRefuseSeconds())
			}
		}
		return out
	}
	// node-0 placed, nothing else to do until it is ready.
	assert.Equal(t, []float64{30, 30}, refuse(s.offer()))
	assert.Equal(t, map[string]int{"REVIVE": 1}, ops(s.run("node-0")), "node-1's step starts")
	s.deployAll()
	assert.Equal(t, []float64{30, 30, 30}, refuse(s.offer()), "idle: long filters")
	assert.Empty(t, ops(s.status(s.podTask("node-0"), mesospb.TASK_FAILED)), "no work until its wait is over")
	assert.Equal(t, map[string]int{"REVIVE": 1}, ops(s.tick(DefaultBackoffInitial)))
	assert.Empty(t, ops(s.status(s.podTask("node-1"), mesospb.TASK_FAILED)), "revived once")
}

// Scaling down a pod whose agent is lost removes it at once: there is
// nothing to clean up until the agent returns, and then its reservation
// is stale.
func TestScaleDownLostPod(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	p2, _ := s.core.Pod("node-2")
	s.core.AgentLost(p2.AgentID)
	s.status(p2.TaskID, mesospb.TASK_LOST)
	down := testSpec()
	down.Pods[0].Count = 2
	require.NoError(t, s.core.UpdateSpec(down))
	s.drain()
	_, err := s.core.Pod("node-2")
	assert.ErrorIs(t, err, ErrUnknownPod)
	// The agent returns with the reservation: destroyed and unreserved.
	assert.Equal(t, map[string]int{"DESTROY": 1, "UNRESERVE": 1, "DECLINE": 2}, ops(s.offer()))
}

// A spec changed across a restart: the KILL of the first pod to roll is
// decided by the new core before its driver has subscribed, so it never
// reaches the master; the subscription repeats it.
func TestKillRepeatedOnSubscribe(t *testing.T) {
	s := newSim(t, testSpec(), 3)
	s.deployAll()
	p0, _ := s.core.Pod("node-0")
	next := testSpec()
	next.Pods[0].Env = map[string]string{"MODE": "v2"}
	s.spec = next
	c, err := NewCore(CoreConfig{Spec: next, State: s.saved, NewID: s.newID})
	require.NoError(t, err)
	s.core = c
	s.core.Tick(s.now)
	assert.Equal(t, []string{p0.TaskID}, killed(s.drainLost()), "decided before subscribing: lost")
	s.core.Subscribed("fw-1")
	calls := s.drain()
	assert.Equal(t, []string{p0.TaskID}, killed(calls), "repeated on subscription")
	s.kills(calls)
	assert.Equal(t, []string{"node-0"}, launched(s.offer()))
}

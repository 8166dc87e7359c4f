package master_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// recoveredHarness is a state machine started from a registry that admits
// the given agents (each "host-<id>" with cpus:4;mem:1024).
func recoveredHarness(t *testing.T, cfg master.Config, agents ...string) (*harness, *master.RegistryState) {
	t.Helper()
	h := newHarness(t, cfg)
	st := master.NewRegistryState()
	for _, id := range agents {
		st.Agents[id] = recoveredInfo(id)
	}
	h.sm.Recover(st, h.now)
	h.collect()
	h.registry = nil
	return h, st
}

func recoveredInfo(id string) mesospb.AgentInfo {
	return mesospb.AgentInfo{Hostname: "host-" + id, ID: &mesospb.AgentID{Value: id}, Resources: mustProto("cpus:4;mem:1024")}
}

func (h *harness) reregisterRecovered(id string, tasks ...mesospb.Task) string {
	h.t.Helper()
	stream, err := h.sm.ConnectAgent(&internalpb.Call{
		Type:       internalpb.Call_REREGISTER.Enum(),
		Reregister: &internalpb.Call_Reregister{AgentInfo: recoveredInfo(id), Tasks: tasks},
	})
	require.NoError(h.t, err)
	h.collect()
	return stream
}

func runningTask(frameworkID, agentID, taskID string) mesospb.Task {
	return mesospb.Task{
		Name: taskID, TaskID: mesospb.TaskID{Value: taskID}, FrameworkID: mesospb.FrameworkID{Value: frameworkID},
		AgentID: mesospb.AgentID{Value: agentID}, State: mesospb.TASK_RUNNING.Enum(), Resources: mustProto("cpus:1;mem:64"),
	}
}

func TestRegistryOpsFollowTheCluster(t *testing.T) {
	h, _ := recoveredHarness(t, master.Config{})
	as, id := h.registerAgent("cpus:4;mem:1024")
	require.Len(t, h.registry, 1)
	admit, ok := h.registry[0].(master.AdmitAgent)
	require.True(t, ok, "%T", h.registry[0])
	require.Equal(t, id, admit.Info.ID.Value)
	h.registry = nil

	// Re-registering unchanged writes nothing; with new resources it does.
	h.reregister(id, "cpus:4;mem:1024")
	require.Empty(t, h.registry)
	h.takeAgent(as)

	_, err := h.operator(&masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(), UpdateWeights: &masterpb.Call_UpdateWeights{
		WeightInfos: []mesospb.WeightInfo{{Role: ptr("analytics"), Weight: 3}}}})
	require.NoError(t, err)
	require.Equal(t, []master.RegistryOp{master.UpdateWeights{Weights: map[string]float64{"analytics": 3}}}, h.registry)
	h.registry = nil

	require.NoError(t, h.updateQuota(false, quotaConfig(t, "analytics", "cpus:1", "")))
	require.Len(t, h.registry, 1)
	require.IsType(t, master.UpdateQuotas{}, h.registry[0])
	h.registry = nil

	_, err = h.operator(agentCall(masterpb.Call_MARK_AGENT_GONE, id))
	require.NoError(t, err)
	require.Len(t, h.registry, 1)
	require.Equal(t, id, h.registry[0].(master.MarkAgentGone).AgentID)
}

func TestRegistryUnreachableAfterMissedPings(t *testing.T) {
	h, _ := recoveredHarness(t, master.Config{AgentPingTimeout: time.Second, MaxAgentPingTimeouts: 2})
	_, id := h.registerAgent("cpus:4;mem:1024")
	h.registry = nil
	h.advance(4 * time.Second)
	require.Len(t, h.registry, 1)
	require.Equal(t, id, h.registry[0].(master.MarkAgentUnreachable).AgentID)
}

func TestRecoveredAgentReregistersQuietly(t *testing.T) {
	h, _ := recoveredHarness(t, master.Config{}, "A1")
	require.Len(t, h.sm.State().GetAgents.RecoveredAgents, 1)

	fi := frameworkInfo("fw")
	fi.ID = &mesospb.FrameworkID{Value: "F1"}
	fi.FailoverTimeout = ptr(3600.0)
	fs, fid := h.subscribe(fi)
	require.Equal(t, "F1", fid)

	// Mesos's reconciliation case (2): the task may be on an agent that has
	// not re-registered yet: no answer at all, with or without its agent.
	require.NoError(t, h.call(fs, fid, reconcileCall("t1", "A1")))
	require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{
		Tasks: []schedulerpb.Call_Reconcile_Task{{TaskID: mesospb.TaskID{Value: "t1"}}}}}))
	require.Empty(t, h.updates(fs))
	// Nor are its resources offered.
	h.advance(2 * time.Second)
	require.Empty(t, h.offers(fs))

	as := h.reregisterRecovered("A1", runningTask("F1", "A1", "t1"))
	evs := h.takeAgent(as)
	require.NotEmpty(t, evs)
	require.Equal(t, internalpb.Event_REREGISTERED, evs[0].GetType())
	require.Empty(t, h.registry, "the registry has it with this info already")
	require.Empty(t, h.updates(fs), "frameworks heard nothing of it, so nothing to take back")
	require.Empty(t, h.sm.State().GetAgents.RecoveredAgents)

	require.NoError(t, h.call(fs, fid, reconcileCall("t1", "A1")))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	require.Equal(t, mesospb.TASK_RUNNING, ups[0].GetState())

	// Its free resources are offered, not what t1 holds.
	h.advance(2 * time.Second)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	rs, err := resources.FromProto(offers[0].Resources)
	require.NoError(t, err)
	require.True(t, rs.Equal(resources.MustParse("cpus:3;mem:960")), "offered %s", rs)
}

func TestRecoveredGoneAgentIsRefused(t *testing.T) {
	h := newHarness(t, master.Config{})
	st := master.NewRegistryState()
	st.Gone["G1"] = h.now.Add(-time.Hour)
	h.sm.Recover(st, h.now)
	h.collect()
	stream := h.reregisterRecovered("G1")
	evs := h.takeAgent(stream)
	require.Len(t, evs, 1)
	require.Equal(t, internalpb.Event_SHUTDOWN, evs[0].GetType())
	require.True(t, h.closed[stream])
}

func TestRecoveredAgentsThatDoNotReturnBecomeUnreachable(t *testing.T) {
	h, _ := recoveredHarness(t, master.Config{AgentReregisterTimeout: time.Minute}, "A1", "A2")
	fs, fid := h.subscribe(frameworkInfo("fw"))
	h.reregisterRecovered("A1")
	h.registry = nil

	h.advance(59 * time.Second)
	require.Empty(t, h.registry)
	h.advance(2 * time.Second)
	require.Equal(t, "A2", h.registry[0].(master.MarkAgentUnreachable).AgentID)
	require.NoError(t, h.sm.Err())
	var lost []string
	for _, ev := range h.take(fs) {
		if ev.GetType() == schedulerpb.Event_FAILURE && ev.Failure.AgentID != nil {
			lost = append(lost, ev.Failure.AgentID.Value)
		}
	}
	require.Equal(t, []string{"A2"}, lost)

	require.NoError(t, h.call(fs, fid, reconcileCall("t9", "A2")))
	ups := h.updates(fs)
	require.Len(t, ups, 1)
	require.Equal(t, mesospb.TASK_LOST, ups[0].GetState(), "unreachable, for a framework that is not partition-aware")
}

func TestRecoveryAgentRemovalLimit(t *testing.T) {
	h, _ := recoveredHarness(t, master.Config{AgentReregisterTimeout: time.Minute, RecoveryAgentRemovalLimit: 0.5}, "A1", "A2", "A3")
	h.reregisterRecovered("A1")
	h.registry = nil
	h.advance(61 * time.Second)
	require.ErrorIs(t, h.sm.Err(), master.ErrRecoveryLimit)
	require.Empty(t, h.registry, "nothing is marked when the limit is exceeded")
}

func TestRecoveredSettings(t *testing.T) {
	h := newHarness(t, master.Config{Weights: map[string]float64{"flag": 2}})
	st := master.NewRegistryState()
	st.Weights["kept"] = 5
	st.Quotas["q"] = quotaConfig(t, "q", "cpus:1", "")
	h.sm.Recover(st, h.now)
	h.collect()
	require.Empty(t, h.registry, "the registry's settings win over the Config's, and are not written again")
	resp, err := h.operator(&masterpb.Call{Type: masterpb.Call_GET_WEIGHTS.Enum()})
	require.NoError(t, err)
	require.Equal(t, []mesospb.WeightInfo{{Role: ptr("kept"), Weight: 5}}, resp.GetWeights.WeightInfos)
	require.Len(t, h.quotaStatus().Configs, 1)

	// A registry without weights takes the Config's, durably.
	h2 := newHarness(t, master.Config{Weights: map[string]float64{"flag": 2}})
	h2.sm.Recover(master.NewRegistryState(), h2.now)
	h2.collect()
	require.Equal(t, []master.RegistryOp{master.UpdateWeights{Weights: map[string]float64{"flag": 2}}}, h2.registry)
}

// gatedRegistry is a registry whose writes wait for the test.
type gatedRegistry struct {
	master.Registry
	applied chan []master.RegistryOp
	gate    chan error
}

func (g *gatedRegistry) Apply(ctx context.Context, ops []master.RegistryOp) error {
	g.applied <- ops
	if err := <-g.gate; err != nil {
		return err
	}
	return g.Registry.Apply(ctx, ops)
}

// startRegistryMaster runs a master on reg until the test ends; wait
// returns what Run returned, once it has.
func startRegistryMaster(t *testing.T, reg master.Registry) (m *master.Master, wait func() error) {
	t.Helper()
	m, err := master.New(master.Config{Registry: reg, TickInterval: 5 * time.Millisecond, AllocationInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	wait = sync.OnceValue(func() error { return <-done })
	t.Cleanup(func() { cancel(); _ = wait() })
	return m, wait
}

func registerCall(hostname string) *internalpb.Call {
	return &internalpb.Call{Type: internalpb.Call_REGISTER.Enum(), Register: &internalpb.Call_Register{
		AgentInfo: mesospb.AgentInfo{Hostname: hostname, Resources: mustProto("cpus:4;mem:1024")}}}
}

func TestMasterSendsNothingBeforeItIsDurable(t *testing.T) {
	reg := &gatedRegistry{Registry: master.NewMemoryRegistry(), applied: make(chan []master.RegistryOp, 1), gate: make(chan error)}
	m, _ := startRegistryMaster(t, reg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type result struct {
		events <-chan *internalpb.Event
		err    error
	}
	registered := make(chan result, 1)
	go func() {
		_, events, err := m.ConnectAgent(ctx, registerCall("a1"))
		registered <- result{events, err}
	}()
	ops := <-reg.applied
	require.Len(t, ops, 1)
	require.IsType(t, master.AdmitAgent{}, ops[0])
	select {
	case <-registered:
		t.Fatal("the agent was answered before its admission was durable")
	case <-time.After(100 * time.Millisecond):
	}
	reg.gate <- nil
	r := <-registered
	require.NoError(t, r.err)
	ev := <-r.events
	require.Equal(t, internalpb.Event_REGISTERED, ev.GetType())
}

func TestMasterStopsWhenTheRegistryFails(t *testing.T) {
	reg := &gatedRegistry{Registry: master.NewMemoryRegistry(), applied: make(chan []master.RegistryOp, 1), gate: make(chan error, 1)}
	m, wait := startRegistryMaster(t, reg)
	reg.gate <- master.ErrRegistryFailed
	_, _, err := m.ConnectAgent(context.Background(), registerCall("a1"))
	require.ErrorIs(t, err, master.ErrStopped, "nothing of an admission that may not be durable reaches the agent")
	require.ErrorIs(t, wait(), master.ErrRegistryFailed)
}

func TestFencedMasterStops(t *testing.T) {
	store := master.NewMemoryRegistryStore()
	m1, wait := startRegistryMaster(t, store.Open())
	_, _, err := m1.ConnectAgent(context.Background(), registerCall("a1"))
	require.NoError(t, err)

	// Another master recovers the store: m1 no longer leads.
	_, err = store.Open().Recover(context.Background())
	require.NoError(t, err)
	_, _, err = m1.ConnectAgent(context.Background(), registerCall("a2"))
	require.Error(t, err)
	require.True(t, errors.Is(wait(), master.ErrRegistryFenced))
}

func TestRegistrySurvivesTheMaster(t *testing.T) {
	store := master.NewMemoryRegistryStore()
	ctx := context.Background()
	m1, err := master.New(master.Config{Registry: store.Open(), TickInterval: 5 * time.Millisecond})
	require.NoError(t, err)
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan error, 1)
	go func() { done1 <- m1.Run(ctx1) }()

	_, ev1, err := m1.ConnectAgent(ctx, registerCall("a1"))
	require.NoError(t, err)
	a1 := (<-ev1).Registered.AgentID.Value
	_, ev2, err := m1.ConnectAgent(ctx, registerCall("a2"))
	require.NoError(t, err)
	a2 := (<-ev2).Registered.AgentID.Value
	_, err = m1.OperatorCall(ctx, &masterpb.Call{Type: masterpb.Call_UPDATE_WEIGHTS.Enum(), UpdateWeights: &masterpb.Call_UpdateWeights{
		WeightInfos: []mesospb.WeightInfo{{Role: ptr("analytics"), Weight: 3}}}})
	require.NoError(t, err)
	_, err = m1.OperatorCall(ctx, &masterpb.Call{Type: masterpb.Call_UPDATE_QUOTA.Enum(), UpdateQuota: &masterpb.Call_UpdateQuota{
		QuotaConfigs: []masterpb.QuotaConfig{quotaConfig(t, "analytics", "cpus:2", "cpus:6")}}})
	require.NoError(t, err)
	_, err = m1.OperatorCall(ctx, agentCall(masterpb.Call_MARK_AGENT_GONE, a2))
	require.NoError(t, err)
	stop1()
	require.NoError(t, <-done1)

	m2, _ := startRegistryMaster(t, store.Open())
	resp, err := m2.OperatorCall(ctx, &masterpb.Call{Type: masterpb.Call_GET_AGENTS.Enum()})
	require.NoError(t, err)
	require.Empty(t, resp.GetAgents.Agents)
	require.Len(t, resp.GetAgents.RecoveredAgents, 1)
	require.Equal(t, a1, resp.GetAgents.RecoveredAgents[0].ID.Value)

	resp, err = m2.OperatorCall(ctx, &masterpb.Call{Type: masterpb.Call_GET_WEIGHTS.Enum()})
	require.NoError(t, err)
	require.Equal(t, []mesospb.WeightInfo{{Role: ptr("analytics"), Weight: 3}}, resp.GetWeights.WeightInfos)
	resp, err = m2.OperatorCall(ctx, &masterpb.Call{Type: masterpb.Call_GET_QUOTA.Enum()})
	require.NoError(t, err)
	require.Equal(t, []masterpb.QuotaConfig{quotaConfig(t, "analytics", "cpus:2", "cpus:6")}, resp.GetQuota.Status.Configs)

	// The gone agent is refused; the recovered one is readmitted.
	_, gone, err := m2.ConnectAgent(ctx, &internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
		AgentInfo: mesospb.AgentInfo{Hostname: "a2", ID: &mesospb.AgentID{Value: a2}, Resources: mustProto("cpus:4;mem:1024")}}})
	require.NoError(t, err)
	require.Equal(t, internalpb.Event_SHUTDOWN, (<-gone).GetType())
	_, back, err := m2.ConnectAgent(ctx, &internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
		AgentInfo: mesospb.AgentInfo{Hostname: "a1", ID: &mesospb.AgentID{Value: a1}, Resources: mustProto("cpus:4;mem:1024")}}})
	require.NoError(t, err)
	require.Equal(t, internalpb.Event_REREGISTERED, (<-back).GetType())
}

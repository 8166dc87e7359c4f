// Package registrytest is the conformance suite of master.Registry: every
// implementation runs it (as containerd's snapshotters run their shared
// suite), so the master can rely on the same behaviour from each store:
// what was applied is recovered, in order, whole batches or nothing,
// across close and re-open, at 50,000 agents, with writers fenced.
//
//	func TestMyRegistry(t *testing.T) {
//		registrytest.Run(t, func(t *testing.T) registrytest.Store {
//			dir := t.TempDir()
//			return registrytest.Store{Open: func(t *testing.T) master.Registry { ... on dir ... }}
//		})
//	}
//
// The 50,000-agent case runs when Large says so.
package registrytest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
)

// Store is one empty store, on which Open opens registries.
type Store struct {
	// Open returns a new registry on the store; tests call it several
	// times, and close what it returns.
	Open func(t *testing.T) master.Registry
	// SharedWriters: several registries may recover the store, the latest
	// fencing the others with ErrRegistryFenced (memory, ZooKeeper). If
	// false, a second registry's Recover gets ErrRegistryLocked while the
	// first is open (the file registry).
	SharedWriters bool
}

// Factory returns a new empty store for one test.
type Factory func(t *testing.T) Store

// Run runs the suite.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"Empty", testEmpty},
		{"ApplyBeforeRecover", testApplyBeforeRecover},
		{"RecoverWhatWasApplied", testRecoverWhatWasApplied},
		{"OrderKept", testOrderKept},
		{"ReplayIsIdempotent", testReplayIsIdempotent},
		{"InvalidBatchWritesNothing", testInvalidBatchWritesNothing},
		{"ReopenAfterClose", testReopenAfterClose},
		{"ManyBatches", testManyBatches},
		{"LargeBatch", testLargeBatch},
		{"CanceledContext", testCanceledContext},
		{"RecoveredStateIsACopy", testRecoveredStateIsACopy},
		{"Writers", testWriters},
		{"FiftyThousandAgents", testFiftyThousandAgents},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// Large reports whether tests of 50,000 agents run: not under -short, nor
// under the race detector (which makes them take minutes), unless
// APRON_REGISTRY_LARGE=1 asks for them anyway.
func Large() bool {
	if os.Getenv("APRON_REGISTRY_LARGE") == "1" {
		return true
	}
	return !testing.Short() && !raceEnabled
}

// AgentInfo returns an agent's info as a real agent sends it (a few
// hundred bytes: resources, ports, attributes), for tests and benchmarks.
func AgentInfo(i int) mesospb.AgentInfo {
	scalar := func(name string, v float64) mesospb.Resource {
		return mesospb.Resource{Name: name, Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: v}}
	}
	port := int32(5051)
	return mesospb.AgentInfo{
		Hostname: fmt.Sprintf("agent-%06d.rack-%03d.example", i, i%500),
		Port:     &port,
		ID:       &mesospb.AgentID{Value: AgentID(i)},
		Resources: []mesospb.Resource{
			scalar("cpus", 32), scalar("mem", 256*1024), scalar("disk", 2*1024*1024),
			{Name: "ports", Type: mesospb.Value_RANGES, Ranges: &mesospb.Value_Ranges{Range: []mesospb.Value_Range{{Begin: 31000, End: 32000}}}},
		},
		Attributes: []mesospb.Attribute{
			{Name: "rack", Type: mesospb.Value_TEXT, Text: &mesospb.Value_Text{Value: fmt.Sprintf("rack-%03d", i%500)}},
			{Name: "zone", Type: mesospb.Value_TEXT, Text: &mesospb.Value_Text{Value: fmt.Sprintf("zone-%d", i%3)}},
		},
	}
}

// AgentID is the ID AgentInfo(i) has.
func AgentID(i int) string { return fmt.Sprintf("7b1c3f0e-5a2d-4c8e-9f1a-2b3c4d5e6f70-S%d", i) }

// Admissions returns AdmitAgent operations for agents from to to-1.
func Admissions(from, to int) []master.RegistryOp {
	ops := make([]master.RegistryOp, 0, to-from)
	for i := from; i < to; i++ {
		ops = append(ops, master.AdmitAgent{Info: AgentInfo(i)})
	}
	return ops
}

var epoch = time.Date(2026, 12, 7, 10, 0, 0, 123456789, time.UTC)

// everyOp returns batches using every kind of operation.
func everyOp() [][]master.RegistryOp {
	g, silver, ip := "gold", "silver", "10.0.0.7"
	up, draining, down := mesospb.MachineInfo_UP, mesospb.MachineInfo_DRAINING, mesospb.MachineInfo_DOWN
	quota := masterpb.QuotaConfig{Role: "batch",
		Guarantees: map[string]mesospb.Value_Scalar{"cpus": {Value: 10}},
		Limits:     map[string]mesospb.Value_Scalar{"cpus": {Value: 20}, "mem": {Value: 4096}}}
	schedule := masterpb.Schedule{Windows: []masterpb.Window{{
		MachineIDs:     []mesospb.MachineID{{Hostname: &g}},
		Unavailability: mesospb.Unavailability{Start: mesospb.TimeInfo{Nanoseconds: epoch.Add(time.Hour).UnixNano()}},
	}}}
	return [][]master.RegistryOp{
		Admissions(0, 6),
		{master.MarkAgentUnreachable{AgentID: AgentID(1), Time: epoch}},
		{master.MarkAgentGone{AgentID: AgentID(2), Time: epoch.Add(time.Second)}, master.RemoveAgent{AgentID: AgentID(3)}},
		{master.MarkAgentUnreachable{AgentID: "never-admitted", Time: epoch.Add(2 * time.Second)}},
		{master.MarkAgentUnreachable{AgentID: AgentID(4), Time: epoch.Add(3 * time.Second)}, master.AdmitAgent{Info: AgentInfo(4)}},
		{master.MarkAgentUnreachable{AgentID: AgentID(5), Time: epoch.Add(4 * time.Second)}, master.MarkAgentGone{AgentID: "gone-twice", Time: epoch}},
		{master.PruneAgents{AgentIDs: []string{AgentID(5), "gone-twice"}}},
		{master.UpdateWeights{Weights: map[string]float64{"batch": 2, "web": 0.5}}},
		{master.UpdateWeights{Weights: map[string]float64{"web": 3}}},
		{master.UpdateQuotas{Configs: []masterpb.QuotaConfig{quota, {Role: "web", Guarantees: map[string]mesospb.Value_Scalar{"mem": {Value: 1}}}}}},
		{master.UpdateQuotas{Configs: []masterpb.QuotaConfig{{Role: "web"}}}},
		{master.UpdateSchedule{Schedule: schedule}},
		{master.UpdateMachines{Machines: []mesospb.MachineInfo{
			{ID: mesospb.MachineID{Hostname: &g}, Mode: &down},
			{ID: mesospb.MachineID{IP: &ip}, Mode: &draining},
			{ID: mesospb.MachineID{Hostname: &silver}, Mode: &down},
		}}},
		{master.UpdateMachines{Machines: []mesospb.MachineInfo{{ID: mesospb.MachineID{Hostname: &silver}, Mode: &up}}}},
	}
}

// model applies batches to an empty state: what a registry must recover.
func model(t *testing.T, batches ...[]master.RegistryOp) *master.RegistryState {
	t.Helper()
	s := master.NewRegistryState()
	for _, b := range batches {
		require.NoError(t, s.Apply(b...))
	}
	return s
}

func open(t *testing.T, st Store) master.Registry {
	t.Helper()
	r := st.Open(t)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func recoverState(t *testing.T, r master.Registry) *master.RegistryState {
	t.Helper()
	s, err := r.Recover(context.Background())
	require.NoError(t, err)
	return s
}

func apply(t *testing.T, r master.Registry, batches ...[]master.RegistryOp) {
	t.Helper()
	for i, b := range batches {
		require.NoError(t, r.Apply(context.Background(), b), "batch %d", i)
	}
}

// reopen closes r and recovers a new registry on the same store.
func reopen(t *testing.T, st Store, r master.Registry) (master.Registry, *master.RegistryState) {
	t.Helper()
	require.NoError(t, r.Close())
	r2 := open(t, st)
	return r2, recoverState(t, r2)
}

func testEmpty(t *testing.T, st Store) {
	r := open(t, st)
	assert.Equal(t, master.NewRegistryState(), recoverState(t, r))
	_, s := reopen(t, st, r)
	assert.Equal(t, master.NewRegistryState(), s)
}

func testApplyBeforeRecover(t *testing.T, st Store) {
	r := open(t, st)
	assert.ErrorIs(t, r.Apply(context.Background(), Admissions(0, 1)), master.ErrRegistryNotRecovered)
}

func testRecoverWhatWasApplied(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	batches := everyOp()
	apply(t, r, batches...)
	want := model(t, batches...)
	// The model itself, checked once here: every kind of operation left
	// its mark.
	require.Len(t, want.Agents, 2) // 0 and 4
	require.Contains(t, want.Agents, AgentID(4))
	require.Len(t, want.Unreachable, 2) // 1, never-admitted
	require.NotNil(t, want.Unreachable[AgentID(1)].Info)
	require.Nil(t, want.Unreachable["never-admitted"].Info)
	require.Equal(t, map[string]time.Time{AgentID(2): epoch.Add(time.Second)}, want.Gone)
	require.Equal(t, map[string]float64{"batch": 2, "web": 3}, want.Weights)
	require.Len(t, want.Quotas, 1)
	require.NotNil(t, want.Schedule)
	require.Len(t, want.Machines, 2)

	_, got := reopen(t, st, r)
	assert.Equal(t, want, got)
}

func testOrderKept(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	// The same operations in two orders give two states; the registry
	// must recover the order they were applied in, within a batch and
	// across batches.
	id := AgentID(7)
	apply(t, r,
		[]master.RegistryOp{master.AdmitAgent{Info: AgentInfo(7)}, master.MarkAgentUnreachable{AgentID: id, Time: epoch}},
		[]master.RegistryOp{master.MarkAgentGone{AgentID: AgentID(8), Time: epoch}},
		[]master.RegistryOp{master.AdmitAgent{Info: AgentInfo(8)}},
		[]master.RegistryOp{master.UpdateWeights{Weights: map[string]float64{"a": 1}}, master.UpdateWeights{Weights: map[string]float64{"a": 2}}},
	)
	_, got := reopen(t, st, r)
	assert.Contains(t, got.Unreachable, id)
	assert.NotContains(t, got.Agents, id)
	assert.Contains(t, got.Agents, AgentID(8))
	assert.NotContains(t, got.Gone, AgentID(8))
	assert.Equal(t, 2.0, got.Weights["a"])
}

func testReplayIsIdempotent(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	batches := everyOp()
	apply(t, r, batches...)
	// A master that failed over re-emits what it is not sure was written:
	// applying it again gives the same state.
	apply(t, r, batches...)
	apply(t, r, Admissions(0, 1), Admissions(0, 1))
	_, got := reopen(t, st, r)
	assert.Equal(t, model(t, append(batches, Admissions(0, 1))...), got)
}

func testInvalidBatchWritesNothing(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	apply(t, r, Admissions(0, 1))
	bad := [][]master.RegistryOp{
		{master.AdmitAgent{Info: AgentInfo(1)}, master.AdmitAgent{Info: mesospb.AgentInfo{Hostname: "no-id"}}},
		{master.MarkAgentUnreachable{}},
		{master.MarkAgentGone{}},
		{master.RemoveAgent{}},
		{master.PruneAgents{AgentIDs: []string{""}}},
		{master.UpdateWeights{Weights: map[string]float64{"r": 0}}},
		{master.UpdateWeights{Weights: map[string]float64{"": 1}}},
		{master.UpdateQuotas{Configs: []masterpb.QuotaConfig{{}}}},
		{master.UpdateMachines{Machines: []mesospb.MachineInfo{{}}}},
		{nil},
	}
	for i, b := range bad {
		assert.ErrorIs(t, r.Apply(context.Background(), b), master.ErrInvalidRegistryOp, "batch %d", i)
	}
	// The registry still works, and kept nothing of the invalid batches.
	apply(t, r, Admissions(2, 3))
	_, got := reopen(t, st, r)
	assert.Equal(t, model(t, Admissions(0, 1), Admissions(2, 3)), got)
}

func testReopenAfterClose(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	apply(t, r, Admissions(0, 3))
	require.NoError(t, r.Close())
	assert.ErrorIs(t, r.Apply(context.Background(), Admissions(3, 4)), master.ErrRegistryClosed)
	_, err := r.Recover(context.Background())
	assert.ErrorIs(t, err, master.ErrRegistryClosed)
	assert.NoError(t, r.Close(), "Close twice")

	r2 := open(t, st)
	assert.Equal(t, model(t, Admissions(0, 3)), recoverState(t, r2))
	apply(t, r2, Admissions(3, 5))
	// Recover again on the same registry: reads the store anew.
	assert.Equal(t, model(t, Admissions(0, 5)), recoverState(t, r2))
	apply(t, r2, []master.RegistryOp{master.RemoveAgent{AgentID: AgentID(0)}})
	_, got := reopen(t, st, r2)
	assert.Equal(t, model(t, Admissions(1, 5)), got)
}

// testManyBatches applies enough one-operation batches to go through the
// stores' compactions (the suite's factories set low thresholds), with
// re-opens in between.
func testManyBatches(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	want := master.NewRegistryState()
	n := 600
	if testing.Short() {
		n = 200
	}
	for i := range n {
		var op master.RegistryOp
		switch i % 6 {
		case 0, 1, 2:
			op = master.AdmitAgent{Info: AgentInfo(i)}
		case 3:
			op = master.MarkAgentUnreachable{AgentID: AgentID(i - 3), Time: epoch.Add(time.Duration(i) * time.Second)}
		case 4:
			op = master.MarkAgentGone{AgentID: AgentID(i - 3), Time: epoch}
		case 5:
			op = master.UpdateWeights{Weights: map[string]float64{fmt.Sprintf("role-%d", i%7): float64(i)}}
		}
		require.NoError(t, r.Apply(context.Background(), []master.RegistryOp{op}), "op %d", i)
		require.NoError(t, want.Apply(op))
		if i%250 == 249 {
			var got *master.RegistryState
			r, got = reopen(t, st, r)
			require.Equal(t, want, got, "after %d batches", i+1)
		}
	}
	_, got := reopen(t, st, r)
	assert.Equal(t, want, got)
}

func testLargeBatch(t *testing.T, st Store) {
	// 5,000 admissions in one batch: about 1.5 MB, over ZooKeeper's 1 MB
	// znode limit; a master that marks every agent unreachable after a
	// failover writes such a batch.
	r := open(t, st)
	recoverState(t, r)
	apply(t, r, Admissions(0, 5000))
	unreachable := make([]master.RegistryOp, 0, 5000)
	for i := range 5000 {
		unreachable = append(unreachable, master.MarkAgentUnreachable{AgentID: AgentID(i), Time: epoch})
	}
	apply(t, r, unreachable)
	_, got := reopen(t, st, r)
	assert.Equal(t, model(t, Admissions(0, 5000), unreachable), got)
}

func testCanceledContext(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, r.Apply(ctx, Admissions(0, 1)), context.Canceled)
	_, err := r.Recover(ctx)
	assert.ErrorIs(t, err, context.Canceled)

	r2 := open(t, st)
	if !st.SharedWriters {
		require.NoError(t, r.Close())
	}
	assert.Equal(t, master.NewRegistryState(), recoverState(t, r2))
}

func testRecoveredStateIsACopy(t *testing.T, st Store) {
	r := open(t, st)
	recoverState(t, r)
	ops := Admissions(0, 2)
	apply(t, r, ops)
	// Neither the caller's operations nor the state it got are the
	// registry's: changing them changes nothing stored.
	ops[0].(master.AdmitAgent).Info.Resources[0].Name = "changed"
	s := recoverState(t, r)
	info := s.Agents[AgentID(1)]
	info.Resources[0].Name = "changed too"
	s.Agents[AgentID(0)] = mesospb.AgentInfo{}
	assert.Equal(t, model(t, Admissions(0, 2)), recoverState(t, r))
}

func testWriters(t *testing.T, st Store) {
	ctx := context.Background()
	r1 := open(t, st)
	recoverState(t, r1)
	apply(t, r1, Admissions(0, 1))
	r2 := open(t, st)
	if !st.SharedWriters {
		_, err := r2.Recover(ctx)
		require.ErrorIs(t, err, master.ErrRegistryLocked)
		apply(t, r1, Admissions(1, 2))
		require.NoError(t, r1.Close())
		assert.Equal(t, model(t, Admissions(0, 2)), recoverState(t, r2))
		return
	}
	// The later Recover fences the earlier registry: its writes fail and
	// nothing of them is kept.
	assert.Equal(t, model(t, Admissions(0, 1)), recoverState(t, r2))
	assert.ErrorIs(t, r1.Apply(ctx, Admissions(1, 2)), master.ErrRegistryFenced)
	apply(t, r2, Admissions(2, 3))
	assert.ErrorIs(t, r1.Apply(ctx, Admissions(3, 4)), master.ErrRegistryFenced, "fenced stays fenced")
	// r1 takes over again.
	assert.Equal(t, model(t, Admissions(0, 1), Admissions(2, 3)), recoverState(t, r1))
	assert.ErrorIs(t, r2.Apply(ctx, Admissions(4, 5)), master.ErrRegistryFenced)
	apply(t, r1, Admissions(5, 6))

	// Two writers racing, each re-recovering when fenced: every
	// acknowledged batch is kept, and nothing else.
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w, reg := range []master.Registry{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				n := 100 + w*100 + i
				err := reg.Apply(ctx, Admissions(n, n+1))
				if err == nil {
					mu.Lock()
					acked[AgentID(n)] = true
					mu.Unlock()
					continue
				}
				if !assert.ErrorIs(t, err, master.ErrRegistryFenced) {
					return
				}
				if _, err := reg.Recover(ctx); !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	wg.Wait()
	r3 := open(t, st)
	got := recoverState(t, r3)
	for id := range got.Agents {
		if acked[id] || id == AgentID(0) || id == AgentID(2) || id == AgentID(5) {
			continue
		}
		t.Errorf("agent %s recovered but never acknowledged", id)
	}
	for id := range acked {
		assert.Contains(t, got.Agents, id, "acknowledged, not recovered")
	}
}

func testFiftyThousandAgents(t *testing.T, st Store) {
	if !Large() {
		t.Skip("50,000 agents: skipped under -short and -race (APRON_REGISTRY_LARGE=1 runs it)")
	}
	const n = 50000
	r := open(t, st)
	recoverState(t, r)
	for i := 0; i < n; i += 1000 {
		apply(t, r, Admissions(i, i+1000))
	}
	one := []master.RegistryOp{master.MarkAgentUnreachable{AgentID: AgentID(n - 1), Time: epoch}}
	apply(t, r, one, Admissions(n, n+1))
	r, got := reopen(t, st, r)
	want := model(t, Admissions(0, n+1), one)
	require.Equal(t, len(want.Agents), len(got.Agents))
	assert.Equal(t, want, got)
	apply(t, r, Admissions(n+1, n+2))
	_, got = reopen(t, st, r)
	assert.Len(t, got.Agents, n+1)
}

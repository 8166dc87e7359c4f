package master_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
)

// operationUpdates are the UPDATE_OPERATION_STATUS events among evs.
func operationUpdates(evs []*schedulerpb.Event) []mesospb.OperationStatus {
	var out []mesospb.OperationStatus
	for _, ev := range evs {
		if ev.GetType() == schedulerpb.Event_UPDATE_OPERATION_STATUS {
			out = append(out, ev.UpdateOperationStatus.Status)
		}
	}
	return out
}

// An operation asking for feedback (its id set) is dropped as a Mesos
// master drops it for an agent without the RESOURCE_PROVIDER capability:
// OPERATION_ERROR for a reservation, TASK_ERROR for a launch, and what
// they would have used goes back to the allocator.
func TestOperationFeedbackIsRefused(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(mesospb.FrameworkInfo{User: "root", Name: "fw", Roles: []string{"db"},
		Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}})
	h.registerAgent("cpus:2;mem:1024")
	h.advance(time.Second)
	offers := h.offers(fs)
	require.Len(t, offers, 1)
	rs := []mesospb.Resource{{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 1},
		Reservations:   []mesospb.Resource_ReservationInfo{{Type: mesospb.Resource_ReservationInfo_DYNAMIC.Enum(), Role: ptr("db")}},
		AllocationInfo: &mesospb.Resource_AllocationInfo{Role: ptr("db")}}}
	task := commandTask("t1", offers[0], "cpus:0.5;mem:64")
	call := &schedulerpb.Call{Type: schedulerpb.Call_ACCEPT.Enum(), Accept: &schedulerpb.Call_Accept{
		OfferIDs: offerIDs(offers...),
		Operations: []mesospb.Offer_Operation{
			{Type: mesospb.Offer_Operation_RESERVE.Enum(), ID: &mesospb.OperationID{Value: "op-1"},
				Reserve: &mesospb.Offer_Operation_Reserve{Resources: rs}},
			{Type: mesospb.Offer_Operation_LAUNCH.Enum(), ID: &mesospb.OperationID{Value: "op-2"},
				Launch: &mesospb.Offer_Operation_Launch{TaskInfos: []mesospb.TaskInfo{task}}},
		},
		Filters: &mesospb.Filters{RefuseSeconds: ptr(0.0)},
	}}
	require.NoError(t, h.call(fs, fid, call))
	evs := h.take(fs)
	ops := operationUpdates(evs)
	require.Len(t, ops, 1)
	assert.Equal(t, "op-1", ops[0].OperationID.Value)
	assert.Equal(t, mesospb.OPERATION_ERROR, ops[0].State)
	assert.Contains(t, ops[0].GetMessage(), "RESOURCE_PROVIDER")
	var ups []mesospb.TaskStatus
	for _, ev := range evs {
		if ev.GetType() == schedulerpb.Event_UPDATE {
			ups = append(ups, ev.Update.Status)
		}
	}
	require.Len(t, ups, 1)
	assert.Equal(t, mesospb.TASK_ERROR, ups[0].GetState())
	assert.Equal(t, mesospb.TaskStatus_REASON_TASK_INVALID, ups[0].GetReason())
	assert.Equal(t, "The `id` field cannot be set on LAUNCH operations", ups[0].GetMessage())

	// Nothing was reserved or used: the whole agent is offered again.
	h.advance(time.Second)
	again := h.offers(fs)
	require.Len(t, again, 1)
	assert.Equal(t, 2.0, sumOffers(again).CPUs(), "%v", sumOffers(again))
	assert.Equal(t, 1024.0, sumOffers(again).Mem())
	assert.Empty(t, sumOffers(again).Reserved(), "nothing reserved")
}

// RECONCILE_OPERATIONS: Apron keeps no operations, so an implicit
// reconciliation sends nothing and an explicit one says, per operation,
// what Mesos says of an unknown operation given its agent.
func TestReconcileOperations(t *testing.T) {
	h := newHarness(t, master.Config{})
	fs, fid := h.subscribe(frameworkInfo("fw"))
	_, agentID := h.registerAgent("cpus:1;mem:128")
	h.take(fs)

	reconcile := func(ops ...schedulerpb.Call_ReconcileOperations_Operation) []mesospb.OperationStatus {
		require.NoError(t, h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_RECONCILE_OPERATIONS.Enum(),
			ReconcileOperations: &schedulerpb.Call_ReconcileOperations{Operations: ops}}))
		return operationUpdates(h.take(fs))
	}
	assert.Empty(t, reconcile(), "implicit: no operations known")
	got := reconcile(
		schedulerpb.Call_ReconcileOperations_Operation{OperationID: mesospb.OperationID{Value: "a"}, AgentID: &mesospb.AgentID{Value: agentID}},
		schedulerpb.Call_ReconcileOperations_Operation{OperationID: mesospb.OperationID{Value: "b"}, AgentID: &mesospb.AgentID{Value: "no-such-agent"}},
		schedulerpb.Call_ReconcileOperations_Operation{OperationID: mesospb.OperationID{Value: "c"}},
	)
	require.Len(t, got, 3)
	for i, want := range []string{"Reconciliation: Operation is unknown", "Reconciliation: Both operation and agent are unknown",
		"Reconciliation: Operation is unknown and no 'agent_id' was provided"} {
		assert.Equal(t, mesospb.OPERATION_UNKNOWN, got[i].State)
		assert.Equal(t, want, got[i].GetMessage())
		assert.Nil(t, got[i].UUID, "reconciliation answers are not sent reliably")
	}
	assert.Equal(t, agentID, got[0].AgentID.Value)

	// The operator marks the agent gone: its operations are gone too.
	_, err := h.operator(agentCall(masterpb.Call_MARK_AGENT_GONE, agentID))
	require.NoError(t, err)
	h.take(fs)
	got = reconcile(schedulerpb.Call_ReconcileOperations_Operation{OperationID: mesospb.OperationID{Value: "a"}, AgentID: &mesospb.AgentID{Value: agentID}})
	require.Len(t, got, 1)
	assert.Equal(t, mesospb.OPERATION_GONE_BY_OPERATOR, got[0].State)

	// ACKNOWLEDGE_OPERATION_STATUS is validated, then has nothing to do.
	ack := func(a *schedulerpb.Call_AcknowledgeOperationStatus) error {
		return h.call(fs, fid, &schedulerpb.Call{Type: schedulerpb.Call_ACKNOWLEDGE_OPERATION_STATUS.Enum(), AcknowledgeOperationStatus: a})
	}
	uuid := make([]byte, 16)
	assert.NoError(t, ack(&schedulerpb.Call_AcknowledgeOperationStatus{UUID: uuid, OperationID: mesospb.OperationID{Value: "a"}, AgentID: &mesospb.AgentID{Value: agentID}}))
	assert.ErrorIs(t, ack(&schedulerpb.Call_AcknowledgeOperationStatus{UUID: []byte("x"), OperationID: mesospb.OperationID{Value: "a"}, AgentID: &mesospb.AgentID{Value: agentID}}), master.ErrInvalidCall)
	assert.ErrorIs(t, ack(&schedulerpb.Call_AcknowledgeOperationStatus{UUID: uuid, OperationID: mesospb.OperationID{Value: "a"}}), master.ErrInvalidCall)
	assert.ErrorIs(t, ack(nil), master.ErrInvalidCall)
}

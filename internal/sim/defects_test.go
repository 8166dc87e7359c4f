package sim_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/resources"
)

// TestReconciliationRunsAheadOfUpdates is the fault simulation's
// TestFaults seed 1 (6 agents, violated at step 455 before the
// fix) reduced to its steps. There, agent-1 sends TASK_RUNNING whose
// latest_state is already TASK_FINISHED (t=27.2s: the task ended while
// RUNNING waited for its acknowledgement); the framework acknowledges it,
// but the agent crashes (t=33.6s) before the acknowledgement reaches it.
// The framework reconciles (t=38s): the master answers TASK_FINISHED, the
// agent's latest state, which the framework has not been sent. The agent
// restarts, re-registers and resends TASK_RUNNING (unacknowledged as far
// as it knows): the framework sees TASK_RUNNING after TASK_FINISHED
// (t=45.5s).
//
// Mesos answers reconciliation with the state of the last update it
// forwarded (Master::reconcile: task->has_status_update_state() ?
// task->status_update_state() : task->state()), and an acknowledgement
// does not clear status_update_state (Master::acknowledge only removes the
// task once its terminal update is acknowledged): it answers TASK_RUNNING,
// the state the framework saw last. Apron's master clears unackedUUID on
// acknowledgement (master/task.go, core.acknowledge), after which
// core.reconciliationStatus falls back to t.state, which core.statusUpdate
// set from the update's latest_state.
func TestReconciliationRunsAheadOfUpdates(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sm, err := master.NewStateMachine(master.Config{Rand: rand.New(rand.NewPCG(1, 2))}, now)
	require.NoError(t, err)
	agentStream, err := sm.ConnectAgent(&internalpb.Call{
		Type:     internalpb.Call_REGISTER.Enum(),
		Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{Hostname: "a", Resources: mustProto(t, "cpus:1;mem:128")}},
	})
	require.NoError(t, err)
	fwStream, err := sm.SubscribeScheduler(&schedulerpb.Call{
		Type:      schedulerpb.Call_SUBSCRIBE.Enum(),
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: mesospb.FrameworkInfo{User: "u", Name: "f", FailoverTimeout: ptr(3600.0)}},
	})
	require.NoError(t, err)
	var agentID, fwID string
	var offer *mesospb.Offer
	collect := func() []*schedulerpb.Event {
		var evs []*schedulerpb.Event
		for _, o := range sm.Ready().Outputs {
			switch {
			case o.Agent != nil && o.Agent.Registered != nil:
				agentID = o.Agent.Registered.AgentID.Value
			case o.Scheduler != nil:
				if o.Scheduler.Subscribed != nil {
					fwID = o.Scheduler.Subscribed.FrameworkID.Value
				}
				if o.Scheduler.Offers != nil {
					offer = &o.Scheduler.Offers.Offers[0]
				}
				evs = append(evs, o.Scheduler)
			}
		}
		return evs
	}
	collect()
	now = now.Add(time.Second)
	sm.Tick(now)
	collect()
	require.NotNil(t, offer, "an offer")
	fid := &mesospb.FrameworkID{Value: fwID}
	require.NoError(t, sm.SchedulerCall(fwStream, &schedulerpb.Call{
		Type: schedulerpb.Call_ACCEPT.Enum(), FrameworkID: fid,
		Accept: &schedulerpb.Call_Accept{OfferIDs: []mesospb.OfferID{offer.ID}, Operations: []mesospb.Offer_Operation{{
			Type: mesospb.Offer_Operation_LAUNCH.Enum(),
			Launch: &mesospb.Offer_Operation_Launch{TaskInfos: []mesospb.TaskInfo{{
				Name: "t", TaskID: mesospb.TaskID{Value: "t"}, AgentID: offer.AgentID,
				Resources: offer.Resources, Command: &mesospb.CommandInfo{Value: ptr("true")},
			}}},
		}}},
	}))
	collect()
	// RUNNING, sent while the task has already finished on the agent.
	running := []byte("0123456789abcdef")
	require.NoError(t, sm.AgentCall(agentStream, &internalpb.Call{
		Type: internalpb.Call_STATUS_UPDATE.Enum(), AgentID: &mesospb.AgentID{Value: agentID},
		StatusUpdate: &internalpb.Call_StatusUpdate{
			FrameworkID: *fid, LatestState: mesospb.TASK_FINISHED.Enum(),
			Status: mesospb.TaskStatus{TaskID: mesospb.TaskID{Value: "t"}, State: mesospb.TASK_RUNNING.Enum(), Source: mesospb.TaskStatus_SOURCE_EXECUTOR.Enum(), UUID: running},
		},
	}))
	collect()
	// The framework acknowledges it (the agent never hears of it).
	require.NoError(t, sm.SchedulerCall(fwStream, &schedulerpb.Call{
		Type: schedulerpb.Call_ACKNOWLEDGE.Enum(), FrameworkID: fid,
		Acknowledge: &schedulerpb.Call_Acknowledge{AgentID: mesospb.AgentID{Value: agentID}, TaskID: mesospb.TaskID{Value: "t"}, UUID: running},
	}))
	collect()
	require.NoError(t, sm.SchedulerCall(fwStream, &schedulerpb.Call{
		Type: schedulerpb.Call_RECONCILE.Enum(), FrameworkID: fid,
		Reconcile: &schedulerpb.Call_Reconcile{Tasks: []schedulerpb.Call_Reconcile_Task{{TaskID: mesospb.TaskID{Value: "t"}}}},
	}))
	var answer *mesospb.TaskStatus
	for _, ev := range collect() {
		if ev.Update != nil {
			answer = &ev.Update.Status
		}
	}
	require.NotNil(t, answer, "a reconciliation answer")
	require.Equal(t, mesospb.TASK_RUNNING.String(), answer.GetState().String(),
		"the framework was last sent TASK_RUNNING and the agent will resend it: Mesos answers the state of the update last forwarded")
}

func mustProto(t *testing.T, text string) []mesospb.Resource {
	t.Helper()
	rs, err := resourcesParse(text)
	require.NoError(t, err)
	return rs
}

func ptr[T any](v T) *T { return &v }

func resourcesParse(text string) ([]mesospb.Resource, error) {
	rs, err := resources.Parse(text)
	if err != nil {
		return nil, err
	}
	return rs.ToProto(), nil
}

// TestReconciliationAfterMasterFailover is the same defect after a master
// failover (TestFaultsMasterFailover seed 13, violated at step 95 before
// the fix): the agent re-registers with a task whose
// latest state is TASK_FINISHED while its TASK_RUNNING update waits for
// acknowledgement (Task.status_update_state, status_update_uuid). Mesos
// keeps both from the agent's report, and reconciliation answers
// TASK_RUNNING, the update the framework sees next. Apron's
// core.reregisterAgent (master/agents.go, the branch for an agent it does
// not know) copies neither into the task's unackedState and unackedUUID,
// so reconciliation answers TASK_FINISHED and the agent's TASK_RUNNING
// follows it.
func TestReconciliationAfterMasterFailover(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sm, err := master.NewStateMachine(master.Config{Rand: rand.New(rand.NewPCG(1, 2))}, now)
	require.NoError(t, err)
	fid := mesospb.FrameworkID{Value: "fw"}
	agentID := mesospb.AgentID{Value: "agent"}
	fi := mesospb.FrameworkInfo{ID: &fid, User: "u", Name: "f", FailoverTimeout: ptr(3600.0)}
	rs := mustProto(t, "cpus:1;mem:128")
	_, err = sm.ConnectAgent(&internalpb.Call{
		Type: internalpb.Call_REREGISTER.Enum(), AgentID: &agentID,
		Reregister: &internalpb.Call_Reregister{
			AgentInfo:  mesospb.AgentInfo{ID: &agentID, Hostname: "a", Resources: rs},
			Frameworks: []mesospb.FrameworkInfo{fi},
			Tasks: []mesospb.Task{{
				Name: "t", TaskID: mesospb.TaskID{Value: "t"}, FrameworkID: fid, AgentID: agentID,
				State: mesospb.TASK_FINISHED.Enum(), Resources: rs,
				StatusUpdateState: mesospb.TASK_RUNNING.Enum(), StatusUpdateUUID: []byte("0123456789abcdef"),
			}},
		},
	})
	require.NoError(t, err)
	fwStream, err := sm.SubscribeScheduler(&schedulerpb.Call{
		Type: schedulerpb.Call_SUBSCRIBE.Enum(), FrameworkID: &fid,
		Subscribe: &schedulerpb.Call_Subscribe{FrameworkInfo: fi},
	})
	require.NoError(t, err)
	sm.Ready()
	require.NoError(t, sm.SchedulerCall(fwStream, &schedulerpb.Call{
		Type: schedulerpb.Call_RECONCILE.Enum(), FrameworkID: &fid,
		Reconcile: &schedulerpb.Call_Reconcile{Tasks: []schedulerpb.Call_Reconcile_Task{{TaskID: mesospb.TaskID{Value: "t"}}}},
	}))
	var answer *mesospb.TaskStatus
	for _, o := range sm.Ready().Outputs {
		if o.Scheduler != nil && o.Scheduler.Update != nil {
			answer = &o.Scheduler.Update.Status
		}
	}
	require.NotNil(t, answer, "a reconciliation answer")
	require.Equal(t, mesospb.TASK_RUNNING.String(), answer.GetState().String(),
		"the agent holds TASK_RUNNING unacknowledged and will send it: Mesos answers the task's status_update_state")
}

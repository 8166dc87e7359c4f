package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// The calls below send one schedulerpb.Call on the current subscription and
// return once the master has accepted it; what it leads to arrives as events.
// They fail with ErrNotConnected while the driver is not subscribed and with
// ErrStopped once it has stopped, sending nothing; the master's own
// rejections are returned wrapped. Slices passed in are sent as they are, not
// copied: an in-process master reads them after the call returns, so do not
// modify them afterwards.

// AcceptOffers applies operations, in order, to the resources of the offers
// (all on one agent); what they leave unused goes back to the pool, filtered
// by filters (nil: the master's default, 5 s refusal).
func (d *Driver) AcceptOffers(ctx context.Context, offerIDs []mesospb.OfferID, operations []mesospb.Offer_Operation, filters *mesospb.Filters) error {
	return d.send(ctx, &schedulerpb.Call{
		Type: schedulerpb.Call_ACCEPT.Enum(),
		Accept: &schedulerpb.Call_Accept{
			OfferIDs:   offerIDs,
			Operations: operations,
			Filters:    filters,
		},
	})
}

// LaunchTasks accepts the offers with one LAUNCH operation running tasks.
// An empty tasks list declines the offers.
func (d *Driver) LaunchTasks(ctx context.Context, offerIDs []mesospb.OfferID, tasks []mesospb.TaskInfo, filters *mesospb.Filters) error {
	launch := mesospb.Offer_Operation{
		Type:   mesospb.Offer_Operation_LAUNCH.Enum(),
		Launch: &mesospb.Offer_Operation_Launch{TaskInfos: tasks},
	}
	return d.AcceptOffers(ctx, offerIDs, []mesospb.Offer_Operation{launch}, filters)
}

// DeclineOffer gives the offers' resources back; filters.refuse_seconds
// (5 s by default) keeps them from being offered to this framework again
// for that long.
func (d *Driver) DeclineOffer(ctx context.Context, offerIDs []mesospb.OfferID, filters *mesospb.Filters) error {
	return d.send(ctx, &schedulerpb.Call{
		Type: schedulerpb.Call_DECLINE.Enum(),
		Decline: &schedulerpb.Call_Decline{
			OfferIDs: offerIDs,
			Filters:  filters,
		},
	})
}

// KillTask asks for a task to be killed; agentID (may be nil) helps the
// master find a task it does not know, after a failover. The outcome arrives
// as a status update (TASK_KILLED, or TASK_LOST/TASK_UNKNOWN...).
func (d *Driver) KillTask(ctx context.Context, taskID mesospb.TaskID, agentID *mesospb.AgentID) error {
	return d.send(ctx, &schedulerpb.Call{
		Type: schedulerpb.Call_KILL.Enum(),
		Kill: &schedulerpb.Call_Kill{TaskID: taskID, AgentID: agentID},
	})
}

// ShutdownExecutor shuts an executor down, killing its tasks.
func (d *Driver) ShutdownExecutor(ctx context.Context, agentID mesospb.AgentID, executorID mesospb.ExecutorID) error {
	return d.send(ctx, &schedulerpb.Call{
		Type:     schedulerpb.Call_SHUTDOWN.Enum(),
		Shutdown: &schedulerpb.Call_Shutdown{ExecutorID: executorID, AgentID: agentID},
	})
}

// ReviveOffers asks for offers again for roles (none: all the framework's
// roles), clearing their filters and any suppression. The driver remembers
// it, so later re-subscriptions do not suppress these roles.
func (d *Driver) ReviveOffers(ctx context.Context, roles ...string) error {
	err := d.send(ctx, &schedulerpb.Call{
		Type:   schedulerpb.Call_REVIVE.Enum(),
		Revive: &schedulerpb.Call_Revive{Roles: roles},
	})
	if err == nil {
		d.mu.Lock()
		if len(roles) == 0 {
			d.suppressed = map[string]struct{}{}
		}
		for _, r := range roles {
			delete(d.suppressed, r)
		}
		d.mu.Unlock()
	}
	return err
}

// SuppressOffers stops offers for roles (none: all the framework's roles)
// until ReviveOffers. The driver remembers it and re-subscribes with these
// roles suppressed, so a reconnect does not bring offers back.
func (d *Driver) SuppressOffers(ctx context.Context, roles ...string) error {
	err := d.send(ctx, &schedulerpb.Call{
		Type:     schedulerpb.Call_SUPPRESS.Enum(),
		Suppress: &schedulerpb.Call_Suppress{Roles: roles},
	})
	if err == nil {
		d.mu.Lock()
		all := roles
		if len(all) == 0 {
			all = frameworkRoles(&d.info)
		}
		for _, r := range all {
			d.suppressed[r] = struct{}{}
		}
		d.mu.Unlock()
	}
	return err
}

// AcknowledgeStatusUpdate acknowledges a status update, with explicit
// acknowledgements only (WithExplicitAcknowledgements): the agent stops
// resending it and sends the task's next update. A status without uuid
// needs no acknowledgement and is refused with ErrInvalid.
func (d *Driver) AcknowledgeStatusUpdate(ctx context.Context, status mesospb.TaskStatus) error {
	switch {
	case !d.explicitAcks:
		return fmt.Errorf("%w: the driver acknowledges updates itself (see WithExplicitAcknowledgements)", ErrInvalid)
	case len(status.UUID) == 0:
		return fmt.Errorf("%w: status of task %q has no uuid and needs no acknowledgement", ErrInvalid, status.TaskID.Value)
	case status.AgentID == nil:
		return fmt.Errorf("%w: status of task %q has no agent ID", ErrInvalid, status.TaskID.Value)
	}
	return d.send(ctx, ackCall(status))
}

// ackCall is the ACKNOWLEDGE for status, which has a uuid and an agent ID.
func ackCall(status mesospb.TaskStatus) *schedulerpb.Call {
	return &schedulerpb.Call{
		Type: schedulerpb.Call_ACKNOWLEDGE.Enum(),
		Acknowledge: &schedulerpb.Call_Acknowledge{
			AgentID: mesospb.AgentID{Value: status.AgentID.Value},
			TaskID:  mesospb.TaskID{Value: status.TaskID.Value},
			UUID:    append([]byte(nil), status.UUID...),
		},
	}
}

// ReconcileTasks asks the master for the latest state of the tasks named by
// statuses (their TaskID and, if set, AgentID; nothing else is read). The
// answers arrive as status updates with REASON_RECONCILIATION and no uuid.
// No statuses means implicit reconciliation: the master reports every task
// it knows of the framework.
func (d *Driver) ReconcileTasks(ctx context.Context, statuses []mesospb.TaskStatus) error {
	var tasks []schedulerpb.Call_Reconcile_Task
	for _, s := range statuses {
		tasks = append(tasks, schedulerpb.Call_Reconcile_Task{TaskID: s.TaskID, AgentID: s.AgentID})
	}
	return d.send(ctx, &schedulerpb.Call{
		Type:      schedulerpb.Call_RECONCILE.Enum(),
		Reconcile: &schedulerpb.Call_Reconcile{Tasks: tasks},
	})
}

// SendFrameworkMessage sends opaque data to an executor, best effort: the
// master and agent drop it if they cannot deliver it.
func (d *Driver) SendFrameworkMessage(ctx context.Context, agentID mesospb.AgentID, executorID mesospb.ExecutorID, data []byte) error {
	return d.send(ctx, &schedulerpb.Call{
		Type: schedulerpb.Call_MESSAGE.Enum(),
		Message: &schedulerpb.Call_Message{
			AgentID:    agentID,
			ExecutorID: executorID,
			Data:       data,
		},
	})
}

// RequestResources asks the allocator for specific resources; the master may
// ignore it, as Mesos's allocator does.
func (d *Driver) RequestResources(ctx context.Context, requests []mesospb.Request) error {
	return d.send(ctx, &schedulerpb.Call{
		Type:    schedulerpb.Call_REQUEST.Enum(),
		Request: &schedulerpb.Call_Request{Requests: requests},
	})
}

// UpdateFramework replaces the framework's FrameworkInfo (roles, capabilities,
// failover timeout...) and its set of suppressed roles, all or nothing. info.ID
// may be left nil; if set it must be the framework's ID. Once the master has
// accepted it, the driver subscribes with the new info and roles from then on.
func (d *Driver) UpdateFramework(ctx context.Context, info mesospb.FrameworkInfo, suppressedRoles []string) error {
	id := d.FrameworkID()
	if info.ID != nil && id.Value != "" && info.ID.Value != id.Value {
		return fmt.Errorf("%w: FrameworkInfo.ID %q is not the framework's ID %q", ErrInvalid, info.ID.Value, id.Value)
	}
	sent := cloneInfo(&info)
	sent.ID = &id
	if sent.Principal == nil && d.principal != nil {
		sent.Principal = d.principal
	}
	err := d.send(ctx, &schedulerpb.Call{
		Type: schedulerpb.Call_UPDATE_FRAMEWORK.Enum(),
		UpdateFramework: &schedulerpb.Call_UpdateFramework{
			FrameworkInfo:   *sent,
			SuppressedRoles: suppressedRoles,
		},
	})
	if err == nil {
		kept := cloneInfo(sent)
		kept.ID = nil
		d.mu.Lock()
		d.info = *kept
		d.suppressed = roleSet(suppressedRoles)
		d.mu.Unlock()
	}
	return err
}

// Send sends a call the driver has no method for (RECONCILE_OPERATIONS,
// ACKNOWLEDGE_OPERATION_STATUS, ...), filling in
// framework_id. SUBSCRIBE, TEARDOWN and UPDATE_FRAMEWORK change the driver's
// own state and are refused with ErrInvalid: use Run, Stop and
// UpdateFramework.
func (d *Driver) Send(ctx context.Context, call *schedulerpb.Call) error {
	if call == nil {
		return fmt.Errorf("%w: nil call", ErrInvalid)
	}
	switch call.GetType() {
	case schedulerpb.Call_SUBSCRIBE, schedulerpb.Call_TEARDOWN, schedulerpb.Call_UPDATE_FRAMEWORK:
		return fmt.Errorf("%w: %s is the driver's own call", ErrInvalid, call.GetType())
	}
	c := *call // framework_id is set on a copy, not on the caller's call
	return d.send(ctx, &c)
}

// send fills in framework_id and sends call on the current stream.
func (d *Driver) send(ctx context.Context, call *schedulerpb.Call) error {
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalid)
	}
	d.mu.Lock()
	switch {
	case d.stopping || d.state == stateDone:
		d.mu.Unlock()
		return fmt.Errorf("%w: %s not sent", ErrStopped, call.GetType())
	case !d.connected || d.frameworkID == nil:
		d.mu.Unlock()
		return fmt.Errorf("%w: %s not sent", ErrNotConnected, call.GetType())
	}
	streamID := d.streamID
	call.FrameworkID = &mesospb.FrameworkID{Value: d.frameworkID.Value}
	d.mu.Unlock()

	if err := d.master.SchedulerCall(ctx, streamID, call); err != nil {
		if errors.Is(err, ErrNotConnected) {
			d.dropStream(streamID)
		}
		return fmt.Errorf("scheduler: %s: %w", call.GetType(), err)
	}
	return nil
}

// dropStream makes the session of streamID, if it is still the current
// one, end and subscribe again: the master said it does not know the
// stream (a master reached over HTTP answering 403).
func (d *Driver) dropStream(streamID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.connected && !d.stopping && d.streamID == streamID {
		select {
		case d.streamGone <- struct{}{}:
		default:
		}
	}
}

// frameworkRoles are the roles a framework subscribes with: roles, or the
// deprecated single role, "*" by default.
func frameworkRoles(info *mesospb.FrameworkInfo) []string {
	if len(info.Roles) > 0 {
		return append([]string(nil), info.Roles...)
	}
	return []string{info.GetRole()}
}

package master

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/resources"
)

// executor is the master's record of an executor running on an agent; its
// resources are allocated to the framework until it exits.
type executor struct {
	info      mesospb.ExecutorInfo
	resources resources.Resources
}

// framework is the master's record of a subscribed framework.
type framework struct {
	id     string
	info   mesospb.FrameworkInfo
	roles  []string
	stream string // "" while disconnected
	// minAlloc is the framework's own minimum offer sizes, by role, from
	// its offer_filters.
	minAlloc map[string][]allocator.Quantities

	registeredAt    time.Time
	reregisteredAt  time.Time // of its latest SUBSCRIBE
	removedAt       time.Time // zero until it is completed
	disconnectedAt  time.Time // zero while connected
	failoverTimeout time.Duration
	// recovered: known only from an agent's re-registration after a master
	// failover, not subscribed since (Mesos's Framework::State RECOVERED).
	// No failover timer runs for it: it is kept, with its tasks, until it
	// subscribes or is torn down (Master::recoverFramework starts none).
	recovered bool

	tasks     map[string]*task // live tasks, and terminal ones until acknowledged
	completed []*task          // terminal and acknowledged, newest last, bounded (see recentCompleted)
	offers    map[string]*offer
	// executors on each agent: agent ID -> executor ID -> executor.
	executors map[string]map[string]*executor

	nextHeartbeat time.Time
	// approvers are its principal's, got at its latest SUBSCRIBE
	// (frameworkActions; auth.go); nil without an authorizer.
	approvers approvers
}

func (fw *framework) partitionAware() bool {
	return hasCapability(fw.info, mesospb.FrameworkInfo_Capability_PARTITION_AWARE)
}

func hasCapability(info mesospb.FrameworkInfo, t mesospb.FrameworkInfo_Capability_Type) bool {
	for _, c := range info.Capabilities {
		if c.GetType() == t {
			return true
		}
	}
	return false
}

// frameworkRoles returns the roles a framework subscribes to: roles for a
// MULTI_ROLE framework, else its single role ("*" by default), as Mesos.
func frameworkRoles(info mesospb.FrameworkInfo) ([]string, error) {
	var roles []string
	if hasCapability(info, mesospb.FrameworkInfo_Capability_MULTI_ROLE) {
		if info.Role != nil {
			return nil, fmt.Errorf("%w: a MULTI_ROLE framework sets roles, not role", ErrInvalidCall)
		}
		roles = slices.Clone(info.Roles)
	} else {
		if len(info.Roles) > 0 {
			return nil, fmt.Errorf("%w: roles needs the MULTI_ROLE capability; without it set role", ErrInvalidCall)
		}
		roles = []string{info.GetRole()}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("%w: a MULTI_ROLE framework needs at least one role", ErrInvalidCall)
	}
	seen := map[string]bool{}
	for _, r := range roles {
		if err := resources.ValidateRole(r); err != nil {
			return nil, fmt.Errorf("%w: role %q: %v", ErrInvalidCall, r, err)
		}
		if seen[r] {
			return nil, fmt.Errorf("%w: role %q listed twice", ErrInvalidCall, r)
		}
		seen[r] = true
	}
	return roles, nil
}

// offerMinimums reads FrameworkInfo.offer_filters into the allocator's
// per-role minimum offer sizes, with Mesos's checks: each role must be one
// of the framework's, each alternative must name at least one resource,
// and amounts must be finite and non-negative. A role whose filters set no
// min_allocatable_resources keeps the master's minimum; one that sets it
// with no alternative takes any offer.
func offerMinimums(info mesospb.FrameworkInfo, roles []string) (map[string][]allocator.Quantities, error) {
	var out map[string][]allocator.Quantities
	for _, role := range sortedKeys(info.OfferFilters) {
		if !slices.Contains(roles, role) {
			return nil, fmt.Errorf("%w: offer filters are specified for role '%s' to which the framework is not subscribed", ErrInvalidCall, role)
		}
		minimum := info.OfferFilters[role].MinAllocatableResources
		if minimum == nil {
			continue
		}
		alts := make([]allocator.Quantities, 0, len(minimum.Quantities))
		for i, q := range minimum.Quantities {
			if len(q.Quantities) == 0 {
				return nil, fmt.Errorf("%w: offer_filters[%q].min_allocatable_resources.quantities[%d]: resource quantities must contain at least one quantity", ErrInvalidCall, role, i)
			}
			alt := make(allocator.Quantities, len(q.Quantities))
			for _, name := range sortedKeys(q.Quantities) {
				v := q.Quantities[name].Value
				switch {
				case name == "":
					return nil, fmt.Errorf("%w: offer_filters[%q]: a resource quantity without a name", ErrInvalidCall, role)
				case math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || resources.ScalarOf(v) > resources.MaxScalar:
					return nil, fmt.Errorf("%w: offer_filters[%q]: quantity of %s %v is not a non-negative finite number", ErrInvalidCall, role, name, v)
				}
				alt[name] = resources.ScalarOf(v)
			}
			alts = append(alts, alt)
		}
		if out == nil {
			out = map[string][]allocator.Quantities{}
		}
		out[role] = alts
	}
	return out, nil
}

func durationOf(seconds float64) (time.Duration, error) {
	if math.IsNaN(seconds) || seconds < 0 || math.IsInf(seconds, 0) {
		return 0, fmt.Errorf("%w: %v is not a duration in seconds", ErrInvalidCall, seconds)
	}
	if seconds > (1<<63-1)/float64(time.Second) {
		return time.Duration(1<<63 - 1), nil
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

func (fw *framework) allocatorFramework(suppressed []string) allocator.Framework {
	return allocator.Framework{ID: fw.id, Roles: fw.roles, SuppressedRoles: suppressed, Active: fw.stream != "", MinAllocatable: fw.minAlloc}
}

// subscribe handles SUBSCRIBE: a new framework, or one re-subscribing with
// its ID (after a disconnect or a scheduler failover). It returns the new
// stream's ID. ap are the approvers of the framework's principal
// (frameworkActions), nil to allow everything: a SUBSCRIBE they refuse is
// answered ErrForbidden and changes nothing.
func (c *core) subscribe(call *schedulerpb.Call, ap approvers) (string, error) {
	if call.GetType() != schedulerpb.Call_SUBSCRIBE || call.Subscribe == nil {
		return "", fmt.Errorf("%w: the first call must be SUBSCRIBE with subscribe set", ErrInvalidCall)
	}
	info := call.Subscribe.FrameworkInfo
	if call.FrameworkID != nil && (info.ID == nil || info.ID.Value != call.FrameworkID.Value) {
		return "", fmt.Errorf("%w: framework_id and subscribe.framework_info.id differ", ErrInvalidCall)
	}
	if err := checkFrameworkInfo(&info, call.Subscribe.SuppressedRoles); err != nil {
		return "", err // an invalid ID or over a bound (limits.go)
	}
	roles, err := frameworkRoles(info)
	if err != nil {
		return "", err
	}
	mins, err := offerMinimums(info, roles)
	if err != nil {
		return "", err
	}
	timeout, err := durationOf(info.GetFailoverTimeout())
	if err != nil {
		return "", fmt.Errorf("failover_timeout: %w", err)
	}
	for _, r := range call.Subscribe.SuppressedRoles {
		if !slices.Contains(roles, r) {
			return "", fmt.Errorf("%w: suppressed role %q is not one of the framework's roles", ErrInvalidCall, r)
		}
	}

	if err := ap.Check(auth.RegisterFramework, registrationObject(&info), registrationText(&info, roles)); err != nil {
		c.log.Info("subscription refused", "framework", info.GetID().GetValue(), "name", info.Name, "principal", info.GetPrincipal(), "reason", err)
		return "", err
	}

	if info.ID != nil && c.completedFramework(info.ID.Value) != nil {
		return c.refuseSubscription("Framework has been removed"), nil
	}

	var fw *framework
	added := info.ID == nil || c.frameworks[info.ID.Value] == nil
	if info.ID != nil && info.ID.Value != "" {
		fw = c.frameworks[info.ID.Value]
		if fw == nil {
			// Mesos lets an unknown framework re-subscribe after a master
			// failover; without a registry to say otherwise, admit it.
			fw = c.addFramework(info.ID.Value, info, roles, timeout, call.Subscribe.SuppressedRoles)
		} else {
			// As Mesos's Master::_subscribe: user and checkpoint keep
			// their values (validation::framework::preserveImmutableFields)
			// and another principal is refused (validateUpdate), before
			// the framework's current connection is touched.
			preserveImmutableFields(fw.info, &info)
			if msg := frameworkUpdateError(fw.info, info); msg != "" {
				c.log.Warn("framework re-subscribed with another principal", "framework", fw.id,
					"principal", fw.info.GetPrincipal(), "new_principal", info.GetPrincipal())
				return c.refuseSubscription(msg), nil
			}
			if fw.recovered {
				// Master::connectAndActivateRecoveredFramework.
				fw.recovered = false
				fw.registeredAt = c.now
			} else {
				c.failoverFramework(fw)
			}
			fw.info = info
			fw.roles = roles
			fw.minAlloc = mins
			fw.failoverTimeout = timeout
		}
	} else {
		id := c.newFrameworkID()
		info.ID = &mesospb.FrameworkID{Value: id}
		fw = c.addFramework(id, info, roles, timeout, call.Subscribe.SuppressedRoles)
	}

	fw.approvers = ap
	s := c.newStream(schedulerStream, fw.id)
	fw.stream = s.id
	fw.reregisteredAt = c.now
	fw.disconnectedAt = time.Time{}
	fw.nextHeartbeat = c.now.Add(c.cfg.HeartbeatInterval)
	if err := c.alloc.UpdateFramework(fw.allocatorFramework(call.Subscribe.SuppressedRoles)); err != nil {
		c.log.Error("allocator refused framework update", "framework", fw.id, "err", err)
	}
	c.sendScheduler(fw, &schedulerpb.Event{
		Type: schedulerpb.Event_SUBSCRIBED.Enum(),
		Subscribed: &schedulerpb.Event_Subscribed{
			FrameworkID:              mesospb.FrameworkID{Value: fw.id},
			HeartbeatIntervalSeconds: ptr(c.cfg.HeartbeatInterval.Seconds()),
			MasterInfo:               &c.info,
		},
	})
	// Mesos starts the heartbeats with SUBSCRIBED: its heartbeater sends
	// the first HEARTBEAT at once (Framework::heartbeat), then one every
	// interval.
	c.sendScheduler(fw, &schedulerpb.Event{Type: schedulerpb.Event_HEARTBEAT.Enum()})
	// Agents running the framework's executors or tasks learn its new info,
	// and resend its pending updates at once (framework_agents.go).
	for _, agentID := range c.frameworkAgents(fw) {
		if a := c.agents[agentID]; a != nil {
			c.sendAgent(a, &internalpb.Event{
				Type:            internalpb.Event_UPDATE_FRAMEWORK.Enum(),
				UpdateFramework: &internalpb.Event_UpdateFramework{FrameworkInfo: fw.info},
			})
		}
	}
	if added {
		c.emitFramework(masterpb.Event_FRAMEWORK_ADDED, fw)
	} else {
		c.emitFramework(masterpb.Event_FRAMEWORK_UPDATED, fw)
	}
	// Offer it what is free now, as Mesos does on a framework's arrival,
	// not at the next periodic cycle.
	c.markAllAgentsDirty()
	c.log.Info("framework subscribed", "framework", fw.id, "name", info.Name, "roles", roles)
	return s.id, nil
}

// failoverFramework fails over a framework that subscribed before (Mesos's
// Master::failoverFramework and _failoverFramework): an old instance still
// connected is told "Framework failed over" and its stream ends; the old
// instance's offers are discarded (their resources go back, with no
// RESCIND: the new instance never saw them) and its inverse offers removed
// silently, so the new instance is offered everything afresh.
func (c *core) failoverFramework(fw *framework) {
	if fw.stream != "" {
		c.sendScheduler(fw, &schedulerpb.Event{
			Type:  schedulerpb.Event_ERROR.Enum(),
			Error: &schedulerpb.Event_Error{Message: "Framework failed over"},
		})
		c.endStream(fw.stream)
		fw.stream = ""
	}
	for _, o := range fw.offers {
		c.removeOffer(o, 0) // Master::discardOffer
	}
	for _, id := range sortedKeys(c.maint.inverse) {
		if io := c.maint.inverse[id]; io.framework == fw.id {
			c.dropInverseOffer(io, false) // inverse_offers.go
		}
	}
}

// preserveImmutableFields keeps, in a re-subscribing framework's info, the
// user and checkpoint it had, as Mesos's
// validation::framework::preserveImmutableFields (MESOS-703).
func preserveImmutableFields(old mesospb.FrameworkInfo, info *mesospb.FrameworkInfo) {
	info.User = old.User
	if info.GetCheckpoint() != old.GetCheckpoint() {
		info.Checkpoint = ptr(old.GetCheckpoint())
	}
}

// frameworkUpdateError says why a framework's info cannot become info, in
// Mesos's words (validation::framework::validateUpdate): principal (set or
// not, and its value), user and checkpoint cannot change. "" if it can.
func frameworkUpdateError(old, info mesospb.FrameworkInfo) string {
	switch {
	case (old.Principal == nil) != (info.Principal == nil) || old.GetPrincipal() != info.GetPrincipal():
		// The old principal is not told to whoever tried.
		return "Changing framework's principal is not allowed."
	case info.User != old.User:
		return fmt.Sprintf("Updating 'FrameworkInfo.user' is unsupported; attempted to update from '%s' to '%s'", old.User, info.User)
	case info.GetCheckpoint() != old.GetCheckpoint():
		return fmt.Sprintf("Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update from '%t' to '%t'", old.GetCheckpoint(), info.GetCheckpoint())
	}
	return ""
}

// refuseSubscription answers a SUBSCRIBE that passed the call's checks
// but that the master refuses as Mesos does (validateFramework): a stream
// that carries one ERROR event with the reason, then ends.
func (c *core) refuseSubscription(msg string) string {
	s := c.newStream(schedulerStream, "")
	c.out.messages = append(c.out.messages, message{stream: s.id, scheduler: &schedulerpb.Event{
		Type:  schedulerpb.Event_ERROR.Enum(),
		Error: &schedulerpb.Event_Error{Message: msg},
	}})
	c.endStream(s.id)
	c.log.Info("subscription refused", "reason", msg)
	return s.id
}

// addFramework records a framework and adds it to the allocator. Its
// minimum offer sizes come from info's offer_filters, which subscribe has
// validated; an agent reporting a framework this master does not know
// gives no guarantee, so what does not validate there is left out.
func (c *core) addFramework(id string, info mesospb.FrameworkInfo, roles []string, timeout time.Duration, suppressed []string) *framework {
	mins, err := offerMinimums(info, roles)
	if err != nil {
		mins = nil
	}
	fw := &framework{
		id:              id,
		info:            info,
		roles:           roles,
		minAlloc:        mins,
		registeredAt:    c.now,
		reregisteredAt:  c.now,
		failoverTimeout: timeout,
		tasks:           map[string]*task{},
		offers:          map[string]*offer{},
		executors:       map[string]map[string]*executor{},
	}
	c.frameworks[id] = fw
	// Tasks agents reported for this framework before it subscribed (after a
	// master failover) are already allocated to it.
	used := map[string]resources.Resources{}
	for _, a := range c.agents {
		for _, t := range a.tasks {
			if t.framework == id && !t.terminal() {
				used[a.id] = used[a.id].Add(t.resources)
				fw.tasks[t.id] = t
			}
		}
	}
	if err := c.alloc.AddFramework(allocator.Framework{ID: id, Roles: roles, SuppressedRoles: suppressed, MinAllocatable: mins}, used); err != nil {
		c.log.Error("allocator refused framework", "framework", id, "err", err)
	}
	return fw
}

// frameworkDisconnected: the scheduler's stream ended. Its offers are
// rescinded and, unless it re-subscribes within its failover timeout, it is
// removed and its tasks killed.
func (c *core) frameworkDisconnected(fw *framework) {
	fw.stream = ""
	fw.disconnectedAt = c.now
	for _, o := range fw.offers {
		c.removeOffer(o, 0)
	}
	if err := c.alloc.DeactivateFramework(fw.id); err != nil {
		c.log.Error("allocator refused deactivation", "framework", fw.id, "err", err)
	}
	c.emitFramework(masterpb.Event_FRAMEWORK_UPDATED, fw)
	c.log.Info("framework disconnected", "framework", fw.id, "failover_timeout", fw.failoverTimeout)
	if fw.failoverTimeout == 0 {
		c.removeFramework(fw)
	}
}

// removeFramework tears a framework down: its offers go back, agents shut
// down its executors (killing its tasks), and it moves to the completed
// frameworks. As Mesos (Master::removeFramework), its tasks that had not
// ended are marked TASK_KILLED by the master (REASON_FRAMEWORK_REMOVED; no
// update is sent, nobody is there to take it) and join its completed
// tasks.
func (c *core) removeFramework(fw *framework) {
	for _, o := range fw.offers {
		c.removeOffer(o, 0)
	}
	agents := map[string]bool{}
	for agentID := range fw.executors {
		agents[agentID] = true
	}
	for _, id := range sortedKeys(fw.tasks) {
		t := fw.tasks[id]
		agents[t.agent] = true
		if a := c.agents[t.agent]; a != nil {
			delete(a.tasks, t.key())
		}
		if !t.terminal() {
			st := c.masterTaskStatus(t, mesospb.TASK_KILLED, mesospb.TaskStatus_REASON_FRAMEWORK_REMOVED,
				"Framework "+fw.id+" removed")
			t.state = mesospb.TASK_KILLED
			t.statuses = appendStatus(t.statuses, st)
			c.emitTaskUpdated(t, st)
		}
		c.completeTask(fw, t)
	}
	clear(fw.tasks)
	for agentID := range agents {
		if a := c.agents[agentID]; a != nil {
			c.sendAgent(a, &internalpb.Event{
				Type:              internalpb.Event_SHUTDOWN_FRAMEWORK.Enum(),
				ShutdownFramework: &internalpb.Event_ShutdownFramework{FrameworkID: mesospb.FrameworkID{Value: fw.id}},
			})
			c.dirtyAgents[agentID] = true
		}
	}
	clear(fw.executors)
	if fw.stream != "" {
		c.endStream(fw.stream)
		fw.stream = ""
	}
	if err := c.alloc.RemoveFramework(fw.id); err != nil {
		c.log.Error("allocator refused framework removal", "framework", fw.id, "err", err)
	}
	delete(c.frameworks, fw.id)
	fw.removedAt = c.now
	c.addCompletedFramework(fw)
	c.emitFrameworkRemoved(fw)
	c.log.Info("framework removed", "framework", fw.id)
}

// addCompletedFramework keeps a removed framework for the operator API,
// dropping the oldest beyond MaxCompletedFrameworks.
func (c *core) addCompletedFramework(fw *framework) {
	c.completed = append(c.completed, fw)
	if n := len(c.completed) - c.cfg.MaxCompletedFrameworks; n > 0 {
		clear(c.completed[:n])
		c.completed = c.completed[n:]
	}
}

// completedFramework returns the completed framework with ID id, or nil.
func (c *core) completedFramework(id string) *framework {
	for _, fw := range c.completed {
		if fw.id == id {
			return fw
		}
	}
	return nil
}

// schedulerCall handles every call but SUBSCRIBE, on a subscribed stream.
func (c *core) schedulerCall(streamID string, call *schedulerpb.Call) error {
	// Checked in Mesos's order (Master::Http::scheduler), so a client
	// gets the answer a Mesos master would give it: 400 for a framework
	// it does not know, 403 for one not subscribed now, 400 for a call
	// without the stream's ID or with another one.
	if call.FrameworkID == nil {
		return missing("framework_id")
	}
	fw := c.frameworks[call.FrameworkID.Value]
	if fw == nil {
		return fmt.Errorf("%w: framework %s cannot be found", ErrInvalidCall, call.FrameworkID.Value)
	}
	if fw.stream == "" {
		return fmt.Errorf("%w: framework %s is not subscribed", ErrNotSubscribed, fw.id)
	}
	if streamID == "" {
		return fmt.Errorf("%w: all non-subscribe calls should include the 'Mesos-Stream-Id' header", ErrInvalidCall)
	}
	if streamID != fw.stream {
		return fmt.Errorf("%w: the stream ID '%s' included in this request didn't match the stream ID currently associated with framework ID %s", ErrInvalidCall, streamID, fw.id)
	}
	switch call.GetType() {
	case schedulerpb.Call_SUBSCRIBE:
		return fmt.Errorf("%w: SUBSCRIBE opens a new stream; it is not a call on one", ErrInvalidCall)
	case schedulerpb.Call_TEARDOWN:
		c.removeFramework(fw)
	case schedulerpb.Call_ACCEPT:
		if call.Accept == nil {
			return missing("accept")
		}
		c.accept(fw, call.Accept)
	case schedulerpb.Call_DECLINE:
		if call.Decline == nil {
			return missing("decline")
		}
		refuse, err := refuseDuration(call.Decline.Filters)
		if err != nil {
			return err
		}
		for _, id := range call.Decline.OfferIDs {
			if o := fw.offers[id.Value]; o != nil {
				c.removeOffer(o, refuse)
				c.met.offersDeclined++
			}
		}
	case schedulerpb.Call_REVIVE:
		roles := fw.roles
		if call.Revive != nil && len(call.Revive.Roles) > 0 {
			roles = call.Revive.Roles
		}
		if err := c.alloc.Revive(fw.id, roles...); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidCall, err)
		}
		c.markAllAgentsDirty()
	case schedulerpb.Call_SUPPRESS:
		roles := fw.roles
		if call.Suppress != nil && len(call.Suppress.Roles) > 0 {
			roles = call.Suppress.Roles
		}
		if err := c.alloc.Suppress(fw.id, roles...); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidCall, err)
		}
	case schedulerpb.Call_KILL:
		if call.Kill == nil {
			return missing("kill")
		}
		c.kill(fw, call.Kill)
	case schedulerpb.Call_SHUTDOWN:
		if call.Shutdown == nil {
			return missing("shutdown")
		}
		if a := c.agents[call.Shutdown.AgentID.Value]; a != nil {
			c.sendAgent(a, &internalpb.Event{
				Type: internalpb.Event_SHUTDOWN_EXECUTOR.Enum(),
				ShutdownExecutor: &internalpb.Event_ShutdownExecutor{
					FrameworkID: mesospb.FrameworkID{Value: fw.id},
					ExecutorID:  call.Shutdown.ExecutorID,
				},
			})
		}
	case schedulerpb.Call_ACKNOWLEDGE:
		if call.Acknowledge == nil {
			return missing("acknowledge")
		}
		return c.acknowledge(fw, call.Acknowledge)
	case schedulerpb.Call_RECONCILE:
		c.reconcile(fw, call.Reconcile)
	case schedulerpb.Call_MESSAGE:
		if call.Message == nil {
			return missing("message")
		}
		if a := c.agents[call.Message.AgentID.Value]; a != nil {
			c.sendAgent(a, &internalpb.Event{
				Type: internalpb.Event_FRAMEWORK_MESSAGE.Enum(),
				FrameworkMessage: &internalpb.Event_FrameworkMessage{
					FrameworkID: mesospb.FrameworkID{Value: fw.id},
					ExecutorID:  call.Message.ExecutorID,
					Data:        call.Message.Data,
				},
			})
		}
	case schedulerpb.Call_UPDATE_FRAMEWORK:
		if call.UpdateFramework == nil {
			return missing("update_framework")
		}
		return c.updateFramework(fw, call.UpdateFramework)
	case schedulerpb.Call_REQUEST:
		// Mesos's allocator ignores requests: accepted, nothing to do.
	case schedulerpb.Call_ACCEPT_INVERSE_OFFERS, schedulerpb.Call_DECLINE_INVERSE_OFFERS:
		return c.answerInverseOffers(fw, call) // inverse_offers.go
	case schedulerpb.Call_ACKNOWLEDGE_OPERATION_STATUS:
		// Apron sends no operation status that needs an acknowledgement
		// (it drops operations that ask for feedback, see
		// refuseFeedback), so there is nothing to forward; Mesos too
		// accepts and drops one it cannot deliver.
		ack := call.AcknowledgeOperationStatus
		if ack == nil {
			return missing("acknowledge_operation_status")
		}
		if len(ack.UUID) != 16 {
			return fmt.Errorf("%w: acknowledge_operation_status.uuid is not a UUID", ErrInvalidCall)
		}
		if ack.AgentID == nil {
			return fmt.Errorf("%w: expecting 'agent_id' to be set", ErrInvalidCall)
		}
	case schedulerpb.Call_RECONCILE_OPERATIONS:
		if call.ReconcileOperations == nil {
			return missing("reconcile_operations")
		}
		c.reconcileOperations(fw, call.ReconcileOperations)
	default:
		return fmt.Errorf("%w: unknown call type %v", ErrInvalidCall, call.GetType())
	}
	return nil
}

// reconcileOperations answers RECONCILE_OPERATIONS as Mesos's
// Master::reconcileOperations does for operations it does not know, which
// are all of them here (Apron keeps no operations: it drops those asking
// for feedback): implicit reconciliation has nothing to send; each
// operation named explicitly gets an UPDATE_OPERATION_STATUS saying what
// can be said of its agent.
func (c *core) reconcileOperations(fw *framework, r *schedulerpb.Call_ReconcileOperations) {
	for _, op := range r.Operations {
		st := mesospb.OperationStatus{OperationID: &op.OperationID, AgentID: op.AgentID, ResourceProviderID: op.ResourceProviderID}
		switch {
		case op.AgentID == nil:
			st.State, st.Message = mesospb.OPERATION_UNKNOWN, ptr("Reconciliation: Operation is unknown and no 'agent_id' was provided")
		case c.agents[op.AgentID.Value] != nil:
			st.State, st.Message = mesospb.OPERATION_UNKNOWN, ptr("Reconciliation: Operation is unknown")
		case c.isGone(op.AgentID.Value):
			st.State, st.Message = mesospb.OPERATION_GONE_BY_OPERATOR, ptr("Reconciliation: Agent marked gone by operator")
		case c.isUnreachable(op.AgentID.Value):
			st.State, st.Message = mesospb.OPERATION_UNREACHABLE, ptr("Reconciliation: Agent is unreachable")
		default:
			st.State, st.Message = mesospb.OPERATION_UNKNOWN, ptr("Reconciliation: Both operation and agent are unknown")
		}
		c.sendScheduler(fw, &schedulerpb.Event{
			Type:                  schedulerpb.Event_UPDATE_OPERATION_STATUS.Enum(),
			UpdateOperationStatus: &schedulerpb.Event_UpdateOperationStatus{Status: st},
		})
	}
}

func missing(field string) error {
	return fmt.Errorf("%w: the call's %s field is missing", ErrInvalidCall, field)
}

// refuseDuration is a Filters' refuse_seconds (default 5 s), capped at 365
// days as Mesos does.
func refuseDuration(f *mesospb.Filters) (time.Duration, error) {
	secs := f.GetRefuseSeconds()
	if math.IsNaN(secs) || secs < 0 {
		return 0, fmt.Errorf("%w: refuse_seconds %v", ErrInvalidCall, secs)
	}
	const max = 365 * 24 * time.Hour
	if secs >= max.Seconds() {
		return max, nil
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// markAllAgentsDirty asks for a full allocation cycle at the next tick
// rather than at the next AllocationInterval: something changed that may
// let any agent be offered (a framework came or was revived, a quota
// changed). A cycle skips agents where nothing changed for them in O(1).
func (c *core) markAllAgentsDirty() { c.allocateAll = true }

func (c *core) updateFramework(fw *framework, u *schedulerpb.Call_UpdateFramework) error {
	info := u.FrameworkInfo
	if info.ID == nil || info.ID.Value != fw.id {
		return fmt.Errorf("%w: update_framework.framework_info.id must be %s", ErrInvalidCall, fw.id)
	}
	if err := checkFrameworkInfo(&info, u.SuppressedRoles); err != nil {
		return err // over a bound (limits.go)
	}
	// Master::updateFramework answers 400 to what validateUpdate refuses.
	if msg := frameworkUpdateError(fw.info, info); msg != "" {
		return fmt.Errorf("%w: FrameworkInfo update is not valid: %s", ErrInvalidCall, msg)
	}
	roles, err := frameworkRoles(info)
	if err != nil {
		return err
	}
	mins, err := offerMinimums(info, roles)
	if err != nil {
		return err
	}
	timeout, err := durationOf(info.GetFailoverTimeout())
	if err != nil {
		return err
	}
	for _, r := range u.SuppressedRoles {
		if !slices.Contains(roles, r) {
			return fmt.Errorf("%w: suppressed role %q is not one of the framework's roles", ErrInvalidCall, r)
		}
	}
	// Mesos authorizes the new info with the approvers of the
	// framework's SUBSCRIBE (its principal cannot have changed).
	if err := fw.approvers.Check(auth.RegisterFramework, registrationObject(&info), registrationText(&info, roles)); err != nil {
		return err
	}
	// Offers made for a role the framework left are no longer usable.
	for _, o := range fw.offers {
		if !slices.Contains(roles, o.role) {
			c.rescindOffer(o)
		}
	}
	prevInfo, prevRoles, prevMins, prevTimeout := fw.info, fw.roles, fw.minAlloc, fw.failoverTimeout
	fw.info, fw.roles, fw.minAlloc, fw.failoverTimeout = info, roles, mins, timeout
	if err := c.alloc.UpdateFramework(fw.allocatorFramework(u.SuppressedRoles)); err != nil {
		fw.info, fw.roles, fw.minAlloc, fw.failoverTimeout = prevInfo, prevRoles, prevMins, prevTimeout
		return fmt.Errorf("%w: %v", ErrInvalidCall, err)
	}
	for agentID := range fw.executors {
		if a := c.agents[agentID]; a != nil {
			c.sendAgent(a, &internalpb.Event{
				Type:            internalpb.Event_UPDATE_FRAMEWORK.Enum(),
				UpdateFramework: &internalpb.Event_UpdateFramework{FrameworkInfo: fw.info},
			})
		}
	}
	c.markAllAgentsDirty()
	c.emitFramework(masterpb.Event_FRAMEWORK_UPDATED, fw)
	return nil
}

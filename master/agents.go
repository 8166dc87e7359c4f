package master

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/resources"
)

// agent is the master's record of an agent.
type agent struct {
	id      string
	info    mesospb.AgentInfo
	total   resources.Resources
	version string
	stream  string // "" while disconnected
	ip      string // where its connection came from, if known (Offer.url)
	https   bool   // it serves HTTPS (Config.AgentTLS): Offer.url says so

	registeredAt time.Time
	tasks        map[string]*task // by framework/task
	offers       map[string]*offer

	// unavailability is its machine's while the machine is DRAINING
	// for maintenance (maintenance.go); offers carry it.
	unavailability *mesospb.Unavailability

	// Health: the master pings every AgentPingTimeout and counts pings in a
	// row that got no PONG.
	ponged      bool
	missedPings int
}

// connectAgent handles REGISTER and REREGISTER and returns the new stream.
func (c *core) connectAgent(call *internalpb.Call) (string, error) {
	if s, down := c.refuseDownMachine(call); down {
		return s, nil // its machine is DOWN: told to shut down (maintenance.go)
	}
	switch call.GetType() {
	case internalpb.Call_REGISTER:
		if call.Register == nil {
			return "", missing("register")
		}
		return c.registerAgent(call.Register)
	case internalpb.Call_REREGISTER:
		if call.Reregister == nil {
			return "", missing("reregister")
		}
		return c.reregisterAgent(call.Reregister)
	}
	return "", fmt.Errorf("%w: an agent connects with REGISTER or REREGISTER, not %v", ErrInvalidCall, call.GetType())
}

func agentTotal(info *mesospb.AgentInfo) (resources.Resources, error) {
	if info.Hostname == "" {
		return nil, fmt.Errorf("%w: agent_info.hostname is empty", ErrInvalidCall)
	}
	total, err := resources.FromProto(info.Resources)
	if err == nil {
		err = total.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: agent resources: %v", ErrInvalidCall, err)
	}
	return total, nil
}

func (c *core) registerAgent(r *internalpb.Call_Register) (string, error) {
	info := r.AgentInfo
	total, err := agentTotal(&info)
	if err != nil {
		return "", err
	}
	id := c.newAgentID()
	info.ID = &mesospb.AgentID{Value: id}
	a, err := c.addAgent(info, total, r.GetVersion(), nil)
	if err != nil {
		return "", fmt.Errorf("%w: agent %s: %v", ErrInvalidCall, id, err)
	}
	c.persistAgent(info)
	s := c.newStream(agentStream, id)
	a.stream = s.id
	c.sendAgent(a, c.registered(internalpb.Event_REGISTERED, id))
	c.emitAgentAdded(a)
	c.log.Info("agent registered", "agent", id, "hostname", info.Hostname, "resources", total.String())
	return s.id, nil
}

func (c *core) registered(t internalpb.Event_Type, id string) *internalpb.Event {
	return &internalpb.Event{
		Type: t.Enum(),
		Registered: &internalpb.Event_Registered{
			AgentID:             mesospb.AgentID{Value: id},
			MasterInfo:          &c.info,
			PingIntervalSeconds: ptr(c.cfg.AgentPingTimeout.Seconds()),
			MaxMissedPings:      ptr(uint32(c.cfg.MaxAgentPingTimeouts)),
		},
	}
}

// addAgent records an agent and gives its free resources to the allocator.
// used is what its tasks and executors already hold, by framework.
func (c *core) addAgent(info mesospb.AgentInfo, total resources.Resources, version string, used map[string]resources.Resources) (*agent, error) {
	a := &agent{
		id:           info.ID.Value,
		info:         info,
		total:        total,
		version:      version,
		registeredAt: c.now,
		tasks:        map[string]*task{},
		offers:       map[string]*offer{},
		ponged:       true,
	}
	if err := c.alloc.AddAgent(allocator.Agent{ID: a.id, Hostname: info.Hostname, Total: total}, used); err != nil {
		return nil, err
	}
	c.agents[a.id] = a
	c.dirtyAgents[a.id] = true
	c.agentJoined(a) // on a DRAINING machine? (maintenance.go)
	return a, nil
}

// reregisterAgent admits an agent that has an ID: after its own restart, a
// lost connection or a master failover. Its report of its tasks is the
// truth about them.
func (c *core) reregisterAgent(r *internalpb.Call_Reregister) (string, error) {
	info := r.AgentInfo
	if info.ID == nil || info.ID.Value == "" {
		return "", fmt.Errorf("%w: REREGISTER without agent_info.id", ErrInvalidCall)
	}
	if err := checkReregister(r); err != nil {
		return "", err // an invalid ID (limits.go)
	}
	total, err := agentTotal(&info)
	if err != nil {
		return "", err
	}
	id := info.ID.Value
	if s, gone := c.refuseGone(id); gone {
		return s, nil // marked gone: told to shut down (operator_agents.go)
	}
	// Frameworks this master does not know (it failed over) are recovered
	// from the agent's report, disconnected and with no failover timer
	// until they subscribe (Mesos's Master::recoverFramework: RECOVERED).
	for _, fi := range r.Frameworks {
		// A completed framework is not brought back: the agent is told
		// below to shut it down, as Mesos does.
		if fi.ID == nil || c.frameworks[fi.ID.Value] != nil || c.completedFramework(fi.ID.Value) != nil {
			continue
		}
		roles, err := frameworkRoles(fi)
		if err != nil {
			roles = []string{"*"}
		}
		timeout, _ := durationOf(fi.GetFailoverTimeout())
		fw := c.addFramework(fi.ID.Value, fi, roles, timeout, nil)
		fw.recovered = true
		if err := c.alloc.DeactivateFramework(fw.id); err != nil {
			c.log.Error("allocator refused deactivation", "framework", fw.id, "err", err)
		}
		c.emitFramework(masterpb.Event_FRAMEWORK_ADDED, fw)
	}

	reported := map[string]*mesospb.Task{}
	for i := range r.Tasks {
		t := &r.Tasks[i]
		reported[t.FrameworkID.Value+"/"+t.TaskID.Value] = t
	}

	a := c.agents[id]
	total, resend := c.checkpointedTotal(a, total, r.CheckpointedResources)
	info.Resources = total.ToProto()
	if a != nil {
		if a.stream != "" {
			c.endStream(a.stream)
		}
		if err := c.alloc.ActivateAgent(id); err != nil {
			c.log.Error("allocator refused agent activation", "agent", id, "err", err)
		}
		a.info, a.version = info, r.GetVersion()
		if !a.total.Equal(total) {
			a.total = total
			if err := c.alloc.UpdateAgent(id, total); err != nil {
				c.log.Error("allocator refused agent update", "agent", id, "err", err)
			}
		}
		// Tasks the master launched that the agent does not know were lost
		// on the way (the agent restarted without recovering them, or the
		// run message was lost). Mesos's master asks the agent to reconcile
		// them (Master::reconcileKnownSlave), and the agent answers each
		// with TASK_LOST (TASK_DROPPED to a PARTITION_AWARE framework),
		// REASON_RECONCILIATION, "Reconciliation: task unknown to the
		// agent" (Slave::reregistered); the master says the same at once.
		for _, key := range slices.Sorted(maps.Keys(a.tasks)) {
			t := a.tasks[key]
			if reported[key] != nil || t.terminal() {
				continue
			}
			fw := c.frameworks[t.framework]
			state := mesospb.TASK_LOST
			if fw != nil && fw.partitionAware() {
				state = mesospb.TASK_DROPPED
			}
			t.state = state
			c.taskEnded(a, t)
			st := c.masterTaskStatus(t, state, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: task unknown to the agent")
			c.emitTaskUpdated(t, st)
			if fw != nil {
				c.sendUpdate(fw, st)
			}
			c.forgetTask(a, t)
		}
		// Executors the master knows that the agent does not report are
		// gone (their agent restarted without recovering them): their
		// resources are free, as Mesos's Master::reconcileKnownSlave
		// removes them, without telling the framework.
		running := map[string]bool{}
		for _, e := range r.Executors {
			if e.FrameworkID != nil {
				running[e.FrameworkID.Value+"/"+e.ExecutorID.Value] = true
			}
		}
		for _, fwID := range slices.Sorted(maps.Keys(c.frameworks)) {
			fw := c.frameworks[fwID]
			for _, exID := range slices.Sorted(maps.Keys(fw.executors[id])) {
				if running[fwID+"/"+exID] {
					continue
				}
				c.log.Warn("executor possibly unknown to the re-registering agent; removing it", "agent", id, "framework", fwID, "executor", exID)
				ex := fw.executors[id][exID]
				delete(fw.executors[id], exID)
				c.recover(fwID, id, ex.resources, 0)
			}
			if m, ok := fw.executors[id]; ok && len(m) == 0 {
				delete(fw.executors, id)
			}
		}
		// And the agent's view of the tasks both know: a task that ended
		// while the agent was away gives its resources back now.
		for key, rt := range reported {
			if t := a.tasks[key]; t != nil && rt.State != nil {
				wasTerminal := t.terminal()
				t.state = rt.GetState()
				if !wasTerminal && t.terminal() {
					c.taskEnded(a, t)
				}
			}
		}
		a.ponged, a.missedPings = true, 0
		c.dirtyAgents[id] = true
	} else {
		used := map[string]resources.Resources{}
		var recovered []*task
		for _, rt := range reported {
			rs, err := resources.FromProto(rt.Resources)
			if err != nil {
				c.log.Warn("agent reported a task with bad resources", "agent", id, "task", rt.TaskID.Value, "err", err)
				continue
			}
			t := &task{
				id:        rt.TaskID.Value,
				framework: rt.FrameworkID.Value,
				agent:     id,
				info:      mesospb.TaskInfo{Name: rt.Name, TaskID: rt.TaskID, AgentID: rt.AgentID, Resources: rt.Resources, Labels: rt.Labels, KillPolicy: rt.KillPolicy},
				resources: rs,
				state:     rt.GetState(),
				statuses:  rt.Statuses,
			}
			if rt.ExecutorID != nil {
				t.executor = rt.ExecutorID.Value
			}
			// The update the agent has in flight: reconciliation answers
			// its state until the framework has seen it, as Mesos's
			// master keeps what a re-registering agent reports.
			if rt.StatusUpdateState != nil {
				t.forwarded, t.updateState, t.updateUUID = true, rt.GetStatusUpdateState(), rt.StatusUpdateUUID
			}
			if !t.terminal() {
				used[t.framework] = used[t.framework].Add(rs)
			}
			recovered = append(recovered, t)
		}
		for _, e := range r.Executors {
			if e.FrameworkID == nil {
				continue
			}
			rs, err := resources.FromProto(e.Resources)
			if err == nil {
				used[e.FrameworkID.Value] = used[e.FrameworkID.Value].Add(rs)
			}
		}
		if a, err = c.addAgent(info, total, r.GetVersion(), used); err != nil {
			return "", fmt.Errorf("%w: agent %s: what it reports in use was refused: %v", ErrInvalidCall, id, err)
		}
		for _, t := range recovered {
			a.tasks[t.key()] = t
			if fw := c.frameworks[t.framework]; fw != nil {
				fw.tasks[t.id] = t
			}
			c.emitTaskAdded(t)
		}
		if !c.isRecovered(id) {
			// Frameworks heard nothing of an agent recovered from the
			// registry: nothing to take back (Mesos skips it too).
			c.announceReregistered(recovered, c.isUnreachable(id))
		}
		for _, e := range r.Executors {
			if e.FrameworkID == nil {
				continue
			}
			if fw := c.frameworks[e.FrameworkID.Value]; fw != nil {
				rs, _ := resources.FromProto(e.Resources)
				c.addExecutor(fw, a, e, rs)
			}
		}
	}
	c.reregistering(info) // admitted in the registry (registry_core.go)
	s := c.newStream(agentStream, id)
	a.stream = s.id
	c.sendAgent(a, c.registered(internalpb.Event_REREGISTERED, id))
	if resend {
		c.sendCheckpoint(a)
	}
	c.emitAgentAdded(a)
	// Kills the agent missed while it was away are sent again by the
	// framework's reconciliation; frameworks that were removed meanwhile
	// are shut down on the agent.
	for _, fi := range r.Frameworks {
		if fi.ID != nil && c.frameworks[fi.ID.Value] == nil {
			c.sendAgent(a, &internalpb.Event{
				Type:              internalpb.Event_SHUTDOWN_FRAMEWORK.Enum(),
				ShutdownFramework: &internalpb.Event_ShutdownFramework{FrameworkID: *fi.ID},
			})
		}
	}
	c.log.Info("agent re-registered", "agent", id, "tasks", len(r.Tasks))
	c.agentReadmitted(a) // deactivated or draining stays so (operator_agents.go)
	return s.id, nil
}

// announceReregistered tells each connected framework the current state of
// its tasks on an agent the master had removed, or does not know, that
// re-registered with them, as Mesos's Master::__reregisterSlave does:
// REASON_AGENT_REREGISTERED, from the master, nothing to acknowledge, with
// the health, check and container status of the task's statuses (Mesos's
// getTaskHealth, getTaskCheckStatus, getTaskContainerStatus). So a
// framework told TASK_UNREACHABLE or TASK_LOST learns that the task lives.
// A task that comes back is no longer among its framework's completed
// tasks (Mesos, MESOS-9940). As Mesos, it is not called for an agent
// recovered from the registry after a master failover (frameworks were
// told nothing of it); a master without a registry does not know such an
// agent and announces its tasks ("Unknown agent reregistered", as Mesos
// for an agent it does not know), since it answered reconciliation for
// them TASK_UNKNOWN (TASK_LOST) meanwhile.
func (c *core) announceReregistered(tasks []*task, unreachable bool) {
	msg := "Unknown agent reregistered"
	if unreachable {
		msg = "Unreachable agent re-reregistered" // sic, as Mesos says it
	}
	tasks = slices.Clone(tasks)
	slices.SortFunc(tasks, func(x, y *task) int { return strings.Compare(x.key(), y.key()) })
	back := map[*framework]map[string]bool{}
	for _, t := range tasks {
		fw := c.frameworks[t.framework]
		if fw == nil {
			continue // its framework re-subscribes and reconciles
		}
		if back[fw] == nil {
			back[fw] = map[string]bool{}
		}
		back[fw][t.id] = true
		st := c.masterTaskStatus(t, t.state, mesospb.TaskStatus_REASON_AGENT_REREGISTERED, msg)
		if n := len(t.statuses); n > 0 {
			st.Healthy, st.CheckStatus = t.statuses[n-1].Healthy, t.statuses[n-1].CheckStatus
		}
		for i := len(t.statuses) - 1; i >= 0; i-- {
			if cs := t.statuses[i].ContainerStatus; cs != nil {
				st.ContainerStatus = cs
				break
			}
		}
		c.sendUpdate(fw, st) // dropped for a disconnected framework, as Mesos drops it
	}
	for fw, ids := range back {
		fw.completed = slices.DeleteFunc(fw.completed, func(t *task) bool { return ids[t.id] })
	}
}

// agentCall handles calls on an agent's stream.
func (c *core) agentCall(streamID string, call *internalpb.Call) error {
	s := c.streams[streamID]
	if s == nil || s.kind != agentStream {
		return fmt.Errorf("%w: unknown stream %q", ErrNotSubscribed, streamID)
	}
	a := c.agents[s.peer]
	if a == nil || a.stream != streamID {
		return fmt.Errorf("%w: stream %q has ended", ErrNotSubscribed, streamID)
	}
	if call.AgentID == nil || call.AgentID.Value != a.id {
		return fmt.Errorf("%w: agent_id does not match the registered agent %s", ErrNotSubscribed, a.id)
	}
	// Any call on its stream shows the agent alive, as a PONG does: an
	// agent working through thousands of launches answers the PING queued
	// behind them late, but its updates keep coming, and removing it
	// would lose every task it runs.
	a.ponged, a.missedPings = true, 0
	switch call.GetType() {
	case internalpb.Call_STATUS_UPDATE:
		if call.StatusUpdate == nil {
			return missing("status_update")
		}
		return c.statusUpdate(a, call.StatusUpdate)
	case internalpb.Call_EXECUTOR_MESSAGE:
		m := call.ExecutorMessage
		if m == nil {
			return missing("executor_message")
		}
		if fw := c.frameworks[m.FrameworkID.Value]; fw != nil {
			c.sendScheduler(fw, &schedulerpb.Event{
				Type: schedulerpb.Event_MESSAGE.Enum(),
				Message: &schedulerpb.Event_Message{
					AgentID:    mesospb.AgentID{Value: a.id},
					ExecutorID: m.ExecutorID,
					Data:       m.Data,
				},
			})
		}
	case internalpb.Call_EXECUTOR_EXITED:
		e := call.ExecutorExited
		if e == nil {
			return missing("executor_exited")
		}
		c.executorExited(a, e)
	case internalpb.Call_PONG:
		a.ponged, a.missedPings = true, 0
	case internalpb.Call_UPDATE_RESOURCES:
		if call.UpdateResources == nil {
			return missing("update_resources")
		}
		total, err := resources.FromProto(call.UpdateResources.Total)
		if err == nil {
			err = total.Validate()
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidCall, err)
		}
		if err := c.alloc.UpdateAgent(a.id, total); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidCall, err)
		}
		a.total = total
		c.dirtyAgents[a.id] = true
	case internalpb.Call_UNREGISTER:
		c.removeAgent(a, mesospb.TaskStatus_REASON_AGENT_REMOVED, "The agent left the cluster")
		c.persist(RemoveAgent{AgentID: a.id})
	default:
		return fmt.Errorf("%w: unknown call type %v", ErrInvalidCall, call.GetType())
	}
	return nil
}

func (c *core) executorExited(a *agent, e *internalpb.Call_ExecutorExited) {
	fw := c.frameworks[e.FrameworkID.Value]
	if fw == nil {
		return
	}
	if ex := fw.executors[a.id][e.ExecutorID.Value]; ex != nil {
		delete(fw.executors[a.id], e.ExecutorID.Value)
		if len(fw.executors[a.id]) == 0 {
			delete(fw.executors, a.id)
		}
		c.recover(fw.id, a.id, ex.resources, 0)
	}
	c.sendScheduler(fw, &schedulerpb.Event{
		Type: schedulerpb.Event_FAILURE.Enum(),
		Failure: &schedulerpb.Event_Failure{
			AgentID:    &mesospb.AgentID{Value: a.id},
			ExecutorID: &e.ExecutorID,
			Status:     e.Status,
		},
	})
}

// agentDisconnected: the agent's stream ended. Its offers are rescinded
// and it gets no new ones; it has until the ping timeouts run out to come
// back before its tasks are declared lost.
func (c *core) agentDisconnected(a *agent) {
	a.stream = ""
	for _, o := range a.offers {
		c.rescindOffer(o)
	}
	if err := c.alloc.DeactivateAgent(a.id); err != nil {
		c.log.Error("allocator refused agent deactivation", "agent", a.id, "err", err)
	}
	c.log.Info("agent disconnected", "agent", a.id)
}

// removeAgent forgets an agent: its offers are rescinded, its tasks
// declared lost (unreachable for partition-aware frameworks) and every
// framework told the agent is gone.
func (c *core) removeAgent(a *agent, reason mesospb.TaskStatus_Reason, msg string) {
	for _, o := range a.offers {
		c.rescindOffer(o)
	}
	for _, t := range a.tasks {
		fw := c.frameworks[t.framework]
		if fw == nil {
			continue
		}
		delete(fw.tasks, t.id)
		if t.terminal() {
			c.completeTask(fw, t)
			continue
		}
		state, why := removedTaskState(fw, reason) // operator_agents.go
		t.state = state
		st := c.masterTaskStatus(t, state, why, msg)
		t.statuses = appendStatus(t.statuses, st)
		c.emitTaskUpdated(t, st)
		c.sendUpdate(fw, st)
		if t.terminal() {
			c.completeTask(fw, t) // as Mesos's removeTask (an unreachable task is not kept)
		}
	}
	for _, fw := range c.frameworks {
		delete(fw.executors, a.id)
		c.sendScheduler(fw, &schedulerpb.Event{
			Type:    schedulerpb.Event_FAILURE.Enum(),
			Failure: &schedulerpb.Event_Failure{AgentID: &mesospb.AgentID{Value: a.id}},
		})
	}
	if a.stream != "" {
		// An agent removed as unreachable is not told to shut down (which
		// kills its tasks): its stream ends, it re-registers when it can
		// and is readmitted with its tasks (Mesos's __removeSlave sends it
		// nothing; _reregisterSlave readmits it).
		if !c.isUnreachable(a.id) {
			c.sendAgent(a, &internalpb.Event{
				Type:     internalpb.Event_SHUTDOWN.Enum(),
				Shutdown: &internalpb.Event_Shutdown{Message: ptr(msg)},
			})
		}
		c.endStream(a.stream)
	}
	if err := c.alloc.RemoveAgent(a.id); err != nil {
		c.log.Error("allocator refused agent removal", "agent", a.id, "err", err)
	}
	delete(c.agents, a.id)
	delete(c.dirtyAgents, a.id)
	c.emitAgentRemoved(a)
	c.log.Warn("agent removed", "agent", a.id, "reason", msg)
}

// checkpointedTotal is the total of a re-registering agent with its
// dynamic reservations and persistent volumes applied. The agent reports a
// total that already has its checkpointed resources applied (and the
// checkpointed resources themselves); one that only reports them
// separately, as a Mesos agent's static resources, gets them applied here.
// For an agent the master knows (a is not nil), the master's view of the
// checkpointed resources wins, as in Mesos: an operation the agent missed
// while it was away is applied, and resend says the agent must be sent its
// checkpointed resources again.
func (c *core) checkpointedTotal(a *agent, total resources.Resources, reported []mesospb.Resource) (resources.Resources, bool) {
	ckpt, err := resources.FromProto(reported)
	if err == nil {
		err = ckpt.Validate()
	}
	if err != nil {
		c.log.Warn("agent reported bad checkpointed resources; ignoring them", "err", err)
		ckpt = nil
	}
	ckpt = ckpt.Unallocated()
	if a != nil {
		want := a.total.Checkpointed()
		if want.Equal(ckpt) {
			return c.applyMissing(total, ckpt), false
		}
		t, err := total.UnapplyCheckpointed().ApplyCheckpointed(want)
		if err != nil {
			c.log.Warn("agent resources do not hold its reservations and volumes; keeping its report", "agent", a.id, "err", err)
			return c.applyMissing(total, ckpt), false
		}
		return t, true
	}
	return c.applyMissing(total, ckpt), false
}

// applyMissing applies to total those checkpointed resources it does not
// already hold.
func (c *core) applyMissing(total, ckpt resources.Resources) resources.Resources {
	var missing resources.Resources
	for _, r := range ckpt {
		if !total.ContainsResource(r) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return total
	}
	t, err := total.ApplyCheckpointed(missing)
	if err != nil {
		c.log.Warn("agent resources do not hold its checkpointed resources; ignoring them", "err", err)
		return total
	}
	return t
}

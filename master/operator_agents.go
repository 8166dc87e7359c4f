package master

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// The operator calls on frameworks and agents, as Mesos's master answers
// them (src/master/http.cpp):
//
//   - TEARDOWN removes a framework as its own TEARDOWN does: its offers go
//     back, its executors and tasks are shut down on the agents. 200; 400
//     for an unknown framework.
//   - DEACTIVATE_AGENT stops offers of an agent's resources (its
//     outstanding offers are rescinded) until REACTIVATE_AGENT; its tasks
//     go on. 200; 400 "Unknown agent".
//   - REACTIVATE_AGENT undoes it: 200; 400 when the agent is not
//     deactivated or still DRAINING; 409 when the agent is no longer
//     registered (it was removed as unreachable: it is reactivated all the
//     same, and offered when it comes back).
//   - DRAIN_AGENT deactivates the agent and kills its tasks, each with its
//     kill policy's grace period capped at max_grace_period (Mesos's agent
//     caps it; Apron's master puts the cap on each KILL it sends). Once the
//     agent has no task left (their terminal updates acknowledged, as
//     Mesos counts them) it is DRAINED, or, with mark_gone, marked gone.
//     It stays deactivated until REACTIVATE_AGENT. A second DRAIN_AGENT
//     replaces the first's configuration and starts over. 200; 400 for an
//     unknown agent, or one on a machine in the maintenance schedule.
//   - MARK_AGENT_GONE removes the agent for good: its tasks end as
//     TASK_GONE_BY_OPERATOR (TASK_LOST for frameworks that are not
//     PARTITION_AWARE), it is told to shut down, and should it come back
//     its re-registration is answered with SHUTDOWN. 200, also when it is
//     gone already; 404 for an unknown agent.
//
// Agents removed because they stopped answering pings are remembered as
// unreachable, as Mesos remembers them: they may be deactivated, drained
// or marked gone, which applies when (or instead of when) they come back.
// An agent that left with UNREGISTER is forgotten, as Mesos forgets it.
// GET_AGENTS reports deactivated, drain_info and
// estimated_drain_start_time, and active is false while the agent is
// deactivated, as Mesos reports them.
//
// Differences from Mesos: this state lives in the master's memory, not in
// a registry, so a master failover forgets it; Mesos's check that the
// agent has the AGENT_DRAINING capability is not made (Apron's agents
// drain through the master's kills). Gone and unreachable agents are
// remembered for registry_max_agent_age and registry_max_agent_count (14
// days, 102400), as Mesos prunes its registry. Mesos sends no AGENT_REMOVED event to
// operator subscribers for an agent marked gone (its __removeSlave skips
// it); Apron sends one, as for every agent it removes, so that a
// subscriber's list of agents stays right.

// ErrNotFound: an operator call names something the master does not know
// where Mesos answers 404 Not Found (MARK_AGENT_GONE of an unknown agent).
var ErrNotFound = errors.New("master: not found")

// Mesos prunes gone and unreachable agents from its registry by age and
// count (--registry_max_agent_age, --registry_max_agent_count).
const (
	maxAgentAge   = 14 * 24 * time.Hour
	maxAgentCount = 100 * 1024
)

// agentAdmin is what the operator decided about agents, by agent ID. The
// zero value is ready: maps are made on first write.
type agentAdmin struct {
	deactivated map[string]bool
	draining    map[string]*drain
	gone        map[string]time.Time // when it was marked gone
	unreachable map[string]time.Time // removed for missed pings, and when
}

// drain is an agent's DrainInfo and when draining started.
type drain struct {
	info  mesospb.DrainInfo
	start time.Time
}

func (ad *agentAdmin) init() {
	if ad.deactivated == nil {
		ad.deactivated = map[string]bool{}
		ad.draining = map[string]*drain{}
		ad.gone = map[string]time.Time{}
		ad.unreachable = map[string]time.Time{}
	}
}

// adminCall answers the operator calls of this file, logging.go and
// operator_volumes.go; ok is false for any other call.
func (c *core) adminCall(call *masterpb.Call, by operatorRequester) (resp *masterpb.Response, ok bool, err error) {
	absent := func(field string) error {
		return fmt.Errorf("%w: expecting '%s' to be present", ErrInvalidCall, field)
	}
	typ := call.GetType()
	switch typ {
	case masterpb.Call_GET_LOGGING_LEVEL:
		resp = &masterpb.Response{GetLoggingLevel: c.getLoggingLevel()}
	case masterpb.Call_SET_LOGGING_LEVEL:
		if call.SetLoggingLevel == nil {
			return nil, true, absent("set_logging_level")
		}
		c.setLoggingLevel(call.SetLoggingLevel)
	case masterpb.Call_GET_OPERATIONS:
		// Mesos lists the operations it tracks with their status: those
		// on agents with the RESOURCE_PROVIDER capability, and
		// non-speculative ones. Apron's agents have no resource providers
		// and every operation it applies is speculative (RESERVE,
		// UNRESERVE, CREATE, DESTROY, GROW_VOLUME, SHRINK_VOLUME, applied
		// at once), so it tracks none, as Mesos with such agents.
		resp = &masterpb.Response{GetOperations: &masterpb.Response_GetOperations{}}
	case masterpb.Call_TEARDOWN:
		if call.Teardown == nil {
			return nil, true, absent("teardown")
		}
		err = c.operatorTeardown(call.Teardown.FrameworkID.Value)
	case masterpb.Call_DEACTIVATE_AGENT:
		if call.DeactivateAgent == nil {
			return nil, true, absent("deactivate_agent")
		}
		err = c.deactivateAgent(call.DeactivateAgent.AgentID.Value)
	case masterpb.Call_REACTIVATE_AGENT:
		if call.ReactivateAgent == nil {
			return nil, true, absent("reactivate_agent")
		}
		err = c.reactivateAgent(call.ReactivateAgent.AgentID.Value)
	case masterpb.Call_DRAIN_AGENT:
		if call.DrainAgent == nil {
			return nil, true, absent("drain_agent")
		}
		err = c.drainAgent(call.DrainAgent)
	case masterpb.Call_MARK_AGENT_GONE:
		if call.MarkAgentGone == nil {
			return nil, true, absent("mark_agent_gone")
		}
		err = c.markAgentGone(call.MarkAgentGone.AgentID.Value)
	case masterpb.Call_GROW_VOLUME, masterpb.Call_SHRINK_VOLUME:
		err = c.resizeVolume(call, by)
	default:
		return nil, false, nil
	}
	if resp != nil {
		resp.Type = masterpb.Response_Type(masterpb.Response_Type_value[typ.String()]).Enum()
	}
	return resp, true, err
}

// operatorTeardown is the operator's TEARDOWN of a framework.
func (c *core) operatorTeardown(id string) error {
	fw := c.frameworks[id]
	if fw == nil {
		return fmt.Errorf("%w: no framework found with ID %q", ErrInvalidCall, id)
	}
	c.log.Info("framework torn down by the operator", "framework", id)
	c.removeFramework(fw)
	return nil
}

// knowsAgent reports whether id is an agent the operator may deactivate or
// drain: registered (connected or not) or unreachable.
func (c *core) knowsAgent(id string) bool {
	return c.agents[id] != nil || c.isUnreachable(id)
}

// isGone reports whether the agent id was marked gone, as far as the
// master remembers.
func (c *core) isGone(id string) bool {
	at, gone := c.admin.gone[id]
	return gone && c.now.Sub(at) < maxAgentAge
}

func (c *core) isUnreachable(id string) bool {
	at, ok := c.admin.unreachable[id]
	return ok && c.now.Sub(at) < maxAgentAge
}

func (c *core) deactivateAgent(id string) error {
	if !c.knowsAgent(id) {
		return fmt.Errorf("%w: unknown agent %q", ErrInvalidCall, id)
	}
	c.admin.init()
	c.admin.deactivated[id] = true
	if a := c.agents[id]; a != nil {
		c.deactivate(a)
	}
	c.log.Info("agent deactivated by the operator", "agent", id)
	return nil
}

// deactivate stops offers of a's resources and rescinds those made.
func (c *core) deactivate(a *agent) {
	if err := c.alloc.DeactivateAgent(a.id); err != nil {
		c.log.Error("allocator refused agent deactivation", "agent", a.id, "err", err)
	}
	for _, id := range sortedKeys(a.offers) {
		c.rescindOffer(a.offers[id])
	}
}

func (c *core) reactivateAgent(id string) error {
	if !c.admin.deactivated[id] {
		return fmt.Errorf("%w: agent %q is not deactivated", ErrInvalidCall, id)
	}
	if d := c.admin.draining[id]; d != nil && d.info.State == mesospb.DRAINING {
		return fmt.Errorf("%w: agent %q is still in the DRAINING state", ErrInvalidCall, id)
	}
	delete(c.admin.deactivated, id)
	delete(c.admin.draining, id)
	a := c.agents[id]
	if a == nil {
		// As Mesos: reactivated all the same, offered when it is back.
		return fmt.Errorf("%w: agent %q was removed while processing the call", ErrConflict, id)
	}
	if a.stream != "" {
		if err := c.alloc.ActivateAgent(id); err != nil {
			c.log.Error("allocator refused agent activation", "agent", id, "err", err)
		}
		c.dirtyAgents[id] = true
	}
	c.log.Info("agent reactivated by the operator", "agent", id)
	return nil
}

func (c *core) drainAgent(d *masterpb.Call_DrainAgent) error {
	id := d.AgentID.Value
	if !c.knowsAgent(id) {
		return fmt.Errorf("%w: unknown agent %q", ErrInvalidCall, id)
	}
	if a := c.agents[id]; a != nil {
		// As Mesos: best effort, for a registered agent (maintenance.go).
		if m := c.machineOf(a.info.Hostname, a.ip); m != nil {
			return fmt.Errorf("%w: agent %q is part of a maintenance schedule under machine %s", ErrInvalidCall, id, machineJSON(m.id))
		}
	}
	cfg := mesospb.DrainConfig{MarkGone: ptr(d.GetMarkGone())}
	if g := d.MaxGracePeriod; g != nil {
		cfg.MaxGracePeriod = &mesospb.DurationInfo{Nanoseconds: durationNanos(g)}
	}
	c.admin.init()
	c.admin.draining[id] = &drain{info: mesospb.DrainInfo{State: mesospb.DRAINING, Config: cfg}, start: c.now}
	c.admin.deactivated[id] = true
	c.log.Info("agent draining", "agent", id, "max_grace_period", cfg.MaxGracePeriod, "mark_gone", cfg.GetMarkGone())
	if a := c.agents[id]; a != nil {
		c.deactivate(a)
		c.killForDrain(a)
		c.checkDrained(a)
	}
	return nil
}

// durationNanos is a google.protobuf.Duration in nanoseconds, saturated.
func durationNanos(d *masterpb.Duration) int64 {
	s, n := d.GetSeconds(), int64(d.GetNanos())
	switch {
	case s > math.MaxInt64/int64(time.Second)-1:
		return math.MaxInt64
	case s < math.MinInt64/int64(time.Second)+1:
		return math.MinInt64
	}
	return s*int64(time.Second) + n
}

// killForDrain asks a draining agent to kill each of its live tasks, with
// the task's kill policy capped by the drain's max_grace_period, as
// Mesos's agent does when it drains: a task with no grace period, or a
// longer one, gets the cap; one with a shorter one keeps its own.
func (c *core) killForDrain(a *agent) {
	d := c.admin.draining[a.id]
	if d == nil || a.stream == "" {
		return // sent when it re-registers
	}
	for _, key := range sortedKeys(a.tasks) {
		t := a.tasks[key]
		if t.terminal() {
			continue
		}
		c.sendAgent(a, &internalpb.Event{
			Type: internalpb.Event_KILL_TASK.Enum(),
			KillTask: &internalpb.Event_KillTask{
				FrameworkID: mesospb.FrameworkID{Value: t.framework},
				TaskID:      mesospb.TaskID{Value: t.id},
				KillPolicy:  drainKillPolicy(t.info.KillPolicy, d.info.Config.MaxGracePeriod),
			},
		})
	}
}

// drainKillPolicy is the kill policy that overrides a task's own while
// draining, or nil to keep the task's.
func drainKillPolicy(own *mesospb.KillPolicy, max *mesospb.DurationInfo) *mesospb.KillPolicy {
	if max == nil {
		return nil
	}
	if g := own.GetGracePeriod(); g != nil && g.Nanoseconds <= max.Nanoseconds {
		return nil
	}
	return &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: max.Nanoseconds}}
}

// checkDrained moves a DRAINING agent with no task left to DRAINED, or
// marks it gone when its drain says so (Mesos's
// checkAndTransitionDrainingAgent). Tasks count until their terminal
// update is acknowledged, as in Mesos.
func (c *core) checkDrained(a *agent) {
	d := c.admin.draining[a.id]
	if d == nil || d.info.State == mesospb.DRAINED || len(a.tasks) > 0 {
		return
	}
	if d.info.Config.GetMarkGone() {
		c.log.Info("drained agent marked gone", "agent", a.id)
		c.markGone(a.id)
		return
	}
	d.info.State = mesospb.DRAINED
	c.log.Info("agent drained", "agent", a.id)
}

func (c *core) markAgentGone(id string) error {
	if _, gone := c.admin.gone[id]; gone {
		return nil // idempotent, as Mesos
	}
	if !c.knowsAgent(id) && !c.isRecovered(id) {
		return fmt.Errorf("%w: agent %q", ErrNotFound, id)
	}
	c.markGone(id)
	return nil
}

// markGone removes an agent for good (Mesos's Master::markGone).
func (c *core) markGone(id string) {
	c.admin.init()
	c.admin.gone[id] = c.now
	c.persist(MarkAgentGone{AgentID: id, Time: c.now})
	if len(c.admin.gone) > maxAgentCount {
		c.prune(dropOldest(c.admin.gone))
	}
	if info, ok := c.reg.recovered[id]; ok {
		// Recovered, never re-registered: the master has no task of it
		// to report (Mesos, MESOS-9739).
		delete(c.reg.recovered, id)
		c.log.Warn("agent marked gone before it re-registered", "agent", id, "hostname", info.Hostname)
	}
	delete(c.admin.unreachable, id)
	delete(c.admin.deactivated, id)
	delete(c.admin.draining, id)
	if a := c.agents[id]; a != nil {
		c.removeAgent(a, mesospb.TaskStatus_REASON_AGENT_REMOVED_BY_OPERATOR, "Agent has been marked gone")
	}
	c.log.Warn("agent marked gone", "agent", id)
}

// removedTaskState is the state and reason a live task takes when its
// agent is removed for reason: TASK_GONE_BY_OPERATOR when the operator
// marked the agent gone, TASK_UNREACHABLE otherwise, and TASK_LOST with
// REASON_AGENT_REMOVED either way for a framework that is not
// PARTITION_AWARE (Mesos's __removeSlave).
func removedTaskState(fw *framework, reason mesospb.TaskStatus_Reason) (mesospb.TaskState, mesospb.TaskStatus_Reason) {
	byOperator := reason == mesospb.TaskStatus_REASON_AGENT_REMOVED_BY_OPERATOR
	switch {
	case !fw.partitionAware() && byOperator:
		return mesospb.TASK_LOST, mesospb.TaskStatus_REASON_AGENT_REMOVED
	case !fw.partitionAware():
		return mesospb.TASK_LOST, reason
	case byOperator:
		return mesospb.TASK_GONE_BY_OPERATOR, reason
	}
	return mesospb.TASK_UNREACHABLE, reason
}

// refuseGone answers the re-registration of an agent marked gone: a stream
// that carries SHUTDOWN and ends, as Mesos answers it with a
// ShutdownMessage.
func (c *core) refuseGone(id string) (string, bool) {
	at, gone := c.admin.gone[id]
	if !gone || c.now.Sub(at) >= maxAgentAge {
		return "", false
	}
	s := c.newStream(agentStream, id)
	c.out.messages = append(c.out.messages, message{stream: s.id, agent: &internalpb.Event{
		Type:     internalpb.Event_SHUTDOWN.Enum(),
		Shutdown: &internalpb.Event_Shutdown{Message: ptr("Agent has been marked gone")},
	}})
	c.endStream(s.id)
	c.log.Warn("refused the re-registration of an agent marked gone", "agent", id)
	return s.id, true
}

// agentUnreachable records an agent about to be removed for missed pings.
func (c *core) agentUnreachable(id string) {
	c.admin.init()
	c.admin.unreachable[id] = c.now
	c.persist(MarkAgentUnreachable{AgentID: id, Time: c.now})
	if len(c.admin.unreachable) > maxAgentCount {
		c.prune(dropOldest(c.admin.unreachable))
	}
}

// agentReadmitted applies to a re-registered agent what the operator
// decided while it was away or before: it stays deactivated, and a
// draining agent is told again to kill its tasks (it is checked for DRAINED
// at the next tick).
func (c *core) agentReadmitted(a *agent) {
	delete(c.admin.unreachable, a.id)
	if c.admin.deactivated[a.id] {
		c.deactivate(a)
	}
	c.killForDrain(a)
}

// operatorTimers runs at every tick: a logging level due to revert
// reverts, draining agents with no task left are drained, and what is
// known of agents that left for good (UNREGISTER) is forgotten.
func (c *core) operatorTimers() {
	c.revertLoggingLevel()
	for id := range c.admin.draining {
		if a := c.agents[id]; a != nil {
			c.checkDrained(a)
		}
	}
	for id := range c.admin.deactivated {
		if c.agents[id] == nil && !c.isUnreachable(id) {
			delete(c.admin.deactivated, id)
			delete(c.admin.draining, id)
		}
	}
}

// dropOldest forgets the oldest entry of m and returns its key.
func dropOldest(m map[string]time.Time) string {
	var oldest string
	var at time.Time
	for id, t := range m {
		if oldest == "" || t.Before(at) {
			oldest, at = id, t
		}
	}
	delete(m, oldest)
	return oldest
}

// withAdmin adds to an agent's GET_AGENTS entry what the operator
// decided: deactivated (always set, as Mesos), active false while
// deactivated, and the drain info with its start.
func (c *core) withAdmin(a *agent, p masterpb.Response_GetAgents_Agent) masterpb.Response_GetAgents_Agent {
	deactivated := c.admin.deactivated[a.id]
	p.Deactivated = ptr(deactivated)
	p.Active = p.Active && !deactivated
	if d := c.admin.draining[a.id]; d != nil {
		info := d.info
		p.DrainInfo = &info
		p.EstimatedDrainStartTime = timeInfo(d.start)
	}
	return p
}

// reconcileRemoved answers the explicit reconciliation of a task the
// master does not know, said to be on an agent that was marked gone
// (TASK_GONE_BY_OPERATOR) or removed as unreachable (TASK_UNREACHABLE,
// with the time it was), TASK_LOST instead for a framework that is not
// PARTITION_AWARE: Mesos's cases (5) and (4). It reports whether it
// answered.
func (c *core) reconcileRemoved(fw *framework, taskID, agentID string) bool {
	if agentID == "" {
		return false
	}
	var st mesospb.TaskStatus
	if c.isGone(agentID) {
		state := mesospb.TASK_GONE_BY_OPERATOR
		if !fw.partitionAware() {
			state = mesospb.TASK_LOST
		}
		st = c.masterStatus(taskID, agentID, state, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: Task is gone")
	} else if c.isUnreachable(agentID) {
		state := mesospb.TASK_UNREACHABLE
		if !fw.partitionAware() {
			state = mesospb.TASK_LOST
		}
		st = c.masterStatus(taskID, agentID, state, mesospb.TaskStatus_REASON_RECONCILIATION, "Reconciliation: Task is unreachable")
		st.UnreachableTime = timeInfo(c.admin.unreachable[agentID])
	} else {
		return false
	}
	c.sendUpdate(fw, st)
	return true
}

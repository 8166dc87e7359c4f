package master

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// operators is the core's share of the operator API: the open event
// streams, in subscription order, and the role weights set by Config or
// UPDATE_WEIGHTS (the allocator keeps weights but does not list them).
type operators struct {
	subs    []*operatorSub
	weights map[string]float64
	started time.Time
}

// operatorSub is one operator event stream.
type operatorSub struct {
	stream        string
	nextHeartbeat time.Time
	approvers     approvers // its principal's view approvers; nil sees everything (auth_view.go)
}

// subscribeOperator opens an operator event stream. Its first event is
// SUBSCRIBED with the whole state; changes follow as they happen.
// ap filters what it shows (auth_view.go); nil shows everything.
func (c *core) subscribeOperator(ap approvers) string {
	s := c.newStream(operatorStream, "")
	c.ops.subs = append(c.ops.subs, &operatorSub{stream: s.id, nextHeartbeat: c.now.Add(c.cfg.HeartbeatInterval), approvers: ap})
	st := c.state()
	c.filterState(st, ap)
	c.sendOperator(s.id, &masterpb.Event{
		Type: masterpb.Event_SUBSCRIBED.Enum(),
		Subscribed: &masterpb.Event_Subscribed{
			GetState:                 st,
			HeartbeatIntervalSeconds: ptr(c.cfg.HeartbeatInterval.Seconds()),
		},
	})
	return s.id
}

// operatorLeft forgets an operator stream that ended.
func (c *core) operatorLeft(id string) {
	c.ops.subs = slices.DeleteFunc(c.ops.subs, func(s *operatorSub) bool { return s.stream == id })
}

func (c *core) sendOperator(stream string, ev *masterpb.Event) {
	c.out.messages = append(c.out.messages, message{stream: stream, operator: ev})
}

// publish sends ev to every operator subscriber allowed to see it.
// Subscribers only read events, so they share one.
func (c *core) publish(ev *masterpb.Event) {
	for _, s := range c.ops.subs {
		switch {
		case s.approvers == nil:
			c.sendOperator(s.stream, ev)
		case c.visible(ev, s.approvers):
			c.sendOperator(s.stream, agentAddedFor(ev, s.approvers))
		}
	}
}

// operatorHeartbeats sends HEARTBEAT to the operator streams that are due.
func (c *core) operatorHeartbeats() {
	for _, s := range c.ops.subs {
		if !c.now.Before(s.nextHeartbeat) {
			c.sendOperator(s.stream, &masterpb.Event{Type: masterpb.Event_HEARTBEAT.Enum()})
			s.nextHeartbeat = c.now.Add(c.cfg.HeartbeatInterval)
		}
	}
}

// The emit functions publish changes to operator subscribers. Each returns
// at once when nobody listens, so a master without operator subscribers
// (a simulation of 50,000 agents) builds no events.

func (c *core) emitTaskAdded(t *task) {
	if len(c.ops.subs) == 0 {
		return
	}
	c.publish(&masterpb.Event{
		Type:      masterpb.Event_TASK_ADDED.Enum(),
		TaskAdded: &masterpb.Event_TaskAdded{Task: t.proto()},
	})
}

// emitTaskUpdated publishes a task's new status; state is the latest
// state the agent knows, which may be ahead of status.
func (c *core) emitTaskUpdated(t *task, st mesospb.TaskStatus) {
	if len(c.ops.subs) == 0 {
		return
	}
	c.publish(&masterpb.Event{
		Type: masterpb.Event_TASK_UPDATED.Enum(),
		TaskUpdated: &masterpb.Event_TaskUpdated{
			FrameworkID: mesospb.FrameworkID{Value: t.framework},
			Status:      st,
			State:       t.state.Enum(),
		},
	})
}

// emitFramework publishes FRAMEWORK_ADDED or FRAMEWORK_UPDATED.
func (c *core) emitFramework(typ masterpb.Event_Type, fw *framework) {
	if len(c.ops.subs) == 0 {
		return
	}
	ev := &masterpb.Event{Type: typ.Enum()}
	if typ == masterpb.Event_FRAMEWORK_ADDED {
		ev.FrameworkAdded = &masterpb.Event_FrameworkAdded{Framework: c.frameworkProto(fw)}
	} else {
		ev.FrameworkUpdated = &masterpb.Event_FrameworkUpdated{Framework: c.frameworkProto(fw)}
	}
	c.publish(ev)
}

func (c *core) emitFrameworkRemoved(fw *framework) {
	if len(c.ops.subs) == 0 {
		return
	}
	c.publish(&masterpb.Event{
		Type:             masterpb.Event_FRAMEWORK_REMOVED.Enum(),
		FrameworkRemoved: &masterpb.Event_FrameworkRemoved{FrameworkInfo: fw.info},
	})
}

func (c *core) emitAgentAdded(a *agent) {
	if len(c.ops.subs) == 0 {
		return
	}
	c.publish(&masterpb.Event{
		Type:       masterpb.Event_AGENT_ADDED.Enum(),
		AgentAdded: &masterpb.Event_AgentAdded{Agent: c.agentProto(a)},
	})
}

func (c *core) emitAgentRemoved(a *agent) {
	if len(c.ops.subs) == 0 {
		return
	}
	c.publish(&masterpb.Event{
		Type:         masterpb.Event_AGENT_REMOVED.Enum(),
		AgentRemoved: &masterpb.Event_AgentRemoved{AgentID: mesospb.AgentID{Value: a.id}},
	})
}

// operatorCall answers the operator calls that read or change the core.
// elected says whether the shell's master leads (for metrics and
// GET_MASTER). A nil response with a nil error means "done, nothing to
// say" (200 with no body).
func (c *core) operatorCall(call *masterpb.Call, elected bool) (*masterpb.Response, error) {
	return c.operatorCallBy(call, elected, operatorRequester{})
}

// operatorCallBy is operatorCall for an operator who may have
// authenticated: the reservations and volumes it makes must then name
// its principal.
func (c *core) operatorCallBy(call *masterpb.Call, elected bool, by operatorRequester) (*masterpb.Response, error) {
	if agentID, op, ok, err := operatorOperation(call); ok {
		if err != nil {
			return nil, err
		}
		return nil, c.operate(agentID, op, by)
	}
	if resp, ok, err := c.adminCall(call, by); ok {
		return resp, err // operator_agents.go
	}
	typ := call.GetType()
	resp := &masterpb.Response{}
	switch typ {
	case masterpb.Call_GET_HEALTH:
		resp.GetHealth = &masterpb.Response_GetHealth{Healthy: true}
	case masterpb.Call_GET_FLAGS:
		resp.GetFlags = &masterpb.Response_GetFlags{Flags: c.flags()}
	case masterpb.Call_GET_VERSION:
		resp.GetVersion = &masterpb.Response_GetVersion{VersionInfo: mesospb.VersionInfo{Version: MesosVersion}}
	case masterpb.Call_GET_METRICS:
		resp.GetMetrics = &masterpb.Response_GetMetrics{Metrics: c.snapshotMetrics(elected).mesos()}
	case masterpb.Call_GET_STATE:
		resp.GetState = c.state()
	case masterpb.Call_GET_AGENTS:
		resp.GetAgents = c.state().GetAgents
	case masterpb.Call_GET_FRAMEWORKS:
		resp.GetFrameworks = c.state().GetFrameworks
	case masterpb.Call_GET_EXECUTORS:
		resp.GetExecutors = c.state().GetExecutors
	case masterpb.Call_GET_TASKS:
		resp.GetTasks = c.state().GetTasks
	case masterpb.Call_GET_ROLES:
		resp.GetRoles = &masterpb.Response_GetRoles{Roles: c.roles()}
	case masterpb.Call_GET_WEIGHTS:
		resp.GetWeights = &masterpb.Response_GetWeights{WeightInfos: c.weightInfos()}
	case masterpb.Call_UPDATE_WEIGHTS:
		if call.UpdateWeights == nil {
			return nil, fmt.Errorf("%w: expecting 'update_weights' to be present", ErrInvalidCall)
		}
		return nil, c.updateWeights(call.UpdateWeights.WeightInfos)
	case masterpb.Call_GET_MASTER:
		info := c.info
		resp.GetMaster = &masterpb.Response_GetMaster{
			MasterInfo: &info,
			StartTime:  ptr(seconds(c.ops.started)),
		}
		if elected && c.cfg.Leadership == nil {
			// Without an election the master leads from the start; with
			// one, when it won is the election's to say.
			resp.GetMaster.ElectedTime = ptr(seconds(c.ops.started))
		}
	case masterpb.Call_GET_QUOTA:
		resp.GetQuota = &masterpb.Response_GetQuota{Status: c.quotaStatus()}
	case masterpb.Call_UPDATE_QUOTA:
		if call.UpdateQuota == nil {
			return nil, fmt.Errorf("%w: expecting 'update_quota' to be present", ErrInvalidCall)
		}
		return nil, c.updateQuota(call.UpdateQuota)
	case masterpb.Call_SET_QUOTA:
		if call.SetQuota == nil {
			return nil, fmt.Errorf("%w: expecting 'set_quota' to be present", ErrInvalidCall)
		}
		return nil, c.setQuota(call.SetQuota)
	case masterpb.Call_REMOVE_QUOTA:
		if call.RemoveQuota == nil {
			return nil, fmt.Errorf("%w: expecting 'remove_quota' to be present", ErrInvalidCall)
		}
		return nil, c.removeQuota(call.RemoveQuota)
	case masterpb.Call_GET_MAINTENANCE_STATUS: // maintenance.go
		resp.GetMaintenanceStatus = &masterpb.Response_GetMaintenanceStatus{Status: c.maintenanceStatus()}
	case masterpb.Call_GET_MAINTENANCE_SCHEDULE:
		resp.GetMaintenanceSchedule = &masterpb.Response_GetMaintenanceSchedule{Schedule: c.maintenanceSchedule()}
	case masterpb.Call_UPDATE_MAINTENANCE_SCHEDULE, masterpb.Call_START_MAINTENANCE, masterpb.Call_STOP_MAINTENANCE:
		c.reg.settingsDirty = true
		return nil, c.changeMaintenance(call)
	case masterpb.Call_SUBSCRIBE:
		return nil, fmt.Errorf("%w: SUBSCRIBE opens an event stream; it has no single answer", ErrInvalidCall)
	case masterpb.Call_UNKNOWN:
		return nil, fmt.Errorf("%w: expecting 'type' to be present and known", ErrInvalidCall)
	default:
		if _, known := masterpb.Call_Type_name[int32(typ)]; !known {
			return nil, fmt.Errorf("%w: unknown call type %d", ErrInvalidCall, typ)
		}
		return nil, fmt.Errorf("%w: %s is not supported yet", errors.ErrUnsupported, typ)
	}
	// Response types are numbered apart from call types, but named alike.
	resp.Type = masterpb.Response_Type(masterpb.Response_Type_value[typ.String()]).Enum()
	return resp, nil
}

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// flags reports the configuration, under Mesos's flag names where Mesos
// has the flag.
func (c *core) flags() []mesospb.Flag {
	cfg := c.cfg
	weights := ""
	for i, role := range sortedKeys(c.ops.weights) {
		if i > 0 {
			weights += ","
		}
		weights += role + "=" + strconv.FormatFloat(c.ops.weights[role], 'g', -1, 64)
	}
	sorter := "drf"
	if cfg.Sorter == allocator.SorterRandom {
		sorter = "random"
	}
	flags := []mesospb.Flag{
		{Name: "agent_ping_timeout", Value: ptr(cfg.AgentPingTimeout.String())},
		{Name: "allocation_interval", Value: ptr(cfg.AllocationInterval.String())},
		{Name: "framework_sorter", Value: ptr(sorter)},
		{Name: "heartbeat_interval", Value: ptr(cfg.HeartbeatInterval.String())},
		{Name: "hostname", Value: ptr(cfg.Hostname)},
		{Name: "max_agent_ping_timeouts", Value: ptr(strconv.Itoa(cfg.MaxAgentPingTimeouts))},
		{Name: "max_completed_frameworks", Value: ptr(strconv.Itoa(cfg.MaxCompletedFrameworks))},
		{Name: "max_completed_tasks_per_framework", Value: ptr(strconv.Itoa(cfg.MaxCompletedTasksPerFramework))},
		{Name: "min_allocatable_resources", Value: ptr(minAllocatableText(cfg.MinAllocatable))},
		{Name: "offer_timeout", Value: ptr(cfg.OfferTimeout.String())},
		{Name: "port", Value: ptr(strconv.FormatUint(uint64(cfg.Port), 10))},
		{Name: "role_sorter", Value: ptr(sorter)},
		{Name: "stream_buffer", Value: ptr(strconv.Itoa(cfg.StreamBuffer))},
		{Name: "tick_interval", Value: ptr(cfg.TickInterval.String())},
		{Name: "weights", Value: ptr(weights)},
	}
	return flags
}

// minAllocatableText writes Config.MinAllocatable as Mesos's flag does
// ("cpus:0.01|mem:32"), nil being Mesos's default.
func minAllocatableText(alts []resources.Resources) string {
	if alts == nil {
		return "cpus:0.01|mem:32"
	}
	parts := make([]string, len(alts))
	for i, alt := range alts {
		parts[i] = alt.String()
	}
	return strings.Join(parts, "|")
}

// roles reports the allocator's roles with what is allocated to each.
func (c *core) roles() []mesospb.Role {
	infos := c.alloc.Roles()
	out := make([]mesospb.Role, 0, len(infos))
	for _, ri := range infos {
		r := mesospb.Role{Name: ri.Name, Weight: ri.Weight}
		for _, id := range ri.Frameworks {
			r.Frameworks = append(r.Frameworks, mesospb.FrameworkID{Value: id})
		}
		for _, name := range sortedKeys(ri.Allocated) {
			q := resources.Resource{Name: name, Type: resources.TypeScalar, Scalar: ri.Allocated[name]}
			r.Resources = append(r.Resources, q.ToProto())
		}
		out = append(out, r)
	}
	return out
}

// weightInfos lists the weights set by Config or UPDATE_WEIGHTS; other
// roles weigh 1.
func (c *core) weightInfos() []mesospb.WeightInfo {
	out := make([]mesospb.WeightInfo, 0, len(c.ops.weights))
	for _, role := range sortedKeys(c.ops.weights) {
		out = append(out, mesospb.WeightInfo{Weight: c.ops.weights[role], Role: ptr(role)})
	}
	return out
}

// updateWeights applies UPDATE_WEIGHTS whole or not at all: every entry is
// validated before any is applied, and should the allocator still refuse
// one, those already applied are put back.
func (c *core) updateWeights(infos []mesospb.WeightInfo) error {
	seen := make(map[string]bool, len(infos))
	for i, wi := range infos {
		if wi.Role == nil {
			return fmt.Errorf("%w: update_weights.weight_infos[%d].role is missing", ErrInvalidCall, i)
		}
		role := wi.GetRole()
		if err := resources.ValidateRole(role); err != nil {
			return fmt.Errorf("%w: update_weights.weight_infos[%d].role %q: %v", ErrInvalidCall, i, role, err)
		}
		if math.IsNaN(wi.Weight) || math.IsInf(wi.Weight, 0) || wi.Weight <= 0 {
			return fmt.Errorf("%w: update_weights.weight_infos[%d].weight %v is not a positive number", ErrInvalidCall, i, wi.Weight)
		}
		if seen[role] {
			return fmt.Errorf("%w: update_weights lists role %q twice", ErrInvalidCall, role)
		}
		seen[role] = true
	}
	before := maps.Clone(c.ops.weights)
	for i, wi := range infos {
		role := wi.GetRole()
		if err := c.alloc.SetWeight(role, wi.Weight); err != nil {
			for _, undo := range infos[:i] {
				w, ok := before[undo.GetRole()]
				if !ok {
					w = 1
				}
				_ = c.alloc.SetWeight(undo.GetRole(), w) // a weight it took before
			}
			c.ops.weights = before
			return fmt.Errorf("%w: update_weights.weight_infos[%d]: %v", ErrInvalidCall, i, err)
		}
		c.ops.weights[role] = wi.Weight
	}
	c.reg.settingsDirty = true
	return nil
}

// metricsSnapshot is the master's metrics at one moment, for GET_METRICS
// and /metrics.
type metricsSnapshot struct {
	metrics
	elected                                     bool
	frameworksConnected, frameworksDisconnected int
	agentsConnected, agentsDisconnected         int
	offersOutstanding                           int
}

func (c *core) snapshotMetrics(elected bool) metricsSnapshot {
	s := metricsSnapshot{metrics: c.met, elected: elected, offersOutstanding: len(c.offers)}
	s.taskStates = maps.Clone(c.met.taskStates)
	for _, fw := range c.frameworks {
		if fw.stream != "" {
			s.frameworksConnected++
		} else {
			s.frameworksDisconnected++
		}
	}
	for _, a := range c.agents {
		if a.stream != "" {
			s.agentsConnected++
		} else {
			s.agentsDisconnected++
		}
	}
	return s
}

// mesos lists the metrics under the names a Mesos master uses for them
// (master/..., allocator/mesos/...), and Apron's own names for the rest.
func (s metricsSnapshot) mesos() []mesospb.Metric {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	ms := []mesospb.Metric{
		{Name: "master/elected", Value: ptr(b2f(s.elected))},
		{Name: "master/frameworks_connected", Value: ptr(float64(s.frameworksConnected))},
		{Name: "master/frameworks_disconnected", Value: ptr(float64(s.frameworksDisconnected))},
		{Name: "master/slaves_connected", Value: ptr(float64(s.agentsConnected))},
		{Name: "master/slaves_disconnected", Value: ptr(float64(s.agentsDisconnected))},
		{Name: "master/outstanding_offers", Value: ptr(float64(s.offersOutstanding))},
		{Name: "master/offers_made", Value: ptr(float64(s.offersMade))},
		{Name: "master/offers_declined", Value: ptr(float64(s.offersDeclined))},
		{Name: "master/offers_rescinded", Value: ptr(float64(s.offersRescinded))},
		{Name: "master/tasks_launched", Value: ptr(float64(s.tasksLaunched))},
		{Name: "allocator/mesos/allocation_runs", Value: ptr(float64(s.allocationRuns))},
		{Name: "allocator/mesos/allocation_run_ms", Value: ptr(float64(s.allocationTime) / float64(time.Millisecond))},
	}
	for _, st := range taskStates() {
		ms = append(ms, mesospb.Metric{Name: "master/task_updates/" + st.String(), Value: ptr(float64(s.taskStates[st]))})
	}
	return ms
}

// taskStates lists every task state, in enum order.
func taskStates() []mesospb.TaskState {
	states := make([]mesospb.TaskState, 0, len(mesospb.TaskState_name))
	for v := range mesospb.TaskState_name {
		states = append(states, mesospb.TaskState(v))
	}
	sort.Slice(states, func(i, j int) bool { return states[i] < states[j] })
	return states
}

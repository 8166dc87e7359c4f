package master

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// The core's side of the registry. The core does no I/O: it keeps a mirror
// of what the registry holds (registryMirror.state, as its own operations
// made it) and leaves the operations that change it in the outbox, beside
// the events they allow. The shell (Master) makes them durable before it
// sends any of the events of the same turn or of a later one, so nobody
// hears of an admitted agent, a gone agent or a new quota that a master
// failing over an instant later would not know.
//
// After a failover, as Mesos's master: the agents the registry admitted
// are "recovered" until they re-register. None of their resources is
// offered meanwhile (they are not in the allocator), reconciliation of a
// task that may be on one of them is answered with nothing (the framework
// asks again later), and those still missing after AgentReregisterTimeout
// are marked unreachable — unless more than RecoveryAgentRemovalLimit of
// them are, which stops the master (ErrRecoveryLimit).

// registryMirror is the core's registry state.
type registryMirror struct {
	// state is what the registry holds once the outbox's operations are
	// applied; nil without a Config.Registry (then nothing is emitted).
	state *RegistryState
	// recovered are the agents admitted in the recovered registry that
	// have not re-registered, by ID.
	recovered map[string]mesospb.AgentInfo
	// recoveredFrom is how many agents the recovered registry admitted,
	// and recoveredBy when the ones still missing are marked unreachable.
	recoveredFrom int
	recoveredBy   time.Time
	// settingsDirty: weights, quotas or maintenance may have changed in
	// this turn; drain compares them with the mirror.
	settingsDirty bool
	// fatal, once set, stops the master (the shell returns it from Run).
	fatal error
}

// persist applies op to the mirror and queues it for the registry.
func (c *core) persist(op RegistryOp) {
	if c.reg.state == nil {
		return
	}
	if err := c.reg.state.Apply(op); err != nil {
		// An operation without the fields it needs is the core's bug,
		// never input: keep going without it rather than stop the master.
		c.log.Error("registry operation refused", "op", fmt.Sprintf("%T", op), "err", err)
		return
	}
	c.out.registry = append(c.out.registry, op)
}

// persistAgent admits an agent, or records its new info, unless the
// registry has it admitted with this info already (a re-registration that
// changed nothing costs no write, as in Mesos).
func (c *core) persistAgent(info mesospb.AgentInfo) {
	if c.reg.state == nil {
		return
	}
	if old, ok := c.reg.state.Agents[info.ID.Value]; ok && sameAgentInfo(old, info) {
		return
	}
	c.persist(AdmitAgent{Info: info})
}

func sameAgentInfo(a, b mesospb.AgentInfo) bool {
	x, err1 := proto.Marshal(&a)
	y, err2 := proto.Marshal(&b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// recoverRegistry starts the core from a recovered registry: weights,
// quotas and maintenance as kept (the Config's initial weights and quotas
// count only while the registry has none: the operator's later changes
// win), gone and unreachable agents remembered, admitted ones waiting to
// re-register. It runs before any input, at now.
func (c *core) recoverRegistry(st *RegistryState, now time.Time) {
	if now.After(c.now) {
		c.now = now
	}
	c.reg.state = st.Clone()
	if len(st.Weights) > 0 {
		for role := range c.ops.weights {
			if _, kept := st.Weights[role]; !kept {
				_ = c.alloc.SetWeight(role, 1)
				delete(c.ops.weights, role)
			}
		}
		for _, role := range sortedKeys(st.Weights) {
			if err := c.alloc.SetWeight(role, st.Weights[role]); err != nil {
				c.log.Warn("ignoring the registry's weight", "role", role, "err", err)
				continue
			}
			c.ops.weights[role] = st.Weights[role]
		}
	}
	if len(st.Quotas) > 0 {
		for role := range c.alloc.Quotas() {
			if _, kept := st.Quotas[role]; !kept {
				_ = c.alloc.SetQuota(role, allocator.Quota{})
			}
		}
		for _, role := range sortedKeys(st.Quotas) {
			q, err := quotaFromConfig(st.Quotas[role])
			if err == nil {
				err = c.alloc.SetQuota(role, q)
			}
			if err != nil {
				c.log.Warn("ignoring the registry's quota", "role", role, "err", err)
			}
		}
	}
	if st.Schedule != nil || len(st.Machines) > 0 {
		c.recoverMaintenance(st)
	}
	c.admin.init()
	for id, at := range st.Gone {
		c.admin.gone[id] = at
	}
	for id, u := range st.Unreachable {
		c.admin.unreachable[id] = u.Time
	}
	c.reg.recovered = make(map[string]mesospb.AgentInfo, len(st.Agents))
	for id, info := range st.Agents {
		c.reg.recovered[id] = info
	}
	c.reg.recoveredFrom = len(st.Agents)
	c.reg.recoveredBy = c.now.Add(c.cfg.AgentReregisterTimeout)
	// What the Config seeded and the registry lacks is written now.
	c.reg.settingsDirty = true
	c.log.Info("registry recovered", "agents", len(st.Agents), "unreachable", len(st.Unreachable),
		"gone", len(st.Gone), "weights", len(st.Weights), "quotas", len(st.Quotas),
		"reregister_timeout", c.cfg.AgentReregisterTimeout)
}

// recoverMaintenance rebuilds the schedule and the machines' modes: a
// machine of the schedule is DRAINING unless the registry says DOWN.
func (c *core) recoverMaintenance(st *RegistryState) {
	c.maint.init()
	if st.Schedule != nil {
		c.maint.schedule = cloneSchedule(*st.Schedule)
	}
	for _, w := range c.maint.schedule.Windows {
		for _, id := range w.MachineIDs {
			mode := mesospb.MachineInfo_DRAINING
			if m, ok := st.Machines[RegistryMachineKey(id)]; ok && m.GetMode() == mesospb.MachineInfo_DOWN {
				mode = mesospb.MachineInfo_DOWN
			}
			c.maint.machines[keyOf(id)] = &machine{id: cloneMachineID(id), mode: mode, unavailability: cloneUnavailability(w.Unavailability)}
		}
	}
}

// reregistering tells the registry side that an agent re-registers: it is
// no longer waiting, and its info is admitted (written only when new or
// changed).
func (c *core) reregistering(info mesospb.AgentInfo) {
	delete(c.reg.recovered, info.ID.Value)
	c.persistAgent(info)
}

// isRecovered reports an agent admitted in the recovered registry that
// has not re-registered yet.
func (c *core) isRecovered(id string) bool {
	_, ok := c.reg.recovered[id]
	return ok
}

// recoveryTimers marks the recovered agents still missing unreachable once
// AgentReregisterTimeout has passed, as Mesos's recoveredSlavesTimeout:
// their frameworks hear that each agent is lost (Event.FAILURE), nothing
// about tasks the master never learnt.
func (c *core) recoveryTimers() {
	if len(c.reg.recovered) == 0 || c.now.Before(c.reg.recoveredBy) {
		return
	}
	missing := len(c.reg.recovered)
	if frac := float64(missing) / float64(max(c.reg.recoveredFrom, 1)); frac > c.cfg.RecoveryAgentRemovalLimit {
		c.reg.fatal = fmt.Errorf("%w: after %v, %d of the %d agents recovered from the registry (%.0f%%) did not re-register; the limit is %.0f%%: investigate, or raise the limit",
			ErrRecoveryLimit, c.cfg.AgentReregisterTimeout, missing, c.reg.recoveredFrom, frac*100, c.cfg.RecoveryAgentRemovalLimit*100)
		c.log.Error("stopping the master", "err", c.reg.fatal)
		c.reg.recovered = nil
		return
	}
	for _, id := range sortedKeys(c.reg.recovered) {
		delete(c.reg.recovered, id)
		c.log.Warn("agent did not re-register after the master's failover; marking it unreachable", "agent", id, "timeout", c.cfg.AgentReregisterTimeout)
		c.agentUnreachable(id)
		for _, fwID := range sortedKeys(c.frameworks) {
			c.sendScheduler(c.frameworks[fwID], &schedulerpb.Event{
				Type:    schedulerpb.Event_FAILURE.Enum(),
				Failure: &schedulerpb.Event_Failure{AgentID: &mesospb.AgentID{Value: id}},
			})
		}
	}
}

// recoveredAgents lists the agents waiting to re-register, for GET_AGENTS.
func (c *core) recoveredAgents() []mesospb.AgentInfo {
	out := make([]mesospb.AgentInfo, 0, len(c.reg.recovered))
	for _, id := range sortedKeys(c.reg.recovered) {
		out = append(out, c.reg.recovered[id])
	}
	return out
}

// persistSettings writes the weights, quotas, schedule and machine modes
// that differ from the mirror. The operator calls that change them mark
// the turn (settingsDirty); drain runs it once per turn.
func (c *core) persistSettings() {
	if !c.reg.settingsDirty || c.reg.state == nil {
		c.reg.settingsDirty = false
		return
	}
	c.reg.settingsDirty = false
	st := c.reg.state

	weights := map[string]float64{}
	for role, w := range c.ops.weights {
		if old, ok := st.Weights[role]; !ok || old != w {
			weights[role] = w
		}
	}
	if len(weights) > 0 {
		c.persist(UpdateWeights{Weights: weights})
	}

	quotas := c.alloc.Quotas()
	var configs []masterpb.QuotaConfig
	for _, role := range sortedKeys(quotas) {
		cfg := quotaConfig(role, quotas[role])
		if old, ok := st.Quotas[role]; !ok || !proto.Equal(&old, &cfg) {
			configs = append(configs, cfg)
		}
	}
	for _, role := range sortedKeys(st.Quotas) {
		if _, ok := quotas[role]; !ok {
			configs = append(configs, masterpb.QuotaConfig{Role: role})
		}
	}
	if len(configs) > 0 {
		c.persist(UpdateQuotas{Configs: configs})
	}

	old := masterpb.Schedule{}
	if st.Schedule != nil {
		old = *st.Schedule
	}
	if !proto.Equal(&old, &c.maint.schedule) {
		c.persist(UpdateSchedule{Schedule: cloneSchedule(c.maint.schedule)})
	}
	want := map[string]mesospb.MachineInfo{}
	for _, m := range c.maint.machines {
		want[RegistryMachineKey(m.id)] = mesospb.MachineInfo{ID: cloneMachineID(m.id), Mode: m.mode.Enum()}
	}
	var machines []mesospb.MachineInfo
	for _, key := range sortedKeys(want) {
		if cur, ok := st.Machines[key]; !ok || cur.Mode == nil || *cur.Mode != *want[key].Mode {
			machines = append(machines, want[key])
		}
	}
	for _, key := range sortedKeys(st.Machines) {
		if _, ok := want[key]; !ok {
			machines = append(machines, mesospb.MachineInfo{ID: cloneMachineID(st.Machines[key].ID), Mode: mesospb.MachineInfo_UP.Enum()})
		}
	}
	if len(machines) > 0 {
		c.persist(UpdateMachines{Machines: machines})
	}
}

// prune forgets unreachable or gone agents dropped by age or count.
func (c *core) prune(ids ...string) {
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == "" })
	if len(ids) > 0 {
		c.persist(PruneAgents{AgentIDs: ids})
	}
}

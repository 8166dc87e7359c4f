package sim

import (
	"strconv"
	"strings"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// The invariants of a run with faults, and what Mesos promises for each:
//
//   - "no double offer": on every agent, what the master has outstanding
//     in offers plus what its tasks hold fits in the agent's total, per
//     resource; and what the master offers plus what the agent really
//     runs fits too (a master that forgot a running task would offer its
//     resources again). Tasks of frameworks the master removed are left
//     out of the second sum: Mesos too recovers their resources at once,
//     while the agent's shutdown of them is still on its way.
//   - "one agent per task": a task is on at most one agent, in the
//     master's view and in the agents'.
//   - "update order": per task, once a framework saw a terminal state in
//     an update of the agent's (one with a uuid: the status update
//     manager's stream, which Mesos delivers in order), it sees no
//     non-terminal one. Updates the master makes up are not part of that
//     stream: Mesos's __reregisterSlave announces a returning task's
//     latest state (task.state()) while the agent may still hold an
//     older unacknowledged update it will resend (so TASK_FINISHED from
//     the master, then TASK_RUNNING from the agent, then TASK_FINISHED
//     again is Mesos's behaviour too). A reconciliation answer from the
//     master's record of a task counts, though: Mesos answers with the
//     state of the update it last forwarded (status_update_state), which
//     the framework has seen or sees next, never one ahead of the
//     agent's stream. TASK_LOST is exempt: Mesos says a task
//     reported lost may come back when its agent re-registers
//     (high-availability-framework-guide.md, "frameworks might see a
//     TASK_LOST update for a task but then later discover that the task
//     is running"), and sends REASON_AGENT_REREGISTERED updates for it.
//   - at quiescence (faults stopped, then time passed: pings, retries and
//     reconciliation have run):
//   - "framework view": every task a framework launched is, as its
//     framework was last told, what its agent says: the same state if an
//     agent that is up knows it; if none does (the agent never heard of
//     it, died for good or shut it down), a terminal state, TASK_UNKNOWN or
//     TASK_UNREACHABLE (Mesos keeps an unreachable agent's tasks
//     unreachable until the agent is marked gone).
//   - "silently lost": the special case of the above the issue names: the
//     framework's last word is a live state (STAGING, STARTING, RUNNING)
//     for a task no agent runs.
//   - "kills take effect": a task whose framework asked for its kill (and
//     asked again at each reconciliation, as a framework must: Mesos does
//     not retry a KILL) has ended on the agent that runs it: the agent
//     killed it before delivery, or told its executor to.
//   - "every update delivered in order": every status update an agent
//     that is up made for a task reached the task's framework, at least
//     once, and the first copies arrived in the order the agent made them
//     (Mesos's status update manager: reliable, in order, per task).
//   - "master view": the master's live tasks are the live tasks of its
//     agents, and the other way round.
//   - "updates delivered": no agent holds an unacknowledged update (of a
//     framework the master still has): every update reached its framework
//     and was acknowledged.
//   - "dead agents removed": an agent that died for good, or the old ID
//     of one that rebooted, is no longer registered (its ping timeouts
//     ran out).
//   - "framework kept": a framework with a failover timeout of a week is
//     never refused as removed.

// observe records an update reaching a framework and checks its order.
func (s *faultSim) observe(fw *fwNode, st *mesospb.TaskStatus) {
	s.res.UpdatesSeen++
	if st.GetReason() == mesospb.TaskStatus_REASON_RECONCILIATION {
		s.res.ReconciliationSeen++
	}
	id := st.TaskID.Value
	o := s.obs[fw.name][id]
	if o == nil {
		o = &taskObs{}
		s.obs[fw.name][id] = o
	}
	state := st.GetState()
	o.states = append(o.states, state)
	if st.UUID != nil && !o.seen[string(st.UUID)] {
		if o.seen == nil {
			o.seen = map[string]bool{}
		}
		o.seen[string(st.UUID)] = true
		o.uuids = append(o.uuids, st.UUID)
	}
	s.tracef("%s gets %s %v (%v, %v) uuid %x", fw.name, id, state, st.GetSource(), st.GetReason(), st.UUID)
	if !isTerminalState(state) {
		switch {
		case o.terminal != 0:
			s.fail("update order", "framework %s (%s) got %v (source %v, reason %v, %q) for task %s after terminal %v; its updates: %v",
				fw.name, fw.m.id, state, st.GetSource(), st.GetReason(), st.GetMessage(), id, o.terminal, o.states)
		case o.recorded != 0 && !o.reported:
			o.reported = true
			s.fail("reconciliation order", "framework %s (%s) got %v (source %v, reason %v) for task %s after a reconciliation answered %v; its updates: %v",
				fw.name, fw.m.id, state, st.GetSource(), st.GetReason(), id, o.recorded, o.states)
		}
		return
	}
	if state == mesospb.TASK_LOST {
		return
	}
	switch {
	case o.terminal == 0 && st.UUID != nil:
		o.terminal = state
	case o.recorded == 0 && fromRecord(st):
		o.recorded = state
	}
}

// fromRecord says whether a status is a reconciliation answer the master
// gives from its record of a known task (a state only an agent reports);
// Mesos answers with the state of the update last forwarded
// (status_update_state), so such an answer never runs ahead of the
// agent's stream of updates.
func fromRecord(st *mesospb.TaskStatus) bool {
	if st.GetReason() != mesospb.TaskStatus_REASON_RECONCILIATION {
		return false
	}
	switch st.GetState() {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_ERROR:
		return true
	}
	return false
}

// agentTasks returns, per agent ID, the tasks of the agents that are up
// and registered at least once (a dead agent's tasks are not running).
func (s *faultSim) liveAgents() map[string]*agentNode {
	out := map[string]*agentNode{}
	for _, a := range s.agents {
		if !a.dead && a.core.ID() != "" {
			out[a.core.ID()] = a
		}
	}
	return out
}

// checkStep checks the invariants that hold at every step.
func (s *faultSim) checkStep() {
	s.res.Checks++
	if err := s.sm.Allocator().Check(); err != nil {
		s.fail("allocator consistent", "%v", err)
		return
	}
	st := s.sm.State()
	activeFw := map[string]bool{}
	offered := map[string]resources.Resources{}
	for _, f := range st.GetFrameworks.Frameworks {
		activeFw[f.FrameworkInfo.ID.GetValue()] = true
		for _, o := range f.Offers {
			rs, err := resources.FromProto(o.Resources)
			if err != nil {
				s.fail("no double offer", "offer %s: %v", o.ID.Value, err)
				return
			}
			offered[o.AgentID.Value] = offered[o.AgentID.Value].Add(rs.Unallocated())
		}
	}
	masterUse := map[string]resources.Resources{}
	where := map[string]string{} // framework/task -> agent, in the master's view
	for _, t := range st.GetTasks.Tasks {
		key := t.FrameworkID.Value + "/" + t.TaskID.Value
		if other, ok := where[key]; ok && other != t.AgentID.Value {
			s.fail("one agent per task", "the master has task %s on agents %s and %s", key, other, t.AgentID.Value)
			return
		}
		where[key] = t.AgentID.Value
		if isTerminalState(t.GetState()) {
			continue
		}
		rs, err := resources.FromProto(t.Resources)
		if err != nil {
			s.fail("no double offer", "task %s: %v", key, err)
			return
		}
		masterUse[t.AgentID.Value] = masterUse[t.AgentID.Value].Add(rs.Unallocated())
	}
	live := s.liveAgents()
	runningOn := map[string]string{}
	for _, ag := range st.GetAgents.Agents {
		id := ag.AgentInfo.ID.GetValue()
		a := live[id]
		var total resources.Resources
		if a != nil {
			total = a.total
		} else {
			t, err := resources.FromProto(ag.TotalResources)
			if err != nil {
				s.fail("no double offer", "agent %s total: %v", id, err)
				return
			}
			total = t.Unallocated()
		}
		if u := offered[id].Add(masterUse[id]); !total.Contains(u) {
			s.fail("no double offer", "agent %s: the master has %s offered and %s in use by tasks, of %s", id, offered[id], masterUse[id], total)
			return
		}
		if a == nil {
			continue
		}
		var truth resources.Resources
		var names []string
		for _, t := range a.core.Tasks() {
			if t.Forgotten || isTerminalState(t.State) || !activeFw[t.FrameworkID] {
				continue
			}
			truth = truth.Add(t.Resources.Unallocated())
			names = append(names, t.FrameworkID+"/"+t.TaskID)
		}
		if u := offered[id].Add(truth); !total.Contains(u) {
			s.fail("no double offer", "agent %s (%s): the master offers %s while the agent runs tasks holding %s (%s), of %s",
				id, a.name, offered[id], truth, strings.Join(names, ", "), total)
			return
		}
	}
	for id, a := range live {
		for _, t := range a.core.Tasks() {
			if t.Forgotten || isTerminalState(t.State) {
				continue
			}
			key := t.FrameworkID + "/" + t.TaskID
			if other, ok := runningOn[key]; ok {
				s.fail("one agent per task", "task %s runs on agents %s and %s", key, other, id)
				return
			}
			runningOn[key] = id
		}
	}
}

// checkQuiescent checks, after quiescence, that everything that happened
// reached everyone it concerns.
func (s *faultSim) checkQuiescent() {
	s.res.Checks++
	st := s.sm.State()
	live := s.liveAgents()
	activeFw := map[string]bool{}
	for _, f := range st.GetFrameworks.Frameworks {
		activeFw[f.FrameworkInfo.ID.GetValue()] = true
	}
	// The truth: what each task is on the agents that are up.
	type truth struct {
		agent string
		state mesospb.TaskState
	}
	truths := map[string]truth{}
	for _, id := range sortedKeys(live) {
		for _, t := range live[id].core.Tasks() {
			truths[t.FrameworkID+"/"+t.TaskID] = truth{agent: id, state: t.State}
		}
	}
	for _, a := range s.agents {
		if a.dead {
			continue
		}
		if n := a.core.Pending(); n > 0 {
			var fws []string
			for _, t := range a.core.Tasks() {
				if activeFw[t.FrameworkID] && !t.Forgotten {
					fws = append(fws, t.FrameworkID)
				}
			}
			if len(fws) > 0 {
				s.fail("updates delivered", "%s (%s) still holds %d unacknowledged status updates after quiescence", a.name, a.core.ID(), n)
				return
			}
		}
		if a.down || a.stream == "" || !a.registered {
			s.fail("agents reconnect", "%s (%s) is not registered after quiescence", a.name, a.core.ID())
			return
		}
	}
	registered := map[string]bool{}
	for _, ag := range st.GetAgents.Agents {
		registered[ag.AgentInfo.ID.GetValue()] = true
	}
	for _, a := range s.agents {
		if a.dead && a.core.ID() != "" && registered[a.core.ID()] {
			s.fail("dead agents removed", "%s (%s) died for good but the master still has it registered", a.name, a.core.ID())
			return
		}
		for _, id := range a.former {
			if registered[id] {
				s.fail("dead agents removed", "%s rebooted as a new agent, but the master still has its old ID %s registered", a.name, id)
				return
			}
		}
	}
	for _, fw := range s.fws {
		if fw.removed {
			continue
		}
		if !fw.subscribed {
			s.fail("frameworks reconnect", "%s (%s) is not subscribed after quiescence", fw.name, fw.m.id)
			return
		}
		for _, id := range sortedKeys(fw.m.tasks) {
			t := fw.m.tasks[id]
			key := fw.m.id + "/" + id
			tr, known := truths[key]
			seen := s.obs[fw.name][id]
			var history []mesospb.TaskState
			if seen != nil {
				history = seen.states
			}
			switch {
			case known:
				if t.state != tr.state {
					s.fail("framework view", "%s's task %s is %v on agent %s but its framework was last told %v (updates: %v)",
						fw.name, id, tr.state, tr.agent, t.state, history)
					return
				}
				if t.killed && !isTerminalState(tr.state) {
					s.fail("kills take effect", "%s's task %s is still %v on agent %s after its framework asked for its kill (updates: %v)",
						fw.name, id, tr.state, tr.agent, history)
					return
				}
			case !settledOrUnreachable(t.state):
				s.fail("silently lost", "%s's task %s: no agent runs it, but its framework's last word is %v (updates: %v)",
					fw.name, id, t.state, history)
				return
			}
		}
	}
	// Every update of every task on the agents that are up reached its
	// framework, in order.
	byName := map[string]string{} // framework ID -> name
	for _, fw := range s.fws {
		byName[fw.m.id] = fw.name
	}
	for _, id := range sortedKeys(live) {
		for _, t := range live[id].core.Tasks() {
			name, ok := byName[t.FrameworkID]
			if !ok || !activeFw[t.FrameworkID] {
				continue
			}
			var got [][]byte
			if o := s.obs[name][t.TaskID]; o != nil {
				got = o.uuids
			}
			if !sameUUIDs(got, t.UUIDs) {
				s.fail("every update delivered in order", "task %s/%s on agent %s: the agent made %d updates, its framework received %d of them first-seen in order %s, not %s",
					name, t.TaskID, id, len(t.UUIDs), len(got), uuidOrder(got, t.UUIDs), uuidOrder(t.UUIDs, t.UUIDs))
				return
			}
		}
	}
	// The master's live tasks against the agents'.
	masterLive := map[string]string{}
	for _, t := range st.GetTasks.Tasks {
		if isTerminalState(t.GetState()) {
			continue
		}
		key := t.FrameworkID.Value + "/" + t.TaskID.Value
		masterLive[key] = t.AgentID.Value
		tr, ok := truths[key]
		if !ok || isTerminalState(tr.state) || tr.agent != t.AgentID.Value {
			s.fail("master view", "the master has task %s %v on agent %s, but that agent has it as %v (known: %t)",
				key, t.GetState(), t.AgentID.Value, tr.state, ok)
			return
		}
	}
	for _, key := range sortedKeys(truths) {
		tr := truths[key]
		fid := key[:strings.IndexByte(key, '/')]
		if isTerminalState(tr.state) || !activeFw[fid] {
			continue
		}
		if masterLive[key] != tr.agent {
			s.fail("master view", "agent %s runs task %s (%v) but the master does not have it there", tr.agent, key, tr.state)
			return
		}
	}
}

func settledOrUnreachable(s mesospb.TaskState) bool {
	return settled(s) || s == mesospb.TASK_UNREACHABLE
}

func sameUUIDs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}

// uuidOrder writes uuids as their positions in the agent's list (1-based,
// ? for one it did not make).
func uuidOrder(uuids, agent [][]byte) string {
	pos := map[string]int{}
	for i, u := range agent {
		pos[string(u)] = i + 1
	}
	out := make([]string, len(uuids))
	for i, u := range uuids {
		if p, ok := pos[string(u)]; ok {
			out[i] = strconv.Itoa(p)
		} else {
			out[i] = "?"
		}
	}
	return "[" + strings.Join(out, " ") + "]"
}

package master

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/mesosjson"
	"github.com/apronhq/apron/resources"
)

// mesosView is what Mesos's endpoints read of the master, copied off the
// master's goroutine in one request so that each document is consistent:
// the operator API's answers (GET_STATE, GET_MASTER, GET_FLAGS), which
// are the one source of truth for both APIs, and the few things the
// operator API does not hold (roles' quota and consumption, counters).
type mesosView struct {
	now     time.Time
	elected bool

	state   *masterpb.Response_GetState
	master  *masterpb.Response_GetMaster
	flags   []mesospb.Flag
	roles   rolesView
	metrics metricsSnapshot
	// operatorSubscribers is the number of open operator API event streams.
	operatorSubscribers int
	// allocatorRoles is the allocator's view of the roles, and drf whether
	// it orders them by dominant share, for the allocator's metrics.
	allocatorRoles []allocator.RoleInfo
	drf            bool
	// agentIPs are the agents' IP addresses where the master knows them
	// (see agentIP), for their pids.
	agentIPs map[string]string
}

// viewParts selects what a mesosView holds, so an endpoint copies only
// what it writes.
type viewParts uint8

const (
	viewState viewParts = 1 << iota
	viewMaster
	viewFlags
	viewRoles
	viewMetrics
)

// stateIndex groups the state by framework and agent, as Mesos's model
// walks it, and sums what tasks and executors use, which Mesos writes as
// "used_resources" (offers are apart: "offered_resources").
type stateIndex struct {
	v *mesosView

	frameworkRole map[string]string // the role of a framework that is not MULTI_ROLE
	tasks         map[string]*frameworkTasks
	executors     map[string][]masterpb.Response_GetExecutors_Executor // by framework
	usedByFW      map[string]resources.Resources
	usedByAgent   map[string]resources.Resources
	usedByRole    map[string]resources.Resources // by allocation role
}

// frameworkTasks are a framework's tasks in Mesos's three lists.
type frameworkTasks struct {
	live, unreachable, completed []*mesospb.Task
}

func newStateIndex(v *mesosView) *stateIndex {
	x := &stateIndex{
		v:             v,
		frameworkRole: map[string]string{},
		tasks:         map[string]*frameworkTasks{},
		executors:     map[string][]masterpb.Response_GetExecutors_Executor{},
		usedByFW:      map[string]resources.Resources{},
		usedByAgent:   map[string]resources.Resources{},
		usedByRole:    map[string]resources.Resources{},
	}
	st := v.state
	for _, fws := range [][]masterpb.Response_GetFrameworks_Framework{st.GetGetFrameworks().GetFrameworks(), st.GetGetFrameworks().GetCompletedFrameworks()} {
		for i := range fws {
			info := &fws[i].FrameworkInfo
			if !hasCapability(*info, mesospb.FrameworkInfo_Capability_MULTI_ROLE) {
				x.frameworkRole[info.GetID().GetValue()] = info.GetRole()
			}
		}
	}
	tasks := st.GetGetTasks()
	for i := range tasks.GetTasks() {
		t := &tasks.Tasks[i]
		x.fw(t.FrameworkID.Value).live = append(x.fw(t.FrameworkID.Value).live, t)
		// A task stops using its resources with its terminal update, before
		// it is acknowledged (Mesos's Master::updateTask).
		if !isTerminal(t.GetState()) {
			x.use(t.FrameworkID.Value, t.AgentID.Value, t.Resources)
		}
	}
	for i := range tasks.GetUnreachableTasks() {
		t := &tasks.UnreachableTasks[i]
		x.fw(t.FrameworkID.Value).unreachable = append(x.fw(t.FrameworkID.Value).unreachable, t)
	}
	for i := range tasks.GetCompletedTasks() {
		t := &tasks.CompletedTasks[i]
		x.fw(t.FrameworkID.Value).completed = append(x.fw(t.FrameworkID.Value).completed, t)
	}
	for _, e := range st.GetGetExecutors().GetExecutors() {
		fw := e.ExecutorInfo.GetFrameworkID().GetValue()
		if e.ExecutorInfo.FrameworkID == nil {
			fw = x.executorFramework(e.AgentID.Value, e.ExecutorInfo.ExecutorID.Value)
		}
		x.executors[fw] = append(x.executors[fw], e)
		x.use(fw, e.AgentID.Value, e.ExecutorInfo.Resources)
	}
	return x
}

// executorFramework finds the framework of an executor whose
// ExecutorInfo does not name it, from the tasks it runs.
func (x *stateIndex) executorFramework(agentID, executorID string) string {
	for fw, ts := range x.tasks {
		for _, t := range ts.live {
			if t.AgentID.Value == agentID && t.GetExecutorID().GetValue() == executorID {
				return fw
			}
		}
	}
	return ""
}

func (x *stateIndex) fw(id string) *frameworkTasks {
	t := x.tasks[id]
	if t == nil {
		t = &frameworkTasks{}
		x.tasks[id] = t
	}
	return t
}

// use counts resources a task or executor holds.
func (x *stateIndex) use(frameworkID, agentID string, ps []mesospb.Resource) {
	rs := mesosjson.FromProto(ps)
	x.usedByFW[frameworkID] = x.usedByFW[frameworkID].Add(rs)
	x.usedByAgent[agentID] = x.usedByAgent[agentID].Add(rs)
	for _, r := range rs {
		role := r.AllocationRole
		if role == "" {
			role = x.frameworkRole[frameworkID]
		}
		x.usedByRole[role] = x.usedByRole[role].AddResource(r)
	}
}

// taskRole is the role to write for a task whose resources carry no
// allocation role: its framework's, when it has only one.
func (x *stateIndex) taskRole(t *mesospb.Task) string { return x.frameworkRole[t.FrameworkID.Value] }

func (x *stateIndex) modelTasks(ts []*mesospb.Task) []mesosjson.Task {
	out := make([]mesosjson.Task, len(ts))
	for i, t := range ts {
		out[i] = mesosjson.TaskOf(t, x.taskRole(t))
	}
	return out
}

// summary is Summary<Framework>.
func (x *stateIndex) summary(f *masterpb.Response_GetFrameworks_Framework) frameworkSummaryJSON {
	info := &f.FrameworkInfo
	id := info.GetID().GetValue()
	return frameworkSummaryJSON{
		ID:               id,
		Name:             info.Name,
		UsedResources:    mesosjson.ResourcesOf(x.usedByFW[id]),
		OfferedResources: mesosjson.ResourcesOfProto(f.OfferedResources),
		Capabilities:     frameworkCapabilities(info),
		Hostname:         info.GetHostname(),
		WebuiURL:         info.GetWebuiURL(),
		Active:           f.Active,
		Connected:        f.Connected,
		Recovered:        f.Recovered,
	}
}

// framework is FullFrameworkWriter.
func (x *stateIndex) framework(f *masterpb.Response_GetFrameworks_Framework) frameworkJSON {
	info := &f.FrameworkInfo
	id := info.GetID().GetValue()
	used, offered := x.usedByFW[id], mesosjson.FromProto(f.OfferedResources)
	j := frameworkJSON{
		frameworkSummaryJSON: x.summary(f),
		User:                 info.User,
		FailoverTimeout:      mesosjson.Double(info.GetFailoverTimeout()),
		Checkpoint:           info.GetCheckpoint(),
		RegisteredTime:       secs(f.RegisteredTime),
		UnregisteredTime:     secs(f.UnregisteredTime),
		Principal:            info.Principal,
		Resources:            mesosjson.ResourcesOf(used.Add(offered)),
		Tasks:                []mesosjson.Task{},
		UnreachableTasks:     []mesosjson.Task{},
		CompletedTasks:       []mesosjson.Task{},
		Offers:               make([]offerJSON, 0, len(f.Offers)),
		Executors:            []executorJSON{},
		Labels:               mesosjson.Labels(info.Labels),
		// Apron has no offer constraints: Mesos writes the empty message.
		OfferConstraints: json.RawMessage("{}"),
	}
	if f.ReregisteredTime != nil && (f.RegisteredTime == nil || f.ReregisteredTime.Nanoseconds != f.RegisteredTime.Nanoseconds) {
		j.ReregisteredTime = optSecs(f.ReregisteredTime)
	}
	if hasCapability(*info, mesospb.FrameworkInfo_Capability_MULTI_ROLE) {
		j.Roles = append([]string{}, info.Roles...)
	} else {
		j.Role = ptr(info.GetRole())
	}
	if ts := x.tasks[id]; ts != nil {
		j.Tasks, j.UnreachableTasks, j.CompletedTasks = x.modelTasks(ts.live), x.modelTasks(ts.unreachable), x.modelTasks(ts.completed)
	}
	for i := range f.Offers {
		j.Offers = append(j.Offers, modelOffer(&f.Offers[i], x.frameworkRole[id]))
	}
	for _, e := range x.executors[id] {
		j.Executors = append(j.Executors, executorJSON{mesosjson.ExecutorOf(&e.ExecutorInfo, id), e.AgentID.Value})
	}
	return j
}

// slave is SlaveWriter.
func (x *stateIndex) slave(a *masterpb.Response_GetAgents_Agent) slaveJSON {
	total := mesosjson.FromProto(a.TotalResources)
	reserved := map[string]mesosjson.Resources{}
	for role, rs := range total.Reservations() {
		reserved[role] = mesosjson.ResourcesOf(rs)
	}
	caps := make([]string, 0, len(a.Capabilities))
	for _, c := range a.Capabilities {
		caps = append(caps, c.GetType().String())
	}
	j := slaveJSON{
		slaveInfoJSON:       modelSlaveInfo(&a.AgentInfo),
		PID:                 agentPID(a, x.v.agentIPs[a.AgentInfo.GetID().GetValue()]),
		RegisteredTime:      secs(a.RegisteredTime),
		ReregisteredTime:    optSecs(a.ReregisteredTime),
		Resources:           mesosjson.ResourcesOf(total),
		UsedResources:       mesosjson.ResourcesOf(x.usedByAgent[a.AgentInfo.GetID().GetValue()]),
		OfferedResources:    mesosjson.ResourcesOfProto(a.OfferedResources),
		ReservedResources:   reserved,
		UnreservedResources: mesosjson.ResourcesOf(total.Unreserved()),
		Active:              a.Active,
		Deactivated:         a.GetDeactivated(),
		Version:             a.Version,
		Capabilities:        caps,
	}
	if a.DrainInfo != nil {
		j.DrainInfo = mesosjson.Proto(a.DrainInfo)
		j.EstimatedDrainStartTime = optSecs(a.EstimatedDrainStartTime)
	}
	return j
}

// slaveFull is SlavesWriter::writeSlave.
func (x *stateIndex) slaveFull(a *masterpb.Response_GetAgents_Agent) slaveFullJSON {
	total := mesosjson.FromProto(a.TotalResources)
	reserved := map[string][]json.RawMessage{}
	for role, rs := range total.Reservations() {
		reserved[role] = mesosjson.FullResources(rs)
	}
	return slaveFullJSON{
		slaveJSON:               x.slave(a),
		ReservedResourcesFull:   reserved,
		UnreservedResourcesFull: mesosjson.FullResources(total.Unreserved()),
		UsedResourcesFull:       mesosjson.FullResources(x.usedByAgent[a.AgentInfo.GetID().GetValue()]),
		OfferedResourcesFull:    mesosjson.FullResources(mesosjson.FromProto(a.OfferedResources)),
	}
}

func (x *stateIndex) frameworks(filter func(id string) bool) (active, completed []frameworkJSON) {
	active, completed = []frameworkJSON{}, []frameworkJSON{}
	fws := x.v.state.GetGetFrameworks()
	for i := range fws.GetFrameworks() {
		if f := &fws.Frameworks[i]; filter(f.FrameworkInfo.GetID().GetValue()) {
			active = append(active, x.framework(f))
		}
	}
	for i := range fws.GetCompletedFrameworks() {
		if f := &fws.CompletedFrameworks[i]; filter(f.FrameworkInfo.GetID().GetValue()) {
			completed = append(completed, x.framework(f))
		}
	}
	return active, completed
}

func acceptAll(string) bool { return true }

// acceptID is Mesos's IDAcceptor: every ID when the query parameter is
// absent, else that one ID.
func acceptID(id *string) func(string) bool {
	if id == nil {
		return acceptAll
	}
	return func(s string) bool { return s == *id }
}

// stateJSON is Master::ReadOnlyHandler::state, GET /master/state.
type stateJSON struct {
	mesosjson.Build
	StartTime              mesosjson.Double  `json:"start_time"`
	ElectedTime            *mesosjson.Double `json:"elected_time,omitempty"`
	ID                     string            `json:"id"`
	PID                    string            `json:"pid"`
	Hostname               string            `json:"hostname"`
	Capabilities           []string          `json:"capabilities"`
	ActivatedSlaves        mesosjson.Double  `json:"activated_slaves"`
	DeactivatedSlaves      mesosjson.Double  `json:"deactivated_slaves"`
	UnreachableSlaves      mesosjson.Double  `json:"unreachable_slaves"`
	Domain                 json.RawMessage   `json:"domain,omitempty"`
	Leader                 *string           `json:"leader,omitempty"`
	LeaderInfo             *masterInfoJSON   `json:"leader_info,omitempty"`
	Flags                  map[string]string `json:"flags"`
	Slaves                 []slaveJSON       `json:"slaves"`
	RecoveredSlaves        []slaveInfoJSON   `json:"recovered_slaves"`
	Frameworks             []frameworkJSON   `json:"frameworks"`
	CompletedFrameworks    []frameworkJSON   `json:"completed_frameworks"`
	OrphanTasks            []struct{}        `json:"orphan_tasks"`
	UnregisteredFrameworks []struct{}        `json:"unregistered_frameworks"`
}

// state writes GET /master/state. The master writing it leads (a standby
// redirects), so it is the leader of "leader" and "leader_info".
func (x *stateIndex) state() stateJSON {
	v := x.v
	info := v.master.GetMasterInfo()
	if info == nil {
		info = &mesospb.MasterInfo{}
	}
	j := stateJSON{
		Build:                  mesosjson.BuildOf(MesosVersion),
		StartTime:              mesosjson.Double(v.master.GetStartTime()),
		ID:                     info.ID,
		PID:                    info.GetPid(),
		Hostname:               info.GetHostname(),
		Capabilities:           make([]string, 0, len(info.Capabilities)),
		Domain:                 mesosjson.Proto(info.Domain),
		Flags:                  mesosjson.Flags(v.flags),
		Slaves:                 []slaveJSON{},
		RecoveredSlaves:        []slaveInfoJSON{},
		OrphanTasks:            []struct{}{},
		UnregisteredFrameworks: []struct{}{},
	}
	if v.master != nil && v.master.ElectedTime != nil {
		j.ElectedTime = ptr(mesosjson.Double(*v.master.ElectedTime))
	}
	for _, c := range info.Capabilities {
		j.Capabilities = append(j.Capabilities, c.GetType().String())
	}
	if v.elected {
		j.Leader = info.Pid
		leader := modelMasterInfo(info)
		j.LeaderInfo = &leader
	}
	agents := v.state.GetGetAgents()
	for i := range agents.GetAgents() {
		a := &agents.Agents[i]
		if a.Active {
			j.ActivatedSlaves++
		} else {
			j.DeactivatedSlaves++
		}
		j.Slaves = append(j.Slaves, x.slave(a))
	}
	// Apron forgets an agent it declares lost, so it has no unreachable
	// agents to count; Mesos always writes the field.
	for i := range agents.GetRecoveredAgents() {
		j.RecoveredSlaves = append(j.RecoveredSlaves, modelSlaveInfo(&agents.RecoveredAgents[i]))
	}
	j.Frameworks, j.CompletedFrameworks = x.frameworks(acceptAll)
	return j
}

// stateSummaryJSON is Master::ReadOnlyHandler::stateSummary.
type stateSummaryJSON struct {
	Hostname   string                       `json:"hostname"`
	Slaves     []slaveSummaryCountsJSON     `json:"slaves"`
	Frameworks []frameworkSummaryCountsJSON `json:"frameworks"`
}

type slaveSummaryCountsJSON struct {
	slaveJSON
	taskCountsJSON
	FrameworkIDs []string `json:"framework_ids"`
}

type frameworkSummaryCountsJSON struct {
	frameworkSummaryJSON
	taskCountsJSON
	SlaveIDs []string `json:"slave_ids"`
}

// stateSummary counts, as Mesos does, the tasks of the registered
// frameworks (live, unreachable and completed) by framework and by agent.
func (x *stateIndex) stateSummary() stateSummaryJSON {
	byAgent := map[string]*taskCountsJSON{}
	byFramework := map[string]*taskCountsJSON{}
	agentsOf := map[string]map[string]bool{}
	frameworksOn := map[string]map[string]bool{}
	count := func(t *mesospb.Task) {
		fw, ag := t.FrameworkID.Value, t.AgentID.Value
		for _, p := range []struct {
			m   map[string]*taskCountsJSON
			key string
		}{{byAgent, ag}, {byFramework, fw}} {
			if p.m[p.key] == nil {
				p.m[p.key] = &taskCountsJSON{}
			}
			p.m[p.key].count(t.GetState())
		}
		if agentsOf[fw] == nil {
			agentsOf[fw] = map[string]bool{}
		}
		if frameworksOn[ag] == nil {
			frameworksOn[ag] = map[string]bool{}
		}
		agentsOf[fw][ag], frameworksOn[ag][fw] = true, true
	}
	fws := x.v.state.GetGetFrameworks().GetFrameworks()
	for i := range fws {
		if ts := x.tasks[fws[i].FrameworkInfo.GetID().GetValue()]; ts != nil {
			for _, list := range [][]*mesospb.Task{ts.live, ts.unreachable, ts.completed} {
				for _, t := range list {
					count(t)
				}
			}
		}
	}
	j := stateSummaryJSON{
		Hostname:   x.v.master.GetMasterInfo().GetHostname(),
		Slaves:     []slaveSummaryCountsJSON{},
		Frameworks: []frameworkSummaryCountsJSON{},
	}
	agents := x.v.state.GetGetAgents().GetAgents()
	for i := range agents {
		id := agents[i].AgentInfo.GetID().GetValue()
		s := slaveSummaryCountsJSON{slaveJSON: x.slave(&agents[i]), FrameworkIDs: sortedStrings(frameworksOn[id])}
		if c := byAgent[id]; c != nil {
			s.taskCountsJSON = *c
		}
		j.Slaves = append(j.Slaves, s)
	}
	for i := range fws {
		id := fws[i].FrameworkInfo.GetID().GetValue()
		f := frameworkSummaryCountsJSON{frameworkSummaryJSON: x.summary(&fws[i]), SlaveIDs: sortedStrings(agentsOf[id])}
		if c := byFramework[id]; c != nil {
			f.taskCountsJSON = *c
		}
		j.Frameworks = append(j.Frameworks, f)
	}
	return j
}

// frameworksJSON is Master::ReadOnlyHandler::frameworks.
type frameworksJSON struct {
	Frameworks             []frameworkJSON `json:"frameworks"`
	CompletedFrameworks    []frameworkJSON `json:"completed_frameworks"`
	UnregisteredFrameworks []struct{}      `json:"unregistered_frameworks"`
}

func (x *stateIndex) frameworksDoc(frameworkID *string) frameworksJSON {
	j := frameworksJSON{UnregisteredFrameworks: []struct{}{}}
	j.Frameworks, j.CompletedFrameworks = x.frameworks(acceptID(frameworkID))
	return j
}

// slavesJSON is Master::ReadOnlyHandler::slaves.
type slavesJSON struct {
	Slaves          []slaveFullJSON `json:"slaves"`
	RecoveredSlaves []slaveInfoJSON `json:"recovered_slaves"`
}

func (x *stateIndex) slavesDoc(slaveID *string) slavesJSON {
	accept := acceptID(slaveID)
	j := slavesJSON{Slaves: []slaveFullJSON{}, RecoveredSlaves: []slaveInfoJSON{}}
	agents := x.v.state.GetGetAgents()
	for i := range agents.GetAgents() {
		if a := &agents.Agents[i]; accept(a.AgentInfo.GetID().GetValue()) {
			j.Slaves = append(j.Slaves, x.slaveFull(a))
		}
	}
	for i := range agents.GetRecoveredAgents() {
		if a := &agents.RecoveredAgents[i]; accept(a.GetID().GetValue()) {
			j.RecoveredSlaves = append(j.RecoveredSlaves, modelSlaveInfo(a))
		}
	}
	return j
}

// tasksQuery is the query of GET /master/tasks.
type tasksQuery struct {
	limit, offset int // limit < 0: no limit
	ascending     bool
	frameworkID   *string
	taskID        *string
}

// defaultTaskLimit is Mesos's TASK_LIMIT (src/master/constants.hpp).
const defaultTaskLimit = 100

// tasksJSON is Master::ReadOnlyHandler::tasks.
type tasksJSON struct {
	Tasks []mesosjson.Task `json:"tasks"`
}

// tasksDoc lists the tasks of every framework, registered then completed,
// live, unreachable then completed, filtered by the query, sorted by the
// time of their first status (newest first unless order=asc; tasks with no
// status last, or first in ascending order), and paged.
func (x *stateIndex) tasksDoc(q tasksQuery) tasksJSON {
	acceptFW, acceptTask := acceptID(q.frameworkID), acceptID(q.taskID)
	var all []*mesospb.Task
	fws := x.v.state.GetGetFrameworks()
	for _, list := range [][]masterpb.Response_GetFrameworks_Framework{fws.GetFrameworks(), fws.GetCompletedFrameworks()} {
		for i := range list {
			id := list[i].FrameworkInfo.GetID().GetValue()
			ts := x.tasks[id]
			if !acceptFW(id) || ts == nil {
				continue
			}
			for _, tl := range [][]*mesospb.Task{ts.live, ts.unreachable, ts.completed} {
				for _, t := range tl {
					if acceptTask(t.TaskID.Value) {
						all = append(all, t)
					}
				}
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return firstStatusBefore(all[i], all[j], q.ascending) })
	j := tasksJSON{Tasks: []mesosjson.Task{}}
	if q.offset < 0 || q.offset >= len(all) {
		return j
	}
	end := len(all)
	if q.limit >= 0 && q.offset+q.limit < end {
		end = q.offset + q.limit
	}
	j.Tasks = x.modelTasks(all[q.offset:end])
	return j
}

// firstStatusBefore is Mesos's TaskComparator.
func firstStatusBefore(a, b *mesospb.Task, ascending bool) bool {
	if len(a.Statuses) == 0 || len(b.Statuses) == 0 {
		// Ascending puts tasks without a status first, descending last.
		if ascending {
			return len(a.Statuses) == 0 && len(b.Statuses) > 0
		}
		return len(b.Statuses) == 0 && len(a.Statuses) > 0
	}
	ta, tb := a.Statuses[0].GetTimestamp(), b.Statuses[0].GetTimestamp()
	if ascending {
		return ta < tb
	}
	return ta > tb
}

// rolesJSON is Master::ReadOnlyHandler::roles.
type rolesJSON struct {
	Roles []roleJSON `json:"roles"`
}

type roleJSON struct {
	Name   string           `json:"name"`
	Weight mesosjson.Double `json:"weight"`
	Quota  struct {
		Role      string                      `json:"role"`
		Guarantee map[string]mesosjson.Double `json:"guarantee"`
		Limit     map[string]mesosjson.Double `json:"limit"`
		Consumed  map[string]mesosjson.Double `json:"consumed"`
	} `json:"quota"`
	Resources  map[string]mesosjson.Double `json:"resources"`
	Allocated  map[string]mesosjson.Double `json:"allocated"`
	Offered    map[string]mesosjson.Double `json:"offered"`
	Reserved   map[string]mesosjson.Double `json:"reserved"`
	Frameworks []string                    `json:"frameworks"`
}

// roles writes each role the allocator knows (its weight, quota and
// frameworks, from rolesView) with what Mesos's RoleResourceBreakdown
// counts over the role and its sub-roles: "allocated", what tasks and
// executors use; "offered", what is offered; "resources", both; and
// "reserved", the agents' reservations. "consumed" is the allocator's
// quota consumption, which counts offered resources too (as the quota is
// enforced), where Mesos's endpoint counts only what is used.
func (x *stateIndex) roles() rolesJSON {
	offeredByRole := map[string]resources.Resources{}
	for _, f := range x.v.state.GetGetFrameworks().GetFrameworks() {
		id := f.FrameworkInfo.GetID().GetValue()
		for _, o := range f.Offers {
			role := o.AllocationInfo.GetRole()
			if o.AllocationInfo == nil {
				role = x.frameworkRole[id]
			}
			offeredByRole[role] = offeredByRole[role].Add(mesosjson.FromProto(o.Resources))
		}
	}
	var reservedAll resources.Resources
	for _, a := range x.v.state.GetGetAgents().GetAgents() {
		reservedAll = reservedAll.Add(mesosjson.FromProto(a.TotalResources).Reserved())
	}
	subtree := func(byRole map[string]resources.Resources, role string) map[string]resources.Scalar {
		var rs resources.Resources
		for r, held := range byRole {
			if resources.IsSubroleOrSelf(r, role) {
				rs = rs.Add(held)
			}
		}
		return rs.Quantities()
	}
	j := rolesJSON{Roles: make([]roleJSON, 0, len(x.v.roles.Roles))}
	for _, rv := range x.v.roles.Roles {
		r := roleJSON{Name: rv.Name, Weight: mesosjson.Double(rv.Weight), Frameworks: rv.Frameworks}
		if r.Frameworks == nil {
			r.Frameworks = []string{}
		}
		r.Quota.Role = rv.Name
		r.Quota.Guarantee, r.Quota.Limit, r.Quota.Consumed = mesosjson.Doubles(rv.Quota.Guarantee), mesosjson.Doubles(rv.Quota.Limit), mesosjson.Doubles(rv.Quota.Consumed)
		allocated, offered := subtree(x.usedByRole, rv.Name), subtree(offeredByRole, rv.Name)
		both := map[string]resources.Scalar{}
		for _, q := range []map[string]resources.Scalar{allocated, offered} {
			for name, v := range q {
				both[name] = both[name].Add(v)
			}
		}
		r.Allocated, r.Offered, r.Resources = quantitiesJSON(allocated), quantitiesJSON(offered), quantitiesJSON(both)
		r.Reserved = quantitiesJSON(reservedAll.ReservedTo(rv.Name).Quantities())
		j.Roles = append(j.Roles, r)
	}
	return j
}

package master

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/checks"
	"github.com/apronhq/apron/resources"
)

// errTask marks a task the master refuses; its message goes to the
// framework in the TASK_ERROR update.
var errTask = errors.New("invalid task")

// accept handles ACCEPT: validate the offers, then apply each operation in
// order to the pool of what they hold (see operations.go for RESERVE,
// UNRESERVE, CREATE and DESTROY). Nothing is half-applied: a task that fails
// validation gets TASK_ERROR and uses nothing, an invalid operation is
// dropped; whatever the operations leave unused goes back to the allocator
// under the call's filters.
func (c *core) accept(fw *framework, acc *schedulerpb.Call_Accept) {
	refuse, err := refuseDuration(acc.Filters)
	if err != nil {
		refuse = 0
	}
	offers, problem := c.validateOffers(fw, acc.OfferIDs)
	if problem != "" {
		for _, o := range offers {
			c.removeOffer(o, 0)
		}
		state := c.unknownTaskState(fw)
		if fw.partitionAware() {
			state = mesospb.TASK_DROPPED
		}
		for _, op := range acc.Operations {
			for _, t := range operationTasks(op) {
				c.countTaskEnded(state)
				c.sendUpdate(fw, c.masterStatus(t.TaskID.Value, t.AgentID.Value, state, mesospb.TaskStatus_REASON_INVALID_OFFERS,
					"Task launched with invalid offers: "+problem))
			}
		}
		c.log.Info("accept refused", "framework", fw.id, "problem", problem)
		return
	}

	a := c.agents[offers[0].agent]
	var pool resources.Resources
	roles := map[string]bool{}
	for _, o := range offers {
		pool = pool.Add(o.resources)
		roles[o.role] = true
		delete(c.offers, o.id)
		delete(fw.offers, o.id)
		delete(a.offers, o.id)
	}
	l := launcher{c: c, fw: fw, a: a, pool: pool, roles: roles, seen: map[string]bool{}}
	for i := range acc.Operations {
		op := &acc.Operations[i]
		if op.ID != nil {
			l.refuseFeedback(op)
			continue
		}
		switch op.GetType() {
		case mesospb.Offer_Operation_LAUNCH:
			if op.Launch == nil {
				continue
			}
			for j := range op.Launch.TaskInfos {
				l.launch(&op.Launch.TaskInfos[j])
			}
		case mesospb.Offer_Operation_LAUNCH_GROUP:
			if op.LaunchGroup != nil {
				l.launchGroup(op.LaunchGroup)
			}
		case mesospb.Offer_Operation_RESERVE, mesospb.Offer_Operation_UNRESERVE,
			mesospb.Offer_Operation_CREATE, mesospb.Offer_Operation_DESTROY,
			mesospb.Offer_Operation_GROW_VOLUME, mesospb.Offer_Operation_SHRINK_VOLUME:
			l.operate(op)
		default:
			c.log.Warn("operation not supported yet; its resources stay unused", "framework", fw.id, "operation", op.GetType())
		}
	}
	c.recover(fw.id, a.id, l.pool, refuse)
}

// operationTasks lists the tasks an operation would launch.
func operationTasks(op mesospb.Offer_Operation) []mesospb.TaskInfo {
	switch {
	case op.Launch != nil:
		return op.Launch.TaskInfos
	case op.LaunchGroup != nil:
		return op.LaunchGroup.TaskGroup.Tasks
	}
	return nil
}

// validateOffers returns the framework's offers among ids and, when they
// cannot be used together, why.
func (c *core) validateOffers(fw *framework, ids []mesospb.OfferID) ([]*offer, string) {
	if len(ids) == 0 {
		return nil, "no offers in ACCEPT"
	}
	var offers []*offer
	var problem string
	seen := map[string]bool{}
	for _, id := range ids {
		o := c.offers[id.Value]
		switch {
		case seen[id.Value]:
			problem = fmt.Sprintf("offer %s is listed twice", id.Value)
		case o == nil:
			problem = fmt.Sprintf("offer %s is no longer valid", id.Value)
		case o.framework != fw.id:
			problem = fmt.Sprintf("offer %s belongs to another framework", id.Value)
		case len(offers) > 0 && o.agent != offers[0].agent:
			problem = fmt.Sprintf("offers %s and %s are on different agents", offers[0].id, o.id)
			offers = append(offers, o)
		default:
			offers = append(offers, o)
		}
		seen[id.Value] = true
	}
	return offers, problem
}

// launcher launches the tasks of one ACCEPT from the pool of its offers.
type launcher struct {
	c     *core
	fw    *framework
	a     *agent
	pool  resources.Resources
	roles map[string]bool
	seen  map[string]bool // task IDs of this ACCEPT
}

func (l *launcher) launch(ti *mesospb.TaskInfo) {
	// Authorized first, as Mesos's Master::_accept does.
	if err := checkRunTask(l.fw.approvers, ti, l.fw); err != nil {
		l.refuse(ti, mesospb.TaskStatus_REASON_TASK_UNAUTHORIZED, err)
		return
	}
	pool, err := l.pool, error(nil)
	var exec *mesospb.ExecutorInfo
	var execNeed resources.Resources
	switch {
	case ti.Executor == nil && ti.Command == nil:
		err = fmt.Errorf("%w: task %s needs either command or executor", errTask, ti.TaskID.Value)
	case ti.Executor != nil && ti.Command != nil:
		err = fmt.Errorf("%w: task %s sets both command and executor", errTask, ti.TaskID.Value)
	case ti.Executor != nil:
		exec, execNeed, err = l.validateExecutor(ti.Executor)
		if err == nil && !pool.Contains(execNeed) {
			err = fmt.Errorf("%w: executor %s needs %s but the offers have %s left", errTask,
				ti.Executor.ExecutorID.Value, execNeed.Flatten(), pool.Flatten())
		}
		pool = pool.Subtract(execNeed)
	}
	var need resources.Resources
	if err == nil {
		need, err = l.validateTask(ti, pool, l.seen)
	}
	if err == nil {
		if cerr := checks.Task(ti); cerr != nil {
			err = fmt.Errorf("%w: %v", errTask, cerr)
		}
	}
	if err != nil {
		l.refuse(ti, mesospb.TaskStatus_REASON_TASK_INVALID, err)
		return
	}
	if exec != nil {
		l.c.addExecutor(l.fw, l.a, *exec, execNeed)
	}
	l.pool = pool.Subtract(need)
	l.commit(ti, need)
	l.c.sendAgent(l.a, &internalpb.Event{
		Type:    internalpb.Event_RUN_TASK.Enum(),
		RunTask: &internalpb.Event_RunTask{Framework: l.fw.info, Task: *ti},
	})
}

// launchGroup launches a task group whole or not at all: every task is
// validated before any is recorded.
func (l *launcher) launchGroup(g *mesospb.Offer_Operation_LaunchGroup) {
	tasks := g.TaskGroup.Tasks
	if len(tasks) == 0 {
		return
	}
	fail := func(err error) {
		for i := range tasks {
			l.refuse(&tasks[i], mesospb.TaskStatus_REASON_TASK_GROUP_INVALID, err)
		}
	}
	// The whole group is authorized first; the first refusal is every
	// task's answer, as Mesos's.
	for i := range tasks {
		if err := checkRunTask(l.fw.approvers, &tasks[i], l.fw); err != nil {
			err = fmt.Errorf("%w: Task '%s' is not authorized: %s", errTask, tasks[i].TaskID.Value,
				strings.TrimPrefix(err.Error(), errTask.Error()+": "))
			for j := range tasks {
				l.refuse(&tasks[j], mesospb.TaskStatus_REASON_TASK_GROUP_UNAUTHORIZED, err)
			}
			return
		}
	}
	exec, execNeed, err := l.validateExecutor(&g.Executor)
	if err != nil {
		fail(err)
		return
	}
	pool := l.pool
	if !pool.Contains(execNeed) {
		fail(fmt.Errorf("%w: executor %s needs %s but the offers have %s left", errTask,
			g.Executor.ExecutorID.Value, execNeed.Flatten(), pool.Flatten()))
		return
	}
	pool = pool.Subtract(execNeed)
	seen := make(map[string]bool, len(l.seen)+len(tasks))
	for id := range l.seen {
		seen[id] = true
	}
	needs := make([]resources.Resources, len(tasks))
	for i := range tasks {
		ti := &tasks[i]
		if ti.Executor != nil || ti.Command == nil {
			fail(fmt.Errorf("%w: task %s: a task of a group has a command and no executor", errTask, ti.TaskID.Value))
			return
		}
		need, err := l.validateTask(ti, pool, seen)
		if err != nil {
			fail(err)
			return
		}
		cerr := checks.Task(ti)
		if cerr == nil {
			cerr = checks.GroupTask(ti)
		}
		if cerr != nil {
			fail(fmt.Errorf("%w: Task '%s' is invalid: %v", errTask, ti.TaskID.Value, cerr))
			return
		}
		pool = pool.Subtract(need)
		seen[ti.TaskID.Value] = true
		needs[i] = need
	}
	if exec != nil {
		l.c.addExecutor(l.fw, l.a, *exec, execNeed)
	}
	l.pool = pool
	for i := range tasks {
		l.commit(&tasks[i], needs[i])
		l.fw.tasks[tasks[i].TaskID.Value].executor = g.Executor.ExecutorID.Value
	}
	l.c.sendAgent(l.a, &internalpb.Event{
		Type: internalpb.Event_RUN_TASK_GROUP.Enum(),
		RunTaskGroup: &internalpb.Event_RunTaskGroup{
			Framework: l.fw.info,
			Executor:  g.Executor,
			TaskGroup: g.TaskGroup,
		},
	})
}

// validateTask checks a task against the framework, the agent and pool, and
// returns the resources it takes. It changes nothing but the allocation
// role of the task's resources, which it fills in as Mesos does.
func (l *launcher) validateTask(ti *mesospb.TaskInfo, pool resources.Resources, seen map[string]bool) (resources.Resources, error) {
	id := ti.TaskID.Value
	if err := validateID("task ID", id); err != nil {
		return nil, err
	}
	if err := checkTask(ti); err != nil { // limits.go
		return nil, err
	}
	if seen[id] || l.fw.tasks[id] != nil {
		return nil, fmt.Errorf("%w: task ID %s is already in use by a live task of this framework", errTask, id)
	}
	if ti.AgentID.Value != l.a.id {
		return nil, fmt.Errorf("%w: task %s names agent %s but the offers are on agent %s", errTask, id, ti.AgentID.Value, l.a.id)
	}
	need, err := l.taskResources(ti.Resources)
	if err != nil {
		return nil, fmt.Errorf("%w: task %s: %v", errTask, id, err)
	}
	if need.Empty() {
		return nil, fmt.Errorf("%w: task %s uses no resources", errTask, id)
	}
	if !pool.Contains(need) {
		return nil, fmt.Errorf("%w: task %s needs %s but the offers have %s left", errTask, id, need.Flatten(), pool.Flatten())
	}
	return need, nil
}

// validateExecutor checks a task's executor. For an executor new on the
// agent it returns the info to record and the resources it takes; for one
// already running, nothing (its ExecutorInfo must not change).
func (l *launcher) validateExecutor(e *mesospb.ExecutorInfo) (*mesospb.ExecutorInfo, resources.Resources, error) {
	id := e.ExecutorID.Value
	if err := validateID("executor ID", id); err != nil {
		return nil, nil, err
	}
	if err := checkExecutor(e); err != nil { // limits.go
		return nil, nil, err
	}
	if e.FrameworkID != nil && e.FrameworkID.Value != l.fw.id {
		return nil, nil, fmt.Errorf("%w: executor %s names framework %s", errTask, id, e.FrameworkID.Value)
	}
	if e.GetType() == mesospb.ExecutorInfo_DEFAULT && e.Command != nil {
		return nil, nil, fmt.Errorf("%w: executor %s is DEFAULT and has a command", errTask, id)
	}
	e.FrameworkID = &mesospb.FrameworkID{Value: l.fw.id}
	need, err := l.taskResources(e.Resources)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: executor %s: %v", errTask, id, err)
	}
	if existing, ok := l.fw.executors[l.a.id][id]; ok {
		if !proto.Equal(&existing.info, e) {
			return nil, nil, fmt.Errorf("%w: executor %s is already running on agent %s with a different ExecutorInfo", errTask, id, l.a.id)
		}
		return nil, nil, nil
	}
	return e, need, nil
}

// taskResources parses the resources of a task, an executor or an offer
// operation, gives those without an allocation role the offers' role, as
// Mesos does (injectAllocationInfo) so that a framework that is not
// MULTI_ROLE, which receives offers without allocation_info, may send its
// resources back either way, and writes them in the current format
// (upgradeResource).
func (l *launcher) taskResources(ps []mesospb.Resource) (resources.Resources, error) {
	rs, err := resources.FromProto(ps)
	if err != nil {
		return nil, err
	}
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	var role string
	if len(l.roles) == 1 {
		for r := range l.roles {
			role = r
		}
	}
	out := make(resources.Resources, 0, len(rs))
	for _, r := range rs {
		if r.AllocationRole == "" {
			if role == "" {
				return nil, fmt.Errorf("resources must carry allocation_info when the offers are for several roles")
			}
			r.AllocationRole = role
		}
		out = append(out, r)
	}
	for i := range ps {
		if ps[i].AllocationInfo == nil && role != "" {
			ps[i].AllocationInfo = &mesospb.Resource_AllocationInfo{Role: ptr(role)}
		}
		upgradeResource(&ps[i])
	}
	return resources.New(out...), nil
}

// upgradeResource rewrites a valid resource from the pre-refinement format
// (role and reservation), in which frameworks without the
// RESERVATION_REFINEMENT capability receive offers and may answer, to the
// reservations stack, as Mesos upgrades the resources of every accepted
// operation (convertResourceFormat to POST_RESERVATION_REFINEMENT): tasks
// are recorded and sent to agents in one format.
func upgradeResource(p *mesospb.Resource) {
	if len(p.Reservations) > 0 || p.Role == nil {
		p.Role, p.Reservation = nil, nil
		return
	}
	role := *p.Role
	res := p.Reservation
	p.Role, p.Reservation = nil, nil
	if role == "*" {
		return
	}
	r := mesospb.Resource_ReservationInfo{Type: mesospb.Resource_ReservationInfo_STATIC.Enum(), Role: ptr(role)}
	if res != nil {
		r.Type = mesospb.Resource_ReservationInfo_DYNAMIC.Enum()
		r.Principal, r.Labels = res.Principal, res.Labels
	}
	p.Reservations = []mesospb.Resource_ReservationInfo{r}
}

// commit records a validated task; the caller has taken its resources from
// the pool.
func (l *launcher) commit(ti *mesospb.TaskInfo, need resources.Resources) {
	t := &task{
		id:        ti.TaskID.Value,
		framework: l.fw.id,
		agent:     l.a.id,
		info:      *keptTask(ti), // not its data nor command, as Mesos (limits.go)
		resources: need,
		state:     mesospb.TASK_STAGING,
	}
	if ti.Executor != nil {
		t.executor = ti.Executor.ExecutorID.Value
		t.info.Executor = nil
	}
	l.seen[t.id] = true
	l.fw.tasks[t.id] = t
	l.a.tasks[t.key()] = t
	l.c.met.tasksLaunched++
	l.c.emitTaskAdded(t)
}

// refuse answers a task the master will not launch with TASK_ERROR from
// the master, for the agent the task names, as Mesos does; reason is
// REASON_TASK_INVALID, or REASON_TASK_GROUP_INVALID for a task group.
func (l *launcher) refuse(ti *mesospb.TaskInfo, reason mesospb.TaskStatus_Reason, err error) {
	msg := strings.TrimPrefix(err.Error(), errTask.Error()+": ")
	l.c.countTaskEnded(mesospb.TASK_ERROR)
	l.c.sendUpdate(l.fw, l.c.masterStatus(ti.TaskID.Value, ti.AgentID.Value, mesospb.TASK_ERROR, reason, msg))
}

// refuseFeedback drops an operation that asks for operation feedback (its
// id is set), as a Mesos master does for an agent without the
// RESOURCE_PROVIDER capability, which Apron's agents lack (Master::_accept):
// a launch's tasks get TASK_ERROR, any other operation an
// UPDATE_OPERATION_STATUS with OPERATION_ERROR, and its resources go back
// unused.
func (l *launcher) refuseFeedback(op *mesospb.Offer_Operation) {
	tasks := operationTasks(*op)
	switch op.GetType() {
	case mesospb.Offer_Operation_LAUNCH:
		for i := range tasks {
			l.refuse(&tasks[i], mesospb.TaskStatus_REASON_TASK_INVALID,
				errors.New("The `id` field cannot be set on LAUNCH operations"))
		}
	case mesospb.Offer_Operation_LAUNCH_GROUP:
		for i := range tasks {
			l.refuse(&tasks[i], mesospb.TaskStatus_REASON_TASK_GROUP_INVALID,
				errors.New("The `id` field cannot be set on LAUNCH_GROUP operations"))
		}
	default:
		l.c.log.Warn("dropping an operation that asks for feedback", "framework", l.fw.id, "operation", op.GetType())
		l.c.sendScheduler(l.fw, &schedulerpb.Event{
			Type: schedulerpb.Event_UPDATE_OPERATION_STATUS.Enum(),
			UpdateOperationStatus: &schedulerpb.Event_UpdateOperationStatus{Status: mesospb.OperationStatus{
				OperationID: op.ID,
				State:       mesospb.OPERATION_ERROR,
				Message: ptr("Operation requested feedback, but agent " + l.a.id +
					" does not have the required RESOURCE_PROVIDER capability"),
			}},
		})
	}
}

func (c *core) addExecutor(fw *framework, a *agent, e mesospb.ExecutorInfo, rs resources.Resources) {
	m := fw.executors[a.id]
	if m == nil {
		m = map[string]*executor{}
		fw.executors[a.id] = m
	}
	m[e.ExecutorID.Value] = &executor{info: e, resources: rs}
}

// validateID applies Mesos's rules for IDs chosen by frameworks
// (common::validation::validateID, see idError in limits.go).
func validateID(what, id string) error {
	if msg := idError(id); msg != "" {
		return fmt.Errorf("%w: %s is not valid: %s", errTask, what, msg)
	}
	return nil
}

package master

import (
	"context"
	"slices"
	"strings"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
)

// Filtering of what the master shows, as Mesos's master filters
// GET_STATE, GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS and its /state
// endpoints: a principal sees the frameworks view_frameworks lets it
// (by the framework's user), the tasks view_tasks lets it (by the task's
// user, else its framework's) and the executors view_executors lets it.
// Agents are shown without the resources reserved to roles view_roles
// hides. So is the operator event stream, where the events of frameworks
// and tasks are filtered alike, and AGENT_ADDED shows the agent as
// GET_AGENTS does.

// viewActions are the approvers filtering needs.
var viewActions = []auth.Action{auth.ViewFramework, auth.ViewTask, auth.ViewExecutor, auth.ViewRole}

// frameworkInfoOf is the info of a framework, live or completed; nil
// when the master does not know it.
func (c *core) frameworkInfoOf(id string) *mesospb.FrameworkInfo {
	if fw := c.frameworks[id]; fw != nil {
		return &fw.info
	}
	if fw := c.completedFramework(id); fw != nil {
		return &fw.info
	}
	return nil
}

// filterState removes from a state (or any of its parts) what ap does
// not let its principal see. It runs on the master's goroutine.
func (c *core) filterState(st *masterpb.Response_GetState, ap approvers) {
	if ap == nil || st == nil {
		return
	}
	if f := st.GetFrameworks; f != nil {
		hidden := func(fw masterpb.Response_GetFrameworks_Framework) bool {
			return !ap.Allows(auth.ViewFramework, &auth.Object{FrameworkInfo: &fw.FrameworkInfo})
		}
		f.Frameworks = slices.DeleteFunc(f.Frameworks, hidden)
		f.CompletedFrameworks = slices.DeleteFunc(f.CompletedFrameworks, hidden)
	}
	if ts := st.GetTasks; ts != nil {
		hidden := func(t mesospb.Task) bool {
			return !ap.Allows(auth.ViewTask, &auth.Object{Task: &t, FrameworkInfo: c.frameworkInfoOf(t.FrameworkID.Value)})
		}
		ts.PendingTasks = slices.DeleteFunc(ts.PendingTasks, hidden)
		ts.Tasks = slices.DeleteFunc(ts.Tasks, hidden)
		ts.UnreachableTasks = slices.DeleteFunc(ts.UnreachableTasks, hidden)
		ts.CompletedTasks = slices.DeleteFunc(ts.CompletedTasks, hidden)
		ts.OrphanTasks = slices.DeleteFunc(ts.OrphanTasks, hidden)
	}
	if as := st.GetAgents; as != nil {
		for i := range as.Agents {
			a := &as.Agents[i]
			a.AgentInfo.Resources = visibleResources(a.AgentInfo.Resources, ap)
			a.TotalResources = visibleResources(a.TotalResources, ap)
			a.AllocatedResources = visibleResources(a.AllocatedResources, ap)
			a.OfferedResources = visibleResources(a.OfferedResources, ap)
		}
	}
	if es := st.GetExecutors; es != nil {
		hidden := func(e masterpb.Response_GetExecutors_Executor) bool {
			return !ap.Allows(auth.ViewExecutor, &auth.Object{ExecutorInfo: &e.ExecutorInfo,
				FrameworkInfo: c.frameworkInfoOf(e.ExecutorInfo.GetFrameworkID().GetValue())})
		}
		es.Executors = slices.DeleteFunc(es.Executors, hidden)
		es.OrphanExecutors = slices.DeleteFunc(es.OrphanExecutors, hidden)
	}
}

// filterResponse filters the state parts of an operator call's answer.
func (c *core) filterResponse(resp *masterpb.Response, ap approvers) {
	if ap == nil || resp == nil {
		return
	}
	filterOperatorResponse(resp, ap)
	c.filterState(resp.GetState, ap)
	c.filterState(&masterpb.Response_GetState{GetFrameworks: resp.GetFrameworks, GetTasks: resp.GetTasks,
		GetExecutors: resp.GetExecutors, GetAgents: resp.GetAgents}, ap)
}

// visibleResources leaves out the resources reserved to a role ap does
// not let its principal view, as Mesos's master hides them.
func visibleResources(rs []mesospb.Resource, ap approvers) []mesospb.Resource {
	return slices.DeleteFunc(rs, func(r mesospb.Resource) bool {
		role := ""
		switch {
		case len(r.Reservations) > 0:
			role = r.Reservations[len(r.Reservations)-1].GetRole()
		case r.Role != nil && r.GetRole() != "*":
			role = r.GetRole()
		default:
			return false // unreserved
		}
		return !ap.Allows(auth.ViewRole, &auth.Object{Value: role})
	})
}

// visible says whether an operator event may go to a subscriber with
// approvers ap: the events of frameworks and tasks by the view ACLs,
// the others always.
func (c *core) visible(ev *masterpb.Event, ap approvers) bool {
	switch ev.GetType() {
	case masterpb.Event_TASK_ADDED:
		t := &ev.TaskAdded.Task
		return ap.Allows(auth.ViewTask, &auth.Object{Task: t, FrameworkInfo: c.frameworkInfoOf(t.FrameworkID.Value)})
	case masterpb.Event_TASK_UPDATED:
		u := ev.TaskUpdated
		obj := &auth.Object{FrameworkInfo: c.frameworkInfoOf(u.FrameworkID.Value)}
		if fw := c.frameworks[u.FrameworkID.Value]; fw != nil {
			if t := fw.tasks[u.Status.TaskID.Value]; t != nil {
				tp := t.proto()
				obj.Task = &tp
			}
		}
		return ap.Allows(auth.ViewTask, obj)
	case masterpb.Event_FRAMEWORK_ADDED:
		return ap.Allows(auth.ViewFramework, &auth.Object{FrameworkInfo: &ev.FrameworkAdded.Framework.FrameworkInfo})
	case masterpb.Event_FRAMEWORK_UPDATED:
		return ap.Allows(auth.ViewFramework, &auth.Object{FrameworkInfo: &ev.FrameworkUpdated.Framework.FrameworkInfo})
	case masterpb.Event_FRAMEWORK_REMOVED:
		return ap.Allows(auth.ViewFramework, &auth.Object{FrameworkInfo: &ev.FrameworkRemoved.FrameworkInfo})
	}
	return true
}

// agentAddedFor is ev for a subscriber with approvers ap: an AGENT_ADDED
// whose agent has resources reserved to roles ap hides is a copy without
// them (subscribers share the others, so ev itself is never changed).
func agentAddedFor(ev *masterpb.Event, ap approvers) *masterpb.Event {
	if ev.GetType() != masterpb.Event_AGENT_ADDED || ev.AgentAdded == nil {
		return ev
	}
	a := ev.AgentAdded.Agent
	filtered := a
	filtered.AgentInfo.Resources = visibleResources(slices.Clone(a.AgentInfo.Resources), ap)
	filtered.TotalResources = visibleResources(slices.Clone(a.TotalResources), ap)
	filtered.AllocatedResources = visibleResources(slices.Clone(a.AllocatedResources), ap)
	filtered.OfferedResources = visibleResources(slices.Clone(a.OfferedResources), ap)
	if len(filtered.AgentInfo.Resources) == len(a.AgentInfo.Resources) && len(filtered.TotalResources) == len(a.TotalResources) &&
		len(filtered.AllocatedResources) == len(a.AllocatedResources) && len(filtered.OfferedResources) == len(a.OfferedResources) {
		return ev
	}
	cp := *ev
	cp.AgentAdded = &masterpb.Event_AgentAdded{Agent: filtered}
	return &cp
}

// filterRoles leaves out of /roles the roles ap does not let its
// principal view (view_roles), as Mesos's /roles.
func filterRoles(v *rolesView, ap approvers) {
	if ap == nil {
		return
	}
	v.Roles = slices.DeleteFunc(v.Roles, func(r roleView) bool {
		return !ap.Allows(auth.ViewRole, &auth.Object{Value: r.Name})
	})
}

// sandboxIDs are the framework and executor IDs a sandbox path names
// (".../frameworks/<id>/executors/<id>/..."), "" where it names none.
func sandboxIDs(p string) (frameworkID, executorID string) {
	parts := strings.Split(p, "/")
	for i := 0; i+1 < len(parts); i++ {
		switch parts[i] {
		case "frameworks":
			frameworkID = parts[i+1]
		case "executors":
			executorID = parts[i+1]
		}
	}
	return frameworkID, executorID
}

// authorizeSandbox decides whether the principal of ctx may read the
// agent files at path, which the master is about to fetch for it from
// the agent: a sandbox by access_sandboxes (by the executor's user, else
// its framework's), anything else on the agent (its work directory, its
// logs) by access_mesos_logs, as the Mesos agent authorizes them. It
// blocks on the authorizer: call it outside m.do.
func (m *Master) authorizeSandbox(ctx context.Context, path string) error {
	if m.cfg.Authorizer == nil {
		return nil
	}
	ap, err := m.approvers(ctx, principalOf(ctx), auth.AccessSandbox, auth.AccessMesosLog)
	if err != nil {
		return err
	}
	fwID, execID := sandboxIDs(path)
	if fwID == "" {
		return ap.Check(auth.AccessMesosLog, nil, "read agent files "+path)
	}
	if derr := m.do(ctx, func(c *core) {
		obj := &auth.Object{FrameworkInfo: c.frameworkInfoOf(fwID)}
		if fw := c.frameworks[fwID]; fw != nil {
			for _, execs := range fw.executors {
				if e := execs[execID]; e != nil {
					obj.ExecutorInfo = &e.info
				}
			}
		}
		err = ap.Check(auth.AccessSandbox, obj, "access the sandbox of executor "+execID+" of framework "+fwID)
	}); derr != nil {
		return derr
	}
	return err
}

package master

import (
	"sort"
	"time"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

func timeInfo(t time.Time) *mesospb.TimeInfo {
	if t.IsZero() {
		return nil
	}
	return &mesospb.TimeInfo{Nanoseconds: t.UnixNano()}
}

// state builds the operator API's GET_STATE answer, sorted by ID so equal
// states compare equal.
func (c *core) state() *masterpb.Response_GetState {
	// The tasks' slice is sized first: growing it by appends copied each
	// Task several times, and was most of the call's time at 100,000 tasks.
	live := 0
	for _, fw := range c.frameworks {
		live += len(fw.tasks)
	}
	tasks := &masterpb.Response_GetTasks{Tasks: make([]mesospb.Task, 0, live)}
	executors := &masterpb.Response_GetExecutors{}
	frameworks := &masterpb.Response_GetFrameworks{}
	agents := &masterpb.Response_GetAgents{}

	for _, id := range sortedKeys(c.frameworks) {
		fw := c.frameworks[id]
		frameworks.Frameworks = append(frameworks.Frameworks, c.frameworkProto(fw))

		for _, tid := range sortedKeys(fw.tasks) {
			t := fw.tasks[tid]
			if t.state == mesospb.TASK_UNREACHABLE {
				tasks.UnreachableTasks = append(tasks.UnreachableTasks, t.proto())
			} else {
				tasks.Tasks = append(tasks.Tasks, t.proto())
			}
		}
		for _, t := range fw.recentCompleted(c.cfg.MaxCompletedTasksPerFramework) {
			tasks.CompletedTasks = append(tasks.CompletedTasks, t.proto())
		}
		for _, aid := range sortedKeys(fw.executors) {
			for _, eid := range sortedKeys(fw.executors[aid]) {
				executors.Executors = append(executors.Executors, masterpb.Response_GetExecutors_Executor{
					ExecutorInfo: fw.executors[aid][eid].info,
					AgentID:      mesospb.AgentID{Value: aid},
				})
			}
		}
	}
	// Completed frameworks, oldest first, with the tasks they completed, as
	// Mesos lists frameworks.completed.
	for _, fw := range c.completed {
		frameworks.CompletedFrameworks = append(frameworks.CompletedFrameworks, c.frameworkProto(fw))
		for _, t := range fw.recentCompleted(c.cfg.MaxCompletedTasksPerFramework) {
			tasks.CompletedTasks = append(tasks.CompletedTasks, t.proto())
		}
	}
	for _, id := range sortedKeys(c.agents) {
		agents.Agents = append(agents.Agents, c.agentProto(c.agents[id]))
	}
	agents.RecoveredAgents = c.recoveredAgents()
	return &masterpb.Response_GetState{GetTasks: tasks, GetExecutors: executors, GetFrameworks: frameworks, GetAgents: agents}
}

// frameworkProto is a framework as GET_FRAMEWORKS and the operator events
// report it, as Mesos's model(Framework): reregistered_time is when it
// last subscribed (its registered_time until it subscribes again),
// unregistered_time when it was removed (only a completed framework has
// one), and a completed framework is neither active nor connected.
func (c *core) frameworkProto(fw *framework) masterpb.Response_GetFrameworks_Framework {
	f := masterpb.Response_GetFrameworks_Framework{
		FrameworkInfo:    fw.info,
		Active:           fw.stream != "",
		Connected:        fw.stream != "",
		Recovered:        fw.recovered,
		RegisteredTime:   timeInfo(fw.registeredAt),
		ReregisteredTime: timeInfo(fw.reregisteredAt),
		UnregisteredTime: timeInfo(fw.removedAt),
	}
	var offered resources.Resources
	for _, oid := range sortedKeys(fw.offers) {
		o := fw.offers[oid]
		f.Offers = append(f.Offers, o.proto(c.agents[o.agent], fw))
		offered = offered.Add(o.resources)
	}
	f.OfferedResources = endpointFormat(offered)
	f.InverseOffers = c.inverseOffersOf(fw.id) // inverse_offers.go
	if c.frameworks[fw.id] != fw {
		return f // completed: it holds nothing
	}
	var allocated resources.Resources
	for _, rs := range c.alloc.Allocation(fw.id) {
		allocated = allocated.Add(rs)
	}
	f.AllocatedResources = endpointFormat(allocated)
	return f
}

// endpointFormat writes resources as Mesos's operator API does
// (convertResourceFormat to ENDPOINT): the reservations stack and, for
// resources without a refined reservation, the old role and reservation
// fields too, so readers of either format understand them.
func endpointFormat(rs resources.Resources) []mesospb.Resource {
	out, _ := rs.ToProtoFormat(resources.Endpoint) // only PreRefinement can fail
	return out
}

// agentProto is an agent as GET_AGENTS and the operator events report it.
func (c *core) agentProto(a *agent) masterpb.Response_GetAgents_Agent {
	var offered resources.Resources
	for _, o := range a.offers {
		offered = offered.Add(o.resources)
	}
	allocated := a.total.Subtract(c.alloc.Available(a.id))
	return c.withAdmin(a, masterpb.Response_GetAgents_Agent{ // deactivated, drain_info: operator_agents.go
		AgentInfo:          a.info,
		Active:             a.stream != "",
		Version:            a.version,
		RegisteredTime:     timeInfo(a.registeredAt),
		Pid:                ptr(agentPid(a)),
		TotalResources:     endpointFormat(a.total),
		AllocatedResources: endpointFormat(allocated),
		OfferedResources:   endpointFormat(offered),
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package master

import (
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/mesosjson"
	"github.com/apronhq/apron/resources"
)

// metricsMap is the master's share of GET /metrics/snapshot: the metrics
// of Mesos's master (src/master/metrics.cpp) and allocator
// (src/master/allocator/mesos/metrics.cpp) that Apron can compute, under
// Mesos's names. A metric Apron cannot compute is left out rather than
// reported as zero:
//
//   - master/<state>/<source>/<reason>;
//   - master/slaves_unreachable: Apron forgets an agent it declares lost;
//   - the message, registration, removal, shutdown and event queue
//     counters (master/messages_*, master/valid_*, master/invalid_*,
//     master/dropped_messages, master/event_queue_*, master/slave_*,
//     master/recovery_slave_removals, master/http_cache_hits),
//     master/operations/*, master/frameworks/<name>/*, registrar/* and
//     system/*;
//   - the allocator's latency timer, event queue and offer filter metrics,
//     and the statistics (/count, /p50, ...) of
//     allocator/mesos/allocation_run_ms, of which only the last value is
//     kept.
func (v *mesosView) metricsMap() map[string]float64 {
	x := newStateIndex(v)
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m := map[string]float64{
		"master/elected":                           b2f(v.elected),
		"master/slaves_connected":                  float64(v.metrics.agentsConnected),
		"master/slaves_disconnected":               float64(v.metrics.agentsDisconnected),
		"master/frameworks_connected":              float64(v.metrics.frameworksConnected),
		"master/frameworks_disconnected":           float64(v.metrics.frameworksDisconnected),
		"master/outstanding_offers":                float64(v.metrics.offersOutstanding),
		"master/operator_event_stream_subscribers": float64(v.operatorSubscribers),
		"allocator/mesos/allocation_runs":          float64(v.metrics.allocationRuns),
	}
	if start := v.master.GetStartTime(); start > 0 {
		m["master/uptime_secs"] = float64(v.now.UnixNano())/1e9 - start
	}
	if v.metrics.allocationRuns > 0 {
		m["allocator/mesos/allocation_run_ms"] = float64(v.metrics.allocationTime) / float64(time.Millisecond)
	}

	var slavesActive, frameworksActive float64
	agents := v.state.GetGetAgents().GetAgents()
	for i := range agents {
		if agents[i].Active {
			slavesActive++
		}
	}
	m["master/slaves_active"], m["master/slaves_inactive"] = slavesActive, float64(len(agents))-slavesActive
	fws := v.state.GetGetFrameworks().GetFrameworks()
	for i := range fws {
		if fws[i].Active {
			frameworksActive++
		}
	}
	m["master/frameworks_active"], m["master/frameworks_inactive"] = frameworksActive, float64(len(fws))-frameworksActive

	// Gauges of the tasks the master holds, by state (Master::_tasks_*).
	for _, name := range []string{"staging", "starting", "running", "killing", "unreachable"} {
		m["master/tasks_"+name] = 0
	}
	tasks := v.state.GetGetTasks()
	for _, t := range tasks.GetTasks() {
		switch t.GetState() {
		case mesospb.TASK_STAGING, mesospb.TASK_STARTING, mesospb.TASK_RUNNING, mesospb.TASK_KILLING:
			m["master/tasks_"+taskStateSuffix(t.GetState())]++
		}
	}
	for _, t := range tasks.GetUnreachableTasks() {
		if t.GetState() == mesospb.TASK_UNREACHABLE {
			m["master/tasks_unreachable"]++
		}
	}

	// Counters of the tasks that reached a terminal state.
	for _, s := range []mesospb.TaskState{mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST,
		mesospb.TASK_ERROR, mesospb.TASK_DROPPED, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR} {
		m["master/tasks_"+taskStateSuffix(s)] = float64(v.metrics.tasksEnded[s])
	}

	resourceMetrics(m, x)
	roleMetrics(m, v)
	return m
}

// countTaskEnded counts a task that reached terminal state s, for Mesos's
// counters master/tasks_finished, _failed, ... (Master::updateTask counts
// each task once, when it reaches a terminal state, and Master::accept and
// _accept the tasks they refuse). Mesos counts the state of the update
// that ended the task, Apron the task's latest state: they differ only
// when an agent reports an earlier state along with a terminal latest one.
func (c *core) countTaskEnded(s mesospb.TaskState) {
	if c.met.tasksEnded == nil {
		c.met.tasksEnded = map[mesospb.TaskState]uint64{}
	}
	c.met.tasksEnded[s]++
}

// roleMetrics adds the allocator's metrics of each role: its weighted
// dominant share, allocator/mesos/roles/<role>/shares/dominant (the DRF
// sorter's, for the roles that have frameworks or allocations), and for a
// role with a quota, allocator/mesos/quota/roles/<role>/resources/<r>/
// guarantee, limit and offered_or_allocated.
func roleMetrics(m map[string]float64, v *mesosView) {
	for _, ri := range v.allocatorRoles {
		if v.drf && (len(ri.Frameworks) > 0 || len(ri.Allocated) > 0) {
			m["allocator/mesos/roles/"+ri.Name+"/shares/dominant"] = ri.Share
		}
		prefix := "allocator/mesos/quota/roles/" + ri.Name + "/resources/"
		for name, q := range ri.Quota.Guarantee {
			m[prefix+name+"/guarantee"] = q.Float64()
			m[prefix+name+"/offered_or_allocated"] = ri.Allocated[name].Float64()
		}
		for name, q := range ri.Quota.Limit {
			m[prefix+name+"/limit"] = q.Float64()
			m[prefix+name+"/offered_or_allocated"] = ri.Allocated[name].Float64()
		}
	}
}

// taskStateSuffix is "running" for TASK_RUNNING.
func taskStateSuffix(s mesospb.TaskState) string {
	name := s.String()
	out := make([]byte, 0, len(name))
	for i := len("TASK_"); i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// resourceMetrics adds master/<r>_total, _used, _percent and their
// _revocable_ forms for cpus, gpus, mem and disk (Master::_resources_*:
// "used" is what tasks and executors use, offers aside), and the
// allocator's allocator/mesos/resources/<r>/total and
// offered_or_allocated for cpus, mem and disk.
func resourceMetrics(m map[string]float64, x *stateIndex) {
	var total, used, offered resources.Resources
	for _, a := range x.v.state.GetGetAgents().GetAgents() {
		total = total.Add(mesosjson.FromProto(a.TotalResources))
		used = used.Add(x.usedByAgent[a.AgentInfo.GetID().GetValue()])
		offered = offered.Add(mesosjson.FromProto(a.OfferedResources))
	}
	for _, name := range []string{resources.NameCPUs, resources.NameGPUs, resources.NameMem, resources.NameDisk} {
		for _, kind := range []struct {
			suffix     string
			total, use resources.Resources
		}{
			{"", total.NonRevocable(), used.NonRevocable()},
			{"_revocable", total.Revocable(), used.Revocable()},
		} {
			t, u := kind.total.ScalarOf(name).Float64(), kind.use.ScalarOf(name).Float64()
			prefix := "master/" + name + kind.suffix
			m[prefix+"_total"], m[prefix+"_used"], m[prefix+"_percent"] = t, u, 0
			if t != 0 {
				m[prefix+"_percent"] = u / t
			}
		}
	}
	held := used.Add(offered)
	for _, name := range []string{resources.NameCPUs, resources.NameMem, resources.NameDisk} {
		m["allocator/mesos/resources/"+name+"/total"] = total.ScalarOf(name).Float64()
		m["allocator/mesos/resources/"+name+"/offered_or_allocated"] = held.ScalarOf(name).Float64()
	}
}

package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/internal/mesosjson"
	"github.com/apronhq/apron/resources"
)

// The Mesos agent's HTTP endpoints that tools read (UIs, exporters,
// service discovery), in the shapes of Mesos's own JSON (package
// mesosjson, endpoints_model.go), not the v1 API's protobuf JSON:
//
//   - GET /state: the agent, its frameworks, executors and tasks
//     (src/slave/http.cpp Http::state);
//   - GET /flags: {"flags": {name: value}};
//   - GET /containers: the executors' containers with their status and
//     resource statistics (Http::containers), filtered by the query
//     parameters container_id, framework_id, or executor_id with
//     framework_id;
//   - GET /monitor/statistics: the executors' resource statistics
//     (Http::statistics);
//   - GET /metrics/snapshot: the metrics of GET_METRICS as one JSON
//     object, under Mesos's names (src/slave/metrics.cpp);
//   - GET /logging/toggle: libprocess's logging level (logging.go);
//   - GET /version: libprocess's version body (mesosjson.Version), with
//     Config.Version as the Mesos version.
//
// As in Mesos, whose agent is the libprocess process "slave(1)", every
// agent endpoint is also served under /slave(1)/, and with a ".json"
// suffix (libprocess's routing drops it); JSON endpoints take a jsonp
// query parameter. They read the same data as the operator calls
// GET_STATE, GET_CONTAINERS and GET_METRICS.

// slavePrefix is where libprocess serves the agent process's endpoints.
const slavePrefix = "/" + pidName

// mesosRoutes adds the Mesos endpoints to mux.
func (a *Agent) mesosRoutes(mux *http.ServeMux) {
	// Every one of these but /health and /version is in the read-only
	// family but the operator API and /logging/toggle (auth.go).
	agentRoute := func(path string, h http.Handler) {
		for _, p := range []string{path, path + ".json", slavePrefix + path, slavePrefix + path + ".json"} {
			mux.Handle(p, a.readOnly(h))
		}
	}
	agentRoute("/state", http.HandlerFunc(a.serveMesosState))
	agentRoute("/flags", a.authorizedFor(auth.ViewFlags, nil, http.HandlerFunc(a.serveFlags)))
	agentRoute("/containers", http.HandlerFunc(a.serveContainers))
	agentRoute("/monitor/statistics", http.HandlerFunc(a.serveStatistics))
	mux.Handle(slavePrefix+OperatorAPIPath, a.readWrite(http.HandlerFunc(a.serveOperatorAPI)))
	mux.HandleFunc(slavePrefix+"/health", a.serveHealth)
	mux.Handle("/metrics/snapshot", a.readOnly(http.HandlerFunc(a.serveMetricsSnapshot)))
	mux.Handle("/metrics/snapshot.json", a.readOnly(http.HandlerFunc(a.serveMetricsSnapshot)))
	mux.Handle("/logging/toggle", a.readWrite(a.authorizedFor(auth.SetLogLevel, nil, http.HandlerFunc(a.serveLoggingToggle))))
	mux.HandleFunc("/version", a.serveVersion)
}

// serveVersion is GET /version.
func (a *Agent) serveVersion(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(context.Context) (any, error) {
		return mesosjson.VersionOf(a.cfg.Version), nil
	})
}

// serveModel is a model endpoint answering build's document (see
// mesosjson.Serve).
func serveModel(w http.ResponseWriter, r *http.Request, build func(ctx context.Context) (any, error)) {
	mesosjson.Serve(w, r, func() (any, error) {
		v, err := build(r.Context())
		if err != nil {
			return nil, handlerError(err)
		}
		return v, nil
	})
}

func (a *Agent) serveMesosState(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(ctx context.Context) (any, error) {
		// As Mesos's /state: what the principal may not see is left out
		// (auth.go).
		ap, err := a.approvers(ctx, append([]auth.Action{auth.ViewFlags}, viewActions...)...)
		if err != nil {
			return nil, authError(err)
		}
		s, err := request(a, ctx, a.stateSnapshot)
		if err != nil {
			return nil, err
		}
		s.filter(ap)
		return s.model(), nil
	})
}

func (a *Agent) serveFlags(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(context.Context) (any, error) {
		return map[string]any{"flags": mesosjson.Flags(a.flags())}, nil
	})
}

func (a *Agent) serveMetricsSnapshot(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(ctx context.Context) (any, error) {
		m, err := a.metrics(ctx)
		if err != nil {
			return nil, err
		}
		out := map[string]mesosjson.Double{}
		for _, x := range m.mesos() {
			out[x.Name] = mesosjson.Double(x.GetValue())
		}
		return out, nil
	})
}

// runSnap is an executor run as /state shows it, copied on the loop.
type runSnap struct {
	info       mesospb.ExecutorInfo
	source     string
	container  string
	directory  string
	terminated bool
	launched   []mesospb.Task
	queued     []mesospb.TaskInfo
	terminal   []mesospb.Task // terminal, update unacknowledged
	completed  []mesospb.Task // terminal and acknowledged
}

// fwSnap is a framework as /state shows it.
type fwSnap struct {
	info mesospb.FrameworkInfo
	runs []*runSnap
	// gone are completed tasks of executor runs the agent forgot, by
	// executor ID.
	gone map[string][]mesospb.Task
}

// stateSnap is what /state shows, copied on the loop and formatted off it.
type stateSnap struct {
	version, id, pid, hostname string
	start                      time.Time
	total                      resources.Resources
	allocated                  []mesospb.Resource
	attributes                 []mesospb.Attribute
	master                     *mesospb.MasterInfo
	flags                      []mesospb.Flag
	frameworks                 []*fwSnap
	completedFrameworks        []*fwSnap
}

// agentCapabilities are the capabilities the agent registers with (see
// registrationCall), as /state lists them.
var agentCapabilities = []string{"MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"}

// stateSnapshot copies what /state shows. It runs on the loop. Tasks are
// sorted as GET_TASKS sorts them; completed tasks (GET_TASKS's) go under
// their executor run when the agent still has it, else under a completed
// executor made of their executor ID alone.
func (a *Agent) stateSnapshot() *stateSnap {
	s := &stateSnap{
		version:    a.cfg.Version,
		id:         a.ID(),
		pid:        a.PID(),
		hostname:   a.cfg.Hostname,
		start:      a.met.startedAt,
		total:      a.totalResources(),
		attributes: append([]mesospb.Attribute(nil), a.attributes...),
		master:     a.ops.master,
		flags:      a.flags(),
	}
	byID := map[string]*fwSnap{}
	for _, fw := range a.tables.Frameworks() {
		f := &fwSnap{info: *fw.Info()}
		for _, e := range fw.Runs() {
			run := &runSnap{
				info:       *e.Info(),
				source:     e.Info().GetSource(),
				container:  e.ContainerID(),
				directory:  e.Sandbox(),
				terminated: e.State() == execTerminated,
			}
			if run.source == "" && e.Kind().Command() {
				// Mesos's command executor's source is its task's ID.
				run.source = e.ID()
			}
			for _, t := range e.Tasks() {
				switch {
				case terminal(t.State()):
					run.terminal = append(run.terminal, t.Proto())
				case t.Queued():
					run.queued = append(run.queued, *t.Info())
				default:
					run.launched = append(run.launched, t.Proto())
				}
			}
			if !run.terminated {
				s.allocated = append(s.allocated, run.allocated()...)
			}
			f.runs = append(f.runs, run)
		}
		f.addHistory(a.tables.CompletedRuns(fw.ID()))
		byID[fw.ID()] = f
		s.frameworks = append(s.frameworks, f)
	}
	for _, c := range a.tables.CompletedFrameworks() {
		if c.Info.ID == nil || byID[c.Info.ID.Value] != nil {
			continue
		}
		f := &fwSnap{info: c.Info}
		f.addHistory(c.Runs)
		byID[c.Info.ID.Value] = f
		s.completedFrameworks = append(s.completedFrameworks, f)
	}
	for _, t := range a.getTasks().CompletedTasks {
		f := byID[t.FrameworkID.Value]
		if f == nil {
			f = &fwSnap{info: mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: t.FrameworkID.Value}}}
			byID[t.FrameworkID.Value] = f
			s.completedFrameworks = append(s.completedFrameworks, f)
		}
		f.addCompleted(t)
	}
	return s
}

// addHistory adds the runs the agent has forgotten, oldest first, as
// completed executors with the sandboxes they had.
func (f *fwSnap) addHistory(execs []completedExecutor) {
	for _, c := range execs {
		run := &runSnap{info: c.Info, source: c.Info.GetSource(), container: c.ContainerID, directory: c.Sandbox, terminated: true}
		if run.source == "" && c.Command {
			run.source = c.Info.ExecutorID.Value
		}
		f.runs = append(f.runs, run)
	}
}

// addCompleted files a completed task under its executor run: the run
// whose container its statuses name, else the current run of its executor
// ID (a command task's executor ID is the task's), else a completed
// executor made of that ID alone (its run has left the history).
func (f *fwSnap) addCompleted(t mesospb.Task) {
	execID := t.GetExecutorID().GetValue()
	if execID == "" {
		execID = t.TaskID.Value
	}
	container := runContainer(t)
	var match *runSnap
	for _, r := range f.runs {
		if container != "" && r.container == container {
			match = r
			break
		}
		if r.info.ExecutorID.Value == execID && (match == nil || !r.terminated) {
			match = r
		}
	}
	if match != nil {
		match.completed = append(match.completed, t)
		return
	}
	if f.gone == nil {
		f.gone = map[string][]mesospb.Task{}
	}
	f.gone[execID] = append(f.gone[execID], t)
}

// runContainer is the executor run's container a task's statuses name
// (the outermost parent of their container ID), or "".
func runContainer(t mesospb.Task) string {
	for i := len(t.Statuses) - 1; i >= 0; i-- {
		if cs := t.Statuses[i].ContainerStatus; cs != nil && cs.ContainerID != nil {
			id := cs.ContainerID
			for id.Parent != nil {
				id = id.Parent
			}
			return id.Value
		}
	}
	return ""
}

// allocated is Mesos's Executor::allocatedResources: the executor's own
// resources and those of its queued and launched tasks.
func (r *runSnap) allocated() []mesospb.Resource {
	out := append([]mesospb.Resource(nil), r.info.Resources...)
	for i := range r.queued {
		out = append(out, r.queued[i].Resources...)
	}
	for i := range r.launched {
		out = append(out, r.launched[i].Resources...)
	}
	return out
}

// model is the /state document, in Mesos's field order.
func (s *stateSnap) model() mesosjson.Object {
	o := mesosjson.BuildOf(s.version).Fields()
	o.Set("start_time", mesosjson.Double(float64(s.start.UnixNano())/1e9))
	o.Set("id", s.id)
	o.Set("pid", s.pid)
	o.Set("hostname", s.hostname)
	o.Set("capabilities", agentCapabilities)
	o.Set("resources", mesosjson.ResourcesOf(s.total))
	reserved := map[string]mesosjson.Resources{}
	reservedFull := map[string][]json.RawMessage{}
	for role, rs := range s.total.Reservations() {
		reserved[role] = mesosjson.ResourcesOf(rs)
		reservedFull[role] = mesosjson.FullResources(rs)
	}
	o.Set("reserved_resources", reserved)
	o.Set("unreserved_resources", mesosjson.ResourcesOf(s.total.Unreserved()))
	o.Set("reserved_resources_full", reservedFull)
	o.Set("unreserved_resources_full", mesosjson.FullResources(s.total.Unreserved()))
	allocated, err := resources.FromProto(s.allocated)
	if err != nil {
		allocated = nil // not Mesos's: leave the allocation out
	}
	allocatedReserved := map[string]mesosjson.Resources{}
	for role, rs := range allocated.Reservations() {
		allocatedReserved[role] = mesosjson.ResourcesOf(rs)
	}
	o.Set("reserved_resources_allocated", allocatedReserved)
	o.Set("unreserved_resources_allocated", mesosjson.ResourcesOf(allocated.Unreserved()))
	o.Set("resource_providers", []any{}) // Apron has none
	o.Set("attributes", mesosjson.Attributes(s.attributes))
	if s.master != nil && s.master.GetHostname() != "" {
		// Mesos resolves the master's IP; the master's own hostname is
		// what that gives on a sane network.
		o.Set("master_hostname", s.master.GetHostname())
	}
	if s.flags != nil { // nil: VIEW_FLAGS refused (auth.go)
		o.Set("flags", mesosjson.Flags(s.flags))
	}
	o.Set("frameworks", modelFrameworks(s.frameworks))
	o.Set("completed_frameworks", modelFrameworks(s.completedFrameworks))
	return o
}

func modelFrameworks(fws []*fwSnap) []mesosjson.Object {
	out := make([]mesosjson.Object, 0, len(fws))
	for _, f := range fws {
		out = append(out, f.model())
	}
	return out
}

// model is Mesos's FrameworkWriter: live runs under executors, those
// terminated (and the forgotten ones' completed tasks) under
// completed_executors.
func (f *fwSnap) model() mesosjson.Object {
	info := &f.info
	role := frameworkRole(info)
	var o mesosjson.Object
	o.Set("id", info.GetID().GetValue())
	o.Set("name", info.Name)
	o.Set("user", info.User)
	o.Set("failover_timeout", mesosjson.Double(info.GetFailoverTimeout()))
	o.Set("checkpoint", info.GetCheckpoint())
	o.Set("hostname", info.GetHostname())
	if info.Principal != nil {
		o.Set("principal", *info.Principal)
	}
	if multiRole(info) {
		roles := info.Roles
		if roles == nil {
			roles = []string{}
		}
		o.Set("roles", roles)
	} else {
		o.Set("role", info.GetRole())
	}
	executors, completed := []mesosjson.Object{}, []mesosjson.Object{}
	for _, r := range f.runs {
		if r.terminated {
			completed = append(completed, r.model(role))
		} else {
			executors = append(executors, r.model(role))
		}
	}
	ids := make([]string, 0, len(f.gone))
	for id := range f.gone {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := &runSnap{info: mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: id}}, completed: f.gone[id], terminated: true}
		completed = append(completed, r.model(role))
	}
	o.Set("executors", executors)
	o.Set("completed_executors", completed)
	return o
}

func multiRole(info *mesospb.FrameworkInfo) bool {
	for _, c := range info.Capabilities {
		if c.GetType() == mesospb.FrameworkInfo_Capability_MULTI_ROLE {
			return true
		}
	}
	return false
}

// model is Mesos's ExecutorWriter. completed_tasks holds the terminal
// tasks, acknowledged or not, as Mesos adds its terminated tasks there.
func (r *runSnap) model(fwRole string) mesosjson.Object {
	var o mesosjson.Object
	o.Set("id", r.info.ExecutorID.Value)
	o.Set("name", r.info.GetName())
	o.Set("source", r.source)
	o.Set("container", r.container)
	o.Set("directory", r.directory)
	o.Set("resources", mesosjson.ResourcesOfProto(r.allocated()))
	if len(r.info.Resources) > 0 {
		o.Set("role", mesosjson.AllocationRole(r.info.Resources, fwRole))
	}
	if r.info.Labels != nil {
		o.Set("labels", mesosjson.Labels(r.info.Labels))
	}
	if r.info.Type != nil {
		o.Set("type", r.info.GetType().String())
	}
	tasks := make([]mesosjson.Task, 0, len(r.launched))
	for i := range r.launched {
		tasks = append(tasks, mesosjson.TaskOf(&r.launched[i], fwRole))
	}
	queued := make([]mesosjson.Object, 0, len(r.queued))
	for i := range r.queued {
		queued = append(queued, modelTaskInfo(&r.queued[i], fwRole))
	}
	completed := make([]mesosjson.Task, 0, len(r.completed)+len(r.terminal))
	for i := range r.completed {
		completed = append(completed, mesosjson.TaskOf(&r.completed[i], fwRole))
	}
	for i := range r.terminal {
		completed = append(completed, mesosjson.TaskOf(&r.terminal[i], fwRole))
	}
	o.Set("tasks", tasks)
	o.Set("queued_tasks", queued)
	o.Set("completed_tasks", completed)
	return o
}

// containerEntry is one executor container as /containers and
// /monitor/statistics show it.
type containerEntry struct {
	c      agentpb.Response_GetContainers_Container
	source string
}

// executorContainers are the executors' containers of GET_CONTAINERS,
// with their executors' sources.
func (a *Agent) executorContainers(ctx context.Context) ([]containerEntry, error) {
	cs, err := a.getContainers(ctx, &agentpb.Call_GetContainers{})
	if err != nil {
		return nil, err
	}
	type key struct{ fw, exec string }
	sources, err := request(a, ctx, func() map[key]string {
		out := map[key]string{}
		for _, fw := range a.tables.Frameworks() {
			for _, e := range fw.Runs() {
				src := e.Info().GetSource()
				if src == "" && e.Kind().Command() {
					src = e.ID()
				}
				out[key{fw.ID(), e.ID()}] = src
			}
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	out := make([]containerEntry, 0, len(cs.Containers))
	for _, c := range cs.Containers {
		if c.ExecutorID == nil || c.FrameworkID == nil {
			continue
		}
		out = append(out, containerEntry{c: c, source: sources[key{c.FrameworkID.Value, c.ExecutorID.Value}]})
	}
	return out, nil
}

// serveEntries answers /containers and /monitor/statistics: for each
// executor container, the fields they share and what add adds, when add
// keeps it.
func (a *Agent) serveEntries(w http.ResponseWriter, r *http.Request, add func(e *containerEntry, o *mesosjson.Object) bool) {
	serveModel(w, r, func(ctx context.Context) (any, error) {
		ap, err := a.approvers(ctx, auth.ViewContainer)
		if err != nil {
			return nil, authError(err)
		}
		entries, err := a.executorContainers(ctx)
		if err != nil {
			return nil, err
		}
		if entries, err = a.visibleEntries(ctx, entries, ap); err != nil {
			return nil, err
		}
		out := []mesosjson.Object{}
		for i := range entries {
			e := &entries[i]
			o := mesosjson.Object{
				{Key: "framework_id", Value: e.c.FrameworkID.Value},
				{Key: "executor_id", Value: e.c.ExecutorID.Value},
				{Key: "executor_name", Value: e.c.GetExecutorName()},
				{Key: "source", Value: e.source},
			}
			if add(e, &o) {
				out = append(out, o)
			}
		}
		return out, nil
	})
}

// serveContainers is Mesos's /containers (Http::_containers).
func (a *Agent) serveContainers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	containerID, fwID, execID := q.Get("container_id"), q.Get("framework_id"), q.Get("executor_id")
	if (q.Has("container_id") && (q.Has("executor_id") || q.Has("framework_id"))) ||
		(!q.Has("container_id") && q.Has("executor_id") && !q.Has("framework_id")) {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest,
			"Supported query parameters are container_id only, framework_id only, or executor_id and framework_id only"))
		return
	}
	a.serveEntries(w, r, func(e *containerEntry, o *mesosjson.Object) bool {
		switch {
		case q.Has("container_id") && e.c.ContainerID.Value != containerID,
			q.Has("framework_id") && e.c.FrameworkID.Value != fwID,
			q.Has("executor_id") && e.c.ExecutorID.Value != execID:
			return false
		}
		o.Set("container_id", e.c.ContainerID.Value)
		if e.c.ContainerStatus != nil {
			o.Set("status", mesosjson.Proto(e.c.ContainerStatus))
		}
		if e.c.ResourceStatistics != nil {
			o.Set("statistics", mesosjson.Proto(e.c.ResourceStatistics))
		}
		return true
	})
}

// serveStatistics is Mesos's /monitor/statistics (Http::_statistics): the
// executors whose usage could be sampled.
func (a *Agent) serveStatistics(w http.ResponseWriter, r *http.Request) {
	a.serveEntries(w, r, func(e *containerEntry, o *mesosjson.Object) bool {
		if e.c.ResourceStatistics == nil {
			return false
		}
		o.Set("statistics", mesosjson.Proto(e.c.ResourceStatistics))
		return true
	})
}

package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"time"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/resources"
)

// The Mesos agent's HTTP endpoints that tools read (UIs, exporters,
// service discovery), in the shapes of Mesos's own JSON (see
// endpoints_model.go), not the v1 API's protobuf JSON:
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
//   - GET /version: {"version": Config.Version}.
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
	agentRoute := func(path string, h http.HandlerFunc) {
		for _, p := range []string{path, path + ".json", slavePrefix + path, slavePrefix + path + ".json"} {
			mux.HandleFunc(p, h)
		}
	}
	agentRoute("/state", a.serveMesosState)
	agentRoute("/flags", a.serveFlags)
	agentRoute("/containers", a.serveContainers)
	agentRoute("/monitor/statistics", a.serveStatistics)
	mux.HandleFunc(slavePrefix+OperatorAPIPath, a.serveOperatorAPI)
	mux.HandleFunc(slavePrefix+"/health", a.serveHealth)
	mux.HandleFunc("/metrics/snapshot", a.serveMetricsSnapshot)
	mux.HandleFunc("/metrics/snapshot.json", a.serveMetricsSnapshot)
	mux.HandleFunc("/logging/toggle", a.serveLoggingToggle)
	mux.HandleFunc("/version", a.serveVersion)
}

// serveVersion is libprocess's /version, with the version only: Apron has
// no build date, user or git fields to give.
func (a *Agent) serveVersion(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(context.Context) (any, error) {
		return map[string]string{"version": a.cfg.Version}, nil
	})
}

// jsonpCallback is what a jsonp parameter may name: a JavaScript
// identifier path. Mesos takes any text; Apron refuses what could inject
// script.
var jsonpCallback = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$.]*$`)

// writeModel answers 200 with v as JSON, wrapped in the jsonp callback
// when the query names one, as libprocess's OK(JSON, jsonp).
func writeModel(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	ct := "application/json"
	if cb := r.URL.Query().Get("jsonp"); cb != "" {
		if !jsonpCallback.MatchString(cb) {
			httpapi.WriteError(w, httpapi.Errorf(http.StatusBadRequest, "'jsonp' must name a JavaScript function"))
			return
		}
		b = append(append([]byte(cb+"("), b...), ')')
		ct = "text/javascript"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// serveModel is a GET endpoint answering build's document.
func serveModel(w http.ResponseWriter, r *http.Request, build func(ctx context.Context) (any, error)) {
	if !requireGET(w, r) {
		return
	}
	v, err := build(r.Context())
	if err != nil {
		httpapi.WriteError(w, handlerError(err))
		return
	}
	writeModel(w, r, v)
}

func (a *Agent) serveMesosState(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(ctx context.Context) (any, error) {
		s, err := request(a, ctx, a.stateSnapshot)
		if err != nil {
			return nil, err
		}
		return s.model(), nil
	})
}

func (a *Agent) serveFlags(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(context.Context) (any, error) {
		return map[string]any{"flags": modelFlags(a.flags())}, nil
	})
}

func (a *Agent) serveMetricsSnapshot(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(ctx context.Context) (any, error) {
		m, err := a.metrics(ctx)
		if err != nil {
			return nil, err
		}
		out := map[string]double{}
		for _, x := range m.mesos() {
			out[x.Name] = double(x.GetValue())
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
	for _, fw := range a.sortedFrameworks() {
		f := &fwSnap{info: fw.info}
		for _, e := range fw.sortedExecutors() {
			run := &runSnap{
				info:       e.info,
				source:     e.info.GetSource(),
				container:  e.containerID,
				directory:  e.sandbox,
				terminated: e.state == execTerminated,
			}
			if run.source == "" && e.kind.command() {
				// Mesos's command executor's source is its task's ID.
				run.source = e.id
			}
			for _, t := range e.sortedTasks() {
				switch {
				case terminal(t.state):
					run.terminal = append(run.terminal, t.proto())
				case t.queued:
					run.queued = append(run.queued, t.info)
				default:
					run.launched = append(run.launched, t.proto())
				}
			}
			if !run.terminated {
				s.allocated = append(s.allocated, run.allocated()...)
			}
			f.runs = append(f.runs, run)
		}
		byID[fw.id] = f
		s.frameworks = append(s.frameworks, f)
	}
	for _, info := range a.getFrameworks().CompletedFrameworks {
		if info.FrameworkInfo.ID == nil || byID[info.FrameworkInfo.ID.Value] != nil {
			continue
		}
		f := &fwSnap{info: info.FrameworkInfo}
		byID[info.FrameworkInfo.ID.Value] = f
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

// addCompleted files a completed task under its executor run: the
// current run of its executor ID (a command task's executor ID is the
// task's), else a completed executor of that ID.
func (f *fwSnap) addCompleted(t mesospb.Task) {
	execID := t.GetExecutorID().GetValue()
	if execID == "" {
		execID = t.TaskID.Value
	}
	var match *runSnap
	for _, r := range f.runs {
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
func (s *stateSnap) model() *jsonObject {
	o := &jsonObject{}
	o.set("version", s.version)
	o.set("start_time", double(float64(s.start.UnixNano())/1e9))
	o.set("id", s.id)
	o.set("pid", s.pid)
	o.set("hostname", s.hostname)
	o.set("capabilities", agentCapabilities)
	o.set("resources", modelResources(s.total.ToProto()))
	reserved := byRole(s.total)
	reservedModel := map[string]any{}
	reservedFull := map[string][]json.RawMessage{}
	for _, role := range sortedRoles(reserved) {
		reservedModel[role] = modelResources(reserved[role].ToProto())
		reservedFull[role] = fullResources(reserved[role])
	}
	o.set("reserved_resources", reservedModel)
	o.set("unreserved_resources", modelResources(s.total.Unreserved().ToProto()))
	o.set("reserved_resources_full", reservedFull)
	o.set("unreserved_resources_full", fullResources(s.total.Unreserved()))
	allocated, err := resources.FromProto(s.allocated)
	if err != nil {
		allocated = nil // not Mesos's: leave the allocation out
	}
	allocatedReserved := map[string]any{}
	for role, rs := range byRole(allocated) {
		allocatedReserved[role] = modelResources(rs.ToProto())
	}
	o.set("reserved_resources_allocated", allocatedReserved)
	o.set("unreserved_resources_allocated", modelResources(allocated.Unreserved().ToProto()))
	o.set("resource_providers", []any{}) // Apron has none
	o.set("attributes", modelAttributes(s.attributes))
	if s.master != nil && s.master.GetHostname() != "" {
		// Mesos resolves the master's IP; the master's own hostname is
		// what that gives on a sane network.
		o.set("master_hostname", s.master.GetHostname())
	}
	o.set("flags", modelFlags(s.flags))
	o.set("frameworks", modelFrameworks(s.frameworks))
	o.set("completed_frameworks", modelFrameworks(s.completedFrameworks))
	return o
}

// fullResources are resources as Mesos's *_full fields write them: the
// protobuf JSON of each, in the endpoint format (the reservations stack,
// and role and reservation where they say the same).
func fullResources(rs resources.Resources) []json.RawMessage {
	ps, err := rs.ToProtoFormat(resources.Endpoint)
	if err != nil {
		ps = rs.ToProto()
	}
	out := make([]json.RawMessage, 0, len(ps))
	for i := range ps {
		out = append(out, protoJSON(&ps[i]))
	}
	return out
}

func modelFrameworks(fws []*fwSnap) []*jsonObject {
	out := make([]*jsonObject, 0, len(fws))
	for _, f := range fws {
		out = append(out, f.model())
	}
	return out
}

// model is Mesos's FrameworkWriter: live runs under executors, those
// terminated (and the forgotten ones' completed tasks) under
// completed_executors.
func (f *fwSnap) model() *jsonObject {
	info := &f.info
	role := frameworkRole(info)
	o := &jsonObject{}
	o.set("id", info.GetID().GetValue())
	o.set("name", info.Name)
	o.set("user", info.User)
	o.set("failover_timeout", double(info.GetFailoverTimeout()))
	o.set("checkpoint", info.GetCheckpoint())
	o.set("hostname", info.GetHostname())
	if info.Principal != nil {
		o.set("principal", *info.Principal)
	}
	if multiRole(info) {
		roles := info.Roles
		if roles == nil {
			roles = []string{}
		}
		o.set("roles", roles)
	} else {
		o.set("role", info.GetRole())
	}
	executors, completed := []*jsonObject{}, []*jsonObject{}
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
	o.set("executors", executors)
	o.set("completed_executors", completed)
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
func (r *runSnap) model(fwRole string) *jsonObject {
	o := &jsonObject{}
	o.set("id", r.info.ExecutorID.Value)
	o.set("name", r.info.GetName())
	o.set("source", r.source)
	o.set("container", r.container)
	o.set("directory", r.directory)
	o.set("resources", modelResources(r.allocated()))
	if len(r.info.Resources) > 0 {
		o.set("role", allocationRole(r.info.Resources, fwRole))
	}
	if r.info.Labels != nil {
		o.set("labels", modelLabels(r.info.Labels))
	}
	if r.info.Type != nil {
		o.set("type", r.info.GetType().String())
	}
	tasks := make([]*jsonObject, 0, len(r.launched))
	for i := range r.launched {
		tasks = append(tasks, modelTask(&r.launched[i], fwRole))
	}
	queued := make([]*jsonObject, 0, len(r.queued))
	for i := range r.queued {
		queued = append(queued, modelTaskInfo(&r.queued[i], fwRole))
	}
	completed := make([]*jsonObject, 0, len(r.completed)+len(r.terminal))
	for i := range r.completed {
		completed = append(completed, modelTask(&r.completed[i], fwRole))
	}
	for i := range r.terminal {
		completed = append(completed, modelTask(&r.terminal[i], fwRole))
	}
	o.set("tasks", tasks)
	o.set("queued_tasks", queued)
	o.set("completed_tasks", completed)
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
		for _, fw := range a.frameworks {
			for _, e := range fw.executors {
				src := e.info.GetSource()
				if src == "" && e.kind.command() {
					src = e.id
				}
				out[key{fw.id, e.id}] = src
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

// head is the fields /containers and /monitor/statistics share.
func (e *containerEntry) head() *jsonObject {
	o := &jsonObject{}
	o.set("framework_id", e.c.FrameworkID.Value)
	o.set("executor_id", e.c.ExecutorID.Value)
	o.set("executor_name", e.c.GetExecutorName())
	o.set("source", e.source)
	return o
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
	serveModel(w, r, func(ctx context.Context) (any, error) {
		entries, err := a.executorContainers(ctx)
		if err != nil {
			return nil, err
		}
		out := []*jsonObject{}
		for i := range entries {
			e := &entries[i]
			switch {
			case q.Has("container_id") && e.c.ContainerID.Value != containerID,
				q.Has("framework_id") && e.c.FrameworkID.Value != fwID,
				q.Has("executor_id") && e.c.ExecutorID.Value != execID:
				continue
			}
			o := e.head()
			o.set("container_id", e.c.ContainerID.Value)
			if e.c.ContainerStatus != nil {
				o.set("status", protoJSON(e.c.ContainerStatus))
			}
			if e.c.ResourceStatistics != nil {
				o.set("statistics", protoJSON(e.c.ResourceStatistics))
			}
			out = append(out, o)
		}
		return out, nil
	})
}

// serveStatistics is Mesos's /monitor/statistics (Http::_statistics): the
// executors whose usage could be sampled.
func (a *Agent) serveStatistics(w http.ResponseWriter, r *http.Request) {
	serveModel(w, r, func(ctx context.Context) (any, error) {
		entries, err := a.executorContainers(ctx)
		if err != nil {
			return nil, err
		}
		out := []*jsonObject{}
		for i := range entries {
			e := &entries[i]
			if e.c.ResourceStatistics == nil {
				continue
			}
			o := e.head()
			o.set("statistics", protoJSON(e.c.ResourceStatistics))
			out = append(out, o)
		}
		return out, nil
	})
}

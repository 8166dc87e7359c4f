package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/auth"
	"github.com/apronhq/apron/internal/httpapi"
)

// Authentication and authorization of the agent's HTTP API, as Mesos's
// agent does them (issue 13; package auth has the mechanisms, and
// master/auth.go the master's side).
//
// Authentication: Handler wraps each endpoint family in
// auth.Authenticate when its Config switch is on, so a request without a
// valid credential gets 401 before anything else (its body is not even
// read). The families, by realm, as Mesos's agent routes them
// (src/slave/slave.cpp, and libprocess's own endpoints):
//
//	mesos-agent-executor   /api/v1/executor (AuthenticateHTTPExecutors:
//	                       the executor's token, below)
//	mesos-agent-readwrite  /api/v1, /logging/toggle
//	                       (AuthenticateHTTPReadWrite)
//	mesos-agent-readonly   /state, /flags, /containers,
//	                       /monitor/statistics, /metrics/snapshot,
//	                       /metrics, /files/* (AuthenticateHTTPReadOnly)
//	none                   /health, /version
//
// (each also under /slave(1)/ where it is served there). The in-process
// links (SubscribeExecutor and ExecutorCall called by Go code, the
// in-process executors' drivers) are not authenticated.
//
// Executors: the agent gives each executor process it starts a token
// (jwt.go) naming its framework, executor and container, in
// MESOS_EXECUTOR_AUTHENTICATION_TOKEN; with AuthenticateHTTPExecutors the
// executor API asks for it as Authorization: Bearer, and a call (but
// HEARTBEAT, as in Mesos) about another executor, framework or container
// than the token's is refused (403): one executor may not speak for
// another, and nobody without a token may speak for any.
//
// Authorization (Config.Authorizer) asks for the approvers of the
// caller's principal before the call touches the agent's state (it may
// block), then applies them, as Mesos's agent does (src/slave/http.cpp):
//
//	GET_FLAGS, /flags             VIEW_FLAGS
//	SET_LOGGING_LEVEL,            SET_LOG_LEVEL
//	/logging/toggle
//	PRUNE_IMAGES                  PRUNE_IMAGES
//	LAUNCH_NESTED_CONTAINER(_SESSION), ATTACH_CONTAINER_INPUT/OUTPUT,
//	KILL_/WAIT_(NESTED_)CONTAINER the action of the same name, with the
//	                              parent executor's ExecutorInfo and
//	                              FrameworkInfo (and, for launches, the
//	                              new container's CommandInfo); KILL_ and
//	                              WAIT_CONTAINER are authorized as their
//	                              NESTED_ forms, Apron's top-level
//	                              containers being executors' runs
//	GET_STATE, GET_FRAMEWORKS,    filtered by VIEW_FRAMEWORK, VIEW_EXECUTOR
//	GET_EXECUTORS, GET_TASKS,     and VIEW_TASK (/state's flags by
//	/state                        VIEW_FLAGS)
//	GET_CONTAINERS, /containers,  filtered by VIEW_CONTAINER
//	/monitor/statistics
//	LIST_FILES, READ_FILE,        ACCESS_SANDBOX for a sandbox (by its
//	/files/browse, read, download executor's and framework's infos),
//	                              ACCESS_MESOS_LOG for anything else
//	/files/debug                  GET_ENDPOINT_WITH_PATH
//
// A refusal answers 403 naming the action, and changes nothing.

// ErrForbidden: the authorizer refused a call (403, naming the action).
// Nothing was changed.
var ErrForbidden = auth.ErrForbidden

// errAuthorizer: the authorizer failed to answer (503: try again).
var errAuthorizer = auth.ErrAuthorizerFailed

// authenticated wraps h to ask for a credential of realm when on.
func (a *Agent) authenticated(on bool, realm string, h http.Handler) http.Handler {
	if !on {
		return h
	}
	return auth.Authenticate(a.cfg.Authenticator, realm, h)
}

// executorAuthenticated wraps the executor API to ask for an executor's
// token when Config.AuthenticateHTTPExecutors is on; the token's claims
// go in the request's context for the checks of checkClaims.
func (a *Agent) executorAuthenticated(h http.Handler) http.Handler {
	if !a.cfg.AuthenticateHTTPExecutors {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			auth.Challenge(w, "Bearer", auth.RealmAgentExecutor)
			return
		}
		claims, err := verifyJWT(a.cfg.ExecutorSecretKey, strings.TrimSpace(token), a.clk.Now())
		c := &executorClaims{frameworkID: claims["fid"], executorID: claims["eid"], containerID: claims["cid"]}
		if err != nil || c.frameworkID == "" || c.executorID == "" || c.containerID == "" {
			auth.Challenge(w, "Bearer", auth.RealmAgentExecutor)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
	})
}

// claimsFrom are the executor claims of ctx, nil for none.
func claimsFrom(ctx context.Context) *executorClaims {
	c, _ := ctx.Value(claimsKey{}).(*executorClaims)
	return c
}

// approvers are one subject's approvers, by action (nil allows every
// action: the agent has no authorizer).
type approvers = auth.Approvers

// approvers asks the authorizer for the approvers of the principal in
// ctx for actions. It may block: call it outside the loop.
func (a *Agent) approvers(ctx context.Context, actions ...auth.Action) (approvers, error) {
	principal, _ := auth.PrincipalFrom(ctx)
	return auth.GetApprovers(ctx, a.cfg.Authorizer, auth.Subject{Principal: principal}, actions...)
}

// authError maps an authorization failure to its HTTP answer.
func authError(err error) error {
	switch {
	case errors.Is(err, ErrForbidden):
		return httpapi.Errorf(http.StatusForbidden, "%v", err)
	case errors.Is(err, errAuthorizer):
		return httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	return handlerError(err)
}

// viewActions are what the calls that read the agent's state filter by.
var viewActions = []auth.Action{auth.ViewFramework, auth.ViewExecutor, auth.ViewTask}

// containerCall is what an operator call on a container names: the
// action, the container, and the command of a launch.
func containerCall(call *agentpb.Call) (auth.Action, *mesospb.ContainerID, *mesospb.CommandInfo, bool) {
	switch call.GetType() {
	case agentpb.Call_LAUNCH_NESTED_CONTAINER:
		if c := call.LaunchNestedContainer; c != nil {
			return auth.LaunchNestedContainer, &c.ContainerID, c.Command, true
		}
	case agentpb.Call_LAUNCH_NESTED_CONTAINER_SESSION:
		if c := call.LaunchNestedContainerSession; c != nil {
			return auth.LaunchNestedContainerSession, &c.ContainerID, c.Command, true
		}
	case agentpb.Call_ATTACH_CONTAINER_INPUT:
		if c := call.AttachContainerInput; c != nil && c.ContainerID != nil {
			return auth.AttachContainerInput, c.ContainerID, nil, true
		}
	case agentpb.Call_ATTACH_CONTAINER_OUTPUT:
		if c := call.AttachContainerOutput; c != nil {
			return auth.AttachContainerOutput, &c.ContainerID, nil, true
		}
	case agentpb.Call_KILL_NESTED_CONTAINER:
		if c := call.KillNestedContainer; c != nil {
			return auth.KillNestedContainer, &c.ContainerID, nil, true
		}
	case agentpb.Call_KILL_CONTAINER:
		if c := call.KillContainer; c != nil {
			return auth.KillNestedContainer, &c.ContainerID, nil, true
		}
	case agentpb.Call_WAIT_NESTED_CONTAINER:
		if c := call.WaitNestedContainer; c != nil {
			return auth.WaitNestedContainer, &c.ContainerID, nil, true
		}
	case agentpb.Call_WAIT_CONTAINER:
		if c := call.WaitContainer; c != nil {
			return auth.WaitNestedContainer, &c.ContainerID, nil, true
		}
	}
	return auth.ActionUnknown, nil, nil, false
}

// rootContainer is the outermost container of cid: an executor run's.
func rootContainer(cid *mesospb.ContainerID) string {
	for depth := 0; cid.Parent != nil && depth < maxContainerDepth; depth++ {
		cid = cid.Parent
	}
	return cid.Value
}

// authorizeOperator authorizes an operator call before it does
// anything, and returns the approvers its answer is to be filtered by
// (filterResponse). A malformed call is let through: the call itself
// says what is wrong with it.
func (a *Agent) authorizeOperator(ctx context.Context, call *agentpb.Call) (approvers, error) {
	if a.cfg.Authorizer == nil {
		return nil, nil
	}
	switch call.GetType() {
	case agentpb.Call_GET_FLAGS:
		return a.authorizeObjectless(ctx, auth.ViewFlags)
	case agentpb.Call_SET_LOGGING_LEVEL:
		return a.authorizeObjectless(ctx, auth.SetLogLevel)
	case agentpb.Call_PRUNE_IMAGES:
		return a.authorizeObjectless(ctx, auth.PruneImages)
	case agentpb.Call_GET_STATE, agentpb.Call_GET_FRAMEWORKS, agentpb.Call_GET_EXECUTORS, agentpb.Call_GET_TASKS:
		return a.approvers(ctx, viewActions...)
	case agentpb.Call_GET_CONTAINERS:
		return a.approvers(ctx, auth.ViewContainer)
	case agentpb.Call_LIST_FILES:
		if lf := call.ListFiles; lf != nil {
			return nil, a.authorizeFiles(ctx, lf.Path)
		}
		return nil, nil
	case agentpb.Call_READ_FILE:
		if rf := call.ReadFile; rf != nil {
			return nil, a.authorizeFiles(ctx, rf.Path)
		}
		return nil, nil
	}
	action, cid, cmd, ok := containerCall(call)
	if !ok {
		return nil, nil
	}
	ap, err := a.approvers(ctx, action)
	if err != nil {
		return nil, err
	}
	run := rootContainer(cid)
	obj, err := request(a, ctx, func() *auth.Object { return a.containerObject(run) })
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, nil // unknown: the call answers 404
	}
	obj.CommandInfo = cmd
	what := fmt.Sprintf("%s container %s of executor %s of framework %s", verbOf(action), run,
		obj.ExecutorInfo.ExecutorID.Value, obj.FrameworkInfo.GetID().GetValue())
	return nil, ap.Check(action, obj, what)
}

// verbOf names what action does in a refusal.
func verbOf(action auth.Action) string {
	switch action {
	case auth.LaunchNestedContainer, auth.LaunchNestedContainerSession:
		return "launch a nested container in"
	case auth.AttachContainerInput:
		return "attach to the input of"
	case auth.AttachContainerOutput:
		return "attach to the output of"
	case auth.KillNestedContainer:
		return "kill"
	case auth.WaitNestedContainer:
		return "wait for"
	}
	return strings.ToLower(action.String())
}

// containerObject is the authorization object of the executor run whose
// container is run (its ExecutorInfo and FrameworkInfo, which carry the
// users ACLs match), nil when the agent has no such run. It runs on the
// loop.
func (a *Agent) containerObject(run string) *auth.Object {
	for _, fw := range a.tables.Frameworks() {
		for _, e := range fw.Runs() {
			if e.ContainerID() == run {
				info, fwInfo := *e.Info(), *fw.Info()
				if info.FrameworkID == nil {
					info.FrameworkID = &mesospb.FrameworkID{Value: fw.ID()}
				}
				return &auth.Object{ExecutorInfo: &info, FrameworkInfo: &fwInfo}
			}
		}
	}
	return nil
}

// authorizeObjectless authorizes an action with no object.
func (a *Agent) authorizeObjectless(ctx context.Context, action auth.Action) (approvers, error) {
	ap, err := a.approvers(ctx, action)
	if err != nil {
		return nil, err
	}
	return nil, ap.Check(action, nil, "perform "+action.String())
}

// authorizedFor answers 403 before h to a request whose principal may
// not do action to obj (/flags, /logging/toggle, /files/debug).
func (a *Agent) authorizedFor(action auth.Action, obj *auth.Object, h http.Handler) http.Handler {
	if a.cfg.Authorizer == nil {
		return h
	}
	what := "perform " + action.String()
	if obj != nil {
		what = "GET " + obj.Value
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := a.approvers(r.Context(), action)
		if err == nil {
			err = ap.Check(action, obj, what)
		}
		if err != nil {
			httpapi.WriteError(w, authError(err))
			return
		}
		h.ServeHTTP(w, r)
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

// authorizeFiles decides whether the principal of ctx may read the files
// at path: a sandbox by ACCESS_SANDBOX (its executor's user, else its
// framework's), anything else (the agent's log, its work directory) by
// ACCESS_MESOS_LOG, as Mesos's agent authorizes what it attaches.
func (a *Agent) authorizeFiles(ctx context.Context, path string) error {
	if a.cfg.Authorizer == nil {
		return nil
	}
	ap, err := a.approvers(ctx, auth.AccessSandbox, auth.AccessMesosLog)
	if err != nil {
		return err
	}
	fwID, execID := sandboxIDs(path)
	if fwID == "" || execID == "" {
		return ap.Check(auth.AccessMesosLog, nil, "read agent files "+path)
	}
	obj, err := request(a, ctx, func() *auth.Object {
		obj := &auth.Object{}
		for _, fw := range a.tables.Frameworks() {
			if pathSafe(fw.ID()) != fwID {
				continue
			}
			info := *fw.Info()
			obj.FrameworkInfo = &info
			for _, e := range fw.Runs() {
				if pathSafe(e.ID()) == execID {
					ei := *e.Info()
					obj.ExecutorInfo = &ei
				}
			}
		}
		return obj
	})
	if err != nil {
		return err
	}
	return ap.Check(auth.AccessSandbox, obj, "access the sandbox of executor "+execID+" of framework "+fwID)
}

// filesAuthorized wraps a files endpoint to authorize its path= first.
func (a *Agent) filesAuthorized(h http.HandlerFunc) http.Handler {
	if a.cfg.Authorizer == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Query().Get("path"); p != "" {
			if err := a.authorizeFiles(r.Context(), p); err != nil {
				httpapi.WriteError(w, authError(err))
				return
			}
		}
		h(w, r)
	})
}

// filterResponse leaves out of resp what ap does not let the principal
// see, as Mesos's agent filters GET_STATE and the calls it is made of:
// frameworks by VIEW_FRAMEWORK, executors by VIEW_EXECUTOR, tasks by
// VIEW_TASK, containers by VIEW_CONTAINER (each with its framework's
// FrameworkInfo, which carries the user ACLs match).
func (a *Agent) filterResponse(ctx context.Context, resp *agentpb.Response, ap approvers) error {
	if ap == nil || resp == nil {
		return nil
	}
	type known struct {
		fws  map[string]*mesospb.FrameworkInfo
		runs map[string]*auth.Object
	}
	k, err := request(a, ctx, func() known {
		k := known{fws: map[string]*mesospb.FrameworkInfo{}, runs: map[string]*auth.Object{}}
		for _, c := range a.tables.CompletedFrameworks() {
			info := c.Info
			k.fws[info.GetID().GetValue()] = &info
		}
		for _, fw := range a.tables.Frameworks() {
			info := *fw.Info()
			k.fws[fw.ID()] = &info
			for _, e := range fw.Runs() {
				ei := *e.Info()
				k.runs[e.ContainerID()] = &auth.Object{ExecutorInfo: &ei, FrameworkInfo: &info}
			}
		}
		return k
	})
	if err != nil {
		return err
	}
	fwOf := func(id string) *mesospb.FrameworkInfo {
		if fw := k.fws[id]; fw != nil {
			return fw
		}
		return &mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: id}}
	}
	frameworks := func(fs []agentpb.Response_GetFrameworks_Framework) []agentpb.Response_GetFrameworks_Framework {
		return slices.DeleteFunc(fs, func(f agentpb.Response_GetFrameworks_Framework) bool {
			return !ap.Allows(auth.ViewFramework, &auth.Object{FrameworkInfo: &f.FrameworkInfo})
		})
	}
	executors := func(es []agentpb.Response_GetExecutors_Executor) []agentpb.Response_GetExecutors_Executor {
		return slices.DeleteFunc(es, func(e agentpb.Response_GetExecutors_Executor) bool {
			return !ap.Allows(auth.ViewExecutor, &auth.Object{ExecutorInfo: &e.ExecutorInfo, FrameworkInfo: fwOf(e.ExecutorInfo.GetFrameworkID().GetValue())})
		})
	}
	tasks := func(ts []mesospb.Task) []mesospb.Task {
		return slices.DeleteFunc(ts, func(t mesospb.Task) bool {
			return !ap.Allows(auth.ViewTask, &auth.Object{Task: &t, FrameworkInfo: fwOf(t.FrameworkID.Value)})
		})
	}
	filterFrameworks := func(f *agentpb.Response_GetFrameworks) {
		if f != nil {
			f.Frameworks, f.CompletedFrameworks = frameworks(f.Frameworks), frameworks(f.CompletedFrameworks)
		}
	}
	filterExecutors := func(e *agentpb.Response_GetExecutors) {
		if e != nil {
			e.Executors, e.CompletedExecutors = executors(e.Executors), executors(e.CompletedExecutors)
		}
	}
	filterTasks := func(t *agentpb.Response_GetTasks) {
		if t != nil {
			t.PendingTasks, t.QueuedTasks, t.LaunchedTasks = tasks(t.PendingTasks), tasks(t.QueuedTasks), tasks(t.LaunchedTasks)
			t.TerminatedTasks, t.CompletedTasks = tasks(t.TerminatedTasks), tasks(t.CompletedTasks)
		}
	}
	switch {
	case resp.GetState != nil:
		filterFrameworks(resp.GetState.GetFrameworks)
		filterExecutors(resp.GetState.GetExecutors)
		filterTasks(resp.GetState.GetTasks)
	case resp.GetFrameworks != nil:
		filterFrameworks(resp.GetFrameworks)
	case resp.GetExecutors != nil:
		filterExecutors(resp.GetExecutors)
	case resp.GetTasks != nil:
		filterTasks(resp.GetTasks)
	case resp.GetContainers != nil:
		resp.GetContainers.Containers = slices.DeleteFunc(resp.GetContainers.Containers, func(c agentpb.Response_GetContainers_Container) bool {
			obj := k.runs[rootContainer(&c.ContainerID)]
			if obj == nil {
				obj = &auth.Object{ContainerID: &c.ContainerID}
			}
			return !ap.Allows(auth.ViewContainer, obj)
		})
	}
	return nil
}

// filter leaves out of a /state snapshot what ap does not let the
// principal see: frameworks, executor runs and tasks, as Mesos's /state,
// and the flags without VIEW_FLAGS.
func (s *stateSnap) filter(ap approvers) {
	if ap == nil {
		return
	}
	if !ap.Allows(auth.ViewFlags, nil) {
		s.flags = nil
	}
	tasks := func(ts []mesospb.Task, fw *mesospb.FrameworkInfo) []mesospb.Task {
		return slices.DeleteFunc(ts, func(t mesospb.Task) bool {
			return !ap.Allows(auth.ViewTask, &auth.Object{Task: &t, FrameworkInfo: fw})
		})
	}
	frameworks := func(fs []*fwSnap) []*fwSnap {
		fs = slices.DeleteFunc(fs, func(f *fwSnap) bool {
			return !ap.Allows(auth.ViewFramework, &auth.Object{FrameworkInfo: &f.info})
		})
		for _, f := range fs {
			f.runs = slices.DeleteFunc(f.runs, func(r *runSnap) bool {
				return !ap.Allows(auth.ViewExecutor, &auth.Object{ExecutorInfo: &r.info, FrameworkInfo: &f.info})
			})
			for _, r := range f.runs {
				r.launched, r.terminal, r.completed = tasks(r.launched, &f.info), tasks(r.terminal, &f.info), tasks(r.completed, &f.info)
				r.queued = slices.DeleteFunc(r.queued, func(t mesospb.TaskInfo) bool {
					return !ap.Allows(auth.ViewTask, &auth.Object{TaskInfo: &t, FrameworkInfo: &f.info})
				})
			}
			for id, ts := range f.gone {
				f.gone[id] = tasks(ts, &f.info)
			}
		}
		return fs
	}
	s.frameworks, s.completedFrameworks = frameworks(s.frameworks), frameworks(s.completedFrameworks)
}

// visibleEntries are the entries of /containers and /monitor/statistics
// whose containers ap lets the principal see (VIEW_CONTAINER).
func (a *Agent) visibleEntries(ctx context.Context, entries []containerEntry, ap approvers) ([]containerEntry, error) {
	if ap == nil {
		return entries, nil
	}
	resp := &agentpb.Response{GetContainers: &agentpb.Response_GetContainers{}}
	for _, e := range entries {
		resp.GetContainers.Containers = append(resp.GetContainers.Containers, e.c)
	}
	if err := a.filterResponse(ctx, resp, ap); err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, c := range resp.GetContainers.Containers {
		keep[c.ContainerID.Value] = true
	}
	return slices.DeleteFunc(entries, func(e containerEntry) bool { return !keep[e.c.ContainerID.Value] }), nil
}

package master

import (
	"fmt"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// What a client can make the master keep is bounded, so that memory grows
// with the number of frameworks, agents and tasks, never with what one of
// them chooses to send: a FrameworkInfo is kept for the framework's life
// (and among the completed frameworks after), sent to every agent that
// runs one of its executors and listed by every GET_FRAMEWORKS and /state;
// a task's info is kept until the task is forgotten. Each request body is
// bounded first by the HTTP layer (httpapi.DefaultMaxBodyBytes, 413), which
// a call's parts then cannot exceed; the bounds below apply to the calls
// whatever their transport (HTTP or in process), as the core checks them.
//
// Mesos validates IDs (common::validation::validateID) and sets no other
// bound; the other limits are Apron's, each well above what a real
// framework sends (Marathon, Spark, Aurora, Kafka and Elasticsearch
// operators send names, users and URLs under 200 bytes, a few labels and
// roles). A call over a bound is refused whole: SUBSCRIBE and
// UPDATE_FRAMEWORK with 400 (ErrInvalidCall), a task with TASK_ERROR
// (REASON_TASK_INVALID), as the master refuses any invalid task.
const (
	// maxIDBytes is Mesos's NAME_MAX bound on an ID (validateID): IDs
	// name directories on agents (work_dir/slaves/<agent>/frameworks/
	// <framework>/executors/<executor>/...).
	maxIDBytes = 255

	// maxFrameworkStringBytes bounds each string of a FrameworkInfo (name,
	// user, principal, hostname, webui_url, role, each of roles) and each
	// label's key and value: 4 KiB, a URL's practical limit.
	maxFrameworkStringBytes = 4 << 10

	// maxLabels bounds the labels of a FrameworkInfo, a task or an
	// executor.
	maxLabels = 256

	// maxFrameworkRoles bounds a MULTI_ROLE framework's roles (and its
	// suppressed roles): each role costs the allocator a node in its role
	// tree and a sorter entry.
	maxFrameworkRoles = 1024

	// maxFrameworkCapabilities bounds FrameworkInfo.capabilities; Mesos
	// has a dozen capability types, so more entries only repeat them.
	maxFrameworkCapabilities = 64

	// maxFrameworkInfoBytes bounds a whole encoded FrameworkInfo (offer
	// filters and unknown fields included, which the master keeps and
	// passes on): 64 KiB, so a thousand frameworks cost at most 64 MiB.
	maxFrameworkInfoBytes = 64 << 10

	// maxTaskKeptBytes bounds what the master keeps of a task: its
	// TaskInfo without data and command, which it sends on to the agent
	// and then forgets as Mesos's master does (protobuf::createTask keeps
	// neither), so data is bounded only by the body.
	maxTaskKeptBytes = 64 << 10

	// maxExecutorInfoBytes bounds an ExecutorInfo, which the master keeps
	// whole (data included) while the executor runs, as Mesos's master
	// does.
	maxExecutorInfoBytes = 1 << 20
)

// idError says why id is not a valid ID, or "" when it is: Mesos's
// common::validation::validateID. Not empty, at most NAME_MAX (255) bytes,
// not "." or "..", no control character (iscntrl: 0x00-0x1f, 0x7f) and no
// '/' or '\' (IDs are mapped to directories). Spaces and any other bytes
// are allowed, as in Mesos.
func idError(id string) string {
	switch {
	case id == "":
		return "ID must not be empty"
	case len(id) > maxIDBytes:
		return fmt.Sprintf("ID must not be greater than %d characters", maxIDBytes)
	case id == "." || id == "..":
		return fmt.Sprintf("'%s' is disallowed", id)
	}
	for i := 0; i < len(id); i++ {
		if b := id[i]; b < 0x20 || b == 0x7f || b == '/' || b == '\\' {
			return fmt.Sprintf("'%s' contains invalid characters", clip(id))
		}
	}
	return ""
}

// clip shortens what a client sent for an error message that quotes it.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkFrameworkInfo validates the ID of a framework's info (when set, as
// Mesos's validation::framework::internal::validateFrameworkId) and
// bounds what the master would keep of it. The hook of SUBSCRIBE and
// UPDATE_FRAMEWORK; suppressed are the call's suppressed roles.
func checkFrameworkInfo(info *mesospb.FrameworkInfo, suppressed []string) error {
	if info.ID != nil && info.ID.Value != "" {
		if msg := idError(info.ID.Value); msg != "" {
			return fmt.Errorf("%w: framework_info.id: %s", ErrInvalidCall, msg)
		}
	}
	str := func(field, v string) error {
		if len(v) > maxFrameworkStringBytes {
			return fmt.Errorf("%w: framework_info.%s is %d bytes; at most %d are allowed", ErrInvalidCall, field, len(v), maxFrameworkStringBytes)
		}
		return nil
	}
	for _, f := range []struct{ name, v string }{
		{"name", info.Name}, {"user", info.User}, {"principal", info.GetPrincipal()},
		{"hostname", info.GetHostname()}, {"webui_url", info.GetWebuiURL()}, {"role", info.GetRole()},
	} {
		if err := str(f.name, f.v); err != nil {
			return err
		}
	}
	if n := max(len(info.Roles), len(suppressed)); n > maxFrameworkRoles {
		return fmt.Errorf("%w: %d roles; a framework may have at most %d", ErrInvalidCall, n, maxFrameworkRoles)
	}
	for _, r := range info.Roles {
		if err := str("roles[]", r); err != nil {
			return err
		}
	}
	if n := len(info.Capabilities); n > maxFrameworkCapabilities {
		return fmt.Errorf("%w: %d capabilities; at most %d are allowed", ErrInvalidCall, n, maxFrameworkCapabilities)
	}
	if err := checkLabels("framework_info", info.Labels); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidCall, err)
	}
	if n := info.Size(); n > maxFrameworkInfoBytes {
		return fmt.Errorf("%w: framework_info is %d bytes encoded; at most %d are allowed", ErrInvalidCall, n, maxFrameworkInfoBytes)
	}
	return nil
}

// checkLabels bounds the labels of what: their number, and each key and
// value.
func checkLabels(what string, ls *mesospb.Labels) error {
	if ls == nil {
		return nil
	}
	if n := len(ls.Labels); n > maxLabels {
		return fmt.Errorf("%s has %d labels; at most %d are allowed", what, n, maxLabels)
	}
	for _, l := range ls.Labels {
		if len(l.Key) > maxFrameworkStringBytes || len(l.GetValue()) > maxFrameworkStringBytes {
			return fmt.Errorf("%s has a label %q over %d bytes", what, clip(l.Key), maxFrameworkStringBytes)
		}
	}
	return nil
}

// checkTask bounds what the master keeps of a task it launches (the
// caller has validated its ID); the hook of LAUNCH and LAUNCH_GROUP.
func checkTask(ti *mesospb.TaskInfo) error {
	if err := checkLabels("task "+ti.TaskID.Value, ti.Labels); err != nil {
		return fmt.Errorf("%w: %v", errTask, err)
	}
	if n := keptTask(ti).Size(); n > maxTaskKeptBytes {
		return fmt.Errorf("%w: task %s is %d bytes encoded without its data and command; at most %d are allowed", errTask, ti.TaskID.Value, n, maxTaskKeptBytes)
	}
	return nil
}

// keptTask is what the master keeps of a TaskInfo: all but its data, its
// command (but the command's user, which the operator API reports) and
// its executor (kept apart), as Mesos's protobuf::createTask.
func keptTask(ti *mesospb.TaskInfo) *mesospb.TaskInfo {
	kept := *ti
	kept.Data, kept.Executor, kept.Command = nil, nil, nil
	if ti.Command != nil && ti.Command.User != nil {
		kept.Command = &mesospb.CommandInfo{User: ti.Command.User}
	}
	return &kept
}

// checkExecutor bounds an ExecutorInfo the master keeps (the caller has
// validated its ID).
func checkExecutor(e *mesospb.ExecutorInfo) error {
	if err := checkLabels("executor "+e.ExecutorID.Value, e.Labels); err != nil {
		return fmt.Errorf("%w: %v", errTask, err)
	}
	if n := e.Size(); n > maxExecutorInfoBytes {
		return fmt.Errorf("%w: executor %s is %d bytes encoded; at most %d are allowed", errTask, e.ExecutorID.Value, n, maxExecutorInfoBytes)
	}
	return nil
}

// checkReregister validates the IDs an agent's REREGISTER reports, as
// Mesos's validation::master::message::reregisterSlave does: the agent's,
// its frameworks', its executors' and its tasks'.
func checkReregister(r *internalpb.Call_Reregister) error {
	bad := func(what, id string) error {
		if msg := idError(id); msg != "" {
			return fmt.Errorf("%w: %s: %s", ErrInvalidCall, what, msg)
		}
		return nil
	}
	if err := bad("agent_info.id", r.AgentInfo.GetID().GetValue()); err != nil {
		return err
	}
	for _, fi := range r.Frameworks {
		if fi.ID == nil {
			continue // skipped when recovering frameworks (agents.go)
		}
		if err := bad("framework ID", fi.ID.Value); err != nil {
			return err
		}
	}
	for _, e := range r.Executors {
		if err := bad("executor ID", e.ExecutorID.Value); err != nil {
			return err
		}
	}
	for _, t := range r.Tasks {
		if err := bad("Task has an invalid TaskID", t.TaskID.Value); err != nil {
			return err
		}
		if err := bad("task's framework ID", t.FrameworkID.Value); err != nil {
			return err
		}
	}
	return nil
}

package agent

import (
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/mesosjson"
)

// The agent's own parts of Mesos's "model" JSON (see package mesosjson
// for the parts the master writes too): src/slave/http.cpp's json(TaskInfo),
// ExecutorWriter and FrameworkWriter.

// frameworkRole is the role of a framework's resources when they carry no
// allocation info: its only role.
func frameworkRole(info *mesospb.FrameworkInfo) string {
	if len(info.Roles) > 0 {
		return info.Roles[0]
	}
	if info.Role != nil && *info.Role != "" {
		return *info.Role
	}
	return "*"
}

// modelTaskInfo is Mesos's json(TaskInfo), for queued tasks.
func modelTaskInfo(t *mesospb.TaskInfo, fwRole string) mesosjson.Object {
	o := mesosjson.Object{
		{Key: "id", Value: t.TaskID.Value},
		{Key: "name", Value: t.Name},
		{Key: "slave_id", Value: t.AgentID.Value},
		{Key: "resources", Value: mesosjson.ResourcesOfProto(t.Resources)},
		{Key: "role", Value: mesosjson.AllocationRole(t.Resources, fwRole)},
	}
	if t.Command != nil {
		o.Set("command", mesosjson.CommandOf(t.Command))
	}
	if t.Executor != nil {
		o.Set("executor_id", t.Executor.ExecutorID.Value)
	}
	if t.Discovery != nil {
		o.Set("discovery", mesosjson.Proto(t.Discovery))
	}
	return o
}

package mesosjson

import (
	"encoding/json"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Labels is json(JSON::ArrayWriter*, const Labels&): the labels as an
// array of {"key", "value"} objects; nil (left out) when labels is nil.
func Labels(labels *mesospb.Labels) json.RawMessage {
	if labels == nil {
		return nil
	}
	b, _ := json.Marshal(Protos(labels.Labels)) // RawMessages marshal
	return b
}

// Task is json(JSON::ObjectWriter*, const Task&).
type Task struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	FrameworkID string            `json:"framework_id"`
	ExecutorID  string            `json:"executor_id"`
	SlaveID     string            `json:"slave_id"`
	State       string            `json:"state"`
	Resources   Resources         `json:"resources"`
	Limits      map[string]Double `json:"limits,omitempty"`
	Role        string            `json:"role"`
	Statuses    []TaskStatus      `json:"statuses"`
	User        *string           `json:"user,omitempty"`
	Labels      json.RawMessage   `json:"labels,omitempty"`
	Discovery   json.RawMessage   `json:"discovery,omitempty"`
	Container   json.RawMessage   `json:"container,omitempty"`
	HealthCheck json.RawMessage   `json:"health_check,omitempty"`
}

// TaskOf writes t; role is its role when its resources carry no
// allocation role (see AllocationRole).
func TaskOf(t *mesospb.Task, role string) Task {
	j := Task{
		ID:          t.TaskID.Value,
		Name:        t.Name,
		FrameworkID: t.FrameworkID.Value,
		ExecutorID:  t.GetExecutorID().GetValue(),
		SlaveID:     t.AgentID.Value,
		State:       t.GetState().String(),
		Resources:   ResourcesOfProto(t.Resources),
		Role:        AllocationRole(t.Resources, role),
		Statuses:    make([]TaskStatus, len(t.Statuses)),
		User:        t.User,
		Labels:      Labels(t.Labels),
		Discovery:   Proto(t.Discovery),
		Container:   Proto(t.Container),
		HealthCheck: Proto(t.HealthCheck),
	}
	if len(t.Limits) > 0 {
		j.Limits = make(map[string]Double, len(t.Limits))
		for name, v := range t.Limits {
			j.Limits[name] = Double(v.Value)
		}
	}
	for i := range t.Statuses {
		j.Statuses[i] = TaskStatusOf(&t.Statuses[i])
	}
	return j
}

// TaskStatus is json(JSON::ObjectWriter*, const TaskStatus&).
type TaskStatus struct {
	State           string           `json:"state"`
	Timestamp       Double           `json:"timestamp"`
	Labels          json.RawMessage  `json:"labels,omitempty"`
	ContainerStatus *ContainerStatus `json:"container_status,omitempty"`
	Healthy         *bool            `json:"healthy,omitempty"`
}

// TaskStatusOf writes s.
func TaskStatusOf(s *mesospb.TaskStatus) TaskStatus {
	j := TaskStatus{
		State:     s.GetState().String(),
		Timestamp: Double(s.GetTimestamp()),
		Labels:    Labels(s.Labels),
		Healthy:   s.Healthy,
	}
	if cs := s.ContainerStatus; cs != nil {
		j.ContainerStatus = &ContainerStatus{
			ContainerID: Proto(cs.ContainerID),
			CgroupInfo:  Proto(cs.CgroupInfo),
		}
		for i := range cs.NetworkInfos {
			j.ContainerStatus.NetworkInfos = append(j.ContainerStatus.NetworkInfos, NetworkInfoOf(&cs.NetworkInfos[i]))
		}
	}
	return j
}

// ContainerStatus is json(JSON::ObjectWriter*, const ContainerStatus&):
// Mesos leaves out the executor's pid.
type ContainerStatus struct {
	ContainerID  json.RawMessage `json:"container_id,omitempty"`
	NetworkInfos []NetworkInfo   `json:"network_infos,omitempty"`
	CgroupInfo   json.RawMessage `json:"cgroup_info,omitempty"`
}

// NetworkInfo is json(JSON::ObjectWriter*, const NetworkInfo&).
type NetworkInfo struct {
	Groups       []string          `json:"groups,omitempty"`
	Labels       json.RawMessage   `json:"labels,omitempty"`
	IPAddresses  []json.RawMessage `json:"ip_addresses,omitempty"`
	Name         *string           `json:"name,omitempty"`
	PortMappings []json.RawMessage `json:"port_mappings,omitempty"`
}

// NetworkInfoOf writes n.
func NetworkInfoOf(n *mesospb.NetworkInfo) NetworkInfo {
	j := NetworkInfo{Groups: n.Groups, Labels: Labels(n.Labels), Name: n.Name}
	if len(n.IPAddresses) > 0 {
		j.IPAddresses = Protos(n.IPAddresses)
	}
	if len(n.PortMappings) > 0 {
		j.PortMappings = Protos(n.PortMappings)
	}
	return j
}

// Executor is json(JSON::ObjectWriter*, const ExecutorInfo&).
type Executor struct {
	ExecutorID  string          `json:"executor_id"`
	Name        string          `json:"name"`
	FrameworkID string          `json:"framework_id"`
	Command     Command         `json:"command"`
	Resources   Resources       `json:"resources"`
	Role        *string         `json:"role,omitempty"`
	Labels      json.RawMessage `json:"labels,omitempty"`
	Type        *string         `json:"type,omitempty"`
}

// ExecutorOf writes e, of the framework frameworkID (which e may not
// name). Its "role", written when it has resources, is their allocation
// role, "" when they carry none, as Mesos writes it.
func ExecutorOf(e *mesospb.ExecutorInfo, frameworkID string) Executor {
	j := Executor{
		ExecutorID:  e.ExecutorID.Value,
		Name:        e.GetName(),
		FrameworkID: frameworkID,
		Command:     CommandOf(e.Command),
		Resources:   ResourcesOfProto(e.Resources),
		Labels:      Labels(e.Labels),
	}
	if len(e.Resources) > 0 {
		role := AllocationRole(e.Resources, "")
		j.Role = &role
	}
	if e.Type != nil {
		typ := e.Type.String()
		j.Type = &typ
	}
	return j
}

// Command is json(JSON::ObjectWriter*, const CommandInfo&).
type Command struct {
	Shell       *bool           `json:"shell,omitempty"`
	Value       *string         `json:"value,omitempty"`
	Argv        []string        `json:"argv"`
	Environment json.RawMessage `json:"environment,omitempty"`
	URIs        []URI           `json:"uris"`
}

// URI is what Mesos writes of a CommandInfo.URI.
type URI struct {
	Value      string `json:"value"`
	Executable bool   `json:"executable"`
}

// CommandOf writes c; a nil c as the empty message, as Mesos writes an
// unset command.
func CommandOf(c *mesospb.CommandInfo) Command {
	if c == nil {
		c = &mesospb.CommandInfo{}
	}
	j := Command{
		Shell:       c.Shell,
		Value:       c.Value,
		Argv:        append([]string{}, c.Arguments...),
		Environment: Proto(c.Environment),
		URIs:        make([]URI, len(c.URIs)),
	}
	for i, u := range c.URIs {
		j.URIs[i] = URI{Value: u.Value, Executable: u.GetExecutable()}
	}
	return j
}

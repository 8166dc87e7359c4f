package master

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/mesosjson"
	"github.com/apronhq/apron/resources"
)

// This file holds the master's own parts of the "model" JSON of Mesos's
// HTTP endpoints (/state, /frameworks, /slaves, /tasks, ...): those of
// src/master/readonly_handler.cpp (FullFrameworkWriter, SlaveWriter, ...)
// and the json(...) writers of src/common/http.cpp only the master uses
// (Offer, SlaveInfo, MasterInfo, ...); package mesosjson holds what the
// agent writes too (tasks, resources, ...). Tools such as mesos-dns, UIs
// and exporters read these names, types and units, so each struct below
// follows one Mesos writer, field for field and in its order.

// secs is a TimeInfo in seconds, as Mesos's Time::secs() writes times.
func secs(t *mesospb.TimeInfo) mesosjson.Double {
	if t == nil {
		return 0
	}
	return mesosjson.Double(float64(t.Nanoseconds) / 1e9)
}

// optSecs is secs for a field Mesos writes only when the time is set.
func optSecs(t *mesospb.TimeInfo) *mesosjson.Double {
	if t == nil {
		return nil
	}
	s := secs(t)
	return &s
}

// quantitiesJSON is json(..., ResourceQuantities) and json(...,
// ResourceLimits): name to amount.
func quantitiesJSON[M ~map[string]resources.Scalar](q M) map[string]mesosjson.Double {
	out := make(map[string]mesosjson.Double, len(q))
	for name, v := range q {
		if v != 0 {
			out[name] = mesosjson.Double(v.Float64())
		}
	}
	return out
}

// executorJSON is json(JSON::ObjectWriter*, const ExecutorInfo&) plus the
// "slave_id" FullFrameworkWriter adds.
type executorJSON struct {
	mesosjson.Executor
	SlaveID string `json:"slave_id"`
}

// offerJSON is json(JSON::ObjectWriter*, const Offer&).
type offerJSON struct {
	ID             string              `json:"id"`
	FrameworkID    string              `json:"framework_id"`
	AllocationInfo json.RawMessage     `json:"allocation_info"`
	SlaveID        string              `json:"slave_id"`
	Resources      mesosjson.Resources `json:"resources"`
}

// modelOffer writes o; role is its allocation role when the offer does
// not carry it (the master keeps it for every offer, as Mesos's does).
func modelOffer(o *mesospb.Offer, role string) offerJSON {
	info := o.AllocationInfo
	if info == nil {
		info = &mesospb.Resource_AllocationInfo{Role: &role}
	}
	return offerJSON{
		ID:             o.ID.Value,
		FrameworkID:    o.FrameworkID.Value,
		AllocationInfo: mesosjson.Proto(info),
		SlaveID:        o.AgentID.Value,
		Resources:      mesosjson.ResourcesOfProto(o.Resources),
	}
}

// frameworkSummaryJSON is json(JSON::ObjectWriter*, const
// Summary<Framework>&), what /state-summary writes of a framework. "pid"
// is for frameworks of the old libprocess API, which Apron does not
// speak, so it is always left out, as Mesos leaves it out for HTTP
// frameworks.
type frameworkSummaryJSON struct {
	ID               string              `json:"id"`
	Name             string              `json:"name"`
	UsedResources    mesosjson.Resources `json:"used_resources"`
	OfferedResources mesosjson.Resources `json:"offered_resources"`
	Capabilities     []string            `json:"capabilities"`
	Hostname         string              `json:"hostname"`
	WebuiURL         string              `json:"webui_url"`
	Active           bool                `json:"active"`
	Connected        bool                `json:"connected"`
	Recovered        bool                `json:"recovered"`
}

// frameworkJSON is FullFrameworkWriter: the summary and the framework's
// tasks, offers and executors, for /state and /frameworks.
type frameworkJSON struct {
	frameworkSummaryJSON
	User             string              `json:"user"`
	FailoverTimeout  mesosjson.Double    `json:"failover_timeout"`
	Checkpoint       bool                `json:"checkpoint"`
	RegisteredTime   mesosjson.Double    `json:"registered_time"`
	UnregisteredTime mesosjson.Double    `json:"unregistered_time"`
	Principal        *string             `json:"principal,omitempty"`
	Resources        mesosjson.Resources `json:"resources"`
	ReregisteredTime *mesosjson.Double   `json:"reregistered_time,omitempty"`
	Roles            []string            `json:"roles,omitempty"`
	Role             *string             `json:"role,omitempty"`
	Tasks            []mesosjson.Task    `json:"tasks"`
	UnreachableTasks []mesosjson.Task    `json:"unreachable_tasks"`
	CompletedTasks   []mesosjson.Task    `json:"completed_tasks"`
	Offers           []offerJSON         `json:"offers"`
	Executors        []executorJSON      `json:"executors"`
	Labels           json.RawMessage     `json:"labels,omitempty"`
	OfferConstraints json.RawMessage     `json:"offer_constraints"`
}

func frameworkCapabilities(info *mesospb.FrameworkInfo) []string {
	out := make([]string, 0, len(info.Capabilities))
	for _, c := range info.Capabilities {
		out = append(out, c.GetType().String())
	}
	return out
}

// slaveInfoJSON is json(JSON::ObjectWriter*, const SlaveInfo&), which
// /state writes for recovered agents.
type slaveInfoJSON struct {
	ID         string           `json:"id"`
	Hostname   string           `json:"hostname"`
	Port       int32            `json:"port"`
	Attributes mesosjson.Object `json:"attributes"`
	Domain     json.RawMessage  `json:"domain,omitempty"`
}

func modelSlaveInfo(info *mesospb.AgentInfo) slaveInfoJSON {
	// DomainInfo's model (json(..., DomainInfo)) is its protobuf JSON.
	return slaveInfoJSON{
		ID:         info.GetID().GetValue(),
		Hostname:   info.Hostname,
		Port:       info.GetPort(),
		Attributes: mesosjson.Attributes(info.Attributes),
		Domain:     mesosjson.Proto(info.Domain),
	}
}

// slaveJSON is SlaveWriter, what /state and /state-summary write of an
// agent.
type slaveJSON struct {
	slaveInfoJSON
	PID                     string                         `json:"pid"`
	RegisteredTime          mesosjson.Double               `json:"registered_time"`
	ReregisteredTime        *mesosjson.Double              `json:"reregistered_time,omitempty"`
	Resources               mesosjson.Resources            `json:"resources"`
	UsedResources           mesosjson.Resources            `json:"used_resources"`
	OfferedResources        mesosjson.Resources            `json:"offered_resources"`
	ReservedResources       map[string]mesosjson.Resources `json:"reserved_resources"`
	UnreservedResources     mesosjson.Resources            `json:"unreserved_resources"`
	Active                  bool                           `json:"active"`
	Deactivated             bool                           `json:"deactivated"`
	Version                 string                         `json:"version"`
	Capabilities            []string                       `json:"capabilities"`
	DrainInfo               json.RawMessage                `json:"drain_info,omitempty"`
	EstimatedDrainStartTime *mesosjson.Double              `json:"estimated_drain_start_time_seconds,omitempty"`
}

// slaveFullJSON is what /slaves writes (SlavesWriter::writeSlave): the
// agent and its resources in full protobuf form too, for tools that
// unreserve resources or destroy volumes.
type slaveFullJSON struct {
	slaveJSON
	ReservedResourcesFull   map[string][]json.RawMessage `json:"reserved_resources_full"`
	UnreservedResourcesFull []json.RawMessage            `json:"unreserved_resources_full"`
	UsedResourcesFull       []json.RawMessage            `json:"used_resources_full"`
	OfferedResourcesFull    []json.RawMessage            `json:"offered_resources_full"`
}

// agentPID is an agent's libprocess pid as Mesos reports it,
// "slave(1)@<ip>:<port>" (mesos-dns takes agents' IP addresses from it):
// the operator API's, when the state has it, else built from the agent's
// IP address, or its hostname when the master knows no IP.
func agentPID(a *masterpb.Response_GetAgents_Agent, ip string) string {
	if a.Pid != nil {
		return *a.Pid
	}
	host := ip
	if host == "" {
		host = a.AgentInfo.Hostname
	}
	return "slave(1)@" + joinHostPort(host, int64(a.AgentInfo.GetPort()))
}

func joinHostPort(host string, port int64) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.FormatInt(port, 10)
}

// taskCountsJSON is the count of tasks by state /state-summary adds to
// each agent and framework; Mesos writes these ten states only.
type taskCountsJSON struct {
	Staging     int `json:"TASK_STAGING"`
	Starting    int `json:"TASK_STARTING"`
	Running     int `json:"TASK_RUNNING"`
	Killing     int `json:"TASK_KILLING"`
	Finished    int `json:"TASK_FINISHED"`
	Killed      int `json:"TASK_KILLED"`
	Failed      int `json:"TASK_FAILED"`
	Lost        int `json:"TASK_LOST"`
	Error       int `json:"TASK_ERROR"`
	Unreachable int `json:"TASK_UNREACHABLE"`
}

func (c *taskCountsJSON) count(s mesospb.TaskState) {
	switch s {
	case mesospb.TASK_STAGING:
		c.Staging++
	case mesospb.TASK_STARTING:
		c.Starting++
	case mesospb.TASK_RUNNING:
		c.Running++
	case mesospb.TASK_KILLING:
		c.Killing++
	case mesospb.TASK_FINISHED:
		c.Finished++
	case mesospb.TASK_KILLED:
		c.Killed++
	case mesospb.TASK_FAILED:
		c.Failed++
	case mesospb.TASK_LOST:
		c.Lost++
	case mesospb.TASK_ERROR:
		c.Error++
	case mesospb.TASK_UNREACHABLE:
		c.Unreachable++
	}
}

// masterInfoJSON is json(JSON::ObjectWriter*, const MasterInfo&), the
// "leader_info" of /state.
type masterInfoJSON struct {
	ID       string          `json:"id"`
	PID      string          `json:"pid"`
	Port     uint32          `json:"port"`
	Hostname string          `json:"hostname"`
	Domain   json.RawMessage `json:"domain,omitempty"`
}

func modelMasterInfo(info *mesospb.MasterInfo) masterInfoJSON {
	return masterInfoJSON{
		ID:       info.ID,
		PID:      info.GetPid(),
		Port:     info.GetPort(),
		Hostname: info.GetHostname(),
		Domain:   mesosjson.Proto(info.Domain),
	}
}

// sortedStrings returns the keys of a set, sorted.
func sortedStrings(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

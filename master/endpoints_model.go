package master

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// This file holds the "model" JSON of Mesos's HTTP endpoints (/state,
// /frameworks, /slaves, /tasks, ...), which is not the protobuf JSON of the
// v1 API but hand-written in Mesos: src/common/http.cpp (json(..., Task),
// json(..., Resources), ...) and src/master/readonly_handler.cpp
// (FullFrameworkWriter, SlaveWriter, ...). Tools such as mesos-dns, UIs and
// exporters read these names, types and units, so each struct below
// follows one Mesos writer, field for field and in its order.

// num is a JSON number Mesos writes from a C++ double: rapidjson keeps a
// ".0" on whole numbers ("cpus": 1.0), which a reader decoding into an
// integer would refuse, so it matters which fields are doubles.
type num float64

// MarshalJSON writes n as rapidjson writes a double. NaN and infinities,
// which JSON cannot hold, are written as null.
func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(nil, f, 'e', -1, 64), nil
	}
	b := strconv.AppendFloat(nil, f, 'f', -1, 64)
	if !bytes.ContainsRune(b, '.') {
		b = append(b, ".0"...)
	}
	return b, nil
}

// secs is a TimeInfo in seconds, as Mesos's Time::secs() writes times.
func secs(t *mesospb.TimeInfo) num {
	if t == nil {
		return 0
	}
	return num(float64(t.Nanoseconds) / 1e9)
}

// optSecs is secs for a field Mesos writes only when the time is set.
func optSecs(t *mesospb.TimeInfo) *num {
	if t == nil {
		return nil
	}
	s := secs(t)
	return &s
}

// protoJSON is a message as stout's JSON::Protobuf writes it, which Mesos
// embeds in its model for the parts it does not write by hand (labels,
// container, discovery, ...). nil (the field left out) for a nil message.
func protoJSON[T any, PT interface {
	*T
	proto.Message
}](m *T) json.RawMessage {
	if m == nil {
		return nil
	}
	b, err := codec.MarshalJSON(PT(m))
	if err != nil {
		return json.RawMessage("{}") // cannot happen for a generated message
	}
	return b
}

// protoJSONs is protoJSON of each message of a repeated field.
func protoJSONs[T any, PT interface {
	*T
	proto.Message
}](ms []T) []json.RawMessage {
	out := make([]json.RawMessage, len(ms))
	for i := range ms {
		out[i] = protoJSON[T, PT](&ms[i])
	}
	return out
}

// labelsJSON is json(JSON::ArrayWriter*, const Labels&): the labels as an
// array of {"key", "value"} objects; nil (left out) when labels is nil.
func labelsJSON(labels *mesospb.Labels) json.RawMessage {
	if labels == nil {
		return nil
	}
	b, _ := json.Marshal(protoJSONs(labels.Labels)) // RawMessages marshal
	return b
}

// resourcesJSON is json(JSON::ObjectWriter*, const Resources&): the
// resources summed by name, cpus, gpus, mem and disk always present (0.0
// when absent), ranges as "[31000-32000, 33000-34000]", sets as "{a, b}",
// and revocable resources under "<name>_revocable". Reservations,
// allocation and disk information are summed away.
type resourcesJSON struct {
	scalars map[string]float64
	ranges  map[string]resources.Ranges
	sets    map[string]resources.Set
}

// standardScalars are the scalars Mesos writes even when there are none,
// in the order it seeds them.
var standardScalars = []string{resources.NameCPUs, resources.NameGPUs, resources.NameMem, resources.NameDisk}

func modelResources(rs resources.Resources) resourcesJSON {
	m := resourcesJSON{scalars: map[string]float64{}, ranges: map[string]resources.Ranges{}, sets: map[string]resources.Set{}}
	for _, name := range standardScalars {
		m.scalars[name] = 0
	}
	for _, r := range rs {
		name := r.Name
		if r.Revocable {
			name += "_revocable"
		}
		switch r.Type {
		case resources.TypeScalar:
			m.scalars[name] += r.Scalar.Float64()
		case resources.TypeRanges:
			m.ranges[name] = m.ranges[name].Add(r.Ranges)
		case resources.TypeSet:
			m.sets[name] = unionSet(m.sets[name], r.Set)
		}
	}
	return m
}

func unionSet(a, b resources.Set) resources.Set {
	out := slices.Clone(a)
	for _, item := range b {
		if !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}

// MarshalJSON writes the standard scalars first, then the other scalars,
// ranges and sets, each by name.
func (m resourcesJSON) MarshalJSON() ([]byte, error) {
	var o object
	for _, name := range standardScalars {
		o = append(o, field{name, num(m.scalars[name])})
	}
	for _, name := range sortedKeys(m.scalars) {
		if !slices.Contains(standardScalars, name) {
			o = append(o, field{name, num(m.scalars[name])})
		}
	}
	for _, name := range sortedKeys(m.ranges) {
		o = append(o, field{name, rangesText(m.ranges[name])})
	}
	for _, name := range sortedKeys(m.sets) {
		o = append(o, field{name, setText(m.sets[name])})
	}
	return o.MarshalJSON()
}

// rangesText is stringify(Value::Ranges): "[1-2, 4-5]".
func rangesText(rs resources.Ranges) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.FormatUint(r.Begin, 10) + "-" + strconv.FormatUint(r.End, 10)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// setText is stringify(Value::Set): "{a, b}".
func setText(s resources.Set) string { return "{" + strings.Join(s, ", ") + "}" }

// object is a JSON object whose fields keep their order, for the objects
// whose keys are data (attributes, resources).
type object []field

type field struct {
	key   string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// attributesJSON is json(JSON::ObjectWriter*, const Attributes&): each
// attribute under its name, a scalar as a number, ranges and sets as text.
func attributesJSON(attrs []mesospb.Attribute) object {
	o := object{}
	for _, a := range attrs {
		switch a.Type {
		case mesospb.Value_SCALAR:
			o = append(o, field{a.Name, num(a.GetScalar().GetValue())})
		case mesospb.Value_RANGES:
			var rs resources.Ranges
			for _, r := range a.GetRanges().GetRange() {
				rs = append(rs, resources.Range{Begin: r.Begin, End: r.End})
			}
			o = append(o, field{a.Name, rangesText(rs)})
		case mesospb.Value_SET:
			o = append(o, field{a.Name, setText(a.GetSet().GetItem())})
		case mesospb.Value_TEXT:
			o = append(o, field{a.Name, a.GetText().GetValue()})
		}
	}
	return o
}

// quantitiesJSON is json(..., ResourceQuantities) and json(...,
// ResourceLimits): name to amount.
func quantitiesJSON[M ~map[string]resources.Scalar](q M) map[string]num {
	out := make(map[string]num, len(q))
	for name, v := range q {
		if v != 0 {
			out[name] = num(v.Float64())
		}
	}
	return out
}

// toResources converts resources from the master's state, skipping (and
// so leaving out of every sum) any the resources package refuses.
func toResources(ps []mesospb.Resource) resources.Resources {
	if rs, err := resources.FromProto(ps); err == nil {
		return rs
	}
	var out resources.Resources
	for i := range ps {
		if r, err := resources.ResourceFromProto(&ps[i]); err == nil {
			out = out.AddResource(r)
		}
	}
	return out
}

// fullResources is the "_full" form of /slaves: each resource as its
// protobuf JSON in Mesos's ENDPOINT format (convertResourceFormat: the
// reservations stack and, for a single reservation, role and reservation).
func fullResources(rs resources.Resources) []json.RawMessage {
	ps, err := rs.ToProtoFormat(resources.Endpoint)
	if err != nil {
		ps = rs.ToProto()
	}
	return protoJSONs(ps)
}

// taskJSON is json(JSON::ObjectWriter*, const Task&).
type taskJSON struct {
	ID          string           `json:"id"`
	Name        string           `json:"name"`
	FrameworkID string           `json:"framework_id"`
	ExecutorID  string           `json:"executor_id"`
	SlaveID     string           `json:"slave_id"`
	State       string           `json:"state"`
	Resources   resourcesJSON    `json:"resources"`
	Limits      map[string]num   `json:"limits,omitempty"`
	Role        string           `json:"role"`
	Statuses    []taskStatusJSON `json:"statuses"`
	User        *string          `json:"user,omitempty"`
	Labels      json.RawMessage  `json:"labels,omitempty"`
	Discovery   json.RawMessage  `json:"discovery,omitempty"`
	Container   json.RawMessage  `json:"container,omitempty"`
	HealthCheck json.RawMessage  `json:"health_check,omitempty"`
}

// modelTask writes t; role is its role when its resources do not say
// (Mesos takes the allocation role of its first resource, which a master
// always sets).
func modelTask(t *mesospb.Task, role string) taskJSON {
	rs := toResources(t.Resources)
	for _, r := range rs {
		if r.AllocationRole != "" {
			role = r.AllocationRole
			break
		}
	}
	j := taskJSON{
		ID:          t.TaskID.Value,
		Name:        t.Name,
		FrameworkID: t.FrameworkID.Value,
		ExecutorID:  t.GetExecutorID().GetValue(),
		SlaveID:     t.AgentID.Value,
		State:       t.GetState().String(),
		Resources:   modelResources(rs),
		Role:        role,
		Statuses:    make([]taskStatusJSON, len(t.Statuses)),
		User:        t.User,
		Labels:      labelsJSON(t.Labels),
		Discovery:   protoJSON(t.Discovery),
		Container:   protoJSON(t.Container),
		HealthCheck: protoJSON(t.HealthCheck),
	}
	if len(t.Limits) > 0 {
		j.Limits = make(map[string]num, len(t.Limits))
		for name, v := range t.Limits {
			j.Limits[name] = num(v.Value)
		}
	}
	for i := range t.Statuses {
		j.Statuses[i] = modelTaskStatus(&t.Statuses[i])
	}
	return j
}

// taskStatusJSON is json(JSON::ObjectWriter*, const TaskStatus&).
type taskStatusJSON struct {
	State           string               `json:"state"`
	Timestamp       num                  `json:"timestamp"`
	Labels          json.RawMessage      `json:"labels,omitempty"`
	ContainerStatus *containerStatusJSON `json:"container_status,omitempty"`
	Healthy         *bool                `json:"healthy,omitempty"`
}

func modelTaskStatus(s *mesospb.TaskStatus) taskStatusJSON {
	j := taskStatusJSON{
		State:     s.GetState().String(),
		Timestamp: num(s.GetTimestamp()),
		Labels:    labelsJSON(s.Labels),
		Healthy:   s.Healthy,
	}
	if cs := s.ContainerStatus; cs != nil {
		j.ContainerStatus = &containerStatusJSON{
			ContainerID: protoJSON(cs.ContainerID),
			CgroupInfo:  protoJSON(cs.CgroupInfo),
		}
		for i := range cs.NetworkInfos {
			j.ContainerStatus.NetworkInfos = append(j.ContainerStatus.NetworkInfos, modelNetworkInfo(&cs.NetworkInfos[i]))
		}
	}
	return j
}

// containerStatusJSON is json(JSON::ObjectWriter*, const ContainerStatus&):
// Mesos leaves out the executor's pid.
type containerStatusJSON struct {
	ContainerID  json.RawMessage   `json:"container_id,omitempty"`
	NetworkInfos []networkInfoJSON `json:"network_infos,omitempty"`
	CgroupInfo   json.RawMessage   `json:"cgroup_info,omitempty"`
}

// networkInfoJSON is json(JSON::ObjectWriter*, const NetworkInfo&).
type networkInfoJSON struct {
	Groups       []string          `json:"groups,omitempty"`
	Labels       json.RawMessage   `json:"labels,omitempty"`
	IPAddresses  []json.RawMessage `json:"ip_addresses,omitempty"`
	Name         *string           `json:"name,omitempty"`
	PortMappings []json.RawMessage `json:"port_mappings,omitempty"`
}

func modelNetworkInfo(n *mesospb.NetworkInfo) networkInfoJSON {
	j := networkInfoJSON{Groups: n.Groups, Labels: labelsJSON(n.Labels), Name: n.Name}
	if len(n.IPAddresses) > 0 {
		j.IPAddresses = protoJSONs(n.IPAddresses)
	}
	if len(n.PortMappings) > 0 {
		j.PortMappings = protoJSONs(n.PortMappings)
	}
	return j
}

// executorJSON is json(JSON::ObjectWriter*, const ExecutorInfo&) plus the
// "slave_id" FullFrameworkWriter adds.
type executorJSON struct {
	ExecutorID  string          `json:"executor_id"`
	Name        string          `json:"name"`
	FrameworkID string          `json:"framework_id"`
	Command     commandJSON     `json:"command"`
	Resources   resourcesJSON   `json:"resources"`
	Role        *string         `json:"role,omitempty"`
	Labels      json.RawMessage `json:"labels,omitempty"`
	Type        *string         `json:"type,omitempty"`
	SlaveID     string          `json:"slave_id"`
}

func modelExecutor(e *mesospb.ExecutorInfo, agentID, frameworkID string) executorJSON {
	rs := toResources(e.Resources)
	j := executorJSON{
		ExecutorID:  e.ExecutorID.Value,
		Name:        e.GetName(),
		FrameworkID: frameworkID,
		Command:     modelCommand(e.Command),
		Resources:   modelResources(rs),
		Labels:      labelsJSON(e.Labels),
		SlaveID:     agentID,
	}
	if len(e.Resources) > 0 {
		role := ""
		if len(rs) > 0 {
			role = rs[0].AllocationRole
		}
		j.Role = &role
	}
	if e.Type != nil {
		j.Type = ptr(e.Type.String())
	}
	return j
}

// commandJSON is json(JSON::ObjectWriter*, const CommandInfo&).
type commandJSON struct {
	Shell       *bool           `json:"shell,omitempty"`
	Value       *string         `json:"value,omitempty"`
	Argv        []string        `json:"argv"`
	Environment json.RawMessage `json:"environment,omitempty"`
	URIs        []uriJSON       `json:"uris"`
}

type uriJSON struct {
	Value      string `json:"value"`
	Executable bool   `json:"executable"`
}

func modelCommand(c *mesospb.CommandInfo) commandJSON {
	if c == nil {
		c = &mesospb.CommandInfo{}
	}
	j := commandJSON{
		Shell:       c.Shell,
		Value:       c.Value,
		Argv:        append([]string{}, c.Arguments...),
		Environment: protoJSON(c.Environment),
		URIs:        make([]uriJSON, len(c.URIs)),
	}
	for i, u := range c.URIs {
		j.URIs[i] = uriJSON{Value: u.Value, Executable: u.GetExecutable()}
	}
	return j
}

// offerJSON is json(JSON::ObjectWriter*, const Offer&).
type offerJSON struct {
	ID             string          `json:"id"`
	FrameworkID    string          `json:"framework_id"`
	AllocationInfo json.RawMessage `json:"allocation_info"`
	SlaveID        string          `json:"slave_id"`
	Resources      resourcesJSON   `json:"resources"`
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
		AllocationInfo: protoJSON(info),
		SlaveID:        o.AgentID.Value,
		Resources:      modelResources(toResources(o.Resources)),
	}
}

// frameworkSummaryJSON is json(JSON::ObjectWriter*, const
// Summary<Framework>&), what /state-summary writes of a framework. "pid"
// is for frameworks of the old libprocess API, which Apron does not
// speak, so it is always left out, as Mesos leaves it out for HTTP
// frameworks.
type frameworkSummaryJSON struct {
	ID               string        `json:"id"`
	Name             string        `json:"name"`
	UsedResources    resourcesJSON `json:"used_resources"`
	OfferedResources resourcesJSON `json:"offered_resources"`
	Capabilities     []string      `json:"capabilities"`
	Hostname         string        `json:"hostname"`
	WebuiURL         string        `json:"webui_url"`
	Active           bool          `json:"active"`
	Connected        bool          `json:"connected"`
	Recovered        bool          `json:"recovered"`
}

// frameworkJSON is FullFrameworkWriter: the summary and the framework's
// tasks, offers and executors, for /state and /frameworks.
type frameworkJSON struct {
	frameworkSummaryJSON
	User             string          `json:"user"`
	FailoverTimeout  num             `json:"failover_timeout"`
	Checkpoint       bool            `json:"checkpoint"`
	RegisteredTime   num             `json:"registered_time"`
	UnregisteredTime num             `json:"unregistered_time"`
	Principal        *string         `json:"principal,omitempty"`
	Resources        resourcesJSON   `json:"resources"`
	ReregisteredTime *num            `json:"reregistered_time,omitempty"`
	Roles            []string        `json:"roles,omitempty"`
	Role             *string         `json:"role,omitempty"`
	Tasks            []taskJSON      `json:"tasks"`
	UnreachableTasks []taskJSON      `json:"unreachable_tasks"`
	CompletedTasks   []taskJSON      `json:"completed_tasks"`
	Offers           []offerJSON     `json:"offers"`
	Executors        []executorJSON  `json:"executors"`
	Labels           json.RawMessage `json:"labels,omitempty"`
	OfferConstraints json.RawMessage `json:"offer_constraints"`
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
	ID         string          `json:"id"`
	Hostname   string          `json:"hostname"`
	Port       int32           `json:"port"`
	Attributes object          `json:"attributes"`
	Domain     json.RawMessage `json:"domain,omitempty"`
}

func modelSlaveInfo(info *mesospb.AgentInfo) slaveInfoJSON {
	// DomainInfo's model (json(..., DomainInfo)) is its protobuf JSON.
	return slaveInfoJSON{
		ID:         info.GetID().GetValue(),
		Hostname:   info.Hostname,
		Port:       info.GetPort(),
		Attributes: attributesJSON(info.Attributes),
		Domain:     protoJSON(info.Domain),
	}
}

// slaveJSON is SlaveWriter, what /state and /state-summary write of an
// agent.
type slaveJSON struct {
	slaveInfoJSON
	PID                     string                   `json:"pid"`
	RegisteredTime          num                      `json:"registered_time"`
	ReregisteredTime        *num                     `json:"reregistered_time,omitempty"`
	Resources               resourcesJSON            `json:"resources"`
	UsedResources           resourcesJSON            `json:"used_resources"`
	OfferedResources        resourcesJSON            `json:"offered_resources"`
	ReservedResources       map[string]resourcesJSON `json:"reserved_resources"`
	UnreservedResources     resourcesJSON            `json:"unreserved_resources"`
	Active                  bool                     `json:"active"`
	Deactivated             bool                     `json:"deactivated"`
	Version                 string                   `json:"version"`
	Capabilities            []string                 `json:"capabilities"`
	DrainInfo               json.RawMessage          `json:"drain_info,omitempty"`
	EstimatedDrainStartTime *num                     `json:"estimated_drain_start_time_seconds,omitempty"`
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
		Domain:   protoJSON(info.Domain),
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

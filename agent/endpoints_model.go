package agent

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// Mesos's "model" JSON: the hand-written shapes of its HTTP endpoints
// (src/common/http.cpp json(...) and model(...), src/slave/http.cpp
// ExecutorWriter and FrameworkWriter), which are not the protobuf JSON of
// the v1 API: IDs are plain strings, resources an object of totals
// ({"cpus":2,"mem":128,"ports":"[31000-31005]"}), attributes an object,
// labels an array. Where Mesos embeds a message as it is (JSON::Protobuf)
// this does too, with the codec's protobuf JSON.

// jsonObject is a JSON object that keeps its keys in the order they were
// set, as Mesos writes them, for people reading the output.
type jsonObject struct {
	keys []string
	vals []any
}

func (o *jsonObject) set(key string, v any) {
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, v)
}

func (o *jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// double is a JSON number Mesos writes from a C++ double: rapidjson keeps
// a ".0" on whole numbers ("cpus":2.0), which matters to a reader that
// decodes by the number's form. NaN and infinities, which JSON cannot
// hold, are written as null.
type double float64

func (d double) MarshalJSON() ([]byte, error) {
	f := float64(d)
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

// protoJSON embeds a message as Mesos's JSON::Protobuf does.
func protoJSON(m proto.Message) json.RawMessage {
	b, err := codec.MarshalJSON(m)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}

// modelResources is Mesos's json(Resources): the total of each scalar
// (cpus, gpus, mem and disk always there, 0 when absent), the union of
// each ranges (a string "[31000-31005, 32000-32000]") and of each set
// ("{a, b}"); revocable resources under <name>_revocable.
func modelResources(rs []mesospb.Resource) map[string]any {
	scalars := map[string]float64{"cpus": 0, "gpus": 0, "mem": 0, "disk": 0}
	ranges := map[string]resources.Ranges{}
	sets := map[string][]string{}
	for i := range rs {
		r := &rs[i]
		name := r.Name
		if r.Revocable != nil {
			name += "_revocable"
		}
		switch r.GetType() {
		case mesospb.Value_SCALAR:
			if r.Scalar != nil {
				scalars[name] += r.Scalar.Value
			}
		case mesospb.Value_RANGES:
			if r.Ranges != nil {
				add := make([]resources.Range, 0, len(r.Ranges.Range))
				for _, x := range r.Ranges.Range {
					add = append(add, resources.Range{Begin: x.Begin, End: x.End})
				}
				ranges[name] = ranges[name].Add(resources.RangesOf(add...))
			}
		case mesospb.Value_SET:
			if r.Set != nil {
				for _, item := range r.Set.Item {
					if !contains(sets[name], item) {
						sets[name] = append(sets[name], item)
					}
				}
			}
		}
	}
	out := make(map[string]any, len(scalars)+len(ranges)+len(sets))
	for k, v := range scalars {
		// As Mesos's fixed-point arithmetic: three decimals.
		out[k] = double(math.Round(v*1000) / 1000)
	}
	for k, v := range ranges {
		out[k] = rangesString(v)
	}
	for k, v := range sets {
		out[k] = "{" + strings.Join(v, ", ") + "}"
	}
	return out
}

func contains(items []string, s string) bool {
	for _, x := range items {
		if x == s {
			return true
		}
	}
	return false
}

// rangesString formats ranges as Mesos's operator<< for Value::Ranges.
func rangesString(rs resources.Ranges) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(r.Begin, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(r.End, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// modelAttributes is Mesos's json(Attributes): name to value, a number
// for a scalar, text for the others.
func modelAttributes(attrs []mesospb.Attribute) map[string]any {
	out := make(map[string]any, len(attrs))
	for _, a := range attrs {
		switch a.Type {
		case mesospb.Value_SCALAR:
			if a.Scalar != nil {
				out[a.Name] = double(a.Scalar.Value)
			}
		case mesospb.Value_RANGES:
			var rs []resources.Range
			if a.Ranges != nil {
				for _, x := range a.Ranges.Range {
					rs = append(rs, resources.Range{Begin: x.Begin, End: x.End})
				}
			}
			// Mesos prints attribute ranges as given, not merged.
			out[a.Name] = rangesString(resources.Ranges(rs))
		case mesospb.Value_SET:
			if a.Set != nil {
				out[a.Name] = "{" + strings.Join(a.Set.Item, ", ") + "}"
			}
		case mesospb.Value_TEXT:
			if a.Text != nil {
				out[a.Name] = a.Text.Value
			}
		}
	}
	return out
}

// modelLabels is Mesos's json(Labels): an array of {key, value}.
func modelLabels(ls *mesospb.Labels) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(ls.Labels))
	for i := range ls.Labels {
		out = append(out, protoJSON(&ls.Labels[i]))
	}
	return out
}

// allocationRole is the role a task's or executor's resources are
// allocated to (Mesos's resources().begin()->allocation_info().role());
// resources without allocation info are taken to be the framework's.
func allocationRole(rs []mesospb.Resource, fwRole string) string {
	if len(rs) > 0 && rs[0].AllocationInfo != nil && rs[0].AllocationInfo.Role != nil {
		return *rs[0].AllocationInfo.Role
	}
	return fwRole
}

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

// modelTask is Mesos's json(Task).
func modelTask(t *mesospb.Task, fwRole string) *jsonObject {
	o := &jsonObject{}
	o.set("id", t.TaskID.Value)
	o.set("name", t.Name)
	o.set("framework_id", t.FrameworkID.Value)
	o.set("executor_id", t.GetExecutorID().GetValue())
	o.set("slave_id", t.AgentID.Value)
	o.set("state", t.GetState().String())
	o.set("resources", modelResources(t.Resources))
	if len(t.Limits) > 0 {
		limits := make(map[string]double, len(t.Limits))
		for k, v := range t.Limits {
			limits[k] = double(v.Value)
		}
		o.set("limits", limits)
	}
	o.set("role", allocationRole(t.Resources, fwRole))
	statuses := make([]*jsonObject, 0, len(t.Statuses))
	for i := range t.Statuses {
		statuses = append(statuses, modelTaskStatus(&t.Statuses[i]))
	}
	o.set("statuses", statuses)
	if t.User != nil {
		o.set("user", *t.User)
	}
	if t.Labels != nil {
		o.set("labels", modelLabels(t.Labels))
	}
	if t.Discovery != nil {
		o.set("discovery", protoJSON(t.Discovery))
	}
	if t.Container != nil {
		o.set("container", protoJSON(t.Container))
	}
	if t.HealthCheck != nil {
		o.set("health_check", protoJSON(t.HealthCheck))
	}
	return o
}

// modelTaskStatus is Mesos's json(TaskStatus).
func modelTaskStatus(s *mesospb.TaskStatus) *jsonObject {
	o := &jsonObject{}
	o.set("state", s.GetState().String())
	o.set("timestamp", double(s.GetTimestamp()))
	if s.Labels != nil {
		o.set("labels", modelLabels(s.Labels))
	}
	if c := s.ContainerStatus; c != nil {
		o.set("container_status", modelContainerStatus(c))
	}
	if s.Healthy != nil {
		o.set("healthy", *s.Healthy)
	}
	return o
}

// modelContainerStatus is Mesos's json(ContainerStatus).
func modelContainerStatus(c *mesospb.ContainerStatus) *jsonObject {
	o := &jsonObject{}
	if c.ContainerID != nil {
		o.set("container_id", protoJSON(c.ContainerID))
	}
	if len(c.NetworkInfos) > 0 {
		nets := make([]*jsonObject, 0, len(c.NetworkInfos))
		for i := range c.NetworkInfos {
			nets = append(nets, modelNetworkInfo(&c.NetworkInfos[i]))
		}
		o.set("network_infos", nets)
	}
	if c.CgroupInfo != nil {
		o.set("cgroup_info", protoJSON(c.CgroupInfo))
	}
	return o
}

// modelNetworkInfo is Mesos's json(NetworkInfo).
func modelNetworkInfo(n *mesospb.NetworkInfo) *jsonObject {
	o := &jsonObject{}
	if len(n.Groups) > 0 {
		o.set("groups", n.Groups)
	}
	if n.Labels != nil {
		o.set("labels", modelLabels(n.Labels))
	}
	if len(n.IPAddresses) > 0 {
		ips := make([]json.RawMessage, 0, len(n.IPAddresses))
		for i := range n.IPAddresses {
			ips = append(ips, protoJSON(&n.IPAddresses[i]))
		}
		o.set("ip_addresses", ips)
	}
	if n.Name != nil {
		o.set("name", *n.Name)
	}
	if len(n.PortMappings) > 0 {
		pms := make([]json.RawMessage, 0, len(n.PortMappings))
		for i := range n.PortMappings {
			pms = append(pms, protoJSON(&n.PortMappings[i]))
		}
		o.set("port_mappings", pms)
	}
	return o
}

// modelTaskInfo is Mesos's json(TaskInfo), for queued tasks.
func modelTaskInfo(t *mesospb.TaskInfo, fwRole string) *jsonObject {
	o := &jsonObject{}
	o.set("id", t.TaskID.Value)
	o.set("name", t.Name)
	o.set("slave_id", t.AgentID.Value)
	o.set("resources", modelResources(t.Resources))
	o.set("role", allocationRole(t.Resources, fwRole))
	if t.Command != nil {
		o.set("command", modelCommandInfo(t.Command))
	}
	if t.Executor != nil {
		o.set("executor_id", t.Executor.ExecutorID.Value)
	}
	if t.Discovery != nil {
		o.set("discovery", protoJSON(t.Discovery))
	}
	return o
}

// modelCommandInfo is Mesos's json(CommandInfo).
func modelCommandInfo(c *mesospb.CommandInfo) *jsonObject {
	o := &jsonObject{}
	if c.Shell != nil {
		o.set("shell", *c.Shell)
	}
	if c.Value != nil {
		o.set("value", *c.Value)
	}
	argv := c.Arguments
	if argv == nil {
		argv = []string{}
	}
	o.set("argv", argv)
	if c.Environment != nil {
		o.set("environment", protoJSON(c.Environment))
	}
	uris := make([]map[string]any, 0, len(c.URIs))
	for _, u := range c.URIs {
		uris = append(uris, map[string]any{"value": u.Value, "executable": u.GetExecutable()})
	}
	o.set("uris", uris)
	return o
}

// modelFlags is the flags as Mesos's /flags and /state write them: an
// object of name to value.
func modelFlags(flags []mesospb.Flag) map[string]string {
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		out[f.Name] = f.GetValue()
	}
	return out
}

// byRole splits resources by the role of their reservation (reserved
// ones only), as Mesos's Resources::reservations().
func byRole(rs resources.Resources) map[string]resources.Resources {
	out := map[string]resources.Resources{}
	for _, r := range rs.Reserved() {
		out[r.Role()] = out[r.Role()].AddResource(r)
	}
	return out
}

// sortedRoles are the keys of m, sorted.
func sortedRoles(m map[string]resources.Resources) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package mesosjson

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// Resources is json(JSON::ObjectWriter*, const Resources&): the resources
// summed by name, cpus, gpus, mem and disk always present (0.0 when
// absent), ranges as "[31000-32000, 33000-34000]", sets as "{a, b}", and
// revocable resources under "<name>_revocable". Reservations, allocation
// and disk information are summed away.
type Resources struct {
	scalars map[string]float64
	ranges  map[string]resources.Ranges
	sets    map[string]resources.Set
}

// standardScalars are the scalars Mesos writes even when there are none,
// in the order it seeds them.
var standardScalars = []string{resources.NameCPUs, resources.NameGPUs, resources.NameMem, resources.NameDisk}

// ResourcesOf sums rs as Mesos's model writes them.
func ResourcesOf(rs resources.Resources) Resources {
	m := Resources{scalars: map[string]float64{}, ranges: map[string]resources.Ranges{}, sets: map[string]resources.Set{}}
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

// ResourcesOfProto is ResourcesOf the resources of a message (see
// FromProto).
func ResourcesOfProto(ps []mesospb.Resource) Resources { return ResourcesOf(FromProto(ps)) }

func unionSet(a, b resources.Set) resources.Set {
	out := slices.Clone(a)
	for _, item := range b {
		if !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}

// MarshalJSON writes the standard scalars first, in Mesos's seeding order,
// then the other scalars, ranges and sets, each by name. (Mesos's order is
// its hashmap's, which no reader can rely on.)
func (m Resources) MarshalJSON() ([]byte, error) {
	var o Object
	for _, name := range standardScalars {
		o.Set(name, Double(m.scalars[name]))
	}
	for _, name := range slices.Sorted(maps.Keys(m.scalars)) {
		if !slices.Contains(standardScalars, name) {
			o.Set(name, Double(m.scalars[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.ranges)) {
		o.Set(name, rangesText(m.ranges[name]))
	}
	for _, name := range slices.Sorted(maps.Keys(m.sets)) {
		o.Set(name, setText(m.sets[name]))
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

// FromProto converts the resources of a message for the model, skipping
// (and so leaving out of every sum) any the resources package refuses.
func FromProto(ps []mesospb.Resource) resources.Resources {
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

// FullResources is the "_full" form of the master's /slaves and the
// agent's /state: each resource as its protobuf JSON in Mesos's ENDPOINT
// format (convertResourceFormat: the reservations stack and, for a single
// reservation, role and reservation).
func FullResources(rs resources.Resources) []json.RawMessage {
	ps, err := rs.ToProtoFormat(resources.Endpoint)
	if err != nil {
		ps = rs.ToProto()
	}
	return Protos(ps)
}

// AllocationRole is the role Mesos writes for a task's or executor's
// resources, the allocation role of the first
// (resources().begin()->allocation_info().role(): Mesos does not let them
// mix roles), or otherwise when it has none.
func AllocationRole(ps []mesospb.Resource, otherwise string) string {
	if len(ps) > 0 && ps[0].AllocationInfo != nil && ps[0].AllocationInfo.Role != nil {
		return *ps[0].AllocationInfo.Role
	}
	return otherwise
}

// Attributes is json(JSON::ObjectWriter*, const Attributes&): each
// attribute under its name, in their order, a scalar as a number, ranges
// (as given, not merged) and sets as text.
func Attributes(attrs []mesospb.Attribute) Object {
	o := Object{}
	for _, a := range attrs {
		switch a.Type {
		case mesospb.Value_SCALAR:
			o.Set(a.Name, Double(a.GetScalar().GetValue()))
		case mesospb.Value_RANGES:
			var rs resources.Ranges
			for _, r := range a.GetRanges().GetRange() {
				rs = append(rs, resources.Range{Begin: r.Begin, End: r.End})
			}
			o.Set(a.Name, rangesText(rs))
		case mesospb.Value_SET:
			o.Set(a.Name, setText(a.GetSet().GetItem()))
		case mesospb.Value_TEXT:
			o.Set(a.Name, a.GetText().GetValue())
		}
	}
	return o
}

// Flags is the "flags" object of /flags and /state: name to value, for
// the flags that have one (as Mesos's flag.stringify).
func Flags(flags []mesospb.Flag) map[string]string {
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		if f.Value != nil {
			out[f.Name] = *f.Value
		}
	}
	return out
}

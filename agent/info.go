package agent

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

// defaultPorts are the ports an agent offers when its resources name none,
// as Mesos.
var defaultPorts = resources.NewRanges(resources.NamePorts, resources.Range{Begin: 31000, End: 32000})

// agentResources parses the configured resources and adds, as Mesos does,
// the detected amount of each of cpus, mem, disk and ports they leave out.
func agentResources(text, workDir string) (resources.Resources, error) {
	rs, err := resources.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: Resources: %w", ErrInvalidConfig, err)
	}
	has := func(name string) bool { return len(rs.Named(name)) > 0 }
	if !has(resources.NameCPUs) {
		rs = rs.AddResource(resources.NewScalar(resources.NameCPUs, float64(onlineCPUs())))
	}
	if !has(resources.NameMem) {
		total, err := totalMemory()
		if err != nil {
			return nil, fmt.Errorf("%w: Resources: no mem given and %w", ErrInvalidConfig, err)
		}
		rs = rs.AddResource(resources.NewScalar(resources.NameMem, float64(memAvailable(total)/mib)))
	}
	if !has(resources.NameDisk) {
		total, err := fsSize(workDir)
		if err != nil {
			return nil, fmt.Errorf("%w: Resources: no disk given and %w", ErrInvalidConfig, err)
		}
		rs = rs.AddResource(resources.NewScalar(resources.NameDisk, float64(diskAvailable(total)/mib)))
	}
	if !has(resources.NamePorts) {
		rs = rs.AddResource(defaultPorts)
	}
	if err := rs.Validate(); err != nil {
		return nil, fmt.Errorf("%w: Resources: %w", ErrInvalidConfig, err)
	}
	return rs, nil
}

// memAvailable leaves 1 GiB to the system, or half of a machine under 2 GiB.
func memAvailable(total uint64) uint64 {
	if total >= 2*gib {
		return total - gib
	}
	return total / 2
}

// diskAvailable leaves 5 GiB to the system, or half of a disk under 10 GiB.
func diskAvailable(total uint64) uint64 {
	if total >= 10*gib {
		return total - 5*gib
	}
	return total / 2
}

// ParseAttributes reads attributes in the text form of Mesos's --attributes
// flag: "name:value" pairs separated by ';' (or newlines). A value that is
// a number is a SCALAR, one in brackets ("[1-4,8-9]") RANGES, anything
// else TEXT, which may not contain any of "[]{},". Sets are not attributes,
// as in Mesos. Errors wrap ErrInvalidConfig.
func ParseAttributes(text string) ([]mesospb.Attribute, error) {
	var out []mesospb.Attribute
	for pair := range strings.FieldsFuncSeq(text, func(r rune) bool { return r == ';' || r == '\n' }) {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		name, value, ok := strings.Cut(pair, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok || strings.Contains(value, ":"):
			return nil, fmt.Errorf("%w: attribute %q is not one name:value pair", ErrInvalidConfig, pair)
		case name == "":
			return nil, fmt.Errorf("%w: attribute %q has no name", ErrInvalidConfig, pair)
		case value == "":
			return nil, fmt.Errorf("%w: attribute %q has no value", ErrInvalidConfig, pair)
		}
		attr := mesospb.Attribute{Name: name}
		if f, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			attr.Type = mesospb.Value_SCALAR
			attr.Scalar = &mesospb.Value_Scalar{Value: f}
		} else if strings.HasPrefix(value, "[") {
			rs, err := resources.Parse("attribute:" + value)
			if err != nil || len(rs) > 1 || (len(rs) == 1 && rs[0].Type != resources.TypeRanges) {
				return nil, fmt.Errorf("%w: attribute %q: %q is not ranges such as [1-4,8-9]", ErrInvalidConfig, name, value)
			}
			attr.Type = mesospb.Value_RANGES
			attr.Ranges = &mesospb.Value_Ranges{}
			if len(rs) == 1 {
				for _, r := range rs[0].Ranges {
					attr.Ranges.Range = append(attr.Ranges.Range, mesospb.Value_Range{Begin: r.Begin, End: r.End})
				}
			}
		} else if strings.ContainsAny(value, "[]{},") {
			return nil, fmt.Errorf("%w: attribute %q: text %q may not contain any of []{}, (sets are not attributes)", ErrInvalidConfig, name, value)
		} else {
			attr.Type = mesospb.Value_TEXT
			attr.Text = &mesospb.Value_Text{Value: value}
		}
		out = append(out, attr)
	}
	return out, nil
}

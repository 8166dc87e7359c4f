// Package environ builds a process's environment from a Mesos
// Environment, for the agent (executor processes) and the executors (task
// commands) alike: VALUE variables set on top of a base, each replacing
// the first variable of its name in place, since getenv finds the first
// and a later duplicate would be ignored.
package environ

import (
	"fmt"
	"strings"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Merge returns base with extra (KEY=VALUE) and then the variables of env
// set on top. Secrets, unknown variable types and invalid names are
// errors: Apron has no secret resolver.
func Merge(base, extra []string, env *mesospb.Environment) ([]string, error) {
	out := append([]string(nil), base...)
	index := make(map[string]int, len(out))
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := index[k]; !ok {
			index[k] = i
		}
	}
	set := func(k, v string) {
		if i, ok := index[k]; ok {
			out[i] = k + "=" + v
			return
		}
		index[k] = len(out)
		out = append(out, k+"="+v)
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, v := range env.GetVariables() {
		switch v.GetType() {
		case mesospb.Environment_Variable_VALUE:
		case mesospb.Environment_Variable_SECRET:
			return nil, fmt.Errorf("environment variable %q is a secret, which Apron does not support", v.Name)
		default:
			return nil, fmt.Errorf("environment variable %q has unsupported type %v", v.Name, v.GetType())
		}
		if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") {
			return nil, fmt.Errorf("environment variable name %q is not valid", v.Name)
		}
		set(v.Name, v.GetValue())
	}
	return out, nil
}

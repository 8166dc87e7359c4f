package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// EntityType says how an Entity matches: some named values, any value,
// or none at all (Mesos's ACL.Entity.Type).
type EntityType int

const (
	// Some matches the values listed.
	Some EntityType = iota
	// Any matches every value.
	Any
	// None matches nothing but the absence of a value.
	None
)

func (t EntityType) String() string {
	switch t {
	case Some:
		return "SOME"
	case Any:
		return "ANY"
	case None:
		return "NONE"
	}
	return fmt.Sprintf("EntityType(%d)", int(t))
}

// UnmarshalJSON takes Mesos's names, "SOME", "ANY", "NONE" (or their
// numbers, as protobuf's JSON does).
func (t *EntityType) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int
		if json.Unmarshal(b, &n) != nil || n < 0 || n > 2 {
			return fmt.Errorf("entity type %s: want \"SOME\", \"ANY\" or \"NONE\"", b)
		}
		*t = EntityType(n)
		return nil
	}
	switch s {
	case "SOME":
		*t = Some
	case "ANY":
		*t = Any
	case "NONE":
		*t = None
	default:
		return fmt.Errorf("entity type %q: want \"SOME\", \"ANY\" or \"NONE\"", s)
	}
	return nil
}

// MarshalJSON writes Mesos's name.
func (t EntityType) MarshalJSON() ([]byte, error) { return json.Marshal(t.String()) }

// Entity is one side of an ACL: who (principals) or what (roles, users,
// …). Values count only for Some.
type Entity struct {
	Type   EntityType `json:"type,omitempty"`
	Values []string   `json:"values,omitempty"`
}

// Rule is one ACL: the principals it is about and the objects it allows
// them (or, with None, forbids them).
type Rule struct {
	Principals Entity
	Objects    Entity
}

// ACLs are Mesos's ACLs (include/mesos/authorizer/acls.proto): for each
// kind of ACL, its rules in order, and what to do when none matches.
type ACLs struct {
	// Permissive decides a request no rule matches; Mesos's default is
	// true.
	Permissive bool
	// Rules are the rules of each kind, by its key in Mesos's JSON
	// ("register_frameworks", "run_tasks", …), in file order.
	Rules map[string][]Rule
}

// aclKind is one kind of ACL in Mesos's JSON: its key and the name of its
// object field.
type aclKind struct {
	key, object string
	// anyOrNone: Mesos refuses SOME objects for it (they name nothing
	// this authorizer can check).
	anyOrNone bool
}

// aclKinds are every kind of ACL Mesos's acls.proto has, so that any
// valid Mesos file parses.
var aclKinds = []aclKind{
	{key: "register_frameworks", object: "roles"},
	{key: "run_tasks", object: "users"},
	{key: "teardown_frameworks", object: "framework_principals"},
	{key: "reserve_resources", object: "roles"},
	{key: "unreserve_resources", object: "reserver_principals"},
	{key: "create_volumes", object: "roles"},
	{key: "destroy_volumes", object: "creator_principals"},
	{key: "resize_volumes", object: "roles"},
	{key: "get_quotas", object: "roles"},
	{key: "update_quotas", object: "roles"},
	{key: "view_roles", object: "roles"},
	{key: "update_weights", object: "roles"},
	{key: "get_endpoints", object: "paths"},
	{key: "view_frameworks", object: "users"},
	{key: "view_tasks", object: "users"},
	{key: "view_executors", object: "users"},
	{key: "access_sandboxes", object: "users"},
	{key: "access_mesos_logs", object: "logs", anyOrNone: true},
	{key: "view_flags", object: "flags", anyOrNone: true},
	{key: "launch_nested_containers_as_user", object: "users"},
	{key: "launch_nested_containers_under_parent_with_user", object: "users"},
	{key: "kill_nested_containers", object: "users"},
	{key: "wait_nested_containers", object: "users"},
	{key: "launch_nested_container_sessions_as_user", object: "users"},
	{key: "launch_nested_container_sessions_under_parent_with_user", object: "users"},
	{key: "attach_containers_input", object: "users"},
	{key: "attach_containers_output", object: "users"},
	{key: "view_containers", object: "users"},
	{key: "set_log_level", object: "level", anyOrNone: true},
	{key: "remove_nested_containers", object: "users"},
	{key: "register_agents", object: "agents", anyOrNone: true},
	{key: "update_maintenance_schedules", object: "machines", anyOrNone: true},
	{key: "get_maintenance_schedules", object: "machines", anyOrNone: true},
	{key: "start_maintenances", object: "machines", anyOrNone: true},
	{key: "stop_maintenances", object: "machines", anyOrNone: true},
	{key: "get_maintenance_statuses", object: "machines", anyOrNone: true},
	{key: "drain_agents", object: "agents", anyOrNone: true},
	{key: "deactivate_agents", object: "agents", anyOrNone: true},
	{key: "reactivate_agents", object: "agents", anyOrNone: true},
	{key: "mark_agents_gone", object: "agents"},
	{key: "launch_standalone_containers", object: "users", anyOrNone: true},
	{key: "kill_standalone_containers", object: "users", anyOrNone: true},
	{key: "wait_standalone_containers", object: "users", anyOrNone: true},
	{key: "remove_standalone_containers", object: "users", anyOrNone: true},
	{key: "view_standalone_containers", object: "users", anyOrNone: true},
	{key: "modify_resource_provider_configs", object: "resource_providers", anyOrNone: true},
	{key: "mark_resource_providers_gone", object: "resource_providers", anyOrNone: true},
	{key: "view_resource_providers", object: "resource_providers", anyOrNone: true},
	{key: "prune_images", object: "images", anyOrNone: true},
	{key: "create_block_disks", object: "roles"},
	{key: "destroy_block_disks", object: "roles"},
	{key: "create_mount_disks", object: "roles"},
	{key: "destroy_mount_disks", object: "roles"},
	{key: "destroy_raw_disks", object: "roles"},
}

// authorizableEndpoints are the paths a get_endpoints ACL may name, as
// Mesos's AUTHORIZABLE_ENDPOINTS.
var authorizableEndpoints = []string{
	"/containers", "/containerizer/debug", "/files/debug", "/logging/toggle",
	"/metrics/snapshot", "/monitor/statistics",
}

// ParseACLs parses ACLs in Mesos's JSON:
//
//	{"permissive": false,
//	 "register_frameworks": [{"principals": {"values": ["ops"]}, "roles": {"values": ["prod"]}}],
//	 "run_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}
//
// It checks what Mesos's local authorizer checks (kinds whose objects
// must be ANY or NONE, authorizable endpoint paths) and, unlike Mesos,
// refuses keys it does not know: a misspelled kind would otherwise be
// silently ignored and leave a door open.
func ParseACLs(data []byte) (*ACLs, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("acls: invalid JSON: %w", err)
	}
	acls := &ACLs{Permissive: true, Rules: map[string][]Rule{}}
	for key, value := range raw {
		if key == "permissive" {
			if err := json.Unmarshal(value, &acls.Permissive); err != nil {
				return nil, fmt.Errorf("acls: permissive: %w", err)
			}
			continue
		}
		i := slices.IndexFunc(aclKinds, func(k aclKind) bool { return k.key == key })
		if i < 0 {
			return nil, fmt.Errorf("acls: unknown ACL %q", key)
		}
		kind := aclKinds[i]
		var entries []map[string]json.RawMessage
		if err := json.Unmarshal(value, &entries); err != nil {
			return nil, fmt.Errorf("acls: %s: want a list of ACLs: %w", key, err)
		}
		for n, entry := range entries {
			rule, err := parseRule(kind, entry)
			if err != nil {
				return nil, fmt.Errorf("acls: %s[%d]: %w", key, n, err)
			}
			acls.Rules[key] = append(acls.Rules[key], rule)
		}
	}
	return acls, nil
}

func parseRule(kind aclKind, entry map[string]json.RawMessage) (Rule, error) {
	var r Rule
	for field, value := range entry {
		var e *Entity
		switch field {
		case "principals":
			e = &r.Principals
		case kind.object:
			e = &r.Objects
		default:
			return r, fmt.Errorf("unknown field %q (want \"principals\" and %q)", field, kind.object)
		}
		d := json.NewDecoder(bytes.NewReader(value))
		d.DisallowUnknownFields()
		if err := d.Decode(e); err != nil {
			return r, fmt.Errorf("%s: %w", field, err)
		}
	}
	for _, field := range []string{"principals", kind.object} {
		if _, ok := entry[field]; !ok {
			return r, fmt.Errorf("%q is required", field)
		}
	}
	if kind.anyOrNone && r.Objects.Type == Some {
		return r, fmt.Errorf("%s type must be either NONE or ANY", kind.object)
	}
	if kind.key == "get_endpoints" && r.Objects.Type == Some {
		for _, p := range r.Objects.Values {
			if !slices.Contains(authorizableEndpoints, p) {
				return r, fmt.Errorf("path %q is not an authorizable path (%s)", p, strings.Join(authorizableEndpoints, ", "))
			}
		}
	}
	return r, nil
}

// ReadACLs reads ACLs from a file named as Mesos's -acls flag names it: a
// path or "file://" and a path. (Mesos also takes the JSON itself as the
// flag's value; so does ReadACLs, for a value starting with '{'.)
func ReadACLs(flag string) (*ACLs, error) {
	if strings.HasPrefix(strings.TrimSpace(flag), "{") {
		return ParseACLs([]byte(flag))
	}
	data, err := readConfig(flag)
	if err != nil {
		return nil, err
	}
	acls, err := ParseACLs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return acls, nil
}

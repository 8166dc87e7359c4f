package service

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// State is everything the core must remember across a scheduler restart.
// It is one JSON document saved as a whole (Store); a restarted scheduler
// builds a new Core from it and carries on.
type State struct {
	FrameworkID string `json:"framework_id,omitempty"`
	// Pods by name ("<type>-<index>").
	Pods map[string]*PodState `json:"pods"`
	// Paused plans by name.
	Paused map[string]bool `json:"paused,omitempty"`
	// Uninstalling is set by Uninstall and never cleared.
	Uninstalling bool `json:"uninstalling,omitempty"`
	// Spec is the spec in force when the state was saved: a scheduler
	// restarted (or a standby taking over) with another spec moves to it
	// only if an update from this one may (Core.UpdateSpec's rules), so
	// the rules hold across restarts. Nil in a state saved before any
	// spec was recorded: then any valid spec is taken.
	Spec *Spec `json:"spec,omitempty"`
}

// PodState is one pod: where it lives, what it reserved, what runs.
type PodState struct {
	Type  string `json:"type"`
	Index int    `json:"index"`

	// AgentID is empty until the pod is placed. Once placed, the pod is
	// only launched on this agent, on resources labelled ResourceID.
	AgentID  string `json:"agent_id,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// ResourceID is the resource_id label of the pod's reservations; a
	// new one is drawn for every new placement, so reservations of an
	// earlier placement are recognized as stale.
	ResourceID string `json:"resource_id"`
	// Reserved is set once the reservation is known to exist (seen in an
	// offer, or a task ran on it); until then a RESERVE may have been lost.
	Reserved bool `json:"reserved,omitempty"`
	// Ports are the pod's ports, chosen at placement.
	Ports map[string]uint64 `json:"ports,omitempty"`
	// Volumes' persistence IDs, in the order of the pod type's volumes.
	PersistenceIDs []string `json:"persistence_ids,omitempty"`
	// Attributes are the agent's spread attributes at placement
	// ("zone=a;rack=r1"), for spreading the pod's peers.
	Attributes string `json:"attributes,omitempty"`

	// TaskID is the pod's current (or last) task; empty before the first
	// launch.
	TaskID string `json:"task_id,omitempty"`
	// TaskState is the last known state of TaskID ("TASK_STAGING" once
	// the launch is sent).
	TaskState string `json:"task_state,omitempty"`
	// Ready: the task passed its readiness check (or is RUNNING, without
	// one).
	Ready bool `json:"ready,omitempty"`
	// Config is the configuration hash TaskID was launched with; Target
	// the one its next launch uses.
	Config string `json:"config,omitempty"`
	Target string `json:"target"`
	// Peers names where the pod's peers were when TaskID was launched
	// (PlaceTogether types: Core.peersKey); the pod is restarted when
	// they have moved since.
	Peers string `json:"peers,omitempty"`

	// DownSince is when the pod's task was lost or its agent went away;
	// the pod is replaced ReplaceAfter later.
	DownSince time.Time `json:"down_since,omitzero"`
	// AvoidAgent is the agent a replaced pod must not be placed on again.
	AvoidAgent string `json:"avoid_agent,omitempty"`
	// Killing: a KILL was sent for TaskID (restart, update, decommission).
	Killing bool `json:"killing,omitempty"`
	// Decommission: the pod is being removed (scale down, uninstall).
	Decommission bool `json:"decommission,omitempty"`
	// Deregistered: the decommission hook succeeded for the pod; until
	// then (with a hook) its task is not killed nor its resources freed.
	Deregistered bool `json:"deregistered,omitempty"`
	// Launches counts launches, for the operator.
	Launches int `json:"launches,omitempty"`

	// ReadySince is when the pod last became ready (Ready set).
	ReadySince time.Time `json:"ready_since,omitzero"`
	// Failures counts the task's consecutive failures (Backoff): those
	// since the pod was last ready for Backoff.ResetAfter.
	Failures int `json:"failures,omitempty"`
	// BackoffUntil is when the recovery plan may relaunch the pod after
	// its last failure (Backoff).
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
}

// Name is the pod's name, "<type>-<index>".
func (p *PodState) Name() string { return podName(p.Type, p.Index) }

func podName(typ string, index int) string { return fmt.Sprintf("%s-%d", typ, index) }

func (p *PodState) placed() bool { return p.AgentID != "" }

// active: the pod's task may be running or about to (launched, no
// terminal status yet).
func (p *PodState) active() bool { return p.TaskID != "" && !terminalState(p.TaskState) }

func terminalState(s string) bool {
	switch s {
	case "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
		"TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN", "TASK_UNREACHABLE":
		return true
	}
	return false
}

// CheckSpec says whether a service whose state is s may run next: next
// must be valid and, when s remembers the spec it ran (State.Spec), an
// update from that spec that Core.UpdateSpec would take (errors wrap
// ErrSpecChange then). A scheduler checks it before it runs (New, and
// each term of RunElected) so that a spec refused across a restart
// changes nothing, as one refused in process does not.
func (s *State) CheckSpec(next *Spec) error {
	if next == nil {
		return invalid("nil spec")
	}
	if s == nil || s.Spec == nil {
		return next.Validate()
	}
	return s.Spec.validateUpdate(next)
}

// Marshal encodes s for a Store.
func (s *State) Marshal() ([]byte, error) { return json.Marshal(s) }

// UnmarshalState decodes what Marshal encoded; empty data is a new
// service's empty state.
func UnmarshalState(data []byte) (*State, error) {
	s := &State{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("service: decoding state: %w", err)
		}
	}
	if s.Pods == nil {
		s.Pods = map[string]*PodState{}
	}
	if s.Paused == nil {
		s.Paused = map[string]bool{}
	}
	return s, nil
}

func (s *State) clone() *State {
	b, _ := s.Marshal()
	c, _ := UnmarshalState(b)
	return c
}

// sortedPods returns the pods in type order of spec, then index.
func (s *State) sortedPods() []*PodState {
	out := make([]*PodState, 0, len(s.Pods))
	for _, p := range s.Pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Index < out[j].Index
	})
	return out
}

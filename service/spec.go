package service

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/apronhq/apron/resources"
)

// ErrInvalidSpec is wrapped by every error Validate returns.
var ErrInvalidSpec = errors.New("service: invalid spec")

// Spec declares a stateful service: who it runs as and its pod types. It is
// plain data (JSON-serializable), so an operator program can read it from a
// file; Validate says what is wrong with it.
type Spec struct {
	// Name names the service; it is the framework's name and the value of
	// the "service" label on every reservation the service makes, so two
	// services of one role never take each other's reservations.
	Name string `json:"name"`
	// Role is the role the service reserves its resources for.
	Role string `json:"role"`
	// Principal is the principal reservations and volumes are made by.
	Principal string `json:"principal"`
	// User runs the tasks (empty: the agent's user).
	User string `json:"user,omitempty"`
	// Pods are deployed in order: a pod type's phase starts when the one
	// before it is complete.
	Pods []PodSpec `json:"pods"`
	// ReplaceAfter is how long a pod whose agent is lost or whose task is
	// lost/unreachable/gone stays down before it is replaced on another
	// agent with new volumes; zero means only on command.
	ReplaceAfter time.Duration `json:"replace_after,omitempty"`
	// RelaunchBackoff paces the relaunches of pods whose task keeps
	// failing (zero: the defaults, on).
	RelaunchBackoff Backoff `json:"relaunch_backoff,omitzero"`
}

// PodSpec declares one type of pod: Count identical instances, pod i named
// "<Name>-<i>", each one task on its own reserved resources.
type PodSpec struct {
	Name  string `json:"name"`
	Count int    `json:"count"`

	CPUs float64 `json:"cpus"`
	Mem  float64 `json:"mem"`            // MB
	Disk float64 `json:"disk,omitempty"` // MB of sandbox disk, besides volumes
	// Ports are named ports, each fixed (Port > 0) or any free one (0). A
	// task finds them in $PORT_<NAME> and templates in {{.Ports.name}}.
	Ports   []PortSpec   `json:"ports,omitempty"`
	Volumes []VolumeSpec `json:"volumes,omitempty"`

	// Command is a Go text/template (see TemplateData) run by /bin/sh.
	Command string `json:"command"`
	// Env values are templates too.
	Env map[string]string `json:"env,omitempty"`
	// Configs are files rendered from templates into the sandbox before
	// Command runs.
	Configs []ConfigSpec `json:"configs,omitempty"`
	// URIs are fetched into the sandbox (extracted if archives).
	URIs []string `json:"uris,omitempty"`
	// Image, when set, is a Docker image the task runs in (Mesos
	// containerizer).
	Image string `json:"image,omitempty"`

	// Readiness, when set, is the task's check (TaskInfo.check): the pod is
	// ready once it has succeeded; without one, once RUNNING.
	Readiness *CheckSpec `json:"readiness,omitempty"`
	// Health, when set, is the task's health check: the executor kills a
	// task that fails it, and the pod is recovered in place.
	Health *HealthSpec `json:"health,omitempty"`
	// KillGracePeriod is how long a task has between SIGTERM and SIGKILL.
	KillGracePeriod time.Duration `json:"kill_grace_period,omitempty"`

	Placement Placement `json:"placement,omitempty"`
	// Strategy is how the deploy plan's steps of this type proceed.
	Strategy Strategy `json:"strategy,omitempty"`
	// Quorum says never to take more than one pod of this type down at a
	// time: updates and restarts proceed one pod at a time whatever the
	// strategy, and none takes a running pod down while another pod of
	// the type is down (recovering, replaced).
	Quorum bool `json:"quorum,omitempty"`
	// PlaceTogether places every pod of the type (RESERVE and CREATE,
	// without LAUNCH) before the first launch of any: each pod's first
	// task then finds every peer's host and ports in {{.Peers}}, as a
	// ZooKeeper ensemble's static server list needs. The type's missing
	// pods are created at once (whatever the strategy), and a pod's first
	// launch on a placement waits until every pod of the type is placed;
	// relaunches in place (recovery, roll-outs) never wait, and roll-outs
	// still follow Strategy and Quorum. A pod placed but not launched is
	// launched on its reservations when its agent is next offered, so a
	// scheduler restarted in between reserves nothing twice. When a pod
	// moves (replaced) or its ports change, the deploy plan restarts the
	// others in place once it is ready, as for a new configuration (one
	// at a time for a Quorum type), so that each names it where it is.
	PlaceTogether bool `json:"place_together,omitempty"`
}

// PortSpec is a named port; Port 0 means any port the agent offers.
type PortSpec struct {
	Name string `json:"name"`
	Port uint64 `json:"port,omitempty"`
}

// VolumeSpec is a persistent volume, mounted at Path (relative to the
// sandbox) and kept across the pod's restarts on its agent.
type VolumeSpec struct {
	Path string  `json:"path"`
	Size float64 `json:"size"` // MB
}

// ConfigSpec is a file rendered from Template into the sandbox at Path.
type ConfigSpec struct {
	Path     string `json:"path"`
	Template string `json:"template"`
}

// CheckSpec is a readiness check: exactly one of Command, HTTPPort and
// TCPPort (names of the pod's ports).
type CheckSpec struct {
	Command  string        `json:"command,omitempty"` // a template, as Command
	HTTPPort string        `json:"http_port,omitempty"`
	HTTPPath string        `json:"http_path,omitempty"`
	TCPPort  string        `json:"tcp_port,omitempty"`
	Delay    time.Duration `json:"delay,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`
}

// HealthSpec is a health check: a CheckSpec, and how many consecutive
// failures after GracePeriod make the executor kill the task.
type HealthSpec struct {
	CheckSpec
	ConsecutiveFailures uint32        `json:"consecutive_failures,omitempty"`
	GracePeriod         time.Duration `json:"grace_period,omitempty"`
}

// Placement constrains where a pod is first placed (later launches follow
// its reservations).
type Placement struct {
	// MaxPerHost is how many pods of the type may share an agent's
	// hostname; 0 means any number.
	MaxPerHost int `json:"max_per_host,omitempty"`
	// SpreadBy is an agent attribute (such as "zone") whose values the
	// type's pods are spread evenly over: a pod goes to a value holding
	// the fewest pods of the type among the values seen in offers.
	SpreadBy string `json:"spread_by,omitempty"`
	// Require are predicates every agent must satisfy.
	Require []Predicate `json:"require,omitempty"`
}

// Predicate matches an agent attribute ("hostname" is the agent's
// hostname) against a regular expression, anchored at both ends; with
// Not, the attribute must not match (a missing attribute never matches).
type Predicate struct {
	Attribute string `json:"attribute"`
	Matches   string `json:"matches"`
	Not       bool   `json:"not,omitempty"`
}

// Strategy is how a phase's steps proceed.
type Strategy string

// Strategies.
const (
	// Serial starts a step once the one before it is complete (its pod
	// ready). The default.
	Serial Strategy = "serial"
	// Parallel starts every step at once.
	Parallel Strategy = "parallel"
)

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
var envPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// Validate reports the first thing wrong with s, wrapping ErrInvalidSpec.
func (s *Spec) Validate() error {
	if !namePattern.MatchString(s.Name) {
		return invalid("service name %q: want lower-case letters, digits and dashes", s.Name)
	}
	if err := resources.ValidateRole(s.Role); err != nil || s.Role == "*" {
		return invalid("role %q: a service reserves for a role, not %q: %v", s.Role, "*", err)
	}
	if s.Principal == "" {
		return invalid("principal is required: reservations and volumes are made by it")
	}
	if s.ReplaceAfter < 0 {
		return invalid("replace_after %v is negative", s.ReplaceAfter)
	}
	if err := s.RelaunchBackoff.validate(); err != nil {
		return err
	}
	if len(s.Pods) == 0 {
		return invalid("no pod types")
	}
	seen := map[string]bool{}
	for i := range s.Pods {
		p := &s.Pods[i]
		if seen[p.Name] {
			return invalid("pod type %q declared twice", p.Name)
		}
		seen[p.Name] = true
		if err := p.validate(); err != nil {
			return fmt.Errorf("pod type %q: %w", p.Name, err)
		}
	}
	return nil
}

func (p *PodSpec) validate() error {
	if !namePattern.MatchString(p.Name) {
		return invalid("name %q: want lower-case letters, digits and dashes", p.Name)
	}
	if p.Count < 0 {
		return invalid("count %d is negative", p.Count)
	}
	if p.CPUs <= 0 || p.Mem <= 0 {
		return invalid("cpus and mem must be positive, got %v and %v", p.CPUs, p.Mem)
	}
	if p.Disk < 0 {
		return invalid("disk %v is negative", p.Disk)
	}
	ports := map[string]bool{}
	fixed := map[uint64]bool{}
	for _, port := range p.Ports {
		name := envName(port.Name)
		if !envPattern.MatchString(name) || ports[port.Name] {
			return invalid("port name %q: empty, not usable in $PORT_<NAME>, or declared twice", port.Name)
		}
		ports[port.Name] = true
		if port.Port > 65535 || (port.Port != 0 && fixed[port.Port]) {
			return invalid("port %q: %d is out of range or used twice", port.Name, port.Port)
		}
		fixed[port.Port] = port.Port != 0
	}
	paths := map[string]bool{}
	for _, v := range p.Volumes {
		if v.Path == "" || v.Path[0] == '/' || paths[v.Path] {
			return invalid("volume path %q: want a relative path, once", v.Path)
		}
		paths[v.Path] = true
		if v.Size <= 0 {
			return invalid("volume %q: size must be positive", v.Path)
		}
	}
	if p.Command == "" {
		return invalid("command is required")
	}
	if _, err := parseTemplate("command", p.Command); err != nil {
		return invalid("command: %v", err)
	}
	for k, v := range p.Env {
		if !envPattern.MatchString(k) {
			return invalid("environment variable name %q", k)
		}
		if _, err := parseTemplate(k, v); err != nil {
			return invalid("env %s: %v", k, err)
		}
	}
	for _, c := range p.Configs {
		if c.Path == "" || c.Path[0] == '/' {
			return invalid("config path %q: want a path relative to the sandbox", c.Path)
		}
		if _, err := parseTemplate(c.Path, c.Template); err != nil {
			return invalid("config %s: %v", c.Path, err)
		}
	}
	if p.Readiness != nil {
		if err := p.Readiness.validate(ports); err != nil {
			return fmt.Errorf("readiness: %w", err)
		}
	}
	if p.Health != nil {
		if err := p.Health.validate(ports); err != nil {
			return fmt.Errorf("health: %w", err)
		}
	}
	if p.KillGracePeriod < 0 {
		return invalid("kill_grace_period is negative")
	}
	if p.Placement.MaxPerHost < 0 {
		return invalid("max_per_host is negative")
	}
	for _, pred := range p.Placement.Require {
		if pred.Attribute == "" {
			return invalid("placement predicate without an attribute")
		}
		if _, err := regexp.Compile("^(?:" + pred.Matches + ")$"); err != nil {
			return invalid("placement predicate on %s: %v", pred.Attribute, err)
		}
	}
	switch p.Strategy {
	case "", Serial, Parallel:
	default:
		return invalid("strategy %q: want serial or parallel", p.Strategy)
	}
	return nil
}

func (c *CheckSpec) validate(ports map[string]bool) error {
	n := 0
	for _, set := range []bool{c.Command != "", c.HTTPPort != "", c.TCPPort != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return invalid("want exactly one of command, http_port and tcp_port")
	}
	if c.HTTPPort != "" && !ports[c.HTTPPort] {
		return invalid("http_port %q is not one of the pod's ports", c.HTTPPort)
	}
	if c.TCPPort != "" && !ports[c.TCPPort] {
		return invalid("tcp_port %q is not one of the pod's ports", c.TCPPort)
	}
	if c.Command != "" {
		if _, err := parseTemplate("check", c.Command); err != nil {
			return invalid("command: %v", err)
		}
	}
	if c.Delay < 0 || c.Interval < 0 || c.Timeout < 0 {
		return invalid("negative delay, interval or timeout")
	}
	return nil
}

// ErrSpecChange is wrapped (with ErrInvalidSpec) by the errors of a spec
// that a deployed service cannot move to: a new Spec refused by UpdateSpec,
// or, across restarts, by New, NewCore and RunElected, which compare it
// with the spec the state remembers (State.Spec). Nothing is changed.
var ErrSpecChange = errors.New("service: spec change refused")

// specChangeError is ErrSpecChange and ErrInvalidSpec at once, its
// message said once.
type specChangeError struct{ msg string }

func (e *specChangeError) Error() string { return ErrSpecChange.Error() + ": " + e.msg }

func (e *specChangeError) Is(target error) bool {
	return target == ErrSpecChange || target == ErrInvalidSpec
}

func refused(format string, args ...any) error {
	return &specChangeError{msg: fmt.Sprintf(format, args...)}
}

// validateUpdate says whether a running service may move from s to next:
// the service's identity and each pod type's volumes cannot change, since
// the pods' data lives on them, and a pod type with pods cannot go away
// (scale it to 0 first).
func (s *Spec) validateUpdate(next *Spec) error {
	if err := next.Validate(); err != nil {
		return err
	}
	if s.Name != next.Name || s.Role != next.Role || s.Principal != next.Principal {
		return refused("name, role and principal cannot change (deployed: %s, %s, %s; new: %s, %s, %s)",
			s.Name, s.Role, s.Principal, next.Name, next.Role, next.Principal)
	}
	for _, old := range s.Pods {
		np := next.pod(old.Name)
		if np == nil {
			if old.Count > 0 {
				return refused("pod type %q removed: scale it to 0 first", old.Name)
			}
			continue
		}
		if !slices.Equal(np.Volumes, old.Volumes) {
			return refused("pod type %q: volumes cannot change once deployed, the pods' data is on them (deployed: %s; new: %s)",
				old.Name, volumesString(old.Volumes), volumesString(np.Volumes))
		}
	}
	return nil
}

func volumesString(vs []VolumeSpec) string {
	if len(vs) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s of %g MB", v.Path, v.Size)
	}
	return b.String()
}

func (s *Spec) pod(name string) *PodSpec {
	for i := range s.Pods {
		if s.Pods[i].Name == name {
			return &s.Pods[i]
		}
	}
	return nil
}

// configHash names a pod type's configuration: what its tasks are made
// of, not how many there are, where they go or in which order they roll.
// A pod launched with another hash is rolled out to this one.
func (p *PodSpec) configHash(s *Spec) string {
	q := *p
	q.Count, q.Placement, q.Strategy, q.Quorum, q.PlaceTogether = 0, Placement{}, "", false, false
	b, _ := json.Marshal(struct {
		User string
		Pod  PodSpec
	}{s.User, q})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func (p *PodSpec) strategy() Strategy {
	if p.Strategy == "" {
		return Serial
	}
	return p.Strategy
}

// parseTemplate parses a pod's template. Besides text/template's own
// functions it has add, for numbering from 1 (a ZooKeeper server's myid
// is its index + 1: {{add .Index 1}}).
func parseTemplate(name, text string) (*template.Template, error) {
	funcs := template.FuncMap{"add": func(a, b int) int { return a + b }}
	return template.New(name).Funcs(funcs).Option("missingkey=error").Parse(text)
}

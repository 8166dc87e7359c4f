package service

import "time"

// Plan names.
const (
	// PlanDeploy brings every pod to the spec: one phase per pod type, in
	// spec order, one step per pod; it covers the first deployment,
	// configuration roll-outs and scaling up.
	PlanDeploy = "deploy"
	// PlanRecovery relaunches, in place, pods whose task ended.
	PlanRecovery = "recovery"
	// PlanDecommission removes pods beyond their type's count, highest
	// index first: kill, destroy volumes, unreserve.
	PlanDecommission = "decommission"
)

// Status is a plan's, phase's or step's progress.
type Status string

// Statuses.
const (
	StatusPending    Status = "PENDING"
	StatusInProgress Status = "IN_PROGRESS"
	StatusComplete   Status = "COMPLETE"
	StatusPaused     Status = "PAUSED"
	// StatusDelayed is a step whose pod waits to be relaunched after its
	// task failed (Backoff); StepStatus.BackoffUntil says until when. Its
	// phase and plan are IN_PROGRESS.
	StatusDelayed Status = "DELAYED"
)

// PlanStatus is a plan as the operator sees it.
type PlanStatus struct {
	Name   string        `json:"name"`
	Status Status        `json:"status"`
	Phases []PhaseStatus `json:"phases"`
}

// PhaseStatus is one phase of a plan.
type PhaseStatus struct {
	Name   string       `json:"name"`
	Status Status       `json:"status"`
	Steps  []StepStatus `json:"steps"`
}

// StepStatus is one step: the work on one pod.
type StepStatus struct {
	Pod    string `json:"pod"`
	Status Status `json:"status"`
	// BackoffUntil is when a DELAYED step's pod may be relaunched.
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
}

// PodStatus is a pod as the operator sees it.
type PodStatus struct {
	Name           string            `json:"name"`
	Type           string            `json:"type"`
	Index          int               `json:"index"`
	AgentID        string            `json:"agent_id,omitempty"`
	Hostname       string            `json:"hostname,omitempty"`
	ResourceID     string            `json:"resource_id"`
	PersistenceIDs []string          `json:"persistence_ids,omitempty"`
	Ports          map[string]uint64 `json:"ports,omitempty"`
	TaskID         string            `json:"task_id,omitempty"`
	TaskState      string            `json:"task_state,omitempty"`
	Ready          bool              `json:"ready"`
	Config         string            `json:"config,omitempty"`
	Target         string            `json:"target,omitempty"`
	Decommission   bool              `json:"decommission,omitempty"`
	Launches       int               `json:"launches"`
	// Failures counts the task's consecutive failures (Backoff).
	Failures int `json:"failures,omitempty"`
	// BackoffUntil, set while the pod waits to be relaunched after a
	// failure, is when the wait ends.
	BackoffUntil time.Time `json:"backoff_until,omitzero"`
}

// Pods returns every pod's status, in plan order.
func (c *Core) Pods() []PodStatus {
	var out []PodStatus
	for _, p := range c.sortedByPlan() {
		out = append(out, c.podStatus(p))
	}
	return out
}

// Pod returns one pod's status.
func (c *Core) Pod(name string) (PodStatus, error) {
	p, err := c.pod(name)
	if err != nil {
		return PodStatus{}, err
	}
	return c.podStatus(p), nil
}

func (c *Core) podStatus(p *PodState) PodStatus {
	return PodStatus{
		Name: p.Name(), Type: p.Type, Index: p.Index, AgentID: p.AgentID, Hostname: p.Hostname,
		ResourceID: p.ResourceID, PersistenceIDs: append([]string(nil), p.PersistenceIDs...), Ports: p.Ports,
		TaskID: p.TaskID, TaskState: p.TaskState, Ready: p.Ready, Config: p.Config, Target: p.Target,
		Decommission: p.Decommission, Launches: p.Launches, Failures: p.Failures, BackoffUntil: c.backoffUntil(p),
	}
}

// backoffUntil is when the pod's wait ends, zero when it does not wait.
func (c *Core) backoffUntil(p *PodState) time.Time {
	if c.backingOff(p) {
		return p.BackoffUntil
	}
	return time.Time{}
}

// step is the status of the step of a pod that is not complete: DELAYED
// while it waits after a failure, else s.
func (c *Core) step(p *PodState, s Status) StepStatus {
	st := StepStatus{Pod: p.Name(), Status: s}
	if until := c.backoffUntil(p); !until.IsZero() {
		st.Status, st.BackoffUntil = StatusDelayed, until
	}
	return st
}

// Plans returns every plan's status.
func (c *Core) Plans() []PlanStatus {
	return []PlanStatus{c.deployPlan(), c.recoveryPlan(), c.decommissionPlan()}
}

// Plan returns one plan's status.
func (c *Core) Plan(name string) (PlanStatus, error) {
	for _, p := range c.Plans() {
		if p.Name == name {
			return p, nil
		}
	}
	return PlanStatus{}, ErrUnknownPlan
}

func (c *Core) deployPlan() PlanStatus {
	plan := PlanStatus{Name: PlanDeploy}
	for i := range c.spec.Pods {
		ps := &c.spec.Pods[i]
		hash, peers := ps.configHash(c.spec), c.peersKey(ps)
		phase := PhaseStatus{Name: ps.Name}
		for j := 0; j < ps.Count; j++ {
			p := c.state.Pods[podName(ps.Name, j)]
			s := StatusPending
			switch {
			case c.stepComplete(p, hash, peers):
				s = StatusComplete
			case p != nil && p.Target == hash && !p.Decommission && !stalePeers(p, peers):
				s = StatusInProgress
			}
			step := StepStatus{Pod: podName(ps.Name, j), Status: s}
			if s == StatusInProgress {
				step = c.step(p, s)
			}
			phase.Steps = append(phase.Steps, step)
		}
		phase.Status = rollUp(phase.Steps)
		plan.Phases = append(plan.Phases, phase)
	}
	return c.finish(plan)
}

func (c *Core) recoveryPlan() PlanStatus {
	plan := PlanStatus{Name: PlanRecovery}
	phase := PhaseStatus{Name: "pods"}
	for _, p := range c.sortedByPlan() {
		if !p.Decommission && p.TaskID != "" && !p.active() && p.Config == p.Target {
			phase.Steps = append(phase.Steps, c.step(p, StatusInProgress))
		}
	}
	phase.Status = rollUp(phase.Steps)
	plan.Phases = append(plan.Phases, phase)
	return c.finish(plan)
}

func (c *Core) decommissionPlan() PlanStatus {
	plan := PlanStatus{Name: PlanDecommission}
	phases := map[string]*PhaseStatus{}
	var order []string
	heads := c.decommissionHeads()
	for _, p := range c.sortedByPlan() {
		if !p.Decommission {
			continue
		}
		ph := phases[p.Type]
		if ph == nil {
			ph = &PhaseStatus{Name: p.Type}
			phases[p.Type] = ph
			order = append(order, p.Type)
		}
		s := StatusPending
		if heads[p.Type] == p || c.state.Uninstalling {
			s = StatusInProgress
		}
		ph.Steps = append(ph.Steps, StepStatus{Pod: p.Name(), Status: s})
	}
	for _, t := range order {
		ph := phases[t]
		ph.Status = rollUp(ph.Steps)
		plan.Phases = append(plan.Phases, *ph)
	}
	return c.finish(plan)
}

func (c *Core) finish(plan PlanStatus) PlanStatus {
	var steps []StepStatus
	for _, ph := range plan.Phases {
		steps = append(steps, StepStatus{Status: ph.Status})
	}
	plan.Status = rollUp(steps)
	if c.state.Paused[plan.Name] && plan.Status != StatusComplete {
		plan.Status = StatusPaused
	}
	return plan
}

func rollUp(steps []StepStatus) Status {
	complete, pending := 0, 0
	for _, s := range steps {
		switch s.Status {
		case StatusComplete:
			complete++
		case StatusPending:
			pending++
		}
	}
	switch {
	case complete == len(steps):
		return StatusComplete
	case pending == len(steps):
		return StatusPending
	}
	return StatusInProgress
}

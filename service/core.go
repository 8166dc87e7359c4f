package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
)

// Errors of the operator commands, wrapped with details.
var (
	// ErrUnknownPod: no pod has that name.
	ErrUnknownPod = errors.New("service: unknown pod")
	// ErrUnknownPlan: no plan has that name.
	ErrUnknownPlan = errors.New("service: unknown plan")
	// ErrUninstalling: the service is being uninstalled; it takes no other
	// command.
	ErrUninstalling = errors.New("service: uninstalling")
)

// Reservation label keys. Every reservation the service makes carries all
// three, so its resources are recognized in any later offer, by any
// incarnation of the scheduler.
const (
	LabelService    = "service"
	LabelPod        = "pod"
	LabelResourceID = "resource_id"
)

// CoreConfig configures a Core.
type CoreConfig struct {
	Spec *Spec
	// State is the state saved from an earlier Core (nil: a new service).
	State *State
	// NewID returns a fresh unique ID (task, resource and persistence IDs);
	// required.
	NewID func() string
	// DeclineFor is the refuse_seconds filter of declined offers and of
	// what accepted offers leave while the service has work that needs
	// offers (default 1 s).
	DeclineFor time.Duration
	// IdleDeclineFor is the filter while it has none (default 30 s). When
	// work appears (a task ends, a command, a new spec) the core sends
	// REVIVE, which clears the filters. Reservations of no current pod
	// are cleaned up when their agent is next offered: within this time.
	IdleDeclineFor time.Duration
	// DecommissionHook says the shell runs a hook before a pod removed by
	// a scale down is killed: the core asks for it in Ready.Hooks and
	// waits for HookDone (Config.Decommission).
	DecommissionHook bool
}

// Ready is what the core decided since the last Ready.
//
// The ordering rule (as the master's for its registry): State, when set,
// must be stored durably before any of Calls is sent. Every call depends on
// the state that comes with it (the reservation, persistence and task IDs
// it names); a scheduler that crashes after storing and before sending
// finds those IDs in its state and either sees them in offers and status
// updates (adopting them) or not (retrying with new ones, cleaning up any
// late-appearing stale reservation by its labels). Sending before storing
// could leave reservations and tasks that no state knows of.
type Ready struct {
	// State is the new state to save, nil when unchanged.
	State *State
	// Calls are to be sent in order.
	Calls []*schedulerpb.Call
	// Done is set once an uninstall has finished: the framework may be
	// torn down.
	Done bool
	// Hooks are the pods whose decommission hook is to run now (with
	// CoreConfig.DecommissionHook); each is asked for once per Core until
	// HookDone reports on it, and again by a Core built after a restart.
	Hooks []PodStatus
}

// Core is the service's decision engine: a state machine fed one input at
// a time (offers, status updates, operator commands, Tick) that says what
// to send and what to save through Ready. It does no I/O, starts no
// goroutine and reads no clock; it is not safe for concurrent use. Tick
// it once before any other input: down times are measured from the last
// Tick.
type Core struct {
	spec       *Spec
	state      *State
	newID      func() string
	declineFor float64
	idleFor    float64
	now        time.Time
	// wanting: the service had work needing offers after the last input;
	// REVIVE is sent when it starts having some.
	wanting bool

	dirty bool
	calls []*schedulerpb.Call
	// spread are the values of each spread attribute seen in offers.
	spread map[string]map[string]bool

	hook  bool
	asked map[string]bool // pods whose hook was asked for, not yet done
	hooks []PodStatus
}

// NewCore returns a core for cfg.Spec resuming from cfg.State.
func NewCore(cfg CoreConfig) (*Core, error) {
	if cfg.Spec == nil {
		return nil, invalid("nil spec")
	}
	if err := cfg.Spec.Validate(); err != nil {
		return nil, err
	}
	if cfg.NewID == nil {
		return nil, errors.New("service: CoreConfig.NewID is required")
	}
	st := cfg.State
	if st == nil {
		st, _ = UnmarshalState(nil)
	} else {
		st = st.clone()
	}
	if err := st.CheckSpec(cfg.Spec); err != nil {
		return nil, err
	}
	c := &Core{
		spec:       cfg.Spec,
		state:      st,
		newID:      cfg.NewID,
		declineFor: cfg.DeclineFor.Seconds(),
		spread:     map[string]map[string]bool{},
		hook:       cfg.DecommissionHook,
		asked:      map[string]bool{},
	}
	if cfg.DeclineFor <= 0 {
		c.declineFor = 1
	}
	c.idleFor = cfg.IdleDeclineFor.Seconds()
	if cfg.IdleDeclineFor <= 0 {
		c.idleFor = 30
	}
	c.recordSpec()
	c.advance()
	return c, nil
}

// Ready returns and forgets what was decided since the last call.
func (c *Core) Ready() Ready {
	r := Ready{Calls: c.calls, Done: c.Done(), Hooks: c.hooks}
	if c.dirty {
		r.State = c.state.clone()
	}
	c.calls, c.dirty, c.hooks = nil, false, nil
	return r
}

// State returns a copy of the current state.
func (c *Core) State() *State { return c.state.clone() }

// Spec returns the spec in force.
func (c *Core) Spec() *Spec { return c.spec }

// Done reports whether an uninstall has finished.
func (c *Core) Done() bool { return c.state.Uninstalling && len(c.state.Pods) == 0 }

func (c *Core) changed() { c.dirty = true }

func (c *Core) send(call *schedulerpb.Call) { c.calls = append(c.calls, call) }

// Subscribed is the framework's (re)subscription with its ID: the core
// asks the master for the state of every task it knows.
func (c *Core) Subscribed(frameworkID string) {
	if c.state.FrameworkID != frameworkID {
		c.state.FrameworkID = frameworkID
		c.changed()
	}
	var tasks []schedulerpb.Call_Reconcile_Task
	for _, p := range c.state.sortedPods() {
		if p.TaskID == "" {
			continue
		}
		t := schedulerpb.Call_Reconcile_Task{TaskID: mesospb.TaskID{Value: p.TaskID}}
		if p.AgentID != "" {
			t.AgentID = &mesospb.AgentID{Value: p.AgentID}
		}
		tasks = append(tasks, t)
	}
	if len(tasks) > 0 {
		c.send(&schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{Tasks: tasks}})
	}
	// And every task the master knows: one no pod owns (launched from a
	// state that was never stored) is killed when it is reported.
	c.send(&schedulerpb.Call{Type: schedulerpb.Call_RECONCILE.Enum(), Reconcile: &schedulerpb.Call_Reconcile{}})
	// Kills in flight are repeated: one decided while no scheduler was
	// subscribed (by a core built on a changed spec, before its driver
	// subscribed, or while it was disconnected) never reached the master,
	// and nothing else would send it again.
	for _, p := range c.state.sortedPods() {
		if p.Killing && p.active() {
			c.send(killCall(p.TaskID, &mesospb.AgentID{Value: p.AgentID}))
		}
	}
	c.advance()
}

// Tick tells the core the time; replacements of lost pods and the
// relaunches of failed ones (Backoff) are timed by it.
func (c *Core) Tick(now time.Time) {
	c.now = now
	c.advance()
}

// Rescinded is an offer rescinded. The core keeps no offer (it answers
// each one as it comes), so there is nothing to forget.
func (c *Core) Rescinded(mesospb.OfferID) {}

// AgentLost marks the pods on the agent down: their replacement timer
// starts.
func (c *Core) AgentLost(agentID string) {
	for _, p := range c.state.sortedPods() {
		if p.AgentID == agentID && p.DownSince.IsZero() {
			p.DownSince = c.now
			c.changed()
		}
	}
	c.advance()
}

// Update is a task status update.
func (c *Core) Update(st mesospb.TaskStatus) {
	defer c.advance()
	p := c.podOfTask(st.TaskID.Value)
	state := st.GetState().String()
	if p == nil {
		// A task of no pod (an older incarnation, a pod since replaced or
		// removed): it must not run.
		if !terminalState(state) {
			c.send(killCall(st.TaskID.Value, st.AgentID))
		}
		return
	}
	wasActive, wasKilling := p.active(), p.Killing
	if p.TaskState != state {
		p.TaskState = state
		c.changed()
	}
	switch st.GetState() {
	case mesospb.TASK_STAGING, mesospb.TASK_STARTING, mesospb.TASK_RUNNING,
		mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_KILLING:
		// The agent ran the task: its reservation exists.
		if !p.Reserved && st.GetSource() != mesospb.TaskStatus_SOURCE_MASTER {
			p.Reserved = true
			c.changed()
		}
	}
	switch st.GetState() {
	case mesospb.TASK_RUNNING:
		if !p.DownSince.IsZero() {
			p.DownSince = time.Time{}
			c.changed()
		}
		if !p.Ready && c.readyFrom(p, &st) {
			p.Ready, p.ReadySince = true, c.now
			c.changed()
		}
	case mesospb.TASK_LOST, mesospb.TASK_UNREACHABLE, mesospb.TASK_GONE, mesospb.TASK_GONE_BY_OPERATOR:
		if p.DownSince.IsZero() {
			p.DownSince = c.now
			c.changed()
		}
	}
	if wasActive && !wasKilling && !p.Decommission && relaunchFailure(st.GetState()) {
		// It ended on its own: its relaunch waits (Backoff).
		c.failed(p)
	}
	if terminalState(state) && (p.Ready || p.Killing) {
		p.Ready, p.Killing = false, false
		c.changed()
	}
}

// readyFrom says whether a RUNNING status shows the pod ready.
func (c *Core) readyFrom(p *PodState, st *mesospb.TaskStatus) bool {
	ps := c.spec.pod(p.Type)
	if ps == nil || ps.Readiness == nil {
		return true
	}
	cs := st.CheckStatus
	if cs == nil {
		return false
	}
	switch {
	case cs.Command != nil:
		return cs.Command.ExitCode != nil && *cs.Command.ExitCode == 0
	case cs.HTTP != nil:
		return cs.HTTP.StatusCode != nil && *cs.HTTP.StatusCode >= 200 && *cs.HTTP.StatusCode < 400
	case cs.TCP != nil:
		return cs.TCP.GetSucceeded()
	}
	return false
}

func (c *Core) podOfTask(taskID string) *PodState {
	for _, p := range c.state.Pods {
		if p.TaskID == taskID {
			return p
		}
	}
	return nil
}

func (c *Core) pod(name string) (*PodState, error) {
	p := c.state.Pods[name]
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPod, name)
	}
	return p, nil
}

// RestartPod kills the pod's task; it is relaunched in place, on its
// reservations and volumes, with its current configuration, at once: a
// pod waiting to be relaunched after a failure (Backoff) waits no more.
func (c *Core) RestartPod(name string) error {
	if c.state.Uninstalling {
		return ErrUninstalling
	}
	p, err := c.pod(name)
	if err != nil {
		return err
	}
	c.kill(p)
	if !p.BackoffUntil.IsZero() {
		p.BackoffUntil = time.Time{}
		c.changed()
	}
	c.advance()
	return nil
}

// ReplacePod moves the pod to another agent with new reservations and
// empty volumes; its old ones are destroyed and unreserved whenever their
// agent offers them again.
func (c *Core) ReplacePod(name string) error {
	if c.state.Uninstalling {
		return ErrUninstalling
	}
	p, err := c.pod(name)
	if err != nil {
		return err
	}
	c.replace(p)
	c.advance()
	return nil
}

// PausePlan stops a plan from starting new steps (deploy, decommission)
// or relaunching failed pods (recovery).
func (c *Core) PausePlan(name string) error { return c.setPaused(name, true) }

// ResumePlan undoes PausePlan.
func (c *Core) ResumePlan(name string) error { return c.setPaused(name, false) }

func (c *Core) setPaused(name string, paused bool) error {
	switch name {
	case PlanDeploy, PlanRecovery, PlanDecommission:
	default:
		return fmt.Errorf("%w: %q", ErrUnknownPlan, name)
	}
	if c.state.Paused[name] != paused {
		c.state.Paused[name] = paused
		if !paused {
			delete(c.state.Paused, name)
		}
		c.changed()
	}
	c.advance()
	return nil
}

// UpdateSpec replaces the spec: pods whose configuration changed are
// rolled out by the deploy plan, added pods deployed, removed ones
// decommissioned.
func (c *Core) UpdateSpec(next *Spec) error {
	if c.state.Uninstalling {
		return ErrUninstalling
	}
	if err := c.spec.validateUpdate(next); err != nil {
		return err
	}
	c.spec = next
	c.recordSpec()
	c.advance()
	return nil
}

// recordSpec keeps the spec in force in the state, for the next Core.
func (c *Core) recordSpec() {
	if b, _ := json.Marshal(c.spec); c.state.Spec == nil || !bytes.Equal(b, jsonOf(c.state.Spec)) {
		var copied Spec
		_ = json.Unmarshal(b, &copied)
		c.state.Spec = &copied
		c.changed()
	}
}

// jsonOf is v's JSON; a spec always encodes.
func jsonOf(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Uninstall kills every task, destroys every volume and unreserves every
// reservation; Done reports when it has finished.
func (c *Core) Uninstall() {
	if !c.state.Uninstalling {
		c.state.Uninstalling = true
		c.changed()
	}
	c.advance()
}

func killCall(taskID string, agentID *mesospb.AgentID) *schedulerpb.Call {
	var a *mesospb.AgentID
	if agentID != nil && agentID.Value != "" {
		a = &mesospb.AgentID{Value: agentID.Value}
	}
	return &schedulerpb.Call{Type: schedulerpb.Call_KILL.Enum(), Kill: &schedulerpb.Call_Kill{TaskID: mesospb.TaskID{Value: taskID}, AgentID: a}}
}

// kill sends a KILL for the pod's task, once.
func (c *Core) kill(p *PodState) {
	if !p.active() || p.Killing {
		return
	}
	p.Killing = true
	p.Ready = false
	c.changed()
	c.send(killCall(p.TaskID, &mesospb.AgentID{Value: p.AgentID}))
}

// replace forgets the pod's placement: the next launch places it anew.
func (c *Core) replace(p *PodState) {
	c.kill(p)
	if p.placed() {
		p.AvoidAgent = p.AgentID
	}
	p.AgentID, p.Hostname, p.Ports, p.Attributes = "", "", nil, ""
	p.ResourceID = c.newID()
	p.PersistenceIDs = c.newPersistenceIDs(p)
	p.Reserved, p.Ready, p.Killing = false, false, false
	p.TaskID, p.TaskState, p.Config = "", "", ""
	p.DownSince = time.Time{}
	// A new placement starts afresh: its failures may have been the old
	// agent's.
	p.Failures, p.BackoffUntil = 0, time.Time{}
	c.changed()
}

func (c *Core) newPersistenceIDs(p *PodState) []string {
	ps := c.spec.pod(p.Type)
	if ps == nil {
		return nil
	}
	ids := make([]string, len(ps.Volumes))
	for i := range ids {
		ids[i] = p.Name() + "-" + c.newID()
	}
	return ids
}

// advance makes the decisions that need no offer, then revives offers if
// there is now work that needs some.
func (c *Core) advance() {
	c.paceRelaunches()
	c.decide()
	want := c.needsOffers()
	if want && !c.wanting {
		c.send(&schedulerpb.Call{Type: schedulerpb.Call_REVIVE.Enum(), Revive: &schedulerpb.Call_Revive{}})
	}
	c.wanting = want
}

// needsOffers: some pod is to be launched or cleaned up.
func (c *Core) needsOffers() bool {
	for _, p := range c.state.Pods {
		if c.wantsLaunch(p) || (p.Decommission && !p.active() && p.placed() && !c.awaitsHook(p)) {
			return true
		}
	}
	return false
}

// decide makes the decisions that need no offer: plan steps started,
// tasks killed for updates and decommissions, pods replaced.
func (c *Core) decide() {
	st := c.state
	if st.Uninstalling {
		for _, p := range st.sortedPods() {
			if !p.Decommission {
				p.Decommission = true
				c.changed()
			}
			c.kill(p)
			if !p.active() && (!p.placed() || !p.DownSince.IsZero()) {
				// Nothing to clean up, or its agent is gone and with it
				// the reservations.
				delete(st.Pods, p.Name())
				c.changed()
			}
		}
		return
	}
	// Replacements of pods down for too long.
	if after := c.spec.ReplaceAfter; after > 0 && !c.now.IsZero() {
		for _, p := range st.sortedPods() {
			if !p.Decommission && !p.DownSince.IsZero() && !p.active() && c.now.Sub(p.DownSince) >= after {
				c.replace(p)
			}
		}
	}
	// Scale down: pods beyond their type's count (or of types no longer
	// declared) are decommissioned, highest index first, one per type at
	// a time.
	for _, p := range st.sortedPods() {
		ps := c.spec.pod(p.Type)
		if !p.Decommission && (ps == nil || p.Index >= ps.Count) {
			p.Decommission = true
			c.changed()
		}
	}
	if !st.Paused[PlanDecommission] {
		for _, p := range c.decommissionHeads() {
			if c.awaitsHook(p) {
				if !c.asked[p.Name()] {
					c.asked[p.Name()] = true
					c.hooks = append(c.hooks, c.podStatus(p))
				}
				continue
			}
			c.kill(p)
			if !p.active() && (!p.placed() || !p.DownSince.IsZero()) {
				// Nothing to clean up, or its agent is gone and with it
				// the reservations (cleaned up as stale if it returns).
				delete(st.Pods, p.Name())
				c.changed()
			}
		}
	}
	// Deploy: one phase per pod type, in order.
	if st.Paused[PlanDeploy] {
		return
	}
	for i := range c.spec.Pods {
		ps := &c.spec.Pods[i]
		if !c.deployPhase(ps) {
			return // later phases wait for this one
		}
	}
}

// awaitsHook: the pod's decommission hook has yet to succeed (a pod never
// launched has nothing to deregister).
func (c *Core) awaitsHook(p *PodState) bool {
	return c.hook && p.Decommission && !p.Deregistered && p.TaskID != "" && !c.state.Uninstalling
}

// HookDone reports the decommission hook of the named pod: on success the
// pod is killed and its resources freed; on failure the hook is asked for
// again (the shell paces the retries).
func (c *Core) HookDone(pod string, err error) {
	delete(c.asked, pod)
	if p := c.state.Pods[pod]; p != nil && err == nil && p.Decommission && !p.Deregistered {
		p.Deregistered = true
		c.changed()
	}
	c.advance()
}

// decommissionHeads are, per type, the highest-index decommissioned pod:
// the one being removed now.
func (c *Core) decommissionHeads() map[string]*PodState {
	heads := map[string]*PodState{}
	for _, p := range c.state.sortedPods() {
		if p.Decommission && (heads[p.Type] == nil || p.Index > heads[p.Type].Index) {
			heads[p.Type] = p
		}
	}
	return heads
}

// stepComplete: the pod runs the target configuration, knowing where its
// peers are now (peers is peersKey's), and is ready.
func (c *Core) stepComplete(p *PodState, hash, peers string) bool {
	return p != nil && p.Config == hash && p.Target == hash && p.active() && p.Ready && !p.Killing && !stalePeers(p, peers)
}

// peersKey names where every pod of a PlaceTogether type is (agent
// hostname and ports): "" for other types, and while a pod of the type is
// not placed.
func (c *Core) peersKey(ps *PodSpec) string {
	if !ps.PlaceTogether {
		return ""
	}
	h := sha256.New()
	for i := 0; i < ps.Count; i++ {
		q := c.state.Pods[podName(ps.Name, i)]
		if q == nil || !q.placed() {
			return ""
		}
		fmt.Fprintf(h, "%s %s %v\n", q.Name(), q.Hostname, q.Ports) // %v sorts map keys
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// stalePeers: the pod's task was launched while a peer was elsewhere
// (since replaced) or not placed: it is restarted, as for a new
// configuration, so that its configuration names every peer where it is.
func stalePeers(p *PodState, peers string) bool {
	return peers != "" && p.TaskID != "" && p.Peers != peers
}

// deployPhase starts the steps of a pod type's phase that may start, and
// reports whether the phase is complete.
func (c *Core) deployPhase(ps *PodSpec) bool {
	hash := ps.configHash(c.spec)
	if ps.PlaceTogether {
		// Every missing pod's step starts at once: they are placed
		// together, and launched once all are (waitsForPeers).
		for i := 0; i < ps.Count; i++ {
			if c.state.Pods[podName(ps.Name, i)] == nil {
				c.startStep(ps, i, nil, hash)
			}
		}
	}
	peers := c.peersKey(ps)
	complete := true
	inProgress := 0
	for i := 0; i < ps.Count; i++ {
		p := c.state.Pods[podName(ps.Name, i)]
		if c.stepComplete(p, hash, peers) {
			continue
		}
		complete = false
		if p != nil && p.Decommission {
			continue // scaled down and up again: wait for it to go
		}
		if p != nil && p.Target == hash && !stalePeers(p, peers) {
			inProgress++
			if ps.strategy() == Serial || ps.Quorum {
				break
			}
			continue
		}
		if (ps.strategy() == Serial || (ps.Quorum && p != nil && p.active())) && inProgress > 0 {
			break
		}
		if ps.Quorum && p != nil && p.active() && c.othersDown(ps, p) {
			break // another pod is down (recovering, replaced, later in order)
		}
		c.startStep(ps, i, p, hash)
		inProgress++
		if ps.strategy() == Serial {
			break
		}
	}
	return complete
}

// othersDown: a pod of the type other than p is not running ready.
func (c *Core) othersDown(ps *PodSpec, p *PodState) bool {
	for i := 0; i < ps.Count; i++ {
		q := c.state.Pods[podName(ps.Name, i)]
		if q != nil && q != p && !q.Decommission && !(q.active() && q.Ready && !q.Killing) {
			return true
		}
	}
	return false
}

func (c *Core) startStep(ps *PodSpec, index int, p *PodState, hash string) {
	if p == nil {
		p = &PodState{Type: ps.Name, Index: index, ResourceID: c.newID()}
		p.PersistenceIDs = c.newPersistenceIDs(p)
		c.state.Pods[p.Name()] = p
		c.changed()
	}
	if p.Target != hash {
		p.Target = hash
		c.changed()
	}
	c.kill(p) // running an older configuration: relaunched in place
}

// waitsForPeers: the pod's type places its pods together, this is the
// first launch on its placement, and a pod of the type is not placed
// yet.
func (c *Core) waitsForPeers(p *PodState) bool {
	ps := c.spec.pod(p.Type)
	if ps == nil || !ps.PlaceTogether || p.TaskID != "" {
		return false
	}
	for i := 0; i < ps.Count; i++ {
		if q := c.state.Pods[podName(ps.Name, i)]; q == nil || !q.placed() {
			return true
		}
	}
	return false
}

// wantsLaunch: the pod is to be launched on its next fitting offer.
func (c *Core) wantsLaunch(p *PodState) bool {
	if p.Decommission || p.active() || c.state.Uninstalling || p.Target == "" {
		return false
	}
	inDeploy := p.TaskID == "" || p.Config != p.Target
	if inDeploy {
		return !c.state.Paused[PlanDeploy]
	}
	return !c.state.Paused[PlanRecovery] && !c.backingOff(p)
}

// sortedByPlan returns pods in spec order (type, then index).
func (c *Core) sortedByPlan() []*PodState {
	order := map[string]int{}
	for i, ps := range c.spec.Pods {
		order[ps.Name] = i
	}
	pods := c.state.sortedPods()
	sort.SliceStable(pods, func(i, j int) bool {
		oi, oki := order[pods[i].Type]
		oj, okj := order[pods[j].Type]
		if oki != okj {
			return oki
		}
		if oi != oj {
			return oi < oj
		}
		return pods[i].Index < pods[j].Index
	})
	return pods
}

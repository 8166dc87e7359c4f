package master

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// Registry is where a master keeps what must survive its death, as a Mesos
// master's registrar does: the admitted agents, the unreachable and gone
// ones, the roles' weights and quotas, the maintenance schedule and the
// machines in maintenance. Agents' tasks and frameworks are not in it:
// agents bring their tasks back when they re-register, frameworks their
// IDs when they re-subscribe.
//
// Lifecycle: a master that becomes leader calls Recover, which returns the
// whole state and makes this Registry the only one that may write the
// store (a registry opened earlier on the same store, by a master that
// still believes it leads, gets ErrRegistryFenced from then on, or, for a
// store only one process may open, the later one ErrRegistryLocked). The
// master then calls Apply with the operations its core emitted, in order,
// and sends the outputs that depend on them only after Apply returns: an
// operation is durable when Apply returns nil. Close releases the store.
//
// A Registry is safe for use by one goroutine at a time (the master's); its
// methods may block on disk or network and honour the context only between
// steps, never leaving a batch half-written: a batch is durable whole or
// not at all. After an error whose outcome the store cannot know (a write
// that failed, a lost connection), Apply returns ErrRegistryFailed until
// the next Recover, which reads what was really kept.
//
// Implementations: NewMemoryRegistryStore (tests, several masters in one
// process), NewFileRegistry (one master, a directory under its work
// directory), NewZKRegistry (several masters sharing a ZooKeeper
// ensemble). Each passes the conformance suite in master/registrytest.
type Registry interface {
	// Recover reads the whole state and claims the store for this
	// registry. It may be called again, after ErrRegistryFailed or to
	// re-read the store after a new election.
	Recover(ctx context.Context) (*RegistryState, error)
	// Apply makes the operations durable, in order, all or none. Before
	// the first Recover it returns ErrRegistryNotRecovered; an invalid
	// operation (ErrInvalidRegistryOp) fails the batch before anything is
	// written.
	Apply(ctx context.Context, ops []RegistryOp) error
	// Close releases the store; later calls return ErrRegistryClosed.
	Close() error
}

// Errors of registries, for errors.Is.
var (
	// ErrRegistryFenced: another registry recovered the store after this
	// one (another master took the lead); this one may not write again
	// until it recovers. A master that gets it has lost its leadership.
	ErrRegistryFenced = errors.New("master: registry fenced by a newer writer")
	// ErrRegistryLocked: the store is held by another registry that does
	// not let a second writer in (the file registry: one process).
	ErrRegistryLocked = errors.New("master: registry locked by another writer")
	// ErrRegistryNotRecovered: Apply before Recover.
	ErrRegistryNotRecovered = errors.New("master: registry not recovered")
	// ErrRegistryClosed: the registry was closed.
	ErrRegistryClosed = errors.New("master: registry closed")
	// ErrRegistryCorrupt: the stored registry cannot be read (a damaged
	// record that is not the torn end of the last write, an unknown format).
	ErrRegistryCorrupt = errors.New("master: registry corrupt")
	// ErrRegistryFailed: an earlier write's outcome is unknown; Recover
	// before writing again.
	ErrRegistryFailed = errors.New("master: registry failed")
	// ErrInvalidRegistryOp: an operation without the fields it needs.
	ErrInvalidRegistryOp = errors.New("master: invalid registry operation")
)

// RegistryState is the content of a registry. Maps are never nil in a
// state returned by NewRegistryState or Recover. Agents are keyed by their
// AgentID's value; an agent is in at most one of Agents, Unreachable and
// Gone.
type RegistryState struct {
	// Agents are the admitted agents; each info has its ID set.
	Agents map[string]mesospb.AgentInfo
	// Unreachable agents may still re-register (AdmitAgent).
	Unreachable map[string]UnreachableAgent
	// Gone agents were marked gone by an operator, with the time; the
	// master refuses them.
	Gone map[string]time.Time
	// Weights of roles whose weight was set.
	Weights map[string]float64
	// Quotas of roles with a guarantee or a limit, by role.
	Quotas map[string]masterpb.QuotaConfig
	// Schedule is the maintenance schedule, nil when there is none.
	Schedule *masterpb.Schedule
	// Machines are the machines in maintenance (DRAINING or DOWN), by
	// RegistryMachineKey of their ID.
	Machines map[string]mesospb.MachineInfo
}

// RegistryMachineKey is the key of a machine in RegistryState.Machines:
// its hostname and IP as given (the master folds case before it emits
// UpdateMachines, if it wants case folded).
func RegistryMachineKey(id mesospb.MachineID) string {
	key := ""
	if id.Hostname != nil {
		key += "h:" + *id.Hostname
	}
	if id.IP != nil {
		key += "\x00i:" + *id.IP
	}
	return key
}

// UnreachableAgent is an agent the master lost, since Time.
type UnreachableAgent struct {
	Time time.Time
	// Info is the agent's last info when it was admitted before it was
	// marked unreachable, else nil.
	Info *mesospb.AgentInfo
}

// NewRegistryState returns an empty state.
func NewRegistryState() *RegistryState {
	return &RegistryState{
		Agents:      map[string]mesospb.AgentInfo{},
		Unreachable: map[string]UnreachableAgent{},
		Gone:        map[string]time.Time{},
		Weights:     map[string]float64{},
		Quotas:      map[string]masterpb.QuotaConfig{},
		Machines:    map[string]mesospb.MachineInfo{},
	}
}

// Apply applies operations in order, as every Registry does on its store:
// it is the definition of what the operations mean. All are validated
// first, so an invalid one leaves the state unchanged. Every operation is
// defined on every state (re-admitting an admitted agent updates its info,
// marking an unknown agent unreachable records it), so a batch replayed
// after a failover gives the same state.
func (s *RegistryState) Apply(ops ...RegistryOp) error {
	if err := validateRegistryOps(ops); err != nil {
		return err
	}
	for _, op := range ops {
		op.apply(s)
	}
	return nil
}

// Clone returns a deep copy.
func (s *RegistryState) Clone() *RegistryState {
	out := NewRegistryState()
	for id, info := range s.Agents {
		out.Agents[id] = registryCloneAgentInfo(info)
	}
	for id, u := range s.Unreachable {
		if u.Info != nil {
			info := registryCloneAgentInfo(*u.Info)
			u.Info = &info
		}
		out.Unreachable[id] = u
	}
	for id, t := range s.Gone {
		out.Gone[id] = t
	}
	for role, w := range s.Weights {
		out.Weights[role] = w
	}
	for role, q := range s.Quotas {
		out.Quotas[role] = registryCloneQuotaConfig(q)
	}
	if s.Schedule != nil {
		sc := registryCanonical(*s.Schedule)
		out.Schedule = &sc
	}
	for key, m := range s.Machines {
		out.Machines[key] = registryCanonical(m)
	}
	return out
}

// RegistryOp is one change to the registry: AdmitAgent,
// MarkAgentUnreachable, MarkAgentGone, RemoveAgent, PruneAgents,
// UpdateWeights, UpdateQuotas, UpdateSchedule or UpdateMachines. The set is closed: stores
// encode each one (api/v1/internalpb.RegistryOperation).
type RegistryOp interface {
	validate() error
	apply(*RegistryState)
	toProto() internalpb.RegistryOperation
}

// AdmitAgent admits an agent (REGISTER), re-admits one that was
// unreachable (REREGISTER after a partition or a master failover), or
// updates the info of one already admitted (a re-registration with new
// resources). It takes the agent out of Unreachable and Gone: refusing a
// gone agent is the master's decision, before it emits this.
type AdmitAgent struct {
	// Info with its ID set.
	Info mesospb.AgentInfo
}

// MarkAgentUnreachable moves an agent to Unreachable at Time (missed
// pings, or not re-registered within agent_reregister_timeout after a
// failover). An agent the registry does not know is recorded all the same.
type MarkAgentUnreachable struct {
	AgentID string
	Time    time.Time
}

// MarkAgentGone moves an agent to Gone at Time (MARK_AGENT_GONE): it is
// never admitted again.
type MarkAgentGone struct {
	AgentID string
	Time    time.Time
}

// RemoveAgent forgets an admitted or unreachable agent (it unregistered,
// or the master removed it); a gone agent stays gone.
type RemoveAgent struct {
	AgentID string
}

// PruneAgents forgets unreachable and gone agents: the garbage collection
// Mesos does by age and count (registry_max_agent_age, _count). Admitted
// agents are untouched.
type PruneAgents struct {
	AgentIDs []string
}

// UpdateWeights sets the weights of the listed roles (UPDATE_WEIGHTS).
type UpdateWeights struct {
	Weights map[string]float64
}

// UpdateQuotas sets the quotas of the listed roles (UPDATE_QUOTA,
// SET_QUOTA, REMOVE_QUOTA); a config with neither guarantees nor limits
// removes the role's quota.
type UpdateQuotas struct {
	Configs []masterpb.QuotaConfig
}

// UpdateSchedule replaces the maintenance schedule
// (UPDATE_MAINTENANCE_SCHEDULE, and the master's own edits of it); a
// schedule without windows removes it.
type UpdateSchedule struct {
	Schedule masterpb.Schedule
}

// UpdateMachines sets the maintenance mode of the listed machines
// (DRAINING when a schedule names them, DOWN at START_MAINTENANCE); a
// machine UP, or without a mode, is forgotten (STOP_MAINTENANCE).
type UpdateMachines struct {
	Machines []mesospb.MachineInfo
}

func invalidRegistryOp(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRegistryOp, fmt.Sprintf(format, args...))
}

func validateRegistryOps(ops []RegistryOp) error {
	for i, op := range ops {
		if op == nil {
			return invalidRegistryOp("operation %d is nil", i)
		}
		if err := op.validate(); err != nil {
			return fmt.Errorf("operation %d: %w", i, err)
		}
	}
	return nil
}

func (o AdmitAgent) validate() error {
	if o.Info.ID == nil || o.Info.ID.Value == "" {
		return invalidRegistryOp("AdmitAgent without an agent ID")
	}
	return nil
}

func (o AdmitAgent) apply(s *RegistryState) {
	id := o.Info.ID.Value
	delete(s.Unreachable, id)
	delete(s.Gone, id)
	s.Agents[id] = registryCloneAgentInfo(o.Info)
}

func (o MarkAgentUnreachable) validate() error {
	if o.AgentID == "" {
		return invalidRegistryOp("MarkAgentUnreachable without an agent ID")
	}
	return nil
}

func (o MarkAgentUnreachable) apply(s *RegistryState) {
	u := UnreachableAgent{Time: registryTime(o.Time)}
	if info, ok := s.Agents[o.AgentID]; ok {
		u.Info = &info
		delete(s.Agents, o.AgentID)
	} else if old, ok := s.Unreachable[o.AgentID]; ok {
		u.Info = old.Info
	}
	delete(s.Gone, o.AgentID)
	s.Unreachable[o.AgentID] = u
}

func (o MarkAgentGone) validate() error {
	if o.AgentID == "" {
		return invalidRegistryOp("MarkAgentGone without an agent ID")
	}
	return nil
}

func (o MarkAgentGone) apply(s *RegistryState) {
	delete(s.Agents, o.AgentID)
	delete(s.Unreachable, o.AgentID)
	s.Gone[o.AgentID] = registryTime(o.Time)
}

func (o RemoveAgent) validate() error {
	if o.AgentID == "" {
		return invalidRegistryOp("RemoveAgent without an agent ID")
	}
	return nil
}

func (o RemoveAgent) apply(s *RegistryState) {
	delete(s.Agents, o.AgentID)
	delete(s.Unreachable, o.AgentID)
}

func (o PruneAgents) validate() error {
	for _, id := range o.AgentIDs {
		if id == "" {
			return invalidRegistryOp("PruneAgents with an empty agent ID")
		}
	}
	return nil
}

func (o PruneAgents) apply(s *RegistryState) {
	for _, id := range o.AgentIDs {
		delete(s.Unreachable, id)
		delete(s.Gone, id)
	}
}

func (o UpdateWeights) validate() error {
	for role, w := range o.Weights {
		if role == "" {
			return invalidRegistryOp("UpdateWeights with an empty role")
		}
		if !(w > 0) {
			return invalidRegistryOp("UpdateWeights: weight %v of role %q is not positive", w, role)
		}
	}
	return nil
}

func (o UpdateWeights) apply(s *RegistryState) {
	for role, w := range o.Weights {
		s.Weights[role] = w
	}
}

func (o UpdateQuotas) validate() error {
	for _, c := range o.Configs {
		if c.Role == "" {
			return invalidRegistryOp("UpdateQuotas with an empty role")
		}
	}
	return nil
}

func (o UpdateQuotas) apply(s *RegistryState) {
	for _, c := range o.Configs {
		if len(c.Guarantees) == 0 && len(c.Limits) == 0 {
			delete(s.Quotas, c.Role)
			continue
		}
		s.Quotas[c.Role] = registryCloneQuotaConfig(c)
	}
}

func (o UpdateSchedule) validate() error { return nil }

func (o UpdateMachines) validate() error {
	for _, m := range o.Machines {
		if m.ID.Hostname == nil && m.ID.IP == nil {
			return invalidRegistryOp("UpdateMachines: a machine without hostname or IP")
		}
	}
	return nil
}

func (o UpdateMachines) apply(s *RegistryState) {
	for _, m := range o.Machines {
		key := RegistryMachineKey(m.ID)
		if m.Mode == nil || *m.Mode == mesospb.MachineInfo_UP {
			delete(s.Machines, key)
			continue
		}
		s.Machines[key] = registryCanonical(m)
	}
}

func (o UpdateSchedule) apply(s *RegistryState) {
	if len(o.Schedule.Windows) == 0 {
		s.Schedule = nil
		return
	}
	sc := registryCanonical(o.Schedule)
	s.Schedule = &sc
}

// registryTime is t as the registry keeps it: nanoseconds in UTC, so that
// a state read back from a store equals the one it was written from.
func registryTime(t time.Time) time.Time { return time.Unix(0, t.UnixNano()).UTC() }

func registryTimeInfo(t time.Time) mesospb.TimeInfo {
	return mesospb.TimeInfo{Nanoseconds: t.UnixNano()}
}

func registryFromTimeInfo(t mesospb.TimeInfo) time.Time { return time.Unix(0, t.Nanoseconds).UTC() }

// registryCanonical deep-copies a wire message through its encoding, which also
// makes it canonical (empty slices decode as nil), so a state applied in
// memory equals the same state read back from a store.
func registryCanonical[T any, P interface {
	*T
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}](v T) T {
	b, err := P(&v).Marshal()
	if err != nil {
		panic(fmt.Sprintf("master: %T does not encode: %v", v, err)) // only a generator bug can fail here
	}
	var out T
	if err := P(&out).Unmarshal(b); err != nil {
		panic(fmt.Sprintf("master: %T does not decode: %v", v, err))
	}
	return out
}

func registryCloneAgentInfo(info mesospb.AgentInfo) mesospb.AgentInfo { return registryCanonical(info) }

func registryCloneQuotaConfig(c masterpb.QuotaConfig) masterpb.QuotaConfig {
	return registryCanonical(c)
}

// Encoding: the stores keep states as internalpb.Registry and batches as
// internalpb.RegistryBatch.

func (o AdmitAgent) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_ADMIT_AGENT
	return internalpb.RegistryOperation{Type: &t, AdmitAgent: &internalpb.RegistryOperation_AdmitAgent{Info: o.Info}}
}

func (o MarkAgentUnreachable) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_MARK_AGENT_UNREACHABLE
	return internalpb.RegistryOperation{Type: &t, MarkAgentUnreachable: &internalpb.RegistryOperation_MarkAgentUnreachable{
		ID: mesospb.AgentID{Value: o.AgentID}, Timestamp: registryTimeInfo(o.Time)}}
}

func (o MarkAgentGone) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_MARK_AGENT_GONE
	return internalpb.RegistryOperation{Type: &t, MarkAgentGone: &internalpb.RegistryOperation_MarkAgentGone{
		ID: mesospb.AgentID{Value: o.AgentID}, Timestamp: registryTimeInfo(o.Time)}}
}

func (o RemoveAgent) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_REMOVE_AGENT
	return internalpb.RegistryOperation{Type: &t, RemoveAgent: &internalpb.RegistryOperation_RemoveAgent{
		ID: mesospb.AgentID{Value: o.AgentID}}}
}

func (o PruneAgents) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_PRUNE_AGENTS
	p := &internalpb.RegistryOperation_PruneAgents{}
	for _, id := range o.AgentIDs {
		p.IDs = append(p.IDs, mesospb.AgentID{Value: id})
	}
	return internalpb.RegistryOperation{Type: &t, PruneAgents: p}
}

func (o UpdateWeights) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_UPDATE_WEIGHTS
	u := &internalpb.RegistryOperation_UpdateWeights{}
	for _, role := range registrySortedKeys(o.Weights) {
		u.Weights = append(u.Weights, mesospb.WeightInfo{Role: &role, Weight: o.Weights[role]})
	}
	return internalpb.RegistryOperation{Type: &t, UpdateWeights: u}
}

func (o UpdateQuotas) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_UPDATE_QUOTAS
	return internalpb.RegistryOperation{Type: &t, UpdateQuotas: &internalpb.RegistryOperation_UpdateQuotas{Configs: o.Configs}}
}

func (o UpdateSchedule) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_UPDATE_SCHEDULE
	return internalpb.RegistryOperation{Type: &t, UpdateSchedule: &internalpb.RegistryOperation_UpdateSchedule{Schedule: o.Schedule}}
}

func (o UpdateMachines) toProto() internalpb.RegistryOperation {
	t := internalpb.RegistryOperation_UPDATE_MACHINES
	return internalpb.RegistryOperation{Type: &t, UpdateMachines: &internalpb.RegistryOperation_UpdateMachines{Machines: o.Machines}}
}

func registrySortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// encodeRegistryBatch encodes the operations of one Apply.
func encodeRegistryBatch(ops []RegistryOp) ([]byte, error) {
	b := internalpb.RegistryBatch{Operations: make([]internalpb.RegistryOperation, len(ops))}
	for i, op := range ops {
		b.Operations[i] = op.toProto()
	}
	return b.Marshal()
}

// decodeRegistryBatch decodes a batch; anything it cannot understand is
// ErrRegistryCorrupt.
func decodeRegistryBatch(data []byte) ([]RegistryOp, error) {
	var b internalpb.RegistryBatch
	if err := b.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("%w: batch: %v", ErrRegistryCorrupt, err)
	}
	ops := make([]RegistryOp, 0, len(b.Operations))
	for i, p := range b.Operations {
		op, err := registryOpFromProto(p)
		if err != nil {
			return nil, fmt.Errorf("%w: batch operation %d: %v", ErrRegistryCorrupt, i, err)
		}
		ops = append(ops, op)
	}
	if err := validateRegistryOps(ops); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRegistryCorrupt, err)
	}
	return ops, nil
}

func registryOpFromProto(p internalpb.RegistryOperation) (RegistryOp, error) {
	switch p.GetType() {
	case internalpb.RegistryOperation_ADMIT_AGENT:
		if p.AdmitAgent != nil {
			return AdmitAgent{Info: p.AdmitAgent.Info}, nil
		}
	case internalpb.RegistryOperation_MARK_AGENT_UNREACHABLE:
		if u := p.MarkAgentUnreachable; u != nil {
			return MarkAgentUnreachable{AgentID: u.ID.Value, Time: registryFromTimeInfo(u.Timestamp)}, nil
		}
	case internalpb.RegistryOperation_MARK_AGENT_GONE:
		if g := p.MarkAgentGone; g != nil {
			return MarkAgentGone{AgentID: g.ID.Value, Time: registryFromTimeInfo(g.Timestamp)}, nil
		}
	case internalpb.RegistryOperation_REMOVE_AGENT:
		if r := p.RemoveAgent; r != nil {
			return RemoveAgent{AgentID: r.ID.Value}, nil
		}
	case internalpb.RegistryOperation_PRUNE_AGENTS:
		if r := p.PruneAgents; r != nil {
			op := PruneAgents{AgentIDs: make([]string, len(r.IDs))}
			for i, id := range r.IDs {
				op.AgentIDs[i] = id.Value
			}
			return op, nil
		}
	case internalpb.RegistryOperation_UPDATE_WEIGHTS:
		if u := p.UpdateWeights; u != nil {
			op := UpdateWeights{Weights: make(map[string]float64, len(u.Weights))}
			for _, w := range u.Weights {
				op.Weights[w.GetRole()] = w.Weight
			}
			return op, nil
		}
	case internalpb.RegistryOperation_UPDATE_QUOTAS:
		if u := p.UpdateQuotas; u != nil {
			return UpdateQuotas{Configs: u.Configs}, nil
		}
	case internalpb.RegistryOperation_UPDATE_SCHEDULE:
		if u := p.UpdateSchedule; u != nil {
			return UpdateSchedule{Schedule: u.Schedule}, nil
		}
	case internalpb.RegistryOperation_UPDATE_MACHINES:
		if u := p.UpdateMachines; u != nil {
			return UpdateMachines{Machines: u.Machines}, nil
		}
	default:
		return nil, fmt.Errorf("unknown operation type %v", p.GetType())
	}
	return nil, fmt.Errorf("operation %v without its body", p.GetType())
}

// encodeRegistryState encodes a whole state, in a fixed order so that the
// same state always gives the same bytes.
func encodeRegistryState(s *RegistryState) ([]byte, error) {
	var r internalpb.Registry
	r.Agents = make([]internalpb.Registry_Agent, 0, len(s.Agents))
	for _, id := range registrySortedKeys(s.Agents) {
		r.Agents = append(r.Agents, internalpb.Registry_Agent{Info: s.Agents[id]})
	}
	for _, id := range registrySortedKeys(s.Unreachable) {
		u := s.Unreachable[id]
		r.Unreachable = append(r.Unreachable, internalpb.Registry_UnreachableAgent{
			ID: mesospb.AgentID{Value: id}, Timestamp: registryTimeInfo(u.Time), Info: u.Info})
	}
	for _, id := range registrySortedKeys(s.Gone) {
		r.Gone = append(r.Gone, internalpb.Registry_GoneAgent{ID: mesospb.AgentID{Value: id}, Timestamp: registryTimeInfo(s.Gone[id])})
	}
	for _, role := range registrySortedKeys(s.Weights) {
		r.Weights = append(r.Weights, mesospb.WeightInfo{Role: &role, Weight: s.Weights[role]})
	}
	for _, role := range registrySortedKeys(s.Quotas) {
		r.QuotaConfigs = append(r.QuotaConfigs, s.Quotas[role])
	}
	r.Schedule = s.Schedule
	for _, key := range registrySortedKeys(s.Machines) {
		r.Machines = append(r.Machines, s.Machines[key])
	}
	return r.Marshal()
}

// decodeRegistryState decodes a state written by encodeRegistryState.
func decodeRegistryState(data []byte) (*RegistryState, error) {
	var r internalpb.Registry
	if err := r.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrRegistryCorrupt, err)
	}
	s := NewRegistryState()
	for _, a := range r.Agents {
		if a.Info.ID == nil || a.Info.ID.Value == "" {
			return nil, fmt.Errorf("%w: snapshot: an agent without an ID", ErrRegistryCorrupt)
		}
		s.Agents[a.Info.ID.Value] = a.Info
	}
	for _, u := range r.Unreachable {
		s.Unreachable[u.ID.Value] = UnreachableAgent{Time: registryFromTimeInfo(u.Timestamp), Info: u.Info}
	}
	for _, g := range r.Gone {
		s.Gone[g.ID.Value] = registryFromTimeInfo(g.Timestamp)
	}
	for _, w := range r.Weights {
		s.Weights[w.GetRole()] = w.Weight
	}
	for _, q := range r.QuotaConfigs {
		s.Quotas[q.Role] = q
	}
	s.Schedule = r.Schedule
	for _, m := range r.Machines {
		s.Machines[RegistryMachineKey(m.ID)] = m
	}
	return s, nil
}

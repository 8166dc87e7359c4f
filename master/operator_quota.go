package master

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/apronhq/apron/allocator"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

// Quota through the operator API, as Mesos 1.9+ has it: UPDATE_QUOTA sets
// guarantees and limits of several roles at once, all or nothing; SET_QUOTA
// and REMOVE_QUOTA are the legacy calls (a guarantee that is also the
// limit); GET_QUOTA reports them. The allocator keeps the quotas and
// enforces them; the master validates, runs Mesos's checks (unless
// forced, a limit must hold what the role already consumes and the
// guarantees must fit in the cluster) and rescinds the offers that stand in
// a new quota's way.
//
// Apron departs from Mesos 1.9 where its allocator goes further: quota may
// be set on nested roles ("eng/backend"), where Mesos refuses, and a
// parent's guarantee need not cover its children's (a guaranteed role
// needs the larger of its own guarantee and what its guaranteed
// descendants need together).

// Mesos's bounds on quota amounts, which keep its fixed-point sums from
// overflowing: mem and disk up to an exabyte in MB, anything else up to a
// trillion.
const (
	maxQuotaMegabytes = 1 << 40
	maxQuotaOther     = 1e12
)

// quotaScalar checks one amount of a guarantee or limit.
func quotaScalar(what, name string, v float64) (resources.Scalar, error) {
	switch {
	case name == "":
		return 0, fmt.Errorf("%s: a resource without a name", what)
	case name == resources.NamePorts:
		return 0, fmt.Errorf("%s: %q is not a scalar resource; quota applies to scalar resources only", what, name)
	case math.IsNaN(v):
		return 0, fmt.Errorf("invalid %s configuration {'%s': %v}: NaN not supported", what, name, v)
	case math.IsInf(v, 0):
		return 0, fmt.Errorf("invalid %s configuration {'%s': %v}: Infinite values not supported", what, name, v)
	case v < 0:
		return 0, fmt.Errorf("invalid %s configuration {'%s': %v}: Negative values not supported", what, name, v)
	case (name == resources.NameMem || name == resources.NameDisk) && v > maxQuotaMegabytes:
		return 0, fmt.Errorf("invalid %s configuration {'%s': %v}: values greater than 1 exabyte (%d) are not supported", what, name, v, int64(maxQuotaMegabytes))
	case name != resources.NameMem && name != resources.NameDisk && v > maxQuotaOther:
		return 0, fmt.Errorf("invalid %s configuration {'%s': %v}: values greater than 1 trillion (%d) are not supported", what, name, v, int64(maxQuotaOther))
	}
	return resources.ScalarOf(v), nil
}

// validateQuota checks a quota as Mesos checks a QuotaConfig: a valid role
// other than "*", amounts within bounds, and no guarantee above the limit
// of the same resource (a resource without a limit is unlimited).
func validateQuota(role string, q allocator.Quota) error {
	if err := resources.ValidateRole(role); err != nil {
		return fmt.Errorf("invalid 'QuotaConfig.role': %w", err)
	}
	if role == "*" {
		return fmt.Errorf("invalid 'QuotaConfig.role': role \"*\" takes no quota")
	}
	for _, part := range []struct {
		what    string
		amounts allocator.Quantities
	}{{"guarantee", q.Guarantee}, {"limit", q.Limit}} {
		for _, name := range sortedKeys(part.amounts) {
			if _, err := quotaScalar(part.what, name, part.amounts[name].Float64()); err != nil {
				return fmt.Errorf("role %q: %w", role, err)
			}
		}
	}
	for _, name := range sortedKeys(q.Guarantee) {
		if l, ok := q.Limit[name]; ok && q.Guarantee[name] > l {
			return fmt.Errorf("role %q: 'QuotaConfig.guarantees' %s is not contained within the 'QuotaConfig.limits' %s",
				role, formatQuantities(q.Guarantee), formatQuantities(q.Limit))
		}
	}
	return nil
}

// quotaFromConfig converts and validates one QuotaConfig.
func quotaFromConfig(cfg masterpb.QuotaConfig) (allocator.Quota, error) {
	q := allocator.Quota{Guarantee: allocator.Quantities{}, Limit: allocator.Quantities{}}
	for _, part := range []struct {
		what string
		in   map[string]mesospb.Value_Scalar
		out  allocator.Quantities
	}{{"guarantee", cfg.Guarantees, q.Guarantee}, {"limit", cfg.Limits, q.Limit}} {
		for _, name := range sortedKeys(part.in) {
			v, err := quotaScalar(part.what, name, part.in[name].Value)
			if err != nil {
				return q, fmt.Errorf("role %q: %w", cfg.Role, err)
			}
			part.out[name] = v
		}
	}
	return q, validateQuota(cfg.Role, q)
}

// isDefaultQuota reports a quota that is no quota: no guarantee worth
// anything and no limit at all.
func isDefaultQuota(q allocator.Quota) bool { return !hasGuarantee(q) && len(q.Limit) == 0 }

// hasGuarantee reports a quota that guarantees something.
func hasGuarantee(q allocator.Quota) bool {
	for _, v := range q.Guarantee {
		if v > 0 {
			return true
		}
	}
	return false
}

// quotaStatus reports the quotas set: configs, and the legacy infos
// (guarantees only) for clients older than Mesos 1.9.
func (c *core) quotaStatus() masterpb.QuotaStatus {
	quotas := c.alloc.Quotas()
	st := masterpb.QuotaStatus{}
	for _, role := range sortedKeys(quotas) {
		q := quotas[role]
		cfg := quotaConfig(role, q)
		info := masterpb.QuotaInfo{Role: ptr(role)}
		for _, name := range sortedKeys(q.Guarantee) {
			v := cfg.Guarantees[name]
			info.Guarantee = append(info.Guarantee, mesospb.Resource{Name: name, Type: mesospb.Value_SCALAR, Scalar: &v})
		}
		st.Configs = append(st.Configs, cfg)
		// Deprecated in the protocol, still filled for old clients, as
		// Mesos does.
		st.Infos = append(st.Infos, info)
	}
	return st
}

// quotaConfig is a role's quota as UPDATE_QUOTA carries it.
func quotaConfig(role string, q allocator.Quota) masterpb.QuotaConfig {
	cfg := masterpb.QuotaConfig{Role: role}
	for _, name := range sortedKeys(q.Guarantee) {
		if cfg.Guarantees == nil {
			cfg.Guarantees = map[string]mesospb.Value_Scalar{}
		}
		cfg.Guarantees[name] = mesospb.Value_Scalar{Value: q.Guarantee[name].Float64()}
	}
	for _, name := range sortedKeys(q.Limit) {
		if cfg.Limits == nil {
			cfg.Limits = map[string]mesospb.Value_Scalar{}
		}
		cfg.Limits[name] = mesospb.Value_Scalar{Value: q.Limit[name].Float64()}
	}
	return cfg
}

// updateQuota applies UPDATE_QUOTA: every config is validated, and unless
// forced each limit checked against the role's consumption and the
// guarantees against the cluster's capacity, before any is applied. A
// config without guarantees or limits removes the role's quota.
func (c *core) updateQuota(u *masterpb.Call_UpdateQuota) error {
	proposed := c.alloc.Quotas()
	changes := make(map[string]allocator.Quota, len(u.QuotaConfigs))
	for i, cfg := range u.QuotaConfigs {
		if _, dup := changes[cfg.Role]; dup {
			return fmt.Errorf("%w: invalid QuotaConfig: role %q is listed twice", ErrInvalidCall, cfg.Role)
		}
		q, err := quotaFromConfig(cfg)
		if err != nil {
			return fmt.Errorf("%w: invalid QuotaConfig (update_quota.quota_configs[%d]): %v", ErrInvalidCall, i, err)
		}
		if err := c.quotaNamesScalar(q); err != nil {
			return fmt.Errorf("%w: invalid QuotaConfig (update_quota.quota_configs[%d]): role %q: %v", ErrInvalidCall, i, cfg.Role, err)
		}
		if !u.GetForce() {
			if err := c.limitCheck(cfg.Role, q.Limit); err != nil {
				return fmt.Errorf("%w: invalid QuotaConfig: %v (use 'force' flag to bypass this check)", ErrInvalidCall, err)
			}
		}
		changes[cfg.Role] = q
		if isDefaultQuota(q) {
			delete(proposed, cfg.Role)
		} else {
			proposed[cfg.Role] = q
		}
	}
	if !u.GetForce() {
		if err := c.capacityCheck(proposed); err != nil {
			return fmt.Errorf("%w: invalid QuotaConfig: %v (use 'force' flag to bypass this check)", ErrInvalidCall, err)
		}
	}
	return c.applyQuotas(changes)
}

// setQuota applies the legacy SET_QUOTA: the guarantee is also the limit,
// as Mesos 1.9 treats it, and the role must have no quota yet.
func (c *core) setQuota(s *masterpb.Call_SetQuota) error {
	req := s.QuotaRequest
	const prefix = "failed to validate set quota request"
	if req.Role == nil {
		return fmt.Errorf("%w: %s: QuotaInfo must specify a role", ErrInvalidCall, prefix)
	}
	role := req.GetRole()
	if err := resources.ValidateRole(role); err != nil {
		return fmt.Errorf("%w: %s: QuotaInfo with invalid role: %v", ErrInvalidCall, prefix, err)
	}
	if len(req.Guarantee) == 0 {
		return fmt.Errorf("%w: %s: QuotaInfo with empty 'guarantee'", ErrInvalidCall, prefix)
	}
	q := allocator.Quota{Guarantee: allocator.Quantities{}, Limit: allocator.Quantities{}}
	for _, r := range req.Guarantee {
		switch {
		case len(r.Reservations) > 0 || r.Role != nil && r.GetRole() != "*" || r.Reservation != nil:
			return fmt.Errorf("%w: %s: QuotaInfo must not contain any ReservationInfo", ErrInvalidCall, prefix)
		case r.Disk != nil:
			return fmt.Errorf("%w: %s: QuotaInfo must not contain DiskInfo", ErrInvalidCall, prefix)
		case r.Revocable != nil:
			return fmt.Errorf("%w: %s: QuotaInfo must not contain RevocableInfo", ErrInvalidCall, prefix)
		case r.Type != mesospb.Value_SCALAR || r.Scalar == nil:
			return fmt.Errorf("%w: %s: QuotaInfo must not include non-scalar resources", ErrInvalidCall, prefix)
		}
		if _, dup := q.Guarantee[r.Name]; dup {
			return fmt.Errorf("%w: %s: QuotaInfo contains duplicate resource name '%s'", ErrInvalidCall, prefix, r.Name)
		}
		v, err := quotaScalar("guarantee", r.Name, r.Scalar.Value)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidCall, prefix, err)
		}
		q.Guarantee[r.Name], q.Limit[r.Name] = v, v
	}
	if err := validateQuota(role, q); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidCall, prefix, err)
	}
	if err := c.quotaNamesScalar(q); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidCall, prefix, err)
	}
	proposed := c.alloc.Quotas()
	if _, ok := proposed[role]; ok {
		return fmt.Errorf("%w: %s: cannot set quota for role '%s' which already has quota", ErrInvalidCall, prefix, role)
	}
	proposed[role] = q
	if !req.GetForce() {
		if err := c.capacityCheck(proposed); err != nil {
			return fmt.Errorf("%w: quota guarantees overcommit the cluster (use 'force' to bypass this check): %v", ErrInvalidCall, err)
		}
	}
	return c.applyQuotas(map[string]allocator.Quota{role: q})
}

// removeQuota applies the legacy REMOVE_QUOTA.
func (c *core) removeQuota(r *masterpb.Call_RemoveQuota) error {
	if _, ok := c.alloc.Quotas()[r.Role]; !ok {
		return fmt.Errorf("%w: failed to remove quota: role '%s' has no quota set", ErrInvalidCall, r.Role)
	}
	return c.applyQuotas(map[string]allocator.Quota{r.Role: {}})
}

// quotaNamesScalar refuses quota on a resource some agent has as ranges or
// a set: such a quota could never be counted.
func (c *core) quotaNamesScalar(q allocator.Quota) error {
	for _, a := range c.agents {
		for _, r := range a.total {
			if r.Type == resources.TypeScalar {
				continue
			}
			_, g := q.Guarantee[r.Name]
			_, l := q.Limit[r.Name]
			if g || l {
				return fmt.Errorf("%q is a %s resource; quota applies to scalar resources only", r.Name, r.Type)
			}
		}
	}
	return nil
}

// limitCheck refuses, as Mesos does unless forced, a limit below what the
// role already consumes outside outstanding offers (which a lower limit
// rescinds): its reservations and those of its sub-roles, allocated or not,
// and the unreserved, non-revocable scalars their tasks and executors hold.
func (c *core) limitCheck(role string, limit allocator.Quantities) error {
	if len(limit) == 0 {
		return nil
	}
	consumed := allocator.Quantities{}
	for _, a := range c.agents {
		for _, r := range a.total {
			if r.Type == resources.TypeScalar && len(r.Reservations) > 0 && resources.IsSubroleOrSelf(r.Role(), role) {
				consumed[r.Name] = consumed[r.Name].Add(r.Scalar)
			}
		}
	}
	held := func(r resources.Resource) bool {
		return r.Type == resources.TypeScalar && len(r.Reservations) == 0 && !r.Revocable &&
			resources.IsSubroleOrSelf(r.AllocationRole, role)
	}
	for _, fw := range c.frameworks {
		for _, rs := range c.alloc.Allocation(fw.id) {
			for _, r := range rs {
				if held(r) {
					consumed[r.Name] = consumed[r.Name].Add(r.Scalar)
				}
			}
		}
	}
	for _, o := range c.offers {
		for _, r := range o.resources {
			if held(r) {
				consumed[r.Name] = consumed[r.Name].Sub(r.Scalar)
			}
		}
	}
	for _, name := range sortedKeys(limit) {
		if consumed[name] > limit[name] {
			for n, v := range consumed {
				if v == 0 {
					delete(consumed, n)
				}
			}
			return fmt.Errorf("role '%s' is already consuming '%s'; this is more than the requested limits '%s'",
				role, formatQuantities(consumed), formatQuantities(limit))
		}
	}
	return nil
}

// capacityCheck is Mesos's capacity heuristic: the guarantees, counted once
// across the role tree, must fit in the non-revocable scalar resources of
// every agent the master knows, connected or not (a disconnection is
// usually brief, and leaving its agent out would make the check flap).
func (c *core) capacityCheck(quotas map[string]allocator.Quota) error {
	capacity := allocator.Quantities{}
	for _, a := range c.agents {
		for _, r := range a.total.NonRevocable() {
			if r.Type == resources.TypeScalar {
				capacity[r.Name] = capacity[r.Name].Add(r.Scalar)
			}
		}
	}
	total := totalGuarantees(quotas)
	for _, name := range sortedKeys(total) {
		if total[name] > capacity[name] {
			return fmt.Errorf("total quota guarantees '%s' exceed cluster capacity '%s'",
				formatQuantities(total), formatQuantities(capacity))
		}
	}
	return nil
}

// totalGuarantees sums what the guarantees set aside, counting a role and
// its guaranteed descendants once: a guaranteed role needs the larger of
// its own guarantee and the sum of what its nearest guaranteed descendants
// need, as the allocator reckons it.
func totalGuarantees(quotas map[string]allocator.Quota) allocator.Quantities {
	guaranteed := make([]string, 0, len(quotas))
	for role, q := range quotas {
		if hasGuarantee(q) {
			guaranteed = append(guaranteed, role)
		}
	}
	// Deepest first, so each role's need is complete before its
	// ancestors read it.
	slices.SortFunc(guaranteed, func(a, b string) int {
		if da, db := strings.Count(a, "/"), strings.Count(b, "/"); da != db {
			return db - da
		}
		return strings.Compare(a, b)
	})
	need := map[string]allocator.Quantities{}
	total := allocator.Quantities{}
	for _, role := range guaranteed {
		n := maps.Clone(quotas[role].Guarantee)
		for name, v := range need[role] { // what its descendants need
			n[name] = max(n[name], v)
		}
		up := ""
		for p := parentRole(role); p != ""; p = parentRole(p) {
			if hasGuarantee(quotas[p]) {
				up = p
				break
			}
		}
		into := total
		if up != "" {
			if need[up] == nil {
				need[up] = allocator.Quantities{}
			}
			into = need[up]
		}
		for name, v := range n {
			into[name] = into[name].Add(v)
		}
	}
	for name, v := range total {
		if v == 0 {
			delete(total, name)
		}
	}
	return total
}

// parentRole is the parent of a role path, or "" for a top-level role.
func parentRole(role string) string {
	if i := strings.LastIndexByte(role, '/'); i >= 0 {
		return role[:i]
	}
	return ""
}

// applyQuotas sets the quotas, all or none: should the allocator refuse
// one, those already set are put back. Then it rescinds the offers that
// stand in the way of the new quotas, and has every agent looked at again.
func (c *core) applyQuotas(changes map[string]allocator.Quota) error {
	before := c.alloc.Quotas()
	roles := sortedKeys(changes)
	for i, role := range roles {
		if err := c.alloc.SetQuota(role, changes[role]); err != nil {
			for _, undo := range roles[:i] {
				_ = c.alloc.SetQuota(undo, before[undo]) // a quota it held before
			}
			return fmt.Errorf("%w: invalid QuotaConfig: role %q: %v", ErrInvalidCall, role, err)
		}
	}
	for _, role := range roles {
		c.rescindForQuota(role, before[role], changes[role])
	}
	c.markAllAgentsDirty()
	c.reg.settingsDirty = true
	c.log.Info("quota updated", "roles", roles)
	return nil
}

// rescindForQuota rescinds outstanding offers so that a role's new quota
// takes effect now rather than when the offers are answered. Offers count
// against a limit as soon as they are made, so every offer to the role or
// a sub-role goes back when it gets a lower limit. For a larger guarantee,
// Mesos's rule: all offers of one agent after another (agents in ID order
// here), until what was rescinded holds the guarantee and at least as many
// agents were freed as the role has active frameworks, each of which then
// may get one.
func (c *core) rescindForQuota(role string, old, q allocator.Quota) {
	lower, more := false, false
	for name, l := range q.Limit {
		if was, ok := old.Limit[name]; !ok || l < was {
			lower = true
		}
	}
	for name, g := range q.Guarantee {
		if g > old.Guarantee[name] {
			more = true
		}
	}
	if lower {
		for _, id := range sortedKeys(c.offers) {
			if o := c.offers[id]; o != nil && resources.IsSubroleOrSelf(o.role, role) {
				c.rescindOffer(o)
			}
		}
	}
	if !more {
		return
	}
	frameworks := 0
	for _, fw := range c.frameworks {
		if fw.stream != "" && slices.Contains(fw.roles, role) {
			frameworks++
		}
	}
	rescinded := allocator.Quantities{}
	enough := func() bool {
		for name, v := range q.Guarantee {
			if rescinded[name] < v {
				return false
			}
		}
		return true
	}
	visited := 0
	for _, id := range sortedKeys(c.agents) {
		if enough() && visited >= frameworks {
			return
		}
		a := c.agents[id]
		if a.stream == "" || len(a.offers) == 0 {
			continue
		}
		for _, oid := range sortedKeys(a.offers) {
			o := a.offers[oid]
			if o == nil {
				continue
			}
			for _, r := range o.resources {
				if r.Type == resources.TypeScalar {
					rescinded[r.Name] = rescinded[r.Name].Add(r.Scalar)
				}
			}
			c.rescindOffer(o)
		}
		visited++
	}
}

// formatQuantities writes quantities as resource text, "cpus:4;mem:2048".
func formatQuantities(q allocator.Quantities) string {
	var b strings.Builder
	for i, name := range sortedKeys(q) {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(q[name].String())
	}
	return b.String()
}

// rolesView is the JSON of GET /roles, the shape of Mesos's /roles
// endpoint: what the operator API's GET_ROLES holds (whose Role message
// has no quota field) plus each role's quota and its consumption.
type rolesView struct {
	Roles []roleView `json:"roles"`
}

type roleView struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
	Quota  struct {
		Role      string             `json:"role"`
		Guarantee map[string]float64 `json:"guarantee"`
		Limit     map[string]float64 `json:"limit"`
		Consumed  map[string]float64 `json:"consumed"`
	} `json:"quota"`
	// Allocated and Offered are counted over the role and its sub-roles;
	// offered resources are part of what is allocated.
	Allocated  map[string]float64 `json:"allocated"`
	Offered    map[string]float64 `json:"offered"`
	Frameworks []string           `json:"frameworks"`
}

func floats[M ~map[string]resources.Scalar](q M) map[string]float64 {
	out := make(map[string]float64, len(q))
	for name, v := range q {
		if v != 0 {
			out[name] = v.Float64()
		}
	}
	return out
}

// rolesView describes every role the allocator knows.
func (c *core) rolesView() rolesView {
	infos := c.alloc.Roles()
	v := rolesView{Roles: make([]roleView, 0, len(infos))}
	for _, ri := range infos {
		r := roleView{Name: ri.Name, Weight: ri.Weight, Allocated: floats(ri.Allocated), Frameworks: ri.Frameworks}
		if r.Frameworks == nil {
			r.Frameworks = []string{}
		}
		r.Quota.Role = ri.Name
		r.Quota.Guarantee, r.Quota.Limit, r.Quota.Consumed = floats(ri.Quota.Guarantee), floats(ri.Quota.Limit), floats(ri.Consumed)
		for name, l := range ri.Quota.Limit {
			if l == 0 {
				r.Quota.Limit[name] = 0 // a zero limit is a limit
			}
		}
		offered := allocator.Quantities{}
		for _, o := range c.offers {
			if !resources.IsSubroleOrSelf(o.role, ri.Name) {
				continue
			}
			for _, res := range o.resources {
				if res.Type == resources.TypeScalar {
					offered[res.Name] = offered[res.Name].Add(res.Scalar)
				}
			}
		}
		r.Offered = floats(offered)
		v.Roles = append(v.Roles, r)
	}
	return v
}

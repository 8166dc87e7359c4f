package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Action is what a subject asks to do, Mesos's authorization::Action.
type Action int

// The actions, named as Mesos names them; each says what its Object
// carries.
const (
	ActionUnknown Action = iota
	// RegisterFramework: Object.FrameworkInfo (all its roles), or Value
	// (a role).
	RegisterFramework
	// RunTask: Object.TaskInfo and FrameworkInfo (the task's user, else
	// its executor's, else the framework's).
	RunTask
	// TeardownFramework: Object.FrameworkInfo (its principal), or Value.
	TeardownFramework
	// ReserveResources: Object.Resource (its reservation's role), or
	// Value (a role).
	ReserveResources
	// UnreserveResources: Object.Resource (its reserver's principal), or
	// Value.
	UnreserveResources
	// CreateVolume: Object.Resource (its role), or Value.
	CreateVolume
	// DestroyVolume: Object.Resource (its creator's principal), or Value.
	DestroyVolume
	// ResizeVolume: Object.Resource (its role), or Value.
	ResizeVolume
	// GetQuota: Object.Value, a role.
	GetQuota
	// UpdateQuota: Object.Value, a role.
	UpdateQuota
	// ViewRole: Object.Value, a role.
	ViewRole
	// UpdateWeight: Object.Value, a role.
	UpdateWeight
	// GetEndpoint: Object.Value, the endpoint's path.
	GetEndpoint
	// ViewFramework: Object.FrameworkInfo (its user).
	ViewFramework
	// ViewTask: Object.Task or TaskInfo, and FrameworkInfo (the task's
	// user, else the framework's).
	ViewTask
	// ViewExecutor: Object.ExecutorInfo and FrameworkInfo.
	ViewExecutor
	// AccessSandbox: Object.ExecutorInfo and/or FrameworkInfo.
	AccessSandbox
	// AccessMesosLog: no object.
	AccessMesosLog
	// ViewFlags: no object.
	ViewFlags
	// LaunchNestedContainer: Object.ExecutorInfo/FrameworkInfo (the
	// parent's user) and CommandInfo (the new container's user).
	LaunchNestedContainer
	// KillNestedContainer: Object.ExecutorInfo/FrameworkInfo.
	KillNestedContainer
	// WaitNestedContainer: Object.ExecutorInfo/FrameworkInfo.
	WaitNestedContainer
	// LaunchNestedContainerSession: as LaunchNestedContainer.
	LaunchNestedContainerSession
	// AttachContainerInput: Object.ExecutorInfo/FrameworkInfo.
	AttachContainerInput
	// AttachContainerOutput: Object.ExecutorInfo/FrameworkInfo.
	AttachContainerOutput
	// ViewContainer: Object.ExecutorInfo/FrameworkInfo.
	ViewContainer
	// SetLogLevel: no object.
	SetLogLevel
	// RemoveNestedContainer: Object.ExecutorInfo/FrameworkInfo.
	RemoveNestedContainer
	// RegisterAgent: no object.
	RegisterAgent
	// UpdateMaintenanceSchedule: no object.
	UpdateMaintenanceSchedule
	// GetMaintenanceSchedule: no object.
	GetMaintenanceSchedule
	// StartMaintenance: no object.
	StartMaintenance
	// StopMaintenance: no object.
	StopMaintenance
	// GetMaintenanceStatus: no object.
	GetMaintenanceStatus
	// DrainAgent: no object.
	DrainAgent
	// DeactivateAgent: no object.
	DeactivateAgent
	// ReactivateAgent: no object.
	ReactivateAgent
	// MarkAgentGone: no object.
	MarkAgentGone
	// PruneImages: no object.
	PruneImages
	actionCount
)

var actionNames = [actionCount]string{
	"UNKNOWN", "REGISTER_FRAMEWORK", "RUN_TASK", "TEARDOWN_FRAMEWORK", "RESERVE_RESOURCES",
	"UNRESERVE_RESOURCES", "CREATE_VOLUME", "DESTROY_VOLUME", "RESIZE_VOLUME", "GET_QUOTA",
	"UPDATE_QUOTA", "VIEW_ROLE", "UPDATE_WEIGHT", "GET_ENDPOINT_WITH_PATH", "VIEW_FRAMEWORK",
	"VIEW_TASK", "VIEW_EXECUTOR", "ACCESS_SANDBOX", "ACCESS_MESOS_LOG", "VIEW_FLAGS",
	"LAUNCH_NESTED_CONTAINER", "KILL_NESTED_CONTAINER", "WAIT_NESTED_CONTAINER",
	"LAUNCH_NESTED_CONTAINER_SESSION", "ATTACH_CONTAINER_INPUT", "ATTACH_CONTAINER_OUTPUT",
	"VIEW_CONTAINER", "SET_LOG_LEVEL", "REMOVE_NESTED_CONTAINER", "REGISTER_AGENT",
	"UPDATE_MAINTENANCE_SCHEDULE", "GET_MAINTENANCE_SCHEDULE", "START_MAINTENANCE",
	"STOP_MAINTENANCE", "GET_MAINTENANCE_STATUS", "DRAIN_AGENT", "DEACTIVATE_AGENT",
	"REACTIVATE_AGENT", "MARK_AGENT_GONE", "PRUNE_IMAGES",
}

// String is Mesos's name of the action.
func (a Action) String() string {
	if a >= 0 && a < actionCount {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Actions lists every action but ActionUnknown.
func Actions() []Action {
	out := make([]Action, 0, actionCount-1)
	for a := ActionUnknown + 1; a < actionCount; a++ {
		out = append(out, a)
	}
	return out
}

// Subject is who asks: an authenticated principal, or nobody ("": the
// request was not authenticated, which Mesos's authorizer treats as "any
// principal").
type Subject struct {
	Principal string
}

// Object is what an action is done to; which fields count depends on the
// action (see each Action). A nil *Object is "any object", as Mesos's
// absent object.
type Object struct {
	Value         string
	FrameworkInfo *mesospb.FrameworkInfo
	Task          *mesospb.Task
	TaskInfo      *mesospb.TaskInfo
	ExecutorInfo  *mesospb.ExecutorInfo
	Resource      *mesospb.Resource
	CommandInfo   *mesospb.CommandInfo
	ContainerID   *mesospb.ContainerID
}

// Approver decides, for the subject and action it was made for, whether
// each object is allowed. It is pure (no I/O, no blocking), so that a
// state machine can apply it while it filters.
type Approver interface {
	Approved(obj *Object) (bool, error)
}

// ApproverFunc adapts a function to Approver.
type ApproverFunc func(obj *Object) (bool, error)

// Approved calls f.
func (f ApproverFunc) Approved(obj *Object) (bool, error) { return f(obj) }

// Authorizer makes approvers. It may be a remote policy service: Approver
// is where it may block (honouring ctx) and fail; the approvers it
// returns may not.
type Authorizer interface {
	Approver(ctx context.Context, subject Subject, action Action) (Approver, error)
}

// Authorized asks az whether subject may do action to obj, in one call.
func Authorized(ctx context.Context, az Authorizer, subject Subject, action Action, obj *Object) (bool, error) {
	ap, err := az.Approver(ctx, subject, action)
	if err != nil {
		return false, err
	}
	return ap.Approved(obj)
}

// AllowAll is the authorizer of a cluster without ACLs: everything is
// allowed (Mesos without -acls).
type AllowAll struct{}

// Approver approves everything.
func (AllowAll) Approver(context.Context, Subject, Action) (Approver, error) {
	return ApproverFunc(func(*Object) (bool, error) { return true, nil }), nil
}

// Local is Mesos's local authorizer over ACLs.
type Local struct {
	acls *ACLs
}

// NewLocal returns the local authorizer over acls (a nil acls allows
// everything, as Mesos's default permissive).
func NewLocal(acls *ACLs) *Local {
	if acls == nil {
		acls = &ACLs{Permissive: true}
	}
	return &Local{acls: acls}
}

// actionACLs names the ACL kinds each action is decided by: the ACL
// kind of most; the two of a nested container launch (the parent's
// user, then the command's); and whether roles are hierarchical.
var actionACLs = map[Action]struct {
	key, childKey string
	roles         bool
}{
	RegisterFramework:            {key: "register_frameworks", roles: true},
	RunTask:                      {key: "run_tasks"},
	TeardownFramework:            {key: "teardown_frameworks"},
	ReserveResources:             {key: "reserve_resources", roles: true},
	UnreserveResources:           {key: "unreserve_resources"},
	CreateVolume:                 {key: "create_volumes", roles: true},
	DestroyVolume:                {key: "destroy_volumes"},
	ResizeVolume:                 {key: "resize_volumes", roles: true},
	GetQuota:                     {key: "get_quotas", roles: true},
	UpdateQuota:                  {key: "update_quotas", roles: true},
	ViewRole:                     {key: "view_roles", roles: true},
	UpdateWeight:                 {key: "update_weights", roles: true},
	GetEndpoint:                  {key: "get_endpoints"},
	ViewFramework:                {key: "view_frameworks"},
	ViewTask:                     {key: "view_tasks"},
	ViewExecutor:                 {key: "view_executors"},
	AccessSandbox:                {key: "access_sandboxes"},
	AccessMesosLog:               {key: "access_mesos_logs"},
	ViewFlags:                    {key: "view_flags"},
	LaunchNestedContainer:        {key: "launch_nested_containers_under_parent_with_user", childKey: "launch_nested_containers_as_user"},
	KillNestedContainer:          {key: "kill_nested_containers"},
	WaitNestedContainer:          {key: "wait_nested_containers"},
	LaunchNestedContainerSession: {key: "launch_nested_container_sessions_under_parent_with_user", childKey: "launch_nested_container_sessions_as_user"},
	AttachContainerInput:         {key: "attach_containers_input"},
	AttachContainerOutput:        {key: "attach_containers_output"},
	ViewContainer:                {key: "view_containers"},
	SetLogLevel:                  {key: "set_log_level"},
	RemoveNestedContainer:        {key: "remove_nested_containers"},
	RegisterAgent:                {key: "register_agents"},
	UpdateMaintenanceSchedule:    {key: "update_maintenance_schedules"},
	GetMaintenanceSchedule:       {key: "get_maintenance_schedules"},
	StartMaintenance:             {key: "start_maintenances"},
	StopMaintenance:              {key: "stop_maintenances"},
	GetMaintenanceStatus:         {key: "get_maintenance_statuses"},
	DrainAgent:                   {key: "drain_agents"},
	DeactivateAgent:              {key: "deactivate_agents"},
	ReactivateAgent:              {key: "reactivate_agents"},
	MarkAgentGone:                {key: "mark_agents_gone"},
	PruneImages:                  {key: "prune_images"},
}

// Approver returns the approver of subject for action under the ACLs.
func (l *Local) Approver(_ context.Context, subject Subject, action Action) (Approver, error) {
	spec, ok := actionACLs[action]
	if !ok {
		// Mesos: an action it does not know is not authorized.
		return ApproverFunc(func(*Object) (bool, error) { return false, nil }), nil
	}
	who := Entity{Type: Any}
	if subject.Principal != "" {
		who = Entity{Type: Some, Values: []string{subject.Principal}}
	}
	rules := l.acls.Rules[spec.key]
	decide := func(what Entity) bool { return approve(rules, who, what, l.acls.Permissive) }
	if spec.roles {
		return ApproverFunc(func(obj *Object) (bool, error) {
			if obj == nil {
				return approveRole(rules, who, Entity{Type: Any}, l.acls.Permissive), nil
			}
			roles, err := objectRoles(action, obj)
			if err != nil {
				return false, err
			}
			if len(roles) == 0 {
				return l.acls.Permissive, nil
			}
			for _, role := range roles {
				if !approveRole(rules, who, role, l.acls.Permissive) {
					return false, nil
				}
			}
			return true, nil
		}), nil
	}
	if spec.childKey != "" {
		childRules := l.acls.Rules[spec.childKey]
		return ApproverFunc(func(obj *Object) (bool, error) {
			if obj == nil || obj.CommandInfo == nil {
				return decide(objectEntity(action, obj)), nil
			}
			parent := &Object{ExecutorInfo: obj.ExecutorInfo, FrameworkInfo: obj.FrameworkInfo}
			child := &Object{CommandInfo: obj.CommandInfo}
			return decide(objectEntity(action, parent)) &&
				approve(childRules, who, objectEntity(action, child), l.acls.Permissive), nil
		}), nil
	}
	return ApproverFunc(func(obj *Object) (bool, error) {
		return decide(objectEntity(action, obj)), nil
	}), nil
}

// objectEntity is the object of a request, as Mesos's
// LocalAuthorizerObjectApprover makes it.
func objectEntity(action Action, obj *Object) Entity {
	if obj == nil {
		return Entity{Type: Any}
	}
	some := func(v string) Entity { return Entity{Type: Some, Values: []string{v}} }
	switch action {
	case GetEndpoint:
		return some(obj.Value)
	case TeardownFramework:
		switch {
		case obj.FrameworkInfo != nil:
			return some(obj.FrameworkInfo.GetPrincipal())
		case obj.Value != "":
			return some(obj.Value)
		}
	case DestroyVolume:
		switch {
		case obj.Resource != nil:
			return some(obj.Resource.GetDisk().GetPersistence().GetPrincipal())
		case obj.Value != "":
			return some(obj.Value)
		}
	case UnreserveResources:
		switch {
		case obj.Resource != nil:
			if rs := obj.Resource.Reservations; len(rs) > 0 {
				return some(rs[len(rs)-1].GetPrincipal())
			}
			return some(obj.Resource.GetReservation().GetPrincipal())
		case obj.Value != "":
			return some(obj.Value)
		}
	case RunTask:
		switch {
		case obj.TaskInfo != nil && cmdUser(obj.TaskInfo.Command) != nil:
			return some(obj.TaskInfo.Command.GetUser())
		case obj.TaskInfo != nil && obj.TaskInfo.Executor != nil && cmdUser(obj.TaskInfo.Executor.Command) != nil:
			return some(obj.TaskInfo.Executor.GetCommand().GetUser())
		case obj.FrameworkInfo != nil:
			return some(obj.FrameworkInfo.GetUser())
		}
	case ViewFramework:
		if obj.FrameworkInfo != nil {
			return some(obj.FrameworkInfo.GetUser())
		}
	case ViewTask:
		switch {
		case obj.Task != nil && obj.Task.User != nil:
			return some(obj.Task.GetUser())
		case obj.TaskInfo != nil && cmdUser(obj.TaskInfo.Command) != nil:
			return some(obj.TaskInfo.Command.GetUser())
		case obj.TaskInfo != nil && obj.TaskInfo.Executor != nil && cmdUser(obj.TaskInfo.Executor.Command) != nil:
			return some(obj.TaskInfo.Executor.GetCommand().GetUser())
		case obj.FrameworkInfo != nil:
			return some(obj.FrameworkInfo.GetUser())
		}
	case ViewExecutor, AccessSandbox:
		switch {
		case obj.ExecutorInfo != nil && cmdUser(obj.ExecutorInfo.Command) != nil:
			return some(obj.ExecutorInfo.GetCommand().GetUser())
		case obj.FrameworkInfo != nil:
			return some(obj.FrameworkInfo.GetUser())
		}
	case LaunchNestedContainer, LaunchNestedContainerSession:
		if obj.CommandInfo != nil {
			if obj.CommandInfo.User != nil {
				return some(obj.CommandInfo.GetUser())
			}
			return Entity{Type: Any}
		}
		fallthrough
	case ViewContainer:
		switch {
		case obj.ExecutorInfo != nil && cmdUser(obj.ExecutorInfo.Command) != nil:
			return some(obj.ExecutorInfo.GetCommand().GetUser())
		case obj.FrameworkInfo != nil && obj.FrameworkInfo.User != "":
			return some(obj.FrameworkInfo.GetUser())
		}
	case AttachContainerInput, AttachContainerOutput, RemoveNestedContainer, KillNestedContainer, WaitNestedContainer:
		switch {
		case obj.ExecutorInfo != nil && cmdUser(obj.ExecutorInfo.Command) != nil:
			return some(obj.ExecutorInfo.GetCommand().GetUser())
		case obj.FrameworkInfo != nil && obj.FrameworkInfo.User != "":
			return some(obj.FrameworkInfo.GetUser())
		case obj.ContainerID != nil:
			return some(obj.ContainerID.Value)
		}
	}
	return Entity{Type: Any}
}

// cmdUser is a command's user, nil when it names none.
func cmdUser(c *mesospb.CommandInfo) *string {
	if c == nil {
		return nil
	}
	return c.User
}

// objectRoles are the roles of a request on roles, each an entity of
// its own: a framework must be allowed every role it asks for.
func objectRoles(action Action, obj *Object) ([]Entity, error) {
	some := func(v string) []Entity { return []Entity{{Type: Some, Values: []string{v}}} }
	switch action {
	case RegisterFramework:
		if fi := obj.FrameworkInfo; fi != nil {
			var out []Entity
			for _, r := range frameworkRoles(fi) {
				out = append(out, Entity{Type: Some, Values: []string{r}})
			}
			return out, nil
		}
	case CreateVolume, ResizeVolume, ReserveResources:
		if r := obj.Resource; r != nil {
			if len(r.Reservations) > 0 {
				return some(r.Reservations[len(r.Reservations)-1].GetRole()), nil
			}
			return some(r.GetRole()), nil
		}
	case ViewRole, UpdateQuota:
		if obj.Value == "" {
			return nil, fmt.Errorf("auth: %v needs the role in Object.Value", action)
		}
	}
	if obj.Value != "" {
		return some(obj.Value), nil
	}
	return []Entity{{Type: Any}}, nil
}

// frameworkRoles are the roles a framework asks for: Roles with the
// MULTI_ROLE capability, else Role (Mesos's
// protobuf::framework::getRoles).
func frameworkRoles(fi *mesospb.FrameworkInfo) []string {
	for _, c := range fi.Capabilities {
		if c.GetType() == mesospb.FrameworkInfo_Capability_MULTI_ROLE {
			return fi.Roles
		}
	}
	return []string{fi.GetRole()}
}

// approve is Mesos's approval: the first rule whose subject and object
// both match decides; permissive when none does.
func approve(rules []Rule, subject, object Entity, permissive bool) bool {
	for _, r := range rules {
		if matches(subject, r.Principals) && matches(object, r.Objects) {
			return allows(subject, r.Principals) && allows(object, r.Objects)
		}
	}
	return permissive
}

// approveRole is approve with hierarchical roles: a rule whose one role
// ends in "/%" covers every role nested under its prefix (not the
// prefix itself).
func approveRole(rules []Rule, subject, object Entity, permissive bool) bool {
	anyObject := Entity{Type: Any}
	for _, r := range rules {
		if !recursive(r) {
			if matches(subject, r.Principals) && matches(object, r.Objects) {
				return allows(subject, r.Principals) && allows(object, r.Objects)
			}
			continue
		}
		prefix := strings.TrimSuffix(r.Objects.Values[0], "%")
		if object.Type == Some && strings.HasPrefix(object.Values[0], prefix) {
			if matches(subject, r.Principals) && matches(object, anyObject) {
				return allows(subject, r.Principals) && allows(object, anyObject)
			}
		}
	}
	return permissive
}

func recursive(r Rule) bool {
	return len(r.Objects.Values) == 1 && strings.HasSuffix(r.Objects.Values[0], "/%")
}

// matches is Mesos's match matrix: whether a rule is about a request.
//
//	request \ rule   SOME     NONE   ANY
//	SOME             subset   yes    yes
//	NONE             no       yes    no
//	ANY              no       yes    yes
func matches(request, rule Entity) bool {
	switch request.Type {
	case None:
		return rule.Type == None
	case Any:
		return rule.Type == Any || rule.Type == None
	case Some:
		if rule.Type == Any || rule.Type == None {
			return true
		}
		return subset(request.Values, rule.Values)
	}
	return false
}

// allows is Mesos's allow matrix: whether a rule that is about a request
// lets it through.
//
//	request \ rule   SOME     NONE   ANY
//	SOME             subset   no     yes
//	NONE             no       yes    no
//	ANY              no       no     yes
func allows(request, rule Entity) bool {
	switch request.Type {
	case None:
		return rule.Type == None
	case Any:
		return rule.Type == Any
	case Some:
		switch rule.Type {
		case Any:
			return true
		case None:
			return false
		}
		return subset(request.Values, rule.Values)
	}
	return false
}

func subset(values, of []string) bool {
	for _, v := range values {
		if !slices.Contains(of, v) {
			return false
		}
	}
	return true
}

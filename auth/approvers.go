package auth

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrForbidden: an approver refused a request. Nothing was changed.
	ErrForbidden = errors.New("forbidden")
	// ErrAuthorizerFailed: the authorizer could not answer; the request
	// may be tried again.
	ErrAuthorizerFailed = errors.New("authorization failed")
)

// Approvers are one subject's approvers, by action: what a state machine
// is handed so that it can authorize inside its loop without waiting on
// the authorizer. A nil Approvers allows every action (no authorizer).
type Approvers map[Action]Approver

// GetApprovers asks az for subject's approvers of actions. It may block
// (az may be remote): call it before handing the request to a state
// machine. A nil az gives nil, which allows everything. Its errors wrap
// ErrAuthorizerFailed, or are ctx's.
func GetApprovers(ctx context.Context, az Authorizer, subject Subject, actions ...Action) (Approvers, error) {
	if az == nil || len(actions) == 0 {
		return nil, nil
	}
	out := make(Approvers, len(actions))
	for _, a := range actions {
		if out[a] != nil {
			continue
		}
		ap, err := az.Approver(ctx, subject, a)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: %s for principal '%s': %v", ErrAuthorizerFailed, a, subject.Principal, err)
		}
		out[a] = ap
	}
	return out, nil
}

// Check applies the approver of action to obj; what describes the
// request for the refusal ("launch task t ..."), after "Not authorized
// to ". Refusals wrap ErrForbidden and name the action. An approver that
// was not asked for refuses: a bug, not a hole.
func (ap Approvers) Check(action Action, obj *Object, what string) error {
	if ap == nil {
		return nil
	}
	a := ap[action]
	if a == nil {
		return fmt.Errorf("%w: Not authorized to %s (%s)", ErrForbidden, what, action)
	}
	ok, err := a.Approved(obj)
	switch {
	case err != nil:
		return fmt.Errorf("%w: Authorization of %s failed: %v", ErrForbidden, action, err)
	case !ok:
		return fmt.Errorf("%w: Not authorized to %s (%s)", ErrForbidden, what, action)
	}
	return nil
}

// Allows is Check as a yes or no, for filtering.
func (ap Approvers) Allows(action Action, obj *Object) bool {
	return ap.Check(action, obj, "") == nil
}

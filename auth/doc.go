// Package auth is Apron's authentication and authorization, compatible with
// Mesos's flags and file formats so that an operator's configuration
// carries over.
//
// Authentication answers "who sent this request?". An Authenticator looks
// at an HTTP request and returns its principal; Basic is Mesos's "basic"
// HTTP authenticator over a credentials file (ReadCredentials: Mesos's
// JSON {"credentials":[{"principal":…,"secret":…}]} or the plain-text
// "principal secret" lines of older Mesos). A request without a valid
// credential gets 401 with a WWW-Authenticate challenge naming the realm,
// and nothing about which part was wrong.
//
// Authorization answers "may this principal do this to that?". An
// Authorizer gives, for one subject and one Action, an Approver: a pure
// predicate over the action's objects (a role, a FrameworkInfo, a task).
// The split is Mesos's ObjectApprover, and it is what lets Apron's pure
// state machines authorize: the shell asks the Authorizer (which may be a
// remote policy service) for approvers, and the core applies them to as
// many objects as it must filter, with no I/O. Local is Mesos's local
// authorizer over ACLs in Mesos's JSON (ReadACLs), with its matching rules:
// the first ACL whose subject and object both match decides, and
// permissive decides when none does.
package auth

package internalpb

import "fmt"

// CallError is the error of one call in a batch of agent calls (a master's
// AgentCalls, or one request carrying several calls): the call at Index
// failed with Err, the calls before it were applied and the calls after it
// were not tried. Callers that want to go on as if the calls had been sent
// one at a time resend from Index+1.
type CallError struct {
	Index int
	Err   error
}

func (e *CallError) Error() string { return fmt.Sprintf("call %d: %v", e.Index, e.Err) }

// Unwrap makes errors.Is and errors.As see the call's own error.
func (e *CallError) Unwrap() error { return e.Err }

package agentcore

import (
	"time"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// The agent's decisions when it recovers an earlier run's executors from
// its checkpoints, as Mesos's Slave::recover and Slave::_recover make
// them: what becomes of each executor run, how the tasks it cannot bring
// back end, and how long an executor process has to subscribe again.

// Recovery is what becomes of a recovered executor run.
type Recovery int

const (
	// RecoverEnded: it has no queued or live task; it is terminated
	// again, since its end may not have reached the master.
	RecoverEnded Recovery = iota + 1
	// RecoverReattach: a built-in executor (command, default) starts
	// anew in the agent and takes over the task containers that
	// survived; the tasks whose containers did not end with Ending.
	RecoverReattach
	// RecoverAwait: its executor process lives on and must subscribe
	// again within the re-registration window.
	RecoverAwait
	// RecoverGone: it did not survive; its tasks end with Ending. Cleanup
	// says its process's state directory may hold containers to destroy.
	RecoverGone
)

// RecoveryDecision is the decision on a recovered executor run.
type RecoveryDecision struct {
	Verdict Recovery
	Ending  Ending
	Cleanup bool
}

// DecideRecovery decides a recovered executor run's fate: live says it
// has tasks that are neither terminal nor forgotten; processAlive, for an
// executor process, that its container survived the restart.
func DecideRecovery(kind ExecutorKind, live, processAlive bool) RecoveryDecision {
	gone := func(msg string) Ending {
		return Ending{State: mesospb.TASK_FAILED, Reason: mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED, Message: msg}
	}
	switch {
	case !live:
		return RecoveryDecision{Verdict: RecoverEnded, Ending: gone("The executor did not survive the agent's restart")}
	case kind == KindCommand || kind == KindDefault:
		return RecoveryDecision{Verdict: RecoverReattach, Ending: gone("The task's container did not survive the agent's restart")}
	case kind.Process() && processAlive:
		return RecoveryDecision{Verdict: RecoverAwait}
	case kind.Process():
		return RecoveryDecision{Verdict: RecoverGone, Cleanup: true, Ending: gone("The executor's process did not survive the agent's restart")}
	default:
		// In-process Go executors lived in the old agent's process.
		return RecoveryDecision{Verdict: RecoverGone, Ending: gone("The in-process executor did not survive the agent's restart")}
	}
}

// ForgetRecovered reports whether a recovered task is forgotten at once:
// its end was acknowledged before the restart (its stream is gone, its
// log was left by a stop between the two) and no other run holds its ID.
// Otherwise its run would never be forgotten, nor its sandbox collected.
func ForgetRecovered(state mesospb.TaskState, hasStream, idInUse bool) bool {
	return Terminal(state) && !hasStream && !idInUse
}

// ReregistrationWindow is the time recovered executor processes have to
// subscribe again, counted from the end of recovery: the configured
// timeout, and at least two of the executors' longest subscription
// backoffs. An executor retries its subscription every backoff at most,
// each try starting only once the previous one failed or the agent went
// away; with a window of just one interval (Mesos's defaults, 2 s and
// 2 s), an executor whose last try fell just before the agent could take
// it tries again a few milliseconds after the window closed, and its
// tasks, finished or running, fail (issue 9, item 11). Two intervals
// leave a whole interval for the try's own latency and for one try
// refused while the agent was starting.
func ReregistrationWindow(timeout, backoffMax time.Duration) time.Duration {
	return max(timeout, 2*backoffMax)
}

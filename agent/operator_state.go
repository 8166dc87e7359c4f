package agent

import (
	"log/slog"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// opsState is what the operator API keeps on the loop: the logging
// level's pending revert, WAIT_CONTAINER calls waiting for in-process
// executor runs, and the master the agent last registered with (for the
// state endpoint's master_hostname). The loop owns it.
type opsState struct {
	logging loggingState
	// runWaiters are WAIT_CONTAINER calls on the run of an in-process
	// executor, which has no container of its own; runTerminated answers
	// them.
	runWaiters map[*executorRec][]chan<- runEnd
	// master is the MasterInfo of the last registration, nil before.
	master *mesospb.MasterInfo
	// nested are the streams of the nested containers launched through
	// the operator API, by container ID (operator_nested.go).
	nested map[string]*nestedIO
}

// loggingState is SET_LOGGING_LEVEL's pending revert.
type loggingState struct {
	revert timerID // 0 when no revert is pending
	// original is the level that revert restores: the one before the
	// first SET_LOGGING_LEVEL of those whose revert is pending.
	original slog.Level
	// set is what the last SET_LOGGING_LEVEL set, nil when reverted.
	set *levelSet
}

// levelSet is a glog verbosity and the slog level it became.
type levelSet struct {
	glog uint32
	slog slog.Level
}

// runEnd is how an in-process executor's run ended, for WAIT_CONTAINER.
type runEnd struct {
	message string
}

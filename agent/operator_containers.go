package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/apronhq/apron/api/v1/agentpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/containerizer"
	"github.com/apronhq/apron/internal/agentcore"
	"github.com/apronhq/apron/internal/httpapi"
)

// Operator calls of the agent beyond the read-only GET_* ones in
// operator.go: the logging level (logging.go), GET_OPERATIONS and
// GET_RESOURCE_PROVIDERS, KILL_CONTAINER and WAIT_CONTAINER.
//
// Containers are named as Mesos names them. An executor run's container
// ID is the run's ID (an executor process is one container of the
// containerizer under that name; an in-process executor has none, only its
// tasks'); a task container of a built-in executor is nested in it,
// ContainerID{value: <task>, parent: {value: <run>}}, which is
// "<run>.<task>" to the containerizer, as Mesos prints a ContainerID.

// moreOperatorCalls answers the calls of this file; ok is false for any
// other call.
func (a *Agent) moreOperatorCalls(ctx context.Context, call *agentpb.Call) (resp *agentpb.Response, ok bool, err error) {
	switch call.GetType() {
	case agentpb.Call_GET_LOGGING_LEVEL, agentpb.Call_SET_LOGGING_LEVEL:
		resp, err = a.loggingCall(ctx, call)
	case agentpb.Call_GET_OPERATIONS:
		// Mesos lists the operations of its agent's resource providers
		// and of operator-driven operations with feedback; Apron's agent
		// has neither, so the list is always empty, as Mesos's is for an
		// agent with none.
		resp = &agentpb.Response{Type: agentpb.Response_GET_OPERATIONS.Enum(), GetOperations: &agentpb.Response_GetOperations{}}
	case agentpb.Call_GET_RESOURCE_PROVIDERS:
		// Apron has no resource providers: the list Mesos answers for an
		// agent with none.
		resp = &agentpb.Response{Type: agentpb.Response_GET_RESOURCE_PROVIDERS.Enum(), GetResourceProviders: &agentpb.Response_GetResourceProviders{}}
	case agentpb.Call_PRUNE_IMAGES:
		resp, err = a.pruneImagesCall(ctx, call) // operator_images.go
	case agentpb.Call_KILL_CONTAINER:
		resp, err = a.killContainerCall(ctx, call.GetKillContainer())
	case agentpb.Call_WAIT_CONTAINER:
		resp, err = a.waitContainerCall(ctx, call.GetWaitContainer())
	case agentpb.Call_KILL_NESTED_CONTAINER:
		resp, err = a.killNestedContainerCall(ctx, call.GetKillNestedContainer())
	case agentpb.Call_WAIT_NESTED_CONTAINER:
		resp, err = a.waitNestedContainerCall(ctx, call.GetWaitNestedContainer())
	case agentpb.Call_LAUNCH_NESTED_CONTAINER, agentpb.Call_ATTACH_CONTAINER_INPUT:
		resp, err = a.nestedCall(ctx, call) // operator_nested.go
	default:
		return nil, false, nil
	}
	return resp, true, err
}

// maxContainerDepth bounds the nesting of a ContainerID from the network.
const maxContainerDepth = 32

// containerizerID checks a ContainerID as Mesos's
// validation::container::validateContainerId does and returns the name
// the containerizer knows it by: the IDs from the outermost parent in,
// joined by '.'. field names the ID in the error.
func containerizerID(cid *mesospb.ContainerID, field string) (string, error) {
	var parts []string
	for c, depth := cid, 0; c != nil; c, depth = c.Parent, depth+1 {
		if depth == maxContainerDepth {
			return "", httpapi.Errorf(http.StatusBadRequest, "'%s' is invalid: nested more than %d deep", field, maxContainerDepth)
		}
		if err := validContainerIDValue(c.Value); err != nil {
			prefix := ""
			if depth > 0 {
				prefix = "'ContainerID.parent' is invalid: "
			}
			return "", httpapi.Errorf(http.StatusBadRequest, "'%s' is invalid: %s%v", field, prefix, err)
		}
		parts = append(parts, c.Value)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "."), nil
}

// validContainerIDValue applies Mesos's rules to one ContainerID.value
// (common::validation::validateID, then the ContainerID's own).
func validContainerIDValue(id string) error {
	switch {
	case id == "":
		return errors.New("ID must not be empty")
	case len(id) > containerizer.MaxIDLength:
		return fmt.Errorf("'ContainerID.value' '%s' exceeds the maximum length (%d)", id, containerizer.MaxIDLength)
	case id == "." || id == "..":
		return fmt.Errorf("'%s' is disallowed", id)
	case strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '/' || r == '\\' }):
		return fmt.Errorf("'%s' contains invalid characters", id)
	case strings.ContainsAny(id, ". "):
		return fmt.Errorf("'ContainerID.value' '%s' contains invalid characters", id)
	}
	return nil
}

// inProcessRun is the run of an in-process executor whose container ID is
// id (a run has no parent), nil when none. It runs on the loop.
func (a *Agent) inProcessRun(id string) *executorRec {
	if strings.Contains(id, ".") {
		return nil
	}
	if e := a.execs[id]; e != nil && !e.Kind().Process() {
		return e
	}
	return nil
}

// killTarget is what KILL_CONTAINER found on the loop.
type killTarget struct {
	cont   containerizer.Containerizer // signal this container, when not done
	done   bool                        // an in-process run was killed
	absent bool                        // an in-process run that has ended
}

// killContainerCall is KILL_CONTAINER, as Mesos's Http::killContainer: it
// sends the signal (SIGKILL by default) to the container and answers 200
// with no body, or 404 when the container is unknown. The run of an
// in-process executor has no process to signal: any signal but 0 destroys
// it at once, as Mesos destroys a container that has no process yet, and
// its tasks fail (TASK_FAILED, REASON_EXECUTOR_TERMINATED) as when an
// executor's process is killed.
func (a *Agent) killContainerCall(ctx context.Context, kc *agentpb.Call_KillContainer) (*agentpb.Response, error) {
	if kc == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'kill_container' to be present")
	}
	id, err := containerizerID(&kc.ContainerID, "kill_container.container_id")
	if err != nil {
		return nil, err
	}
	sig := syscall.SIGKILL
	if kc.Signal != nil {
		sig = syscall.Signal(*kc.Signal)
	}
	t, err := request(a, ctx, func() killTarget {
		e := a.inProcessRun(id)
		switch {
		case e == nil:
			return killTarget{cont: a.cont}
		case e.State() == execTerminated:
			return killTarget{absent: true}
		case sig != 0:
			a.log.Info("agent: killing an executor's container at an operator's request", "framework", e.FrameworkID(), "executor", e.ID(), "container", id)
			e.Decide(agentcore.Ending{State: mesospb.TASK_FAILED, Reason: mesospb.TaskStatus_REASON_EXECUTOR_TERMINATED,
				Message: "Executor's container killed by an operator (KILL_CONTAINER)"})
			a.killExecutor(e)
		}
		return killTarget{done: true}
	})
	if err != nil {
		return nil, err
	}
	notFound := httpapi.Errorf(http.StatusNotFound, "Container '%s' cannot be found (or is already killed)", id)
	switch {
	case t.absent:
		return nil, notFound
	case t.done:
		return nil, nil
	}
	if err := containerizer.ValidateID(id); err != nil {
		return nil, notFound // no container of the containerizer has it
	}
	err = t.cont.Signal(ctx, id, sig)
	switch {
	case errors.Is(err, containerizer.ErrUnknownContainer):
		return nil, notFound
	case errors.Is(err, containerizer.ErrClosed):
		return nil, ErrStopped
	case err != nil:
		return nil, fmt.Errorf("Unable to send signal to container: %w", err)
	}
	return nil, nil
}

// waitTarget is what WAIT_CONTAINER found on the loop.
type waitTarget struct {
	cont  containerizer.Containerizer // wait for this container, when neither below
	ended *runEnd                     // an in-process run that has ended
	ch    <-chan runEnd               // an in-process run's end, to come
	stop  func() bool                 // stops dropping the waiter when the request ends
}

// waitContainerCall is WAIT_CONTAINER, as Mesos's Http::waitContainer: it
// answers 200 once the container has ended, with the wait(2) status of its
// main process (and, when the agent ended it for a resource limit, the
// state, reason and message of that), or 404 when the container is
// unknown. It is a long poll: it waits off the loop, until the container
// ends, the request ends (then nothing is answered) or the agent stops
// (503). A container destroyed already is unknown: unlike Mesos, Apron
// keeps no termination of destroyed nested containers. The run of an
// in-process executor ends when the executor terminates; it has no exit
// status, only a message.
func (a *Agent) waitContainerCall(ctx context.Context, wc *agentpb.Call_WaitContainer) (*agentpb.Response, error) {
	if wc == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'wait_container' to be present")
	}
	id, err := containerizerID(&wc.ContainerID, "wait_container.container_id")
	if err != nil {
		return nil, err
	}
	t, err := request(a, ctx, func() waitTarget {
		e := a.inProcessRun(id)
		switch {
		case e == nil:
			return waitTarget{cont: a.cont}
		case e.State() == execTerminated:
			return waitTarget{ended: &runEnd{message: e.Ending().Message}}
		}
		ch := make(chan runEnd, 1)
		if a.ops.runWaiters == nil {
			a.ops.runWaiters = map[*executorRec][]chan<- runEnd{}
		}
		a.ops.runWaiters[e] = append(a.ops.runWaiters[e], ch)
		stop := context.AfterFunc(ctx, func() {
			_ = a.post(context.Background(), func() { a.dropRunWaiter(e, ch) })
		})
		return waitTarget{ch: ch, stop: stop}
	})
	if err != nil {
		return nil, err
	}
	answer := func(w *agentpb.Response_WaitContainer) *agentpb.Response {
		return &agentpb.Response{Type: agentpb.Response_WAIT_CONTAINER.Enum(), WaitContainer: w}
	}
	switch {
	case t.ended != nil:
		return answer(&agentpb.Response_WaitContainer{Message: ptr(t.ended.message)}), nil
	case t.ch != nil:
		select {
		case end := <-t.ch:
			t.stop()
			return answer(&agentpb.Response_WaitContainer{Message: ptr(end.message)}), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-a.stopped:
			return nil, ErrStopped
		}
	}
	notFound := httpapi.Errorf(http.StatusNotFound, "Container %s cannot be found", id)
	if err := containerizer.ValidateID(id); err != nil {
		return nil, notFound
	}
	term, err := t.cont.Wait(ctx, id)
	switch {
	case errors.Is(err, containerizer.ErrUnknownContainer):
		return nil, notFound
	case errors.Is(err, containerizer.ErrClosed):
		return nil, ErrStopped
	case err != nil:
		return nil, err
	}
	return answer(waitAnswer(term)), nil
}

// waitAnswer is a termination as Mesos's WAIT_CONTAINER answers it: the
// main process's wait(2) status when known; for a container the
// containerizer killed for going over its memory or disk, TASK_FAILED
// with REASON_CONTAINER_LIMITATION_MEMORY or _DISK and its message, as Mesos's
// containerizer sets them on a limitation. A plain end carries only the
// status, as in Mesos; an unknown status (the process ended while no
// agent was its parent) carries the containerizer's message instead.
func waitAnswer(t containerizer.Termination) *agentpb.Response_WaitContainer {
	w := &agentpb.Response_WaitContainer{}
	switch {
	case t.Signal != 0:
		w.ExitStatus = ptr(int32(t.Signal) & 0x7f)
	case t.ExitCode >= 0:
		w.ExitStatus = ptr(int32(t.ExitCode&0xff) << 8)
	case t.Message != "":
		w.Message = ptr(t.Message)
	}
	var reason mesospb.TaskStatus_Reason
	switch t.Reason {
	case containerizer.ReasonMemoryLimit:
		reason = mesospb.TaskStatus_REASON_CONTAINER_LIMITATION_MEMORY
	case containerizer.ReasonDiskLimit:
		reason = mesospb.TaskStatus_REASON_CONTAINER_LIMITATION_DISK
	default:
		return w
	}
	w.State = mesospb.TASK_FAILED.Enum()
	w.Reason = reason.Enum()
	if t.Message != "" {
		w.Message = ptr(t.Message)
	}
	return w
}

// dropRunWaiter forgets a WAIT_CONTAINER whose request ended. It runs on
// the loop.
func (a *Agent) dropRunWaiter(e *executorRec, ch chan<- runEnd) {
	ws := a.ops.runWaiters[e]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(a.ops.runWaiters, e)
	} else {
		a.ops.runWaiters[e] = ws
	}
}

// runTerminated is told by terminateExecutor that an executor run has
// ended: it counts it (slave/executors_terminated) and answers the
// WAIT_CONTAINER calls on it. It runs on the loop.
func (a *Agent) runTerminated(e *executorRec) {
	a.met.executorsTerminated++
	msg := ""
	if e.Ending() != nil {
		msg = e.Ending().Message
	}
	for _, ch := range a.ops.runWaiters[e] {
		ch <- runEnd{message: msg} // buffered: one send per waiter
	}
	delete(a.ops.runWaiters, e)
}

// registeredWithMaster keeps the MasterInfo of a registration, for the
// state endpoint. It runs on the loop.
func (a *Agent) registeredWithMaster(info *mesospb.MasterInfo) {
	if info != nil {
		c := *info
		a.ops.master = &c
	}
}

// killNestedContainerCall is the deprecated KILL_NESTED_CONTAINER, which
// Mesos answers as KILL_CONTAINER for a container that has a parent.
func (a *Agent) killNestedContainerCall(ctx context.Context, kc *agentpb.Call_KillNestedContainer) (*agentpb.Response, error) {
	if kc == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'kill_nested_container' to be present")
	}
	if kc.ContainerID.Parent == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'kill_nested_container.container_id.parent' to be present")
	}
	return a.killContainerCall(ctx, &agentpb.Call_KillContainer{ContainerID: kc.ContainerID, Signal: kc.Signal})
}

// waitNestedContainerCall is the deprecated WAIT_NESTED_CONTAINER: as
// WAIT_CONTAINER for a container that has a parent, answered under the
// old name, as Mesos answers it.
func (a *Agent) waitNestedContainerCall(ctx context.Context, wc *agentpb.Call_WaitNestedContainer) (*agentpb.Response, error) {
	if wc == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'wait_nested_container' to be present")
	}
	if wc.ContainerID.Parent == nil {
		return nil, httpapi.Errorf(http.StatusBadRequest, "Expecting 'wait_nested_container.container_id.parent' to be present")
	}
	resp, err := a.waitContainerCall(ctx, &agentpb.Call_WaitContainer{ContainerID: wc.ContainerID})
	if err != nil || resp == nil || resp.WaitContainer == nil {
		return resp, err
	}
	w := resp.WaitContainer
	return &agentpb.Response{Type: agentpb.Response_WAIT_NESTED_CONTAINER.Enum(), WaitNestedContainer: &agentpb.Response_WaitNestedContainer{
		ExitStatus: w.ExitStatus, State: w.State, Reason: w.Reason, Limitation: w.Limitation, Message: w.Message,
	}}, nil
}

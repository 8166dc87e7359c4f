package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/executorpb"
	"github.com/apronhq/apron/api/v1/mesospb"
)

// errNotSubscribed stands for the agent's ErrNotSubscribed.
var errNotSubscribed = errors.New("fake agent: not subscribed")

const (
	waitFor = 10 * time.Second
	tick    = 2 * time.Millisecond
)

// fakeAgent implements the Agent link as LINKS.md has it: a bounded channel
// per stream, SUBSCRIBED first, closed by the agent when the stream ends on
// its side (superseded, dropped, or full) and when the subscriber cancels
// its ctx. It records every call and lets the test push events.
type fakeAgent struct {
	mu         sync.Mutex
	info       executorpb.Event_Subscribed
	subscribes []*executorpb.Call
	calls      []*executorpb.Call
	refuse     error // SubscribeExecutor fails with it while set
	failCalls  int   // the next failCalls ExecutorCalls fail
	autoAck    bool  // acknowledge every update, also those of SUBSCRIBE
	cur        *fakeStream
	n          int
}

type fakeStream struct {
	id     string
	ch     chan *executorpb.Event
	closed bool
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{info: executorpb.Event_Subscribed{
		ExecutorInfo:  mesospb.ExecutorInfo{ExecutorID: mesospb.ExecutorID{Value: "e1"}},
		FrameworkInfo: mesospb.FrameworkInfo{User: "u", Name: "fw", ID: &mesospb.FrameworkID{Value: "f1"}},
		AgentInfo:     mesospb.AgentInfo{Hostname: "host", ID: &mesospb.AgentID{Value: "a1"}},
		ContainerID:   &mesospb.ContainerID{Value: "c1"},
	}}
}

func (a *fakeAgent) SubscribeExecutor(ctx context.Context, call *executorpb.Call) (string, <-chan *executorpb.Event, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.subscribes = append(a.subscribes, proto.Clone(call).(*executorpb.Call))
	if a.refuse != nil {
		return "", nil, a.refuse
	}
	if a.cur != nil {
		a.closeLocked(a.cur)
	}
	a.n++
	s := &fakeStream{id: fmt.Sprintf("stream-%d", a.n), ch: make(chan *executorpb.Event, 64)}
	a.cur = s
	info := proto.Clone(&a.info).(*executorpb.Event_Subscribed)
	s.ch <- &executorpb.Event{Type: executorpb.Event_SUBSCRIBED.Enum(), Subscribed: info}
	if a.autoAck {
		for _, u := range call.GetSubscribe().GetUnacknowledgedUpdates() {
			a.pushLocked(ackEvent(u.Status))
		}
	}
	context.AfterFunc(ctx, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.closeLocked(s)
	})
	return s.id, s.ch, nil
}

func (a *fakeAgent) ExecutorCall(ctx context.Context, streamID string, call *executorpb.Call) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil || a.cur.id != streamID {
		return errNotSubscribed
	}
	if a.failCalls > 0 {
		a.failCalls--
		return errors.New("fake agent: call failed")
	}
	a.calls = append(a.calls, proto.Clone(call).(*executorpb.Call))
	if a.autoAck && call.GetType() == executorpb.Call_UPDATE {
		a.pushLocked(ackEvent(call.Update.Status))
	}
	return nil
}

func ackEvent(st mesospb.TaskStatus) *executorpb.Event {
	return &executorpb.Event{
		Type:         executorpb.Event_ACKNOWLEDGED.Enum(),
		Acknowledged: &executorpb.Event_Acknowledged{TaskID: st.TaskID, UUID: st.UUID},
	}
}

func (a *fakeAgent) closeLocked(s *fakeStream) {
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
	if a.cur == s {
		a.cur = nil
	}
}

// pushLocked sends ev on the current stream; a full channel ends the stream,
// as a real agent does with a slow subscriber.
func (a *fakeAgent) pushLocked(ev *executorpb.Event) bool {
	if a.cur == nil {
		return false
	}
	select {
	case a.cur.ch <- ev:
		return true
	default:
		a.closeLocked(a.cur)
		return false
	}
}

func (a *fakeAgent) push(t *testing.T, ev *executorpb.Event) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	require.True(t, a.pushLocked(ev), "push %v: no stream", ev.GetType())
}

// drop ends the current stream from the agent's side.
func (a *fakeAgent) drop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil {
		a.closeLocked(a.cur)
	}
}

func (a *fakeAgent) setRefuse(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refuse = err
}

func (a *fakeAgent) subscribeCalls() []*executorpb.Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*executorpb.Call(nil), a.subscribes...)
}

func (a *fakeAgent) numSubscribes() int { return len(a.subscribeCalls()) }

func (a *fakeAgent) connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur != nil
}

func (a *fakeAgent) otherCalls() []*executorpb.Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*executorpb.Call(nil), a.calls...)
}

// updates returns the statuses the agent got in UPDATE calls, in order.
func (a *fakeAgent) updates() []mesospb.TaskStatus {
	var out []mesospb.TaskStatus
	for _, c := range a.otherCalls() {
		if c.GetType() == executorpb.Call_UPDATE {
			out = append(out, c.Update.Status)
		}
	}
	return out
}

// taskUpdates returns the statuses of one task, in order.
func (a *fakeAgent) taskUpdates(taskID string) []mesospb.TaskStatus {
	var out []mesospb.TaskStatus
	for _, st := range a.updates() {
		if st.TaskID.Value == taskID {
			out = append(out, st)
		}
	}
	return out
}

func (a *fakeAgent) taskStates(taskID string) []mesospb.TaskState {
	var out []mesospb.TaskState
	for _, st := range a.taskUpdates(taskID) {
		out = append(out, st.GetState())
	}
	return out
}

func event(t executorpb.Event_Type) *executorpb.Event { return &executorpb.Event{Type: t.Enum()} }

func launchEvent(task mesospb.TaskInfo) *executorpb.Event {
	ev := event(executorpb.Event_LAUNCH)
	ev.Launch = &executorpb.Event_Launch{Task: task}
	return ev
}

func launchGroupEvent(tasks ...mesospb.TaskInfo) *executorpb.Event {
	ev := event(executorpb.Event_LAUNCH_GROUP)
	ev.LaunchGroup = &executorpb.Event_LaunchGroup{TaskGroup: mesospb.TaskGroupInfo{Tasks: tasks}}
	return ev
}

func killEvent(taskID string, grace time.Duration) *executorpb.Event {
	ev := event(executorpb.Event_KILL)
	ev.Kill = &executorpb.Event_Kill{TaskID: mesospb.TaskID{Value: taskID}}
	if grace >= 0 {
		ev.Kill.KillPolicy = &mesospb.KillPolicy{GracePeriod: &mesospb.DurationInfo{Nanoseconds: int64(grace)}}
	}
	return ev
}

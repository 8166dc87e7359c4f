package agent

import (
	"container/heap"
	"time"

	"github.com/apronhq/apron/internal/clock"
)

// timerID names a pending timer so it can be cancelled; 0 is "none".
type timerID uint64

// timers multiplexes the agent's deadlines (status update retries, shutdown
// grace periods, registration backoff, the master's ping timeout) onto one
// clock timer, so the loop selects on a single channel however many are
// pending. Owned by the loop goroutine.
type timers struct {
	clk   clock.Clock
	seq   timerID
	queue timerHeap
	byID  map[timerID]*timerEntry

	armed   clock.Timer
	armedAt time.Time
}

type timerEntry struct {
	id    timerID
	at    time.Time
	fn    func()
	index int
}

func newTimers(clk clock.Clock) *timers {
	return &timers{clk: clk, byID: map[timerID]*timerEntry{}}
}

// after schedules fn to run on the loop once d has passed.
func (t *timers) after(d time.Duration, fn func()) timerID {
	t.seq++
	e := &timerEntry{id: t.seq, at: t.clk.Now().Add(d), fn: fn}
	t.byID[e.id] = e
	heap.Push(&t.queue, e)
	return e.id
}

// cancel forgets a pending timer; cancelling 0 or a fired timer is a no-op.
func (t *timers) cancel(id timerID) {
	if e, ok := t.byID[id]; ok {
		delete(t.byID, id)
		heap.Remove(&t.queue, e.index)
	}
}

// runDue runs, in deadline order, the timers whose time has come. A timer
// added by one of them for a time already past runs in the same call.
func (t *timers) runDue() {
	now := t.clk.Now()
	for len(t.queue) > 0 && !t.queue[0].at.After(now) {
		e := heap.Pop(&t.queue).(*timerEntry)
		delete(t.byID, e.id)
		e.fn()
	}
}

// arm makes C fire at the earliest pending deadline. Call it after runDue
// and before waiting.
func (t *timers) arm() {
	if len(t.queue) == 0 {
		t.disarm()
		return
	}
	at := t.queue[0].at
	if t.armed != nil && t.armedAt.Equal(at) {
		return
	}
	t.disarm()
	t.armed, t.armedAt = t.clk.NewTimer(at.Sub(t.clk.Now())), at
}

// fired records that the armed timer's channel was read.
func (t *timers) fired() { t.armed = nil }

func (t *timers) disarm() {
	if t.armed != nil {
		t.armed.Stop()
		t.armed = nil
	}
}

// C is the channel of the armed timer, nil (blocking for ever) when none.
func (t *timers) C() <-chan time.Time {
	if t.armed == nil {
		return nil
	}
	return t.armed.C()
}

type timerHeap []*timerEntry

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].id < h[j].id
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	e := x.(*timerEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

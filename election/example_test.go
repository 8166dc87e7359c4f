package election_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/apronhq/apron/election"
	"github.com/apronhq/apron/election/memory"
)

// Two instances of a service, one leading; the standby takes over when
// the leader resigns (or, with ZooKeeper, dies).
func Example() {
	ctx := context.Background()
	g := memory.NewGroup()
	a, b := g.NewContender(), g.NewContender()
	d := g.NewDetector()

	termA, _ := a.Campaign(ctx, []byte("http://10.0.0.1:5050"))
	fmt.Println("leader:", string(d.Leader().Payload))

	won := make(chan *election.Term)
	go func() {
		t, _ := b.Campaign(ctx, []byte("http://10.0.0.2:5050"))
		won <- t
	}()
	_ = a.Resign(ctx)
	<-termA.Done()
	fmt.Println("a stepped down:", termA.Err())
	<-won
	fmt.Println("leader:", string(d.Leader().Payload))
	// Output:
	// leader: http://10.0.0.1:5050
	// a stepped down: election: resigned
	// leader: http://10.0.0.2:5050
}

// A framework scheduler made highly available (see the package
// documentation): two instances run Lead; the leader registers a
// framework and stores its ID where both can read it (a znode, in
// production; a map here); when its session is lost its context is
// cancelled and it stops its driver; the other leads and subscribes with
// the stored ID, taking the framework and its tasks over.
func ExampleLead() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := memory.NewGroup()
	a, b := g.NewContender(), g.NewContender()

	var (
		mu    sync.Mutex
		store = map[string]string{} // stands for persistent znodes under the election's path
	)
	lines := make(chan string, 4)
	instance := func(name string) func(ctx context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			id := store["framework_id"]
			mu.Unlock()
			if id == "" {
				id = "fw-0001" // SUBSCRIBE without an ID: the master assigns one
				mu.Lock()
				store["framework_id"] = id // before launching anything
				mu.Unlock()
				lines <- name + " leads: registered framework " + id
			} else {
				lines <- name + " leads: re-subscribed as framework " + id
			}
			<-ctx.Done() // the scheduler runs until the term ends
			lines <- name + " stepped down: driver cancelled, no TEARDOWN"
		}
	}
	go func() { _ = election.Lead(ctx, a, []byte(`{"host":"a"}`), instance("a")) }()
	fmt.Println(<-lines)
	go func() { _ = election.Lead(ctx, b, []byte(`{"host":"b"}`), instance("b")) }()

	g.Cut(a) // a loses its ZooKeeper session (it died, or was cut off)
	first, second := <-lines, <-lines
	if first > second { // the two instances run concurrently: print in a fixed order
		first, second = second, first
	}
	fmt.Println(first)
	fmt.Println(second)
	// Output:
	// a leads: registered framework fw-0001
	// a stepped down: driver cancelled, no TEARDOWN
	// b leads: re-subscribed as framework fw-0001
}

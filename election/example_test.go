package election_test

import (
	"context"
	"fmt"

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

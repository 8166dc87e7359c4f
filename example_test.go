package apron_test

import (
	"context"
	"fmt"
	"os"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// hello is a complete framework: it runs one shell command on the first
// offer that fits and stops when the command ends.
type hello struct {
	scheduler.Base
	launched bool
	done     chan mesospb.TaskState
}

func (h *hello) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	for _, o := range offers {
		if h.launched {
			_ = d.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, nil)
			continue
		}
		cmd := "echo hello from Apron"
		task := mesospb.TaskInfo{
			Name:    "hello",
			TaskID:  mesospb.TaskID{Value: "hello-1"},
			AgentID: o.AgentID,
			Resources: []mesospb.Resource{
				{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.1}},
				{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 32}},
			},
			Command: &mesospb.CommandInfo{Value: &cmd},
		}
		_ = d.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, nil)
		h.launched = true
	}
}

func (h *hello) StatusUpdate(ctx context.Context, d *scheduler.Driver, st mesospb.TaskStatus) {
	switch st.GetState() {
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST, mesospb.TASK_ERROR:
		h.done <- st.GetState()
	}
}

// Example composes a cluster in one process: a master, an agent running
// real processes, and the framework above.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	m, _ := master.New(master.Config{})
	go m.Run(ctx)

	dir, _ := os.MkdirTemp("", "apron-example-")
	defer os.RemoveAll(dir)
	a, _ := agent.New(agent.Config{Master: m, WorkDir: dir, Resources: "cpus:1;mem:256;disk:100"})
	go a.Run(ctx)
	defer a.Shutdown(context.Background())

	fw := &hello{done: make(chan mesospb.TaskState, 1)}
	d, _ := scheduler.NewDriver(fw, mesospb.FrameworkInfo{User: "root", Name: "hello"}, scheduler.WithMaster(m))
	go d.Run(ctx)

	fmt.Println(<-fw.done)
	_ = d.Stop(false)
	// Output: TASK_FINISHED
}

package scheduler_test

import (
	"context"

	"github.com/gogo/protobuf/proto"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/scheduler"
)

// sleeper runs one task on the first offer it gets, declines every other
// offer, and tears itself down when the task has finished.
type sleeper struct {
	scheduler.Base // no-op callbacks for the events it ignores
	launched       bool
}

func (s *sleeper) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	for _, o := range offers {
		if s.launched {
			_ = d.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, nil)
			continue
		}
		task := mesospb.TaskInfo{
			Name:      "sleep",
			TaskID:    mesospb.TaskID{Value: "sleep-1"},
			AgentID:   o.AgentID,
			Resources: o.Resources, // a real framework takes only what it needs
			Command:   &mesospb.CommandInfo{Value: proto.String("sleep 10")},
		}
		if err := d.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, nil); err == nil {
			s.launched = true
		}
	}
}

func (s *sleeper) StatusUpdate(ctx context.Context, d *scheduler.Driver, st mesospb.TaskStatus) {
	if st.GetState() == mesospb.TASK_FINISHED {
		_ = d.Stop(false) // done: tear the framework down
	}
}

func Example() {
	var m scheduler.Master // a *master.Master, or a client of a remote master
	run := func(ctx context.Context) error {
		info := mesospb.FrameworkInfo{
			User:            "nobody",
			Name:            "sleeper",
			FailoverTimeout: proto.Float64(60), // keep the tasks through a scheduler restart
		}
		d, err := scheduler.NewDriver(&sleeper{}, info, scheduler.WithMaster(m))
		if err != nil {
			return err
		}
		return d.Run(ctx)
	}
	_ = run
}

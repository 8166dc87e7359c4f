// Package scheduler is what a framework author writes against: the
// Scheduler interface a framework implements, and the Driver that connects
// it to an Apron (or Apache Mesos v1) master and turns the master's event
// stream into calls on it.
//
// # The model
//
// A master pools the resources of its agents and hands them to frameworks
// as offers. An offer is a bundle of resources on one agent that stay
// reserved for the framework until it answers: AcceptOffers (or LaunchTasks)
// uses some or all of them and returns the rest to the pool, DeclineOffer
// returns them all. Both take Filters; refuse_seconds (5 s by default) keeps
// the declined resources from being offered to the framework again for that
// long. A framework that wants nothing for a while calls SuppressOffers, and
// ReviveOffers when it wants offers again (revive also clears filters). The
// master may take an offer back (OfferRescinded), for instance when the
// agent is lost.
//
// Tasks report their progress as status updates (StatusUpdate). An update
// that carries a uuid comes from an agent, which resends it until the
// framework acknowledges it; updates without uuid (answers to
// ReconcileTasks, updates the master makes up for a lost agent) are never
// acknowledged. By default the driver acknowledges each update with a uuid
// right after StatusUpdate returns, so a framework that crashes inside the
// callback sees the update again. WithExplicitAcknowledgements hands that to
// the framework, which calls AcknowledgeStatusUpdate once it has, say,
// persisted the new state.
//
// # The driver's lifecycle
//
// Run subscribes to the master and delivers events one at a time, on Run's
// goroutine, in the order the master sent them: a callback that blocks holds
// up the ones after it. The first SUBSCRIBED gives Registered with the
// framework ID the master assigned; every later one gives Reregistered.
// When the master ends the stream, sends nothing (not even a heartbeat)
// for five heartbeat intervals, or refuses a call because it does not know
// the stream, the driver calls Disconnected and subscribes again, after a
// capped exponential backoff (WithBackoff), with the framework ID, so the
// master treats it as the same framework and it keeps its tasks.
// The driver does not queue: a call made while it is not subscribed fails
// with ErrNotConnected, and the framework retries after Reregistered.
// Driver methods are safe to call from any goroutine, callbacks included;
// a nil error means the master accepted the call, and its outcome arrives as
// events.
//
// Inverse offers (INVERSE_OFFERS, RESCIND_INVERSE_OFFER: the master asking
// for an agent back before its machine's maintenance) go to a Scheduler
// that also implements InverseOfferHandler, found by type assertion, and
// are answered with AcceptInverseOffers or DeclineInverseOffers; without
// one they are dropped. Events this driver has no callback for
// (UPDATE_OPERATION_STATUS) are logged and dropped; Send sends any call the
// driver has no method for, such as RECONCILE_OPERATIONS.
//
// Run returns nil after Stop, ctx.Err() when its context is cancelled, and
// an error wrapping ErrAborted after Abort or after the master sent ERROR
// or refused the SUBSCRIBE as invalid (the framework was removed, or its
// subscription refused; Mesos drivers abort then too, and the Error
// callback runs after the driver stopped). A Driver runs once; after Run
// returns, every call fails with ErrStopped.
//
// # Reaching a master
//
// WithMaster links the driver to a master in the same process (a
// *master.Master, no encoding); WithMasterURL to masters on other machines,
// over the Mesos v1 scheduler HTTP API, protobuf-encoded (WithJSON for
// JSON), trying each candidate URL and following a standby's redirect to
// the leader. Either way the driver behaves the same, and it can talk to
// an Apache Mesos master too. WithCredential authenticates every request
// to a master that asks for credentials (HTTP Basic). WithTLS speaks
// https to masters that serve TLS, detected ones and redirect targets
// included, as a Mesos driver with LIBPROCESS_SSL_ENABLED does.
//
// # Failover
//
// Stop(false) tells the master the framework is done (TEARDOWN): the master
// kills its tasks and forgets it. Stop(true), Abort and a cancelled context
// just leave: the master keeps the framework and its tasks for the
// FrameworkInfo's failover_timeout (0 by default, so set it), during which a
// new scheduler process subscribing with the same framework ID (put it in
// FrameworkInfo.ID, typically read back from where the first process stored
// it on Registered) takes the framework over.
//
// # A small framework
//
//	type sleeper struct {
//		scheduler.Base // no-op callbacks for the events we ignore
//		launched bool
//	}
//
//	func (s *sleeper) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
//		for _, o := range offers {
//			if s.launched {
//				_ = d.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, nil)
//				continue
//			}
//			task := mesospb.TaskInfo{
//				Name:      "sleep",
//				TaskID:    mesospb.TaskID{Value: "sleep-1"},
//				AgentID:   o.AgentID,
//				Resources: o.Resources, // a real framework takes only what it needs
//				Command:   &mesospb.CommandInfo{Value: proto.String("sleep 10")},
//			}
//			if err := d.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, nil); err == nil {
//				s.launched = true
//			}
//		}
//	}
//
//	func (s *sleeper) StatusUpdate(ctx context.Context, d *scheduler.Driver, st mesospb.TaskStatus) {
//		if st.GetState() == mesospb.TASK_FINISHED {
//			_ = d.Stop(false) // done: tear the framework down
//		}
//	}
//
//	d, err := scheduler.NewDriver(&sleeper{}, mesospb.FrameworkInfo{User: "nobody", Name: "sleeper"},
//		scheduler.WithMaster(m)) // or scheduler.WithMasterURL("http://10.0.0.1:5050")
//	if err != nil {
//		return err
//	}
//	return d.Run(ctx)
package scheduler

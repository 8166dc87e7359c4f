// Package service is an SDK for stateful services on Apron (etcd,
// ZooKeeper, Kafka operators), in the model of DC/OS Commons: a framework
// author declares a Spec (pod types with their count, resources, ports,
// persistent volumes, templated command, environment and config files,
// readiness and health checks, placement rules, deploy strategy) and the
// SDK runs it on the offer API.
//
// Each pod is one task on its own dynamically reserved resources. Its
// first launch reserves them, labelled with the service's name, the pod's
// name and a resource ID (Label* constants), and creates its volumes, all
// in the ACCEPT that launches it, on an offer that satisfies the pod's
// placement; from then on the pod is launched only on offers that carry
// those labelled resources, so it always finds its data. Plans say what
// to do next: the deploy plan (a phase per pod type, a step per pod,
// serial or parallel, a serial step waiting until the pod before it is
// ready; a PlaceTogether type's pods are all placed before the first is
// launched, so each starts knowing every peer's address) covers the
// first deployment, configuration roll-outs (kill, then relaunch in place
// with the new configuration, one pod at a time for a quorum type) and
// scaling up; the recovery plan relaunches, in place, pods whose task
// ended, after a delay that doubles with each consecutive failure
// (Spec.RelaunchBackoff); the decommission plan removes pods beyond their count, highest
// index first (Config.Decommission's hook, if any, then kill, DESTROY,
// UNRESERVE). A pod whose agent is lost is replaced (new agent, new
// reservation, empty volumes) after Spec.ReplaceAfter or on command; a
// reservation labelled with the service but belonging to no current pod
// (a replaced or removed pod's, a placement whose ACCEPT failed) is
// destroyed and unreserved whenever it is offered. Uninstall removes everything, then the framework.
//
// The decisions are made by Core, a pure state machine (no goroutines, no
// I/O, no clock: time comes in through Tick, IDs from an injected
// generator), fed offers, status updates, (re)subscriptions and operator
// commands, and drained through Ready: the calls to send and the State
// to store first. Service is the thin shell around it: the
// scheduler.Scheduler a Driver calls, one goroutine owning the Core, a
// Store (in memory, a file, ZooKeeper) for the State, and the operator's
// API in Go and over HTTP (Handler). A restarted scheduler builds its
// Core from the stored State, reconciles its tasks and carries on: no
// pod is placed, reserved or launched twice.
//
// The State remembers the Spec it was saved under, so the rules on
// updates hold across restarts as they do in process (UpdateSpec): a
// scheduler started with a spec the deployed one cannot move to (another
// volume size, name, role or principal; a pod type with pods removed) is
// refused by New, with ErrSpecChange naming what changed, before
// anything runs or is stored; a spec it can move to is rolled out by the
// deploy plan.
//
// Several instances of a scheduler, sharing a Store (ZooKeeper), elect
// one leader through package election: RunElected. A standby waits, its
// API answering ErrNotLeader (over HTTP, 307 to the leader's API, found
// through an election.Detector and the leader's Instance payload). An
// instance elected takes over: it loads the state, checks its spec
// against the stored one, and saves the state back at once, so that a
// write the instance before it still has in flight fails on the store's
// compare-and-set (ErrConflict) instead of overwriting it; it then
// subscribes with the stored framework ID and reconciles. The moment its
// term ends it stores and sends nothing more and RunElected returns
// ErrLostLeadership, as a master exits when it loses its leadership: the
// process starts again as a standby, with nothing of its old term in
// memory.
package service

// Package master is Apron's master: it pools the resources of the agents
// that register with it, has its allocator divide them among frameworks,
// makes offers, launches the tasks frameworks put on them, and keeps every
// task's latest state so it can answer reconciliation.
//
// The decision logic is a state machine (core) that takes one input at a
// time — a scheduler call, an agent call, a stream that ended, a tick with
// the time in it — and leaves events to send in an outbox. It does no I/O
// and reads no clock, so tests and the simulation harness drive it
// deterministically. A Master owns a core on one goroutine (Run) and
// connects it to the world: schedulers subscribe through
// SubscribeScheduler and call through SchedulerCall (the scheduler
// package's Driver uses them in one process; the HTTP API wraps the same
// methods), agents through ConnectAgent and AgentCall. Each stream is a
// channel with a backlog behind it: a subscriber that falls behind gets
// its events late and in order, and is disconnected only when its backlog
// is over Config.StreamBacklog bytes (64 MiB), so a slow client loses
// nothing and never slows the master, and a stuck one cannot grow it
// without bound.
//
// Behaviour follows Mesos: offers are batched (a full allocation cycle every
// AllocationInterval, and resources that become free are offered at the
// next tick); a declined offer's resources are filtered for the framework
// for refuse_seconds (5 s by default); a framework that disconnects keeps
// its tasks for its failover_timeout (0 by default, so they are killed at
// once); agents are pinged and removed after MaxAgentPingTimeouts
// unanswered pings, their tasks reported TASK_LOST (TASK_UNREACHABLE for
// partition-aware frameworks); invalid tasks get TASK_ERROR with a message
// saying what is wrong, tasks on invalid offers TASK_LOST (TASK_DROPPED),
// and nothing of a refused ACCEPT is lost: unused resources return to the
// allocator. An ACCEPT's operations apply in order: RESERVE and UNRESERVE
// (dynamic reservations) and CREATE and DESTROY (persistent volumes)
// convert resources of the offers' pool, so a later LAUNCH of the same
// ACCEPT uses what they made; an invalid one is dropped, as in Mesos, and
// the agent is sent its checkpointed resources after each one applied.
//
// What must survive the master (admitted, unreachable and gone agents,
// weights, quotas, maintenance) goes to Config.Registry: the core emits
// registry operations beside its events, and the Master makes them durable
// before any event of the same turn, or a later one, goes out (see
// registry_core.go). A master that starts recovers the registry first:
// the agents it admitted may re-register with their tasks, and those that
// do not within AgentReregisterTimeout are marked unreachable. Several
// masters share a registry in ZooKeeper and elect their leader with the
// election package: RunElected runs a master for one term, ElectedLeadership
// makes the others redirect to it.
//
// Handler serves the master over HTTP, wire-compatible with Mesos v1:
// POST /api/v1/scheduler for schedulers, POST /apron/v1/agent for agents,
// POST /api/v1 for operators, and GET /state, /roles (weights, quotas and
// their consumption, as Mesos's /roles), /health, /metrics (Prometheus
// text) and /version. A call is one protobuf or JSON message (Content-Type;
// Accept picks the answer's encoding, JSON by default). SUBSCRIBE (REGISTER
// or REREGISTER for agents) answers 200 with a chunked RecordIO stream and a
// Mesos-Stream-Id header; the stream is the same bounded channel the
// in-process link returns, and lives as long as the request. Every other
// call must carry that header and is answered 202 when accepted, with
// Mesos's refusals: 400 for a missing or wrong stream ID, an unknown
// framework or a malformed call (the message names the field), 403 for a
// framework that is not subscribed, 405, 415 and 413 for a bad method,
// media type or size. Each stream event is one HTTP chunk, as Mesos writes
// them (the agents' link, Apron's own, sends bursts in one write). The
// operator API answers every Mesos v1 operator call (see README's table);
// it answers the GET_* calls from the core's
// state, applies UPDATE_WEIGHTS and the quota calls (UPDATE_QUOTA, and the
// legacy SET_QUOTA and REMOVE_QUOTA) whole or not at all, applies
// RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES and
// DESTROY_VOLUMES to an agent's unallocated resources, rescinding offers
// on that agent as needed (202; 409 when the agent lacks the resources
// even so, and then nothing changes), and its SUBSCRIBE
// streams SUBSCRIBED (the whole state) then task, agent and framework
// changes, with HEARTBEATs; the core builds these events only while someone
// subscribes. A master whose Config.Leadership says it does not lead
// answers 307 to the same path on the leader, or 503 when no leader is
// known, on every endpoint but /health (503 "not leading"), /metrics and
// /version.
//
// Security is Mesos's (auth.go): HTTP Basic authentication per endpoint
// family (Config.Authenticator and the Authenticate* switches, Mesos's
// --authenticate_* flags), 401 before anything else; and, with a
// Config.Authorizer (auth.NewLocal over Mesos's ACLs, or a policy
// service), authorization of framework registration and task launches,
// agent registration and every operator change (403 naming the action,
// nothing changed), and filtering of what each principal reads.
package master

// Package apron is an embeddable cluster kernel for Go, in the model of
// Apache Mesos: an operating system kernel for the data centre.
//
// # The model
//
// A master pools the resources (cpus, mem, disk, ports) of many agents. A
// pluggable allocator divides them among frameworks by weighted Dominant
// Resource Fairness over roles and the master hands each framework offers:
// "this agent has 4 cpus and 8 GiB free for you". A framework's scheduler
// accepts an offer by launching tasks on it, or declines it. Each task runs
// under an executor on the agent (a built-in command executor for plain
// commands, or the framework's own), inside a container made by the agent's
// containerizer from Linux namespaces and cgroups and, optionally, a
// Docker/OCI image. Status updates flow back from executor to agent to master
// to scheduler and are retried until acknowledged, so none is lost. Masters
// fail over through leader election; agents recover their running tasks
// across restarts.
//
// # Packages
//
//	api/v1/...     the wire protocol: Mesos v1 compatible protobuf types, and the codecs
//	resources      resource arithmetic, parsing and printing, for every package and framework
//	recordio       the RecordIO framing of every streaming endpoint
//	allocator      the Allocator interface and hierarchical weighted DRF with quota and reservations
//	master         the master: offers, tasks, frameworks, agents, reservations, quota; its HTTP APIs
//	agent          the agent: executors, fetcher, volumes, status updates, checkpoints, recovery, sandbox GC
//	containerizer  the Containerizer interface; the process (and, to come, Linux) implementations
//	election       leader election: in-process and ZooKeeper (not yet written)
//	scheduler      the Scheduler interface frameworks implement, and its Driver
//	executor       the Executor interface executors implement, and its Driver
//	examples/...   runnable binaries: a whole cluster in one process, master, agent, frameworks
//
// The packages compose in one process (an agent can link to a master in the
// same process without encoding anything) or across machines, where they
// speak the Apache Mesos v1 HTTP APIs, so existing Mesos frameworks work
// against an Apron master unchanged. See README.md for a tour.
package apron

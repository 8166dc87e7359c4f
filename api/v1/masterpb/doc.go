// Package masterpb holds the operator API of an Apron master, proto package
// mesos.v1.master: the Call an operator POSTs to /api/v1 on the master, the
// Response it gets back, and the Event stream a SUBSCRIBE call opens (a
// SUBSCRIBED snapshot of the cluster, then task, agent and framework changes,
// with HEARTBEATs in between). Each is a union by convention: Type names the
// kind, and the optional field of the same name (Call.DrainAgent for
// DRAIN_AGENT, Response.GetState for GET_STATE, Event.TaskUpdated for
// TASK_UPDATED, ...) carries the payload. Field numbers, labels and enum
// values are those of Apache Mesos, and every type Mesos defines is listed,
// so a Mesos operator tool's bytes decode into these types and re-encode
// unchanged.
//
// Mesos keeps the quota, maintenance and inverse-offer status types in proto
// packages of their own (mesos.v1.quota, mesos.v1.maintenance,
// mesos.v1.allocator); they are declared here, with the same names and
// numbers, since a proto package name never reaches the wire.
//
// The Go code is generated from the .proto files in this directory; see
// package v1.
package masterpb

// Package agentpb holds the operator API of an Apron agent, proto package
// mesos.v1.agent: the Call an operator (or an executor managing nested
// containers) POSTs to /api/v1 on the agent, the Response it gets back, and
// the ProcessIO records streamed by the container session and attach calls.
// Call and Response are unions by convention: Type names the kind, and the
// optional field of the same name (Call.LaunchContainer for
// LAUNCH_CONTAINER, Response.GetState for GET_STATE, ...) carries the
// payload. Field numbers, labels and enum values are those of Apache Mesos,
// and every call type Mesos defines is listed, so a Mesos operator tool's
// bytes decode into these types and re-encode unchanged. As in Mesos, the
// agent's operator API has no event stream; cluster-wide events come from
// the master (package masterpb).
//
// The Go code is generated from agent.proto; see package v1.
package agentpb

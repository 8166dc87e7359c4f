// Package executorpb holds the executor API of an Apron agent, proto package
// mesos.v1.executor: the Call an executor POSTs to /api/v1/executor and the
// Event stream it reads after SUBSCRIBE. Both are unions by convention: Type
// names the kind, and the optional field of the same name (Event.Launch for
// LAUNCH, Call.Update for UPDATE, ...) carries the arguments. Field numbers,
// labels and enum values are those of Apache Mesos, so an executor written
// against Mesos v1 works against an Apron agent unchanged.
//
// The Go code is generated from executor.proto; see package v1.
package executorpb

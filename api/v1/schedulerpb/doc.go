// Package schedulerpb holds the scheduler API of an Apron master, proto
// package mesos.v1.scheduler: the Call a framework's scheduler POSTs to
// /api/v1/scheduler and the Event stream it reads after SUBSCRIBE. Both are
// unions by convention: Type names the kind, and the optional field of the
// same name (Call.Subscribe for SUBSCRIBE, Event.Offers for OFFERS, ...)
// carries the arguments. Field numbers, labels and enum values are those of
// Apache Mesos, so a Mesos v1 framework's bytes decode into these types and
// re-encode unchanged, fields Apron does not know included.
//
// The Go code is generated from scheduler.proto; see package v1.
package schedulerpb

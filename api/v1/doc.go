// Package v1 is Apron's wire protocol: the messages that masters, agents,
// schedulers and executors exchange, wire-compatible with the Apache Mesos v1
// APIs. The types live in one Go package per proto package:
//
//	mesospb      mesos.v1            core types: FrameworkInfo, Offer, Resource, TaskInfo, TaskStatus, ...
//	schedulerpb  mesos.v1.scheduler  scheduler Call and Event
//	executorpb   mesos.v1.executor   executor Call and Event
//	masterpb     mesos.v1.master     the master's operator API
//	agentpb      mesos.v1.agent      the agent's operator API
//	internalpb   apron.v1.internal   Apron's own agent <-> master protocol
//
// Field numbers, enum values and field names are Mesos's, so the protobuf
// bytes and the JSON a Mesos v1 client sends decode into these types and
// re-encode without loss. Package codec reads and writes both encodings the
// way a Mesos master does.
//
// The Go code is generated and checked in; building needs no protoc. To
// regenerate after editing a .proto file (protoc 3.21, Debian's
// protobuf-compiler; gogo/protobuf v1.3.2 from go.mod):
//
//	go generate ./api/...
package v1

//go:generate ./generate.sh

// MesosVersion is the release of Apache Mesos whose v1 APIs Apron speaks.
// Masters and agents report it where Mesos reports its own version
// (MasterInfo.version, GET_VERSION, /version, the agents' version), since
// Mesos clients and tools parse that field as a Mesos version and refuse
// what they cannot place; Apron's own version is reported beside it.
const MesosVersion = "1.11.0"

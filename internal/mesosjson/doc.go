// Package mesosjson writes Mesos's "model" JSON: the hand-written shapes of
// the HTTP endpoints that Mesos's master and agent serve for tools (the
// master's /master/state, /master/frameworks, /master/slaves,
// /master/tasks, ...; the agent's /slave(1)/state, /containers, ...; and
// libprocess's /version and /metrics/snapshot), which service discovery
// (mesos-dns), UIs and exporters read.
//
// This JSON is not the protobuf JSON of the v1 API that the operator API
// answers with. Mesos writes it by hand with stout's JSON writers, in
// src/common/http.cpp (the json(JSON::ObjectWriter*, ...) and model(...)
// functions for Task, TaskStatus, Resources, Attributes, Labels,
// CommandInfo, ExecutorInfo, ...), src/master/readonly_handler.cpp and
// src/slave/http.cpp (the endpoints' documents), src/version/version.hpp
// (/version) and 3rdparty/libprocess/src/http.cpp (OK(JSON, jsonp)), and
// it differs from protobuf JSON in ways readers depend on:
//
//   - IDs are plain strings ("id": "t1"), not {"value": "t1"};
//   - resources are an object of totals by name, summed over roles and
//     reservations: {"cpus": 2.0, "gpus": 0.0, "mem": 128.0, "disk": 0.0,
//     "ports": "[31000-32000]"}, with ranges and sets as text and revocable
//     resources under "<name>_revocable";
//   - attributes are an object of name to value; labels an array of
//     {"key", "value"};
//   - numbers Mesos holds as C++ doubles keep a ".0" when whole
//     (rapidjson's writer), times are seconds as doubles;
//   - field order is Mesos's writers' order.
//
// Where Mesos embeds a message as it is (JSON::Protobuf: labels, container
// info, discovery, ...), this package embeds the codec's protobuf JSON.
//
// The package holds what Apron's master and agent both write; each keeps
// its own documents (the master's frameworks, slaves, offers, roles and
// state summary; the agent's state, executors and containers).
package mesosjson

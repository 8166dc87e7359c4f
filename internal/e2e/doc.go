// Package e2e holds Apron's end-to-end tests: a master, agents running real
// processes and frameworks, composed as a user composes them, exercised
// through the public drivers only. Every test runs once per transport, as
// a subtest: in process (agents and drivers hold the *master.Master), and
// over the master's HTTP API in protobuf and in JSON (agent.HTTPMaster and
// scheduler.WithMasterURL against an httptest server of master.Handler).
package e2e

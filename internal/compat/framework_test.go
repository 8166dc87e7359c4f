package compat_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// framework is a scheduler subscribed over raw HTTP.
type framework struct {
	c        *cluster
	s        *stream
	id       string // FrameworkID.value from SUBSCRIBED
	streamID string

	mu    sync.Mutex
	acked map[string]bool // UUIDs of the status updates acknowledged
}

// subscribe sends SUBSCRIBE with the given FrameworkInfo (JSON) and waits
// for SUBSCRIBED.
func subscribe(t *testing.T, c *cluster, frameworkInfo string) *framework {
	t.Helper()
	s := openStream(t, c.master.Addr, "/api/v1/scheduler",
		`{"type":"SUBSCRIBE","subscribe":{"framework_info":`+frameworkInfo+`}}`, nil)
	require.Equal(t, http.StatusOK, s.status, "SUBSCRIBE answers 200 OK (docs/scheduler-http-api.md)")
	f := &framework{c: c, s: s, streamID: s.header.Get("Mesos-Stream-Id"), acked: map[string]bool{}}
	_, e := s.waitType(t, 0, "SUBSCRIBED")
	f.id = str(e.obj, "subscribed", "framework_id", "value")
	require.NotEmpty(t, f.id, "SUBSCRIBED.framework_id: %s", e.raw)
	return f
}

// call POSTs a scheduler Call (JSON) with the framework's stream ID.
func (f *framework) call(body string) (int, []byte) {
	return postJSON("http://"+f.c.master.Addr+"/api/v1/scheduler", body, map[string]string{"Mesos-Stream-Id": f.streamID})
}

// mustCall requires that the master accepts the call: 202 Accepted
// (docs/scheduler-http-api.md, "Calls"; src/master/http.cpp,
// Master::Http::scheduler returns Accepted() for every non-SUBSCRIBE call).
func (f *framework) mustCall(t *testing.T, body string) {
	t.Helper()
	code, resp := f.call(body)
	require.Equal(t, http.StatusAccepted, code, "call %.200s: %s", body, resp)
}

func (f *framework) fid() string { return `{"value":` + quote(f.id) + `}` }

// waitOffer waits for an OFFERS event at or after from and returns its index
// and first offer.
func (f *framework) waitOffer(t *testing.T, from int) (int, map[string]any) {
	t.Helper()
	i, e := f.s.waitType(t, from, "OFFERS")
	offers := list(e.obj, "offers", "offers")
	require.NotEmpty(t, offers, "OFFERS.offers: %s", e.raw)
	o, _ := offers[0].(map[string]any)
	return i, o
}

// launch accepts offer with a LAUNCH of the given TaskInfos (JSON).
func (f *framework) launch(t *testing.T, offer map[string]any, tasks ...string) {
	t.Helper()
	f.mustCall(t, `{"framework_id":`+f.fid()+`,"type":"ACCEPT","accept":{"offer_ids":[{"value":`+
		quote(str(offer, "id", "value"))+`}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[`+
		strings.Join(tasks, ",")+`]}}],"filters":{"refuse_seconds":0.1}}}`)
}

// waitTask waits for an UPDATE of task to state, acknowledging every
// update with a UUID on the way, as a scheduler must
// (docs/scheduler-http-api.md, ACKNOWLEDGE).
func (f *framework) waitTask(t *testing.T, from int, taskID, state string) (int, event) {
	t.Helper()
	return f.s.waitFor(t, from, wait, "UPDATE of "+taskID+" to "+state, func(e event) bool {
		if e.typ() != "UPDATE" {
			return false
		}
		f.ack(t, e)
		return str(e.obj, "update", "status", "task_id", "value") == taskID &&
			str(e.obj, "update", "status", "state") == state
	})
}

func (f *framework) ack(t *testing.T, e event) {
	uuid := str(e.obj, "update", "status", "uuid")
	if uuid == "" {
		return
	}
	f.mu.Lock()
	done := f.acked[uuid]
	f.acked[uuid] = true
	f.mu.Unlock()
	if done {
		return
	}
	st := dig(e.obj, "update", "status")
	body := `{"framework_id":` + f.fid() + `,"type":"ACKNOWLEDGE","acknowledge":{"agent_id":` + rawJSON(dig(st, "agent_id")) +
		`,"task_id":` + rawJSON(dig(st, "task_id")) + `,"uuid":` + quote(uuid) + `}}`
	if code, resp := f.call(body); code != http.StatusAccepted {
		t.Errorf("ACKNOWLEDGE answered %d: %s", code, resp)
	}
}

// commandTask is a TaskInfo (JSON) running a shell command with 0.1 cpus
// and 32 MB, without allocation_info (what a framework that is not
// MULTI_ROLE sends back; docs/upgrades.md, "MULTI_ROLE").
func commandTask(taskID, agentID, command string) string {
	return `{"name":` + quote(taskID) + `,"task_id":{"value":` + quote(taskID) + `},"agent_id":{"value":` + quote(agentID) + `},` +
		`"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1}},{"name":"mem","type":"SCALAR","scalar":{"value":32}}],` +
		`"command":{"value":` + quote(command) + `,"shell":true}}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func rawJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sandboxFile finds, under the agent's work directory, the file name in
// the sandbox of the executor whose ID is executorID (Mesos lays sandboxes
// out as .../frameworks/<framework>/executors/<executor>/runs/<container>,
// src/slave/paths.cpp, getExecutorRunPath). The filesystem is read
// directly, so that this does not depend on the files API.
func sandboxFile(t *testing.T, c *cluster, executorID, name string) (string, []byte) {
	t.Helper()
	dir, b, err := findSandboxFile(c, executorID, name)
	require.NoError(t, err)
	return dir, b
}

// findSandboxFile is sandboxFile returning an error when the file is not
// there (yet).
func findSandboxFile(c *cluster, executorID, name string) (string, []byte, error) {
	var found string
	_ = filepath.WalkDir(c.agentWorkDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || found != "" {
			return nil
		}
		if !d.IsDir() && d.Name() == name && strings.Contains(path, executorID) {
			found = path
		}
		return nil
	})
	if found == "" {
		return "", nil, fmt.Errorf("no %s in a sandbox of executor %s under %s", name, executorID, c.agentWorkDir)
	}
	b, err := os.ReadFile(found)
	return filepath.Dir(found), b, err
}

// parseEnv reads `env` output.
func parseEnv(b []byte) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" && !strings.ContainsAny(k, " \t") {
			env[k] = v
		}
	}
	return env
}

// durationRE is how Mesos writes a Duration into the environment
// (stringify(Duration), 3rdparty/stout/include/stout/duration.hpp: a
// number and one of ns, us, ms, secs, mins, hrs, days, weeks), which
// executors parse back with Duration::parse.
const durationRE = `^[0-9]+(\.[0-9]+)?(ns|us|ms|secs|mins|hrs|days|weeks)$`

// checkExecutorEnv checks the environment Mesos's agent gives an executor
// (src/slave/slave.cpp, executorEnvironment; MESOS_SANDBOX from
// src/slave/containerizer/mesos/containerizer.cpp) for a framework with
// checkpointing on. A command task sees its command executor's environment
// (src/launcher/executor.cpp: the task's environment starts from
// os::environment()).
func checkExecutorEnv(t *testing.T, c *cluster, env map[string]string, frameworkID, executorID, agentID, sandbox string) {
	t.Helper()
	agentAddr := c.agent.Addr
	facts := []struct {
		name, key string
		check     func(t *testing.T, v string)
	}{
		{"framework ID", "MESOS_FRAMEWORK_ID", func(t *testing.T, v string) { require.Equal(t, frameworkID, v) }},
		{"executor ID", "MESOS_EXECUTOR_ID", func(t *testing.T, v string) { require.Equal(t, executorID, v) }},
		{"agent ID, old name", "MESOS_SLAVE_ID", func(t *testing.T, v string) { require.Equal(t, agentID, v) }},
		{"agent endpoint ip:port", "MESOS_AGENT_ENDPOINT", func(t *testing.T, v string) { require.Equal(t, agentAddr, v) }},
		// stringify(slavePid): "slave(1)@ip:port", the agent's libprocess PID.
		{"agent PID", "MESOS_SLAVE_PID", func(t *testing.T, v string) { require.Equal(t, "slave(1)@"+agentAddr, v) }},
		{"sandbox directory", "MESOS_DIRECTORY", func(t *testing.T, v string) {
			require.True(t, filepath.IsAbs(v), "absolute path: %q", v)
			require.Equal(t, canonical(sandbox), canonical(v))
		}},
		// Without a container image the sandbox is seen where it is.
		{"sandbox as the task sees it", "MESOS_SANDBOX", func(t *testing.T, v string) { require.Equal(t, canonical(sandbox), canonical(v)) }},
		{"checkpoint on", "MESOS_CHECKPOINT", func(t *testing.T, v string) { require.Equal(t, "1", v) }},
		{"HTTP command executor flag", "MESOS_HTTP_COMMAND_EXECUTOR", func(t *testing.T, v string) { require.Contains(t, []string{"0", "1"}, v) }},
		// "Set LIBPROCESS_PORT so that we bind to a random free port".
		{"libprocess port", "LIBPROCESS_PORT", func(t *testing.T, v string) { require.Equal(t, "0", v) }},
		// Set when the framework checkpoints.
		{"recovery timeout", "MESOS_RECOVERY_TIMEOUT", func(t *testing.T, v string) { require.Regexp(t, durationRE, v) }},
		{"subscription backoff max", "MESOS_SUBSCRIPTION_BACKOFF_MAX", func(t *testing.T, v string) { require.Regexp(t, durationRE, v) }},
		{"shutdown grace period", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", func(t *testing.T, v string) { require.Regexp(t, durationRE, v) }},
	}
	for _, f := range facts {
		t.Run(f.key, func(t *testing.T) {
			v, ok := env[f.key]
			require.True(t, ok, "%s (%s) is not in the executor's environment", f.key, f.name)
			f.check(t, v)
		})
	}
}

func canonical(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// uniqueID returns prefix with a suffix unique in this run.
func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e9)
}

package executor

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
)

// Without MESOS_AGENT_ENDPOINT the agent is found as Mesos's executor
// library finds it: from MESOS_SLAVE_PID, under the PID's ID.
func TestConfigFromEnvSlavePID(t *testing.T) {
	env := map[string]string{
		"MESOS_FRAMEWORK_ID": "fw-1",
		"MESOS_EXECUTOR_ID":  "ex-1",
		"MESOS_SLAVE_PID":    "slave(1)@10.0.0.5:5052",
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := ConfigFromEnv(getenv)
	require.NoError(t, err)
	assert.Equal(t, "http://10.0.0.5:5052/slave(1)", cfg.AgentEndpoint)
	require.NotNil(t, cfg.Agent)
	assert.Equal(t, "http://10.0.0.5:5052/slave(1)/api/v1/executor", cfg.Agent.(*httpAgent).url)

	env["MESOS_AGENT_ENDPOINT"] = "10.0.0.5:5052"
	cfg, err = ConfigFromEnv(getenv)
	require.NoError(t, err)
	assert.Equal(t, "http://10.0.0.5:5052/api/v1/executor", cfg.Agent.(*httpAgent).url, "the endpoint wins")

	delete(env, "MESOS_AGENT_ENDPOINT")
	for _, bad := range []string{"10.0.0.5:5052", "slave(1)@10.0.0.5", "slave(1)@10.0.0.5:0", "@10.0.0.5:5051", "a/b@10.0.0.5:5051"} {
		env["MESOS_SLAVE_PID"] = bad
		_, err := ConfigFromEnv(getenv)
		assert.ErrorIs(t, err, ErrInvalidConfig, bad)
	}
}

// Tasks get MESOS_ALLOCATION_ROLE, and a group's MESOS_CONTAINER_IP, as
// Mesos's command and default executors set them.
func TestTaskEnvironmentAsMesos(t *testing.T) {
	h := newCmdHarness(t)
	h.cfg.ContainerIP = "192.0.2.20"
	h.start(NewDefaultExecutor(h.cfg))
	a := shellTask("a", `echo "$MESOS_ALLOCATION_ROLE $MESOS_CONTAINER_IP" > env.txt`)
	a.Resources = []mesospb.Resource{{
		Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.1},
		AllocationInfo: &mesospb.Resource_AllocationInfo{Role: ptr("web")},
	}}
	h.agent.push(t, launchGroupEvent(a))
	h.waitStates("a", finished...)
	assert.Equal(t, "web 192.0.2.20", strings.TrimSpace(h.readFile(filepath.Join(h.cfg.Sandbox, "tasks", "a", "env.txt"))))
	h.requireStopped()

	// The command executor: the role, but no container IP.
	h = newCmdHarness(t)
	h.cfg.ContainerIP = "192.0.2.20"
	h.start(NewCommandExecutor(h.cfg))
	c := shellTask("c", `echo "$MESOS_ALLOCATION_ROLE/$MESOS_CONTAINER_IP" > env.txt`)
	c.Resources = a.Resources
	h.agent.push(t, launchEvent(c))
	h.waitStates("c", finished...)
	assert.Equal(t, "web/", strings.TrimSpace(h.readFile(filepath.Join(h.cfg.Sandbox, "env.txt"))))
}

package agent_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
)

// An ended executor run the agent has forgotten stays in /state, GET_
// EXECUTORS and GET_FRAMEWORKS with its sandbox, bounded as Mesos bounds
// its completed executors and frameworks, so a tool still finds a finished
// task's sandbox and reads it through the files API.
func TestStateKeepsForgottenRuns(t *testing.T) {
	h := newHarness(t, func(c *agent.Config) { c.MaxCompletedExecutorsPerFramework = 2 })
	h.waitRegistered()
	var dirs []string
	for _, id := range []string{"h1", "h2", "h3"} {
		dirs = append(dirs, h.gcFinish(id))
	}

	// With every run forgotten the framework is too: it is a completed
	// framework, with its newest two runs.
	var st map[string]any
	getJSON(t, h, "/state", &st)
	assert.Empty(t, st["frameworks"])
	fws := st["completed_frameworks"].([]any)
	require.Len(t, fws, 1)
	fw := obj(t, fws[0])
	assert.Equal(t, framework.ID.Value, fw["id"])
	assert.Equal(t, framework.Name, fw["name"], "the framework's info is kept")
	var byID = map[string]map[string]any{}
	for _, e := range fw["completed_executors"].([]any) {
		byID[obj(t, e)["id"].(string)] = obj(t, e)
	}
	for i, id := range []string{"h2", "h3"} {
		e := byID[id]
		require.NotNil(t, e, "run of %s", id)
		assert.Equal(t, dirs[i+1], e["directory"])
		assert.NotEmpty(t, e["container"])
		assert.Equal(t, id, e["source"], "a command executor's source is its task's ID")
		tasks := e["completed_tasks"].([]any)
		require.Len(t, tasks, 1)
		assert.Equal(t, "TASK_FINISHED", obj(t, tasks[0])["state"])
	}
	require.NotNil(t, byID["h1"], "the oldest run left the history; its task is still listed")
	assert.Empty(t, byID["h1"]["directory"])

	// Its sandbox is still readable.
	code, body := get(t, h, "/files/read?offset=0&path="+url.QueryEscape(dirs[2]+"/out"))
	require.Equal(t, 200, code, body)
	assert.Contains(t, body, `"data":"hi\n"`)

	// The operator API lists them too.
	code, body = postOperator(t, h, `{"type":"GET_EXECUTORS"}`)
	require.Equal(t, 200, code, body)
	assert.Contains(t, body, `"executor_id":{"value":"h3"}`)
	assert.NotContains(t, body, `"executor_id":{"value":"h1"}`)
	code, body = postOperator(t, h, `{"type":"GET_FRAMEWORKS"}`)
	require.Equal(t, 200, code, body)
	assert.Contains(t, body, `"completed_frameworks":[{"framework_info":{`)

	// The framework comes back, runs a task and is forgotten again: it
	// took its history with it, which now ends with that run.
	h.gcFinish("h4")
	st = nil
	getJSON(t, h, "/state", &st)
	fws = st["completed_frameworks"].([]any)
	require.Len(t, fws, 1)
	kept := map[string]bool{}
	for _, e := range obj(t, fws[0])["completed_executors"].([]any) {
		if obj(t, e)["directory"] != "" {
			kept[obj(t, e)["id"].(string)] = true
		}
	}
	assert.Equal(t, map[string]bool{"h3": true, "h4": true}, kept)
}

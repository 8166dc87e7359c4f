package master_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/master"
)

// The status codes of the agent, teardown, logging and volume calls over
// HTTP, with the JSON bodies of Mesos's operator API docs.
func TestHTTPOperatorAgentCalls(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	agentID, _ := fakeAgent(t, h.m, "agent-1", "cpus:4;mem:4096")
	post := func(body string) (int, string) {
		resp := h.post("/api/v1", codec.MediaTypeJSON, "", []byte(body))
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	agent := func(typ, field, id string) string {
		return fmt.Sprintf(`{"type": %q, %q: {"agent_id": {"value": %q}}}`, typ, field, id)
	}

	for _, c := range []struct {
		body   string
		status int
		answer string
	}{
		{`{"type": "GET_LOGGING_LEVEL"}`, http.StatusOK, `"get_logging_level":{"level":0}`},
		{`{"type": "SET_LOGGING_LEVEL", "set_logging_level": {"duration": {"nanoseconds": 60000000000}, "level": 1}}`, http.StatusOK, ""},
		{`{"type": "GET_LOGGING_LEVEL"}`, http.StatusOK, `"get_logging_level":{"level":1}`},
		{`{"type": "SET_LOGGING_LEVEL"}`, http.StatusBadRequest, "set_logging_level"},
		{`{"type": "GET_OPERATIONS"}`, http.StatusOK, `"type":"GET_OPERATIONS"`},
		{`{"type": "TEARDOWN", "teardown": {"framework_id": {"value": "nope"}}}`, http.StatusBadRequest, "nope"},
		{agent("MARK_AGENT_GONE", "mark_agent_gone", "nope"), http.StatusNotFound, "nope"},
		{agent("DEACTIVATE_AGENT", "deactivate_agent", "nope"), http.StatusBadRequest, "nope"},
		{agent("REACTIVATE_AGENT", "reactivate_agent", agentID), http.StatusBadRequest, "not deactivated"},
		{agent("DEACTIVATE_AGENT", "deactivate_agent", agentID), http.StatusOK, ""},
		{agent("REACTIVATE_AGENT", "reactivate_agent", agentID), http.StatusOK, ""},
		{fmt.Sprintf(`{"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": %q}, "max_grace_period": {"seconds": 600}, "mark_gone": false}}`, agentID), http.StatusOK, ""},
		{`{"type": "GET_AGENTS"}`, http.StatusOK, `"drain_info":{"state":"DRAINED","config":{"max_grace_period":{"nanoseconds":600000000000},"mark_gone":false}}`},
		{agent("REACTIVATE_AGENT", "reactivate_agent", agentID), http.StatusOK, ""},
		{fmt.Sprintf(`{"type": "GROW_VOLUME", "grow_volume": {"agent_id": {"value": %q},
		  "volume": {"name": "disk", "type": "SCALAR", "scalar": {"value": 64}, "role": "role1",
		    "disk": {"persistence": {"id": "id1"}, "volume": {"container_path": "path1", "mode": "RW"}}},
		  "addition": {"name": "disk", "type": "SCALAR", "scalar": {"value": 64}, "role": "role1"}}}`, agentID), http.StatusConflict, "does not have"},
		{`{"type": "SHRINK_VOLUME", "shrink_volume": {"volume": {"name": "disk", "type": "SCALAR", "scalar": {"value": 64}}, "subtract": {"value": 1}}}`, http.StatusBadRequest, "agent_id"},
		{agent("MARK_AGENT_GONE", "mark_agent_gone", agentID), http.StatusOK, ""},
		{agent("MARK_AGENT_GONE", "mark_agent_gone", agentID), http.StatusOK, ""},
	} {
		status, msg := post(c.body)
		assert.Equal(t, c.status, status, "%s: %s", c.body, msg)
		assert.Contains(t, msg, c.answer, c.body)
	}
}

package agent

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/resources"
)

func TestEndpointModelReservations(t *testing.T) {
	total := resources.MustParse("cpus:4;cpus(eng):2;mem(eng):128;ports:[31000-31001]")
	s := &stateSnap{total: total}
	b, err := json.Marshal(s.model())
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, map[string]any{"eng": map[string]any{"cpus": 2.0, "gpus": 0.0, "mem": 128.0, "disk": 0.0}}, doc["reserved_resources"])
	assert.Equal(t, map[string]any{"cpus": 4.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0, "ports": "[31000-31001]"}, doc["unreserved_resources"])
	assert.Equal(t, 6.0, doc["resources"].(map[string]any)["cpus"])
	full := doc["reserved_resources_full"].(map[string]any)["eng"].([]any)
	require.Len(t, full, 2)
	// The endpoint format: the reservations stack and the old role field.
	first := full[0].(map[string]any)
	assert.Equal(t, "eng", first["role"])
	assert.NotEmpty(t, first["reservations"])
}

func TestEndpointModelFrameworkAndMaster(t *testing.T) {
	multi := mesospb.FrameworkInfo{
		ID: &mesospb.FrameworkID{Value: "fw-1"}, Name: "f", User: "u", Roles: []string{"a", "b"},
		Principal:    ptr("p"),
		Capabilities: []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}},
	}
	s := &stateSnap{
		master:     &mesospb.MasterInfo{Hostname: ptr("master-1")},
		frameworks: []*fwSnap{{info: multi, gone: map[string][]mesospb.Task{"e1": {{TaskID: mesospb.TaskID{Value: "t9"}, State: mesospb.TASK_FINISHED.Enum()}}}}},
	}
	b, err := json.Marshal(s.model())
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, "master-1", doc["master_hostname"])
	fw := doc["frameworks"].([]any)[0].(map[string]any)
	assert.Equal(t, []any{"a", "b"}, fw["roles"])
	assert.NotContains(t, fw, "role")
	assert.Equal(t, "p", fw["principal"])
	// A completed task of a forgotten run is under a completed executor of
	// its executor ID, with the role of the framework's resources.
	ex := fw["completed_executors"].([]any)[0].(map[string]any)
	assert.Equal(t, "e1", ex["id"])
	task := ex["completed_tasks"].([]any)[0].(map[string]any)
	assert.Equal(t, "t9", task["id"])
	assert.Equal(t, "TASK_FINISHED", task["state"])
	assert.Equal(t, "a", task["role"])
}

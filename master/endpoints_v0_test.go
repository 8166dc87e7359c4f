package master_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/master"
)

// TestV0Endpoints: Mesos's older operator endpoints answer as Mesos's.
func TestV0Endpoints(t *testing.T) {
	h := startHTTPMaster(t, master.Config{})
	resp := h.request("PUT", "/weights", nil, "", []byte(`[{"role": "batch", "weight": 2.5}]`))
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	resp = h.request("GET", "/master/weights", nil, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var weights []map[string]any
	require.NoError(t, json.Unmarshal([]byte(body(t, resp)), &weights))
	assert.Equal(t, []map[string]any{{"role": "batch", "weight": 2.5}}, weights)

	resp = h.request("POST", "/quota", nil, "", []byte(`{"role": "batch", "force": true, "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]}`))
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	resp = h.request("GET", "/quota", nil, "", nil)
	assert.Contains(t, body(t, resp), `"batch"`)
	resp = h.request("DELETE", "/quota/batch", nil, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body(t, resp))
	resp = h.request("GET", "/quota", nil, "", nil)
	assert.NotContains(t, body(t, resp), `"batch"`)

	resp = h.request("POST", "/teardown", nil, "", []byte("frameworkId=nope"))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body(t, resp))
	resp = h.request("POST", "/teardown", nil, "", []byte(""))
	assert.Contains(t, body(t, resp), "Missing 'frameworkId'")
	resp = h.request("GET", "/teardown", nil, "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp = h.request("POST", "/reserve", nil, "", []byte("slaveId=x&resources=notjson"))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

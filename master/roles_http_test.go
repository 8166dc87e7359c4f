package master_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/master"
)

// GET /roles shows each role's quota beside its consumption, as Mesos's
// /roles does (the operator API's Role message has no quota field).
func TestHTTPRolesShowQuota(t *testing.T) {
	h := startHTTPMaster(t, master.Config{Weights: map[string]float64{"dev": 2}})
	fakeAgent(t, h.m, "agent-1", "cpus:4;mem:4096")
	_, err := h.m.OperatorCall(context.Background(), &masterpb.Call{Type: masterpb.Call_UPDATE_QUOTA.Enum(),
		UpdateQuota: &masterpb.Call_UpdateQuota{QuotaConfigs: []masterpb.QuotaConfig{{
			Role:       "dev",
			Guarantees: map[string]mesospb.Value_Scalar{"mem": {Value: 512}},
			Limits:     map[string]mesospb.Value_Scalar{"cpus": {Value: 1}, "gpus": {Value: 0}},
		}}}})
	require.NoError(t, err)
	info := frameworkInfo("dev")
	info.Role = ptr("dev")
	sched, _, fw := h.subscribe(codec.JSON, info)
	sched.schedulerEvent(schedulerpb.Event_OFFERS)

	resp, body := h.get("/roles")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, codec.MediaTypeJSON, resp.Header.Get("Content-Type"))
	var v struct {
		Roles []struct {
			Name   string  `json:"name"`
			Weight float64 `json:"weight"`
			Quota  struct {
				Role      string             `json:"role"`
				Guarantee map[string]float64 `json:"guarantee"`
				Limit     map[string]float64 `json:"limit"`
				Consumed  map[string]float64 `json:"consumed"`
			} `json:"quota"`
			Allocated  map[string]float64 `json:"allocated"`
			Offered    map[string]float64 `json:"offered"`
			Frameworks []string           `json:"frameworks"`
		} `json:"roles"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	require.Len(t, v.Roles, 1, body)
	dev := v.Roles[0]
	assert.Equal(t, "dev", dev.Name)
	assert.Equal(t, 2.0, dev.Weight)
	assert.Equal(t, "dev", dev.Quota.Role)
	assert.Equal(t, map[string]float64{"mem": 512}, dev.Quota.Guarantee)
	assert.Equal(t, map[string]float64{"cpus": 1, "gpus": 0}, dev.Quota.Limit)
	assert.Equal(t, map[string]float64{"cpus": 1, "mem": 4096}, dev.Quota.Consumed, "the offer is cut to the limit")
	assert.Empty(t, dev.Allocated, "as Mesos's /roles, allocated is what tasks use, offers apart")
	assert.Equal(t, map[string]float64{"cpus": 1, "mem": 4096}, dev.Offered)
	assert.Equal(t, []string{fw}, dev.Frameworks)

	r, err := http.Post(h.url("/roles"), "application/json", nil)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
}

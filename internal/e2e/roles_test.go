package e2e_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/codec"
	"github.com/apronhq/apron/api/v1/masterpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/internal/httpapi"
	"github.com/apronhq/apron/master"
)

// operatorClient makes operator API calls over the test's transport: the
// Go API in process, else POST /api/v1 in the transport's encoding.
type operatorClient func(call *masterpb.Call) (*masterpb.Response, error)

func (c *cluster) operatorClient(t *testing.T, tr transport) operatorClient {
	if !tr.http {
		return func(call *masterpb.Call) (*masterpb.Response, error) {
			return c.master.OperatorCall(context.Background(), call)
		}
	}
	srv := httptest.NewServer(c.master.Handler())
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	client := &httpapi.Client{Codec: codec.Protobuf}
	if tr.json {
		client.Codec = codec.JSON
	}
	return func(call *masterpb.Call) (*masterpb.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		body, err := client.Call(ctx, srv.URL+"/api/v1", "", call)
		if err != nil || len(body) == 0 {
			return nil, err
		}
		var resp masterpb.Response
		return &resp, client.Codec.Unmarshal(body, &resp)
	}
}

func multiRoleInfo(name string, roles ...string) mesospb.FrameworkInfo {
	fi := info(name)
	fi.Roles = roles
	fi.Capabilities = []mesospb.FrameworkInfo_Capability{{Type: mesospb.FrameworkInfo_Capability_MULTI_ROLE.Enum()}}
	return fi
}

// withRole marks a task's resources as allocated to role, as a MULTI_ROLE
// framework does.
func withRole(task mesospb.TaskInfo, role string) mesospb.TaskInfo {
	for i := range task.Resources {
		task.Resources[i].AllocationInfo = &mesospb.Resource_AllocationInfo{Role: ptr(role)}
	}
	return task
}

// A MULTI_ROLE framework is offered resources for each of its roles, every
// resource carrying its role, and runs a task in each.
func TestMultiRoleFramework(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 2, agentResources, master.Config{})
		op := c.operatorClient(t, tr)
		f := c.subscribe(multiRoleInfo("multi", "a", "b"))

		byRole := map[string]mesospb.Offer{}
		for len(byRole) < 2 {
			for _, o := range f.nextOffers() {
				role := o.AllocationInfo.GetRole()
				require.Contains(t, []string{"a", "b"}, role)
				for _, r := range o.Resources {
					require.Equal(t, role, r.AllocationInfo.GetRole(), "resource %s of an offer for %s", r.Name, role)
				}
				if _, seen := byRole[role]; !seen {
					byRole[role] = o
				}
			}
		}
		ctx := context.Background()
		for _, role := range []string{"a", "b"} {
			o := byRole[role]
			task := withRole(shellTask("task-"+role, o, "sleep 30", 0.5, 64), role)
			require.NoError(t, f.driver.LaunchTasks(ctx, ids(o), []mesospb.TaskInfo{task}, nil))
		}
		f.waitState("task-a", mesospb.TASK_RUNNING)
		f.waitState("task-b", mesospb.TASK_RUNNING)

		resp, err := op(&masterpb.Call{Type: masterpb.Call_GET_TASKS.Enum()})
		require.NoError(t, err)
		roles := map[string]string{}
		for _, task := range resp.GetTasks.Tasks {
			for _, r := range task.Resources {
				roles[task.TaskID.Value] = r.AllocationInfo.GetRole()
			}
		}
		assert.Equal(t, map[string]string{"task-a": "a", "task-b": "b"}, roles)

		resp, err = op(&masterpb.Call{Type: masterpb.Call_GET_ROLES.Enum()})
		require.NoError(t, err)
		frameworks := map[string]int{}
		for _, r := range resp.GetRoles.Roles {
			frameworks[r.Name] = len(r.Frameworks)
		}
		assert.Equal(t, 1, frameworks["a"])
		assert.Equal(t, 1, frameworks["b"])
	})
}

// UPDATE_QUOTA over the operator API limits a role: its framework is
// offered no more cpus than the limit, on a cluster with four times as
// many; GET_QUOTA reports the limit.
func TestQuotaLimitOverOperatorAPI(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := startCluster(t, tr, 2, agentResources, master.Config{})
		op := c.operatorClient(t, tr)

		bad := &masterpb.Call{Type: masterpb.Call_UPDATE_QUOTA.Enum(), UpdateQuota: &masterpb.Call_UpdateQuota{
			QuotaConfigs: []masterpb.QuotaConfig{{Role: "dev", Guarantees: map[string]mesospb.Value_Scalar{"cpus": {Value: 100}}}},
		}}
		_, err := op(bad)
		require.Error(t, err, "100 cpus do not fit in 4")
		assert.Contains(t, err.Error(), "exceed cluster capacity")
		if tr.http {
			var he *httpapi.Error
			require.ErrorAs(t, err, &he)
			assert.Equal(t, http.StatusBadRequest, he.Status)
		} else {
			assert.ErrorIs(t, err, master.ErrInvalidCall)
		}

		resp, err := op(&masterpb.Call{Type: masterpb.Call_UPDATE_QUOTA.Enum(), UpdateQuota: &masterpb.Call_UpdateQuota{
			QuotaConfigs: []masterpb.QuotaConfig{{Role: "dev", Limits: map[string]mesospb.Value_Scalar{"cpus": {Value: 1}}}},
		}})
		require.NoError(t, err)
		assert.Nil(t, resp)
		resp, err = op(&masterpb.Call{Type: masterpb.Call_GET_QUOTA.Enum()})
		require.NoError(t, err)
		require.Len(t, resp.GetQuota.Status.Configs, 1)
		assert.Equal(t, "dev", resp.GetQuota.Status.Configs[0].Role)
		assert.Equal(t, 1.0, resp.GetQuota.Status.Configs[0].Limits["cpus"].Value)

		fi := info("dev")
		fi.Role = ptr("dev")
		f := c.subscribe(fi)
		// The framework keeps every offer: however many come, they hold
		// 1 cpu in all, the limit.
		var offered float64
		var withCPUs mesospb.Offer
		for offered < 1 {
			for _, o := range f.nextOffers() {
				for _, r := range o.Resources {
					if r.Name == "cpus" {
						offered += r.Scalar.Value
						withCPUs = o
					}
				}
			}
		}
		require.Equal(t, 1.0, offered)
		require.NoError(t, f.driver.LaunchTasks(context.Background(), ids(withCPUs),
			[]mesospb.TaskInfo{shellTask("capped", withCPUs, "sleep 30", 1, 64)}, nil))
		f.waitState("capped", mesospb.TASK_RUNNING)

		resp, err = op(&masterpb.Call{Type: masterpb.Call_GET_ROLES.Enum()})
		require.NoError(t, err)
		var cpus float64
		for _, r := range resp.GetRoles.Roles {
			if r.Name == "dev" {
				for _, res := range r.Resources {
					if res.Name == "cpus" {
						cpus += res.Scalar.Value
					}
				}
			}
		}
		assert.Equal(t, 1.0, cpus, "the role holds exactly its limit")

		// Offers that arrived meanwhile carry no cpus.
		for {
			select {
			case offers := <-f.rec.offers:
				for _, o := range offers {
					for _, r := range o.Resources {
						assert.NotEqual(t, "cpus", r.Name, "an offer of cpus beyond the limit")
					}
				}
				continue
			case <-time.After(10 * time.Millisecond):
			}
			break
		}
	})
}

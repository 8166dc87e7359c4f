package master_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
)

// bigMaster is a master that knows agents agents re-registered with
// tasksPerAgent running tasks each, of one framework.
func bigMaster(b *testing.B, agents, tasksPerAgent int) *httptest.Server {
	m, err := master.New(master.Config{})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = m.Run(ctx) }()
	fw := mesospb.FrameworkInfo{ID: &mesospb.FrameworkID{Value: "fw-1"}, User: "root", Name: "big", Roles: []string{"*"}}
	cpus := func(v float64) []mesospb.Resource {
		return []mesospb.Resource{{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: v}}}
	}
	for i := range agents {
		agentID := fmt.Sprintf("agent-%d", i)
		call := &internalpb.Call{Type: internalpb.Call_REREGISTER.Enum(), Reregister: &internalpb.Call_Reregister{
			AgentInfo: mesospb.AgentInfo{ID: &mesospb.AgentID{Value: agentID}, Hostname: "127.0.0.1",
				Port: ptr(int32(10000 + i)), Resources: cpus(float64(tasksPerAgent))},
			Frameworks: []mesospb.FrameworkInfo{fw},
		}}
		for j := range tasksPerAgent {
			st := mesospb.TASK_RUNNING
			call.Reregister.Tasks = append(call.Reregister.Tasks, mesospb.Task{
				Name: "task", TaskID: mesospb.TaskID{Value: fmt.Sprintf("task-%d-%d", i, j)},
				FrameworkID: *fw.ID, AgentID: mesospb.AgentID{Value: agentID}, State: &st,
				Resources: cpus(0.5),
			})
		}
		_, events, err := m.ConnectAgent(ctx, call)
		require.NoError(b, err)
		go func() {
			for range events {
			}
		}()
	}
	srv := httptest.NewServer(m.Handler())
	b.Cleanup(srv.Close)
	return srv
}

func BenchmarkGetState(b *testing.B) {
	srv := bigMaster(b, 100, 1000)
	for _, ct := range []string{"application/json", "application/x-protobuf"} {
		b.Run(ct, func(b *testing.B) {
			var n int64
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1", bytes.NewBufferString(`{"type":"GET_STATE"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", ct)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
			b.ReportMetric(float64(n)/1e6, "MB/op")
		})
	}
}

package master_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/internalpb"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// scrape GETs url and parses the Prometheus text it answers.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// histogramCount is the observations of a histogram family, over all its
// series whose labels include want.
func histogramCount(fams map[string]*dto.MetricFamily, name string, want map[string]string) uint64 {
	var n uint64
	for _, m := range fams[name].GetMetric() {
		if hasLabels(m, want) {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// metricsScheduler launches one long task on the first offer it gets.
type metricsScheduler struct {
	scheduler.Base
	once    sync.Once
	cmd     string
	running chan struct{}
	ended   chan mesospb.TaskState
}

func (s *metricsScheduler) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	for _, o := range offers {
		launched := false
		s.once.Do(func() {
			launched = true
			task := mesospb.TaskInfo{
				Name: "t1", TaskID: mesospb.TaskID{Value: "t1"}, AgentID: o.AgentID,
				Resources: []mesospb.Resource{
					{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
					{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 32}},
				},
				Command: &mesospb.CommandInfo{Value: ptr(s.cmd)},
			}
			_ = d.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{task}, nil)
		})
		if !launched {
			_ = d.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, nil)
		}
	}
}

func (s *metricsScheduler) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	switch st.GetState() {
	case mesospb.TASK_RUNNING:
		close(s.running)
	case mesospb.TASK_FINISHED, mesospb.TASK_FAILED, mesospb.TASK_KILLED, mesospb.TASK_LOST, mesospb.TASK_ERROR:
		s.ended <- st.GetState()
	}
}

// metricsCluster is a master served over HTTP, one agent in process with
// its own HTTP API, and a framework over HTTP that launched one task.
type metricsCluster struct {
	master, agent string // base URLs
	d             *scheduler.Driver
	sched         *metricsScheduler
}

func startMetricsCluster(t testing.TB, cmd string) *metricsCluster {
	t.Helper()
	m, err := master.New(master.Config{AllocationInterval: 50 * time.Millisecond, Registry: master.NewMemoryRegistry()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	msrv := httptest.NewServer(m.Handler())
	a, err := agent.New(agent.Config{Master: m, WorkDir: t.TempDir(), Resources: "cpus:2;mem:256;disk:256", Hostname: "127.0.0.1"})
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Run(ctx) }()
	asrv := httptest.NewServer(a.Handler())
	s := &metricsScheduler{cmd: cmd, running: make(chan struct{}), ended: make(chan mesospb.TaskState, 1)}
	d, err := scheduler.NewDriver(s, mesospb.FrameworkInfo{User: "root", Name: "metrics"}, scheduler.WithMasterURL(msrv.URL))
	require.NoError(t, err)
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Run(ctx) }()
	t.Cleanup(func() {
		_ = d.Abort()
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		_ = a.Shutdown(sctx)
		cancel()
		wg.Wait()
		msrv.CloseClientConnections()
		msrv.Close()
		asrv.Close()
	})
	select {
	case <-s.running:
	case <-time.After(30 * time.Second):
		t.Fatal("the task never ran")
	}
	return &metricsCluster{master: msrv.URL, agent: asrv.URL, d: d, sched: s}
}

// After a task launched, the master's histograms have observations: the
// allocation cycles, the offer → launch latency of its ACCEPT, the
// acknowledgement of its updates, registry writes, HTTP requests by route
// and code, and
// the agent's /metrics shows its container while it lives, and not once
// it is gone.
func TestPrometheusMetricsAfterLaunch(t *testing.T) {
	c := startMetricsCluster(t, "sleep 60")

	var fams map[string]*dto.MetricFamily
	require.Eventually(t, func() bool { // the driver acknowledges RUNNING just after the callback
		fams = scrape(t, c.master+"/metrics")
		return histogramCount(fams, "apron_master_status_update_ack_seconds", nil) >= 1
	}, 10*time.Second, 20*time.Millisecond)
	assert.GreaterOrEqual(t, histogramCount(fams, "apron_master_allocation_cycle_seconds", nil), uint64(1))
	assert.Equal(t, uint64(1), histogramCount(fams, "apron_master_offer_launch_seconds", nil), "one ACCEPT launched")
	assert.GreaterOrEqual(t, histogramCount(fams, "apron_master_registry_write_seconds", map[string]string{"result": "ok"}), uint64(1),
		"the agent's admission")
	assert.GreaterOrEqual(t, histogramCount(fams, "apron_master_http_request_duration_seconds",
		map[string]string{"endpoint": "/api/v1/scheduler", "code": "202"}), uint64(1), "the ACCEPT and ACKNOWLEDGE calls")
	assert.GreaterOrEqual(t, histogramCount(fams, "apron_master_http_request_duration_seconds",
		map[string]string{"endpoint": "/api/v1/scheduler", "code": "200"}), uint64(1), "the SUBSCRIBE stream, to its headers")
	for _, m := range fams["apron_master_http_request_duration_seconds"].GetMetric() {
		assert.True(t, hasLabels(m, map[string]string{"endpoint": "/api/v1/scheduler"}) ||
			hasLabels(m, map[string]string{"endpoint": "/metrics"}), "a route's pattern: %v", m.GetLabel())
	}
	gauge := func(name string, labels map[string]string) float64 {
		for _, m := range fams[name].GetMetric() {
			if hasLabels(m, labels) {
				return m.GetGauge().GetValue()
			}
		}
		t.Errorf("no %s%v", name, labels)
		return -1
	}
	assert.Equal(t, 1.0, gauge("apron_master_tasks", map[string]string{"state": "TASK_RUNNING"}))
	assert.Equal(t, 2.0, gauge("apron_master_resources_total", map[string]string{"resource": "cpus"}))
	assert.Equal(t, 0.5, gauge("apron_master_resources_used", map[string]string{"resource": "cpus"}))
	assert.Equal(t, 1.0, gauge("apron_master_elected", nil))

	// A raw path nobody routes is one label value, not one per path.
	for _, p := range []string{"/nope/1", "/nope/2"} {
		resp, err := http.Get(c.master + p)
		require.NoError(t, err)
		resp.Body.Close()
	}
	fams = scrape(t, c.master+"/metrics")
	assert.Equal(t, uint64(2), histogramCount(fams, "apron_master_http_request_duration_seconds",
		map[string]string{"endpoint": "other", "code": "404"}))

	// The agent: its container while it lives.
	afams := scrape(t, c.agent+"/metrics")
	containers := map[string]bool{}
	for _, m := range afams["apron_agent_container_memory_rss_bytes"].GetMetric() {
		for _, l := range m.GetLabel() {
			containers[l.GetValue()] = true
		}
	}
	require.Len(t, containers, 1, "the task's container")
	assert.Len(t, afams["apron_agent_container_cpu_seconds_total"].GetMetric(), 2, "user and system")
	assert.Equal(t, dto.MetricType_COUNTER, afams["apron_agent_container_cpu_seconds_total"].GetType())

	require.NoError(t, c.d.KillTask(context.Background(), mesospb.TaskID{Value: "t1"}, nil))
	select {
	case st := <-c.sched.ended:
		assert.Equal(t, mesospb.TASK_KILLED, st)
	case <-time.After(30 * time.Second):
		t.Fatal("the task was not killed")
	}
	require.Eventually(t, func() bool {
		afams = scrape(t, c.agent+"/metrics")
		return len(afams["apron_agent_container_memory_rss_bytes"].GetMetric()) == 0 &&
			len(afams["apron_agent_container_cpu_seconds_total"].GetMetric()) == 0
	}, 10*time.Second, 20*time.Millisecond, "the container's series go with it")
	// The agent's HTTP requests: the scrapes before the last one.
	assert.GreaterOrEqual(t, histogramCount(afams, "apron_agent_http_request_duration_seconds",
		map[string]string{"endpoint": "/metrics", "code": "200"}), uint64(1))
}

// BenchmarkMetricsScrape is the cost of a GET /metrics, master and agent,
// on a cluster of one agent running one task, over loopback HTTP.
func BenchmarkMetricsScrape(b *testing.B) {
	for _, target := range []string{"master", "agent"} {
		b.Run(target, func(b *testing.B) {
			c := startMetricsCluster(b, "sleep 600")
			url := c.master + "/metrics"
			if target == "agent" {
				url = c.agent + "/metrics"
			}
			for b.Loop() {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkMetricsScrapeAgents is the cost of the master's GET /metrics
// with many agents registered (no tasks): the snapshot and cluster
// gauges take one turn of the master's loop.
func BenchmarkMetricsScrapeAgents(b *testing.B) {
	const agents = 5000
	m, err := master.New(master.Config{})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	for i := range agents {
		_, events, err := m.ConnectAgent(ctx, &internalpb.Call{
			Type: internalpb.Call_REGISTER.Enum(),
			Register: &internalpb.Call_Register{AgentInfo: mesospb.AgentInfo{
				Hostname: "127.0.0.1", Port: ptr(int32(10000 + i)),
				Resources: []mesospb.Resource{{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 4}}},
			}},
		})
		require.NoError(b, err)
		go func() {
			for range events {
			}
		}()
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for b.Loop() {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

package grafana

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/apronhq/apron/agent"
	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/master"
	"github.com/apronhq/apron/scheduler"
)

// exported scrapes url twice (the first scrape's own request shows in the
// second) and returns the names of the series it holds: a histogram's
// as <name>_bucket, _sum and _count.
func exported(t *testing.T, url string, names map[string]bool) {
	t.Helper()
	for range 2 {
		resp, err := http.Get(url)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		for name, f := range fams {
			if len(f.GetMetric()) == 0 {
				continue
			}
			names[name] = true
			if f.GetType() == dto.MetricType_HISTOGRAM {
				names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
			}
		}
	}
}

// launcher launches one long task on its first offer.
type launcher struct {
	scheduler.Base
	once    sync.Once
	running chan struct{}
}

func (l *launcher) ResourceOffers(ctx context.Context, d *scheduler.Driver, offers []mesospb.Offer) {
	for _, o := range offers {
		first := false
		l.once.Do(func() {
			first = true
			cmd := "sleep 60"
			_ = d.LaunchTasks(ctx, []mesospb.OfferID{o.ID}, []mesospb.TaskInfo{{
				Name: "t1", TaskID: mesospb.TaskID{Value: "t1"}, AgentID: o.AgentID,
				Resources: []mesospb.Resource{
					{Name: "cpus", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 0.5}},
					{Name: "mem", Type: mesospb.Value_SCALAR, Scalar: &mesospb.Value_Scalar{Value: 32}},
				},
				Command: &mesospb.CommandInfo{Value: &cmd},
			}}, nil)
		})
		if !first {
			_ = d.DeclineOffer(ctx, []mesospb.OfferID{o.ID}, nil)
		}
	}
}

func (l *launcher) StatusUpdate(_ context.Context, _ *scheduler.Driver, st mesospb.TaskStatus) {
	if st.GetState() == mesospb.TASK_RUNNING {
		close(l.running)
	}
}

// exprs lists the PromQL of every panel's targets, rows' panels included.
func exprs(t *testing.T, panels []any) []string {
	var out []string
	for _, p := range panels {
		p := p.(map[string]any)
		if nested, ok := p["panels"].([]any); ok {
			out = append(out, exprs(t, nested)...)
		}
		targets, _ := p["targets"].([]any)
		for _, tg := range targets {
			expr, _ := tg.(map[string]any)["expr"].(string)
			require.NotEmpty(t, expr, "panel %q has a target without an expr", p["title"])
			out = append(out, expr)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\bapron_[a-zA-Z0-9_:]+`)

// The dashboard is valid JSON, and each of its queries names metrics, all
// of which a master and an agent running a task export.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("apron.json")
	require.NoError(t, err)
	var dash map[string]any
	require.NoError(t, json.Unmarshal(b, &dash))
	panels, _ := dash["panels"].([]any)
	qs := exprs(t, panels)
	require.NotEmpty(t, qs)

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
	l := &launcher{running: make(chan struct{})}
	d, err := scheduler.NewDriver(l, mesospb.FrameworkInfo{User: "root", Name: "grafana"}, scheduler.WithMaster(m))
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
		msrv.Close()
		asrv.Close()
	})
	select {
	case <-l.running:
	case <-time.After(30 * time.Second):
		t.Fatal("the task never ran")
	}

	names := map[string]bool{}
	require.Eventually(t, func() bool { // the acknowledgement of RUNNING follows the callback
		exported(t, msrv.URL+"/metrics", names)
		return names["apron_master_status_update_ack_seconds_bucket"]
	}, 10*time.Second, 20*time.Millisecond)
	exported(t, asrv.URL+"/metrics", names)

	used := map[string]bool{}
	for _, q := range qs {
		found := metricName.FindAllString(q, -1)
		assert.NotEmpty(t, found, "query names no apron_ metric: %s", q)
		for _, name := range found {
			used[name] = true
			assert.True(t, names[name], "%s is not exported; query: %s", name, q)
		}
	}
	var list []string
	for name := range used {
		list = append(list, name)
	}
	sort.Strings(list)
	t.Logf("the dashboard uses %d metrics: %v", len(list), list)
}

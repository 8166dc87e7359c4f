package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apronhq/apron/containerizer"
)

// promHandler serves GET /metrics through a Prometheus registry of its
// own (no process-wide registry: agents in one process do not mix): the
// handler's request durations, and a collector that reads everything
// else at the scrape: the agent's snapshot (the families /metrics has
// always had) and a usage sample of each live container, so a
// container's series go when the container does and the label set stays
// bounded by the containers running now.
func (a *Agent) promHandler(httpDuration prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newAgentCollector(a), httpDuration)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.HTTPErrorOnError,
		EnableOpenMetrics: true,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !requireGET(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// agentFamilies are the families of /metrics: name, type, help, labels.
var agentFamilies = []struct {
	name   string
	typ    prometheus.ValueType
	help   string
	labels []string
}{
	{"apron_agent_registered", prometheus.GaugeValue, "Whether the agent is registered with a master.", nil},
	{"apron_agent_uptime_seconds", prometheus.GaugeValue, "Time since the agent started.", nil},
	{"apron_agent_frameworks", prometheus.GaugeValue, "Frameworks with executors or tasks on the agent.", nil},
	{"apron_agent_tasks", prometheus.GaugeValue, "Tasks the agent knows now (queued, launched, or terminal and unacknowledged), by state.", []string{"state"}},
	{"apron_agent_tasks_terminated_total", prometheus.CounterValue, "Tasks that reached a terminal state since the agent started, by state.", []string{"state"}},
	{"apron_agent_executors", prometheus.GaugeValue, "Executor runs, by state.", []string{"state"}},
	{"apron_agent_containers", prometheus.GaugeValue, "Containers of the agent's containerizer.", nil},
	{"apron_agent_status_updates_pending", prometheus.GaugeValue, "Status updates waiting for the master's acknowledgement.", nil},
	{"apron_agent_status_updates_total", prometheus.CounterValue, "Status updates from executors, by whether the agent took them.", []string{"result"}},
	{"apron_agent_framework_messages_total", prometheus.CounterValue, "Framework messages for executors, by whether they were delivered.", []string{"result"}},
	{"apron_agent_resources", prometheus.GaugeValue, "The agent's resources (cpus, mem in MB, disk in MB), total and used by live tasks.", []string{"resource", "kind"}},
	{"apron_agent_gc_paths_pending", prometheus.GaugeValue, "Sandbox paths scheduled for garbage collection.", nil},
	{"apron_agent_gc_paths_scheduled_total", prometheus.CounterValue, "Sandbox paths scheduled for garbage collection since the agent started.", nil},
	{"apron_agent_gc_path_removals_total", prometheus.CounterValue, "Sandbox paths the garbage collector removed or failed to remove since the agent started.", []string{"result"}},
	{"apron_agent_container_cpu_seconds_total", prometheus.CounterValue, "CPU time a live container's processes have used, by container and mode (user, system).", []string{"container_id", "mode"}},
	{"apron_agent_container_memory_rss_bytes", prometheus.GaugeValue, "Resident memory of a live container's processes.", []string{"container_id"}},
	{"apron_agent_container_memory_limit_bytes", prometheus.GaugeValue, "Memory limit of a live container, when it has one.", []string{"container_id"}},
	{"apron_agent_container_cpus_limit", prometheus.GaugeValue, "CPU limit (cpus) of a live container, when it has one.", []string{"container_id"}},
	{"apron_agent_container_processes", prometheus.GaugeValue, "Live processes of a live container.", []string{"container_id"}},
}

// agentCollector is the agent's one prometheus.Collector.
type agentCollector struct {
	a     *Agent
	descs map[string]*prometheus.Desc
	types map[string]prometheus.ValueType
}

func newAgentCollector(a *Agent) *agentCollector {
	c := &agentCollector{a: a, descs: map[string]*prometheus.Desc{}, types: map[string]prometheus.ValueType{}}
	for _, f := range agentFamilies {
		c.descs[f.name] = prometheus.NewDesc(f.name, f.help, f.labels, nil)
		c.types[f.name] = f.typ
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range agentFamilies {
		ch <- c.descs[f.name]
	}
}

// agentScrapeTimeout bounds a scrape's wait for the loop and the
// containerizer.
const agentScrapeTimeout = 10 * time.Second

// Collect implements prometheus.Collector.
func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), agentScrapeTimeout)
	defer cancel()
	m, err := c.a.metrics(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.descs["apron_agent_registered"], err)
		return
	}
	emit := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], c.types[name], v, labels...)
	}
	reg := 0.0
	if m.registered {
		reg = 1
	}
	emit("apron_agent_registered", reg)
	emit("apron_agent_uptime_seconds", m.uptime.Seconds())
	emit("apron_agent_frameworks", float64(m.frameworks))
	for _, s := range taskStates {
		emit("apron_agent_tasks", float64(m.tasks[s]), s.String())
		if terminal(s) {
			emit("apron_agent_tasks_terminated_total", float64(m.terminal[s]), s.String())
		}
	}
	for _, s := range executorStates {
		emit("apron_agent_executors", float64(m.executors[s]), s)
	}
	emit("apron_agent_containers", float64(m.containers))
	emit("apron_agent_status_updates_pending", float64(m.pendingUpdates))
	emit("apron_agent_status_updates_total", float64(m.counters.validUpdates), "valid")
	emit("apron_agent_status_updates_total", float64(m.counters.invalidUpdates), "invalid")
	emit("apron_agent_framework_messages_total", float64(m.counters.validMessages), "delivered")
	emit("apron_agent_framework_messages_total", float64(m.counters.invalidMessages), "dropped")
	for _, r := range []string{"cpus", "mem", "disk"} {
		emit("apron_agent_resources", m.total[r], r, "total")
		emit("apron_agent_resources", m.used[r], r, "used")
	}
	emit("apron_agent_gc_paths_pending", float64(m.gcPending))
	emit("apron_agent_gc_paths_scheduled_total", float64(m.gc.scheduled))
	emit("apron_agent_gc_path_removals_total", float64(m.gc.removed), "succeeded")
	emit("apron_agent_gc_path_removals_total", float64(m.gc.failed), "failed")
	c.collectContainers(ctx, emit)
}

// collectContainers samples each live container. A container that ends
// between the listing and its sample is left out, as is every container
// when the containerizer cannot list them (closed: the agent stopping).
func (c *agentCollector) collectContainers(ctx context.Context, emit func(string, float64, ...string)) {
	cont, err := request(c.a, ctx, func() containerizer.Containerizer { return c.a.cont })
	if err != nil || cont == nil {
		return
	}
	ids, err := cont.Containers(ctx)
	if err != nil {
		return
	}
	for _, id := range ids {
		u, err := cont.Usage(ctx, id)
		if err != nil {
			continue
		}
		emit("apron_agent_container_cpu_seconds_total", u.CPUUserSeconds, id, "user")
		emit("apron_agent_container_cpu_seconds_total", u.CPUSystemSeconds, id, "system")
		emit("apron_agent_container_memory_rss_bytes", float64(u.RSSBytes), id)
		emit("apron_agent_container_processes", float64(u.Processes), id)
		if u.Limits.MemoryBytes > 0 {
			emit("apron_agent_container_memory_limit_bytes", float64(u.Limits.MemoryBytes), id)
		}
		if u.Limits.CPUs > 0 {
			emit("apron_agent_container_cpus_limit", u.Limits.CPUs, id)
		}
	}
}

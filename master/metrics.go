package master

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/apronhq/apron/api/v1/mesospb"
	"github.com/apronhq/apron/api/v1/schedulerpb"
	"github.com/apronhq/apron/internal/clock"
	"github.com/apronhq/apron/internal/httpmetrics"
	"github.com/apronhq/apron/resources"
)

// promMetrics is what a master serves at GET /metrics, in the Prometheus
// exposition format, through a registry of its own (several masters in
// one process do not share one). The gauges and counters of the state
// machine are read from it at each scrape (snapshotCollector); the
// histograms are observed by the shell, never by the core, which reads no
// clock: the allocation cycle and registry writes are timed around the
// calls that do them (a stopwatch, as the gauge of the last allocation
// cycle always was), and the offer → launch and update → acknowledgement
// latencies from the injected clock, when the shell hands an event to a
// scheduler's stream and when the scheduler's answer comes in.
type promMetrics struct {
	reg *prometheus.Registry

	allocation    prometheus.Histogram
	offerLaunch   prometheus.Histogram
	ackLatency    prometheus.Histogram
	registryWrite *prometheus.HistogramVec
	httpDuration  *prometheus.HistogramVec

	// Owned by Run's goroutine: when each offer and each status update
	// (by UUID) went to its scheduler. An entry leaves when its answer
	// comes, when the offer is rescinded, or, for those nobody answers
	// (a framework gone), at the sweep after pendingTTL.
	clock      clock.Clock
	offersSent map[string]time.Time
	updateSent map[string]time.Time
	lastSweep  time.Time
}

// pendingTTL bounds how long an unanswered offer or update is remembered
// for the latency histograms; sweepEvery is how often the shell looks.
const (
	pendingTTL = time.Hour
	sweepEvery = time.Minute
)

// Histogram buckets, in seconds: exponential, so one set covers a
// 10,000-agent allocation cycle and an idle one, and a scheduler that
// answers at once and one that holds offers for a minute.
var (
	cycleBuckets   = prometheus.ExponentialBuckets(0.0001, 2, 17) // 100 µs .. 6.5 s
	latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 18)  // 1 ms .. 131 s
)

func newPromMetrics(m *Master) *promMetrics {
	p := &promMetrics{
		reg: prometheus.NewRegistry(),
		allocation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "apron_master_allocation_cycle_seconds",
			Help:    "Duration of allocation cycles that ran (full or over the agents that changed).",
			Buckets: cycleBuckets,
		}),
		offerLaunch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "apron_master_offer_launch_seconds",
			Help:    "Time from an offer sent to its scheduler to the ACCEPT call that launches tasks on it (LAUNCH or LAUNCH_GROUP).",
			Buckets: latencyBuckets,
		}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "apron_master_status_update_ack_seconds",
			Help:    "Time from a status update sent to its scheduler to the scheduler's ACKNOWLEDGE of it.",
			Buckets: latencyBuckets,
		}),
		registryWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apron_master_registry_write_seconds",
			Help:    "Duration of registry writes (each a group commit of the operations queued since the last), by result (ok, error).",
			Buckets: cycleBuckets,
		}, []string{"result"}),
		httpDuration: httpmetrics.NewHistogram("apron_master_http_request_duration_seconds",
			"Duration of HTTP requests by endpoint (the route's pattern) and status code; for a streaming "+
				"response (SUBSCRIBE), the time until its headers were sent."),
		clock:      m.cfg.Clock,
		offersSent: map[string]time.Time{},
		updateSent: map[string]time.Time{},
	}
	p.reg.MustRegister(p.allocation, p.offerLaunch, p.ackLatency, p.registryWrite, p.httpDuration,
		newSnapshotCollector(m))
	return p
}

// allocated records an allocation cycle that ran.
func (p *promMetrics) allocated(d time.Duration) { p.allocation.Observe(d.Seconds()) }

// wrote records a registry write.
func (p *promMetrics) wrote(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	p.registryWrite.WithLabelValues(result).Observe(d.Seconds())
}

// sent notes the offers and status updates among the messages the shell
// is about to deliver. On Run's goroutine.
func (p *promMetrics) sent(msgs []message) {
	var now time.Time
	stamp := func() time.Time {
		if now.IsZero() {
			now = p.clock.Now()
		}
		return now
	}
	for _, msg := range msgs {
		ev := msg.scheduler
		if ev == nil {
			continue
		}
		switch {
		case ev.Offers != nil:
			for i := range ev.Offers.Offers {
				p.offersSent[ev.Offers.Offers[i].ID.Value] = stamp()
			}
		case ev.Rescind != nil:
			delete(p.offersSent, ev.Rescind.OfferID.Value)
		case ev.Update != nil && len(ev.Update.Status.UUID) > 0:
			// The first send counts: a resent update's latency runs
			// from the first.
			if _, ok := p.updateSent[string(ev.Update.Status.UUID)]; !ok {
				p.updateSent[string(ev.Update.Status.UUID)] = stamp()
			}
		}
	}
}

// answered observes the latencies a scheduler call the core took ends.
// On Run's goroutine.
func (p *promMetrics) answered(call *schedulerpb.Call) {
	switch {
	case call.Accept != nil:
		launch := false
		for _, op := range call.Accept.Operations {
			if t := op.GetType(); t == mesospb.Offer_Operation_LAUNCH || t == mesospb.Offer_Operation_LAUNCH_GROUP {
				launch = true
			}
		}
		now := p.clock.Now()
		for _, id := range call.Accept.OfferIDs {
			if at, ok := p.offersSent[id.Value]; ok {
				if launch {
					p.offerLaunch.Observe(now.Sub(at).Seconds())
				}
				delete(p.offersSent, id.Value)
			}
		}
	case call.Decline != nil:
		for _, id := range call.Decline.OfferIDs {
			delete(p.offersSent, id.Value)
		}
	case call.Acknowledge != nil:
		if at, ok := p.updateSent[string(call.Acknowledge.UUID)]; ok {
			p.ackLatency.Observe(p.clock.Now().Sub(at).Seconds())
			delete(p.updateSent, string(call.Acknowledge.UUID))
		}
	}
}

// sweep forgets offers and updates nobody answered within pendingTTL, at
// most once per sweepEvery. On Run's goroutine, at ticks.
func (p *promMetrics) sweep(now time.Time) {
	if now.Sub(p.lastSweep) < sweepEvery {
		return
	}
	p.lastSweep = now
	for _, m := range []map[string]time.Time{p.offersSent, p.updateSent} {
		for k, at := range m {
			if now.Sub(at) > pendingTTL {
				delete(m, k)
			}
		}
	}
}

// handler serves GET /metrics: the registry in the Prometheus text
// format (or OpenMetrics, when the scraper asks for it).
func (p *promMetrics) handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.HTTPErrorOnError,
		EnableOpenMetrics: true,
	})
}

// instrument times each request mux serves into
// apron_master_http_request_duration_seconds.
func (p *promMetrics) instrument(mux *http.ServeMux) http.Handler {
	return httpmetrics.Instrument(mux, p.httpDuration)
}

// snapshotCollector reports the state machine's gauges and counters,
// taken from it at each scrape (one turn of the master's loop), under
// the names /metrics has always had.
type snapshotCollector struct {
	m     *Master
	descs map[string]*prometheus.Desc
	order []string
}

// snapshotFamilies are the snapshot's metric families: name, help, and
// the label the samples carry, if any.
var snapshotFamilies = []struct{ name, help, label string }{
	{"apron_master_elected", "Whether this master is the leader (1) or not (0).", ""},
	{"apron_master_frameworks", "Frameworks known to the master, by connection state.", "state"},
	{"apron_master_agents", "Agents known to the master, by connection state.", "state"},
	{"apron_master_offers_outstanding", "Offers made and not yet accepted, declined or rescinded.", ""},
	{"apron_master_offers_made_total", "Offers made to frameworks.", ""},
	{"apron_master_offers_declined_total", "Offers declined by frameworks.", ""},
	{"apron_master_offers_rescinded_total", "Offers rescinded by the master.", ""},
	{"apron_master_tasks_launched_total", "Tasks the master sent to agents to launch.", ""},
	{"apron_master_task_updates_total", "Task status updates sent to frameworks, by state.", "state"},
	{"apron_master_allocation_runs_total", "Allocation cycles run, full or over the agents that changed.", ""},
	{"apron_master_allocation_duration_seconds", "Duration of the last allocation cycle.", ""},
	{"apron_master_tasks", "Tasks on agents now, by state (terminal ones until the agent forgets them).", "state"},
	{"apron_master_resources_total", "Resources of the registered agents (cpus, gpus, mem and disk in MB), by resource.", "resource"},
	{"apron_master_resources_used", "Resources held by live tasks and their executors, by resource.", "resource"},
	{"apron_master_resources_offered", "Resources in outstanding offers, by resource.", "resource"},
}

// clusterGauges is what the core holds now, for the gauges the metrics
// snapshot leaves out.
type clusterGauges struct {
	tasks                map[mesospb.TaskState]int
	total, used, offered [len(metricResources)]resources.Scalar
}

// add sums the metricResources of rs into to.
func (g *clusterGauges) add(to *[len(metricResources)]resources.Scalar, rs resources.Resources) {
	for i, name := range metricResources {
		to[i] = to[i].Add(rs.ScalarOf(name))
	}
}

// metricResources are the resources the resource gauges report.
var metricResources = [...]string{resources.NameCPUs, resources.NameGPUs, resources.NameMem, resources.NameDisk}

// clusterGauges counts tasks by state and sums the resources of agents,
// of live tasks and executors, and of offers: O(agents + tasks), at a
// scrape, without allocating per task.
func (c *core) clusterGauges() clusterGauges {
	g := clusterGauges{tasks: map[mesospb.TaskState]int{}}
	for _, a := range c.agents {
		g.add(&g.total, a.total)
		for _, t := range a.tasks {
			g.tasks[t.state]++
			if !t.terminal() {
				g.add(&g.used, t.resources)
			}
		}
	}
	for _, fw := range c.frameworks {
		for _, execs := range fw.executors {
			for _, e := range execs {
				g.add(&g.used, e.resources)
			}
		}
	}
	for _, o := range c.offers {
		g.add(&g.offered, o.resources)
	}
	return g
}

func newSnapshotCollector(m *Master) *snapshotCollector {
	c := &snapshotCollector{m: m, descs: map[string]*prometheus.Desc{}}
	for _, f := range snapshotFamilies {
		var labels []string
		if f.label != "" {
			labels = []string{f.label}
		}
		c.descs[f.name] = prometheus.NewDesc(f.name, f.help, labels, nil)
		c.order = append(c.order, f.name)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, name := range c.order {
		ch <- c.descs[name]
	}
}

// scrapeTimeout bounds the wait for the master's loop at a scrape.
const scrapeTimeout = 10 * time.Second

// Collect implements prometheus.Collector.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var (
		s   metricsSnapshot
		g   clusterGauges
		err error
	)
	if c.m.running() { // a standby's loop is not running: not elected, nothing else
		leading, _ := c.m.leading()
		err = c.m.do(ctx, func(core *core) {
			s, g = core.snapshotMetrics(leading), core.clusterGauges()
		})
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.descs["apron_master_elected"], err)
		return
	}
	gauge := func(name string, v float64, label ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, label...)
	}
	counter := func(name string, v float64, label ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, v, label...)
	}
	elected := 0.0
	if s.elected {
		elected = 1
	}
	gauge("apron_master_elected", elected)
	gauge("apron_master_frameworks", float64(s.frameworksConnected), "connected")
	gauge("apron_master_frameworks", float64(s.frameworksDisconnected), "disconnected")
	gauge("apron_master_agents", float64(s.agentsConnected), "connected")
	gauge("apron_master_agents", float64(s.agentsDisconnected), "disconnected")
	gauge("apron_master_offers_outstanding", float64(s.offersOutstanding))
	counter("apron_master_offers_made_total", float64(s.offersMade))
	counter("apron_master_offers_declined_total", float64(s.offersDeclined))
	counter("apron_master_offers_rescinded_total", float64(s.offersRescinded))
	counter("apron_master_tasks_launched_total", float64(s.tasksLaunched))
	for _, st := range taskStates() {
		counter("apron_master_task_updates_total", float64(s.taskStates[st]), st.String())
	}
	counter("apron_master_allocation_runs_total", float64(s.allocationRuns))
	gauge("apron_master_allocation_duration_seconds", s.allocationTime.Seconds())
	for _, st := range taskStates() {
		gauge("apron_master_tasks", float64(g.tasks[st]), st.String())
	}
	for i, r := range metricResources {
		gauge("apron_master_resources_total", g.total[i].Float64(), r)
		gauge("apron_master_resources_used", g.used[i].Float64(), r)
		gauge("apron_master_resources_offered", g.offered[i].Float64(), r)
	}
}

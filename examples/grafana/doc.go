// Package grafana holds a Grafana dashboard for an Apron cluster,
// apron.json, built on the metrics masters and agents serve at /metrics
// (master/metrics.go, agent/metrics_prom.go). Import it in Grafana
// (Dashboards → New → Import) and pick the Prometheus data source; the
// master_job and agent_job variables name the Prometheus jobs that scrape
// the masters and the agents (any job, by default).
//
// The package has no Go code of its own: its test checks that the
// dashboard is valid JSON and that every query in it names a metric a
// running master or agent exports.
package grafana

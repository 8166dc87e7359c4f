// Package httpmetrics times the requests an http.ServeMux serves into a
// Prometheus histogram labelled by the route's pattern and the status
// code, for the master's and the agent's /metrics. Labelling by pattern
// rather than by path keeps the series bounded whatever paths clients
// send. A streaming response (a SUBSCRIBE's RecordIO body, a tail of the
// files API: one flushed before its handler ends) is observed at its
// first flush, when its head went out: its whole duration is the
// stream's life, not the cost of the request.
package httpmetrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Buckets are the histogram's buckets: 0.5 ms to 16 s.
var Buckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

// NewHistogram returns the histogram Instrument observes into, named
// name, with the labels endpoint and code.
func NewHistogram(name, help string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    name,
		Help:    help,
		Buckets: Buckets,
	}, []string{"endpoint", "code"})
}

// Instrument returns a handler serving mux that times each request into
// obs, labelled with the pattern of the route that took it ("other" for
// none) and the response's status code.
func Instrument(mux *http.ServeMux, obs *prometheus.HistogramVec) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern == "" {
			pattern = "other"
		}
		rec := &recorder{ResponseWriter: w, start: time.Now(), pattern: pattern, obs: obs}
		mux.ServeHTTP(rec, r)
		if !rec.streaming {
			if rec.code == 0 {
				rec.code = http.StatusOK
			}
			rec.observe(time.Since(rec.start))
		}
	})
}

// recorder notes a response's status code and its first flush. Unwrap
// lets http.ResponseController reach the connection's Flush and
// deadlines.
type recorder struct {
	http.ResponseWriter
	start     time.Time
	pattern   string
	obs       *prometheus.HistogramVec
	code      int
	streaming bool
}

func (s *recorder) observe(d time.Duration) {
	s.obs.WithLabelValues(s.pattern, strconv.Itoa(s.code)).Observe(d.Seconds())
}

func (s *recorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *recorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK // as the wrapped writer's implicit WriteHeader
	}
	return s.ResponseWriter.Write(b)
}

// Flush serves http.ResponseController and the callers that assert
// http.Flusher.
func (s *recorder) Flush() {
	if s.code == 0 {
		s.code = http.StatusOK // as the wrapped writer's implicit WriteHeader
	}
	if !s.streaming {
		s.streaming = true
		s.observe(time.Since(s.start))
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *recorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

package httpmetrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Requests are counted by route pattern and code; a path no route takes
// is "other", whatever the path; a stream is observed at its first
// flush, while it still runs.
func TestInstrument(t *testing.T) {
	flushed, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first")
		require.NoError(t, http.NewResponseController(w).Flush(), "the recorder passes Flush through")
		close(flushed)
		<-release
	})
	obs := NewHistogram("test_http_request_duration_seconds", "test")
	srv := httptest.NewServer(Instrument(mux, obs))
	defer srv.Close()

	get := func(path string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get("/ok")
	get("/ok")
	get("/teapot")
	get("/a/1")
	get("/a/2")

	done := make(chan struct{})
	go func() { defer close(done); get("/stream") }()
	<-flushed
	count := func(endpoint, code string) uint64 {
		var m dto.Metric
		require.NoError(t, obs.WithLabelValues(endpoint, code).(prometheus.Metric).Write(&m))
		return m.GetHistogram().GetSampleCount()
	}
	assert.Equal(t, uint64(1), count("/stream", "200"), "observed while the stream runs")
	close(release)
	<-done
	assert.Equal(t, uint64(1), count("/stream", "200"), "and only once")
	assert.Equal(t, uint64(2), count("/ok", "200"))
	assert.Equal(t, uint64(1), count("/teapot", "418"))
	assert.Equal(t, uint64(2), count("other", "404"))
	ch := make(chan prometheus.Metric, 10)
	obs.Collect(ch)
	assert.Len(t, ch, 4, "one series per endpoint and code")
}

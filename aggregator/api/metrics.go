package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsNamespace prefixes every metric the aggregator's API exports.
const MetricsNamespace = "k8smon"

// selfMetrics are the HTTP server's own request metrics.
type selfMetrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	writeTimeouts *prometheus.CounterVec
	encodes       prometheus.Counter
}

func newSelfMetrics(reg *prometheus.Registry, streams *streamLimiter) *selfMetrics {
	m := &selfMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: MetricsNamespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		writeTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Subsystem: "http", Name: "write_timeouts_total",
			Help: "Responses cut off because the client read nothing for the write timeout, by route pattern.",
		}, []string{"route"}),
		encodes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Subsystem: "http", Name: "snapshot_encodes_total",
			Help: "Snapshots encoded for /api/v1/metrics/snapshot: at most one per build.",
		}),
	}
	streamsInUse := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: MetricsNamespace, Subsystem: "http", Name: "snapshot_streams",
		Help: "Snapshot-sized answers being written now; beyond the limit they are refused with 429.",
	}, func() float64 { return float64(streams.inUse()) })
	reg.MustRegister(m.requests, m.duration, m.writeTimeouts, m.encodes, streamsInUse)
	return m
}

// routeLabel is the route label of a request: the mux pattern, never the
// raw path, so label cardinality stays bounded whatever clients send.
func routeLabel(pattern string) string {
	if pattern == "" || pattern == "/" {
		return "unmatched"
	}
	return pattern
}

// observe records one request.
func (m *selfMetrics) observe(route string, code int, d time.Duration) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(route, c).Inc()
	m.duration.WithLabelValues(route, c).Observe(d.Seconds())
}

func metricsHandler(g prometheus.Gatherer, log *slog.Logger) handlerFunc {
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// A collector error (say, a duplicate series from a malformed
		// snapshot) must not blank the whole scrape.
		ErrorHandling:       promhttp.ContinueOnError,
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: MaxConcurrentScrapes,
	})
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

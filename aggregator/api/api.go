// Package api serves the aggregator's snapshots over HTTP: the seed's
// /api/v1/metrics endpoints with filters that answer the seed's questions in
// one request each, node and pod history, probes, and Prometheus /metrics.
//
// Handlers read the snapshot the Provider returns and never modify it; a
// response is written from one snapshot even if a newer one is published
// meanwhile.
package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Provider is what the API serves from; state.Store implements it.
type Provider interface {
	// Snapshot returns the current snapshot, nil before the first one.
	Snapshot() *model.MetricsSnapshot
	// NodeHistory returns a node's readings, oldest first; false when
	// there is no series for it.
	NodeHistory(name string) ([]state.NodePoint, bool)
	// PodHistory returns a pod's readings, oldest first; false when there
	// is no series for it.
	PodHistory(namespace, name string) ([]state.PodPoint, bool)
	// Ready reports whether there is something to serve; reason explains
	// a false, or qualifies a true (standalone mode).
	Ready() (ok bool, reason string)
	// Healthy reports whether the process works (its build loop runs);
	// reason explains a false.
	Healthy() (ok bool, reason string)
}

// Options configure the handler.
type Options struct {
	// Logger receives request errors and recovered panics; nil discards.
	Logger *slog.Logger
	// ObjectMetrics adds per-node and per-pod gauges to /metrics. Off keeps
	// /metrics to self-metrics and cluster gauges, whose cardinality does
	// not grow with the cluster.
	ObjectMetrics bool
	// Thresholds decide the nodes?pressure= filter; pass the ones the
	// snapshots are built with so the filter agrees with
	// ClusterMetrics.NodesUnderPressure. Zero fields take the defaults.
	Thresholds model.Thresholds
	// Collectors are registered on the handler's own registry beside its
	// self-metrics, so other packages (ingest, kube) appear on /metrics.
	Collectors []prometheus.Collector
	// Gatherer, when set, is served on /metrics too: a registry the rest
	// of the binary registers on (ingest counters, Go runtime and process
	// collectors). The handler adds no runtime collectors of its own, so
	// the two never export the same family.
	Gatherer prometheus.Gatherer
	// Extra registers further routes, such as /api/vms, on the same mux.
	// They get the same panic recovery, request metrics and write
	// deadlines.
	Extra func(mux *http.ServeMux)
	// Querier, when set, answers the node and pod lists, so that another
	// front end (the MCP server) sharing it shares the per-snapshot index.
	// It must read the same provider. Nil: the handler makes its own with
	// Thresholds.
	Querier *Querier
	// WriteTimeout is how long one write of a response may wait for the
	// client to read; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxSnapshotStreams bounds the snapshot-sized answers written at
	// once; 0 means DefaultMaxSnapshotStreams.
	MaxSnapshotStreams int
	// Pprof serves net/http/pprof's profiles under /debug/pprof/.
	Pprof bool
}

// Routes, as registered; the route label of the request metrics.
const (
	RouteCluster     = "/api/v1/metrics/cluster"
	RouteNodes       = "/api/v1/metrics/nodes"
	RouteNode        = "/api/v1/metrics/nodes/{name}"
	RouteNodeHistory = "/api/v1/metrics/nodes/{name}/history"
	RoutePods        = "/api/v1/metrics/pods"
	RoutePod         = "/api/v1/metrics/pods/{namespace}/{name}"
	RoutePodHistory  = "/api/v1/metrics/pods/{namespace}/{name}/history"
	RouteSnapshot    = "/api/v1/metrics/snapshot"
	RouteHealthz     = "/healthz"
	RouteReadyz      = "/readyz"
	RouteMetrics     = "/metrics"
)

// Routes returns the patterns New registers itself, GET only; Extra
// registers more. The OpenAPI document is tested against them.
func Routes() []string {
	return []string{RouteCluster, RouteNodes, RouteNode, RouteNodeHistory, RoutePods, RoutePod, RoutePodHistory,
		RouteSnapshot, RouteHealthz, RouteReadyz, RouteMetrics}
}

// server holds the handler's state.
type server struct {
	p       Provider
	log     *slog.Logger
	q       *Querier
	metrics *selfMetrics

	writeTimeout time.Duration
	streams      *streamLimiter
	// Client trouble is logged at a limited rate.
	logRefused, logCutShort, logTimeout sometimes
}

// New returns the aggregator's HTTP handler.
func New(p Provider, opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := opts.Querier
	if q == nil {
		q = NewQuerier(p, opts.Thresholds)
	}
	s := &server{
		p:            p,
		log:          log,
		q:            q,
		writeTimeout: orDefault(opts.WriteTimeout, DefaultWriteTimeout),
		streams:      newStreamLimiter(orDefault(opts.MaxSnapshotStreams, DefaultMaxSnapshotStreams)),
		logRefused:   sometimes{every: logEvery},
		logCutShort:  sometimes{every: logEvery},
		logTimeout:   sometimes{every: logEvery},
	}
	reg := prometheus.NewRegistry()
	s.metrics = newSelfMetrics(reg, s.streams)
	reg.MustRegister(newSnapshotCollector(p, opts.ObjectMetrics))
	for _, c := range opts.Collectors {
		reg.MustRegister(c)
	}

	var gatherer prometheus.Gatherer = reg
	if opts.Gatherer != nil {
		gatherer = prometheus.Gatherers{reg, opts.Gatherer}
	}
	handlers := map[string]handlerFunc{
		RouteCluster: s.cluster, RouteNodes: s.nodes, RouteNode: s.node, RouteNodeHistory: s.nodeHistory,
		RoutePods: s.pods, RoutePod: s.pod, RoutePodHistory: s.podHistory, RouteSnapshot: s.snapshot,
		RouteHealthz: s.healthz, RouteReadyz: s.readyz, RouteMetrics: metricsHandler(gatherer, log),
	}
	mux := http.NewServeMux()
	// Patterns without a method: the handlers check it themselves so that
	// a wrong method gets a JSON 405 like every other error.
	for _, route := range Routes() {
		mux.Handle(route, s.get(handlers[route]))
	}
	mux.Handle("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "no such endpoint: %s", r.URL.Path)
	}))
	if opts.Pprof {
		registerPprof(mux)
	}
	if opts.Extra != nil {
		opts.Extra(mux)
	}
	return s.serve(mux)
}

package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
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

// snapshotCollector exports the current snapshot as gauges at scrape time:
// cluster gauges always, node and pod gauges when objects is set. Reading
// the snapshot at scrape time means no second copy of it is kept.
type snapshotCollector struct {
	p       Provider
	objects bool
}

func newSnapshotCollector(p Provider, objects bool) *snapshotCollector {
	return &snapshotCollector{p: p, objects: objects}
}

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(MetricsNamespace, subsystem, name), help, labels, nil)
}

var (
	nodeLabels = []string{"node"}
	gpuLabels  = []string{"node", "gpu", "model"}
	podLabels  = []string{"namespace", "pod", "node"}

	descSnapshotTime   = desc("snapshot", "timestamp_seconds", "When the current snapshot was built, Unix time.")
	descClusterNodes   = desc("cluster", "nodes", "Nodes known, by state (total, healthy, stale, pressure).", "state")
	descClusterPods    = desc("cluster", "pods", "Pods by phase.", "phase")
	descClusterCPU     = desc("cluster", "cpu_millicores", "Cluster CPU, capacity and usage.", "kind")
	descClusterMemory  = desc("cluster", "memory_bytes", "Cluster memory, capacity and usage.", "kind")
	descClusterGPUs    = desc("cluster", "gpus", "Cluster GPUs, total and available.", "kind")
	descClusterVMs     = desc("cluster", "vms", "Virtual machines, total and running.", "kind")
	descClusterHealth  = desc("cluster", "health", "1 for the cluster's current health status.", "status")
	descClusterIssues  = desc("cluster", "issues", "Issues listed in the cluster's health.")
	descNodeCPU        = desc("node", "cpu_millicores", "Node CPU, capacity and usage.", "node", "kind")
	descNodeMemory     = desc("node", "memory_bytes", "Node memory, capacity and usage.", "node", "kind")
	descNodeDisk       = desc("node", "disk_bytes", "Node root filesystem, capacity and usage.", "node", "kind")
	descNodeHealthy    = desc("node", "healthy", "1 when the node is healthy.", nodeLabels...)
	descNodeStale      = desc("node", "stale", "1 when the node's agent missed its reports.", nodeLabels...)
	descNodeReportAge  = desc("node", "report_age_seconds", "Age of the node's latest agent report.", nodeLabels...)
	descGPUUtilization = desc("node", "gpu_utilization_ratio", "GPU busy ratio (0-1).", gpuLabels...)
	descGPUMemory      = desc("node", "gpu_memory_bytes", "GPU memory, total and used.", append(gpuLabels, "kind")...)
	descGPUTemperature = desc("node", "gpu_temperature_celsius", "GPU temperature.", gpuLabels...)
	descPodCPU         = desc("pod", "cpu_millicores", "Pod CPU: usage, request and limit.", append(podLabels, "kind")...)
	descPodMemory      = desc("pod", "memory_bytes", "Pod memory: usage, request and limit.", append(podLabels, "kind")...)
	descPodRestarts    = desc("pod", "restarts", "Container restarts summed over the pod.", podLabels...)
	descPodReady       = desc("pod", "ready", "1 when the pod is Ready.", podLabels...)

	clusterDescs = []*prometheus.Desc{descSnapshotTime, descClusterNodes, descClusterPods, descClusterCPU,
		descClusterMemory, descClusterGPUs, descClusterVMs, descClusterHealth, descClusterIssues}
	objectDescs = []*prometheus.Desc{descNodeCPU, descNodeMemory, descNodeDisk, descNodeHealthy, descNodeStale,
		descNodeReportAge, descGPUUtilization, descGPUMemory, descGPUTemperature,
		descPodCPU, descPodMemory, descPodRestarts, descPodReady}
)

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range clusterDescs {
		ch <- d
	}
	if c.objects {
		for _, d := range objectDescs {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.p.Snapshot()
	if snap == nil {
		return
	}
	// Not MustNewConstMetric: Collect runs on the registry's goroutines,
	// beyond the handler's recover, and a label that is not valid UTF-8
	// (a GPU model string, say) must cost one series, not the process.
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	gauge(descSnapshotTime, float64(snap.Timestamp.UnixNano())/1e9)
	if cm := snap.ClusterMetrics; cm != nil {
		gauge(descClusterNodes, float64(cm.TotalNodes), "total")
		gauge(descClusterNodes, float64(cm.HealthyNodes), "healthy")
		gauge(descClusterNodes, float64(cm.StaleNodes), "stale")
		gauge(descClusterNodes, float64(cm.NodesUnderPressure), "pressure")
		for phase, n := range cm.PodsByPhase {
			gauge(descClusterPods, float64(n), phase)
		}
		gauge(descClusterCPU, float64(cm.TotalCPU), "capacity")
		gauge(descClusterCPU, float64(cm.UsedCPU), "usage")
		gauge(descClusterMemory, float64(cm.TotalMemory), "capacity")
		gauge(descClusterMemory, float64(cm.UsedMemory), "usage")
		gauge(descClusterGPUs, float64(cm.TotalGPUs), "total")
		gauge(descClusterGPUs, float64(cm.AvailableGPUs), "available")
		gauge(descClusterVMs, float64(cm.TotalVMs), "total")
		gauge(descClusterVMs, float64(cm.RunningVMs), "running")
		for _, st := range []string{model.HealthHealthy, model.HealthWarning, model.HealthCritical} {
			gauge(descClusterHealth, boolValue(cm.HealthStatus == st), st)
		}
		gauge(descClusterIssues, float64(len(cm.Issues)))
	}
	if !c.objects {
		return
	}
	for name, n := range snap.NodeMetrics {
		if n == nil {
			continue
		}
		gauge(descNodeCPU, float64(n.CPUCapacity), name, "capacity")
		gauge(descNodeCPU, float64(n.CPUUsage), name, "usage")
		gauge(descNodeMemory, float64(n.MemoryCapacity), name, "capacity")
		gauge(descNodeMemory, float64(n.MemoryUsage), name, "usage")
		gauge(descNodeDisk, float64(n.DiskCapacity), name, "capacity")
		gauge(descNodeDisk, float64(n.DiskUsage), name, "usage")
		gauge(descNodeHealthy, boolValue(n.Healthy), name)
		gauge(descNodeStale, boolValue(n.Stale), name)
		gauge(descNodeReportAge, n.ReportAgeSeconds, name)
		for _, g := range n.GPUs {
			idx := strconv.Itoa(g.Index)
			gauge(descGPUUtilization, g.UtilizationRate/100, name, idx, g.Model)
			gauge(descGPUMemory, float64(g.MemoryTotal), name, idx, g.Model, "total")
			gauge(descGPUMemory, float64(g.MemoryUsed), name, idx, g.Model, "used")
			gauge(descGPUTemperature, float64(g.TemperatureC), name, idx, g.Model)
		}
	}
	for _, p := range snap.PodMetrics {
		if p == nil {
			continue
		}
		gauge(descPodCPU, float64(p.CPUUsage), p.Namespace, p.PodName, p.NodeName, "usage")
		gauge(descPodCPU, float64(p.CPURequest), p.Namespace, p.PodName, p.NodeName, "request")
		gauge(descPodCPU, float64(p.CPULimit), p.Namespace, p.PodName, p.NodeName, "limit")
		gauge(descPodMemory, float64(p.MemoryUsage), p.Namespace, p.PodName, p.NodeName, "usage")
		gauge(descPodMemory, float64(p.MemoryRequest), p.Namespace, p.PodName, p.NodeName, "request")
		gauge(descPodMemory, float64(p.MemoryLimit), p.Namespace, p.PodName, p.NodeName, "limit")
		gauge(descPodRestarts, float64(p.Restarts), p.Namespace, p.PodName, p.NodeName)
		gauge(descPodReady, boolValue(p.Ready), p.Namespace, p.PodName, p.NodeName)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

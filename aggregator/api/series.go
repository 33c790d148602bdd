package api

import (
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// The snapshot's series follow the Prometheus naming guide: one metric per
// quantity, in base units (cores, bytes, seconds, ratios 0–1), so that
// sum() over any of them means something. docs/metrics.md lists them.

// snapshotCollector exports the current snapshot at scrape time: cluster
// series always, node, GPU and pod series when objects is set. Reading the
// snapshot at scrape time means no second copy of it is kept.
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

// Source series are capped per node (and for the aggregator): source names
// come from agents, and a hostile one must not mint unbounded series.
const (
	maxSources          = 16
	maxSourceLabelBytes = 64
)

var (
	nodeLabels   = []string{"node"}
	gpuLabels    = []string{"node", "gpu", "uuid", "model"}
	podLabels    = []string{"namespace", "pod", "node"}
	sourceLabels = []string{"source"}

	descSnapshotTime = desc("snapshot", "timestamp_seconds", "When the current snapshot was built, Unix time.")

	descClusterNodes         = desc("cluster", "nodes", "Nodes known: Node objects and reporting agents.")
	descClusterNodesHealthy  = desc("cluster", "nodes_healthy", "Nodes that are healthy.")
	descClusterNodesStale    = desc("cluster", "nodes_stale", "Nodes whose agent missed its reports.")
	descClusterNodesPressure = desc("cluster", "nodes_under_pressure", "Nodes under CPU, memory, disk or PID pressure.")
	descClusterPods          = desc("cluster", "pods", "Pods by phase; the sum over phases is every pod.", "phase")
	descClusterCPUCapacity   = desc("cluster", "cpu_capacity_cores", "CPU capacity of all nodes, in cores.")
	descClusterCPUUsage      = desc("cluster", "cpu_usage_cores", "CPU in use on all nodes, in cores.")
	descClusterMemCapacity   = desc("cluster", "memory_capacity_bytes", "Memory capacity of all nodes.")
	descClusterMemUsage      = desc("cluster", "memory_usage_bytes", "Memory in use on all nodes.")
	descClusterGPUs          = desc("cluster", "gpus", "GPUs on all nodes.")
	descClusterGPUsAvailable = desc("cluster", "gpus_available", "GPUs that no pod holds.")
	descClusterVMs           = desc("cluster", "vms", "Virtual machines known.")
	descClusterVMsRunning    = desc("cluster", "vms_running", "Virtual machines running.")
	descClusterHealth        = desc("cluster", "health", "1 for the cluster's current health status, 0 for the others.", "status")
	descClusterIssues        = desc("cluster", "issues", "Issues listed in the cluster's health.")
	descSourceUp             = desc("", "source_up", "1 when the aggregator's source answered in its last cycle, 0 when it failed; absent while the source is unavailable.", sourceLabels...)
	descSourceUnavailable    = desc("", "source_unavailable", "1 when the aggregator's source is absent here (not an error: no metrics-server, no KubeVirt), else 0.", sourceLabels...)

	descNodeCPUCapacity       = desc("node", "cpu_capacity_cores", "Node CPU capacity, in cores.", nodeLabels...)
	descNodeCPUAllocatable    = desc("node", "cpu_allocatable_cores", "Node CPU allocatable to pods, in cores (from the Node object).", nodeLabels...)
	descNodeCPUUsage          = desc("node", "cpu_usage_cores", "Node CPU in use, in cores.", nodeLabels...)
	descNodeMemCapacity       = desc("node", "memory_capacity_bytes", "Node memory capacity.", nodeLabels...)
	descNodeMemAllocatable    = desc("node", "memory_allocatable_bytes", "Node memory allocatable to pods (from the Node object).", nodeLabels...)
	descNodeMemUsage          = desc("node", "memory_usage_bytes", "Node memory in use (total - available).", nodeLabels...)
	descNodeDiskCapacity      = desc("node", "disk_capacity_bytes", "Size of the node's root filesystem.", nodeLabels...)
	descNodeDiskUsage         = desc("node", "disk_usage_bytes", "Bytes used on the node's root filesystem.", nodeLabels...)
	descNodeNetwork           = desc("node", "network_bytes_per_second", "Bytes received and sent per second over the node's interfaces.", nodeLabels...)
	descNodeHealthy           = desc("node", "healthy", "1 when the node is healthy.", nodeLabels...)
	descNodeStale             = desc("node", "stale", "1 when the node's agent missed its reports.", nodeLabels...)
	descNodeReportAge         = desc("node", "report_age_seconds", "Age of the node's latest agent report.", nodeLabels...)
	descNodeSourceUp          = desc("node", "source_up", "1 when the agent's source answered in its last report, 0 when it failed; absent while the source is unavailable on the node.", "node", "source")
	descNodeSourceUnavailable = desc("node", "source_unavailable", "1 when the agent's source is absent on the node (no GPU driver, disabled), else 0.", "node", "source")

	descGPUUtilization    = desc("gpu", "utilization_ratio", "Fraction of time the GPU's streaming multiprocessors were busy (0-1).", gpuLabels...)
	descGPUMemUtilization = desc("gpu", "memory_utilization_ratio", "Fraction of time the GPU's memory controller was busy (0-1).", gpuLabels...)
	descGPUMemTotal       = desc("gpu", "memory_total_bytes", "GPU memory size.", gpuLabels...)
	descGPUMemUsed        = desc("gpu", "memory_used_bytes", "GPU memory in use.", gpuLabels...)
	descGPUTemperature    = desc("gpu", "temperature_celsius", "GPU core temperature.", gpuLabels...)
	descGPUPower          = desc("gpu", "power_watts", "GPU power draw.", gpuLabels...)
	descGPUPowerLimit     = desc("gpu", "power_limit_watts", "GPU enforced power limit.", gpuLabels...)
	descGPUECCCorrected   = desc("gpu", "ecc_corrected_errors_total", "Volatile corrected ECC errors since the driver loaded; absent without ECC.", gpuLabels...)
	descGPUECCUncorrected = desc("gpu", "ecc_uncorrected_errors_total", "Volatile uncorrected ECC errors since the driver loaded; absent without ECC.", gpuLabels...)
	descGPUXIDErrors      = desc("gpu", "xid_errors_total", "XID errors the agent saw on the GPU since it started.", gpuLabels...)

	descPodCPUUsage      = desc("pod", "cpu_usage_cores", "Pod CPU in use, in cores.", podLabels...)
	descPodCPURequest    = desc("pod", "cpu_request_cores", "Pod CPU request as the scheduler counts it, in cores.", podLabels...)
	descPodCPULimit      = desc("pod", "cpu_limit_cores", "Pod CPU limit, in cores; absent unless the limit bounds the whole pod.", podLabels...)
	descPodMemUsage      = desc("pod", "memory_usage_bytes", "Pod memory in use (working set).", podLabels...)
	descPodMemRequest    = desc("pod", "memory_request_bytes", "Pod memory request as the scheduler counts it.", podLabels...)
	descPodMemLimit      = desc("pod", "memory_limit_bytes", "Pod memory limit; absent unless the limit bounds the whole pod.", podLabels...)
	descPodRestarts      = desc("pod", "restarts_total", "Container restarts summed over the pod.", podLabels...)
	descPodReady         = desc("pod", "ready", "1 when the pod is Ready.", podLabels...)
	descPodEphemeralDisk = desc("pod", "ephemeral_storage_usage_bytes", "Pod ephemeral storage in use (from the kubelet).", podLabels...)

	clusterDescs = []*prometheus.Desc{descSnapshotTime, descClusterNodes, descClusterNodesHealthy,
		descClusterNodesStale, descClusterNodesPressure, descClusterPods, descClusterCPUCapacity,
		descClusterCPUUsage, descClusterMemCapacity, descClusterMemUsage, descClusterGPUs,
		descClusterGPUsAvailable, descClusterVMs, descClusterVMsRunning, descClusterHealth,
		descClusterIssues, descSourceUp, descSourceUnavailable}
	objectDescs = []*prometheus.Desc{descNodeCPUCapacity, descNodeCPUAllocatable, descNodeCPUUsage,
		descNodeMemCapacity, descNodeMemAllocatable, descNodeMemUsage, descNodeDiskCapacity,
		descNodeDiskUsage, descNodeNetwork, descNodeHealthy, descNodeStale, descNodeReportAge,
		descNodeSourceUp, descNodeSourceUnavailable,
		descGPUUtilization, descGPUMemUtilization, descGPUMemTotal, descGPUMemUsed, descGPUTemperature,
		descGPUPower, descGPUPowerLimit, descGPUECCCorrected, descGPUECCUncorrected, descGPUXIDErrors,
		descPodCPUUsage, descPodCPURequest, descPodCPULimit, descPodMemUsage, descPodMemRequest,
		descPodMemLimit, descPodRestarts, descPodReady, descPodEphemeralDisk}
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

// emitter sends one scrape's metrics.
type emitter chan<- prometheus.Metric

// Not MustNewConstMetric: Collect runs on the registry's goroutines, beyond
// the handler's recover, and a label that is not valid UTF-8 (a GPU model
// string, say) must cost one series, not the process.
func (e emitter) send(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	e <- m
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.send(d, prometheus.GaugeValue, v, labels...)
}

func (e emitter) counter(d *prometheus.Desc, v float64, labels ...string) {
	e.send(d, prometheus.CounterValue, v, labels...)
}

// Collect implements prometheus.Collector.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.p.Snapshot()
	if snap == nil {
		return
	}
	e := emitter(ch)
	e.gauge(descSnapshotTime, float64(snap.Timestamp.UnixNano())/1e9)
	if cm := snap.ClusterMetrics; cm != nil {
		e.cluster(cm)
	}
	if !c.objects {
		return
	}
	for name, n := range snap.NodeMetrics {
		if n != nil {
			e.node(name, n)
		}
	}
	for _, p := range snap.PodMetrics {
		if p != nil {
			e.pod(p)
		}
	}
}

func (e emitter) cluster(cm *model.ClusterMetrics) {
	e.gauge(descClusterNodes, float64(cm.TotalNodes))
	e.gauge(descClusterNodesHealthy, float64(cm.HealthyNodes))
	e.gauge(descClusterNodesStale, float64(cm.StaleNodes))
	e.gauge(descClusterNodesPressure, float64(cm.NodesUnderPressure))
	for phase, n := range cm.PodsByPhase {
		e.gauge(descClusterPods, float64(n), phase)
	}
	e.gauge(descClusterCPUCapacity, cores(cm.TotalCPU))
	e.gauge(descClusterCPUUsage, cores(cm.UsedCPU))
	e.gauge(descClusterMemCapacity, float64(cm.TotalMemory))
	e.gauge(descClusterMemUsage, float64(cm.UsedMemory))
	e.gauge(descClusterGPUs, float64(cm.TotalGPUs))
	e.gauge(descClusterGPUsAvailable, float64(cm.AvailableGPUs))
	e.gauge(descClusterVMs, float64(cm.TotalVMs))
	e.gauge(descClusterVMsRunning, float64(cm.RunningVMs))
	for _, st := range []string{model.HealthHealthy, model.HealthWarning, model.HealthCritical} {
		e.gauge(descClusterHealth, boolValue(cm.HealthStatus == st), st)
	}
	e.gauge(descClusterIssues, float64(len(cm.Issues)))
	e.sources(descSourceUp, descSourceUnavailable, cm.Sources)
}

func (e emitter) node(name string, n *model.NodeMetrics) {
	e.gauge(descNodeCPUCapacity, cores(n.CPUCapacity), name)
	e.gauge(descNodeCPUUsage, cores(n.CPUUsage), name)
	e.gauge(descNodeMemCapacity, float64(n.MemoryCapacity), name)
	e.gauge(descNodeMemUsage, float64(n.MemoryUsage), name)
	if n.CPUAllocatable > 0 {
		e.gauge(descNodeCPUAllocatable, cores(n.CPUAllocatable), name)
	}
	if n.MemoryAllocatable > 0 {
		e.gauge(descNodeMemAllocatable, float64(n.MemoryAllocatable), name)
	}
	e.gauge(descNodeDiskCapacity, float64(n.DiskCapacity), name)
	e.gauge(descNodeDiskUsage, float64(n.DiskUsage), name)
	e.gauge(descNodeNetwork, n.NetworkBandwidth, name)
	e.gauge(descNodeHealthy, boolValue(n.Healthy), name)
	e.gauge(descNodeStale, boolValue(n.Stale), name)
	e.gauge(descNodeReportAge, n.ReportAgeSeconds, name)
	e.sources(descNodeSourceUp, descNodeSourceUnavailable, n.Sources, name)
	for i := range n.GPUs {
		e.gpu(name, &n.GPUs[i])
	}
}

func (e emitter) gpu(node string, g *model.GPUMetrics) {
	l := []string{node, strconv.Itoa(g.Index), g.UUID, g.Model}
	e.gauge(descGPUUtilization, g.UtilizationRate/100, l...)
	e.gauge(descGPUMemUtilization, g.MemoryUtilization/100, l...)
	e.gauge(descGPUMemTotal, float64(g.MemoryTotal), l...)
	e.gauge(descGPUMemUsed, float64(g.MemoryUsed), l...)
	e.gauge(descGPUTemperature, float64(g.TemperatureC), l...)
	e.gauge(descGPUPower, g.PowerWatts, l...)
	if g.PowerLimitWatts > 0 {
		e.gauge(descGPUPowerLimit, g.PowerLimitWatts, l...)
	}
	if g.ECCCorrected != nil {
		e.counter(descGPUECCCorrected, float64(*g.ECCCorrected), l...)
	}
	if g.ECCUncorrected != nil {
		e.counter(descGPUECCUncorrected, float64(*g.ECCUncorrected), l...)
	}
	e.counter(descGPUXIDErrors, float64(g.XIDErrors), l...)
}

func (e emitter) pod(p *model.PodMetrics) {
	l := []string{p.Namespace, p.PodName, p.NodeName}
	e.gauge(descPodCPUUsage, cores(p.CPUUsage), l...)
	e.gauge(descPodCPURequest, cores(p.CPURequest), l...)
	if p.CPULimited {
		e.gauge(descPodCPULimit, cores(p.CPULimit), l...)
	}
	e.gauge(descPodMemUsage, float64(p.MemoryUsage), l...)
	e.gauge(descPodMemRequest, float64(p.MemoryRequest), l...)
	if p.MemoryLimited {
		e.gauge(descPodMemLimit, float64(p.MemoryLimit), l...)
	}
	if p.EphemeralStorageUsage > 0 {
		e.gauge(descPodEphemeralDisk, float64(p.EphemeralStorageUsage), l...)
	}
	e.counter(descPodRestarts, float64(p.Restarts), l...)
	e.gauge(descPodReady, boolValue(p.Ready), l...)
}

// sources exports source states as up (1 ok, 0 failed) and unavailable, so
// that an alert on up == 0 fires only for sources that should work. prefix
// is the node label, if any. Sources beyond maxSources (in name
// order) and over-long names are left out.
func (e emitter) sources(up, unavailable *prometheus.Desc, sources map[string]model.SourceStatus, prefix ...string) {
	names := make([]string, 0, len(sources))
	for name := range sources {
		if name != "" && len(name) <= maxSourceLabelBytes {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) > maxSources {
		names = names[:maxSources]
	}
	for _, name := range names {
		labels := append(append(make([]string, 0, len(prefix)+1), prefix...), name)
		state := sources[name].Status
		e.gauge(unavailable, boolValue(state == model.SourceUnavailable), labels...)
		switch state {
		case model.SourceOK:
			e.gauge(up, 1, labels...)
		case model.SourceFailed:
			e.gauge(up, 0, labels...)
		}
	}
}

// cores turns millicores into cores, the base unit.
func cores(millicores int64) float64 { return float64(millicores) / 1000 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

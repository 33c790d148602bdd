// Package model holds the data model shared by the agent, the aggregator and
// their users: the seed's NodeMetrics, PodMetrics, NetworkMetrics,
// ClusterMetrics and MetricsSnapshot, with per-disk, per-GPU and
// per-interface detail beside the seed's fields.
//
// Units everywhere: CPU in millicores, memory and disk in bytes, rates in
// percent 0–100, network throughput in bytes per second, times in UTC.
package model

import "time"

// NodeMetrics describes one node: the agent's hardware readings merged by the
// aggregator with the Node object (allocatable, conditions, labels, taints).
type NodeMetrics struct {
	NodeName  string    `json:"nodeName"`
	Timestamp time.Time `json:"timestamp"`

	// CPU.
	CPUCapacity  int64   `json:"cpuCapacity"`  // millicores
	CPUUsage     int64   `json:"cpuUsage"`     // millicores
	CPUUsageRate float64 `json:"cpuUsageRate"` // 0-100

	// Memory.
	MemoryCapacity  int64   `json:"memoryCapacity"` // bytes
	MemoryUsage     int64   `json:"memoryUsage"`    // bytes, total - available
	MemoryUsageRate float64 `json:"memoryUsageRate"`

	// Disk: the root filesystem (or the configured kubelet root dir).
	DiskCapacity  int64   `json:"diskCapacity"`
	DiskUsage     int64   `json:"diskUsage"`
	DiskUsageRate float64 `json:"diskUsageRate"`

	// Network. NetworkLatency is reserved by the seed and stays 0 until a
	// latency prober exists; NetworkBandwidth is the sum of rx+tx bytes per
	// second over the node's interfaces.
	NetworkLatency   float64 `json:"networkLatency"`
	NetworkBandwidth float64 `json:"networkBandwidth"`

	// GPU: parallel slices in GPU index order, as in the seed.
	GPUCount       int       `json:"gpuCount"`
	GPUModels      []string  `json:"gpuModels"`
	GPUUsage       []float64 `json:"gpuUsage"`
	GPUMemoryTotal []int64   `json:"gpuMemoryTotal"`
	GPUMemoryUsed  []int64   `json:"gpuMemoryUsed"`

	// Health.
	Healthy    bool     `json:"healthy"`
	Conditions []string `json:"conditions"`

	Labels map[string]string `json:"labels"`

	CustomMetrics map[string]interface{} `json:"customMetrics,omitempty"`

	// Detail beside the seed's fields.
	Load       *LoadAverage       `json:"load,omitempty"`
	Disks      []DiskMetrics      `json:"disks,omitempty"`
	Interfaces []InterfaceMetrics `json:"interfaces,omitempty"`
	GPUs       []GPUMetrics       `json:"gpus,omitempty"`

	// From the Node object (aggregator).
	CPUAllocatable    int64    `json:"cpuAllocatable,omitempty"`
	MemoryAllocatable int64    `json:"memoryAllocatable,omitempty"`
	GPUAllocatable    int      `json:"gpuAllocatable,omitempty"`
	Taints            []string `json:"taints,omitempty"`
	Unschedulable     bool     `json:"unschedulable,omitempty"`

	// Freshness and provenance (aggregator). Stale means the agent has missed
	// three intervals; its last data is kept and ReportAgeSeconds says how old.
	Stale            bool    `json:"stale"`
	ReportAgeSeconds float64 `json:"reportAgeSeconds,omitempty"`
	// UsageSource names where the CPU and memory usage came from:
	// "agent", "metrics-server", or "" when no source had it.
	UsageSource string `json:"usageSource,omitempty"`
	// Sources is the status of every source that fed this node, by name.
	Sources map[string]SourceStatus `json:"sources,omitempty"`
}

// LoadAverage is the kernel's run-queue load over 1, 5 and 15 minutes.
type LoadAverage struct {
	Load1  float64 `json:"load1"`
	Load5  float64 `json:"load5"`
	Load15 float64 `json:"load15"`
}

// DiskMetrics is one mounted filesystem. Available is false (and the numbers
// zero) when statfs did not answer within its deadline, as on a hung NFS mount.
type DiskMetrics struct {
	Device      string  `json:"device"`
	MountPoint  string  `json:"mountPoint"`
	FSType      string  `json:"fsType"`
	Capacity    int64   `json:"capacity"`
	Used        int64   `json:"used"`
	Free        int64   `json:"free"`
	UsageRate   float64 `json:"usageRate"`
	Inodes      uint64  `json:"inodes"`
	InodesUsed  uint64  `json:"inodesUsed"`
	InodesRate  float64 `json:"inodesRate"`
	Available   bool    `json:"available"`
	Unavailable string  `json:"unavailable,omitempty"` // why, when Available is false
}

// InterfaceMetrics is one network interface, rates from counter deltas.
type InterfaceMetrics struct {
	Name          string  `json:"name"`
	RxBytesPerSec float64 `json:"rxBytesPerSec"`
	TxBytesPerSec float64 `json:"txBytesPerSec"`
	RxErrors      uint64  `json:"rxErrors"` // cumulative
	TxErrors      uint64  `json:"txErrors"`
	RxDropped     uint64  `json:"rxDropped"`
	TxDropped     uint64  `json:"txDropped"`
}

// GPUMetrics is one NVIDIA GPU as NVML reports it.
type GPUMetrics struct {
	Index             int     `json:"index"`
	UUID              string  `json:"uuid"`
	Model             string  `json:"model"`
	UtilizationRate   float64 `json:"utilizationRate"`       // 0-100, SM busy
	MemoryUtilization float64 `json:"memoryUtilizationRate"` // 0-100, memory controller busy
	MemoryTotal       int64   `json:"memoryTotal"`           // bytes
	MemoryUsed        int64   `json:"memoryUsed"`            // bytes
	MemoryUsageRate   float64 `json:"memoryUsageRate"`
	TemperatureC      int     `json:"temperatureC"`
	PowerWatts        float64 `json:"powerWatts"`
	PowerLimitWatts   float64 `json:"powerLimitWatts,omitempty"`
	// Volatile ECC error counts since the driver loaded; nil when ECC is off
	// or not supported.
	ECCCorrected   *uint64 `json:"eccCorrected,omitempty"`
	ECCUncorrected *uint64 `json:"eccUncorrected,omitempty"`
	// XIDErrors counts the XID errors the agent saw on this GPU since it
	// started (each is also an event).
	XIDErrors uint64 `json:"xidErrors,omitempty"`
	// MIG devices carved from this GPU, by their own UUIDs.
	MIGDevices []string `json:"migDevices,omitempty"`
	// Pods holding this GPU (or one of its MIG devices / time-sliced
	// replicas), from the kubelet pod-resources API.
	Pods []GPUPodRef `json:"pods,omitempty"`
}

// GPUPodRef names a container that the kubelet assigned a GPU device to.
type GPUPodRef struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
	DeviceID  string `json:"deviceId"` // as the device plugin named it
}

// SourceStatus says how one data source fared in the latest cycle.
type SourceStatus struct {
	Name   string      `json:"name"`
	Status SourceState `json:"status"`
	// Reason explains an unavailable or failing source in plain words.
	Reason      string    `json:"reason,omitempty"`
	DurationMs  float64   `json:"durationMs"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
}

// SourceState is the outcome of one source's collection.
type SourceState string

// Source states. Unavailable means the source is absent on this node (no GPU
// driver, no KubeVirt CRD) and is not an error; Failed means it should work
// and did not (timeout, kubelet answering garbage).
const (
	SourceOK          SourceState = "ok"
	SourceUnavailable SourceState = "unavailable"
	SourceFailed      SourceState = "failed"
)

// Resources is an amount of CPU, memory, disk and GPUs.
type Resources struct {
	CPU    int64 `json:"cpu"`    // millicores
	Memory int64 `json:"memory"` // bytes
	Disk   int64 `json:"disk"`   // bytes
	GPUs   int   `json:"gpus"`
}

// Default pressure thresholds in percent, used when a caller passes zero.
const (
	DefaultCPUPressureRate    = 90
	DefaultMemoryPressureRate = 90
	DefaultDiskPressureRate   = 85
)

// Thresholds are the usage rates (percent) at or above which a node is under
// pressure.
type Thresholds struct {
	CPURate    float64 `json:"cpuRate" mapstructure:"cpu_rate"`
	MemoryRate float64 `json:"memoryRate" mapstructure:"memory_rate"`
	DiskRate   float64 `json:"diskRate" mapstructure:"disk_rate"`
	GPUTempC   int     `json:"gpuTemperatureC" mapstructure:"gpu_temperature_c"`
}

// DefaultThresholds returns the thresholds used when none are configured.
func DefaultThresholds() Thresholds {
	return Thresholds{CPURate: DefaultCPUPressureRate, MemoryRate: DefaultMemoryPressureRate, DiskRate: DefaultDiskPressureRate, GPUTempC: 85}
}

// GetAvailableResources returns capacity minus usage, never negative. GPUs
// count as available when no pod holds them.
func (n *NodeMetrics) GetAvailableResources() Resources {
	r := Resources{
		CPU:    nonNegative(n.CPUCapacity - n.CPUUsage),
		Memory: nonNegative(n.MemoryCapacity - n.MemoryUsage),
		Disk:   nonNegative(n.DiskCapacity - n.DiskUsage),
		GPUs:   n.GPUCount,
	}
	if len(n.GPUs) > 0 {
		r.GPUs = 0
		for _, g := range n.GPUs {
			if len(g.Pods) == 0 {
				r.GPUs++
			}
		}
	}
	return r
}

// Pressure conditions as the Node object names them.
var pressureConditions = map[string]bool{
	"MemoryPressure":     true,
	"DiskPressure":       true,
	"PIDPressure":        true,
	"NetworkUnavailable": true,
}

// IsUnderPressure reports whether the node is under resource pressure: a
// usage rate at or above the default thresholds, or a pressure condition
// reported by the kubelet.
func (n *NodeMetrics) IsUnderPressure() bool {
	return len(n.PressureReasons(DefaultThresholds())) > 0
}

// PressureReasons lists, in plain words, why the node is under pressure with
// the given thresholds; empty when it is not.
func (n *NodeMetrics) PressureReasons(t Thresholds) []string {
	var out []string
	if t.CPURate > 0 && n.CPUCapacity > 0 && n.CPUUsageRate >= t.CPURate {
		out = append(out, "cpu usage "+percent(n.CPUUsageRate)+" >= "+percent(t.CPURate))
	}
	if t.MemoryRate > 0 && n.MemoryCapacity > 0 && n.MemoryUsageRate >= t.MemoryRate {
		out = append(out, "memory usage "+percent(n.MemoryUsageRate)+" >= "+percent(t.MemoryRate))
	}
	if t.DiskRate > 0 && n.DiskCapacity > 0 && n.DiskUsageRate >= t.DiskRate {
		out = append(out, "disk usage "+percent(n.DiskUsageRate)+" >= "+percent(t.DiskRate))
	}
	for _, c := range n.Conditions {
		if pressureConditions[c] {
			out = append(out, "condition "+c)
		}
	}
	return out
}

// Constraints are the minimum free resources and required labels a workload
// needs; zero fields are not checked.
type Constraints struct {
	MinCPU    int64             `json:"minCpu"`
	MinMemory int64             `json:"minMemory"`
	MinDisk   int64             `json:"minDisk"`
	MinGPUs   int               `json:"minGpus"`
	GPUModel  string            `json:"gpuModel,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// AllowPressure lets a node under pressure still qualify.
	AllowPressure bool `json:"allowPressure"`
}

// MeetsConstraints reports whether the node is healthy and has at least the
// free resources and the labels that c asks for.
func (n *NodeMetrics) MeetsConstraints(c Constraints) bool {
	if !n.Healthy || n.Stale || n.Unschedulable {
		return false
	}
	if !c.AllowPressure && n.IsUnderPressure() {
		return false
	}
	avail := n.GetAvailableResources()
	if avail.CPU < c.MinCPU || avail.Memory < c.MinMemory || avail.Disk < c.MinDisk || avail.GPUs < c.MinGPUs {
		return false
	}
	if c.GPUModel != "" {
		found := false
		for _, m := range n.GPUModels {
			if m == c.GPUModel {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for k, v := range c.Labels {
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

func nonNegative(v int64) int64 {
	if v < 0 {
		return 0
	}
	return v
}

// GPUUtilization is the mean utilisation over the node's GPUs: the per-GPU
// detail when the agent reports it, else the seed's GPUUsage list; false
// without GPUs. Each term is divided before it is added, so even huge
// readings cannot overflow the sum, and the mean is always finite.
func (n *NodeMetrics) GPUUtilization() (float64, bool) {
	var mean float64
	switch {
	case len(n.GPUs) > 0:
		for _, g := range n.GPUs {
			mean += g.UtilizationRate / float64(len(n.GPUs))
		}
	case len(n.GPUUsage) > 0:
		for _, u := range n.GPUUsage {
			mean += u / float64(len(n.GPUUsage))
		}
	default:
		return 0, false
	}
	return Finite(mean), true
}

package model

import "time"

// PodMetrics describes one pod: spec requests and limits, status, and usage
// from metrics-server or, as a fallback, the agents' kubelet stats.
type PodMetrics struct {
	PodName   string    `json:"podName"`
	Namespace string    `json:"namespace"`
	NodeName  string    `json:"nodeName"`
	Timestamp time.Time `json:"timestamp"`

	// Actual usage.
	CPUUsage    int64 `json:"cpuUsage"`    // millicores
	MemoryUsage int64 `json:"memoryUsage"` // bytes, working set

	// Sums over the containers' requests and limits; 0 means not set.
	CPURequest    int64 `json:"cpuRequest"`
	CPULimit      int64 `json:"cpuLimit"`
	MemoryRequest int64 `json:"memoryRequest"`
	MemoryLimit   int64 `json:"memoryLimit"`

	// Usage relative to the limit, 0-100; 0 when there is no limit.
	CPUUsageRate    float64 `json:"cpuUsageRate"`
	MemoryUsageRate float64 `json:"memoryUsageRate"`

	Containers []ContainerMetrics `json:"containers"`

	Phase     string    `json:"phase"`
	Ready     bool      `json:"ready"`
	Restarts  int32     `json:"restarts"`
	StartTime time.Time `json:"startTime"`

	// Detail beside the seed's fields.
	UID string `json:"uid,omitempty"`
	// UsageSource is "metrics-server", "kubelet" or "" (no usage known).
	UsageSource           string            `json:"usageSource,omitempty"`
	EphemeralStorageUsage int64             `json:"ephemeralStorageUsage,omitempty"`
	NetworkRxBytesPerSec  float64           `json:"networkRxBytesPerSec,omitempty"`
	NetworkTxBytesPerSec  float64           `json:"networkTxBytesPerSec,omitempty"`
	Volumes               []VolumeStats     `json:"volumes,omitempty"`
	GPUs                  []string          `json:"gpus,omitempty"` // device IDs assigned by the kubelet
	Labels                map[string]string `json:"labels,omitempty"`
	OwnerKind             string            `json:"ownerKind,omitempty"`
	OwnerName             string            `json:"ownerName,omitempty"`
}

// ContainerMetrics is one container of a pod.
type ContainerMetrics struct {
	Name          string `json:"name"`
	CPUUsage      int64  `json:"cpuUsage"`
	MemoryUsage   int64  `json:"memoryUsage"`
	CPURequest    int64  `json:"cpuRequest"`
	CPULimit      int64  `json:"cpuLimit"`
	MemoryRequest int64  `json:"memoryRequest"`
	MemoryLimit   int64  `json:"memoryLimit"`
	Ready         bool   `json:"ready"`
	Restarts      int32  `json:"restarts"`
	// State is running, waiting or terminated; Reason the kubelet's word for
	// it (CrashLoopBackOff, ImagePullBackOff, ...).
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// LastTerminationReason and LastExitCode tell why the previous run
	// ended (OOMKilled, Error): the first thing to read about restarts.
	LastTerminationReason string `json:"lastTerminationReason,omitempty"`
	LastExitCode          int32  `json:"lastExitCode,omitempty"`
}

// Utilization is usage relative to requests, in percent.
type Utilization struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
}

// GetResourceUtilization returns usage relative to the pod's requests in
// percent (may exceed 100); 0 for a resource without a request.
func (p *PodMetrics) GetResourceUtilization() Utilization {
	return Utilization{CPU: Rate(p.CPUUsage, p.CPURequest), Memory: Rate(p.MemoryUsage, p.MemoryRequest)}
}

// DefaultOverLimitRate is the usage rate against the limit (percent) at which
// IsOverLimit reports a pod as close to its limit.
const DefaultOverLimitRate = 90

// IsOverLimit reports whether CPU or memory usage is at or above 90% of its
// limit. Pods without limits are never over them.
func (p *PodMetrics) IsOverLimit() bool {
	return p.IsOverLimitAt(DefaultOverLimitRate)
}

// IsOverLimitAt is IsOverLimit with a chosen threshold in percent.
func (p *PodMetrics) IsOverLimitAt(rate float64) bool {
	return (p.CPULimit > 0 && p.CPUUsageRate >= rate) || (p.MemoryLimit > 0 && p.MemoryUsageRate >= rate)
}

// Key is the pod's "namespace/name", the key of MetricsSnapshot.PodMetrics.
func (p *PodMetrics) Key() string { return PodKey(p.Namespace, p.PodName) }

// PodKey joins a namespace and a pod name the way snapshots key pods.
func PodKey(namespace, name string) string { return namespace + "/" + name }

// Rate returns used/total in percent, 0 when total is not positive. It is not
// clamped: usage above a limit or request shows as more than 100.
func Rate(used, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(used) / float64(total) * 100
}

// ClampRate limits a rate to 0-100, for readings (CPU time, disk) that can
// only exceed it through counter noise.
func ClampRate(r float64) float64 {
	switch {
	case r < 0:
		return 0
	case r > 100:
		return 100
	}
	return r
}

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

	// The pod's requests and limits as the scheduler counts them:
	// containers summed, init containers by the max rule, native sidecars
	// for the pod's whole life, overhead added, pod-level resources
	// (spec.resources) taking precedence. 0 means not set.
	CPURequest    int64 `json:"cpuRequest"`
	CPULimit      int64 `json:"cpuLimit"`
	MemoryRequest int64 `json:"memoryRequest"`
	MemoryLimit   int64 `json:"memoryLimit"`

	// CPULimited and MemoryLimited say the limit bounds the whole pod: it
	// is set at pod level, or every container (init containers included)
	// has one. Otherwise CPULimit is the sum of some containers' limits
	// while the others may use any amount, so a rate against it would mean
	// nothing.
	CPULimited    bool `json:"cpuLimited,omitempty"`
	MemoryLimited bool `json:"memoryLimited,omitempty"`

	// Usage relative to the pod's limit, in percent; 0 unless the limit
	// bounds the whole pod (CPULimited, MemoryLimited). Containers carry
	// their own rates against their own limits.
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

// ContainerMetrics is one container of a pod: one of spec.containers, or
// a native sidecar (an init container with restartPolicy Always), which runs
// beside them for the pod's whole life.
type ContainerMetrics struct {
	Name          string `json:"name"`
	CPUUsage      int64  `json:"cpuUsage"`
	MemoryUsage   int64  `json:"memoryUsage"`
	CPURequest    int64  `json:"cpuRequest"`
	CPULimit      int64  `json:"cpuLimit"`
	MemoryRequest int64  `json:"memoryRequest"`
	MemoryLimit   int64  `json:"memoryLimit"`
	// Usage relative to the container's own limit, in percent; absent
	// when it has none.
	CPUUsageRate    float64 `json:"cpuUsageRate,omitempty"`
	MemoryUsageRate float64 `json:"memoryUsageRate,omitempty"`
	Ready           bool    `json:"ready"`
	Restarts        int32   `json:"restarts"`
	// Sidecar marks a native sidecar.
	Sidecar bool `json:"sidecar,omitempty"`
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

// IsOverLimit reports whether CPU or memory usage is at or above 90% of a
// limit that applies (see CPULimitRate). Pods without limits are never over
// them.
func (p *PodMetrics) IsOverLimit() bool {
	return p.IsOverLimitAt(DefaultOverLimitRate)
}

// IsOverLimitAt is IsOverLimit with a chosen threshold in percent.
func (p *PodMetrics) IsOverLimitAt(rate float64) bool {
	cpu, cpuOK := p.CPULimitRate()
	mem, memOK := p.MemoryLimitRate()
	return (cpuOK && cpu >= rate) || (memOK && mem >= rate)
}

// CPULimitRate returns the highest CPU usage against a limit that applies:
// the pod's, when it bounds the whole pod, and each container's against its
// own. ok is false when no limit applies.
func (p *PodMetrics) CPULimitRate() (rate float64, ok bool) {
	if p.CPULimited && p.CPULimit > 0 {
		rate, ok = p.CPUUsageRate, true
	}
	for i := range p.Containers {
		if c := &p.Containers[i]; c.CPULimit > 0 && (!ok || c.CPUUsageRate > rate) {
			rate, ok = c.CPUUsageRate, true
		}
	}
	return rate, ok
}

// MemoryLimitRate is CPULimitRate for memory.
func (p *PodMetrics) MemoryLimitRate() (rate float64, ok bool) {
	if p.MemoryLimited && p.MemoryLimit > 0 {
		rate, ok = p.MemoryUsageRate, true
	}
	for i := range p.Containers {
		if c := &p.Containers[i]; c.MemoryLimit > 0 && (!ok || c.MemoryUsageRate > rate) {
			rate, ok = c.MemoryUsageRate, true
		}
	}
	return rate, ok
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

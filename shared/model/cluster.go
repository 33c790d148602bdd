package model

import "time"

// NetworkMetrics is the seed's pod-to-pod connectivity probe result. It is
// reserved: no prober fills it yet, and snapshots carry an empty list.
type NetworkMetrics struct {
	SourcePod  string    `json:"sourcePod"`
	TargetPod  string    `json:"targetPod"`
	Timestamp  time.Time `json:"timestamp"`
	Connected  bool      `json:"connected"`
	RTT        float64   `json:"rtt"`
	PacketLoss float64   `json:"packetLoss"`
	Bandwidth  float64   `json:"bandwidth"`
	TestMethod string    `json:"testMethod"`
}

// Cluster health states.
const (
	HealthHealthy  = "healthy"
	HealthWarning  = "warning"
	HealthCritical = "critical"
)

// ClusterMetrics summarises the whole cluster.
type ClusterMetrics struct {
	Timestamp time.Time `json:"timestamp"`

	TotalNodes   int `json:"totalNodes"`
	HealthyNodes int `json:"healthyNodes"`
	TotalPods    int `json:"totalPods"`
	RunningPods  int `json:"runningPods"`

	TotalCPU     int64   `json:"totalCPU"` // millicores
	UsedCPU      int64   `json:"usedCPU"`
	CPUUsageRate float64 `json:"cpuUsageRate"`

	TotalMemory     int64   `json:"totalMemory"` // bytes
	UsedMemory      int64   `json:"usedMemory"`
	MemoryUsageRate float64 `json:"memoryUsageRate"`

	TotalGPUs     int `json:"totalGPUs"`
	AvailableGPUs int `json:"availableGPUs"`

	HealthStatus string   `json:"healthStatus"`
	Issues       []string `json:"issues"`

	// Detail beside the seed's fields.
	StaleNodes         int            `json:"staleNodes"`
	NodesUnderPressure int            `json:"nodesUnderPressure"`
	PodsByPhase        map[string]int `json:"podsByPhase,omitempty"`
	TotalVMs           int            `json:"totalVMs"`
	RunningVMs         int            `json:"runningVMs"`
	VMAllocatedCPU     int64          `json:"vmAllocatedCPU"`    // millicores
	VMAllocatedMemory  int64          `json:"vmAllocatedMemory"` // bytes
	// Sources is the status of the aggregator's own sources (informers,
	// metrics-server, VM watchers).
	Sources map[string]SourceStatus `json:"sources,omitempty"`
}

// MetricsSnapshot is one consistent, immutable picture of the cluster. Pods
// are keyed "namespace/name".
type MetricsSnapshot struct {
	Timestamp      time.Time               `json:"timestamp"`
	NodeMetrics    map[string]*NodeMetrics `json:"nodeMetrics"`
	PodMetrics     map[string]*PodMetrics  `json:"podMetrics"`
	NetworkMetrics []*NetworkMetrics       `json:"networkMetrics"`
	ClusterMetrics *ClusterMetrics         `json:"clusterMetrics"`
	VMs            []*VMMetrics            `json:"vms,omitempty"`
}

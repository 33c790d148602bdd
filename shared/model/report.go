package model

import "time"

// NodeReport is what an agent publishes every interval on
// <prefix>.node.<node>.report.
type NodeReport struct {
	NodeName     string    `json:"nodeName"`
	Timestamp    time.Time `json:"timestamp"`
	AgentVersion string    `json:"agentVersion"`
	// IntervalSeconds is the agent's reporting interval; the aggregator
	// marks a node stale after three of them without a report.
	IntervalSeconds float64 `json:"intervalSeconds"`
	// Node holds the host and GPU readings: the seed's NodeMetrics fields the
	// agent can know (not the Node object's).
	Node NodeMetrics `json:"node"`
	// Kubelet is nil when the kubelet source is disabled or failed.
	Kubelet *KubeletStats `json:"kubelet,omitempty"`
	// Cgroups holds the pod cgroups' memory counters (OOM kills, peak);
	// nil when the source is unavailable or failed.
	Cgroups *CgroupStats `json:"cgroups,omitempty"`
	// Sources is every source's status in this cycle: cpu, memory, disk,
	// network, gpu, kubelet, podresources, cgroup.
	Sources []SourceStatus `json:"sources"`
}

// EventType names what happened.
type EventType string

// Node events, published by agents on <prefix>.node.<node>.event.
const (
	EventAgentStarted     EventType = "AgentStarted"
	EventAgentStopping    EventType = "AgentStopping"
	EventPressureRaised   EventType = "PressureRaised"
	EventPressureCleared  EventType = "PressureCleared"
	EventThresholdCrossed EventType = "ThresholdCrossed"
	EventThresholdCleared EventType = "ThresholdCleared"
	EventGPUXid           EventType = "GPUXid"
	EventGPUECC           EventType = "GPUECC"
	EventSourceFailing    EventType = "SourceFailing"
	EventSourceRecovered  EventType = "SourceRecovered"
)

// Cluster events, published by the aggregator on <prefix>.cluster.event.
const (
	EventNodeStale            EventType = "NodeStale"
	EventNodeRecovered        EventType = "NodeRecovered"
	EventClusterHealthChanged EventType = "ClusterHealthChanged"
	EventPodRestarting        EventType = "PodRestarting"
	EventVMStarted            EventType = "VMStarted"
	EventVMStopped            EventType = "VMStopped"
	EventVMMoved              EventType = "VMMoved"
)

// Event severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Event is one node or cluster event.
type Event struct {
	Type      EventType `json:"type"`
	Severity  string    `json:"severity"`
	Timestamp time.Time `json:"timestamp"`
	Node      string    `json:"node,omitempty"`
	// Namespace and Name identify the pod or VM the event is about.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Source is the data source or metric concerned (cpu, disk:/var, gpu:0).
	Source  string            `json:"source,omitempty"`
	Message string            `json:"message"`
	Details map[string]string `json:"details,omitempty"`
}

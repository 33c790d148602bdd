// Package state merges agent reports, Kubernetes objects and metrics-server
// usage into immutable MetricsSnapshots, keeps bounded history, and derives
// cluster events from consecutive snapshots.
package state

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// ReportEntry is the latest report of one node's agent and when it arrived.
type ReportEntry struct {
	Report     *model.NodeReport
	ReceivedAt time.Time
}

// Usage is CPU and memory usage of a pod or node as metrics-server reports it.
type Usage struct {
	CPU        int64 // millicores
	Memory     int64 // bytes, working set
	Timestamp  time.Time
	Containers map[string]ContainerUsage // pods only, by container name
}

// ContainerUsage is one container's usage from metrics-server.
type ContainerUsage struct {
	CPU    int64
	Memory int64
}

// Inputs is everything one snapshot is built from. Build never modifies it.
type Inputs struct {
	Now time.Time
	// Reports holds the latest report per node, keyed by node name.
	Reports map[string]ReportEntry
	// Nodes and Pods come from the informers' caches; both are nil in
	// standalone mode (no cluster), where nodes come from reports alone.
	Nodes []*corev1.Node
	Pods  []*corev1.Pod
	// PodUsage ("namespace/name") and NodeUsage come from metrics-server;
	// nil when it is absent or failing, and pods then use kubelet stats.
	PodUsage  map[string]Usage
	NodeUsage map[string]Usage
	// StaleIntervals is how many missed agent intervals make a node stale.
	StaleIntervals int
	// Thresholds decide node pressure for health.
	Thresholds model.Thresholds
	// Sources is the status of the aggregator's own sources.
	Sources map[string]model.SourceStatus
	// VMs are already computed VM views (see package vm), nil when none.
	VMs []*model.VMMetrics
	// Resources, when set, remembers pods' resource totals across Builds
	// (see ResourceMemo); it changes no result, only the cost.
	Resources *ResourceMemo
}

package state

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Node objects are not validated like agents' reports: whatever they or
// VM resources say, totals saturate and rates stay within 0-100.
func TestClusterTotalsSaturate(t *testing.T) {
	huge := func(name string) *corev1.Node {
		n := kubeNode(name)
		max := *resource.NewQuantity(math.MaxInt64, resource.DecimalSI)
		maxMilli := *resource.NewMilliQuantity(math.MaxInt64, resource.DecimalSI)
		n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: maxMilli, corev1.ResourceMemory: max, ResourceGPU: max}
		n.Status.Allocatable = n.Status.Capacity
		return n
	}
	in := Inputs{
		Now:   t0,
		Nodes: []*corev1.Node{huge("big-1"), huge("big-2"), kubeNode("small")},
		Pods:  []*corev1.Pod{},
		NodeUsage: map[string]Usage{
			"big-1": {CPU: math.MaxInt64, Memory: math.MaxInt64},
			"big-2": {CPU: math.MaxInt64, Memory: math.MaxInt64},
		},
		VMs: []*model.VMMetrics{
			{Name: "vm1", Status: "Running", CPU: math.MaxInt64 / 10, Memory: "4Gi"},
			{Name: "vm2", Status: "Running", CPU: math.MaxInt64 / 10, Memory: "4Gi"},
		},
	}
	c := Build(in).ClusterMetrics
	assert.Equal(t, int64(math.MaxInt64), c.TotalCPU)
	assert.Equal(t, int64(math.MaxInt64), c.UsedCPU)
	assert.Equal(t, int64(math.MaxInt64), c.TotalMemory)
	assert.Equal(t, int64(math.MaxInt64), c.VMAllocatedCPU)
	assert.Positive(t, c.TotalGPUs)
	assert.Positive(t, c.AvailableGPUs)
	for _, r := range []float64{c.CPUUsageRate, c.MemoryUsageRate} {
		assert.GreaterOrEqual(t, r, 0.0)
		assert.LessOrEqual(t, r, 100.0)
	}
}

// History must always encode: an average over GPUs of huge values (which
// the wire refuses, but a snapshot may come from elsewhere) and rates that
// are not finite are stored as 0.
func TestHistoryNeverHoldsNonFinite(t *testing.T) {
	h := NewHistory(time.Hour, 10)
	n := &model.NodeMetrics{
		NodeName: "gpu-1", Timestamp: t0, CPUUsageRate: math.NaN(), MemoryUsageRate: math.Inf(1),
		GPUs:           []model.GPUMetrics{{UtilizationRate: 1.7e308, MemoryUsed: math.MaxInt64}, {UtilizationRate: 1.7e308, MemoryUsed: math.MaxInt64}},
		GPUMemoryUsed:  []int64{math.MaxInt64},
		GPUUsage:       []float64{1.7e308, 1.7e308},
		GPUMemoryTotal: []int64{},
	}
	p := &model.PodMetrics{Namespace: "ml", PodName: "train", Timestamp: t0, CPUUsageRate: math.Inf(-1), MemoryUsageRate: math.NaN()}
	h.Record(&model.MetricsSnapshot{Timestamp: t0, NodeMetrics: map[string]*model.NodeMetrics{"gpu-1": n}, PodMetrics: map[string]*model.PodMetrics{"ml/train": p}})

	points, ok := h.NodeHistory("gpu-1")
	require.True(t, ok)
	_, err := json.Marshal(points)
	require.NoError(t, err)
	assert.InDelta(t, 1.7e308, points[0].GPUUsageRate, 1e300, "an average of finite values is kept")
	assert.Equal(t, int64(math.MaxInt64), points[0].GPUMemoryUsed, "the sum saturates")
	assert.Zero(t, points[0].CPUUsageRate)
	pods, ok := h.PodHistory("ml", "train")
	require.True(t, ok)
	_, err = json.Marshal(pods)
	require.NoError(t, err)
}

// A reading dated after its snapshot is recorded at the snapshot's time,
// so a clock far ahead cannot make every later reading look old.
func TestHistoryHoldsNoFuturePoint(t *testing.T) {
	h := NewHistory(time.Hour, 1200) // a point every 3 s at most
	node := func(ts time.Time) map[string]*model.NodeMetrics {
		return map[string]*model.NodeMetrics{"n1": {NodeName: "n1", Timestamp: ts}}
	}
	h.Record(&model.MetricsSnapshot{Timestamp: t0, NodeMetrics: node(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))})
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * 15 * time.Second)
		h.Record(&model.MetricsSnapshot{Timestamp: now, NodeMetrics: node(now.Add(-time.Second))})
	}
	points, _ := h.NodeHistory("n1")
	require.Len(t, points, 4, "the real readings after it are kept")
	for _, p := range points {
		assert.False(t, p.Timestamp.After(t0.Add(45*time.Second)), p.Timestamp)
	}
}

func TestDiffSummarizesManyStaleNodes(t *testing.T) {
	snap := func(n int, stale bool) *model.MetricsSnapshot {
		s := &model.MetricsSnapshot{Timestamp: t0, NodeMetrics: map[string]*model.NodeMetrics{}}
		for i := range n {
			name := nodeName(i)
			s.NodeMetrics[name] = &model.NodeMetrics{NodeName: name, Stale: stale, ReportAgeSeconds: 60}
		}
		return s
	}
	tests := []struct {
		name      string
		nodes     int
		wantCount int // events of the type
		summary   bool
	}{
		{"a few one by one", 3, 3, false},
		{"the limit one by one", MaxNodeEvents, MaxNodeEvents, false},
		{"beyond it one summary", MaxNodeEvents + 1, 1, true},
		{"a flood one summary", 79_006, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				typ         model.EventType
				prev, next  bool
				messageWord string
			}{
				{model.EventNodeStale, false, true, "are stale"},
				{model.EventNodeRecovered, true, false, "recovered"},
			} {
				events := Diff(snap(tt.nodes, c.prev), snap(tt.nodes, c.next))
				require.Len(t, events, tt.wantCount)
				if !tt.summary {
					continue
				}
				e := events[0]
				assert.Equal(t, c.typ, e.Type)
				assert.Empty(t, e.Node)
				assert.Equal(t, fmt.Sprint(tt.nodes), e.Details["count"])
				assert.Equal(t, "node-00000,node-00001,node-00002,node-00003,node-00004", e.Details["nodes"])
				assert.True(t, strings.HasPrefix(e.Message, fmt.Sprintf("%d nodes %s: node-00000, ", tt.nodes, c.messageWord)), e.Message)
				assert.LessOrEqual(t, len(e.Message), model.MaxEventMessageBytes)
			}
		})
	}
}

func TestDiffCutsLongMessages(t *testing.T) {
	prev := &model.MetricsSnapshot{Timestamp: t0, ClusterMetrics: &model.ClusterMetrics{HealthStatus: model.HealthHealthy}}
	next := &model.MetricsSnapshot{Timestamp: t0, ClusterMetrics: &model.ClusterMetrics{HealthStatus: model.HealthWarning,
		Issues: []string{"pod ml/train failed: " + strings.Repeat("r", 10_000)}}}
	events := Diff(prev, next)
	require.Len(t, events, 1)
	assert.Len(t, events[0].Message, model.MaxEventMessageBytes)
}

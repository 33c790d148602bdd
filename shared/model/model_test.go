package model

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func node() *NodeMetrics {
	return &NodeMetrics{
		NodeName: "n1", CPUCapacity: 4000, CPUUsage: 1000, CPUUsageRate: 25,
		MemoryCapacity: 16 << 30, MemoryUsage: 4 << 30, MemoryUsageRate: 25,
		DiskCapacity: 100 << 30, DiskUsage: 40 << 30, DiskUsageRate: 40,
		GPUCount: 2, GPUModels: []string{"NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"},
		Healthy: true, Labels: map[string]string{"zone": "a"},
	}
}

func TestGetAvailableResources(t *testing.T) {
	n := node()
	assert.Equal(t, Resources{CPU: 3000, Memory: 12 << 30, Disk: 60 << 30, GPUs: 2}, n.GetAvailableResources())

	n.GPUs = []GPUMetrics{{Index: 0, Pods: []GPUPodRef{{Namespace: "ml", Pod: "train"}}}, {Index: 1}}
	assert.Equal(t, 1, n.GetAvailableResources().GPUs, "a GPU held by a pod is not available")

	n.CPUUsage = 5000
	assert.Equal(t, int64(0), n.GetAvailableResources().CPU, "never negative")
}

func TestIsUnderPressure(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*NodeMetrics)
		want   bool
	}{
		{"calm", func(*NodeMetrics) {}, false},
		{"cpu at threshold", func(n *NodeMetrics) { n.CPUUsageRate = 90 }, true},
		{"memory high", func(n *NodeMetrics) { n.MemoryUsageRate = 95.5 }, true},
		{"disk at 85", func(n *NodeMetrics) { n.DiskUsageRate = 85 }, true},
		{"kubelet condition", func(n *NodeMetrics) { n.Conditions = []string{"DiskPressure"} }, true},
		{"other condition is not pressure", func(n *NodeMetrics) { n.Conditions = []string{"NotReady"} }, false},
		{"rate without capacity is ignored", func(n *NodeMetrics) { n.CPUCapacity, n.CPUUsageRate = 0, 99 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := node()
			tt.mutate(n)
			assert.Equal(t, tt.want, n.IsUnderPressure())
		})
	}
	n := node()
	n.MemoryUsageRate = 93.14
	assert.Equal(t, []string{"memory usage 93.1% >= 90.0%"}, n.PressureReasons(DefaultThresholds()))
}

func TestMeetsConstraints(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*NodeMetrics)
		c      Constraints
		want   bool
	}{
		{"empty constraints", func(*NodeMetrics) {}, Constraints{}, true},
		{"enough cpu", func(*NodeMetrics) {}, Constraints{MinCPU: 3000}, true},
		{"not enough cpu", func(*NodeMetrics) {}, Constraints{MinCPU: 3001}, false},
		{"memory", func(*NodeMetrics) {}, Constraints{MinMemory: 13 << 30}, false},
		{"gpus", func(*NodeMetrics) {}, Constraints{MinGPUs: 2, GPUModel: "NVIDIA A100-SXM4-40GB"}, true},
		{"wrong gpu model", func(*NodeMetrics) {}, Constraints{GPUModel: "H100"}, false},
		{"label", func(*NodeMetrics) {}, Constraints{Labels: map[string]string{"zone": "a"}}, true},
		{"label mismatch", func(*NodeMetrics) {}, Constraints{Labels: map[string]string{"zone": "b"}}, false},
		{"unhealthy", func(n *NodeMetrics) { n.Healthy = false }, Constraints{}, false},
		{"stale", func(n *NodeMetrics) { n.Stale = true }, Constraints{}, false},
		{"pressure", func(n *NodeMetrics) { n.CPUUsageRate = 95 }, Constraints{}, false},
		{"pressure allowed", func(n *NodeMetrics) { n.CPUUsageRate = 95 }, Constraints{AllowPressure: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := node()
			tt.mutate(n)
			assert.Equal(t, tt.want, n.MeetsConstraints(tt.c))
		})
	}
}

func TestPodHelpers(t *testing.T) {
	p := &PodMetrics{CPUUsage: 450, CPURequest: 300, CPULimit: 500, CPULimited: true, CPUUsageRate: 90, MemoryUsage: 100, MemoryRequest: 0}
	assert.Equal(t, Utilization{CPU: 150, Memory: 0}, p.GetResourceUtilization())
	assert.True(t, p.IsOverLimit())
	p.CPUUsageRate = 89.9
	assert.False(t, p.IsOverLimit())
	p.MemoryLimit, p.MemoryLimited, p.MemoryUsageRate = 200, true, 95
	assert.True(t, p.IsOverLimit())
	assert.False(t, (&PodMetrics{CPUUsageRate: 99}).IsOverLimit(), "no limit, never over it")
	assert.Equal(t, "default/web", (&PodMetrics{Namespace: "default", PodName: "web"}).Key())
}

func TestPodLimitRates(t *testing.T) {
	// limited: 100m on "a" (using 95m), none on "b" (using 1405m).
	partial := PodMetrics{CPUUsage: 1500, CPULimit: 100, Containers: []ContainerMetrics{
		{Name: "a", CPUUsage: 95, CPULimit: 100, CPUUsageRate: 95},
		{Name: "b", CPUUsage: 1405},
	}}
	tests := []struct {
		name     string
		pod      PodMetrics
		wantRate float64
		wantOK   bool
		over     bool
	}{
		{name: "no limit anywhere", pod: PodMetrics{CPUUsage: 900}},
		{name: "whole pod limited", pod: PodMetrics{CPULimit: 1000, CPULimited: true, CPUUsageRate: 50}, wantRate: 50, wantOK: true},
		{name: "partial limit: the limited container's rate, not the pod's", pod: partial, wantRate: 95, wantOK: true, over: true},
		{
			name: "a container above the pod's rate",
			pod: PodMetrics{CPULimit: 1000, CPULimited: true, CPUUsageRate: 50, Containers: []ContainerMetrics{
				{Name: "a", CPULimit: 500, CPUUsageRate: 92}, {Name: "b", CPULimit: 500, CPUUsageRate: 8},
			}},
			wantRate: 92, wantOK: true, over: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rate, ok := tt.pod.CPULimitRate()
			assert.Equal(t, tt.wantOK, ok)
			assert.InDelta(t, tt.wantRate, rate, 1e-9)
			assert.Equal(t, tt.over, tt.pod.IsOverLimit())

			// Memory follows the same rule.
			m := memoryOnly(tt.pod)
			rate, ok = m.MemoryLimitRate()
			assert.Equal(t, tt.wantOK, ok)
			assert.InDelta(t, tt.wantRate, rate, 1e-9)
			assert.Equal(t, tt.over, m.IsOverLimit())
		})
	}
}

// memoryOnly moves p's CPU numbers to memory.
func memoryOnly(p PodMetrics) PodMetrics {
	m := PodMetrics{MemoryUsage: p.CPUUsage, MemoryLimit: p.CPULimit, MemoryLimited: p.CPULimited, MemoryUsageRate: p.CPUUsageRate}
	for _, c := range p.Containers {
		m.Containers = append(m.Containers, ContainerMetrics{Name: c.Name, MemoryUsage: c.CPUUsage, MemoryLimit: c.CPULimit, MemoryUsageRate: c.CPUUsageRate})
	}
	return m
}

func TestRates(t *testing.T) {
	assert.Equal(t, 50.0, Rate(1, 2))
	assert.Equal(t, 0.0, Rate(1, 0))
	assert.Equal(t, 200.0, Rate(2, 1))
	assert.Equal(t, 100.0, ClampRate(100.4))
	assert.Equal(t, 0.0, ClampRate(-1))
}

// The seed's field names are a contract: lowerCamelCase JSON.
func TestJSONNames(t *testing.T) {
	b, err := json.Marshal(node())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"nodeName", "timestamp", "cpuCapacity", "cpuUsage", "cpuUsageRate", "memoryCapacity",
		"memoryUsage", "memoryUsageRate", "diskCapacity", "diskUsage", "diskUsageRate", "networkLatency",
		"networkBandwidth", "gpuCount", "gpuModels", "gpuUsage", "gpuMemoryTotal", "gpuMemoryUsed", "healthy",
		"conditions", "labels"} {
		assert.Contains(t, m, k)
	}
	b, err = json.Marshal(&PodMetrics{})
	require.NoError(t, err)
	m = map[string]any{}
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"podName", "namespace", "nodeName", "cpuUsage", "memoryUsage", "cpuRequest", "cpuLimit",
		"memoryRequest", "memoryLimit", "cpuUsageRate", "memoryUsageRate", "containers", "phase", "ready", "restarts", "startTime"} {
		assert.Contains(t, m, k)
	}
	b, err = json.Marshal(&ClusterMetrics{})
	require.NoError(t, err)
	m = map[string]any{}
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"totalNodes", "healthyNodes", "totalPods", "runningPods", "totalCPU", "usedCPU", "cpuUsageRate",
		"totalMemory", "usedMemory", "memoryUsageRate", "totalGPUs", "availableGPUs", "healthStatus", "issues"} {
		assert.Contains(t, m, k)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "disk full", 20, "disk full"},
		{"exact", "abcdef", 6, "abcdef"},
		{"cut with ellipsis", "abcdefgh", 6, "abc…"},
		{"never splits a rune", "aé€é", 6, "aé…"},
		{"limit below the ellipsis", "abcdef", 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Truncate(tt.in, tt.n)
			assert.Equal(t, tt.want, got)
			assert.LessOrEqual(t, len(got), tt.n)
			assert.True(t, utf8.ValidString(got))
		})
	}
	long := strings.Repeat("x", 1<<20)
	assert.Len(t, TruncateMessage(long), MaxEventMessageBytes)
}

func TestSaturatingArithmetic(t *testing.T) {
	tests := []struct {
		name      string
		a, b      int64
		sum, prod int64
	}{
		{"small", 3, 4, 7, 12},
		{"max plus max", math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{"max plus one", math.MaxInt64, 1, math.MaxInt64, math.MaxInt64},
		{"min plus min", math.MinInt64, math.MinInt64, math.MinInt64, math.MaxInt64},
		{"mixed signs never saturate", math.MaxInt64, math.MinInt64, -1, math.MinInt64},
		{"min times minus one", math.MinInt64, -1, math.MinInt64, math.MaxInt64},
		{"zero", 0, math.MaxInt64, math.MaxInt64, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.sum, AddSaturating(tt.a, tt.b))
			assert.Equal(t, tt.prod, MulSaturating(tt.a, tt.b))
		})
	}
}

func TestFinite(t *testing.T) {
	assert.Equal(t, 42.5, Finite(42.5))
	assert.Equal(t, 0.0, Finite(math.NaN()))
	assert.Equal(t, 0.0, Finite(math.Inf(1)))
	assert.Equal(t, 0.0, Finite(math.Inf(-1)))
	huge := math.MaxFloat64
	assert.Equal(t, 0.0, Finite(huge+huge), "an overflowed sum")
}

func TestGPUUtilization(t *testing.T) {
	tests := []struct {
		name string
		n    NodeMetrics
		want float64
		ok   bool
	}{
		{name: "no GPUs"},
		{name: "per-GPU detail wins", n: NodeMetrics{GPUs: []GPUMetrics{{UtilizationRate: 20}, {UtilizationRate: 60}}, GPUUsage: []float64{100}}, want: 40, ok: true},
		{name: "seed list", n: NodeMetrics{GPUUsage: []float64{10, 20, 30}}, want: 20, ok: true},
		{name: "huge readings stay finite", n: NodeMetrics{GPUUsage: []float64{1.7e308, 1.7e308}}, want: 1.7e308, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.n.GPUUtilization()
			assert.Equal(t, tt.ok, ok)
			assert.InDelta(t, tt.want, got, tt.want*1e-12)
		})
	}
}

package state

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// snapAt is a snapshot at t with the given nodes and pods, each reading
// taken at t with cpu usage v.
func snapAt(t time.Time, v int64, nodes []string, pods []string) *model.MetricsSnapshot {
	s := &model.MetricsSnapshot{Timestamp: t, NodeMetrics: map[string]*model.NodeMetrics{}, PodMetrics: map[string]*model.PodMetrics{}}
	for _, n := range nodes {
		s.NodeMetrics[n] = &model.NodeMetrics{NodeName: n, Timestamp: t, CPUUsage: v, CPUUsageRate: float64(v) / 10, Healthy: true}
	}
	for _, p := range pods {
		s.PodMetrics[model.PodKey("default", p)] = &model.PodMetrics{Namespace: "default", PodName: p, Timestamp: t, CPUUsage: v, Restarts: int32(v)}
	}
	return s
}

func TestHistory(t *testing.T) {
	tests := []struct {
		name      string
		retention time.Duration
		maxPoints int
		interval  time.Duration
		cycles    int
		wantLen   int
		wantFirst int64 // cpu of the oldest point kept
	}{
		{name: "shorter than retention keeps all", retention: 5 * time.Minute, maxPoints: 1200, interval: 15 * time.Second, cycles: 10, wantLen: 10, wantFirst: 0},
		{name: "retention trims old points", retention: 5 * time.Minute, maxPoints: 1200, interval: 15 * time.Second, cycles: 40, wantLen: 21, wantFirst: 19},
		{name: "max points spreads readings over retention", retention: time.Hour, maxPoints: 60, interval: 15 * time.Second, cycles: 400, wantLen: 60, wantFirst: 164},
		{name: "zero retention keeps the latest reading", retention: 0, maxPoints: 1200, interval: 15 * time.Second, cycles: 5, wantLen: 1, wantFirst: 4},
		{name: "ring bounded by max points", retention: 24 * time.Hour, maxPoints: 7, interval: 4 * time.Hour, cycles: 20, wantLen: 7, wantFirst: 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHistory(tt.retention, tt.maxPoints)
			for i := 0; i < tt.cycles; i++ {
				h.Record(snapAt(t0.Add(time.Duration(i)*tt.interval), int64(i), []string{"n1"}, []string{"p1"}))
			}
			points, ok := h.NodeHistory("n1")
			require.True(t, ok)
			require.Len(t, points, tt.wantLen)
			assert.Equal(t, tt.wantFirst, points[0].CPUUsage)
			assert.Equal(t, int64(tt.cycles-1), points[len(points)-1].CPUUsage, "newest reading is kept")
			for i := 1; i < len(points); i++ {
				assert.True(t, points[i].Timestamp.After(points[i-1].Timestamp), "oldest first")
			}
			pods, ok := h.PodHistory("default", "p1")
			require.True(t, ok)
			assert.Len(t, pods, tt.wantLen)
			assert.LessOrEqual(t, len(pods), max(tt.maxPoints, 1)+1)
		})
	}
}

func TestHistoryPointValues(t *testing.T) {
	h := NewHistory(time.Hour, 10)
	s := &model.MetricsSnapshot{Timestamp: t0, NodeMetrics: map[string]*model.NodeMetrics{
		"g": {NodeName: "g", Timestamp: t0.Add(-time.Second), CPUUsage: 100, CPUUsageRate: 10, MemoryUsage: 5, MemoryUsageRate: 50,
			DiskUsage: 7, DiskUsageRate: 70, Stale: true,
			GPUs: []model.GPUMetrics{{UtilizationRate: 20, MemoryUsed: 1}, {UtilizationRate: 60, MemoryUsed: 2}}},
	}, PodMetrics: map[string]*model.PodMetrics{
		"ns/p": {Namespace: "ns", PodName: "p", CPUUsage: 3, CPUUsageRate: 30, MemoryUsage: 4, MemoryUsageRate: 40, Restarts: 2},
	}}
	h.Record(s)
	nodes, ok := h.NodeHistory("g")
	require.True(t, ok)
	assert.Equal(t, []NodePoint{{
		Timestamp: t0.Add(-time.Second), CPUUsage: 100, CPUUsageRate: 10, MemoryUsage: 5, MemoryUsageRate: 50,
		DiskUsage: 7, DiskUsageRate: 70, GPUUsageRate: 40, GPUMemoryUsed: 3, Stale: true,
	}}, nodes)
	pods, ok := h.PodHistory("ns", "p")
	require.True(t, ok)
	assert.Equal(t, []PodPoint{{Timestamp: t0, CPUUsage: 3, CPUUsageRate: 30, MemoryUsage: 4, MemoryUsageRate: 40, Restarts: 2}}, pods,
		"a reading without its own time takes the snapshot's")
	_, ok = h.NodeHistory("missing")
	assert.False(t, ok)
	_, ok = h.PodHistory("ns", "missing")
	assert.False(t, ok)
}

func TestHistoryStaleReadingNotRepeated(t *testing.T) {
	h := NewHistory(5*time.Minute, 100)
	for i := 0; i < 4; i++ {
		s := snapAt(t0.Add(time.Duration(i)*15*time.Second), 1, []string{"n1"}, nil)
		s.NodeMetrics["n1"].Timestamp = t0 // the agent stopped: same reading every cycle
		h.Record(s)
	}
	points, _ := h.NodeHistory("n1")
	assert.Len(t, points, 1)

	// Once the only reading is older than retention the series is empty
	// but kept while the node is still in snapshots.
	s := snapAt(t0.Add(10*time.Minute), 1, []string{"n1"}, nil)
	s.NodeMetrics["n1"].Timestamp = t0
	h.Record(s)
	points, ok := h.NodeHistory("n1")
	assert.True(t, ok)
	assert.Empty(t, points)
}

func TestHistoryDropsGoneSeries(t *testing.T) {
	h := NewHistory(time.Minute, 100)
	h.Record(snapAt(t0, 1, []string{"a", "b"}, []string{"x", "y"}))
	h.Record(snapAt(t0.Add(30*time.Second), 1, []string{"a"}, []string{"x"}))
	nodes, pods := h.Len()
	assert.Equal(t, 2, nodes, "b is gone for less than retention")
	assert.Equal(t, 2, pods)
	h.Record(snapAt(t0.Add(61*time.Second), 1, []string{"a"}, []string{"x"}))
	nodes, pods = h.Len()
	assert.Equal(t, 1, nodes)
	assert.Equal(t, 1, pods)
	_, ok := h.NodeHistory("b")
	assert.False(t, ok)
}

func TestHistoryConcurrentReaders(t *testing.T) {
	h := NewHistory(time.Hour, 50)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			h.Record(snapAt(t0.Add(time.Duration(i)*time.Second), int64(i), []string{"n1"}, []string{"p1"}))
		}
	}()
	for i := 0; i < 200; i++ {
		points, _ := h.NodeHistory("n1")
		assert.LessOrEqual(t, len(points), 51)
		_, _ = h.PodHistory("default", "p1")
	}
	<-done
	points, _ := h.NodeHistory("n1")
	assert.Equal(t, int64(199), points[len(points)-1].CPUUsage)
}

func TestHistoryMemoryBounded(t *testing.T) {
	// 1000 cycles of 20 pods with a cap of 30 points: every ring stays at
	// the cap however many cycles pass.
	h := NewHistory(24*time.Hour, 30)
	var pods []string
	for i := 0; i < 20; i++ {
		pods = append(pods, fmt.Sprintf("p%d", i))
	}
	for i := 0; i < 1000; i++ {
		h.Record(snapAt(t0.Add(time.Duration(i)*15*time.Minute/10), int64(i), []string{"n"}, pods))
	}
	for _, r := range h.pods {
		assert.LessOrEqual(t, len(r.buf), 30)
	}
}

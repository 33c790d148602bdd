package pressure

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func report(cpuRate, diskRate float64, sources ...model.SourceStatus) *model.NodeReport {
	return &model.NodeReport{
		NodeName:  "node-1",
		Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Node: model.NodeMetrics{
			CPUCapacity: 4000, CPUUsageRate: cpuRate,
			MemoryCapacity: 8 << 30, MemoryUsageRate: 40,
			Disks: []model.DiskMetrics{{MountPoint: "/var", Capacity: 100, UsageRate: diskRate, Available: true}},
		},
		Sources: sources,
	}
}

func types(events []model.Event) []model.EventType {
	var out []model.EventType
	for _, e := range events {
		out = append(out, e.Type)
	}
	return out
}

func TestObserveSequence(t *testing.T) {
	tr := NewTracker(model.DefaultThresholds())
	ok := model.SourceStatus{Name: "kubelet", Status: model.SourceOK}
	bad := model.SourceStatus{Name: "kubelet", Status: model.SourceFailed, Reason: "connection refused"}
	steps := []struct {
		name    string
		report  *model.NodeReport
		healthy bool
		want    []model.EventType
	}{
		{"calm", report(10, 50, ok), true, nil},
		{"cpu high", report(95, 50, ok), false, []model.EventType{model.EventThresholdCrossed, model.EventPressureRaised}},
		{"still high: no repeat", report(96, 50, ok), false, nil},
		{"within hysteresis stays crossed", report(89, 50, ok), true, []model.EventType{model.EventPressureCleared}},
		{"below hysteresis clears", report(80, 50, ok), true, []model.EventType{model.EventThresholdCleared}},
		{"disk crosses, no node pressure for a non-root disk", report(10, 90, ok), true, []model.EventType{model.EventThresholdCrossed}},
		{"source fails", report(10, 90, bad), true, []model.EventType{model.EventSourceFailing}},
		{"source still failing: no repeat", report(10, 90, bad), true, nil},
		{"source recovers, disk clears", report(10, 10, ok), true, []model.EventType{model.EventThresholdCleared, model.EventSourceRecovered}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			ev := tr.Observe(s.report)
			assert.Equal(t, s.want, types(ev))
			assert.Equal(t, s.healthy, s.report.Node.Healthy)
			for _, e := range ev {
				assert.Equal(t, "node-1", e.Node)
				assert.NotEmpty(t, e.Message)
				assert.Equal(t, s.report.Timestamp, e.Timestamp)
			}
		})
	}
}

func TestObserveMessagesNameTheValue(t *testing.T) {
	tr := NewTracker(model.DefaultThresholds())
	ev := tr.Observe(report(95, 10))
	require.Len(t, ev, 2)
	assert.Equal(t, "cpu", ev[0].Source)
	assert.Equal(t, "95.0", ev[0].Details["value"])
	assert.Contains(t, ev[1].Message, "cpu usage 95.0% >= 90.0%")
}

func TestObserveGPUTemperature(t *testing.T) {
	tr := NewTracker(model.DefaultThresholds())
	r := report(10, 10)
	r.Node.GPUs = []model.GPUMetrics{{Index: 0, TemperatureC: 91}, {Index: 1, TemperatureC: 60}}
	ev := tr.Observe(r)
	require.Len(t, ev, 1)
	assert.Equal(t, "gpu:0:temperature", ev[0].Source)
}

func TestLifecycle(t *testing.T) {
	e := Lifecycle(model.EventAgentStarted, "n", "v1", time.Unix(0, 0))
	assert.Equal(t, "agent v1 on node n started", e.Message)
	e = Lifecycle(model.EventAgentStopping, "n", "v1", time.Unix(0, 0))
	assert.Equal(t, "agent v1 on node n is stopping", e.Message)
}

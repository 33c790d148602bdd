package state

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func TestDiff(t *testing.T) {
	base := func() *model.MetricsSnapshot {
		return &model.MetricsSnapshot{
			Timestamp: t0,
			NodeMetrics: map[string]*model.NodeMetrics{
				"a": {NodeName: "a"},
				"b": {NodeName: "b", Stale: true, ReportAgeSeconds: 60},
			},
			PodMetrics: map[string]*model.PodMetrics{
				"default/web": {Namespace: "default", PodName: "web", NodeName: "a", UID: "u1", Restarts: 3,
					Containers: []model.ContainerMetrics{{Name: "app", Restarts: 3}}},
			},
			ClusterMetrics: &model.ClusterMetrics{HealthStatus: model.HealthWarning, Issues: []string{"node b is stale"}},
		}
	}
	tests := []struct {
		name   string
		change func(next *model.MetricsSnapshot)
		want   []model.Event
	}{
		{name: "nothing changed", change: func(*model.MetricsSnapshot) {}},
		{
			name: "node goes stale",
			change: func(n *model.MetricsSnapshot) {
				n.NodeMetrics["a"] = &model.NodeMetrics{NodeName: "a", Stale: true, ReportAgeSeconds: 47.4}
			},
			want: []model.Event{{Type: model.EventNodeStale, Severity: model.SeverityWarning, Node: "a",
				Message: "node a is stale: last agent report 47s ago", Details: map[string]string{"reportAgeSeconds": "47"}}},
		},
		{
			name: "stale node recovers and health clears",
			change: func(n *model.MetricsSnapshot) {
				n.NodeMetrics["b"] = &model.NodeMetrics{NodeName: "b"}
				n.ClusterMetrics = &model.ClusterMetrics{HealthStatus: model.HealthHealthy, Issues: []string{}}
			},
			want: []model.Event{
				{Type: model.EventClusterHealthChanged, Severity: model.SeverityInfo,
					Message: "cluster health changed from warning to healthy",
					Details: map[string]string{"old": "warning", "new": "healthy", "issues": "0"}},
				{Type: model.EventNodeRecovered, Severity: model.SeverityInfo, Node: "b", Message: "node b recovered: its agent reports again"},
			},
		},
		{
			name: "health worsens",
			change: func(n *model.MetricsSnapshot) {
				n.ClusterMetrics = &model.ClusterMetrics{HealthStatus: model.HealthCritical, Issues: []string{"no healthy node: all 2 nodes are unhealthy", "node b is stale"}}
			},
			want: []model.Event{{Type: model.EventClusterHealthChanged, Severity: model.SeverityCritical,
				Message: "cluster health changed from warning to critical: no healthy node: all 2 nodes are unhealthy (and 1 more issues)",
				Details: map[string]string{"old": "warning", "new": "critical", "issues": "2"}}},
		},
		{
			name: "pod restarted",
			change: func(n *model.MetricsSnapshot) {
				n.PodMetrics["default/web"] = &model.PodMetrics{Namespace: "default", PodName: "web", NodeName: "a", UID: "u1", Restarts: 5,
					Containers: []model.ContainerMetrics{{Name: "app", Restarts: 5, LastTerminationReason: "OOMKilled", LastExitCode: 137}}}
			},
			want: []model.Event{{Type: model.EventPodRestarting, Severity: model.SeverityWarning, Node: "a", Namespace: "default", Name: "web",
				Message: "pod default/web is restarting: 5 restarts (+2), last terminated OOMKilled",
				Details: map[string]string{"restarts": "5", "previousRestarts": "3", "container": "app", "lastTerminationReason": "OOMKilled", "lastExitCode": "137"}}},
		},
		{
			name: "recreated pod with more restarts is not a restart",
			change: func(n *model.MetricsSnapshot) {
				n.PodMetrics["default/web"] = &model.PodMetrics{Namespace: "default", PodName: "web", UID: "u2", Restarts: 9}
			},
		},
		{
			name: "new node already stale and new pod",
			change: func(n *model.MetricsSnapshot) {
				n.NodeMetrics["c"] = &model.NodeMetrics{NodeName: "c", Stale: true, ReportAgeSeconds: 100}
				n.PodMetrics["default/new"] = &model.PodMetrics{Namespace: "default", PodName: "new", Restarts: 4}
			},
			want: []model.Event{{Type: model.EventNodeStale, Severity: model.SeverityWarning, Node: "c",
				Message: "node c is stale: last agent report 100s ago", Details: map[string]string{"reportAgeSeconds": "100"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			next.Timestamp = t0.Add(15 * time.Second)
			tt.change(next)
			got := Diff(base(), next)
			for i := range tt.want {
				tt.want[i].Timestamp = next.Timestamp
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDiffWithoutPrevious(t *testing.T) {
	assert.Nil(t, Diff(nil, &model.MetricsSnapshot{}))
	assert.Nil(t, Diff(&model.MetricsSnapshot{}, nil))
	assert.Empty(t, Diff(&model.MetricsSnapshot{}, &model.MetricsSnapshot{}))
}

func TestDiffOfBuiltSnapshots(t *testing.T) {
	in := goldenInputs()
	prev := Build(in)
	in.Now = in.Now.Add(15 * time.Second)
	next := Build(in)
	// cpu-1 report is now 15 s old, old-1 was already stale: no change.
	assert.Empty(t, Diff(prev, next))

	in.Now = in.Now.Add(time.Minute)
	later := Build(in)
	var got []string
	for _, e := range Diff(next, later) {
		got = append(got, string(e.Type)+" "+e.Node)
	}
	assert.Equal(t, []string{
		"ClusterHealthChanged ",
		"NodeStale cpu-1", "NodeStale edge-1", "NodeStale gpu-1",
	}, got, "every agent went quiet and the cluster turned critical")
}

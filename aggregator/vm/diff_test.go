package vm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func TestDiff(t *testing.T) {
	vm := func(id, ns, name, status, node string) *model.VMMetrics {
		return &model.VMMetrics{ID: id, Namespace: ns, Name: name, Status: status, Node: node, Source: SourceKubeVirt}
	}
	type ev struct {
		typ      model.EventType
		severity string
		node     string
		name     string
		message  string
	}
	tests := []struct {
		name       string
		prev, next []*model.VMMetrics
		want       []ev
	}{
		{name: "nothing changed",
			prev: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1"), vm("2", "ns", "b", "Scheduling", "")},
			next: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1"), vm("2", "ns", "b", "Scheduling", "")},
		},
		{name: "became running",
			prev: []*model.VMMetrics{vm("1", "ns", "a", "Scheduling", "")},
			next: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1")},
			want: []ev{{model.EventVMStarted, model.SeverityInfo, "n1", "a", "VM ns/a started on node n1"}}},
		{name: "new and running",
			next: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1")},
			want: []ev{{model.EventVMStarted, model.SeverityInfo, "n1", "a", "VM ns/a started on node n1"}}},
		{name: "new and pending is no event",
			next: []*model.VMMetrics{vm("1", "ns", "a", "Pending", "")},
		},
		{name: "shut down",
			prev: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1")},
			next: []*model.VMMetrics{vm("1", "ns", "a", "Succeeded", "n1")},
			want: []ev{{model.EventVMStopped, model.SeverityInfo, "n1", "a", "VM ns/a stopped: status Succeeded (was running on node n1)"}}},
		{name: "failed is a warning",
			prev: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1")},
			next: []*model.VMMetrics{vm("1", "ns", "a", "Failed", "")},
			want: []ev{{model.EventVMStopped, model.SeverityWarning, "n1", "a", "VM ns/a stopped: status Failed (was running on node n1)"}}},
		{name: "gone",
			prev: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1"), vm("2", "ns", "b", "Pending", "")},
			next: nil,
			want: []ev{{model.EventVMStopped, model.SeverityInfo, "n1", "a", "VM ns/a stopped: it is gone (was running on node n1)"}}},
		{name: "migrated",
			prev: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1")},
			next: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n2")},
			want: []ev{{model.EventVMMoved, model.SeverityInfo, "n2", "a", "VM ns/a moved from node n1 to node n2"}}},
		{name: "restarted elsewhere as a new instance",
			prev: []*model.VMMetrics{vm("1", "ns", "a", "Running", "n1")},
			next: []*model.VMMetrics{vm("9", "ns", "a", "Running", "n2")},
			want: []ev{
				{model.EventVMStarted, model.SeverityInfo, "n2", "a", "VM ns/a started on node n2"},
				{model.EventVMStopped, model.SeverityInfo, "n1", "a", "VM ns/a stopped: replaced by a new instance (was running on node n1)"},
			}},
		{name: "same name in another namespace is another VM",
			prev: []*model.VMMetrics{vm("1", "ns1", "a", "Running", "n1")},
			next: []*model.VMMetrics{vm("2", "ns2", "a", "Running", "n1")},
			want: []ev{
				{model.EventVMStarted, model.SeverityInfo, "n1", "a", "VM ns2/a started on node n1"},
				{model.EventVMStopped, model.SeverityInfo, "n1", "a", "VM ns1/a stopped: it is gone (was running on node n1)"},
			}},
		{name: "nil entries are ignored",
			prev: []*model.VMMetrics{nil},
			next: []*model.VMMetrics{nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.prev, tt.next, testNow)
			require.Len(t, got, len(tt.want))
			for i, w := range tt.want {
				assert.Equal(t, w.typ, got[i].Type)
				assert.Equal(t, w.severity, got[i].Severity)
				assert.Equal(t, w.node, got[i].Node)
				assert.Equal(t, w.name, got[i].Name)
				assert.Equal(t, w.message, got[i].Message)
				assert.Equal(t, testNow, got[i].Timestamp)
				assert.Equal(t, SourceKubeVirt, got[i].Source)
				assert.NotEmpty(t, got[i].Namespace)
			}
		})
	}
}

func TestDiffMovedDetails(t *testing.T) {
	prev := []*model.VMMetrics{{ID: "1", Namespace: "ns", Name: "a", Status: "Running", Node: "n1", Source: "wukong"}}
	next := []*model.VMMetrics{{ID: "1", Namespace: "ns", Name: "a", Status: "Running", Node: "n2", Source: "wukong"}}
	got := Diff(prev, next, testNow)
	require.Len(t, got, 1)
	assert.Equal(t, map[string]string{"status": "Running", "source": "wukong", "id": "1", "fromNode": "n1", "toNode": "n2"}, got[0].Details)
}

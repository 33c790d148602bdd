package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// TestPodLimitRateQueries checks that rate filters and sorts use a limit
// only where it bounds what it is compared with: the pod's limit when
// every container has one, each container's own limit otherwise.
func TestPodLimitRateQueries(t *testing.T) {
	type ctr struct {
		name, limit string // limit "" for none
		cpu         int64  // usage, millicores
	}
	pods := map[string][]ctr{
		// 950m of 1 CPU: 95%.
		"limited": {{"app", "1", 950}},
		// 1500m against app's 100m would read 1500%; app: 95m of 100m.
		"partial": {{"app", "100m", 95}, {"worker", "", 1405}},
		// 1500m against app's 1 CPU would read 150%; app: 10m of 1 CPU.
		"partial-idle": {{"app", "1", 10}, {"worker", "", 1490}},
		"unlimited":    {{"app", "", 2000}},
	}
	in := state.Inputs{Now: t0, Nodes: []*corev1.Node{}, PodUsage: map[string]state.Usage{}}
	for name, cs := range pods {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		u := state.Usage{Timestamp: t0, Containers: map[string]state.ContainerUsage{}}
		for _, c := range cs {
			spec := corev1.Container{Name: c.name}
			if c.limit != "" {
				spec.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(c.limit)}
			}
			p.Spec.Containers = append(p.Spec.Containers, spec)
			u.CPU += c.cpu
			u.Containers[c.name] = state.ContainerUsage{CPU: c.cpu}
		}
		in.Pods = append(in.Pods, p)
		in.PodUsage["default/"+name] = u
	}
	st := state.NewStore(state.StoreOptions{})
	st.Publish(state.Build(in))
	h := New(st, Options{})

	tests := []struct {
		query string
		want  []string
	}{
		{"minCpuLimitRate=90&sort=cpuRate", []string{"limited", "partial"}},
		// Equal rates keep name order; a pod without any limit comes last.
		{"sort=cpuRate", []string{"limited", "partial", "partial-idle", "unlimited"}},
		{"sort=cpuRate&order=asc", []string{"partial-idle", "limited", "partial", "unlimited"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			rec := get(h, "/api/v1/metrics/pods?"+tt.query)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var l struct {
				Items []model.PodMetrics `json:"items"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &l))
			var names []string
			for _, p := range l.Items {
				names = append(names, p.PodName)
				if p.PodName != "limited" {
					assert.Zero(t, p.CPUUsageRate, "%s has no pod-level rate", p.PodName)
				}
			}
			assert.Equal(t, tt.want, names)
		})
	}
}

package chart

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestChartOptions: the all-features render honours the operator options
// (testdata/all-features.values.yaml): an image mirror, tuned probes,
// history limits, extra volumes and the Grafana dashboard; the default
// render keeps the defaults.
func TestChartOptions(t *testing.T) {
	renders := map[string]render{}
	for _, r := range loadRenders(t) {
		renders[r.name] = r
	}
	t.Run("all-features", func(t *testing.T) {
		r, ok := renders["all-features"]
		require.True(t, ok)
		ds := one[*appsv1.DaemonSet](t, r, agentName)
		require.NotNil(t, ds.Spec.RevisionHistoryLimit)
		assert.Equal(t, int32(3), *ds.Spec.RevisionHistoryLimit)
		c := container(t, ds.Spec.Template.Spec, "agent")
		assert.True(t, strings.HasPrefix(c.Image, "registry.example.com/mirror/k8s-llm-monitor/agent:"), c.Image)
		assertProbe(t, c.StartupProbe, "/healthz", "metrics")
		assert.Equal(t, int32(30), c.ReadinessProbe.PeriodSeconds)
		assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "scratch", MountPath: "/scratch"})
		assert.True(t, hasVolume(ds.Spec.Template.Spec, "scratch"))

		d := one[*appsv1.Deployment](t, r, aggregatorName)
		g := container(t, d.Spec.Template.Spec, "aggregator")
		assert.True(t, strings.HasPrefix(g.Image, "registry.example.com/mirror/k8s-llm-monitor/aggregator:"), g.Image)
		assert.Equal(t, int32(10), g.LivenessProbe.FailureThreshold)
		assert.Nil(t, g.StartupProbe, "off unless asked")

		cm := one[*corev1.ConfigMap](t, r, fullname+"-dashboard")
		assert.Equal(t, "1", cm.Labels["grafana_dashboard"])
		var dash struct {
			UID    string            `json:"uid"`
			Panels []json.RawMessage `json:"panels"`
		}
		require.NoError(t, json.Unmarshal([]byte(cm.Data["k8s-llm-monitor.json"]), &dash))
		assert.Equal(t, "k8s-llm-monitor", dash.UID)
		assert.NotEmpty(t, dash.Panels)
	})
	t.Run("defaults", func(t *testing.T) {
		r, ok := renders["deploy"]
		require.True(t, ok)
		ds := one[*appsv1.DaemonSet](t, r, agentName)
		assert.Equal(t, "system-node-critical", ds.Spec.Template.Spec.PriorityClassName)
		c := container(t, ds.Spec.Template.Spec, "agent")
		assert.True(t, strings.HasPrefix(c.Image, "ghcr.io/k8s-llm-monitor/agent:"), c.Image)
		assert.Nil(t, c.StartupProbe)
		d := one[*appsv1.Deployment](t, r, aggregatorName)
		require.NotNil(t, d.Spec.RevisionHistoryLimit)
		assert.Equal(t, int32(10), *d.Spec.RevisionHistoryLimit)
		assert.Empty(t, d.Spec.Template.Spec.PriorityClassName)
		assert.False(t, has[*corev1.ConfigMap](r, fullname+"-dashboard"), "the dashboard only when asked")
	})
}

func hasVolume(spec corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

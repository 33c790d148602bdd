package api

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// snapshotOnly is a Provider with a fixed snapshot and nothing else.
type snapshotOnly struct{ snap *model.MetricsSnapshot }

func (s snapshotOnly) Snapshot() *model.MetricsSnapshot                 { return s.snap }
func (snapshotOnly) NodeHistory(string) ([]state.NodePoint, bool)       { return nil, false }
func (snapshotOnly) PodHistory(string, string) ([]state.PodPoint, bool) { return nil, false }
func (snapshotOnly) Ready() (bool, string)                              { return true, "" }
func (snapshotOnly) Healthy() (bool, string)                            { return true, "" }

func u64(v uint64) *uint64 { return &v }

// seriesSnapshot has one node of every kind the series tell apart: a GPU
// node with ECC and XIDs, a node without GPUs whose gpu source is
// unavailable and whose kubelet failed, and pods with and without limits
// that bound them.
func seriesSnapshot() *model.MetricsSnapshot {
	ok := model.SourceStatus{Status: model.SourceOK}
	unavailable := model.SourceStatus{Status: model.SourceUnavailable, Reason: "no NVIDIA driver"}
	failed := model.SourceStatus{Status: model.SourceFailed, Reason: "timeout"}
	return &model.MetricsSnapshot{
		Timestamp: time.Unix(1700000000, 0),
		NodeMetrics: map[string]*model.NodeMetrics{
			"gpu-1": {NodeName: "gpu-1", CPUCapacity: 64000, CPUUsage: 1500, CPUAllocatable: 63500, MemoryAllocatable: 1 << 39,
				MemoryCapacity: 1 << 40, MemoryUsage: 1 << 30, Healthy: true,
				Sources: map[string]model.SourceStatus{"cpu": ok, "gpu": ok},
				GPUs: []model.GPUMetrics{{Index: 0, UUID: "GPU-0a", Model: "NVIDIA H100", UtilizationRate: 25,
					MemoryUtilization: 50, MemoryTotal: 80 << 30, MemoryUsed: 8 << 30, TemperatureC: 61,
					PowerWatts: 300.5, PowerLimitWatts: 700, ECCCorrected: u64(3), ECCUncorrected: u64(1), XIDErrors: 2}}},
			"cpu-1": {NodeName: "cpu-1", CPUCapacity: 4000, CPUUsage: 250, Stale: true, ReportAgeSeconds: 61,
				Sources: map[string]model.SourceStatus{"cpu": ok, "gpu": unavailable, "kubelet": failed}},
		},
		PodMetrics: map[string]*model.PodMetrics{
			"ml/train": {Namespace: "ml", PodName: "train", NodeName: "gpu-1", CPUUsage: 1200, CPURequest: 1000,
				CPULimit: 2000, CPULimited: true, MemoryUsage: 1 << 30, MemoryRequest: 2 << 30, MemoryLimit: 4 << 30,
				MemoryLimited: true, Restarts: 3, Ready: true, EphemeralStorageUsage: 1 << 20},
			"ml/side": {Namespace: "ml", PodName: "side", NodeName: "gpu-1", CPURequest: 100, CPULimit: 500},
		},
		ClusterMetrics: &model.ClusterMetrics{TotalNodes: 2, HealthyNodes: 1, StaleNodes: 1, TotalCPU: 68000,
			UsedCPU: 1750, NodesUnderPressure: 1, HealthStatus: model.HealthWarning, Issues: []string{"node cpu-1 is stale"},
			PodsByPhase: map[string]int{"Running": 2},
			Sources:     map[string]model.SourceStatus{"informers": ok, "metrics-server": failed, "kubevirt": unavailable}},
	}
}

func TestSnapshotSeries(t *testing.T) {
	c := newSnapshotCollector(snapshotOnly{seriesSnapshot()}, true)
	tests := []struct {
		name   string
		metric string
		want   string
	}{
		{"cpu in cores", "k8smon_node_cpu_usage_cores", `
k8smon_node_cpu_usage_cores{node="cpu-1"} 0.25
k8smon_node_cpu_usage_cores{node="gpu-1"} 1.5
`},
		{"allocatable only where the Node object says", "k8smon_node_cpu_allocatable_cores", `
k8smon_node_cpu_allocatable_cores{node="gpu-1"} 63.5
`},
		{"up only for sources expected to work", "k8smon_node_source_up", `
k8smon_node_source_up{node="cpu-1",source="cpu"} 1
k8smon_node_source_up{node="cpu-1",source="kubelet"} 0
k8smon_node_source_up{node="gpu-1",source="cpu"} 1
k8smon_node_source_up{node="gpu-1",source="gpu"} 1
`},
		{"unavailable apart from failed", "k8smon_node_source_unavailable", `
k8smon_node_source_unavailable{node="cpu-1",source="cpu"} 0
k8smon_node_source_unavailable{node="cpu-1",source="gpu"} 1
k8smon_node_source_unavailable{node="cpu-1",source="kubelet"} 0
k8smon_node_source_unavailable{node="gpu-1",source="cpu"} 0
k8smon_node_source_unavailable{node="gpu-1",source="gpu"} 0
`},
		{"aggregator sources", "k8smon_source_up", `
k8smon_source_up{source="informers"} 1
k8smon_source_up{source="metrics-server"} 0
`},
		{"gpu utilisation as a ratio", "k8smon_gpu_utilization_ratio", `
k8smon_gpu_utilization_ratio{gpu="0",model="NVIDIA H100",node="gpu-1",uuid="GPU-0a"} 0.25
`},
		{"gpu power", "k8smon_gpu_power_watts", `
k8smon_gpu_power_watts{gpu="0",model="NVIDIA H100",node="gpu-1",uuid="GPU-0a"} 300.5
`},
		{"ecc as a counter", "k8smon_gpu_ecc_uncorrected_errors_total", `
k8smon_gpu_ecc_uncorrected_errors_total{gpu="0",model="NVIDIA H100",node="gpu-1",uuid="GPU-0a"} 1
`},
		{"xid count", "k8smon_gpu_xid_errors_total", `
k8smon_gpu_xid_errors_total{gpu="0",model="NVIDIA H100",node="gpu-1",uuid="GPU-0a"} 2
`},
		{"a limit only where it bounds the pod", "k8smon_pod_cpu_limit_cores", `
k8smon_pod_cpu_limit_cores{namespace="ml",node="gpu-1",pod="train"} 2
`},
		{"requests always", "k8smon_pod_cpu_request_cores", `
k8smon_pod_cpu_request_cores{namespace="ml",node="gpu-1",pod="side"} 0.1
k8smon_pod_cpu_request_cores{namespace="ml",node="gpu-1",pod="train"} 1
`},
		{"restarts as a counter", "k8smon_pod_restarts_total", `
k8smon_pod_restarts_total{namespace="ml",node="gpu-1",pod="side"} 0
k8smon_pod_restarts_total{namespace="ml",node="gpu-1",pod="train"} 3
`},
		{"cluster nodes, one metric per count", "k8smon_cluster_nodes_stale", `
k8smon_cluster_nodes_stale 1
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			help, typ := helpAndType(t, c, tt.metric)
			want := "# HELP " + tt.metric + " " + help + "\n# TYPE " + tt.metric + " " + typ + "\n" + strings.TrimLeft(tt.want, "\n")
			require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), tt.metric))
		})
	}
}

// helpAndType finds a metric's help text and type in one scrape.
func helpAndType(t *testing.T, c prometheus.Collector, name string) (string, string) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetHelp(), strings.ToLower(mf.GetType().String())
		}
	}
	t.Fatalf("%s not exported", name)
	return "", ""
}

// TestSnapshotSeriesLint: every series of the aggregator's /metrics passes
// the Prometheus naming lint (the same checks as promtool check metrics).
// With $K8SMON_EXPOSITION_DIR set it writes the exposition there.
func TestSnapshotSeriesLint(t *testing.T) {
	h := New(snapshotOnly{seriesSnapshot()}, Options{ObjectMetrics: true})
	get(h, "/api/v1/metrics/cluster")
	body := get(h, "/metrics").Body.String()
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems)
	// make metrics-check runs promtool itself on what is written here.
	if dir := os.Getenv("K8SMON_EXPOSITION_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "aggregator.prom"), []byte(body), 0o644))
	}
	// Every series the collector describes shows up for this snapshot.
	for _, d := range append(append([]*prometheus.Desc{}, clusterDescs...), objectDescs...) {
		name := strings.SplitN(d.String(), `"`, 3)[1] // Desc{fqName: "name", ...
		assert.Contains(t, body, "\n"+name, "series %s", name)
	}
}

// TestSourceSeriesBounded: an agent that reports many sources cannot mint
// more than maxSources series per node.
func TestSourceSeriesBounded(t *testing.T) {
	sources := map[string]model.SourceStatus{strings.Repeat("x", maxSourceLabelBytes+1): {Status: model.SourceOK}}
	for i := range 100 {
		sources[fmt.Sprintf("s%03d", i)] = model.SourceStatus{Status: model.SourceFailed}
	}
	snap := &model.MetricsSnapshot{NodeMetrics: map[string]*model.NodeMetrics{"n": {NodeName: "n", Sources: sources}}}
	c := newSnapshotCollector(snapshotOnly{snap}, true)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	n, err := testutil.GatherAndCount(reg, "k8smon_node_source_up")
	require.NoError(t, err)
	assert.Equal(t, maxSources, n)
}

// TestDashboardSeries: every series the chart's Grafana dashboard queries is
// one the aggregator exports, so a renamed metric cannot leave a panel
// empty. With $K8SMON_EXPOSITION_DIR set it also writes the dashboard's
// queries as Prometheus rules there, for promtool check rules (their
// PromQL).
func TestDashboardSeries(t *testing.T) {
	raw, err := os.ReadFile("../../charts/k8s-llm-monitor/dashboards/k8s-llm-monitor.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))

	h := New(snapshotOnly{seriesSnapshot()}, Options{ObjectMetrics: true})
	get(h, "/api/v1/metrics/cluster")
	body := get(h, "/metrics").Body.String()
	name := regexp.MustCompile(`\bk8smon_[a-z_]+`)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				assert.Contains(t, body, "\n"+m, "panel %q queries %s, which /metrics does not export", p.Title, m)
			}
			n++
			expr := strings.ReplaceAll(tg.Expr, "$node", ".*")
			fmt.Fprintf(&rules, "      - record: k8smon:dashboard_query_%d\n        expr: %q\n", n, expr)
		}
	}
	require.Positive(t, n)
	if dir := os.Getenv("K8SMON_EXPOSITION_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "dashboard.rules.yml"), []byte(rules.String()), 0o644))
	}
}

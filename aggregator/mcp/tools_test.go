package mcp

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTools calls every tool on the fixture and checks its answer.
func TestTools(t *testing.T) {
	cs := connect(t, newFixtureServer(t, fixtureStore(t)))
	tests := []struct {
		name, tool string
		args       map[string]any
		want       []string // in the text, in this order
		check      func(t *testing.T, s map[string]any)
	}{
		{
			name: "cluster overview", tool: "cluster_overview",
			want: []string{"cluster warning: 3 of 5 nodes healthy, 1 under pressure, 0 stale; 6 of 8 pods running",
				"cpu: 17000m of 40000m used (42.5%)", "gpus: 2 of 4 free", "vms: 1 of 1 running", "issues:",
				"- node node-2 is under pressure: memory usage 93.1% >= 90.0%", "- pod default/my-pod is restarting"},
			check: func(t *testing.T, s map[string]any) {
				assert.Len(t, s["issues"], 4)
				assert.Equal(t, "warning", s["cluster"].(map[string]any)["healthStatus"])
			},
		},
		{
			name: "nodes most relevant first", tool: "list_nodes",
			want: []string{"5 nodes match, most relevant first; 2 unhealthy or stale, 1 under pressure",
				"name status cpu mem disk gpu notes",
				"node-2 unhealthy,pressure 70.0% 93.1% 45.0% - memory usage 93.1% >= 90.0%", "node-4 unhealthy - - - -",
				"node-3 healthy 87.5% 60.0%", "gpu-1 healthy 20.0% 30.0% 45.0% 40.0%"},
			check: func(t *testing.T, s map[string]any) {
				nodes := s["nodes"].([]any)
				require.Len(t, nodes, 5)
				assert.Equal(t, "node-4", nodes[1].(map[string]any)["name"])
				assert.Nil(t, nodes[1].(map[string]any)["cpuUsageRate"], "unknown usage is null, not 0")
				assert.NotContains(t, s, "leftOut")
			},
		},
		{
			name: "nodes by the HTTP API's sort", tool: "list_nodes", args: map[string]any{"sort": "cpu", "limit": 3},
			want: []string{"5 nodes match", "node-3", "node-2", "node-1", "left out: 2 of 5 nodes"},
		},
		{
			name: "nodes by label and health", tool: "list_nodes",
			args: map[string]any{"label": []string{"topology.kubernetes.io/zone=zone-b"}, "healthy": false},
			want: []string{"1 node matches", "node-4 unhealthy"},
		},
		{
			name: "node", tool: "get_node", args: map[string]any{"name": "node-2"},
			want: []string{"node node-2: unhealthy,pressure (memory usage 93.1% >= 90.0%)", "cpu: 5600m of 8000m used (70.0%), 7800m allocatable",
				"memory: 29.8Gi of 32.0Gi used (93.1%), 31.0Gi allocatable", "pods, most relevant first", "default/my-pod Running 0/1 7", "labels:"},
			check: func(t *testing.T, s map[string]any) {
				assert.EqualValues(t, 1, s["node"].(map[string]any)["pods"])
			},
		},
		{
			name: "GPU node", tool: "get_node", args: map[string]any{"name": "gpu-1"},
			want: []string{"GPUs: index model util mem temp power pods problems", "0 NVIDIA_A100-SXM4-40GB 80.0% 75.0% 70°C 90W ml/train"},
		},
		{
			name: "pods most relevant first", tool: "list_pods", args: map[string]any{"namespace": "default"},
			want: []string{"6 pods match, most relevant first; 3 failing, 1 restarted", "default/my-pod Running 0/1 7 92m(9.2%) 500Mi(97.7%) node-2 app: CrashLoopBackOff, last OOMKilled exit 137",
				"default/batch-1 Failed", "default/pending-1 Pending", "default/web-2", "default/xyz"},
		},
		{
			name: "pods over 90% of the memory limit", tool: "list_pods", args: map[string]any{"minMemoryLimitRate": 90, "sort": "memoryRate"},
			want: []string{"2 pods match", "default/my-pod", "default/web-2"},
		},
		{
			name: "pod", tool: "get_pod", args: map[string]any{"namespace": "default", "name": "my-pod"},
			want: []string{"pod default/my-pod: Running, 0/1 ready, 7 restarts; app: CrashLoopBackOff, last OOMKilled exit 137",
				"memory: 500Mi used, request 128Mi, limit 512Mi (97.7% of limit)", "next: diagnose_pod namespace=default name=my-pod",
				"containers:", "app false 7 waiting CrashLoopBackOff OOMKilled exit 137"},
		},
		{
			name: "launcher pod names its VM", tool: "get_pod", args: map[string]any{"namespace": "vms", "name": "virt-launcher-vm-1-x7k2p"},
			want: []string{"vm: this pod runs VM vms/vm-1"},
		},
		{
			name: "vms", tool: "list_vms",
			want: []string{"1 VM match, 1 running", "vms/vm-1 Running node-1 2cpu/4Gi 25.0% 50.0% -"},
		},
		{
			name: "vm", tool: "get_vm", args: map[string]any{"name": "vm-1"},
			want: []string{"vm vms/vm-1: Running on node-1, cpu 25.0%, memory 50.0%, disk - of allocated",
				"launcher pod: vms/virt-launcher-vm-1-x7k2p (diagnose_pod namespace=vms name=virt-launcher-vm-1-x7k2p diagnoses it)"},
		},
		{
			name: "gpus", tool: "gpu_overview",
			want: []string{"4 GPUs on 1 node look healthy", "in use: 2 held by pods, 2 free, mean utilization 40.0%",
				"models: NVIDIA A100-SXM4-40GB x4", "gpu-1 0 NVIDIA_A100-SXM4-40GB 80.0%"},
		},
		{
			name: "node history", tool: "metric_history", args: map[string]any{"kind": "node", "name": "node-2"},
			want: []string{"node node-2: 3 readings over 30s (2026-03-01T11:59:28Z to 2026-03-01T11:59:58Z); cpu 70.0% -> 70.0%, memory 91.1% -> 93.1% (max 93.1%), unhealthy in 3 readings",
				"3 points, oldest first"},
		},
		{
			name: "pod history downsampled", tool: "metric_history", args: map[string]any{"kind": "pod", "namespace": "default", "name": "my-pod", "points": 2},
			want: []string{"pod default/my-pod: 3 readings over 30s", "memory 480Mi -> 500Mi (max 500Mi, 97.7% of limit)", "restarts 5 -> 7",
				"2 points, oldest first"},
			check: func(t *testing.T, s map[string]any) {
				pts := s["points"].([]any)
				require.Len(t, pts, 2)
				assert.EqualValues(t, 7, pts[1].(map[string]any)["restarts"])
			},
		},
		{
			name: "diagnose pod", tool: "diagnose_pod", args: map[string]any{"namespace": "default", "name": "my-pod"},
			want: []string{"my-pod is crash-looping", "- termination: app terminated OOMKilled exit 137 at 11:59:00Z"},
			check: func(t *testing.T, s map[string]any) {
				assert.Equal(t, "crashloop-oom", s["rule"])
				assert.NotEmpty(t, s["evidence"])
			},
		},
		{
			name: "diagnose node", tool: "diagnose_node", args: map[string]any{"name": "node-2"},
			want: []string{"node-2 is under memory pressure", "- metric: memory 93.1% >= 90%"},
		},
		{
			name: "events most severe first", tool: "recent_events", args: map[string]any{"namespace": "default", "pod": "my-pod"},
			want: []string{"41 events match (of the 41 read: 1 critical, 40 warning)", "2026-03-01T11:30:00Z critical agent default/my-pod OOMKilled",
				"2026-03-01T12:00:00Z warning kubernetes default/my-pod BackOff Back-off"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, cs, tt.tool, tt.args)
			got := text(t, res)
			require.False(t, res.IsError, got)
			at := 0
			for _, w := range tt.want {
				i := indexFrom(got, w, at)
				require.GreaterOrEqual(t, i, 0, "want %q after offset %d in:\n%s", w, at, got)
				at = i + len(w)
			}
			s := structured(t, res)
			assert.Equal(t, firstLine(got), s["verdict"], "structured verdict is the text's first line")
			if tt.check != nil {
				tt.check(t, s)
			}
			assert.LessOrEqual(t, wireSize(t, res), MaxBytes(DefaultMaxTokens))
		})
	}
}

func indexFrom(s, sub string, from int) int {
	i := -1
	if from <= len(s) {
		if j := index(s[from:], sub); j >= 0 {
			i = from + j
		}
	}
	return i
}

func index(s, sub string) int { return strings.Index(s, sub) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

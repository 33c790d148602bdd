//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/mcp"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// The cluster TestMCP asks about. Pod usage is the harness's (the fake
// kubelets' numbers); node usage is this machine's, so node answers are
// checked against the HTTP API's at the same snapshot.
const (
	mcpNode1, mcpNode2 = "mcp-1.e2e", "mcp-2.e2e"
	// The scheduler's words for the pending pod (a pod asking for 64
	// cores), as it writes them into PodScheduled and its event.
	unschedulableMessage = "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
	crashMessage         = "panic: open /etc/app/config.yaml: no such file or directory"
)

// TestMCP connects a client of the official MCP SDK to the aggregator's
// /mcp over streamable HTTP with a reader's token, lists the tools, asks
// the seed's twelve questions (docs/questions.md, with the tool calls of
// docs/llm.md) and the diagnoses of a crash-looping, an OOM-killed and a
// pending pod, and checks every answer against the harness's numbers, or
// the HTTP API's at the same snapshot, and against its token budget. It
// logs the answers' sizes (docs/llm.md, "Measured end to end").
func TestMCP(t *testing.T) {
	e := startMCPCluster(t)
	oomKilledAgain(t, e)

	t.Run("/mcp is behind the HTTP authentication", func(t *testing.T) {
		e.cp.createServiceAccount(t, "default", "e2e-mcp-unbound")
		unbound := e.cp.serviceAccountToken(t, "default", "e2e-mcp-unbound")
		for _, c := range []struct {
			name, token string
			want        int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"a made-up token", "not-a-token", http.StatusUnauthorized},
			{"a ServiceAccount without the reader binding", unbound, http.StatusForbidden},
			{"the reader", apiToken, http.StatusOK},
		} {
			code, body := postMCP(t, e.agg.api+mcp.Route, c.token)
			assert.Equal(t, c.want, code, "%s: %s", c.name, body)
		}
		_, err := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "v0"}, nil).Connect(context.Background(),
			&sdk.StreamableClientTransport{Endpoint: e.agg.api + mcp.Route, MaxRetries: -1}, nil)
		assert.Error(t, err, "an SDK client without a token cannot connect")
	})

	c := connectMCP(t, e.agg.api+mcp.Route, apiToken)
	t.Run("the tools are listed, read-only, each with max_tokens", func(t *testing.T) {
		var names []string
		for tool, err := range c.cs.Tools(context.Background(), nil) {
			require.NoError(t, err)
			names = append(names, tool.Name)
			assert.True(t, tool.Annotations != nil && tool.Annotations.ReadOnlyHint, tool.Name)
			schema, err := json.Marshal(tool.InputSchema)
			require.NoError(t, err)
			assert.Contains(t, string(schema), `"max_tokens"`, tool.Name)
		}
		assert.ElementsMatch(t, []string{"cluster_overview", "list_nodes", "get_node", "list_pods", "get_pod", "diagnose_pod",
			"diagnose_node", "list_vms", "get_vm", "gpu_overview", "recent_events", "metric_history"}, names)
	})

	var sizes []mcpSize
	for _, q := range mcpQuestions() {
		t.Run(q.question, func(t *testing.T) {
			var a mcpAnswer
			var body []byte
			atOneSnapshot(t, e.agg.api, func() {
				a = c.call(t, q.tool, q.args)
				code, b, err := getWithToken(e.agg.api+q.http, apiToken)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, "%s: %s", q.http, b)
				body = b
			})
			require.False(t, a.isError, "%s: %s", q.tool, a.text)
			t.Logf("%s%s:\n%s", q.tool, argsText(q.args), a.text)
			budget := budgetOf(q.args)
			assert.LessOrEqual(t, a.bytes, mcp.MaxBytes(budget), "%s: %d bytes over its budget of %d tokens", q.tool, a.bytes, budget)
			q.check(t, a, body)
			sizes = append(sizes, mcpSize{q.question, q.tool + argsText(q.args), budget, mcp.EstimateTokens(a.bytes), mcp.EstimateTokens(len(body))})
		})
	}
	var b strings.Builder
	b.WriteString("\n| question | MCP tool call | budget | MCP answer | HTTP JSON |\n|---|---|---|---|---|\n")
	for _, s := range sizes {
		fmt.Fprintf(&b, "| %s | `%s` | %d | %d | %d |\n", s.question, s.call, s.budget, s.mcp, s.http)
	}
	t.Logf("answer sizes in tokens (bytes ÷ 4):%s", b.String())
}

// startMCPCluster starts TestMCP's cluster: two nodes with agents, five
// running pods (crash-1 crash-looping, oom-1 OOM-killed once) and a
// pending one, and waits until the aggregator serves them with the
// kubelets' usage and big-1's event.
func startMCPCluster(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	for _, n := range []nodeSpec{
		{name: mcpNode1, labels: map[string]string{"pool": "general"}, cpu: "8", memory: "32Gi", allocCPU: "7800m", allocMemory: "30Gi"},
		{name: mcpNode2, labels: map[string]string{"pool": "batch"}, cpu: "16", memory: "64Gi", allocCPU: "15500m", allocMemory: "60Gi"},
	} {
		e.addNode(t, n)
	}
	running := []struct {
		spec podSpec
		fake fakePod
	}{
		// 240Mi of a 256Mi limit: the one pod above 90 % of its memory limit.
		{podSpec{namespace: "team-a", name: "web-1", node: mcpNode1, cpuRequest: "100m", cpuLimit: "500m", memRequest: "128Mi", memLimit: "256Mi"},
			fakePod{CPU: 250, Memory: 240 << 20}},
		{podSpec{namespace: "team-a", name: "web-2", node: mcpNode2, cpuRequest: "100m", cpuLimit: "1", memRequest: "128Mi", memLimit: "512Mi"},
			fakePod{CPU: 40, Memory: 200 << 20}},
		{podSpec{namespace: "team-b", name: "batch-1", node: mcpNode1, cpuRequest: "1", cpuLimit: "2", memRequest: "1Gi", memLimit: "2Gi"},
			fakePod{CPU: 1500, Memory: 1500 << 20}},
		{podSpec{namespace: "team-a", name: "crash-1", node: mcpNode2, cpuRequest: "100m", cpuLimit: "500m", memRequest: "64Mi", memLimit: "128Mi"},
			fakePod{CPU: 5, Memory: 10 << 20}},
		{podSpec{namespace: "team-b", name: "oom-1", node: mcpNode1, cpuRequest: "200m", cpuLimit: "1", memRequest: "256Mi", memLimit: "256Mi"},
			fakePod{CPU: 100, Memory: 100 << 20}},
	}
	for _, p := range running {
		e.addPod(t, p.spec, p.fake)
	}
	now := time.Now().Truncate(time.Second)
	// crash-1 crash-loops on a non-zero exit, as the kubelet reports it.
	e.cp.updatePodStatus(t, "team-a", "crash-1", func(s *corev1.PodStatus) {
		setPodReady(s, false)
		c := &s.ContainerStatuses[0]
		c.Ready, c.RestartCount, c.ContainerID = false, 6, "containerd://crash-1-6"
		c.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
			Message: "back-off 5m0s restarting failed container=app pod=crash-1_team-a"}}
		c.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
			Message: crashMessage, ContainerID: "containerd://crash-1-6",
			StartedAt: metav1.NewTime(now.Add(-40 * time.Second)), FinishedAt: metav1.NewTime(now.Add(-30 * time.Second))}}
	})
	// oom-1 was OOM-killed once before the aggregator starts, and runs
	// again; its second OOM kill comes later, when the API server forgets
	// the first.
	e.cp.updatePodStatus(t, "team-b", "oom-1", func(s *corev1.PodStatus) {
		c := &s.ContainerStatuses[0]
		c.RestartCount, c.ContainerID = 4, "containerd://oom-1-5"
		c.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-50 * time.Second))}}
		c.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled",
			ContainerID: "containerd://oom-1-4", StartedAt: metav1.NewTime(now.Add(-5 * time.Minute)), FinishedAt: metav1.NewTime(now.Add(-51 * time.Second))}}
	})
	// big-1 asks for more CPU than any node has: the scheduler (absent
	// here) would mark it unschedulable and record FailedScheduling.
	big := e.cp.createPendingPod(t, "team-b", "big-1", "64", "1Gi", unschedulableMessage)
	e.cp.createEvent(t, big, corev1.EventTypeWarning, "FailedScheduling", unschedulableMessage, 3)

	aggKC := e.cp.serviceAccountKubeconfig(t, e.chartNS, aggregatorSA)
	e.agg = startAggregator(t, e.root, e.productBin, e.logs, "aggregator", aggKC, freePort(t), e.aggregatorArgs()...)
	for _, n := range []string{mcpNode1, mcpNode2} {
		e.startAgent(t, n)
	}
	require.Eventually(t, func() bool {
		nodes, pods := e.nodes(t), e.pods(t)
		for _, n := range []string{mcpNode1, mcpNode2} {
			if nodes[n].UsageSource != "agent" {
				return false
			}
		}
		for _, p := range running {
			m, ok := pods[p.spec.namespace+"/"+p.spec.name]
			if !ok || m.UsageSource != "kubelet" || abs(m.CPUUsage-p.fake.CPU) > 1 {
				return false
			}
		}
		return len(pods) == len(running)+1
	}, settle, 250*time.Millisecond, "nodes with agent reports, pods with kubelet usage")
	require.Eventually(t, func() bool {
		var page struct {
			Items []struct{ Reason string } `json:"items"`
		}
		code, err := getJSON(e.agg.api+"/api/v1/events?namespace=team-b&pod=big-1", &page)
		return err == nil && code == http.StatusOK && len(page.Items) > 0
	}, settle, 250*time.Millisecond, "big-1's FailedScheduling event in the events store")
	return e
}

// oomKilledAgain kills oom-1 a second time, as the kubelet reports it: the
// API server now shows only this kill, and the aggregator both. It waits
// until the aggregator has it.
func oomKilledAgain(t *testing.T, e *env) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	e.cp.updatePodStatus(t, "team-b", "oom-1", func(s *corev1.PodStatus) {
		setPodReady(s, false)
		c := &s.ContainerStatuses[0]
		require.NotNil(t, c.State.Running, "oom-1 runs again after its first kill")
		started := c.State.Running.StartedAt
		c.Ready, c.RestartCount = false, 5
		c.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
			Message: "back-off 1m20s restarting failed container=app pod=oom-1_team-b"}}
		c.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled",
			ContainerID: "containerd://oom-1-5", StartedAt: started, FinishedAt: metav1.NewTime(now)}}
	})
	require.Eventually(t, func() bool {
		var m model.PodMetrics
		code, err := getJSON(e.agg.api+"/api/v1/metrics/pods/team-b/oom-1", &m)
		return err == nil && code == http.StatusOK && m.Restarts == 5
	}, settle, 250*time.Millisecond, "oom-1's second restart in the API")
}

// mcpQuestion is one question asked over MCP, the HTTP request that
// answers it (read at the same snapshot, for comparison and for its size)
// and the checks of the answer.
type mcpQuestion struct {
	question string
	tool     string
	args     map[string]any
	http     string
	check    func(t *testing.T, a mcpAnswer, httpBody []byte)
}

// mcpQuestions are the seed's questions (docs/questions.md) asked of
// TestMCP's cluster with the tool calls of docs/llm.md, then the
// diagnoses.
func mcpQuestions() []mcpQuestion {
	overview := func(check func(t *testing.T, got mcpCluster, text string, want model.ClusterMetrics)) func(*testing.T, mcpAnswer, []byte) {
		return func(t *testing.T, a mcpAnswer, body []byte) {
			var got struct {
				Cluster mcpCluster `json:"cluster"`
			}
			a.decode(t, &got)
			var want model.ClusterMetrics
			require.NoError(t, json.Unmarshal(body, &want))
			assert.Equal(t, 2, got.Cluster.TotalNodes)
			assert.Equal(t, 6, got.Cluster.TotalPods)
			assert.Equal(t, 5, got.Cluster.RunningPods)
			check(t, got.Cluster, a.text, want)
		}
	}
	return []mcpQuestion{
		{"1. What is mcp-1.e2e's CPU usage rate?", "get_node", map[string]any{"name": mcpNode1}, "/api/v1/metrics/nodes/" + mcpNode1,
			func(t *testing.T, a mcpAnswer, body []byte) {
				got, want := a.node(t), decodeAs[model.NodeMetrics](t, body)
				assert.Equal(t, want.CPUUsage, got.CPUUsage)
				assert.Equal(t, want.CPUCapacity, got.CPUCapacity)
				assert.Equal(t, milli("7800m"), got.CPUAllocatable, "the Node object's allocatable")
				require.NotNil(t, got.CPUUsageRate)
				assert.Equal(t, round1(want.CPUUsageRate), *got.CPUUsageRate)
				assert.Equal(t, "agent", got.UsageSource)
				assert.Equal(t, 3, got.Pods, "web-1, batch-1 and oom-1 run there")
				assert.Empty(t, got.Taints, "Ready, so not tainted not-ready")
				assert.Contains(t, a.text, fmt.Sprintf("cpu: %dm of %dm used (%.1f%%), 7800m allocatable", want.CPUUsage, want.CPUCapacity, round1(want.CPUUsageRate)))
			}},
		{"2. Which nodes are the most loaded?", "list_nodes", map[string]any{"sort": "cpu", "limit": 3}, "/api/v1/metrics/nodes?sort=cpu&limit=3",
			func(t *testing.T, a mcpAnswer, body []byte) {
				var got struct {
					Total int `json:"total"`
					Nodes []struct {
						Name string   `json:"name"`
						CPU  *float64 `json:"cpuUsageRate"`
					} `json:"nodes"`
				}
				a.decode(t, &got)
				want := decodeAs[list[model.NodeMetrics]](t, body)
				assert.Equal(t, 2, got.Total)
				require.Len(t, got.Nodes, len(want.Items))
				for i, n := range want.Items {
					assert.Equal(t, n.NodeName, got.Nodes[i].Name, "the HTTP API's order")
					if assert.NotNil(t, got.Nodes[i].CPU) {
						assert.Equal(t, round1(n.CPUUsageRate), *got.Nodes[i].CPU, n.NodeName)
					}
				}
			}},
		{"3. Is mcp-2.e2e under resource pressure?", "get_node", map[string]any{"name": mcpNode2}, "/api/v1/metrics/nodes?pressure=true",
			func(t *testing.T, a mcpAnswer, body []byte) {
				got := a.node(t)
				pressured := slices.ContainsFunc(decodeAs[list[model.NodeMetrics]](t, body).Items, func(n model.NodeMetrics) bool { return n.NodeName == mcpNode2 })
				assert.Equal(t, pressured, len(got.Pressure) > 0, "pressure %v", got.Pressure)
				assert.Equal(t, pressured, strings.Contains(got.Status, "pressure"), got.Status)
				assert.Equal(t, milli("15500m"), got.CPUAllocatable)
				assert.Equal(t, 2, got.Pods, "web-2 and crash-1 run there")
				assert.True(t, strings.HasPrefix(a.text, "node "+mcpNode2+": "+got.Status), a.text)
			}},
		{"4. How many healthy nodes does the cluster have?", "cluster_overview", nil, "/api/v1/metrics/cluster",
			overview(func(t *testing.T, got mcpCluster, text string, want model.ClusterMetrics) {
				assert.Equal(t, want.HealthyNodes, got.HealthyNodes)
				assert.Contains(t, text, fmt.Sprintf("%d of 2 nodes healthy", want.HealthyNodes))
			})},
		{"5. Which pods use more than 90% of their memory limit?", "list_pods", map[string]any{"minMemoryLimitRate": 90, "sort": "memoryRate"}, "/api/v1/metrics/pods?minMemoryLimitRate=90&sort=memoryRate",
			func(t *testing.T, a mcpAnswer, body []byte) {
				rows := a.pods(t)
				require.Len(t, rows, 1)
				assert.Equal(t, "team-a/web-1", rows[0].Pod)
				assert.Equal(t, int64(240<<20), *rows[0].Memory)
				assert.Equal(t, 93.8, *rows[0].MemoryRate, "240Mi of 256Mi")
				assert.Equal(t, 1, decodeAs[list[model.PodMetrics]](t, body).Count)
			}},
		{"6. How many pods are running in namespace team-a?", "list_pods", map[string]any{"namespace": "team-a", "phase": "Running"}, "/api/v1/metrics/pods?namespace=team-a&phase=Running",
			func(t *testing.T, a mcpAnswer, body []byte) {
				var names []string
				for _, r := range a.pods(t) {
					names = append(names, r.Pod)
				}
				assert.ElementsMatch(t, []string{"team-a/web-1", "team-a/web-2", "team-a/crash-1"}, names)
				assert.True(t, strings.HasPrefix(a.text, "3 pods match"), a.text)
				assert.Equal(t, 3, decodeAs[list[model.PodMetrics]](t, body).Count)
			}},
		{"7. Why does crash-1 keep restarting? (get_pod)", "get_pod", map[string]any{"namespace": "team-a", "name": "crash-1"}, "/api/v1/metrics/pods/team-a/crash-1",
			func(t *testing.T, a mcpAnswer, _ []byte) {
				var got struct {
					Pod        mcpPodRow `json:"pod"`
					Containers []struct {
						Name                  string `json:"name"`
						Reason                string `json:"reason"`
						LastTerminationReason string `json:"lastTerminationReason"`
						LastExitCode          int32  `json:"lastExitCode"`
					} `json:"containers"`
				}
				a.decode(t, &got)
				assert.Equal(t, int32(6), got.Pod.Restarts)
				assert.Equal(t, "0/1", got.Pod.Ready)
				require.Len(t, got.Containers, 1)
				assert.Equal(t, "CrashLoopBackOff", got.Containers[0].Reason)
				assert.Equal(t, "Error", got.Containers[0].LastTerminationReason)
				assert.Equal(t, int32(1), got.Containers[0].LastExitCode)
				assert.True(t, strings.HasPrefix(a.text, "pod team-a/crash-1: Running, 0/1 ready, 6 restarts; app: CrashLoopBackOff, last Error exit 1"), a.text)
			}},
		{"8. Which node is web-2 on, and what does it use?", "list_pods", map[string]any{"name": "web-2"}, "/api/v1/metrics/pods?name=web-2",
			func(t *testing.T, a mcpAnswer, body []byte) {
				rows := a.pods(t)
				require.Len(t, rows, 1)
				want := decodeAs[list[model.PodMetrics]](t, body)
				require.Len(t, want.Items, 1)
				assert.Equal(t, mcpNode2, rows[0].Node)
				assert.Equal(t, want.Items[0].CPUUsage, *rows[0].CPU)
				assert.LessOrEqual(t, abs(*rows[0].CPU-40), int64(1), "the kubelet's 40m")
				assert.Equal(t, int64(200<<20), *rows[0].Memory)
			}},
		{"9. What is the cluster's overall CPU usage rate?", "cluster_overview", nil, "/api/v1/metrics/cluster",
			overview(func(t *testing.T, got mcpCluster, text string, want model.ClusterMetrics) {
				assert.Equal(t, want.UsedCPU, got.UsedCPU)
				assert.Equal(t, want.TotalCPU, got.TotalCPU)
				assert.Equal(t, round1(want.CPUUsageRate), got.CPUUsageRate)
				assert.Contains(t, text, fmt.Sprintf("cpu: %dm of %dm used (%.1f%%)", want.UsedCPU, want.TotalCPU, round1(want.CPUUsageRate)))
			})},
		{"10. How healthy is the cluster, and what are its issues?", "cluster_overview", nil, "/api/v1/metrics/cluster",
			func(t *testing.T, a mcpAnswer, body []byte) {
				var got struct {
					Cluster mcpCluster `json:"cluster"`
					Issues  []string   `json:"issues"`
				}
				a.decode(t, &got)
				want := decodeAs[model.ClusterMetrics](t, body)
				assert.Equal(t, want.HealthStatus, got.Cluster.HealthStatus)
				assert.NotEqual(t, model.HealthHealthy, got.Cluster.HealthStatus, "two pods crash-loop")
				assert.Equal(t, want.Issues, got.Issues)
				assert.Contains(t, strings.Join(got.Issues, "\n"), "pod team-a/crash-1 is restarting")
				assert.Contains(t, strings.Join(got.Issues, "\n"), "pod team-b/oom-1 is restarting")
				assert.True(t, strings.HasPrefix(a.text, "cluster "+want.HealthStatus+": "), a.text)
			}},
		{"11. How much capacity is left in the cluster?", "cluster_overview", nil, "/api/v1/metrics/cluster",
			overview(func(t *testing.T, got mcpCluster, text string, want model.ClusterMetrics) {
				assert.Equal(t, want.TotalMemory-want.UsedMemory, got.TotalMemory-got.UsedMemory)
				assert.Contains(t, text, fmt.Sprintf("%dm free", want.TotalCPU-want.UsedCPU))
			})},
		{"12. How many pods are not Running?", "list_pods", map[string]any{"phase": "!Running"}, "/api/v1/metrics/pods?phase=!Running",
			func(t *testing.T, a mcpAnswer, body []byte) {
				rows := a.pods(t)
				require.Len(t, rows, 1)
				assert.Equal(t, "team-b/big-1", rows[0].Pod)
				assert.Equal(t, "Pending", rows[0].Phase)
				assert.Empty(t, rows[0].Node, "not scheduled")
				assert.Equal(t, 1, decodeAs[list[model.PodMetrics]](t, body).Count)
			}},
		{"Why does crash-1 keep restarting? (diagnose)", "diagnose_pod", map[string]any{"namespace": "team-a", "name": "crash-1"}, "/api/v1/diagnose/pods/team-a/crash-1",
			func(t *testing.T, a mcpAnswer, _ []byte) {
				d := a.diagnosis(t)
				assert.Equal(t, "pod-crashloop-exit", d.Rule)
				assert.Equal(t, "critical", d.Severity)
				assert.Equal(t, "Crash loop: container app exits with code 1 (Error); 6 restarts; last message: "+crashMessage, d.Verdict)
				terms := d.terminations()
				require.Len(t, terms, 1)
				assert.Equal(t, int32(1), terms[0].ExitCode)
				assert.True(t, strings.HasPrefix(a.text, "CRITICAL pod team-a/crash-1: "+d.Verdict), a.text)
			}},
		{"Why was oom-1 restarted? (diagnose)", "diagnose_pod", map[string]any{"namespace": "team-b", "name": "oom-1"}, "/api/v1/diagnose/pods/team-b/oom-1",
			func(t *testing.T, a mcpAnswer, _ []byte) {
				d := a.diagnosis(t)
				assert.Equal(t, "pod-crashloop-oom", d.Rule)
				assert.Equal(t, "critical", d.Severity)
				// Two OOM kills: the API server keeps only the last, the
				// aggregator's termination history both.
				assert.Equal(t, "Crash loop from OOM: container app was OOM-killed (reason OOMKilled), 2 of its last 2 terminations; its memory limit is 256Mi; 5 restarts", d.Verdict)
				terms := d.terminations()
				require.Len(t, terms, 2)
				for _, term := range terms {
					assert.Equal(t, "OOMKilled", term.Reason)
					assert.Equal(t, int32(137), term.ExitCode)
				}
				assert.ElementsMatch(t, []string{"containerd://oom-1-5", "containerd://oom-1-4"}, []string{terms[0].ContainerID, terms[1].ContainerID})
				assert.Contains(t, a.text, "OOMKilled")
			}},
		{"Why is big-1 pending? (diagnose)", "diagnose_pod", map[string]any{"namespace": "team-b", "name": "big-1"}, "/api/v1/diagnose/pods/team-b/big-1",
			func(t *testing.T, a mcpAnswer, _ []byte) {
				d := a.diagnosis(t)
				assert.Equal(t, "pod-pending-resources", d.Rule)
				assert.Equal(t, "critical", d.Severity)
				// Free: mcp-2's 15500m allocatable less web-2's and
				// crash-1's 100m each; 60Gi less their 128Mi and 64Mi.
				assert.Equal(t, "Pending: no node has room for its requests (cpu 64 cores, memory 1Gi): the most free cpu is 15300m on mcp-2.e2e, "+
					"the most free memory 59.8Gi on mcp-2.e2e; the scheduler says: 0/2 nodes are available: 2 Insufficient cpu.", d.Verdict)
				assert.Contains(t, d.summaries("scheduling"), "PodScheduled False (Unschedulable): "+unschedulableMessage)
				assert.Contains(t, d.summaries("scheduling"), "node mcp-2.e2e does not fit: free cpu 15300m (allocatable cpu 15500m, memory 60Gi)")
				assert.Contains(t, d.summaries("scheduling"), "node mcp-1.e2e does not fit: free cpu 6500m (allocatable cpu 7800m, memory 30Gi)",
					"7800m less web-1's 100m, batch-1's 1 core and oom-1's 200m")
				assert.Contains(t, strings.Join(d.summaries("event"), "\n"), "Warning FailedScheduling ×3")
			}},
		{"Which events concern big-1?", "recent_events", map[string]any{"namespace": "team-b", "pod": "big-1"}, "/api/v1/events?namespace=team-b&pod=big-1",
			func(t *testing.T, a mcpAnswer, _ []byte) {
				var got struct {
					Events []mcpEvent `json:"events"`
				}
				a.decode(t, &got)
				i := slices.IndexFunc(got.Events, func(ev mcpEvent) bool { return ev.Reason == "FailedScheduling" })
				require.GreaterOrEqual(t, i, 0, "FailedScheduling in %+v", got.Events)
				ev := got.Events[i]
				assert.Equal(t, "kubernetes", ev.Source)
				assert.Equal(t, unschedulableMessage, ev.Message)
				assert.Equal(t, 3, ev.Count)
			}},
		{"Which pods need attention? (cut to 250 tokens)", "list_pods", map[string]any{"max_tokens": 250}, "/api/v1/metrics/pods",
			func(t *testing.T, a mcpAnswer, _ []byte) {
				var got struct {
					Total   int            `json:"total"`
					LeftOut map[string]int `json:"leftOut"`
				}
				a.decode(t, &got)
				rows := a.pods(t)
				assert.Equal(t, 6, got.Total)
				assert.Equal(t, 6-len(rows), got.LeftOut["pods"])
				assert.Contains(t, a.text, fmt.Sprintf("left out: %d of 6 pods", 6-len(rows)))
				if assert.NotEmpty(t, rows) {
					assert.Equal(t, "team-a/crash-1", rows[0].Pod, "failing pods first, most restarts first")
				}
			}},
	}
}

// mcpCluster is cluster_overview's structured "cluster".
type mcpCluster struct {
	HealthStatus string  `json:"healthStatus"`
	TotalNodes   int     `json:"totalNodes"`
	HealthyNodes int     `json:"healthyNodes"`
	TotalPods    int     `json:"totalPods"`
	RunningPods  int     `json:"runningPods"`
	UsedCPU      int64   `json:"usedCPU"`
	TotalCPU     int64   `json:"totalCPU"`
	CPUUsageRate float64 `json:"cpuUsageRate"`
	UsedMemory   int64   `json:"usedMemory"`
	TotalMemory  int64   `json:"totalMemory"`
}

// mcpEvent is a row of recent_events: the events store's event JSON.
type mcpEvent struct {
	Source  string `json:"source"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Count   int    `json:"count"`
}

// mcpNodeDetail is get_node's structured "node".
type mcpNodeDetail struct {
	Status         string   `json:"status"`
	CPUUsage       int64    `json:"cpuUsage"`
	CPUCapacity    int64    `json:"cpuCapacity"`
	CPUAllocatable int64    `json:"cpuAllocatable"`
	CPUUsageRate   *float64 `json:"cpuUsageRate"`
	Pressure       []string `json:"pressure"`
	Taints         []string `json:"taints"`
	UsageSource    string   `json:"usageSource"`
	Pods           int      `json:"pods"`
}

// mcpPodRow is a row of list_pods and get_pod's "pod".
type mcpPodRow struct {
	Pod        string   `json:"pod"`
	Phase      string   `json:"phase"`
	Ready      string   `json:"ready"`
	Restarts   int32    `json:"restarts"`
	CPU        *int64   `json:"cpuUsage"`
	Memory     *int64   `json:"memoryUsage"`
	MemoryRate *float64 `json:"memoryLimitRate"`
	Node       string   `json:"node"`
}

// mcpDiagnosis is diagnose_pod's structured content: the diagnosis JSON.
type mcpDiagnosis struct {
	Verdict  string `json:"verdict"`
	Severity string `json:"severity"`
	Rule     string `json:"rule"`
	Evidence []struct {
		Kind    string          `json:"kind"`
		Summary string          `json:"summary"`
		Data    json.RawMessage `json:"data"`
	} `json:"evidence"`
}

type mcpTermination struct {
	ContainerID string `json:"containerId"`
	Reason      string `json:"reason"`
	ExitCode    int32  `json:"exitCode"`
}

func (d mcpDiagnosis) summaries(kind string) []string {
	var out []string
	for _, ev := range d.Evidence {
		if ev.Kind == kind {
			out = append(out, ev.Summary)
		}
	}
	return out
}

func (d mcpDiagnosis) terminations() []mcpTermination {
	var out []mcpTermination
	for _, ev := range d.Evidence {
		var term mcpTermination
		if ev.Kind == "termination" && json.Unmarshal(ev.Data, &term) == nil {
			out = append(out, term)
		}
	}
	return out
}

// mcpAnswer is a tool's answer as the client received it.
type mcpAnswer struct {
	text       string
	structured json.RawMessage
	isError    bool
	bytes      int // of the JSON-RPC result, as it travelled
}

func (a mcpAnswer) decode(t *testing.T, into any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(a.structured, into), "%s", a.structured)
}

func (a mcpAnswer) node(t *testing.T) mcpNodeDetail {
	var got struct {
		Node mcpNodeDetail `json:"node"`
	}
	a.decode(t, &got)
	return got.Node
}

// pods are the rows of list_pods, each with its usage (the kubelet's).
func (a mcpAnswer) pods(t *testing.T) []mcpPodRow {
	var got struct {
		Pods []mcpPodRow `json:"pods"`
	}
	a.decode(t, &got)
	for _, r := range got.Pods {
		if r.Phase == "Running" {
			require.True(t, r.CPU != nil && r.Memory != nil, "usage of %s", r.Pod)
		}
	}
	return got.Pods
}

func (a mcpAnswer) diagnosis(t *testing.T) mcpDiagnosis {
	var d mcpDiagnosis
	a.decode(t, &d)
	return d
}

// mcpSize is one row of the sizes table, in tokens.
type mcpSize struct {
	question, call string
	budget         int
	mcp, http      int
}

// mcpClient is an MCP client session over streamable HTTP.
type mcpClient struct {
	cs *sdk.ClientSession
	tr *bearerRecorder
}

// connectMCP connects a client of the official SDK to url, presenting
// token on every request.
func connectMCP(t *testing.T, url, token string) *mcpClient {
	t.Helper()
	tr := &bearerRecorder{token: token}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "e2e", Version: "v0"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return &mcpClient{cs: cs, tr: tr}
}

// call calls tool; the answer's size is that of the result received.
func (c *mcpClient) call(t *testing.T, tool string, args map[string]any) mcpAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args})
	require.NoError(t, err, tool)
	require.Len(t, res.Content, 1, tool)
	tc, ok := res.Content[0].(*sdk.TextContent)
	require.True(t, ok, "%s: content is %T", tool, res.Content[0])
	structured, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	return mcpAnswer{text: tc.Text, structured: structured, isError: res.IsError, bytes: len(c.tr.lastResult(t))}
}

// bearerRecorder adds the bearer token to every request and keeps the
// JSON-RPC result of the latest POST answered 200, so that answers are
// measured as they travel.
type bearerRecorder struct {
	token string
	mu    sync.Mutex
	last  json.RawMessage
}

func (r *bearerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+r.token)
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || res.StatusCode != http.StatusOK {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read MCP answer: %w", err)
	}
	var msg struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(body, &msg) == nil && msg.Result != nil {
		r.mu.Lock()
		r.last = msg.Result
		r.mu.Unlock()
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

func (r *bearerRecorder) lastResult(t *testing.T) json.RawMessage {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.last, "no JSON-RPC result received")
	return r.last
}

// postMCP posts an initialize request to url with token (none when empty)
// and returns the status and body.
func postMCP(t *testing.T, url, token string) (int, string) {
	t.Helper()
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"v0"}}}`
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(initialize))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, string(b)
}

// atOneSnapshot runs ask between two reads of the cluster, again until
// both reads are of the same snapshot (the aggregator builds one every
// interval), so that all ask read came from that snapshot.
func atOneSnapshot(t *testing.T, api string, ask func()) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		var before, after model.ClusterMetrics
		code, err := getJSON(api+"/api/v1/metrics/cluster", &before)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		ask()
		code, err = getJSON(api+"/api/v1/metrics/cluster", &after)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		if before.Timestamp.Equal(after.Timestamp) {
			return
		}
		require.True(t, time.Now().Before(deadline), "no two reads of one snapshot within %s", settle)
	}
}

// createPendingPod creates a pod bound to no node that asks for cpu and
// memory, and marks it unschedulable with message, as the scheduler does.
func (cp *controlPlane) createPendingPod(t *testing.T, ns, name, cpu, memory, message string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	obj, err := cp.client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: new(bool),
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)},
			}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	obj.Status = corev1.PodStatus{
		Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: message, LastTransitionTime: metav1.Now()}},
	}
	obj, err = cp.client.CoreV1().Pods(ns).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	require.NoError(t, err)
	return obj
}

// updatePodStatus changes a pod's status through the status subresource,
// as the kubelet does.
func (cp *controlPlane) updatePodStatus(t *testing.T, ns, name string, change func(*corev1.PodStatus)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := cp.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(&obj.Status)
		_, err = cp.client.CoreV1().Pods(ns).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err, "update the status of pod %s/%s", ns, name)
}

// setPodReady sets the pod's Ready and ContainersReady conditions.
func setPodReady(s *corev1.PodStatus, ready bool) {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	for i := range s.Conditions {
		if s.Conditions[i].Type == corev1.PodReady || s.Conditions[i].Type == corev1.ContainersReady {
			s.Conditions[i].Status, s.Conditions[i].LastTransitionTime = st, metav1.Now()
		}
	}
}

// createEvent records a Kubernetes event about pod, as its reporter
// would: count times, the first a minute ago, the last now.
func (cp *controlPlane) createEvent(t *testing.T, pod *corev1.Pod, typ, reason, message string, count int32) {
	t.Helper()
	now := metav1.Now()
	_, err := cp.client.CoreV1().Events(pod.Namespace).Create(context.Background(), &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name + "." + strings.ToLower(reason), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		Type: typ, Reason: reason, Message: message, Count: count,
		Source:         corev1.EventSource{Component: "default-scheduler"},
		FirstTimestamp: metav1.NewTime(now.Add(-time.Minute)), LastTimestamp: now,
	}, metav1.CreateOptions{})
	require.NoError(t, err, "create event %s about pod %s/%s", reason, pod.Namespace, pod.Name)
}

// argsText writes a tool call's arguments as docs/llm.md does.
func argsText(args map[string]any) string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, args[k])
	}
	return b.String()
}

func decodeAs[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(body, &v), "%s", body)
	return v
}

// round1 rounds a rate as the MCP answers do (one decimal).
func round1(f float64) float64 { return math.Round(f*10) / 10 }

// budgetOf is a call's max_tokens: its argument, or the default.
func budgetOf(args map[string]any) int {
	if n, ok := args["max_tokens"].(int); ok {
		return n
	}
	return mcp.DefaultMaxTokens
}

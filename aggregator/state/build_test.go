package state

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestBuildNodes(t *testing.T) {
	tests := []struct {
		name  string
		in    Inputs
		check func(t *testing.T, n *model.NodeMetrics)
	}{
		{
			name: "agent report merged with node object",
			in: Inputs{
				Nodes:   []*corev1.Node{kubeNode("n1", withTaint("dedicated", "gpu", corev1.TaintEffectNoSchedule), withTaint("maintenance", "", corev1.TaintEffectNoExecute))},
				Reports: reports(agentReport("n1")),
			},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Equal(t, int64(8000), n.CPUCapacity, "capacity from the agent")
				assert.Equal(t, int64(7800), n.CPUAllocatable)
				assert.Equal(t, 31*gib, n.MemoryAllocatable)
				assert.Equal(t, []string{"dedicated=gpu:NoSchedule", "maintenance:NoExecute"}, n.Taints)
				assert.Equal(t, "n1", n.Labels["kubernetes.io/hostname"])
				assert.Equal(t, UsageAgent, n.UsageSource)
				assert.Equal(t, []string{}, n.Conditions)
				assert.True(t, n.Healthy)
				assert.False(t, n.Stale)
				assert.InDelta(t, 0, n.ReportAgeSeconds, 0.001)
				assert.Equal(t, model.SourceUnavailable, n.Sources["gpu"].Status)
				assert.NotNil(t, n.Load)
			},
		},
		{
			name: "node object only, usage from metrics-server",
			in: Inputs{
				Nodes:     []*corev1.Node{kubeNode("n1")},
				NodeUsage: map[string]Usage{"n1": {CPU: 2000, Memory: 8 * gib, Timestamp: t0.Add(-10 * time.Second)}},
			},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Equal(t, int64(8000), n.CPUCapacity, "capacity from the node object")
				assert.Equal(t, 32*gib, n.MemoryCapacity)
				assert.InDelta(t, 25, n.CPUUsageRate, 0.001)
				assert.InDelta(t, 25, n.MemoryUsageRate, 0.001)
				assert.Equal(t, UsageMetricsServer, n.UsageSource)
				assert.Equal(t, t0.Add(-10*time.Second), n.Timestamp)
				assert.Equal(t, model.SourceUnavailable, n.Sources[SourceAgent].Status)
				assert.True(t, n.Healthy)
			},
		},
		{
			name: "node object only, no usage anywhere",
			in:   Inputs{Nodes: []*corev1.Node{kubeNode("n1")}},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Empty(t, n.UsageSource)
				assert.Zero(t, n.CPUUsage)
				assert.True(t, n.Healthy, "a Ready node without agent is healthy")
			},
		},
		{
			name: "standalone: agent only",
			in:   Inputs{Reports: reports(agentReport("n1"))},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Zero(t, n.CPUAllocatable)
				assert.True(t, n.Healthy)
				assert.Equal(t, UsageAgent, n.UsageSource)
			},
		},
		{
			name: "stale after three missed intervals",
			in:   Inputs{Nodes: []*corev1.Node{kubeNode("n1")}, Reports: reports(entry(agentReport("n1"), receivedAgo(46*time.Second)))},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.True(t, n.Stale)
				assert.False(t, n.Healthy)
				assert.InDelta(t, 46, n.ReportAgeSeconds, 0.001)
				assert.Equal(t, int64(2000), n.CPUUsage, "last data is kept")
			},
		},
		{
			name: "not stale at exactly three intervals",
			in:   Inputs{Reports: reports(entry(agentReport("n1"), receivedAgo(45*time.Second)))},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.False(t, n.Stale)
			},
		},
		{
			name: "stale intervals from inputs",
			in:   Inputs{StaleIntervals: 1, Reports: reports(entry(agentReport("n1"), receivedAgo(16*time.Second)))},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.True(t, n.Stale)
			},
		},
		{
			name: "not ready and pressure conditions",
			in: Inputs{Nodes: []*corev1.Node{kubeNode("n1",
				withCondition(corev1.NodeReady, corev1.ConditionUnknown),
				withCondition(corev1.NodeDiskPressure, corev1.ConditionTrue),
				withCondition(corev1.NodePIDPressure, corev1.ConditionTrue))}},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Equal(t, []string{"DiskPressure", ConditionNotReady, "PIDPressure"}, n.Conditions)
				assert.False(t, n.Healthy)
			},
		},
		{
			name: "missing Ready condition counts as not ready",
			in: Inputs{Nodes: []*corev1.Node{func() *corev1.Node {
				n := kubeNode("n1")
				n.Status.Conditions = nil
				return n
			}()}},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Equal(t, []string{ConditionNotReady}, n.Conditions)
				assert.False(t, n.Healthy)
			},
		},
		{
			name: "usage pressure per thresholds",
			in: Inputs{
				Reports:    reports(agentReport("n1", withUsage(50, 93, 40))),
				Thresholds: model.Thresholds{MemoryRate: 95},
			},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.True(t, n.Healthy, "93%% memory is below the 95%% threshold")
			},
		},
		{
			name: "usage pressure with default thresholds",
			in:   Inputs{Reports: reports(agentReport("n1", withUsage(50, 93, 40)))},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.False(t, n.Healthy)
			},
		},
		{
			name: "gpu count from the device plugin without NVML",
			in:   Inputs{Nodes: []*corev1.Node{kubeNode("n1", withGPUResource("4"))}, Reports: reports(agentReport("n1"))},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Equal(t, 4, n.GPUCount)
				assert.Equal(t, 4, n.GPUAllocatable)
			},
		},
		{
			name: "gpu detail from NVML wins",
			in:   Inputs{Nodes: []*corev1.Node{kubeNode("n1", withGPUResource("4"))}, Reports: reports(agentReport("n1", withGPUs(2)))},
			check: func(t *testing.T, n *model.NodeMetrics) {
				assert.Equal(t, 2, n.GPUCount)
				assert.Len(t, n.GPUs, 2)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = t0
			s := Build(tt.in)
			require.Contains(t, s.NodeMetrics, "n1")
			n := s.NodeMetrics["n1"]
			assert.Equal(t, "n1", n.NodeName)
			tt.check(t, n)
		})
	}
}

func TestBuildNodesUnion(t *testing.T) {
	s := Build(Inputs{
		Now:     t0,
		Nodes:   []*corev1.Node{kubeNode("a"), kubeNode("b"), nil},
		Reports: reports(agentReport("b"), agentReport("c")),
	})
	assert.Len(t, s.NodeMetrics, 3)
	assert.Equal(t, UsageAgent, s.NodeMetrics["b"].UsageSource)
	assert.Equal(t, UsageAgent, s.NodeMetrics["c"].UsageSource)
	assert.Empty(t, s.NodeMetrics["a"].UsageSource)
}

func TestBuildPods(t *testing.T) {
	tests := []struct {
		name  string
		in    Inputs
		check func(t *testing.T, p *model.PodMetrics)
	}{
		{
			name: "spec, status and metrics-server usage",
			in: Inputs{
				Pods: []*corev1.Pod{kubePod("default", "web", "n1")},
				PodUsage: map[string]Usage{"default/web": {CPU: 100, Memory: 256 * mib, Timestamp: t0.Add(-5 * time.Second),
					Containers: map[string]ContainerUsage{"app": {CPU: 100, Memory: 256 * mib}}}},
				Reports: reports(agentReport("n1", withKubeletPod("default", "web", 999, 999))),
			},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Equal(t, "n1", p.NodeName)
				assert.Equal(t, int64(250), p.CPURequest)
				assert.Equal(t, int64(500), p.CPULimit)
				assert.Equal(t, 256*mib, p.MemoryRequest)
				assert.Equal(t, 512*mib, p.MemoryLimit)
				assert.Equal(t, int64(100), p.CPUUsage)
				assert.InDelta(t, 20, p.CPUUsageRate, 0.001)
				assert.InDelta(t, 50, p.MemoryUsageRate, 0.001)
				assert.Equal(t, UsageMetricsServer, p.UsageSource)
				assert.Equal(t, t0.Add(-5*time.Second), p.Timestamp)
				assert.Equal(t, "Running", p.Phase)
				assert.True(t, p.Ready)
				assert.Equal(t, "ReplicaSet", p.OwnerKind)
				assert.Equal(t, "web-rs", p.OwnerName)
				assert.Equal(t, "uid-default-web", p.UID)
				require.Len(t, p.Containers, 1)
				assert.Equal(t, int64(100), p.Containers[0].CPUUsage)
				assert.Equal(t, "running", p.Containers[0].State)
				// Kubelet-only detail still comes from the report.
				assert.Equal(t, 3*mib, p.EphemeralStorageUsage)
				assert.InDelta(t, 1000, p.NetworkRxBytesPerSec, 0.001)
				require.Len(t, p.Volumes, 1)
				assert.Equal(t, "web-data", p.Volumes[0].PVCName)
			},
		},
		{
			name: "kubelet fallback without metrics-server",
			in: Inputs{
				Pods:    []*corev1.Pod{kubePod("default", "web", "n1")},
				Reports: reports(agentReport("n1", withKubeletPod("default", "web", 400, 500*mib))),
			},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Equal(t, UsageKubelet, p.UsageSource)
				assert.Equal(t, int64(400), p.CPUUsage)
				assert.InDelta(t, 80, p.CPUUsageRate, 0.001)
				assert.Equal(t, int64(400), p.Containers[0].CPUUsage)
				assert.Equal(t, 500*mib, p.Containers[0].MemoryUsage)
			},
		},
		{
			name: "kubelet stats of an earlier pod with the same name are ignored",
			in: Inputs{
				Pods:    []*corev1.Pod{kubePod("default", "web", "n1", func(p *corev1.Pod) { p.UID = "new" })},
				Reports: reports(agentReport("n1", withKubeletPod("default", "web", 400, 500*mib))),
			},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Empty(t, p.UsageSource)
				assert.Zero(t, p.CPUUsage)
				assert.Zero(t, p.EphemeralStorageUsage)
			},
		},
		{
			name: "no usage anywhere",
			in:   Inputs{Pods: []*corev1.Pod{kubePod("default", "web", "")}},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Empty(t, p.UsageSource)
				assert.Equal(t, t0, p.Timestamp)
			},
		},
		{
			name: "restarts and last termination",
			in:   Inputs{Pods: []*corev1.Pod{kubePod("default", "web", "n1", withRestarts(12, "OOMKilled", t0.Add(-time.Minute)))}},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Equal(t, int32(12), p.Restarts)
				assert.False(t, p.Ready)
				c := p.Containers[0]
				assert.Equal(t, "waiting", c.State)
				assert.Equal(t, "CrashLoopBackOff", c.Reason)
				assert.Equal(t, "OOMKilled", c.LastTerminationReason)
				assert.Equal(t, int32(137), c.LastExitCode)
			},
		},
		{
			name: "requests and limits summed over containers",
			in: Inputs{Pods: []*corev1.Pod{kubePod("default", "web", "n1", func(p *corev1.Pod) {
				p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
				p.Spec.Containers[1].Name = "sidecar"
			})}},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Equal(t, int64(500), p.CPURequest)
				assert.Equal(t, int64(1000), p.CPULimit)
				assert.Equal(t, gib, p.MemoryLimit)
				require.Len(t, p.Containers, 2)
				assert.Empty(t, p.Containers[1].State, "no status for sidecar yet")
			},
		},
		{
			name: "gpu device ids from pod-resources",
			in: Inputs{
				Pods:    []*corev1.Pod{kubePod("ml", "train", "g1", withGPURequest("2"))},
				Reports: reports(agentReport("g1", withGPUs(3, "ml/train", "ml/train"))),
			},
			check: func(t *testing.T, p *model.PodMetrics) {
				assert.Equal(t, []string{"GPU-g1-0", "GPU-g1-1"}, p.GPUs)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = t0
			if tt.in.Nodes == nil {
				tt.in.Nodes = []*corev1.Node{}
			}
			s := Build(tt.in)
			require.Len(t, s.PodMetrics, 1)
			for key, p := range s.PodMetrics {
				assert.Equal(t, p.Key(), key)
				tt.check(t, p)
			}
		})
	}
}

func TestBuildStandalonePods(t *testing.T) {
	moved := agentReport("n2", withKubeletPod("default", "web", 300, 100*mib))
	moved.ReceivedAt = t0.Add(-time.Second)
	s := Build(Inputs{
		Now: t0,
		Reports: reports(
			agentReport("n1", withKubeletPod("default", "web", 100, 200*mib), withKubeletPod("kube-system", "dns", 5, 20*mib)),
			moved,
		),
	})
	require.Len(t, s.PodMetrics, 2)
	web := s.PodMetrics["default/web"]
	assert.Equal(t, "n1", web.NodeName, "the fresher report wins")
	assert.Equal(t, int64(100), web.CPUUsage)
	assert.Equal(t, "Running", web.Phase)
	assert.Equal(t, UsageKubelet, web.UsageSource)
	assert.Zero(t, web.CPULimit)
	assert.Equal(t, 2, s.ClusterMetrics.RunningPods)
}

func TestBuildCluster(t *testing.T) {
	in := Inputs{
		Now: t0,
		Nodes: []*corev1.Node{
			kubeNode("n1"),
			kubeNode("g1", withGPUResource("4")),
			kubeNode("g2", withGPUResource("8")),
		},
		Reports: reports(
			agentReport("n1"),
			agentReport("g1", withGPUs(4, "ml/a", "", "ml/b")),
		),
		Pods: []*corev1.Pod{
			kubePod("default", "web", "n1"),
			kubePod("default", "job", "n1", withPhase(corev1.PodSucceeded)),
			kubePod("ml", "a", "g1", withGPURequest("1")),
			kubePod("ml", "b", "g1", withGPURequest("1")),
			kubePod("ml", "c", "g2", withGPURequest("3")),
			kubePod("ml", "done", "g2", withGPURequest("2"), withPhase(corev1.PodSucceeded)),
			kubePod("ml", "pending", "", withGPURequest("1"), withPhase(corev1.PodPending)),
		},
		NodeUsage: map[string]Usage{"g2": {CPU: 4000, Memory: 8 * gib}},
		VMs: []*model.VMMetrics{
			{Name: "vm1", Status: "Running", CPU: 2, Memory: "4Gi"},
			{Name: "vm2", Status: "Running", Detail: &model.VMDetail{AllocatedCPU: 500, AllocatedMemory: gib}},
			{Name: "vm3", Status: "Stopped", CPU: 8, Memory: "16Gi"},
		},
		Sources: map[string]model.SourceStatus{"metrics-server": {Name: "metrics-server", Status: model.SourceOK}},
	}
	c := Build(in).ClusterMetrics
	assert.Equal(t, t0, c.Timestamp)
	assert.Equal(t, 3, c.TotalNodes)
	assert.Equal(t, 3, c.HealthyNodes)
	assert.Equal(t, 7, c.TotalPods)
	assert.Equal(t, 4, c.RunningPods)
	assert.Equal(t, map[string]int{"Running": 4, "Succeeded": 2, "Pending": 1}, c.PodsByPhase)
	assert.Equal(t, int64(24000), c.TotalCPU)
	assert.Equal(t, int64(2000+2000+4000), c.UsedCPU)
	assert.InDelta(t, 100.0/3, c.CPUUsageRate, 0.001)
	assert.Equal(t, 96*gib, c.TotalMemory)
	assert.Equal(t, 16*gib+16*gib+8*gib, c.UsedMemory)
	// g1: NVML, 4 GPUs, 2 held. g2: allocatable 8 minus 3 requested by a
	// running pod (the succeeded one no longer holds its 2).
	assert.Equal(t, 12, c.TotalGPUs)
	assert.Equal(t, 2+5, c.AvailableGPUs)
	assert.Equal(t, 3, c.TotalVMs)
	assert.Equal(t, 2, c.RunningVMs)
	assert.Equal(t, int64(2500), c.VMAllocatedCPU)
	assert.Equal(t, 5*gib, c.VMAllocatedMemory)
	assert.Equal(t, in.Sources, c.Sources)
	assert.Equal(t, model.HealthHealthy, c.HealthStatus)
	assert.Empty(t, c.Issues)
}

func TestHealth(t *testing.T) {
	healthyNodes := func(n int) []*corev1.Node {
		var out []*corev1.Node
		for i := 0; i < n; i++ {
			out = append(out, kubeNode(string(rune('a'+i))))
		}
		return out
	}
	tests := []struct {
		name   string
		in     Inputs
		status string
		issues []string
	}{
		{
			name:   "all well",
			in:     Inputs{Nodes: healthyNodes(3), Pods: []*corev1.Pod{kubePod("default", "web", "a")}},
			status: model.HealthHealthy,
			issues: []string{},
		},
		{
			name:   "no nodes",
			in:     Inputs{Nodes: []*corev1.Node{}},
			status: model.HealthCritical,
			issues: []string{"no nodes known: no Node objects and no agent reports"},
		},
		{
			name:   "no healthy node",
			in:     Inputs{Nodes: []*corev1.Node{kubeNode("a", withCondition(corev1.NodeReady, corev1.ConditionFalse))}},
			status: model.HealthCritical,
			issues: []string{"no healthy node: all 1 nodes are unhealthy", "node a is not ready"},
		},
		{
			name: "half the nodes unhealthy",
			in: Inputs{Nodes: append(healthyNodes(2),
				kubeNode("x", withCondition(corev1.NodeReady, corev1.ConditionFalse)),
				kubeNode("y", withCondition(corev1.NodeMemoryPressure, corev1.ConditionTrue)))},
			status: model.HealthCritical,
			issues: []string{
				"2 of 4 nodes are unhealthy (50%, critical at 50%)",
				"node x is not ready",
				"node y is under pressure: condition MemoryPressure",
			},
		},
		{
			name: "one node under usage pressure",
			in: Inputs{
				Nodes:   healthyNodes(3),
				Reports: reports(agentReport("gpu-1", withUsage(40, 93.1, 40))),
			},
			status: model.HealthWarning,
			issues: []string{"node gpu-1 is under pressure: memory usage 93.1% >= 90.0%"},
		},
		{
			name: "stale node",
			in: Inputs{
				Nodes:   healthyNodes(3),
				Reports: reports(entry(agentReport("a"), receivedAgo(95*time.Second))),
			},
			status: model.HealthWarning,
			issues: []string{"node a is stale: last agent report 95s ago, expected every 15s"},
		},
		{
			name: "crash-looping pod",
			in: Inputs{
				Nodes: healthyNodes(3),
				Pods:  []*corev1.Pod{kubePod("default", "web-7", "a", withRestarts(12, "OOMKilled", t0.Add(-time.Hour)))},
			},
			status: model.HealthWarning,
			issues: []string{"pod default/web-7 is restarting: 12 restarts, last terminated OOMKilled, container app in CrashLoopBackOff"},
		},
		{
			name: "pod that restarted long ago and runs again is not an issue",
			in: Inputs{
				Nodes: healthyNodes(3),
				Pods: []*corev1.Pod{kubePod("default", "web", "a", withRestarts(3, "Error", t0.Add(-2*time.Hour)), func(p *corev1.Pod) {
					p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
				})},
			},
			status: model.HealthHealthy,
			issues: []string{},
		},
		{
			name: "recently restarted pod near its memory limit",
			in: Inputs{
				Nodes: healthyNodes(3),
				Pods: []*corev1.Pod{kubePod("default", "web", "a", withRestarts(1, "OOMKilled", t0.Add(-time.Minute)), func(p *corev1.Pod) {
					p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
				})},
				PodUsage: map[string]Usage{"default/web": {CPU: 10, Memory: 500 * mib}},
			},
			status: model.HealthWarning,
			issues: []string{"pod default/web is restarting: 1 restarts, last terminated OOMKilled, memory at 97.7% of its limit"},
		},
		{
			name: "failed pod and image pull error",
			in: Inputs{
				Nodes: healthyNodes(3),
				Pods: []*corev1.Pod{
					kubePod("batch", "job-1", "a", withPhase(corev1.PodFailed), func(p *corev1.Pod) { p.Status.Reason = "Evicted" }),
					kubePod("default", "api", "a", func(p *corev1.Pod) {
						p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}
					}),
				},
			},
			status: model.HealthWarning,
			issues: []string{"pod batch/job-1 failed: Evicted", "pod default/api cannot start: container app is ImagePullBackOff"},
		},
		{
			name: "cluster cpu high",
			in: Inputs{
				Nodes:   []*corev1.Node{kubeNode("a"), kubeNode("b")},
				Reports: reports(agentReport("a", withUsage(85, 50, 40)), agentReport("b", withUsage(85, 50, 40))),
			},
			status: model.HealthWarning,
			issues: []string{"cluster cpu usage 85.0% >= 80.0%"},
		},
		{
			name: "cluster memory critical",
			in: Inputs{
				Reports:    reports(agentReport("a", withUsage(10, 96, 40)), agentReport("b", withUsage(10, 96, 40)), agentReport("c", withUsage(10, 96, 40))),
				Thresholds: model.Thresholds{MemoryRate: 99},
			},
			status: model.HealthCritical,
			issues: []string{"cluster memory usage 96.0% >= 95.0%"},
		},
		{
			name: "failing aggregator source and hot GPU",
			in: Inputs{
				Nodes: healthyNodes(2),
				Reports: reports(agentReport("a", withGPUs(1), func(r *model.NodeReport) {
					r.Node.GPUs[0].TemperatureC = 91
					r.Node.GPUs[0].ECCUncorrected = ptr(uint64(2))
				})),
				Sources: map[string]model.SourceStatus{"metrics-server": {Name: "metrics-server", Status: model.SourceFailed, Reason: "the server is currently unable to handle the request"}},
			},
			status: model.HealthWarning,
			issues: []string{
				"source metrics-server failed: the server is currently unable to handle the request",
				"node a gpu 0 (NVIDIA A100-SXM4-40GB) has 2 uncorrected ECC errors",
				"node a gpu 0 (NVIDIA A100-SXM4-40GB) is hot: 91°C >= 85°C",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = t0
			c := Build(tt.in).ClusterMetrics
			assert.Equal(t, tt.status, c.HealthStatus)
			assert.Equal(t, tt.issues, c.Issues)
		})
	}
}

func TestHealthIssuesCapped(t *testing.T) {
	var nodes []*corev1.Node
	for i := 0; i < 120; i++ {
		nodes = append(nodes, kubeNode(nodeName(i), withCondition(corev1.NodeReady, corev1.ConditionFalse)))
	}
	nodes = append(nodes, kubeNode("zz-ok"))
	c := Build(Inputs{Now: t0, Nodes: nodes}).ClusterMetrics
	require.Len(t, c.Issues, 1+MaxIssuesPerKind+1)
	assert.Equal(t, "120 of 121 nodes are unhealthy (99%, critical at 50%)", c.Issues[0])
	assert.Equal(t, "node node-00000 is not ready", c.Issues[1])
	assert.Equal(t, "70 more node issues not listed", c.Issues[len(c.Issues)-1])
}

func TestBuildDoesNotModifyInputs(t *testing.T) {
	in := goldenInputs()
	before, err := json.Marshal(in)
	require.NoError(t, err)
	first := Build(in)
	after, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, string(before), string(after))

	// Equal inputs give equal snapshots.
	second := Build(goldenInputs())
	assert.True(t, reflect.DeepEqual(first, second))
}

func TestBuildGolden(t *testing.T) {
	got, err := json.MarshalIndent(Build(goldenInputs()), "", "  ")
	require.NoError(t, err)
	path := filepath.Join("testdata", "build.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, append(got, '\n'), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./aggregator/state -update to create it")
	assert.JSONEq(t, string(want), string(got))
}

// goldenInputs is a small mixed cluster: a GPU node with an agent, a CPU
// node under memory pressure, a node without agent (metrics-server usage),
// a stale agent, and an agent without Node object.
func goldenInputs() Inputs {
	return Inputs{
		Now: t0,
		Nodes: []*corev1.Node{
			kubeNode("gpu-1", withGPUResource("2"), withTaint("nvidia.com/gpu", "present", corev1.TaintEffectNoSchedule)),
			kubeNode("cpu-1"),
			kubeNode("cpu-2"),
			kubeNode("old-1"),
		},
		Reports: reports(
			agentReport("gpu-1", withGPUs(2, "ml/train"), withKubeletPod("ml", "train", 3000, 20*gib)),
			agentReport("cpu-1", withUsage(60, 93.1, 50), withKubeletPod("default", "web-7", 450, 500*mib)),
			entry(agentReport("old-1"), receivedAgo(2*time.Minute)),
			agentReport("edge-1"),
		),
		Pods: []*corev1.Pod{
			kubePod("ml", "train", "gpu-1", withGPURequest("1")),
			kubePod("default", "web-7", "cpu-1", withRestarts(12, "OOMKilled", t0.Add(-3*time.Minute))),
			kubePod("default", "api", "cpu-2"),
			kubePod("default", "pending", "", withPhase(corev1.PodPending)),
		},
		PodUsage: map[string]Usage{
			"default/api": {CPU: 120, Memory: 300 * mib, Timestamp: t0.Add(-10 * time.Second),
				Containers: map[string]ContainerUsage{"app": {CPU: 120, Memory: 300 * mib}}},
		},
		NodeUsage: map[string]Usage{"cpu-2": {CPU: 1000, Memory: 4 * gib, Timestamp: t0.Add(-10 * time.Second)}},
		Sources: map[string]model.SourceStatus{
			"nodes":          {Name: "nodes", Status: model.SourceOK},
			"metrics-server": {Name: "metrics-server", Status: model.SourceOK, DurationMs: 12},
		},
		VMs: []*model.VMMetrics{{ID: "uid-vm", Name: "vm-1", Namespace: "vms", Status: "Running", CPU: 2, Memory: "4Gi", Node: "cpu-2"}},
	}
}

// TestBuildAtScale builds 16 000 pods with restarting pods spread over
// them and GPU nodes known only from the device plugin, and checks the
// GPU sums, the capped issue list and determinism.
func TestBuildAtScale(t *testing.T) {
	in := benchInputs(544)
	restarting := 0
	for i := 0; i < len(in.Pods); i += 200 {
		withRestarts(3, "Error", t0.Add(-time.Minute))(in.Pods[i])
		restarting++
	}
	require.Greater(t, restarting, MaxIssuesPerKind)
	// One GPU pod per GPU node, on the nodes without NVML detail.
	for name, e := range in.Reports {
		if len(e.Report.Node.GPUs) > 0 {
			r := *e.Report
			r.Node.GPUs = nil
			in.Reports[name] = ReportEntry{Report: &r, ReceivedAt: e.ReceivedAt}
			in.Pods = append(in.Pods, kubePod("gpu", "job-"+name, name, withGPURequest("3")))
		}
	}
	first := Build(in)
	c := first.ClusterMetrics
	gpuNodes := (len(in.Nodes) + 9) / 10
	assert.Equal(t, 8*gpuNodes, c.TotalGPUs)
	assert.Equal(t, 5*gpuNodes, c.AvailableGPUs)
	listed := 0
	for _, is := range c.Issues {
		if strings.Contains(is, "is restarting") {
			listed++
		}
	}
	assert.Equal(t, MaxIssuesPerKind, listed)
	assert.Equal(t, fmt.Sprintf("%d more pod issues not listed", restarting-MaxIssuesPerKind), c.Issues[len(c.Issues)-1])
	assert.True(t, reflect.DeepEqual(first, Build(in)), "the same inputs give the same snapshot")
}

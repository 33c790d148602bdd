package state

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// t0 is the fixtures' "now".
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
)

func ptr[T any](v T) *T { return &v }

type nodeOpt func(*corev1.Node)

// kubeNode is a Ready node with 8 CPUs and 32 GiB.
func kubeNode(name string, opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("8"),
				corev1.ResourceMemory: resource.MustParse("32Gi"),
			},
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("7800m"),
				corev1.ResourceMemory: resource.MustParse("31Gi"),
			},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
				{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse},
			},
		},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func withCondition(t corev1.NodeConditionType, s corev1.ConditionStatus) nodeOpt {
	return func(n *corev1.Node) {
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == t {
				n.Status.Conditions[i].Status = s
				return
			}
		}
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: t, Status: s})
	}
}

func withGPUResource(count string) nodeOpt {
	return func(n *corev1.Node) {
		n.Status.Capacity[ResourceGPU] = resource.MustParse(count)
		n.Status.Allocatable[ResourceGPU] = resource.MustParse(count)
	}
}

func withTaint(key, value string, effect corev1.TaintEffect) nodeOpt {
	return func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	}
}

type podOpt func(*corev1.Pod)

// kubePod is a Running, Ready pod with one container "app" requesting
// 250m/256Mi and limited to 500m/512Mi.
func kubePod(ns, name, node string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name),
			Labels: map[string]string{"app": name},
			OwnerReferences: []metav1.OwnerReference{
				{Kind: "ReplicaSet", Name: name + "-rs", Controller: ptr(true)},
			},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "app",
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
			}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			StartTime:  &metav1.Time{Time: t0.Add(-time.Hour)},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "app", Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withPhase(phase corev1.PodPhase) podOpt {
	return func(p *corev1.Pod) { p.Status.Phase = phase }
}

// withRestarts makes container "app" crash-looping after restarts runs, the
// last ended by reason at finished.
func withRestarts(restarts int32, reason string, finished time.Time) podOpt {
	return func(p *corev1.Pod) {
		st := &p.Status.ContainerStatuses[0]
		st.RestartCount = restarts
		st.Ready = false
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
		st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Reason: reason, ExitCode: 137, FinishedAt: metav1.Time{Time: finished},
		}}
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
}

func withGPURequest(n string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Limits[ResourceGPU] = resource.MustParse(n)
	}
}

type reportOpt func(*model.NodeReport)

// agentReport is a fresh report of an 8-CPU, 32 GiB node at 25% CPU,
// 50% memory, 40% disk, received at t0 with a 15 s interval.
func agentReport(name string, opts ...reportOpt) ReportEntry {
	r := &model.NodeReport{
		NodeName: name, Timestamp: t0.Add(-2 * time.Second), AgentVersion: "test", IntervalSeconds: 15,
		Node: model.NodeMetrics{
			NodeName: name, Timestamp: t0.Add(-2 * time.Second),
			CPUCapacity: 8000, CPUUsage: 2000, CPUUsageRate: 25,
			MemoryCapacity: 32 * gib, MemoryUsage: 16 * gib, MemoryUsageRate: 50,
			DiskCapacity: 100 * gib, DiskUsage: 40 * gib, DiskUsageRate: 40,
			GPUModels: []string{}, GPUUsage: []float64{}, GPUMemoryTotal: []int64{}, GPUMemoryUsed: []int64{},
			Conditions: []string{},
			Load:       &model.LoadAverage{Load1: 1.5, Load5: 1.2, Load15: 1},
		},
		Sources: []model.SourceStatus{
			{Name: "cpu", Status: model.SourceOK, DurationMs: 1},
			{Name: "gpu", Status: model.SourceUnavailable, Reason: "libnvidia-ml.so.1 not found"},
		},
	}
	for _, o := range opts {
		o(r)
	}
	return ReportEntry{Report: r, ReceivedAt: t0}
}

func receivedAgo(d time.Duration) func(*ReportEntry) {
	return func(e *ReportEntry) { e.ReceivedAt = t0.Add(-d) }
}

func withUsage(cpuRate, memRate, diskRate float64) reportOpt {
	return func(r *model.NodeReport) {
		n := &r.Node
		n.CPUUsageRate, n.CPUUsage = cpuRate, int64(cpuRate/100*float64(n.CPUCapacity))
		n.MemoryUsageRate, n.MemoryUsage = memRate, int64(memRate/100*float64(n.MemoryCapacity))
		n.DiskUsageRate, n.DiskUsage = diskRate, int64(diskRate/100*float64(n.DiskCapacity))
	}
}

// withGPUs adds count A100s; holders[i] (namespace/pod) holds GPU i.
func withGPUs(count int, holders ...string) reportOpt {
	return func(r *model.NodeReport) {
		n := &r.Node
		n.GPUCount = count
		for i := 0; i < count; i++ {
			g := model.GPUMetrics{
				Index: i, UUID: fmt.Sprintf("GPU-%s-%d", r.NodeName, i), Model: "NVIDIA A100-SXM4-40GB",
				UtilizationRate: 50, MemoryTotal: 40 * gib, MemoryUsed: 10 * gib, MemoryUsageRate: 25, TemperatureC: 60,
			}
			if i < len(holders) && holders[i] != "" {
				ns, pod, _ := strings.Cut(holders[i], "/")
				g.Pods = []model.GPUPodRef{{Namespace: ns, Pod: pod, Container: "app", DeviceID: g.UUID}}
			}
			n.GPUs = append(n.GPUs, g)
			n.GPUModels = append(n.GPUModels, g.Model)
			n.GPUUsage = append(n.GPUUsage, g.UtilizationRate)
			n.GPUMemoryTotal = append(n.GPUMemoryTotal, g.MemoryTotal)
			n.GPUMemoryUsed = append(n.GPUMemoryUsed, g.MemoryUsed)
		}
	}
}

// withKubeletPod adds kubelet stats for a pod with one container "app".
func withKubeletPod(ns, name string, cpu, mem int64) reportOpt {
	return func(r *model.NodeReport) {
		if r.Kubelet == nil {
			r.Kubelet = &model.KubeletStats{}
		}
		r.Kubelet.Pods = append(r.Kubelet.Pods, model.PodStats{
			Namespace: ns, Name: name, UID: "uid-" + ns + "-" + name, StartTime: t0.Add(-time.Hour),
			CPUUsage: cpu, MemoryWorkingSet: mem, EphemeralStorageUsage: 3 * mib,
			NetworkRxBytesPerSec: 1000, NetworkTxBytesPerSec: 500,
			Containers: []model.ContainerStats{{Name: "app", CPUUsage: cpu, MemoryWorkingSet: mem}},
			Volumes: []model.VolumeStats{{
				Name: "data", PVCNamespace: ns, PVCName: name + "-data",
				CapacityBytes: ptr(10 * gib), UsedBytes: ptr(2 * gib), AvailableBytes: ptr(8 * gib),
			}},
		})
	}
}

func entry(e ReportEntry, opts ...func(*ReportEntry)) ReportEntry {
	for _, o := range opts {
		o(&e)
	}
	return e
}

func reports(entries ...ReportEntry) map[string]ReportEntry {
	out := make(map[string]ReportEntry, len(entries))
	for _, e := range entries {
		out[e.Report.NodeName] = e
	}
	return out
}

func nodeName(i int) string { return fmt.Sprintf("node-%05d", i) }

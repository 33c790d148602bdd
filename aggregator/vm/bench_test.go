package vm

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const benchNodes = 100

// benchInputs builds a cluster of nPods pods on 100 nodes, nVMs of them
// virt-launchers of running VMs with two PVCs each. Even VMs have
// metrics-server numbers, odd ones only kubelet stats; every pod has
// kubelet stats, as the agents report them.
func benchInputs(nVMs, nPods int) ([]Object, []*corev1.Pod, map[string]state.Usage, map[string]state.ReportEntry) {
	objs := make([]Object, 0, nVMs)
	pods := make([]*corev1.Pod, 0, nPods)
	usage := make(map[string]state.Usage, nPods)
	nodePods := make([][]model.PodStats, benchNodes)
	capacity, used := 20*gib, 5*gib
	for i := range nVMs {
		ns, name, uid := fmt.Sprintf("ns-%d", i%10), benchName(i), fmt.Sprintf("uid-%d", i)
		node := fmt.Sprintf("node-%03d", i%benchNodes)
		objs = append(objs, Object{
			Source: SourceKubeVirt, UID: uid, Namespace: ns, Name: name, VMName: name,
			CPU: 4000, Memory: 8 * gib, MemoryQuantity: "8Gi", Phase: PhaseRunning, Node: node,
			Interfaces: []Interface{{Name: "default", IP: fmt.Sprintf("10.0.%d.%d", i/250, i%250)}},
			PVCs:       []PVC{{Name: name + "-root"}, {Name: name + "-data"}},
		})
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: LauncherPrefix + name + "-abcde", UID: types.UID("pod-" + uid),
				Labels:          map[string]string{"kubevirt.io": "virt-launcher", LabelCreatedBy: uid, "vm.kubevirt.io/name": name},
				Annotations:     map[string]string{AnnotationDomain: name},
				OwnerReferences: []metav1.OwnerReference{{Kind: KindVMI, Name: name, UID: types.UID(uid)}},
			},
			Spec:   corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		pods = append(pods, p)
		if i%2 == 0 {
			usage[key(ns, p.Name)] = state.Usage{CPU: 1000, Memory: 2 * gib}
		}
		nodePods[i%benchNodes] = append(nodePods[i%benchNodes], model.PodStats{
			Namespace: ns, Name: p.Name, UID: string(p.UID), CPUUsage: 900, MemoryWorkingSet: 3 * gib,
			Volumes: []model.VolumeStats{
				{Name: "root", PVCNamespace: ns, PVCName: name + "-root", CapacityBytes: &capacity, UsedBytes: &used},
				{Name: "data", PVCNamespace: ns, PVCName: name + "-data", CapacityBytes: &capacity},
			},
		})
	}
	for i := nVMs; i < nPods; i++ {
		ns, name := fmt.Sprintf("app-%d", i%50), fmt.Sprintf("web-%d-7d9f8c6b5-x%04d", i/100, i%10000)
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: name, UID: types.UID(fmt.Sprintf("pod-%d", i)),
				Labels:          map[string]string{"app": "web", "pod-template-hash": "7d9f8c6b5"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web", UID: "rs"}},
			},
			Spec:   corev1.PodSpec{NodeName: fmt.Sprintf("node-%03d", i%benchNodes)},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
		pods = append(pods, p)
		usage[key(ns, name)] = state.Usage{CPU: 10, Memory: 64 << 20}
		nodePods[i%benchNodes] = append(nodePods[i%benchNodes], model.PodStats{
			Namespace: ns, Name: name, CPUUsage: 10, MemoryWorkingSet: 64 << 20,
			Volumes: []model.VolumeStats{{Name: "kube-api-access", CapacityBytes: &capacity, UsedBytes: &used}},
		})
	}
	reports := make(map[string]state.ReportEntry, benchNodes)
	for n := range benchNodes {
		node := fmt.Sprintf("node-%03d", n)
		reports[node] = state.ReportEntry{ReceivedAt: testNow, Report: &model.NodeReport{
			NodeName: node, Timestamp: testNow.Add(-time.Second), Kubelet: &model.KubeletStats{Pods: nodePods[n]},
		}}
	}
	return objs, pods, usage, reports
}

// BenchmarkCompute is one snapshot's VM work at scale: 1,000 VMs among
// 30,000 pods on 100 nodes.
func BenchmarkCompute(b *testing.B) {
	objs, pods, usage, reports := benchInputs(1000, 30000)
	b.ReportAllocs()
	for b.Loop() {
		vms := Compute(objs, pods, usage, reports, testNow)
		if len(vms) != 1000 || vms[0].Metrics == nil {
			b.Fatal("unexpected result")
		}
	}
}

func BenchmarkDiff(b *testing.B) {
	prev := benchVMs(1000)
	next := benchVMs(1000)
	for i := 0; i < len(next); i += 10 {
		next[i].Node = "elsewhere"
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(Diff(prev, next, testNow)) != 100 {
			b.Fatal("unexpected events")
		}
	}
}

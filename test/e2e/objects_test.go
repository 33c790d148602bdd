//go:build e2e

package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeSpec is a simulated node: its Node object and its kubelet's port.
type nodeSpec struct {
	name        string
	labels      map[string]string
	cpu, memory string // capacity
	allocCPU    string
	allocMemory string
}

// createNode creates the Node and sets its status as a kubelet would:
// capacity, allocatable, Ready, InternalIP 127.0.0.1 and the kubelet port.
func (cp *controlPlane) createNode(t *testing.T, n nodeSpec, kubeletPort int) *corev1.Node {
	t.Helper()
	ctx := context.Background()
	obj, err := cp.client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: n.labels},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	now := metav1.NewTime(time.Now())
	obj.Status = corev1.NodeStatus{
		Capacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(n.cpu), corev1.ResourceMemory: resource.MustParse(n.memory),
			corev1.ResourcePods: resource.MustParse("110"),
		},
		Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(n.allocCPU), corev1.ResourceMemory: resource.MustParse(n.allocMemory),
			corev1.ResourcePods: resource.MustParse("110"),
		},
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: n.name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(kubeletPort)}},
		NodeInfo:        corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64"},
	}
	obj, err = cp.client.CoreV1().Nodes().UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	require.NoError(t, err)
	// The API server's admission taints a new node not-ready; the node
	// lifecycle controller (absent here) lifts the taint once the node
	// reports Ready.
	obj.Spec.Taints = slices.DeleteFunc(obj.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
	obj, err = cp.client.CoreV1().Nodes().Update(ctx, obj, metav1.UpdateOptions{})
	require.NoError(t, err)
	return obj
}

// podSpec is a simulated pod with one container.
type podSpec struct {
	namespace, name, node string
	labels                map[string]string
	cpuRequest, cpuLimit  string
	memRequest, memLimit  string
	restarts              int32
	volumes               []corev1.Volume
	serviceAccount        string // "" = default
}

// createPod creates the pod bound to its node and sets it Running, ready,
// with its restart count, through the status subresource.
func (cp *controlPlane) createPod(t *testing.T, p podSpec) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, q := range []struct {
		list corev1.ResourceList
		name corev1.ResourceName
		v    string
	}{{res.Requests, corev1.ResourceCPU, p.cpuRequest}, {res.Limits, corev1.ResourceCPU, p.cpuLimit},
		{res.Requests, corev1.ResourceMemory, p.memRequest}, {res.Limits, corev1.ResourceMemory, p.memLimit}} {
		if q.v != "" {
			q.list[q.name] = resource.MustParse(q.v)
		}
	}
	obj, err := cp.client.CoreV1().Pods(p.namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.namespace, Labels: p.labels},
		Spec: corev1.PodSpec{
			NodeName:                     p.node,
			ServiceAccountName:           p.serviceAccount,
			AutomountServiceAccountToken: new(bool),
			Containers:                   []corev1.Container{{Name: "app", Image: "registry.example/app:1", Resources: res}},
			Volumes:                      p.volumes,
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	started := metav1.NewTime(time.Now().Add(-10 * time.Minute).Truncate(time.Second))
	obj.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "127.0.0.1",
		PodIP:     "10.244.0.10",
		StartTime: &started,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: started},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Ready: true, RestartCount: p.restarts, Image: "registry.example/app:1",
			ImageID: "registry.example/app@sha256:0000", ContainerID: "containerd://" + p.name,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}},
	}
	obj, err = cp.client.CoreV1().Pods(p.namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	require.NoError(t, err)
	return obj
}

package kube

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/vm"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var transformNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fullNode is a Node as a kubelet registers it, with what the cache drops.
func fullNode(name string, opts ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, UID: "uid-" + "node-" + "x", ResourceVersion: "42",
			Labels:        map[string]string{"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "zone-a"},
			Annotations:   map[string]string{"node.alpha.kubernetes.io/ttl": "0", "csi.volume.kubernetes.io/nodeid": `{"ebs":"i-1"}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}},
		},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24", ProviderID: "aws:///zone-a/i-1"},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
				"nvidia.com/gpu": resource.MustParse("2")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("7800m"), corev1.ResourceMemory: resource.MustParse("31Gi"),
				"nvidia.com/gpu": resource.MustParse("2")},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"},
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
				{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse},
			},
			Addresses:    []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
			NodeInfo:     corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Ubuntu 24.04"},
			VolumesInUse: []corev1.UniqueVolumeName{"kubernetes.io/csi/ebs^vol-1"},
		},
	}
	for i := range 40 {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{
			Names: []string{fmt.Sprintf("registry.example/image-%02d@sha256:%064x", i, i)}, SizeBytes: 100 << 20,
		})
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// fullPod is a Deployment's pod as the API server serves it, with env,
// probes, the projected token volume, tolerations and managedFields.
func fullPod(ns, name, node string, opts ...func(*corev1.Pod)) *corev1.Pod {
	yes := true
	started := metav1.NewTime(transformNow.Add(-time.Hour))
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, UID: "uid-" + "pod-" + "x", ResourceVersion: "7",
			Labels:          map[string]string{"app": name, "pod-template-hash": "abc"},
			Annotations:     map[string]string{"prometheus.io/scrape": "true", corev1.LastAppliedConfigAnnotation: `{"big":"blob"}`},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-abc", UID: "rs", Controller: &yes}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}, {Manager: "kubelet", Subresource: "status"}},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/app:1",
				Env:   []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
				LivenessProbe: probe, ReadinessProbe: probe,
				VolumeMounts: []corev1.VolumeMount{{Name: "token", MountPath: "/var/run/secrets"}},
			}},
			Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.244.1.7", PodIPs: []corev1.PodIP{{IP: "10.244.1.7"}}, StartTime: &started,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "app", Ready: true, RestartCount: 1, Image: "registry.example/app:1", ImageID: "registry.example/app@sha256:00",
				ContainerID: "containerd://abc", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
			}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// transformCluster is pods of every shape the build treats apart: init
// containers and a sidecar, pod-level resources and overhead, a PVC, a
// resize in progress, a crash loop, a failed pod, a KubeVirt launcher, and
// nodes with a taint and cordoned.
func transformCluster() ([]*corev1.Node, []*corev1.Pod) {
	always := corev1.ContainerRestartPolicyAlways
	nodes := []*corev1.Node{
		fullNode("node-1"),
		fullNode("node-2", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}}
		}),
		fullNode("node-3", func(n *corev1.Node) { n.Spec.Unschedulable = true }),
	}
	pods := []*corev1.Pod{
		fullPod("default", "web", "node-1"),
		fullPod("default", "init-and-sidecar", "node-1", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{
				{Name: "setup", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}},
				{Name: "proxy", Image: "envoy", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}},
			}
			p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}
		}),
		fullPod("default", "pod-level", "node-2", func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
			p.Spec.Containers[0].Resources.Requests["nvidia.com/gpu"] = resource.MustParse("1")
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1")
		}),
		fullPod("data", "db", "node-2", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "db-data"}}})
		}),
		fullPod("default", "resizing", "node-1", func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].AllocatedResources = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("300m")}
			p.Status.ContainerStatuses[0].Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: "Infeasible"})
		}),
		fullPod("default", "crashing", "node-3", func(p *corev1.Pod) {
			cs := &p.Status.ContainerStatuses[0]
			cs.RestartCount, cs.Ready = 9, false
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
			cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "OOMKilled", ExitCode: 137, FinishedAt: metav1.NewTime(transformNow.Add(-time.Minute))}}
		}),
		fullPod("default", "failed", "node-3", func(p *corev1.Pod) {
			p.Status.Phase, p.Status.Reason = corev1.PodFailed, "Evicted"
		}),
		fullPod("vms", "virt-launcher-vm-1-abcde", "node-1", func(p *corev1.Pod) {
			p.Labels["kubevirt.io"] = "virt-launcher"
			p.Labels["kubevirt.io/created-by"] = "uid-vmi"
			p.Annotations[vm.AnnotationDomain] = "vm-1"
		}),
		fullPod("default", "pending", "", func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available"}}}
		}),
	}
	return nodes, pods
}

// stripAll compacts objs through one compactor, as the informers do, so
// that equal values are shared between them.
func stripAll[T any](t *testing.T, c *compactor, objs []T) []T {
	t.Helper()
	out := make([]T, len(objs))
	for i, o := range objs {
		s, err := c.transform(o)
		require.NoError(t, err)
		out[i] = s.(T)
	}
	return out
}

// TestStripForCacheKeepsWhatTheBuildReads builds the snapshot from full
// objects and from their stripped copies: the two must be identical, so
// the transform drops nothing the aggregator reads.
func TestStripForCacheKeepsWhatTheBuildReads(t *testing.T) {
	nodes, pods := transformCluster()
	in := state.Inputs{
		Now: transformNow, Nodes: nodes, Pods: pods, StaleIntervals: 3, Thresholds: model.DefaultThresholds(),
		PodUsage: map[string]state.Usage{"default/web": {CPU: 120, Memory: 300 << 20, Timestamp: transformNow,
			Containers: map[string]state.ContainerUsage{"app": {CPU: 120, Memory: 300 << 20}}}},
		NodeUsage: map[string]state.Usage{"node-1": {CPU: 1000, Memory: 4 << 30, Timestamp: transformNow}},
	}
	want, err := json.Marshal(state.Build(in))
	require.NoError(t, err)

	c := newCompactor()
	in.Nodes, in.Pods = stripAll(t, c, nodes), stripAll(t, c, pods)
	got, err := json.Marshal(state.Build(in))
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(got))

	launcher := in.Pods[7]
	assert.Equal(t, map[string]string{vm.AnnotationDomain: "vm-1"}, launcher.Annotations, "the VM views' annotation stays")
	assert.Equal(t, pods[7].OwnerReferences, launcher.OwnerReferences)
	assert.Equal(t, "db-data", in.Pods[3].Spec.Volumes[0].PersistentVolumeClaim.ClaimName, "PVC volumes stay")
}

// TestStripForCacheShrinks checks that the stripped objects are a fraction
// of the full ones and that the originals are left as they were.
func TestStripForCacheShrinks(t *testing.T) {
	nodes, pods := transformCluster()
	for _, obj := range []any{nodes[0], pods[0]} {
		before, err := json.Marshal(obj)
		require.NoError(t, err)
		out, err := stripForCache(obj)
		require.NoError(t, err)
		after, err := json.Marshal(out)
		require.NoError(t, err)
		again, err := json.Marshal(obj)
		require.NoError(t, err)
		assert.Equal(t, string(before), string(again), "the decoded object is not modified")
		assert.Less(t, len(after)*3, len(before)*2, "stripped %s", after)
	}
	p, err := stripForCache(pods[0])
	require.NoError(t, err)
	pod := p.(*corev1.Pod)
	assert.Nil(t, pod.ManagedFields)
	assert.Nil(t, pod.Annotations)
	assert.Nil(t, pod.Spec.Containers[0].Env)
	assert.Nil(t, pod.Spec.Volumes)
	assert.Empty(t, pod.Status.ContainerStatuses[0].ImageID)
	assert.Equal(t, "containerd://abc", pod.Status.ContainerStatuses[0].ContainerID, "diagnosis tells terminations apart by it")
	assert.Equal(t, pods[0].Spec.Tolerations, pod.Spec.Tolerations, "diagnosis of pending pods reads them")
	n, err := stripForCache(nodes[0])
	require.NoError(t, err)
	assert.Nil(t, n.(*corev1.Node).Status.Images)
}

// TestInterner checks that equal values are shared and different ones are
// not, whatever their keys and values look like, and that a table stays
// bounded.
func TestInterner(t *testing.T) {
	same := func(a, b any) bool { return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() }
	in := newInterner()

	a := in.labelsOf(map[string]string{"app": "web", "tier": "front"})
	b := in.labelsOf(map[string]string{"tier": "front", "app": "web"})
	assert.True(t, same(a, b), "equal labels are shared")
	assert.False(t, same(in.labelsOf(map[string]string{"a": "bc"}), in.labelsOf(map[string]string{"ab": "c"})), "no key collision")

	r1 := in.resourcesOf(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")})
	r2 := in.resourcesOf(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")})
	r3 := in.resourcesOf(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1073741824")})
	assert.True(t, same(r1, r2))
	assert.False(t, same(r1, r3), "the same amount written another way is not shared")

	yes, no := true, false
	o1 := in.ownersOf([]metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1", UID: "u", Controller: &yes}})
	o2 := in.ownersOf([]metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1", UID: "u", Controller: &yes}})
	o3 := in.ownersOf([]metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1", UID: "u", Controller: &no}})
	assert.True(t, same(o1, o2))
	assert.False(t, same(o1, o3))

	secs := int64(300)
	t1 := in.tolerationsOf([]corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, TolerationSeconds: &secs}})
	t2 := in.tolerationsOf([]corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, TolerationSeconds: &secs}})
	t3 := in.tolerationsOf([]corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}})
	assert.True(t, same(t1, t2))
	assert.False(t, same(t1, t3))

	for i := range maxInterned + 10 {
		in.labelsOf(map[string]string{"pod": strconv.Itoa(i)})
	}
	assert.LessOrEqual(t, len(in.labels), maxInterned)
}

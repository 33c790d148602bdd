package vm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const (
	gib = int64(1) << 30

	uidUbuntu = "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab"
	uidWin    = "7a2b3c4d-1e2f-4a5b-9c8d-abcdef012345"
	uidFedora = "8b3c4d5e-2f3a-4b6c-8d9e-fedcba987654"
	uidWukong = "9c4d5e6f-3a4b-4c7d-9e0f-a1b2c3d4e5f6"
)

// testNow is the clock of every computed view in the tests.
var testNow = time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)

// wukongResource is the seed's CRD mapped as configs/config.yaml maps it.
var wukongResource = config.CustomVMResource{
	Name: "wukong", Group: "wukong.io", Version: "v1", Resource: "wukongs",
	Fields: config.CustomVMFields{
		VMName: "status.vmName", CPU: "spec.cpu", Memory: "spec.memory", Status: "status.phase",
		Node: "status.nodeName", Volumes: "status.volumes", PVCName: "pvcName", Capacity: "capacity",
	},
}

var wukongGVR = schema.GroupVersionResource{Group: "wukong.io", Version: "v1", Resource: "wukongs"}

// loadObject reads a recorded object the way the API server's decoder
// does, so numbers are int64 as the informer hands them over.
func loadObject(t testing.TB, name string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	js, err := utilyaml.ToJSON(raw)
	require.NoError(t, err)
	obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, js)
	require.NoError(t, err)
	return obj.(*unstructured.Unstructured)
}

// fixtureObjects parses every recorded VM.
func fixtureObjects(t testing.TB) []Object {
	t.Helper()
	var out []Object
	for _, f := range []string{"vmi-running.yaml", "vmi-pending.yaml", "vmi-requests.yaml"} {
		o, err := ParseVMI(loadObject(t, f))
		require.NoError(t, err, f)
		out = append(out, o)
	}
	o, err := ParseCustom(wukongResource, loadObject(t, "wukong.yaml"))
	require.NoError(t, err)
	return append(out, o)
}

// fixtureReports are the agents' reports holding the recorded kubelet
// pod and volume stats.
func fixtureReports(t testing.TB) map[string]state.ReportEntry {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "kubelet-stats.json"))
	require.NoError(t, err)
	var stats map[string]*model.KubeletStats
	require.NoError(t, json.Unmarshal(raw, &stats))
	out := map[string]state.ReportEntry{}
	for node, s := range stats {
		out[node] = state.ReportEntry{
			Report:     &model.NodeReport{NodeName: node, Timestamp: testNow.Add(-5 * time.Second), Kubelet: s},
			ReceivedAt: testNow.Add(-4 * time.Second),
		}
	}
	return out
}

// fixturePods are the launcher pods of the recorded VMs, each linked the
// way its test needs, among unrelated pods.
func fixturePods() []*corev1.Pod {
	return []*corev1.Pod{
		// Linked every way KubeVirt links them.
		pod("vms", "virt-launcher-ubuntu-vm-x7k2p", "worker-1", corev1.PodRunning,
			withUID("pod-uid-ubuntu"), withLabel(LabelCreatedBy, uidUbuntu), withLabel("kubevirt.io", "virt-launcher"),
			withAnnotation(AnnotationDomain, "ubuntu-vm"), withOwner(KindVMI, uidUbuntu)),
		// Only the owner reference.
		pod("dev", "virt-launcher-fedora-vm-q9w8e", "worker-2", corev1.PodRunning,
			withUID("pod-uid-fedora"), withOwner(KindVMI, uidFedora)),
		// Only the seed's name pattern.
		pod("default", "virt-launcher-ubuntu-vm-dual-network-dhcp-m4n5b", "worker-2", corev1.PodRunning,
			withUID("pod-uid-wukong")),
		pod("kube-system", "coredns-7db6d8ff4d-abcde", "worker-1", corev1.PodRunning),
		pod("vms", "virt-launcher-other-vm-zzzzz", "worker-1", corev1.PodRunning),
	}
}

// fixtureUsage is metrics-server's answer: the ubuntu and Wukong launchers
// only, so the Fedora VM falls back to kubelet stats.
func fixtureUsage() map[string]state.Usage {
	return map[string]state.Usage{
		"vms/virt-launcher-ubuntu-vm-x7k2p":                       {CPU: 1500, Memory: 2 * gib, Timestamp: testNow},
		"default/virt-launcher-ubuntu-vm-dual-network-dhcp-m4n5b": {CPU: 3000, Memory: 6 * gib, Timestamp: testNow},
		"kube-system/coredns-7db6d8ff4d-abcde":                    {CPU: 3, Memory: 20_000_000, Timestamp: testNow},
	}
}

type podOpt func(*corev1.Pod)

func pod(ns, name, node string, phase corev1.PodPhase, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(testNow.Add(-time.Hour))},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withUID(uid string) podOpt { return func(p *corev1.Pod) { p.UID = types.UID(uid) } }

func withLabel(k, v string) podOpt {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[k] = v
	}
}

func withAnnotation(k, v string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func withOwner(kind, uid string) podOpt {
	return func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{
			APIVersion: "kubevirt.io/v1", Kind: kind, Name: "owner", UID: types.UID(uid), Controller: ptr(true),
		})
	}
}

func withCreated(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}

func ptr[T any](v T) *T { return &v }

package vm

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// TestComputeFixtures checks the recorded VMs' numbers exactly.
func TestComputeFixtures(t *testing.T) {
	vms := Compute(fixtureObjects(t), fixturePods(), fixtureUsage(), fixtureReports(t), testNow)
	require.Len(t, vms, 4)
	byName := map[string]*model.VMMetrics{}
	for _, vm := range vms {
		byName[vm.Name] = vm
	}
	// Sorted by namespace, then name.
	assert.Equal(t, []string{"ubuntu", "fedora-vm", "ubuntu-vm", "win-vm"},
		[]string{vms[0].Name, vms[1].Name, vms[2].Name, vms[3].Name})

	t.Run("kubevirt, metrics-server, PVC and DataVolume", func(t *testing.T) {
		vm := byName["ubuntu-vm"]
		assert.Equal(t, uidUbuntu, vm.ID)
		assert.Equal(t, "Running", vm.Status)
		assert.Equal(t, int64(4), vm.CPU)
		assert.Equal(t, "8Gi", vm.Memory)
		assert.Equal(t, "worker-1", vm.Node)
		assert.Equal(t, SourceKubeVirt, vm.Source)
		require.NotNil(t, vm.Metrics)
		// 1500m / (4 cores × 1000) × 100 = 37.5; 2Gi / 8Gi × 100 = 25.
		assert.Equal(t, 37.5, vm.Metrics.CPUUsage)
		assert.Equal(t, 25.0, vm.Metrics.MemoryUsage)
		// (9Gi + 1Gi) used / (30Gi + 10Gi) capacity × 100 = 25.
		require.NotNil(t, vm.Metrics.DiskUsage)
		assert.Equal(t, 25.0, *vm.Metrics.DiskUsage)
		assert.Equal(t, &model.VMDetail{
			AllocatedCPU: 4000, AllocatedMemory: 8 * gib, LauncherPod: "virt-launcher-ubuntu-vm-x7k2p",
			PVCs: []string{"ubuntu-vm-root", "ubuntu-vm-data"}, DiskCapacity: 40 * gib, DiskUsed: ptr(10 * gib),
			Interfaces: []string{"default=10.244.1.23"},
		}, vm.Detail)
	})
	t.Run("kubelet fallback and a block PVC", func(t *testing.T) {
		vm := byName["fedora-vm"]
		require.NotNil(t, vm.Metrics)
		// No metrics-server numbers: kubelet's 500m / 2000m = 25;
		// 1Gi / 2Gi = 50.
		assert.Equal(t, 25.0, vm.Metrics.CPUUsage)
		assert.Equal(t, 50.0, vm.Metrics.MemoryUsage)
		// The only PVC is block mode: capacity without used bytes.
		assert.Nil(t, vm.Metrics.DiskUsage)
		assert.Nil(t, vm.Detail.DiskUsed)
		assert.Equal(t, 50*gib, vm.Detail.DiskCapacity)
		assert.Equal(t, "virt-launcher-fedora-vm-q9w8e", vm.Detail.LauncherPod)
	})
	t.Run("custom resource through the name pattern", func(t *testing.T) {
		vm := byName["ubuntu"]
		assert.Equal(t, "wukong", vm.Source)
		assert.Equal(t, uidWukong, vm.ID)
		assert.Equal(t, "virt-launcher-ubuntu-vm-dual-network-dhcp-m4n5b", vm.Detail.LauncherPod)
		require.NotNil(t, vm.Metrics)
		// 3000m / 4000m = 75; 6Gi / 8Gi = 75.
		assert.Equal(t, 75.0, vm.Metrics.CPUUsage)
		assert.Equal(t, 75.0, vm.Metrics.MemoryUsage)
		// system: 5Gi of 20Gi from kubelet; data: not reported, its
		// usage unknown, so 5/20 = 25. Capacity counts both: 20+50Gi.
		require.NotNil(t, vm.Metrics.DiskUsage)
		assert.Equal(t, 25.0, *vm.Metrics.DiskUsage)
		assert.Equal(t, 70*gib, vm.Detail.DiskCapacity)
		assert.Equal(t, ptr(5*gib), vm.Detail.DiskUsed)
	})
	t.Run("not running", func(t *testing.T) {
		vm := byName["win-vm"]
		assert.Equal(t, "Scheduling", vm.Status)
		assert.Nil(t, vm.Metrics)
		assert.Empty(t, vm.Node)
	})
}

func TestComputeMatching(t *testing.T) {
	vmi := Object{Source: SourceKubeVirt, UID: "vmi-uid", Namespace: "ns", Name: "vm1", VMName: "vm1",
		CPU: 2000, Memory: 4 * gib, MemoryQuantity: "4Gi", Phase: "Running", Node: "n1"}
	custom := Object{Source: "wukong", UID: "cr-uid", Namespace: "ns", Name: "mine", VMName: "vm1",
		CPU: 2000, Memory: 4 * gib, MemoryQuantity: "4Gi", Phase: "Running", Node: "n1"}
	older := testNow.Add(-2 * time.Hour)
	tests := []struct {
		name string
		obj  Object
		pods []*corev1.Pod
		want string // launcher pod, "" for none
	}{
		{name: "label created-by = VMI UID",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "p-label", "n1", corev1.PodRunning, withLabel(LabelCreatedBy, "vmi-uid"))},
			want: "p-label"},
		{name: "owner reference to the VMI",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "p-owner", "n1", corev1.PodRunning, withOwner(KindVMI, "vmi-uid"))},
			want: "p-owner"},
		{name: "owner reference of another kind does not match",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "p-rs", "n1", corev1.PodRunning, withOwner("ReplicaSet", "vmi-uid"))},
		},
		{name: "annotation kubevirt.io/domain = VMI name",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "p-domain", "n1", corev1.PodRunning, withAnnotation(AnnotationDomain, "vm1"))},
			want: "p-domain"},
		{name: "annotation in another namespace does not match",
			obj:  vmi,
			pods: []*corev1.Pod{pod("other", "p-domain", "n1", corev1.PodRunning, withAnnotation(AnnotationDomain, "vm1"))},
		},
		{name: "name pattern virt-launcher-{vmName}-{hash}",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "virt-launcher-vm1-abcde", "n1", corev1.PodRunning)},
			want: "virt-launcher-vm1-abcde"},
		{name: "name pattern in another namespace does not match",
			obj:  vmi,
			pods: []*corev1.Pod{pod("other", "virt-launcher-vm1-abcde", "n1", corev1.PodRunning)},
		},
		{name: "name pattern of a VM whose name extends ours does not match",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "virt-launcher-vm1-db-abcde", "n1", corev1.PodRunning)},
		},
		{name: "name pattern without a hash does not match",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "virt-launcher-vm1", "n1", corev1.PodRunning)},
		},
		{name: "deprecated vm.kubevirt.io/name alone does not match",
			obj:  vmi,
			pods: []*corev1.Pod{pod("ns", "guest-pod", "n1", corev1.PodRunning, withLabel("vm.kubevirt.io/name", "vm1"))},
		},
		{name: "label wins over name pattern",
			obj: vmi,
			pods: []*corev1.Pod{
				pod("ns", "virt-launcher-vm1-aaaaa", "n1", corev1.PodRunning),
				pod("ns", "virt-launcher-vm1-bbbbb", "n1", corev1.PodRunning, withLabel(LabelCreatedBy, "vmi-uid")),
			},
			want: "virt-launcher-vm1-bbbbb"},
		{name: "migration: the pod on the VM's node wins",
			obj: vmi,
			pods: []*corev1.Pod{
				pod("ns", "virt-launcher-vm1-target", "n2", corev1.PodRunning, withLabel(LabelCreatedBy, "vmi-uid")),
				pod("ns", "virt-launcher-vm1-source", "n1", corev1.PodRunning, withLabel(LabelCreatedBy, "vmi-uid"), withCreated(older)),
			},
			want: "virt-launcher-vm1-source"},
		{name: "a finished pod loses to a live one",
			obj: vmi,
			pods: []*corev1.Pod{
				pod("ns", "virt-launcher-vm1-old", "n1", corev1.PodSucceeded, withLabel(LabelCreatedBy, "vmi-uid")),
				pod("ns", "virt-launcher-vm1-new", "n3", corev1.PodRunning, withLabel(LabelCreatedBy, "vmi-uid")),
			},
			want: "virt-launcher-vm1-new"},
		{name: "among equals the newest wins",
			obj: vmi,
			pods: []*corev1.Pod{
				pod("ns", "virt-launcher-vm1-aaaaa", "n1", corev1.PodRunning, withCreated(older)),
				pod("ns", "virt-launcher-vm1-bbbbb", "n1", corev1.PodRunning),
			},
			want: "virt-launcher-vm1-bbbbb"},
		{name: "custom resource: annotation with its vmName",
			obj:  custom,
			pods: []*corev1.Pod{pod("ns", "p-domain", "n1", corev1.PodRunning, withAnnotation(AnnotationDomain, "vm1"))},
			want: "p-domain"},
		{name: "custom resource: its own UID is no link",
			obj:  custom,
			pods: []*corev1.Pod{pod("ns", "p-label", "n1", corev1.PodRunning, withLabel(LabelCreatedBy, "cr-uid"))},
		},
		{name: "custom resource: name pattern with its vmName",
			obj:  custom,
			pods: []*corev1.Pod{pod("ns", "virt-launcher-vm1-zz9zz", "n1", corev1.PodRunning)},
			want: "virt-launcher-vm1-zz9zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			usage := map[string]state.Usage{}
			for _, p := range tt.pods {
				usage[key(p.Namespace, p.Name)] = state.Usage{CPU: 500, Memory: gib}
			}
			vms := Compute([]Object{tt.obj}, tt.pods, usage, nil, testNow)
			require.Len(t, vms, 1)
			assert.Equal(t, tt.want, vms[0].Detail.LauncherPod)
			if tt.want == "" {
				assert.Nil(t, vms[0].Metrics)
			} else {
				require.NotNil(t, vms[0].Metrics)
				// 500m / 2000m = 25; 1Gi / 4Gi = 25.
				assert.Equal(t, 25.0, vms[0].Metrics.CPUUsage)
				assert.Equal(t, 25.0, vms[0].Metrics.MemoryUsage)
			}
		})
	}
}

// TestComputeMergesCustomWithItsVMI checks that a custom resource and the
// VMI it manages are one VM, linked through the VMI's UID.
func TestComputeMergesCustomWithItsVMI(t *testing.T) {
	vmi := Object{Source: SourceKubeVirt, UID: "vmi-uid", Namespace: "ns", Name: "vm1", VMName: "vm1",
		CPU: 2000, Memory: 4 * gib, MemoryQuantity: "4Gi", Phase: "Running", Node: "n2",
		Interfaces: []Interface{{Name: "default", IP: "10.0.0.9"}}, PVCs: []PVC{{Name: "root"}, {Name: "extra"}}}
	custom := Object{Source: "wukong", UID: "cr-uid", Namespace: "ns", Name: "mine", VMName: "vm1",
		CPU: 4000, Memory: 8 * gib, MemoryQuantity: "8Gi", Phase: "Stopped", PVCs: []PVC{{Name: "root", Capacity: 10 * gib}}}
	pods := []*corev1.Pod{pod("ns", "p", "n2", corev1.PodRunning, withLabel(LabelCreatedBy, "vmi-uid"))}
	usage := map[string]state.Usage{"ns/p": {CPU: 1000, Memory: 2 * gib}}

	vms := Compute([]Object{custom, vmi}, pods, usage, nil, testNow)
	require.Len(t, vms, 1)
	vm := vms[0]
	assert.Equal(t, "mine", vm.Name)
	assert.Equal(t, "cr-uid", vm.ID)
	assert.Equal(t, "wukong", vm.Source)
	// The VMI's live phase and node win, as the seed's GetVMStatus does.
	assert.Equal(t, "Running", vm.Status)
	assert.Equal(t, "n2", vm.Node)
	assert.Equal(t, "p", vm.Detail.LauncherPod)
	assert.Equal(t, []string{"root", "extra"}, vm.Detail.PVCs)
	assert.Equal(t, []string{"default=10.0.0.9"}, vm.Detail.Interfaces)
	require.NotNil(t, vm.Metrics)
	// The resource's own sizing: 1000m / 4000m = 25; 2Gi / 8Gi = 25.
	assert.Equal(t, 25.0, vm.Metrics.CPUUsage)
	assert.Equal(t, 25.0, vm.Metrics.MemoryUsage)
	// The shared slices were not written through.
	assert.Equal(t, []PVC{{Name: "root", Capacity: 10 * gib}}, custom.PVCs)
}

func TestComputeUsage(t *testing.T) {
	running := Object{Source: SourceKubeVirt, UID: "u", Namespace: "ns", Name: "vm", VMName: "vm",
		CPU: 2000, Memory: 4 * gib, MemoryQuantity: "4Gi", Phase: "Running", Node: "n1"}
	launcher := pod("ns", "virt-launcher-vm-abcde", "n1", corev1.PodRunning, withUID("pod-uid"), withLabel(LabelCreatedBy, "u"))
	kubelet := func(uid string, cpu, mem int64) map[string]state.ReportEntry {
		return map[string]state.ReportEntry{"n1": {Report: &model.NodeReport{NodeName: "n1", Kubelet: &model.KubeletStats{
			Pods: []model.PodStats{{Namespace: "ns", Name: "virt-launcher-vm-abcde", UID: uid, CPUUsage: cpu, MemoryWorkingSet: mem}},
		}}}}
	}
	ms := map[string]state.Usage{"ns/virt-launcher-vm-abcde": {CPU: 1000, Memory: 3 * gib}}
	tests := []struct {
		name     string
		obj      Object
		podUsage map[string]state.Usage
		reports  map[string]state.ReportEntry
		cpu, mem float64
		null     bool
	}{
		// 1000m / 2000m = 50; 3Gi / 4Gi = 75.
		{name: "metrics-server", obj: running, podUsage: ms, cpu: 50, mem: 75},
		{name: "metrics-server wins over kubelet", obj: running, podUsage: ms, reports: kubelet("pod-uid", 200, gib), cpu: 50, mem: 75},
		// 200m / 2000m = 10; 1Gi / 4Gi = 25.
		{name: "kubelet when metrics-server has no numbers", obj: running, reports: kubelet("pod-uid", 200, gib), cpu: 10, mem: 25},
		{name: "kubelet stats of an older pod of the same name are not used", obj: running, reports: kubelet("old-uid", 200, gib), null: true},
		{name: "no numbers anywhere", obj: running, null: true},
		// 3000m / 2000m = 150: the launcher's overhead can exceed the
		// allocation, and is shown, not clamped.
		{name: "above the allocation", obj: running, podUsage: map[string]state.Usage{"ns/virt-launcher-vm-abcde": {CPU: 3000, Memory: gib}}, cpu: 150, mem: 25},
		{name: "not running", obj: with(running, func(o *Object) { o.Phase = "Succeeded" }), podUsage: ms, null: true},
		{name: "status compared without case", obj: with(running, func(o *Object) { o.Phase = "running" }), podUsage: ms, cpu: 50, mem: 75},
		{name: "unknown CPU allocation", obj: with(running, func(o *Object) { o.CPU = 0 }), podUsage: ms, null: true},
		{name: "unknown memory allocation", obj: with(running, func(o *Object) { o.Memory = 0 }), podUsage: ms, null: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vms := Compute([]Object{tt.obj}, []*corev1.Pod{launcher}, tt.podUsage, tt.reports, testNow)
			require.Len(t, vms, 1)
			if tt.null {
				assert.Nil(t, vms[0].Metrics)
				return
			}
			require.NotNil(t, vms[0].Metrics)
			assert.Equal(t, tt.cpu, vms[0].Metrics.CPUUsage)
			assert.Equal(t, tt.mem, vms[0].Metrics.MemoryUsage)
		})
	}
}

func TestComputeDisk(t *testing.T) {
	base := Object{Source: SourceKubeVirt, UID: "u", Namespace: "ns", Name: "vm", VMName: "vm",
		CPU: 1000, Memory: gib, Phase: "Running", Node: "n1"}
	launcher := pod("ns", "virt-launcher-vm-abcde", "n1", corev1.PodRunning, withLabel(LabelCreatedBy, "u"))
	usage := map[string]state.Usage{"ns/virt-launcher-vm-abcde": {CPU: 100, Memory: gib / 2}}
	fs := func(ns, name string, capacity int64, used *int64) model.VolumeStats {
		return model.VolumeStats{Name: name, PVCNamespace: ns, PVCName: name, CapacityBytes: &capacity, UsedBytes: used}
	}
	reports := func(at time.Time, vols ...model.VolumeStats) state.ReportEntry {
		return state.ReportEntry{ReceivedAt: at, Report: &model.NodeReport{Kubelet: &model.KubeletStats{
			Pods: []model.PodStats{{Namespace: "ns", Name: "some-pod", Volumes: vols}},
		}}}
	}
	tests := []struct {
		name     string
		pvcs     []PVC
		reports  map[string]state.ReportEntry
		want     *float64
		used     *int64
		capacity int64
	}{
		{name: "no PVC", want: nil},
		{name: "PVC not in any report", pvcs: []PVC{{Name: "a"}}},
		{name: "PVC not in any report, capacity from the resource", pvcs: []PVC{{Name: "a", Capacity: 5 * gib}}, capacity: 5 * gib},
		{name: "block PVC only", pvcs: []PVC{{Name: "a"}},
			reports: map[string]state.ReportEntry{"n1": reports(testNow, fs("ns", "a", 10*gib, nil))}, capacity: 10 * gib},
		// 1Gi / 4Gi = 25.
		{name: "one filesystem PVC", pvcs: []PVC{{Name: "a"}},
			reports: map[string]state.ReportEntry{"n1": reports(testNow, fs("ns", "a", 4*gib, ptr(gib)))},
			want:    ptr(25.0), used: ptr(gib), capacity: 4 * gib},
		// Known: 1Gi of 4Gi; the 10Gi block PVC is left out of the
		// ratio, not counted as empty: 1/4 = 25, not 1/14.
		{name: "filesystem and block PVC", pvcs: []PVC{{Name: "a"}, {Name: "b"}},
			reports: map[string]state.ReportEntry{"n1": reports(testNow, fs("ns", "a", 4*gib, ptr(gib)), fs("ns", "b", 10*gib, nil))},
			want:    ptr(25.0), used: ptr(gib), capacity: 14 * gib},
		// The PVC is found on another node than the VM's (any node).
		// 3Gi / 6Gi = 50.
		{name: "PVC on another node", pvcs: []PVC{{Name: "a"}},
			reports: map[string]state.ReportEntry{"n9": reports(testNow, fs("ns", "a", 6*gib, ptr(3*gib)))},
			want:    ptr(50.0), used: ptr(3 * gib), capacity: 6 * gib},
		{name: "same PVC name in another namespace does not count", pvcs: []PVC{{Name: "a"}},
			reports: map[string]state.ReportEntry{"n1": reports(testNow, fs("other", "a", 4*gib, ptr(gib)))}},
		// Kubelet reports used bytes without capacity: the resource's
		// capacity completes it. 2Gi / 8Gi = 25.
		{name: "capacity from the resource", pvcs: []PVC{{Name: "a", Capacity: 8 * gib}},
			reports: map[string]state.ReportEntry{"n1": reports(testNow, model.VolumeStats{Name: "a", PVCNamespace: "ns", PVCName: "a", UsedBytes: ptr(2 * gib)})},
			want:    ptr(25.0), used: ptr(2 * gib), capacity: 8 * gib},
		{name: "used bytes without any capacity", pvcs: []PVC{{Name: "a"}},
			reports: map[string]state.ReportEntry{"n1": reports(testNow, model.VolumeStats{Name: "a", PVCNamespace: "ns", PVCName: "a", UsedBytes: ptr(2 * gib)})}},
		// Two nodes report the PVC (a migration): known usage wins over
		// block-style unknown, then the newer report. 1Gi / 2Gi = 50.
		{name: "known usage wins across nodes", pvcs: []PVC{{Name: "a"}},
			reports: map[string]state.ReportEntry{
				"n1": reports(testNow, fs("ns", "a", 2*gib, nil)),
				"n2": reports(testNow.Add(-time.Minute), fs("ns", "a", 2*gib, ptr(gib))),
			},
			want: ptr(50.0), used: ptr(gib), capacity: 2 * gib},
		// 1.5Gi / 2Gi = 75 from the newer report.
		{name: "newer report wins", pvcs: []PVC{{Name: "a"}},
			reports: map[string]state.ReportEntry{
				"n1": reports(testNow.Add(-time.Minute), fs("ns", "a", 2*gib, ptr(gib))),
				"n2": reports(testNow, fs("ns", "a", 2*gib, ptr(gib*3/2))),
			},
			want: ptr(75.0), used: ptr(gib * 3 / 2), capacity: 2 * gib},
		// Network filesystems report 8 EiB: two of them saturate the
		// sums instead of wrapping them negative. MaxInt64/MaxInt64 = 100.
		{name: "two 8 EiB network filesystems", pvcs: []PVC{{Name: "a"}, {Name: "b"}},
			reports: map[string]state.ReportEntry{"n1": reports(testNow,
				fs("ns", "a", math.MaxInt64-1, ptr(int64(math.MaxInt64-1))), fs("ns", "b", math.MaxInt64-1, ptr(int64(math.MaxInt64-1))))},
			want: ptr(100.0), used: ptr(int64(math.MaxInt64)), capacity: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := base
			obj.PVCs = tt.pvcs
			vms := Compute([]Object{obj}, []*corev1.Pod{launcher}, usage, tt.reports, testNow)
			require.Len(t, vms, 1)
			require.NotNil(t, vms[0].Metrics)
			assert.Equal(t, tt.want, vms[0].Metrics.DiskUsage)
			assert.Equal(t, tt.used, vms[0].Detail.DiskUsed)
			assert.Equal(t, tt.capacity, vms[0].Detail.DiskCapacity)
		})
	}
}

func TestComputeRobust(t *testing.T) {
	good := Object{Source: SourceKubeVirt, UID: "u", Namespace: "ns", Name: "vm", VMName: "vm", CPU: 1000, Memory: gib, Phase: "Running"}
	t.Run("nameless object skipped, the rest listed", func(t *testing.T) {
		vms := Compute([]Object{{Source: SourceKubeVirt, UID: "x"}, good, {Source: "wukong"}}, nil, nil, nil, testNow)
		require.Len(t, vms, 1)
		assert.Equal(t, "vm", vms[0].Name)
	})
	t.Run("nil pods, nil reports and reports without kubelet", func(t *testing.T) {
		reports := map[string]state.ReportEntry{"n1": {}, "n2": {Report: &model.NodeReport{}}}
		p := pod("ns", "virt-launcher-vm-abcde", "n1", corev1.PodRunning)
		vms := Compute([]Object{good}, []*corev1.Pod{nil, p}, nil, reports, testNow)
		require.Len(t, vms, 1)
		assert.Nil(t, vms[0].Metrics)
		assert.Equal(t, "n1", vms[0].Node, "node taken from the launcher pod when the VM has none")
	})
	t.Run("memory only in bytes is written as a quantity", func(t *testing.T) {
		o := good
		o.Memory, o.MemoryQuantity = 1536<<20, ""
		vms := Compute([]Object{o}, nil, nil, nil, testNow)
		assert.Equal(t, "1536Mi", vms[0].Memory)
	})
	t.Run("fractional CPU rounds up to whole vCPUs", func(t *testing.T) {
		o := good
		o.CPU = 1500
		vms := Compute([]Object{o}, nil, nil, nil, testNow)
		assert.Equal(t, int64(2), vms[0].CPU)
		assert.Equal(t, int64(1500), vms[0].Detail.AllocatedCPU)
	})
	t.Run("deleted launcher pod loses", func(t *testing.T) {
		gone := pod("ns", "virt-launcher-vm-aaaaa", "n1", corev1.PodRunning)
		gone.DeletionTimestamp = &metav1.Time{Time: testNow}
		live := pod("ns", "virt-launcher-vm-bbbbb", "n1", corev1.PodPending, withCreated(testNow.Add(-3*time.Hour)))
		vms := Compute([]Object{good}, []*corev1.Pod{gone, live}, nil, nil, testNow)
		assert.Equal(t, "virt-launcher-vm-bbbbb", vms[0].Detail.LauncherPod)
	})
	t.Run("empty input", func(t *testing.T) {
		assert.Empty(t, Compute(nil, nil, nil, nil, testNow))
	})
}

func with(o Object, f func(*Object)) Object {
	f(&o)
	return o
}

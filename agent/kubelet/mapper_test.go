package kubelet

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// podRates is what the fixture tests check per pod: CPU in millicores per
// pod and per container, network in bytes per second.
type podRates struct {
	cpu        int64
	containers map[string]int64
	rx, tx     float64
}

func ratesOf(p model.PodStats) podRates {
	r := podRates{cpu: p.CPUUsage, containers: map[string]int64{}, rx: p.NetworkRxBytesPerSec, tx: p.NetworkTxBytesPerSec}
	for _, c := range p.Containers {
		r.containers[c.Name] = c.CPUUsage
	}
	return r
}

func byName(t *testing.T, stats *model.KubeletStats) map[string]model.PodStats {
	t.Helper()
	out := map[string]model.PodStats{}
	for _, p := range stats.Pods {
		out[p.Namespace+"/"+p.Name] = p
	}
	require.Len(t, out, len(stats.Pods), "pod names must be unique in the fixtures")
	return out
}

func checkRates(t *testing.T, want map[string]podRates, stats *model.KubeletStats) {
	t.Helper()
	pods := byName(t, stats)
	require.Len(t, pods, len(want))
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			p, ok := pods[name]
			require.True(t, ok, "pod %s missing", name)
			got := ratesOf(p)
			assert.Equal(t, w.cpu, got.cpu, "pod cpu millicores")
			assert.Equal(t, w.containers, got.containers, "container cpu millicores")
			assert.InDelta(t, w.rx, got.rx, 0.01, "rx bytes/s")
			assert.InDelta(t, w.tx, got.tx, 0.01, "tx bytes/s")
		})
	}
}

// TestMapFixtureScrapes checks the rates of the two recorded scrapes by
// hand. Timestamps come from each "cpu"/"network" block's "time". A first
// sighting takes the kubelet's usageNanoCores; after it, CPU comes from
// counter deltas, and the fixtures' usageNanoCores is deliberately
// inconsistent with them (the VM pod says 1105m in the second scrape), so
// that using it then would fail.
func TestMapFixtureScrapes(t *testing.T) {
	m := newMapper()

	// First scrape: every pod is new. CPU is usageNanoCores (rounded to the
	// millicore), as it would be after an agent restart, not the average
	// since start; network has no such reading, so rate = counter / (time -
	// startTime).
	first := m.Map(decodeFixture(t, fixture1))
	checkRates(t, map[string]podRates{
		// pod: 2934117 ns/s = 3m; kube-proxy: 2911442 = 3m (the lifetime
		// averages would be 20m and 20m).
		// host network: no network block, so no rates.
		"kube-system/kube-proxy-x7k2p": {cpu: 3, containers: map[string]int64{"kube-proxy": 3}},
		// pod: 279885465 = 280m; web: 231772905 = 232m; log-shipper: 48112560 = 48m
		// rx: 1.2e9 / (08:00:05 - 07:30:05 = 1800 s) = 666666.67 B/s; tx: 0.8e9 / 1800 s = 444444.44 B/s
		"shop/web-7d9f8b6c5-q4xzt": {cpu: 280, containers: map[string]int64{"web": 232, "log-shipper": 48},
			rx: 1.2e9 / 1800, tx: 0.8e9 / 1800},
		// pod: 1097138115 = 1097m; compute: 1087265103 = 1087m; guest-console-log: 9873012 = 10m
		// rx: (9e9 eth0 + 1.803e9 net1) / (08:00:02 - 06:00:00 = 7202 s) = 1.5e6; tx: (3e9 + 0.601e9) / 7202 s = 0.5e6
		"vms/virt-launcher-testvm-abcde": {cpu: 1097, containers: map[string]int64{"compute": 1087, "guest-console-log": 10},
			rx: 1.5e6, tx: 0.5e6},
		// pod: 901336225 = 901m; report: 884120551 = 884m
		// rx: 3.3e6 / (08:00:03 - 07:59:30 = 33 s) = 1e5; tx: 0.66e6 / 33 s = 2e4
		"batch/report-29012345-kd8sd": {cpu: 901, containers: map[string]int64{"report": 884}, rx: 1e5, tx: 2e4},
	}, first)

	// Second scrape: deltas against the first, except the new pod.
	second := m.Map(decodeFixture(t, fixture2))
	checkRates(t, map[string]podRates{
		// pod: (1845045e6 - 1845000e6) = 45e6 ns / (08:00:19 - 08:00:04 = 15 s) = 3m
		// kube-proxy: (1845005e6 - 1844960e6) = 45e6 / 15 s = 3m
		"kube-system/kube-proxy-x7k2p": {cpu: 3, containers: map[string]int64{"kube-proxy": 3}},
		// pod: 3.75e9 / (08:00:20 - 08:00:05 = 15 s) = 250m
		// web: 3e9 / 15 s = 200m; log-shipper: 0.75e9 / 15 s = 50m
		// rx: 1.5e6 / 15 s = 1e5; tx: 0.75e6 / 15 s = 5e4
		"shop/web-7d9f8b6c5-q4xzt": {cpu: 250, containers: map[string]int64{"web": 200, "log-shipper": 50}, rx: 1e5, tx: 5e4},
		// New pod, first sighting, and too new for the kubelet to have
		// usageNanoCores (it needs two samples): the average since start,
		// 4.2e9 / (08:00:20 - 08:00:10 = 10 s) = 420m
		// web: 3.2e9 / (08:00:20 - 08:00:12 = 8 s) = 400m; log-shipper: 0.16e9 / 8 s = 20m
		// rx: 2e6 / 10 s = 2e5; tx: 0.5e6 / 10 s = 5e4
		"shop/web-7d9f8b6c5-n8wq2": {cpu: 420, containers: map[string]int64{"web": 400, "log-shipper": 20}, rx: 2e5, tx: 5e4},
		// pod: 16.5e9 / (08:00:17 - 08:00:02 = 15 s) = 1100m
		// compute: 16.35e9 / 15 s = 1090m; guest-console-log: 0.15e9 / 15 s = 10m
		// rx: (30e6 eth0 + 7.5e6 net1) / 15 s = 2.5e6; tx: (6e6 + 1.5e6) / 15 s = 5e5
		"vms/virt-launcher-testvm-abcde": {cpu: 1100, containers: map[string]int64{"compute": 1090, "guest-console-log": 10},
			rx: 2.5e6, tx: 5e5},
		// batch/report-29012345-kd8sd finished: absent, and pruned below.
	}, second)

	assert.Len(t, m.pods, 4, "the finished job's state is pruned")
	assert.NotContains(t, m.pods, "e5f60718-293a-4b4c-8d6e-7f8091a2b3c4")
}

func TestMapFixtureFields(t *testing.T) {
	m := newMapper()
	m.Map(decodeFixture(t, fixture1))
	stats := m.Map(decodeFixture(t, fixture2))

	t.Run("pods sorted by namespace and name", func(t *testing.T) {
		var names []string
		for _, p := range stats.Pods {
			names = append(names, p.Namespace+"/"+p.Name)
		}
		assert.Equal(t, []string{
			"kube-system/kube-proxy-x7k2p",
			"shop/web-7d9f8b6c5-n8wq2",
			"shop/web-7d9f8b6c5-q4xzt",
			"vms/virt-launcher-testvm-abcde",
		}, names)
	})

	t.Run("node and image filesystems", func(t *testing.T) {
		require.NotNil(t, stats.NodeFS)
		assert.Equal(t, int64(107317563392), *stats.NodeFS.CapacityBytes)
		assert.Equal(t, int64(43044196352), *stats.NodeFS.UsedBytes)
		assert.Equal(t, int64(64273367040), *stats.NodeFS.AvailableBytes)
		assert.Equal(t, uint64(6553600), *stats.NodeFS.Inodes)
		assert.Equal(t, uint64(180810), *stats.NodeFS.InodesUsed)
		assert.Equal(t, uint64(6372790), *stats.NodeFS.InodesFree)
		require.NotNil(t, stats.ImageFS)
		assert.Equal(t, int64(19415703552), *stats.ImageFS.UsedBytes)
		assert.Equal(t, uint64(98212), *stats.ImageFS.InodesUsed)
	})

	vm := byName(t, stats)["vms/virt-launcher-testvm-abcde"]

	t.Run("pod fields", func(t *testing.T) {
		assert.Equal(t, "c2b6f0a1-7e3d-4f8a-b5c9-0d1e2f3a4b5c", vm.UID)
		assert.Equal(t, time.Date(2026, 3, 10, 6, 0, 0, 0, time.UTC), vm.StartTime)
		assert.Equal(t, int64(2256535552), vm.MemoryWorkingSet)
		assert.Equal(t, int64(1556480), vm.EphemeralStorageUsage)
	})

	t.Run("containers sorted, with memory and disk", func(t *testing.T) {
		require.Len(t, vm.Containers, 2)
		assert.Equal(t, model.ContainerStats{Name: "compute", CPUUsage: 1090, MemoryWorkingSet: 2235564032, RootfsUsed: 1003520, LogsUsed: 495616}, vm.Containers[0])
		assert.Equal(t, model.ContainerStats{Name: "guest-console-log", CPUUsage: 10, MemoryWorkingSet: 20971520, RootfsUsed: 16384, LogsUsed: 36864}, vm.Containers[1])
	})

	t.Run("volumes with pvc references", func(t *testing.T) {
		vols := map[string]model.VolumeStats{}
		for _, v := range vm.Volumes {
			vols[v.Name] = v
		}
		require.Len(t, vols, 4)

		root := vols["rootdisk"]
		assert.Equal(t, "vms", root.PVCNamespace)
		assert.Equal(t, "testvm-rootdisk", root.PVCName)
		require.NotNil(t, root.UsedBytes)
		assert.Equal(t, int64(8594128896), *root.UsedBytes)
		assert.Equal(t, int64(32212254720), *root.CapacityBytes)
		assert.Equal(t, int64(23618125824), *root.AvailableBytes)
		assert.Equal(t, uint64(1966080), *root.Inodes)
		assert.Equal(t, uint64(41241), *root.InodesUsed)

		// Block-mode PVC: the kubelet knows the size, not the usage.
		data := vols["datadisk"]
		assert.Equal(t, "testvm-datadisk", data.PVCName)
		require.NotNil(t, data.CapacityBytes)
		assert.Equal(t, int64(107374182400), *data.CapacityBytes)
		assert.Nil(t, data.UsedBytes, "block volume usage is unknown, not 0")
		assert.Nil(t, data.AvailableBytes)
		assert.Nil(t, data.Inodes)

		private := vols["private"]
		assert.Empty(t, private.PVCName, "emptyDir has no claim")
		require.NotNil(t, private.UsedBytes)
		assert.Equal(t, int64(4096), *private.UsedBytes)
	})
}

func TestMapCounterEdgeCases(t *testing.T) {
	// Each case maps scrapes in order and checks the pod's and container
	// "c"'s millicores after the last one. Times are seconds after t0.
	tests := []struct {
		name                 string
		scrapes              []statsv1alpha1.PodStats
		wantPod, wantCtr     int64
		wantPodAt1, wantCtr1 int64 // after the first scrape
	}{
		{
			name: "first sighting averages since start",
			// pod: 50e9 / (100 - 0 s) = 500m; c: 40e9 / (100 - 20 s) = 500m
			scrapes:    []statsv1alpha1.PodStats{cpuPod("a", 0, 100, 50e9, 20, 40e9)},
			wantPodAt1: 500, wantCtr1: 500, wantPod: 500, wantCtr: 500,
		},
		{
			name: "delta between scrapes",
			// pod: (53e9 - 50e9) / 15 s = 200m; c: (41.5e9 - 40e9) / 15 s = 100m
			scrapes: []statsv1alpha1.PodStats{
				cpuPod("a", 0, 100, 50e9, 20, 40e9),
				cpuPod("a", 0, 115, 53e9, 20, 41.5e9),
			},
			wantPodAt1: 500, wantCtr1: 500, wantPod: 200, wantCtr: 100,
		},
		{
			name: "container restart resets its counter",
			// c restarted at 110 s: 2e9 < 40e9, so first sighting again:
			// 2e9 / (115 - 110 s) = 400m. The pod counter kept counting:
			// (56e9 - 50e9) / 15 s = 400m.
			scrapes: []statsv1alpha1.PodStats{
				cpuPod("a", 0, 100, 50e9, 20, 40e9),
				cpuPod("a", 0, 115, 56e9, 110, 2e9),
			},
			wantPodAt1: 500, wantCtr1: 500, wantPod: 400, wantCtr: 400,
		},
		{
			name: "pod counter reset is a first sighting",
			// pod sandbox recreated, start 105 s: 3e9 / (115 - 105 s) = 300m;
			// c: 2e9 / (115 - 110 s) = 400m.
			scrapes: []statsv1alpha1.PodStats{
				cpuPod("a", 0, 100, 50e9, 20, 40e9),
				cpuPod("a", 105, 115, 3e9, 110, 2e9),
			},
			wantPodAt1: 500, wantCtr1: 500, wantPod: 300, wantCtr: 400,
		},
		{
			name: "cached reading repeats the last rate",
			// The kubelet served the 115 s reading twice; the third scrape's
			// delta spans 115 -> 130 s: (56e9 - 53e9) / 15 s = 200m,
			// c: (43e9 - 41.5e9) / 15 s = 100m.
			scrapes: []statsv1alpha1.PodStats{
				cpuPod("a", 0, 100, 50e9, 20, 40e9),
				cpuPod("a", 0, 115, 53e9, 20, 41.5e9),
				cpuPod("a", 0, 115, 53e9, 20, 41.5e9),
				cpuPod("a", 0, 130, 56e9, 20, 43e9),
			},
			wantPodAt1: 500, wantCtr1: 500, wantPod: 200, wantCtr: 100,
		},
		{
			name: "first reading after an agent restart uses usageNanoCores",
			// Busy earlier, idle now: the lifetime averages would be 500m and
			// 500m; the kubelet's instantaneous readings are 12m and 10m.
			scrapes:    []statsv1alpha1.PodStats{withNanoCores(cpuPod("a", 0, 100, 50e9, 20, 40e9), 12e6, 10e6)},
			wantPodAt1: 12, wantCtr1: 10, wantPod: 12, wantCtr: 10,
		},
		{
			name: "deltas after the first reading, not usageNanoCores",
			// (53e9 - 50e9) / 15 s = 200m; c: (41.5e9 - 40e9) / 15 s = 100m
			scrapes: []statsv1alpha1.PodStats{
				withNanoCores(cpuPod("a", 0, 100, 50e9, 20, 40e9), 12e6, 10e6),
				withNanoCores(cpuPod("a", 0, 115, 53e9, 20, 41.5e9), 7e6, 5e6),
			},
			wantPodAt1: 12, wantCtr1: 10, wantPod: 200, wantCtr: 100,
		},
		{
			name: "container restart uses usageNanoCores",
			// c's counter went down: its usageNanoCores, 30m. The pod's
			// counter kept counting: (56e9 - 50e9) / 15 s = 400m.
			scrapes: []statsv1alpha1.PodStats{
				cpuPod("a", 0, 100, 50e9, 20, 40e9),
				withNanoCores(cpuPod("a", 0, 115, 56e9, 110, 2e9), 70e6, 30e6),
			},
			wantPodAt1: 500, wantCtr1: 500, wantPod: 400, wantCtr: 30,
		},
		{
			name: "usageNanoCores without the counter",
			scrapes: []statsv1alpha1.PodStats{func() statsv1alpha1.PodStats {
				p := withNanoCores(cpuPod("a", 0, 100, 0, 20, 0), 250e6, 240e6)
				p.CPU.UsageCoreNanoSeconds, p.Containers[0].CPU.UsageCoreNanoSeconds = nil, nil
				return p
			}()},
			wantPodAt1: 250, wantCtr1: 240, wantPod: 250, wantCtr: 240,
		},
		{
			name: "no start time and no previous reading gives 0",
			scrapes: []statsv1alpha1.PodStats{func() statsv1alpha1.PodStats {
				p := cpuPod("a", 0, 100, 50e9, 20, 40e9)
				p.StartTime = statsv1alpha1.PodStats{}.StartTime
				p.Containers[0].StartTime = p.StartTime
				return p
			}()},
		},
		{
			name: "reading at start time gives 0, not a division by zero",
			// pod: 100 - 100 s; c: 100 - 100 s
			scrapes: []statsv1alpha1.PodStats{cpuPod("a", 100, 100, 5e9, 100, 4e9)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMapper()
			var last model.PodStats
			for i, p := range tt.scrapes {
				stats := m.Map(summaryOf(p))
				require.Len(t, stats.Pods, 1)
				last = stats.Pods[0]
				require.Len(t, last.Containers, 1)
				if i == 0 {
					assert.Equal(t, tt.wantPodAt1, last.CPUUsage, "pod after first scrape")
					assert.Equal(t, tt.wantCtr1, last.Containers[0].CPUUsage, "container after first scrape")
				}
			}
			assert.Equal(t, tt.wantPod, last.CPUUsage, "pod")
			assert.Equal(t, tt.wantCtr, last.Containers[0].CPUUsage, "container")
		})
	}
}

func TestMapPrunesState(t *testing.T) {
	m := newMapper()
	a := cpuPod("a", 0, 100, 50e9, 20, 40e9)
	a.Containers = append(a.Containers, statsv1alpha1.ContainerStats{
		Name: "sidecar", StartTime: at(20),
		CPU: &statsv1alpha1.CPUStats{Time: at(100), UsageCoreNanoSeconds: u64(8e9)},
	})
	a.Network = &statsv1alpha1.NetworkStats{Time: at(100), Interfaces: []statsv1alpha1.InterfaceStats{
		{Name: "eth0", RxBytes: u64(1e6), TxBytes: u64(1e6)},
		{Name: "net1", RxBytes: u64(1e6), TxBytes: u64(1e6)},
	}}
	m.Map(summaryOf(a, cpuPod("b", 0, 100, 1e9, 0, 1e9)))
	require.Len(t, m.pods, 2)
	require.Len(t, m.pods["a"].containers, 2)
	require.Len(t, m.pods["a"].rx, 2)

	// Pod b is gone, pod a lost its sidecar and its secondary network.
	a2 := cpuPod("a", 0, 115, 53e9, 20, 41.5e9)
	a2.Network = &statsv1alpha1.NetworkStats{Time: at(115), Interfaces: []statsv1alpha1.InterfaceStats{
		{Name: "eth0", RxBytes: u64(1.15e6), TxBytes: u64(1.3e6)},
	}}
	stats := m.Map(summaryOf(a2))
	assert.Len(t, m.pods, 1)
	assert.Contains(t, m.pods, "a")
	assert.Len(t, m.pods["a"].containers, 1)
	assert.Len(t, m.pods["a"].rx, 1)
	assert.Len(t, m.pods["a"].tx, 1)
	// eth0 alone: rx 0.15e6 / 15 s = 1e4 B/s, tx 0.3e6 / 15 s = 2e4 B/s;
	// net1's disappearance is not a drop in the pod's counters.
	assert.InDelta(t, 1e4, stats.Pods[0].NetworkRxBytesPerSec, 0.001)
	assert.InDelta(t, 2e4, stats.Pods[0].NetworkTxBytesPerSec, 0.001)

	// Pod b coming back under the same UID starts afresh: 2e9 / 100 s = 20m.
	stats = m.Map(summaryOf(cpuPod("b", 100, 200, 2e9, 100, 2e9)))
	assert.Equal(t, int64(20), stats.Pods[0].CPUUsage)
}

func TestMapSparseSummary(t *testing.T) {
	// The kubelet omits blocks it has no data for (a pod still starting,
	// a node without an image filesystem); none of that may panic or invent
	// values.
	s := &statsv1alpha1.Summary{
		Node: statsv1alpha1.NodeStats{NodeName: "worker-1"},
		Pods: []statsv1alpha1.PodStats{
			{PodRef: statsv1alpha1.PodReference{Namespace: "ns", Name: "starting"}},
			{
				PodRef:           statsv1alpha1.PodReference{Namespace: "ns", Name: "partial", UID: "u"},
				CPU:              &statsv1alpha1.CPUStats{},
				Memory:           &statsv1alpha1.MemoryStats{},
				Network:          &statsv1alpha1.NetworkStats{InterfaceStats: statsv1alpha1.InterfaceStats{Name: "eth0"}},
				EphemeralStorage: &statsv1alpha1.FsStats{},
				Containers:       []statsv1alpha1.ContainerStats{{Name: "c", CPU: &statsv1alpha1.CPUStats{}, Rootfs: &statsv1alpha1.FsStats{}}},
				VolumeStats:      []statsv1alpha1.VolumeStats{{Name: "v"}},
			},
		},
	}
	stats := newMapper().Map(local(t, s))
	assert.Nil(t, stats.NodeFS)
	assert.Nil(t, stats.ImageFS)
	require.Len(t, stats.Pods, 2)
	assert.Equal(t, "partial", stats.Pods[0].Name)
	assert.Equal(t, model.VolumeStats{Name: "v"}, stats.Pods[0].Volumes[0])
	assert.Equal(t, model.ContainerStats{Name: "c"}, stats.Pods[0].Containers[0])
	assert.Equal(t, model.PodStats{Namespace: "ns", Name: "starting", Containers: []model.ContainerStats{}}, stats.Pods[1])
}

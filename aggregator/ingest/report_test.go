package ingest

import (
	"fmt"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func ptr[T any](v T) *T { return &v }

// realisticReport builds what an agent on a busy GPU node sends: host
// readings, two GPUs, four disks, three interfaces, and kubelet stats for
// the given number of pods (110 is the kubelet's default maximum), each
// with two containers and two volumes.
func realisticReport(node string, pods int, ts time.Time) *model.NodeReport {
	ts = ts.UTC()
	r := &model.NodeReport{
		NodeName:        node,
		Timestamp:       ts,
		AgentVersion:    "v0.1.0",
		IntervalSeconds: 15,
		Node: model.NodeMetrics{
			NodeName:         node,
			Timestamp:        ts,
			CPUCapacity:      64000,
			CPUUsage:         23150,
			CPUUsageRate:     36.2,
			MemoryCapacity:   512 << 30,
			MemoryUsage:      201 << 30,
			MemoryUsageRate:  39.3,
			DiskCapacity:     2 << 40,
			DiskUsage:        700 << 30,
			DiskUsageRate:    34.2,
			NetworkBandwidth: 1.2e8,
			GPUCount:         2,
			GPUModels:        []string{"NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"},
			GPUUsage:         []float64{87, 12},
			GPUMemoryTotal:   []int64{80 << 30, 80 << 30},
			GPUMemoryUsed:    []int64{71 << 30, 3 << 30},
			Healthy:          true,
			Conditions:       []string{"Ready"},
			Labels:           map[string]string{"kubernetes.io/hostname": node, "nvidia.com/gpu.product": "H100"},
			Load:             &model.LoadAverage{Load1: 21.3, Load5: 19.8, Load15: 18.2},
		},
		Sources: []model.SourceStatus{},
	}
	for i, m := range []string{"/", "/var/lib/kubelet", "/var/lib/containerd", "/data"} {
		r.Node.Disks = append(r.Node.Disks, model.DiskMetrics{
			Device: fmt.Sprintf("/dev/nvme%dn1p1", i), MountPoint: m, FSType: "xfs",
			Capacity: 1 << 40, Used: 300 << 30, Free: 724 << 30, UsageRate: 29.3,
			Inodes: 1 << 26, InodesUsed: 1 << 20, InodesRate: 1.6, Available: true,
		})
	}
	for _, n := range []string{"eth0", "eth1", "cni0"} {
		r.Node.Interfaces = append(r.Node.Interfaces, model.InterfaceMetrics{Name: n, RxBytesPerSec: 4.1e7, TxBytesPerSec: 1.9e7, RxErrors: 2})
	}
	for g := range 2 {
		r.Node.GPUs = append(r.Node.GPUs, model.GPUMetrics{
			Index: g, UUID: fmt.Sprintf("GPU-3f2a1b9c-0000-4000-8000-00000000000%d", g), Model: "NVIDIA H100 80GB HBM3",
			UtilizationRate: 87, MemoryUtilization: 55, MemoryTotal: 80 << 30, MemoryUsed: 71 << 30, MemoryUsageRate: 88.7,
			TemperatureC: 64, PowerWatts: 512.4, PowerLimitWatts: 700, ECCCorrected: ptr[uint64](0), ECCUncorrected: ptr[uint64](0),
			Pods: []model.GPUPodRef{{Namespace: "ml", Pod: "trainer-0", Container: "main", DeviceID: fmt.Sprintf("GPU-%d", g)}},
		})
	}
	for _, s := range []string{"cpu", "memory", "disk", "network", "gpu", "kubelet", "podresources"} {
		r.Sources = append(r.Sources, model.SourceStatus{Name: s, Status: model.SourceOK, DurationMs: 3.2, LastSuccess: ts})
	}
	k := &model.KubeletStats{
		NodeFS:  &model.FsStats{CapacityBytes: ptr[int64](1 << 40), UsedBytes: ptr[int64](300 << 30), AvailableBytes: ptr[int64](724 << 30)},
		ImageFS: &model.FsStats{CapacityBytes: ptr[int64](1 << 40), UsedBytes: ptr[int64](90 << 30), AvailableBytes: ptr[int64](934 << 30)},
	}
	for p := range pods {
		ns := fmt.Sprintf("team-%d", p%7)
		name := fmt.Sprintf("api-server-7d9f8c6b5-%05d", p)
		k.Pods = append(k.Pods, model.PodStats{
			Namespace: ns, Name: name, UID: fmt.Sprintf("6a0b6f7e-1c2d-4e5f-8a9b-%012d", p),
			StartTime: ts.Add(-time.Hour), CPUUsage: 120, MemoryWorkingSet: 256 << 20,
			EphemeralStorageUsage: 40 << 20, NetworkRxBytesPerSec: 12000, NetworkTxBytesPerSec: 8000,
			Containers: []model.ContainerStats{
				{Name: "app", CPUUsage: 110, MemoryWorkingSet: 230 << 20, RootfsUsed: 30 << 20, LogsUsed: 5 << 20},
				{Name: "istio-proxy", CPUUsage: 10, MemoryWorkingSet: 26 << 20, RootfsUsed: 4 << 20, LogsUsed: 1 << 20},
			},
			Volumes: []model.VolumeStats{
				{Name: "data", PVCNamespace: ns, PVCName: "data-" + name, CapacityBytes: ptr[int64](10 << 30), UsedBytes: ptr[int64](3 << 30), AvailableBytes: ptr[int64](7 << 30), Inodes: ptr[uint64](655360), InodesUsed: ptr[uint64](1200)},
				{Name: "kube-api-access", CapacityBytes: ptr[int64](1 << 20), UsedBytes: ptr[int64](12 << 10)},
			},
		})
	}
	r.Kubelet = k
	return r
}

package kubelet

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// benchSummary is a full node at the default pod limit: 110 pods of two
// containers and two volumes each, every block the kubelet fills in.
func benchSummary(pods int) *statsv1alpha1.Summary {
	now := metav1.NewTime(t0)
	start := metav1.NewTime(t0.Add(-time.Hour))
	fs := func(used uint64) *statsv1alpha1.FsStats {
		return &statsv1alpha1.FsStats{Time: now, AvailableBytes: u64(64e9), CapacityBytes: u64(107e9), UsedBytes: u64(used),
			InodesFree: u64(6e6), Inodes: u64(6553600), InodesUsed: u64(300)}
	}
	mem := func(ws uint64) *statsv1alpha1.MemoryStats {
		return &statsv1alpha1.MemoryStats{Time: now, AvailableBytes: u64(1 << 30), UsageBytes: u64(ws + 1<<20), WorkingSetBytes: u64(ws),
			RSSBytes: u64(ws - 1<<20), PageFaults: u64(12345), MajorPageFaults: u64(3)}
	}
	cpu := func(ns uint64) *statsv1alpha1.CPUStats {
		return &statsv1alpha1.CPUStats{Time: now, UsageNanoCores: u64(ns / 3600), UsageCoreNanoSeconds: u64(ns)}
	}
	s := &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{
		NodeName: "worker-1", StartTime: start, CPU: cpu(1e15), Memory: mem(4e9), Fs: fs(43e9),
		Runtime: &statsv1alpha1.RuntimeStats{ImageFs: fs(19e9), ContainerFs: fs(19e9)},
	}}
	for i := range pods {
		p := statsv1alpha1.PodStats{
			PodRef:    statsv1alpha1.PodReference{Namespace: fmt.Sprintf("ns-%d", i%7), Name: fmt.Sprintf("pod-%03d", i), UID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i)},
			StartTime: start,
			CPU:       cpu(uint64(i+1) * 1e11),
			Memory:    mem(uint64(i+1) * 1e7),
			Network: &statsv1alpha1.NetworkStats{Time: now,
				InterfaceStats: statsv1alpha1.InterfaceStats{Name: "eth0", RxBytes: u64(1e9), RxErrors: u64(0), TxBytes: u64(5e8), TxErrors: u64(0)},
				Interfaces:     []statsv1alpha1.InterfaceStats{{Name: "eth0", RxBytes: u64(1e9), RxErrors: u64(0), TxBytes: u64(5e8), TxErrors: u64(0)}},
			},
			EphemeralStorage: fs(3e7),
		}
		for _, c := range []string{"app", "sidecar"} {
			p.Containers = append(p.Containers, statsv1alpha1.ContainerStats{
				Name: c, StartTime: start, CPU: cpu(uint64(i+1) * 5e10), Memory: mem(uint64(i+1) * 5e6), Rootfs: fs(2e7), Logs: fs(1e6),
			})
		}
		p.VolumeStats = []statsv1alpha1.VolumeStats{
			{FsStats: *fs(12288), Name: "kube-api-access"},
			{FsStats: *fs(5e9), Name: "data", PVCRef: &statsv1alpha1.PVCReference{Namespace: p.PodRef.Namespace, Name: "data-" + p.PodRef.Name}},
		}
		s.Pods = append(s.Pods, p)
	}
	return s
}

// advance moves every counter of a freshly decoded summary n scrapes of
// 15 s forward, so that each iteration maps a new reading (the delta path)
// instead of a repeat of the last one.
func advance(s *Summary, n int) {
	d := time.Duration(n) * 15 * time.Second
	cpu := func(c *CPUStats) {
		c.Time = c.Time.Add(d)
		*c.UsageCoreNanoSeconds += uint64(n) * 3e9
	}
	for i := range s.Pods {
		p := &s.Pods[i]
		cpu(p.CPU)
		for j := range p.Containers {
			cpu(p.Containers[j].CPU)
		}
		p.Network.Time = p.Network.Time.Add(d)
		for j := range p.Network.Interfaces {
			*p.Network.Interfaces[j].RxBytes += uint64(n) * 15e6
			*p.Network.Interfaces[j].TxBytes += uint64(n) * 3e6
		}
	}
}

// BenchmarkDecodeAndMap is one scrape's work after the HTTP round trip: a
// 110-pod summary decoded and mapped with deltas against the previous one.
func BenchmarkDecodeAndMap(b *testing.B) {
	body, err := json.Marshal(benchSummary(110))
	if err != nil {
		b.Fatal(err)
	}
	m := newMapper()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		s, err := DecodeSummary(body)
		if err != nil {
			b.Fatal(err)
		}
		advance(s, n)
		n++
		if stats := m.Map(s); len(stats.Pods) != 110 {
			b.Fatalf("mapped %d pods, want 110", len(stats.Pods))
		}
	}
}

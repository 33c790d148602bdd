package state

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const benchPodsPerNode = 30

// benchInputs is a cluster of n nodes with benchPodsPerNode pods each, as
// the aggregator sees it in steady state: every node has a Node object and
// a fresh agent report with kubelet stats of its pods, every pod has a Pod
// object and metrics-server usage, and its running container's status the
// resources the kubelet applied (as kubelets with in-place resize report
// them); one node in ten has 8 GPUs.
func benchInputs(n int) Inputs {
	in := Inputs{
		Now:       t0,
		Reports:   make(map[string]ReportEntry, n),
		NodeUsage: make(map[string]Usage, n),
		PodUsage:  make(map[string]Usage, n*benchPodsPerNode),
	}
	for i := 0; i < n; i++ {
		name := nodeName(i)
		var nodeOpts []nodeOpt
		var repOpts []reportOpt
		var holders []string
		if i%10 == 0 {
			nodeOpts = append(nodeOpts, withGPUResource("8"))
			for g := 0; g < 8; g += 2 {
				holders = append(holders, fmt.Sprintf("ns-%d/pod-%05d-%02d", i%20, i, g), "")
			}
			repOpts = append(repOpts, withGPUs(8, holders...))
		}
		repOpts = append(repOpts, withUsage(float64(i%97), float64(i%89), 50))
		for p := 0; p < benchPodsPerNode; p++ {
			ns, pod := fmt.Sprintf("ns-%d", i%20), fmt.Sprintf("pod-%05d-%02d", i, p)
			repOpts = append(repOpts, withKubeletPod(ns, pod, int64(10+p), int64(p+1)*mib))
			in.Pods = append(in.Pods, kubePod(ns, pod, name, withAppliedResources))
			in.PodUsage[model.PodKey(ns, pod)] = Usage{CPU: int64(10 + p), Memory: int64(p+1) * mib, Timestamp: t0,
				Containers: map[string]ContainerUsage{"app": {CPU: int64(10 + p), Memory: int64(p+1) * mib}}}
		}
		in.Nodes = append(in.Nodes, kubeNode(name, nodeOpts...))
		in.Reports[name] = agentReport(name, repOpts...)
		in.NodeUsage[name] = Usage{CPU: 1000, Memory: 4 * gib, Timestamp: t0}
	}
	return in
}

// withAppliedResources reports the spec's resources as applied to the
// containers, as a kubelet does once they run.
func withAppliedResources(p *corev1.Pod) {
	for i := range p.Status.ContainerStatuses {
		r := p.Spec.Containers[i].Resources.DeepCopy()
		p.Status.ContainerStatuses[i].Resources = r
	}
}

var benchSizes = []int{1000, 5000}

// BenchmarkBuild measures one snapshot build. Besides ns/op it reports the
// cost per node (the agent's report merged with its Node and 30 pods):
// ns/node, bytes allocated per node, and bytes the snapshot keeps per node.
func BenchmarkBuild(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", n, n*benchPodsPerNode), func(b *testing.B) {
			in := benchInputs(n)
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = Build(in)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/node")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/float64(n), "alloc-B/node")
			b.ReportMetric(float64(retained(func() any { return Build(in) }))/float64(n), "snapshot-B/node")
			runtime.KeepAlive(in) // else the inputs' heap is freed while measuring
		})
	}
}

// BenchmarkBuildWithMemo is BenchmarkBuild as the manager runs it: with a
// ResourceMemo that already holds every pod, as it does from the second
// build on while pods do not change.
func BenchmarkBuildWithMemo(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", n, n*benchPodsPerNode), func(b *testing.B) {
			in := benchInputs(n)
			in.Resources = NewResourceMemo()
			_ = Build(in)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = Build(in)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/node")
		})
	}
}

// BenchmarkPublish measures the per-cycle work after Build: swapping the
// snapshot in, Diff against the previous one and recording history. It
// reports the history's heap per node once it holds the default retention
// (300 s at 15 s: 21 readings per series).
func BenchmarkPublish(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", n, n*benchPodsPerNode), func(b *testing.B) {
			snap := Build(benchInputs(n))
			var history *History
			heap := retained(func() any {
				history = NewHistory(300*time.Second, DefaultHistoryPoints)
				for c := 0; c < 21; c++ {
					advance(snap, 15*time.Second)
					history.Record(snap)
				}
				return history
			})
			store := NewStore(StoreOptions{History: history})
			store.Publish(snap)
			b.ReportAllocs()
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				advance(snap, 15*time.Second)
				next := &model.MetricsSnapshot{Timestamp: snap.Timestamp, NodeMetrics: snap.NodeMetrics,
					PodMetrics: snap.PodMetrics, ClusterMetrics: snap.ClusterMetrics}
				b.StartTimer()
				cpu0 := cpuTime()
				store.Publish(next)
				cpu += cpuTime() - cpu0
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/node")
			b.ReportMetric(float64(heap)/float64(n), "history-B/node")
			runtime.KeepAlive(snap)
		})
	}
}

// advance moves every reading of s forward by d, as the next cycle would.
// Benchmarks only: published snapshots are never modified.
func advance(s *model.MetricsSnapshot, d time.Duration) {
	s.Timestamp = s.Timestamp.Add(d)
	for _, n := range s.NodeMetrics {
		n.Timestamp = n.Timestamp.Add(d)
	}
	for _, p := range s.PodMetrics {
		p.Timestamp = p.Timestamp.Add(d)
	}
}

// cpuTime is the process's user+system CPU time. Benchmarks report it
// beside wall time because CPU per cycle is what the per-node budget is
// stated in, and it stays meaningful on a shared, busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// retained returns how much heap what f returns keeps alive.
func retained(f func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}

// TestBenchInputs keeps the benchmark scenario honest: it must build a
// healthy cluster of the advertised size with every usage source in play.
func TestBenchInputs(t *testing.T) {
	s := Build(benchInputs(20))
	require.Len(t, s.PodMetrics, 20*benchPodsPerNode)
	for _, p := range s.PodMetrics {
		require.Equal(t, UsageMetricsServer, p.UsageSource, p.Key())
		require.NotZero(t, p.EphemeralStorageUsage, p.Key())
	}
	assert.Equal(t, 16, s.ClusterMetrics.TotalGPUs)
	assert.Equal(t, 8, s.ClusterMetrics.AvailableGPUs)
	assert.Equal(t, 20, s.ClusterMetrics.HealthyNodes)
}

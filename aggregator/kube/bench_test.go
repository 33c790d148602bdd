package kube

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// BenchmarkPollUsage reads 5000 pods (two containers each) and 100 nodes
// from the fake metrics API: the conversion cost per interval of a large
// cluster, without the network.
func BenchmarkPollUsage(b *testing.B) {
	mc := metricsfake.NewSimpleClientset()
	serveMetricsAPI(mc)
	now := metav1.NewTime(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	usage := func(cpu, mem string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	}
	for i := range 5000 {
		ns := fmt.Sprintf("team-%d", i%20)
		pm := &metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("api-%05d", i)},
			Timestamp:  now,
			Window:     metav1.Duration{Duration: 15 * time.Second},
			Containers: []metricsv1beta1.ContainerMetrics{
				{Name: "app", Usage: usage("123456789n", "251234Ki")},
				{Name: "istio-proxy", Usage: usage("4567890n", "40960Ki")},
			},
		}
		require.NoError(b, mc.Tracker().Create(podMetricsGVR, pm, ns))
	}
	for i := range 100 {
		nm := &metricsv1beta1.NodeMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%03d", i)},
			Timestamp:  now,
			Usage:      usage("23150123456n", "210234567Ki"),
		}
		require.NoError(b, mc.Tracker().Create(nodeMetricsGVR, nm, ""))
	}
	c := New(fake.NewClientset(), mc, discard())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		pods, nodes, st := c.PollUsage(ctx)
		if st.Status != model.SourceOK || len(pods) != 5000 || len(nodes) != 100 {
			b.Fatalf("status %s (%s), %d pods, %d nodes", st.Status, st.Reason, len(pods), len(nodes))
		}
	}
}

// BenchmarkCachedPodFootprint is the informer cache's heap per pod: 10,000
// pods of 100 Deployments (transform_test.go's fullPod: env, probes, the
// token volume, tolerations, managedFields) as decoded, and as the cache
// keeps them after stripForCache, one compactor for all as in Start.
func BenchmarkCachedPodFootprint(b *testing.B) {
	const n = 10000
	pods := func() []*corev1.Pod {
		out := make([]*corev1.Pod, n)
		for i := range out {
			p := fullPod(fmt.Sprintf("team-%d", i%10), fmt.Sprintf("web-%d-%d", i%100, i), fmt.Sprintf("node-%d", i%300))
			app := fmt.Sprintf("web-%d", i%100)
			p.Labels["app"] = app
			p.OwnerReferences[0].Name = app + "-abc"
			out[i] = p
		}
		return out
	}
	for _, tc := range []struct {
		name string
		keep func([]*corev1.Pod) any
	}{
		{"decoded", func(p []*corev1.Pod) any { return p }},
		{"cached", func(p []*corev1.Pod) any {
			c := newCompactor()
			out := make([]any, len(p))
			for i := range p {
				out[i], _ = c.transform(p[i])
			}
			return out
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var heap uint64
			for b.Loop() {
				heap = retainedHeap(func() any { return tc.keep(pods()) })
			}
			b.ReportMetric(float64(heap)/n, "heap-B/pod")
		})
	}
}

// retainedHeap is the live heap that f's result holds.
func retainedHeap(f func() any) uint64 {
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

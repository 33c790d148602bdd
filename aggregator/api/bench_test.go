package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const benchPodsPerNode = 30

// benchSnapshot is a snapshot of n nodes with 30 pods each, in 20
// namespaces over two zones, usage spread so that filters match a few
// percent of the cluster, as a real question would.
func benchSnapshot(n int) *model.MetricsSnapshot {
	s := &model.MetricsSnapshot{
		Timestamp:      t0,
		NodeMetrics:    make(map[string]*model.NodeMetrics, n),
		PodMetrics:     make(map[string]*model.PodMetrics, n*benchPodsPerNode),
		NetworkMetrics: []*model.NetworkMetrics{},
		ClusterMetrics: &model.ClusterMetrics{Timestamp: t0, TotalNodes: n, HealthStatus: model.HealthHealthy, Issues: []string{}},
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node-%05d", i)
		cpuRate, memRate := float64(i%97), float64(i%89)
		s.NodeMetrics[name] = &model.NodeMetrics{
			NodeName: name, Timestamp: t0,
			CPUCapacity: 8000, CPUUsage: int64(cpuRate * 80), CPUUsageRate: cpuRate,
			MemoryCapacity: 32 * gib, MemoryUsage: int64(memRate / 100 * float64(32*gib)), MemoryUsageRate: memRate,
			DiskCapacity: 100 * gib, DiskUsage: 40 * gib, DiskUsageRate: 40,
			GPUModels: []string{}, GPUUsage: []float64{}, GPUMemoryTotal: []int64{}, GPUMemoryUsed: []int64{},
			Healthy: memRate < 90, Conditions: []string{}, UsageSource: state.UsageAgent,
			Labels: map[string]string{
				"kubernetes.io/hostname":           name,
				"topology.kubernetes.io/zone":      fmt.Sprintf("zone-%c", 'a'+i%2),
				"node.kubernetes.io/instance-type": "m6i.2xlarge",
			},
		}
		for p := 0; p < benchPodsPerNode; p++ {
			ns, pod := fmt.Sprintf("ns-%d", (i+p)%20), fmt.Sprintf("pod-%05d-%02d", i, p)
			mem := int64((i*31+p*7)%100+1) * 5 * mib // 1–100% of a 500 MiB limit
			phase := "Running"
			if (i+p)%50 == 0 {
				phase = "Pending"
			}
			m := &model.PodMetrics{
				PodName: pod, Namespace: ns, NodeName: name, Timestamp: t0,
				CPUUsage: int64(10 + p), MemoryUsage: mem,
				CPURequest: 100, CPULimit: 500, MemoryRequest: 256 * mib, MemoryLimit: 500 * mib,
				CPULimited: true, MemoryLimited: true,
				CPUUsageRate: model.Rate(int64(10+p), 500), MemoryUsageRate: model.Rate(mem, 500*mib),
				Containers: []model.ContainerMetrics{{Name: "app", CPUUsage: int64(10 + p), MemoryUsage: mem,
					CPURequest: 100, CPULimit: 500, MemoryRequest: 256 * mib, MemoryLimit: 500 * mib,
					CPUUsageRate: model.Rate(int64(10+p), 500), MemoryUsageRate: model.Rate(mem, 500*mib), Ready: true, State: "running"}},
				Phase: phase, Ready: phase == "Running", Restarts: int32(p % 4), StartTime: t0,
				UID: "uid-" + pod, UsageSource: state.UsageMetricsServer,
				Labels: map[string]string{"app": fmt.Sprintf("app-%d", p)}, OwnerKind: "ReplicaSet", OwnerName: fmt.Sprintf("app-%d-rs", p),
			}
			s.PodMetrics[m.Key()] = m
		}
	}
	return s
}

// benchHandler serves snap, with the index for it built already: the
// index is built once per snapshot (every 15 s), BenchmarkIndex measures it.
func benchHandler(b *testing.B, snap *model.MetricsSnapshot) http.Handler {
	b.Helper()
	st := state.NewStore(state.StoreOptions{})
	st.Publish(snap)
	h := New(st, Options{})
	if rec := get(h, "/api/v1/metrics/pods?limit=1"); rec.Code != http.StatusOK {
		b.Fatalf("warm-up: %d %s", rec.Code, rec.Body.String())
	}
	return h
}

// discardWriter is a ResponseWriter that counts and drops the body, so
// benchmarks measure the handler rather than a recorder's buffer.
type discardWriter struct {
	h     http.Header
	code  int
	bytes int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.bytes += len(p); return len(p), nil }

func runRequests(b *testing.B, h http.Handler, target string) {
	b.Helper()
	runRequest(b, h, httptest.NewRequest(http.MethodGet, target, nil))
}

func runRequest(b *testing.B, h http.Handler, req *http.Request) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	var w discardWriter
	for i := 0; i < b.N; i++ {
		w = discardWriter{h: http.Header{}}
		h.ServeHTTP(&w, req)
	}
	b.StopTimer()
	if w.code != http.StatusOK && w.code != 0 {
		b.Fatalf("%s: status %d", req.URL, w.code)
	}
	b.ReportMetric(float64(w.bytes), "resp-B")
}

var benchNodeCounts = []int{1000, 5000}

// BenchmarkNodesFiltered: questions 2 and 3 on a large cluster.
func BenchmarkNodesFiltered(b *testing.B) {
	for _, n := range benchNodeCounts {
		h := benchHandler(b, benchSnapshot(n))
		for _, q := range []string{
			"sort=cpu&limit=10",
			"pressure=true",
			"label=topology.kubernetes.io/zone=zone-a&healthy=true&sort=memory&order=asc&limit=20",
			// A page of the web view, in the middle of the list.
			"limit=50&offset=2500",
			"sort=cpu&limit=50&offset=2500",
		} {
			b.Run(fmt.Sprintf("nodes=%d/%s", n, q), func(b *testing.B) {
				runRequests(b, h, "/api/v1/metrics/nodes?"+q)
			})
		}
	}
}

// BenchmarkPodsFiltered: questions 5, 6, 8 and 12 on a large cluster.
func BenchmarkPodsFiltered(b *testing.B) {
	for _, n := range benchNodeCounts {
		h := benchHandler(b, benchSnapshot(n))
		for _, q := range []string{
			"namespace=ns-7&phase=Running&sort=memory&limit=20",
			"minMemoryLimitRate=90&sort=memoryRate&limit=50",
			"node=node-00042",
			"name=pod-00042-07",
			"phase=!Running&limit=100",
			"sort=restarts&limit=10",
			"limit=50&offset=50000", // a page of the web view
		} {
			b.Run(fmt.Sprintf("pods=%d/%s", n*benchPodsPerNode, q), func(b *testing.B) {
				runRequests(b, h, "/api/v1/metrics/pods?"+q)
			})
		}
	}
}

// BenchmarkSnapshotJSON is the whole snapshot: streamed from the build
// per request (how it was served before it was encoded once per build),
// encoded and compressed (once per build, by its first request), and
// served from that encoding to a client that takes gzip and to one that
// does not (inflated on the way out).
func BenchmarkSnapshotJSON(b *testing.B) {
	for _, n := range benchNodeCounts {
		h := benchHandler(b, benchSnapshot(n))
		name := fmt.Sprintf("nodes=%d/pods=%d", n, n*benchPodsPerNode)
		ix := buildIndex(benchSnapshot(n))
		b.Run(name+"/streamed-per-request", func(b *testing.B) {
			b.ReportAllocs()
			var w discardWriter
			for i := 0; i < b.N; i++ {
				w = discardWriter{h: http.Header{}}
				w.WriteHeader(http.StatusOK)
				st := newJSONStream(&w)
				writeSnapshot(st, ix)
				if err := st.finish(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(w.bytes), "resp-B")
		})
		b.Run(name+"/encode-once-per-build", func(b *testing.B) {
			b.ReportAllocs()
			var body *answer
			for i := 0; i < b.N; i++ {
				var err error
				if body, err = encodeAnswer(func(st *jsonStream) { writeSnapshot(st, ix) }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(body.size), "gzip-B")
		})
		get(h, RouteSnapshot) // encode before timing
		b.Run(name+"/served-gzip", func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, RouteSnapshot, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			runRequest(b, h, req)
		})
		b.Run(name+"/served-identity", func(b *testing.B) {
			runRequests(b, h, RouteSnapshot)
		})
	}
}

// BenchmarkIndex is the once-per-snapshot cost of the lookup structures
// the first request after a new snapshot pays.
func BenchmarkIndex(b *testing.B) {
	for _, n := range benchNodeCounts {
		snap := benchSnapshot(n)
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", n, n*benchPodsPerNode), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = buildIndex(snap)
			}
		})
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// checkGolden compares got with testdata/<name>.golden, rewriting it with
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./aggregator/api -update to create it")
	assert.Equal(t, string(want), string(got))
}

// indent pretty-prints a JSON body for golden files (responses are compact).
func indent(t *testing.T, body []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, json.Indent(&out, body, "", "  "), "body is not JSON: %s", body)
	out.WriteByte('\n')
	return out.Bytes()
}

func TestEndpointsGolden(t *testing.T) {
	h := New(fixtureStore(t), Options{ObjectMetrics: true})
	tests := []struct {
		golden, target string
		status         int
	}{
		{"cluster", "/api/v1/metrics/cluster", http.StatusOK},
		{"nodes", "/api/v1/metrics/nodes", http.StatusOK},
		{"nodes_sort_cpu_limit_3", "/api/v1/metrics/nodes?sort=cpu&limit=3", http.StatusOK},
		{"nodes_zone_b_unhealthy", "/api/v1/metrics/nodes?label=topology.kubernetes.io/zone=zone-b&healthy=false", http.StatusOK},
		{"node", "/api/v1/metrics/nodes/node-3", http.StatusOK},
		{"node_history", "/api/v1/metrics/nodes/node-3/history", http.StatusOK},
		{"pods", "/api/v1/metrics/pods", http.StatusOK},
		{"pods_default_not_running", "/api/v1/metrics/pods?namespace=default&phase=!Running", http.StatusOK},
		{"pod", "/api/v1/metrics/pods/default/my-pod", http.StatusOK},
		{"pod_history", "/api/v1/metrics/pods/default/my-pod/history", http.StatusOK},
		{"snapshot", "/api/v1/metrics/snapshot", http.StatusOK},
		{"healthz", "/healthz", http.StatusOK},
		{"readyz", "/readyz", http.StatusOK},
		{"error_unknown_node", "/api/v1/metrics/nodes/nope", http.StatusNotFound},
		{"error_unknown_pod", "/api/v1/metrics/pods/default/nope/history", http.StatusNotFound},
		{"error_unknown_param", "/api/v1/metrics/nodes?sort=cpu&colour=red", http.StatusBadRequest},
		{"error_bad_limit", "/api/v1/metrics/pods?limit=0", http.StatusBadRequest},
		{"error_unknown_path", "/api/v1/metrics/volumes", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			rec := get(h, tt.target)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			checkGolden(t, tt.golden, indent(t, rec.Body.Bytes()))
		})
	}
}

func TestMetricsGolden(t *testing.T) {
	h := New(fixtureStore(t), Options{ObjectMetrics: true})
	rec := get(h, "/metrics")
	require.Equal(t, http.StatusOK, rec.Code)
	// Go runtime, process and request-timing series vary run to run; the
	// snapshot's gauges must not.
	var keep []string
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if strings.HasPrefix(name, MetricsNamespace+"_") && !strings.HasPrefix(name, MetricsNamespace+"_http_") {
			keep = append(keep, line)
		}
	}
	checkGolden(t, "metrics", []byte(strings.Join(keep, "\n")+"\n"))
}

func TestMetricsSwitchesAndSelfMetrics(t *testing.T) {
	tests := []struct {
		name    string
		objects bool
	}{{"object metrics on", true}, {"object metrics off", false}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "k8smon_vm_watch_errors_total", Help: "test"})
			binary := prometheus.NewRegistry()
			binary.MustRegister(collectors.NewGoCollector(),
				prometheus.NewCounter(prometheus.CounterOpts{Name: "k8smon_ingest_reports_total", Help: "test"}))
			h := New(fixtureStore(t), Options{ObjectMetrics: tt.objects, Collectors: []prometheus.Collector{extra}, Gatherer: binary})
			get(h, "/api/v1/metrics/nodes/node-1")
			get(h, "/api/v1/metrics/nodes/nope")
			do(h, http.MethodPost, "/api/v1/metrics/cluster")
			get(h, "/no/such/thing")
			body := get(h, "/metrics").Body.String()
			assert.Equal(t, tt.objects, strings.Contains(body, `k8smon_node_cpu_usage_cores{node="node-1"}`))
			assert.Equal(t, tt.objects, strings.Contains(body, `k8smon_pod_restarts_total{namespace="default",node="node-2",pod="my-pod"} 7`))
			assert.Contains(t, body, `k8smon_cluster_nodes_healthy 3`)
			assert.Contains(t, body, `k8smon_http_requests_total{code="200",route="/api/v1/metrics/nodes/{name}"} 1`)
			assert.Contains(t, body, `k8smon_http_requests_total{code="404",route="/api/v1/metrics/nodes/{name}"} 1`)
			assert.Contains(t, body, `k8smon_http_requests_total{code="405",route="/api/v1/metrics/cluster"} 1`)
			assert.Contains(t, body, `k8smon_http_requests_total{code="404",route="unmatched"} 1`)
			assert.Contains(t, body, `k8smon_http_request_duration_seconds_bucket{code="200",route="/api/v1/metrics/nodes/{name}",le="+Inf"} 1`)
			assert.Contains(t, body, "k8smon_vm_watch_errors_total 0")
			assert.Contains(t, body, "k8smon_ingest_reports_total 0")
			assert.Equal(t, 1, strings.Count(body, "# TYPE go_goroutines "), "one copy of the runtime metrics")
		})
	}
}

// TestSnapshotStreamEqualsMarshal: the streamed snapshot is exactly the
// snapshot's JSON (without HTML escaping), so clients may decode it into
// MetricsSnapshot.
func TestSnapshotStreamEqualsMarshal(t *testing.T) {
	st := fixtureStore(t)
	rec := get(New(st, Options{}), "/api/v1/metrics/snapshot")
	require.Equal(t, http.StatusOK, rec.Code)
	want, err := marshal(st.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, string(want), rec.Body.String())
	assert.Contains(t, rec.Body.String(), "93.1% >= 90.0%")

	var back model.MetricsSnapshot
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &back))
	assert.Len(t, back.PodMetrics, len(fixturePods))
}

func TestListShape(t *testing.T) {
	h := New(fixtureStore(t), Options{})
	tests := []struct {
		target       string
		count, total int
		first        string
	}{
		{"/api/v1/metrics/nodes", 5, 5, "gpu-1"},
		{"/api/v1/metrics/nodes?order=desc", 5, 5, "node-4"},
		{"/api/v1/metrics/nodes?limit=2", 2, 5, "gpu-1"},
		{"/api/v1/metrics/nodes?limit=2&offset=2", 2, 5, "node-2"},
		{"/api/v1/metrics/nodes?offset=4", 1, 5, "node-4"},
		{"/api/v1/metrics/nodes?offset=9&limit=3", 0, 5, ""},
		{"/api/v1/metrics/nodes?sort=cpu&limit=1&offset=1", 1, 5, "node-2"},
		{"/api/v1/metrics/pods?sort=cpu&limit=1&offset=1", 1, 8, "default/web-2"},
		{"/api/v1/metrics/pods?namespace=default&order=desc&offset=5", 1, 6, "default/batch-1"},
		{"/api/v1/metrics/nodes?sort=memory&order=asc&limit=1", 1, 5, "gpu-1"},
		{"/api/v1/metrics/nodes?sort=gpu", 5, 5, "gpu-1"},
		{"/api/v1/metrics/nodes?sort=disk", 5, 5, "gpu-1"},
		{"/api/v1/metrics/nodes?label=nvidia.com/gpu.product", 1, 1, "gpu-1"},
		{"/api/v1/metrics/nodes?label=topology.kubernetes.io/zone=zone-a&label=kubernetes.io/hostname=node-2", 1, 1, "node-2"},
		{"/api/v1/metrics/nodes?stale=true", 0, 0, ""},
		{"/api/v1/metrics/nodes?pressure=false&healthy=true", 3, 3, "gpu-1"},
		{"/api/v1/metrics/pods", 8, 8, "default/batch-1"},
		{"/api/v1/metrics/pods?node=node-1", 3, 3, "default/batch-1"},
		{"/api/v1/metrics/pods?node=node-1&namespace=kube-system", 1, 1, "kube-system/coredns-1"},
		{"/api/v1/metrics/pods?sort=cpu&limit=1", 1, 8, "ml/train"},
		{"/api/v1/metrics/pods?sort=cpu&order=asc&limit=1", 1, 8, "kube-system/coredns-1"},
		{"/api/v1/metrics/pods?sort=restarts&limit=1", 1, 8, "default/my-pod"},
		{"/api/v1/metrics/pods?sort=cpuRate&limit=1", 1, 8, "default/web-2"},
		{"/api/v1/metrics/pods?minCpuLimitRate=50", 2, 2, "default/web-2"},
		{"/api/v1/metrics/pods?phase=running&namespace=ml", 1, 1, "ml/train"},
		{"/api/v1/metrics/pods?namespace=nope", 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(h, tt.target)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var l struct {
				Count int               `json:"count"`
				Total int               `json:"total"`
				Items []json.RawMessage `json:"items"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &l))
			assert.Equal(t, tt.count, l.Count)
			assert.Equal(t, tt.total, l.Total)
			require.Len(t, l.Items, tt.count)
			if tt.count == 0 {
				assert.Contains(t, rec.Body.String(), `"items":[]`)
				return
			}
			var first struct{ NodeName, Namespace, PodName string }
			require.NoError(t, json.Unmarshal(l.Items[0], &first))
			got := first.NodeName
			if first.PodName != "" {
				got = first.Namespace + "/" + first.PodName
			}
			assert.Equal(t, tt.first, got)
		})
	}
}

func TestErrors(t *testing.T) {
	h := New(fixtureStore(t), Options{})
	tests := []struct {
		method, target string
		status         int
		msg            string
	}{
		{"GET", "/api/v1/metrics/nodes/nope", 404, `node "nope" not found`},
		{"GET", "/api/v1/metrics/nodes/nope/history", 404, `node "nope" not found`},
		{"GET", "/api/v1/metrics/pods/default/nope", 404, "pod default/nope not found"},
		{"GET", "/api/v1/metrics/pods/default", 404, "no such endpoint: /api/v1/metrics/pods/default"},
		{"GET", "/api/v1/metrics/nodes?sort=name", 400, `query parameter sort="name": want one of cpu, memory, disk, gpu`},
		{"GET", "/api/v1/metrics/nodes?sort=cpu&sort=memory", 400, `query parameter "sort" given 2 times, want once`},
		{"GET", "/api/v1/metrics/nodes?healthy=maybe", 400, `query parameter healthy="maybe": want true or false`},
		{"GET", "/api/v1/metrics/nodes?label==x", 400, `query parameter label="=x": want key=value or key`},
		{"GET", "/api/v1/metrics/nodes?limit=10001", 400, `query parameter limit="10001": want an integer from 1 to 10000`},
		{"GET", "/api/v1/metrics/nodes?order=up", 400, `query parameter order="up": want one of asc, desc`},
		{"GET", "/api/v1/metrics/nodes?namespace=default", 400, `unknown query parameter "namespace" (allowed: sort, order, limit, offset, pressure, healthy, stale, label)`},
		{"GET", "/api/v1/metrics/nodes?offset=-1", 400, `query parameter offset="-1": want an integer from 0 to 16777216`},
		{"GET", "/api/v1/metrics/pods?offset=99999999999", 400, `query parameter offset="99999999999": want an integer from 0 to 16777216`},
		{"GET", "/api/v1/metrics/pods?phase=Sleeping", 400, `query parameter phase="Sleeping": want one of Pending, Running, Succeeded, Failed, Unknown, or one of them after !`},
		{"GET", "/api/v1/metrics/pods?minMemoryLimitRate=-1", 400, `query parameter minMemoryLimitRate="-1": want a percentage such as 90 (0 or more)`},
		{"GET", "/api/v1/metrics/pods?minCpuLimitRate=NaN", 400, `query parameter minCpuLimitRate="NaN": want a percentage such as 90 (0 or more)`},
		{"GET", "/api/v1/metrics/pods?namespace=", 400, `query parameter "namespace" is empty`},
		{"GET", "/api/v1/metrics/pods?%zz", 400, `malformed query string: invalid URL escape "%zz"`},
		{"GET", "/api/v1/metrics/cluster?verbose=1", 400, `unknown query parameter "verbose": this endpoint takes none`},
		{"POST", "/api/v1/metrics/nodes", 405, "method POST not allowed: use GET"},
		{"DELETE", "/api/v1/metrics/pods/default/my-pod", 405, "method DELETE not allowed: use GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := do(h, tt.method, tt.target)
			assert.Equal(t, tt.status, rec.Code)
			var body errorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
			assert.Equal(t, errorBody{Error: tt.msg, Status: tt.status}, body)
			if tt.status == 405 {
				assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
			}
		})
	}
}

func TestHead(t *testing.T) {
	rec := do(New(fixtureStore(t), Options{}), http.MethodHead, "/api/v1/metrics/cluster")
	assert.Equal(t, http.StatusOK, rec.Code)
}

func TestNoSnapshotYet(t *testing.T) {
	st := state.NewStore(state.StoreOptions{History: state.NewHistory(time.Minute, 10)})
	h := New(st, Options{ObjectMetrics: true})
	for _, target := range []string{
		"/api/v1/metrics/cluster", "/api/v1/metrics/nodes", "/api/v1/metrics/nodes/a",
		"/api/v1/metrics/nodes/a/history", "/api/v1/metrics/pods", "/api/v1/metrics/pods/a/b",
		"/api/v1/metrics/pods/a/b/history", "/api/v1/metrics/snapshot", "/readyz",
	} {
		t.Run(target, func(t *testing.T) {
			rec := get(h, target)
			assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
			assert.JSONEq(t, `{"error":"no snapshot yet","status":503}`, rec.Body.String())
		})
	}
	assert.Equal(t, http.StatusOK, get(h, "/healthz").Code)
	assert.Equal(t, http.StatusOK, get(h, "/metrics").Code)
}

// probeProvider is a Provider whose probes answer as told.
type probeProvider struct {
	state.Store
	ready, healthy         bool
	readyWhy, unhealthyWhy string
}

func (p *probeProvider) Ready() (bool, string)   { return p.ready, p.readyWhy }
func (p *probeProvider) Healthy() (bool, string) { return p.healthy, p.unhealthyWhy }

func TestProbes(t *testing.T) {
	tests := []struct {
		name   string
		p      *probeProvider
		target string
		status int
		body   string
	}{
		{"ready", &probeProvider{ready: true}, "/readyz", 200, `{"status":"ready"}`},
		{"standalone is ready and says so", &probeProvider{ready: true, readyWhy: state.StandaloneReason}, "/readyz", 200,
			`{"status":"ready","reason":"standalone mode: no cluster, agents only"}`},
		{"not ready", &probeProvider{readyWhy: "no snapshot yet"}, "/readyz", 503, `{"error":"no snapshot yet","status":503}`},
		{"not ready without reason", &probeProvider{}, "/readyz", 503, `{"error":"not ready","status":503}`},
		{"healthy", &probeProvider{healthy: true}, "/healthz", 200, `{"status":"ok"}`},
		{"wedged", &probeProvider{unhealthyWhy: "no snapshot built for 2m0s (limit 1m0s)"}, "/healthz", 503,
			`{"error":"no snapshot built for 2m0s (limit 1m0s)","status":503}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(New(tt.p, Options{}), tt.target)
			assert.Equal(t, tt.status, rec.Code)
			assert.JSONEq(t, tt.body, rec.Body.String())
		})
	}
}

func TestStandaloneStore(t *testing.T) {
	st := state.NewStore(state.StoreOptions{Standalone: true})
	in := fixtureInputs(2)
	in.Nodes, in.Pods = nil, nil
	st.Publish(state.Build(in))
	rec := get(New(st, Options{}), "/readyz")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), state.StandaloneReason)
}

// panicProvider panics from Snapshot: a stand-in for a bug.
type panicProvider struct{ probeProvider }

func (*panicProvider) Snapshot() *model.MetricsSnapshot { panic("boom") }

func TestRecoverAnswers500AndLogs(t *testing.T) {
	var logs bytes.Buffer
	h := New(&panicProvider{}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	rec := get(h, "/api/v1/metrics/cluster")
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.JSONEq(t, `{"error":"internal error","status":500}`, rec.Body.String())
	assert.Contains(t, logs.String(), "handler panicked")
	assert.Contains(t, logs.String(), "boom")
}

func TestExtraRoutes(t *testing.T) {
	h := New(fixtureStore(t), Options{Extra: func(mux *http.ServeMux) {
		mux.HandleFunc("GET /api/vms", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"count":0,"items":[]}`)
		})
	}})
	rec := get(h, "/api/vms")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, `{"count":0,"items":[]}`, rec.Body.String())
	body := get(h, "/metrics").Body.String()
	assert.Contains(t, body, `k8smon_http_requests_total{code="200",route="GET /api/vms"} 1`)
}

// TestHistoryWithoutSeries: a node known to the snapshot but without a
// series (history off) has an empty history, not a 404.
func TestHistoryWithoutSeries(t *testing.T) {
	st := state.NewStore(state.StoreOptions{})
	st.Publish(state.Build(fixtureInputs(2)))
	h := New(st, Options{})
	rec := get(h, "/api/v1/metrics/nodes/node-1/history")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"node":"node-1","count":0,"items":[]}`, rec.Body.String())
	rec = get(h, "/api/v1/metrics/pods/default/web-1/history")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"namespace":"default","name":"web-1","count":0,"items":[]}`, rec.Body.String())
}

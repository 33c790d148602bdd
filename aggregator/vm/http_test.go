package vm

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var (
	update = flag.Bool("update", false, "rewrite the golden files under testdata/")
)

func serve(vms []*model.VMMetrics) *http.ServeMux {
	mux := http.NewServeMux()
	RegisterRoutes(mux, func() []*model.VMMetrics { return vms })
	return mux
}

func get(t testing.TB, mux http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func TestGolden(t *testing.T) {
	vms := Compute(fixtureObjects(t), fixturePods(), fixtureUsage(), fixtureReports(t), testNow)
	mux := serve(vms)
	tests := []struct {
		golden, target string
	}{
		{"list.golden", "/api/vms"},
		{"vm.golden", "/api/vms/ubuntu-vm"},
		{"vm-pending.golden", "/api/vms/win-vm?namespace=vms"},
		{"stats.golden", "/api/vms/stats"},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			rec := get(t, mux, tt.target)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			// Indented, not re-encoded, so the golden keeps the answer's
			// own field order.
			var buf bytes.Buffer
			require.NoError(t, json.Indent(&buf, rec.Body.Bytes(), "", "  "))
			got := buf.Bytes()
			path := filepath.Join("testdata", tt.golden)
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./aggregator/vm -update to create it")
			assert.Equal(t, string(want), string(got))
		})
	}
}

// TestMetricsNull checks the seed's contract: metrics is null, not
// absent, for a VM that is not running; diskUsage null when unknown.
func TestMetricsNull(t *testing.T) {
	vms := []*model.VMMetrics{
		{ID: "a", Name: "off", Namespace: "ns", Status: "Succeeded", CPU: 1, Memory: "1Gi"},
		{ID: "b", Name: "on", Namespace: "ns", Status: "Running", CPU: 1, Memory: "1Gi", Metrics: &model.VMUsage{CPUUsage: 10, MemoryUsage: 20}},
	}
	rec := get(t, serve(vms), "/api/vms")
	require.Equal(t, http.StatusOK, rec.Code)
	var got []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Len(t, got, 2)
	require.Contains(t, got[0], "metrics")
	assert.Nil(t, got[0]["metrics"])
	m := got[1]["metrics"].(map[string]any)
	require.Contains(t, m, "diskUsage")
	assert.Nil(t, m["diskUsage"])
}

func TestListEmptyIsArray(t *testing.T) {
	for _, vms := range [][]*model.VMMetrics{nil, {}} {
		rec := get(t, serve(vms), "/api/vms")
		require.Equal(t, http.StatusOK, rec.Code)
		assert.JSONEq(t, `[]`, rec.Body.String())
	}
	mux := http.NewServeMux()
	RegisterRoutes(mux, nil)
	assert.JSONEq(t, `[]`, get(t, mux, "/api/vms").Body.String())
}

func TestListQuery(t *testing.T) {
	disk := func(v float64) *float64 { return &v }
	vms := []*model.VMMetrics{
		{Name: "a", Namespace: "ns1", Status: "Running", Metrics: &model.VMUsage{CPUUsage: 50, MemoryUsage: 10, DiskUsage: disk(70)}},
		{Name: "b", Namespace: "ns1", Status: "Running", Metrics: &model.VMUsage{CPUUsage: 20, MemoryUsage: 90}},
		{Name: "c", Namespace: "ns2", Status: "Scheduling"},
		{Name: "d", Namespace: "ns2", Status: "Running", Metrics: &model.VMUsage{CPUUsage: 80, MemoryUsage: 40, DiskUsage: disk(10)}},
		{Name: "e", Namespace: "ns1", Status: "Failed"},
	}
	mux := serve(vms)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"a", "b", "c", "d", "e"}},
		{"?namespace=ns2", []string{"c", "d"}},
		{"?status=running", []string{"a", "b", "d"}},
		{"?status=Running&namespace=ns1", []string{"a", "b"}},
		{"?namespace=nowhere", []string{}},
		{"?sort=name&order=desc", []string{"d", "c", "e", "b", "a"}},
		// Without usage, e and c come last in both orders, by
		// namespace and name; for disk, b (no disk numbers) too.
		{"?sort=cpu", []string{"b", "a", "d", "e", "c"}},
		{"?sort=cpu&order=desc", []string{"d", "a", "b", "e", "c"}},
		{"?sort=memory&order=desc", []string{"b", "d", "a", "e", "c"}},
		{"?sort=disk&order=desc", []string{"a", "d", "b", "e", "c"}},
		{"?sort=disk&order=asc", []string{"d", "a", "b", "e", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			rec := get(t, mux, "/api/vms"+tt.query)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var got []model.VMMetrics
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			names := []string{}
			for _, vm := range got {
				names = append(names, vm.Name)
			}
			assert.Equal(t, tt.want, names)
		})
	}
	// Sorting a copy: the snapshot's order stays.
	assert.Equal(t, "a", vms[0].Name)
	assert.Equal(t, "e", vms[4].Name)
}

func TestBadRequests(t *testing.T) {
	mux := serve([]*model.VMMetrics{{Name: "a", Namespace: "ns"}})
	tests := []struct {
		target, mention string
	}{
		{"/api/vms?limit=3", `"limit"`},
		{"/api/vms?sort=size", `"size"`},
		{"/api/vms?order=up", `"up"`},
		{"/api/vms?namespace=", `"namespace" is empty`},
		{"/api/vms?namespace=a&namespace=b", `"namespace" given 2 times`},
		{"/api/vms?sort=%zz", "malformed query"},
		{"/api/vms/stats?status=Running", `"status"`},
		{"/api/vms/a?sort=cpu", `"sort"`},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(t, mux, tt.target)
			require.Equal(t, http.StatusBadRequest, rec.Code)
			var body ErrorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, http.StatusBadRequest, body.Status)
			assert.Contains(t, body.Error, tt.mention)
		})
	}
}

func TestGetVM(t *testing.T) {
	vms := []*model.VMMetrics{
		{ID: "1", Name: "web", Namespace: "prod", Source: SourceKubeVirt},
		{ID: "2", Name: "web", Namespace: "test", Source: SourceKubeVirt},
		{ID: "3", Name: "db", Namespace: "prod", Source: SourceKubeVirt},
		{ID: "4", Name: "db", Namespace: "prod", Source: "wukong"},
		{ID: "5", Name: "stats", Namespace: "prod", Source: SourceKubeVirt},
	}
	mux := serve(vms)
	tests := []struct {
		target string
		code   int
		id     string
		body   ErrorBody
	}{
		{target: "/api/vms/web?namespace=test", code: 200, id: "2"},
		{target: "/api/vms/db?source=wukong", code: 200, id: "4"},
		{target: "/api/vms/web", code: 409, body: ErrorBody{Status: 409, Namespaces: []string{"prod", "test"},
			Error: `vm "web" exists in namespaces prod, test: add ?namespace=`}},
		{target: "/api/vms/db?namespace=prod", code: 409, body: ErrorBody{Status: 409, Sources: []string{"kubevirt", "wukong"},
			Error: `vm "db" exists in sources kubevirt, wukong: add ?source=`}},
		{target: "/api/vms/nope", code: 404, body: ErrorBody{Status: 404, Error: `vm "nope" not found`}},
		{target: "/api/vms/web?namespace=dev", code: 404, body: ErrorBody{Status: 404, Error: `vm "web" not found in namespace "dev"`}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := get(t, mux, tt.target)
			require.Equal(t, tt.code, rec.Code, rec.Body.String())
			if tt.code == http.StatusOK {
				var vm model.VMMetrics
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &vm))
				assert.Equal(t, tt.id, vm.ID)
				return
			}
			var body ErrorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.body, body)
		})
	}
	t.Run("stats wins over a VM named stats", func(t *testing.T) {
		rec := get(t, mux, "/api/vms/stats")
		require.Equal(t, http.StatusOK, rec.Code)
		var s StatsView
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &s))
		assert.Equal(t, 5, s.Total)
	})
	t.Run("only GET", func(t *testing.T) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/vms", nil))
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	})
}

// TestMethodNotAllowedBesideCatchAll: on the aggregator's mux, whose "/"
// answers every unknown path with 404, another method on a VM path is
// still a JSON 405 (docs/questions.md), not a 404.
func TestMethodNotAllowedBesideCatchAll(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no such endpoint", http.StatusNotFound) })
	RegisterRoutes(mux, func() []*model.VMMetrics { return nil })
	for _, tt := range []struct{ method, path string }{
		{http.MethodPost, "/api/vms"}, {http.MethodDelete, "/api/vms/vm-1"}, {http.MethodPut, "/api/vms/stats"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
			assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
			var body ErrorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, http.StatusMethodNotAllowed, body.Status)
		})
	}
	for _, path := range []string{"/api/vmsx", "/api/vms/a/b"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, http.StatusNotFound, rec.Code, "%s stays 404", path)
	}
}

func TestStats(t *testing.T) {
	vm := func(status string, cpu int64, mem int64) *model.VMMetrics {
		return &model.VMMetrics{Status: status, CPU: cpu, Detail: &model.VMDetail{AllocatedMemory: mem}}
	}
	tests := []struct {
		name string
		vms  []*model.VMMetrics
		want StatsView
	}{
		{name: "none", want: StatsView{TotalMemory: "0Gi", ByStatus: map[string]int{}}},
		{
			// 4 + 2 + 8 + 1 + 1 = 16 cores; 8 + 2 + 16 + 1 + 1 = 28Gi.
			name: "seed buckets",
			vms: []*model.VMMetrics{
				vm("Running", 4, 8*gib), vm("Scheduling", 2, 2*gib), vm("Failed", 8, 16*gib),
				vm("Succeeded", 1, gib), vm("Unknown", 1, gib), nil,
			},
			want: StatsView{Total: 5, Running: 1, Stopped: 1, Error: 1, Pending: 2, TotalCPU: 16,
				TotalMemory: "28Gi", TotalMemoryBytes: 28 * gib,
				ByStatus: map[string]int{"Running": 1, "Scheduling": 1, "Failed": 1, "Succeeded": 1, "Unknown": 1}},
		},
		{
			// 1Gi + 512Mi is not whole GiB: written exactly, not rounded.
			name: "fractional GiB",
			vms:  []*model.VMMetrics{vm("Running", 1, gib), vm("Stopped", 1, gib/2)},
			want: StatsView{Total: 2, Running: 1, Stopped: 1, TotalCPU: 2, TotalMemory: "1536Mi", TotalMemoryBytes: gib * 3 / 2,
				ByStatus: map[string]int{"Running": 1, "Stopped": 1}},
		},
		{
			name: "memory from the quantity when there is no detail",
			vms:  []*model.VMMetrics{{Status: "Running", CPU: 2, Memory: "4Gi"}, {Status: "Running", Memory: "garbage"}},
			want: StatsView{Total: 2, Running: 2, TotalCPU: 2, TotalMemory: "4Gi", TotalMemoryBytes: 4 * gib,
				ByStatus: map[string]int{"Running": 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Stats(tt.vms))
		})
	}
}

func BenchmarkListVMs(b *testing.B) {
	vms := benchVMs(1000)
	mux := serve(vms)
	req := httptest.NewRequest(http.MethodGet, "/api/vms", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkListVMsSorted(b *testing.B) {
	mux := serve(benchVMs(1000))
	req := httptest.NewRequest(http.MethodGet, "/api/vms?sort=cpu&order=desc", nil)
	b.ReportAllocs()
	for b.Loop() {
		mux.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// benchVMs computes n running VMs, each with a launcher pod, usage and two
// PVCs, so the answer is as large as a real one.
func benchVMs(n int) []*model.VMMetrics {
	objs, pods, usage, reports := benchInputs(n, n)
	return Compute(objs, pods, usage, reports, testNow)
}

func benchName(i int) string { return fmt.Sprintf("vm-%04d", i) }

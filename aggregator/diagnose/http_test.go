package diagnose

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/mcp"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
)

func serve(t *testing.T, d *Diagnoser) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	RegisterRoutes(mux, d, HTTPOptions{Registerer: prometheus.NewRegistry()})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestHTTP(t *testing.T) {
	h := newHarness(t)
	srv := serve(t, h.d)

	code, hdr, body := get(t, srv.URL+"/api/v1/diagnose/pods/shop/api-7d9f-oom")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "application/json", hdr.Get("Content-Type"))
	var dg Diagnosis
	require.NoError(t, json.Unmarshal([]byte(body), &dg))
	assert.Equal(t, RulePodCrashLoopOOM, dg.Rule)

	code, hdr, body = get(t, srv.URL+"/api/v1/diagnose/nodes/gpu-node?format=text&max_tokens=100")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "text/plain; charset=utf-8", hdr.Get("Content-Type"))
	assert.LessOrEqual(t, len(body), 400)
	assert.True(t, strings.HasPrefix(body, "CRITICAL node gpu-node: GPU errors"), body)

	code, _, body = get(t, srv.URL+"/api/v1/diagnose/pods/shop/big?format=text")
	require.Equal(t, http.StatusOK, code)
	assert.LessOrEqual(t, len(body), mcp.MaxBytes(mcp.DefaultMaxTokens))
	assert.Contains(t, body, "[rule pod-pending-resources]")

	for _, tt := range []struct {
		path string
		code int
	}{
		{"/api/v1/diagnose/pods/shop/nope", http.StatusNotFound},
		{"/api/v1/diagnose/nodes/nope", http.StatusNotFound},
		{"/api/v1/diagnose/nodes/gpu-node?format=yaml", http.StatusBadRequest},
		{"/api/v1/diagnose/nodes/gpu-node?max_tokens=5", http.StatusBadRequest},
		{"/api/v1/diagnose/nodes/gpu-node?format=text&max_tokens=99", http.StatusBadRequest},
		{"/api/v1/diagnose/nodes/gpu-node?format=text&max_tokens=50001", http.StatusBadRequest},
		{"/api/v1/diagnose/nodes/gpu-node?format=text&format=text", http.StatusBadRequest},
		{"/api/v1/diagnose/nodes/gpu-node?verbose=1", http.StatusBadRequest},
		{"/api/v1/diagnose/nodes/" + strings.Repeat("n", 254), http.StatusBadRequest},
	} {
		code, hdr, body := get(t, srv.URL+tt.path)
		assert.Equal(t, tt.code, code, tt.path)
		assert.Equal(t, "application/json", hdr.Get("Content-Type"), tt.path)
		var e errorBody
		require.NoError(t, json.Unmarshal([]byte(body), &e), tt.path)
		assert.Equal(t, tt.code, e.Status)
		assert.NotEmpty(t, e.Error)
	}

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/diagnose/nodes/gpu-node", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	empty := serve(t, New(Options{State: state.NewStore(state.StoreOptions{})}))
	code, _, _ = get(t, empty.URL+"/api/v1/diagnose/nodes/n")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

// FuzzHTTP sends any query and path to both routes: the answer is 200,
// 400 or 404 (or the mux's redirect to a clean path), never a 500 or a
// panic, and text stays within its budget.
func FuzzHTTP(f *testing.F) {
	for _, s := range []string{"", "format=text", "format=text&max_tokens=100", "format=json", "max_tokens=9", "format=text&max_tokens=99999999999999999999", "%zz", "format=TEXT"} {
		f.Add("shop", "api-7d9f-oom", s)
		f.Add("", "gpu-node", s)
	}
	h := newHarness(f)
	mux := http.NewServeMux()
	RegisterRoutes(mux, h.d, HTTPOptions{})
	f.Fuzz(func(t *testing.T, ns, name, query string) {
		path := "/api/v1/diagnose/nodes/" + name
		if ns != "" {
			path = "/api/v1/diagnose/pods/" + ns + "/" + name
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawQuery = path, query
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect}, rec.Code, rec.Body.String())
		if rec.Code == http.StatusOK && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			require.LessOrEqual(t, rec.Body.Len(), mcp.MaxBytes(mcp.MaxMaxTokens))
		}
	})
}

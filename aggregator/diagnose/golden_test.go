package diagnose

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestEndpointsGolden records the diagnosis routes' answers over the
// fixture cluster: aggregator/openapi validates them against the schemas
// the document gives these routes, so the contract is checked against
// what the handlers answer.
func TestEndpointsGolden(t *testing.T) {
	h := newHarness(t)
	mux := http.NewServeMux()
	RegisterRoutes(mux, h.d, HTTPOptions{})
	tests := []struct {
		file, target string
		status       int
		contentType  string
	}{
		{"pod_oom.golden", "/api/v1/diagnose/pods/shop/api-7d9f-oom", http.StatusOK, "application/json"},
		{"pod_pending.golden", "/api/v1/diagnose/pods/shop/trainer", http.StatusOK, "application/json"},
		{"pod_pending_text.golden", "/api/v1/diagnose/pods/shop/big?format=text&max_tokens=200", http.StatusOK, "text/plain; charset=utf-8"},
		{"node_gpu.golden", "/api/v1/diagnose/nodes/gpu-node", http.StatusOK, "application/json"},
		{"node_pressure_text.golden", "/api/v1/diagnose/nodes/node-a?format=text", http.StatusOK, "text/plain; charset=utf-8"},
		{"error_not_found.golden", "/api/v1/diagnose/pods/shop/nope", http.StatusNotFound, "application/json"},
		{"error_bad_format.golden", "/api/v1/diagnose/nodes/node-a?format=yaml", http.StatusBadRequest, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.target, nil))
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			assert.Equal(t, tt.contentType, rec.Header().Get("Content-Type"))
			path := filepath.Join("testdata", tt.file)
			if *update {
				require.NoError(t, os.WriteFile(path, rec.Body.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), rec.Body.String())
		})
	}
}

package events

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestEndpointsGolden records the list route's answers: aggregator/openapi
// validates them against the document's schemas.
func TestEndpointsGolden(t *testing.T) {
	s, _ := newTestStore(Options{})
	s.AddKube(kubeEvent("e1", "shop", "api-0", "BackOff", "Warning", 12, t0.Add(-time.Minute)))
	s.AddKube(kubeEvent("e2", "shop", "api-0", "Pulled", "Normal", 1, t0.Add(-20*time.Minute)))
	s.AddModel(&model.Event{Type: model.EventGPUXid, Severity: model.SeverityCritical, Timestamp: t0.Add(-5 * time.Minute),
		Node: "gpu-1", Source: "gpu:0", Message: "GPU 0 (GPU-1) reported XID 79: GPU has fallen off the bus; the GPU needs a reset"}, SourceAgent)
	s.AddModel(&model.Event{Type: model.EventClusterHealthChanged, Severity: model.SeverityWarning, Timestamp: t0.Add(-2 * time.Minute),
		Message: "cluster health changed from healthy to warning"}, SourceAggregator)
	mux := http.NewServeMux()
	RegisterRoutes(mux, s, HTTPOptions{})
	tests := []struct {
		file, target string
		status       int
	}{
		{"list.golden", RouteList, http.StatusOK},
		{"list_page.golden", RouteList + "?type=Warning&limit=2", http.StatusOK},
		{"error_bad_limit.golden", RouteList + "?limit=0", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.target, nil))
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			path := filepath.Join("testdata", tt.file)
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, rec.Body.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), rec.Body.String())
		})
	}
}

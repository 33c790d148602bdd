package authn

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/authn/authntest"
)

func TestHTTP(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := authntest.New()
	api.AddToken("reader-token", authntest.Token{User: saUser("team-a", "reader", nil)})
	api.AddToken("reader-aud-token", authntest.Token{User: saUser("team-a", "reader", nil), Audiences: []string{"k8s-llm-monitor"}})
	api.AddToken("other-aud-token", authntest.Token{User: saUser("team-a", "reader", nil), Audiences: []string{"vault"}})
	api.AddToken("unbound-token", authntest.Token{User: saUser("team-a", "default", nil)})
	api.AddToken("prometheus-token", authntest.Token{User: saUser("monitoring", "prometheus", nil)})
	api.Grant("system:serviceaccount:team-a:reader", "/k8s-llm-monitor/api/*")
	api.Grant("system:serviceaccount:monitoring:prometheus", "/k8s-llm-monitor/metrics")
	// Kubernetes' default system:discovery role lets every authenticated
	// identity get /api and /api/*: that must not open this API.
	api.Grant("system:serviceaccount:team-a:default", "/api", "/api/*", "/apis/*", "/healthz", "/version")
	r := newTestReviewer(t, api, clock, Options{})
	reg := prometheus.NewRegistry()
	served := 0
	h := r.HTTP(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served++
		w.WriteHeader(http.StatusOK)
	}), HTTPOptions{Audience: "k8s-llm-monitor", Registerer: reg})

	tests := []struct {
		name, path, auth string
		want             int
		wantMsg          string
	}{
		{"probes stay open", "/healthz", "", http.StatusOK, ""},
		{"readiness stays open", "/readyz", "", http.StatusOK, ""},
		{"the web view's page, which holds no data, is open", "/", "", http.StatusOK, ""},
		{"no other page is", "/index.html", "", http.StatusUnauthorized, "Authorization: Bearer <token>"},
		{"no token", "/api/v1/metrics/cluster", "", http.StatusUnauthorized, "Authorization: Bearer <token>"},
		{"not a bearer token", "/api/v1/metrics/cluster", "Basic dXNlcjpwdw==", http.StatusUnauthorized, "Authorization: Bearer"},
		{"empty bearer", "/api/v1/metrics/cluster", "Bearer ", http.StatusUnauthorized, "Authorization: Bearer"},
		{"unknown token", "/api/v1/metrics/cluster", "Bearer forged", http.StatusUnauthorized, "invalid bearer token"},
		{"token for another audience", "/api/v1/metrics/cluster", "Bearer other-aud-token", http.StatusUnauthorized, "invalid bearer token"},
		{"unbound service account", "/api/v1/metrics/cluster", "Bearer unbound-token", http.StatusForbidden, `system:serviceaccount:team-a:default may not get non-resource URL "/k8s-llm-monitor/api/v1/metrics/cluster"`},
		{"reader, API server audience", "/api/v1/metrics/nodes/worker-1", "Bearer reader-token", http.StatusOK, ""},
		{"reader, product audience", "/api/vms", "bearer reader-aud-token", http.StatusOK, ""},
		{"discovery rights read nothing", "/api/vms", "Bearer unbound-token", http.StatusForbidden, "/k8s-llm-monitor/api/vms"},
		{"reader may not scrape", "/metrics", "Bearer reader-token", http.StatusForbidden, "/metrics"},
		{"prometheus may scrape", "/metrics", "Bearer prometheus-token", http.StatusOK, ""},
		{"prometheus may not read data", "/api/v1/metrics/snapshot", "Bearer prometheus-token", http.StatusForbidden, "snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := served
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.want, rec.Code, rec.Body.String())
			if tt.want == http.StatusOK {
				assert.Equal(t, before+1, served)
				return
			}
			assert.Equal(t, before, served, "a refused request never reaches the API")
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			var body struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.want, body.Status)
			assert.Contains(t, body.Error, tt.wantMsg)
			if tt.want == http.StatusUnauthorized {
				assert.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
	assert.Equal(t, 6.0, refused(t, reg, "unauthenticated"))
	assert.Equal(t, 4.0, refused(t, reg, "forbidden"))
}

// The API server unreachable answers 503 with a reason, for a new token and
// for a new path of a cached one, and never lets a request through.
func TestHTTPUnavailableFailsClosed(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	api := authntest.New()
	api.AddToken("reader-token", authntest.Token{User: saUser("team-a", "reader", nil)})
	api.Grant("system:serviceaccount:team-a:reader", "/mon/api/*")
	r := newTestReviewer(t, api, clock, Options{})
	reg := prometheus.NewRegistry()
	served := 0
	h := r.HTTP(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { served++ }), HTTPOptions{Registerer: reg, PathPrefix: "/mon"})
	get := func(path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	require.Equal(t, http.StatusOK, get("/api/v1/metrics/cluster", "reader-token").Code)

	api.SetDown(true)
	// Cached: the token and this path's decision.
	assert.Equal(t, http.StatusOK, get("/api/v1/metrics/cluster", "reader-token").Code)
	for _, c := range []struct{ path, token string }{
		{"/api/v1/metrics/nodes", "reader-token"}, // new decision
		{"/api/v1/metrics/cluster", "new-token"},  // new token
	} {
		rec := get(c.path, c.token)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, c)
		assert.Contains(t, rec.Body.String(), "API server did not answer")
		assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	}
	assert.Equal(t, 2, served)
	assert.Equal(t, 2.0, refused(t, reg, "unavailable"))
}

// refused reads k8smon_http_auth_refused_total{reason}.
func refused(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "k8smon_http_auth_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no k8smon_http_auth_refused_total{reason=%q}", reason)
	return 0
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "BEARER x.y.z": "x.y.z"} {
		got, ok := bearer(h)
		assert.True(t, ok, h)
		assert.Equal(t, want, got, h)
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Token abc", "abc"} {
		_, ok := bearer(h)
		assert.False(t, ok, h)
	}
}

package api

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var querySeeds = []string{
	"",
	"sort=cpu&limit=3",
	"sort=gpu&order=asc&limit=10000",
	"pressure=true&healthy=false&stale=0",
	"label=topology.kubernetes.io/zone=zone-a&label=gpu",
	"label==&label=a==b",
	"namespace=default&phase=!Running&sort=restarts",
	"phase=!!Running",
	"phase=running&node=node-1&name=xyz",
	"minMemoryLimitRate=90&minCpuLimitRate=1e308",
	"minMemoryLimitRate=1e400",
	"minCpuLimitRate=-0",
	"limit=99999999999999999999",
	"limit=+5",
	"%zz",
	"a=b;c=d",
	"sort=cpu&sort=cpu",
	"order=desc",
	"namespace=%00&name=%ff",
}

// FuzzQuery checks the query parsers: any input either parses into a
// query within bounds or fails with a 400 that says why.
func FuzzQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		nq, err := parseNodeQuery(raw)
		if err != nil {
			requireBadRequest(t, err)
		} else {
			require.True(t, nq.sort == "" || slices.Contains(nodeSorts, nq.sort))
			require.True(t, nq.limit >= 0 && nq.limit <= MaxLimit)
			for _, l := range nq.labels {
				require.NotEmpty(t, l.key)
			}
		}
		pq, err := parsePodQuery(raw)
		if err != nil {
			requireBadRequest(t, err)
			return
		}
		require.True(t, pq.sort == "" || slices.Contains(podSorts, pq.sort))
		require.True(t, pq.limit >= 0 && pq.limit <= MaxLimit)
		require.True(t, pq.phase == "" || slices.Contains(podPhases, pq.phase))
		for _, r := range []float64{pq.minMemoryLimitRate, pq.minCPULimitRate} {
			require.False(t, math.IsNaN(r) || math.IsInf(r, 0))
			require.True(t, r == -1 || r >= 0)
		}
	})
}

func requireBadRequest(t *testing.T, err error) {
	t.Helper()
	var ae *apiError
	require.True(t, errors.As(err, &ae), "%T %v", err, err)
	require.Equal(t, http.StatusBadRequest, ae.status)
	require.NotEmpty(t, ae.msg)
}

// FuzzHandler sends arbitrary methods, paths and queries to the whole
// handler: whatever a client sends, the answer is never a 500, and every
// API answer is JSON.
func FuzzHandler(f *testing.F) {
	h := New(fixtureStore(f), Options{ObjectMetrics: true})
	paths := []string{
		"api/v1/metrics/cluster", "api/v1/metrics/nodes", "api/v1/metrics/nodes/node-1",
		"api/v1/metrics/nodes/node-1/history", "api/v1/metrics/nodes/", "api/v1/metrics/nodes//history",
		"api/v1/metrics/pods", "api/v1/metrics/pods/default/my-pod", "api/v1/metrics/pods/default/my-pod/history",
		"api/v1/metrics/pods/default/", "api/v1/metrics/pods/%2F/%2F", "api/v1/metrics/snapshot",
		"healthz", "readyz", "api/v1/metrics/../../healthz", "api//v1", "",
	}
	for _, p := range paths {
		for _, q := range querySeeds[:6] {
			f.Add("GET", p, q)
		}
	}
	f.Add("POST", "api/v1/metrics/nodes", "")
	f.Add("PROPFIND", "api/v1/metrics/pods/a/b", "x=1")
	f.Fuzz(func(t *testing.T, method, path, query string) {
		if method == "" || strings.ContainsAny(method, " \r\n\t") {
			method = http.MethodGet
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = method
		req.URL.Path = "/" + path
		req.URL.RawPath = ""
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.NotEqual(t, http.StatusInternalServerError, rec.Code, "%s %q ? %q: %s", method, path, query, rec.Body.String())
		if strings.HasPrefix(req.URL.Path, "/api/") && rec.Code/100 != 3 && method != http.MethodHead {
			assert.True(t, json.Valid(rec.Body.Bytes()), "%s %q ? %q: %s", method, path, query, rec.Body.String())
		}
	})
}

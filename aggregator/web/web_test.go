package web

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, method, path string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no such endpoint", http.StatusNotFound) })
	RegisterRoutes(mux)
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

// TestPage: the page is served at exactly "/", in one response, with
// nothing fetched from elsewhere, and its inline style and script are the
// only ones the CSP allows.
func TestPage(t *testing.T) {
	rec := serve(t, http.MethodGet, "/", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	body := rec.Body.String()
	assert.Contains(t, body, "<title>k8s-llm-monitor</title>")
	assert.NotContains(t, body, "/*SCRIPT*/")
	assert.NotContains(t, body, "/*STYLE*/")
	assert.Less(t, len(body), 64<<10, "small: one request, no assets")
	// Air-gapped: no URL to anywhere but this server (the SVG namespace
	// is a name, never fetched).
	for _, u := range regexp.MustCompile(`https?://[^"' )]+`).FindAllString(body, -1) {
		assert.Equal(t, "http://www.w3.org/2000/svg", u)
	}

	csp := rec.Header().Get("Content-Security-Policy")
	assert.Contains(t, csp, "default-src 'none'")
	assert.Contains(t, csp, "connect-src 'self'")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
		require.Len(t, m, 1, "one inline %s", tag)
		sum := sha256.Sum256([]byte(m[0][1]))
		assert.Contains(t, csp, tag+"-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'", "the CSP allows the inline %s by hash", tag)
	}
	assert.NotContains(t, csp, "unsafe-inline")
}

func TestPageRoutes(t *testing.T) {
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusNotFound}, // the API's catch-all answers it
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			assert.Equal(t, tt.want, serve(t, tt.method, tt.path, nil).Code)
		})
	}
}

// TestPageRevalidates: a browser's revalidation costs no body.
func TestPageRevalidates(t *testing.T) {
	etag := serve(t, http.MethodGet, "/", nil).Header().Get("ETag")
	require.NotEmpty(t, etag)
	rec := serve(t, http.MethodGet, "/", http.Header{"If-None-Match": {etag}})
	assert.Equal(t, http.StatusNotModified, rec.Code)
	assert.Empty(t, strings.TrimSpace(rec.Body.String()))
}

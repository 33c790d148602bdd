package kubelet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// fakeKubelet is an HTTPS server standing in for the kubelet. It records
// the Authorization header of every request.
type fakeKubelet struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newFakeKubelet(t *testing.T, h http.HandlerFunc) *fakeKubelet {
	t.Helper()
	k := &fakeKubelet{}
	k.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.auths = append(k.auths, r.Header.Get("Authorization"))
		k.mu.Unlock()
		if r.URL.Path != "/stats/summary" {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(k.Close)
	return k
}

func (k *fakeKubelet) lastAuth() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.auths) == 0 {
		return "<no request>"
	}
	return k.auths[len(k.auths)-1]
}

// caFile writes the fake kubelet's certificate as a CA bundle.
func (k *fakeKubelet) caFile(t *testing.T) string {
	t.Helper()
	return writeFile(t, "ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Certificate().Raw}))
}

func serve(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// otherCA is a CA that did not sign the fake kubelet's certificate.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "some-other-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return writeFile(t, "other-ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestHTTPClientTLSAndAuth(t *testing.T) {
	body := fixture(t, fixture1)
	k := newFakeKubelet(t, serve(body))
	token := writeFile(t, "token", []byte("sa-token-1\n"))

	tests := []struct {
		name     string
		cfg      config.KubeletConfig
		wantErr  []string // substrings; empty means success
		wantAuth string
	}{
		{
			name:     "ca file verifies the kubelet",
			cfg:      config.KubeletConfig{URL: k.URL, TokenFile: token, CAFile: k.caFile(t)},
			wantAuth: "Bearer sa-token-1",
		},
		{
			name:     "insecure skip verify",
			cfg:      config.KubeletConfig{URL: k.URL + "/", TokenFile: token, InsecureSkipTLSVerify: true},
			wantAuth: "Bearer sa-token-1",
		},
		{
			name:     "insecure wins over a wrong ca",
			cfg:      config.KubeletConfig{URL: k.URL, TokenFile: token, CAFile: otherCA(t), InsecureSkipTLSVerify: true},
			wantAuth: "Bearer sa-token-1",
		},
		{
			name:     "missing token file sends no token",
			cfg:      config.KubeletConfig{URL: k.URL, TokenFile: filepath.Join(t.TempDir(), "absent"), InsecureSkipTLSVerify: true},
			wantAuth: "",
		},
		{
			name:    "wrong ca fails",
			cfg:     config.KubeletConfig{URL: k.URL, TokenFile: token, CAFile: otherCA(t)},
			wantErr: []string{"fetch stats summary", "certificate signed by unknown authority", "--kubelet-ca-file", "--kubelet-insecure-skip-tls-verify"},
		},
		{
			name:    "no ca and no skip uses system roots and fails",
			cfg:     config.KubeletConfig{URL: k.URL, TokenFile: token},
			wantErr: []string{"certificate signed by unknown authority", "--kubelet-ca-file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewHTTPClient(tt.cfg)
			require.NoError(t, err)
			got, err := c.FetchSummary(context.Background())
			if len(tt.wantErr) > 0 {
				require.Error(t, err)
				t.Log(err)
				for _, want := range tt.wantErr {
					assert.ErrorContains(t, err, want)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, body, got)
			assert.Equal(t, tt.wantAuth, k.lastAuth())
		})
	}
}

func TestHTTPClientTokenRotation(t *testing.T) {
	k := newFakeKubelet(t, serve(fixture(t, fixture1)))
	token := writeFile(t, "token", []byte("first"))
	c, err := NewHTTPClient(config.KubeletConfig{URL: k.URL, TokenFile: token, CAFile: k.caFile(t)})
	require.NoError(t, err)

	_, err = c.FetchSummary(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "Bearer first", k.lastAuth())

	// The kubelet rewrites projected tokens in place; set the mtime
	// explicitly so the test does not depend on the filesystem's timestamp
	// granularity.
	require.NoError(t, os.WriteFile(token, []byte("second"), 0o600))
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(token, later, later))
	_, err = c.FetchSummary(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "Bearer second", k.lastAuth())

	// Unchanged file: the cached token is used (no re-read needed).
	_, err = c.FetchSummary(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "Bearer second", k.lastAuth())
}

func TestHTTPClientErrorAnswers(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		tokenFile string // "" means a valid token file
		maxBody   int64
		wantErr   []string
		wantIs    error
		wantCode  int
	}{
		{
			name: "401 with hint",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
			},
			wantErr:  []string{"answered 401 Unauthorized: Unauthorized", "rejected the bearer token", "get nodes/stats"},
			wantCode: http.StatusUnauthorized,
		},
		{
			name: "401 without a token file says so",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
			},
			tokenFile: "absent",
			wantErr:   []string{"answered 401", "is missing or empty"},
			wantCode:  http.StatusUnauthorized,
		},
		{
			name: "403 with rbac hint",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "Forbidden (user=system:serviceaccount:monitoring:k8smon-agent, verb=get, resource=nodes, subresource=stats)", http.StatusForbidden)
			},
			wantErr:  []string{"answered 403 Forbidden: Forbidden (user=system:serviceaccount:monitoring:k8smon-agent", "needs get on nodes/stats"},
			wantCode: http.StatusForbidden,
		},
		{
			name: "500 with a one-line snippet",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte("failed to get summary:\n\tcontainer runtime down\n" + strings.Repeat("x", 4096)))
			},
			wantErr:  []string{"answered 500 Internal Server Error: failed to get summary: container runtime down xxx"},
			wantCode: http.StatusInternalServerError,
		},
		{
			name:    "oversized body with content length",
			handler: serve(make([]byte, 2048)),
			maxBody: 1024,
			wantErr: []string{"stats summary too large", "2048 bytes, limit 1024"},
			wantIs:  ErrBodyTooLarge,
		},
		{
			name: "oversized chunked body",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				for range 8 {
					_, _ = w.Write(make([]byte, 512))
					w.(http.Flusher).Flush()
				}
			},
			maxBody: 1024,
			wantErr: []string{"stats summary too large", "more than 1024 bytes"},
			wantIs:  ErrBodyTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKubelet(t, tt.handler)
			token := writeFile(t, "token", []byte("tok"))
			if tt.tokenFile != "" {
				token = filepath.Join(t.TempDir(), tt.tokenFile)
			}
			c, err := NewHTTPClient(config.KubeletConfig{URL: k.URL, TokenFile: token, CAFile: k.caFile(t)})
			require.NoError(t, err)
			if tt.maxBody > 0 {
				c.maxBody = tt.maxBody
			}
			_, err = c.FetchSummary(context.Background())
			require.Error(t, err)
			t.Log(err)
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			if tt.wantCode != 0 {
				var se *StatusError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tt.wantCode, se.StatusCode)
				assert.LessOrEqual(t, len([]rune(se.Snippet)), snippetChars+len("..."))
			}
		})
	}
}

func TestHTTPClientSendsNoTokenInClearText(t *testing.T) {
	headers := make(chan http.Header, 1)
	body := fixture(t, fixture1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Clone()
		serve(body)(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := NewHTTPClient(config.KubeletConfig{URL: srv.URL, TokenFile: writeFile(t, "token", []byte("secret"))})
	require.NoError(t, err)
	_, err = c.FetchSummary(context.Background())
	require.NoError(t, err)
	h := <-headers
	assert.Empty(t, h.Get("Authorization"))
	assert.Equal(t, userAgent, h.Get("User-Agent"))
}

func TestNewHTTPClientConfig(t *testing.T) {
	notPEM := writeFile(t, "ca.crt", []byte("not a certificate"))
	tests := []struct {
		name    string
		cfg     config.KubeletConfig
		wantErr string
		wantIs  error
		wantURL string
	}{
		{name: "https", cfg: config.KubeletConfig{URL: "https://10.0.0.7:10250"}, wantURL: "https://10.0.0.7:10250/stats/summary"},
		{name: "trailing slash", cfg: config.KubeletConfig{URL: "https://[fd00::7]:10250/"}, wantURL: "https://[fd00::7]:10250/stats/summary"},
		{name: "read-only port", cfg: config.KubeletConfig{URL: "http://10.0.0.7:10255"}, wantURL: "http://10.0.0.7:10255/stats/summary"},
		{name: "empty url", cfg: config.KubeletConfig{URL: "  "}, wantErr: "set --kubelet-url or $NODE_IP", wantIs: collector.ErrUnavailable},
		{name: "no scheme", cfg: config.KubeletConfig{URL: "10.0.0.7:10250"}, wantErr: "parse kubelet url"},
		{name: "other scheme", cfg: config.KubeletConfig{URL: "ftp://10.0.0.7"}, wantErr: "want https://host:port"},
		{name: "ca file missing", cfg: config.KubeletConfig{URL: "https://n:10250", CAFile: "/nonexistent/ca.crt"}, wantErr: "read kubelet ca file", wantIs: os.ErrNotExist},
		{name: "ca file not pem", cfg: config.KubeletConfig{URL: "https://n:10250", CAFile: notPEM}, wantErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewHTTPClient(tt.cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				if tt.wantIs != nil {
					assert.ErrorIs(t, err, tt.wantIs)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantURL, c.URL())
		})
	}
}

func TestHTTPClientHungKubelet(t *testing.T) {
	release := make(chan struct{})
	k := newFakeKubelet(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	// Cleanups run last-in first-out: release the handler before the
	// server's Close waits for it.
	t.Cleanup(func() { close(release) })

	c, err := NewHTTPClient(config.KubeletConfig{URL: k.URL, CAFile: k.caFile(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.FetchSummary(ctx)
	require.Error(t, err)
	t.Log(err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
	assert.Less(t, time.Since(start), 5*time.Second, "the request must end at ctx's deadline")
}

package kube

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// fakeAPIServer answers discovery's /version like an API server when
// healthy, and with 503 otherwise. It returns the server's URL.
func fakeAPIServer(t *testing.T, healthy bool) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy || r.URL.Path != "/version" {
			http.Error(w, "apiserver is shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"major":"1","minor":"37","gitVersion":"v1.37.2","platform":"linux/amd64"}`)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func writeKubeconfig(t *testing.T, dir, name, server string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
contexts:
- name: test
  context:
    cluster: test
    user: test
current-context: test
users:
- name: test
  user:
    token: not-a-secret
`, server)
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// TestConnectAsksNothingBeforeStart: a configured cluster is connecting,
// not standalone, and neither Connect nor a metrics-server poll asks the
// API server anything until Start has seen it answer.
func TestConnectAsksNothingBeforeStart(t *testing.T) {
	var asked atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		http.Error(w, "apiserver is starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(s.Close)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	c, err := Connect(writeKubeconfig(t, t.TempDir(), "cfg", s.URL), discard())
	require.NoError(t, err)
	ok, reason := c.Ready()
	assert.False(t, ok)
	assert.Equal(t, "connecting to the API server "+s.URL, reason)
	_, _, st := c.PollUsage(context.Background())
	assert.Equal(t, model.SourceUnavailable, st.Status)
	assert.Equal(t, reasonNoAPIServer, st.Reason)
	assert.Zero(t, asked.Load())
}

// TestConnectAsksForProtobuf guards client-go's default that the typed
// clients (informers and metrics-server polls) ask for protobuf with JSON
// as the fallback: decoding thousands of pods in JSON costs several times
// more, on both ends. The configuration handed to dynamic clients (custom
// resources, which have no protobuf) stays JSON.
func TestConnectAsksForProtobuf(t *testing.T) {
	accepts := make(chan string, 4)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accepts <- r.URL.Path + " " + r.Header.Get("Accept")
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(s.Close)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	c, err := Connect(writeKubeconfig(t, t.TempDir(), "cfg", s.URL), discard())
	require.NoError(t, err)

	_, err = c.Client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	require.Error(t, err)
	assert.Equal(t, "/api/v1/pods application/vnd.kubernetes.protobuf,application/json", <-accepts)
	_, err = c.metrics.MetricsV1beta1().PodMetricses("").List(context.Background(), metav1.ListOptions{})
	require.Error(t, err)
	assert.Equal(t, "/apis/metrics.k8s.io/v1beta1/pods application/vnd.kubernetes.protobuf,application/json", <-accepts)
	assert.Empty(t, c.RESTConfig().AcceptContentTypes, "dynamic clients get JSON")
}

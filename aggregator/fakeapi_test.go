package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeAPIServer serves what the aggregator asks of a Kubernetes API server
// at start: /version, and list and watch (plain, or streaming with initial
// events) of the Nodes and Pods recorded under testdata/apiserver.
// Everything else is a 404 Status, as for an API that is not installed
// (metrics-server, KubeVirt). Until open is called it accepts connections
// and closes them at once, like an API server that is not up yet.
type fakeAPIServer struct {
	*httptest.Server
	lists map[string]*recordedList // by path
	gate  *gatedListener
	stop  chan struct{}
}

// recordedList is a List as recorded, and what a watch stream needs of it.
type recordedList struct {
	raw      []byte
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Items []map[string]any `json:"items"`
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{lists: map[string]*recordedList{}, stop: make(chan struct{})}
	for path, file := range map[string]string{"/api/v1/nodes": "nodes.json", "/api/v1/pods": "pods.json"} {
		l := &recordedList{}
		var err error
		l.raw, err = os.ReadFile(filepath.Join("testdata", "apiserver", file))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(l.raw, l), file)
		f.lists[path] = l
	}
	f.Server = httptest.NewUnstartedServer(f)
	f.gate = &gatedListener{Listener: f.Listener}
	f.Listener = f.gate
	f.Start()
	t.Cleanup(func() {
		close(f.stop) // ends the watches still open
		f.Close()
	})
	return f
}

// open lets connections through.
func (f *fakeAPIServer) open() { f.gate.open.Store(true) }

func (f *fakeAPIServer) isOpen() bool { return f.gate.open.Load() }

func (f *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/version" {
		writeJSON(w, http.StatusOK, map[string]string{"major": "1", "minor": "37", "gitVersion": "v1.37.2", "platform": "linux/amd64"})
		return
	}
	list, ok := f.lists[r.URL.Path]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure",
			"reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"})
		return
	}
	q := r.URL.Query()
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(list.raw)
		return
	}
	f.watch(w, r, list, q.Get("sendInitialEvents") == "true")
}

// watch streams a watch: with initial events, every item as ADDED and the
// bookmark that ends them; then nothing until the client or test ends.
func (f *fakeAPIServer) watch(w http.ResponseWriter, r *http.Request, l *recordedList, initial bool) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if initial {
		enc := json.NewEncoder(w)
		kind := ""
		for _, item := range l.Items {
			kind, _ = item["kind"].(string)
			_ = enc.Encode(map[string]any{"type": "ADDED", "object": item})
		}
		_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{
			"kind": kind, "apiVersion": "v1",
			"metadata": map[string]any{"resourceVersion": l.Metadata.ResourceVersion, "annotations": map[string]string{"k8s.io/initial-events-end": "true"}},
		}})
	}
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	select {
	case <-r.Context().Done():
	case <-f.stop:
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// gatedListener closes every connection it accepts until opened.
type gatedListener struct {
	net.Listener
	open atomic.Bool
}

func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.open.Load() {
			return c, err
		}
		_ = c.Close()
	}
}

// writeKubeconfig writes a kubeconfig naming server and returns its path.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
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

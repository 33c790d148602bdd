package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/publish"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/natsserver"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// TestAggregatorWithAgentOnLoopback runs the aggregator as its binary does
// (embedded NATS, standalone) and an agent's publisher against it: the node
// appears over HTTP, an unknown node is a JSON 404, and a silent agent makes
// the node stale after three intervals with an event on k8smon.cluster.event.
func TestAggregatorWithAgentOnLoopback(t *testing.T) {
	noCluster(t)
	cfg := loadConfig(t, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	agg := startAggregator(t, cfg, logger)
	base, natsURL := agg.base, agg.natsURL

	sub, err := nats.Connect(natsURL)
	require.NoError(t, err)
	defer sub.Close()
	clusterEvents := make(chan *nats.Msg, 16)
	_, err = sub.ChanSubscribe("k8smon.cluster.event", clusterEvents)
	require.NoError(t, err)
	require.NoError(t, sub.Flush())

	const node = "worker-1.example.internal"
	pub, err := publish.Connect(config.NATSConfig{URL: natsURL, SubjectPrefix: wire.DefaultPrefix, BufferSize: 10}, node, logger, nil)
	require.NoError(t, err)
	defer pub.Close(time.Second) //nolint:errcheck // test teardown
	report := &model.NodeReport{
		NodeName: node, Timestamp: time.Now().UTC(), IntervalSeconds: 1,
		Node: model.NodeMetrics{NodeName: node, CPUCapacity: 8000, CPUUsage: 2000, CPUUsageRate: 25,
			MemoryCapacity: 32 << 30, MemoryUsage: 8 << 30, MemoryUsageRate: 25, Healthy: true},
	}
	require.NoError(t, pub.PublishReport(report))

	var got model.NodeMetrics
	require.Eventually(t, func() bool {
		return getJSON(t, base+"/api/v1/metrics/nodes/"+node, &got) == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, int64(8000), got.CPUCapacity)
	assert.False(t, got.Stale)

	var cluster model.ClusterMetrics
	require.Equal(t, http.StatusOK, getJSON(t, base+"/api/v1/metrics/cluster", &cluster))
	assert.Equal(t, 1, cluster.TotalNodes)
	assert.Equal(t, int64(8000), cluster.TotalCPU)

	var errBody map[string]any
	require.Equal(t, http.StatusNotFound, getJSON(t, base+"/api/v1/metrics/nodes/nope", &errBody))
	assert.Equal(t, float64(404), errBody["status"])
	assert.Contains(t, errBody["error"], "nope")

	// No more reports: stale after three 1 s intervals, announced on NATS.
	require.Eventually(t, func() bool {
		getJSON(t, base+"/api/v1/metrics/nodes/"+node, &got)
		return got.Stale
	}, 15*time.Second, 100*time.Millisecond)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-clusterEvents:
			e, err := wire.DecodeClusterEvent(m.Data)
			require.NoError(t, err)
			if e.Type == model.EventNodeStale {
				assert.Equal(t, node, e.Node)
				require.NoError(t, agg.stop(t))
				return
			}
		case <-deadline:
			t.Fatal("no NodeStale event on k8smon.cluster.event")
		}
	}
}

// noCluster makes sure no Kubernetes cluster is configured, whatever the
// machine running the tests has.
func noCluster(t *testing.T) {
	t.Helper()
	t.Setenv("KUBECONFIG", "/nonexistent")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
}

// loadConfig builds the configuration the binary would from args.
func loadConfig(t *testing.T, args ...string) *config.Config {
	t.Helper()
	fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
	config.RegisterAggregatorFlags(fs)
	require.NoError(t, fs.Parse(args))
	cfg, err := config.Load(fs)
	require.NoError(t, err)
	require.Empty(t, cfg.ValidateAggregator())
	return cfg
}

// runningAggregator is serve running in the test.
type runningAggregator struct {
	base, natsURL string
	ln            net.Listener
	cancel        context.CancelFunc
	done          chan struct{} // closed when serve returned err
	err           error
}

// wait waits at most d for serve to return; false if it did not.
func (a *runningAggregator) wait(d time.Duration) (bool, error) {
	select {
	case <-a.done:
		return true, a.err
	case <-time.After(d):
		return false, nil
	}
}

// stop cancels serve's ctx and returns what serve returned.
func (a *runningAggregator) stop(t *testing.T) error {
	t.Helper()
	a.cancel()
	ok, err := a.wait(30 * time.Second)
	require.True(t, ok, "aggregator did not stop")
	return err
}

// startAggregator runs serve as run does, on its own listener, and waits
// until it has started. Its HTTP address is known before: probes can be
// asked while it starts.
func startAggregator(t *testing.T, cfg *config.Config, logger *slog.Logger) *runningAggregator {
	t.Helper()
	ln, err := net.Listen("tcp", cfg.Aggregator.HTTPAddr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAggregator{base: "http://" + ln.Addr().String(), ln: ln, cancel: cancel, done: make(chan struct{})}
	ready := make(chan [2]string, 1)
	go func() {
		a.err = serve(ctx, cfg, logger, ln, ready)
		close(a.done)
	}()
	t.Cleanup(func() { _ = a.stop(t) })
	select {
	case addrs := <-ready:
		a.natsURL = addrs[1]
	case <-a.done:
		t.Fatalf("aggregator stopped: %v", a.err)
	case <-time.After(20 * time.Second):
		t.Fatal("aggregator did not start")
	}
	return a
}

// apiServerOutage is how long the API server accepts nothing in
// TestStartupWaitsForAPIServer.
const apiServerOutage = 10 * time.Second

// TestStartupWaitsForAPIServer: the API server named by the kubeconfig
// accepts no request for its first 10 s, then serves. The aggregator
// answers probes from the start: /healthz 200 throughout, /readyz 503 with
// the reason (connecting to the API server) until the API server answered
// and the informers listed, then 200. It never turns standalone, and the
// Node and Pod the API server lists are served once ready.
func TestStartupWaitsForAPIServer(t *testing.T) {
	apiServer := newFakeAPIServer(t)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	cfg := loadConfig(t, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1",
		"--kubeconfig", writeKubeconfig(t, apiServer.URL))
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	outage := time.AfterFunc(apiServerOutage, apiServer.open)
	defer outage.Stop()
	agg := startAggregator(t, cfg, logger)

	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	deadline := time.After(apiServerOutage + 30*time.Second)
	var connecting, polls int
	for ready := false; !ready; {
		code, body := get(t, agg.base+"/healthz")
		require.Equal(t, http.StatusOK, code, "/healthz while starting: %s", body)
		code, body = get(t, agg.base+"/readyz")
		polls++
		switch code {
		case http.StatusOK:
			require.True(t, apiServer.isOpen(), "ready while the API server accepts nothing: %s", body)
			ready = true
			continue
		case http.StatusServiceUnavailable:
		default:
			t.Fatalf("/readyz answered %d: %s", code, body)
		}
		var e struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &e), string(body))
		require.NotEmpty(t, e.Error, "a 503 says why")
		assert.NotContains(t, e.Error, "standalone")
		if strings.HasPrefix(e.Error, "connecting to the API server "+apiServer.URL) {
			connecting++
		}
		select {
		case <-poll.C:
		case <-deadline:
			t.Fatalf("not ready %s after the API server opened; last /readyz: %s", 30*time.Second, body)
		}
	}
	assert.Greater(t, connecting, polls/2, "most answers during the outage name the API server being connected to")

	var cluster model.ClusterMetrics
	require.Equal(t, http.StatusOK, getJSON(t, agg.base+"/api/v1/metrics/cluster", &cluster))
	assert.Equal(t, 1, cluster.TotalNodes)
	assert.NotContains(t, cluster.Sources, "kubernetes", "no standalone source")
	assert.Equal(t, model.SourceOK, cluster.Sources["informer-nodes"].Status)
	assert.Equal(t, model.SourceOK, cluster.Sources["informer-pods"].Status)
	var node model.NodeMetrics
	require.Equal(t, http.StatusOK, getJSON(t, agg.base+"/api/v1/metrics/nodes/worker-1", &node))
	assert.Equal(t, int64(4000), node.CPUCapacity, "from the Node object")
	assert.Equal(t, int64(3800), node.CPUAllocatable)
	var pod model.PodMetrics
	require.Equal(t, http.StatusOK, getJSON(t, agg.base+"/api/v1/metrics/pods/default/web-0", &pod))

	out := logs.String()
	assert.NotContains(t, out, "standalone")
	assert.Equal(t, 1, strings.Count(out, "API server not answering"), "attempts are logged at a limited rate:\n%s", out)
	assert.Contains(t, out, "connected to Kubernetes")

	require.NoError(t, agg.stop(t))
}

// TestSIGTERMStopsInOrderWhileAgentPublishes: the binary's run gets SIGTERM
// while an agent publishes reports; it exits 0 after stopping the HTTP API,
// the snapshot builds, draining NATS to the end and shutting the embedded
// NATS server last.
func TestSIGTERMStopsInOrderWhileAgentPublishes(t *testing.T) {
	noCluster(t)
	stderr := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1"}, io.Discard, stderr)
	}()
	var base, natsURL string
	require.Eventually(t, func() bool {
		// The NATS line comes after the signal handler is installed.
		base, natsURL = logValue(stderr.String(), "serving the HTTP API", "url"), logValue(stderr.String(), "embedded NATS listening; point agents' --nats-url at this host", "url")
		return base != "" && natsURL != ""
	}, 20*time.Second, 10*time.Millisecond, "run did not start: %s", stderr)

	const node = "worker-1.example.internal"
	logger := slog.New(slog.DiscardHandler)
	pub, err := publish.Connect(config.NATSConfig{URL: natsURL, SubjectPrefix: wire.DefaultPrefix, BufferSize: 10}, node, logger, nil)
	require.NoError(t, err)
	defer pub.Close(time.Second) //nolint:errcheck // test teardown
	stopPublishing := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		n := 0
		defer func() { published <- n }()
		for {
			select {
			case <-stopPublishing:
				return
			default:
			}
			r := &model.NodeReport{NodeName: node, Timestamp: time.Now().UTC(), IntervalSeconds: 1,
				Node: model.NodeMetrics{NodeName: node, CPUCapacity: 8000, MemoryCapacity: 32 << 30, Healthy: true}}
			if pub.PublishReport(r) == nil {
				n++
			}
			time.Sleep(2 * time.Millisecond) // an agent's pace, not a wait for a result
		}
	}()
	var got model.NodeMetrics
	require.Eventually(t, func() bool {
		return getJSON(t, base+"/api/v1/metrics/nodes/"+node, &got) == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case c := <-code:
		assert.Equal(t, 0, c, "exit code; log:\n%s", stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return after SIGTERM; log:\n%s", stderr)
	}
	close(stopPublishing)
	assert.Positive(t, <-published)

	msgs := logMessages(stderr.String())
	order := []string{"aggregator stopping", "HTTP API stopped", "snapshot builds stopped", "NATS connection drained", "embedded NATS server stopped"}
	last := -1
	for _, m := range order {
		i := slices.Index(msgs, m)
		require.GreaterOrEqual(t, i, 0, "no %q in the log:\n%s", m, stderr)
		assert.Greater(t, i, last, "%q out of order:\n%s", m, stderr)
		last = i
	}
	assert.NotContains(t, msgs, "NATS drain did not finish; closing the connection")
	assert.NotContains(t, msgs, "aggregator stopped", "no error at exit")
	_, err = http.Get(base + "/healthz")
	assert.Error(t, err, "the HTTP API is closed")
}

// TestServeFailureStopsWithError: the HTTP listener breaking under Serve
// stops the aggregator with an error that says so, instead of leaving it
// running without an API.
func TestServeFailureStopsWithError(t *testing.T) {
	noCluster(t)
	cfg := loadConfig(t, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1")
	logs := &syncBuffer{}
	agg := startAggregator(t, cfg, slog.New(slog.NewTextHandler(logs, nil)))

	require.NoError(t, agg.ln.Close()) // Serve's Accept fails: not a shutdown
	stopped, err := agg.wait(30 * time.Second)
	require.True(t, stopped, "aggregator kept running without its HTTP API")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP API server on "+agg.ln.Addr().String())
	assert.Contains(t, logs.String(), "a server failed; stopping")
	assert.Contains(t, logs.String(), "embedded NATS server stopped", "stopped in order all the same")
}

// TestEmbeddedNATSStoppingFails: the embedded NATS server stopping on its
// own is a failure; stopping it after the aggregator's ctx ended is not.
func TestEmbeddedNATSStoppingFails(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		name    string
		stopped bool // ctx ended before the server stopped
		want    string
	}{
		{name: "dies while running", want: "embedded NATS server stopped"},
		{name: "shut down after stop", stopped: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := natsserver.Start(config.NATSConfig{Listen: "127.0.0.1:-1"}, logger)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a := &aggregator{embedded: srv, natsURL: srv.ClientURL(), ncClosed: make(chan struct{})}
			errc := make(chan error, 1)
			go func() { errc <- a.watchNATS(ctx) }()
			if tt.stopped {
				cancel()
			}
			srv.Shutdown()
			select {
			case err := <-errc:
				if tt.want == "" {
					assert.NoError(t, err)
				} else {
					assert.EqualError(t, err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("watchNATS did not return")
			}
		})
	}
}

// TestDrainNATSWaitsForPendingMessages: stop's drain returns only once
// every message already received has been handled, so nothing that comes
// after it (the embedded server's shutdown) cuts the drain short.
func TestDrainNATSWaitsForPendingMessages(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	srv, err := natsserver.Start(config.NATSConfig{Listen: "127.0.0.1:-1"}, logger)
	require.NoError(t, err)
	defer srv.Shutdown()
	closed := make(chan struct{})
	nc, err := nats.Connect(srv.ClientURL(), nats.DrainTimeout(drainTimeout), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	require.NoError(t, err)
	release := make(chan struct{})
	var handled atomic.Int32
	sub, err := nc.Subscribe("t.drain", func(*nats.Msg) {
		<-release
		handled.Add(1)
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	pub, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer pub.Close()
	const sent = 50
	for range sent {
		require.NoError(t, pub.Publish("t.drain", []byte("report")))
	}
	require.NoError(t, pub.Flush())
	require.Eventually(t, func() bool {
		n, _, _ := sub.Pending()
		return n >= sent-1 // one may be in the handler
	}, 10*time.Second, 10*time.Millisecond)

	a := &aggregator{logger: logger, nc: nc, ncClosed: closed}
	drained := make(chan struct{})
	go func() {
		a.drainNATS()
		close(drained)
	}()
	assert.Never(t, func() bool {
		select {
		case <-drained:
			return true
		default:
			return false
		}
	}, 300*time.Millisecond, 10*time.Millisecond, "drain returned with messages still pending")
	close(release)
	select {
	case <-drained:
	case <-time.After(drainTimeout + 5*time.Second):
		t.Fatal("drain did not return")
	}
	assert.Equal(t, int32(sent), handled.Load(), "every received message handled")
	assert.True(t, nc.IsClosed())
}

// get returns a response's status and body.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

// logMessages lists the msg of every JSON log line, in order.
func logMessages(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg != "" {
			out = append(out, rec.Msg)
		}
	}
	return out
}

// logValue is key's value in the first JSON log line whose msg is msg.
func logValue(log, msg, key string) string {
	for _, line := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			v, _ := rec[key].(string)
			return v
		}
	}
	return ""
}

// syncBuffer collects log output written from other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type")[:16], string(body))
	require.NoError(t, json.Unmarshal(body, into), string(body))
	return resp.StatusCode
}

func TestAggregatorFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, out.String(), "--nats-url", "--help | less shows the flags")
	assert.Empty(t, errOut.String())
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--stale-intervals", "0"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "aggregator.stale_intervals")
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--bogus"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "unknown flag")
}

// An aggregator restarted on the same data directory knows every node and
// its history at once, from the Reports stream, before any agent reports
// again. The restored history holds every reading the stream keeps, also
// those that arrived in a burst between two snapshots and so were never
// recorded live.
func TestRestartRestoresNodesAndHistory(t *testing.T) {
	noCluster(t)
	cfg := loadConfig(t, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1", "--data-dir", t.TempDir())
	agg := startAggregator(t, cfg, slog.New(slog.DiscardHandler))
	base, natsURL := agg.base, agg.natsURL

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := time.Now().UTC().Add(-10 * time.Second).Truncate(time.Second)
	for _, node := range []string{"a", "b.example.internal"} {
		pub, err := publish.Connect(config.NATSConfig{URL: natsURL, SubjectPrefix: wire.DefaultPrefix, BufferSize: 10}, node, logger, nil)
		require.NoError(t, err)
		for i := range 5 {
			require.NoError(t, pub.PublishReport(&model.NodeReport{
				NodeName: node, Timestamp: start.Add(time.Duration(i) * time.Second), IntervalSeconds: 1,
				Node: model.NodeMetrics{NodeName: node, CPUCapacity: 8000, CPUUsage: int64(1000 + i), MemoryCapacity: 1 << 30},
			}))
		}
		require.NoError(t, pub.Close(5*time.Second))
	}
	type point struct {
		Timestamp time.Time `json:"timestamp"`
		CPUUsage  int64     `json:"cpuUsage"`
	}
	var before struct {
		Items []point `json:"items"`
	}
	last := start.Add(4 * time.Second)
	require.Eventually(t, func() bool {
		before.Items = nil
		return getJSON(t, base+"/api/v1/metrics/nodes/b.example.internal/history", &before) == http.StatusOK &&
			len(before.Items) > 0 && before.Items[len(before.Items)-1].Timestamp.Equal(last)
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, agg.stop(t))

	base = startAggregator(t, cfg, slog.New(slog.DiscardHandler)).base
	var probe map[string]any
	require.Eventually(t, func() bool { return getJSON(t, base+"/readyz", &probe) == http.StatusOK }, 10*time.Second, 10*time.Millisecond)
	// Ready means restored: no agent has reported since the restart.
	var after struct {
		Items []point `json:"items"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/api/v1/metrics/nodes/b.example.internal/history", &after))
	require.Len(t, after.Items, 5, "every reading of the window")
	for i, p := range after.Items {
		assert.True(t, p.Timestamp.Equal(start.Add(time.Duration(i)*time.Second)), "reading %d at %s", i, p.Timestamp)
		assert.Equal(t, int64(1000+i), p.CPUUsage)
	}
	for _, p := range before.Items {
		assert.Contains(t, after.Items, point{Timestamp: p.Timestamp, CPUUsage: p.CPUUsage}, "nothing recorded before is lost")
	}
	var cluster model.ClusterMetrics
	require.Equal(t, http.StatusOK, getJSON(t, base+"/api/v1/metrics/cluster", &cluster))
	assert.Equal(t, 2, cluster.TotalNodes)
}

// TestExternalNATSLateAtStart: the external NATS does not answer for
// longer than the store's liveness limit (three intervals). The aggregator
// stays alive (/healthz 200), says why it is not ready (/readyz 503), and
// becomes ready once NATS with JetStream is there.
func TestExternalNATSLateAtStart(t *testing.T) {
	noCluster(t)
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	cfg := loadConfig(t, "--http-addr", "127.0.0.1:0", "--interval", "1", "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", port))
	ln, err := net.Listen("tcp", cfg.Aggregator.HTTPAddr)
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), ln, nil) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	// Beyond three intervals without a snapshot, start-up is still alive.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		code, body := get(t, base+"/healthz")
		require.Equal(t, http.StatusOK, code, "alive while NATS is awaited: %s", body)
		code, body = get(t, base+"/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Contains(t, string(body), "connecting to NATS and creating the JetStream streams")
		time.Sleep(200 * time.Millisecond) // the probes' pace, not a wait for a result
	}

	s, err := natsserver.Start(config.NATSConfig{Listen: fmt.Sprintf("127.0.0.1:%d", port)}, slog.New(slog.DiscardHandler), natsserver.JetStream(t.TempDir()))
	require.NoError(t, err)
	defer s.Shutdown()
	require.Eventually(t, func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
}

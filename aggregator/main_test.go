package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/publish"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// TestAggregatorWithAgentOnLoopback runs the aggregator as its binary does
// (embedded NATS, standalone) and an agent's publisher against it: the node
// appears over HTTP, an unknown node is a JSON 404, and a silent agent makes
// the node stale after three intervals with an event on k8smon.cluster.event.
func TestAggregatorWithAgentOnLoopback(t *testing.T) {
	t.Setenv("KUBECONFIG", "/nonexistent")
	t.Setenv("HOME", t.TempDir())
	fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
	config.RegisterAggregatorFlags(fs)
	require.NoError(t, fs.Parse([]string{"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1"}))
	cfg, err := config.Load(fs)
	require.NoError(t, err)
	require.Empty(t, cfg.ValidateAggregator())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- serve(ctx, cfg, logger, ready) }()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("aggregator stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("aggregator did not start")
	}
	base, natsURL := "http://"+addrs[0], addrs[1]

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
				cancel()
				require.NoError(t, <-done)
				return
			}
		case <-deadline:
			t.Fatal("no NodeStale event on k8smon.cluster.event")
		}
	}
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
	assert.Contains(t, errOut.String(), "--nats-url")
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--stale-intervals", "0"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "aggregator.stale_intervals")
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--bogus"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "unknown flag")
}

// startServe runs serve with args until the test ends or stop is called,
// and returns the HTTP base URL and the embedded NATS URL.
func startServe(t *testing.T, args ...string) (base, natsURL string, stop func()) {
	t.Helper()
	fs := pflag.NewFlagSet("aggregator", pflag.ContinueOnError)
	config.RegisterAggregatorFlags(fs)
	require.NoError(t, fs.Parse(append([]string{"--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1"}, args...)))
	cfg, err := config.Load(fs)
	require.NoError(t, err)
	require.Empty(t, cfg.ValidateAggregator())
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var once bool
	stop = func() {
		if !once {
			once = true
			cancel()
			require.NoError(t, <-done)
		}
	}
	t.Cleanup(stop)
	select {
	case addrs := <-ready:
		return "http://" + addrs[0], addrs[1], stop
	case err := <-done:
		t.Fatalf("aggregator stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("aggregator did not start")
	}
	return "", "", stop
}

// An aggregator restarted on the same data directory knows every node and
// its history at once, from the Reports stream, before any agent reports
// again. The restored history holds every reading the stream keeps, also
// those that arrived in a burst between two snapshots and so were never
// recorded live.
func TestRestartRestoresNodesAndHistory(t *testing.T) {
	t.Setenv("KUBECONFIG", "/nonexistent")
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	base, natsURL, stop := startServe(t, "--data-dir", dir)

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
	stop()

	base, _, _ = startServe(t, "--data-dir", dir)
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

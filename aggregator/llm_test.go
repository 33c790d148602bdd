package main

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/publish"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/diagnose"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/events"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// TestEvidenceWiring runs the aggregator as its binary does (standalone,
// embedded NATS): an agent's node event reaches the events store and
// stream, the node's diagnosis names it, and shutdown ends open streams.
func TestEvidenceWiring(t *testing.T) {
	noCluster(t)
	cfg := loadConfig(t, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	agg := startAggregator(t, cfg, logger)
	base := agg.base
	addrs := [2]string{"", agg.natsURL}

	// A stream open before anything happens.
	req, err := http.NewRequest(http.MethodGet, base+events.RouteStream+"?node=gpu-1", nil)
	require.NoError(t, err)
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, http.StatusOK, stream.StatusCode)
	lines := bufio.NewReader(stream.Body)

	const node = "gpu-1"
	pub, err := publish.Connect(config.NATSConfig{URL: addrs[1], SubjectPrefix: wire.DefaultPrefix, BufferSize: 10}, node, logger, nil)
	require.NoError(t, err)
	defer pub.Close(time.Second) //nolint:errcheck // test teardown
	now := time.Now().UTC()
	require.NoError(t, pub.PublishReport(&model.NodeReport{NodeName: node, Timestamp: now, IntervalSeconds: 1,
		Node: model.NodeMetrics{NodeName: node, CPUCapacity: 8000, MemoryCapacity: 32 << 30, Healthy: true}}))
	require.NoError(t, pub.PublishEvent(&model.Event{Type: model.EventGPUXid, Severity: model.SeverityCritical, Timestamp: now,
		Node: node, Source: "gpu:0", Message: "GPU 0 (GPU-1) reported XID 79: GPU has fallen off the bus; the GPU needs a reset"}))

	var page events.Page
	require.Eventually(t, func() bool {
		return getJSON(t, base+events.RouteList+"?node="+node, &page) == http.StatusOK && page.Total == 1
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, "GPUXid", page.Items[0].Reason)
	assert.Equal(t, events.SourceAgent, page.Items[0].Source)

	var data string
	for !strings.HasPrefix(data, "data: ") {
		data, err = lines.ReadString('\n')
		require.NoError(t, err)
	}
	assert.Contains(t, data, `"reason":"GPUXid"`)

	var dg diagnose.Diagnosis
	require.Eventually(t, func() bool {
		return getJSON(t, base+"/api/v1/diagnose/nodes/"+node, &dg) == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, diagnose.RuleNodeGPUXid, dg.Rule)

	// The aggregator's own NodeStale event lands in the store too.
	require.Eventually(t, func() bool {
		getJSON(t, base+events.RouteList+"?reason=NodeStale", &page)
		return page.Total == 1 && page.Items[0].Source == events.SourceAggregator
	}, 15*time.Second, 100*time.Millisecond)

	agg.cancel()
	_, err = io.Copy(io.Discard, lines)
	require.NoError(t, err, "shutdown ends the stream")
	require.NoError(t, agg.stop(t))
}

// TestRestartRefillsTheEventsStore: node and cluster events from before a
// restart are back in the events store after it, each counted once, and
// are not logged again as news.
func TestRestartRefillsTheEventsStore(t *testing.T) {
	noCluster(t)
	cfg := loadConfig(t, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--interval", "1", "--data-dir", t.TempDir())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	agg := startAggregator(t, cfg, logger)

	const node = "gpu-1"
	pub, err := publish.Connect(config.NATSConfig{URL: agg.natsURL, SubjectPrefix: wire.DefaultPrefix, BufferSize: 10}, node, logger, nil)
	require.NoError(t, err)
	now := time.Now().UTC()
	require.NoError(t, pub.PublishReport(&model.NodeReport{NodeName: node, Timestamp: now, IntervalSeconds: 1,
		Node: model.NodeMetrics{NodeName: node, CPUCapacity: 8000, MemoryCapacity: 32 << 30, Healthy: true}}))
	require.NoError(t, pub.PublishEvent(&model.Event{Type: model.EventGPUXid, Severity: model.SeverityCritical, Timestamp: now,
		Node: node, Source: "gpu:0", Message: "GPU 0 (GPU-1) reported XID 79: GPU has fallen off the bus; the GPU needs a reset"}))
	require.NoError(t, pub.Close(5*time.Second))

	// The agent stops reporting: the aggregator's NodeStale follows.
	var before events.Page
	require.Eventually(t, func() bool {
		return getJSON(t, agg.base+events.RouteList+"?node="+node, &before) == http.StatusOK && before.Total == 2
	}, 15*time.Second, 100*time.Millisecond)
	require.NoError(t, agg.stop(t))

	logs := &syncBuffer{}
	agg = startAggregator(t, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	var after events.Page
	require.Eventually(t, func() bool {
		return getJSON(t, agg.base+events.RouteList+"?node="+node, &after) == http.StatusOK && after.Total == 2
	}, 10*time.Second, 50*time.Millisecond)
	bySource := map[string]events.Event{}
	for _, e := range after.Items {
		bySource[e.Source] = e
	}
	assert.Equal(t, "GPUXid", bySource[events.SourceAgent].Reason)
	assert.Equal(t, 1, bySource[events.SourceAgent].Count)
	assert.Equal(t, "NodeStale", bySource[events.SourceAggregator].Reason)
	require.Contains(t, logMessages(logs.String()), "consuming", "the logs are read")
	assert.NotContains(t, logMessages(logs.String()), "node event", "the past is not logged as news")
	// Three intervals on, each is still there once.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); <-tick.C {
		after = events.Page{}
		require.Equal(t, http.StatusOK, getJSON(t, agg.base+events.RouteList+"?node="+node, &after))
		require.Equal(t, 2, after.Total)
		for _, e := range after.Items {
			require.Equal(t, 1, e.Count, "%s %s", e.Source, e.Reason)
		}
	}
}

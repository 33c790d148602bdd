//go:build fault

package fault

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

const (
	accepted = `k8smon_ingest_reports_total{result="accepted"}`
	outdated = `k8smon_ingest_reports_total{result="outdated"}`
)

// waitReady waits until the aggregator's /readyz says ready.
func waitReady(t *testing.T, a *aggregator) {
	t.Helper()
	require.Eventually(t, func() bool { code, _ := a.ready(); return code == http.StatusOK }, 60*time.Second, 50*time.Millisecond,
		"aggregator never ready:\n%s", a.p.Tail(20))
}

// waitPublished waits until the agent's acknowledged reports grew by n.
func waitPublished(t *testing.T, a *agent, n float64) {
	t.Helper()
	from := max(a.metric(`k8smon_agent_published_total{kind="NodeReport"}`), 0)
	require.Eventually(t, func() bool { return a.metric(`k8smon_agent_published_total{kind="NodeReport"}`) >= from+n },
		60*time.Second, 50*time.Millisecond, "agent %s did not deliver %v more reports:\n%s", a.node, n, a.p.Tail(20))
}

// waitBuffered waits until the agent holds n reports it cannot deliver.
func waitBuffered(t *testing.T, a *agent, n float64) {
	t.Helper()
	require.Eventually(t, func() bool { return a.metric("k8smon_agent_buffered_messages") >= n },
		60*time.Second, 50*time.Millisecond, "agent %s never buffered %v messages", a.node, n)
}

// assertNothingLost stops the agent and checks that every report it
// produced is in the stream once, in order, and was accepted once by each
// aggregator; and that the agent's counters said so while it ran.
func assertNothingLost(t *testing.T, js jetstream.JetStream, a *agent, aggs ...*aggregator) {
	t.Helper()
	c, stored := a.settled(js)
	assert.Equal(t, c.cycles, c.published, "every report produced was acknowledged")
	assert.Zero(t, c.dropped, "none dropped")
	assert.Equal(t, int(c.published), len(stored), "the stream holds what the agent says it delivered")

	a.p.Stop() // flushes what it still holds
	final := storedReports(t, js, a.node)
	require.GreaterOrEqual(t, len(final), len(stored))
	assert.True(t, slices.IsSortedFunc(final, func(x, y time.Time) int { return x.Compare(y) }), "in order")
	assert.Equal(t, len(final), len(slices.CompactFunc(slices.Clone(final), time.Time.Equal)), "each report once")
	for _, g := range aggs {
		require.Eventually(t, func() bool { return g.metric(accepted) == float64(len(final)) }, 30*time.Second, 50*time.Millisecond,
			"%s accepted %v reports, the stream holds %d", g.name, g.metric(accepted), len(final))
		assert.Zero(t, g.metric(outdated), "%s saw no report twice", g.name)
	}
	t.Logf("%s: %d reports produced, stored and accepted once each", a.node, len(final))
}

// NATS killed and restarted five times while an agent reports every
// second: every report reaches the stream and the aggregator once, and the
// aggregator says it is degraded while NATS is gone.
func TestNATSKilledAndRestartedFiveTimes(t *testing.T) {
	quick(t)
	dir := t.TempDir()
	n := startNATS(t, dir, "nats")
	agg := startAggregator(t, dir, "aggregator", n.url())
	waitReady(t, agg)
	a := startAgent(t, dir, "worker-1.fault.internal", n.url())
	_, js := client(t, n.url())

	connected := func() bool { return agg.metric("k8smon_nats_connected") == 1 }
	for i := range 5 {
		waitPublished(t, a, 2)
		require.Eventually(t, connected, 30*time.Second, 20*time.Millisecond, "the aggregator never reconnected")
		n.p.Kill()
		waitBuffered(t, a, 2)
		if i == 0 {
			code, why := agg.ready()
			assert.Equal(t, http.StatusOK, code, "still serving")
			assert.Contains(t, why, "degraded: NATS unreachable")
			assert.Zero(t, agg.metric("k8smon_nats_connected"))
			code, _ = get(a.metrics+"/readyz", nil)
			assert.Equal(t, http.StatusServiceUnavailable, code, "the agent cannot deliver")
			assert.Zero(t, a.metric("k8smon_agent_delivering"))
		}
		n.start()
	}
	waitPublished(t, a, 2)
	require.Eventually(t, connected, 30*time.Second, 20*time.Millisecond, "the aggregator never reconnected")
	assert.Equal(t, 5.0, agg.metric(`k8smon_nats_connection_changes_total{change="disconnected"}`))
	assert.Equal(t, 5.0, agg.metric(`k8smon_nats_connection_changes_total{change="reconnected"}`))
	assertNothingLost(t, js, a, agg)
}

// NATS paused (SIGSTOP) for 20 s: the connection stays open but nothing
// answers. Nothing is lost, nothing doubled, and the agent says it cannot
// deliver meanwhile.
func TestNATSPaused(t *testing.T) {
	quick(t)
	dir := t.TempDir()
	n := startNATS(t, dir, "nats")
	agg := startAggregator(t, dir, "aggregator", n.url())
	waitReady(t, agg)
	a := startAgent(t, dir, "worker-1.fault.internal", n.url())
	_, js := client(t, n.url())
	waitPublished(t, a, 3)

	n.p.Pause()
	require.Eventually(t, func() bool { code, _ := get(a.metrics+"/readyz", nil); return code == http.StatusServiceUnavailable },
		30*time.Second, 100*time.Millisecond, "the agent never said it cannot deliver")
	time.Sleep(20 * time.Second) // the outage itself, not a wait for a result
	n.p.Resume()

	waitPublished(t, a, 3)
	code, _ := get(a.metrics+"/readyz", nil)
	assert.Equal(t, http.StatusOK, code)
	assertNothingLost(t, js, a, agg)
}

// The aggregator SIGKILLed and restarted: before /readyz says ready it has
// every node and its whole history back, from the Reports stream, although
// no agent reports meanwhile.
func TestAggregatorKilledAndRestarted(t *testing.T) {
	quick(t)
	dir := t.TempDir()
	n := startNATS(t, dir, "nats")
	agg := startAggregator(t, dir, "aggregator", n.url())
	waitReady(t, agg)
	nodes := []string{"worker-1.fault.internal", "worker-2.fault.internal"}
	var agents []*agent
	for _, node := range nodes {
		agents = append(agents, startAgent(t, dir, node, n.url()))
	}
	_, js := client(t, n.url())
	for _, a := range agents {
		waitPublished(t, a, 5)
	}
	// Agents frozen: what the aggregator holds stops changing.
	for _, a := range agents {
		a.p.Pause()
	}
	stored := map[string][]time.Time{}
	before := map[string][]point{}
	for _, node := range nodes {
		stored[node] = storedReports(t, js, node)
		require.Eventually(t, func() bool {
			h := agg.history(node)
			return len(h) > 0 && h[len(h)-1].Timestamp.Equal(stored[node][len(stored[node])-1])
		}, 10*time.Second, 50*time.Millisecond, "the aggregator never caught up with %s", node)
		before[node] = agg.history(node)
	}
	nodesBefore := agg.nodes()

	agg.p.Kill()
	agg.start()
	var first []string
	var firstHist map[string][]point
	start := time.Now()
	require.Eventually(t, func() bool {
		code, _ := agg.ready()
		if code != http.StatusOK {
			return false
		}
		// The first answer after ready must already be complete.
		first = agg.nodes()
		firstHist = map[string][]point{}
		for _, node := range nodes {
			firstHist[node] = agg.history(node)
		}
		return true
	}, 60*time.Second, 10*time.Millisecond)
	t.Logf("ready %s after the restart", time.Since(start).Round(time.Millisecond))

	assert.ElementsMatch(t, nodesBefore, first, "the same nodes")
	for _, node := range nodes {
		assert.Equal(t, stored[node], times(firstHist[node]), "%s: the restored history is every report the stream holds", node)
		for _, p := range before[node] {
			assert.Contains(t, firstHist[node], p, "%s: a reading recorded before the kill is back", node)
		}
	}
	for _, a := range agents {
		a.p.Resume()
	}
	waitPublished(t, agents[0], 2)
}

// A three-server NATS cluster loses one server: the streams have three
// replicas, and reports keep flowing into them and to the aggregator
// without a gap.
func TestNATSClusterLosesAServer(t *testing.T) {
	slow(t)
	dir := t.TempDir()
	servers := startCluster(t, dir, 3)
	url := clusterURL(servers)
	agg := startAggregator(t, dir, "aggregator", url)
	waitReady(t, agg)
	a := startAgent(t, dir, "worker-1.fault.internal", url)
	_, js := client(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.ReportsName(wire.DefaultPrefix))
	require.NoError(t, err)
	require.Equal(t, 3, s.CachedInfo().Config.Replicas, "three servers: three replicas")

	waitPublished(t, a, 3)
	// The server leading the Reports stream goes: the others elect a
	// new leader and clients move over.
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.NotNil(t, info.Cluster)
	i := slices.IndexFunc(servers, func(n *natsServer) bool { return n.name == info.Cluster.Leader })
	require.GreaterOrEqual(t, i, 0, "leader %q", info.Cluster.Leader)
	servers[i].p.Kill()
	t.Logf("killed %s, the Reports stream's leader", info.Cluster.Leader)
	waitPublished(t, a, 5)
	code, why := agg.ready()
	assert.Equal(t, http.StatusOK, code)
	assert.NotContains(t, why, "degraded", "a client of a cluster moves to another server")
	assertNothingLost(t, js, a, agg)
}

// Two aggregator replicas on one NATS answer the same snapshot, and each
// cluster event reaches subscribers and the Events stream once.
func TestTwoAggregatorReplicas(t *testing.T) {
	quick(t)
	dir := t.TempDir()
	n := startNATS(t, dir, "nats")
	nc, js := client(t, n.url())
	events := make(chan *nats.Msg, 64)
	_, err := nc.ChanSubscribe(wire.ClusterEventSubject(wire.DefaultPrefix), events)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	aggs := []*aggregator{startAggregator(t, dir, "aggregator-a", n.url()), startAggregator(t, dir, "aggregator-b", n.url())}
	for _, g := range aggs {
		waitReady(t, g)
	}
	nodes := []string{"worker-1.fault.internal", "worker-2.fault.internal"}
	var agents []*agent
	for _, node := range nodes {
		agents = append(agents, startAgent(t, dir, node, n.url()))
	}
	for _, a := range agents {
		waitPublished(t, a, 3)
	}

	// The same nodes and readings from either replica.
	latest := func(g *aggregator) map[string]time.Time {
		var snap struct {
			NodeMetrics map[string]struct {
				Timestamp time.Time `json:"timestamp"`
			} `json:"nodeMetrics"`
		}
		get(g.api+"/api/v1/metrics/snapshot", &snap)
		out := map[string]time.Time{}
		for k, v := range snap.NodeMetrics {
			out[k] = v.Timestamp.UTC()
		}
		return out
	}
	for _, a := range agents {
		a.p.Pause()
	}
	require.Eventually(t, func() bool {
		x, y := latest(aggs[0]), latest(aggs[1])
		return len(x) == len(nodes) && assert.ObjectsAreEqual(x, y)
	}, 10*time.Second, 50*time.Millisecond, "the replicas never agreed")
	agents[1].p.Resume()

	// worker-1 stays silent: it goes stale, announced once.
	stale := 0
	deadline := time.After(15 * time.Second)
	quiet := time.After(24 * time.Hour)
	for quiet != nil {
		select {
		case m := <-events:
			e, err := wire.DecodeClusterEvent(m.Data)
			require.NoError(t, err)
			if e.Type == model.EventNodeStale && e.Node == nodes[0] {
				stale++
				quiet = time.After(5 * time.Second) // long enough for a second copy to show
			}
		case <-deadline:
			if stale == 0 {
				t.Fatal("no NodeStale event for the silent node")
			}
		case <-quiet:
			quiet = nil
		}
	}
	assert.Equal(t, 1, stale, "one NodeStale on the subject, however many replicas")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.EventsName(wire.DefaultPrefix))
	require.NoError(t, err)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.ClusterEventSubject(wire.DefaultPrefix)}})
	require.NoError(t, err)
	inStream := 0
	batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
	require.NoError(t, err)
	for m := range batch.Messages() {
		if strings.Contains(string(m.Data()), `"NodeStale"`) && strings.Contains(string(m.Data()), nodes[0]) {
			inStream++
		}
	}
	assert.Equal(t, 1, inStream, "one NodeStale in the Events stream")
	leaders := aggs[0].metric("k8smon_cluster_events_publisher") + aggs[1].metric("k8smon_cluster_events_publisher")
	assert.Equal(t, 1.0, leaders, "one replica publishes")
}

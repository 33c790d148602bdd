package ingest_test

// The attacks of issue 11 on agent messages, each as an attacker would
// mount it: raw messages published on a real NATS server with JetStream in
// the test process, stored in the aggregator's streams, received by a real
// Ingester, built into snapshots by the manager and served by the HTTP
// handler.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/api"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/ingest"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/manager"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

const within, every = 20 * time.Second, 5 * time.Millisecond

// rig is an aggregator's message path without the binary around it.
type rig struct {
	pub   *nats.Conn
	in    *ingest.Ingester
	reg   *prometheus.Registry
	store *state.Store
	mgr   *manager.Manager
	api   http.Handler
	// clock is the manager's time, ahead of the wall clock by offset.
	offset atomic.Int64

	mu          sync.Mutex
	nodeEvents  []*model.Event
	cluster     []model.Event
	logBytes    atomic.Int64
	maxLogBytes atomic.Int64
}

// countingWriter counts the bytes logged and the longest line, holding
// none of them: a flood must be measurable without being stored.
type countingWriter struct{ r *rig }

func (w countingWriter) Write(p []byte) (int, error) {
	w.r.logBytes.Add(int64(len(p)))
	for {
		old := w.r.maxLogBytes.Load()
		if int64(len(p)) <= old || w.r.maxLogBytes.CompareAndSwap(old, int64(len(p))) {
			break
		}
	}
	return len(p), nil
}

func newRig(t *testing.T, cfg ingest.Config) *rig {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, MaxPayload: 4 << 20,
		JetStream: true, StoreDir: t.TempDir()})
	require.NoError(t, err)
	s.Start()
	require.True(t, s.ReadyForConnections(5*time.Second))
	t.Cleanup(s.Shutdown)
	conn := func() *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	// The aggregator's streams, with room for a flood of small reports.
	_, err = streams.Ensure(context.Background(), conn(), streams.Config{
		Prefix: wire.DefaultPrefix, ReportsMaxAge: 2 * time.Hour, ReportsPerSubject: 1200, ReportsMaxBytes: 1 << 30,
		EventsMaxAge: 24 * time.Hour, EventsMaxBytes: 256 << 20,
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)

	r := &rig{reg: prometheus.NewRegistry()}
	logger := slog.New(slog.NewTextHandler(countingWriter{r}, nil))
	cfg.Registerer, cfg.Logger = r.reg, logger
	// As the binary does: every node event is logged with its message.
	cfg.OnEvent = func(e *model.Event) {
		logger.Info("node event", "node", e.Node, "type", e.Type, "severity", e.Severity, "message", e.Message)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.nodeEvents = append(r.nodeEvents, e)
	}
	r.in, err = ingest.New(cfg)
	require.NoError(t, err)
	require.NoError(t, r.in.Start(conn()))
	t.Cleanup(func() { _ = r.in.Close() })
	r.pub = conn()

	r.store = state.NewStore(state.StoreOptions{History: state.NewHistory(time.Hour, 1200), Standalone: true})
	r.mgr = manager.New(manager.Options{
		Interval: 15 * time.Second, StaleIntervals: 3, ForgetAfter: 5 * time.Minute,
		Thresholds: model.DefaultThresholds(), Reports: r.in, Store: r.store, Logger: logger,
		Now: func() time.Time { return time.Now().Add(time.Duration(r.offset.Load())) },
		OnEvents: func(events []model.Event) {
			for _, e := range events {
				logger.Info("cluster event", "type", e.Type, "severity", e.Severity, "message", e.Message)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			r.cluster = append(r.cluster, events...)
		},
	})
	r.api = api.New(r.store, api.Options{Logger: logger})
	return r
}

func (r *rig) publish(t *testing.T, subject string, data []byte) {
	t.Helper()
	require.NoError(t, r.pub.Publish(subject, data))
}

func (r *rig) flush(t *testing.T) {
	t.Helper()
	require.NoError(t, r.pub.Flush())
}

func (r *rig) publishReport(t *testing.T, rep *model.NodeReport) {
	t.Helper()
	b, err := wire.EncodeReport(rep) // the encoder checks nothing: an attacker's would not either
	require.NoError(t, err)
	r.publish(t, wire.NodeReportSubject(wire.DefaultPrefix, rep.NodeName), b)
}

// metric sums the series of a family whose labels include label=value
// ("" matches all).
func (r *rig) metric(t *testing.T, family, label, value string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func (r *rig) dropped(t *testing.T, reason string) float64 {
	return r.metric(t, "k8smon_ingest_messages_dropped_total", "reason", reason)
}

func (r *rig) accepted(t *testing.T) float64 {
	return r.metric(t, "k8smon_ingest_reports_total", "result", "accepted")
}

// waitDropped waits until reason counted n refusals in all.
func (r *rig) waitDropped(t *testing.T, reason string, n float64) {
	t.Helper()
	require.Eventually(t, func() bool { return r.dropped(t, reason) >= n }, within, every, "reason %s", reason)
	assert.Equal(t, n, r.dropped(t, reason), "reason %s", reason)
}

func (r *rig) collect(t *testing.T) *model.MetricsSnapshot {
	t.Helper()
	require.NoError(t, r.mgr.Collect(context.Background()))
	return r.store.Snapshot()
}

func (r *rig) get(t *testing.T, path string, into any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	r.api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if into != nil && rec.Code == http.StatusOK {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), into))
	}
	return rec.Code
}

// agentReport is what a real agent on a GPU node sends, read at ts.
func agentReport(node string, ts time.Time) *model.NodeReport {
	ts = ts.UTC()
	return &model.NodeReport{
		NodeName: node, Timestamp: ts, AgentVersion: "v0.1.0", IntervalSeconds: 15,
		Node: model.NodeMetrics{
			NodeName: node, Timestamp: ts, CPUCapacity: 8000, CPUUsage: 2000, CPUUsageRate: 25,
			MemoryCapacity: 32 << 30, MemoryUsage: 8 << 30, MemoryUsageRate: 25,
			DiskCapacity: 100 << 30, DiskUsage: 40 << 30, DiskUsageRate: 40, Healthy: true,
			GPUCount: 2, GPUUsage: []float64{50, 70}, GPUMemoryTotal: []int64{40 << 30, 40 << 30}, GPUMemoryUsed: []int64{1 << 30, 2 << 30},
			GPUs: []model.GPUMetrics{
				{Index: 0, UUID: "GPU-0", UtilizationRate: 50, MemoryTotal: 40 << 30, MemoryUsed: 1 << 30, TemperatureC: 60, PowerWatts: 300},
				{Index: 1, UUID: "GPU-1", UtilizationRate: 70, MemoryTotal: 40 << 30, MemoryUsed: 2 << 30, TemperatureC: 61, PowerWatts: 320},
			},
		},
		Sources: []model.SourceStatus{{Name: "cpu", Status: model.SourceOK, DurationMs: 1, LastSuccess: ts}},
	}
}

// edit encodes rep and replaces one JSON fragment, for values that Go's
// encoder cannot write (NaN) or that the struct cannot hold.
func edit(t *testing.T, rep *model.NodeReport, old, replacement string) []byte {
	t.Helper()
	b, err := wire.EncodeReport(rep)
	require.NoError(t, err)
	out := strings.Replace(string(b), old, replacement, 1)
	require.NotEqual(t, string(b), out, "fragment %s not found", old)
	return []byte(out)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// 100,000 invented node names: the tracked names stop at the limit, the
// rest are refused before decoding and counted, memory stays bounded, the
// client never falls behind, a real agent's reports are all accepted, and
// the invented names going stale is one cluster event.
func TestAttackInventedNodeFlood(t *testing.T) {
	const limit, invented, realEvery = 1000, 100_000, 5000
	r := newRig(t, ingest.Config{MaxNodes: limit})
	base := heapInUse()
	start := time.Now().Add(-time.Hour)

	real := 0
	r.publishReport(t, agentReport("real-node", start))
	real++
	for i := range invented {
		name := fmt.Sprintf("invented-%06d", i)
		r.publishReport(t, &model.NodeReport{NodeName: name, Timestamp: start, IntervalSeconds: 15,
			Node: model.NodeMetrics{NodeName: name, CPUCapacity: 1000}})
		if i%realEvery == 0 {
			r.publishReport(t, agentReport("real-node", start.Add(time.Duration(real)*time.Second)))
			real++
		}
	}
	r.flush(t)

	r.waitDropped(t, "node_limit", invented-(limit-1))
	require.Eventually(t, func() bool { return r.accepted(t) == float64(limit-1+real) }, within, every)
	assert.Equal(t, limit, r.in.Tracked())
	assert.Equal(t, float64(limit), r.metric(t, "k8smon_ingest_nodes_tracked", "", ""))
	assert.Zero(t, r.metric(t, "k8smon_ingest_consumer_errors_total", "", ""), "the consumers never stalled")
	assert.Equal(t, start.Add(time.Duration(real-1)*time.Second).UTC(), r.in.Latest()["real-node"].Report.Timestamp, "every real report was accepted")
	// The NATS server in this process stores the flood in the Reports
	// stream too (73 MB on disk): its block cache holds some of it for a few
	// seconds, and its index of 100,000 subjects about 14 MiB for as long
	// as the reports are kept. The bound is the ingester's 32 MiB plus that
	// index, once the cache has expired. With per-node NATS permissions
	// (docs/security.md) an agent cannot publish under invented names.
	var grown int64
	require.Eventually(t, func() bool {
		grown = int64(heapInUse()) - int64(base)
		return grown < 48<<20
	}, 30*time.Second, 500*time.Millisecond, "heap grew %d MiB", grown>>20)
	assert.Less(t, r.logBytes.Load(), int64(64<<10), "refusals are logged at a limited rate")

	// A minute later every invented name is stale: one event says so.
	r.collect(t)
	r.offset.Store(int64(time.Minute))
	r.collect(t)
	r.mu.Lock()
	defer r.mu.Unlock()
	var stale []model.Event
	for _, e := range r.cluster {
		if e.Type == model.EventNodeStale {
			stale = append(stale, e)
		}
	}
	require.Len(t, stale, 1)
	assert.Equal(t, fmt.Sprint(limit), stale[0].Details["count"])
}

// One report from the year 2100 is refused; the real agent's next reports
// are accepted and history never holds the future point.
func TestAttackReportFromYear2100(t *testing.T) {
	r := newRig(t, ingest.Config{})
	now := time.Now()
	r.publishReport(t, agentReport("n1", now.Add(-time.Minute)))
	r.publishReport(t, agentReport("n1", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)))
	r.flush(t)
	r.waitDropped(t, "future", 1)
	r.collect(t)

	for i := range 3 {
		// Readings 15 s apart, the last a quarter minute ago.
		r.publishReport(t, agentReport("n1", now.Add(time.Duration(i-3)*15*time.Second)))
		r.flush(t)
		require.Eventually(t, func() bool { return r.accepted(t) == float64(2+i) }, within, every)
		r.offset.Store(int64(time.Duration(i+1) * 5 * time.Second))
		r.collect(t)
	}
	var h struct {
		Items []state.NodePoint `json:"items"`
	}
	require.Equal(t, http.StatusOK, r.get(t, "/api/v1/metrics/nodes/n1/history", &h))
	require.Len(t, h.Items, 4, "the first reading and the three after the attack")
	for _, p := range h.Items {
		assert.False(t, p.Timestamp.After(time.Now()), "a point from the future: %v", p.Timestamp)
	}
}

// An agent whose clock jumps a minute and a half forward (within no
// reasonable skew of 2 minutes it is still accepted) and then back is
// never locked out, and history never holds a time after its arrival.
func TestAttackClockJumpsForwardThenBack(t *testing.T) {
	r := newRig(t, ingest.Config{MaxClockSkew: 2 * time.Minute})
	r.publishReport(t, agentReport("n1", time.Now().Add(-15*time.Second)))
	r.publishReport(t, agentReport("n1", time.Now().Add(90*time.Second))) // forward
	r.flush(t)
	require.Eventually(t, func() bool { return r.accepted(t) == 2 }, within, every)
	r.collect(t)
	r.publishReport(t, agentReport("n1", time.Now().Add(time.Hour))) // far forward: refused
	r.flush(t)
	r.waitDropped(t, "future", 1)
	for i := range 3 { // and back
		r.publishReport(t, agentReport("n1", time.Now()))
		r.flush(t)
		require.Eventually(t, func() bool { return r.accepted(t) == float64(3+i) }, within, every, "report %d after the jump back", i)
		r.collect(t)
	}
	assert.Zero(t, r.metric(t, "k8smon_ingest_reports_total", "result", "outdated"))
	var h struct {
		Items []state.NodePoint `json:"items"`
	}
	require.Equal(t, http.StatusOK, r.get(t, "/api/v1/metrics/nodes/n1/history", &h))
	for _, p := range h.Items {
		assert.False(t, p.Timestamp.After(time.Now()), "a point from the future: %v", p.Timestamp)
	}
}

// Numbers no machine reports are refused, each with its reason; the
// cluster totals and rates stay right and every endpoint answers 200.
func TestAttackImpossibleNumbers(t *testing.T) {
	r := newRig(t, ingest.Config{})
	now := time.Now().Add(-time.Second)
	r.publishReport(t, agentReport("real", now))

	maxCPU := agentReport("max-1", now)
	maxCPU.Node.CPUCapacity, maxCPU.Node.CPUUsage = math.MaxInt64, math.MaxInt64
	maxCPU.Node.MemoryCapacity, maxCPU.Node.MemoryUsage = math.MaxInt64, math.MaxInt64
	maxCPU2 := agentReport("max-2", now)
	maxCPU2.Node = maxCPU.Node
	maxCPU2.Node.NodeName = "max-2"
	hugeGPU := agentReport("gpu-huge", now)
	hugeGPU.Node.GPUs[0].UtilizationRate, hugeGPU.Node.GPUs[1].UtilizationRate = 1.7e308, 1.7e308
	hugeGPU.Node.GPUUsage = []float64{1.7e308, 1.7e308}
	negative := agentReport("negative", now)
	negative.Node.CPUUsage, negative.Node.MemoryUsage = -5000, -1<<30
	hot := agentReport("hot", now)
	hot.Node.GPUs[0].TemperatureC = math.MaxInt32
	slowInterval := agentReport("slow", now)
	slowInterval.IntervalSeconds = 1e300

	attacks := []struct {
		subject string
		data    []byte
		reason  string
	}{}
	add := func(rep *model.NodeReport, reason string) {
		b, err := wire.EncodeReport(rep)
		require.NoError(t, err)
		attacks = append(attacks, struct {
			subject string
			data    []byte
			reason  string
		}{wire.NodeReportSubject(wire.DefaultPrefix, rep.NodeName), b, reason})
	}
	add(maxCPU, "range")
	add(maxCPU2, "range")
	add(hugeGPU, "range")
	add(negative, "range")
	add(hot, "range")
	add(slowInterval, "interval")
	nan := agentReport("gpu-nan", now)
	attacks = append(attacks,
		struct {
			subject string
			data    []byte
			reason  string
		}{wire.NodeReportSubject(wire.DefaultPrefix, "gpu-nan"), edit(t, nan, `"utilizationRate":50`, `"utilizationRate":NaN`), "malformed"},
		struct {
			subject string
			data    []byte
			reason  string
		}{wire.NodeReportSubject(wire.DefaultPrefix, "gpu-nan"), edit(t, nan, `"utilizationRate":50`, `"utilizationRate":1e999`), "malformed"},
	)
	want := map[string]float64{}
	for _, a := range attacks {
		r.publish(t, a.subject, a.data)
		want[a.reason]++
	}
	r.flush(t)
	for reason, n := range want {
		r.waitDropped(t, reason, n)
	}
	require.Eventually(t, func() bool { return r.accepted(t) == 1 }, within, every)

	snap := r.collect(t)
	c := snap.ClusterMetrics
	assert.Equal(t, []string{"real"}, keys(snap.NodeMetrics), "only the real node")
	assert.Equal(t, int64(8000), c.TotalCPU)
	assert.Equal(t, int64(32<<30), c.TotalMemory)
	assert.LessOrEqual(t, c.CPUUsageRate, 100.0)
	assert.LessOrEqual(t, c.MemoryUsageRate, 100.0)
	for _, issue := range c.Issues {
		assert.NotContains(t, issue, "2147483647")
	}
	for _, path := range []string{"/api/v1/metrics/cluster", "/api/v1/metrics/nodes", "/api/v1/metrics/snapshot",
		"/api/v1/metrics/nodes/real/history", "/api/v1/metrics/nodes/gpu-huge/history"} {
		code := r.get(t, path, nil)
		assert.Contains(t, []int{http.StatusOK, http.StatusNotFound}, code, path)
	}
	assert.Equal(t, http.StatusOK, r.get(t, "/api/v1/metrics/nodes/real/history", nil))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// 300 events of 1 MB among real ones: the Events stream refuses the flood
// (it takes no event over wire.MaxEventBytes), so the aggregator never
// receives it; every real event gets through, and the log stays small.
func TestAttackEventFlood(t *testing.T) {
	r := newRig(t, ingest.Config{})
	r.publishReport(t, agentReport("real", time.Now().Add(-time.Second)))
	r.flush(t)
	require.Eventually(t, func() bool { return r.accepted(t) == 1 }, within, every)

	junk, err := wire.Encode(wire.KindNodeEvent, "attacker", time.Now(), &model.Event{
		Type: model.EventPressureRaised, Node: "attacker", Timestamp: time.Now(), Message: strings.Repeat("x", 1_000_000)})
	require.NoError(t, err)
	realEvents, refused := 0, 0
	for i := range 300 {
		// A request, to see the stream's answer; nothing acknowledges it.
		ack, err := r.pub.Request(wire.NodeEventSubject(wire.DefaultPrefix, "attacker"), junk, within)
		require.NoError(t, err)
		if strings.Contains(string(ack.Data), "message size exceeds maximum allowed") {
			refused++
		}
		if i%30 == 0 {
			e := &model.Event{Type: model.EventGPUXid, Severity: model.SeverityCritical, Node: "real", Timestamp: time.Now(),
				Source: "gpu:0", Message: fmt.Sprintf("Xid 79 (%d)", i), Details: map[string]string{"xid": "79"}}
			b, err := wire.EncodeEvent(wire.KindNodeEvent, "real", e)
			require.NoError(t, err)
			r.publish(t, wire.NodeEventSubject(wire.DefaultPrefix, "real"), b)
			realEvents++
		}
	}
	r.flush(t)
	assert.Equal(t, 300, refused, "the stream refused every oversized event")
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.nodeEvents) == realEvents
	}, within, every)
	r.mu.Lock()
	for _, e := range r.nodeEvents {
		assert.Equal(t, "real", e.Node)
		assert.LessOrEqual(t, len(e.Message), model.MaxEventMessageBytes)
	}
	r.mu.Unlock()
	assert.Zero(t, r.metric(t, "k8smon_ingest_messages_dropped_total", "reason", "too_large"), "none reached the aggregator")
	assert.Less(t, r.logBytes.Load(), int64(16<<10), "log bytes")

	// An event under the size limit with a long message is cut to 1 KiB
	// before anyone logs or re-publishes it.
	long, err := wire.Encode(wire.KindNodeEvent, "real", time.Now(), &model.Event{
		Type: model.EventPressureRaised, Node: "real", Timestamp: time.Now(), Message: strings.Repeat("y", 60_000)})
	require.NoError(t, err)
	r.publish(t, wire.NodeEventSubject(wire.DefaultPrefix, "real"), long)
	r.flush(t)
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.nodeEvents) == realEvents+1
	}, within, every)
	assert.Less(t, r.maxLogBytes.Load(), int64(2*model.MaxEventMessageBytes), "the longest log line")
}

// Custom metrics nested 9,990 deep are refused; the snapshot does not
// carry them.
func TestAttackDeepCustomMetrics(t *testing.T) {
	r := newRig(t, ingest.Config{})
	rep := agentReport("deep", time.Now().Add(-time.Second))
	deep := strings.Repeat(`{"a":`, 9990) + "1" + strings.Repeat("}", 9990)
	r.publish(t, wire.NodeReportSubject(wire.DefaultPrefix, "deep"), edit(t, rep, `"healthy":true`, `"healthy":true,"customMetrics":`+deep))
	r.flush(t)
	r.waitDropped(t, "custom_metrics", 1)
	assert.Zero(t, r.accepted(t))

	rep.Node.CustomMetrics = map[string]any{"fans": []any{map[string]any{"rpm": 1200.0}}}
	r.publishReport(t, rep)
	r.flush(t)
	require.Eventually(t, func() bool { return r.accepted(t) == 1 }, within, every, "shallow custom metrics pass")
	snap := r.collect(t)
	// DeepEqual, not Equal: a failure must not print 9,990 levels.
	assert.True(t, reflect.DeepEqual(rep.Node.CustomMetrics, snap.NodeMetrics["deep"].CustomMetrics), "the snapshot carries the shallow custom metrics")
}

package ingest

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// clockedIngester is an Ingester on a test clock, fed through handle.
func clockedIngester(t *testing.T, cfg Config) (*Ingester, *time.Time) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	in, err := New(cfg)
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in.now = func() time.Time { return now }
	return in, &now
}

func encodeReport(t *testing.T, r *model.NodeReport) []byte {
	t.Helper()
	b, err := wire.EncodeReport(r)
	require.NoError(t, err)
	return b
}

func (i *Ingester) droppedFor(reason string) float64 {
	return testutil.ToFloat64(i.dropped.WithLabelValues(reason))
}

func TestReportsRefusedByReason(t *testing.T) {
	in, now := clockedIngester(t, Config{})
	subject := wire.NodeReportSubject(prefix, "n1")
	valid := encodeReport(t, smallReport("n1", *now))
	tests := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"year 2100", encodeReport(t, smallReport("n1", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))), ReasonFuture},
		{"gpu utilisation 1.7e308", []byte(strings.Replace(string(valid), `"utilizationRate":87`, `"utilizationRate":1.7e308`, 1)), ReasonRange},
		{"gpu utilisation NaN is not JSON", []byte(strings.Replace(string(valid), `"utilizationRate":87`, `"utilizationRate":NaN`, 1)), ReasonMalformed},
		{"gpu utilisation beyond float64", []byte(strings.Replace(string(valid), `"utilizationRate":87`, `"utilizationRate":1e999`, 1)), ReasonMalformed},
		{"gpu at 2147483647 C", []byte(strings.Replace(string(valid), `"temperatureC":64`, `"temperatureC":2147483647`, 1)), ReasonRange},
		{"negative cpu usage", []byte(strings.Replace(string(valid), `"cpuUsage":23150`, `"cpuUsage":-23150`, 1)), ReasonRange},
		{"interval 1e300", []byte(strings.Replace(string(valid), `"intervalSeconds":15`, `"intervalSeconds":1e300`, 1)), ReasonInterval},
		{"custom metrics 9990 deep", []byte(strings.Replace(string(valid), `"healthy":true`,
			`"healthy":true,"customMetrics":`+strings.Repeat(`{"a":`, 9990)+`1`+strings.Repeat(`}`, 9990), 1)), ReasonCustomMetrics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NotEqual(t, string(valid), string(tt.data), "the edit applied")
			before := in.droppedFor(tt.reason)
			in.handle(subject, tt.data)
			assert.Equal(t, before+1, in.droppedFor(tt.reason))
			assert.Empty(t, in.Latest())
		})
	}
	in.handle(subject, valid)
	assert.Contains(t, in.Latest(), "n1", "the node's valid report is still accepted")
}

func TestClockJumpingForwardThenBack(t *testing.T) {
	in, now := clockedIngester(t, Config{MaxClockSkew: 2 * time.Minute})
	subject := wire.NodeReportSubject(prefix, "n1")
	start := *now
	steps := []struct {
		name     string
		arrives  time.Duration // on the aggregator's clock, after start
		agent    time.Duration // the agent's clock, relative to the aggregator's
		accepted bool
		stored   time.Duration // the stored report time, after start
	}{
		{"in step", 0, 0, true, 0},
		{"an hour ahead: refused", 15 * time.Second, time.Hour, false, 0},
		{"a minute ahead: held to the arrival time", 15 * time.Second, time.Minute, true, 15 * time.Second},
		{"back in step", 30 * time.Second, 0, true, 30 * time.Second},
		{"in step again", 45 * time.Second, 0, true, 45 * time.Second},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			*now = start.Add(s.arrives)
			before := in.reportsTotalFor("accepted")
			in.handle(subject, encodeReport(t, smallReport("n1", now.Add(s.agent))))
			assert.Equal(t, s.accepted, in.reportsTotalFor("accepted") == before+1)
			stored := in.Latest()["n1"].Report
			assert.Equal(t, start.Add(s.stored), stored.Timestamp)
			assert.False(t, stored.Timestamp.After(*now), "never a time after arrival")
			assert.False(t, stored.Node.Timestamp.After(*now))
		})
	}
	assert.Equal(t, float64(1), in.droppedFor(ReasonFuture))
}

func (i *Ingester) reportsTotalFor(result string) float64 {
	return testutil.ToFloat64(i.reports.WithLabelValues(result))
}

func TestNodeLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	in, now := clockedIngester(t, Config{MaxNodes: 3, Registerer: reg})
	send := func(node string) {
		in.handle(wire.NodeReportSubject(prefix, node), encodeReport(t, smallReport(node, *now)))
	}
	for _, n := range []string{"a", "b", "c", "invented-1", "invented-2"} {
		send(n)
	}
	assert.Equal(t, 3, in.Tracked())
	assert.Equal(t, float64(2), in.droppedFor(ReasonNodeLimit))

	*now = now.Add(15 * time.Second)
	send("a")
	assert.Equal(t, *now, in.Latest()["a"].ReceivedAt, "a known node is never refused")

	in.SetClusterNodes(map[string]bool{"k8s-node": true})
	send("k8s-node")
	assert.Contains(t, in.Latest(), "k8s-node", "a node with a Node object is admitted beyond the limit")
	send("invented-3")
	assert.NotContains(t, in.Latest(), "invented-3")

	// Node objects count toward the limit (they cost memory too) but are
	// never refused: a, c and k8s-node hold all three places.
	in.Forget("b")
	send("d")
	assert.NotContains(t, in.Latest(), "d")
	in.Forget("c")
	send("d")
	assert.Contains(t, in.Latest(), "d", "a forgotten name frees its place")

	got, err := testutil.GatherAndCount(reg, "k8smon_ingest_nodes_tracked")
	require.NoError(t, err)
	assert.Equal(t, 1, got)
	assert.Equal(t, float64(in.Tracked()), gaugeValue(t, reg, "k8smon_ingest_nodes_tracked"))
}

func gaugeValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestEventRateLimit(t *testing.T) {
	var got []*model.Event
	in, now := clockedIngester(t, Config{EventRate: 0.5, EventBurst: 5, OnEvent: func(e *model.Event) { got = append(got, e) }})
	in.handle(wire.NodeReportSubject(prefix, "real"), encodeReport(t, smallReport("real", *now)))
	event := func(node string) {
		e := &model.Event{Type: model.EventGPUXid, Severity: model.SeverityCritical, Node: node, Timestamp: *now, Message: "Xid 79"}
		b, err := wire.EncodeEvent(wire.KindNodeEvent, node, e)
		require.NoError(t, err)
		in.handle(wire.NodeEventSubject(prefix, node), b)
	}

	for range 8 {
		event("real")
	}
	assert.Len(t, got, 5, "the burst")
	assert.Equal(t, float64(3), in.droppedFor(ReasonRateLimited))

	// Invented names share one allowance and never take the real node's.
	for n := range 1000 {
		event(fmt.Sprintf("invented-%d", n))
	}
	assert.Len(t, got, 10, "five more from all invented names together")
	assert.Equal(t, 1, in.eventLimit.size(), "no bucket per invented name")

	*now = now.Add(4 * time.Second) // two tokens back
	event("real")
	event("real")
	event("real")
	assert.Len(t, got, 12)
	assert.Equal(t, "real", got[11].Node)

	// A bucket that has refilled is swept: it held nothing a new one lacks.
	*now = now.Add(time.Minute)
	event("invented-x")
	assert.Equal(t, 0, in.eventLimit.size())
	in.handle(wire.NodeEventSubject(prefix, "real"), []byte("garbage"))
	assert.Equal(t, 1, in.eventLimit.size())
	in.Forget("real")
	assert.Equal(t, 0, in.eventLimit.size())
}

func TestEventMessagesCut(t *testing.T) {
	var got []*model.Event
	logs := &syncBuffer{}
	in, now := clockedIngester(t, Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), OnEvent: func(e *model.Event) { got = append(got, e) }})
	subject := wire.NodeEventSubject(prefix, "n1")
	e := &model.Event{Type: model.EventPressureRaised, Node: "n1", Timestamp: *now, Message: strings.Repeat("x", 60_000)}
	b, err := wire.Encode(wire.KindNodeEvent, "n1", *now, e)
	require.NoError(t, err)
	in.handle(subject, b)
	require.Len(t, got, 1)
	assert.LessOrEqual(t, len(got[0].Message), model.MaxEventMessageBytes)

	e.Message = strings.Repeat("x", 1_000_000)
	b, err = wire.Encode(wire.KindNodeEvent, "n1", *now, e)
	require.NoError(t, err)
	in.handle(subject, b)
	assert.Len(t, got, 1)
	assert.Equal(t, float64(1), in.droppedFor(ReasonTooLarge))
	assert.Less(t, len(logs.String()), 2048, "a refusal is logged without the message")
}

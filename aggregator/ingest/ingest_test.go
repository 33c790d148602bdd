package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

const prefix = wire.DefaultPrefix

const waitFor, tick = 5 * time.Second, 5 * time.Millisecond

// startNATS runs a real JetStream server in the test process with the
// streams the aggregator creates under prefixes.
func startNATS(t testing.TB, prefixes ...string) string {
	t.Helper()
	s := runServer(t, -1, t.TempDir())
	ensureStreams(t, s.ClientURL(), prefixes...)
	return s.ClientURL()
}

// runServer runs a JetStream server on port (-1: any) with its store in dir.
func runServer(t testing.TB, port int, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true, JetStream: true, StoreDir: dir})
	require.NoError(t, err)
	s.Start()
	require.True(t, s.ReadyForConnections(5*time.Second))
	t.Cleanup(s.Shutdown)
	return s
}

func ensureStreams(t testing.TB, url string, prefixes ...string) {
	t.Helper()
	if len(prefixes) == 0 {
		prefixes = []string{prefix}
	}
	nc := connect(t, url)
	for _, p := range prefixes {
		_, err := streams.Ensure(context.Background(), nc, streams.Config{
			Prefix: p, ReportsMaxAge: time.Hour, ReportsPerSubject: 1000, ReportsMaxBytes: 64 << 20,
			EventsMaxAge: time.Hour, EventsMaxBytes: 16 << 20,
		}, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
	}
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// syncBuffer is a log sink safe for the handler goroutines and the test.
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

// eventSink collects the events handed to OnEvent.
type eventSink struct {
	mu     sync.Mutex
	events []*model.Event
}

func (s *eventSink) add(e *model.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *eventSink) get() []*model.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*model.Event(nil), s.events...)
}

type fixture struct {
	in   *Ingester
	reg  *prometheus.Registry
	pub  *nats.Conn
	sink *eventSink
	logs *syncBuffer
}

func newFixture(t *testing.T, mod func(*Config), prefixes ...string) *fixture {
	t.Helper()
	url := startNATS(t, prefixes...)
	f := &fixture{reg: prometheus.NewRegistry(), sink: &eventSink{}, logs: &syncBuffer{}}
	cfg := Config{
		Registerer: f.reg,
		OnEvent:    f.sink.add,
		Logger:     slog.New(slog.NewTextHandler(f.logs, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	in, err := New(cfg)
	require.NoError(t, err)
	sub := connect(t, url)
	require.NoError(t, in.Start(sub))
	t.Cleanup(func() { _ = in.Close() })
	f.in = in
	f.pub = connect(t, url)
	return f
}

func (f *fixture) publish(t *testing.T, subject string, data []byte) {
	t.Helper()
	require.NoError(t, f.pub.Publish(subject, data))
	require.NoError(t, f.pub.Flush())
}

func (f *fixture) publishReport(t *testing.T, r *model.NodeReport) {
	t.Helper()
	b, err := wire.EncodeReport(r)
	require.NoError(t, err)
	f.publish(t, wire.NodeReportSubject(prefix, r.NodeName), b)
}

func (f *fixture) dropped(reason string) float64 {
	return testutil.ToFloat64(f.in.dropped.WithLabelValues(reason))
}

func (f *fixture) reportsTotal(result string) float64 {
	return testutil.ToFloat64(f.in.reports.WithLabelValues(result))
}

func smallReport(node string, ts time.Time) *model.NodeReport {
	return realisticReport(node, 2, ts)
}

func TestReportsStoredAndVisibleInLatest(t *testing.T) {
	f := newFixture(t, nil)
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nodes := []string{"node-a", "ip-10-0-1-7.ec2.internal", "gpu-1.rack-2.dc"}

	for _, n := range nodes {
		f.publishReport(t, smallReport(n, ts))
	}
	require.Eventually(t, func() bool { return len(f.in.Latest()) == len(nodes) }, waitFor, tick)

	latest := f.in.Latest()
	for _, n := range nodes {
		t.Run(n, func(t *testing.T) {
			e, ok := latest[n]
			require.True(t, ok, "node %q stored under its real name", n)
			assert.Equal(t, n, e.Report.NodeName)
			assert.True(t, e.Report.Timestamp.Equal(ts))
			assert.False(t, e.ReceivedAt.IsZero())
			require.NotNil(t, e.Report.Kubelet)
			assert.Len(t, e.Report.Kubelet.Pods, 2)
		})
	}
	assert.Equal(t, float64(len(nodes)), f.reportsTotal("accepted"))
	assert.False(t, f.in.LastReceived().IsZero())

	// Latest is the caller's copy.
	delete(latest, "node-a")
	assert.Contains(t, f.in.Latest(), "node-a")

	f.in.Forget("node-a")
	assert.NotContains(t, f.in.Latest(), "node-a")
}

func TestNewerReportWins(t *testing.T) {
	f := newFixture(t, nil)
	// Readings are taken before they arrive: all of these are in the past.
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)

	f.publishReport(t, smallReport("n1", t0))
	f.publishReport(t, smallReport("n1", t0.Add(15*time.Second)))
	require.Eventually(t, func() bool { return f.reportsTotal("accepted") == 2 }, waitFor, tick)

	tests := []struct {
		name string
		ts   time.Time
	}{
		{"older", t0.Add(-time.Minute)},
		{"reordered", t0},
		{"duplicate", t0.Add(15 * time.Second)},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.publishReport(t, smallReport("n1", tt.ts))
			require.Eventually(t, func() bool { return f.reportsTotal("outdated") == float64(n+1) }, waitFor, tick)
			assert.True(t, f.in.Latest()["n1"].Report.Timestamp.Equal(t0.Add(15*time.Second)))
		})
	}

	f.publishReport(t, smallReport("n1", t0.Add(30*time.Second)))
	require.Eventually(t, func() bool { return f.in.Latest()["n1"].Report.Timestamp.Equal(t0.Add(30 * time.Second)) }, waitFor, tick)
}

func TestClockCorrectedAgentIsNotLockedOut(t *testing.T) {
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in.now = func() time.Time { return now }

	in.store(smallReport("n1", now.Add(time.Hour)), now) // agent clock an hour ahead
	in.store(smallReport("n1", now), now)                // then corrected
	assert.True(t, in.Latest()["n1"].Report.Timestamp.Equal(now))

	in.store(smallReport("n1", now.Add(-time.Second)), now) // within skew: ordinary reordering
	assert.True(t, in.Latest()["n1"].Report.Timestamp.Equal(now))
}

func TestBadMessagesDroppedAndCounted(t *testing.T) {
	f := newFixture(t, nil)
	ts := time.Now().UTC()
	good, err := wire.EncodeReport(smallReport("n1", ts))
	require.NoError(t, err)

	envelope := func(schema, kind, sender string, payload any) []byte {
		p, err := json.Marshal(payload)
		require.NoError(t, err)
		b, err := json.Marshal(wire.Envelope{Schema: schema, Kind: kind, Sender: sender, SentAt: ts, Payload: p})
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name    string
		subject string
		data    []byte
		reason  string
	}{
		{"malformed json", wire.NodeReportSubject(prefix, "n1"), []byte(`{"schema":"k8smon/v1",`), ReasonMalformed},
		{"not an object", wire.NodeReportSubject(prefix, "n1"), []byte(`[1,2,3]`), ReasonMalformed},
		{"empty", wire.NodeReportSubject(prefix, "n1"), nil, ReasonMalformed},
		{"wrong schema", wire.NodeReportSubject(prefix, "n1"), envelope("k8smon/v0", wire.KindNodeReport, "n1", smallReport("n1", ts)), ReasonSchema},
		{"subject and payload disagree", wire.NodeReportSubject(prefix, "n2"), good, ReasonMismatch},
		{"event on report subject", wire.NodeReportSubject(prefix, "n1"), envelope(wire.Schema, wire.KindNodeEvent, "n1", model.Event{Type: model.EventAgentStarted, Node: "n1"}), ReasonKind},
		{"bad event", wire.NodeEventSubject(prefix, "n1"), []byte(`{"schema":"k8smon/v1","kind":"NodeEvent","sentAt":"2026-01-01T00:00:00Z","payload":{"node":"n1"}}`), ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.dropped(tt.reason)
			accepted := f.reportsTotal("accepted")
			f.publish(t, tt.subject, tt.data)
			require.Eventually(t, func() bool { return f.dropped(tt.reason) == before+1 }, waitFor, tick)

			// The subscriber keeps working after a bad message.
			r := smallReport("n1", time.Now().UTC())
			f.publishReport(t, r)
			require.Eventually(t, func() bool { return f.reportsTotal("accepted") == accepted+1 }, waitFor, tick)
		})
	}
	assert.Contains(t, f.logs.String(), "reason=mismatch subject=k8smon.node.n2.report")
	assert.Empty(t, f.sink.get(), "a bad event never reaches the callback")
}

// TestHandleReasons covers what the streams never deliver (subjects they
// do not hold, messages beyond their size limit), by calling the handler
// directly.
func TestHandleReasons(t *testing.T) {
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	good, err := wire.EncodeReport(smallReport("n1", time.Now().UTC()))
	require.NoError(t, err)
	oversize := append(bytes.Clone(good[:len(good)-1]), []byte(`,"pad":"`+strings.Repeat("x", wire.MaxMessageBytes)+`"}`)...)
	tests := []struct {
		name, subject, reason string
		data                  []byte
	}{
		{"other prefix", "other.node.n1.report", ReasonSubject, []byte(`{}`)},
		{"neither report nor event", "k8smon.node.n1.status", ReasonSubject, []byte(`{}`)},
		{"empty node token", "k8smon.node..report", ReasonSubject, []byte(`{}`)},
		{"oversize", wire.NodeReportSubject(prefix, "n1"), ReasonTooLarge, oversize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(in.dropped.WithLabelValues(tt.reason))
			in.handle(tt.subject, tt.data)
			assert.Equal(t, before+1, testutil.ToFloat64(in.dropped.WithLabelValues(tt.reason)))
		})
	}
}

func TestEventsReachCallback(t *testing.T) {
	f := newFixture(t, nil)
	events := []*model.Event{
		{Type: model.EventPressureRaised, Severity: model.SeverityWarning, Node: "ip-10-0-1-7.ec2.internal", Source: "memory", Message: "memory usage 93.1% >= 90.0%"},
		{Type: model.EventGPUXid, Severity: model.SeverityCritical, Node: "gpu-1", Source: "gpu:0", Message: "Xid 79", Details: map[string]string{"xid": "79"}},
	}
	for _, e := range events {
		e.Timestamp = time.Now().UTC().Truncate(time.Millisecond)
		b, err := wire.EncodeEvent(wire.KindNodeEvent, e.Node, e)
		require.NoError(t, err)
		f.publish(t, wire.NodeEventSubject(prefix, e.Node), b)
	}
	require.Eventually(t, func() bool { return len(f.sink.get()) == len(events) }, waitFor, tick)
	got := f.sink.get()
	for i, e := range events {
		assert.Equal(t, e, got[i])
	}
	assert.Equal(t, float64(2), testutil.ToFloat64(f.in.events))
	assert.Empty(t, f.in.Latest(), "events are not reports")
}

func TestCallbackPanicIsContained(t *testing.T) {
	var calls sync.Map
	f := newFixture(t, func(c *Config) {
		c.OnEvent = func(e *model.Event) {
			calls.Store(e.Message, true)
			if e.Message == "first" {
				panic("callback bug")
			}
		}
	})
	for _, msg := range []string{"first", "second"} {
		e := &model.Event{Type: model.EventAgentStarted, Node: "n1", Timestamp: time.Now().UTC(), Message: msg}
		b, err := wire.EncodeEvent(wire.KindNodeEvent, "n1", e)
		require.NoError(t, err)
		f.publish(t, wire.NodeEventSubject(prefix, "n1"), b)
	}
	require.Eventually(t, func() bool { _, ok := calls.Load("second"); return ok }, waitFor, tick, "events keep flowing after a panic")
	assert.Contains(t, f.logs.String(), "callback bug")
}

// A slow callback delays events; unlike a core subscription, the stream
// keeps them until it catches up, and none is lost.
func TestSlowCallbackLosesNoEvents(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	f := newFixture(t, func(c *Config) {
		c.EventBurst = 1000 // this test is about delivery, not the event rate
		c.OnEvent = func(e *model.Event) {
			<-release
			mu.Lock()
			got = append(got, e.Message)
			mu.Unlock()
		}
	})
	var want []string
	for i := range 200 {
		e := &model.Event{Type: model.EventAgentStarted, Node: "n1", Timestamp: time.Now().UTC(), Message: fmt.Sprint(i)}
		b, err := wire.EncodeEvent(wire.KindNodeEvent, "n1", e)
		require.NoError(t, err)
		require.NoError(t, f.pub.Publish(wire.NodeEventSubject(prefix, "n1"), b))
		want = append(want, e.Message)
	}
	require.NoError(t, f.pub.Flush())
	close(release)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(want) }, waitFor, tick)
	assert.Equal(t, want, got, "every event, in order")
}

func TestWarningsAreRateLimited(t *testing.T) {
	logs := &syncBuffer{}
	in, err := New(Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), LogEvery: time.Minute})
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in.now = func() time.Time { return now }

	for range 1000 {
		in.handle(wire.NodeReportSubject(prefix, "n1"), []byte("garbage"))
	}
	in.handle(wire.NodeReportSubject(prefix, "n1"), []byte(`{"schema":"v0"}`))
	assert.Equal(t, 2, strings.Count(logs.String(), "dropped agent message"), "one line per reason")
	assert.Equal(t, float64(1000), testutil.ToFloat64(in.dropped.WithLabelValues(ReasonMalformed)), "every drop is counted")

	now = now.Add(time.Minute)
	in.handle(wire.NodeReportSubject(prefix, "n1"), []byte("garbage"))
	assert.Equal(t, 3, strings.Count(logs.String(), "dropped agent message"))
	assert.Contains(t, logs.String(), "suppressed=999")
}

func TestStartCloseLifecycle(t *testing.T) {
	url := startNATS(t)
	nc := connect(t, url)
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)

	require.NoError(t, in.Start(nc))
	require.ErrorIs(t, in.Start(nc), ErrStarted)
	publishReports(t, nc, smallReport("n1", time.Now().UTC()))
	require.Eventually(t, func() bool { return len(in.Latest()) == 1 }, waitFor, tick)

	require.NoError(t, in.Close())
	require.NoError(t, in.Close())
	require.ErrorIs(t, in.Start(nc), ErrClosed)
	publishReports(t, nc, smallReport("n2", time.Now().UTC()))
	assert.Never(t, func() bool { return len(in.Latest()) > 1 }, 300*time.Millisecond, tick, "closed: nothing consumed")
}

func TestStartNeedsTheStreams(t *testing.T) {
	s := runServer(t, -1, t.TempDir())
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	err = in.Start(connect(t, s.ClientURL()))
	require.ErrorContains(t, err, "K8SMON_REPORTS")
}

func TestNewErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	_, err := New(Config{Logger: logger, Registerer: reg})
	require.NoError(t, err)

	tests := []struct {
		name string
		cfg  Config
	}{
		{"no logger", Config{}},
		{"bad prefix", Config{Logger: logger, Prefix: "a.*"}},
		{"metrics registered twice", Config{Logger: logger, Registerer: reg}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.Error(t, err)
		})
	}
}

func TestCustomPrefix(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Prefix = "prod.k8smon" }, "k8smon", "prod.k8smon")
	b, err := wire.EncodeReport(smallReport("n1", time.Now().UTC()))
	require.NoError(t, err)
	f.publish(t, wire.NodeReportSubject("k8smon", "n1"), b) // another install's subject: not seen
	f.publish(t, wire.NodeReportSubject("prod.k8smon", "n1"), b)
	require.Eventually(t, func() bool { return len(f.in.Latest()) == 1 }, waitFor, tick)
	assert.Equal(t, float64(1), f.reportsTotal("accepted"))
}

func FuzzIngest(f *testing.F) {
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	report, err := wire.EncodeReport(smallReport("ip-10-0-1-7.ec2.internal", ts))
	require.NoError(f, err)
	event, err := wire.EncodeEvent(wire.KindNodeEvent, "n1", &model.Event{Type: model.EventGPUXid, Node: "n1", Timestamp: ts, Message: "x"})
	require.NoError(f, err)
	f.Add(wire.NodeReportSubject(prefix, "ip-10-0-1-7.ec2.internal"), report)
	f.Add(wire.NodeEventSubject(prefix, "n1"), event)
	f.Add("k8smon.node.n1.report", []byte(`{"schema":"k8smon/v1","kind":"NodeReport","sender":"n1","sentAt":"2026-01-01T00:00:00Z","payload":{"nodeName":"n1","timestamp":"2026-01-01T00:00:00Z","kubelet":{"pods":null}}}`))
	f.Add("k8smon.node.n1.event", []byte(`{"payload":null}`))
	f.Add("k8smon.node..report", []byte(``))
	f.Add("", []byte(`null`))

	f.Add("k8smon.node.n1.report", []byte(strings.Replace(string(report), `"utilizationRate":87`, `"utilizationRate":1.7e308`, 1)))
	f.Add("k8smon.node.n1.report", []byte(strings.Replace(string(report), `"timestamp":"2026-03-01T12:00:00Z"`, `"timestamp":"2100-03-01T12:00:00Z"`, 1)))

	const maxNodes = 8
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler), MaxNodes: maxNodes, OnEvent: func(e *model.Event) {
		if len(e.Message) > model.MaxEventMessageBytes {
			panic(fmt.Sprintf("an event message of %d bytes got through", len(e.Message)))
		}
	}})
	require.NoError(f, err)
	in.now = func() time.Time { return ts }
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		// handle, not onReport: a panic must fail the fuzzer, not be recovered.
		in.handle(subject, data)
		// Also on well-formed subjects, so random payloads reach the decoders.
		in.handle(wire.NodeReportSubject(prefix, subject), data)
		in.handle(wire.NodeEventSubject(prefix, subject), data)
		latest := in.Latest()
		if len(latest) > maxNodes {
			t.Fatalf("%d nodes tracked, limit %d", len(latest), maxNodes)
		}
		for _, e := range latest {
			if e.Report == nil || e.Report.NodeName == "" {
				t.Fatalf("stored an invalid report: %+v", e)
			}
			if e.Report.Timestamp.After(ts) {
				t.Fatalf("stored a report from the future: %v", e.Report.Timestamp)
			}
			// No NaN or ±Inf: an accepted report always encodes.
			if _, err := json.Marshal(e.Report); err != nil {
				t.Fatalf("stored a report that does not encode: %v", err)
			}
		}
	})
}

// BenchmarkIngestReport measures decoding and storing one realistic report,
// the path every agent report takes: 30 pods (the scenario of the cost
// targets) and 110 (the kubelet's default maximum).
func BenchmarkIngestReport(b *testing.B) {
	for _, pods := range []int{30, 110} {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) { benchmarkIngest(b, pods) })
	}
}

func benchmarkIngest(b *testing.B, pods int) {
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	node := "ip-10-0-1-7.ec2.internal"
	subject := wire.NodeReportSubject(prefix, node)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Distinct timestamps so that every iteration is accepted, not skipped
	// as outdated; encoded ahead so only decode and store are measured.
	const distinct = 64
	msgs := make([][]byte, distinct)
	for i := range msgs {
		msgs[i], err = wire.EncodeReport(realisticReport(node, pods, base.Add(time.Duration(i)*time.Second)))
		require.NoError(b, err)
	}
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		if n%distinct == 0 {
			in.Forget(node)
		}
		in.handle(subject, msgs[n%distinct])
	}
	b.StopTimer()
	if got := testutil.ToFloat64(in.dropped.WithLabelValues(ReasonMalformed)); got != 0 {
		b.Fatalf("%v reports dropped", got)
	}
}

// BenchmarkRefuse measures what a refused message costs the handler: a
// report from a new name once the node limit is reached, and an event
// beyond its node's allowance. Both are refused before decoding.
func BenchmarkRefuse(b *testing.B) {
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.Run("report=node_limit", func(b *testing.B) {
		in, err := New(Config{Logger: slog.New(slog.DiscardHandler), MaxNodes: 1})
		require.NoError(b, err)
		in.now = func() time.Time { return ts }
		in.handle(wire.NodeReportSubject(prefix, "real"), mustEncode(b, realisticReport("real", 30, ts)))
		msg := mustEncode(b, realisticReport("invented", 30, ts))
		subject := wire.NodeReportSubject(prefix, "invented")
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			in.handle(subject, msg)
		}
		b.StopTimer()
		require.Equal(b, 1, in.Tracked())
	})
	b.Run("event=rate_limited", func(b *testing.B) {
		in, err := New(Config{Logger: slog.New(slog.DiscardHandler), EventBurst: 1})
		require.NoError(b, err)
		in.now = func() time.Time { return ts }
		msg, err := wire.EncodeEvent(wire.KindNodeEvent, "n1", &model.Event{Type: model.EventGPUXid, Node: "n1", Timestamp: ts, Message: "Xid 79"})
		require.NoError(b, err)
		subject := wire.NodeEventSubject(prefix, "n1")
		in.handle(subject, msg)
		b.ReportAllocs()
		for b.Loop() {
			in.handle(subject, msg)
		}
	})
}

func mustEncode(b *testing.B, r *model.NodeReport) []byte {
	b.Helper()
	data, err := wire.EncodeReport(r)
	require.NoError(b, err)
	return data
}

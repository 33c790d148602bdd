package ingest

import (
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// publishReports stores reports in the stream through a plain publish, as
// an older agent would, and returns when the stream holds them.
func publishReports(t *testing.T, nc *nats.Conn, reports ...*model.NodeReport) {
	t.Helper()
	for _, r := range reports {
		b, err := wire.EncodeReport(r)
		require.NoError(t, err)
		_, err = nc.Request(wire.NodeReportSubject(prefix, r.NodeName), b, waitFor) // the stream's acknowledgement
		require.NoError(t, err)
	}
}

// entries records what OnRestore receives.
type entries struct {
	mu  sync.Mutex
	got []state.ReportEntry
}

func (e *entries) add(x state.ReportEntry) { e.mu.Lock(); e.got = append(e.got, x); e.mu.Unlock() }
func (e *entries) all() []state.ReportEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]state.ReportEntry(nil), e.got...)
}

func TestStartRestoresTheLatestReportsAndReplaysTheWindow(t *testing.T) {
	url := startNATS(t)
	nc := connect(t, url)
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	var sent []*model.NodeReport
	for i := range 5 {
		for _, n := range []string{"a", "b"} {
			sent = append(sent, smallReport(n, base.Add(time.Duration(i)*time.Second)))
		}
	}
	publishReports(t, nc, sent...)
	stored := time.Now()

	restored := &entries{}
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), OnRestore: restored.add})
	require.NoError(t, err)
	restoring, _ := in.Restoring()
	assert.True(t, restoring)
	require.NoError(t, in.Start(connect(t, url)))
	defer in.Close()
	select {
	case <-in.Restored():
	case <-time.After(waitFor):
		t.Fatal("restore never finished")
	}
	restoring, _ = in.Restoring()
	assert.False(t, restoring)

	latest := in.Latest()
	require.Len(t, latest, 2)
	for _, n := range []string{"a", "b"} {
		assert.True(t, latest[n].Report.Timestamp.Equal(base.Add(4*time.Second)), n)
		assert.False(t, latest[n].ReceivedAt.After(stored), "a replayed report keeps the time the stream stored it")
	}
	got := restored.all()
	require.Len(t, got, len(sent), "the whole window, for history")
	for i := range sent {
		assert.Equal(t, sent[i].NodeName, got[i].Report.NodeName)
		assert.True(t, sent[i].Timestamp.Equal(got[i].Report.Timestamp), "in stream order")
	}
	assert.Equal(t, float64(len(sent)), reportsOf(in, "accepted"))

	// Live reports after the restore are stored, not replayed to OnRestore.
	publishReports(t, nc, smallReport("a", base.Add(10*time.Second)))
	require.Eventually(t, func() bool { return in.Latest()["a"].Report.Timestamp.Equal(base.Add(10 * time.Second)) }, waitFor, tick)
	assert.Len(t, restored.all(), len(sent))
}

func reportsOf(in *Ingester, result string) float64 {
	return promtest.ToFloat64(in.reports.WithLabelValues(result))
}

func TestRestoreOfAnEmptyStreamIsDoneAtOnce(t *testing.T) {
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, in.Start(connect(t, startNATS(t))))
	defer in.Close()
	select {
	case <-in.Restored():
	default:
		t.Fatal("nothing to restore, yet not restored")
	}
}

func TestRestoringSaysHowFarItGot(t *testing.T) {
	url := startNATS(t)
	base := time.Now().UTC().Add(-time.Minute)
	publishReports(t, connect(t, url), smallReport("a", base), smallReport("a", base.Add(time.Second)))
	hold := make(chan struct{})
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler), OnRestore: func(state.ReportEntry) { <-hold }})
	require.NoError(t, err)
	require.NoError(t, in.Start(connect(t, url)))
	defer in.Close()
	defer close(hold)
	require.Eventually(t, func() bool {
		_, why := in.Restoring()
		return why == "restoring reports from the Reports stream: 0 of 2 replayed"
	}, waitFor, tick)
}

// A duplicate (the same report stored twice, as after an acknowledgement
// lost beyond the duplicate window) counts as outdated, never accepted twice.
func TestADuplicateIsOutdated(t *testing.T) {
	f := newFixture(t, nil)
	r := smallReport("n1", time.Now().UTC())
	f.publishReport(t, r)
	f.publishReport(t, r)
	require.Eventually(t, func() bool { return f.reportsTotal("outdated") == 1 }, waitFor, tick)
	assert.Equal(t, 1.0, f.reportsTotal("accepted"))
}

// The consumer resumes after the last message it handled when NATS comes
// back, so reports stored meanwhile are neither lost nor seen twice.
func TestNothingLostOrDoubledAcrossANATSRestart(t *testing.T) {
	dir := t.TempDir()
	s := runServer(t, -1, dir)
	port := s.Addr().(*net.TCPAddr).Port
	ensureStreams(t, s.ClientURL())
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.NoError(t, in.Start(connect(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))))
	defer in.Close()

	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	pub := connect(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	publishReports(t, pub, smallReport("n1", base), smallReport("n1", base.Add(time.Second)))
	require.Eventually(t, func() bool { return reportsOf(in, "accepted") == 2 }, waitFor, tick)

	s.Shutdown()
	s.WaitForShutdown()
	s = runServer(t, port, dir)
	require.Eventually(t, pub.IsConnected, waitFor, tick)
	for i := 2; i < 6; i++ {
		publishReports(t, pub, smallReport("n1", base.Add(time.Duration(i)*time.Second)))
	}
	require.Eventually(t, func() bool { return reportsOf(in, "accepted") == 6 }, 3*waitFor, tick)
	assert.Equal(t, 0.0, reportsOf(in, "outdated"), "nothing delivered twice")
	assert.True(t, in.Latest()["n1"].Report.Timestamp.Equal(base.Add(5*time.Second)))
}

func TestEventReplay(t *testing.T) {
	url := startNATS(t)
	nc := connect(t, url)
	e := &model.Event{Type: model.EventGPUXid, Node: "n1", Timestamp: time.Now().UTC(), Message: "before the aggregator"}
	b, err := wire.EncodeEvent(wire.KindNodeEvent, "n1", e)
	require.NoError(t, err)
	_, err = nc.Request(wire.NodeEventSubject(prefix, "n1"), b, waitFor)
	require.NoError(t, err)

	for _, tt := range []struct {
		name   string
		replay time.Duration
		want   int
	}{
		{"new events only", 0, 0},
		{"the last hour", time.Hour, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &eventSink{}
			in, err := New(Config{Logger: slog.New(slog.DiscardHandler), OnEvent: sink.add, EventReplay: tt.replay})
			require.NoError(t, err)
			require.NoError(t, in.Start(connect(t, url)))
			defer in.Close()
			if tt.want == 0 {
				assert.Never(t, func() bool { return len(sink.get()) > 0 }, 300*time.Millisecond, tick)
				return
			}
			require.Eventually(t, func() bool { return len(sink.get()) == tt.want }, waitFor, tick)
			assert.Equal(t, "before the aggregator", sink.get()[0].Message)
		})
	}
}

// TestReplayedEventsAreThePast: what the Events stream held at Start goes
// to the replay callbacks, node and cluster events alike; what comes after
// is news for OnEvent, and later cluster events are not read.
func TestReplayedEventsAreThePast(t *testing.T) {
	url := startNATS(t)
	nc := connect(t, url)
	publishEvent := func(kind, sender, subject, msg string) {
		t.Helper()
		e := &model.Event{Type: model.EventGPUXid, Node: "n1", Timestamp: time.Now().UTC(), Message: msg}
		if kind == wire.KindClusterEvent {
			e = &model.Event{Type: "NodeStale", Node: "n1", Timestamp: time.Now().UTC(), Message: msg}
		}
		b, err := wire.EncodeEvent(kind, sender, e)
		require.NoError(t, err)
		_, err = nc.Request(subject, b, waitFor)
		require.NoError(t, err)
	}
	publishEvent(wire.KindNodeEvent, "n1", wire.NodeEventSubject(prefix, "n1"), "node, before")
	publishEvent(wire.KindClusterEvent, "aggregator", wire.ClusterEventSubject(prefix), "cluster, before")
	_, err := nc.Request(wire.ClusterEventSubject(prefix), []byte("not an envelope"), waitFor)
	require.NoError(t, err)

	live, replayed, cluster := &eventSink{}, &eventSink{}, &eventSink{}
	in, err := New(Config{Logger: slog.New(slog.DiscardHandler), EventReplay: time.Hour,
		OnEvent: live.add, OnReplayedEvent: replayed.add, OnReplayedClusterEvent: cluster.add})
	require.NoError(t, err)
	require.NoError(t, in.Start(connect(t, url)))
	defer in.Close()
	require.Eventually(t, func() bool { return len(replayed.get()) == 1 && len(cluster.get()) == 1 }, waitFor, tick)
	assert.Equal(t, "node, before", replayed.get()[0].Message)
	assert.Equal(t, "cluster, before", cluster.get()[0].Message)
	require.Eventually(t, func() bool { return promtest.ToFloat64(in.dropped.WithLabelValues(ReasonMalformed)) == 1 }, waitFor, tick)

	publishEvent(wire.KindNodeEvent, "n1", wire.NodeEventSubject(prefix, "n1"), "node, after")
	publishEvent(wire.KindClusterEvent, "aggregator", wire.ClusterEventSubject(prefix), "cluster, after")
	require.Eventually(t, func() bool { return len(live.get()) == 1 }, waitFor, tick)
	assert.Equal(t, "node, after", live.get()[0].Message)
	assert.Never(t, func() bool { return len(cluster.get()) > 1 || len(replayed.get()) > 1 }, 300*time.Millisecond, tick)
	assert.Equal(t, 2.0, promtest.ToFloat64(in.events), "each node event counted once")
}

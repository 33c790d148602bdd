package publish

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

const node = "ip-10-0-1-7.ec2.internal"

// fastRetry keeps tests quick: a lost server is retried every 20-200 ms.
var fastRetry = Options{AckTimeout: 2 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}

// jsServer is a JetStream server the test can stop and start again on the
// same port and store, as an operator restarting NATS would.
type jsServer struct {
	t     *testing.T
	port  int
	store string
	s     *server.Server
}

func startJS(t *testing.T) *jsServer {
	t.Helper()
	j := &jsServer{t: t, port: -1, store: t.TempDir()}
	j.start()
	j.port = j.s.Addr().(*net.TCPAddr).Port
	t.Cleanup(j.stop)
	return j
}

func (j *jsServer) start() {
	j.t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: j.port, NoLog: true, NoSigs: true, JetStream: true, StoreDir: j.store})
	require.NoError(j.t, err)
	go s.Start()
	require.True(j.t, s.ReadyForConnections(10*time.Second), "nats server did not start")
	j.s = s
}

func (j *jsServer) stop() {
	if j.s != nil {
		j.s.Shutdown()
		j.s.WaitForShutdown()
		j.s = nil
	}
}

func (j *jsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", j.port) }

// client is the test's own connection to the server.
func (j *jsServer) client() (*nats.Conn, jetstream.JetStream) {
	j.t.Helper()
	nc, err := nats.Connect(j.url())
	require.NoError(j.t, err)
	j.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(j.t, err)
	return nc, js
}

// createStream makes the stream the aggregator would: every node's
// reports and events, deduplicated by message ID.
func (j *jsServer) createStream(maxMsgSize int32) {
	j.t.Helper()
	_, js := j.client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       "TEST",
		Subjects:   []string{wire.DefaultPrefix + ".node.*.report", wire.DefaultPrefix + ".node.*.event"},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
		MaxMsgSize: maxMsgSize,
	})
	require.NoError(j.t, err)
}

// stored returns the stream's messages, oldest first.
func (j *jsServer) stored() []*jetstream.RawStreamMsg {
	j.t.Helper()
	_, js := j.client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "TEST")
	require.NoError(j.t, err)
	info, err := s.Info(ctx)
	require.NoError(j.t, err)
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(j.t, err)
		out = append(out, m)
	}
	return out
}

// capacities decodes the stored reports' CPUCapacity, which the tests use
// as a report's number.
func capacities(t *testing.T, msgs []*jetstream.RawStreamMsg) []int64 {
	t.Helper()
	var out []int64
	for _, m := range msgs {
		if !strings.HasSuffix(m.Subject, ".report") {
			continue
		}
		r, err := wire.DecodeReport(wire.DefaultPrefix, m.Subject, m.Data)
		require.NoError(t, err)
		out = append(out, r.Node.CPUCapacity)
	}
	return out
}

func newPublisher(t *testing.T, url string, buffer int) *Publisher {
	t.Helper()
	cfg := config.NATSConfig{URL: url, SubjectPrefix: wire.DefaultPrefix, BufferSize: buffer}
	p, err := ConnectWithOptions(cfg, node, fastRetry, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(time.Second) })
	return p
}

func report(seq int) *model.NodeReport {
	return &model.NodeReport{
		NodeName: node, Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second),
		IntervalSeconds: 1, Node: model.NodeMetrics{NodeName: node, CPUCapacity: int64(seq)},
	}
}

func seqs(from, to int) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, int64(i))
	}
	return out
}

func waitEmpty(t *testing.T, p *Publisher) {
	t.Helper()
	require.Eventually(t, func() bool { return p.Buffered() == 0 }, 10*time.Second, 5*time.Millisecond, "buffer never acknowledged")
}

func TestPublishedMessagesAreStoredWithIDsAndSeenByCoreSubscribers(t *testing.T) {
	j := startJS(t)
	j.createStream(0)
	nc, _ := j.client()
	core := make(chan *nats.Msg, 8)
	_, err := nc.ChanSubscribe(wire.DefaultPrefix+".node.>", core)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	p := newPublisher(t, j.url(), 10)
	require.NoError(t, p.PublishReport(report(1)))
	ev := model.Event{Type: model.EventPressureRaised, Severity: model.SeverityWarning, Timestamp: time.Now(), Node: node, Message: "x"}
	require.NoError(t, p.PublishEvent(&ev))
	waitEmpty(t, p)

	msgs := j.stored()
	require.Len(t, msgs, 2)
	assert.Equal(t, "k8smon.node.ip-10-0-1-7_ec2_internal.report", msgs[0].Subject)
	assert.Equal(t, "report/"+node+"/2026-11-23T12:00:01Z", msgs[0].Header.Get(jetstream.MsgIDHeader))
	r, err := wire.DecodeReport(wire.DefaultPrefix, msgs[0].Subject, msgs[0].Data)
	require.NoError(t, err)
	assert.NotEmpty(t, r.AgentVersion)
	assert.Equal(t, "k8smon.node.ip-10-0-1-7_ec2_internal.event", msgs[1].Subject)
	assert.True(t, strings.HasPrefix(msgs[1].Header.Get(jetstream.MsgIDHeader), "event/"+node+"/"), msgs[1].Header.Get(jetstream.MsgIDHeader))
	got, err := wire.DecodeNodeEvent(wire.DefaultPrefix, msgs[1].Subject, msgs[1].Data)
	require.NoError(t, err)
	assert.Equal(t, model.EventPressureRaised, got.Type)

	// A plain subscriber sees the same messages, unchanged.
	for _, want := range []string{".report", ".event"} {
		select {
		case m := <-core:
			assert.True(t, strings.HasSuffix(m.Subject, want), m.Subject)
		case <-time.After(5 * time.Second):
			t.Fatal("core subscriber got nothing")
		}
	}
	assert.Equal(t, 1.0, testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeReport)))
	assert.Equal(t, 1.0, testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeEvent)))
	assert.Equal(t, 0.0, testutil.ToFloat64(p.errs))
	assert.Equal(t, 1.0, testutil.ToFloat64(p.delivering))
}

func TestUnacknowledgedMessagesStayBufferedAndAreRetriedInOrder(t *testing.T) {
	j := startJS(t)
	// No stream yet: NATS is up but nothing acknowledges, which a plain
	// publish would not notice.
	p := newPublisher(t, j.url(), 10)
	for i := 1; i <= 4; i++ {
		require.NoError(t, p.PublishReport(report(i)))
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(p.errs) >= 2 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 4, p.Buffered())
	assert.Equal(t, 0.0, testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeReport)), "nothing was acknowledged")
	ok, reason := p.Delivering()
	assert.False(t, ok)
	assert.Contains(t, reason, "has not acknowledged")
	assert.Contains(t, reason, "4 messages buffered")
	assert.Equal(t, 0.0, testutil.ToFloat64(p.delivering))

	j.createStream(0)
	waitEmpty(t, p)
	assert.Equal(t, seqs(1, 4), capacities(t, j.stored()), "retried oldest first")
	assert.Equal(t, 4.0, testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeReport)))
	assert.Equal(t, 0.0, testutil.ToFloat64(p.dropped))
	ok, _ = p.Delivering()
	assert.True(t, ok)
	assert.Equal(t, 1.0, testutil.ToFloat64(p.delivering))
}

func TestFullBufferDropsOldestAndCountsIt(t *testing.T) {
	j := startJS(t)
	j.createStream(0)
	p := newPublisher(t, j.url(), 3)
	require.NoError(t, p.PublishReport(report(1)))
	waitEmpty(t, p)

	j.stop()
	require.Eventually(t, func() bool { return !p.Connected() }, 5*time.Second, 5*time.Millisecond)
	ok, reason := p.Delivering()
	assert.False(t, ok)
	assert.Contains(t, reason, "not connected")
	for i := 2; i <= 6; i++ {
		require.NoError(t, p.PublishReport(report(i)))
	}
	assert.Equal(t, 3, p.Buffered(), "the buffer stays bounded")
	assert.Equal(t, 2.0, testutil.ToFloat64(p.dropped), "reports 2 and 3 dropped")

	j.start()
	waitEmpty(t, p)
	assert.Equal(t, []int64{1, 4, 5, 6}, capacities(t, j.stored()))
	assert.Equal(t, 4.0, testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeReport)))
	assert.Equal(t, 2.0, testutil.ToFloat64(p.dropped))
}

func TestNothingLostAcrossServerRestarts(t *testing.T) {
	j := startJS(t)
	j.createStream(0)
	p := newPublisher(t, j.url(), 100)
	n := 0
	publish := func(k int) {
		for range k {
			n++
			require.NoError(t, p.PublishReport(report(n)))
		}
	}
	for range 3 {
		publish(5)
		j.stop()
		publish(5) // while NATS is gone
		j.start()
		publish(5) // racing the reconnect
	}
	waitEmpty(t, p)

	assert.Equal(t, seqs(1, n), capacities(t, j.stored()), "every report stored once, in order")
	assert.Equal(t, float64(n), testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeReport)))
	assert.Equal(t, 0.0, testutil.ToFloat64(p.dropped))
	assert.Equal(t, 0.0, testutil.ToFloat64(p.rejected))
}

func TestSameReportTwiceIsStoredOnce(t *testing.T) {
	j := startJS(t)
	j.createStream(0)
	p := newPublisher(t, j.url(), 10)
	require.NoError(t, p.PublishReport(report(1)))
	require.NoError(t, p.PublishReport(report(1)))
	require.NoError(t, p.PublishReport(report(2)))
	waitEmpty(t, p)
	assert.Equal(t, []int64{1, 2}, capacities(t, j.stored()))
}

func TestMessageRefusedForGoodIsDroppedAndCounted(t *testing.T) {
	j := startJS(t)
	j.createStream(4000) // larger than a report, smaller than one with a long condition
	p := newPublisher(t, j.url(), 10)
	big := report(1)
	big.Node.Conditions = []string{strings.Repeat("x", 5000)}
	require.NoError(t, p.PublishReport(big))
	require.NoError(t, p.PublishReport(report(2)))
	waitEmpty(t, p)
	assert.Equal(t, []int64{2}, capacities(t, j.stored()), "the refused message does not block the next")
	assert.Equal(t, 1.0, testutil.ToFloat64(p.rejected))
	assert.Equal(t, 0.0, testutil.ToFloat64(p.dropped))
	assert.Equal(t, 1.0, testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeReport)))
}

func TestCloseWaitsForAcknowledgements(t *testing.T) {
	j := startJS(t)
	j.createStream(0)
	cfg := config.NATSConfig{URL: j.url(), SubjectPrefix: wire.DefaultPrefix, BufferSize: 100}
	p, err := ConnectWithOptions(cfg, node, fastRetry, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	require.NoError(t, err)
	for i := 1; i <= 20; i++ {
		require.NoError(t, p.PublishReport(report(i)))
	}
	require.NoError(t, p.Close(10*time.Second))
	assert.Equal(t, seqs(1, 20), capacities(t, j.stored()))
}

func TestConnectNeedsURL(t *testing.T) {
	_, err := Connect(config.NATSConfig{}, node, slog.Default(), nil)
	require.ErrorContains(t, err, "--nats-url")
}

package publish

import (
	"io"
	"log/slog"
	"net"
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

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

const node = "ip-10-0-1-7.ec2.internal"

// gate holds the agent's connections back until opened, so a test can
// subscribe on a restarted server before the agent reconnects and flushes.
type gate struct{ open chan struct{} }

func (g *gate) Check(c server.ClientAuthentication) bool {
	if strings.HasPrefix(c.GetOpts().Name, "k8smon-agent") {
		<-g.open
	}
	return true
}

func startServer(t *testing.T, port int, auth server.Authentication) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, CustomClientAuthentication: auth})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second), "nats server did not start")
	t.Cleanup(s.Shutdown)
	return s
}

func subscribe(t *testing.T, url string) (<-chan *nats.Msg, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 64)
	_, err = nc.ChanSubscribe(wire.DefaultPrefix+".node.>", ch)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return ch, nc
}

func receive(t *testing.T, ch <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func newPublisher(t *testing.T, url string, buffer int) (*Publisher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := config.NATSConfig{URL: url, SubjectPrefix: wire.DefaultPrefix, BufferSize: buffer}
	p, err := Connect(cfg, node, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	require.NoError(t, err)
	return p, reg
}

func report(seq int) *model.NodeReport {
	return &model.NodeReport{
		NodeName: node, Timestamp: time.Date(2026, 11, 23, 12, 0, seq, 0, time.UTC),
		IntervalSeconds: 15, Node: model.NodeMetrics{NodeName: node, CPUCapacity: int64(seq)},
	}
}

func TestPublishReportAndEvent(t *testing.T) {
	s := startServer(t, -1, nil)
	ch, _ := subscribe(t, s.ClientURL())
	p, reg := newPublisher(t, s.ClientURL(), 10)
	defer func() { require.NoError(t, p.Close(5*time.Second)) }()
	require.Eventually(t, p.Connected, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, p.PublishReport(report(1)))
	m := receive(t, ch)
	assert.Equal(t, "k8smon.node.ip-10-0-1-7_ec2_internal.report", m.Subject)
	r, err := wire.DecodeReport(wire.DefaultPrefix, m.Subject, m.Data)
	require.NoError(t, err)
	assert.Equal(t, node, r.NodeName)
	assert.Equal(t, int64(1), r.Node.CPUCapacity)
	assert.NotEmpty(t, r.AgentVersion)

	ev := model.Event{Type: model.EventPressureRaised, Severity: model.SeverityWarning, Timestamp: time.Now(), Node: node, Message: "x"}
	require.NoError(t, p.PublishEvent(&ev))
	m = receive(t, ch)
	assert.Equal(t, "k8smon.node.ip-10-0-1-7_ec2_internal.event", m.Subject)
	got, err := wire.DecodeNodeEvent(wire.DefaultPrefix, m.Subject, m.Data)
	require.NoError(t, err)
	assert.Equal(t, model.EventPressureRaised, got.Type)
	assert.Equal(t, 1.0, testutil.ToFloat64(p.published.WithLabelValues(wire.KindNodeReport)))
	n, err := testutil.GatherAndCount(reg, "k8smon_agent_published_total")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

func TestReportsBufferedWhileNATSIsDown(t *testing.T) {
	s := startServer(t, -1, nil)
	p, _ := newPublisher(t, s.ClientURL(), 3)
	defer p.Close(time.Second) //nolint:errcheck // best effort at test end
	require.Eventually(t, p.Connected, 5*time.Second, 10*time.Millisecond)

	port := s.Addr().(*net.TCPAddr).Port
	s.Shutdown()
	s.WaitForShutdown()
	require.Eventually(t, func() bool { return !p.Connected() }, 5*time.Second, 10*time.Millisecond)

	// Five reports while down: the buffer keeps the newest three.
	for i := 1; i <= 5; i++ {
		require.NoError(t, p.PublishReport(report(i)))
	}
	assert.Equal(t, 3, p.Buffered())
	assert.Equal(t, 2.0, testutil.ToFloat64(p.dropped))

	g := &gate{open: make(chan struct{})}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(g.open) }) })
	s2 := startServer(t, port, g)
	ch, _ := subscribe(t, s2.ClientURL())
	once.Do(func() { close(g.open) })

	for _, want := range []int64{3, 4, 5} {
		m := receive(t, ch)
		r, err := wire.DecodeReport(wire.DefaultPrefix, m.Subject, m.Data)
		require.NoError(t, err)
		assert.Equal(t, want, r.Node.CPUCapacity, "buffered reports arrive oldest first")
	}
	require.Eventually(t, func() bool { return p.Buffered() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestConnectNeedsURL(t *testing.T) {
	_, err := Connect(config.NATSConfig{}, node, slog.Default(), nil)
	require.ErrorContains(t, err, "--nats-url")
}

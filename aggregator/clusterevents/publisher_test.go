package clusterevents

import (
	"context"
	"io"
	"log/slog"
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

const ttl = 600 * time.Millisecond

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// setup runs a JetStream server with the streams and returns its URL.
func setup(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc := connect(t, s.ClientURL())
	_, err = streams.Ensure(context.Background(), nc, streams.Config{
		Prefix: wire.DefaultPrefix, ReportsMaxAge: time.Minute, ReportsPerSubject: 10, ReportsMaxBytes: 16 << 20,
		EventsMaxAge: time.Hour, EventsMaxBytes: 16 << 20,
	}, discard)
	require.NoError(t, err)
	return s.ClientURL()
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// replica is one aggregator's publisher on its own connection.
func replica(t *testing.T, url, id string) (*Publisher, *nats.Conn) {
	t.Helper()
	nc := connect(t, url)
	p, err := New(context.Background(), Options{Conn: nc, ID: id, LeaseTTL: ttl, Logger: discard, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	p.Start()
	return p, nc
}

// subscriber counts what a plain NATS subscriber receives.
func subscriber(t *testing.T, url string) chan *nats.Msg {
	t.Helper()
	nc := connect(t, url)
	ch := make(chan *nats.Msg, 100)
	_, err := nc.ChanSubscribe(wire.ClusterEventSubject(wire.DefaultPrefix), ch)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return ch
}

// received drains ch until it has been quiet for a while and returns the
// event types in arrival order.
func received(t *testing.T, ch chan *nats.Msg) []model.EventType {
	t.Helper()
	var out []model.EventType
	for {
		select {
		case m := <-ch:
			e, err := wire.DecodeClusterEvent(m.Data)
			require.NoError(t, err)
			out = append(out, e.Type)
		case <-time.After(2 * ttl):
			return out
		}
	}
}

func stale(node string) model.Event {
	return model.Event{Type: model.EventNodeStale, Severity: model.SeverityWarning, Timestamp: time.Now(), Node: node, Message: "stale"}
}

func leaderOf(ps ...*Publisher) func() bool {
	return func() bool {
		n := 0
		for _, p := range ps {
			if p.Leader() {
				n++
			}
		}
		return n == 1
	}
}

func TestTwoReplicasPublishEachEventOnce(t *testing.T) {
	url := setup(t)
	sub := subscriber(t, url)
	a, _ := replica(t, url, "a")
	b, _ := replica(t, url, "b")
	defer a.Close(context.Background()) //nolint:errcheck // test end
	defer b.Close(context.Background()) //nolint:errcheck // test end
	require.Eventually(t, leaderOf(a, b), 5*time.Second, 10*time.Millisecond, "exactly one leader")

	// Both replicas derive the same events from the same reports.
	events := []model.Event{stale("n1"), stale("n2")}
	a.Publish(events)
	b.Publish(events)
	assert.Equal(t, []model.EventType{model.EventNodeStale, model.EventNodeStale}, received(t, sub))

	leader := a
	if b.Leader() {
		leader = b
	}
	assert.Equal(t, 2.0, testutil.ToFloat64(leader.published.WithLabelValues("acknowledged")))
	assert.Equal(t, 1.0, testutil.ToFloat64(leader.leading))
}

func TestASuccessorPublishesWhatTheCrashedHolderDidNot(t *testing.T) {
	url := setup(t)
	sub := subscriber(t, url)
	a, anc := replica(t, url, "a")
	require.Eventually(t, a.Leader, 5*time.Second, 10*time.Millisecond)
	b, _ := replica(t, url, "b")
	defer b.Close(context.Background()) //nolint:errcheck // test end
	require.Never(t, b.Leader, 2*ttl, 10*time.Millisecond, "the lease is held")

	first := []model.Event{stale("n1")}
	a.Publish(first)
	b.Publish(first)
	select {
	case <-sub:
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not publish")
	}

	// a crashes: its connection goes and its lease is never released.
	anc.Close()
	second := []model.Event{{Type: model.EventNodeRecovered, Severity: model.SeverityInfo, Timestamp: time.Now(), Node: "n1", Message: "back"}}
	b.Publish(second) // before b knows it leads: kept for the take-over
	require.Eventually(t, b.Leader, 5*time.Second, 10*time.Millisecond, "b takes over once the lease expires")
	assert.Equal(t, []model.EventType{model.EventNodeRecovered}, received(t, sub),
		"the event a never published comes from b; the one a did is not sent again")
}

func TestCloseHandsTheLeaseOverAtOnce(t *testing.T) {
	url := setup(t)
	a, _ := replica(t, url, "a")
	require.Eventually(t, a.Leader, 5*time.Second, 10*time.Millisecond)
	b, _ := replica(t, url, "b")
	defer b.Close(context.Background()) //nolint:errcheck // test end
	require.NoError(t, a.Close(context.Background()))
	assert.False(t, a.Leader())
	// b tries every third of the TTL; released, the lease is free then.
	require.Eventually(t, b.Leader, ttl, 10*time.Millisecond)
}

func TestNewNeedsTheEventsStream(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	_, err = New(context.Background(), Options{Conn: connect(t, s.ClientURL()), ID: "a", Logger: discard})
	require.ErrorContains(t, err, "K8SMON_EVENTS")
}

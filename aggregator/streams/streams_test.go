package streams

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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func run(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second), "nats server did not start")
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func startJS(t *testing.T) *server.Server {
	t.Helper()
	return run(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir()})
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append(opts, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func ensureNow(t *testing.T, nc *nats.Conn, c Config) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Ensure(ctx, nc, c, discard)
}

func testConfig() Config {
	return Config{
		Prefix: "k8smon", ReportsMaxAge: 5 * time.Minute, ReportsPerSubject: 1200, ReportsMaxBytes: 64 << 20,
		EventsMaxAge: 24 * time.Hour, EventsMaxBytes: 32 << 20,
	}
}

func TestEnsureCreatesBoundedStreams(t *testing.T) {
	s := startJS(t)
	nc := connect(t, s.ClientURL())
	res, err := ensureNow(t, nc, testConfig())
	require.NoError(t, err)
	assert.Equal(t, 1, res.Replicas, "a single server gets one replica")

	r := res.Reports.Config
	assert.Equal(t, "K8SMON_REPORTS", r.Name)
	assert.Equal(t, []string{"k8smon.node.*.report"}, r.Subjects)
	assert.Equal(t, 5*time.Minute, r.MaxAge)
	assert.Equal(t, int64(1200), r.MaxMsgsPerSubject)
	assert.Equal(t, int64(64<<20), r.MaxBytes)
	assert.Equal(t, jetstream.DiscardOld, r.Discard)
	assert.Equal(t, DedupWindow, r.Duplicates)
	assert.Equal(t, jetstream.FileStorage, r.Storage)
	assert.Equal(t, jetstream.S2Compression, r.Compression)

	e := res.Events.Config
	assert.Equal(t, "K8SMON_EVENTS", e.Name)
	assert.Equal(t, []string{"k8smon.node.*.event", "k8smon.cluster.event"}, e.Subjects)
	assert.Equal(t, 24*time.Hour, e.MaxAge)
	assert.Equal(t, int64(EventsPerSubject), e.MaxMsgsPerSubject)
	assert.Equal(t, int64(32<<20), e.MaxBytes)
}

func TestEnsureUpdatesExistingStreamsAndKeepsTheirMessages(t *testing.T) {
	s := startJS(t)
	nc := connect(t, s.ClientURL())
	_, err := ensureNow(t, nc, testConfig())
	require.NoError(t, err)
	require.NoError(t, nc.Publish("k8smon.node.a.report", []byte("{}")))
	require.NoError(t, nc.Flush())

	c := testConfig()
	c.ReportsMaxAge, c.EventsMaxAge = 2*time.Hour, 48*time.Hour
	require.Eventually(t, func() bool {
		res, err := ensureNow(t, nc, c)
		require.NoError(t, err)
		return res.Reports.State.Msgs == 1
	}, 5*time.Second, 10*time.Millisecond)
	res, err := ensureNow(t, nc, c)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Hour, res.Reports.Config.MaxAge)
	assert.Equal(t, 48*time.Hour, res.Events.Config.MaxAge)
}

func TestDedupWindowNeverExceedsRetention(t *testing.T) {
	c := testConfig()
	c.ReportsMaxAge = time.Minute
	reports, events := Definitions(c, 1)
	assert.Equal(t, time.Minute, reports.Duplicates)
	assert.Equal(t, DedupWindow, events.Duplicates)
}

func TestEnsureExplainsWhatIsWrong(t *testing.T) {
	opts, err := server.ProcessConfigFile("testdata/accounts.conf")
	require.NoError(t, err)
	opts.StoreDir = t.TempDir()
	accounts := run(t, opts)
	plain := run(t, &server.Options{Host: "127.0.0.1", Port: -1})
	other := startJS(t)
	_, err = jetstream.New(connect(t, other.ClientURL()))
	require.NoError(t, err)
	js, _ := jetstream.New(connect(t, other.ClientURL()))
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "MINE", Subjects: []string{"k8smon.>"}})
	require.NoError(t, err)

	tests := []struct {
		name string
		url  string
		opts []nats.Option
		want error
		text string
	}{
		{"server without JetStream", plain.ClientURL(), nil, ErrNoJetStream, "enable it"},
		{"account without JetStream", accounts.ClientURL(), []nats.Option{nats.UserInfo("plain", "plain")}, ErrNoJetStream, "give the account JetStream limits"},
		{"user denied the JetStream API", accounts.ClientURL(), []nats.Option{nats.UserInfo("readonly", "readonly"), nats.Timeout(time.Second)}, ErrPermission, "$JS.API.>"},
		{"subjects held by another stream", other.ClientURL(), nil, ErrConflict, "another stream already holds k8smon.node.*.report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := connect(t, tt.url, tt.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := Ensure(ctx, nc, testConfig(), discard)
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.text)
		})
	}

	// The account's permitted user is fine.
	nc := connect(t, accounts.ClientURL(), nats.UserInfo("app", "app"))
	_, err = ensureNow(t, nc, testConfig())
	require.NoError(t, err)
}

// cluster starts n JetStream servers routed to each other and waits until
// JetStream has a meta leader.
func cluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		opts := &server.Options{
			ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
			NoLog:   true, NoSigs: true,
		}
		s, err := server.NewServer(opts)
		require.NoError(t, err)
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers[i] = s
	}
	for _, s := range servers {
		require.True(t, s.ReadyForConnections(10*time.Second))
	}
	require.Eventually(t, func() bool {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "no JetStream meta leader")
	return servers
}

func TestAutoReplicasFollowTheCluster(t *testing.T) {
	tests := []struct {
		servers int
		want    int
	}{
		{3, 3},
		{2, 1}, // a cluster too small for 3 replicas settles for 1
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d servers", tt.servers), func(t *testing.T) {
			servers := cluster(t, tt.servers)
			nc := connect(t, servers[0].ClientURL())
			var res *Result
			require.Eventually(t, func() bool {
				var err error
				res, err = ensureNow(t, nc, testConfig())
				return err == nil
			}, 20*time.Second, 100*time.Millisecond)
			assert.Equal(t, tt.want, res.Replicas)
			assert.Equal(t, tt.want, res.Reports.Config.Replicas)
			assert.Equal(t, tt.want, res.Events.Config.Replicas)
		})
	}
}

func TestFromConfigCoversTheHistoryWindow(t *testing.T) {
	base := config.Config{
		Metrics:    config.MetricsConfig{CollectInterval: 15 * time.Second, CacheRetention: 5 * time.Minute},
		Aggregator: config.AggregatorConfig{StaleIntervals: 3, HistoryPoints: 1200},
		NATS: config.NATSConfig{SubjectPrefix: "k8smon", JetStream: config.JetStreamConfig{
			Replicas: 1, ReportsMaxBytes: 1 << 30, EventsMaxAge: 24 * time.Hour, EventsMaxBytes: 256 << 20,
		}},
	}
	tests := []struct {
		name           string
		interval, keep time.Duration
		points         int
		wantAge        time.Duration
		wantPerSubject int64
	}{
		{"defaults", 15 * time.Second, 5 * time.Minute, 1200, 5 * time.Minute, 1200},
		{"long window at 1s", time.Second, 2 * time.Hour, 1200, 2 * time.Hour, 14400},
		{"no history keeps a silent node's last report", 15 * time.Second, 0, 1, time.Minute, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Metrics.CollectInterval, c.Metrics.CacheRetention, c.Aggregator.HistoryPoints = tt.interval, tt.keep, tt.points
			got := FromConfig(&c)
			assert.Equal(t, tt.wantAge, got.ReportsMaxAge)
			assert.Equal(t, tt.wantPerSubject, got.ReportsPerSubject)
			assert.Equal(t, 1, got.Replicas)
			assert.Equal(t, int64(1<<30), got.ReportsMaxBytes)
		})
	}
}

func TestStreamNames(t *testing.T) {
	assert.Equal(t, "K8SMON_REPORTS", ReportsName("k8smon"))
	assert.Equal(t, "ACME_PROD-1_EVENTS", EventsName("acme.prod-1"))
	assert.Equal(t, "A_B_REPORTS", ReportsName("a/b"))
}

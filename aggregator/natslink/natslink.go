// Package natslink is the aggregator's connection to NATS: it reconnects
// forever, logs every disconnect and reconnect, exports whether NATS is
// reachable, and says since when it is not, so /readyz can say the
// aggregator serves an ageing snapshot.
package natslink

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
)

// Pings detect a server that stopped answering (a paused or cut-off host)
// within PingInterval × (MaxPingsOut+1), instead of nats.go's default of
// several minutes.
const (
	PingInterval = 5 * time.Second
	MaxPingsOut  = 3
)

// Link is a NATS connection and its reachability.
type Link struct {
	nc     *nats.Conn
	logger *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	downSince time.Time // zero while connected

	connected prometheus.Gauge
	changes   *prometheus.CounterVec
}

// Connect dials url with opts plus the link's handlers. Metrics are
// registered on reg when it is not nil.
func Connect(url string, opts []nats.Option, logger *slog.Logger, reg prometheus.Registerer) (*Link, error) {
	l := &Link{
		logger: logger,
		now:    time.Now,
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "k8smon", Name: "nats_connected",
			Help: "1 while the aggregator is connected to NATS; 0 while it serves its last snapshot without new reports.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Name: "nats_connection_changes_total",
			Help: "Disconnects from and reconnects to NATS.",
		}, []string{"change"}),
	}
	l.changes.WithLabelValues("disconnected")
	l.changes.WithLabelValues("reconnected")
	if reg != nil {
		for _, c := range []prometheus.Collector{l.connected, l.changes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register NATS connection metrics: %w", err)
			}
		}
	}
	// Until the first connect succeeds, NATS is down since now.
	l.downSince = l.now()
	opts = append(append([]nats.Option(nil), opts...),
		nats.PingInterval(PingInterval),
		nats.MaxPingsOutstanding(MaxPingsOut),
		nats.ConnectHandler(func(c *nats.Conn) { l.up(c, false) }),
		nats.ReconnectHandler(func(c *nats.Conn) { l.up(c, true) }),
		nats.DisconnectErrHandler(l.down),
	)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", config.RedactURLs(url), err)
	}
	l.nc = nc
	if nc.IsConnected() {
		l.up(nc, false)
	}
	return l, nil
}

// Conn is the connection.
func (l *Link) Conn() *nats.Conn { return l.nc }

func (l *Link) up(c *nats.Conn, reconnect bool) {
	l.mu.Lock()
	since := l.downSince
	l.downSince = time.Time{}
	l.mu.Unlock()
	l.connected.Set(1)
	if since.IsZero() {
		return // the initial connect handler and Connect both saw it
	}
	if reconnect {
		l.changes.WithLabelValues("reconnected").Inc()
		l.logger.Info("reconnected to NATS", "url", c.ConnectedUrlRedacted(), "downFor", l.now().Sub(since).Round(time.Millisecond))
		return
	}
	l.logger.Info("connected to NATS", "url", c.ConnectedUrlRedacted())
}

func (l *Link) down(_ *nats.Conn, err error) {
	l.mu.Lock()
	if l.downSince.IsZero() {
		l.downSince = l.now()
	}
	l.mu.Unlock()
	l.connected.Set(0)
	l.changes.WithLabelValues("disconnected").Inc()
	l.logger.Warn("disconnected from NATS; serving the last snapshot until it is back", "error", err)
}

// Down reports whether NATS is unreachable now, and since when.
func (l *Link) Down() (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.downSince.IsZero(), l.downSince
}

// Degraded says, in words for /readyz, that the aggregator serves without
// NATS; "" while connected.
func (l *Link) Degraded() string {
	down, since := l.Down()
	if !down {
		return ""
	}
	return fmt.Sprintf("degraded: NATS unreachable for %s; serving the last snapshot, whose nodes go stale as their reports age",
		l.now().Sub(since).Round(time.Second))
}

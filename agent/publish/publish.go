// Package publish sends the agent's reports and events to NATS, keeping a
// bounded buffer while NATS is unreachable and delivering it in order on
// reconnect.
package publish

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// message is one encoded message waiting for NATS.
type message struct {
	subject string
	data    []byte
	kind    string
}

// Publisher publishes one node's reports and events.
type Publisher struct {
	nc     *nats.Conn
	prefix string
	node   string
	logger *slog.Logger

	mu      sync.Mutex
	pending []message // oldest first, at most max
	max     int

	published *prometheus.CounterVec
	errs      prometheus.Counter
	dropped   prometheus.Counter
	buffered  prometheus.Gauge
	closed    chan struct{}
}

// Connect dials NATS (retrying forever in the background when it is not
// there yet) and returns a publisher for node. Metrics are registered on reg
// when it is not nil.
func Connect(cfg config.NATSConfig, node string, logger *slog.Logger, reg prometheus.Registerer) (*Publisher, error) {
	if cfg.URL == "" {
		return nil, errors.New("no NATS URL: set --nats-url (nats.url), e.g. nats://k8s-llm-monitor-aggregator:4222")
	}
	p := &Publisher{
		prefix: cfg.SubjectPrefix,
		node:   node,
		logger: logger,
		max:    cfg.BufferSize,
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "published_total", Help: "Messages published to NATS, by kind.",
		}, []string{"kind"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "publish_errors_total", Help: "Publish attempts that failed and were buffered or dropped.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "buffer_dropped_total", Help: "Buffered messages dropped, oldest first, because the buffer was full.",
		}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "k8smon_agent", Name: "buffered_messages", Help: "Messages waiting for NATS to come back.",
		}),
		closed: make(chan struct{}),
	}
	if reg != nil {
		reg.MustRegister(p.published, p.errs, p.dropped, p.buffered)
	}
	opts := append(cfg.NATSOptions("k8smon-agent "+node),
		// The agent's own bounded buffer replaces the client's: it drops
		// the oldest report first and counts what it drops.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) { logger.Info("connected to NATS"); p.flush() }),
		nats.ReconnectHandler(func(c *nats.Conn) {
			logger.Info("reconnected to NATS", "url", c.ConnectedUrlRedacted())
			p.flush()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("disconnected from NATS; buffering reports", "error", err, "buffer", p.max)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(p.closed) }),
	)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", config.RedactURLs(cfg.URL), err)
	}
	// Callbacks may already run: p.nc is read under p.mu.
	p.mu.Lock()
	p.nc = nc
	p.mu.Unlock()
	p.flush()
	return p, nil
}

// PublishReport sends r on <prefix>.node.<node>.report.
func (p *Publisher) PublishReport(r *model.NodeReport) error {
	if r.AgentVersion == "" {
		r.AgentVersion = version.Version
	}
	data, err := wire.EncodeReport(r)
	if err != nil {
		return err
	}
	return p.send(message{subject: wire.NodeReportSubject(p.prefix, p.node), data: data, kind: wire.KindNodeReport})
}

// PublishEvent sends e on <prefix>.node.<node>.event.
func (p *Publisher) PublishEvent(e *model.Event) error {
	data, err := wire.EncodeEvent(wire.KindNodeEvent, p.node, e)
	if err != nil {
		return err
	}
	return p.send(message{subject: wire.NodeEventSubject(p.prefix, p.node), data: data, kind: wire.KindNodeEvent})
}

// send publishes m after anything still buffered, or buffers it when NATS is
// unreachable. A buffered message is not an error for the caller.
func (p *Publisher) send(m message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, m)
	p.flushLocked()
	for len(p.pending) > p.max {
		p.pending = p.pending[1:]
		p.dropped.Inc()
	}
	p.buffered.Set(float64(len(p.pending)))
	return nil
}

func (p *Publisher) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushLocked()
	p.buffered.Set(float64(len(p.pending)))
}

// flushLocked publishes pending messages in order until one fails.
func (p *Publisher) flushLocked() {
	if p.nc == nil || !p.nc.IsConnected() {
		return
	}
	sent := 0
	for _, m := range p.pending {
		if err := p.nc.Publish(m.subject, m.data); err != nil {
			p.errs.Inc()
			if errors.Is(err, nats.ErrMaxPayload) {
				p.logger.Error("message larger than the server's max_payload dropped", "subject", m.subject, "bytes", len(m.data))
				sent++
				continue
			}
			p.logger.Debug("publish failed; keeping message buffered", "subject", m.subject, "error", err)
			break
		}
		p.published.WithLabelValues(m.kind).Inc()
		sent++
	}
	if sent > 0 {
		// Copy so the dropped prefix does not pin the backing array forever.
		p.pending = append([]message(nil), p.pending[sent:]...)
	}
}

// Buffered returns how many messages wait for NATS.
func (p *Publisher) Buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Connected reports whether NATS is reachable now.
func (p *Publisher) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nc != nil && p.nc.IsConnected()
}

// Close flushes what it can, drains the connection and waits up to timeout
// for it to close.
func (p *Publisher) Close(timeout time.Duration) error {
	p.flush()
	if n := p.Buffered(); n > 0 {
		p.logger.Warn("stopping with reports NATS never received", "buffered", n)
	}
	if err := p.nc.Drain(); err != nil {
		p.nc.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-p.closed:
		return nil
	case <-time.After(timeout):
		p.nc.Close()
		return fmt.Errorf("drain NATS connection: not closed within %s", timeout)
	}
}

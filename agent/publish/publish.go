// Package publish sends the agent's reports and events to NATS JetStream at
// least once: a message stays in a bounded buffer until the stream has
// acknowledged it, unacknowledged messages are retried in order with
// backoff, and a full buffer drops its oldest message and counts it.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// Defaults for Options' zero values.
const (
	// DefaultAckTimeout bounds one publish: the stream must acknowledge
	// within it or the message is sent again (the server drops the copy
	// it already stored by its message ID).
	DefaultAckTimeout = 5 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between two
	// failed attempts; it doubles from the first to the second.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Options tune delivery; the zero value uses the defaults above.
type Options struct {
	AckTimeout time.Duration
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

func (o *Options) defaults() {
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
}

// message is one encoded message waiting for its acknowledgement.
type message struct {
	seq     uint64 // local order, to find the message again after its publish
	subject string
	data    []byte
	kind    string
	// id is the Nats-Msg-Id: the same on every attempt, so the stream
	// stores a message once however often an acknowledgement is lost.
	id string
}

// Publisher publishes one node's reports and events.
//
// Messages are published one at a time, each waiting for its
// acknowledgement, by one goroutine. An agent sends about one message per
// interval, so one round trip per message costs nothing, while a message
// in flight that fails is simply sent again before any later one: order
// holds without reordering acknowledgements.
type Publisher struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string
	node   string
	logger *slog.Logger
	opts   Options
	// epoch makes event IDs of this process distinct from a previous
	// run's, whose sequence numbers started at the same place.
	epoch string

	mu       sync.Mutex
	pending  []message // oldest first, at most max
	max      int
	seq      uint64
	inFlight uint64 // seq of the message being published; 0 when none
	// failingSince is when the first of the current run of failed
	// attempts happened; zero while acknowledgements come.
	failingSince time.Time
	lastErr      error
	// changed is closed and replaced whenever pending shrinks, so Close
	// can wait for the buffer to empty.
	changed chan struct{}

	wake   chan struct{} // a message or a reconnect: try now
	stop   chan struct{}
	done   chan struct{}
	closed chan struct{} // the connection closed

	published  *prometheus.CounterVec
	errs       prometheus.Counter
	dropped    prometheus.Counter
	rejected   prometheus.Counter
	buffered   prometheus.Gauge
	delivering prometheus.Gauge
}

// Connect dials NATS (retrying forever in the background when it is not
// there yet) and returns a publisher for node. Metrics are registered on reg
// when it is not nil.
func Connect(cfg config.NATSConfig, node string, logger *slog.Logger, reg prometheus.Registerer) (*Publisher, error) {
	return ConnectWithOptions(cfg, node, Options{}, logger, reg)
}

// ConnectWithOptions is Connect with delivery options.
func ConnectWithOptions(cfg config.NATSConfig, node string, o Options, logger *slog.Logger, reg prometheus.Registerer) (*Publisher, error) {
	if cfg.URL == "" {
		return nil, errors.New("no NATS URL: set --nats-url (nats.url), e.g. nats://k8s-llm-monitor-aggregator:4222")
	}
	o.defaults()
	p := build(cfg, node, o, logger)
	if reg != nil {
		reg.MustRegister(p.published, p.errs, p.dropped, p.rejected, p.buffered, p.delivering)
	}
	opts := append(cfg.NATSOptions("k8smon-agent "+node),
		// The agent's own bounded buffer replaces the client's: it drops
		// the oldest report first and counts what it drops.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) {
			logger.Info("connected to NATS")
			p.connectionChanged()
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			logger.Info("reconnected to NATS", "url", c.ConnectedUrlRedacted(), "buffered", p.Buffered())
			p.connectionChanged()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("disconnected from NATS; buffering reports", "error", err, "buffer", p.max)
			}
			p.connectionChanged()
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(p.closed) }),
	)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", config.RedactURLs(cfg.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open JetStream on %s: %w", cfg.URL, err)
	}
	// Callbacks may already run: p.nc is read under p.mu.
	p.mu.Lock()
	p.nc, p.js = nc, js
	p.updateGaugesLocked()
	p.mu.Unlock()
	go p.run()
	p.signal()
	return p, nil
}

func build(cfg config.NATSConfig, node string, o Options, logger *slog.Logger) *Publisher {
	return &Publisher{
		prefix:  cfg.SubjectPrefix,
		node:    node,
		logger:  logger,
		opts:    o,
		epoch:   strconv.FormatInt(time.Now().UnixNano(), 36),
		max:     max(cfg.BufferSize, 1), // the message in flight needs a place
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		closed:  make(chan struct{}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "published_total", Help: "Messages the NATS stream acknowledged, by kind.",
		}, []string{"kind"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "publish_errors_total", Help: "Publish attempts that were not acknowledged; the message stays buffered and is sent again.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "buffer_dropped_total", Help: "Buffered messages dropped, oldest first, because the buffer was full.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "rejected_total", Help: "Messages NATS refused for good (larger than max_payload or the stream's message limit), dropped without retry.",
		}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "k8smon_agent", Name: "buffered_messages", Help: "Messages waiting for the stream's acknowledgement.",
		}),
		delivering: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "k8smon_agent", Name: "delivering", Help: "1 while NATS is connected and the stream acknowledges messages; 0 while messages cannot be delivered.",
		}),
	}
}

// PublishReport queues r for <prefix>.node.<node>.report.
func (p *Publisher) PublishReport(r *model.NodeReport) error {
	if r.AgentVersion == "" {
		r.AgentVersion = version.Version
	}
	data, err := wire.EncodeReport(r)
	if err != nil {
		return err
	}
	// A report is identified by its node and time: a second copy of the
	// same reading is the same message.
	id := "report/" + p.node + "/" + r.Timestamp.UTC().Format(time.RFC3339Nano)
	p.enqueue(message{subject: wire.NodeReportSubject(p.prefix, p.node), data: data, kind: wire.KindNodeReport, id: id})
	return nil
}

// PublishEvent queues e for <prefix>.node.<node>.event.
func (p *Publisher) PublishEvent(e *model.Event) error {
	data, err := wire.EncodeEvent(wire.KindNodeEvent, p.node, e)
	if err != nil {
		return err
	}
	p.enqueue(message{subject: wire.NodeEventSubject(p.prefix, p.node), data: data, kind: wire.KindNodeEvent})
	return nil
}

// enqueue appends m, dropping the oldest message not in flight while the
// buffer is over its bound. A buffered message is not an error for the
// caller: it is delivered once the stream acknowledges it.
func (p *Publisher) enqueue(m message) {
	p.mu.Lock()
	p.seq++
	m.seq = p.seq
	if m.id == "" {
		m.id = "event/" + p.node + "/" + p.epoch + "/" + strconv.FormatUint(m.seq, 10)
	}
	p.pending = append(p.pending, m)
	for len(p.pending) > p.max {
		// The message in flight may be stored already: it is the one
		// message never dropped, or the counters could lie.
		i := 0
		if p.pending[0].seq == p.inFlight {
			i = 1
		}
		p.pending = append(p.pending[:i], p.pending[i+1:]...)
		p.dropped.Inc()
	}
	p.updateGaugesLocked()
	p.mu.Unlock()
	p.signal()
}

// signal wakes the sender without blocking.
func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Publisher) connectionChanged() {
	p.mu.Lock()
	p.updateGaugesLocked()
	p.mu.Unlock()
	p.signal()
}

// run is the sender: it publishes the oldest message, waits for its
// acknowledgement, and backs off after a failure until ctx ends.
func (p *Publisher) run() {
	defer close(p.done)
	backoff := p.opts.MinBackoff
	for {
		m, ok := p.next()
		if !ok {
			// Nothing to send, or not connected: wait for a message or
			// a reconnect.
			select {
			case <-p.stop:
				return
			case <-p.wake:
				continue
			}
		}
		if p.attempt(m) {
			backoff = p.opts.MinBackoff
			continue
		}
		// A reconnect or a new message cuts the wait short; the backoff
		// itself keeps growing until an acknowledgement comes.
		t := time.NewTimer(backoff)
		select {
		case <-p.stop:
			t.Stop()
			return
		case <-p.wake:
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, p.opts.MaxBackoff)
	}
}

// next marks the oldest message as in flight and returns it; false when
// the buffer is empty or NATS is not connected.
func (p *Publisher) next() (message, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 || p.nc == nil || !p.nc.IsConnected() {
		return message{}, false
	}
	m := p.pending[0]
	p.inFlight = m.seq
	return m, true
}

// attempt publishes m once and settles the outcome; true when m left the
// buffer (acknowledged, or refused for good).
func (p *Publisher) attempt(m message) bool {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.AckTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{}}
	// Retries on "no responders" are this loop's job, with its backoff.
	_, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(m.id), jetstream.WithRetryAttempts(0))

	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight = 0
	switch {
	case err == nil:
		p.removeLocked(m.seq)
		p.published.WithLabelValues(m.kind).Inc()
		if !p.failingSince.IsZero() {
			p.logger.Info("NATS acknowledges messages again", "failingFor", time.Since(p.failingSince).Round(time.Millisecond), "buffered", len(p.pending))
		}
		p.failingSince, p.lastErr = time.Time{}, nil
	case permanent(err):
		p.removeLocked(m.seq)
		p.errs.Inc()
		p.rejected.Inc()
		p.logger.Error("message refused by NATS for good; dropped", "subject", m.subject, "bytes", len(m.data), "error", err)
	default:
		p.errs.Inc()
		if p.failingSince.IsZero() {
			p.failingSince = time.Now()
			p.logger.Warn("message not acknowledged; keeping it buffered and retrying", "subject", m.subject, "error", err, "buffered", len(p.pending))
		} else {
			p.logger.Debug("retry not acknowledged", "subject", m.subject, "error", err)
		}
		p.lastErr = err
	}
	p.updateGaugesLocked()
	return err == nil || permanent(err)
}

// permanent reports whether sending err's message again cannot succeed.
func permanent(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// removeLocked takes the message with seq out of the buffer; it may be gone
// already when it was dropped before its (failed) attempt ended.
func (p *Publisher) removeLocked(seq uint64) {
	for i := range p.pending {
		if p.pending[i].seq == seq {
			p.pending = append(p.pending[:i], p.pending[i+1:]...)
			break
		}
	}
	if len(p.pending) == 0 {
		// Let the backing array go: after an outage it may be large.
		p.pending = nil
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Publisher) updateGaugesLocked() {
	p.buffered.Set(float64(len(p.pending)))
	ok, _ := p.deliveringLocked()
	if ok {
		p.delivering.Set(1)
	} else {
		p.delivering.Set(0)
	}
}

// Buffered returns how many messages wait for an acknowledgement.
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

// Delivering reports whether messages reach the stream now, and when they
// do not, why, in words for /readyz.
func (p *Publisher) Delivering() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deliveringLocked()
}

func (p *Publisher) deliveringLocked() (bool, string) {
	switch {
	case p.nc == nil || !p.nc.IsConnected():
		return false, fmt.Sprintf("NATS is not connected; %d messages buffered", len(p.pending))
	case !p.failingSince.IsZero():
		return false, fmt.Sprintf("NATS has not acknowledged a message for %s (%v); %d messages buffered",
			time.Since(p.failingSince).Round(time.Second), p.lastErr, len(p.pending))
	}
	return true, ""
}

// Close waits up to timeout for the buffer to be acknowledged, stops the
// sender and drains the connection.
func (p *Publisher) Close(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	p.waitEmpty(deadline)
	close(p.stop)
	<-p.done
	if n := p.Buffered(); n > 0 {
		p.logger.Warn("stopping with messages the stream never acknowledged", "buffered", n)
	}
	if err := p.nc.Drain(); err != nil {
		p.nc.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-p.closed:
		return nil
	case <-time.After(time.Until(deadline) + time.Second):
		p.nc.Close()
		return fmt.Errorf("drain NATS connection: not closed within %s", timeout)
	}
}

// waitEmpty returns once the buffer is empty or deadline has passed.
func (p *Publisher) waitEmpty(deadline time.Time) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		p.mu.Lock()
		n, changed := len(p.pending), p.changed
		p.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-t.C:
			return
		}
	}
}

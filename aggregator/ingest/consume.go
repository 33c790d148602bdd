package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/streams"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// StartTimeout bounds the JetStream requests Start makes.
const StartTimeout = 10 * time.Second

// Start consumes the Reports and Events streams on nc, which must exist
// (streams.Ensure creates them). The caller keeps owning nc and drains it
// at shutdown, after Close.
//
// Each stream is read through an ordered consumer: an ephemeral consumer
// the client recreates, after a reconnect or missed heartbeats, at the
// sequence after the last message it handled, so an outage or a late
// subscription loses nothing. Every replica reads every message, as each
// must hold every node's latest report; nothing is acknowledged, since
// the streams' limits, not consumers, decide what they keep. Reports are
// read from the start of the stream (the history window), events from
// Config.EventReplay ago: those the stream held at Start go to the
// replay callbacks, so they are kept without being announced again.
func (i *Ingester) Start(nc *nats.Conn) error {
	i.subMu.Lock()
	defer i.subMu.Unlock()
	switch {
	case i.closed:
		return ErrClosed
	case i.started:
		return ErrStarted
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open JetStream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()

	reports, err := js.Stream(ctx, streams.ReportsName(i.prefix))
	if err != nil {
		return fmt.Errorf("open stream %s: %w", streams.ReportsName(i.prefix), err)
	}
	info, err := reports.Info(ctx)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", streams.ReportsName(i.prefix), err)
	}
	i.restore.begin(info.State.LastSeq, info.State.Msgs, i.now())
	if err := i.consume(ctx, reports, "reports", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.AllNodeReports(i.prefix)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}, i.onReport); err != nil {
		return err
	}

	events, err := js.Stream(ctx, streams.EventsName(i.prefix))
	if err != nil {
		_ = i.stopLocked()
		return fmt.Errorf("open stream %s: %w", streams.EventsName(i.prefix), err)
	}
	ecfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.AllNodeEvents(i.prefix)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	if i.cfg.EventReplay > 0 {
		since := i.now().Add(-i.cfg.EventReplay)
		ecfg.DeliverPolicy, ecfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
		einfo, err := events.Info(ctx)
		if err != nil {
			_ = i.stopLocked()
			return fmt.Errorf("read stream %s: %w", streams.EventsName(i.prefix), err)
		}
		// What the stream holds now is the past: replayed, not news.
		i.eventsReplayedTo = einfo.State.LastSeq
		if i.cfg.OnReplayedClusterEvent != nil && einfo.State.LastSeq > 0 {
			ecfg.FilterSubjects = append(ecfg.FilterSubjects, wire.ClusterEventSubject(i.prefix))
		}
	}
	if err := i.consume(ctx, events, "events", ecfg, i.onEventMsg); err != nil {
		_ = i.stopLocked()
		return err
	}
	i.started = true
	i.logger.Info("consuming", "reports", streams.ReportsName(i.prefix), "replaying", info.State.Msgs,
		"events", streams.EventsName(i.prefix), "eventReplay", i.cfg.EventReplay)
	return nil
}

func (i *Ingester) consume(ctx context.Context, s jetstream.Stream, name string, cfg jetstream.OrderedConsumerConfig, handler jetstream.MessageHandler) error {
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create %s consumer on %s: %w", name, s.CachedInfo().Config.Name, err)
	}
	cc, err := c.Consume(handler,
		jetstream.PullMaxBytes(i.cfg.PullBytes),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { i.consumeError(name, err) }))
	if err != nil {
		return fmt.Errorf("consume %s from %s: %w", name, s.CachedInfo().Config.Name, err)
	}
	i.consumers = append(i.consumers, cc)
	return nil
}

// consumeError counts and logs, at a limited rate, a consumer's trouble;
// the ordered consumer recovers by itself.
func (i *Ingester) consumeError(name string, err error) {
	i.errs.WithLabelValues(name).Inc()
	if ok, suppressed := i.limiter.allow("consumer_"+name, i.now()); ok {
		i.logger.Warn("stream consumer interrupted; it resumes after the last message handled", "stream", name, "error", err, "suppressed", suppressed)
	}
}

// onReport handles one message of the Reports stream. Agents are outside
// input: nothing they send may take the aggregator down, so a panic (a
// decoder bug, or one in OnRestore) is logged and the message dropped.
func (i *Ingester) onReport(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		i.drop(m.Subject(), fmt.Errorf("%w: no stream metadata: %v", wire.ErrMalformed, err))
		return
	}
	defer func() {
		if r := recover(); r != nil {
			i.logger.Error("report handler panicked; message dropped", "subject", truncate(m.Subject(), 200), "panic", r)
		}
		i.restore.handled(md.Sequence.Stream, i.now(), i.logger)
	}()
	arrived := md.Timestamp
	if now := i.now(); arrived.After(now) {
		arrived = now
	}
	r := i.handleAt(m.Subject(), m.Data(), arrived)
	if r != nil && i.cfg.OnRestore != nil && i.restore.active() {
		i.cfg.OnRestore(state.ReportEntry{Report: r, ReceivedAt: arrived})
	}
}

// onEventMsg handles one message of the Events stream.
func (i *Ingester) onEventMsg(m jetstream.Msg) {
	defer func() {
		if r := recover(); r != nil {
			i.logger.Error("event handler panicked; message dropped", "subject", truncate(m.Subject(), 200), "panic", r)
		}
	}()
	arrived, replayed := i.now(), false
	if md, err := m.Metadata(); err == nil {
		arrived, replayed = md.Timestamp, md.Sequence.Stream <= i.eventsReplayedTo
	}
	switch subject := m.Subject(); {
	case subject == wire.ClusterEventSubject(i.prefix):
		if replayed && i.cfg.OnReplayedClusterEvent != nil {
			i.handleClusterEvent(subject, m.Data())
		}
	case strings.HasSuffix(subject, ".event"):
		i.handleEvent(subject, m.Data(), arrived, replayed)
	default:
		i.handleAt(subject, m.Data(), arrived) // refused as neither
	}
}

// Restored is closed once the replay of the Reports stream has reached the
// last report the stream held at Start: every node's latest report is
// known, and OnRestore has seen the history window.
func (i *Ingester) Restored() <-chan struct{} { return i.restore.done }

// Restoring reports whether the replay is still going on and, if so, how
// far it got, in words for /readyz.
func (i *Ingester) Restoring() (bool, string) { return i.restore.status() }

// Close stops the consumers. Messages already delivered may still be
// handled while it returns; the caller drains the connection afterwards.
func (i *Ingester) Close() error {
	i.subMu.Lock()
	defer i.subMu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	return i.stopLocked()
}

func (i *Ingester) stopLocked() error {
	for _, cc := range i.consumers {
		cc.Stop()
	}
	var errs []error
	for _, cc := range i.consumers {
		select {
		case <-cc.Closed():
		case <-time.After(5 * time.Second):
			errs = append(errs, errors.New("ingest: a consumer did not stop within 5s"))
		}
	}
	i.consumers = nil
	return errors.Join(errs...)
}

// restore tracks the replay of the Reports stream at start.
type restore struct {
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	target  uint64 // the stream's last sequence at Start
	total   uint64 // messages the stream held at Start
	seen    uint64 // messages handled so far
	started time.Time
}

func newRestore() *restore { return &restore{done: make(chan struct{})} }

func (r *restore) begin(lastSeq, msgs uint64, now time.Time) {
	r.mu.Lock()
	r.target, r.total, r.started = lastSeq, msgs, now
	r.mu.Unlock()
	if msgs == 0 {
		r.finish()
	}
}

func (r *restore) finish() { r.once.Do(func() { close(r.done) }) }

func (r *restore) active() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// handled notes that the message at seq was handled, and ends the restore
// when seq reached the target: messages the stream dropped meanwhile (its
// age limit) are skipped by the consumer, never waited for.
func (r *restore) handled(seq uint64, now time.Time, logger *slog.Logger) {
	if !r.active() {
		return
	}
	r.mu.Lock()
	r.seen++
	reached := seq >= r.target
	seen, took := r.seen, now.Sub(r.started)
	r.mu.Unlock()
	if reached {
		r.finish()
		logger.Info("restored the latest reports and the history window from the Reports stream", "reports", seen, "took", took.Round(time.Millisecond))
	}
}

func (r *restore) status() (bool, string) {
	if !r.active() {
		return false, ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return true, fmt.Sprintf("restoring reports from the Reports stream: %d of %d replayed", r.seen, r.total)
}

// Package ingest receives the agents' node reports and node events from
// NATS, decodes and validates them with the wire contract, drops (and
// counts) what is bad or beyond its limits, and keeps the latest report of
// every node for the snapshot builder.
//
// Refusals are ordered by cost: the subject, the node limit and the event
// rate are checked before a message is decoded, so a flood of invented
// names or events costs a map lookup each and real agents keep up.
package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// Defaults for Config's zero values.
const (
	// DefaultPendingMsgs and DefaultPendingBytes bound what waits in the
	// client for the report handler. Only a node's latest report matters,
	// so a backlog beyond a few intervals of a large cluster is useless:
	// dropping it is better than holding hundreds of MiB of stale reports.
	DefaultPendingMsgs  = 20_000
	DefaultPendingBytes = 256 << 20
	// Events are small and rare; their backlog is bounded separately so a
	// flood of reports cannot starve them.
	DefaultEventPendingMsgs  = 10_000
	DefaultEventPendingBytes = 32 << 20
	// DefaultLogEvery is the shortest gap between two warnings for the same
	// drop reason; the counters still see every message.
	DefaultLogEvery = 10 * time.Second
	// DefaultMaxNodes fits twice the 5,000-node scale target.
	DefaultMaxNodes = 10_000
	// DefaultMaxClockSkew is how far ahead of the aggregator's clock an
	// agent's timestamps may run: NTP keeps real clocks within
	// milliseconds, so this only forgives a badly set one.
	DefaultMaxClockSkew = 2 * time.Minute
	// DefaultEventRate and DefaultEventBurst are each node's event
	// allowance: agents send a few events a minute, and bursts (a GPU
	// XID storm, several thresholds at once) of a few tens.
	DefaultEventRate  = 1.0
	DefaultEventBurst = 30
)

// Drop reasons, the values of the reason label.
const (
	ReasonMalformed = "malformed"
	ReasonSchema    = "schema"
	ReasonMismatch  = "mismatch"
	ReasonTooLarge  = "too_large"
	ReasonSubject   = "subject"
	ReasonKind      = "kind"
	// ReasonFuture: a timestamp further ahead than Config.MaxClockSkew.
	ReasonFuture = "future"
	// ReasonRange: a number negative, not finite or beyond physical sense,
	// a time before 2000, or an event field too long.
	ReasonRange = "range"
	// ReasonInterval: intervalSeconds outside 1..3600.
	ReasonInterval = "interval"
	// ReasonCustomMetrics: customMetrics too deep or too large.
	ReasonCustomMetrics = "custom_metrics"
	// ReasonNodeLimit: a report from a new name while Config.MaxNodes
	// names are tracked.
	ReasonNodeLimit = "node_limit"
	// ReasonRateLimited: an event beyond its node's allowance.
	ReasonRateLimited = "rate_limited"
)

var reasons = []string{ReasonMalformed, ReasonSchema, ReasonMismatch, ReasonTooLarge, ReasonSubject, ReasonKind,
	ReasonFuture, ReasonRange, ReasonInterval, ReasonCustomMetrics, ReasonNodeLimit, ReasonRateLimited}

// Errors returned by Ingester methods, matched with errors.Is.
var (
	// ErrStarted means Start was called on an Ingester already started.
	ErrStarted = errors.New("ingest: already started")
	// ErrClosed means Start was called after Close.
	ErrClosed = errors.New("ingest: closed")
)

// Config configures an Ingester.
type Config struct {
	// Prefix is the subject prefix; "" means wire.DefaultPrefix.
	Prefix string
	// Registerer receives the ingest metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// OnEvent receives every valid node event. It runs on the subscription's
	// goroutine, so it must not block: a slow callback makes NATS drop
	// messages once the pending limits are reached. Nil discards events.
	OnEvent func(*model.Event)
	// Logger is required.
	Logger *slog.Logger
	// Pending limits of the report and event subscriptions; zero means the
	// Default* values, a negative value means unlimited.
	PendingMsgs, PendingBytes           int
	EventPendingMsgs, EventPendingBytes int
	// LogEvery rate-limits warnings per drop reason; zero means DefaultLogEvery.
	LogEvery time.Duration
	// MaxNodes caps the node names whose reports are kept; a report from a
	// new name beyond it is refused unless the name has a Kubernetes Node
	// object (see SetClusterNodes). Zero means DefaultMaxNodes.
	MaxNodes int
	// MaxClockSkew is how far ahead of the aggregator's clock a message's
	// timestamps may be; zero means DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// EventRate (events per second) and EventBurst are each node's event
	// allowance; zero means DefaultEventRate and DefaultEventBurst.
	EventRate  float64
	EventBurst int
}

// Ingester subscribes to every node's reports and events and keeps the
// latest report per node.
type Ingester struct {
	prefix  string
	cfg     Config
	logger  *slog.Logger
	onEvent func(*model.Event)
	now     func() time.Time
	limiter *logLimiter
	// eventLimit is each node's event allowance.
	eventLimit *eventLimiter
	limitErr   error

	mu           sync.RWMutex
	latest       map[string]state.ReportEntry
	lastReceived time.Time
	// clusterNodes are the names with a Kubernetes Node object, which the
	// node limit never refuses; nil until SetClusterNodes.
	clusterNodes map[string]bool

	subMu   sync.Mutex
	subs    map[*nats.Subscription]string // subscription → "reports" | "events"
	seen    map[string]int                // dropped count already added per subscription
	started bool
	closed  bool

	dropped  *prometheus.CounterVec
	reports  *prometheus.CounterVec
	events   prometheus.Counter
	slow     *prometheus.CounterVec
	slowColl prometheus.Collector
}

// New builds an Ingester and registers its metrics; Start subscribes.
func New(cfg Config) (*Ingester, error) {
	if cfg.Logger == nil {
		return nil, fmt.Errorf("create ingester: no logger")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = wire.DefaultPrefix
	}
	if err := wire.ValidPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("create ingester: %w", err)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.PendingMsgs, DefaultPendingMsgs)
	def(&cfg.PendingBytes, DefaultPendingBytes)
	def(&cfg.EventPendingMsgs, DefaultEventPendingMsgs)
	def(&cfg.EventPendingBytes, DefaultEventPendingBytes)
	def(&cfg.MaxNodes, DefaultMaxNodes)
	def(&cfg.EventBurst, DefaultEventBurst)
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	if cfg.EventRate <= 0 {
		cfg.EventRate = DefaultEventRate
	}
	i := &Ingester{
		prefix:     cfg.Prefix,
		cfg:        cfg,
		logger:     cfg.Logger.With("source", "ingest"),
		onEvent:    cfg.OnEvent,
		now:        time.Now,
		limiter:    newLogLimiter(cfg.LogEvery),
		eventLimit: newEventLimiter(cfg.EventRate, cfg.EventBurst),
		limitErr:   fmt.Errorf("%w: %d names tracked (aggregator.max_nodes); a new name without a Node object is refused", errNodeLimit, cfg.MaxNodes),
		latest:     make(map[string]state.ReportEntry),
		subs:       make(map[*nats.Subscription]string),
		seen:       make(map[string]int),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "ingest", Name: "messages_dropped_total",
			Help: "Agent messages dropped because they failed to decode, by reason.",
		}, []string{"reason"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "ingest", Name: "reports_total",
			Help: "Valid node reports received: accepted, or outdated (older than the node's stored report).",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "ingest", Name: "events_total",
			Help: "Valid node events received and handed on.",
		}),
		slow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "ingest", Name: "slow_consumer_dropped_total",
			Help: "Messages the NATS client dropped because the handler fell behind its pending limits.",
		}, []string{"subscription"}),
	}
	// Every label value exists from the start, so a rate() sees the first drop.
	for _, r := range reasons {
		i.dropped.WithLabelValues(r)
	}
	i.reports.WithLabelValues("accepted")
	i.reports.WithLabelValues("outdated")
	i.slow.WithLabelValues("reports")
	i.slow.WithLabelValues("events")
	i.slowColl = &slowCollector{i: i}
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "k8smon", Subsystem: "ingest", Name: "nodes_tracked",
		Help: "Node names whose latest report is kept; new names beyond aggregator.max_nodes are refused (reason node_limit).",
	}, func() float64 { return float64(i.Tracked()) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{i.dropped, i.reports, i.events, i.slowColl, tracked} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register ingest metrics: %w", err)
			}
		}
	}
	return i, nil
}

// Start subscribes on nc to every node's reports and events. The caller
// keeps owning nc and drains it at shutdown, after Close.
//
// The subscriptions are plain, not a queue group, on purpose: with several
// aggregator replicas on one NATS cluster, each replica must hold every
// node's latest report to serve complete snapshots, whereas a queue group
// would deal each report to only one of them.
func (i *Ingester) Start(nc *nats.Conn) error {
	if err := i.subscribe(nc); err != nil {
		return err
	}
	// A flush makes the server know the subscriptions before Start returns.
	// While NATS is unreachable the client resends them on reconnect, so a
	// failure here is not an error.
	if nc.IsConnected() {
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			i.logger.Warn("subscriptions not yet confirmed by NATS", "error", err)
		}
	}
	i.logger.Info("subscribed", "reports", wire.AllNodeReports(i.prefix), "events", wire.AllNodeEvents(i.prefix))
	return nil
}

func (i *Ingester) subscribe(nc *nats.Conn) error {
	i.subMu.Lock()
	defer i.subMu.Unlock()
	switch {
	case i.closed:
		return ErrClosed
	case i.started:
		return ErrStarted
	}

	// Chain, not replace, the connection's async error handler: slow
	// consumer notices for our subscriptions are counted here, and
	// everything is still passed to whatever handler the caller set.
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
			i.slowConsumer(sub)
		}
		if prev != nil {
			prev(c, sub, err)
		}
	})

	add := func(subject, name string, msgs, bytes int) error {
		sub, err := nc.Subscribe(subject, i.onMsg)
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		i.subs[sub] = name
		if err := sub.SetPendingLimits(msgs, bytes); err != nil {
			return fmt.Errorf("set pending limits of %s: %w", subject, err)
		}
		return nil
	}
	if err := add(wire.AllNodeReports(i.prefix), "reports", i.cfg.PendingMsgs, i.cfg.PendingBytes); err != nil {
		_ = i.unsubscribeLocked()
		return err
	}
	if err := add(wire.AllNodeEvents(i.prefix), "events", i.cfg.EventPendingMsgs, i.cfg.EventPendingBytes); err != nil {
		_ = i.unsubscribeLocked()
		return err
	}
	i.started = true
	return nil
}

// Close unsubscribes. Messages already delivered may still be handled
// while it returns; the caller drains the connection afterwards. The async
// error handler installed by Start stays on the connection and keeps
// passing errors to the previous one.
func (i *Ingester) Close() error {
	i.subMu.Lock()
	defer i.subMu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	return i.unsubscribeLocked()
}

func (i *Ingester) unsubscribeLocked() error {
	i.syncDroppedLocked()
	var errs []error
	for sub, name := range i.subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, fmt.Errorf("unsubscribe %s: %w", name, err))
		}
		delete(i.subs, sub)
	}
	return errors.Join(errs...)
}

// Latest returns the latest report of every node, keyed by node name. The
// map is a copy the caller owns; the reports themselves are shared and
// never modified once stored, so callers must not modify them either.
func (i *Ingester) Latest() map[string]state.ReportEntry {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make(map[string]state.ReportEntry, len(i.latest))
	for k, v := range i.latest {
		out[k] = v
	}
	return out
}

// LastReceived is when the latest accepted report arrived; zero before
// the first.
func (i *Ingester) LastReceived() time.Time {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.lastReceived
}

// Forget removes a node's report, for a node that left the cluster. A later
// report from it is stored again.
func (i *Ingester) Forget(node string) {
	i.mu.Lock()
	delete(i.latest, node)
	i.mu.Unlock()
	i.eventLimit.forget(node)
}

// Tracked returns how many node names have a stored report.
func (i *Ingester) Tracked() int {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return len(i.latest)
}

// SetClusterNodes tells the ingester which names have a Kubernetes Node
// object: their reports are admitted beyond Config.MaxNodes, so invented
// names can never crowd out a real node. The map is kept, not copied; the
// caller must not modify it afterwards.
func (i *Ingester) SetClusterNodes(names map[string]bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.clusterNodes = names
}

// admitsLocked reports whether a report from node may be stored: a known name,
// a Kubernetes node, or room under the limit. The caller holds i.mu.
func (i *Ingester) admitsLocked(node string) bool {
	if _, known := i.latest[node]; known {
		return true
	}
	return len(i.latest) < i.cfg.MaxNodes || i.clusterNodes[node]
}

// trusted reports whether node is a name the aggregator already knows.
func (i *Ingester) trusted(node string) bool {
	i.mu.RLock()
	defer i.mu.RUnlock()
	_, known := i.latest[node]
	return known || i.clusterNodes[node]
}

// onMsg is the subscriptions' handler. Agents are outside input: nothing
// they send may take the aggregator down, so a panic (a decoder bug, or one
// in OnEvent) is logged and the message dropped.
func (i *Ingester) onMsg(m *nats.Msg) {
	defer func() {
		if r := recover(); r != nil {
			i.logger.Error("message handler panicked; message dropped", "subject", m.Subject, "panic", r)
		}
	}()
	i.handle(m.Subject, m.Data)
}

// handle checks, decodes and stores or hands on one message.
func (i *Ingester) handle(subject string, data []byte) {
	switch {
	case strings.HasSuffix(subject, ".report"):
		i.handleReport(subject, data)
	case strings.HasSuffix(subject, ".event"):
		i.handleEvent(subject, data)
	default:
		i.drop(subject, fmt.Errorf("%w: %q is neither a report nor an event subject", wire.ErrSubject, subject))
	}
}

func (i *Ingester) handleReport(subject string, data []byte) {
	node, err := wire.NodeFromSubject(i.prefix, subject)
	if err != nil {
		i.drop(subject, err)
		return
	}
	// The limit is checked before decoding, so a flood of invented names
	// costs a map lookup per message once the limit is reached.
	i.mu.RLock()
	ok := i.admitsLocked(node)
	i.mu.RUnlock()
	if !ok {
		i.drop(subject, i.nodeLimitError())
		return
	}
	now := i.now()
	r, err := wire.DecodeReportAt(i.prefix, subject, data, wire.Clock{Now: now, MaxSkew: i.cfg.MaxClockSkew})
	if err != nil {
		i.drop(subject, err)
		return
	}
	i.store(r)
}

func (i *Ingester) handleEvent(subject string, data []byte) {
	node, err := wire.NodeFromSubject(i.prefix, subject)
	if err != nil {
		i.drop(subject, err)
		return
	}
	// Oversized events are refused first, so they cost nothing and do not
	// spend the node's allowance.
	if len(data) > wire.MaxEventBytes {
		i.drop(subject, fmt.Errorf("%w: event of %d bytes, limit %d", wire.ErrTooLarge, len(data), wire.MaxEventBytes))
		return
	}
	now := i.now()
	if !i.eventLimit.allow(node, i.trusted(node), now) {
		i.drop(subject, errRateLimited)
		return
	}
	e, err := wire.DecodeNodeEventAt(i.prefix, subject, data, wire.Clock{Now: now, MaxSkew: i.cfg.MaxClockSkew})
	if err != nil {
		i.drop(subject, err)
		return
	}
	i.events.Inc()
	if i.onEvent != nil {
		i.onEvent(e)
	}
}

// Ingest's own refusals, beside the wire's.
var (
	errNodeLimit   = errors.New("ingest: node limit reached")
	errRateLimited = errors.New("ingest: node event rate limit exceeded")
)

// nodeLimitError says why a new name is refused; it is built once, so a
// flood of refusals allocates nothing for it.
func (i *Ingester) nodeLimitError() error { return i.limitErr }

// store keeps r unless the node's stored report is newer: NATS keeps one
// publisher's order, but an agent replaying its buffer after a reconnect,
// or a second agent instance during a rollout, can deliver out of order.
//
// A reading cannot have been taken after it arrived, so report times ahead
// of the aggregator's clock (by at most the allowed skew, or the decoder
// refused them) are brought back to it: ordering and history then run on
// times the aggregator can trust, and an agent whose clock jumps forward
// and back is never locked out.
func (i *Ingester) store(r *model.NodeReport) {
	now := i.now()
	r.Timestamp = notAfter(r.Timestamp, now)
	r.Node.Timestamp = notAfter(r.Node.Timestamp, now)
	i.mu.Lock()
	if !i.admitsLocked(r.NodeName) {
		i.mu.Unlock()
		i.drop(wire.NodeReportSubject(i.prefix, r.NodeName), i.nodeLimitError())
		return
	}
	old, ok := i.latest[r.NodeName]
	if ok && !r.Timestamp.After(old.Report.Timestamp) {
		i.mu.Unlock()
		i.reports.WithLabelValues("outdated").Inc()
		return
	}
	i.latest[r.NodeName] = state.ReportEntry{Report: r, ReceivedAt: now}
	i.lastReceived = now
	i.mu.Unlock()
	i.reports.WithLabelValues("accepted").Inc()
}

func notAfter(t, limit time.Time) time.Time {
	if t.After(limit) {
		return limit
	}
	return t
}

func (i *Ingester) drop(subject string, err error) {
	reason := reasonOf(err)
	i.dropped.WithLabelValues(reason).Inc()
	if ok, suppressed := i.limiter.allow(reason, i.now()); ok {
		i.logger.Warn("dropped agent message", "reason", reason, "subject", truncate(subject, 200), "error", truncate(err.Error(), 500), "suppressed", suppressed)
	}
}

// reasonOf maps a wire or ingest error to its drop reason.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, errNodeLimit):
		return ReasonNodeLimit
	case errors.Is(err, errRateLimited):
		return ReasonRateLimited
	case errors.Is(err, wire.ErrFuture):
		return ReasonFuture
	case errors.Is(err, wire.ErrRange):
		return ReasonRange
	case errors.Is(err, wire.ErrInterval):
		return ReasonInterval
	case errors.Is(err, wire.ErrCustomMetrics):
		return ReasonCustomMetrics
	case errors.Is(err, wire.ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, wire.ErrSchema):
		return ReasonSchema
	case errors.Is(err, wire.ErrKind):
		return ReasonKind
	case errors.Is(err, wire.ErrMismatch):
		return ReasonMismatch
	case errors.Is(err, wire.ErrSubject):
		return ReasonSubject
	}
	return ReasonMalformed
}

// truncate keeps log lines bounded when a sender's subject or the decoder's
// error quotes attacker-sized input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// slowConsumer counts what the client dropped for sub and warns.
func (i *Ingester) slowConsumer(sub *nats.Subscription) {
	i.subMu.Lock()
	name, ours := i.subs[sub]
	if ours {
		i.syncDroppedLocked()
	}
	i.subMu.Unlock()
	if !ours {
		return
	}
	total, _ := sub.Dropped()
	msgs, bytes, _ := sub.PendingLimits()
	if ok, suppressed := i.limiter.allow("slow_consumer_"+name, i.now()); ok {
		i.logger.Warn("handler fell behind, NATS client dropped messages", "subscription", name, "dropped_total", total, "pending_msgs_limit", msgs, "pending_bytes_limit", bytes, "suppressed", suppressed)
	}
}

// syncDroppedLocked adds what each subscription dropped since the last
// look. NATS reports a slow consumer once per episode, so the count is also
// brought up to date at every scrape and at Close.
func (i *Ingester) syncDroppedLocked() {
	for sub, name := range i.subs {
		n, err := sub.Dropped()
		if err != nil {
			continue
		}
		if d := n - i.seen[name]; d > 0 {
			i.slow.WithLabelValues(name).Add(float64(d))
			i.seen[name] = n
		}
	}
}

// slowCollector brings the slow-consumer counter up to date when scraped.
type slowCollector struct{ i *Ingester }

func (c *slowCollector) Describe(ch chan<- *prometheus.Desc) { c.i.slow.Describe(ch) }

func (c *slowCollector) Collect(ch chan<- prometheus.Metric) {
	c.i.subMu.Lock()
	c.i.syncDroppedLocked()
	c.i.subMu.Unlock()
	c.i.slow.Collect(ch)
}

// logLimiter lets one warning per key through every interval and counts
// the ones it held back, so a flood of bad messages cannot flood the log.
type logLimiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: make(map[string]time.Time), held: make(map[string]int)}
}

// allow reports whether to log for key now, and how many were held back
// since the last one logged.
func (l *logLimiter) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.every {
		l.held[key]++
		return false, 0
	}
	l.last[key] = now
	n := l.held[key]
	l.held[key] = 0
	return true, n
}

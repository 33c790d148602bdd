// Package ingest receives the agents' node reports and node events from
// the JetStream streams, decodes and validates them with the wire
// contract, drops (and counts) what is bad or beyond its limits, and keeps
// the latest report of every node for the snapshot builder. At start it
// replays the Reports stream, so a restarted aggregator knows every node's
// latest report and can rebuild its history before it serves.
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

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/wire"
)

// Defaults for Config's zero values.
const (
	// DefaultPullBytes bounds what each consumer holds in the client ahead
	// of the handler: eight of the largest reports, or hundreds of
	// ordinary ones.
	DefaultPullBytes = 8 << 20
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
	// OnEvent receives every valid node event, in the order the Events
	// stream holds them. It runs on the consumer's goroutine: a slow
	// callback delays the events behind it, never drops them. Nil discards
	// events.
	OnEvent func(*model.Event)
	// EventReplay is how far back Start replays the Events stream; zero
	// delivers only events stored after Start.
	EventReplay time.Duration
	// OnReplayedEvent, when set, receives instead of OnEvent the node
	// events the Events stream held at Start: the past, to be kept but not
	// announced as news.
	OnReplayedEvent func(*model.Event)
	// OnReplayedClusterEvent receives the cluster events the Events stream
	// held at Start (within EventReplay), in stream order; later ones are
	// not read, since each aggregator derives them itself. Nil reads none.
	OnReplayedClusterEvent func(*model.Event)
	// OnRestore receives, in stream order, every valid report replayed
	// from the Reports stream until the replay has caught up with what the
	// stream held at Start (see Restored); it rebuilds history. It runs on
	// the consumer's goroutine. Nil skips it.
	OnRestore func(state.ReportEntry)
	// Logger is required.
	Logger *slog.Logger
	// PullBytes bounds what each consumer buffers ahead of its handler;
	// zero means DefaultPullBytes.
	PullBytes int
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

// Ingester consumes every node's reports and events and keeps the latest
// report per node.
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

	subMu     sync.Mutex
	consumers []jetstream.ConsumeContext
	started   bool
	closed    bool

	restore *restore
	// eventsReplayedTo is the Events stream's last sequence at Start when
	// events are replayed: messages up to it are the past. Set before the
	// consumers start, read only by them.
	eventsReplayedTo uint64

	dropped *prometheus.CounterVec
	reports *prometheus.CounterVec
	events  prometheus.Counter
	errs    *prometheus.CounterVec
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
	def(&cfg.PullBytes, DefaultPullBytes)
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
		restore:    newRestore(),
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
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "k8smon", Subsystem: "ingest", Name: "consumer_errors_total",
			Help: "Errors of the JetStream consumers (missed heartbeats, NATS unreachable); each consumer resumes after the last message it handled.",
		}, []string{"stream"}),
	}
	// Every label value exists from the start, so a rate() sees the first drop.
	for _, r := range reasons {
		i.dropped.WithLabelValues(r)
	}
	i.reports.WithLabelValues("accepted")
	i.reports.WithLabelValues("outdated")
	i.errs.WithLabelValues("reports")
	i.errs.WithLabelValues("events")
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "k8smon", Subsystem: "ingest", Name: "nodes_tracked",
		Help: "Node names whose latest report is kept; new names beyond aggregator.max_nodes are refused (reason node_limit).",
	}, func() float64 { return float64(i.Tracked()) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{i.dropped, i.reports, i.events, i.errs, tracked} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register ingest metrics: %w", err)
			}
		}
	}
	return i, nil
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

// handle decodes one message received now and stores or hands it on.
func (i *Ingester) handle(subject string, data []byte) {
	i.handleAt(subject, data, i.now())
}

// handleAt checks, decodes and stores or hands on one message that
// arrived at arrived: for a message from a stream, when the stream stored
// it, so that a replayed message is judged (clock skew, event rate, report
// time) as it was when it arrived. It returns the report it stored or found
// outdated; nil for an event or a refused message.
func (i *Ingester) handleAt(subject string, data []byte, arrived time.Time) *model.NodeReport {
	switch {
	case strings.HasSuffix(subject, ".report"):
		return i.handleReport(subject, data, arrived)
	case strings.HasSuffix(subject, ".event"):
		i.handleEvent(subject, data, arrived, false)
	default:
		i.drop(subject, fmt.Errorf("%w: %q is neither a report nor an event subject", wire.ErrSubject, subject))
	}
	return nil
}

func (i *Ingester) handleReport(subject string, data []byte, arrived time.Time) *model.NodeReport {
	node, err := wire.NodeFromSubject(i.prefix, subject)
	if err != nil {
		i.drop(subject, err)
		return nil
	}
	// The limit is checked before decoding, so a flood of invented names
	// costs a map lookup per message once the limit is reached.
	i.mu.RLock()
	ok := i.admitsLocked(node)
	i.mu.RUnlock()
	if !ok {
		i.drop(subject, i.nodeLimitError())
		return nil
	}
	r, err := wire.DecodeReportAt(i.prefix, subject, data, wire.Clock{Now: arrived, MaxSkew: i.cfg.MaxClockSkew})
	if err != nil {
		i.drop(subject, err)
		return nil
	}
	if !i.store(r, arrived) {
		return nil
	}
	return r
}

func (i *Ingester) handleEvent(subject string, data []byte, arrived time.Time, replayed bool) {
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
	if !i.eventLimit.allow(node, i.trusted(node), arrived) {
		i.drop(subject, errRateLimited)
		return
	}
	e, err := wire.DecodeNodeEventAt(i.prefix, subject, data, wire.Clock{Now: arrived, MaxSkew: i.cfg.MaxClockSkew})
	if err != nil {
		i.drop(subject, err)
		return
	}
	i.events.Inc()
	if replayed && i.cfg.OnReplayedEvent != nil {
		i.cfg.OnReplayedEvent(e)
		return
	}
	if i.onEvent != nil {
		i.onEvent(e)
	}
}

// handleClusterEvent hands on a cluster event replayed from the Events
// stream. The aggregator published it itself, but the stream is shared
// with whoever may publish there, so it is checked like any input.
func (i *Ingester) handleClusterEvent(subject string, data []byte) {
	e, err := wire.DecodeClusterEvent(data)
	if err != nil {
		i.drop(subject, err)
		return
	}
	i.cfg.OnReplayedClusterEvent(e)
}

// Ingest's own refusals, beside the wire's.
var (
	errNodeLimit   = errors.New("ingest: node limit reached")
	errRateLimited = errors.New("ingest: node event rate limit exceeded")
)

// nodeLimitError says why a new name is refused; it is built once, so a
// flood of refusals allocates nothing for it.
func (i *Ingester) nodeLimitError() error { return i.limitErr }

// store keeps r, which arrived at arrived, unless the node's stored report
// is as new or newer: a stream keeps one publisher's order, but a report
// delivered again (an acknowledgement lost and the report sent again
// beyond the stream's duplicate window) or a second agent instance during
// a rollout arrive out of order; such a report counts as outdated. It
// reports whether r was a node's report at all (false: refused by the
// node limit).
//
// A reading cannot have been taken after it arrived, so report times ahead
// of their arrival (by at most the allowed skew, or the decoder refused
// them) are brought back to it: ordering and history then run on times
// the aggregator can trust, and an agent whose clock jumps forward and
// back is never locked out. A replayed report keeps the time the stream
// stored it, so it is as old as it was then.
func (i *Ingester) store(r *model.NodeReport, arrived time.Time) bool {
	if now := i.now(); arrived.After(now) || arrived.IsZero() {
		arrived = now
	}
	r.Timestamp = notAfter(r.Timestamp, arrived)
	r.Node.Timestamp = notAfter(r.Node.Timestamp, arrived)
	i.mu.Lock()
	if !i.admitsLocked(r.NodeName) {
		i.mu.Unlock()
		i.drop(wire.NodeReportSubject(i.prefix, r.NodeName), i.nodeLimitError())
		return false
	}
	old, ok := i.latest[r.NodeName]
	if ok && !r.Timestamp.After(old.Report.Timestamp) {
		i.mu.Unlock()
		i.reports.WithLabelValues("outdated").Inc()
		return true
	}
	i.latest[r.NodeName] = state.ReportEntry{Report: r, ReceivedAt: arrived}
	i.lastReceived = arrived
	i.mu.Unlock()
	i.reports.WithLabelValues("accepted").Inc()
	return true
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

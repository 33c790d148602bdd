// Package ingest receives the agents' node reports and node events from
// the JetStream streams, decodes them with the wire contract, drops (and
// counts) what is bad, and keeps the latest report of every node for the
// snapshot builder. At start it replays the Reports stream, so a restarted
// aggregator knows every node's latest report and can rebuild its history
// before it serves.
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
	// of the handler: a few dozen of the largest reports.
	DefaultPullBytes = 32 << 20
	// DefaultLogEvery is the shortest gap between two warnings for the same
	// drop reason; the counters still see every message.
	DefaultLogEvery = 10 * time.Second
)

// MaxClockSkew is how far ahead of the aggregator's clock a stored report's
// timestamp may be and still block older reports. An agent whose clock was
// ahead and got corrected would otherwise be ignored until real time
// caught up with its old timestamps.
const MaxClockSkew = 2 * time.Minute

// Drop reasons, the values of the reason label.
const (
	ReasonMalformed = "malformed"
	ReasonSchema    = "schema"
	ReasonMismatch  = "mismatch"
	ReasonTooLarge  = "too_large"
	ReasonSubject   = "subject"
	ReasonKind      = "kind"
)

var reasons = []string{ReasonMalformed, ReasonSchema, ReasonMismatch, ReasonTooLarge, ReasonSubject, ReasonKind}

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
	// EventReplay is how far back Start replays node events to OnEvent;
	// zero delivers only events stored after Start.
	EventReplay time.Duration
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

	mu           sync.RWMutex
	latest       map[string]state.ReportEntry
	lastReceived time.Time

	subMu     sync.Mutex
	consumers []jetstream.ConsumeContext
	started   bool
	closed    bool

	restore *restore

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
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	i := &Ingester{
		prefix:  cfg.Prefix,
		cfg:     cfg,
		logger:  cfg.Logger.With("source", "ingest"),
		onEvent: cfg.OnEvent,
		now:     time.Now,
		limiter: newLogLimiter(cfg.LogEvery),
		latest:  make(map[string]state.ReportEntry),
		restore: newRestore(),
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
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{i.dropped, i.reports, i.events, i.errs} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register ingest metrics: %w", err)
			}
		}
	}
	return i, nil
}

// Latest returns the latest report of every node, keyed by node name. The
// map is a copy the caller owns; the reports themselves are shared and
// never modified after decoding, so callers must not modify them either.
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
	defer i.mu.Unlock()
	delete(i.latest, node)
}

// handle decodes one message received now and stores or hands it on.
func (i *Ingester) handle(subject string, data []byte) {
	i.handleAt(subject, data, i.now())
}

// handleAt decodes one message that arrived at arrived and stores or hands
// it on; it returns the report it stored or found outdated, nil for an
// event or a dropped message.
func (i *Ingester) handleAt(subject string, data []byte, arrived time.Time) *model.NodeReport {
	switch {
	case strings.HasSuffix(subject, ".report"):
		r, err := wire.DecodeReport(i.prefix, subject, data)
		if err != nil {
			i.drop(subject, err)
			return nil
		}
		i.store(r, arrived)
		return r
	case strings.HasSuffix(subject, ".event"):
		e, err := wire.DecodeNodeEvent(i.prefix, subject, data)
		if err != nil {
			i.drop(subject, err)
			return nil
		}
		i.events.Inc()
		if i.onEvent != nil {
			i.onEvent(e)
		}
	default:
		i.drop(subject, fmt.Errorf("%w: %q is neither a report nor an event subject", wire.ErrSubject, subject))
	}
	return nil
}

// store keeps r unless the node's stored report is as new or newer: a
// stream keeps one publisher's order, but a report delivered again (a
// replay, an acknowledgement lost and the report sent twice beyond the
// stream's duplicate window) or a second agent instance during a rollout
// arrive out of order. arrived is when the stream stored r, so a replayed
// report keeps its age.
func (i *Ingester) store(r *model.NodeReport, arrived time.Time) {
	now := i.now()
	if arrived.After(now) || arrived.IsZero() {
		arrived = now
	}
	i.mu.Lock()
	old, ok := i.latest[r.NodeName]
	if ok && !r.Timestamp.After(old.Report.Timestamp) && !old.Report.Timestamp.After(now.Add(MaxClockSkew)) {
		i.mu.Unlock()
		i.reports.WithLabelValues("outdated").Inc()
		return
	}
	i.latest[r.NodeName] = state.ReportEntry{Report: r, ReceivedAt: arrived}
	i.lastReceived = arrived
	i.mu.Unlock()
	i.reports.WithLabelValues("accepted").Inc()
}

func (i *Ingester) drop(subject string, err error) {
	reason := reasonOf(err)
	i.dropped.WithLabelValues(reason).Inc()
	if ok, suppressed := i.limiter.allow(reason, i.now()); ok {
		i.logger.Warn("dropped agent message", "reason", reason, "subject", truncate(subject, 200), "error", truncate(err.Error(), 500), "suppressed", suppressed)
	}
}

// reasonOf maps a wire error to its drop reason.
func reasonOf(err error) string {
	switch {
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

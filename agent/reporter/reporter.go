// Package reporter is the agent's loop: every interval it collects one node
// report through the runner, derives health and events, and hands both to
// the publisher. It also serves the agent's /healthz, /readyz and /metrics.
package reporter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/pressure"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
)

// Sink receives reports and events; the NATS publisher is one.
type Sink interface {
	PublishReport(r *model.NodeReport) error
	PublishEvent(e *model.Event) error
	// Delivering reports whether messages reach NATS now and, when not,
	// why in words.
	Delivering() (bool, string)
}

// EventSource is a source that also queues events between cycles (GPU XID
// errors arrive asynchronously).
type EventSource interface {
	PendingEvents() []model.Event
}

// Reporter collects and publishes one node's reports.
type Reporter struct {
	node     string
	interval time.Duration
	runner   *collector.Runner
	tracker  *pressure.Tracker
	logger   *slog.Logger
	now      func() time.Time

	mu        sync.Mutex
	lastCycle time.Time
	published int

	cycles prometheus.Counter
}

// New returns a reporter for node. Metrics are registered on reg when it is
// not nil.
func New(node string, interval time.Duration, runner *collector.Runner, thresholds model.Thresholds, logger *slog.Logger, reg prometheus.Registerer) *Reporter {
	r := &Reporter{
		node: node, interval: interval, runner: runner,
		tracker: pressure.NewTracker(thresholds), logger: logger, now: time.Now,
		cycles: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "k8smon_agent", Name: "cycles_total", Help: "Collection cycles run.",
		}),
	}
	if reg != nil {
		reg.MustRegister(r.cycles)
	}
	return r
}

// Cycle collects one report and returns it with the events it caused,
// including those queued by event sources since the last cycle.
func (r *Reporter) Cycle(ctx context.Context) (*model.NodeReport, []model.Event) {
	rep := &model.NodeReport{
		NodeName:        r.node,
		Timestamp:       r.now().UTC(),
		AgentVersion:    version.Version,
		IntervalSeconds: r.interval.Seconds(),
	}
	rep.Node.NodeName = r.node
	rep.Node.Timestamp = rep.Timestamp
	r.runner.Collect(ctx, rep)
	events := r.tracker.Observe(rep)
	for _, s := range r.runner.Sources() {
		if es, ok := s.(EventSource); ok {
			events = append(events, es.PendingEvents()...)
		}
	}
	r.cycles.Inc()
	r.mu.Lock()
	r.lastCycle = r.now()
	r.mu.Unlock()
	return rep, events
}

// Run publishes an AgentStarted event, a report at once and then one every
// interval, until ctx ends; then it publishes AgentStopping.
func (r *Reporter) Run(ctx context.Context, sink Sink) error {
	started := pressure.Lifecycle(model.EventAgentStarted, r.node, version.Version, r.now().UTC())
	r.publishEvent(sink, &started)
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	for {
		r.once(ctx, sink)
		select {
		case <-ctx.Done():
			stopping := pressure.Lifecycle(model.EventAgentStopping, r.node, version.Version, r.now().UTC())
			r.publishEvent(sink, &stopping)
			return nil
		case <-ticker.C:
		}
	}
}

func (r *Reporter) once(ctx context.Context, sink Sink) {
	start := time.Now()
	rep, events := r.Cycle(ctx)
	for i := range events {
		r.publishEvent(sink, &events[i])
	}
	if err := sink.PublishReport(rep); err != nil {
		r.logger.Error("report not published", "error", err)
		return
	}
	r.mu.Lock()
	r.published++
	r.mu.Unlock()
	r.logger.Debug("report published", "took", time.Since(start), "events", len(events))
}

func (r *Reporter) publishEvent(sink Sink, e *model.Event) {
	if err := sink.PublishEvent(e); err != nil {
		r.logger.Error("event not published", "type", e.Type, "error", err)
		return
	}
	r.logger.Info("event", "type", e.Type, "severity", e.Severity, "message", e.Message)
}

// Handler serves /healthz (the loop ran within three intervals), /readyz (a
// report was collected and the sink delivers: NATS connected and
// acknowledging) and /metrics from gatherer.
func (r *Reporter) Handler(sink Sink, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		last := r.lastCycle
		r.mu.Unlock()
		if age := r.now().Sub(last); !last.IsZero() && age > 3*r.interval {
			writeStatus(w, http.StatusServiceUnavailable, fmt.Sprintf("no collection cycle for %s (interval %s)", age.Round(time.Second), r.interval))
			return
		}
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		published := r.published
		r.mu.Unlock()
		if published == 0 {
			writeStatus(w, http.StatusServiceUnavailable, "no report collected yet")
			return
		}
		if ok, reason := sink.Delivering(); !ok {
			writeStatus(w, http.StatusServiceUnavailable, "cannot deliver: "+reason)
			return
		}
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

func writeStatus(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	key := "status"
	if code >= 400 {
		key = "error"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{key: msg, "code": code})
}

package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Runner collects every source concurrently, each under its own deadline,
// and applies their parts to one report in source order. A slow or failing
// source marks only its own part unavailable; it never blocks the report.
type Runner struct {
	sources []Source
	timeout time.Duration
	logger  *slog.Logger

	mu sync.Mutex
	// running holds sources whose Collect outlived its deadline and has
	// not returned yet (a hung statfs, a stuck socket): they are not started
	// again until they do, so stuck goroutines cannot pile up.
	running     map[string]time.Time
	lastSuccess map[string]time.Time

	duration    *prometheus.HistogramVec
	up          *prometheus.GaugeVec
	unavailable *prometheus.GaugeVec
}

// NewRunner returns a runner over sources with a per-source timeout. Its
// metrics (collector duration, source up and unavailable) are registered on
// reg when it is not nil.
func NewRunner(sources []Source, timeout time.Duration, logger *slog.Logger, reg prometheus.Registerer) *Runner {
	r := &Runner{
		sources:     sources,
		timeout:     timeout,
		logger:      logger,
		running:     map[string]time.Time{},
		lastSuccess: map[string]time.Time{},
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "k8smon_agent", Name: "collector_duration_seconds",
			Help:    "Time one source took to collect, by source.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "k8smon_agent", Name: "source_up",
			Help: "1 when the source's last collection succeeded, 0 when it failed; absent while the source is unavailable on this node.",
		}, []string{"source"}),
		unavailable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "k8smon_agent", Name: "source_unavailable",
			Help: "1 when the source is absent on this node (no GPU driver, disabled by configuration), which is not an error; else 0.",
		}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(r.duration, r.up, r.unavailable)
	}
	return r
}

type outcome struct {
	apply Apply
	err   error
	took  time.Duration
}

// Collect runs every source and fills report: each source's part and its
// status in report.Sources, in source order.
func (r *Runner) Collect(ctx context.Context, report *model.NodeReport) {
	results := make([]chan outcome, len(r.sources))
	skipped := make([]string, len(r.sources))
	var wg sync.WaitGroup
	for i, s := range r.sources {
		if since, busy := r.markRunning(s.Name()); busy {
			skipped[i] = fmt.Sprintf("previous collection still running since %s", since.UTC().Format(time.RFC3339))
			continue
		}
		results[i] = make(chan outcome, 1)
		wg.Add(1)
		go func(s Source, out chan<- outcome) {
			defer wg.Done()
			r.runOne(ctx, s, out)
		}(s, results[i])
	}
	wg.Wait()

	report.Sources = report.Sources[:0]
	for i, s := range r.sources {
		name := s.Name()
		st := model.SourceStatus{Name: name}
		if results[i] == nil {
			st.Status, st.Reason = model.SourceFailed, skipped[i]
			r.finish(&st, time.Time{})
			report.Sources = append(report.Sources, st)
			continue
		}
		o := <-results[i]
		st.DurationMs = float64(o.took.Microseconds()) / 1000
		if o.apply != nil {
			o.apply(report)
		}
		switch {
		case o.err == nil:
			st.Status = model.SourceOK
		case errors.Is(o.err, ErrUnavailable):
			st.Status, st.Reason = model.SourceUnavailable, strings.TrimPrefix(o.err.Error(), ErrUnavailable.Error()+": ")
			r.logger.Debug("source unavailable", "source", name, "reason", o.err)
		default:
			st.Status, st.Reason = model.SourceFailed, o.err.Error()
			r.logger.Warn("source failed", "source", name, "error", o.err)
		}
		r.duration.WithLabelValues(name).Observe(o.took.Seconds())
		r.finish(&st, report.Timestamp)
		report.Sources = append(report.Sources, st)
	}
}

// runOne collects s under its deadline. When s ignores the deadline, the
// outcome says so at once and s stays marked running until it returns.
func (r *Runner) runOne(ctx context.Context, s Source, out chan<- outcome) {
	sctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	start := time.Now()
	done := make(chan outcome, 1)
	go func() {
		apply, err := safeCollect(sctx, s)
		// Cleared before the result is handed over, so the next cycle
		// never sees a finished source as still running.
		r.clearRunning(s.Name())
		done <- outcome{apply: apply, err: err, took: time.Since(start)}
	}()
	select {
	case o := <-done:
		out <- o
	case <-sctx.Done():
		out <- outcome{err: fmt.Errorf("%s did not answer within %s: %w", s.Name(), r.timeout, sctx.Err()), took: time.Since(start)}
	}
}

// safeCollect turns a panicking source into a failed one: one source's bug
// must not take the agent down.
func safeCollect(ctx context.Context, s Source) (apply Apply, err error) {
	defer func() {
		if p := recover(); p != nil {
			apply, err = nil, fmt.Errorf("%s panicked: %v", s.Name(), p)
		}
	}()
	return s.Collect(ctx)
}

func (r *Runner) markRunning(name string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if since, ok := r.running[name]; ok {
		return since, true
	}
	r.running[name] = time.Now()
	return time.Time{}, false
}

func (r *Runner) clearRunning(name string) {
	r.mu.Lock()
	delete(r.running, name)
	r.mu.Unlock()
}

// finish records the last success and the source's state: up is 1 or 0
// only while the source is expected to work, so an alert on up == 0 never
// fires for a GPU source on a node without GPUs.
func (r *Runner) finish(st *model.SourceStatus, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch st.Status {
	case model.SourceOK:
		r.lastSuccess[st.Name] = now
		r.up.WithLabelValues(st.Name).Set(1)
		r.unavailable.WithLabelValues(st.Name).Set(0)
	case model.SourceUnavailable:
		r.up.DeleteLabelValues(st.Name)
		r.unavailable.WithLabelValues(st.Name).Set(1)
	default:
		r.up.WithLabelValues(st.Name).Set(0)
		r.unavailable.WithLabelValues(st.Name).Set(0)
	}
	st.LastSuccess = r.lastSuccess[st.Name]
}

// Sources returns the runner's sources in order.
func (r *Runner) Sources() []Source { return r.sources }

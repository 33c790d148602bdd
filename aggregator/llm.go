package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/diagnose"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/events"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/ingest"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/kube"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/mcp"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/terminations"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// evidence holds what the diagnoses read beyond the snapshot: the
// termination history and the events store, both of which outlive the API
// server's own memory (the last termination, one hour of events).
type evidence struct {
	terms   *terminations.Store
	events  *events.Store
	watcher *events.Watcher
	logger  *slog.Logger
	// done ends the event streams: http.Server.Shutdown does not cancel
	// requests, and a stream never finishes on its own.
	done <-chan struct{}
	// ing is set once ingest subscribed; diagnoses may run before.
	ing atomic.Pointer[ingest.Ingester]
}

func newEvidence(cfg *config.Config, logger *slog.Logger, done <-chan struct{}) *evidence {
	return &evidence{
		terms:  terminations.New(terminations.Options{}),
		events: events.NewStore(events.Options{Retention: cfg.Aggregator.EventsRetention, MaxEvents: cfg.Aggregator.EventsMax}),
		logger: logger,
		done:   done,
	}
}

// watchPods feeds the termination history from the pod informer; it must
// run before cl.Start.
func (e *evidence) watchPods(cl *kube.Cluster) error {
	if err := cl.AddPodHandler(e.terms.Handler()); err != nil {
		return fmt.Errorf("watch pods' terminations: %w", err)
	}
	return nil
}

// watchEvents starts the events informer, once the API server answers.
func (e *evidence) watchEvents(ctx context.Context, cl *kube.Cluster, namespaces []string) error {
	if ctx.Err() != nil {
		return nil
	}
	e.watcher = events.NewWatcher(cl.Client(), e.events, e.logger.With("component", "events"))
	return e.watcher.Start(ctx, namespaces)
}

// close stops the events informer.
func (e *evidence) close() {
	if e.watcher != nil {
		e.watcher.Stop()
	}
}

// setReports gives the diagnoses the agents' latest reports (cgroup OOM
// counters).
func (e *evidence) setReports(ing *ingest.Ingester) { e.ing.Store(ing) }

// nodeEvent keeps an agent's node event (ingest's OnEvent).
func (e *evidence) nodeEvent(ev *model.Event) { e.events.AddModel(ev, events.SourceAgent) }

// clusterEvent keeps one of the aggregator's cluster events.
func (e *evidence) clusterEvent(ev *model.Event) { e.events.AddModel(ev, events.SourceAggregator) }

// diagnoser reads the store, the cluster's objects (nil in standalone
// mode), the termination history, the events and the agents' reports.
func (e *evidence) diagnoser(store *state.Store, cl *kube.Cluster, thresholds model.Thresholds) *diagnose.Diagnoser {
	opts := diagnose.Options{
		State:        store,
		Terminations: e.terms,
		Events:       e.events,
		Thresholds:   thresholds,
		Reports: func(node string) *model.NodeReport {
			if ing := e.ing.Load(); ing != nil {
				return ing.Latest()[node].Report
			}
			return nil
		},
	}
	if cl != nil { // a nil *Cluster in the interface would not read as absent
		opts.Objects = cl
	}
	return diagnose.New(opts)
}

// mcpOptions backs the MCP tools diagnose_pod, diagnose_node and
// recent_events with the diagnoser and the events store.
func (e *evidence) mcpOptions(o *mcp.Options, d *diagnose.Diagnoser) {
	wrap := func(dg *diagnose.Diagnosis, err error) (mcp.Diagnosis, error) {
		if errors.Is(err, diagnose.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", mcp.ErrNotFound, err)
		}
		if err != nil {
			return nil, err
		}
		return dg, nil
	}
	o.DiagnosePod = func(_ context.Context, namespace, name string) (mcp.Diagnosis, error) {
		return wrap(d.Pod(namespace, name))
	}
	o.DiagnoseNode = func(_ context.Context, name string) (mcp.Diagnosis, error) {
		return wrap(d.Node(name))
	}
	o.RecentEvents = func(_ context.Context, f mcp.EventFilter) (any, error) {
		page, err := e.events.List(events.Filter{Node: f.Node, Namespace: f.Namespace, Pod: f.Pod, Type: f.Type, Since: f.Since, Limit: f.Limit})
		return page, err
	}
}

// routes registers /api/v1/diagnose/... and /api/v1/events[/stream].
func (e *evidence) routes(mux *http.ServeMux, d *diagnose.Diagnoser, reg prometheus.Registerer) {
	diagnose.RegisterRoutes(mux, d, diagnose.HTTPOptions{Logger: e.logger.With("component", "diagnose"), Registerer: reg})
	events.RegisterRoutes(mux, e.events, events.HTTPOptions{Done: e.done, Logger: e.logger.With("component", "events"), Registerer: reg})
}

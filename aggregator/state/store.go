package state

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// StandaloneReason is what Ready says in standalone mode: the aggregator
// serves, but only what agents report.
const StandaloneReason = "standalone mode: no cluster, agents only"

// NoSnapshotReason is what Ready says before the first Publish.
const NoSnapshotReason = "no snapshot yet"

// StoreOptions configure a Store.
type StoreOptions struct {
	// History receives every published snapshot; nil keeps no history.
	History *History
	// Standalone says there is no API server, which Ready reports.
	Standalone bool
	// MaxAge is how long the store may go without a Publish before Healthy
	// fails, so a wedged build loop restarts the pod (a few intervals);
	// 0 never fails.
	MaxAge time.Duration
	// Now is the clock for MaxAge; nil means time.Now.
	Now func() time.Time
}

// Store holds the latest snapshot. Readers load it through an atomic
// pointer and never wait, not even while a new snapshot is published;
// published snapshots are never modified, so readers may hold on to one
// for as long as a response takes.
type Store struct {
	opts    StoreOptions
	created time.Time

	snap atomic.Pointer[model.MetricsSnapshot]
	// waiting is what the latest snapshot was built without; nil or ""
	// when it is complete.
	waiting atomic.Pointer[string]
	// lastPublish is Unix nanoseconds of the latest Publish.
	lastPublish atomic.Int64
	// publishMu orders publishers so each Diff compares consecutive
	// snapshots; readers never take it.
	publishMu sync.Mutex
	// announced is the cluster health last announced by an event; pending
	// a different health seen in pendingFor consecutive snapshots.
	announced, pending string
	pendingFor         int
}

// HealthSettle is how many consecutive snapshots a new cluster health must
// hold before ClusterHealthChanged is announced: a cluster whose CPU hovers
// at a health threshold would otherwise flood subscribers with events.
const HealthSettle = 2

// NewStore returns an empty store.
func NewStore(opts StoreOptions) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{opts: opts, created: opts.Now()}
}

// Publish makes next the current snapshot, records it in the history and
// returns the events between the previous snapshot and next. next must not
// be modified afterwards.
func (s *Store) Publish(next *model.MetricsSnapshot) []model.Event {
	if next == nil {
		return nil
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	prev := s.snap.Swap(next)
	s.lastPublish.Store(s.opts.Now().UnixNano())
	if s.opts.History != nil {
		s.opts.History.Record(next)
	}
	events := Diff(prev, next)
	kept := events[:0]
	for _, e := range events {
		if e.Type != model.EventClusterHealthChanged {
			kept = append(kept, e)
		}
	}
	if e, ok := s.settleHealth(next); ok {
		kept = append(kept, e)
	}
	return kept
}

// settleHealth announces a cluster health change once the new health has
// held for HealthSettle consecutive snapshots.
func (s *Store) settleHealth(next *model.MetricsSnapshot) (model.Event, bool) {
	if next.ClusterMetrics == nil {
		return model.Event{}, false
	}
	cur := next.ClusterMetrics.HealthStatus
	switch {
	case s.announced == "":
		s.announced = cur // start-up: nothing to compare with
		return model.Event{}, false
	case cur == s.announced:
		s.pending, s.pendingFor = "", 0
		return model.Event{}, false
	case cur == s.pending:
		s.pendingFor++
	default:
		s.pending, s.pendingFor = cur, 1
	}
	if s.pendingFor < HealthSettle {
		return model.Event{}, false
	}
	e, ok := healthChange(&model.ClusterMetrics{HealthStatus: s.announced}, next.ClusterMetrics, next.Timestamp)
	s.announced, s.pending, s.pendingFor = cur, "", 0
	return e, ok
}

// Snapshot returns the current snapshot, nil before the first Publish.
func (s *Store) Snapshot() *model.MetricsSnapshot { return s.snap.Load() }

// NodeHistory returns the node's history; false when the node has none
// (or the store keeps no history).
func (s *Store) NodeHistory(name string) ([]NodePoint, bool) {
	if s.opts.History == nil {
		return nil, false
	}
	return s.opts.History.NodeHistory(name)
}

// PodHistory returns the pod's history; false when the pod has none (or
// the store keeps no history).
func (s *Store) PodHistory(namespace, name string) ([]PodPoint, bool) {
	if s.opts.History == nil {
		return nil, false
	}
	return s.opts.History.PodHistory(namespace, name)
}

// SetWaiting records what the latest snapshot was built without, such as
// an API server that does not answer yet or informers still listing; Ready
// fails with that reason until it is set to "". The manager sets it on
// every build.
func (s *Store) SetWaiting(reason string) { s.waiting.Store(&reason) }

// Ready reports whether there is a complete snapshot to serve: one was
// published and nothing it was built without is awaited (SetWaiting). In
// standalone mode it is ready with StandaloneReason, so probes pass while
// the body still tells a human why nodes lack Kubernetes detail.
func (s *Store) Ready() (bool, string) {
	if s.snap.Load() == nil {
		return false, NoSnapshotReason
	}
	if w := s.waiting.Load(); w != nil && *w != "" {
		return false, *w
	}
	if s.opts.Standalone {
		return true, StandaloneReason
	}
	return true, ""
}

// Healthy fails when no snapshot was published for longer than MaxAge
// (counted from creation before the first one).
func (s *Store) Healthy() (bool, string) {
	if s.opts.MaxAge <= 0 {
		return true, ""
	}
	last := s.created
	if ns := s.lastPublish.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	if age := s.opts.Now().Sub(last); age > s.opts.MaxAge {
		return false, fmt.Sprintf("no snapshot built for %s (limit %s)", age.Round(time.Second), s.opts.MaxAge)
	}
	return true, ""
}

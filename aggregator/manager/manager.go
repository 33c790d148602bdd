// Package manager is the seed's Metrics Manager: it periodically merges the
// agents' reports, the informers' objects and metrics-server usage into a
// snapshot, publishes it to the store, and hands the resulting cluster
// events on. An upper layer can embed it and call Start, Stop, Collect,
// GetLatestSnapshot, GetNodeMetrics, GetPodMetrics and GetClusterMetrics.
package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Errors returned by the Get methods, matched with errors.Is.
var (
	// ErrNoSnapshot means no snapshot has been built yet.
	ErrNoSnapshot = errors.New("manager: no snapshot yet")
	// ErrNotFound means the snapshot has no such node or pod.
	ErrNotFound = errors.New("manager: not found")
	// ErrStopped means Start was called after Stop.
	ErrStopped = errors.New("manager: stopped")
)

// ReportSource gives the latest report of every agent (aggregator/ingest).
type ReportSource interface {
	Latest() map[string]state.ReportEntry
	// Forget drops a node's report.
	Forget(node string)
	// SetClusterNodes names the nodes that have a Node object, after each
	// read of the informers, so that a source capping the names it tracks
	// never refuses a real node. The map is not modified afterwards.
	SetClusterNodes(names map[string]bool)
}

// ClusterSource is the Kubernetes side (aggregator/kube); nil in standalone
// mode.
type ClusterSource interface {
	// Ready reports whether Nodes and Pods are complete (the API server
	// answered, the informers listed); reason says what is awaited.
	Ready() (ok bool, reason string)
	Nodes() []*corev1.Node
	Pods() []*corev1.Pod
	// PollUsage reads metrics-server; nil maps when it is absent or failing.
	PollUsage(ctx context.Context) (pods, nodes map[string]state.Usage, status model.SourceStatus)
	Status() map[string]model.SourceStatus
}

// VMSource turns the watched VM objects into VM views (aggregator/vm).
type VMSource interface {
	VMs(pods []*corev1.Pod, podUsage map[string]state.Usage, reports map[string]state.ReportEntry, now time.Time) ([]*model.VMMetrics, []model.Event)
	Status() map[string]model.SourceStatus
}

// Options configure a Manager.
type Options struct {
	// Interval is metrics.collect_interval: metrics-server is polled once
	// per interval; snapshots are rebuilt three times per interval so a
	// report is visible within a third of an interval of its arrival.
	Interval       time.Duration
	StaleIntervals int
	// ForgetAfter drops the report of a node that has no Node object and
	// whose agent has been silent this long (a node removed from the
	// cluster, or an agent gone for good); 0 keeps reports forever.
	ForgetAfter   time.Duration
	Thresholds    model.Thresholds
	Reports       ReportSource
	Cluster       ClusterSource // nil: standalone, agents only
	MetricsServer bool          // poll metrics-server through Cluster
	VMs           VMSource      // nil: no VM sources
	Store         *state.Store
	// SkipNodeUsage and SkipPodUsage leave metrics-server's node or pod
	// usage out of snapshots (metrics.enable_node, metrics.enable_pod off).
	SkipNodeUsage, SkipPodUsage bool
	// OnEvents receives the cluster events of each new snapshot; nil drops them.
	OnEvents func([]model.Event)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Manager builds snapshots on a timer.
type Manager struct {
	o Options

	mu        sync.Mutex // serialises Collect
	podUsage  map[string]state.Usage
	nodeUsage map[string]state.Usage
	msStatus  *model.SourceStatus
	lastPoll  time.Time
	resources *state.ResourceMemo
	held      int // reports held apart at the last Collect

	stopOnce sync.Once
	stop     chan struct{}
}

// New returns a manager; Start runs it.
func New(o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StaleIntervals <= 0 {
		o.StaleIntervals = 3
	}
	return &Manager{o: o, stop: make(chan struct{}), resources: state.NewResourceMemo()}
}

// Start collects at once and then three times per interval until ctx ends
// or Stop is called. It blocks; run it in its own goroutine.
func (m *Manager) Start(ctx context.Context) error {
	select {
	case <-m.stop:
		return ErrStopped
	default:
	}
	every := max(m.o.Interval/3, time.Second)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		if err := m.Collect(ctx); err != nil && ctx.Err() == nil {
			m.o.Logger.Warn("collect", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.stop:
			return nil
		case <-ticker.C:
		}
	}
}

// Stop ends Start. It is safe to call more than once.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() { close(m.stop) })
	return nil
}

// Collect builds and publishes one snapshot now, polling metrics-server when
// its last poll is an interval old.
func (m *Manager) Collect(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.o.Now()
	in := state.Inputs{
		Now:            now,
		Reports:        m.o.Reports.Latest(),
		StaleIntervals: m.o.StaleIntervals,
		Thresholds:     m.o.Thresholds,
		Sources:        map[string]model.SourceStatus{},
		Resources:      m.resources,
	}
	waiting := ""
	var clusterNodes map[string]bool
	if c := m.o.Cluster; c != nil {
		// Asked before the inputs are read: a snapshot is complete only if
		// everything it was built from already was.
		if ok, why := c.Ready(); !ok {
			waiting = cmp.Or(why, "Kubernetes objects not listed yet")
		}
		in.Nodes, in.Pods = c.Nodes(), c.Pods()
		clusterNodes = make(map[string]bool, len(in.Nodes))
		for _, n := range in.Nodes {
			clusterNodes[n.Name] = true
		}
		m.o.Reports.SetClusterNodes(clusterNodes)
		for k, v := range c.Status() {
			in.Sources[k] = v
		}
		if m.o.MetricsServer && (m.lastPoll.IsZero() || now.Sub(m.lastPoll) >= m.o.Interval) {
			pods, nodes, st := c.PollUsage(ctx)
			m.podUsage, m.nodeUsage, m.msStatus, m.lastPoll = pods, nodes, &st, now
			if st.Status != model.SourceOK {
				m.o.Logger.Debug("metrics-server", "status", st.Status, "reason", st.Reason)
			}
		}
		if m.msStatus != nil {
			in.Sources[m.msStatus.Name] = *m.msStatus
		}
		in.PodUsage, in.NodeUsage = m.podUsage, m.nodeUsage
		if m.o.SkipPodUsage {
			in.PodUsage = nil
		}
		if m.o.SkipNodeUsage {
			in.NodeUsage = nil
		}
	} else {
		in.Sources["kubernetes"] = model.SourceStatus{Name: "kubernetes", Status: model.SourceUnavailable,
			Reason: "standalone mode: no cluster configured or reachable; nodes and pods come from agents only"}
	}
	m.forgetGone(&in, clusterNodes)
	if m.o.Cluster != nil {
		m.holdApart(&in)
	}
	var vmEvents []model.Event
	if m.o.VMs != nil {
		in.VMs, vmEvents = m.o.VMs.VMs(in.Pods, in.PodUsage, in.Reports, now)
		for k, v := range m.o.VMs.Status() {
			in.Sources[k] = v
		}
	}
	snap := state.Build(in)
	events := append(m.o.Store.Publish(snap), vmEvents...)
	m.o.Store.SetWaiting(waiting)
	if len(events) > 0 && m.o.OnEvents != nil {
		m.o.OnEvents(events)
	}
	return ctx.Err()
}

// forgetExamples is how many forgotten names the summary log line lists.
const forgetExamples = 5

// forgetGone drops reports of nodes without a Node object whose agents have
// been silent for ForgetAfter, so removed nodes do not stay stale forever.
// It logs one line per build, however many names go: a flood of invented
// names must not become a flood of log lines.
func (m *Manager) forgetGone(in *state.Inputs, clusterNodes map[string]bool) {
	if m.o.ForgetAfter <= 0 {
		return
	}
	var gone []string
	for name, e := range in.Reports {
		if !clusterNodes[name] && in.Now.Sub(e.ReceivedAt) > m.o.ForgetAfter {
			m.o.Reports.Forget(name)
			delete(in.Reports, name)
			gone = append(gone, name)
		}
	}
	if len(gone) == 0 {
		return
	}
	slices.Sort(gone)
	m.o.Logger.Info("forgot nodes whose agent is silent and which have no Node object",
		"count", len(gone), "nodes", gone[:min(len(gone), forgetExamples)], "silentFor", m.o.ForgetAfter)
}

// MaxHeldReports bounds the reports held apart for nodes without a Node
// object; beyond it the oldest are forgotten.
const MaxHeldReports = 1000

// holdApart takes the reports of nodes that have no Node object out of the
// build, so that no agent can make a node appear by naming it: they enter
// snapshots, history and metrics once the Node exists. At most
// MaxHeldReports are kept, newest first; forgetGone drops silent ones.
func (m *Manager) holdApart(in *state.Inputs) {
	known := make(map[string]bool, len(in.Nodes))
	for _, n := range in.Nodes {
		known[n.Name] = true
	}
	var held []string
	for name := range in.Reports {
		if !known[name] {
			held = append(held, name)
		}
	}
	sort.Slice(held, func(i, j int) bool { return in.Reports[held[i]].ReceivedAt.After(in.Reports[held[j]].ReceivedAt) })
	for i, name := range held {
		if i >= MaxHeldReports {
			m.o.Reports.Forget(name)
		}
		delete(in.Reports, name)
	}
	if len(held) != m.held {
		m.o.Logger.Info("reports held apart: no Node object of that name", "held", len(held), "newest", held[:min(len(held), 5)])
		m.held = len(held)
	}
}

// GetLatestSnapshot returns the current snapshot, nil before the first one.
// It must not be modified.
func (m *Manager) GetLatestSnapshot() *model.MetricsSnapshot { return m.o.Store.Snapshot() }

// GetNodeMetrics returns one node of the current snapshot.
func (m *Manager) GetNodeMetrics(nodeName string) (*model.NodeMetrics, error) {
	s := m.o.Store.Snapshot()
	if s == nil {
		return nil, ErrNoSnapshot
	}
	n, ok := s.NodeMetrics[nodeName]
	if !ok {
		return nil, fmt.Errorf("node %q: %w", nodeName, ErrNotFound)
	}
	return n, nil
}

// GetPodMetrics returns one pod of the current snapshot.
func (m *Manager) GetPodMetrics(namespace, podName string) (*model.PodMetrics, error) {
	s := m.o.Store.Snapshot()
	if s == nil {
		return nil, ErrNoSnapshot
	}
	p, ok := s.PodMetrics[model.PodKey(namespace, podName)]
	if !ok {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, podName, ErrNotFound)
	}
	return p, nil
}

// GetClusterMetrics returns the current cluster summary, nil before the
// first snapshot.
func (m *Manager) GetClusterMetrics() *model.ClusterMetrics {
	if s := m.o.Store.Snapshot(); s != nil {
		return s.ClusterMetrics
	}
	return nil
}

package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type reports struct {
	mu      sync.Mutex
	m       map[string]state.ReportEntry
	cluster map[string]bool
}

func (r *reports) Latest() map[string]state.ReportEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]state.ReportEntry, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

func (r *reports) Forget(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, node)
}

func (r *reports) SetClusterNodes(names map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cluster = names
}

func (r *reports) put(node string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[node] = state.ReportEntry{ReceivedAt: at, Report: &model.NodeReport{
		NodeName: node, Timestamp: at, IntervalSeconds: 15,
		Node: model.NodeMetrics{NodeName: node, CPUCapacity: 4000, CPUUsage: 1000, CPUUsageRate: 25, MemoryCapacity: 8 << 30, MemoryUsage: 2 << 30, MemoryUsageRate: 25},
	}}
}

// cluster is an in-memory ClusterSource.
type cluster struct {
	nodes []*corev1.Node
	pods  []*corev1.Pod
	polls int
	usage map[string]state.Usage
	// nodeUsage is metrics-server's usage of nodes, by name.
	nodeUsage map[string]state.Usage
	// waiting, when set, is what Ready says the cluster waits for.
	waiting string
}

func (c *cluster) Ready() (bool, string) { return c.waiting == "", c.waiting }
func (c *cluster) Nodes() []*corev1.Node { return c.nodes }
func (c *cluster) Pods() []*corev1.Pod   { return c.pods }
func (c *cluster) PollUsage(context.Context) (map[string]state.Usage, map[string]state.Usage, model.SourceStatus) {
	c.polls++
	if c.usage == nil {
		return nil, nil, model.SourceStatus{Name: "metrics-server", Status: model.SourceUnavailable, Reason: "metrics-server not installed"}
	}
	return c.usage, c.nodeUsage, model.SourceStatus{Name: "metrics-server", Status: model.SourceOK}
}
func (c *cluster) Status() map[string]model.SourceStatus {
	return map[string]model.SourceStatus{"informers": {Name: "informers", Status: model.SourceOK}}
}

func readyNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"zone": "a"}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func runningPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func newManager(rs *reports, c ClusterSource, now *time.Time, events *[]model.Event) *Manager {
	o := Options{
		Interval: 15 * time.Second, StaleIntervals: 3, Thresholds: model.DefaultThresholds(),
		Reports: rs, MetricsServer: true, Store: state.NewStore(state.StoreOptions{}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return *now },
		OnEvents: func(e []model.Event) {
			if events != nil {
				*events = append(*events, e...)
			}
		},
	}
	if c != nil {
		o.Cluster = c
	}
	return New(o)
}

func TestStandalone(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("this-machine", t0)
	m := newManager(rs, nil, &now, nil)

	_, err := m.GetNodeMetrics("this-machine")
	require.ErrorIs(t, err, ErrNoSnapshot)
	assert.Nil(t, m.GetClusterMetrics())

	require.NoError(t, m.Collect(context.Background()))
	n, err := m.GetNodeMetrics("this-machine")
	require.NoError(t, err)
	assert.Equal(t, int64(4000), n.CPUCapacity)
	c := m.GetClusterMetrics()
	require.NotNil(t, c)
	assert.Equal(t, 1, c.TotalNodes)
	assert.Equal(t, model.SourceUnavailable, c.Sources["kubernetes"].Status)
	assert.Contains(t, c.Sources["kubernetes"].Reason, "standalone")

	_, err = m.GetNodeMetrics("nope")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = m.GetPodMetrics("default", "nope")
	require.ErrorIs(t, err, ErrNotFound)
	assert.NotNil(t, m.GetLatestSnapshot())
}

func TestClusterAndMetricsServerPolledOncePerInterval(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("node-1", t0)
	c := &cluster{
		nodes: []*corev1.Node{readyNode("node-1")},
		pods:  []*corev1.Pod{runningPod("default", "web", "node-1")},
		usage: map[string]state.Usage{"default/web": {CPU: 250, Memory: 128 << 20, Timestamp: t0}},
	}
	m := newManager(rs, c, &now, nil)
	require.NoError(t, m.Collect(context.Background()))
	p, err := m.GetPodMetrics("default", "web")
	require.NoError(t, err)
	assert.Equal(t, int64(250), p.CPUUsage)
	assert.Equal(t, "metrics-server", p.UsageSource)
	assert.InDelta(t, 50.0, p.CPUUsageRate, 0.001, "250m of a 500m limit")
	assert.Equal(t, model.SourceOK, m.GetClusterMetrics().Sources["metrics-server"].Status)

	now = t0.Add(5 * time.Second)
	require.NoError(t, m.Collect(context.Background()))
	assert.Equal(t, 1, c.polls, "a rebuild within the interval reuses the last poll")
	now = t0.Add(15 * time.Second)
	require.NoError(t, m.Collect(context.Background()))
	assert.Equal(t, 2, c.polls)
}

// TestSkipUsage: with metrics.enable_pod or enable_node off, metrics-server's
// usage of that kind stays out of the snapshot; the other kind is kept.
func TestSkipUsage(t *testing.T) {
	tests := []struct {
		name          string
		skipPod       bool
		skipNode      bool
		wantPodCPU    int64
		wantNodeUsage bool
	}{
		{name: "both kept", wantPodCPU: 250, wantNodeUsage: true},
		{name: "pods skipped", skipPod: true, wantNodeUsage: true},
		{name: "nodes skipped", skipNode: true, wantPodCPU: 250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			rs := &reports{m: map[string]state.ReportEntry{}}
			c := &cluster{
				nodes:     []*corev1.Node{readyNode("node-1")},
				pods:      []*corev1.Pod{runningPod("default", "web", "node-1")},
				usage:     map[string]state.Usage{"default/web": {CPU: 250, Memory: 128 << 20, Timestamp: t0}},
				nodeUsage: map[string]state.Usage{"node-1": {CPU: 1500, Memory: 1 << 30, Timestamp: t0}},
			}
			m := newManager(rs, c, &now, nil)
			m.o.SkipPodUsage, m.o.SkipNodeUsage = tt.skipPod, tt.skipNode
			require.NoError(t, m.Collect(context.Background()))
			p, err := m.GetPodMetrics("default", "web")
			require.NoError(t, err)
			assert.Equal(t, tt.wantPodCPU, p.CPUUsage)
			n, err := m.GetNodeMetrics("node-1")
			require.NoError(t, err)
			assert.Equal(t, tt.wantNodeUsage, n.CPUUsage == 1500, "node usage %d", n.CPUUsage)
		})
	}
}

// TestReadyAfterFirstCompleteBuild: the store is not ready while the
// cluster still waits (its reason is served), and ready from the first
// snapshot built after it stopped waiting, not before.
func TestReadyAfterFirstCompleteBuild(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("node-1", t0)
	c := &cluster{waiting: "connecting to the API server https://10.96.0.1:443: connection refused"}
	m := newManager(rs, c, &now, nil)
	ok, reason := m.o.Store.Ready()
	assert.False(t, ok)
	assert.Equal(t, state.NoSnapshotReason, reason)

	require.NoError(t, m.Collect(context.Background()))
	ok, reason = m.o.Store.Ready()
	assert.False(t, ok, "a snapshot of agents alone while the cluster connects")
	assert.Equal(t, c.waiting, reason)
	assert.NotContains(t, m.GetClusterMetrics().Sources, "kubernetes", "connecting is not standalone")

	c.waiting = "informers not synced: pods"
	require.NoError(t, m.Collect(context.Background()))
	_, reason = m.o.Store.Ready()
	assert.Equal(t, "informers not synced: pods", reason)

	c.waiting = ""
	c.nodes = []*corev1.Node{readyNode("node-1")}
	ok, _ = m.o.Store.Ready()
	assert.False(t, ok, "ready only once a build used the complete inputs")
	require.NoError(t, m.Collect(context.Background()))
	ok, reason = m.o.Store.Ready()
	assert.True(t, ok)
	assert.Empty(t, reason)
}

func TestStaleNodeEvent(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("node-1", t0)
	var events []model.Event
	m := newManager(rs, nil, &now, &events)
	require.NoError(t, m.Collect(context.Background()))
	now = t0.Add(46 * time.Second) // three 15 s intervals missed
	require.NoError(t, m.Collect(context.Background()))
	n, err := m.GetNodeMetrics("node-1")
	require.NoError(t, err)
	assert.True(t, n.Stale)
	var types []model.EventType
	for _, e := range events {
		types = append(types, e.Type)
	}
	assert.Contains(t, types, model.EventNodeStale)

	rs.put("node-1", now)
	require.NoError(t, m.Collect(context.Background()))
	types = types[:0]
	for _, e := range events {
		types = append(types, e.Type)
	}
	assert.Contains(t, types, model.EventNodeRecovered)
}

func TestStartStop(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	m := newManager(rs, nil, &now, nil)
	done := make(chan error, 1)
	go func() { done <- m.Start(context.Background()) }()
	require.Eventually(t, func() bool { return m.GetLatestSnapshot() != nil }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, m.Stop())
	require.NoError(t, m.Stop())
	require.NoError(t, <-done)
	assert.True(t, errors.Is(m.Start(context.Background()), ErrStopped))
}

// vmSource is an in-memory VMSource.
type vmSource struct{ events []model.Event }

func (v *vmSource) VMs([]*corev1.Pod, map[string]state.Usage, map[string]state.ReportEntry, time.Time) ([]*model.VMMetrics, []model.Event) {
	vm := &model.VMMetrics{ID: "u1", Name: "db", Namespace: "vms", Status: "Running", CPU: 2, Memory: "4Gi",
		Detail: &model.VMDetail{AllocatedCPU: 2000, AllocatedMemory: 4 << 30}}
	return []*model.VMMetrics{vm}, v.events
}
func (v *vmSource) Status() map[string]model.SourceStatus {
	return map[string]model.SourceStatus{"vm:kubevirt": {Name: "vm:kubevirt", Status: model.SourceOK}}
}

func TestVMsInSnapshotAndEvents(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	var events []model.Event
	m := newManager(rs, &cluster{}, &now, &events)
	m.o.VMs = &vmSource{events: []model.Event{{Type: model.EventVMStarted, Namespace: "vms", Name: "db"}}}
	require.NoError(t, m.Collect(context.Background()))
	snap := m.GetLatestSnapshot()
	require.Len(t, snap.VMs, 1)
	assert.Equal(t, 1, snap.ClusterMetrics.TotalVMs)
	assert.Equal(t, model.SourceOK, snap.ClusterMetrics.Sources["vm:kubevirt"].Status)
	require.Len(t, events, 1)
	assert.Equal(t, model.EventVMStarted, events[0].Type)
}

func TestForgetSilentNodesWithoutObject(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("gone", t0)
	rs.put("node-1", t0)
	m := newManager(rs, &cluster{nodes: []*corev1.Node{readyNode("node-1")}}, &now, nil)
	m.o.ForgetAfter = 5 * time.Minute
	require.NoError(t, m.Collect(context.Background()))
	_, err := m.GetNodeMetrics("gone")
	require.ErrorIs(t, err, ErrNotFound, "no Node object: held apart, not in the snapshot")
	assert.Contains(t, rs.Latest(), "gone", "silent for less than ForgetAfter: kept")

	now = t0.Add(6 * time.Minute)
	require.NoError(t, m.Collect(context.Background()))
	_, err = m.GetNodeMetrics("gone")
	require.ErrorIs(t, err, ErrNotFound)
	assert.NotContains(t, rs.Latest(), "gone", "silent for ForgetAfter: forgotten")
	n, err := m.GetNodeMetrics("node-1")
	require.NoError(t, err, "a node with a Node object keeps its last report")
	assert.True(t, n.Stale)
	assert.Contains(t, rs.Latest(), "node-1")
}

// A flood of invented names that fall silent costs one event and one log
// line per build, not one per name. Standalone, where no Node objects hold
// such names apart, they do enter snapshots and go stale.
func TestInventedNodesLeaveQuietly(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("node-1", t0)
	for i := range 1000 {
		rs.put(fmt.Sprintf("invented-%04d", i), t0)
	}
	var events []model.Event
	var logs bytes.Buffer
	m := newManager(rs, nil, &now, &events)
	m.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	m.o.ForgetAfter = 5 * time.Minute
	require.NoError(t, m.Collect(context.Background()))

	// node-1 keeps reporting; the invented names go silent.
	now = t0.Add(time.Minute)
	rs.put("node-1", now)
	require.NoError(t, m.Collect(context.Background()))
	stale := eventsOf(events, model.EventNodeStale)
	require.Len(t, stale, 1, "one summary event")
	assert.Equal(t, "1000", stale[0].Details["count"])
	assert.Contains(t, stale[0].Message, "1000 nodes are stale: invented-0000, invented-0001")

	now = t0.Add(6 * time.Minute)
	rs.put("node-1", now)
	require.NoError(t, m.Collect(context.Background()))
	assert.Equal(t, []string{"node-1"}, slices.Collect(maps.Keys(rs.Latest())))
	assert.Equal(t, 1, strings.Count(logs.String(), "forgot nodes"), "one log line")
	assert.Contains(t, logs.String(), "count=1000")
	assert.Less(t, logs.Len(), 1024)
}

// In cluster mode the ingester learns which names are real, and invented
// names, held apart, never reach a snapshot: no stale events at all, and
// they are forgotten in one log line.
func TestInventedNodesInClusterMode(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("node-1", t0)
	for i := range 1000 {
		rs.put(fmt.Sprintf("invented-%04d", i), t0)
	}
	var events []model.Event
	var logs bytes.Buffer
	m := newManager(rs, &cluster{nodes: []*corev1.Node{readyNode("node-1")}}, &now, &events)
	m.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	m.o.ForgetAfter = 5 * time.Minute
	require.NoError(t, m.Collect(context.Background()))
	assert.Equal(t, map[string]bool{"node-1": true}, rs.cluster, "the ingester learns which names are real")

	now = t0.Add(time.Minute)
	rs.put("node-1", now)
	require.NoError(t, m.Collect(context.Background()))
	assert.Empty(t, eventsOf(events, model.EventNodeStale), "held-apart names never go stale")

	now = t0.Add(6 * time.Minute)
	rs.put("node-1", now)
	require.NoError(t, m.Collect(context.Background()))
	assert.Equal(t, []string{"node-1"}, slices.Collect(maps.Keys(rs.Latest())))
	assert.Equal(t, 1, strings.Count(logs.String(), "forgot nodes"), "one log line")
}

func eventsOf(events []model.Event, typ model.EventType) []model.Event {
	var out []model.Event
	for _, e := range events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// In cluster mode a report naming a node that has no Node object stays out
// of snapshots, history and totals until the Node exists; how many are
// held is bounded, the oldest forgotten first.
func TestReportsOfUnknownNodesAreHeldApart(t *testing.T) {
	now := t0
	rs := &reports{m: map[string]state.ReportEntry{}}
	rs.put("node-1", t0)
	rs.put("forged", t0)
	c := &cluster{nodes: []*corev1.Node{readyNode("node-1")}}
	m := newManager(rs, c, &now, nil)
	m.o.Store = state.NewStore(state.StoreOptions{History: state.NewHistory(time.Hour, 100)})
	require.NoError(t, m.Collect(context.Background()))
	snap := m.GetLatestSnapshot()
	assert.Len(t, snap.NodeMetrics, 1)
	assert.NotContains(t, snap.NodeMetrics, "forged")
	assert.Equal(t, 1, snap.ClusterMetrics.TotalNodes)
	assert.Equal(t, int64(4000), snap.ClusterMetrics.TotalCPU, "the held report adds nothing")
	hist, _ := m.o.Store.NodeHistory("forged")
	assert.Empty(t, hist, "no history for a held report")

	// The Node appears: the held report enters.
	c.nodes = append(c.nodes, readyNode("forged"))
	require.NoError(t, m.Collect(context.Background()))
	n, err := m.GetNodeMetrics("forged")
	require.NoError(t, err)
	assert.Equal(t, "agent", n.UsageSource)
	hist, _ = m.o.Store.NodeHistory("forged")
	assert.NotEmpty(t, hist)

	// Bounded: the oldest beyond MaxHeldReports are forgotten.
	c.nodes = c.nodes[:1]
	for i := range MaxHeldReports + 3 {
		rs.put(fmt.Sprintf("fake-%04d", i), t0.Add(time.Duration(i)*time.Second))
	}
	require.NoError(t, m.Collect(context.Background()))
	assert.Len(t, rs.Latest(), 1+MaxHeldReports, "node-1 and the newest held ones")
	assert.NotContains(t, rs.Latest(), "fake-0000")
	assert.Contains(t, rs.Latest(), fmt.Sprintf("fake-%04d", MaxHeldReports+2))

	// Standalone mode has no Node objects to check against: nothing held.
	rs2 := &reports{m: map[string]state.ReportEntry{}}
	rs2.put("laptop", t0)
	m2 := newManager(rs2, nil, &now, nil)
	require.NoError(t, m2.Collect(context.Background()))
	_, err = m2.GetNodeMetrics("laptop")
	require.NoError(t, err)
}

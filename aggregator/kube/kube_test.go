package kube

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const waitFor, tick = 5 * time.Second, 5 * time.Millisecond

var (
	podMetricsGVR  = metricsv1beta1.SchemeGroupVersion.WithResource("pods")
	nodeMetricsGVR = metricsv1beta1.SchemeGroupVersion.WithResource("nodes")
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		// What the cache must drop.
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}},
		Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"big":"blob"}`, "unused": "x", "kubevirt.io/domain": "vm-1"},
	}}
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace:     ns,
		Name:          name,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}},
	}}
}

// watchTracker records which watches the informers opened. The fake
// clientset has no resource versions, so objects created between an
// informer's list and its watch are never seen; tests wait for the watches
// before they change anything.
type watchTracker struct {
	mu   sync.Mutex
	open map[string]bool // "resource/namespace"
}

func trackWatches(c *fake.Clientset) *watchTracker {
	w := &watchTracker{open: map[string]bool{}}
	c.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w.mu.Lock()
		w.open[a.GetResource().Resource+"/"+a.GetNamespace()] = true
		w.mu.Unlock()
		return false, nil, nil
	})
	return w
}

func (w *watchTracker) wait(t *testing.T, keys ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, k := range keys {
			if !w.open[k] {
				return false
			}
		}
		return true
	}, waitFor, tick, "watches %v", keys)
}

func startCluster(t *testing.T, c *Cluster, namespaces []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		c.Close()
	})
	require.NoError(t, c.Start(ctx, namespaces))
}

func names[T metav1.Object](objs []T) []string {
	var out []string
	for _, o := range objs {
		if o.GetNamespace() != "" {
			out = append(out, o.GetNamespace()+"/"+o.GetName())
		} else {
			out = append(out, o.GetName())
		}
	}
	return out
}

func TestInformersSeeAddsAndDeletes(t *testing.T) {
	kc := fake.NewClientset(node("n1"), pod("default", "p1"))
	w := trackWatches(kc)
	c := New(kc, nil, discard())
	startCluster(t, c, nil)
	w.wait(t, "nodes/", "pods/")

	assert.ElementsMatch(t, []string{"n1"}, names(c.Nodes()))
	assert.ElementsMatch(t, []string{"default/p1"}, names(c.Pods()))

	t.Run("cache objects lose managedFields and last-applied", func(t *testing.T) {
		n := c.Nodes()[0]
		assert.Nil(t, n.ManagedFields)
		assert.Equal(t, map[string]string{"kubevirt.io/domain": "vm-1"}, n.Annotations, "only the annotations the aggregator reads")
		assert.Nil(t, c.Pods()[0].ManagedFields)
	})

	ctx := context.Background()
	t.Run("added", func(t *testing.T) {
		_, err := kc.CoreV1().Nodes().Create(ctx, node("ip-10-0-1-7.ec2.internal"), metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = kc.CoreV1().Pods("kube-system").Create(ctx, pod("kube-system", "p2"), metav1.CreateOptions{})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return len(c.Nodes()) == 2 && len(c.Pods()) == 2 }, waitFor, tick)
		assert.ElementsMatch(t, []string{"n1", "ip-10-0-1-7.ec2.internal"}, names(c.Nodes()))
		assert.ElementsMatch(t, []string{"default/p1", "kube-system/p2"}, names(c.Pods()))
		assert.Nil(t, c.Pods()[0].ManagedFields)
	})
	t.Run("deleted", func(t *testing.T) {
		require.NoError(t, kc.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}))
		require.NoError(t, kc.CoreV1().Pods("default").Delete(ctx, "p1", metav1.DeleteOptions{}))
		require.Eventually(t, func() bool { return len(c.Nodes()) == 1 && len(c.Pods()) == 1 }, waitFor, tick)
		assert.ElementsMatch(t, []string{"ip-10-0-1-7.ec2.internal"}, names(c.Nodes()))
		assert.ElementsMatch(t, []string{"kube-system/p2"}, names(c.Pods()))
	})

	st := c.Status()
	assert.Equal(t, model.SourceOK, st[SourceNodes].Status)
	assert.Equal(t, model.SourceOK, st[SourcePods].Status)
	assert.NotContains(t, st, SourceMetricsServer, "no poll yet")
	assert.False(t, st[SourceNodes].LastSuccess.IsZero())

	// Listing never goes back to the API server: the informers listed once.
	lists := 0
	for _, a := range kc.Actions() {
		if a.GetVerb() == "list" {
			lists++
		}
	}
	assert.Equal(t, 2, lists, "one list per informer")
}

func TestNamespaceFiltering(t *testing.T) {
	kc := fake.NewClientset(pod("a", "pa"), pod("b", "pb"), pod("c", "pc"), node("n1"))
	w := trackWatches(kc)
	c := New(kc, nil, discard())
	startCluster(t, c, []string{"a", "b"})
	w.wait(t, "nodes/", "pods/a", "pods/b")

	assert.ElementsMatch(t, []string{"a/pa", "b/pb"}, names(c.Pods()))
	assert.ElementsMatch(t, []string{"n1"}, names(c.Nodes()))

	ctx := context.Background()
	_, err := kc.CoreV1().Pods("c").Create(ctx, pod("c", "pc2"), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kc.CoreV1().Pods("a").Create(ctx, pod("a", "pa2"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(c.Pods()) == 3 }, waitFor, tick)
	// Namespace c has no informer at all, so its pods can never appear.
	assert.ElementsMatch(t, []string{"a/pa", "a/pa2", "b/pb"}, names(c.Pods()))

	for _, a := range kc.Actions() {
		if a.GetResource().Resource == "pods" && (a.GetVerb() == "list" || a.GetVerb() == "watch") {
			assert.Contains(t, []string{"a", "b"}, a.GetNamespace(), "%s pods in %q", a.GetVerb(), a.GetNamespace())
		}
	}
	assert.Equal(t, model.SourceOK, c.Status()[SourcePods].Status)
}

func TestStartNotSynced(t *testing.T) {
	kc := fake.NewClientset()
	kc.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New("RBAC: no list on nodes"))
	})
	c := New(kc, nil, discard())
	c.syncTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); c.Close() }()

	err := c.Start(ctx, nil)
	require.ErrorIs(t, err, ErrNotSynced)
	require.ErrorIs(t, c.Start(ctx, nil), ErrStarted)
	ok, reason := c.Ready()
	assert.False(t, ok)
	assert.Equal(t, "informers not synced: nodes", reason)

	require.Eventually(t, func() bool { return c.Status()[SourceNodes].Status == model.SourceFailed }, waitFor, tick)
	st := c.Status()
	assert.Contains(t, st[SourceNodes].Reason, "RBAC: no list on nodes")
	assert.Equal(t, model.SourceOK, st[SourcePods].Status, "pods are unaffected")
}

func TestReadyNamesUnsyncedNamespaces(t *testing.T) {
	kc := fake.NewClientset()
	kc.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "b" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("RBAC: no list on pods in b"))
		}
		return false, nil, nil
	})
	c := New(kc, nil, discard())
	c.syncTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); c.Close() }()
	require.ErrorIs(t, c.Start(ctx, []string{"a", "b"}), ErrNotSynced)
	ok, reason := c.Ready()
	assert.False(t, ok)
	assert.Equal(t, "informers not synced: pods in namespace b", reason)
}

// TestStartWaitsForAPIServer: an API server that does not answer at first
// is retried with backoff, one warning logged, Ready and Status say what is
// awaited, metrics-server is not asked meanwhile; once it answers the
// informers start and sync.
func TestStartWaitsForAPIServer(t *testing.T) {
	kc := fake.NewClientset(node("n1"), pod("default", "p1"))
	var up atomic.Bool
	var asked atomic.Int32
	kc.PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
		asked.Add(1)
		if up.Load() {
			return false, nil, nil
		}
		return true, nil, errors.New("dial tcp 10.96.0.1:443: connect: connection refused")
	})
	mc := metricsfake.NewSimpleClientset()
	logs := &syncBuffer{}
	c := New(kc, mc, slog.New(slog.NewTextHandler(logs, nil)))
	c.connectBackoff = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); c.Close() }()
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx, nil) }()

	require.Eventually(t, func() bool { return asked.Load() >= 4 }, waitFor, tick)
	ok, reason := c.Ready()
	assert.False(t, ok)
	assert.Contains(t, reason, "connecting to the API server")
	assert.Contains(t, reason, "connection refused")
	st := c.Status()
	assert.Equal(t, model.SourceFailed, st[SourceNodes].Status)
	assert.Contains(t, st[SourceNodes].Reason, "connecting to the API server")
	assert.Nil(t, c.Nodes())
	_, _, ms := c.PollUsage(ctx)
	assert.Equal(t, model.SourceUnavailable, ms.Status)
	assert.Equal(t, reasonNoAPIServer, ms.Reason)
	assert.Empty(t, mc.Actions(), "metrics-server is not asked while the API server is away")

	up.Store(true)
	require.NoError(t, <-done)
	ok, reason = c.Ready()
	assert.True(t, ok)
	assert.Empty(t, reason)
	assert.ElementsMatch(t, []string{"n1"}, names(c.Nodes()))
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "API server not answering"), "one warning per connectLogEvery, not one per attempt:\n%s", out)
	assert.Contains(t, out, "connected to Kubernetes")
}

func TestCloseWhileWaitingForAPIServer(t *testing.T) {
	kc := fake.NewClientset()
	kc.PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	c := New(kc, nil, discard())
	done := make(chan error, 1)
	go func() { done <- c.Start(context.Background(), nil) }()
	require.Eventually(t, func() bool {
		_, reason := c.Ready()
		return strings.Contains(reason, "connection refused")
	}, waitFor, tick)
	c.Close()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Nil(t, c.Nodes(), "no informers after Close")
}

// syncBuffer collects log output written from other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStatusBeforeStart(t *testing.T) {
	c := New(fake.NewClientset(), nil, discard())
	assert.Nil(t, c.Nodes())
	assert.Nil(t, c.Pods())
	st := c.Status()
	assert.Equal(t, model.SourceFailed, st[SourceNodes].Status)
	assert.Equal(t, "informers not started", st[SourcePods].Reason)
	c.Close() // harmless before Start
}

func TestInformerStateWindow(t *testing.T) {
	synced := false
	s := &informerState{name: SourceNodes, namespace: "ml", hasSynced: func() bool { return synced }}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	tests := []struct {
		name   string
		setup  func()
		at     time.Time
		want   model.SourceState
		reason string
	}{
		{"not synced", func() {}, t0, model.SourceFailed, "cache not synced yet in namespace ml"},
		{"synced", func() { synced = true; s.synced(t0, 1500*time.Millisecond) }, t0, model.SourceOK, ""},
		{"watch error", func() { s.failed(t0.Add(time.Minute), errors.New("connection refused")) }, t0.Add(time.Minute), model.SourceFailed, "connection refused"},
		{"still recent", func() {}, t0.Add(time.Minute + watchErrorWindow - time.Second), model.SourceFailed, "connection refused"},
		{"recovered", func() {}, t0.Add(time.Minute + watchErrorWindow), model.SourceOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			st := s.status(tt.at)
			assert.Equal(t, tt.want, st.Status)
			if tt.reason != "" {
				assert.Contains(t, st.Reason, tt.reason)
			}
			if st.Status == model.SourceOK {
				assert.Equal(t, 1500.0, st.DurationMs)
				assert.Equal(t, tt.at, st.LastSuccess)
			}
		})
	}
}

func TestStripForCache(t *testing.T) {
	bare := pod("default", "p")
	bare.ManagedFields = nil
	tests := []struct {
		name     string
		in, want any
	}{
		{"tombstone", cache.DeletedFinalStateUnknown{Key: "default/p", Obj: pod("default", "p")}, cache.DeletedFinalStateUnknown{Key: "default/p", Obj: pod("default", "p")}},
		{"not an object", "x", "x"},
		{"pod without annotations", pod("default", "p"), bare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := stripForCache(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, out)
		})
	}
}

// loadFixtures puts recorded metrics-server answers into the metrics fake.
// They go through Tracker().Create with the API's real resource names:
// objects given to the constructor are filed under a guessed resource
// ("podmetricses") that the client never lists.
func loadFixtures(t testing.TB, mc *metricsfake.Clientset) {
	t.Helper()
	var pods metricsv1beta1.PodMetricsList
	readJSON(t, "testdata/podmetrics.json", &pods)
	for i := range pods.Items {
		require.NoError(t, mc.Tracker().Create(podMetricsGVR, &pods.Items[i], pods.Items[i].Namespace))
	}
	var nodes metricsv1beta1.NodeMetricsList
	readJSON(t, "testdata/nodemetrics.json", &nodes)
	for i := range nodes.Items {
		require.NoError(t, mc.Tracker().Create(nodeMetricsGVR, &nodes.Items[i], ""))
	}
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// serveMetricsAPI makes discovery report metrics.k8s.io/v1beta1.
func serveMetricsAPI(mc *metricsfake.Clientset) {
	mc.Resources = []*metav1.APIResourceList{{
		GroupVersion: metricsv1beta1.SchemeGroupVersion.String(),
		APIResources: []metav1.APIResource{
			{Name: "nodes", Kind: "NodeMetrics", Verbs: metav1.Verbs{"get", "list"}},
			{Name: "pods", Kind: "PodMetrics", Namespaced: true, Verbs: metav1.Verbs{"get", "list"}},
		},
	}}
}

func TestPollUsageFromRecordedAnswers(t *testing.T) {
	mc := metricsfake.NewSimpleClientset()
	serveMetricsAPI(mc)
	loadFixtures(t, mc)
	c := New(fake.NewClientset(), mc, discard())

	pods, nodes, st := c.PollUsage(context.Background())
	require.Equal(t, model.SourceOK, st.Status, st.Reason)
	assert.Equal(t, SourceMetricsServer, st.Name)
	assert.False(t, st.LastSuccess.IsZero())
	require.Len(t, pods, 3)
	require.Len(t, nodes, 2)

	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	const ki, mi, gi = 1 << 10, 1 << 20, 1 << 30
	podTests := []struct {
		key        string
		cpu, mem   int64
		at         time.Time
		containers map[string][2]int64
	}{
		{"kube-system/coredns-5d78c9869d-4xk2p", 3, 17212 * ki, ts("2026-03-01T11:59:52Z"), map[string][2]int64{"coredns": {3, 17212 * ki}}},
		// 250m + 12.5m rounds once, up, to 263m; 128Mi + 24Mi.
		{"default/web-0", 263, 152 * mi, ts("2026-03-01T11:59:55Z"), map[string][2]int64{"app": {250, 128 * mi}, "istio-proxy": {13, 24 * mi}}},
		{"ml/trainer-0", 3000, 12 * gi, ts("2026-03-01T11:59:51Z"), map[string][2]int64{"main": {3000, 12 * gi}}},
	}
	for _, tt := range podTests {
		t.Run(tt.key, func(t *testing.T) {
			u, ok := pods[tt.key]
			require.True(t, ok)
			assert.Equal(t, tt.cpu, u.CPU, "millicores")
			assert.Equal(t, tt.mem, u.Memory, "bytes")
			assert.True(t, u.Timestamp.Equal(tt.at))
			require.Len(t, u.Containers, len(tt.containers))
			for name, want := range tt.containers {
				assert.Equal(t, want[0], u.Containers[name].CPU, name)
				assert.Equal(t, want[1], u.Containers[name].Memory, name)
			}
		})
	}
	nodeTests := []struct {
		name     string
		cpu, mem int64
	}{
		{"ip-10-0-1-7.ec2.internal", 1504, 6017572 * ki},
		{"node-b", 250, 1 * gi},
	}
	for _, tt := range nodeTests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := nodes[tt.name]
			require.True(t, ok)
			assert.Equal(t, tt.cpu, u.CPU)
			assert.Equal(t, tt.mem, u.Memory)
			assert.Nil(t, u.Containers)
		})
	}
	assert.Equal(t, st, c.Status()[SourceMetricsServer])
}

func TestPollUsageWatchedNamespaces(t *testing.T) {
	mc := metricsfake.NewSimpleClientset()
	serveMetricsAPI(mc)
	loadFixtures(t, mc)
	c := New(fake.NewClientset(), mc, discard())
	startCluster(t, c, []string{"kube-system", "ml"})

	pods, nodes, st := c.PollUsage(context.Background())
	require.Equal(t, model.SourceOK, st.Status, st.Reason)
	assert.ElementsMatch(t, []string{"kube-system/coredns-5d78c9869d-4xk2p", "ml/trainer-0"}, keys(pods))
	assert.Len(t, nodes, 2, "nodes are cluster-wide")

	var listed []string
	for _, a := range mc.Actions() {
		if a.GetVerb() == "list" && a.GetResource() == podMetricsGVR {
			listed = append(listed, a.GetNamespace())
		}
	}
	assert.ElementsMatch(t, []string{"kube-system", "ml"}, listed)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestPollUsageUnavailableOrFailed(t *testing.T) {
	notFound := apierrors.NewNotFound(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "")
	unavailable := apierrors.NewServiceUnavailable("the server is currently unable to handle the request")
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "", errors.New("no RBAC"))

	failOn := func(verb, resource string, err error) func(*metricsfake.Clientset) {
		return func(mc *metricsfake.Clientset) {
			serveMetricsAPI(mc)
			mc.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err })
		}
	}
	tests := []struct {
		name     string
		setup    func(*metricsfake.Clientset)
		disabled bool
		want     model.SourceState
		reason   string
		noLists  bool
	}{
		{name: "discovery says absent", setup: func(*metricsfake.Clientset) {}, want: model.SourceUnavailable, reason: reasonNotInstalled, noLists: true},
		{name: "group without node metrics", setup: func(mc *metricsfake.Clientset) {
			serveMetricsAPI(mc)
			mc.Resources[0].APIResources = mc.Resources[0].APIResources[1:]
		}, want: model.SourceUnavailable, reason: reasonNotInstalled, noLists: true},
		{name: "discovery 503", setup: failOn("get", "resource", unavailable), want: model.SourceUnavailable, reason: reasonNotAnswering, noLists: true},
		{name: "pods list NotFound", setup: failOn("list", "pods", notFound), want: model.SourceUnavailable, reason: reasonNotInstalled},
		{name: "nodes list 503", setup: failOn("list", "nodes", unavailable), want: model.SourceUnavailable, reason: reasonNotAnswering},
		{name: "forbidden", setup: failOn("list", "pods", forbidden), want: model.SourceFailed, reason: "check the aggregator's RBAC"},
		{name: "deadline", setup: failOn("list", "nodes", context.DeadlineExceeded), want: model.SourceFailed, reason: "did not answer within"},
		{name: "other error", setup: failOn("list", "pods", errors.New("stream error: INTERNAL_ERROR")), want: model.SourceFailed, reason: "list pod metrics: stream error: INTERNAL_ERROR"},
		{name: "discovery fails oddly, lists decide", setup: func(mc *metricsfake.Clientset) {
			mc.PrependReactor("get", "resource", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, errors.New("proxy says no") })
		}, want: model.SourceOK},
		{name: "disabled", disabled: true, want: model.SourceUnavailable, reason: reasonDisabled, noLists: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := metricsfake.NewSimpleClientset()
			loadFixtures(t, mc)
			c := New(fake.NewClientset(), mc, discard())
			if tt.disabled {
				c = New(fake.NewClientset(), nil, discard())
			} else {
				tt.setup(mc)
			}

			pods, nodes, st := c.PollUsage(context.Background())
			assert.Equal(t, tt.want, st.Status, st.Reason)
			assert.Equal(t, SourceMetricsServer, st.Name)
			if tt.reason != "" {
				assert.Contains(t, st.Reason, tt.reason)
			}
			if tt.want == model.SourceOK {
				assert.Len(t, pods, 3)
				return
			}
			assert.Nil(t, pods, "no partial usage")
			assert.Nil(t, nodes)
			assert.True(t, st.LastSuccess.IsZero())
			assert.Equal(t, st, c.Status()[SourceMetricsServer])
			if tt.noLists {
				for _, a := range mc.Actions() {
					assert.NotEqual(t, "list", a.GetVerb())
				}
			}
		})
	}
}

func TestPollUsageNoticesInstallAndRemoval(t *testing.T) {
	mc := metricsfake.NewSimpleClientset()
	loadFixtures(t, mc)
	c := New(fake.NewClientset(), mc, discard())
	ctx := context.Background()

	_, _, st := c.PollUsage(ctx)
	require.Equal(t, model.SourceUnavailable, st.Status)

	serveMetricsAPI(mc) // metrics-server installed
	pods, _, st := c.PollUsage(ctx)
	require.Equal(t, model.SourceOK, st.Status, st.Reason)
	require.Len(t, pods, 3)
	okAt := st.LastSuccess

	// Served now: discovery is not asked again on every poll.
	before := len(mc.Actions())
	_, _, st = c.PollUsage(ctx)
	require.Equal(t, model.SourceOK, st.Status)
	for _, a := range mc.Actions()[before:] {
		assert.Equal(t, "list", a.GetVerb())
	}

	// Uninstalled: the list answers NotFound, and discovery is asked again.
	mc.Resources = nil
	mc.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "")
	})
	pods, _, st = c.PollUsage(ctx)
	assert.Equal(t, model.SourceUnavailable, st.Status)
	assert.Nil(t, pods)
	assert.False(t, st.LastSuccess.Before(okAt), "last success is kept")
	before = len(mc.Actions())
	_, _, _ = c.PollUsage(ctx)
	require.Len(t, mc.Actions()[before:], 1)
	assert.Equal(t, "get", mc.Actions()[before].GetVerb(), "discovery only")
}

func TestConnect(t *testing.T) {
	good := fakeAPIServer(t, true)
	bad := fakeAPIServer(t, false)

	// Never in a cluster here, whatever the machine running the tests is.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	home := t.TempDir()
	t.Setenv("HOME", home)

	dir := t.TempDir()
	goodCfg := writeKubeconfig(t, dir, "good", good)
	badCfg := writeKubeconfig(t, dir, "bad", bad)
	emptyCfg := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(emptyCfg, []byte("apiVersion: v1\nkind: Config\n"), 0o600))

	tests := []struct {
		name       string
		flag       string
		env        string
		host       string
		standalone bool
		fails      bool
		reason     string
	}{
		{name: "nothing anywhere", env: filepath.Join(dir, "missing"), standalone: true, reason: "not in a cluster, and no kubeconfig at " + filepath.Join(dir, "missing")},
		{name: "flag", flag: goodCfg, host: good},
		{name: "KUBECONFIG", env: goodCfg, host: good},
		{name: "flag wins over KUBECONFIG", flag: goodCfg, env: badCfg, host: good},
		// Configured is not standalone: Start waits for the server.
		{name: "server does not answer", flag: badCfg, host: bad},
		{name: "kubeconfig names no cluster", env: emptyCfg, standalone: true, reason: "names no cluster"},
		// How docs tell a user with a kubeconfig to run standalone.
		{name: "KUBECONFIG=/dev/null", env: os.DevNull, standalone: true, reason: "names no cluster"},
		{name: "flag names a missing file", flag: filepath.Join(dir, "typo"), fails: true, reason: "read kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tt.env)
			c, err := Connect(tt.flag, discard())
			switch {
			case tt.standalone:
				require.ErrorIs(t, err, ErrStandalone)
				assert.Contains(t, err.Error(), tt.reason)
				assert.Nil(t, c)
			case tt.fails:
				require.Error(t, err)
				assert.NotErrorIs(t, err, ErrStandalone)
				assert.Contains(t, err.Error(), tt.reason)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.host, c.RESTConfig().Host)
				assert.NotNil(t, c.Client())
				assert.Contains(t, c.RESTConfig().UserAgent, "k8smon-aggregator/")
			}
		})
	}
}

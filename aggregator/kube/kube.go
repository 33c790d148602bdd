// Package kube is the aggregator's view of the Kubernetes API: shared
// informers that keep Nodes and Pods in memory (watched, never polled), and
// metrics-server's usage read through metrics.k8s.io once per interval.
// Every part reports its own status, so an absent metrics-server or a
// failing watch marks only its part as unavailable.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Source names, the keys of Status and of PollUsage's status.
const (
	SourceNodes         = "informer-nodes"
	SourcePods          = "informer-pods"
	SourceMetricsServer = "metrics-server"
)

// Timeouts.
const (
	// DiscoveryTimeout bounds each of Start's questions whether the API
	// server answers.
	DiscoveryTimeout = 5 * time.Second
	// connectBackoffMin and connectBackoffMax bound the wait between those
	// questions: it doubles from the first to the second.
	connectBackoffMin = 500 * time.Millisecond
	connectBackoffMax = 5 * time.Second
	// connectLogEvery limits the warnings about an API server that does not
	// answer to one per this period.
	connectLogEvery = 30 * time.Second
	// SyncTimeout bounds Start's wait for the informers' first full list.
	SyncTimeout = 2 * time.Minute
	// UsageTimeout bounds one PollUsage, all its lists together.
	UsageTimeout = 10 * time.Second
	// watchErrorWindow is how long a list or watch error marks an informer
	// failed. The reflector retries with a backoff well below it, so a
	// lasting failure keeps the mark fresh and a recovery clears it.
	watchErrorWindow = 2 * time.Minute
)

// Errors, matched with errors.Is.
var (
	// ErrStandalone means no Kubernetes cluster is configured: no in-cluster
	// service account and no kubeconfig. The aggregator then serves nodes
	// from agent reports alone; the wrapped message says why. A configured
	// API server that does not answer is waited for, not this.
	ErrStandalone = errors.New("kube: no Kubernetes API server, running standalone")
	// ErrNotSynced means the informers' caches did not fill within
	// SyncTimeout. They keep trying; Status tells when they are ready.
	ErrNotSynced = errors.New("kube: informer caches not synced")
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("kube: already started")
)

// Cluster reads one Kubernetes cluster.
type Cluster struct {
	client  kubernetes.Interface
	metrics metricsclient.Interface
	rest    *rest.Config
	logger  *slog.Logger

	// Overridable in tests.
	now             func() time.Time
	syncTimeout     time.Duration
	usageTimeout    time.Duration
	connectBackoff  time.Duration
	connectLogEvery time.Duration

	mu      sync.Mutex
	started bool
	closed  bool
	// connecting is set from Connect or Start until the API server
	// answered; connectErr is the latest failure meanwhile.
	connecting bool
	connectErr error
	cancel     context.CancelFunc
	factories  []informers.SharedInformerFactory
	namespaces []string // nil: all
	nodeLister corelisters.NodeLister
	podListers []corelisters.PodLister
	nodes      *informerState
	pods       []*informerState
	// podHandlers receive the pod informers' notifications (AddPodHandler).
	podHandlers []cache.ResourceEventHandler

	usage usageState
}

// New builds a Cluster on the given clients; metrics may be nil when
// metrics-server is not to be read. Start starts the informers.
func New(client kubernetes.Interface, metrics metricsclient.Interface, logger *slog.Logger) *Cluster {
	return &Cluster{
		client:          client,
		metrics:         metrics,
		logger:          logger.With("source", "kube"),
		now:             time.Now,
		syncTimeout:     SyncTimeout,
		usageTimeout:    UsageTimeout,
		connectBackoff:  connectBackoffMin,
		connectLogEvery: connectLogEvery,
	}
}

// Client is the Kubernetes clientset, for other watchers of the same cluster.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// RESTConfig is the configuration Connect used, for other clients of the
// same cluster (dynamic, for custom resources); nil for a Cluster from New.
func (c *Cluster) RESTConfig() *rest.Config { return c.rest }

// Start waits until the API server answers, retrying with backoff for as
// long as ctx lasts (Ready says so meanwhile), then runs shared informers
// for Nodes and Pods until ctx ends or Close is called, and waits for their
// first full list. Pods are watched in every namespace when namespaces is
// empty, else one informer per namespace, so that RBAC can be limited to
// those namespaces. On ErrNotSynced the informers keep running and fill in
// when the API server answers.
func (c *Cluster) Start(ctx context.Context, namespaces []string) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrStarted
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	c.mu.Unlock()

	if err := c.waitForAPIServer(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("start informers: %w", context.Canceled)
	}

	// No resync: the listers are read on every snapshot and pod handlers
	// see each change as it happens, so a periodic resync would only cost
	// CPU.
	opts := []informers.SharedInformerOption{informers.WithTransform(newCompactor().transform)}
	all := informers.NewSharedInformerFactoryWithOptions(c.client, 0, opts...)
	c.factories = []informers.SharedInformerFactory{all}
	nodeInf := all.Core().V1().Nodes()
	c.nodeLister = nodeInf.Lister()
	c.nodes = c.watch(SourceNodes, "", nodeInf.Informer())

	podFactories := []informers.SharedInformerFactory{all}
	if len(namespaces) > 0 {
		c.namespaces = append([]string(nil), namespaces...)
		podFactories = podFactories[:0]
		for _, ns := range namespaces {
			f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, append(opts, informers.WithNamespace(ns))...)
			c.factories = append(c.factories, f)
			podFactories = append(podFactories, f)
		}
	}
	for i, f := range podFactories {
		ns := ""
		if c.namespaces != nil {
			ns = c.namespaces[i]
		}
		inf := f.Core().V1().Pods()
		c.addPodHandlers(inf.Informer())
		c.podListers = append(c.podListers, inf.Lister())
		c.pods = append(c.pods, c.watch(SourcePods, ns, inf.Informer()))
	}
	factories := c.factories
	c.mu.Unlock()

	start := c.now()
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	syncCtx, cancel := context.WithTimeout(ctx, c.syncTimeout)
	defer cancel()
	var unsynced []string
	for _, f := range factories {
		if err := f.WaitForCacheSyncWithContext(syncCtx).AsError(); err != nil {
			unsynced = append(unsynced, err.Error())
		}
	}
	took := c.now().Sub(start)
	if len(unsynced) > 0 {
		return fmt.Errorf("start informers: %w after %s: %v", ErrNotSynced, took.Round(time.Millisecond), unsynced)
	}
	for _, st := range append([]*informerState{c.nodes}, c.pods...) {
		st.synced(c.now(), took)
	}
	c.logger.Info("informers synced", "nodes", len(c.Nodes()), "pods", len(c.Pods()), "namespaces", namespacesForLog(c.namespaces), "took", took.Round(time.Millisecond))
	return nil
}

// AddPodHandler has h notified of every Pod added, updated or deleted in
// the watched namespaces, with the cache's own objects (not to be
// modified). h runs on the informer's goroutine and must not block. It
// must be called before Start; afterwards it returns ErrStarted.
func (c *Cluster) AddPodHandler(h cache.ResourceEventHandler) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return ErrStarted
	}
	c.podHandlers = append(c.podHandlers, h)
	return nil
}

// addPodHandlers registers the pod handlers on one pod informer; c.mu is held.
func (c *Cluster) addPodHandlers(inf cache.SharedIndexInformer) {
	for _, h := range c.podHandlers {
		if _, err := inf.AddEventHandler(h); err != nil { // only once the informer has stopped
			c.logger.Error("add pod event handler", "error", err)
		}
	}
}

// Close stops Start's wait for the API server or the informers, and waits
// for the informers' goroutines to end.
func (c *Cluster) Close() {
	c.mu.Lock()
	// Under the lock, so Start sees closed before it creates informers.
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
	factories := c.factories
	c.mu.Unlock()
	for _, f := range factories {
		f.Shutdown()
	}
}

// Nodes lists the cached Nodes. The objects are the informer cache's own:
// callers must not modify them. Nil before Start.
func (c *Cluster) Nodes() []*corev1.Node {
	c.mu.Lock()
	l := c.nodeLister
	c.mu.Unlock()
	if l == nil {
		return nil
	}
	nodes, err := l.List(labels.Everything())
	if err != nil { // a lister over an indexer does not fail
		c.logger.Error("list cached nodes", "error", err)
	}
	return nodes
}

// Pods lists the cached Pods of the watched namespaces. The objects are
// the informer cache's own: callers must not modify them. Nil before Start.
func (c *Cluster) Pods() []*corev1.Pod {
	c.mu.Lock()
	listers := c.podListers
	c.mu.Unlock()
	var out []*corev1.Pod
	for _, l := range listers {
		pods, err := l.List(labels.Everything())
		if err != nil {
			c.logger.Error("list cached pods", "error", err)
			continue
		}
		if out == nil {
			out = make([]*corev1.Pod, 0, len(pods))
		}
		out = append(out, pods...)
	}
	return out
}

// Status is the state of the informers and of the latest metrics-server
// poll, keyed by source name.
func (c *Cluster) Status() map[string]model.SourceStatus {
	c.mu.Lock()
	nodes, pods := c.nodes, c.pods
	c.mu.Unlock()
	now := c.now()
	out := make(map[string]model.SourceStatus, 3)
	if nodes == nil {
		reason := "informers not started"
		if ok, why := c.Ready(); !ok {
			reason = why
		}
		out[SourceNodes] = model.SourceStatus{Name: SourceNodes, Status: model.SourceFailed, Reason: reason}
		out[SourcePods] = model.SourceStatus{Name: SourcePods, Status: model.SourceFailed, Reason: reason}
	} else {
		out[SourceNodes] = nodes.status(now)
		out[SourcePods] = mergeStatus(SourcePods, pods, now)
	}
	if st, ok := c.usage.last(); ok {
		out[SourceMetricsServer] = st
	}
	return out
}

// Ready reports whether the cluster's objects are complete: the API server
// answered and every informer has its first full list. reason says what is
// still awaited ("connecting to the API server https://…: …", "informers
// not synced: pods"). Once true it stays true: a later watch failure keeps
// the last lists and shows in Status instead.
func (c *Cluster) Ready() (ok bool, reason string) {
	c.mu.Lock()
	connecting, connectErr, started := c.connecting, c.connectErr, c.started
	nodes, pods, namespaces := c.nodes, c.pods, c.namespaces
	c.mu.Unlock()
	switch {
	case connecting && connectErr != nil:
		return false, fmt.Sprintf("connecting to the API server %s: %v", c.host(), connectErr)
	case connecting:
		return false, "connecting to the API server " + c.host()
	case !started, nodes == nil:
		return false, "informers not started"
	}
	var waiting []string
	if !nodes.hasSynced() {
		waiting = append(waiting, "nodes")
	}
	for i, p := range pods {
		if p.hasSynced() {
			continue
		}
		if namespaces == nil {
			waiting = append(waiting, "pods")
		} else {
			waiting = append(waiting, "pods in namespace "+namespaces[i])
		}
	}
	if len(waiting) > 0 {
		return false, "informers not synced: " + strings.Join(waiting, ", ")
	}
	return true, ""
}

func namespacesForLog(ns []string) any {
	if len(ns) == 0 {
		return "all"
	}
	return ns
}

// watch registers the error handler that feeds an informer's status. It
// replaces client-go's default handler, which only logs through klog.
func (c *Cluster) watch(name, namespace string, inf cache.SharedIndexInformer) *informerState {
	st := &informerState{name: name, namespace: namespace, hasSynced: inf.HasSynced}
	logger := c.logger.With("informer", name)
	if namespace != "" {
		logger = logger.With("namespace", namespace)
	}
	err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		switch {
		case errors.Is(err, io.EOF), apierrors.IsResourceExpired(err), apierrors.IsGone(err):
			// A watch ending or expiring is routine; the reflector relists.
			logger.Debug("watch closed", "error", err)
			return
		}
		st.failed(c.now(), err)
		logger.Warn("list or watch failed; retrying", "error", err)
	})
	if err != nil { // only when the informer already runs, which it cannot here
		c.logger.Error("set watch error handler", "informer", name, "error", err)
	}
	return st
}

// informerState tracks one informer's health between snapshots.
type informerState struct {
	name, namespace string
	hasSynced       func() bool

	mu        sync.Mutex
	syncedAt  time.Time
	syncTook  time.Duration
	lastErr   error
	lastErrAt time.Time
	lastOK    time.Time
}

func (s *informerState) synced(now time.Time, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncedAt, s.syncTook = now, took
}

func (s *informerState) failed(now time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr, s.lastErrAt = err, now
}

func (s *informerState) status(now time.Time) model.SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := model.SourceStatus{Name: s.name, DurationMs: float64(s.syncTook) / float64(time.Millisecond)}
	where := ""
	if s.namespace != "" {
		where = " in namespace " + s.namespace
	}
	switch {
	case s.lastErr != nil && now.Sub(s.lastErrAt) < watchErrorWindow:
		st.Status = model.SourceFailed
		st.Reason = fmt.Sprintf("list or watch%s failed at %s: %v", where, s.lastErrAt.UTC().Format(time.RFC3339), s.lastErr)
	case !s.hasSynced():
		st.Status = model.SourceFailed
		st.Reason = "cache not synced yet" + where
	default:
		st.Status = model.SourceOK
		s.lastOK = now
	}
	st.LastSuccess = s.lastOK
	return st
}

// mergeStatus folds the per-namespace pod informers into one status: the
// first failure wins, and the slowest sync is the duration.
func mergeStatus(name string, states []*informerState, now time.Time) model.SourceStatus {
	out := model.SourceStatus{Name: name, Status: model.SourceOK}
	for i, s := range states {
		st := s.status(now)
		if st.DurationMs > out.DurationMs {
			out.DurationMs = st.DurationMs
		}
		if i == 0 || st.LastSuccess.Before(out.LastSuccess) {
			out.LastSuccess = st.LastSuccess
		}
		if st.Status != model.SourceOK && out.Status == model.SourceOK {
			out.Status, out.Reason = st.Status, st.Reason
		}
	}
	return out
}

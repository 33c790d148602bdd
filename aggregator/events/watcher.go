package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// watchLogEvery spaces the warnings of a failing events watch: the
// reflector retries on its own, and a missing RBAC rule would otherwise
// log on every retry.
const watchLogEvery = 5 * time.Minute

// ErrStarted means Watch was called twice.
var ErrStarted = errors.New("events: watcher already started")

// Watcher feeds a Store from core/v1 Events through shared informers.
type Watcher struct {
	client kubernetes.Interface
	store  *Store
	logger *slog.Logger

	mu        sync.Mutex
	started   bool
	cancel    context.CancelFunc
	factories []informers.SharedInformerFactory
	lastWarn  time.Time
}

// NewWatcher returns a watcher of client's Events into store.
func NewWatcher(client kubernetes.Interface, store *Store, logger *slog.Logger) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{client: client, store: store, logger: logger.With("source", "informer-events")}
}

// Start watches Events in namespaces (all when empty) until ctx ends. It
// does not wait for the first list: events are evidence, not a part of
// the snapshot, and the store fills as they arrive.
func (w *Watcher) Start(ctx context.Context, namespaces []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return ErrStarted
	}
	w.started = true
	ctx, w.cancel = context.WithCancel(ctx)
	opts := []informers.SharedInformerOption{informers.WithTransform(stripEvent)}
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(w.client, 0, append(opts, informers.WithNamespace(ns))...)
		inf := f.Core().V1().Events().Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.onEvent,
			UpdateFunc: func(_, obj any) { w.onEvent(obj) },
			// Deletes are the API server's TTL: the store keeps events longer.
		}); err != nil {
			return err
		}
		if err := inf.SetWatchErrorHandlerWithContext(w.watchError); err != nil {
			return err
		}
		w.factories = append(w.factories, f)
		f.Start(ctx.Done())
	}
	return nil
}

// Synced reports whether every informer has listed once.
func (w *Watcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.factories {
		if !f.Core().V1().Events().Informer().HasSynced() {
			return false
		}
	}
	return len(w.factories) > 0
}

// Stop stops the informers and waits for them.
func (w *Watcher) Stop() {
	w.mu.Lock()
	cancel, factories := w.cancel, w.factories
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, f := range factories {
		f.Shutdown()
	}
}

func (w *Watcher) onEvent(obj any) {
	if e, ok := obj.(*corev1.Event); ok {
		w.store.AddKube(e)
	}
}

func (w *Watcher) watchError(_ context.Context, _ *cache.Reflector, err error) {
	if errors.Is(err, io.EOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return // routine: the reflector relists
	}
	w.mu.Lock()
	now := time.Now()
	log := now.Sub(w.lastWarn) >= watchLogEvery
	if log {
		w.lastWarn = now
	}
	w.mu.Unlock()
	if log {
		w.logger.Warn("list or watch of events failed; retrying (does the aggregator's ClusterRole allow list/watch on events?)", "error", err)
	}
}

// stripEvent keeps only what the store reads, so the informer's cache of
// every Event in the cluster costs as little as it can.
func stripEvent(obj any) (any, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name: e.Name, Namespace: e.Namespace, UID: e.UID,
			ResourceVersion: e.ResourceVersion, CreationTimestamp: e.CreationTimestamp,
		},
		InvolvedObject: corev1.ObjectReference{Kind: e.InvolvedObject.Kind, Namespace: e.InvolvedObject.Namespace, Name: e.InvolvedObject.Name, UID: e.InvolvedObject.UID},
		Reason:         truncate(e.Reason, maxField),
		Message:        truncate(e.Message, MaxMessage),
		Source:         corev1.EventSource{Host: e.Source.Host},
		FirstTimestamp: e.FirstTimestamp,
		LastTimestamp:  e.LastTimestamp,
		Count:          e.Count,
		Type:           e.Type,
		EventTime:      e.EventTime,
		Series:         e.Series,
	}, nil
}

package natsauth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// PodWatcher watches the agents' pods (their namespace, their
// ServiceAccount): it places agent tokens on nodes, and says when a pod is
// deleted so its connections can be closed.
type PodWatcher struct {
	client    kubernetes.Interface
	namespace string
	factory   informers.SharedInformerFactory
	lister    corelisters.PodLister
	logger    *slog.Logger

	mu       sync.Mutex
	onDelete []func(uid string)
}

var _ PodLookup = (*PodWatcher)(nil)

// NewPodWatcher watches the pods of namespace that run as serviceAccount.
// Start runs it.
func NewPodWatcher(client kubernetes.Interface, namespace, serviceAccount string, logger *slog.Logger) *PodWatcher {
	selector := fields.OneTermEqualSelector("spec.serviceAccountName", serviceAccount).String()
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	w := &PodWatcher{client: client, namespace: namespace, factory: f, logger: logger}
	inf := f.Core().V1().Pods()
	w.lister = inf.Lister()
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: w.deleted})
	return w
}

// OnDelete registers fn, called with the UID of every deleted agent pod.
func (w *PodWatcher) OnDelete(fn func(uid string)) {
	w.mu.Lock()
	w.onDelete = append(w.onDelete, fn)
	w.mu.Unlock()
}

// Start runs the informer until ctx ends and waits for its first list; on
// a sync failure it keeps trying in the background and lookups fall back
// to a GET.
func (w *PodWatcher) Start(ctx context.Context) {
	w.factory.Start(ctx.Done())
	for typ, ok := range w.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			w.logger.Warn("agent pod informer not synced; looking pods up one by one meanwhile", "type", typ.String())
		}
	}
	go func() {
		<-ctx.Done()
		w.factory.Shutdown()
	}()
}

func (w *PodWatcher) deleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	fns := append([]func(string){}, w.onDelete...)
	w.mu.Unlock()
	for _, fn := range fns {
		fn(string(pod.UID))
	}
}

// NodeOf returns the node of the agent pod name with uid: from the
// informer's cache, else (a pod newer than the cache) one GET.
func (w *PodWatcher) NodeOf(ctx context.Context, name, uid string) (string, bool, error) {
	pod, err := w.lister.Pods(w.namespace).Get(name)
	if apierrors.IsNotFound(err) {
		pod, err = w.client.CoreV1().Pods(w.namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", false, nil
		}
	}
	if err != nil {
		return "", false, fmt.Errorf("get agent pod %s/%s: %w", w.namespace, name, err)
	}
	if pod.UID != types.UID(uid) || pod.Spec.NodeName == "" {
		return "", false, nil
	}
	return pod.Spec.NodeName, true, nil
}

package vm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// StatusPrefix starts the name of every VM source in Status ("vm:kubevirt",
// "vm:wukong"), keeping them apart from the aggregator's other sources.
const StatusPrefix = "vm:"

// Errors returned by Watcher.Start, matched with errors.Is.
var (
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("vm: watcher already started")
)

// source is one watched resource and what was parsed from it.
type source struct {
	name   string // VM source: "kubevirt" or the custom resource's name
	gvr    schema.GroupVersionResource
	parse  func(*unstructured.Unstructured) (Object, error)
	logger *slog.Logger

	// synced reports that the handler has seen the first full list;
	// settled is closed once the source has synced or failed, which is
	// all Start waits for.
	synced     cache.InformerSynced
	settled    chan struct{}
	settleOnce sync.Once
}

func (s *source) settle() {
	s.settleOnce.Do(func() { close(s.settled) })
}

// Watcher keeps the parsed VMs of every configured source current through
// dynamic informers. Objects and Status never wait on the API server.
type Watcher struct {
	dyn     dynamic.Interface
	disco   discovery.DiscoveryInterface
	sources []*source
	logger  *slog.Logger

	mu      sync.RWMutex
	started bool
	status  map[string]model.SourceStatus
	// objects and malformed are keyed by source name, then by the
	// informer's namespace/name key.
	objects   map[string]map[string]Object
	malformed map[string]map[string]struct{}
}

// NewWatcher prepares a watcher of KubeVirt VMIs (when cfg.KubeVirt) and of
// cfg.Custom (when enableCustom, the metrics.enable_custom switch). Nothing
// is contacted before Start.
func NewWatcher(dyn dynamic.Interface, disco discovery.DiscoveryInterface, cfg config.VMConfig, enableCustom bool, logger *slog.Logger) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		dyn:       dyn,
		disco:     disco,
		logger:    logger,
		status:    map[string]model.SourceStatus{},
		objects:   map[string]map[string]Object{},
		malformed: map[string]map[string]struct{}{},
	}
	if cfg.KubeVirt {
		w.sources = append(w.sources, &source{name: SourceKubeVirt, gvr: KubeVirtGVR, parse: ParseVMI})
	}
	if enableCustom {
		for _, r := range cfg.Custom {
			w.sources = append(w.sources, &source{
				name:  r.Name,
				gvr:   schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource},
				parse: func(u *unstructured.Unstructured) (Object, error) { return ParseCustom(r, u) },
			})
		}
	}
	for _, s := range w.sources {
		s.logger = logger.With("source", StatusPrefix+s.name)
	}
	return w
}

// Start checks each source's resource with discovery, skips those the API
// server does not serve (with a status entry saying so), and starts
// informers for the rest. It returns once every started source has either
// synced or failed its first list (forbidden, say), or with an error when
// ctx ends first. The informers run until ctx ends; a source that failed
// keeps retrying in the background and turns ok once it syncs. A missing
// or failing source never fails Start: the VM list just lacks its VMs.
func (w *Watcher) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return ErrStarted
	}
	w.started = true
	w.mu.Unlock()

	if len(w.sources) == 0 {
		w.logger.Info("no VM source configured: VM list stays empty")
		return nil
	}
	factory := dynamicinformer.NewDynamicSharedInformerFactory(w.dyn, 0)
	var started []*source
	for _, s := range w.sources {
		if ok := w.served(ctx, s); !ok {
			continue
		}
		inf := factory.ForResource(s.gvr).Informer()
		s.settled = make(chan struct{})
		if err := w.wire(s, inf); err != nil {
			w.setStatus(s, model.SourceFailed, err.Error(), 0)
			s.logger.Error("cannot watch VM resource", "resource", s.gvr.String(), "err", err)
			continue
		}
		started = append(started, s)
	}
	if len(started) == 0 {
		return nil
	}
	begin := time.Now()
	factory.Start(ctx.Done())
	// Stop the informers' goroutines once ctx ends; Shutdown waits for them.
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	for _, s := range started {
		go w.awaitSync(ctx, s, begin)
	}
	for _, s := range started {
		select {
		case <-s.settled:
		case <-ctx.Done():
			for _, s := range started {
				if !s.synced() {
					w.setStatus(s, model.SourceFailed, "informer did not sync before shutdown", 0)
				}
			}
			return fmt.Errorf("wait for VM informers to sync: %w", context.Cause(ctx))
		}
	}
	return nil
}

// awaitSync marks a source ok once its informer has synced, however many
// failed lists that took.
func (w *Watcher) awaitSync(ctx context.Context, s *source, begin time.Time) {
	if !cache.WaitForCacheSync(ctx.Done(), s.synced) {
		return
	}
	w.setStatus(s, model.SourceOK, w.malformedReason(s.name), time.Since(begin))
	s.logger.Info("watching VMs", "resource", s.gvr.String(), "objects", w.count(s.name))
	s.settle()
}

// served asks discovery whether the source's resource exists. Absent is
// normal (KubeVirt or the CRD not installed) and logged once at info.
func (w *Watcher) served(ctx context.Context, s *source) bool {
	gv := s.gvr.GroupVersion().String()
	list, err := discovery.ToDiscoveryInterfaceWithContext(w.disco).ServerResourcesForGroupVersionWithContext(ctx, gv)
	switch {
	case err == nil:
		for _, r := range list.APIResources {
			if r.Name == s.gvr.Resource {
				return true
			}
		}
	case apierrors.IsNotFound(err):
	default:
		reason := fmt.Sprintf("discover %s: %v", gv, err)
		w.setStatus(s, model.SourceFailed, reason, 0)
		s.logger.Error("cannot discover VM resource; its VMs are left out", "resource", s.gvr.String(), "err", err)
		return false
	}
	var reason string
	if s.name == SourceKubeVirt {
		reason = "KubeVirt not installed: kubevirt.io/v1 virtualmachineinstances is not served; VM list will not include KubeVirt VMs"
	} else {
		reason = fmt.Sprintf("custom VM resource %s not installed: %s %s is not served; VM list will not include its VMs", s.name, gv, s.gvr.Resource)
	}
	w.setStatus(s, model.SourceUnavailable, reason, 0)
	s.logger.Info(reason)
	return false
}

// wire installs the transform, handlers and error handler on an informer
// before it starts, as client-go requires.
func (w *Watcher) wire(s *source, inf cache.SharedIndexInformer) error {
	// Parsed Objects are all the watcher needs; dropping managedFields
	// keeps the informer's copy of thousands of VMIs small.
	if err := inf.SetTransform(stripManagedFields); err != nil {
		return fmt.Errorf("set transform: %w", err)
	}
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		// A closed watch is routine; the reflector re-lists.
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		// The reflector retries with backoff; warn when the failure
		// starts or changes, not on every retry.
		if w.setFailed(s, fmt.Sprintf("list/watch %s: %v", s.gvr.String(), err)) {
			s.logger.Warn("VM list/watch failed; keeping the last known VMs", "resource", s.gvr.String(), "err", err)
		}
		s.settle()
	}); err != nil {
		return fmt.Errorf("set watch error handler: %w", err)
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.upsert(s, obj) },
		UpdateFunc: func(_, obj any) { w.upsert(s, obj) },
		DeleteFunc: func(obj any) { w.remove(s, obj) },
	})
	if err != nil {
		return fmt.Errorf("add event handler: %w", err)
	}
	// The handler's own sync, not the informer's: the informer's store
	// fills before the handler has seen every object, and Objects reads
	// what the handler parsed.
	s.synced = reg.HasSynced
	return nil
}

func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

func (w *Watcher) upsert(s *source, obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	k := key(u.GetNamespace(), u.GetName())
	o, err := s.parse(u)

	w.mu.Lock()
	defer w.mu.Unlock()
	bad := w.malformed[s.name]
	if err != nil {
		delete(w.objects[s.name], k)
		if _, seen := bad[k]; !seen {
			// Warn once per object, not on every status update of it.
			s.logger.Warn("skipping malformed VM object", "namespace", u.GetNamespace(), "name", u.GetName(), "err", err)
			if bad == nil {
				bad = map[string]struct{}{}
				w.malformed[s.name] = bad
			}
			bad[k] = struct{}{}
			w.refreshReasonLocked(s)
		}
		return
	}
	if _, was := bad[k]; was {
		delete(bad, k)
		w.refreshReasonLocked(s)
	}
	objs := w.objects[s.name]
	if objs == nil {
		objs = map[string]Object{}
		w.objects[s.name] = objs
	}
	objs[k] = o
	w.recoverLocked(s)
}

func (w *Watcher) remove(s *source, obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	a, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	k := key(a.GetNamespace(), a.GetName())
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.objects[s.name], k)
	if _, was := w.malformed[s.name][k]; was {
		delete(w.malformed[s.name], k)
		w.refreshReasonLocked(s)
	}
}

// recoverLocked clears a list/watch failure once events flow again.
func (w *Watcher) recoverLocked(s *source) {
	name := StatusPrefix + s.name
	if st, ok := w.status[name]; ok && st.Status == model.SourceFailed {
		st.Status = model.SourceOK
		st.Reason = w.malformedReasonLocked(s.name)
		w.status[name] = st
		s.logger.Info("VM list/watch recovered")
	}
}

func (w *Watcher) refreshReasonLocked(s *source) {
	name := StatusPrefix + s.name
	if st, ok := w.status[name]; ok && st.Status == model.SourceOK {
		st.Reason = w.malformedReasonLocked(s.name)
		w.status[name] = st
	}
}

func (w *Watcher) malformedReason(source string) string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.malformedReasonLocked(source)
}

// malformedReasonLocked keeps skipped objects visible in the source's
// status, since a log line alone is easy to miss.
func (w *Watcher) malformedReasonLocked(source string) string {
	switch n := len(w.malformed[source]); n {
	case 0:
		return ""
	case 1:
		return "1 object skipped as malformed"
	default:
		return fmt.Sprintf("%d objects skipped as malformed", n)
	}
}

func (w *Watcher) setStatus(s *source, st model.SourceState, reason string, took time.Duration) {
	name := StatusPrefix + s.name
	w.mu.Lock()
	defer w.mu.Unlock()
	ss := model.SourceStatus{Name: name, Status: st, Reason: reason, DurationMs: float64(took.Microseconds()) / 1000}
	if st == model.SourceOK {
		ss.LastSuccess = time.Now().UTC()
	}
	w.status[name] = ss
}

// setFailed records a failure and says whether it is news.
func (w *Watcher) setFailed(s *source, reason string) bool {
	name := StatusPrefix + s.name
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.status[name]
	if old.Status == model.SourceFailed && old.Reason == reason {
		return false
	}
	w.status[name] = model.SourceStatus{Name: name, Status: model.SourceFailed, Reason: reason, LastSuccess: old.LastSuccess}
	return true
}

func (w *Watcher) count(source string) int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.objects[source])
}

// Status returns a copy of every source's status, keyed by
// StatusPrefix+source ("vm:kubevirt"). Sources switched off in config have
// no entry.
func (w *Watcher) Status() map[string]model.SourceStatus {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make(map[string]model.SourceStatus, len(w.status))
	for k, v := range w.status {
		out[k] = v
	}
	return out
}

// Malformed returns how many objects of each source are currently skipped
// because they could not be parsed.
func (w *Watcher) Malformed() map[string]int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make(map[string]int, len(w.malformed))
	for k, v := range w.malformed {
		if len(v) > 0 {
			out[k] = len(v)
		}
	}
	return out
}

// Objects returns the parsed VMs of every source, sorted by source,
// namespace and name. The slice is new; the Objects' own slices are shared
// and must not be modified.
func (w *Watcher) Objects() []Object {
	w.mu.RLock()
	n := 0
	for _, m := range w.objects {
		n += len(m)
	}
	out := make([]Object, 0, n)
	for _, m := range w.objects {
		for _, o := range m {
			out = append(out, o)
		}
	}
	w.mu.RUnlock()
	slices.SortFunc(out, func(a, b Object) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

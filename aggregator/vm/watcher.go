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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// RediscoverInterval is how often the watcher asks discovery again whether
// each source's resource is served: a CRD installed after start is watched
// within it, and a removed one stops its watch.
const RediscoverInterval = 30 * time.Second

// Status reasons of a source that is not failing.
const (
	// reasonWatching is an ok source's reason, before any malformed count.
	reasonWatching = "watching"
	// reasonWaitingForCRD starts the reason of a source whose resource is
	// not served.
	reasonWaitingForCRD = "waiting for CRD"
)

// Errors returned by Watcher.Start, matched with errors.Is.
var (
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("vm: watcher already started")
)

// source is one configured resource and what was parsed from it.
type source struct {
	name   string // VM source: "kubevirt" or the custom resource's name
	gvr    schema.GroupVersionResource
	parse  func(*unstructured.Unstructured) (Object, error)
	logger *slog.Logger

	// run is the current watch, nil while the resource is not served.
	// Only discovery (Start's first pass, then the rediscover loop)
	// touches it, one pass at a time.
	run *sourceRun
}

// sourceRun is one watch of a source: from discovery finding its resource
// served until it is not any more, or the watcher stops.
type sourceRun struct {
	cancel context.CancelFunc
	// wg counts the informer and its sync waiter; once it is done no
	// handler of this run is called again.
	wg sync.WaitGroup
	// synced reports that the handler has seen the first full list;
	// settled is closed once the run has synced, failed or stopped, which
	// is all Start waits for.
	synced     cache.InformerSynced
	settled    chan struct{}
	settleOnce sync.Once
}

func (r *sourceRun) settle() {
	r.settleOnce.Do(func() { close(r.settled) })
}

// Watcher keeps the parsed VMs of every configured source current through
// one dynamic informer per source whose resource is served. Objects and
// Status never wait on the API server.
type Watcher struct {
	dyn     dynamic.Interface
	disco   discovery.DiscoveryInterfaceWithContext
	sources []*source
	logger  *slog.Logger
	// rediscover is RediscoverInterval; tests shorten it.
	rediscover time.Duration
	// nudge asks the rediscover loop for a pass now: a list found its
	// resource gone, which is usually a CRD being removed.
	nudge chan struct{}
	// wg counts the rediscover loop and every run's goroutines.
	wg sync.WaitGroup

	mu      sync.RWMutex
	started bool
	cancel  context.CancelFunc
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
		dyn:        dyn,
		disco:      discovery.ToDiscoveryInterfaceWithContext(disco),
		logger:     logger,
		rediscover: RediscoverInterval,
		nudge:      make(chan struct{}, 1),
		status:     map[string]model.SourceStatus{},
		objects:    map[string]map[string]Object{},
		malformed:  map[string]map[string]struct{}{},
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

// Start asks discovery whether each source's resource is served, starts an
// informer for each one that is, and gives the others a status saying they
// wait for their CRD. It returns once every started source has either
// synced or failed its first list (forbidden, say), or with an error when
// ctx ends first. Until ctx ends or Close is called, discovery is asked
// again every RediscoverInterval: a resource that appears is watched from
// then on, one that disappears stops its watch and drops its VMs, and the
// other sources are left alone. A source that failed keeps retrying in the
// background and turns ok once it syncs. A missing or failing source never
// fails Start: the VM list just lacks its VMs.
//
// Discovery is asked periodically rather than CustomResourceDefinitions
// watched: it needs no RBAC beyond system:discovery, and it also covers
// resources served by an aggregated API server instead of a CRD.
func (w *Watcher) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return ErrStarted
	}
	w.started = true
	ctx, w.cancel = context.WithCancel(ctx)
	w.mu.Unlock()

	if len(w.sources) == 0 {
		w.logger.Info("no VM source configured: VM list stays empty")
		return nil
	}
	// Counted before the first pass, whose runs add to wg, so Close
	// never waits on a count that is still growing from zero.
	w.wg.Add(1)
	started := w.discover(ctx)
	go func() {
		defer w.wg.Done()
		w.rediscoverLoop(ctx)
	}()
	for _, st := range started {
		select {
		case <-st.run.settled:
		case <-ctx.Done():
			for _, st := range started {
				if !st.run.synced() {
					w.setStatus(st.source, model.SourceFailed, "informer did not sync before shutdown", 0)
				}
			}
			return fmt.Errorf("wait for VM informers to sync: %w", context.Cause(ctx))
		}
	}
	return nil
}

// Close stops discovery and every informer, and waits for them to end.
func (w *Watcher) Close() {
	w.mu.Lock()
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
}

// startedRun is a run that a discovery pass started.
type startedRun struct {
	source *source
	run    *sourceRun
}

// rediscoverLoop runs a discovery pass every w.rediscover, and at once when
// nudged, until ctx ends; then it stops every run.
func (w *Watcher) rediscoverLoop(ctx context.Context) {
	t := time.NewTicker(w.rediscover)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, s := range w.sources {
				if s.run != nil {
					w.stopRun(s)
				}
			}
			return
		case <-t.C:
		case <-w.nudge:
		}
		w.discover(ctx)
	}
}

// discover asks whether each source's resource is served and starts or
// stops its watch to match. A discovery error leaves a running watch
// alone: the API server may be briefly away, and the informer copes.
func (w *Watcher) discover(ctx context.Context) []startedRun {
	var started []startedRun
	for _, s := range w.sources {
		served, err := w.served(ctx, s)
		switch {
		case ctx.Err() != nil:
			return started
		case err != nil && s.run != nil:
			s.logger.Debug("cannot discover VM resource; keeping its watch", "resource", s.gvr.String(), "err", err)
		case err != nil:
			if w.setFailed(s, fmt.Sprintf("discover %s: %v", s.gvr.GroupVersion(), err)) {
				s.logger.Error("cannot discover VM resource; its VMs are left out", "resource", s.gvr.String(), "err", err)
			}
		case served && s.run == nil:
			run, err := w.startRun(ctx, s)
			if err != nil {
				w.setStatus(s, model.SourceFailed, err.Error(), 0)
				s.logger.Error("cannot watch VM resource", "resource", s.gvr.String(), "err", err)
				continue
			}
			started = append(started, startedRun{source: s, run: run})
		case !served:
			if s.run != nil {
				w.stopRun(s)
				s.logger.Info("VM resource no longer served; stopped watching it", "resource", s.gvr.String())
			}
			if reason := waitingReason(s); w.setStatus(s, model.SourceUnavailable, reason, 0) {
				s.logger.Info(reason)
			}
		}
	}
	return started
}

// waitingReason says, in words for an operator, that a source's resource
// is not served.
func waitingReason(s *source) string {
	gv := s.gvr.GroupVersion().String()
	if s.name == SourceKubeVirt {
		return fmt.Sprintf("%s: KubeVirt not installed (%s %s is not served); VM list will not include KubeVirt VMs until it is", reasonWaitingForCRD, gv, s.gvr.Resource)
	}
	return fmt.Sprintf("%s: custom VM resource %s not installed (%s %s is not served); VM list will not include its VMs until it is", reasonWaitingForCRD, s.name, gv, s.gvr.Resource)
}

// startRun starts an informer for the source under a context of its own,
// so that stopping it leaves the other sources alone.
func (w *Watcher) startRun(ctx context.Context, s *source) (*sourceRun, error) {
	inf := dynamicinformer.NewFilteredDynamicInformer(w.dyn, s.gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	run := &sourceRun{settled: make(chan struct{})}
	if err := w.wire(s, run, inf); err != nil {
		return nil, err
	}
	w.setStatus(s, model.SourceUnavailable, "resource served; listing "+s.gvr.String(), 0)
	rctx, cancel := context.WithCancel(ctx)
	run.cancel = cancel
	s.run = run
	begin := time.Now()
	run.wg.Add(2)
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		defer run.wg.Done()
		inf.RunWithContext(rctx)
	}()
	go func() {
		defer w.wg.Done()
		defer run.wg.Done()
		w.awaitSync(rctx, s, run, begin)
	}()
	return run, nil
}

// stopRun stops the source's informer, waits until none of its handlers
// can run any more, and drops its VMs.
func (w *Watcher) stopRun(s *source) {
	run := s.run
	s.run = nil
	run.cancel()
	run.wg.Wait()
	run.settle()
	w.mu.Lock()
	delete(w.objects, s.name)
	delete(w.malformed, s.name)
	w.mu.Unlock()
}

// awaitSync marks a source ok once its informer has synced, however many
// failed lists that took.
func (w *Watcher) awaitSync(ctx context.Context, s *source, run *sourceRun, begin time.Time) {
	if !cache.WaitForCacheSync(ctx.Done(), run.synced) {
		return
	}
	w.setStatus(s, model.SourceOK, w.okReason(s.name), time.Since(begin))
	s.logger.Info("watching VMs", "resource", s.gvr.String(), "objects", w.count(s.name))
	run.settle()
}

// served asks discovery whether the source's resource exists. A group
// version that is not found is an answer (not served), not an error.
func (w *Watcher) served(ctx context.Context, s *source) (bool, error) {
	list, err := w.disco.ServerResourcesForGroupVersionWithContext(ctx, s.gvr.GroupVersion().String())
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	for _, r := range list.APIResources {
		if r.Name == s.gvr.Resource {
			return true, nil
		}
	}
	return false, nil
}

// wire installs the transform, handlers and error handler on an informer
// before it starts, as client-go requires.
func (w *Watcher) wire(s *source, run *sourceRun, inf cache.SharedIndexInformer) error {
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
		if apierrors.IsNotFound(err) {
			// Most likely the CRD was removed: let discovery confirm it
			// now rather than at the next period.
			select {
			case w.nudge <- struct{}{}:
			default:
			}
		}
		// The reflector retries with backoff; warn when the failure
		// starts or changes, not on every retry.
		if w.setFailed(s, fmt.Sprintf("list/watch %s: %v", s.gvr.String(), err)) {
			s.logger.Warn("VM list/watch failed; keeping the last known VMs", "resource", s.gvr.String(), "err", err)
		}
		run.settle()
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
	run.synced = reg.HasSynced
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
		st.Reason = w.okReasonLocked(s.name)
		w.status[name] = st
		s.logger.Info("VM list/watch recovered")
	}
}

func (w *Watcher) refreshReasonLocked(s *source) {
	name := StatusPrefix + s.name
	if st, ok := w.status[name]; ok && st.Status == model.SourceOK {
		st.Reason = w.okReasonLocked(s.name)
		w.status[name] = st
	}
}

func (w *Watcher) okReason(source string) string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.okReasonLocked(source)
}

// okReasonLocked is an ok source's reason: watching, and how many objects
// were skipped, since a log line alone is easy to miss.
func (w *Watcher) okReasonLocked(source string) string {
	switch n := len(w.malformed[source]); n {
	case 0:
		return reasonWatching
	case 1:
		return reasonWatching + "; 1 object skipped as malformed"
	default:
		return fmt.Sprintf("%s; %d objects skipped as malformed", reasonWatching, n)
	}
}

// setStatus records a source's status and says whether its state or
// reason changed.
func (w *Watcher) setStatus(s *source, st model.SourceState, reason string, took time.Duration) bool {
	name := StatusPrefix + s.name
	w.mu.Lock()
	defer w.mu.Unlock()
	old, had := w.status[name]
	ss := model.SourceStatus{Name: name, Status: st, Reason: reason, DurationMs: float64(took.Microseconds()) / 1000, LastSuccess: old.LastSuccess}
	if st == model.SourceOK {
		ss.LastSuccess = time.Now().UTC()
	}
	w.status[name] = ss
	return !had || old.Status != st || old.Reason != reason
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

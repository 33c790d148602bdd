package vm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	discoveryfake "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

const (
	waitFor = 10 * time.Second
	tick    = 10 * time.Millisecond
)

var (
	kubevirtServed = &metav1.APIResourceList{GroupVersion: "kubevirt.io/v1", APIResources: []metav1.APIResource{
		{Name: "virtualmachineinstances", Namespaced: true, Kind: "VirtualMachineInstance"},
		{Name: "virtualmachineinstances/status", Namespaced: true, Kind: "VirtualMachineInstance"},
	}}
	wukongServed = &metav1.APIResourceList{GroupVersion: "wukong.io/v1", APIResources: []metav1.APIResource{
		{Name: "wukongs", Namespaced: true, Kind: "Wukong"},
	}}
	listKinds = map[schema.GroupVersionResource]string{
		KubeVirtGVR: "VirtualMachineInstanceList",
		wukongGVR:   "WukongList",
	}
	allSources = config.VMConfig{KubeVirt: true, Custom: []config.CustomVMResource{wukongResource}}
)

// syncBuffer collects log output written from informer goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func fakeDiscovery(served ...*metav1.APIResourceList) *discoveryfake.FakeDiscovery {
	return &discoveryfake.FakeDiscovery{Fake: &clienttesting.Fake{Resources: served}}
}

func startWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		w.Close()
	})
	require.NoError(t, w.Start(ctx))
}

func TestWatcherResourceAbsent(t *testing.T) {
	logger, logs := testLogger()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	w := NewWatcher(dyn, fakeDiscovery(), allSources, true, logger)
	startWatcher(t, w)

	assert.Empty(t, w.Objects())
	st := w.Status()
	require.Contains(t, st, "vm:kubevirt")
	assert.Equal(t, model.SourceUnavailable, st["vm:kubevirt"].Status)
	assert.Equal(t, "waiting for CRD: KubeVirt not installed (kubevirt.io/v1 virtualmachineinstances is not served); VM list will not include KubeVirt VMs until it is", st["vm:kubevirt"].Reason)
	require.Contains(t, st, "vm:wukong")
	assert.Equal(t, model.SourceUnavailable, st["vm:wukong"].Status)
	assert.Contains(t, st["vm:wukong"].Reason, "waiting for CRD: custom VM resource wukong not installed (wukong.io/v1 wukongs is not served)")
	assert.Equal(t, 1, strings.Count(logs.String(), "KubeVirt not installed"), "one clear log line")
	// Nothing was listed or watched.
	assert.Empty(t, dyn.Actions())
}

func TestWatcherGroupServedWithoutResource(t *testing.T) {
	other := &metav1.APIResourceList{GroupVersion: "kubevirt.io/v1", APIResources: []metav1.APIResource{{Name: "virtualmachines"}}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	w := NewWatcher(dyn, fakeDiscovery(other), config.VMConfig{KubeVirt: true}, false, nil)
	startWatcher(t, w)
	assert.Equal(t, model.SourceUnavailable, w.Status()["vm:kubevirt"].Status)
}

func TestWatcherDiscoveryFails(t *testing.T) {
	disco := fakeDiscovery(kubevirtServed)
	disco.PrependReactor("get", "resource", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	w := NewWatcher(dyn, disco, config.VMConfig{KubeVirt: true}, false, nil)
	startWatcher(t, w)
	st := w.Status()["vm:kubevirt"]
	assert.Equal(t, model.SourceFailed, st.Status)
	assert.Contains(t, st.Reason, "connection refused")
}

func TestWatcherCustomNeedsSwitch(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, loadObject(t, "wukong.yaml"))
	w := NewWatcher(dyn, fakeDiscovery(kubevirtServed, wukongServed), config.VMConfig{Custom: allSources.Custom}, false, nil)
	startWatcher(t, w)
	assert.Empty(t, w.Objects())
	assert.Empty(t, w.Status(), "switched-off sources have no status entry")
}

func TestWatcherParsesObjects(t *testing.T) {
	logger, logs := testLogger()
	bad := loadObject(t, "vmi-pending.yaml")
	bad.SetName("broken-vm")
	bad.SetUID("broken-uid")
	require.NoError(t, unstructured.SetNestedField(bad.Object, "lots", "spec", "domain", "memory", "guest"))
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds,
		loadObject(t, "vmi-running.yaml"), loadObject(t, "vmi-pending.yaml"), loadObject(t, "vmi-requests.yaml"),
		bad, loadObject(t, "wukong.yaml"))
	w := NewWatcher(dyn, fakeDiscovery(kubevirtServed, wukongServed), allSources, true, logger)
	startWatcher(t, w)

	want := fixtureObjects(t)
	// Objects come sorted by source, namespace, name.
	slices.SortFunc(want, func(a, b Object) int {
		return strings.Compare(a.Source+"/"+a.Namespace+"/"+a.Name, b.Source+"/"+b.Namespace+"/"+b.Name)
	})
	assert.Equal(t, want, w.Objects())

	st := w.Status()
	assert.Equal(t, model.SourceOK, st["vm:kubevirt"].Status)
	assert.Equal(t, "watching; 1 object skipped as malformed", st["vm:kubevirt"].Reason)
	assert.Equal(t, model.SourceOK, st["vm:wukong"].Status)
	assert.Equal(t, "watching", st["vm:wukong"].Reason)
	assert.Equal(t, map[string]int{SourceKubeVirt: 1}, w.Malformed())
	assert.Contains(t, logs.String(), "skipping malformed VM object")
	assert.Contains(t, logs.String(), "name=broken-vm")

	require.ErrorIs(t, w.Start(context.Background()), ErrStarted)
}

func TestWatcherFollowsChanges(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, loadObject(t, "vmi-running.yaml"))
	w := NewWatcher(dyn, fakeDiscovery(kubevirtServed), config.VMConfig{KubeVirt: true}, false, nil)
	startWatcher(t, w)
	require.Len(t, w.Objects(), 1)

	// The fake delivers only events that happen after the informer's
	// watch is open; wait for it rather than racing it.
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(dyn.Actions(), func(a clienttesting.Action) bool { return a.GetVerb() == "watch" })
	}, waitFor, tick)

	ctx := context.Background()
	vmis := dyn.Resource(KubeVirtGVR)
	_, err := vmis.Namespace("dev").Create(ctx, loadObject(t, "vmi-requests.yaml"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hasObject(w, "dev", "fedora-vm") }, waitFor, tick)

	// A malformed update replaces the parsed object with nothing and is
	// counted; a fixed one brings it back.
	broken := loadObject(t, "vmi-requests.yaml")
	require.NoError(t, unstructured.SetNestedField(broken.Object, "two", "spec", "domain", "resources", "requests", "cpu"))
	_, err = vmis.Namespace("dev").Update(ctx, broken, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !hasObject(w, "dev", "fedora-vm") && w.Malformed()[SourceKubeVirt] == 1 }, waitFor, tick)
	_, err = vmis.Namespace("dev").Update(ctx, loadObject(t, "vmi-requests.yaml"), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hasObject(w, "dev", "fedora-vm") && len(w.Malformed()) == 0 }, waitFor, tick)

	require.NoError(t, vmis.Namespace("vms").Delete(ctx, "ubuntu-vm", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return !hasObject(w, "vms", "ubuntu-vm") }, waitFor, tick)
	assert.Len(t, w.Objects(), 1)
}

func TestWatcherStopsWithContext(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	// A list that never answers keeps the informer from syncing.
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	dyn.PrependReactor("list", "virtualmachineinstances", func(clienttesting.Action) (bool, runtime.Object, error) {
		<-block
		return true, nil, errors.New("unreachable")
	})
	w := NewWatcher(dyn, fakeDiscovery(kubevirtServed), config.VMConfig{KubeVirt: true}, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := w.Start(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, model.SourceFailed, w.Status()["vm:kubevirt"].Status)
}

func hasObject(w *Watcher, ns, name string) bool {
	return slices.ContainsFunc(w.Objects(), func(o Object) bool { return o.Namespace == ns && o.Name == name })
}

func TestWatcherListForbiddenThenAllowed(t *testing.T) {
	logger, logs := testLogger()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, loadObject(t, "vmi-running.yaml"))
	var allowed atomic.Bool
	dyn.PrependReactor("list", "virtualmachineinstances", func(clienttesting.Action) (bool, runtime.Object, error) {
		if allowed.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(KubeVirtGVR.GroupResource(), "", errors.New("RBAC: access denied"))
	})
	w := NewWatcher(dyn, fakeDiscovery(kubevirtServed), config.VMConfig{KubeVirt: true}, false, logger)
	// Start does not hang on a source that cannot list.
	startWatcher(t, w)
	st := w.Status()["vm:kubevirt"]
	assert.Equal(t, model.SourceFailed, st.Status)
	assert.Contains(t, st.Reason, "forbidden")
	assert.Empty(t, w.Objects())

	// Once RBAC is fixed, the informer's retry syncs and the source
	// turns ok.
	allowed.Store(true)
	require.Eventually(t, func() bool {
		return w.Status()["vm:kubevirt"].Status == model.SourceOK && len(w.Objects()) == 1
	}, waitFor, tick)
	assert.Equal(t, 1, strings.Count(logs.String(), "VM list/watch failed"), "one warning, not one per retry")
}

// servedSet is a discovery whose served resources a test changes while
// the watcher runs; FakeDiscovery's own list cannot change without a race.
type servedSet struct {
	*discoveryfake.FakeDiscovery

	mu    sync.Mutex
	lists map[string]*metav1.APIResourceList
	err   error
	asked int
}

func newServedSet(lists ...*metav1.APIResourceList) *servedSet {
	d := &servedSet{FakeDiscovery: fakeDiscovery()}
	d.serve(lists...)
	return d
}

// serve replaces what is served.
func (d *servedSet) serve(lists ...*metav1.APIResourceList) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lists = map[string]*metav1.APIResourceList{}
	for _, l := range lists {
		d.lists[l.GroupVersion] = l
	}
}

func (d *servedSet) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

func (d *servedSet) askedTimes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked
}

func (d *servedSet) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	return d.ServerResourcesForGroupVersionWithContext(context.Background(), gv)
}

func (d *servedSet) ServerResourcesForGroupVersionWithContext(_ context.Context, gv string) (*metav1.APIResourceList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked++
	if d.err != nil {
		return nil, d.err
	}
	if l, ok := d.lists[gv]; ok {
		return l, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{}, gv)
}

// TestWatcherDiscoversCRDInstalledLater: a source whose resource is not
// served waits for its CRD, then is watched once discovery serves it.
func TestWatcherDiscoversCRDInstalledLater(t *testing.T) {
	logger, logs := testLogger()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, loadObject(t, "vmi-running.yaml"), loadObject(t, "wukong.yaml"))
	disco := newServedSet(wukongServed)
	w := NewWatcher(dyn, disco, allSources, true, logger)
	w.rediscover = 20 * time.Millisecond
	startWatcher(t, w)

	st := w.Status()
	assert.Equal(t, model.SourceUnavailable, st["vm:kubevirt"].Status)
	assert.True(t, strings.HasPrefix(st["vm:kubevirt"].Reason, "waiting for CRD: "), st["vm:kubevirt"].Reason)
	assert.Equal(t, model.SourceOK, st["vm:wukong"].Status)
	assert.Equal(t, "watching", st["vm:wukong"].Reason)
	assert.Equal(t, []string{"wukong"}, sources(w.Objects()))

	// Several passes while it is absent: still one log line about it.
	asked := disco.askedTimes()
	require.Eventually(t, func() bool { return disco.askedTimes() >= asked+6 }, waitFor, tick)
	assert.Equal(t, 1, strings.Count(logs.String(), "KubeVirt not installed"), "logged when it changes, not on every pass")

	disco.serve(kubevirtServed, wukongServed)
	require.Eventually(t, func() bool {
		st := w.Status()["vm:kubevirt"]
		return st.Status == model.SourceOK && st.Reason == "watching"
	}, waitFor, tick)
	assert.Equal(t, []string{"kubevirt", "wukong"}, sources(w.Objects()))
}

// TestWatcherCRDRemovedStopsOnlyItsWatch: a resource that is no longer
// served stops its informer and drops its VMs; the other source keeps its
// VMs and keeps following changes; a discovery error stops nothing.
func TestWatcherCRDRemovedStopsOnlyItsWatch(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, loadObject(t, "vmi-running.yaml"), loadObject(t, "wukong.yaml"))
	disco := newServedSet(kubevirtServed, wukongServed)
	w := NewWatcher(dyn, disco, allSources, true, nil)
	w.rediscover = 20 * time.Millisecond
	startWatcher(t, w)
	require.Equal(t, []string{"kubevirt", "wukong"}, sources(w.Objects()))
	require.Eventually(t, func() bool { return watches(dyn, "wukongs") == 1 && watches(dyn, "virtualmachineinstances") == 1 }, waitFor, tick)

	// Discovery failing is no reason to stop watching.
	disco.fail(errors.New("connection refused"))
	asked := disco.askedTimes()
	require.Eventually(t, func() bool { return disco.askedTimes() >= asked+4 }, waitFor, tick)
	assert.Equal(t, model.SourceOK, w.Status()["vm:kubevirt"].Status)
	assert.Equal(t, []string{"kubevirt", "wukong"}, sources(w.Objects()))
	disco.fail(nil)

	disco.serve(wukongServed)
	require.Eventually(t, func() bool {
		return strings.HasPrefix(w.Status()["vm:kubevirt"].Reason, "waiting for CRD: ")
	}, waitFor, tick)
	assert.Equal(t, model.SourceUnavailable, w.Status()["vm:kubevirt"].Status)
	assert.Equal(t, []string{"wukong"}, sources(w.Objects()))

	// The stopped watch sees nothing more; the other one still does.
	ctx := context.Background()
	_, err := dyn.Resource(KubeVirtGVR).Namespace("dev").Create(ctx, loadObject(t, "vmi-requests.yaml"), metav1.CreateOptions{})
	require.NoError(t, err)
	other := loadObject(t, "wukong.yaml")
	other.SetName("second-wukong")
	other.SetUID("second-wukong-uid")
	_, err = dyn.Resource(wukongGVR).Namespace(other.GetNamespace()).Create(ctx, other, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hasObject(w, other.GetNamespace(), "second-wukong") }, waitFor, tick)
	assert.Equal(t, []string{"wukong", "wukong"}, sources(w.Objects()))
	assert.Equal(t, model.SourceOK, w.Status()["vm:wukong"].Status)
	assert.Equal(t, 1, watches(dyn, "wukongs"), "the other watch was not restarted")
	assert.Equal(t, 1, watches(dyn, "virtualmachineinstances"), "the removed resource is not watched again")
}

// TestWatcherResourceGoneNudgesDiscovery: a list answering 404 (the CRD
// being removed) makes discovery check at once instead of at the next
// period.
func TestWatcherResourceGoneNudgesDiscovery(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, loadObject(t, "vmi-running.yaml"))
	fw := watch.NewRaceFreeFake()
	dyn.PrependWatchReactor("virtualmachineinstances", func(clienttesting.Action) (bool, watch.Interface, error) {
		return true, fw, nil
	})
	var gone atomic.Bool
	dyn.PrependReactor("list", "virtualmachineinstances", func(clienttesting.Action) (bool, runtime.Object, error) {
		if gone.Load() {
			return true, nil, apierrors.NewNotFound(KubeVirtGVR.GroupResource(), "")
		}
		return false, nil, nil
	})
	disco := newServedSet(kubevirtServed)
	w := NewWatcher(dyn, disco, config.VMConfig{KubeVirt: true}, false, nil)
	w.rediscover = time.Hour
	startWatcher(t, w)
	require.Len(t, w.Objects(), 1)

	disco.serve()
	gone.Store(true)
	fw.Stop() // the watch ends as it does when a CRD is deleted; the relist gets 404
	require.Eventually(t, func() bool {
		return strings.HasPrefix(w.Status()["vm:kubevirt"].Reason, "waiting for CRD: ")
	}, waitFor, tick)
	assert.Empty(t, w.Objects())
}

func TestWatcherCloseStopsEverything(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, loadObject(t, "vmi-running.yaml"))
	disco := newServedSet(kubevirtServed)
	w := NewWatcher(dyn, disco, config.VMConfig{KubeVirt: true}, false, nil)
	w.rediscover = 10 * time.Millisecond
	require.NoError(t, w.Start(context.Background()))
	w.Close()
	asked := disco.askedTimes()
	actions := len(dyn.Actions())
	// Nothing is asked after Close returned: poll a while for a change.
	assert.Never(t, func() bool { return disco.askedTimes() != asked || len(dyn.Actions()) != actions }, 200*time.Millisecond, tick)
}

func sources(objs []Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Source
	}
	return out
}

func watches(dyn *dynamicfake.FakeDynamicClient, resource string) int {
	n := 0
	for _, a := range dyn.Actions() {
		if a.GetVerb() == "watch" && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

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
	t.Cleanup(cancel)
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
	assert.Equal(t, "KubeVirt not installed: kubevirt.io/v1 virtualmachineinstances is not served; VM list will not include KubeVirt VMs", st["vm:kubevirt"].Reason)
	require.Contains(t, st, "vm:wukong")
	assert.Equal(t, model.SourceUnavailable, st["vm:wukong"].Status)
	assert.Contains(t, st["vm:wukong"].Reason, "wukong.io/v1 wukongs is not served")
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
	assert.Equal(t, "1 object skipped as malformed", st["vm:kubevirt"].Reason)
	assert.Equal(t, model.SourceOK, st["vm:wukong"].Status)
	assert.Empty(t, st["vm:wukong"].Reason)
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

package events

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestStore(opts Options) (*Store, *clock) {
	c := &clock{t: t0}
	opts.Now = c.Now
	return NewStore(opts), c
}

// kubeEvent is a Kubernetes Event about a pod as the kubelet posts it.
func kubeEvent(uid, ns, pod, reason, typ string, count int32, at time.Time) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: pod + "." + uid, UID: types.UID(uid)},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
		Reason:         reason,
		Message:        reason + " happened",
		Type:           typ,
		Count:          count,
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: metav1.NewTime(at.Add(-time.Minute)),
		LastTimestamp:  metav1.NewTime(at),
	}
}

func list(t *testing.T, s *Store, f Filter) Page {
	t.Helper()
	p, err := s.List(f)
	require.NoError(t, err)
	return p
}

func TestKubeEventsDedupe(t *testing.T) {
	s, _ := newTestStore(Options{})
	// The API server aggregates repeats into one Event whose count grows;
	// the informer delivers each update, and a relist repeats them.
	require.True(t, s.AddKube(kubeEvent("e1", "shop", "api-0", "BackOff", "Warning", 1, t0)))
	require.True(t, s.AddKube(kubeEvent("e1", "shop", "api-0", "BackOff", "Warning", 4, t0.Add(time.Minute))))
	assert.False(t, s.AddKube(kubeEvent("e1", "shop", "api-0", "BackOff", "Warning", 4, t0.Add(time.Minute))), "a repeat adds nothing")
	// An hour later the API server has deleted e1; the same problem comes
	// back as a new Event object.
	require.True(t, s.AddKube(kubeEvent("e2", "shop", "api-0", "BackOff", "Warning", 2, t0.Add(61*time.Minute))))
	// Another reason on the same pod is another event.
	require.True(t, s.AddKube(kubeEvent("e3", "shop", "api-0", "Unhealthy", "Warning", 3, t0.Add(2*time.Minute))))

	p := list(t, s, Filter{})
	require.Equal(t, 2, p.Total)
	require.Len(t, p.Items, 2)
	assert.Equal(t, "Unhealthy", p.Items[0].Reason, "latest change first")
	back := p.Items[1]
	assert.Equal(t, "BackOff", back.Reason)
	assert.Equal(t, 6, back.Count, "4 from e1 plus 2 from e2")
	assert.Equal(t, t0.Add(61*time.Minute), back.Time)
	assert.Equal(t, "api-0", back.Pod)
	assert.Equal(t, "node-1", back.Node)
	assert.Equal(t, model.SeverityWarning, back.Severity)
	assert.Equal(t, &ObjectRef{Kind: "Pod", Name: "api-0"}, back.Object)
	assert.Equal(t, SourceKubernetes, back.Source)
}

func TestModelEvents(t *testing.T) {
	s, c := newTestStore(Options{})
	xid := func(sev string, at time.Time) *model.Event {
		return &model.Event{Type: model.EventGPUXid, Severity: sev, Timestamp: at, Node: "gpu-1", Source: "gpu:0", Message: "GPU 0 reported XID 79"}
	}
	require.True(t, s.AddModel(xid(model.SeverityCritical, t0), SourceAgent))
	require.True(t, s.AddModel(xid(model.SeverityCritical, t0.Add(time.Second)), SourceAgent))
	require.True(t, s.AddModel(xid(model.SeverityWarning, t0), SourceAgent))
	// A clock far ahead is replaced by the time of arrival.
	require.True(t, s.AddModel(&model.Event{Type: model.EventThresholdCrossed, Severity: model.SeverityWarning,
		Timestamp: t0.Add(48 * time.Hour), Node: "gpu-1", Source: "gpu:1:temperature", Message: "hot"}, SourceAgent))
	require.True(t, s.AddModel(&model.Event{Type: model.EventPodRestarting, Severity: "bogus", Timestamp: t0,
		Node: "n2", Namespace: "shop", Name: "api-0", Message: "restarted"}, SourceAggregator))
	require.True(t, s.AddModel(&model.Event{Type: model.EventVMStopped, Severity: model.SeverityInfo, Timestamp: t0,
		Namespace: "vms", Name: "vm-1", Message: "stopped"}, SourceAggregator))
	require.True(t, s.AddModel(&model.Event{Type: model.EventClusterHealthChanged, Severity: model.SeverityInfo, Timestamp: t0, Message: "healthy"}, SourceAggregator))
	assert.False(t, s.AddModel(&model.Event{Severity: model.SeverityInfo}, SourceAgent), "no type")

	gpu := list(t, s, Filter{Node: "gpu-1", ObjectKind: "GPU"})
	require.Equal(t, 3, gpu.Total)
	hot := gpu.Items[0]
	assert.Equal(t, &ObjectRef{Kind: "GPU", Name: "gpu:1"}, hot.Object)
	assert.Equal(t, c.Now(), hot.Time)
	crit := gpu.Items[2]
	assert.Equal(t, 2, crit.Count, "same GPU, reason and severity fold")
	assert.Equal(t, TypeWarning, crit.Type)
	assert.Equal(t, "GPUXid", crit.Reason)

	pod := list(t, s, Filter{Namespace: "shop", Pod: "api-0"})
	require.Equal(t, 1, pod.Total)
	assert.Equal(t, model.SeverityWarning, pod.Items[0].Severity, "an unknown severity reads as warning")
	vm := list(t, s, Filter{ObjectKind: "VirtualMachine", ObjectName: "vm-1"})
	require.Equal(t, 1, vm.Total)
	assert.Equal(t, TypeNormal, vm.Items[0].Type)
	assert.Empty(t, vm.Items[0].Pod)
	all := list(t, s, Filter{Type: TypeNormal})
	assert.Equal(t, 2, all.Total)
}

func TestBounds(t *testing.T) {
	t.Run("per object", func(t *testing.T) {
		s, _ := newTestStore(Options{})
		for i := range MaxPerObject + 5 {
			s.AddKube(kubeEvent(fmt.Sprint("u", i), "shop", "api-0", fmt.Sprint("Reason", i), "Normal", 1, t0))
		}
		s.AddKube(kubeEvent("other", "shop", "web-0", "BackOff", "Warning", 1, t0))
		assert.Equal(t, MaxPerObject+1, s.Len())
		p := list(t, s, Filter{Pod: "api-0", Limit: MaxLimit})
		assert.Equal(t, MaxPerObject, p.Total)
		assert.Equal(t, "Reason5", p.Items[len(p.Items)-1].Reason, "the least recently seen went first")
		assert.Equal(t, uint64(5), s.Evicted()["per-object"])
	})
	t.Run("total", func(t *testing.T) {
		s, _ := newTestStore(Options{MaxEvents: 50})
		for i := range 500 {
			s.AddKube(kubeEvent(fmt.Sprint("u", i), "shop", fmt.Sprint("p", i), "BackOff", "Warning", 1, t0))
			// Keep one event busy: it must survive as the most recent.
			s.AddKube(kubeEvent("hot", "shop", "hot", "BackOff", "Warning", int32(i+1), t0))
		}
		assert.Equal(t, 50, s.Len())
		p := list(t, s, Filter{Pod: "hot"})
		require.Equal(t, 1, p.Total)
		assert.Equal(t, 500, p.Items[0].Count)
		assert.LessOrEqual(t, len(s.log), 2*50+64+50, "stale slots are compacted")
	})
	t.Run("retention", func(t *testing.T) {
		s, c := newTestStore(Options{Retention: time.Hour})
		assert.False(t, s.AddKube(kubeEvent("old", "shop", "api-0", "BackOff", "Warning", 1, t0.Add(-2*time.Hour))), "older than retention")
		s.AddKube(kubeEvent("a", "shop", "api-0", "BackOff", "Warning", 1, t0))
		c.Advance(90 * time.Minute)
		assert.Zero(t, list(t, s, Filter{}).Total, "expired events are not listed")
		s.AddKube(kubeEvent("b", "shop", "web-0", "BackOff", "Warning", 1, c.Now()))
		assert.Equal(t, 1, s.Len(), "and are swept")
		assert.Equal(t, uint64(1), s.Evicted()["retention"])
	})
	t.Run("message", func(t *testing.T) {
		s, _ := newTestStore(Options{})
		e := kubeEvent("a", "shop", "api-0", "BackOff", "Warning", 1, t0)
		e.Message = strings.Repeat("x", 10*MaxMessage)
		e.InvolvedObject.Name = strings.Repeat("n", 1000)
		s.AddKube(e)
		got := list(t, s, Filter{}).Items[0]
		assert.LessOrEqual(t, len(got.Message), MaxMessage)
		assert.LessOrEqual(t, len(got.Pod), maxField)
	})
}

func TestPagination(t *testing.T) {
	s, _ := newTestStore(Options{})
	for i := range 25 {
		s.AddKube(kubeEvent(fmt.Sprint("u", i), "shop", fmt.Sprint("p", i), "BackOff", "Warning", 1, t0.Add(time.Duration(i)*time.Second)))
	}
	s.AddKube(kubeEvent("n", "other", "x", "Pulled", "Normal", 1, t0))
	var seen []string
	f := Filter{Namespace: "shop", Limit: 10}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		p := list(t, s, f)
		assert.Equal(t, 25, p.Total)
		assert.Equal(t, len(p.Items), p.Count)
		for _, e := range p.Items {
			seen = append(seen, e.Pod)
		}
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	require.Len(t, seen, 25)
	assert.Equal(t, "p24", seen[0])
	assert.Equal(t, "p0", seen[24])

	_, err := s.List(Filter{After: "zzz"})
	assert.ErrorIs(t, err, ErrBadCursor)
	_, err = s.List(Filter{After: "abc-12"})
	assert.ErrorIs(t, err, ErrOldCursor)
}

func TestSince(t *testing.T) {
	s, _ := newTestStore(Options{})
	assert.Empty(t, s.Latest())
	for i := range 5 {
		s.AddKube(kubeEvent(fmt.Sprint("u", i), "shop", fmt.Sprint("p", i), "BackOff", "Warning", 1, t0))
	}
	evs, cur, err := s.Since("", Filter{}, 3)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	assert.Equal(t, "p0", evs[0].Pod, "oldest change first")
	evs, cur, err = s.Since(cur, Filter{}, 3)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, s.Latest(), cur)

	// p1 recurs: it comes again, after the cursor, with its new count.
	s.AddKube(kubeEvent("u1", "shop", "p1", "BackOff", "Warning", 3, t0))
	evs, _, err = s.Since(cur, Filter{}, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, 3, evs[0].Count)

	evs, _, err = s.Since("other-3", Filter{Pod: "p4"}, 10)
	require.NoError(t, err, "a cursor from another run replays what is held")
	assert.Len(t, evs, 1)
	_, _, err = s.Since("nonsense", Filter{}, 10)
	assert.ErrorIs(t, err, ErrBadCursor)
}

func TestChangedWakes(t *testing.T) {
	s, _ := newTestStore(Options{})
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	s.AddKube(kubeEvent("u", "shop", "p", "BackOff", "Warning", 1, t0))
	select {
	case <-ch:
	default:
		t.Fatal("not closed by a change")
	}
}

func TestConcurrentAddAndList(t *testing.T) {
	s, _ := newTestStore(Options{MaxEvents: 100})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				s.AddKube(kubeEvent(fmt.Sprint(w, "-", i), "shop", fmt.Sprint("p", i%50), "BackOff", "Warning", 1, t0))
				_, _ = s.List(Filter{Limit: 5})
				_, _, _ = s.Since("", Filter{}, 5)
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, s.Len(), 100)
}

func BenchmarkAddKube(b *testing.B) {
	s := NewStore(Options{})
	evs := make([]*corev1.Event, 5000)
	for i := range evs {
		evs[i] = kubeEvent(fmt.Sprint("u", i), "shop", fmt.Sprint("p", i%2000), fmt.Sprint("R", i%3), "Warning", 1, time.Now())
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := evs[i%len(evs)]
		e.Count++
		s.AddKube(e)
		i++
	}
}

func BenchmarkListFull(b *testing.B) {
	s := NewStore(Options{})
	for i := range DefaultMaxEvents {
		s.AddKube(kubeEvent(fmt.Sprint("u", i), fmt.Sprint("ns", i%100), fmt.Sprint("p", i), "BackOff", "Warning", 1, time.Now()))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.List(Filter{Namespace: "ns7", Pod: "p7"}); err != nil {
			b.Fatal(err)
		}
	}
}

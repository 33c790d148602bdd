package kube

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// seenPods records what a pod handler was told.
type seenPods struct {
	mu                   sync.Mutex
	added, updated, gone []string
}

func (s *seenPods) handler() cache.ResourceEventHandler {
	key := func(obj any) string {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			return t.Key
		}
		m, _ := obj.(metav1.Object)
		return m.GetNamespace() + "/" + m.GetName()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.mu.Lock(); s.added = append(s.added, key(obj)); s.mu.Unlock() },
		UpdateFunc: func(_, obj any) { s.mu.Lock(); s.updated = append(s.updated, key(obj)); s.mu.Unlock() },
		DeleteFunc: func(obj any) { s.mu.Lock(); s.gone = append(s.gone, key(obj)); s.mu.Unlock() },
	}
}

func (s *seenPods) snapshot() (added, updated, gone []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.added...), append([]string(nil), s.updated...), append([]string(nil), s.gone...)
}

func TestPodHandlers(t *testing.T) {
	tests := []struct {
		name       string
		namespaces []string
		added      []string
	}{
		{"all namespaces", nil, []string{"a/pa", "c/pc"}},
		{"namespaces a and b", []string{"a", "b"}, []string{"a/pa"}}, // c is not watched
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := fake.NewClientset(pod("a", "pa"), pod("c", "pc"), node("n1"))
			c := New(kc, nil, discard())
			var seen seenPods
			require.NoError(t, c.AddPodHandler(seen.handler()))
			startCluster(t, c, tt.namespaces)
			require.ErrorIs(t, c.AddPodHandler(seen.handler()), ErrStarted)

			ctx := context.Background()
			p, err := kc.CoreV1().Pods("a").Get(ctx, "pa", metav1.GetOptions{})
			require.NoError(t, err)
			p.Labels = map[string]string{"v": "2"}
			_, err = kc.CoreV1().Pods("a").Update(ctx, p, metav1.UpdateOptions{})
			require.NoError(t, err)
			require.NoError(t, kc.CoreV1().Pods("a").Delete(ctx, "pa", metav1.DeleteOptions{}))
			require.Eventually(t, func() bool { _, _, gone := seen.snapshot(); return len(gone) == 1 }, waitFor, tick)

			added, updated, gone := seen.snapshot()
			assert.ElementsMatch(t, tt.added, added)
			assert.Equal(t, []string{"a/pa"}, updated)
			assert.Equal(t, []string{"a/pa"}, gone)
		})
	}
}

func TestLookup(t *testing.T) {
	kc := fake.NewClientset(pod("a", "pa"), pod("c", "pc"), node("n1"))
	c := New(kc, nil, discard())
	assert.Nil(t, c.Pod("a", "pa"), "before Start")
	assert.Nil(t, c.Node("n1"))
	startCluster(t, c, []string{"a", "b"})
	require.NotNil(t, c.Pod("a", "pa"))
	assert.Equal(t, "pa", c.Pod("a", "pa").Name)
	assert.Nil(t, c.Pod("c", "pc"), "namespace c is not watched")
	assert.Nil(t, c.Pod("a", "nope"))
	require.NotNil(t, c.Node("n1"))
	assert.Nil(t, c.Node("n2"))
}

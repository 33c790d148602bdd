package events

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestWatcherFeedsStore(t *testing.T) {
	now := time.Now().UTC()
	kc := fake.NewClientset(
		kubeEvent("e1", "shop", "api-0", "BackOff", "Warning", 3, now),
		kubeEvent("e2", "other", "web-0", "Unhealthy", "Warning", 1, now),
	)
	s := NewStore(Options{})
	w := NewWatcher(kc, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, w.Start(ctx, []string{"shop"}))
	defer w.Stop()
	require.ErrorIs(t, w.Start(ctx, nil), ErrStarted)
	require.Eventually(t, w.Synced, waitFor, 5*time.Millisecond)
	require.Eventually(t, func() bool { return s.Len() == 1 }, waitFor, 5*time.Millisecond)

	// The API server bumps the count of the same Event; then its TTL
	// deletes it, which the store outlives.
	e := kubeEvent("e1", "shop", "api-0", "BackOff", "Warning", 7, now.Add(time.Minute))
	e.ResourceVersion = "2"
	_, err := kc.CoreV1().Events("shop").Update(ctx, e, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, _ := s.List(Filter{Pod: "api-0"})
		return p.Total == 1 && p.Items[0].Count == 7
	}, waitFor, 5*time.Millisecond)
	require.NoError(t, kc.CoreV1().Events("shop").Delete(ctx, e.Name, metav1.DeleteOptions{}))
	p, err := s.List(Filter{})
	require.NoError(t, err)
	assert.Equal(t, 1, p.Total, "only the watched namespace, kept after deletion")
	assert.Equal(t, "BackOff happened", p.Items[0].Message)
}

func TestStripEvent(t *testing.T) {
	e := kubeEvent("e1", "shop", "api-0", "BackOff", "Warning", 3, time.Now())
	e.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}
	e.Annotations = map[string]string{"a": "b"}
	got, err := stripEvent(e)
	require.NoError(t, err)
	s := NewStore(Options{})
	require.True(t, s.AddKube(got.(*corev1.Event)))
	assert.Empty(t, got.(*corev1.Event).ManagedFields)
	assert.Empty(t, got.(*corev1.Event).Annotations)
	p, _ := s.List(Filter{})
	assert.Equal(t, 3, p.Items[0].Count)
}

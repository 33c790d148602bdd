package state

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// fakeClock is a settable clock for StoreOptions.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestStorePublish(t *testing.T) {
	h := NewHistory(time.Hour, 100)
	s := NewStore(StoreOptions{History: h})
	assert.Nil(t, s.Snapshot())
	ok, reason := s.Ready()
	assert.False(t, ok)
	assert.Equal(t, NoSnapshotReason, reason)

	first := snapAt(t0, 1, []string{"n1"}, []string{"p1"})
	assert.Nil(t, s.Publish(first), "no events without a previous snapshot")
	assert.Same(t, first, s.Snapshot())
	ok, reason = s.Ready()
	assert.True(t, ok)
	assert.Empty(t, reason)

	second := snapAt(t0.Add(15*time.Second), 3, []string{"n1"}, []string{"p1"})
	events := s.Publish(second)
	require.Len(t, events, 1)
	assert.Equal(t, model.EventPodRestarting, events[0].Type)
	assert.Same(t, second, s.Snapshot())

	points, ok := s.NodeHistory("n1")
	require.True(t, ok)
	assert.Len(t, points, 2)
	pods, ok := s.PodHistory("default", "p1")
	require.True(t, ok)
	assert.Len(t, pods, 2)

	assert.Nil(t, s.Publish(nil))
	assert.Same(t, second, s.Snapshot(), "nil is not published")
}

func TestStoreWaiting(t *testing.T) {
	s := NewStore(StoreOptions{})
	s.SetWaiting("informers not synced: pods")
	_, reason := s.Ready()
	assert.Equal(t, NoSnapshotReason, reason, "no snapshot comes first")
	s.Publish(snapAt(t0, 1, []string{"n1"}, nil))
	ok, reason := s.Ready()
	assert.False(t, ok)
	assert.Equal(t, "informers not synced: pods", reason)
	s.SetWaiting("")
	ok, reason = s.Ready()
	assert.True(t, ok)
	assert.Empty(t, reason)
}

func TestStoreWithoutHistory(t *testing.T) {
	s := NewStore(StoreOptions{Standalone: true})
	s.Publish(snapAt(t0, 1, []string{"n1"}, nil))
	_, ok := s.NodeHistory("n1")
	assert.False(t, ok)
	_, ok = s.PodHistory("default", "p1")
	assert.False(t, ok)
	ready, reason := s.Ready()
	assert.True(t, ready)
	assert.Equal(t, StandaloneReason, reason)
}

func TestStoreHealthy(t *testing.T) {
	clock := &fakeClock{t: t0}
	s := NewStore(StoreOptions{MaxAge: time.Minute, Now: clock.Now})
	tests := []struct {
		name    string
		advance time.Duration
		publish bool
		healthy bool
		reason  string
	}{
		{name: "fresh start", healthy: true},
		{name: "no first snapshot within max age", advance: 61 * time.Second, healthy: false, reason: "no snapshot built for 1m1s (limit 1m0s)"},
		{name: "published", publish: true, healthy: true},
		{name: "just within max age", advance: time.Minute, healthy: true},
		{name: "build loop wedged", advance: time.Second, healthy: false, reason: "no snapshot built for 1m1s (limit 1m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Add(tt.advance)
			if tt.publish {
				s.Publish(snapAt(clock.Now(), 1, nil, nil))
			}
			ok, reason := s.Healthy()
			assert.Equal(t, tt.healthy, ok)
			assert.Equal(t, tt.reason, reason)
		})
	}
	always := NewStore(StoreOptions{})
	ok, _ := always.Healthy()
	assert.True(t, ok)
}

// TestStoreConcurrent runs readers against a publisher; the race detector
// checks that readers never see a snapshot being written.
func TestStoreConcurrent(t *testing.T) {
	s := NewStore(StoreOptions{History: NewHistory(time.Hour, 10)})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if snap := s.Snapshot(); snap != nil {
					for _, n := range snap.NodeMetrics {
						_ = n.CPUUsage
					}
				}
				_, _ = s.NodeHistory("n1")
			}
		}()
	}
	for i := 0; i < 100; i++ {
		s.Publish(Build(Inputs{Now: t0.Add(time.Duration(i) * time.Second), Reports: reports(agentReport("n1"))}))
	}
	close(stop)
	wg.Wait()
	assert.Equal(t, t0.Add(99*time.Second), s.Snapshot().Timestamp)
}

func TestStoreSettlesHealthChanges(t *testing.T) {
	s := NewStore(StoreOptions{})
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	publish := func(health string) []model.EventType {
		at = at.Add(5 * time.Second)
		var types []model.EventType
		for _, e := range s.Publish(&model.MetricsSnapshot{Timestamp: at, ClusterMetrics: &model.ClusterMetrics{HealthStatus: health}}) {
			types = append(types, e.Type)
		}
		return types
	}
	assert.Empty(t, publish(model.HealthHealthy), "start-up")
	assert.Empty(t, publish(model.HealthWarning), "one snapshot is not a change yet")
	assert.Empty(t, publish(model.HealthHealthy), "a blip back is no event at all")
	assert.Empty(t, publish(model.HealthCritical))
	assert.Empty(t, publish(model.HealthWarning), "a different health restarts the count")
	assert.Equal(t, []model.EventType{model.EventClusterHealthChanged}, publish(model.HealthWarning))
	assert.Empty(t, publish(model.HealthWarning))
	assert.Empty(t, publish(model.HealthHealthy))
	assert.Equal(t, []model.EventType{model.EventClusterHealthChanged}, publish(model.HealthHealthy))
}

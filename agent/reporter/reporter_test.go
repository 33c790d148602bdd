package reporter

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// recorder is a Sink that keeps what it was given.
type recorder struct {
	mu        sync.Mutex
	reports   []*model.NodeReport
	events    []model.Event
	connected bool
}

func (s *recorder) PublishReport(r *model.NodeReport) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, r)
	return nil
}

func (s *recorder) PublishEvent(e *model.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, *e)
	return nil
}

func (s *recorder) Delivering() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.connected {
		return false, "NATS is not connected; 1 messages buffered"
	}
	return true, ""
}

func (s *recorder) eventTypes() []model.EventType {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []model.EventType
	for _, e := range s.events {
		out = append(out, e.Type)
	}
	return out
}

// cpuSource reports a fixed CPU rate and queues one GPU-style event.
type cpuSource struct {
	rate    float64
	pending []model.Event
}

func (c *cpuSource) Name() string { return "cpu" }
func (c *cpuSource) Collect(context.Context) (collector.Apply, error) {
	return func(r *model.NodeReport) {
		r.Node.CPUCapacity, r.Node.CPUUsageRate = 2000, c.rate
	}, nil
}
func (c *cpuSource) PendingEvents() []model.Event {
	out := c.pending
	c.pending = nil
	return out
}

func newReporter(src collector.Source) *Reporter {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner := collector.NewRunner([]collector.Source{src}, time.Second, logger, nil)
	return New("node-a", 20*time.Millisecond, runner, model.DefaultThresholds(), logger, prometheus.NewRegistry())
}

func TestCycle(t *testing.T) {
	src := &cpuSource{rate: 97, pending: []model.Event{{Type: model.EventGPUXid, Node: "node-a"}}}
	r := newReporter(src)
	rep, events := r.Cycle(context.Background())
	assert.Equal(t, "node-a", rep.NodeName)
	assert.Equal(t, "node-a", rep.Node.NodeName)
	assert.Equal(t, 0.02, rep.IntervalSeconds)
	assert.False(t, rep.Node.Healthy)
	require.Len(t, rep.Sources, 1)
	var types []model.EventType
	for _, e := range events {
		types = append(types, e.Type)
	}
	assert.Equal(t, []model.EventType{model.EventThresholdCrossed, model.EventPressureRaised, model.EventGPUXid}, types)

	_, events = r.Cycle(context.Background())
	assert.Empty(t, events, "nothing changed, nothing queued")
}

func TestRunPublishesLifecycleAndReports(t *testing.T) {
	sink := &recorder{connected: true}
	r := newReporter(&cpuSource{rate: 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, sink) }()
	require.Eventually(t, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.reports) >= 2
	}, 5*time.Second, 5*time.Millisecond, "a report at once and one per interval")
	cancel()
	require.NoError(t, <-done)
	types := sink.eventTypes()
	require.GreaterOrEqual(t, len(types), 2)
	assert.Equal(t, model.EventAgentStarted, types[0])
	assert.Equal(t, model.EventAgentStopping, types[len(types)-1])
}

func TestProbes(t *testing.T) {
	sink := &recorder{}
	r := newReporter(&cpuSource{rate: 10})
	srv := httptest.NewServer(r.Handler(sink, prometheus.NewRegistry()))
	defer srv.Close()
	var body string
	get := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, get("/healthz"))
	assert.Equal(t, http.StatusServiceUnavailable, get("/readyz"), "nothing published yet")
	r.once(context.Background(), sink)
	assert.Equal(t, http.StatusServiceUnavailable, get("/readyz"), "NATS down")
	assert.Contains(t, body, "cannot deliver: NATS is not connected; 1 messages buffered")
	sink.mu.Lock()
	sink.connected = true
	sink.mu.Unlock()
	assert.Equal(t, http.StatusOK, get("/readyz"))
	assert.Equal(t, http.StatusOK, get("/metrics"))

	// A loop that stopped cycling fails liveness.
	r.now = func() time.Time { return time.Now().Add(time.Hour) }
	assert.Equal(t, http.StatusServiceUnavailable, get("/healthz"))
}

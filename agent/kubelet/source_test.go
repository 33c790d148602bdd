package kubelet

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/config"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name   string
		cfg    config.KubeletConfig
		wantIs []error
	}{
		{name: "enabled", cfg: config.KubeletConfig{Enabled: true, URL: "https://10.0.0.7:10250"}},
		{name: "disabled", cfg: config.KubeletConfig{URL: "https://10.0.0.7:10250"}, wantIs: []error{ErrDisabled, collector.ErrUnavailable}},
		{name: "no url", cfg: config.KubeletConfig{Enabled: true}, wantIs: []error{ErrNoURL, collector.ErrUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg, nil)
			if len(tt.wantIs) > 0 {
				for _, want := range tt.wantIs {
					assert.ErrorIs(t, err, want)
				}
				assert.Nil(t, s)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "kubelet", s.Name())
		})
	}
	_, err := New(config.KubeletConfig{Enabled: true}, nil)
	assert.ErrorContains(t, err, "set --kubelet-url or $NODE_IP")
}

// collect runs one Collect and applies it to a fresh report.
func collect(ctx context.Context, s *Source) (*model.NodeReport, error) {
	apply, err := s.Collect(ctx)
	r := &model.NodeReport{}
	if apply != nil {
		apply(r)
	}
	return r, err
}

func TestSourceCollectOverTLS(t *testing.T) {
	bodies := [][]byte{fixture(t, fixture1), fixture(t, fixture2)}
	var n atomic.Int32
	k := newFakeKubelet(t, func(w http.ResponseWriter, r *http.Request) {
		serve(bodies[int(n.Add(1)-1)%len(bodies)])(w, r)
	})
	token := writeFile(t, "token", []byte("sa-token"))
	s, err := New(config.KubeletConfig{Enabled: true, URL: k.URL, TokenFile: token, CAFile: k.caFile(t)}, nil)
	require.NoError(t, err)

	r, err := collect(context.Background(), s)
	require.NoError(t, err)
	require.NotNil(t, r.Kubelet)
	assert.Len(t, r.Kubelet.Pods, 4)
	assert.Equal(t, "Bearer sa-token", k.lastAuth())

	r, err = collect(context.Background(), s)
	require.NoError(t, err)
	require.NotNil(t, r.Kubelet)
	vm := byName(t, r.Kubelet)["vms/virt-launcher-testvm-abcde"]
	assert.Equal(t, int64(1100), vm.CPUUsage, "second scrape is a delta over the first")
}

func TestSourceCollectErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr []string
	}{
		{
			name:    "garbage body",
			handler: serve([]byte("\x00\x01garbage")),
			wantErr: []string{"decode stats summary from https://127.0.0.1:", "/stats/summary: invalid character"},
		},
		{
			name:    "json that is not a summary",
			handler: serve([]byte(`{"kind":"Status","status":"Failure"}`)),
			wantErr: []string{"decode stats summary from", "not a stats summary"},
		},
		{
			name: "401",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
			},
			wantErr: []string{"answered 401 Unauthorized"},
		},
		{
			name: "500",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "Internal Error: failed to get pod stats", http.StatusInternalServerError)
			},
			wantErr: []string{"answered 500 Internal Server Error: Internal Error: failed to get pod stats"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKubelet(t, tt.handler)
			s, err := New(config.KubeletConfig{Enabled: true, URL: k.URL, InsecureSkipTLSVerify: true}, nil)
			require.NoError(t, err)
			apply, err := s.Collect(context.Background())
			require.Error(t, err)
			assert.Nil(t, apply, "a failed scrape applies nothing")
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
			assert.False(t, errors.Is(err, collector.ErrUnavailable), "a failing kubelet is a failure, not an absent source")
		})
	}
}

func TestSourceHungKubelet(t *testing.T) {
	release := make(chan struct{})
	k := newFakeKubelet(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	s, err := New(config.KubeletConfig{Enabled: true, URL: k.URL, CAFile: k.caFile(t)}, nil)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	start := time.Now()
	apply, err := s.Collect(ctx)
	assert.Nil(t, apply)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestSourceSerialisesScrapes holds one scrape inside the transport (a slow
// kubelet) and checks that another cannot touch the counters meanwhile: it
// waits, and gives up at its own deadline.
func TestSourceSerialisesScrapes(t *testing.T) {
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	bodies := [][]byte{fixture(t, fixture1), fixture(t, fixture2)}
	var n atomic.Int32
	s := NewWithTransport("fake", transportFunc(func(ctx context.Context) ([]byte, error) {
		i := n.Add(1) - 1
		entered <- struct{}{}
		if i == 0 {
			<-release
		}
		return bodies[int(i)%len(bodies)], nil
	}), nil)

	type result struct {
		r   *model.NodeReport
		err error
	}
	slow := make(chan result, 1)
	go func() {
		r, err := collect(context.Background(), s)
		slow <- result{r, err}
	}()
	<-entered // the slow scrape holds the state now

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := collect(ctx, s)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "wait for the previous kubelet scrape")
	assert.Equal(t, int32(1), n.Load(), "the waiting scrape never reached the kubelet")

	close(release)
	first := <-slow
	require.NoError(t, first.err)
	assert.Len(t, first.r.Kubelet.Pods, 4)

	// Concurrent scrapes after it run one at a time; with the race detector
	// on, any unguarded access to the counters would be reported.
	results := make(chan result, 2)
	for range 2 {
		go func() {
			r, err := collect(context.Background(), s)
			results <- result{r, err}
		}()
	}
	for range 2 {
		res := <-results
		require.NoError(t, res.err)
		require.NotNil(t, res.r.Kubelet)
	}
	assert.Equal(t, int32(3), n.Load())
}

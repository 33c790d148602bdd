package gpu

import (
	"context"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/dl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/agent/collector"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// TestRealLibraryAbsent runs the real go-nvml binding on a machine without
// the NVIDIA library: the source must say so, not crash.
func TestRealLibraryAbsent(t *testing.T) {
	lib := dl.New("libnvidia-ml.so.1", dl.RTLD_LAZY|dl.RTLD_GLOBAL)
	if err := lib.Open(); err == nil {
		_ = lib.Close()
		t.Skip("libnvidia-ml.so.1 is present; this test is for nodes without it")
	}

	s := NewSource(testLogger(t), Options{})
	for range 2 {
		apply, err := s.Collect(context.Background())
		require.ErrorIs(t, err, collector.ErrUnavailable)
		assert.Contains(t, err.Error(), "libnvidia-ml.so.1")
		r := model.NodeReport{Node: model.NodeMetrics{GPUCount: 2}}
		require.NotNil(t, apply)
		apply(&r)
		assert.Equal(t, 0, r.Node.GPUCount)
	}
	assert.Empty(t, s.PendingEvents())
	require.NoError(t, s.Close())
}

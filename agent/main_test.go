package main

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// TestOnceOnThisMachine is the acceptance check: one report of this
// machine with sane numbers and a GPU source that says why it is absent.
func TestOnceOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"--once", "--node-name", "test-node", "--disable-kubelet"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	var r model.NodeReport
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	assert.Equal(t, "test-node", r.NodeName)
	assert.Positive(t, r.Node.CPUCapacity)
	assert.Zero(t, r.Node.CPUCapacity%1000)
	assert.Positive(t, r.Node.MemoryCapacity)
	assert.Positive(t, r.Node.DiskCapacity)
	for name, rate := range map[string]float64{"cpu": r.Node.CPUUsageRate, "memory": r.Node.MemoryUsageRate, "disk": r.Node.DiskUsageRate} {
		assert.True(t, rate >= 0 && rate <= 100, "%s rate %v", name, rate)
	}
	status := map[string]model.SourceStatus{}
	for _, s := range r.Sources {
		status[s.Name] = s
	}
	for _, name := range []string{"cpu", "memory", "disk", "network", "gpu", "kubelet", "cgroup"} {
		require.Contains(t, status, name)
	}
	assert.Equal(t, model.SourceOK, status["cpu"].Status)
	assert.Equal(t, model.SourceUnavailable, status["kubelet"].Status)
	assert.Contains(t, status["kubelet"].Reason, "disabled")
	if _, err := os.Stat("/dev/nvidiactl"); err != nil {
		assert.Equal(t, model.SourceUnavailable, status["gpu"].Status)
		assert.NotEmpty(t, status["gpu"].Reason)
		assert.Zero(t, r.Node.GPUCount)
	}
}

func TestUsageAndBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, out.String(), "--nats-url", "--help | less shows the flags")
	assert.Contains(t, out.String(), "--once")
	assert.Empty(t, errOut.String())
	out.Reset()

	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--interval", "10ms", "--once"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "metrics.collect_interval")

	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--nats-subject-prefix", "a..b", "--once"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "nats.subject_prefix")

	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--log-level", "loud", "--once"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "--log-level")

	out.Reset()
	assert.Equal(t, 0, run([]string{"--version"}, &out, &errOut))
	assert.Equal(t, "dev\n", out.String())

	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--no-such-flag"}, &out, &errOut))
	assert.True(t, strings.Contains(errOut.String(), "unknown flag"))
}

func TestLoopNeedsNATS(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"--disable-kubelet", "--disable-gpu", "--listen", ""}, &out, &errOut)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), "--nats-url")
}

// TestMetricsSwitches: metrics.enable_node, enable_pod and enabled turn the
// agent's sources off; each says which key did, and its numbers stay out of
// the report.
func TestMetricsSwitches(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	node := []string{"cpu", "memory", "disk", "network", "gpu"}
	pod := []string{"kubelet", "cgroup"}
	tests := []struct {
		env      string
		off      []string
		on       []string
		wantNode bool
	}{
		{env: "K8SMON_METRICS_ENABLE_NODE", off: node, on: []string{"cgroup"}},
		{env: "K8SMON_METRICS_ENABLE_POD", off: pod, on: []string{"cpu", "memory"}, wantNode: true},
		{env: "K8SMON_METRICS_ENABLED", off: append(node, pod...)},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, "false")
			var out, errOut bytes.Buffer
			code := run([]string{"--once", "--node-name", "test-node", "--node-ip", "127.0.0.1"}, &out, &errOut)
			require.Equal(t, 0, code, errOut.String())
			var r model.NodeReport
			require.NoError(t, json.Unmarshal(out.Bytes(), &r))
			status := map[string]model.SourceStatus{}
			for _, s := range r.Sources {
				status[s.Name] = s
			}
			key := strings.ToLower(strings.TrimPrefix(tt.env, "K8SMON_METRICS_"))
			for _, name := range tt.off {
				require.Contains(t, status, name)
				assert.Equal(t, model.SourceUnavailable, status[name].Status, name)
				assert.Contains(t, status[name].Reason, "metrics."+key+"=false", name)
			}
			for _, name := range tt.on {
				assert.NotContains(t, status[name].Reason, "metrics.", name)
			}
			assert.Equal(t, tt.wantNode, r.Node.CPUCapacity > 0, "node CPU in the report")
			if !tt.wantNode {
				assert.Zero(t, r.Node.MemoryCapacity)
				assert.Zero(t, r.Node.DiskCapacity)
			}
		})
	}
}

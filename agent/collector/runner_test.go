package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// fakeSource is a source whose behaviour each test chooses.
type fakeSource struct {
	name    string
	collect func(ctx context.Context) (Apply, error)
}

func (f *fakeSource) Name() string                               { return f.name }
func (f *fakeSource) Collect(ctx context.Context) (Apply, error) { return f.collect(ctx) }

func setCPU(v int64) Apply { return func(r *model.NodeReport) { r.Node.CPUUsage = v } }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRunnerStatuses(t *testing.T) {
	sources := []Source{
		&fakeSource{name: "ok", collect: func(context.Context) (Apply, error) { return setCPU(1), nil }},
		&fakeSource{name: "absent", collect: func(context.Context) (Apply, error) {
			return nil, fmt.Errorf("%w: no driver", ErrUnavailable)
		}},
		&fakeSource{name: "broken", collect: func(context.Context) (Apply, error) { return nil, errors.New("kubelet said 500") }},
		&fakeSource{name: "partial", collect: func(context.Context) (Apply, error) {
			return func(r *model.NodeReport) { r.Node.MemoryUsage = 7 }, errors.New("one field failed")
		}},
		&fakeSource{name: "panics", collect: func(context.Context) (Apply, error) { panic("bug") }},
	}
	reg := prometheus.NewRegistry()
	r := NewRunner(sources, time.Second, discard(), reg)
	rep := &model.NodeReport{Timestamp: time.Now()}
	r.Collect(context.Background(), rep)

	require.Len(t, rep.Sources, 5)
	want := map[string]model.SourceState{
		"ok": model.SourceOK, "absent": model.SourceUnavailable, "broken": model.SourceFailed,
		"partial": model.SourceFailed, "panics": model.SourceFailed,
	}
	for i, st := range rep.Sources {
		assert.Equal(t, sources[i].Name(), st.Name, "statuses keep source order")
		assert.Equal(t, want[st.Name], st.Status, st.Name)
	}
	assert.Equal(t, int64(1), rep.Node.CPUUsage)
	assert.Equal(t, int64(7), rep.Node.MemoryUsage, "partial data is kept")
	assert.Contains(t, rep.Sources[1].Reason, "no driver")
	assert.Contains(t, rep.Sources[4].Reason, "panicked")
	assert.False(t, rep.Sources[0].LastSuccess.IsZero())
	assert.True(t, rep.Sources[2].LastSuccess.IsZero())
	// up is 0 only for sources that should work: the absent one is apart.
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP k8smon_agent_source_unavailable 1 when the source is absent on this node (no GPU driver, disabled by configuration), which is not an error; else 0.
# TYPE k8smon_agent_source_unavailable gauge
k8smon_agent_source_unavailable{source="absent"} 1
k8smon_agent_source_unavailable{source="broken"} 0
k8smon_agent_source_unavailable{source="ok"} 0
k8smon_agent_source_unavailable{source="panics"} 0
k8smon_agent_source_unavailable{source="partial"} 0
# HELP k8smon_agent_source_up 1 when the source's last collection succeeded, 0 when it failed; absent while the source is unavailable on this node.
# TYPE k8smon_agent_source_up gauge
k8smon_agent_source_up{source="broken"} 0
k8smon_agent_source_up{source="ok"} 1
k8smon_agent_source_up{source="panics"} 0
k8smon_agent_source_up{source="partial"} 0
`), "k8smon_agent_source_up", "k8smon_agent_source_unavailable"))
}

// TestRunnerSourceUpFollowsState: a source that becomes unavailable leaves
// source_up, and comes back to it when it works again.
func TestRunnerSourceUpFollowsState(t *testing.T) {
	var state error
	src := &fakeSource{name: "gpu", collect: func(context.Context) (Apply, error) { return nil, state }}
	reg := prometheus.NewRegistry()
	r := NewRunner([]Source{src}, time.Second, discard(), reg)
	steps := []struct {
		err             error
		wantUp          int // series count
		wantUnavailable float64
	}{
		{nil, 1, 0},
		{fmt.Errorf("%w: driver unloaded", ErrUnavailable), 0, 1},
		{errors.New("nvml timeout"), 1, 0},
	}
	for i, st := range steps {
		state = st.err
		r.Collect(context.Background(), &model.NodeReport{Timestamp: time.Now()})
		assert.Equal(t, st.wantUp, testutil.CollectAndCount(r.up), "step %d", i)
		assert.Equal(t, st.wantUnavailable, testutil.ToFloat64(r.unavailable.WithLabelValues("gpu")), "step %d", i)
	}
}

func TestRunnerHungSourceDoesNotBlock(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	started := make(chan struct{}, 4)
	hung := &fakeSource{name: "disk", collect: func(context.Context) (Apply, error) {
		started <- struct{}{}
		<-release // ignores its context, like a statfs on a dead NFS server
		return nil, nil
	}}
	fine := &fakeSource{name: "cpu", collect: func(context.Context) (Apply, error) { return setCPU(250), nil }}
	r := NewRunner([]Source{hung, fine}, 50*time.Millisecond, discard(), nil)

	rep := &model.NodeReport{Timestamp: time.Now()}
	r.Collect(context.Background(), rep)
	require.Len(t, rep.Sources, 2)
	assert.Equal(t, model.SourceFailed, rep.Sources[0].Status)
	assert.Contains(t, rep.Sources[0].Reason, "did not answer within 50ms")
	assert.Equal(t, model.SourceOK, rep.Sources[1].Status)
	assert.Equal(t, int64(250), rep.Node.CPUUsage)

	// The next cycle does not start a second stuck call.
	rep2 := &model.NodeReport{Timestamp: time.Now()}
	r.Collect(context.Background(), rep2)
	assert.Equal(t, model.SourceFailed, rep2.Sources[0].Status)
	assert.Contains(t, rep2.Sources[0].Reason, "still running")
	assert.Len(t, started, 1, "the hung source was called once")
}

func TestRunnerSourceRecoversAfterHang(t *testing.T) {
	release := make(chan struct{})
	calls := 0
	src := &fakeSource{name: "kubelet", collect: func(ctx context.Context) (Apply, error) {
		calls++
		if calls == 1 {
			<-release
			return nil, nil
		}
		return setCPU(3), nil
	}}
	r := NewRunner([]Source{src}, 20*time.Millisecond, discard(), nil)
	r.Collect(context.Background(), &model.NodeReport{})
	close(release)
	require.Eventually(t, func() bool {
		rep := &model.NodeReport{}
		r.Collect(context.Background(), rep)
		return rep.Sources[0].Status == model.SourceOK && rep.Node.CPUUsage == 3
	}, 5*time.Second, 10*time.Millisecond)
}

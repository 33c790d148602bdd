package collector

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// withAggregateDelta returns stat with its aggregate cpu line moved by d
// (user nice system idle iowait irq softirq steal guest guest_nice).
func withAggregateDelta(t *testing.T, stat string, d [10]int64) string {
	t.Helper()
	first, rest, ok := strings.Cut(stat, "\n")
	require.True(t, ok)
	f := strings.Fields(first)
	require.Equal(t, "cpu", f[0])
	require.Len(t, f, 11)
	out := []string{"cpu "}
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		out = append(out, strconv.FormatInt(v+d[i], 10))
	}
	return strings.Join(out, " ") + "\n" + rest
}

func TestCPUSourceRecordedDelta(t *testing.T) {
	tests := []struct {
		fixture      string
		wantCapacity int64
		wantUsage    int64
		wantRate     float64
		wantLoad     model.LoadAverage
	}{
		{
			// Recorded about 2 s apart on a 2-CPU host that was fully busy:
			// total 122362 → 122793 (Δ431), idle+iowait 55346 → 55346 (Δ0),
			// busy 431/431 = 100 % of 2000 m.
			fixture: "host1", wantCapacity: 2000, wantUsage: 2000, wantRate: 100,
			wantLoad: model.LoadAverage{Load1: 4.76, Load5: 2.90, Load15: 1.30},
		},
		{
			// 8 CPUs × 1000 ticks: Δtotal 8000 (user 2400, system 800,
			// idle 4400, iowait 160, softirq 160, steal 80), Δidle+iowait
			// 4560, busy 3440/8000 = 43 % of 8000 m = 3440 m.
			fixture: "k8snode", wantCapacity: 8000, wantUsage: 3440, wantRate: 43,
			wantLoad: model.LoadAverage{Load1: 3.17, Load5: 2.84, Load15: 2.65},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			root := copyFixture(t, tt.fixture)
			s := NewCPUSource(NewHostPaths(root))
			advanceFixture(t, root, "proc/stat")

			var r model.NodeReport
			require.NoError(t, collectInto(t, context.Background(), s, &r))
			assert.Equal(t, tt.wantCapacity, r.Node.CPUCapacity)
			assert.Equal(t, tt.wantUsage, r.Node.CPUUsage)
			assert.InDelta(t, tt.wantRate, r.Node.CPUUsageRate, 1e-9)
			require.NotNil(t, r.Node.Load)
			assert.Equal(t, tt.wantLoad, *r.Node.Load)
		})
	}
}

func TestCPUSourceDeltaMath(t *testing.T) {
	// Deltas of the k8snode aggregate line: 8 CPUs, capacity 8000 m.
	tests := []struct {
		name      string
		delta     [10]int64
		wantUsage int64
		wantRate  float64
	}{
		{
			// Δtotal 1000+500+5500+1000 = 8000, busy = 8000−5500−1000 = 1500:
			// 18.75 % of 8000 m.
			name:  "user and system",
			delta: [10]int64{1000, 0, 500, 5500, 1000}, wantUsage: 1500, wantRate: 18.75,
		},
		{
			// guest time is inside user already: Δtotal 4000+4000 = 8000,
			// busy 4000 → 50 %, not 8000/12000.
			name:  "guest counted once",
			delta: [10]int64{4000, 0, 0, 4000, 0, 0, 0, 0, 4000}, wantUsage: 4000, wantRate: 50,
		},
		{
			// irq, softirq and steal are busy: 400+400+1200 = 2000 of 8000.
			name:  "irq softirq steal",
			delta: [10]int64{0, 0, 0, 6000, 0, 400, 400, 1200}, wantUsage: 2000, wantRate: 25,
		},
		{
			name:  "iowait is idle",
			delta: [10]int64{0, 0, 0, 0, 8000}, wantUsage: 0, wantRate: 0,
		},
		{
			// busy 1 of 3 ticks: 8000/3 = 2666.67 m, rounded.
			name:  "rounding",
			delta: [10]int64{1, 0, 0, 2}, wantUsage: 2667, wantRate: 100.0 / 3,
		},
		{
			// nohz can make idle step back a little: busy is capped at the
			// total, never above 100 %.
			name:  "idle stepped back",
			delta: [10]int64{500, 0, 0, -10}, wantUsage: 8000, wantRate: 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyFixture(t, "k8snode")
			s := NewCPUSource(NewHostPaths(root))
			stat := readFixture(t, root, "proc/stat")
			writeFixture(t, root, "proc/stat", withAggregateDelta(t, stat, tt.delta))

			var r model.NodeReport
			require.NoError(t, collectInto(t, context.Background(), s, &r))
			assert.Equal(t, int64(8000), r.Node.CPUCapacity)
			assert.Equal(t, tt.wantUsage, r.Node.CPUUsage)
			assert.InDelta(t, tt.wantRate, r.Node.CPUUsageRate, 1e-9)
		})
	}
}

func TestCPUSourceWithoutDelta(t *testing.T) {
	t.Run("no tick since the prime reading", func(t *testing.T) {
		root := copyFixture(t, "k8snode")
		s := NewCPUSource(NewHostPaths(root))
		var r model.NodeReport
		err := collectInto(t, context.Background(), s, &r)
		require.ErrorIs(t, err, ErrUnavailable)
		assert.ErrorContains(t, err, "no cpu time elapsed")
		assert.Equal(t, int64(8000), r.Node.CPUCapacity, "capacity is known without a delta")
		assert.NotNil(t, r.Node.Load)
	})

	t.Run("no tick since a computed value repeats it", func(t *testing.T) {
		root := copyFixture(t, "k8snode")
		s := NewCPUSource(NewHostPaths(root))
		advanceFixture(t, root, "proc/stat")
		var r1, r2 model.NodeReport
		require.NoError(t, collectInto(t, context.Background(), s, &r1))
		require.NoError(t, collectInto(t, context.Background(), s, &r2))
		assert.Equal(t, int64(3440), r2.Node.CPUUsage)
		assert.Equal(t, r1.Node.CPUUsageRate, r2.Node.CPUUsageRate)
	})

	t.Run("counters reset start a new baseline", func(t *testing.T) {
		root := copyFixture(t, "k8snode")
		stat := readFixture(t, root, "proc/stat")
		next := readFixture(t, root, "proc/stat.next")
		writeFixture(t, root, "proc/stat", next)
		s := NewCPUSource(NewHostPaths(root))
		writeFixture(t, root, "proc/stat", stat) // lower than the prime reading

		var r model.NodeReport
		err := collectInto(t, context.Background(), s, &r)
		require.ErrorIs(t, err, ErrUnavailable)
		assert.ErrorContains(t, err, "needs a second reading")

		writeFixture(t, root, "proc/stat", next)
		require.NoError(t, collectInto(t, context.Background(), s, &r))
		assert.Equal(t, int64(3440), r.Node.CPUUsage)
	})

	t.Run("prime failed", func(t *testing.T) {
		root := copyFixture(t, "k8snode")
		stat := readFixture(t, root, "proc/stat")
		require.NoError(t, os.Remove(filepath.Join(root, "proc/stat")))
		s := NewCPUSource(NewHostPaths(root))

		_, err := s.Collect(context.Background())
		require.ErrorContains(t, err, "read cpu counters")
		assert.NotErrorIs(t, err, ErrUnavailable)

		writeFixture(t, root, "proc/stat", stat)
		_, err = s.Collect(context.Background())
		require.ErrorIs(t, err, ErrUnavailable)
		advanceFixture(t, root, "proc/stat")
		var r model.NodeReport
		require.NoError(t, collectInto(t, context.Background(), s, &r))
		assert.Equal(t, int64(3440), r.Node.CPUUsage)
	})
}

func TestCPUSourceErrors(t *testing.T) {
	tests := []struct {
		name    string
		stat    string // "" removes the file
		wantErr string
	}{
		{name: "no stat", wantErr: "read cpu counters"},
		{name: "no cpu lines", stat: "intr 1 2 3\nctxt 4\n", wantErr: "does not contain cpu info"},
		{name: "no per-cpu lines", stat: "cpu  1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\n", wantErr: "no cpu lines"},
		{name: "garbage counter", stat: "cpu  1 2 x 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", wantErr: "field 3"},
		{name: "garbage per-cpu counter", stat: "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 x 6 7 8 0 0\n", wantErr: "field 5 for cpu0"},
		// gopsutil wants the seven counters every kernel since 2.6 prints.
		{name: "too few columns", stat: "cpu  1 2 3\ncpu0 1 2 3\n", wantErr: "does not contain cpu info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := copyFixture(t, "host1")
			s := NewCPUSource(NewHostPaths(root))
			if tt.stat == "" {
				require.NoError(t, os.Remove(filepath.Join(root, "proc/stat")))
			} else {
				writeFixture(t, root, "proc/stat", tt.stat)
			}
			apply, err := s.Collect(context.Background())
			require.ErrorContains(t, err, tt.wantErr)
			assert.Nil(t, apply)
		})
	}
}

// TestCPUSourceLoadFallback removes /proc/loadavg: gopsutil then asks the
// kernel through sysinfo(2), whose load is the host's (not namespaced).
func TestCPUSourceLoadFallback(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sysinfo(2) is Linux")
	}
	root := copyFixture(t, "host1")
	s := NewCPUSource(NewHostPaths(root))
	advanceFixture(t, root, "proc/stat")
	require.NoError(t, os.Remove(filepath.Join(root, "proc/loadavg")))
	var r model.NodeReport
	require.NoError(t, collectInto(t, context.Background(), s, &r))
	require.NotNil(t, r.Node.Load)
	assert.GreaterOrEqual(t, r.Node.Load.Load1, 0.0)
	assert.Equal(t, int64(2000), r.Node.CPUUsage)
}

func TestCPUSourceCapacityFollowsHotplug(t *testing.T) {
	// Capacity counts the cpuN lines of each reading: an offlined CPU
	// disappears from /proc/stat.
	root := copyFixture(t, "k8snode")
	s := NewCPUSource(NewHostPaths(root))
	var lines []string
	for _, l := range strings.SplitAfter(readFixture(t, root, "proc/stat.next"), "\n") {
		if !strings.HasPrefix(l, "cpu7 ") {
			lines = append(lines, l)
		}
	}
	writeFixture(t, root, "proc/stat", strings.Join(lines, ""))
	var r model.NodeReport
	require.NoError(t, collectInto(t, context.Background(), s, &r))
	assert.Equal(t, int64(7000), r.Node.CPUCapacity)
	// busy 3440/8000 of the aggregate, now spread over 7 CPUs: 3010 m.
	assert.Equal(t, int64(3010), r.Node.CPUUsage)
}

func TestCPUSourceCanceled(t *testing.T) {
	root := copyFixture(t, "host1")
	s := NewCPUSource(NewHostPaths(root))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	apply, err := s.Collect(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, apply)
}

package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

func ptr[T any](v T) *T { return &v }

// fullReport has every kind of reading an agent sends, all in range.
func fullReport(node string) *model.NodeReport {
	r := sampleReport(node)
	r.Node.Timestamp = at
	r.Node.CPUUsage, r.Node.CPUUsageRate = 1000, 25
	r.Node.MemoryCapacity, r.Node.MemoryUsage, r.Node.MemoryUsageRate = 64<<30, 16<<30, 25
	r.Node.DiskCapacity, r.Node.DiskUsage, r.Node.DiskUsageRate = 1<<40, 1<<39, 50
	r.Node.NetworkBandwidth = 1.2e8
	r.Node.Load = &model.LoadAverage{Load1: 2, Load5: 1.5, Load15: 1}
	r.Node.GPUCount = 1
	r.Node.GPUUsage, r.Node.GPUMemoryTotal, r.Node.GPUMemoryUsed = []float64{87}, []int64{80 << 30}, []int64{71 << 30}
	r.Node.GPUs = []model.GPUMetrics{{Index: 0, UtilizationRate: 87, MemoryUtilization: 55, MemoryTotal: 80 << 30, MemoryUsed: 71 << 30,
		MemoryUsageRate: 88.7, TemperatureC: 64, PowerWatts: 512, PowerLimitWatts: 700, ECCCorrected: ptr[uint64](3), ECCUncorrected: ptr[uint64](0)}}
	// An EFS mount reports 8 EiB: storage sizes are only non-negative.
	r.Node.Disks = []model.DiskMetrics{{MountPoint: "/", Capacity: math.MaxInt64 - 1<<20, Used: 1 << 30, Free: 1 << 40, UsageRate: 0.1, Inodes: math.MaxUint64, InodesRate: 1, Available: true}}
	r.Node.Interfaces = []model.InterfaceMetrics{{Name: "eth0", RxBytesPerSec: 4.1e7, TxBytesPerSec: 1.9e7, RxErrors: 2}}
	r.Node.CustomMetrics = map[string]any{"fans": []any{map[string]any{"rpm": 1200.0}}, "vendor": "acme"}
	r.Sources = []model.SourceStatus{{Name: "cpu", Status: model.SourceOK, DurationMs: 3, LastSuccess: at}}
	r.Kubelet = &model.KubeletStats{
		NodeFS: &model.FsStats{CapacityBytes: ptr[int64](1 << 40), UsedBytes: ptr[int64](1 << 30)},
		Pods: []model.PodStats{{Namespace: "ml", Name: "train", StartTime: at.Add(-time.Hour), CPUUsage: 500, MemoryWorkingSet: 1 << 30,
			NetworkRxBytesPerSec: 1000,
			Containers:           []model.ContainerStats{{Name: "main", CPUUsage: 500, MemoryWorkingSet: 1 << 30, RootfsUsed: 1 << 20}},
			Volumes:              []model.VolumeStats{{Name: "data", CapacityBytes: ptr[int64](10 << 30), UsedBytes: ptr[int64](1 << 30)}}}},
	}
	r.Cgroups = &model.CgroupStats{Version: 2, Driver: "systemd", Pods: []model.PodCgroupStats{{
		UID: "0b6a1c3e-8f7d-4a52-9a0e-2c1f6d7e8a90", QOSClass: "Burstable",
		Memory:     model.MemoryCgroup{OOM: 3, OOMKill: 3, Max: 14, PeakBytes: 256 << 20, LimitBytes: 256 << 20},
		Containers: []model.ContainerCgroupStats{{ID: strings.Repeat("ab", 32), Memory: model.MemoryCgroup{PeakBytes: 200 << 20}}},
	}}}
	return r
}

func nested(depth int) map[string]any {
	m := map[string]any{"v": 1.0}
	for range depth - 1 {
		m = map[string]any{"n": m}
	}
	return m
}

func TestValidateReport(t *testing.T) {
	clock := Clock{Now: at, MaxSkew: 2 * time.Minute}
	require.NoError(t, ValidateReport(fullReport("n1"), clock))

	manyValues := map[string]any{}
	for i := range MaxCustomMetricsValues + 1 {
		manyValues[fmt.Sprintf("k%d", i)] = float64(i)
	}
	tests := []struct {
		name   string
		mutate func(*model.NodeReport)
		want   error
	}{
		{"year 2100", func(r *model.NodeReport) { r.Timestamp = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrFuture},
		{"just beyond the skew", func(r *model.NodeReport) { r.Timestamp = at.Add(2*time.Minute + time.Second) }, ErrFuture},
		{"node timestamp in the future", func(r *model.NodeReport) { r.Node.Timestamp = at.Add(time.Hour) }, ErrFuture},
		{"source success in the future", func(r *model.NodeReport) { r.Sources[0].LastSuccess = at.Add(time.Hour) }, ErrFuture},
		{"pod started in the future", func(r *model.NodeReport) { r.Kubelet.Pods[0].StartTime = at.Add(time.Hour) }, ErrFuture},
		{"year 1", func(r *model.NodeReport) { r.Timestamp = time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC) }, ErrRange},
		{"interval 1e300", func(r *model.NodeReport) { r.IntervalSeconds = 1e300 }, ErrInterval},
		{"interval NaN", func(r *model.NodeReport) { r.IntervalSeconds = math.NaN() }, ErrInterval},
		{"interval negative", func(r *model.NodeReport) { r.IntervalSeconds = -15 }, ErrInterval},
		{"interval 100ms", func(r *model.NodeReport) { r.IntervalSeconds = 0.1 }, ErrInterval},
		{"interval two hours", func(r *model.NodeReport) { r.IntervalSeconds = 7200 }, ErrInterval},
		{"max int64 cpu", func(r *model.NodeReport) { r.Node.CPUCapacity = math.MaxInt64 }, ErrRange},
		{"max int64 memory", func(r *model.NodeReport) { r.Node.MemoryCapacity = math.MaxInt64 }, ErrRange},
		{"negative cpu usage", func(r *model.NodeReport) { r.Node.CPUUsage = -500 }, ErrRange},
		{"negative memory usage", func(r *model.NodeReport) { r.Node.MemoryUsage = -1 }, ErrRange},
		{"negative disk usage", func(r *model.NodeReport) { r.Node.DiskUsage = -1 }, ErrRange},
		{"cpu rate 104", func(r *model.NodeReport) { r.Node.CPUUsageRate = 104 }, ErrRange},
		{"negative memory rate", func(r *model.NodeReport) { r.Node.MemoryUsageRate = -3 }, ErrRange},
		{"bandwidth +Inf", func(r *model.NodeReport) { r.Node.NetworkBandwidth = math.Inf(1) }, ErrRange},
		{"load NaN", func(r *model.NodeReport) { r.Node.Load.Load5 = math.NaN() }, ErrRange},
		{"gpu count max int", func(r *model.NodeReport) { r.Node.GPUCount = math.MaxInt }, ErrRange},
		{"gpu utilisation 1.7e308", func(r *model.NodeReport) { r.Node.GPUs[0].UtilizationRate = 1.7e308 }, ErrRange},
		{"gpu utilisation NaN", func(r *model.NodeReport) { r.Node.GPUs[0].UtilizationRate = math.NaN() }, ErrRange},
		{"gpu utilisation -Inf", func(r *model.NodeReport) { r.Node.GPUs[0].UtilizationRate = math.Inf(-1) }, ErrRange},
		{"gpu memory utilisation 101", func(r *model.NodeReport) { r.Node.GPUs[0].MemoryUtilization = 101 }, ErrRange},
		{"seed gpu usage 1.7e308", func(r *model.NodeReport) { r.Node.GPUUsage[0] = 1.7e308 }, ErrRange},
		{"seed gpu memory negative", func(r *model.NodeReport) { r.Node.GPUMemoryUsed[0] = -1 }, ErrRange},
		{"gpu at 2147483647 C", func(r *model.NodeReport) { r.Node.GPUs[0].TemperatureC = math.MaxInt32 }, ErrRange},
		{"gpu at -300 C", func(r *model.NodeReport) { r.Node.GPUs[0].TemperatureC = -300 }, ErrRange},
		{"gpu drawing a megawatt", func(r *model.NodeReport) { r.Node.GPUs[0].PowerWatts = 1e6 }, ErrRange},
		{"gpu memory max int64", func(r *model.NodeReport) { r.Node.GPUs[0].MemoryUsed = math.MaxInt64 }, ErrRange},
		{"gpu negative index", func(r *model.NodeReport) { r.Node.GPUs[0].Index = -1 }, ErrRange},
		{"ecc count 2^64-1", func(r *model.NodeReport) { r.Node.GPUs[0].ECCUncorrected = ptr[uint64](math.MaxUint64) }, ErrRange},
		{"too many gpus", func(r *model.NodeReport) { r.Node.GPUs = make([]model.GPUMetrics, MaxGPUs+1) }, ErrRange},
		{"negative disk capacity", func(r *model.NodeReport) { r.Node.Disks[0].Capacity = -1 }, ErrRange},
		{"disk rate 250", func(r *model.NodeReport) { r.Node.Disks[0].UsageRate = 250 }, ErrRange},
		{"interface rate NaN", func(r *model.NodeReport) { r.Node.Interfaces[0].TxBytesPerSec = math.NaN() }, ErrRange},
		{"interface errors 2^64-1", func(r *model.NodeReport) { r.Node.Interfaces[0].RxDropped = math.MaxUint64 }, ErrRange},
		{"source duration negative", func(r *model.NodeReport) { r.Sources[0].DurationMs = -1 }, ErrRange},
		{"nodeFs negative", func(r *model.NodeReport) { r.Kubelet.NodeFS.UsedBytes = ptr[int64](-1) }, ErrRange},
		{"pod cpu negative", func(r *model.NodeReport) { r.Kubelet.Pods[0].CPUUsage = -1 }, ErrRange},
		{"pod memory max int64", func(r *model.NodeReport) { r.Kubelet.Pods[0].MemoryWorkingSet = math.MaxInt64 }, ErrRange},
		{"pod network +Inf", func(r *model.NodeReport) { r.Kubelet.Pods[0].NetworkTxBytesPerSec = math.Inf(1) }, ErrRange},
		{"container cpu max int64", func(r *model.NodeReport) { r.Kubelet.Pods[0].Containers[0].CPUUsage = math.MaxInt64 }, ErrRange},
		{"container logs negative", func(r *model.NodeReport) { r.Kubelet.Pods[0].Containers[0].LogsUsed = -1 }, ErrRange},
		{"volume used negative", func(r *model.NodeReport) { r.Kubelet.Pods[0].Volumes[0].UsedBytes = ptr[int64](-1) }, ErrRange},
		{"cgroup version 3", func(r *model.NodeReport) { r.Cgroups.Version = 3 }, ErrRange},
		{"cgroup driver unknown", func(r *model.NodeReport) { r.Cgroups.Driver = strings.Repeat("x", 1000) }, ErrRange},
		{"too many pod cgroups", func(r *model.NodeReport) { r.Cgroups.Pods = make([]model.PodCgroupStats, MaxCgroupPods+1) }, ErrRange},
		{"pod uid too long", func(r *model.NodeReport) { r.Cgroups.Pods[0].UID = strings.Repeat("a", MaxCgroupIDBytes+1) }, ErrRange},
		{"qos class unknown", func(r *model.NodeReport) { r.Cgroups.Pods[0].QOSClass = "Gold" }, ErrRange},
		{"too many container cgroups", func(r *model.NodeReport) {
			r.Cgroups.Pods[0].Containers = make([]model.ContainerCgroupStats, MaxCgroupContainers+1)
		}, ErrRange},
		{"container id too long", func(r *model.NodeReport) { r.Cgroups.Pods[0].Containers[0].ID = strings.Repeat("a", 4096) }, ErrRange},
		{"oom kills 2^64-1", func(r *model.NodeReport) { r.Cgroups.Pods[0].Memory.OOMKill = math.MaxUint64 }, ErrRange},
		{"container peak negative", func(r *model.NodeReport) { r.Cgroups.Pods[0].Containers[0].Memory.PeakBytes = -1 }, ErrRange},
		{"truncated negative", func(r *model.NodeReport) { r.Cgroups.Truncated = -1 }, ErrRange},
		{"custom metrics 9990 deep", func(r *model.NodeReport) { r.Node.CustomMetrics = nested(9990) }, ErrCustomMetrics},
		{"custom metrics one level too deep", func(r *model.NodeReport) { r.Node.CustomMetrics = nested(MaxCustomMetricsDepth + 1) }, ErrCustomMetrics},
		{"custom metrics too many values", func(r *model.NodeReport) { r.Node.CustomMetrics = manyValues }, ErrCustomMetrics},
		{"custom metrics too many bytes", func(r *model.NodeReport) {
			r.Node.CustomMetrics = map[string]any{"blob": strings.Repeat("x", MaxCustomMetricsBytes)}
		}, ErrCustomMetrics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullReport("n1")
			tt.mutate(r)
			err := ValidateReport(r, clock)
			require.ErrorIs(t, err, tt.want)
			assert.Less(t, len(err.Error()), 300, "an error never quotes the input at length")
		})
	}

	t.Run("limits themselves are accepted", func(t *testing.T) {
		r := fullReport("n1")
		r.Timestamp = at.Add(2 * time.Minute)
		r.IntervalSeconds = MaxInterval.Seconds()
		r.Node.CPUCapacity, r.Node.MemoryCapacity = MaxMillicores, MaxMemoryBytes
		r.Node.GPUs[0].TemperatureC, r.Node.GPUs[0].UtilizationRate = MaxTemperatureC, MaxPercent
		r.Node.CustomMetrics = nested(MaxCustomMetricsDepth)
		require.NoError(t, ValidateReport(r, clock))
	})
	t.Run("zero clock checks no present", func(t *testing.T) {
		r := fullReport("n1")
		r.Timestamp = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		require.NoError(t, ValidateReport(r, Clock{}))
	})
}

func TestDecodeReportAtRefusesFutureEnvelope(t *testing.T) {
	r := fullReport("n1")
	data, err := EncodeReport(r)
	require.NoError(t, err)
	subject := NodeReportSubject("k8smon", "n1")
	_, err = DecodeReportAt("k8smon", subject, data, Clock{Now: at, MaxSkew: time.Minute})
	require.NoError(t, err)

	future := strings.Replace(string(data), `"sentAt":"2026-11-23T12:00:00Z"`, `"sentAt":"2100-01-01T00:00:00Z"`, 1)
	require.NotEqual(t, string(data), future)
	_, err = DecodeReportAt("k8smon", subject, []byte(future), Clock{Now: at, MaxSkew: time.Minute})
	require.ErrorIs(t, err, ErrFuture)

	r.Node.GPUs[0].UtilizationRate = 1.7e308
	data, err = EncodeReport(r)
	require.NoError(t, err)
	_, err = DecodeReport("k8smon", subject, data)
	require.ErrorIs(t, err, ErrRange, "the plain decoder validates numbers too")
}

func TestEventBounds(t *testing.T) {
	subject := NodeEventSubject("k8smon", "n1")
	encode := func(e *model.Event) []byte {
		t.Helper()
		b, err := Encode(KindNodeEvent, "n1", at, e) // Encode, not EncodeEvent: an attacker does not truncate
		require.NoError(t, err)
		return b
	}
	base := func() *model.Event {
		return &model.Event{Type: model.EventGPUXid, Severity: model.SeverityCritical, Node: "n1", Timestamp: at, Message: "Xid 79", Details: map[string]string{"xid": "79"}}
	}

	long := base()
	long.Message = strings.Repeat("é", 20_000) // 40 000 bytes: under MaxEventBytes
	long.Details["why"] = strings.Repeat("y", 5000)
	got, err := DecodeNodeEvent("k8smon", subject, encode(long))
	require.NoError(t, err)
	assert.LessOrEqual(t, len(got.Message), model.MaxEventMessageBytes)
	assert.True(t, strings.HasSuffix(got.Message, "…"))
	assert.LessOrEqual(t, len(got.Details["why"]), model.MaxEventMessageBytes)

	tests := []struct {
		name   string
		mutate func(*model.Event)
		want   error
	}{
		{"one megabyte", func(e *model.Event) { e.Message = strings.Repeat("x", 1_000_000) }, ErrTooLarge},
		{"in the future", func(e *model.Event) { e.Timestamp = at.Add(time.Hour) }, ErrFuture},
		{"too many details", func(e *model.Event) {
			for i := range MaxEventDetails + 1 {
				e.Details[strings.Repeat("k", i+1)] = "v"
			}
		}, ErrRange},
		{"long source", func(e *model.Event) { e.Source = strings.Repeat("s", MaxEventFieldBytes+1) }, ErrRange},
		{"long details key", func(e *model.Event) { e.Details[strings.Repeat("k", MaxEventFieldBytes+1)] = "v" }, ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base()
			tt.mutate(e)
			_, err := DecodeNodeEventAt("k8smon", subject, encode(e), Clock{Now: at, MaxSkew: time.Minute})
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestEncodeEventTruncatesWithoutChangingTheEvent(t *testing.T) {
	e := &model.Event{Type: model.EventClusterHealthChanged, Timestamp: at, Message: strings.Repeat("m", 5000), Details: map[string]string{"issues": strings.Repeat("i", 5000)}}
	data, err := EncodeEvent(KindClusterEvent, "aggregator-0", e)
	require.NoError(t, err)
	got, err := DecodeClusterEvent(data)
	require.NoError(t, err)
	assert.Len(t, got.Message, model.MaxEventMessageBytes)
	assert.Len(t, got.Details["issues"], model.MaxEventMessageBytes)
	assert.Len(t, e.Message, 5000, "the caller's event is not modified")
	assert.Len(t, e.Details["issues"], 5000)
}

// badNumber walks an accepted message and names the first number outside
// the documented bounds, independently of ValidateReport's code: every
// float finite and non-negative, every rate at most 100, every signed
// integer non-negative except a temperature, no time before MinTime.
// It returns "" when all are in bounds.
func badNumber(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return badNumber(v.Elem(), path)
		}
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			if !tm.IsZero() && tm.Before(MinTime) {
				return fmt.Sprintf("%s: time %v", path, tm)
			}
			return ""
		}
		for i := range v.NumField() {
			if p := badNumber(v.Field(i), path+"."+v.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p := badNumber(v.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if p := badNumber(iter.Value(), path+"{}"); p != "" {
				return p
			}
		}
	case reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return fmt.Sprintf("%s: %v", path, f)
		}
		if (strings.HasSuffix(path, "Rate") || strings.HasSuffix(path, "Utilization") || strings.HasSuffix(path, "GPUUsage[]")) && f > 100 {
			return fmt.Sprintf("%s: rate %v", path, f)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if v.Int() < 0 && !strings.HasSuffix(path, "TemperatureC") {
			return fmt.Sprintf("%s: %d", path, v.Int())
		}
	}
	return ""
}

func depthOf(v any) int {
	switch x := v.(type) {
	case map[string]any:
		d := 0
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	case []any:
		d := 0
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

func TestBadNumberCatchesABadReport(t *testing.T) {
	// The fuzz property must be able to fail: reports built past the
	// validator trip it.
	assert.Empty(t, badNumber(reflect.ValueOf(fullReport("n1")), "report"))
	for _, mutate := range []func(*model.NodeReport){
		func(r *model.NodeReport) { r.Node.GPUs[0].UtilizationRate = math.NaN() },
		func(r *model.NodeReport) { r.Node.GPUs[0].MemoryUtilization = 101 },
		func(r *model.NodeReport) { r.Kubelet.Pods[0].CPUUsage = -1 },
		func(r *model.NodeReport) { r.Node.CustomMetrics = map[string]any{"x": math.Inf(1)} },
	} {
		r := fullReport("n1")
		mutate(r)
		assert.NotEmpty(t, badNumber(reflect.ValueOf(r), "report"))
	}
}

// propertySeeds are messages just inside and just outside the bounds.
func propertySeeds(f *testing.F) [][]byte {
	good, err := EncodeReport(fullReport("n1"))
	require.NoError(f, err)
	ev, err := Encode(KindNodeEvent, "n1", at, &model.Event{Type: model.EventGPUXid, Node: "n1", Timestamp: at, Message: strings.Repeat("x", 3000)})
	require.NoError(f, err)
	seeds := [][]byte{good, ev}
	for _, edit := range [][2]string{
		{`"utilizationRate":87`, `"utilizationRate":1.7e308`},
		{`"temperatureC":64`, `"temperatureC":-64`},
		{`"intervalSeconds":15`, `"intervalSeconds":1e300`},
		{`"cpuUsage":1000`, `"cpuUsage":-1000`},
		{`"rpm":1200`, `"rpm":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}`},
		{`"timestamp":"2026-11-23T12:00:00Z"`, `"timestamp":"2100-01-01T00:00:00Z"`},
	} {
		seeds = append(seeds, []byte(strings.Replace(string(good), edit[0], edit[1], 1)))
	}
	return seeds
}

// reportProblem describes what an accepted report must not hold, or "".
func reportProblem(r *model.NodeReport, c Clock) string {
	if p := badNumber(reflect.ValueOf(r), "report"); p != "" {
		return "accepted a number out of bounds at " + p
	}
	if r.IntervalSeconds != 0 && (r.IntervalSeconds < 1 || r.IntervalSeconds > 3600) {
		return fmt.Sprintf("accepted interval %v", r.IntervalSeconds)
	}
	if !c.Now.IsZero() && r.Timestamp.After(c.Now.Add(c.MaxSkew)) {
		return fmt.Sprintf("accepted a future timestamp %v", r.Timestamp)
	}
	if d := depthOf(r.Node.CustomMetrics); d > MaxCustomMetricsDepth {
		return fmt.Sprintf("accepted custom metrics %d deep", d)
	}
	if _, err := json.Marshal(r); err != nil {
		return fmt.Sprintf("an accepted report does not re-encode: %v", err)
	}
	return ""
}

// eventProblem describes what an accepted event must not hold, or "".
func eventProblem(e *model.Event, c Clock) string {
	if len(e.Message) > model.MaxEventMessageBytes || len(e.Details) > MaxEventDetails {
		return fmt.Sprintf("accepted an unbounded event: %d message bytes, %d details", len(e.Message), len(e.Details))
	}
	for _, v := range e.Details {
		if len(v) > model.MaxEventMessageBytes {
			return fmt.Sprintf("accepted a details value of %d bytes", len(v))
		}
	}
	if !c.Now.IsZero() && e.Timestamp.After(c.Now.Add(c.MaxSkew)) {
		return fmt.Sprintf("accepted a future event %v", e.Timestamp)
	}
	return ""
}

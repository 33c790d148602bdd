package wire

import (
	"fmt"
	"math"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Bounds every agent message must meet beyond its JSON shape. A message
// outside them is refused whole, so that what the aggregator stores, sums
// and serves is always finite and physically possible; docs/wire.md lists
// them for agent authors.
const (
	// MaxPercent is the top of every rate: usage, utilisation, inodes.
	MaxPercent = 100
	// MaxMillicores bounds CPU capacity and usage of a node, pod or
	// container: about a million cores, so that even 8 million nodes at
	// the bound cannot overflow a cluster total.
	MaxMillicores = 1 << 30
	// MaxMemoryBytes bounds memory (of a node, a GPU, a pod or a
	// container): 1 PiB, so that 8192 nodes at the bound still sum
	// without overflow (and totals saturate beyond).
	MaxMemoryBytes = 1 << 50
	// MaxBytesPerSec bounds network rates: 1 PiB/s.
	MaxBytesPerSec = 1 << 50
	// MaxGPUs bounds a node's GPU count and the length of its GPU lists.
	MaxGPUs = 256
	// MinTemperatureC and MaxTemperatureC bound a GPU's temperature: wider
	// than any sensor reads on a working board, so a real overheating
	// GPU is still reported.
	MinTemperatureC = -50
	MaxTemperatureC = 250
	// MaxPowerWatts bounds a GPU's power draw and limit: 10 kW.
	MaxPowerWatts = 10_000
	// MaxCount bounds event counters (ECC errors, interface errors and
	// drops): 2^53, the largest integer every JSON reader holds exactly.
	MaxCount = 1 << 53
	// MaxLoadAverage bounds the kernel's run-queue load averages.
	MaxLoadAverage = 1 << 20
	// MaxSourceDurationMs bounds a source's collection time: one day.
	MaxSourceDurationMs = 24 * 60 * 60 * 1000
	// MinInterval and MaxInterval bound a report's intervalSeconds, the
	// same bounds as metrics.collect_interval; 0 means not stated.
	MinInterval = time.Second
	MaxInterval = time.Hour
	// MaxCustomMetricsDepth and MaxCustomMetricsValues bound the nesting
	// and the number of values (map entries and array elements, at every
	// level) of a node's customMetrics; MaxCustomMetricsBytes bounds the
	// bytes of its keys and strings together.
	MaxCustomMetricsDepth  = 8
	MaxCustomMetricsValues = 1024
	MaxCustomMetricsBytes  = 64 << 10
	// MaxNodeNameBytes is the longest node name Kubernetes allows.
	MaxNodeNameBytes = 253
	// MaxEventBytes bounds a whole event message; events are a few hundred
	// bytes, so anything near a report's size is refused before decoding.
	MaxEventBytes = 64 << 10
	// MaxEventFieldBytes bounds an event's type, severity, node,
	// namespace, name and source and each details key.
	MaxEventFieldBytes = 256
	// MaxEventDetails bounds the number of an event's details; each value
	// is cut to model.MaxEventMessageBytes like the message itself.
	MaxEventDetails = 32
	// MaxCgroupPods and MaxCgroupContainers bound a report's pod cgroups
	// and each pod's container cgroups (the agent's own bounds);
	// MaxCgroupIDBytes bounds a pod UID or container ID.
	MaxCgroupPods       = 1024
	MaxCgroupContainers = 64
	MaxCgroupIDBytes    = 128
)

// MinTime is the earliest timestamp a message may carry: older times are
// a broken clock, and before 1678 they do not fit the nanosecond
// timestamps history keys its readings by.
var MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Clock is the reader's present and how far ahead of it a sender's clock
// may run. The zero Clock checks no timestamp against the present.
type Clock struct {
	Now     time.Time
	MaxSkew time.Duration
}

func (c Clock) check(field string, t time.Time) error {
	switch {
	case t.IsZero():
		return nil // absent, not wrong; required times are checked by the decoders
	case t.Before(MinTime):
		return fmt.Errorf("%w: %s %s is before %s", ErrRange, field, t.Format(time.RFC3339), MinTime.Format(time.RFC3339))
	case !c.Now.IsZero() && t.After(c.Now.Add(c.MaxSkew)):
		return fmt.Errorf("%w: %s %s is more than %s ahead of %s", ErrFuture, field, t.Format(time.RFC3339), c.MaxSkew, c.Now.UTC().Format(time.RFC3339))
	}
	return nil
}

// ValidateReport checks every number and timestamp of r against the
// bounds above and c. It returns the first problem, wrapping ErrRange,
// ErrFuture, ErrInterval or ErrCustomMetrics.
func ValidateReport(r *model.NodeReport, c Clock) error {
	if err := c.check("timestamp", r.Timestamp); err != nil {
		return err
	}
	if err := c.check("node.timestamp", r.Node.Timestamp); err != nil {
		return err
	}
	if iv := r.IntervalSeconds; iv != 0 && !(iv >= MinInterval.Seconds() && iv <= MaxInterval.Seconds()) {
		return fmt.Errorf("%w: intervalSeconds %g is outside %g..%g", ErrInterval, iv, MinInterval.Seconds(), MaxInterval.Seconds())
	}
	for i := range r.Sources {
		s := &r.Sources[i]
		if err := c.check("sources[].lastSuccess", s.LastSuccess); err != nil {
			return err
		}
		if !inRange(s.DurationMs, 0, MaxSourceDurationMs) {
			return rangeError("sources", i, "", -1, "durationMs", s.DurationMs, 0, MaxSourceDurationMs)
		}
	}
	if err := validateNode(&r.Node); err != nil {
		return err
	}
	if err := validateCustomMetrics(r.Node.CustomMetrics); err != nil {
		return err
	}
	if r.Kubelet != nil {
		if err := validateKubelet(r.Kubelet, c); err != nil {
			return err
		}
	}
	if r.Cgroups != nil {
		return validateCgroups(r.Cgroups)
	}
	return nil
}

// validateCgroups bounds the pod cgroups' counts, names and counters.
func validateCgroups(cg *model.CgroupStats) error {
	switch {
	case cg.Version != 1 && cg.Version != 2:
		return rangeError("cgroups", -1, "", -1, "version", float64(cg.Version), 1, 2)
	case cg.Driver != "" && cg.Driver != "systemd" && cg.Driver != "cgroupfs":
		return fmt.Errorf("%w: cgroups.driver is neither systemd nor cgroupfs", ErrRange)
	case len(cg.Pods) > MaxCgroupPods:
		return rangeError("cgroups", -1, "", -1, "pods length", float64(len(cg.Pods)), 0, MaxCgroupPods)
	case !inRange(float64(cg.Truncated), 0, MaxCount):
		return rangeError("cgroups", -1, "", -1, "truncated", float64(cg.Truncated), 0, MaxCount)
	}
	for i := range cg.Pods {
		p := &cg.Pods[i]
		switch {
		case len(p.UID) > MaxCgroupIDBytes:
			return rangeError("cgroups.pods", i, "", -1, "uid bytes", float64(len(p.UID)), 0, MaxCgroupIDBytes)
		case p.QOSClass != "" && p.QOSClass != "Guaranteed" && p.QOSClass != "Burstable" && p.QOSClass != "BestEffort":
			return fmt.Errorf("%w: cgroups.pods[%d].qosClass is not a QoS class", ErrRange, i)
		case len(p.Containers) > MaxCgroupContainers:
			return rangeError("cgroups.pods", i, "", -1, "containers length", float64(len(p.Containers)), 0, MaxCgroupContainers)
		}
		if err := validateMemoryCgroup(p.Memory, i, -1); err != nil {
			return err
		}
		for j := range p.Containers {
			if n := len(p.Containers[j].ID); n > MaxCgroupIDBytes {
				return rangeError("cgroups.pods", i, "containers", j, "id bytes", float64(n), 0, MaxCgroupIDBytes)
			}
			if err := validateMemoryCgroup(p.Containers[j].Memory, i, j); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateMemoryCgroup(m model.MemoryCgroup, i, j int) error {
	sub := ""
	if j >= 0 {
		sub = "containers"
	}
	for _, f := range [...]struct {
		name    string
		v, high float64
	}{
		{"memory.oom", float64(m.OOM), MaxCount}, {"memory.oomKill", float64(m.OOMKill), MaxCount},
		{"memory.max", float64(m.Max), MaxCount}, {"memory.failCount", float64(m.FailCount), MaxCount},
		{"memory.peakBytes", float64(m.PeakBytes), math.MaxInt64}, {"memory.limitBytes", float64(m.LimitBytes), math.MaxInt64},
	} {
		if !inRange(f.v, 0, f.high) {
			return rangeError("cgroups.pods", i, sub, j, f.name, f.v, 0, f.high)
		}
	}
	return nil
}

func validateNode(n *model.NodeMetrics) error {
	ints := []struct {
		name string
		v    int64
		max  float64
	}{
		{"cpuCapacity", n.CPUCapacity, MaxMillicores}, {"cpuUsage", n.CPUUsage, MaxMillicores},
		{"memoryCapacity", n.MemoryCapacity, MaxMemoryBytes}, {"memoryUsage", n.MemoryUsage, MaxMemoryBytes},
		{"diskCapacity", n.DiskCapacity, math.MaxInt64}, {"diskUsage", n.DiskUsage, math.MaxInt64},
		{"gpuCount", int64(n.GPUCount), MaxGPUs},
		{"cpuAllocatable", n.CPUAllocatable, MaxMillicores}, {"memoryAllocatable", n.MemoryAllocatable, MaxMemoryBytes},
		{"gpuAllocatable", int64(n.GPUAllocatable), MaxGPUs},
	}
	for _, f := range ints {
		if !inRange(float64(f.v), 0, f.max) {
			return rangeError("node", -1, "", -1, f.name, float64(f.v), 0, f.max)
		}
	}
	floats := []struct {
		name string
		v    float64
		max  float64
	}{
		{"cpuUsageRate", n.CPUUsageRate, MaxPercent}, {"memoryUsageRate", n.MemoryUsageRate, MaxPercent},
		{"diskUsageRate", n.DiskUsageRate, MaxPercent},
		{"networkLatency", n.NetworkLatency, MaxSourceDurationMs}, {"networkBandwidth", n.NetworkBandwidth, MaxBytesPerSec},
	}
	for _, f := range floats {
		if !inRange(f.v, 0, f.max) {
			return rangeError("node", -1, "", -1, f.name, f.v, 0, f.max)
		}
	}
	if l := n.Load; l != nil {
		for _, v := range [...]float64{l.Load1, l.Load5, l.Load15} {
			if !inRange(v, 0, MaxLoadAverage) {
				return rangeError("node", -1, "", -1, "load", v, 0, MaxLoadAverage)
			}
		}
	}
	if err := validateGPUs(n); err != nil {
		return err
	}
	for i := range n.Disks {
		d := &n.Disks[i]
		for _, v := range [...]int64{d.Capacity, d.Used, d.Free} {
			if v < 0 {
				return rangeError("node.disks", i, "", -1, "capacity, used or free", float64(v), 0, math.MaxInt64)
			}
		}
		for _, v := range [...]float64{d.UsageRate, d.InodesRate} {
			if !inRange(v, 0, MaxPercent) {
				return rangeError("node.disks", i, "", -1, "usageRate or inodesRate", v, 0, MaxPercent)
			}
		}
	}
	for i := range n.Interfaces {
		f := &n.Interfaces[i]
		for _, v := range [...]float64{f.RxBytesPerSec, f.TxBytesPerSec} {
			if !inRange(v, 0, MaxBytesPerSec) {
				return rangeError("node.interfaces", i, "", -1, "rxBytesPerSec or txBytesPerSec", v, 0, MaxBytesPerSec)
			}
		}
		for _, v := range [...]uint64{f.RxErrors, f.TxErrors, f.RxDropped, f.TxDropped} {
			if v > MaxCount {
				return rangeError("node.interfaces", i, "", -1, "error or drop count", float64(v), 0, MaxCount)
			}
		}
	}
	return nil
}

func validateGPUs(n *model.NodeMetrics) error {
	if len(n.GPUs) > MaxGPUs || len(n.GPUModels) > MaxGPUs || len(n.GPUUsage) > MaxGPUs ||
		len(n.GPUMemoryTotal) > MaxGPUs || len(n.GPUMemoryUsed) > MaxGPUs {
		return fmt.Errorf("%w: node lists more than %d GPUs", ErrRange, MaxGPUs)
	}
	for i, v := range n.GPUUsage {
		if !inRange(v, 0, MaxPercent) {
			return rangeError("node.gpuUsage", i, "", -1, "", v, 0, MaxPercent)
		}
	}
	for _, list := range [...][]int64{n.GPUMemoryTotal, n.GPUMemoryUsed} {
		for i, v := range list {
			if !inRange(float64(v), 0, MaxMemoryBytes) {
				return rangeError("node.gpuMemoryTotal or gpuMemoryUsed", i, "", -1, "", float64(v), 0, MaxMemoryBytes)
			}
		}
	}
	for i := range n.GPUs {
		g := &n.GPUs[i]
		floats := []struct {
			name    string
			v, high float64
		}{
			{"utilizationRate", g.UtilizationRate, MaxPercent}, {"memoryUtilizationRate", g.MemoryUtilization, MaxPercent},
			{"memoryUsageRate", g.MemoryUsageRate, MaxPercent},
			{"powerWatts", g.PowerWatts, MaxPowerWatts}, {"powerLimitWatts", g.PowerLimitWatts, MaxPowerWatts},
			{"memoryTotal", float64(g.MemoryTotal), MaxMemoryBytes}, {"memoryUsed", float64(g.MemoryUsed), MaxMemoryBytes},
			{"index", float64(g.Index), MaxGPUs - 1},
		}
		for _, f := range floats {
			if !inRange(f.v, 0, f.high) {
				return rangeError("node.gpus", i, "", -1, f.name, f.v, 0, f.high)
			}
		}
		if !inRange(float64(g.TemperatureC), MinTemperatureC, MaxTemperatureC) {
			return rangeError("node.gpus", i, "", -1, "temperatureC", float64(g.TemperatureC), MinTemperatureC, MaxTemperatureC)
		}
		for _, p := range [...]*uint64{g.ECCCorrected, g.ECCUncorrected} {
			if p != nil && *p > MaxCount {
				return rangeError("node.gpus", i, "", -1, "eccCorrected or eccUncorrected", float64(*p), 0, MaxCount)
			}
		}
		if g.XIDErrors > MaxCount {
			return rangeError("node.gpus", i, "", -1, "xidErrors", float64(g.XIDErrors), 0, MaxCount)
		}
	}
	return nil
}

func validateKubelet(k *model.KubeletStats, c Clock) error {
	for _, fs := range [...]*model.FsStats{k.NodeFS, k.ImageFS} {
		if fs == nil {
			continue
		}
		for _, p := range [...]*int64{fs.CapacityBytes, fs.UsedBytes, fs.AvailableBytes} {
			if p != nil && *p < 0 {
				return rangeError("kubelet.nodeFs or imageFs", -1, "", -1, "bytes", float64(*p), 0, math.MaxInt64)
			}
		}
	}
	for i := range k.Pods {
		p := &k.Pods[i]
		if err := c.check("kubelet.pods[].startTime", p.StartTime); err != nil {
			return err
		}
		floats := []struct {
			name    string
			v, high float64
		}{
			{"cpuUsage", float64(p.CPUUsage), MaxMillicores}, {"memoryWorkingSet", float64(p.MemoryWorkingSet), MaxMemoryBytes},
			{"ephemeralStorageUsage", float64(p.EphemeralStorageUsage), math.MaxInt64},
			{"networkRxBytesPerSec", p.NetworkRxBytesPerSec, MaxBytesPerSec}, {"networkTxBytesPerSec", p.NetworkTxBytesPerSec, MaxBytesPerSec},
		}
		for _, f := range floats {
			if !inRange(f.v, 0, f.high) {
				return rangeError("kubelet.pods", i, "", -1, f.name, f.v, 0, f.high)
			}
		}
		for j := range p.Containers {
			ct := &p.Containers[j]
			for _, f := range [...]struct {
				name    string
				v, high float64
			}{
				{"cpuUsage", float64(ct.CPUUsage), MaxMillicores}, {"memoryWorkingSet", float64(ct.MemoryWorkingSet), MaxMemoryBytes},
				{"rootfsUsed", float64(ct.RootfsUsed), math.MaxInt64}, {"logsUsed", float64(ct.LogsUsed), math.MaxInt64},
			} {
				if !inRange(f.v, 0, f.high) {
					return rangeError("kubelet.pods", i, "containers", j, f.name, f.v, 0, f.high)
				}
			}
		}
		for j := range p.Volumes {
			v := &p.Volumes[j]
			for _, b := range [...]*int64{v.CapacityBytes, v.UsedBytes, v.AvailableBytes} {
				if b != nil && *b < 0 {
					return rangeError("kubelet.pods", i, "volumes", j, "bytes", float64(*b), 0, math.MaxInt64)
				}
			}
		}
	}
	return nil
}

// validateCustomMetrics bounds the depth, the number of values and the
// bytes of a node's customMetrics, which are re-encoded in every snapshot.
func validateCustomMetrics(m map[string]any) error {
	if len(m) == 0 {
		return nil
	}
	w := customWalker{}
	w.walk(m, 1)
	switch {
	case w.depth > MaxCustomMetricsDepth:
		return fmt.Errorf("%w: nested deeper than %d", ErrCustomMetrics, MaxCustomMetricsDepth)
	case w.values > MaxCustomMetricsValues:
		return fmt.Errorf("%w: more than %d values", ErrCustomMetrics, MaxCustomMetricsValues)
	case w.bytes > MaxCustomMetricsBytes:
		return fmt.Errorf("%w: more than %d bytes of keys and strings", ErrCustomMetrics, MaxCustomMetricsBytes)
	}
	return nil
}

// customWalker measures a decoded JSON value, stopping early once any
// bound is passed so that a hostile value costs no more than the bound.
type customWalker struct{ depth, values, bytes int }

func (w *customWalker) over() bool {
	return w.depth > MaxCustomMetricsDepth || w.values > MaxCustomMetricsValues || w.bytes > MaxCustomMetricsBytes
}

// walk measures v, a value depth containers deep; maps and arrays count
// as a level, scalars do not.
func (w *customWalker) walk(v any, depth int) {
	switch x := v.(type) {
	case map[string]any:
		w.depth = max(w.depth, depth)
		for k, e := range x {
			w.values++
			w.bytes += len(k)
			if w.over() {
				return
			}
			w.walk(e, depth+1)
		}
	case []any:
		w.depth = max(w.depth, depth)
		for _, e := range x {
			w.values++
			if w.over() {
				return
			}
			w.walk(e, depth+1)
		}
	case string:
		w.bytes += len(x)
	}
}

// ValidateEvent checks an event's timestamp against c and bounds its
// fields; it cuts the message and each details value to
// model.MaxEventMessageBytes in place.
func ValidateEvent(e *model.Event, c Clock) error {
	if err := c.check("timestamp", e.Timestamp); err != nil {
		return err
	}
	for _, f := range [...]struct{ name, v string }{
		{"type", string(e.Type)}, {"severity", e.Severity}, {"node", e.Node},
		{"namespace", e.Namespace}, {"name", e.Name}, {"source", e.Source},
	} {
		if len(f.v) > MaxEventFieldBytes {
			return fmt.Errorf("%w: event %s is %d bytes, limit %d", ErrRange, f.name, len(f.v), MaxEventFieldBytes)
		}
	}
	if len(e.Details) > MaxEventDetails {
		return fmt.Errorf("%w: event has %d details, limit %d", ErrRange, len(e.Details), MaxEventDetails)
	}
	for k, v := range e.Details {
		if len(k) > MaxEventFieldBytes {
			return fmt.Errorf("%w: event details key is %d bytes, limit %d", ErrRange, len(k), MaxEventFieldBytes)
		}
		if len(v) > model.MaxEventMessageBytes {
			e.Details[k] = model.TruncateMessage(v)
		}
	}
	e.Message = model.TruncateMessage(e.Message)
	return nil
}

// inRange is false for NaN, ±Inf and anything outside [lo, hi].
func inRange(v, lo, hi float64) bool { return v >= lo && v <= hi }

// rangeError names the offending field without quoting more than a number.
func rangeError(list string, i int, sub string, j int, field string, v, lo, hi float64) error {
	where := list
	if i >= 0 {
		where = fmt.Sprintf("%s[%d]", list, i)
	}
	if sub != "" {
		where = fmt.Sprintf("%s.%s[%d]", where, sub, j)
	}
	if field != "" {
		where += "." + field
	}
	return fmt.Errorf("%w: %s %g is outside %g..%g", ErrRange, where, v, lo, hi)
}

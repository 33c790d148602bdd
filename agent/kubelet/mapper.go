package kubelet

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// counter is the last reading of one cumulative counter (CPU core-seconds,
// interface bytes) and the rate computed at that reading.
type counter struct {
	value uint64
	at    time.Time
	rate  float64 // per second
	ok    bool
}

// advance returns the counter's rate per second at a new reading.
//
// Between two readings the rate is the delta over the delta of their
// timestamps. On a first reading (a new pod, or every pod after the agent
// restarts), or after a reset (the value went down: the container
// restarted, the pod's sandbox was recreated), there is no previous reading.
// The rate is then instant, the source's own recent rate where it has one
// (the kubelet's usageNanoCores), and only without it the average since
// start (the counter started at 0 then): a lifetime average would show a
// pod that was busy yesterday and idle now as busy. A reading no newer than
// the last one (the kubelet serves cached stats between cAdvisor
// housekeeping runs) repeats the last rate and keeps the old reading, so
// that the next delta spans the whole interval.
func (c *counter) advance(value uint64, at, start time.Time, instant *uint64) float64 {
	switch {
	case c.ok && value >= c.value && at.After(c.at):
		c.rate = finite(float64(value-c.value) / at.Sub(c.at).Seconds())
		c.value, c.at = value, at
	case c.ok && value >= c.value:
		// Same or older reading: keep the last rate.
	default:
		c.rate = 0
		switch {
		case instant != nil:
			c.rate = float64(*instant)
		case !start.IsZero() && at.After(start):
			c.rate = finite(float64(value) / at.Sub(start).Seconds())
		}
		c.value, c.at, c.ok = value, at, true
	}
	return c.rate
}

// cpuMillicores reads a CPU block into millicores, advancing c when the
// block has the cumulative counter and taking the kubelet's usageNanoCores
// as it is when the block has nothing else.
func cpuMillicores(c *counter, cpu *CPUStats, start time.Time) int64 {
	switch {
	case cpu == nil:
		return 0
	case cpu.UsageCoreNanoSeconds != nil:
		return millicores(c.advance(*cpu.UsageCoreNanoSeconds, cpu.Time, start, cpu.UsageNanoCores))
	case cpu.UsageNanoCores != nil:
		return millicores(float64(*cpu.UsageNanoCores))
	}
	return 0
}

// seenCounter is a counter that is pruned when a scrape no longer shows it.
type seenCounter struct {
	counter
	seen uint64
}

// podState is what the mapper remembers of one pod between scrapes.
type podState struct {
	seen       uint64
	cpu        counter
	containers map[string]*seenCounter // by container name
	rx, tx     map[string]*seenCounter // by interface name
}

// mapper turns decoded summaries into the report's KubeletStats. It keeps
// the previous scrape's counters, so it is not safe for concurrent use: the
// Source serialises its scrapes.
type mapper struct {
	gen  uint64
	pods map[string]*podState // by pod UID
}

func newMapper() *mapper {
	return &mapper{pods: map[string]*podState{}}
}

// Map converts s and advances the counters. Pods, containers and
// interfaces that s no longer shows are forgotten, so that a pod that comes
// back (same UID after a node restart) starts afresh and state cannot grow
// without bound on a node with churn.
func (m *mapper) Map(s *Summary) *model.KubeletStats {
	m.gen++
	out := &model.KubeletStats{
		NodeFS: fsStats(s.Node.Fs),
		Pods:   make([]model.PodStats, 0, len(s.Pods)),
	}
	if s.Node.Runtime != nil {
		out.ImageFS = fsStats(s.Node.Runtime.ImageFs)
	}
	for i := range s.Pods {
		out.Pods = append(out.Pods, m.pod(&s.Pods[i]))
	}
	for key, st := range m.pods {
		if st.seen != m.gen {
			delete(m.pods, key)
		}
	}
	slices.SortStableFunc(out.Pods, func(a, b model.PodStats) int {
		return cmp.Or(
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name),
			// A recreated StatefulSet pod can briefly appear twice, under
			// two UIDs.
			cmp.Compare(a.UID, b.UID),
		)
	})
	return out
}

func (m *mapper) pod(p *PodStats) model.PodStats {
	key := p.PodRef.UID
	if key == "" {
		key = p.PodRef.Namespace + "/" + p.PodRef.Name
	}
	st := m.pods[key]
	if st == nil {
		st = &podState{
			containers: map[string]*seenCounter{},
			rx:         map[string]*seenCounter{},
			tx:         map[string]*seenCounter{},
		}
		m.pods[key] = st
	}
	st.seen = m.gen
	start := p.StartTime

	out := model.PodStats{
		Namespace: p.PodRef.Namespace,
		Name:      p.PodRef.Name,
		UID:       p.PodRef.UID,
		StartTime: start.UTC(),
	}
	out.CPUUsage = cpuMillicores(&st.cpu, p.CPU, start)
	if p.Memory != nil {
		out.MemoryWorkingSet = toInt64(p.Memory.WorkingSetBytes)
	}
	if p.EphemeralStorage != nil {
		out.EphemeralStorageUsage = toInt64(p.EphemeralStorage.UsedBytes)
	}
	if n := p.Network; n != nil {
		if len(n.Interfaces) > 0 {
			for i := range n.Interfaces {
				rx, tx := m.iface(st, &n.Interfaces[i], n.Time, start)
				out.NetworkRxBytesPerSec += rx
				out.NetworkTxBytesPerSec += tx
			}
		} else {
			// Older kubelets report only the default interface.
			out.NetworkRxBytesPerSec, out.NetworkTxBytesPerSec = m.iface(st, &n.InterfaceStats, n.Time, start)
		}
	}
	prune(st.rx, m.gen)
	prune(st.tx, m.gen)

	out.Containers = make([]model.ContainerStats, 0, len(p.Containers))
	for i := range p.Containers {
		out.Containers = append(out.Containers, m.container(st, &p.Containers[i]))
	}
	prune(st.containers, m.gen)
	slices.SortStableFunc(out.Containers, func(a, b model.ContainerStats) int { return cmp.Compare(a.Name, b.Name) })

	if len(p.VolumeStats) > 0 {
		out.Volumes = make([]model.VolumeStats, 0, len(p.VolumeStats))
		for i := range p.VolumeStats {
			out.Volumes = append(out.Volumes, volume(&p.VolumeStats[i]))
		}
		slices.SortStableFunc(out.Volumes, func(a, b model.VolumeStats) int { return cmp.Compare(a.Name, b.Name) })
	}
	return out
}

// iface returns one interface's receive and transmit rates in bytes per
// second. Interfaces are tracked one by one, so that a secondary network
// attached or removed between scrapes does not read as a counter reset of
// the pod's total.
func (m *mapper) iface(st *podState, in *InterfaceStats, at, start time.Time) (rx, tx float64) {
	if in.RxBytes != nil {
		rx = seen(st.rx, in.Name, m.gen).advance(*in.RxBytes, at, start, nil)
	}
	if in.TxBytes != nil {
		tx = seen(st.tx, in.Name, m.gen).advance(*in.TxBytes, at, start, nil)
	}
	return rx, tx
}

func (m *mapper) container(st *podState, c *ContainerStats) model.ContainerStats {
	out := model.ContainerStats{Name: c.Name}
	if c.CPU != nil {
		out.CPUUsage = cpuMillicores(&seen(st.containers, c.Name, m.gen).counter, c.CPU, c.StartTime)
	}
	if c.Memory != nil {
		out.MemoryWorkingSet = toInt64(c.Memory.WorkingSetBytes)
	}
	if c.Rootfs != nil {
		out.RootfsUsed = toInt64(c.Rootfs.UsedBytes)
	}
	if c.Logs != nil {
		out.LogsUsed = toInt64(c.Logs.UsedBytes)
	}
	return out
}

func volume(v *VolumeStats) model.VolumeStats {
	out := model.VolumeStats{
		Name:           v.Name,
		CapacityBytes:  int64Ptr(v.CapacityBytes),
		UsedBytes:      int64Ptr(v.UsedBytes), // nil for block volumes: unknown, not 0
		AvailableBytes: int64Ptr(v.AvailableBytes),
		Inodes:         uint64Ptr(v.Inodes),
		InodesUsed:     uint64Ptr(v.InodesUsed),
	}
	if v.PVCRef != nil {
		out.PVCNamespace, out.PVCName = v.PVCRef.Namespace, v.PVCRef.Name
	}
	return out
}

func fsStats(f *FsStats) *model.FsStats {
	if f == nil {
		return nil
	}
	return &model.FsStats{
		CapacityBytes:  int64Ptr(f.CapacityBytes),
		UsedBytes:      int64Ptr(f.UsedBytes),
		AvailableBytes: int64Ptr(f.AvailableBytes),
		Inodes:         uint64Ptr(f.Inodes),
		InodesUsed:     uint64Ptr(f.InodesUsed),
		InodesFree:     uint64Ptr(f.InodesFree),
	}
}

// seen returns m's counter for key, created if new, marked as seen in gen.
func seen(m map[string]*seenCounter, key string, gen uint64) *seenCounter {
	c := m[key]
	if c == nil {
		c = &seenCounter{}
		m[key] = c
	}
	c.seen = gen
	return c
}

func prune(m map[string]*seenCounter, gen uint64) {
	for k, c := range m {
		if c.seen != gen {
			delete(m, k)
		}
	}
}

// millicores converts a rate in core-nanoseconds per second, rounded to the
// nearest millicore.
func millicores(nsPerSec float64) int64 {
	return clampInt64(math.Round(nsPerSec / 1e6))
}

// finite keeps NaN and infinities out of the report, which JSON cannot carry.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func clampInt64(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// toInt64 reads an optional kubelet value; absent reads as 0 where the model
// has no way to say "unknown". Values above MaxInt64 saturate.
func toInt64(p *uint64) int64 {
	if p == nil {
		return 0
	}
	if *p > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(*p)
}

func int64Ptr(p *uint64) *int64 {
	if p == nil {
		return nil
	}
	v := toInt64(p)
	return &v
}

func uint64Ptr(p *uint64) *uint64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

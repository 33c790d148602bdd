package state

import (
	"math"
	"sync"
	"time"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// DefaultHistoryPoints bounds a series when NewHistory gets no positive
// maximum; it matches the aggregator.history_points default.
const DefaultHistoryPoints = 1200

// NodePoint is one reading in a node's history.
type NodePoint struct {
	Timestamp       time.Time `json:"timestamp"`
	CPUUsage        int64     `json:"cpuUsage"` // millicores
	CPUUsageRate    float64   `json:"cpuUsageRate"`
	MemoryUsage     int64     `json:"memoryUsage"` // bytes
	MemoryUsageRate float64   `json:"memoryUsageRate"`
	DiskUsage       int64     `json:"diskUsage"` // bytes
	DiskUsageRate   float64   `json:"diskUsageRate"`
	// GPUUsageRate is the mean utilisation over the node's GPUs; 0 without GPUs.
	GPUUsageRate  float64 `json:"gpuUsageRate"`
	GPUMemoryUsed int64   `json:"gpuMemoryUsed"` // bytes, summed over GPUs
	Healthy       bool    `json:"healthy"`
	Stale         bool    `json:"stale"`
}

// PodPoint is one reading in a pod's history.
type PodPoint struct {
	Timestamp       time.Time `json:"timestamp"`
	CPUUsage        int64     `json:"cpuUsage"` // millicores
	CPUUsageRate    float64   `json:"cpuUsageRate"`
	MemoryUsage     int64     `json:"memoryUsage"` // bytes
	MemoryUsageRate float64   `json:"memoryUsageRate"`
	Restarts        int32     `json:"restarts"`
}

// History keeps, per node and per pod, the readings of the last retention
// period, at most maxPoints per series. When retention holds more readings
// than maxPoints, kept readings are spaced at least retention/maxPoints
// apart, so a series still spans the retention with bounded memory; the
// latest reading is always kept as well, replaced by the next one until a
// full step has passed. Series of nodes and pods absent for longer than retention
// are dropped.
//
// Rings grow on demand up to maxPoints, so short retentions cost only what
// they hold. One RWMutex guards everything: Record runs once per cycle and
// readers copy out a series under the read lock.
type History struct {
	retention time.Duration
	maxPoints int
	step      int64 // minimum spacing of kept readings, ns

	mu    sync.RWMutex
	nodes map[string]*ring[nodeSample]
	pods  map[string]*ring[podSample]
}

// NewHistory returns a history covering retention with at most maxPoints
// readings per series. A non-positive retention keeps only the latest
// reading; a non-positive maxPoints means DefaultHistoryPoints.
func NewHistory(retention time.Duration, maxPoints int) *History {
	if maxPoints <= 0 {
		maxPoints = DefaultHistoryPoints
	}
	if retention <= 0 {
		retention, maxPoints = 0, 1
	}
	return &History{
		retention: retention,
		maxPoints: maxPoints,
		step:      int64(retention) / int64(maxPoints),
		nodes:     map[string]*ring[nodeSample]{},
		pods:      map[string]*ring[podSample]{},
	}
}

// Record adds every node's and pod's reading from s. A reading whose
// timestamp is not after the series' last one (a stale node's repeated
// data) is not added again.
func (h *History) Record(s *model.MetricsSnapshot) {
	if s == nil {
		return
	}
	now := s.Timestamp.UnixNano()
	cutoff := now - int64(h.retention)
	// Without retention the single slot just holds the latest reading,
	// however old it is.
	pointCutoff := cutoff
	if h.retention == 0 {
		pointCutoff = math.MinInt64
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, n := range s.NodeMetrics {
		if n == nil {
			continue
		}
		r := h.nodes[name]
		if r == nil {
			r = &ring[nodeSample]{}
			h.nodes[name] = r
		}
		r.add(newNodeSample(n, now), h.maxPoints, h.step, pointCutoff)
		r.lastSeen = now
	}
	for key, p := range s.PodMetrics {
		if p == nil {
			continue
		}
		r := h.pods[key]
		if r == nil {
			r = &ring[podSample]{}
			h.pods[key] = r
		}
		r.add(newPodSample(p, now), h.maxPoints, h.step, pointCutoff)
		r.lastSeen = now
	}
	// Only sweep when some series was not in this snapshot: the common
	// cycle, with nothing gone, skips a pass over every series.
	if len(h.nodes) > len(s.NodeMetrics) {
		sweep(h.nodes, cutoff)
	}
	if len(h.pods) > len(s.PodMetrics) {
		sweep(h.pods, cutoff)
	}
}

func sweep[T sample](m map[string]*ring[T], cutoff int64) {
	for k, r := range m {
		if r.lastSeen < cutoff {
			delete(m, k)
		}
	}
}

// NodeHistory returns the node's readings, oldest first, and whether the
// node has a series at all.
func (h *History) NodeHistory(name string) ([]NodePoint, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, ok := h.nodes[name]
	if !ok {
		return nil, false
	}
	out := make([]NodePoint, 0, r.n)
	r.each(func(s *nodeSample) { out = append(out, s.point()) })
	return out, true
}

// PodHistory returns the pod's readings, oldest first, and whether the pod
// has a series at all.
func (h *History) PodHistory(namespace, name string) ([]PodPoint, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, ok := h.pods[model.PodKey(namespace, name)]
	if !ok {
		return nil, false
	}
	out := make([]PodPoint, 0, r.n)
	r.each(func(s *podSample) { out = append(out, s.point()) })
	return out, true
}

// Len returns how many node and pod series are held.
func (h *History) Len() (nodes, pods int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.nodes), len(h.pods)
}

// sample is a stored reading; times are Unix nanoseconds to keep samples
// small (a time.Time is 24 bytes with a pointer the GC must scan).
type sample interface {
	nodeSample | podSample
	at() int64
}

type nodeSample struct {
	t, cpu, mem, disk, gpuMem           int64
	cpuRate, memRate, diskRate, gpuRate float64
	healthy, stale                      bool
}

func (s nodeSample) at() int64 { return s.t }

// newNodeSample reads n's values for history. Every float passes through
// model.Finite: the history endpoint must always encode, and an average of
// huge values can overflow even when each one was finite.
func newNodeSample(n *model.NodeMetrics, now int64) nodeSample {
	s := nodeSample{
		t: readingTime(n.Timestamp, now), cpu: n.CPUUsage, mem: n.MemoryUsage, disk: n.DiskUsage,
		cpuRate: model.Finite(n.CPUUsageRate), memRate: model.Finite(n.MemoryUsageRate), diskRate: model.Finite(n.DiskUsageRate),
		healthy: n.Healthy, stale: n.Stale,
	}
	s.gpuRate, _ = n.GPUUtilization()
	if len(n.GPUs) > 0 {
		for _, g := range n.GPUs {
			s.gpuMem = model.AddSaturating(s.gpuMem, g.MemoryUsed)
		}
	} else {
		for _, m := range n.GPUMemoryUsed {
			s.gpuMem = model.AddSaturating(s.gpuMem, m)
		}
	}
	return s
}

func (s *nodeSample) point() NodePoint {
	return NodePoint{
		Timestamp: time.Unix(0, s.t).UTC(), CPUUsage: s.cpu, CPUUsageRate: s.cpuRate,
		MemoryUsage: s.mem, MemoryUsageRate: s.memRate, DiskUsage: s.disk, DiskUsageRate: s.diskRate,
		GPUUsageRate: s.gpuRate, GPUMemoryUsed: s.gpuMem, Healthy: s.healthy, Stale: s.stale,
	}
}

type podSample struct {
	t, cpu, mem      int64
	cpuRate, memRate float64
	restarts         int32
}

func (s podSample) at() int64 { return s.t }

func newPodSample(p *model.PodMetrics, now int64) podSample {
	return podSample{
		t: readingTime(p.Timestamp, now), cpu: p.CPUUsage, mem: p.MemoryUsage,
		cpuRate: model.Finite(p.CPUUsageRate), memRate: model.Finite(p.MemoryUsageRate), restarts: p.Restarts,
	}
}

func (s *podSample) point() PodPoint {
	return PodPoint{
		Timestamp: time.Unix(0, s.t).UTC(), CPUUsage: s.cpu, CPUUsageRate: s.cpuRate,
		MemoryUsage: s.mem, MemoryUsageRate: s.memRate, Restarts: s.restarts,
	}
}

// readingTime is when the value was measured, so that a stale node's
// repeated data is recognised; the snapshot's time when it is unknown. A
// time after the snapshot's is held to it: history never holds a point
// from the future, which would make every later reading look old.
func readingTime(t time.Time, now int64) int64 {
	if t.IsZero() {
		return now
	}
	return min(t.UnixNano(), now)
}

// ring is one series: a circular buffer that grows up to its maximum.
type ring[T sample] struct {
	buf      []T
	head, n  int   // oldest element and count
	lastSeen int64 // snapshot time the object was last present, ns
	// provisional marks the newest reading as kept only until the next
	// one: it is less than a step after the reading before it, but the
	// latest reading must always be there to read.
	provisional bool
}

func (r *ring[T]) add(s T, maxPoints int, step, cutoff int64) {
	for r.n > 0 && r.buf[r.head].at() < cutoff {
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
	if s.at() < cutoff {
		return // a stale node's last reading, already past retention
	}
	if r.n == 0 {
		r.push(s, maxPoints)
		r.provisional = false
		return
	}
	last := r.n - 1
	if s.at() <= r.at(last) {
		return // the same reading again
	}
	if r.provisional {
		// Replace the provisional tail; s is kept for good once it is a
		// full step after the last kept reading.
		r.buf[(r.head+last)%len(r.buf)] = s
		r.provisional = last > 0 && s.at()-r.at(last-1) < step
		return
	}
	r.push(s, maxPoints)
	r.provisional = s.at()-r.at(last) < step
}

func (r *ring[T]) at(i int) int64 { return r.buf[(r.head+i)%len(r.buf)].at() }

// push appends s, growing the buffer up to maxPoints and then overwriting
// the oldest reading.
func (r *ring[T]) push(s T, maxPoints int) {
	if r.n == len(r.buf) && len(r.buf) < maxPoints {
		r.grow(maxPoints)
	}
	if r.n == len(r.buf) {
		r.buf[r.head] = s
		r.head = (r.head + 1) % len(r.buf)
		return
	}
	r.buf[(r.head+r.n)%len(r.buf)] = s
	r.n++
}

// grow doubles the buffer (at least 4, at most maxPoints), unrolling it so
// the oldest element is first again.
func (r *ring[T]) grow(maxPoints int) {
	size := min(max(4, 2*len(r.buf)), maxPoints)
	buf := make([]T, size)
	for i := 0; i < r.n; i++ {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

func (r *ring[T]) each(f func(*T)) {
	for i := 0; i < r.n; i++ {
		f(&r.buf[(r.head+i)%len(r.buf)])
	}
}

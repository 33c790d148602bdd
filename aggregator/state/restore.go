package state

import (
	"math"

	corev1 "k8s.io/api/core/v1"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// RestoreOptions configure a Restorer.
type RestoreOptions struct {
	// History receives the restored readings.
	History *History
	// Nodes and Pods are the informers' objects, both nil in standalone
	// mode; the restored readings are merged with them as the snapshot of
	// the time merged them with the objects of that time.
	Nodes []*corev1.Node
	Pods  []*corev1.Pod
	// StaleIntervals and Thresholds are those of the snapshots.
	StaleIntervals int
	Thresholds     model.Thresholds
}

// Restorer rebuilds the history window from reports replayed from the
// Reports stream after a restart. Each report is merged as the snapshot
// that first showed it did, at the time it was received, so the restored
// readings equal those recorded live: a reading is recorded at its first
// sighting and never changes after. Reports must come in the order they
// were received, as a stream delivers them.
type Restorer struct {
	o          RestoreOptions
	nodes      map[string]*corev1.Node
	podsByNode map[string][]*corev1.Pod
}

// NewRestorer returns a Restorer writing into o.History.
func NewRestorer(o RestoreOptions) *Restorer {
	r := &Restorer{o: o}
	if o.Nodes != nil || o.Pods != nil {
		r.nodes = make(map[string]*corev1.Node, len(o.Nodes))
		for _, n := range o.Nodes {
			if n != nil {
				r.nodes[n.Name] = n
			}
		}
		r.podsByNode = map[string][]*corev1.Pod{}
		for _, p := range o.Pods {
			if p != nil && p.Spec.NodeName != "" {
				r.podsByNode[p.Spec.NodeName] = append(r.podsByNode[p.Spec.NodeName], p)
			}
		}
	}
	return r
}

// Add records e's node and pods in the history.
func (r *Restorer) Add(e ReportEntry) {
	if e.Report == nil || r.o.History == nil {
		return
	}
	name := e.Report.NodeName
	in := Inputs{
		Now:            e.ReceivedAt,
		Reports:        map[string]ReportEntry{name: e},
		StaleIntervals: r.o.StaleIntervals,
		Thresholds:     r.o.Thresholds,
	}
	if r.nodes != nil {
		// Non-nil, even when empty: nil Nodes and Pods mean standalone.
		in.Nodes, in.Pods = []*corev1.Node{}, []*corev1.Pod{}
		if n, ok := r.nodes[name]; ok {
			in.Nodes = append(in.Nodes, n)
		}
		in.Pods = append(in.Pods, r.podsByNode[name]...)
	}
	r.o.History.restore(Build(in))
}

// restore is Record for one node's snapshot during a restore: it adds the
// readings but sweeps nothing, since every other series is simply absent
// from a one-node snapshot, and a sweep per report would cost a pass over
// every series.
func (h *History) restore(s *model.MetricsSnapshot) {
	now := s.Timestamp.UnixNano()
	cutoff := now - int64(h.retention)
	if h.retention == 0 {
		cutoff = math.MinInt64
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, n := range s.NodeMetrics {
		if n != nil {
			seriesFor(h.nodes, name).add(newNodeSample(n, now), h.maxPoints, h.step, cutoff)
			h.nodes[name].lastSeen = now
		}
	}
	for key, p := range s.PodMetrics {
		if p != nil {
			seriesFor(h.pods, key).add(newPodSample(p, now), h.maxPoints, h.step, cutoff)
			h.pods[key].lastSeen = now
		}
	}
}

func seriesFor[T sample](m map[string]*ring[T], key string) *ring[T] {
	r := m[key]
	if r == nil {
		r = &ring[T]{}
		m[key] = r
	}
	return r
}

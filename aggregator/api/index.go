package api

import (
	"cmp"
	"hash/maphash"
	"iter"
	"slices"
	"sync"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// index holds one snapshot's nodes and pods in key order so that lists
// come out sorted without sorting the whole cluster per request. It is
// built once per snapshot, on the first request that needs it, and kept
// cheap to build: one sort, and no per-pod map operations.
type index struct {
	snap  *model.MetricsSnapshot
	nodes []nodeEntry
	pods  []podEntry
	// namespaces maps a namespace to its range [lo, hi) in pods: key order
	// keeps a namespace's pods together.
	namespaces map[string][2]int32

	// body is the snapshot's encoded answer, made by the first request
	// for it (server.snapshotBody); it goes when the index goes.
	bodyOnce sync.Once
	body     *answer
	bodyErr  error
}

type nodeEntry struct {
	name string
	m    *model.NodeMetrics
}

// podEntry keeps the snapshot's map key (the order json.Marshal gives the
// snapshot's podMetrics object) and copies of what filters and sorts read,
// so that a scan of 150 000 pods walks this slice instead of following a
// pointer per pod. Node and name filters compare the hashes first and read
// the pod's strings only on a hash match.
type podEntry struct {
	key                        string
	m                          *model.PodMetrics
	cpu, mem, cpuRate, memRate float64
	restarts                   int32
	// pos is the entry's place in index.pods, which is key order: ties in
	// a sort break on it without reading the key's bytes.
	pos                    int32
	nodeHash, nameHash     uint32
	phase                  uint8 // 1 + index in podPhases; 0 for anything else
	known                  bool  // usage known
	cpuLimited, memLimited bool
}

// hashSeed is per process: the hashes never leave it.
var hashSeed = maphash.MakeSeed()

func hash32(s string) uint32 { return uint32(maphash.String(hashSeed, s)) }

// newPodEntry's rates are the highest against a limit that applies (the
// pod's where it bounds the whole pod, each container's against its own),
// so that filters and sorts by rate find a container at its limit in a pod
// that has no limit as a whole.
func newPodEntry(key string, p *model.PodMetrics) podEntry {
	cpuRate, cpuLimited := p.CPULimitRate()
	memRate, memLimited := p.MemoryLimitRate()
	return podEntry{
		key: key, m: p,
		cpu: float64(p.CPUUsage), mem: float64(p.MemoryUsage), cpuRate: cpuRate, memRate: memRate,
		restarts: p.Restarts, nodeHash: hash32(p.NodeName), nameHash: hash32(p.PodName),
		phase: phaseCode(p.Phase), known: p.UsageSource != "",
		cpuLimited: cpuLimited, memLimited: memLimited,
	}
}

func phaseCode(phase string) uint8 {
	for i, p := range podPhases {
		if p == phase {
			return uint8(i + 1)
		}
	}
	return 0
}

func buildIndex(s *model.MetricsSnapshot) *index {
	ix := &index{
		snap:       s,
		nodes:      make([]nodeEntry, 0, len(s.NodeMetrics)),
		pods:       make([]podEntry, 0, len(s.PodMetrics)),
		namespaces: map[string][2]int32{},
	}
	for name, n := range s.NodeMetrics {
		if n != nil {
			ix.nodes = append(ix.nodes, nodeEntry{name, n})
		}
	}
	slices.SortFunc(ix.nodes, func(a, b nodeEntry) int { return cmp.Compare(a.name, b.name) })
	for key, p := range s.PodMetrics {
		if p != nil {
			ix.pods = append(ix.pods, newPodEntry(key, p))
		}
	}
	slices.SortFunc(ix.pods, func(a, b podEntry) int { return cmp.Compare(a.key, b.key) })
	lo := 0
	for i := range ix.pods {
		ix.pods[i].pos = int32(i)
		ns := ix.pods[i].m.Namespace
		if i+1 == len(ix.pods) || ix.pods[i+1].m.Namespace != ns {
			ix.namespaces[ns] = [2]int32{int32(lo), int32(i + 1)}
			lo = i + 1
		}
	}
	return ix
}

// podsIn returns the pods of a namespace, in key order.
func (ix *index) podsIn(namespace string) []podEntry {
	r, ok := ix.namespaces[namespace]
	if !ok {
		return nil
	}
	return ix.pods[r[0]:r[1]]
}

// topK keeps the k smallest items pushed, by cmp, in a bounded max-heap:
// O(n log k) over n items and no copy of them. Sorting 150 000 pods to
// answer "the top 10" would cost more than the rest of the request.
type topK[T any] struct {
	k   int
	cmp func(a, b T) int
	h   []T // max-heap: h[0] is the largest kept item
}

func newTopK[T any](k int, cmp func(a, b T) int) *topK[T] {
	// Grown by append: k may be a large offset+limit over few items.
	return &topK[T]{k: k, cmp: cmp, h: make([]T, 0, min(k, 1024))}
}

func (t *topK[T]) push(it T) {
	if len(t.h) < t.k {
		t.h = append(t.h, it)
		for i := len(t.h) - 1; i > 0; {
			parent := (i - 1) / 2
			if t.cmp(t.h[i], t.h[parent]) <= 0 {
				break
			}
			t.h[i], t.h[parent] = t.h[parent], t.h[i]
			i = parent
		}
		return
	}
	if t.cmp(it, t.h[0]) >= 0 {
		return
	}
	t.h[0] = it
	for i := 0; ; {
		l, r, top := 2*i+1, 2*i+2, i
		if l < len(t.h) && t.cmp(t.h[l], t.h[top]) > 0 {
			top = l
		}
		if r < len(t.h) && t.cmp(t.h[r], t.h[top]) > 0 {
			top = r
		}
		if top == i {
			return
		}
		t.h[i], t.h[top] = t.h[top], t.h[i]
		i = top
	}
}

// sorted returns the kept items in cmp order.
func (t *topK[T]) sorted() []T {
	slices.SortFunc(t.h, t.cmp)
	return t.h
}

// selectItems returns the candidates that keep accepts, in cmp order when
// cmp is set (else in the candidates' order), at most limit of them (0:
// all), and how many matched in all.
func selectItems[T any](candidates iter.Seq[T], keep func(T) bool, cmp func(a, b T) int, limit int) ([]T, int) {
	total := 0
	if cmp != nil && limit > 0 {
		top := newTopK(limit, cmp)
		for e := range candidates {
			if keep(e) {
				total++
				top.push(e)
			}
		}
		return top.sorted(), total
	}
	var out []T
	for e := range candidates {
		if !keep(e) {
			continue
		}
		total++
		if limit == 0 || len(out) < limit {
			out = append(out, e)
		}
	}
	if cmp != nil {
		slices.SortFunc(out, cmp)
	}
	return out, total
}

// inOrder yields pointers to items forwards, or backwards when desc;
// pointers, because pod entries are too large to copy at every step of a
// 150 000-pod scan.
func inOrder[T any](items []T, desc bool) iter.Seq[*T] {
	return func(yield func(*T) bool) {
		for i := range items {
			if desc {
				i = len(items) - 1 - i
			}
			if !yield(&items[i]) {
				return
			}
		}
	}
}

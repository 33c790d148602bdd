package api

import (
	"cmp"
	"net/http"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// pods answers GET /api/v1/metrics/pods: every pod in namespace/name order,
// or filtered and sorted by the query (see parsePodQuery). An answer of
// more than MaxLimit items is snapshot-sized (see answerList).
func (s *server) pods(w http.ResponseWriter, r *http.Request) error {
	items, total, err := s.q.selectPods(r.URL.RawQuery, nil, 0)
	if err != nil {
		return err
	}
	return s.answerList(w, r, total, len(items), func(i int) any { return items[i].m })
}

func (q *podQuery) matches(e *podEntry) bool {
	switch {
	case q.node != "" && e.nodeHash != q.nodeHash,
		q.name != "" && e.nameHash != q.nameHash,
		q.phaseCode != 0 && (e.phase == q.phaseCode) == q.phaseNot,
		q.minMemoryLimitRate >= 0 && (!e.memLimited || e.memRate < q.minMemoryLimitRate),
		q.minCPULimitRate >= 0 && (!e.cpuLimited || e.cpuRate < q.minCPULimitRate):
		return false
	}
	// Hashes can collide: confirm on the pod itself, which is rarely read.
	return (q.node == "" || e.m.NodeName == q.node) && (q.name == "" || e.m.PodName == q.name)
}

// compare orders pods by the sort key (descending when asked), pods
// without that measure (no usage known, no limit for a rate) last in
// either order, then by namespace/name.
func (q *podQuery) compare(a, b *podEntry) int {
	va, oka := podValue(a, q.sort)
	vb, okb := podValue(b, q.sort)
	switch {
	case oka != okb:
		if oka {
			return -1
		}
		return 1
	case va != vb:
		if q.desc {
			return cmp.Compare(vb, va)
		}
		return cmp.Compare(va, vb)
	}
	return cmp.Compare(a.pos, b.pos)
}

func podValue(e *podEntry, key string) (float64, bool) {
	switch key {
	case SortCPU:
		return e.cpu, e.known
	case SortMemory:
		return e.mem, e.known
	case SortRestarts:
		return float64(e.restarts), true
	case SortCPURate:
		return e.cpuRate, e.known && e.cpuLimited
	case SortMemoryRate:
		return e.memRate, e.known && e.memLimited
	}
	return 0, false
}

// pod answers GET /api/v1/metrics/pods/{namespace}/{name}.
func (s *server) pod(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r.URL.RawQuery); err != nil {
		return err
	}
	snap := s.p.Snapshot()
	if snap == nil {
		return errNoSnapshot
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	p := snap.PodMetrics[model.PodKey(ns, name)]
	if p == nil {
		return errorf(http.StatusNotFound, "pod %s/%s not found", ns, name)
	}
	return writeJSON(w, http.StatusOK, p)
}

// podHistoryResponse is a pod's history.
type podHistoryResponse struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Count     int              `json:"count"`
	Items     []state.PodPoint `json:"items"`
}

// podHistory answers GET /api/v1/metrics/pods/{namespace}/{name}/history,
// with the same rules as nodeHistory.
func (s *server) podHistory(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r.URL.RawQuery); err != nil {
		return err
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	points, ok := s.p.PodHistory(ns, name)
	if !ok {
		snap := s.p.Snapshot()
		if snap == nil {
			return errNoSnapshot
		}
		if snap.PodMetrics[model.PodKey(ns, name)] == nil {
			return errorf(http.StatusNotFound, "pod %s/%s not found", ns, name)
		}
	}
	if points == nil {
		points = []state.PodPoint{}
	}
	return writeJSON(w, http.StatusOK, podHistoryResponse{Namespace: ns, Name: name, Count: len(points), Items: points})
}

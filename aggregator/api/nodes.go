package api

import (
	"cmp"
	"net/http"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// nodes answers GET /api/v1/metrics/nodes: every node, in name order, or
// filtered and sorted by the query (see parseNodeQuery). An answer of more
// than MaxLimit items is snapshot-sized (see answerList).
func (s *server) nodes(w http.ResponseWriter, r *http.Request) error {
	items, total, err := s.q.selectNodes(r.URL.RawQuery, nil, 0)
	if err != nil {
		return err
	}
	return s.answerList(w, r, total, len(items), func(i int) any { return items[i].m })
}

func (q *nodeQuery) matches(n *model.NodeMetrics, t model.Thresholds) bool {
	if q.healthy != nil && n.Healthy != *q.healthy {
		return false
	}
	if q.stale != nil && n.Stale != *q.stale {
		return false
	}
	for _, sel := range q.labels {
		v, ok := n.Labels[sel.key]
		if !ok || (!sel.exists && v != sel.value) {
			return false
		}
	}
	// Last: PressureReasons formats strings for nodes under pressure.
	if q.pressure != nil && (len(n.PressureReasons(t)) > 0) != *q.pressure {
		return false
	}
	return true
}

// compare orders nodes by the sort key's usage rate (descending when
// asked), nodes without that measure (no capacity known, no GPU) last in
// either order, then by name: a total order, so results are stable.
func (q *nodeQuery) compare(a, b *nodeEntry) int {
	va, oka := nodeRate(a.m, q.sort)
	vb, okb := nodeRate(b.m, q.sort)
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
	return cmp.Compare(a.name, b.name)
}

// nodeRate is the node's usage rate for a sort key and whether it has one.
// A node without a usage source (no agent, no metrics-server) has unknown
// usage, not zero: it must not top an ascending "least loaded" list.
func nodeRate(n *model.NodeMetrics, key string) (float64, bool) {
	switch key {
	case SortCPU:
		return n.CPUUsageRate, n.CPUCapacity > 0 && n.UsageSource != ""
	case SortMemory:
		return n.MemoryUsageRate, n.MemoryCapacity > 0 && n.UsageSource != ""
	case SortDisk:
		return n.DiskUsageRate, n.DiskCapacity > 0
	case SortGPU:
		return n.GPUUtilization()
	}
	return 0, false
}

// node answers GET /api/v1/metrics/nodes/{name}.
func (s *server) node(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r.URL.RawQuery); err != nil {
		return err
	}
	snap := s.p.Snapshot()
	if snap == nil {
		return errNoSnapshot
	}
	name := r.PathValue("name")
	n := snap.NodeMetrics[name]
	if n == nil {
		return errorf(http.StatusNotFound, "node %q not found", name)
	}
	return writeJSON(w, http.StatusOK, n)
}

// nodeHistoryResponse is a node's history.
type nodeHistoryResponse struct {
	Node  string            `json:"node"`
	Count int               `json:"count"`
	Items []state.NodePoint `json:"items"`
}

// nodeHistory answers GET /api/v1/metrics/nodes/{name}/history. A node in
// the snapshot without a series (history off) has an empty history; a node
// in neither is not found.
func (s *server) nodeHistory(w http.ResponseWriter, r *http.Request) error {
	if err := noQuery(r.URL.RawQuery); err != nil {
		return err
	}
	name := r.PathValue("name")
	points, ok := s.p.NodeHistory(name)
	if !ok {
		snap := s.p.Snapshot()
		if snap == nil {
			return errNoSnapshot
		}
		if snap.NodeMetrics[name] == nil {
			return errorf(http.StatusNotFound, "node %q not found", name)
		}
	}
	if points == nil {
		points = []state.NodePoint{}
	}
	return writeJSON(w, http.StatusOK, nodeHistoryResponse{Node: name, Count: len(points), Items: points})
}

package api

import (
	"cmp"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/aggregator/state"
	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/model"
)

// Querier answers node and pod list queries, with the parameters, checks
// and sorts of GET /api/v1/metrics/nodes and /pods, from a provider's
// current snapshot. It builds one index per snapshot, on first use; the
// HTTP handler and the MCP server share one (Options.Querier) so that the
// index is built once whoever asks first. Safe for concurrent use.
type Querier struct {
	p          Provider
	thresholds model.Thresholds

	// idx caches the lookup structures of the latest snapshot; idxMu
	// makes concurrent first requests build them once.
	idx   atomic.Pointer[index]
	idxMu sync.Mutex
}

// NewQuerier returns a querier of p's snapshots. Thresholds decide the
// pressure= filter; zero fields take the defaults.
func NewQuerier(p Provider, t model.Thresholds) *Querier {
	return &Querier{p: p, thresholds: state.ResolveThresholds(t)}
}

// Thresholds returns the thresholds the pressure= filter applies, zero
// fields resolved to the defaults.
func (q *Querier) Thresholds() model.Thresholds { return q.thresholds }

// Nodes returns the nodes that query (the parameters of
// /api/v1/metrics/nodes) selects and how many matched before the limit.
// Without sort= and order=, rank (when not nil) orders them, ties in name
// order. max > 0 caps the items below the query's own limit. The error of
// a bad query says what is wrong in the HTTP API's words.
func (q *Querier) Nodes(query url.Values, rank func(a, b *model.NodeMetrics) int, max int) ([]*model.NodeMetrics, int, error) {
	var byRank func(a, b *nodeEntry) int
	if rank != nil {
		byRank = func(a, b *nodeEntry) int { return cmp.Or(rank(a.m, b.m), cmp.Compare(a.name, b.name)) }
	}
	entries, total, err := q.selectNodes(query.Encode(), byRank, max)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*model.NodeMetrics, len(entries))
	for i, e := range entries {
		out[i] = e.m
	}
	return out, total, nil
}

// Pods is Nodes for pods (the parameters of /api/v1/metrics/pods); ties of
// rank break in namespace/name order.
func (q *Querier) Pods(query url.Values, rank func(a, b *model.PodMetrics) int, max int) ([]*model.PodMetrics, int, error) {
	var byRank func(a, b *podEntry) int
	if rank != nil {
		byRank = func(a, b *podEntry) int { return cmp.Or(rank(a.m, b.m), cmp.Compare(a.pos, b.pos)) }
	}
	entries, total, err := q.selectPods(query.Encode(), byRank, max)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*model.PodMetrics, len(entries))
	for i, e := range entries {
		out[i] = e.m
	}
	return out, total, nil
}

// selectNodes parses a raw node query and selects its nodes; rank orders
// them when the query has neither sort= nor order=.
func (q *Querier) selectNodes(raw string, rank func(a, b *nodeEntry) int, max int) ([]*nodeEntry, int, error) {
	nq, err := parseNodeQuery(raw)
	if err != nil {
		return nil, 0, err
	}
	ix := q.current()
	if ix == nil {
		return nil, 0, errNoSnapshot
	}
	var order func(a, b *nodeEntry) int
	switch {
	case nq.sort != "":
		order = nq.compare
	case !nq.desc && !nq.ordered:
		order = rank
	}
	keep := func(e *nodeEntry) bool { return nq.matches(e.m, q.thresholds) }
	items, total := selectItems(inOrder(ix.nodes, nq.desc && nq.sort == ""), keep, order, withOffset(capLimit(nq.limit, max), nq.offset))
	return skip(items, nq.offset), total, nil
}

// selectPods is selectNodes for pods. A namespace's pods are one range of
// the index; every other filter is a scan of the (contiguous,
// pointer-free) entries. Without a sort, the walk's order (key order,
// reversed for order=desc) is the answer's.
func (q *Querier) selectPods(raw string, rank func(a, b *podEntry) int, max int) ([]*podEntry, int, error) {
	pq, err := parsePodQuery(raw)
	if err != nil {
		return nil, 0, err
	}
	ix := q.current()
	if ix == nil {
		return nil, 0, errNoSnapshot
	}
	candidates := ix.pods
	if pq.namespace != "" {
		candidates = ix.podsIn(pq.namespace)
	}
	var order func(a, b *podEntry) int
	switch {
	case pq.sort != "":
		order = pq.compare
	case !pq.desc && !pq.ordered:
		order = rank
	}
	pq.nodeHash, pq.nameHash = hash32(pq.node), hash32(pq.name)
	items, total := selectItems(inOrder(candidates, pq.desc && pq.sort == ""), pq.matches, order, withOffset(capLimit(pq.limit, max), pq.offset))
	return skip(items, pq.offset), total, nil
}

// capLimit is the smaller positive of a query's limit and a caller's cap
// (0: none).
func capLimit(limit, max int) int {
	if max > 0 && (limit == 0 || max < limit) {
		return max
	}
	return limit
}

// current returns the index of the provider's current snapshot, nil when
// there is none yet.
func (q *Querier) current() *index {
	snap := q.p.Snapshot()
	if snap == nil {
		return nil
	}
	if ix := q.idx.Load(); ix != nil && ix.snap == snap {
		return ix
	}
	q.idxMu.Lock()
	defer q.idxMu.Unlock()
	if ix := q.idx.Load(); ix != nil && ix.snap == snap {
		return ix
	}
	ix := buildIndex(snap)
	q.idx.Store(ix)
	return ix
}
